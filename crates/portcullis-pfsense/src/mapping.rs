//! Translation between pfRest objects and the Portcullis model.
//!
//! pfRest shows interfaces per its `represent_interfaces_as` setting (default the description: `WAN`, `LAN`), in
//! rule `interface` lists and in address fields (`LAN`, `LAN:ip`). Portcullis names interfaces by their pfSense id
//! (`wan`, `lan`, `opt1`), so every interface name read from a rule is mapped back through `/api/v2/interfaces`
//! (id, descr, NIC; case-insensitive). Writes send the id, which pfRest accepts whatever the setting.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use portcullis_core::firewall::{BackendError, ErrorCode, InterfaceCounters};
use portcullis_core::model::{
    Action, AddressMatch, AddressTarget, Alias, AliasEntry, AliasKind, Direction, Interface, IpVersion, PortMatch,
    Protocol, Rule, RuleId, Timestamp, net_to_string,
};
use portcullis_core::plan::{
    BLOCK_ALIAS, BLOCK_ALIAS_DESCR, GRANT_ALIAS_DESCR, GRANT_RULE_DESCR, MANAGED_BLOCK, MANAGED_GRANT,
};
use portcullis_core::text::show_invisible;
use portcullis_pfrest::types::{
    FirewallAlias, FirewallAliasRequest, FirewallRule, FirewallRuleRequest, InterfaceStats, NetworkInterface,
};

use crate::detail;

/// Description prefix of the rules that enforce Portcullis block lists (see `plan::block_rule`).
pub const MANAGED_BLOCK_DESCR: &str = portcullis_core::plan::BLOCK_RULE_DESCR;
/// `managed` tag of floating rules: the model has no floating rules, so they are shown but not edited.
pub const MANAGED_FLOATING: &str = "floating";
/// `managed` tag of rules without a tracker (no stable identity to address them by).
pub const MANAGED_UNTRACKED: &str = "untracked";

/// Protocols pfRest accepts in a rule (`FirewallRule.protocol` choices).
const RULE_PROTOCOLS: &[&str] =
    &["tcp", "udp", "tcp/udp", "icmp", "esp", "ah", "gre", "ipv6", "igmp", "pim", "ospf", "carp", "pfsync"];

pub(crate) fn validation(message: impl Into<String>) -> BackendError {
    BackendError::new(ErrorCode::ValidationError, message)
}

pub(crate) fn unexpected(message: impl Into<String>) -> BackendError {
    BackendError::new(ErrorCode::UnexpectedResponse, message)
}

/// The firewall's interfaces, for mapping any representation to the pfSense id.
#[derive(Debug, Clone, Default)]
pub struct InterfaceMap {
    /// (id, descr, NIC)
    entries: Vec<(String, String, String)>,
    lookup: HashMap<String, String>,
}

impl InterfaceMap {
    pub fn new(interfaces: &[NetworkInterface]) -> Self {
        let mut map = InterfaceMap::default();
        for i in interfaces {
            let id = i.id.to_ascii_lowercase();
            map.entries.push((id.clone(), i.descr.clone(), i.if_.clone()));
        }
        // Ids first, then descriptions, then NICs: an earlier kind of name wins a clash.
        for pass in 0..3 {
            for (id, descr, nic) in &map.entries {
                let name = match pass {
                    0 => id,
                    1 => descr,
                    _ => nic,
                };
                if !name.is_empty() {
                    map.lookup.entry(name.to_ascii_lowercase()).or_insert_with(|| id.clone());
                }
            }
        }
        map
    }

    /// The pfSense id (`lan`) of an interface named in any representation (`LAN`, `lan`, `em1`).
    pub fn id_of(&self, name: &str) -> Option<&str> {
        self.lookup.get(&name.trim().to_ascii_lowercase()).map(String::as_str)
    }

    /// The id, or the name lower-cased when the firewall does not list it (interface groups, `openvpn`, ...).
    pub fn normalize(&self, name: &str) -> String {
        self.id_of(name).map_or_else(|| name.trim().to_ascii_lowercase(), str::to_string)
    }
}

/// Parses an address of `ip` + prefix length (either may be absent or not an address, e.g. `dhcp`).
fn net(ip: Option<&str>, prefix: Option<u64>) -> Option<IpNet> {
    let ip: IpAddr = ip?.trim().split('%').next()?.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = prefix.filter(|p| *p <= max).unwrap_or(max) as u8;
    IpNet::new(ip, len).ok()
}

/// The model's interfaces: config from `/api/v2/interfaces`, live addresses from `/api/v2/status/interfaces`
/// (a DHCP interface has its address only there).
pub fn interfaces(config: &[NetworkInterface], stats: &[InterfaceStats]) -> Vec<Interface> {
    config
        .iter()
        .map(|c| {
            let id = c.id.to_ascii_lowercase();
            let live = stats.iter().find(|s| s.name.eq_ignore_ascii_case(&id));
            let live_v4 = live.and_then(|s| net(s.ipaddr.as_deref(), s.subnet.as_deref().and_then(|p| p.parse().ok())));
            let live_v6 =
                live.and_then(|s| net(s.ipaddrv6.as_deref(), s.subnetv6.as_deref().and_then(|p| p.parse().ok())));
            Interface {
                name: id,
                device: c.if_.clone(),
                description: show_invisible(&c.descr).into_owned(),
                ipv4: live_v4.or_else(|| net(c.ipaddr.as_deref(), c.subnet)),
                ipv6: live_v6.or_else(|| net(c.ipaddrv6.as_deref(), c.subnetv6)),
                enabled: c.enable,
            }
        })
        .collect()
}

/// The interfaces' cumulative counters, by interface id (`wan`) and NIC (`igb0`).
pub fn interface_counters(stats: &[InterfaceStats]) -> Vec<InterfaceCounters> {
    stats
        .iter()
        .map(|s| InterfaceCounters {
            interface: s.name.to_ascii_lowercase(),
            device: s.hwif.clone(),
            bytes_in: s.inbytes,
            bytes_out: s.outbytes,
            packets_in: s.inpkts,
            packets_out: s.outpkts,
        })
        .collect()
}

/// Reads a pfRest filter address, naming interfaces by id (`LAN` → `lan`, `LAN:ip` → `lan:ip`).
pub fn address_from_device(field: &str, raw: &str, ifaces: &InterfaceMap) -> Result<AddressMatch, String> {
    let m = AddressMatch::parse_held(field, raw).map_err(|e| e.to_string())?;
    let target = match m.target {
        AddressTarget::Alias(name) => match ifaces.id_of(&name) {
            Some(id) => AddressTarget::Alias(id.to_string()),
            None => AddressTarget::Alias(name),
        },
        AddressTarget::InterfaceNet(name) => AddressTarget::Alias(ifaces.normalize(&name)),
        AddressTarget::InterfaceAddress(name) => AddressTarget::InterfaceAddress(ifaces.normalize(&name)),
        other => other,
    };
    Ok(AddressMatch { target, negate: m.negate })
}

fn port_from_device(field: &str, raw: Option<&str>) -> Result<PortMatch, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(PortMatch::Any),
        Some(s) => PortMatch::parse(field, s).map_err(|e| e.to_string()),
    }
}

fn timestamp(unix: Option<i64>) -> Option<Timestamp> {
    unix.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
}

/// The model's id of a device rule: its tracker.
pub fn rule_id(rule: &FirewallRule) -> RuleId {
    match rule.tracker {
        Some(t) => RuleId(t.to_string()),
        None => RuleId(format!("untracked-{}", rule.id.unwrap_or_default())),
    }
}

/// A device rule in the model. `paused_until` is Portcullis' own record (the device only knows "disabled"); it is
/// shown only while the rule is disabled.
pub fn rule_from_device(
    r: &FirewallRule,
    ifaces: &InterfaceMap,
    paused_until: Option<Timestamp>,
) -> Result<Rule, String> {
    let interface = r.interface.first().map(|i| ifaces.normalize(i)).unwrap_or_default();
    let direction = if r.floating {
        Direction::parse("direction", r.direction.as_deref().unwrap_or("any")).map_err(|e| e.to_string())?
    } else {
        Direction::In
    };
    let ipprotocol = if r.ipprotocol.is_empty() { "inet" } else { r.ipprotocol.as_str() };
    let protocol = match r.protocol.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => Protocol::Any,
        Some(p) => Protocol::parse("protocol", p).map_err(|e| e.to_string())?,
    };
    let managed = if r.tracker.is_none() {
        Some(MANAGED_UNTRACKED.to_string())
    } else if r.floating {
        Some(MANAGED_FLOATING.to_string())
    } else if r.descr.starts_with(MANAGED_BLOCK_DESCR) {
        Some(MANAGED_BLOCK.to_string())
    } else if r.descr.starts_with(GRANT_RULE_DESCR) {
        Some(MANAGED_GRANT.to_string())
    } else if r.descr.starts_with(portcullis_core::domain::DOMAIN_RULE_DESCR) {
        Some(portcullis_core::domain::MANAGED_DOMAIN_BLOCK.to_string())
    } else if r.descr.starts_with(portcullis_core::geo::GEO_RULE_DESCR) {
        Some(portcullis_core::geo::MANAGED_GEO.to_string())
    } else {
        None
    };
    let enabled = !r.disabled;
    Ok(Rule {
        rule_id: rule_id(r),
        interface,
        direction,
        action: Action::parse("type", &r.type_).map_err(|e| e.to_string())?,
        ip_version: IpVersion::parse("ipprotocol", ipprotocol).map_err(|e| e.to_string())?,
        protocol,
        source: address_from_device("source", &r.source, ifaces)?,
        source_port: port_from_device("source_port", r.source_port.as_deref())?,
        destination: address_from_device("destination", &r.destination, ifaces)?,
        destination_port: port_from_device("destination_port", r.destination_port.as_deref())?,
        description: show_invisible(&r.descr).into_owned(),
        enabled,
        log: r.log,
        managed,
        paused_until: if enabled { None } else { paused_until },
        created_at: timestamp(r.created_time),
        updated_at: timestamp(r.updated_time),
    })
}

/// The fields of a rule as pfRest writes them, for creating and for patching only what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFields {
    pub type_: String,
    pub interface: String,
    pub ipprotocol: String,
    pub protocol: Option<String>,
    pub source: String,
    pub source_port: Option<String>,
    pub destination: String,
    pub destination_port: Option<String>,
    pub descr: String,
    pub disabled: bool,
    pub log: bool,
}

fn protocol_field(rule: &Rule) -> Result<Option<String>, BackendError> {
    match rule.protocol {
        Protocol::Any => Ok(None),
        Protocol::Icmpv6 => Err(validation(
            "pfSense has no icmpv6 rule protocol: use protocol icmp with ip_version inet6 (it matches ICMPv6)",
        )),
        p => {
            let name = p.to_string();
            if RULE_PROTOCOLS.contains(&name.as_str()) {
                Ok(Some(name))
            } else {
                Err(validation(format!(
                    "pfSense rules cannot match protocol {name}; use one of any, {}",
                    RULE_PROTOCOLS.join(", ")
                )))
            }
        }
    }
}

fn port_field(rule: &Rule, port: &PortMatch) -> Option<String> {
    (rule.protocol.has_ports() && !port.is_any()).then(|| port.to_string())
}

impl RuleFields {
    /// What pfRest should store for `rule`; refuses what pfSense cannot express.
    pub fn from_rule(rule: &Rule) -> Result<Self, BackendError> {
        if rule.direction != Direction::In {
            return Err(validation(format!(
                "pfSense interface rules match inbound packets only; direction {:?} is not possible on {}",
                rule.direction, rule.interface
            )));
        }
        if rule.interface.is_empty() {
            return Err(validation("a rule needs an interface"));
        }
        Ok(RuleFields {
            type_: rule.action.as_str().to_string(),
            interface: rule.interface.clone(),
            ipprotocol: match rule.ip_version {
                IpVersion::Inet => "inet",
                IpVersion::Inet6 => "inet6",
                IpVersion::Inet46 => "inet46",
            }
            .to_string(),
            protocol: protocol_field(rule)?,
            source: rule.source.to_string(),
            source_port: port_field(rule, &rule.source_port),
            destination: rule.destination.to_string(),
            destination_port: port_field(rule, &rule.destination_port),
            descr: rule.description.clone(),
            disabled: !rule.enabled,
            log: rule.log,
        })
    }

    /// The body of `POST /api/v2/firewall/rule` (any protocol = field omitted, pfRest's default null).
    pub fn create_request(&self) -> FirewallRuleRequest {
        FirewallRuleRequest {
            type_: Some(self.type_.clone()),
            interface: Some(vec![self.interface.clone()]),
            ipprotocol: Some(self.ipprotocol.clone()),
            protocol: self.protocol.clone().map(Some),
            source: Some(self.source.clone()),
            source_port: self.source_port.clone().map(Some),
            destination: Some(self.destination.clone()),
            destination_port: self.destination_port.clone().map(Some),
            descr: Some(self.descr.clone()),
            disabled: Some(self.disabled),
            log: Some(self.log),
            ..Default::default()
        }
    }

    /// The body of a PATCH that turns `self` into `after`: only the changed fields (a field that becomes "any" is
    /// sent as an explicit null).
    pub fn patch_to(&self, after: &RuleFields) -> FirewallRuleRequest {
        fn changed<T: Clone + PartialEq>(a: &T, b: &T) -> Option<T> {
            (a != b).then(|| b.clone())
        }
        FirewallRuleRequest {
            type_: changed(&self.type_, &after.type_),
            interface: changed(&self.interface, &after.interface).map(|i| vec![i]),
            ipprotocol: changed(&self.ipprotocol, &after.ipprotocol),
            protocol: changed(&self.protocol, &after.protocol),
            source: changed(&self.source, &after.source),
            source_port: changed(&self.source_port, &after.source_port),
            destination: changed(&self.destination, &after.destination),
            destination_port: changed(&self.destination_port, &after.destination_port),
            descr: changed(&self.descr, &after.descr),
            disabled: changed(&self.disabled, &after.disabled),
            log: changed(&self.log, &after.log),
            ..Default::default()
        }
    }
}

/// Entry values compared the way Portcullis writes them: a host route as a bare address.
pub fn canonical_value(value: &str) -> String {
    let v = value.trim();
    if let Ok(net) = v.parse::<IpNet>() {
        return net_to_string(&net);
    }
    v.to_string()
}

/// An entry value as stored in an alias of `kind`: network aliases hold CIDRs (pfSense refuses a bare IPv6 address
/// there), so a host gets its /32 or /128.
pub fn device_value(value: &str, kind: &str) -> String {
    let v = value.trim();
    if kind == "network"
        && let Ok(ip) = v.parse::<IpAddr>()
    {
        return format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 });
    }
    v.to_string()
}

pub fn is_managed_alias(name: &str) -> bool {
    name.starts_with(BLOCK_ALIAS)
}

/// The `managed` tag of a device alias: Portcullis' block, grant and geo lists, by name or by the description
/// Portcullis gives them.
pub fn managed_alias_kind(name: &str, descr: &str) -> Option<&'static str> {
    if descr == GRANT_ALIAS_DESCR {
        Some(MANAGED_GRANT)
    } else if portcullis_core::geo::is_geo_list(name) {
        Some(portcullis_core::geo::MANAGED_GEO)
    } else if name.starts_with(portcullis_core::domain::DOMAIN_ALIAS)
        || descr == portcullis_core::domain::DOMAIN_ALIAS_DESCR
    {
        Some(portcullis_core::domain::MANAGED_DOMAIN_BLOCK)
    } else if is_managed_alias(name) || descr == BLOCK_ALIAS_DESCR {
        Some(MANAGED_BLOCK)
    } else {
        None
    }
}

pub fn alias_kind(type_: &str) -> Option<AliasKind> {
    match type_ {
        "host" => Some(AliasKind::Host),
        "network" => Some(AliasKind::Network),
        "port" => Some(AliasKind::Port),
        _ => None,
    }
}

pub fn alias_type(kind: AliasKind) -> &'static str {
    match kind {
        AliasKind::Host => "host",
        AliasKind::Network => "network",
        AliasKind::Port => "port",
    }
}

/// A device alias in the model (`None` for alias types the model has no kind for). Entry metadata comes from the
/// `detail` texts ([`detail::decode`]); values of Portcullis' block lists are shown in canonical form.
pub fn alias_from_device(a: &FirewallAlias) -> Option<Alias> {
    let kind = alias_kind(&a.type_)?;
    let tag = managed_alias_kind(&a.name, &a.descr);
    let managed = tag.is_some();
    let entries = a
        .address
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let (reason, expires_at, created_at) = detail::decode(a.detail.get(i).map_or("", String::as_str));
            AliasEntry {
                value: if managed { canonical_value(value) } else { value.clone() },
                detail: show_invisible(&reason).into_owned(),
                expires_at,
                created_at,
            }
        })
        .collect();
    let description = show_invisible(&a.descr).into_owned();
    Some(Alias { name: a.name.clone(), kind, description, entries, managed: tag.map(str::to_string) })
}

/// The `detail` text of an entry, checked against pfRest's limits.
pub fn entry_detail(alias: &str, entry: &AliasEntry) -> Result<String, BackendError> {
    let text = if portcullis_core::geo::is_geo_list(alias) {
        // Thousands of entries, each repeated in every config revision: the country and data date, and the
        // expiry only where there is one (WAVE2-FACTS §1a).
        let short = AliasEntry { created_at: None, ..entry.clone() };
        if short.expires_at.is_none() { detail::escape(&short.detail) } else { detail::encode(&short) }
    } else {
        detail::encode(entry)
    };
    if text.chars().count() > detail::MAX_DETAIL_LEN {
        return Err(validation(format!(
            "the reason of {} in alias {alias} is too long for pfSense (at most {} characters with the expiry)",
            entry.value,
            detail::MAX_DETAIL_LEN
        )));
    }
    Ok(text)
}

/// The body of `POST /api/v2/firewall/alias` for a new alias.
pub fn alias_create_request(alias: &Alias) -> Result<FirewallAliasRequest, BackendError> {
    let type_ = alias_type(alias.kind);
    let mut address = Vec::with_capacity(alias.entries.len());
    let mut detail = Vec::with_capacity(alias.entries.len());
    for e in &alias.entries {
        address.push(device_value(&e.value, type_));
        detail.push(entry_detail(&alias.name, e)?);
    }
    Ok(FirewallAliasRequest {
        name: Some(alias.name.clone()),
        type_: Some(type_.to_string()),
        descr: Some(alias.description.clone()),
        address: Some(address),
        detail: Some(detail),
        ..Default::default()
    })
}

/// Pause deadlines are kept in the store under this key (the device has no field for them).
pub fn pause_key(target: &str, tracker: &str) -> String {
    format!("pfsense:{target}:pause:{tracker}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ifaces() -> InterfaceMap {
        let list: Vec<NetworkInterface> = serde_json::from_value(json!([
            {"id": "wan", "if": "em0", "descr": "WAN"},
            {"id": "lan", "if": "em1", "descr": "LAN"},
            {"id": "opt1", "if": "em2", "descr": "DMZ"}
        ]))
        .unwrap();
        InterfaceMap::new(&list)
    }

    #[test]
    fn interface_names_map_to_ids() {
        let m = ifaces();
        assert_eq!(m.id_of("LAN"), Some("lan"));
        assert_eq!(m.id_of("dmz"), Some("opt1"));
        assert_eq!(m.id_of("em2"), Some("opt1"));
        assert_eq!(m.normalize("OpenVPN"), "openvpn");
        let a = address_from_device("source", "!DMZ", &m).unwrap();
        assert_eq!(a.to_string(), "!opt1");
        assert_eq!(address_from_device("source", "DMZ:ip", &m).unwrap().to_string(), "opt1:ip");
        assert_eq!(address_from_device("source", "BAD_GUYS", &m).unwrap().to_string(), "BAD_GUYS");
        assert_eq!(address_from_device("source", "10.0.0.0/8", &m).unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn entry_values_round_trip_through_network_aliases() {
        assert_eq!(device_value("203.0.113.9", "network"), "203.0.113.9/32");
        assert_eq!(device_value("2001:db8::1", "network"), "2001:db8::1/128");
        assert_eq!(device_value("10.0.0.0/8", "network"), "10.0.0.0/8");
        assert_eq!(device_value("203.0.113.9", "host"), "203.0.113.9");
        assert_eq!(canonical_value("203.0.113.9/32"), "203.0.113.9");
        assert_eq!(canonical_value("2001:db8::1/128"), "2001:db8::1");
        assert_eq!(canonical_value("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(canonical_value("example.com"), "example.com");
    }

    #[test]
    fn device_rules_map_to_the_model() {
        let raw: FirewallRule = serde_json::from_value(json!({
            "id": 0, "tracker": 100000101, "type": "pass", "interface": ["LAN"], "ipprotocol": "inet",
            "protocol": null, "source": "LAN", "destination": "any", "descr": "Default allow LAN to any rule",
            "disabled": false, "log": false, "floating": false, "created_time": 1700000000
        }))
        .unwrap();
        let rule = rule_from_device(&raw, &ifaces(), None).unwrap();
        assert_eq!(rule.rule_id.as_str(), "100000101");
        assert_eq!(rule.interface, "lan");
        assert_eq!(rule.source.to_string(), "lan");
        assert_eq!(rule.protocol, Protocol::Any);
        assert!(rule.managed.is_none());
        let fields = RuleFields::from_rule(&rule).unwrap();
        assert_eq!(fields.source, "lan");
        let body = serde_json::to_value(fields.create_request()).unwrap();
        assert!(body.get("protocol").is_none(), "{body}");
        let mut after = rule.clone();
        after.protocol = Protocol::Tcp;
        after.destination_port = PortMatch::parse("p", "443").unwrap();
        let patch = fields.patch_to(&RuleFields::from_rule(&after).unwrap());
        assert_eq!(serde_json::to_value(&patch).unwrap(), json!({"protocol": "tcp", "destination_port": "443"}));
        let back = RuleFields::from_rule(&after).unwrap().patch_to(&fields);
        assert_eq!(serde_json::to_value(&back).unwrap(), json!({"protocol": null, "destination_port": null}));
    }

    #[test]
    fn invisible_characters_set_on_the_device_are_shown_escaped() {
        let raw: FirewallRule = serde_json::from_value(json!({
            "id": 0, "tracker": 100000102, "type": "pass", "interface": ["LAN"], "ipprotocol": "inet",
            "source": "any", "destination": "any", "descr": "Allow \u{202E}kcolb\u{200B}",
            "disabled": false, "log": false, "floating": false
        }))
        .unwrap();
        let rule = rule_from_device(&raw, &ifaces(), None).unwrap();
        assert_eq!(rule.description, "Allow \\u{202E}kcolb\\u{200B}");
        let alias: FirewallAlias = serde_json::from_value(json!({
            "id": 0, "name": "OFFICE", "type": "network", "descr": "office\u{2067}x",
            "address": ["10.0.0.0/8"], "detail": ["HQ\u{202E}"]
        }))
        .unwrap();
        let alias = alias_from_device(&alias).unwrap();
        assert_eq!((alias.description.as_str(), alias.entries[0].detail.as_str()), ("office\\u{2067}x", "HQ\\u{202E}"));
    }
}
