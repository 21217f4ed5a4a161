//! The bit-vector classifier (Lakshman–Stiliadis). Per interface, the rules are numbered in order and every
//! packet field is looked up once in a table that yields the rules matching on that field, as a bitset. The AND
//! of those bitsets holds every matching rule, and its lowest set bit is the first match. A verdict costs a few
//! binary searches and word ANDs, where the linear scan tests every rule.
//!
//! Address and port tables split the value space into elementary intervals (no rule boundary falls inside one),
//! so one precomputed bitset per interval answers every address in it. Large address sets (block lists with
//! 100,000 entries, usually shared by several rules) would add their boundaries to a table whose size is
//! intervals × rules, so they stay out of it: each distinct one is searched directly, at most once per packet,
//! and only when a candidate rule still depends on it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::{AddrSet, Decision, Evaluator, PacketKey, PortSet, ResolvedRule, Verdict};
use crate::model::Direction;

/// Address sets with more ranges than this are searched directly instead of entering the interval tables.
const BIG_SET_RANGES: usize = 64;

/// First-match evaluator over per-interface bit-vector indexes; gives the same verdicts as the linear scan.
pub struct IndexedEvaluator {
    /// Interface ids in ascending order, parallel to `partitions`.
    interfaces: Vec<u16>,
    partitions: Vec<Partition>,
}

impl IndexedEvaluator {
    pub fn new(rules: &[ResolvedRule]) -> Self {
        let mut by_interface: BTreeMap<u16, Vec<&ResolvedRule>> = BTreeMap::new();
        for rule in rules {
            by_interface.entry(rule.interface).or_default().push(rule);
        }
        let (interfaces, partitions) = by_interface.into_iter().map(|(id, rules)| (id, Partition::new(&rules))).unzip();
        Self { interfaces, partitions }
    }

    /// Approximate heap bytes of the index, not counting the big address sets it shares with the rules.
    pub fn memory_bytes(&self) -> usize {
        self.interfaces.capacity() * size_of::<u16>()
            + self.partitions.iter().map(Partition::memory_bytes).sum::<usize>()
    }

    fn partition(&self, interface: u16) -> Option<&Partition> {
        let i = self.interfaces.binary_search(&interface).ok()?;
        self.partitions.get(i)
    }
}

impl Evaluator for IndexedEvaluator {
    fn evaluate(&self, packet: &PacketKey) -> Verdict {
        self.partition(packet.interface)
            .and_then(|partition| partition.first_match(packet))
            .unwrap_or_else(|| Verdict::default_for(packet.direction))
    }
}

/// The index of one interface's rules; bit `i` of every bitset stands for the partition's `i`-th rule.
struct Partition {
    words: usize,
    verdicts: Vec<Verdict>,
    direction: Rows,
    protocol: ProtocolTable,
    source: AddressTable,
    destination: AddressTable,
    source_port: PortTable,
    destination_port: PortTable,
    probes: Vec<SetProbe>,
}

impl Partition {
    fn new(rules: &[&ResolvedRule]) -> Self {
        let words = rules.len().div_ceil(64);
        let sources: Vec<_> = rules.iter().map(|r| (&*r.source, r.source_negate)).collect();
        let destinations: Vec<_> = rules.iter().map(|r| (&*r.destination, r.destination_negate)).collect();
        let source_ports: Vec<_> = rules.iter().map(|r| r.source_ports.as_ref()).collect();
        let destination_ports: Vec<_> = rules.iter().map(|r| r.destination_ports.as_ref()).collect();
        Self {
            words,
            verdicts: rules.iter().map(|r| rule_verdict(r)).collect(),
            direction: direction_rows(rules, words),
            protocol: ProtocolTable::new(rules, words),
            source: AddressTable::new(&sources, words),
            destination: AddressTable::new(&destinations, words),
            source_port: PortTable::new(&source_ports, words),
            destination_port: PortTable::new(&destination_ports, words),
            probes: SetProbe::collect(rules, words),
        }
    }

    fn first_match(&self, p: &PacketKey) -> Option<Verdict> {
        // A packet whose addresses are of different families matches no rule (see `ResolvedRule::matches`).
        if p.source.is_ipv4() != p.destination.is_ipv4() {
            return None;
        }
        let rows = [
            self.direction.row(direction_row(p.direction)),
            self.protocol.lookup(p.protocol, p.source.is_ipv6()),
            self.source.lookup(&p.source),
            self.destination.lookup(&p.destination),
            self.source_port.lookup(p.source_port),
            self.destination_port.lookup(p.destination_port),
        ];
        let mut probed = Probed::default();
        for w in 0..self.words {
            let candidates = rows.iter().fold(!0u64, |acc, row| acc & row[w]);
            let survivors = self.apply_probes(w, candidates, p, &mut probed);
            if survivors != 0 {
                return self.verdicts.get(w * 64 + survivors.trailing_zeros() as usize).copied();
            }
        }
        None
    }

    /// Drops the candidates of word `w` that a big set rules out, searching only the sets they depend on.
    fn apply_probes(&self, w: usize, mut candidates: u64, p: &PacketKey, probed: &mut Probed) -> u64 {
        for (i, probe) in self.probes.iter().enumerate() {
            if candidates == 0 {
                break;
            }
            let (kill_inside, kill_outside) = (probe.kill_if_inside[w], probe.kill_if_outside[w]);
            if candidates & (kill_inside | kill_outside) == 0 {
                continue;
            }
            let inside = probed.answer(i, || probe.contains(p));
            candidates &= !if inside { kill_inside } else { kill_outside };
        }
        candidates
    }

    fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.verdicts.capacity() * size_of::<Verdict>()
            + self.direction.memory_bytes()
            + self.protocol.memory_bytes()
            + self.source.memory_bytes()
            + self.destination.memory_bytes()
            + self.source_port.memory_bytes()
            + self.destination_port.memory_bytes()
            + self.probes.iter().map(SetProbe::memory_bytes).sum::<usize>()
    }
}

fn rule_verdict(rule: &ResolvedRule) -> Verdict {
    Verdict { action: rule.action, decision: Decision::Rule(rule.index) }
}

/// Equal-length bitsets over a partition's rules, stored back to back.
struct Rows {
    words: usize,
    bits: Vec<u64>,
}

impl Rows {
    fn new(count: usize, words: usize) -> Self {
        Self { words, bits: vec![0; count * words] }
    }

    fn row(&self, i: usize) -> &[u64] {
        &self.bits[i * self.words..(i + 1) * self.words]
    }

    fn push(&mut self, row: &[u64]) {
        self.bits.extend_from_slice(row);
    }

    fn assign(&mut self, i: usize, rule: usize, on: bool) {
        let word = &mut self.bits[i * self.words + rule / 64];
        let bit = 1u64 << (rule % 64);
        if on {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    fn memory_bytes(&self) -> usize {
        self.bits.capacity() * size_of::<u64>()
    }
}

/// A bitset with the bits of the rules for which `pred` holds.
fn bits_where(rules: &[&ResolvedRule], words: usize, pred: impl Fn(&ResolvedRule) -> bool) -> Vec<u64> {
    let mut bits = vec![0u64; words];
    for (i, rule) in rules.iter().enumerate() {
        if pred(rule) {
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    bits
}

const PACKET_DIRECTIONS: [Direction; 3] = [Direction::In, Direction::Out, Direction::Any];

fn direction_row(direction: Direction) -> usize {
    match direction {
        Direction::In => 0,
        Direction::Out => 1,
        Direction::Any => 2,
    }
}

fn direction_rows(rules: &[&ResolvedRule], words: usize) -> Rows {
    let mut rows = Rows::new(0, words);
    for packet_direction in PACKET_DIRECTIONS {
        rows.push(&bits_where(rules, words, |r| r.direction.matches(packet_direction)));
    }
    rows
}

/// Protocol number and family together (the IP version of a rule and `icmp` both depend on the family).
/// All 512 combinations are computed with the reference predicates, then identical bitsets are shared.
struct ProtocolTable {
    /// Row of each `(protocol, is_v6)` at `protocol * 2 + is_v6`.
    class_of: Vec<u16>,
    rows: Rows,
}

impl ProtocolTable {
    fn new(rules: &[&ResolvedRule], words: usize) -> Self {
        let mut classes: HashMap<Vec<u64>, u16> = HashMap::new();
        let mut rows = Rows::new(0, words);
        let mut class_of = Vec::with_capacity(512);
        for protocol in 0..=u8::MAX {
            for is_v6 in [false, true] {
                let bits = protocol_bits(rules, words, protocol, is_v6);
                // At most 512 distinct rows, so the class number fits a u16.
                let next = classes.len() as u16;
                let class = *classes.entry(bits).or_insert_with_key(|bits| {
                    rows.push(bits);
                    next
                });
                class_of.push(class);
            }
        }
        Self { class_of, rows }
    }

    fn lookup(&self, protocol: u8, is_v6: bool) -> &[u64] {
        let class = self.class_of[usize::from(protocol) * 2 + usize::from(is_v6)];
        self.rows.row(usize::from(class))
    }

    fn memory_bytes(&self) -> usize {
        self.class_of.capacity() * size_of::<u16>() + self.rows.memory_bytes()
    }
}

fn protocol_bits(rules: &[&ResolvedRule], words: usize, protocol: u8, is_v6: bool) -> Vec<u64> {
    let family_probe: IpAddr = if is_v6 { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
    bits_where(rules, words, |r| r.ip_version.admits(&family_probe) && r.protocol.matches(protocol, is_v6))
}

/// A value a rule range is made of: IPv4 and IPv6 addresses as integers, ports.
trait Point: Copy + Ord {
    const ZERO: Self;
    /// The next value, `None` past the end of the space.
    fn after(self) -> Option<Self>;
}

impl Point for u16 {
    const ZERO: Self = 0;
    fn after(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Point for u32 {
    const ZERO: Self = 0;
    fn after(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Point for u128 {
    const ZERO: Self = 0;
    fn after(self) -> Option<Self> {
        self.checked_add(1)
    }
}

/// What one rule requires of one field, as far as an interval table decides it.
enum Need<'a, T> {
    All,
    Nothing,
    Ranges { ranges: &'a [(T, T)], negate: bool },
}

/// Bitsets per elementary interval: `starts[i]` begins interval `i`, which ends where the next one begins.
struct IntervalTable<T> {
    starts: Vec<T>,
    rows: Rows,
}

impl<T: Point> IntervalTable<T> {
    fn new(needs: &[Need<'_, T>], words: usize) -> Self {
        let starts = elementary_starts(needs);
        let mut rows = Rows::new(starts.len(), words);
        for (rule, need) in needs.iter().enumerate() {
            fill_rule(&mut rows, &starts, rule, need);
        }
        Self { starts, rows }
    }

    fn lookup(&self, x: T) -> &[u64] {
        // `starts[0]` is ZERO, so an interval always begins at or before `x`.
        let i = self.starts.partition_point(|s| *s <= x).saturating_sub(1);
        self.rows.row(i)
    }

    fn memory_bytes(&self) -> usize {
        self.starts.capacity() * size_of::<T>() + self.rows.memory_bytes()
    }
}

/// Every range start and every point just past a range end, so that no rule changes its answer inside an interval.
fn elementary_starts<T: Point>(needs: &[Need<'_, T>]) -> Vec<T> {
    let mut starts = vec![T::ZERO];
    for need in needs {
        if let Need::Ranges { ranges, .. } = need {
            for &(lo, hi) in *ranges {
                starts.push(lo);
                starts.extend(hi.after());
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

fn fill_rule<T: Point>(rows: &mut Rows, starts: &[T], rule: usize, need: &Need<'_, T>) {
    match need {
        Need::All => (0..starts.len()).for_each(|i| rows.assign(i, rule, true)),
        Need::Nothing => {}
        Need::Ranges { ranges, negate } if is_normalized(ranges) => {
            (0..starts.len()).for_each(|i| rows.assign(i, rule, *negate));
            for &(lo, hi) in *ranges {
                covered(starts, lo, hi).for_each(|i| rows.assign(i, rule, !*negate));
            }
        }
        Need::Ranges { ranges, negate } => {
            // Ranges not sorted and disjoint: ask the lookup the linear scan does, at each interval's start. Its
            // answer only changes at a range start or one past a range end, which are all interval starts.
            for (i, start) in starts.iter().enumerate() {
                rows.assign(i, rule, ranges_contain(ranges, *start) != *negate);
            }
        }
    }
}

/// The intervals making up `lo..=hi`; both ends are interval boundaries by construction.
fn covered<T: Point>(starts: &[T], lo: T, hi: T) -> std::ops::Range<usize> {
    let first = starts.partition_point(|s| *s < lo);
    let end = match hi.after() {
        Some(next) => starts.partition_point(|s| *s < next),
        None => starts.len(),
    };
    first..end
}

/// Sorted, non-empty and disjoint ranges, as `AddrSet` and the resolver produce them.
fn is_normalized<T: Point>(ranges: &[(T, T)]) -> bool {
    ranges.iter().all(|(lo, hi)| lo <= hi) && ranges.windows(2).all(|pair| pair[0].1 < pair[1].0)
}

/// The same lookup as the resolver's range membership, so that even unnormalized ranges answer alike.
fn ranges_contain<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let idx = ranges.partition_point(|(lo, _)| *lo <= x);
    idx > 0 && ranges[idx - 1].1 >= x
}

/// Whether a set is searched directly by a `SetProbe` rather than spread over the interval tables.
fn is_big(set: &AddrSet) -> bool {
    !set.any && set.v4.len() + set.v6.len() > BIG_SET_RANGES
}

fn address_need<'a, T>(set: &AddrSet, family: &'a [(T, T)], negate: bool) -> Need<'a, T> {
    if is_big(set) {
        Need::All // decided by the set's probe
    } else if set.any {
        if negate { Need::Nothing } else { Need::All }
    } else {
        Need::Ranges { ranges: family, negate }
    }
}

/// One address field (source or destination), one interval table per family.
struct AddressTable {
    v4: IntervalTable<u32>,
    v6: IntervalTable<u128>,
}

impl AddressTable {
    fn new(fields: &[(&AddrSet, bool)], words: usize) -> Self {
        let v4: Vec<_> = fields.iter().map(|(set, neg)| address_need(set, &set.v4, *neg)).collect();
        let v6: Vec<_> = fields.iter().map(|(set, neg)| address_need(set, &set.v6, *neg)).collect();
        Self { v4: IntervalTable::new(&v4, words), v6: IntervalTable::new(&v6, words) }
    }

    fn lookup(&self, addr: &IpAddr) -> &[u64] {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(*a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(*a)),
        }
    }

    fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes()
    }
}

/// One port field. A packet without a port (icmp, ...) only matches rules that leave the port open.
struct PortTable {
    with_port: IntervalTable<u16>,
    without_port: Vec<u64>,
}

impl PortTable {
    fn new(fields: &[Option<&PortSet>], words: usize) -> Self {
        let needs: Vec<_> = fields
            .iter()
            .map(|ports| match ports {
                None => Need::All,
                Some(ranges) => Need::Ranges { ranges: ranges.as_slice(), negate: false },
            })
            .collect();
        let mut without_port = vec![0u64; words];
        for (i, _) in fields.iter().enumerate().filter(|(_, ports)| ports.is_none()) {
            without_port[i / 64] |= 1 << (i % 64);
        }
        Self { with_port: IntervalTable::new(&needs, words), without_port }
    }

    fn lookup(&self, port: Option<u16>) -> &[u64] {
        match port {
            Some(port) => self.with_port.lookup(port),
            None => &self.without_port,
        }
    }

    fn memory_bytes(&self) -> usize {
        self.with_port.memory_bytes() + self.without_port.capacity() * size_of::<u64>()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Source,
    Destination,
}

/// A big address set on one side, searched directly: the rules that die when the packet's address is inside it
/// (negated uses) and those that die when it is outside (plain uses).
struct SetProbe {
    set: Arc<AddrSet>,
    side: Side,
    kill_if_inside: Vec<u64>,
    kill_if_outside: Vec<u64>,
}

impl SetProbe {
    /// One probe per distinct big set and side; rules naming the same alias share the `Arc` and so the probe.
    fn collect(rules: &[&ResolvedRule], words: usize) -> Vec<Self> {
        let mut probes: Vec<Self> = Vec::new();
        let mut seen: HashMap<(*const AddrSet, Side), usize> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let fields = [
                (Side::Source, &rule.source, rule.source_negate),
                (Side::Destination, &rule.destination, rule.destination_negate),
            ];
            for (side, set, negate) in fields.into_iter().filter(|(_, set, _)| is_big(set)) {
                let at = *seen.entry((Arc::as_ptr(set), side)).or_insert_with(|| {
                    probes.push(Self::empty(set, side, words));
                    probes.len() - 1
                });
                probes[at].add_rule(i, negate);
            }
        }
        probes
    }

    fn empty(set: &Arc<AddrSet>, side: Side, words: usize) -> Self {
        Self { set: Arc::clone(set), side, kill_if_inside: vec![0; words], kill_if_outside: vec![0; words] }
    }

    fn add_rule(&mut self, rule: usize, negate: bool) {
        let kill = if negate { &mut self.kill_if_inside } else { &mut self.kill_if_outside };
        kill[rule / 64] |= 1 << (rule % 64);
    }

    fn contains(&self, p: &PacketKey) -> bool {
        match self.side {
            Side::Source => self.set.contains(&p.source),
            Side::Destination => self.set.contains(&p.destination),
        }
    }

    fn memory_bytes(&self) -> usize {
        (self.kill_if_inside.capacity() + self.kill_if_outside.capacity()) * size_of::<u64>()
    }
}

/// Probe answers already known for the packet at hand, so a big set is searched at most once per packet.
/// Only the first 64 probes are remembered; later ones are searched again when asked again.
#[derive(Default)]
struct Probed {
    known: u64,
    inside: u64,
}

impl Probed {
    fn answer(&mut self, probe: usize, search: impl FnOnce() -> bool) -> bool {
        let Some(bit) = u32::try_from(probe).ok().and_then(|p| 1u64.checked_shl(p)) else {
            return search();
        };
        if self.known & bit == 0 {
            self.known |= bit;
            if search() {
                self.inside |= bit;
            }
        }
        self.inside & bit != 0
    }
}
