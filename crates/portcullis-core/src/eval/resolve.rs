//! Resolution of a rule set into match sets: aliases, interface nets and `(self)` become address ranges, port
//! aliases become port ranges. Both evaluators work on this resolved form, so they share one meaning.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::model::{
    Action, AddressMatch, AddressTarget, AliasKind, Direction, IpVersion, PortMatch, PortRange, Protocol, RuleSet,
    Timestamp,
};

/// A set of addresses as sorted, merged, inclusive ranges per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrSet {
    pub any: bool,
    pub v4: Vec<(u32, u32)>,
    pub v6: Vec<(u128, u128)>,
}

impl AddrSet {
    pub fn any() -> Self {
        Self { any: true, ..Self::default() }
    }

    pub fn from_nets<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Self {
        let mut set = Self::default();
        for net in nets {
            set.push(net);
        }
        set.normalize();
        set
    }

    fn push(&mut self, net: &IpNet) {
        match net {
            IpNet::V4(n) => self.v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
            IpNet::V6(n) => self.v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
        }
    }

    fn extend(&mut self, other: &AddrSet) {
        self.any |= other.any;
        self.v4.extend_from_slice(&other.v4);
        self.v6.extend_from_slice(&other.v6);
    }

    fn normalize(&mut self) {
        self.v4 = merge_ranges(std::mem::take(&mut self.v4));
        self.v6 = merge_ranges(std::mem::take(&mut self.v6));
    }

    pub fn contains(&self, addr: &IpAddr) -> bool {
        if self.any {
            return true;
        }
        match addr {
            IpAddr::V4(a) => range_contains(&self.v4, u32::from(*a)),
            IpAddr::V6(a) => range_contains(&self.v6, u128::from(*a)),
        }
    }

    /// Whether every address of `other` is in `self`.
    pub fn covers(&self, other: &AddrSet) -> bool {
        if self.any {
            return true;
        }
        if other.any {
            return false;
        }
        ranges_cover(&self.v4, &other.v4) && ranges_cover(&self.v6, &other.v6)
    }

    pub fn is_empty(&self) -> bool {
        !self.any && self.v4.is_empty() && self.v6.is_empty()
    }

    /// How broad the set is, in host bits of its widest family: 0 for one host, 8 for an IPv4 /24. IPv6 is
    /// measured against the /64 that one IPv6 LAN is, so a /64 counts like a /24; `any` counts 128.
    pub fn breadth_bits(&self) -> u8 {
        if self.any {
            return 128;
        }
        let bits = |n: u128| (128 - n.leading_zeros()).saturating_sub(1) as u8;
        let v4: u128 = self.v4.iter().map(|(a, b)| u128::from(b - a) + 1).sum();
        let v6 = self.v6.iter().fold(0u128, |acc, (a, b)| acc.saturating_add((b - a).saturating_add(1)));
        let v4_bits = if v4 == 0 { 0 } else { bits(v4) };
        let v6_bits = if v6 == 0 { 0 } else { bits(v6).saturating_sub(56) };
        v4_bits.max(v6_bits)
    }
}

fn merge_ranges<T: Ord + Copy + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if last.1.succ_saturating() >= lo => {
                if hi > last.1 {
                    last.1 = hi;
                }
            }
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn range_contains<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    // The last range starting at or before x is the only candidate.
    let idx = ranges.partition_point(|(lo, _)| *lo <= x);
    idx > 0 && ranges[idx - 1].1 >= x
}

fn ranges_cover<T: Ord + Copy>(outer: &[(T, T)], inner: &[(T, T)]) -> bool {
    inner.iter().all(|(lo, hi)| {
        let idx = outer.partition_point(|(a, _)| *a <= *lo);
        idx > 0 && outer[idx - 1].1 >= *hi
    })
}

mod num_like {
    pub trait Succ {
        fn succ_saturating(self) -> Self;
    }
    impl Succ for u32 {
        fn succ_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u16 {
        fn succ_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
}

/// A set of ports; `None` in a resolved rule means any port.
pub type PortSet = Vec<(u16, u16)>;

/// A rule reduced to what matching needs. `index` points back into `RuleSet::rules`.
#[derive(Debug, Clone)]
pub struct ResolvedRule {
    pub index: usize,
    pub interface: u16,
    pub direction: Direction,
    pub action: Action,
    pub ip_version: IpVersion,
    pub protocol: Protocol,
    /// Shared between rules that name the same alias or interface net.
    pub source: Arc<AddrSet>,
    pub source_negate: bool,
    pub destination: Arc<AddrSet>,
    pub destination_negate: bool,
    pub source_ports: Option<PortSet>,
    pub destination_ports: Option<PortSet>,
}

/// A packet with its interface already looked up, as both evaluators take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketKey {
    pub interface: u16,
    pub direction: Direction,
    pub protocol: u8,
    pub source: IpAddr,
    pub destination: IpAddr,
    pub source_port: Option<u16>,
    pub destination_port: Option<u16>,
}

impl ResolvedRule {
    /// An inbound rule on `interface` that matches every packet of `ip_version`, for rule sets built by hand
    /// (benchmarks and equivalence tests narrow its fields from here).
    pub fn matching_everything(index: usize, interface: u16, action: Action, ip_version: IpVersion) -> Self {
        Self {
            index,
            interface,
            direction: Direction::In,
            action,
            ip_version,
            protocol: Protocol::Any,
            source: Arc::new(AddrSet::any()),
            source_negate: false,
            destination: Arc::new(AddrSet::any()),
            destination_negate: false,
            source_ports: None,
            destination_ports: None,
        }
    }

    /// The reference meaning of a match, used by the linear evaluator and as the oracle in tests.
    pub fn matches(&self, p: &PacketKey) -> bool {
        self.interface == p.interface
            && self.direction.matches(p.direction)
            && self.ip_version.admits(&p.source)
            && p.source.is_ipv4() == p.destination.is_ipv4()
            && self.protocol.matches(p.protocol, p.source.is_ipv6())
            && (self.source.contains(&p.source) != self.source_negate)
            && (self.destination.contains(&p.destination) != self.destination_negate)
            && port_matches(&self.source_ports, p.source_port)
            && port_matches(&self.destination_ports, p.destination_port)
    }
}

fn port_matches(set: &Option<PortSet>, port: Option<u16>) -> bool {
    match (set, port) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(ranges), Some(p)) => range_contains(ranges, p),
    }
}

/// Turns a rule set into resolved rules for the moment `now`: inactive rules are left out, expired alias
/// entries are ignored, so an expiry takes effect at its time even before the store is swept.
pub struct Resolver<'a> {
    rules: &'a RuleSet,
    now: Timestamp,
    interface_ids: HashMap<&'a str, u16>,
    cache: HashMap<String, Arc<AddrSet>>,
}

const MAX_ALIAS_DEPTH: usize = 8;

impl<'a> Resolver<'a> {
    pub fn new(rules: &'a RuleSet, now: Timestamp) -> Self {
        let interface_ids =
            rules.interfaces.iter().enumerate().map(|(i, iface)| (iface.name.as_str(), i as u16)).collect();
        Self { rules, now, interface_ids, cache: HashMap::new() }
    }

    pub fn interface_id(&self, name: &str) -> Option<u16> {
        self.interface_ids.get(name).copied()
    }

    pub fn resolve_all(&mut self) -> Vec<ResolvedRule> {
        let rules = self.rules;
        let now = self.now;
        rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_active(now))
            .filter_map(|(index, rule)| {
                let interface = self.interface_id(&rule.interface)?;
                Some(ResolvedRule {
                    index,
                    interface,
                    direction: rule.direction,
                    action: rule.action,
                    ip_version: rule.ip_version,
                    protocol: rule.protocol,
                    source: self.address_set(&rule.source),
                    source_negate: rule.source.negate,
                    destination: self.address_set(&rule.destination),
                    destination_negate: rule.destination.negate,
                    source_ports: self.port_set(&rule.source_port),
                    destination_ports: self.port_set(&rule.destination_port),
                })
            })
            .collect()
    }

    pub fn address_set(&mut self, m: &AddressMatch) -> Arc<AddrSet> {
        let key = match &m.target {
            AddressTarget::Net(net) => return Arc::new(AddrSet::from_nets([net])),
            AddressTarget::Any => return Arc::new(AddrSet::any()),
            other => format!("{other:?}"),
        };
        if let Some(set) = self.cache.get(&key) {
            return set.clone();
        }
        let set = Arc::new(self.target_set(&m.target, 0));
        self.cache.insert(key, set.clone());
        set
    }

    fn target_set(&self, target: &AddressTarget, depth: usize) -> AddrSet {
        let ifaces = &self.rules.interfaces;
        match target {
            AddressTarget::Any => AddrSet::any(),
            AddressTarget::Net(net) => AddrSet::from_nets([net]),
            AddressTarget::InterfaceNet(name) => {
                let nets: Vec<IpNet> = ifaces
                    .iter()
                    .filter(|i| &i.name == name)
                    .flat_map(|i| [i.ipv4, i.ipv6])
                    .flatten()
                    .map(|n| n.trunc())
                    .collect();
                AddrSet::from_nets(&nets)
            }
            AddressTarget::InterfaceAddress(name) => {
                let nets: Vec<IpNet> = ifaces
                    .iter()
                    .filter(|i| &i.name == name)
                    .flat_map(|i| [i.ipv4, i.ipv6])
                    .flatten()
                    .map(|n| IpNet::from(n.addr()))
                    .collect();
                AddrSet::from_nets(&nets)
            }
            AddressTarget::ThisFirewall => {
                let nets: Vec<IpNet> =
                    ifaces.iter().flat_map(|i| [i.ipv4, i.ipv6]).flatten().map(|n| IpNet::from(n.addr())).collect();
                AddrSet::from_nets(&nets)
            }
            AddressTarget::Alias(name) => self.alias_set(name, depth),
        }
    }

    /// A name is an interface net when an interface has that name (as pfRest resolves it), else an alias.
    fn alias_set(&self, name: &str, depth: usize) -> AddrSet {
        if self.interface_ids.contains_key(name) {
            return self.target_set(&AddressTarget::InterfaceNet(name.to_string()), depth);
        }
        let Some(alias) = self.rules.alias(name) else {
            return AddrSet::default();
        };
        if depth >= MAX_ALIAS_DEPTH || alias.kind == AliasKind::Port {
            return AddrSet::default();
        }
        let mut set = AddrSet::default();
        for entry in alias.entries.iter().filter(|e| e.is_live(self.now)) {
            match crate::address::parse_held_net("alias", &entry.value) {
                Ok(net) => set.push(&net),
                Err(_) => set.extend(&self.alias_set(&entry.value, depth + 1)),
            }
        }
        set.normalize();
        set
    }

    pub fn port_set(&self, m: &PortMatch) -> Option<PortSet> {
        match m {
            PortMatch::Any => None,
            PortMatch::Range(r) => Some(vec![(r.first, r.last)]),
            PortMatch::Alias(name) => Some(self.port_alias(name, 0)),
        }
    }

    fn port_alias(&self, name: &str, depth: usize) -> PortSet {
        let Some(alias) = self.rules.alias(name) else {
            return Vec::new();
        };
        if depth >= MAX_ALIAS_DEPTH || alias.kind != AliasKind::Port {
            return Vec::new();
        }
        let mut ranges = Vec::new();
        for entry in alias.entries.iter().filter(|e| e.is_live(self.now)) {
            match PortRange::parse("alias", &entry.value) {
                Ok(r) => ranges.push((r.first, r.last)),
                Err(_) => ranges.extend(self.port_alias(&entry.value, depth + 1)),
            }
        }
        merge_ranges(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_answer_membership() {
        let nets: Vec<IpNet> = ["10.0.0.0/24", "10.0.1.0/24", "192.0.2.7/32", "2001:db8::/64"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let set = AddrSet::from_nets(&nets);
        assert_eq!(set.v4.len(), 2, "adjacent /24s merge");
        assert!(set.contains(&"10.0.1.255".parse().unwrap()));
        assert!(!set.contains(&"10.0.2.0".parse().unwrap()));
        assert!(set.contains(&"192.0.2.7".parse().unwrap()));
        assert!(set.contains(&"2001:db8::1".parse().unwrap()));
        let inner = AddrSet::from_nets(&["10.0.0.128/25".parse().unwrap()]);
        assert!(set.covers(&inner));
        assert!(!inner.covers(&set));
    }
}
