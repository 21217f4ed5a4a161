//! The firewall domain model, with pfSense/pfRest conventions for addresses, ports and protocols so that the
//! same values travel unchanged between a tool call, the lab firewall and a real pfSense.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FieldError, FieldResult};

pub type Timestamp = DateTime<Utc>;

/// What a matching rule does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pass,
    Block,
    Reject,
}

impl Action {
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "pass" | "allow" | "accept" => Ok(Self::Pass),
            "block" | "deny" | "drop" => Ok(Self::Block),
            "reject" => Ok(Self::Reject),
            other => Err(FieldError::new(field, format!("unknown action {other:?}; expected pass, block or reject"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Block => "block",
            Self::Reject => "reject",
        }
    }
}

/// Which way a packet crosses an interface. Interface rules match inbound packets, as on pfSense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
    Any,
}

impl Direction {
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "in" | "inbound" => Ok(Self::In),
            "out" | "outbound" => Ok(Self::Out),
            "any" | "both" => Ok(Self::Any),
            other => Err(FieldError::new(field, format!("unknown direction {other:?}; expected in, out or any"))),
        }
    }

    pub fn matches(self, packet: Direction) -> bool {
        self == Direction::Any || self == packet
    }
}

/// The IP versions a rule applies to (pfRest `ipprotocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpVersion {
    Inet,
    Inet6,
    #[default]
    Inet46,
}

impl IpVersion {
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "inet" | "ipv4" | "4" => Ok(Self::Inet),
            "inet6" | "ipv6" | "6" => Ok(Self::Inet6),
            "inet46" | "any" | "both" => Ok(Self::Inet46),
            other => {
                Err(FieldError::new(field, format!("unknown IP version {other:?}; expected inet, inet6 or inet46")))
            }
        }
    }

    pub fn admits(self, addr: &IpAddr) -> bool {
        match self {
            Self::Inet46 => true,
            Self::Inet => addr.is_ipv4(),
            Self::Inet6 => addr.is_ipv6(),
        }
    }
}

/// The protocol field of a rule. `Any` is pfRest's `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    #[default]
    Any,
    Tcp,
    Udp,
    TcpUdp,
    /// ICMP for IPv4 packets and ICMPv6 for IPv6 packets, as pfSense treats `icmp` under `inet6`.
    Icmp,
    Icmpv6,
    /// Any other IP protocol, by number (esp, ah, gre, carp, ...).
    Number(u8),
}

/// Named IP protocols pfSense offers, with their IANA numbers.
const NAMED_PROTOCOLS: &[(&str, u8)] = &[
    ("esp", 50),
    ("ah", 51),
    ("gre", 47),
    ("ipv6", 41),
    ("igmp", 2),
    ("pim", 103),
    ("ospf", 89),
    ("carp", 112),
    ("pfsync", 240),
    ("sctp", 132),
];

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

impl Protocol {
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        let lower = value.trim().to_ascii_lowercase();
        let proto = match lower.as_str() {
            "" | "any" | "all" | "null" => Self::Any,
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "tcp/udp" | "tcpudp" | "tcp_udp" => Self::TcpUdp,
            "icmp" => Self::Icmp,
            "icmpv6" | "icmp6" | "ipv6-icmp" => Self::Icmpv6,
            other => {
                if let Some((_, n)) = NAMED_PROTOCOLS.iter().find(|(name, _)| *name == other) {
                    Self::Number(*n)
                } else if let Ok(n) = other.parse::<u8>() {
                    Self::from_number(n)
                } else {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "unknown protocol {value:?}; expected any, tcp, udp, tcp/udp, icmp, icmpv6, \
                             esp, ah, gre, ipv6, igmp, pim, ospf, carp, pfsync or a protocol number"
                        ),
                    ));
                }
            }
        };
        Ok(proto)
    }

    fn from_number(n: u8) -> Self {
        match n {
            PROTO_TCP => Self::Tcp,
            PROTO_UDP => Self::Udp,
            PROTO_ICMP => Self::Icmp,
            PROTO_ICMPV6 => Self::Icmpv6,
            n => Self::Number(n),
        }
    }

    /// True when a rule with this protocol may carry port matches (pfRest: only tcp, udp, tcp/udp).
    pub fn has_ports(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp | Self::TcpUdp)
    }

    /// Does this rule protocol match a packet's IP protocol number?
    pub fn matches(self, packet_proto: u8, packet_is_v6: bool) -> bool {
        match self {
            Self::Any => true,
            Self::Tcp => packet_proto == PROTO_TCP,
            Self::Udp => packet_proto == PROTO_UDP,
            Self::TcpUdp => packet_proto == PROTO_TCP || packet_proto == PROTO_UDP,
            Self::Icmp => {
                if packet_is_v6 {
                    packet_proto == PROTO_ICMPV6
                } else {
                    packet_proto == PROTO_ICMP
                }
            }
            Self::Icmpv6 => packet_proto == PROTO_ICMPV6,
            Self::Number(n) => packet_proto == n,
        }
    }

    /// The packet protocol number a simulated packet of this protocol carries. `TcpUdp` and `Any` are not
    /// packet protocols.
    pub fn packet_number(self, is_v6: bool) -> Option<u8> {
        match self {
            Self::Tcp => Some(PROTO_TCP),
            Self::Udp => Some(PROTO_UDP),
            Self::Icmp if is_v6 => Some(PROTO_ICMPV6),
            Self::Icmp => Some(PROTO_ICMP),
            Self::Icmpv6 => Some(PROTO_ICMPV6),
            Self::Number(n) => Some(n),
            Self::Any | Self::TcpUdp => None,
        }
    }

    /// Whether every packet matched by `other` is matched by `self`.
    pub fn covers(self, other: Protocol) -> bool {
        self == Self::Any || self == other || (self == Self::TcpUdp && matches!(other, Self::Tcp | Self::Udp))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Tcp => f.write_str("tcp"),
            Self::Udp => f.write_str("udp"),
            Self::TcpUdp => f.write_str("tcp/udp"),
            Self::Icmp => f.write_str("icmp"),
            Self::Icmpv6 => f.write_str("icmpv6"),
            Self::Number(n) => match NAMED_PROTOCOLS.iter().find(|(_, num)| num == n) {
                Some((name, _)) => f.write_str(name),
                None => write!(f, "{n}"),
            },
        }
    }
}

/// A string-serialised domain value: rendered with Display, read back with a field-naming parser.
macro_rules! string_serde {
    ($ty:ty, $parse:expr, $schema_name:literal, $desc:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                let parse: fn(&str, &str) -> FieldResult<$ty> = $parse;
                parse($schema_name, &raw).map_err(serde::de::Error::custom)
            }
        }
        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $schema_name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "description": $desc})
            }
        }
    };
}

string_serde!(
    Protocol,
    Protocol::parse,
    "protocol",
    "any, tcp, udp, tcp/udp, icmp, icmpv6, esp, ah, gre, ipv6, igmp, pim, ospf, carp, pfsync or a number"
);

/// A port or port range (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        Self { first: port, last: port }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }

    pub fn covers(&self, other: &PortRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }

    /// Parses `22`, `1000:2000` (pfRest) or `1000-2000`.
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        let value = value.trim();
        let (a, b) = match value.split_once([':', '-']) {
            Some((a, b)) => (a, Some(b)),
            None => (value, None),
        };
        let first = parse_port(field, a)?;
        let last = match b {
            Some(b) => parse_port(field, b)?,
            None => first,
        };
        if first > last {
            return Err(FieldError::new(
                field,
                format!("port range {value:?} runs backwards; write the lower port first"),
            ));
        }
        Ok(Self { first, last })
    }
}

fn parse_port(field: &str, s: &str) -> FieldResult<u16> {
    let n: u64 = s.trim().parse().map_err(|_| {
        FieldError::new(field, format!("{s:?} is not a port number (1-65535), a range like 1000:2000, or a port alias"))
    })?;
    if n == 0 || n > 65535 {
        return Err(FieldError::new(field, format!("port {n} is out of range; ports are 1-65535")));
    }
    Ok(n as u16)
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last { write!(f, "{}", self.first) } else { write!(f, "{}:{}", self.first, self.last) }
    }
}

/// The port part of a rule: any port, a port or range, or a port alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum PortMatch {
    #[default]
    Any,
    Range(PortRange),
    Alias(String),
}

impl PortMatch {
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("any") || v.eq_ignore_ascii_case("null") {
            return Ok(Self::Any);
        }
        if v.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
            return PortRange::parse(field, v).map(Self::Range);
        }
        validate_alias_name(field, v)?;
        Ok(Self::Alias(v.to_string()))
    }

    pub fn is_any(&self) -> bool {
        matches!(self, Self::Any)
    }
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Range(r) => r.fmt(f),
            Self::Alias(a) => f.write_str(a),
        }
    }
}

string_serde!(PortMatch, PortMatch::parse, "port", "any, a port (22), a range (1000:2000) or a port alias name");

/// What an address field of a rule refers to (pfRest `filter-address`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddressTarget {
    Any,
    /// A host address or a CIDR network.
    Net(IpNet),
    /// An alias of hosts or networks, by name.
    Alias(String),
    /// The subnet of an interface (pfRest: the interface name, e.g. `lan`).
    InterfaceNet(String),
    /// The address of an interface (pfRest: `lan:ip`).
    InterfaceAddress(String),
    /// Every address of the firewall itself (pfRest: `(self)`).
    ThisFirewall,
}

/// An address field of a rule, possibly inverted (`!`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressMatch {
    pub target: AddressTarget,
    pub negate: bool,
}

impl AddressMatch {
    pub const ANY: AddressMatch = AddressMatch { target: AddressTarget::Any, negate: false };

    /// Parses a pfRest filter address given as an argument. Names that are neither keywords nor addresses are
    /// taken as aliases or interfaces; whether one exists is checked against the target's state by the planner.
    /// IPv6 spellings of IPv4 addresses are refused (`address::parse_net`).
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        Self::parse_with(field, value, crate::address::parse_net)
    }

    /// Parses a filter address a firewall or the store already holds, as it is (`address::parse_held_net`), so
    /// that reading state never fails on what an earlier version or another tool put there.
    pub fn parse_held(field: &str, value: &str) -> FieldResult<Self> {
        Self::parse_with(field, value, crate::address::parse_held_net)
    }

    fn parse_with(field: &str, value: &str, net: fn(&str, &str) -> FieldResult<IpNet>) -> FieldResult<Self> {
        let v = value.trim();
        if v.is_empty() {
            return Err(FieldError::new(
                field,
                "an address is required: any, an IP, a CIDR, an alias, an interface name, iface:ip or (self)",
            ));
        }
        let (negate, body) = match v.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, v),
        };
        let target = if body.eq_ignore_ascii_case("any") {
            AddressTarget::Any
        } else if body.eq_ignore_ascii_case("(self)") || body.eq_ignore_ascii_case("self") {
            AddressTarget::ThisFirewall
        } else if looks_like_address(body) {
            AddressTarget::Net(net(field, body)?)
        } else if let Some(iface) = body.strip_suffix(":ip") {
            validate_identifier(field, iface)?;
            AddressTarget::InterfaceAddress(iface.to_ascii_lowercase())
        } else {
            validate_identifier(field, body)?;
            // Resolved later to an interface net or an alias, like pfRest does.
            AddressTarget::Alias(body.to_string())
        };
        if negate && target == AddressTarget::Any {
            return Err(FieldError::new(field, "\"!any\" matches nothing; remove the rule instead"));
        }
        Ok(Self { target, negate })
    }

    pub fn is_any(&self) -> bool {
        self.target == AddressTarget::Any && !self.negate
    }
}

impl fmt::Display for AddressMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negate {
            f.write_str("!")?;
        }
        match &self.target {
            AddressTarget::Any => f.write_str("any"),
            AddressTarget::Net(net) => write_net(f, net),
            AddressTarget::Alias(a) => f.write_str(a),
            AddressTarget::InterfaceNet(i) => f.write_str(i),
            AddressTarget::InterfaceAddress(i) => write!(f, "{i}:ip"),
            AddressTarget::ThisFirewall => f.write_str("(self)"),
        }
    }
}

string_serde!(
    AddressMatch,
    AddressMatch::parse_held,
    "address",
    "any, an IP address, a CIDR, an alias name, an interface name (its subnet), iface:ip, or (self); prefix ! to invert"
);

/// Writes a host route as a bare address and anything wider in CIDR form.
fn write_net(f: &mut fmt::Formatter<'_>, net: &IpNet) -> fmt::Result {
    if net.prefix_len() == net.max_prefix_len() { write!(f, "{}", net.addr()) } else { write!(f, "{net}") }
}

/// Renders a network the way Portcullis reports addresses: a single host without its prefix.
pub fn net_to_string(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
}

pub use crate::address::parse_net;

fn looks_like_address(s: &str) -> bool {
    let head = s.split('/').next().unwrap_or(s);
    head.parse::<IpAddr>().is_ok()
        || head.contains(':') && !head.ends_with(":ip")
        || head.chars().all(|c| c.is_ascii_digit() || c == '.') && head.contains('.')
        || s.contains('/')
}

/// Interface and alias style identifiers: ASCII letters, digits and underscores, starting with a letter.
pub fn validate_identifier(field: &str, s: &str) -> FieldResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "{s:?} is not an address, CIDR or name; names use letters, digits and underscores and start with a letter"
            ),
        ))
    }
}

/// pfSense alias names: letters, digits and underscores, at most 31 characters.
pub fn validate_alias_name(field: &str, s: &str) -> FieldResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 31
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{s:?} is not a valid alias name (letters, digits and _; at most 31 characters)"),
        ))
    }
}

pub use crate::text::{FORBIDDEN_IN_TEXT, validate_text};

/// A stable rule identity (pfSense `tracker`). Never a list position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct RuleId(pub String);

/// The six lower-case hex digits of an id written `<prefix>3f9a1c` (or bare, in any case), as geo blocks and
/// mirrors are named; `None` for anything else.
pub fn short_hex_id(text: &str, prefix: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let hex = t.strip_prefix(prefix).unwrap_or(&t);
    (hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_string())
}

impl RuleId {
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        let v = value.trim();
        let ok = !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(v.to_string()))
        } else {
            Err(FieldError::new(field, format!("{value:?} is not a rule id (use the rule_id from get_firewall_rules)")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A firewall rule, as stored on the target. Position is its index within its interface's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rule {
    pub rule_id: RuleId,
    pub interface: String,
    #[serde(default = "default_direction")]
    pub direction: Direction,
    pub action: Action,
    #[serde(default)]
    pub ip_version: IpVersion,
    pub protocol: Protocol,
    pub source: AddressMatch,
    #[serde(default)]
    pub source_port: PortMatch,
    pub destination: AddressMatch,
    #[serde(default)]
    pub destination_port: PortMatch,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    #[serde(default)]
    pub log: bool,
    /// Set when Portcullis or the system owns the rule (e.g. `anti_lockout`, `block_list`): such rules are not
    /// edited by hand through the rule tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<String>,
    /// When a paused rule resumes by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

fn default_direction() -> Direction {
    Direction::In
}

impl Rule {
    /// Whether the rule's source or destination is the alias `name`.
    pub fn references_alias(&self, name: &str) -> bool {
        let is = |m: &AddressMatch| matches!(&m.target, AddressTarget::Alias(a) if a == name);
        is(&self.source) || is(&self.destination)
    }

    /// A rule on `interface` that matches every inbound packet: any protocol, address and port, both IP
    /// versions, enabled, not logged, not managed, with no id yet (a backend gives one on apply) and no
    /// bookkeeping times. Callers say what differs with struct update syntax:
    /// `Rule { protocol: Protocol::Tcp, ..Rule::new("lan", Action::Pass) }`.
    pub fn new(interface: impl Into<String>, action: Action) -> Self {
        Self {
            rule_id: RuleId(String::new()),
            interface: interface.into(),
            direction: Direction::In,
            action,
            ip_version: IpVersion::Inet46,
            protocol: Protocol::Any,
            source: AddressMatch::ANY,
            source_port: PortMatch::Any,
            destination: AddressMatch::ANY,
            destination_port: PortMatch::Any,
            description: String::new(),
            enabled: true,
            log: false,
            managed: None,
            paused_until: None,
            created_at: None,
            updated_at: None,
        }
    }

    /// The rule with this id.
    pub fn with_id(self, id: impl Into<String>) -> Self {
        Self { rule_id: RuleId(id.into()), ..self }
    }

    /// The rule as created and last updated at `now`.
    pub fn stamped(self, now: Timestamp) -> Self {
        Self { created_at: Some(now), updated_at: Some(now), ..self }
    }

    /// Whether the rule takes part in evaluation at `now`: enabled, or paused with its pause already over.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.enabled || self.paused_until.is_some_and(|t| t <= now)
    }
}

/// The kind of entries an alias holds (pfRest `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AliasKind {
    Host,
    Network,
    Port,
}

/// One entry of an alias. Entries of managed aliases (blocks, grants) carry their reason and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AliasEntry {
    /// An address, a CIDR, a port or a port range, depending on the alias kind.
    pub value: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

impl AliasEntry {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Alias {
    pub name: String,
    pub kind: AliasKind,
    #[serde(default)]
    pub description: String,
    pub entries: Vec<AliasEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<String>,
}

impl Alias {
    /// Adds entries, replacing those with the same value, in one pass (block lists hold 100,000+ entries).
    pub fn put_entries(&mut self, entries: &[AliasEntry]) {
        let incoming: std::collections::HashSet<&str> = entries.iter().map(|e| e.value.as_str()).collect();
        self.entries.retain(|e| !incoming.contains(e.value.as_str()));
        self.entries.extend(entries.iter().cloned());
    }

    /// Removes the entries with these values, in one pass.
    pub fn remove_entries(&mut self, entries: &[AliasEntry]) {
        let gone: std::collections::HashSet<&str> = entries.iter().map(|e| e.value.as_str()).collect();
        self.entries.retain(|e| !gone.contains(e.value.as_str()));
    }

    /// Copies of the entries whose values are among `values`, in list order.
    pub fn entries_among(&self, values: &[String]) -> Vec<AliasEntry> {
        let wanted: std::collections::HashSet<&str> = values.iter().map(String::as_str).collect();
        self.entries.iter().filter(|e| wanted.contains(e.value.as_str())).cloned().collect()
    }

    /// The entries by value, for lookups across large lists.
    pub fn entries_by_value(&self) -> std::collections::HashMap<&str, &AliasEntry> {
        self.entries.iter().map(|e| (e.value.as_str(), e)).collect()
    }
}

/// A firewall interface with its logical name (`lan`), device (`em1`) and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Interface {
    pub name: String,
    pub device: String,
    #[serde(default)]
    pub description: String,
    /// The interface address with its subnet prefix, e.g. 192.168.1.1/24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ipv4: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ipv6: Option<IpNet>,
    pub enabled: bool,
}

impl Interface {
    /// An interface that is up, with an IPv4 address and nothing else said about it.
    pub fn up(name: impl Into<String>, device: impl Into<String>, ipv4: Option<IpNet>) -> Self {
        Self { name: name.into(), device: device.into(), description: String::new(), ipv4, ipv6: None, enabled: true }
    }
}

/// Everything the evaluator needs: interfaces, ordered rules and aliases of one firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    pub interfaces: Vec<Interface>,
    /// Rules in evaluation order; a rule's position is its index among rules of the same interface.
    pub rules: Vec<Rule>,
    pub aliases: Vec<Alias>,
    /// DDoS protections in force (`crate::protection`), at most one per interface and selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protections: Vec<crate::protection::Protection>,
    /// Traffic mirrors to IDS sensors (`crate::mirror`), each with its expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<crate::mirror::Mirror>,
    /// VPN users of the firewall's VPN servers that Portcullis manages (`crate::vpn`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpn_accounts: Vec<crate::vpn::VpnAccount>,
}

impl RuleSet {
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// Finds an interface by logical name or device name, case-insensitively.
    pub fn resolve_interface(&self, field: &str, name: &str) -> FieldResult<&Interface> {
        let wanted = name.trim();
        self.interfaces
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(wanted) || i.device.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                let known: Vec<&str> = self.interfaces.iter().map(|i| i.name.as_str()).collect();
                FieldError::new(field, format!("unknown interface {wanted:?}; this firewall has {}", known.join(", ")))
            })
    }

    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.iter().find(|a| a.name == name)
    }

    pub fn rule(&self, id: &RuleId) -> Option<&Rule> {
        self.rules.iter().find(|r| &r.rule_id == id)
    }

    pub fn find_rule(&self, field: &str, id: &RuleId) -> FieldResult<&Rule> {
        self.rule(id).ok_or_else(|| {
            FieldError::new(field, format!("no rule with id {id} on this firewall (see get_firewall_rules)"))
        })
    }

    /// A rule's position among the rules of its interface.
    pub fn position_of(&self, id: &RuleId) -> Option<usize> {
        let rule = self.rule(id)?;
        self.rules.iter().filter(|r| r.interface == rule.interface).position(|r| &r.rule_id == id)
    }

    pub fn rules_on<'a>(&'a self, interface: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.interface == interface)
    }
}

/// A packet to evaluate: what arrived (or leaves) on which interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    pub interface: String,
    pub direction: Direction,
    /// IANA protocol number.
    pub protocol: u8,
    pub source: IpAddr,
    pub destination: IpAddr,
    pub source_port: Option<u16>,
    pub destination_port: Option<u16>,
}

impl FromStr for Action {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse("action", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_pfrest_conventions() {
        let cases = [
            ("any", "any"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("192.0.2.7", "192.0.2.7"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("!lan", "!lan"),
            ("lan:ip", "lan:ip"),
            ("(self)", "(self)"),
            ("BAD_GUYS", "BAD_GUYS"),
        ];
        for (input, shown) in cases {
            let parsed = AddressMatch::parse("source", input).unwrap();
            assert_eq!(parsed.to_string(), shown, "{input}");
        }
    }

    #[test]
    fn bad_addresses_name_the_field() {
        for bad in ["10.0.0.0/33", "999.1.1.1", "10.0.0.1/8", "2001:db8::/129", "a b", "1.2.3.4/x"] {
            let err = AddressMatch::parse("destination", bad).unwrap_err();
            assert_eq!(err.field, "destination", "{bad}");
        }
        assert!(parse_net("ip_address", "10.0.0.0/33").unwrap_err().message.contains("/33"));
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(PortMatch::parse("p", "22").unwrap(), PortMatch::Range(PortRange::single(22)));
        assert_eq!(
            PortMatch::parse("p", "1000:2000").unwrap(),
            PortMatch::Range(PortRange { first: 1000, last: 2000 })
        );
        assert_eq!(PortMatch::parse("p", "any").unwrap(), PortMatch::Any);
        for bad in ["70000", "0", "2000:1000", "-5", "22;rm"] {
            assert_eq!(PortMatch::parse("destination_port", bad).unwrap_err().field, "destination_port", "{bad}");
        }
    }

    #[test]
    fn protocol_icmp_follows_the_packet_family() {
        assert!(Protocol::Icmp.matches(PROTO_ICMP, false));
        assert!(Protocol::Icmp.matches(PROTO_ICMPV6, true));
        assert!(!Protocol::Icmp.matches(PROTO_ICMPV6, false));
        assert!(Protocol::TcpUdp.covers(Protocol::Udp));
        assert_eq!(Protocol::parse("protocol", "carp").unwrap().to_string(), "carp");
    }
}
