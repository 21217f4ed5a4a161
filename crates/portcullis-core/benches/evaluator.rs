//! Evaluator throughput on a realistic 1,000-rule set: the linear scan (baseline) against the indexed
//! bit-vector evaluator, on the same pseudo-random packets. Both must give identical verdicts.
//!
//! Run with `cargo bench -p portcullis-core --bench evaluator`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use portcullis_core::eval::{
    AddrSet, Decision, Evaluator, IndexedEvaluator, LinearEvaluator, PacketKey, ResolvedRule, Verdict,
};
use portcullis_core::model::{Action, Direction, IpVersion, Protocol};

const RULES: usize = 1_000;
const PACKETS: usize = 1_000_000;
const BLOCKLIST_ENTRIES: usize = 100_000;
const INDEXED_RUNS: usize = 5;

/// WAN, LAN, DMZ, GUEST: their share of the rules and of the packets, in percent.
const INTERFACE_RULE_SHARE: [u64; 4] = [50, 30, 15, 5];
const INTERFACE_PACKET_SHARE: [u64; 4] = [50, 30, 15, 5];
const COMMON_PORTS: [u16; 12] = [22, 25, 53, 80, 123, 443, 993, 1194, 3389, 5060, 8080, 8443];

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// An index drawn with the given weights.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut roll = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }
}

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn net(addr: u32, prefix: u8) -> Arc<AddrSet> {
    let net: IpNet = format!("{}/{prefix}", Ipv4Addr::from(addr)).parse().expect("generated prefix is valid");
    Arc::new(AddrSet::from_nets([&net]))
}

fn host_net(addr: IpAddr) -> Arc<AddrSet> {
    Arc::new(AddrSet::from_nets([&IpNet::from(addr)]))
}

/// A block list of random public hosts and /24s, as a managed alias would hold.
fn blocklist(rng: &mut Rng) -> (Arc<AddrSet>, Vec<IpAddr>) {
    let hosts: Vec<IpAddr> = (0..BLOCKLIST_ENTRIES).map(|_| v4(0x0100_0000 + rng.below(0xDF00_0000) as u32)).collect();
    let nets: Vec<IpNet> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let prefix = if i.is_multiple_of(10) { 24 } else { 32 };
            IpNet::new(*h, prefix).expect("prefix fits").trunc()
        })
        .collect();
    (Arc::new(AddrSet::from_nets(&nets)), hosts)
}

/// The addresses rules and packets revolve around, per interface.
struct Site {
    public_hosts: Vec<u32>,
    lan: u32,
    dmz: u32,
    guest: u32,
}

impl Site {
    fn new(rng: &mut Rng) -> Self {
        Self {
            public_hosts: (0..64).map(|_| 0xCB00_7100 + rng.below(256) as u32).collect(),
            lan: 0xC0A8_0100,
            dmz: 0x0A0A_0000,
            guest: 0xAC10_0000,
        }
    }

    fn own_net(&self, interface: u16) -> (u32, u8) {
        match interface {
            1 => (self.lan, 24),
            2 => (self.dmz, 16),
            3 => (self.guest, 20),
            _ => (0, 0),
        }
    }
}

fn any_rule(index: usize, interface: u16, action: Action) -> ResolvedRule {
    ResolvedRule::matching_everything(index, interface, action, IpVersion::Inet)
}

fn random_port_set(rng: &mut Rng) -> Option<Vec<(u16, u16)>> {
    match rng.below(10) {
        0..=3 => None,
        4..=7 => {
            let p = rng.pick(&COMMON_PORTS);
            Some(vec![(p, p)])
        }
        _ => {
            let lo = 1024 + rng.below(50_000) as u16;
            Some(vec![(lo, lo + rng.below(2_000) as u16)])
        }
    }
}

/// One of the many specific rules: single hosts, CIDRs, port ranges, pass and block, some IPv6.
fn specific_rule(rng: &mut Rng, site: &Site, index: usize, interface: u16) -> ResolvedRule {
    let action = if rng.percent(70) { Action::Pass } else { Action::Block };
    let mut rule = any_rule(index, interface, action);
    if rng.percent(5) {
        rule.ip_version = IpVersion::Inet6;
        rule.destination = host_net(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, index as u16)));
        return rule;
    }
    rule.protocol = rng.pick(&[Protocol::Tcp, Protocol::Tcp, Protocol::Udp, Protocol::TcpUdp, Protocol::Icmp]);
    let (own, own_prefix) = site.own_net(interface);
    rule.source = match rng.below(4) {
        0 => Arc::new(AddrSet::any()),
        1 if own_prefix > 0 => net(own, own_prefix),
        1 | 2 => net(rng.next() as u32 & 0xFFFF_FF00, 24),
        _ => host_net(v4(own | rng.below(256) as u32)),
    };
    rule.destination = match rng.below(3) {
        0 => host_net(v4(rng.pick(&site.public_hosts))),
        1 => net(rng.next() as u32 & 0xFFFF_0000, 16),
        _ => host_net(v4(site.dmz | rng.below(4096) as u32)),
    };
    rule.destination_negate = rng.percent(3);
    if rule.protocol.has_ports() {
        rule.destination_ports = random_port_set(rng);
    }
    rule
}

/// 1,000 rules over four interfaces: a block-list rule on WAN, anti-spoofing, many specific rules, and a
/// broad rule last on every interface so that unmatched packets fall through to the end.
fn rule_set(rng: &mut Rng, site: &Site, blocklist: &Arc<AddrSet>) -> Vec<ResolvedRule> {
    let mut rules = vec![any_rule(0, 0, Action::Block)];
    rules[0].source = Arc::clone(blocklist);
    for bogon in [(0x0A00_0000, 8), (0xAC10_0000, 12), (0xC0A8_0000, 16)] {
        let mut rule = any_rule(rules.len(), 0, Action::Block);
        rule.source = net(bogon.0, bogon.1);
        rules.push(rule);
    }
    while rules.len() < RULES - 4 {
        let interface = rng.weighted(&INTERFACE_RULE_SHARE) as u16;
        rules.push(specific_rule(rng, site, rules.len(), interface));
    }
    for (interface, action) in [(0, Action::Block), (1, Action::Pass), (2, Action::Pass), (3, Action::Block)] {
        rules.push(any_rule(rules.len(), interface, action));
    }
    rules
}

fn packet_address(rng: &mut Rng, site: &Site, interface: u16, blocked: &[IpAddr]) -> IpAddr {
    let (own, own_prefix) = site.own_net(interface);
    match rng.below(100) {
        0..=2 => rng.pick(blocked),
        3..=39 if own_prefix > 0 => v4(own | (rng.next() as u32 >> own_prefix)),
        40..=59 => v4(rng.pick(&site.public_hosts)),
        60..=69 => v4(site.dmz | rng.below(4096) as u32),
        _ => v4(rng.next() as u32),
    }
}

fn random_packet(rng: &mut Rng, site: &Site, blocked: &[IpAddr]) -> PacketKey {
    let interface = rng.weighted(&INTERFACE_PACKET_SHARE) as u16;
    let protocol = rng.pick(&[6u8, 6, 6, 6, 6, 6, 6, 17, 17, 1]);
    let port = |rng: &mut Rng| {
        if rng.percent(60) { rng.pick(&COMMON_PORTS) } else { rng.below(65_536) as u16 }
    };
    let with_ports = protocol != 1;
    let mut packet = PacketKey {
        interface,
        direction: if rng.percent(90) { Direction::In } else { Direction::Out },
        protocol,
        source: packet_address(rng, site, interface, blocked),
        destination: packet_address(rng, site, interface, blocked),
        source_port: with_ports.then(|| 1024 + rng.below(60_000) as u16),
        destination_port: with_ports.then(|| port(rng)),
    };
    if rng.percent(3) {
        packet.source = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, rng.next() as u16));
        packet.destination = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, rng.below(1_100) as u16));
    }
    packet
}

/// Verdicts for all packets and the time they took.
fn run(evaluator: &impl Evaluator, packets: &[PacketKey]) -> (Vec<Verdict>, Duration) {
    let mut verdicts = Vec::with_capacity(packets.len());
    let start = Instant::now();
    for packet in packets {
        verdicts.push(evaluator.evaluate(black_box(packet)));
    }
    let elapsed = start.elapsed();
    (black_box(verdicts), elapsed)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn timed_compile(rules: &[ResolvedRule]) -> (IndexedEvaluator, Duration) {
    let start = Instant::now();
    let evaluator = IndexedEvaluator::new(black_box(rules));
    (evaluator, start.elapsed())
}

fn main() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (blocklist, blocked_hosts) = blocklist(&mut rng);
    let site = Site::new(&mut rng);
    let rules = rule_set(&mut rng, &site, &blocklist);
    let packets: Vec<PacketKey> = (0..PACKETS).map(|_| random_packet(&mut rng, &site, &blocked_hosts)).collect();
    let label = format!("evaluator/{} rules", rules.len());

    let linear = LinearEvaluator::new(&rules);
    let (linear_verdicts, linear_time) = run(&linear, &packets);
    let linear_rate = rate(packets.len(), linear_time);
    println!("{label}: linear scan (baseline)  {linear_rate:.0} verdicts/s");

    let (indexed, compile_time) =
        (0..INDEXED_RUNS).map(|_| timed_compile(&rules)).min_by_key(|(_, time)| *time).expect("at least one run");
    let runs: Vec<(Vec<Verdict>, Duration)> = (0..INDEXED_RUNS).map(|_| run(&indexed, &packets)).collect();
    let best = runs.iter().map(|(_, time)| *time).min().unwrap_or_default();
    let indexed_rate = rate(packets.len(), best);
    println!(
        "{label}: indexed  {indexed_rate:.0} verdicts/s  ({:.1}× baseline, best of {INDEXED_RUNS})",
        indexed_rate / linear_rate
    );
    println!("{label}: indexed compile time  {:.2} ms", compile_time.as_secs_f64() * 1e3);
    println!(
        "{label}: indexed memory  {:.1} KiB of index + {:.1} KiB shared block list ({} ranges)",
        indexed.memory_bytes() as f64 / 1024.0,
        (blocklist.v4.len() * 8 + blocklist.v6.len() * 32) as f64 / 1024.0,
        blocklist.v4.len() + blocklist.v6.len()
    );

    let mismatches: usize =
        runs.iter().map(|(verdicts, _)| verdicts.iter().zip(&linear_verdicts).filter(|(a, b)| a != b).count()).sum();
    let decided_by_rule = linear_verdicts.iter().filter(|v| matches!(v.decision, Decision::Rule(_))).count();
    println!("{label}: {} packets, {decided_by_rule} decided by a rule, mismatches  {mismatches}", packets.len());
    assert_eq!(mismatches, 0, "indexed and linear verdicts differ");
}
