//! The indexed evaluator must give exactly the linear scan's verdict (action, deciding rule, defaults) for
//! every packet. Random rule sets draw addresses from a small pool so that overlaps are frequent, and some rules
//! share big address sets that the indexed evaluator handles apart from its interval tables.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use portcullis_core::eval::{
    AddrSet, Decision, Evaluator, IndexedEvaluator, LinearEvaluator, PacketKey, ResolvedRule, Verdict,
};
use portcullis_core::model::{Action, Direction, IpVersion, Protocol};
use proptest::prelude::*;

const NET_POOL: &[&str] = &[
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.128/25",
    "10.1.2.3/32",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "192.168.1.0/24",
    "192.168.1.1/32",
    "0.0.0.0/32",
    "255.255.255.255/32",
    "::/0",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "2001:db8:1::1/128",
    "fd00::/8",
    "::/128",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
];

const PORT_POOL: &[u16] = &[0, 1, 21, 22, 23, 53, 79, 80, 81, 443, 1023, 1024, 8080, 65534, 65535];

const PROTOCOL_POOL: &[u8] = &[0, 1, 6, 17, 47, 50, 58, 255];

fn pool_net(i: usize) -> IpNet {
    NET_POOL[i % NET_POOL.len()].parse().expect("pool nets are valid")
}

/// Block-list-like sets of well over 64 ranges, inside the pool's nets so that packets hit them.
fn big_sets() -> [Arc<AddrSet>; 2] {
    let a: Vec<IpNet> = (0..120u32)
        .map(|k| IpNet::from(IpAddr::from(Ipv4Addr::from(0x0a01_0000 + k * 512))))
        .chain((0..40u16).map(|k| IpNet::from(IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, k * 3)))))
        .collect();
    let b: Vec<IpNet> = (0..100u32)
        .map(|k| format!("192.168.{}.{}/30", k % 4, k * 8 % 256))
        .chain((0..30u32).map(|k| format!("10.1.{k}.0/28")))
        .map(|s| s.parse().expect("generated nets are valid"))
        .collect();
    [Arc::new(AddrSet::from_nets(&a)), Arc::new(AddrSet::from_nets(&b))]
}

#[derive(Debug, Clone)]
enum AddrChoice {
    Any,
    Nets(Vec<usize>),
    Big(usize),
    /// Unsorted, possibly overlapping or inverted ranges between pool boundaries, as no resolver makes them.
    Raw(Vec<(usize, usize)>),
}

#[derive(Debug, Clone)]
enum PortChoice {
    Any,
    Ranges(Vec<(usize, usize)>),
    Raw(Vec<(usize, usize)>),
}

#[derive(Debug, Clone)]
struct RuleSpec {
    interface: u16,
    direction: Direction,
    action: Action,
    ip_version: IpVersion,
    protocol: Protocol,
    source: (AddrChoice, bool),
    destination: (AddrChoice, bool),
    source_ports: PortChoice,
    destination_ports: PortChoice,
}

#[derive(Debug, Clone)]
enum AddrPick {
    /// A pool net, at `mode`: 0 network, 1 broadcast, 2 one below, 3 one above, else inside at offset `r`.
    Pool(usize, u8, u128),
    /// A big set's range edge, same modes.
    Big(usize, usize, u8, u128),
}

#[derive(Debug, Clone)]
struct PacketSpec {
    interface: u16,
    direction: Direction,
    protocol: u8,
    source: AddrPick,
    destination: AddrPick,
    source_port: Option<u16>,
    destination_port: Option<u16>,
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::In), Just(Direction::Out), Just(Direction::Any)]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Any),
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::TcpUdp),
        Just(Protocol::Icmp),
        Just(Protocol::Icmpv6),
        prop::sample::select(PROTOCOL_POOL).prop_map(Protocol::Number),
    ]
}

fn addr_choice() -> impl Strategy<Value = (AddrChoice, bool)> {
    let choice = prop_oneof![
        3 => Just(AddrChoice::Any),
        6 => prop::collection::vec(0..NET_POOL.len(), 1..4).prop_map(AddrChoice::Nets),
        2 => (0..2usize).prop_map(AddrChoice::Big),
        1 => prop::collection::vec((0..NET_POOL.len() * 2, 0..NET_POOL.len() * 2), 1..4).prop_map(AddrChoice::Raw),
    ];
    (choice, prop::bool::weighted(0.2))
}

fn port_choice() -> impl Strategy<Value = PortChoice> {
    let pair = (0..PORT_POOL.len(), 0..PORT_POOL.len());
    prop_oneof![
        4 => Just(PortChoice::Any),
        4 => prop::collection::vec(pair.clone(), 1..4).prop_map(PortChoice::Ranges),
        1 => prop::collection::vec(pair, 1..4).prop_map(PortChoice::Raw),
    ]
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    let interface = prop_oneof![3 => Just(0u16), 1 => Just(1), 1 => Just(2)];
    let action = prop_oneof![Just(Action::Pass), Just(Action::Block), Just(Action::Reject)];
    let ip_version = prop_oneof![Just(IpVersion::Inet), Just(IpVersion::Inet6), Just(IpVersion::Inet46)];
    (
        (interface, direction(), action, ip_version, protocol()),
        (addr_choice(), addr_choice(), port_choice(), port_choice()),
    )
        .prop_map(|((interface, direction, action, ip_version, protocol), (s, d, sp, dp))| RuleSpec {
            interface,
            direction,
            action,
            ip_version,
            protocol,
            source: s,
            destination: d,
            source_ports: sp,
            destination_ports: dp,
        })
}

fn addr_pick() -> impl Strategy<Value = AddrPick> {
    prop_oneof![
        3 => (0..NET_POOL.len(), 0..6u8, any::<u128>()).prop_map(|(i, m, r)| AddrPick::Pool(i, m, r)),
        1 => (0..2usize, any::<usize>(), 0..6u8, any::<u128>()).prop_map(|(s, i, m, r)| AddrPick::Big(s, i, m, r)),
    ]
}

fn port() -> impl Strategy<Value = Option<u16>> {
    prop_oneof![
        1 => Just(None),
        3 => (prop::sample::select(PORT_POOL), -1i32..=1).prop_map(|(p, d)| u16::try_from(i32::from(p) + d).ok()),
        1 => any::<u16>().prop_map(Some),
    ]
}

fn packet_spec() -> impl Strategy<Value = PacketSpec> {
    let protocol = prop_oneof![3 => prop::sample::select(PROTOCOL_POOL), 1 => any::<u8>()];
    ((0..4u16, direction(), protocol), (addr_pick(), addr_pick(), port(), port())).prop_map(
        |((interface, direction, protocol), (source, destination, sp, dp))| PacketSpec {
            interface,
            direction,
            protocol,
            source,
            destination,
            source_port: sp,
            destination_port: dp,
        },
    )
}

fn merge_ports(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if u32::from(last.1) + 1 >= u32::from(lo) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn ports(choice: &PortChoice) -> Option<Vec<(u16, u16)>> {
    let pick = |(a, b): &(usize, usize)| (PORT_POOL[*a], PORT_POOL[*b]);
    match choice {
        PortChoice::Any => None,
        PortChoice::Ranges(pairs) => {
            Some(merge_ports(pairs.iter().map(pick).map(|(a, b)| (a.min(b), a.max(b))).collect()))
        }
        PortChoice::Raw(pairs) => Some(pairs.iter().map(pick).collect()),
    }
}

/// Boundary `i` of the pool: the network (even `i`) or broadcast (odd `i`) of a pool net, as an integer.
fn pool_bound(i: usize) -> (bool, u128) {
    let (lo, hi, is_v4) = net_bounds(&pool_net(i / 2));
    (is_v4, if i.is_multiple_of(2) { lo } else { hi })
}

fn net_bounds(net: &IpNet) -> (u128, u128, bool) {
    match net {
        IpNet::V4(n) => (u32::from(n.network()).into(), u32::from(n.broadcast()).into(), true),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast()), false),
    }
}

fn raw_set(pairs: &[(usize, usize)]) -> AddrSet {
    let mut set = AddrSet::default();
    for (a, b) in pairs {
        let ((a_v4, lo), (b_v4, hi)) = (pool_bound(*a), pool_bound(*b));
        match (a_v4, b_v4) {
            (true, true) => set.v4.push((lo as u32, hi as u32)),
            (false, false) => set.v6.push((lo, hi)),
            _ => {}
        }
    }
    set
}

fn addr_set(choice: &AddrChoice, big: &[Arc<AddrSet>; 2]) -> Arc<AddrSet> {
    match choice {
        AddrChoice::Any => Arc::new(AddrSet::any()),
        AddrChoice::Nets(idx) => Arc::new(AddrSet::from_nets(&idx.iter().map(|i| pool_net(*i)).collect::<Vec<_>>())),
        AddrChoice::Big(i) => Arc::clone(&big[*i]),
        AddrChoice::Raw(pairs) => Arc::new(raw_set(pairs)),
    }
}

fn resolve(specs: &[RuleSpec], big: &[Arc<AddrSet>; 2]) -> Vec<ResolvedRule> {
    specs
        .iter()
        .enumerate()
        .map(|(index, s)| ResolvedRule {
            index,
            interface: s.interface,
            direction: s.direction,
            action: s.action,
            ip_version: s.ip_version,
            protocol: s.protocol,
            source: addr_set(&s.source.0, big),
            source_negate: s.source.1,
            destination: addr_set(&s.destination.0, big),
            destination_negate: s.destination.1,
            source_ports: ports(&s.source_ports),
            destination_ports: ports(&s.destination_ports),
        })
        .collect()
}

/// An address at or around the range `lo..=hi` of one family.
fn around(lo: u128, hi: u128, is_v4: bool, mode: u8, r: u128) -> IpAddr {
    let value = match mode {
        0 => lo,
        1 => hi,
        2 => lo.wrapping_sub(1),
        3 => hi.wrapping_add(1),
        _ => lo.wrapping_add(r % (hi - lo).saturating_add(1).max(1)),
    };
    if is_v4 { IpAddr::V4(Ipv4Addr::from(value as u32)) } else { IpAddr::V6(Ipv6Addr::from(value)) }
}

fn address(pick: &AddrPick, big: &[Arc<AddrSet>; 2]) -> IpAddr {
    match pick {
        AddrPick::Pool(i, mode, r) => {
            let (lo, hi, is_v4) = net_bounds(&pool_net(*i));
            around(lo, hi, is_v4, *mode, *r)
        }
        AddrPick::Big(s, i, mode, r) => {
            let set = &big[*s];
            let ranges: Vec<(u128, u128, bool)> = set
                .v4
                .iter()
                .map(|(a, b)| (u128::from(*a), u128::from(*b), true))
                .chain(set.v6.iter().map(|(a, b)| (*a, *b, false)))
                .collect();
            let (lo, hi, is_v4) = ranges[i % ranges.len()];
            around(lo, hi, is_v4, *mode, *r)
        }
    }
}

fn packet(spec: &PacketSpec, big: &[Arc<AddrSet>; 2]) -> PacketKey {
    PacketKey {
        interface: spec.interface,
        direction: spec.direction,
        protocol: spec.protocol,
        source: address(&spec.source, big),
        destination: address(&spec.destination, big),
        source_port: spec.source_port,
        destination_port: spec.destination_port,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn indexed_gives_the_linear_verdict(
        rules in prop::collection::vec(rule_spec(), 0..160),
        packets in prop::collection::vec(packet_spec(), 1..120),
    ) {
        let big = big_sets();
        let resolved = resolve(&rules, &big);
        let linear = LinearEvaluator::new(&resolved);
        let indexed = IndexedEvaluator::new(&resolved);
        for spec in &packets {
            let key = packet(spec, &big);
            prop_assert_eq!(indexed.evaluate(&key), linear.evaluate(&key), "packet {:?}", key);
        }
    }
}

// Hand-written cases.

fn net_set(nets: &[&str]) -> Arc<AddrSet> {
    let nets: Vec<IpNet> = nets.iter().map(|s| s.parse().expect("test nets are valid")).collect();
    Arc::new(AddrSet::from_nets(&nets))
}

fn base_rule(index: usize, action: Action) -> ResolvedRule {
    ResolvedRule::matching_everything(index, 0, action, IpVersion::Inet46)
}

fn tcp_packet(source: &str, destination: &str, port: Option<u16>) -> PacketKey {
    PacketKey {
        interface: 0,
        direction: Direction::In,
        protocol: 6,
        source: source.parse().expect("test address"),
        destination: destination.parse().expect("test address"),
        source_port: port.map(|_| 40000),
        destination_port: port,
    }
}

/// Evaluates with both evaluators, checks they agree and returns the verdict.
fn verdict(rules: &[ResolvedRule], packet: &PacketKey) -> Verdict {
    let indexed = IndexedEvaluator::new(rules).evaluate(packet);
    assert_eq!(indexed, LinearEvaluator::new(rules).evaluate(packet));
    indexed
}

fn rule_verdict(action: Action, index: usize) -> Verdict {
    Verdict { action, decision: Decision::Rule(index) }
}

#[test]
fn first_match_wins() {
    let mut block = base_rule(0, Action::Block);
    block.source = net_set(&["10.0.0.0/8"]);
    let pass = base_rule(1, Action::Pass);
    let rules = [block, pass];
    assert_eq!(verdict(&rules, &tcp_packet("10.1.2.3", "192.0.2.1", Some(80))), rule_verdict(Action::Block, 0));
    assert_eq!(verdict(&rules, &tcp_packet("11.1.2.3", "192.0.2.1", Some(80))), rule_verdict(Action::Pass, 1));
}

#[test]
fn negated_source_matches_outside_the_set() {
    let mut rule = base_rule(7, Action::Reject);
    rule.source = net_set(&["192.168.1.0/24"]);
    rule.source_negate = true;
    let rules = [rule];
    assert_eq!(verdict(&rules, &tcp_packet("192.168.2.1", "10.0.0.1", Some(22))), rule_verdict(Action::Reject, 7));
    assert_eq!(verdict(&rules, &tcp_packet("192.168.1.9", "10.0.0.1", Some(22))), Verdict::default_for(Direction::In));
}

#[test]
fn defaults_deny_inbound_and_pass_outbound() {
    let mut rule = base_rule(0, Action::Pass);
    rule.destination = net_set(&["198.51.100.0/24"]);
    let rules = [rule];
    let mut packet = tcp_packet("10.0.0.1", "203.0.113.5", Some(443));
    let inbound = verdict(&rules, &packet);
    assert_eq!(inbound.action, Action::Block);
    assert_eq!(inbound.decision, Decision::DefaultDeny);
    packet.direction = Direction::Out;
    let outbound = verdict(&rules, &packet);
    assert_eq!(outbound.action, Action::Pass);
    assert_eq!(outbound.decision, Decision::DefaultPassOut);
    packet.interface = 9;
    assert_eq!(verdict(&rules, &packet).decision, Decision::DefaultPassOut, "no rules on the interface");
}

#[test]
fn portless_packet_skips_port_rules() {
    let mut port_rule = base_rule(0, Action::Block);
    port_rule.destination_ports = Some(vec![(0, 65535)]);
    let any_port = base_rule(1, Action::Pass);
    let rules = [port_rule, any_port];
    let mut icmp = tcp_packet("10.0.0.1", "10.0.0.2", None);
    icmp.protocol = 1;
    assert_eq!(verdict(&rules, &icmp), rule_verdict(Action::Pass, 1));
    assert_eq!(verdict(&rules, &tcp_packet("10.0.0.1", "10.0.0.2", Some(65535))), rule_verdict(Action::Block, 0));
}

#[test]
fn mixed_family_packet_matches_nothing() {
    let rules = [base_rule(0, Action::Pass)];
    let packet = tcp_packet("10.0.0.1", "2001:db8::1", Some(80));
    assert_eq!(verdict(&rules, &packet), Verdict::default_for(Direction::In));
}

#[test]
fn big_shared_set_decides_for_plain_and_negated_rules() {
    let nets: Vec<String> = (0..500u32).map(|k| format!("10.{}.{}.0/24", k / 200, k % 200 + 1)).collect();
    let nets: Vec<&str> = nets.iter().map(String::as_str).collect();
    let blocklist = net_set(&nets);
    let mut block = base_rule(0, Action::Block);
    block.source = Arc::clone(&blocklist);
    let mut pass_outside = base_rule(1, Action::Pass);
    pass_outside.destination = Arc::clone(&blocklist);
    pass_outside.destination_negate = true;
    let rules = [block, pass_outside];
    assert_eq!(verdict(&rules, &tcp_packet("10.1.5.9", "8.8.8.8", Some(53))), rule_verdict(Action::Block, 0));
    assert_eq!(verdict(&rules, &tcp_packet("10.1.0.9", "8.8.8.8", Some(53))), rule_verdict(Action::Pass, 1));
    assert_eq!(verdict(&rules, &tcp_packet("10.1.0.9", "10.2.7.1", Some(53))), Verdict::default_for(Direction::In));
}

#[test]
fn rules_beyond_the_first_word_are_found() {
    let mut rules: Vec<ResolvedRule> = (0..200)
        .map(|i| {
            let mut r = base_rule(i, Action::Block);
            r.destination_ports = Some(vec![(i as u16, i as u16)]);
            r
        })
        .collect();
    rules.push(base_rule(200, Action::Pass));
    for port in [0, 63, 64, 65, 127, 128, 199, 200, 5000] {
        let expected =
            if port < 200 { rule_verdict(Action::Block, usize::from(port)) } else { rule_verdict(Action::Pass, 200) };
        assert_eq!(verdict(&rules, &tcp_packet("10.0.0.1", "10.0.0.2", Some(port))), expected);
    }
}
