//! Aggregates of stored records that merge: the store keeps one [`Rollup`] per hour segment, and a question over
//! any span is answered by merging the rollups of the whole hours inside it plus a rollup of the records at the
//! partial edges.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::compact::Record;
use crate::entry::{Action, Direction};

/// Ports whose attempts count as brute force (remote logins, file sharing, databases).
pub const SENSITIVE_PORTS: [u16; 12] = [21, 22, 23, 25, 445, 1433, 3306, 3389, 5432, 5900, 6379, 27017];

/// At most this many distinct destination ports are kept per source: a scan is evident long before, and a fixed
/// inline set keeps merging hour rollups free of allocation.
pub const PORTS_KEPT_PER_SOURCE: usize = 32;

/// A small set of ports, sorted, inline: the smallest [`PORTS_KEPT_PER_SOURCE`] distinct ports seen. Stored as
/// the sequence of its ports: most sources touch one or two, and rollup files decode per port written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSet {
    len: u8,
    ports: [u16; PORTS_KEPT_PER_SOURCE],
}

impl Default for PortSet {
    fn default() -> Self {
        Self { len: 0, ports: [0; PORTS_KEPT_PER_SOURCE] }
    }
}

impl Serialize for PortSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for PortSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ports;
        impl<'de> serde::de::Visitor<'de> for Ports {
            type Value = PortSet;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "at most {PORTS_KEPT_PER_SOURCE} ascending distinct ports")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PortSet, A::Error> {
                let mut set = PortSet::default();
                while let Some(port) = seq.next_element::<u16>()? {
                    let ascending = set.iter().last().is_none_or(|last| last < port);
                    let next = set.len();
                    let Some(slot) = set.ports.get_mut(next).filter(|_| ascending) else {
                        return Err(serde::de::Error::invalid_value(
                            serde::de::Unexpected::Unsigned(port.into()),
                            &self,
                        ));
                    };
                    *slot = port;
                    set.len += 1;
                }
                Ok(set)
            }
        }
        deserializer.deserialize_seq(Ports)
    }
}

impl PortSet {
    /// Distinct ports held (at most [`PORTS_KEPT_PER_SOURCE`]).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether no port is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the set stopped growing (the source touched at least this many ports).
    pub fn is_full(&self) -> bool {
        self.len() >= PORTS_KEPT_PER_SOURCE
    }

    /// The ports, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().take(self.len()).copied()
    }

    /// Adds every port of `other` (up to the bound), in one linear pass over both sorted arrays.
    pub fn union(&mut self, other: &PortSet) {
        if other.is_empty() {
            return;
        }
        let mut out = [0u16; PORTS_KEPT_PER_SOURCE];
        let mut n = 0;
        let mine = *self;
        let (mut a, mut b) = (mine.iter().peekable(), other.iter().peekable());
        while n < PORTS_KEPT_PER_SOURCE {
            let next = match (a.peek().copied(), b.peek().copied()) {
                (Some(x), Some(y)) if x == y => {
                    a.next();
                    b.next();
                    x
                }
                (Some(x), Some(y)) if x < y => {
                    a.next();
                    x
                }
                (Some(_), Some(y)) | (None, Some(y)) => {
                    b.next();
                    y
                }
                (Some(x), None) => {
                    a.next();
                    x
                }
                (None, None) => break,
            };
            if let Some(slot) = out.get_mut(n) {
                *slot = next;
            }
            n += 1;
        }
        drop((a, b));
        self.ports = out;
        self.len = n as u8;
    }

    /// Adds a port. A full set keeps the smallest ports, so that the set does not depend on the order in which
    /// records are folded and rollups merged.
    pub fn insert(&mut self, port: u16) {
        let held = self.ports.get(..self.len()).unwrap_or_default();
        let Err(at) = held.binary_search(&port) else { return };
        if at >= PORTS_KEPT_PER_SOURCE {
            return;
        }
        let len = self.len();
        let end = if self.is_full() { len - 1 } else { len };
        if let Some(tail) = self.ports.get_mut(at..=end) {
            tail.rotate_right(1);
            if let Some(first) = tail.first_mut() {
                *first = port;
            }
        }
        if !self.is_full() {
            self.len += 1;
        }
    }
}

/// A fast hasher for addresses and small keys (FxHash-style multiply-rotate). Rollups are merged by the
/// hundred thousand entries; SipHash's protection against crafted collisions costs more than it is worth here,
/// where keys are bounded by the store's own aggregation.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            if let Some(dst) = word.get_mut(..chunk.len()) {
                dst.copy_from_slice(chunk);
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The product's low bits depend only on the input's low bits (for addresses, a shared first octet):
        // bring the well-mixed high bits down, where the table takes its bucket index.
        self.0.rotate_left(26)
    }
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A map with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Deserializes a map at the size its encoding announces. Serde's own impl reserves at most 1 MiB up front, so
/// a day's 40,000 sources were rehashed (and their 200-byte values moved) four times while being read.
fn presized<'de, D, K, V>(deserializer: D) -> Result<FastMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Deserialize<'de> + Eq + std::hash::Hash,
    V: Deserialize<'de>,
{
    struct Entries<K, V>(std::marker::PhantomData<(K, V)>);
    impl<'de, K, V> serde::de::Visitor<'de> for Entries<K, V>
    where
        K: Deserialize<'de> + Eq + std::hash::Hash,
        V: Deserialize<'de>,
    {
        type Value = FastMap<K, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
            // Bounded so that a damaged length cannot ask for more than a store of this size ever holds.
            let mut map = FastMap::with_capacity_and_hasher(
                entries.size_hint().unwrap_or(0).min(1 << 22),
                BuildHasherDefault::default(),
            );
            while let Some((k, v)) = entries.next_entry()? {
                map.insert(k, v);
            }
            Ok(map)
        }
    }
    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}

/// Counts by action: pass, block, reject. Lines with [`Action::Unknown`] count in none of them (they are in the
/// record totals): the stored rollups keep their three counters.
pub type ActionCounts = [u64; 3];

fn bump(counts: &mut ActionCounts, a: Action) {
    let [pass, block, reject] = counts;
    match a {
        Action::Pass => *pass += 1,
        Action::Block => *block += 1,
        Action::Reject => *reject += 1,
        Action::Unknown => {}
    }
}

/// Traffic of one minute (one interface).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficBucket {
    /// Lines by action.
    pub actions: ActionCounts,
    /// Bytes of inbound lines.
    pub bytes_in: u64,
    /// Bytes of outbound lines.
    pub bytes_out: u64,
    /// Inbound lines.
    pub packets_in: u64,
    /// Outbound lines.
    pub packets_out: u64,
}

impl TrafficBucket {
    /// Adds another bucket.
    pub fn add(&mut self, o: &TrafficBucket) {
        for (a, b) in self.actions.iter_mut().zip(o.actions) {
            *a += b;
        }
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
    }

    /// Every line.
    pub fn packets(&self) -> u64 {
        self.packets_in + self.packets_out
    }

    /// Every byte.
    pub fn bytes(&self) -> u64 {
        self.bytes_in + self.bytes_out
    }
}

/// What one source address did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStat {
    /// Lines by action.
    pub actions: ActionCounts,
    /// Bytes sent.
    pub bytes: u64,
    /// Lines to each of the [`SENSITIVE_PORTS`], in that order.
    pub sensitive: [u64; SENSITIVE_PORTS.len()],
    /// Distinct destination ports of blocked lines (at most [`PORTS_KEPT_PER_SOURCE`]).
    pub blocked_ports: PortSet,
    /// Hours in which the source was seen (1 per hour segment, summed by merging).
    pub hours_active: u32,
    /// First and last time seen (ms).
    pub first_ms: i64,
    /// Last time seen (ms).
    pub last_ms: i64,
}

impl SourceStat {
    /// Every line from the source.
    pub fn total(&self) -> u64 {
        self.actions.iter().sum()
    }

    /// Blocked and rejected lines.
    pub fn denied(&self) -> u64 {
        self.actions[1] + self.actions[2]
    }

    /// Lines to sensitive ports.
    pub fn sensitive_total(&self) -> u64 {
        self.sensitive.iter().sum()
    }

    /// (port, lines) for the sensitive ports this source tried.
    pub fn sensitive_ports(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        SENSITIVE_PORTS.iter().zip(self.sensitive).filter(|(_, n)| *n > 0).map(|(p, n)| (*p, n))
    }

    /// Adds another period's statistics of the same source.
    pub fn merge(&mut self, o: &SourceStat) {
        let fresh = self.total() == 0;
        for (a, b) in self.actions.iter_mut().zip(o.actions) {
            *a += b;
        }
        self.bytes += o.bytes;
        for (a, b) in self.sensitive.iter_mut().zip(o.sensitive) {
            *a += b;
        }
        self.blocked_ports.union(&o.blocked_ports);
        self.hours_active += o.hours_active;
        self.first_ms = if fresh { o.first_ms } else { self.first_ms.min(o.first_ms) };
        self.last_ms = self.last_ms.max(o.last_ms);
    }
}

/// A `protocol:port` destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortKey {
    /// IANA protocol number.
    pub protocol: u8,
    /// Destination port.
    pub port: u16,
}

/// Mergeable aggregates of a set of records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// Records folded in.
    pub records: u64,
    /// Lines by action.
    pub actions: ActionCounts,
    /// Traffic per (minute start in ms, interface id).
    pub minutes: BTreeMap<(i64, u16), TrafficBucket>,
    /// Lines per hour start (ms): the hour-of-day baseline is made of these.
    pub hours: BTreeMap<i64, u64>,
    /// Lines by destination `protocol:port`, by action.
    #[serde(deserialize_with = "presized")]
    pub ports: FastMap<PortKey, ActionCounts>,
    /// Per source address.
    #[serde(deserialize_with = "presized")]
    pub sources: FastMap<IpAddr, SourceStat>,
    /// Lines per rule tracker.
    #[serde(deserialize_with = "presized")]
    pub rules: FastMap<u64, u64>,
}

const MINUTE_MS: i64 = 60_000;
/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

impl Rollup {
    /// Folds in one record. Fold records of one hour into one rollup and merge hours: a source's
    /// `hours_active` is then the number of hours it was seen in.
    pub fn fold(&mut self, r: &Record) {
        let a = r.action;
        self.records += 1;
        bump(&mut self.actions, a);
        let bucket = self.minutes.entry((r.ts_ms.div_euclid(MINUTE_MS) * MINUTE_MS, r.interface)).or_default();
        bump(&mut bucket.actions, a);
        let len = u64::from(r.length);
        match r.direction {
            Direction::In => {
                bucket.bytes_in += len;
                bucket.packets_in += 1;
            }
            Direction::Out => {
                bucket.bytes_out += len;
                bucket.packets_out += 1;
            }
            Direction::Unknown => {}
        }
        *self.hours.entry(r.ts_ms.div_euclid(HOUR_MS) * HOUR_MS).or_insert(0) += 1;
        if let Some(port) = r.dst_port {
            bump(self.ports.entry(PortKey { protocol: r.protocol, port }).or_default(), a);
        }
        if let Some(t) = r.tracker {
            *self.rules.entry(t).or_insert(0) += 1;
        }
        let s = self.sources.entry(r.src).or_insert_with(|| SourceStat {
            first_ms: r.ts_ms,
            last_ms: r.ts_ms,
            hours_active: 1,
            ..Default::default()
        });
        bump(&mut s.actions, a);
        s.bytes += len;
        s.first_ms = s.first_ms.min(r.ts_ms);
        s.last_ms = s.last_ms.max(r.ts_ms);
        if let Some(port) = r.dst_port {
            if let Some(i) = SENSITIVE_PORTS.iter().position(|p| *p == port)
                && let Some(n) = s.sensitive.get_mut(i)
            {
                *n += 1;
            }
            // pfSense's `unkn(%u)` lines are its `match` rules: neither a pass nor a block.
            if matches!(a, Action::Block | Action::Reject) {
                s.blocked_ports.insert(port);
            }
        }
    }

    /// Adds another rollup (of records disjoint from this one's).
    pub fn merge(&mut self, o: &Rollup) {
        self.merge_traffic(o);
        for (k, v) in &o.ports {
            let e = self.ports.entry(*k).or_default();
            for (a, b) in e.iter_mut().zip(v) {
                *a += b;
            }
        }
        for (k, v) in &o.rules {
            *self.rules.entry(*k).or_insert(0) += v;
        }
        self.sources.reserve(o.sources.len().saturating_sub(self.sources.len() / 2));
        for (ip, s) in &o.sources {
            self.sources.entry(*ip).or_default().merge(s);
        }
    }

    /// Adds only the totals and the traffic (minutes, hours) of another rollup: enough for traffic statistics,
    /// and much cheaper than [`Rollup::merge`].
    pub fn merge_traffic(&mut self, o: &Rollup) {
        self.records += o.records;
        for (a, b) in self.actions.iter_mut().zip(o.actions) {
            *a += b;
        }
        for (k, v) in &o.minutes {
            self.minutes.entry(*k).or_default().add(v);
        }
        for (k, v) in &o.hours {
            *self.hours.entry(*k).or_insert(0) += v;
        }
    }

    /// Blocked and rejected lines.
    pub fn denied(&self) -> u64 {
        self.actions[1] + self.actions[2]
    }

    /// About how many bytes of memory the rollup holds: what a cache of rollups counts against its budget. Hash
    /// maps are counted at their capacity plus a control byte a slot; tree maps at about twice their entries.
    pub fn approx_bytes(&self) -> usize {
        use std::mem::size_of;
        let hashed = |cap: usize, entry: usize| cap * (entry + 1);
        size_of::<Self>()
            + hashed(self.sources.capacity(), size_of::<(IpAddr, SourceStat)>())
            + hashed(self.ports.capacity(), size_of::<(PortKey, ActionCounts)>())
            + hashed(self.rules.capacity(), size_of::<(u64, u64)>())
            + 2 * self.minutes.len() * size_of::<((i64, u16), TrafficBucket)>()
            + 2 * self.hours.len() * size_of::<(i64, u64)>()
    }

    /// Traffic summed over interfaces (or of one interface id), per bucket of `granularity_ms`, oldest first.
    pub fn series(&self, granularity_ms: i64, interface: Option<u16>) -> BTreeMap<i64, TrafficBucket> {
        let step = granularity_ms.max(MINUTE_MS);
        let mut out: BTreeMap<i64, TrafficBucket> = BTreeMap::new();
        for ((minute, iface), b) in &self.minutes {
            if interface.is_none_or(|i| i == *iface) {
                out.entry(minute.div_euclid(step) * step).or_default().add(b);
            }
        }
        out
    }

    /// Traffic of every interface (or of one) over the whole rollup.
    pub fn traffic(&self, interface: Option<u16>) -> TrafficBucket {
        let mut t = TrafficBucket::default();
        for ((_, iface), b) in &self.minutes {
            if interface.is_none_or(|i| i == *iface) {
                t.add(b);
            }
        }
        t
    }

    /// Lines by action per interface id.
    pub fn actions_by_interface(&self) -> BTreeMap<u16, ActionCounts> {
        let mut out: BTreeMap<u16, ActionCounts> = BTreeMap::new();
        for ((_, iface), b) in &self.minutes {
            let e = out.entry(*iface).or_default();
            for (a, n) in e.iter_mut().zip(b.actions) {
                *a += n;
            }
        }
        out
    }

    /// The `n` sources with most blocked/rejected lines, most first (ties by address).
    pub fn top_denied_sources(&self, n: usize) -> Vec<(IpAddr, &SourceStat)> {
        let mut v: Vec<_> = self.sources.iter().filter(|(_, s)| s.denied() > 0).map(|(ip, s)| (*ip, s)).collect();
        let order =
            |a: &(IpAddr, &SourceStat), b: &(IpAddr, &SourceStat)| b.1.denied().cmp(&a.1.denied()).then(a.0.cmp(&b.0));
        if n > 0 && v.len() > n {
            v.select_nth_unstable_by(n - 1, order);
            v.truncate(n);
        }
        v.sort_by(order);
        v.truncate(n);
        v
    }

    /// The `n` destination ports with most blocked/rejected lines, most first.
    pub fn top_denied_ports(&self, n: usize) -> Vec<(PortKey, u64)> {
        let mut v: Vec<_> =
            self.ports.iter().map(|(k, c)| (*k, c[1] + c[2])).filter(|(_, denied)| *denied > 0).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_sets_stay_sorted_distinct_and_bounded() {
        let mut p = PortSet::default();
        for port in [80u16, 22, 80, 443, 1, 22] {
            p.insert(port);
        }
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![1, 22, 80, 443]);
        for port in 1000..1100 {
            p.insert(port);
        }
        assert_eq!(p.len(), PORTS_KEPT_PER_SOURCE);
        assert!(p.is_full());
        assert!(p.iter().collect::<Vec<_>>().windows(2).all(|w| w[0] < w[1]));
        let (mut a, mut b) = (PortSet::default(), PortSet::default());
        [5u16, 1, 9].into_iter().for_each(|x| a.insert(x));
        [9u16, 2, 7, 1].into_iter().for_each(|x| b.insert(x));
        a.union(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![1, 2, 5, 7, 9]);
        let mut full = p;
        full.union(&a);
        assert_eq!(full.iter().take(6).collect::<Vec<_>>(), vec![1, 2, 5, 7, 9, 22], "the smallest are kept");
        assert_eq!(full.len(), PORTS_KEPT_PER_SOURCE);
    }

    #[test]
    fn port_sets_are_stored_as_their_ports_and_refuse_what_no_set_holds() {
        let mut p = PortSet::default();
        [443u16, 22].into_iter().for_each(|x| p.insert(x));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "[22,443]");
        assert_eq!(serde_json::from_str::<PortSet>(&json).unwrap(), p);
        assert_eq!(serde_json::from_str::<PortSet>("[]").unwrap(), PortSet::default());
        for bad in ["[443,22]", "[22,22]"] {
            assert!(serde_json::from_str::<PortSet>(bad).unwrap_err().to_string().contains("ascending"), "{bad}");
        }
        let too_many: Vec<u16> = (1..=PORTS_KEPT_PER_SOURCE as u16 + 1).collect();
        assert!(serde_json::from_str::<PortSet>(&serde_json::to_string(&too_many).unwrap()).is_err());
    }

    use crate::compact::test_record as rec;

    #[test]
    fn merging_hour_rollups_equals_one_rollup_of_everything() {
        let a: Vec<Record> = (0..50).map(|i| rec(i * 1000, "203.0.113.1", 22, Action::Block)).collect();
        let b: Vec<Record> =
            (0..30).map(|i| rec(HOUR_MS + i * 1000, "203.0.113.1", 1000 + i as u16, Action::Block)).collect();
        let (mut ra, mut rb) = (Rollup::default(), Rollup::default());
        a.iter().for_each(|r| ra.fold(r));
        b.iter().for_each(|r| rb.fold(r));
        let mut merged = ra.clone();
        merged.merge(&rb);
        let mut whole = Rollup::default();
        a.iter().chain(&b).for_each(|r| whole.fold(r));
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        whole.sources.get_mut(&ip).unwrap().hours_active = 2;
        assert_eq!(merged, whole);
        let s = &merged.sources[&"203.0.113.1".parse::<IpAddr>().unwrap()];
        assert_eq!((s.denied(), s.sensitive_total(), s.hours_active), (80, 50, 2));
        assert_eq!(s.blocked_ports.len(), 31);
        assert_eq!(s.sensitive_ports().collect::<Vec<_>>(), vec![(22, 50)]);
        assert_eq!(merged.hours.len(), 2);
        assert_eq!(merged.series(HOUR_MS, None).values().map(|b| b.packets()).collect::<Vec<_>>(), vec![50, 30]);
        assert_eq!(merged.top_denied_ports(1), vec![(PortKey { protocol: 6, port: 22 }, 50)]);
    }
}
