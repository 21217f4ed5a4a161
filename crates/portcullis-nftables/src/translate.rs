//! The model in nft terms: one chain per logical interface and direction, one or more nft rules per model rule
//! (one per address family and set the rule's addresses need), four sets per alias (hosts and networks, IPv4 and
//! IPv6, because an interval set refuses overlapping entries such as a host inside a blocked network).

use std::borrow::Cow;
use std::collections::HashSet;

use ipnet::IpNet;
use nftables::expr::{
    Expression as E, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression as NE, Payload, PayloadField, Prefix,
    Range, SetItem,
};
use nftables::schema::{Set, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{AnonymousCounter, Counter, Log, Match, Operator, Statement as S};
use nftables::types::NfFamily;
use portcullis_core::firewall::{BackendError, ErrorCode};
use portcullis_core::model::{
    Action, AddressMatch, AddressTarget, AliasKind, Direction, IpVersion, PortMatch, Protocol, Rule, RuleSet,
};

/// The nft family of Portcullis' table: one table for IPv4 and IPv6.
pub const FAMILY: NfFamily = NfFamily::INet;

/// An unhooked chain whose rules only carry the description of each alias in their comment.
pub const ALIASES_CHAIN: &str = "aliases";

/// A set holding one number that every batch replaces (delete the number read, add a new one): a batch built on
/// a table that another process changed since deletes a number that is gone, and the kernel refuses it whole.
/// This makes concurrent writers from several processes a `conflict` instead of a lost update.
pub const GENERATION_SET: &str = "generation";

/// Which of an alias' four sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetPart {
    Hosts4,
    Nets4,
    Hosts6,
    Nets6,
}

impl SetPart {
    pub const ALL: [SetPart; 4] = [SetPart::Hosts4, SetPart::Nets4, SetPart::Hosts6, SetPart::Nets6];

    pub fn suffix(self) -> &'static str {
        match self {
            SetPart::Hosts4 => "_h4",
            SetPart::Nets4 => "_n4",
            SetPart::Hosts6 => "_h6",
            SetPart::Nets6 => "_n6",
        }
    }

    pub fn is_v6(self) -> bool {
        matches!(self, SetPart::Hosts6 | SetPart::Nets6)
    }

    pub fn is_interval(self) -> bool {
        matches!(self, SetPart::Nets4 | SetPart::Nets6)
    }

    /// The part an entry value (`192.0.2.7`, `10.0.0.0/8`) goes to.
    pub fn of(net: &IpNet) -> SetPart {
        let host = net.prefix_len() == net.max_prefix_len();
        match (net, host) {
            (IpNet::V4(_), true) => SetPart::Hosts4,
            (IpNet::V4(_), false) => SetPart::Nets4,
            (IpNet::V6(_), true) => SetPart::Hosts6,
            (IpNet::V6(_), false) => SetPart::Nets6,
        }
    }

    /// The alias and part of a set name Portcullis made.
    pub fn split(set_name: &str) -> Option<(&str, SetPart)> {
        SetPart::ALL.into_iter().find_map(|p| set_name.strip_suffix(p.suffix()).map(|alias| (alias, p)))
    }
}

pub fn set_name(alias: &str, part: SetPart) -> String {
    format!("{alias}{}", part.suffix())
}

/// The chain that holds an interface's rules for one direction.
pub fn rule_chain(interface: &str, direction: Direction) -> String {
    match direction {
        Direction::Out => format!("out_{interface}"),
        Direction::In | Direction::Any => format!("in_{interface}"),
    }
}

/// The chains a rule of this direction lives in (a rule for both directions is in both).
pub fn chains_of(interface: &str, direction: Direction) -> Vec<String> {
    match direction {
        Direction::Any => vec![rule_chain(interface, Direction::In), rule_chain(interface, Direction::Out)],
        d => vec![rule_chain(interface, d)],
    }
}

/// An empty set definition for one part of an alias.
pub fn set_def(table: &str, alias: &str, part: SetPart) -> Set<'static> {
    let mut flags = HashSet::from([SetFlag::Timeout]);
    if part.is_interval() {
        flags.insert(SetFlag::Interval);
    }
    Set {
        family: FAMILY,
        table: Cow::Owned(table.to_string()),
        name: Cow::Owned(set_name(alias, part)),
        set_type: SetTypeValue::Single(if part.is_v6() { SetType::Ipv6Addr } else { SetType::Ipv4Addr }),
        flags: Some(flags),
        ..Set::default()
    }
}

/// An address as an nft expression: a bare address for a host, a prefix for a network.
pub fn net_expr(net: &IpNet) -> E<'static> {
    if net.prefix_len() == net.max_prefix_len() {
        E::String(Cow::Owned(net.addr().to_string()))
    } else {
        E::Named(NE::Prefix(Prefix {
            addr: Box::new(E::String(Cow::Owned(net.network().to_string()))),
            len: u32::from(net.prefix_len()),
        }))
    }
}

fn payload(protocol: &'static str, field: &'static str) -> E<'static> {
    E::Named(NE::Payload(Payload::PayloadField(PayloadField {
        protocol: Cow::Borrowed(protocol),
        field: Cow::Borrowed(field),
    })))
}

fn meta(key: MetaKey) -> E<'static> {
    E::Named(NE::Meta(Meta { key }))
}

pub fn matches(left: E<'static>, op: Operator, right: E<'static>) -> S<'static> {
    S::Match(Match { left, right, op })
}

fn string(s: &str) -> E<'static> {
    E::String(Cow::Owned(s.to_string()))
}

/// One way a rule's addresses can match: the family it is bound to (if any) and its match statements.
#[derive(Debug, Clone)]
struct Alternative {
    v6: Option<bool>,
    statements: Vec<S<'static>>,
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Destination,
}

fn address_alternatives(state: &RuleSet, side: Side, m: &AddressMatch) -> Result<Vec<Alternative>, BackendError> {
    let op = if m.negate { Operator::NEQ } else { Operator::EQ };
    let field = match side {
        Side::Source => "saddr",
        Side::Destination => "daddr",
    };
    let family_field = |v6: bool| payload(if v6 { "ip6" } else { "ip" }, field);
    Ok(match &m.target {
        AddressTarget::Any => vec![Alternative { v6: None, statements: Vec::new() }],
        AddressTarget::Net(net) => {
            let v6 = net.addr().is_ipv6();
            vec![Alternative { v6: Some(v6), statements: vec![matches(family_field(v6), op, net_expr(net))] }]
        }
        AddressTarget::ThisFirewall => {
            let flag = match side {
                Side::Source => FibFlag::Saddr,
                Side::Destination => FibFlag::Daddr,
            };
            let fib = E::Named(NE::Fib(Fib { result: FibResult::Type, flags: HashSet::from([flag]) }));
            vec![Alternative { v6: None, statements: vec![matches(fib, op, string("local"))] }]
        }
        AddressTarget::Alias(name) => match state.alias(name) {
            Some(alias) if alias.kind != AliasKind::Port => {
                let set_ref = |part: SetPart| string(&format!("@{}", set_name(name, part)));
                if m.negate {
                    // Not in the alias: outside both sets of the packet's family.
                    [false, true]
                        .into_iter()
                        .map(|v6| {
                            let (h, n) =
                                if v6 { (SetPart::Hosts6, SetPart::Nets6) } else { (SetPart::Hosts4, SetPart::Nets4) };
                            Alternative {
                                v6: Some(v6),
                                statements: vec![
                                    matches(family_field(v6), Operator::NEQ, set_ref(h)),
                                    matches(family_field(v6), Operator::NEQ, set_ref(n)),
                                ],
                            }
                        })
                        .collect()
                } else {
                    SetPart::ALL
                        .into_iter()
                        .map(|part| Alternative {
                            v6: Some(part.is_v6()),
                            statements: vec![matches(family_field(part.is_v6()), Operator::EQ, set_ref(part))],
                        })
                        .collect()
                }
            }
            _ => return Err(unsupported(format!("{name:?} is not an address alias of this nftables target"))),
        },
        AddressTarget::InterfaceNet(name) | AddressTarget::InterfaceAddress(name) => {
            return Err(unsupported(format!(
                "interface addresses ({name}) are not supported on nftables targets; give the network as a CIDR"
            )));
        }
    })
}

fn unsupported(message: String) -> BackendError {
    BackendError::new(ErrorCode::ValidationError, message)
}

/// IANA numbers of the protocol names nft prints.
pub const PROTOCOL_NAMES: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("pim", 103),
    ("vrrp", 112),
    ("carp", 112),
    ("sctp", 132),
    ("pfsync", 240),
];

fn protocol_expr(n: u8) -> E<'static> {
    E::Number(u32::from(n))
}

fn protocol_statements(protocol: Protocol) -> Vec<S<'static>> {
    let l4 = || meta(MetaKey::L4proto);
    let set = |numbers: &[u8]| E::Named(NE::Set(numbers.iter().map(|n| SetItem::Element(protocol_expr(*n))).collect()));
    match protocol {
        Protocol::Any => Vec::new(),
        Protocol::Tcp => vec![matches(l4(), Operator::EQ, protocol_expr(6))],
        Protocol::Udp => vec![matches(l4(), Operator::EQ, protocol_expr(17))],
        Protocol::TcpUdp => vec![matches(l4(), Operator::EQ, set(&[6, 17]))],
        // pfSense's icmp means ICMPv6 for IPv6 packets.
        Protocol::Icmp => vec![matches(l4(), Operator::EQ, set(&[1, 58]))],
        Protocol::Icmpv6 => vec![matches(l4(), Operator::EQ, protocol_expr(58))],
        Protocol::Number(n) => vec![matches(l4(), Operator::EQ, protocol_expr(n))],
    }
}

fn port_statement(field: &'static str, port: &PortMatch) -> Result<Option<S<'static>>, BackendError> {
    Ok(match port {
        PortMatch::Any => None,
        PortMatch::Range(r) => {
            let right = if r.first == r.last {
                E::Number(u32::from(r.first))
            } else {
                E::Range(Box::new(Range { range: [E::Number(u32::from(r.first)), E::Number(u32::from(r.last))] }))
            };
            Some(matches(payload("th", field), Operator::EQ, right))
        }
        PortMatch::Alias(a) => {
            return Err(unsupported(format!("port aliases ({a}) are not supported on nftables targets")));
        }
    })
}

/// Counter values a rebuilt rule starts from, so that rebuilding a chain keeps its rules' hit counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hits {
    pub packets: u64,
    pub bytes: u64,
}

/// The nft rules (as statement lists) that enforce one model rule, in order.
/// `inbound` says which chain the rules go to (a rule for both directions is written to both), for the log prefix;
/// `hits` are the counts the rule starts from.
pub fn rule_statements(
    state: &RuleSet,
    rule: &Rule,
    inbound: bool,
    hits: Hits,
) -> Result<Vec<Vec<S<'static>>>, BackendError> {
    let sources = address_alternatives(state, Side::Source, &rule.source)?;
    let destinations = address_alternatives(state, Side::Destination, &rule.destination)?;
    let wanted_v6 = match rule.ip_version {
        IpVersion::Inet => Some(false),
        IpVersion::Inet6 => Some(true),
        IpVersion::Inet46 => None,
    };
    let ports: Vec<S<'static>> =
        [port_statement("sport", &rule.source_port)?, port_statement("dport", &rule.destination_port)?]
            .into_iter()
            .flatten()
            .collect();
    let mut out = Vec::new();
    for s in &sources {
        for d in &destinations {
            let family = match (s.v6, d.v6) {
                (Some(a), Some(b)) if a != b => continue,
                (a, b) => a.or(b),
            };
            let family = match (family, wanted_v6) {
                (Some(f), Some(w)) if f != w => continue,
                (f, w) => f.or(w).map(|v6| (v6, f.is_none())),
            };
            let mut statements = Vec::new();
            if let Some((v6, needs_marker)) = family
                && needs_marker
            {
                statements.push(matches(
                    meta(MetaKey::Nfproto),
                    Operator::EQ,
                    string(if v6 { "ipv6" } else { "ipv4" }),
                ));
            }
            statements.extend(protocol_statements(rule.protocol));
            statements.extend(ports.iter().cloned());
            statements.extend(s.statements.iter().cloned());
            statements.extend(d.statements.iter().cloned());
            // The whole count goes to the first nft rule of the group; reading sums the group again.
            let start = if out.is_empty() { hits } else { Hits::default() };
            statements.push(S::Counter(Counter::Anonymous(Some(AnonymousCounter {
                packets: Some(start.packets as usize),
                bytes: Some(start.bytes as usize),
            }))));
            if rule.enabled {
                if rule.log {
                    let prefix = crate::logs::log_prefix(rule.rule_id.as_str(), rule.action.as_str(), inbound);
                    statements.push(S::Log(Some(Log { prefix: Some(prefix.into()), ..Log::new(None) })));
                }
                statements.push(match rule.action {
                    Action::Pass => S::Accept(None),
                    Action::Block => S::Drop(None),
                    Action::Reject => S::Reject(None),
                });
            }
            out.push(statements);
        }
    }
    if out.is_empty() {
        return Err(unsupported(format!("rule {} matches no address family", rule.rule_id)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use portcullis_core::model::Alias;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    #[test]
    fn single_addresses_go_to_hash_sets_and_prefixes_to_interval_sets_per_family() {
        let cases = [
            ("192.0.2.7/32", SetPart::Hosts4),
            ("192.0.2.0/24", SetPart::Nets4),
            ("192.0.2.6/31", SetPart::Nets4),
            ("0.0.0.0/0", SetPart::Nets4),
            ("2001:db8::7/128", SetPart::Hosts6),
            ("2001:db8::/64", SetPart::Nets6),
            ("2001:db8::6/127", SetPart::Nets6),
        ];
        for (value, part) in cases {
            assert_eq!(SetPart::of(&net(value)), part, "{value}");
        }
    }

    #[test]
    fn host_sets_are_plain_timed_hash_sets_and_network_sets_interval_sets() {
        for part in SetPart::ALL {
            let set = set_def("portcullis", "PORTCULLIS_BLOCK", part);
            let flags = set.flags.expect("flags");
            assert!(flags.contains(&SetFlag::Timeout), "{part:?}: every set keeps per-element timeouts");
            assert_eq!(flags.contains(&SetFlag::Interval), part.is_interval(), "{part:?}");
            assert_eq!(flags.len(), 1 + usize::from(part.is_interval()), "{part:?}: no other flags");
            let family = if part.is_v6() { SetType::Ipv6Addr } else { SetType::Ipv4Addr };
            assert_eq!(set.set_type, SetTypeValue::Single(family), "{part:?}");
            assert_eq!(SetPart::split(&set.name), Some(("PORTCULLIS_BLOCK", part)));
        }
        assert_eq!(SetPart::split("PORTCULLIS_BLOCK"), None);
        assert_eq!(SetPart::split("generation"), None);
    }

    #[test]
    fn an_entry_is_written_as_an_address_or_a_prefix() {
        assert_eq!(net_expr(&net("192.0.2.7/32")), E::String("192.0.2.7".into()));
        assert_eq!(
            net_expr(&net("2001:db8::/64")),
            E::Named(NE::Prefix(Prefix { addr: Box::new(E::String("2001:db8::".into())), len: 64 }))
        );
    }

    fn alias_state() -> RuleSet {
        RuleSet {
            interfaces: Vec::new(),
            rules: Vec::new(),
            protections: Vec::new(),
            mirrors: Vec::new(),
            aliases: vec![Alias {
                name: "BAD".into(),
                kind: AliasKind::Network,
                description: String::new(),
                entries: Vec::new(),
                managed: None,
            }],
            vpn_accounts: Vec::new(),
        }
    }

    fn rule_from(source: AddressMatch) -> Rule {
        Rule { source, ..Rule::new("lan", Action::Block).with_id("17639184000") }
    }

    /// The (address field, operator, set) of every set match in each nft rule.
    fn set_matches(rules: &[Vec<S<'static>>]) -> Vec<Vec<(String, Operator, String)>> {
        rules
            .iter()
            .map(|statements| {
                statements
                    .iter()
                    .filter_map(|s| match s {
                        S::Match(Match {
                            left: E::Named(NE::Payload(Payload::PayloadField(f))),
                            right: E::String(set),
                            op,
                        }) => Some((format!("{} {}", f.protocol, f.field), *op, set.to_string())),
                        _ => None,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_rule_on_an_alias_matches_both_sets_of_each_family() {
        let state = alias_state();
        let alias = AddressMatch { target: AddressTarget::Alias("BAD".into()), negate: false };
        let rules = rule_statements(&state, &rule_from(alias), true, Hits::default()).expect("rules");
        let eq = |field: &str, set: &str| vec![(field.to_string(), Operator::EQ, set.to_string())];
        assert_eq!(
            set_matches(&rules),
            vec![
                eq("ip saddr", "@BAD_h4"),
                eq("ip saddr", "@BAD_n4"),
                eq("ip6 saddr", "@BAD_h6"),
                eq("ip6 saddr", "@BAD_n6")
            ],
            "one nft rule per set: a packet in either set of its family matches"
        );
        assert!(rules.iter().all(|r| matches!(r.last(), Some(S::Drop(None)))));
    }

    #[test]
    fn a_negated_alias_is_outside_both_sets_of_the_packets_family() {
        let state = alias_state();
        let alias = AddressMatch { target: AddressTarget::Alias("BAD".into()), negate: true };
        let rules = rule_statements(&state, &rule_from(alias), true, Hits::default()).expect("rules");
        let neq = |field: &str, set: &str| (field.to_string(), Operator::NEQ, set.to_string());
        assert_eq!(
            set_matches(&rules),
            vec![
                vec![neq("ip saddr", "@BAD_h4"), neq("ip saddr", "@BAD_n4")],
                vec![neq("ip6 saddr", "@BAD_h6"), neq("ip6 saddr", "@BAD_n6")],
            ]
        );
    }
}
