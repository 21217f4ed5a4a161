//! Traffic mirroring: copies of chosen traffic on one interface sent to an IDS sensor for a limited time.
//!
//! A mirror is an object of the model of its own (`RuleSet::mirrors`): it decides no packet's verdict, it only
//! copies. Sensors are named in configuration ([`Sensor`]), never given as free addresses by a call: a local
//! interface the copies leave on (L2), an address behind an interface (L3: the sensor is the copies' next hop),
//! or a VXLAN tunnel to a remote sensor (UDP 4789, like cloud VPC mirroring).
//!
//! What a mirror copies is its interface, direction and [`Selector`]; the selector describes the traffic as it
//! arrives on the interface (`direction: in`), and with `direction: both` the replies leaving it are copied too
//! (the selector with its two ends swapped), so `both` copies the two halves of each conversation. `port`
//! matches either end, like tcpdump's `port 80`. Every mirror has a packets-per-second cap and an expiry.
//!
//! [`Mirror::clauses`] spells a mirror as the matches a backend writes, one per hook direction, address family
//! and port end, so every backend (nft, a pf anchor, the lab's simulation) copies exactly the same packets.
//! Loops are prevented in the plan: a mirror never copies traffic of its sensor's own interface, and the
//! sensor's address (and a VXLAN sensor's tunnel end) are excluded from every clause.

mod plan;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use plan::{MirrorAsk, expired_mirrors, mirrors_after, next_mirror_end, plan_start, plan_stop};

use crate::error::{FieldError, FieldResult};
use crate::model::{Direction, Packet, PortRange, Protocol, Timestamp};

/// The UDP port VXLAN uses (IANA), and that of cloud traffic mirroring.
pub const VXLAN_PORT: u16 = 4789;
/// The largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// A mirror's id: `mir-` and six hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct MirrorId(String);

impl MirrorId {
    /// The id made of the low six hex digits of `seed` (a random value the caller supplies: the core has none).
    pub fn from_seed(seed: u32) -> Self {
        Self(format!("{:06x}", seed & 0xff_ffff))
    }

    /// Parses `mir-3f9a1c` (or the bare `3f9a1c`), naming `field` otherwise.
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        crate::model::short_hex_id(text, "mir-").map(Self).ok_or_else(|| {
            FieldError::new(field, format!("{text:?} is not a mirror id (like mir-3f9a1c; see list_mirrors)"))
        })
    }

    /// The six hex digits, for names a backend derives from the id (nft chains, pf labels).
    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MirrorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mir-{}", self.0)
    }
}

impl TryFrom<String> for MirrorId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse("mirror_id", &s).map_err(|e| e.message)
    }
}

impl From<MirrorId> for String {
    fn from(id: MirrorId) -> String {
        id.to_string()
    }
}

/// An address family a clause matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

/// The longest sensor or interface name.
const MAX_NAME: usize = 32;

/// A name that reaches a firewall's configuration or a shell command line (a sensor, an interface): letters,
/// digits, `_`, `-` and `.`, at most 32, so nothing in it can be read as syntax.
pub fn check_name(field: &str, name: &str) -> FieldResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "{:?} is not a name: use 1 to {MAX_NAME} letters, digits, '_', '-' or '.', not starting with '-' or '.'",
                crate::text::show_invisible(name)
            ),
        ))
    }
}

/// Where a sensor receives its copies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SensorKind {
    /// Copies leave unchanged (L2) on this interface of the target (its logical name or kernel device), where
    /// the sensor listens.
    Interface { interface: String },
    /// Copies are routed to the sensor's address through this interface: the sensor is their next hop (L3).
    Address {
        #[schemars(with = "String")]
        address: IpAddr,
        interface: String,
    },
    /// Copies are wrapped in VXLAN (UDP `port`, 4789 by default) to a remote sensor, like cloud VPC mirroring.
    Vxlan {
        #[schemars(with = "String")]
        remote: IpAddr,
        vni: u32,
        /// The tunnel's local address; unset: the one the route to `remote` picks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        local: Option<IpAddr>,
        #[serde(default = "default_vxlan_port")]
        port: u16,
    },
}

fn default_vxlan_port() -> u16 {
    VXLAN_PORT
}

/// A sensor as configuration names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Sensor {
    pub name: String,
    #[serde(flatten)]
    pub kind: SensorKind,
}

impl Sensor {
    /// The interface the copies leave on, when the sensor names one (VXLAN copies leave through the tunnel).
    pub fn interface(&self) -> Option<&str> {
        match &self.kind {
            SensorKind::Interface { interface } | SensorKind::Address { interface, .. } => Some(interface),
            SensorKind::Vxlan { .. } => None,
        }
    }

    /// The addresses whose traffic is never copied to this sensor: its own, and a tunnel's far end (the copies'
    /// own packets would otherwise be copied again).
    pub fn excluded(&self) -> Vec<IpAddr> {
        match &self.kind {
            SensorKind::Interface { .. } => Vec::new(),
            SensorKind::Address { address, .. } => vec![*address],
            SensorKind::Vxlan { remote, local, .. } => std::iter::once(*remote).chain(*local).collect(),
        }
    }

    /// The families whose packets can reach the sensor: an L3 copy is routed to an address of one family.
    pub fn families(&self) -> &'static [Family] {
        match &self.kind {
            SensorKind::Address { address: IpAddr::V4(_), .. } => &[Family::V4],
            SensorKind::Address { address: IpAddr::V6(_), .. } => &[Family::V6],
            _ => &[Family::V4, Family::V6],
        }
    }

    /// The device name a backend gives a VXLAN sensor's tunnel (at most 15 bytes, a Linux interface name).
    pub fn tunnel_device(&self) -> Option<String> {
        match &self.kind {
            SensorKind::Vxlan { vni, .. } => Some(format!("pcvx{vni}")),
            _ => None,
        }
    }

    /// Checks a sensor as configuration gives it, naming `field` (e.g. `mirroring.sensors.zeek`).
    pub fn validate(&self, field: &str) -> FieldResult<()> {
        check_name(&format!("{field}.name"), &self.name)?;
        match &self.kind {
            SensorKind::Interface { interface } | SensorKind::Address { interface, .. } => {
                check_name(&format!("{field}.interface"), interface)?;
            }
            SensorKind::Vxlan { vni, port, remote, .. } => {
                if *vni > MAX_VNI {
                    return Err(FieldError::new(
                        format!("{field}.vni"),
                        format!("{vni} is above the 24-bit {MAX_VNI}"),
                    ));
                }
                if *port == 0 {
                    return Err(FieldError::new(format!("{field}.port"), "0 is not a UDP port"));
                }
                crate::address::check_host(&format!("{field}.remote"), remote)?;
            }
        }
        if let SensorKind::Address { address, .. } = &self.kind {
            crate::address::check_host(&format!("{field}.address"), address)?;
        }
        Ok(())
    }

    /// Where the copies go, in a few words.
    pub fn describe(&self) -> String {
        match &self.kind {
            SensorKind::Interface { interface } => format!("sensor {} (copies leave on {interface})", self.name),
            SensorKind::Address { address, interface } => {
                format!("sensor {} ({address} through {interface})", self.name)
            }
            SensorKind::Vxlan { remote, vni, port, .. } => {
                format!("sensor {} (VXLAN {vni} to {remote}:{port})", self.name)
            }
        }
    }
}

/// Which of an interface's traffic a mirror copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum MirrorDirection {
    /// What arrives on the interface.
    In,
    /// What leaves it.
    Out,
    /// Both, the replies matched with the selector's ends swapped.
    #[default]
    Both,
}

impl MirrorDirection {
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "in" | "ingress" | "inbound" => Ok(Self::In),
            "out" | "egress" | "outbound" => Ok(Self::Out),
            "both" | "any" => Ok(Self::Both),
            other => Err(FieldError::new(field, format!("{other:?} is not a direction; use in, out or both"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
            Self::Both => "both",
        }
    }

    /// The packet directions it copies.
    pub fn hooks(self) -> &'static [Direction] {
        match self {
            Self::In => &[Direction::In],
            Self::Out => &[Direction::Out],
            Self::Both => &[Direction::In, Direction::Out],
        }
    }
}

/// What a mirror copies of its interface's traffic. An empty selector is refused unless `all` says so.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
pub struct Selector {
    /// Everything on the interface (every IPv4 and IPv6 packet): admin only, and approved by a person.
    #[serde(default)]
    pub all: bool,
    #[serde(default, with = "protocol_text")]
    #[schemars(with = "String")]
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub source: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub destination: Option<IpNet>,
    /// Either end's port (tcpdump's `port`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "port_text")]
    #[schemars(with = "Option<String>")]
    pub port: Option<PortRange>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "port_text")]
    #[schemars(with = "Option<String>")]
    pub source_port: Option<PortRange>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "port_text")]
    #[schemars(with = "Option<String>")]
    pub destination_port: Option<PortRange>,
}

impl Selector {
    /// Whether it narrows anything: a protocol, an address or a port.
    pub fn narrows(&self) -> bool {
        self.protocol != Protocol::Any
            || self.source.is_some()
            || self.destination.is_some()
            || self.port.is_some()
            || self.source_port.is_some()
            || self.destination_port.is_some()
    }

    /// The address families it can match.
    pub fn families(&self) -> Vec<Family> {
        let family = |n: &IpNet| if n.addr().is_ipv4() { Family::V4 } else { Family::V6 };
        let fixed = self.source.as_ref().map(family).or(self.destination.as_ref().map(family));
        let by_protocol: &[Family] = match self.protocol {
            Protocol::Icmpv6 => &[Family::V6],
            _ => &[Family::V4, Family::V6],
        };
        by_protocol.iter().copied().filter(|v| fixed.is_none_or(|f| f == *v)).collect()
    }

    /// In a few words, as tcpdump would say it.
    pub fn describe(&self) -> String {
        if self.all {
            return "all traffic".into();
        }
        let mut parts = Vec::new();
        if self.protocol != Protocol::Any {
            parts.push(protocol_text::name(self.protocol));
        }
        if let Some(s) = &self.source {
            parts.push(format!("from {s}"));
        }
        if let Some(d) = &self.destination {
            parts.push(format!("to {d}"));
        }
        if let Some(p) = &self.port {
            parts.push(format!("port {p}"));
        }
        if let Some(p) = &self.source_port {
            parts.push(format!("source port {p}"));
        }
        if let Some(p) = &self.destination_port {
            parts.push(format!("destination port {p}"));
        }
        parts.join(" ")
    }
}

/// One mirror as it is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Mirror {
    pub mirror_id: MirrorId,
    /// The interface whose traffic is copied (its logical name).
    pub interface: String,
    pub sensor: Sensor,
    pub direction: MirrorDirection,
    pub selector: Selector,
    /// The most packets copied per second; the excess is not copied (the original still passes).
    pub rate_limit: u32,
    /// Packets copied at once above the rate before the cap holds.
    pub burst: u32,
    /// Addresses whose packets are never copied (the sensor's own, a tunnel's ends), as planned.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub excluded: Vec<IpAddr>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    pub expires_at: Timestamp,
}

/// One match a backend writes for a mirror: a hook direction, an address family, and the fields the packet must
/// have there. A mirror copies a packet when one of its clauses matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// In: the packet arrives on the interface; out: it leaves it.
    pub hook: Direction,
    pub family: Family,
    pub protocol: Protocol,
    pub source: Option<IpNet>,
    pub destination: Option<IpNet>,
    pub source_port: Option<PortRange>,
    pub destination_port: Option<PortRange>,
    /// A port the destination must not be in: `port` is spelt as two clauses (destination port, then source
    /// port with the destination elsewhere), so a packet whose two ends match is copied once.
    pub destination_port_not: Option<PortRange>,
    /// Addresses of this family neither end may be.
    pub excluded: Vec<IpAddr>,
}

impl Clause {
    /// Whether a packet crossing the mirror's interface in direction `hook` matches.
    pub fn matches(&self, hook: Direction, p: &Packet) -> bool {
        let in_net = |net: &Option<IpNet>, a: &IpAddr| net.as_ref().is_none_or(|n| n.contains(a));
        let in_range = |r: &Option<PortRange>, port: Option<u16>| r.is_none_or(|r| port.is_some_and(|p| r.contains(p)));
        let family = if p.source.is_ipv4() { Family::V4 } else { Family::V6 };
        hook == self.hook
            && family == self.family
            && self.protocol.matches(p.protocol, family == Family::V6)
            && in_net(&self.source, &p.source)
            && in_net(&self.destination, &p.destination)
            && in_range(&self.source_port, p.source_port)
            && in_range(&self.destination_port, p.destination_port)
            && self.destination_port_not.is_none_or(|r| p.destination_port.is_none_or(|d| !r.contains(d)))
            && !self.excluded.iter().any(|x| *x == p.source || *x == p.destination)
    }
}

impl Mirror {
    /// The matches that spell the mirror, in the order a backend writes them.
    pub fn clauses(&self) -> Vec<Clause> {
        let s = &self.selector;
        let families: Vec<Family> = s.families().into_iter().filter(|f| self.sensor.families().contains(f)).collect();
        let mut out = Vec::new();
        for &hook in self.direction.hooks() {
            // Replies leave with the ends swapped.
            let swap = self.direction == MirrorDirection::Both && hook == Direction::Out;
            let (source, destination) = if swap { (s.destination, s.source) } else { (s.source, s.destination) };
            let (sport, dport) =
                if swap { (s.destination_port, s.source_port) } else { (s.source_port, s.destination_port) };
            for &family in &families {
                let excluded: Vec<IpAddr> =
                    self.excluded.iter().copied().filter(|a| a.is_ipv4() == (family == Family::V4)).collect();
                let base = Clause {
                    hook,
                    family,
                    protocol: s.protocol,
                    source,
                    destination,
                    source_port: sport,
                    destination_port: dport,
                    destination_port_not: None,
                    excluded,
                };
                match s.port {
                    None => out.push(base),
                    Some(port) => {
                        out.push(Clause { destination_port: Some(port), ..base.clone() });
                        out.push(Clause { source_port: Some(port), destination_port_not: Some(port), ..base });
                    }
                }
            }
        }
        out
    }

    /// Whether the mirror copies `packet` (crossing its interface in the packet's direction).
    pub fn copies(&self, packet: &Packet) -> bool {
        packet.interface == self.interface && self.clauses().iter().any(|c| c.matches(packet.direction, packet))
    }

    /// What it does, in one line, for plans and answers.
    pub fn describe(&self) -> String {
        format!(
            "{}: copy {} {} {} to {}, at most {}/s, until {}",
            self.mirror_id,
            self.selector.describe(),
            match self.direction {
                MirrorDirection::In => "arriving on",
                MirrorDirection::Out => "leaving",
                MirrorDirection::Both => "in both directions on",
            },
            self.interface,
            self.sensor.describe(),
            self.rate_limit,
            self.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }

    /// Whether two mirrors copy the same, bookkeeping aside (id, reason, times).
    pub fn same_copy(&self, other: &Mirror) -> bool {
        self.interface == other.interface
            && self.sensor == other.sensor
            && self.direction == other.direction
            && self.selector == other.selector
    }
}

/// Whether two mirrors are the same in everything a firewall holds: what they copy, where, how fast, until when.
pub fn same_enforcement(a: &Mirror, b: &Mirror) -> bool {
    a.mirror_id == b.mirror_id
        && a.same_copy(b)
        && a.rate_limit == b.rate_limit
        && a.burst == b.burst
        && a.excluded == b.excluded
        && a.expires_at.timestamp() == b.expires_at.timestamp()
}

/// A protocol as its name (`tcp`, `icmp`, `47`), the model's spelling in rules.
mod protocol_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::Protocol;

    pub fn name(p: Protocol) -> String {
        match p {
            Protocol::Any => "any".into(),
            Protocol::Tcp => "tcp".into(),
            Protocol::Udp => "udp".into(),
            Protocol::TcpUdp => "tcp/udp".into(),
            Protocol::Icmp => "icmp".into(),
            Protocol::Icmpv6 => "icmpv6".into(),
            Protocol::Number(n) => n.to_string(),
        }
    }

    pub fn serialize<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&name(*p))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        let text = String::deserialize(d)?;
        Protocol::parse("protocol", &text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// An optional port range as a string (`"80"`, `"1000:2000"`).
mod port_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::PortRange;

    pub fn serialize<S: Serializer>(p: &Option<PortRange>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_str(&p.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PortRange>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| PortRange::parse("port", &t).map_err(|e| serde::de::Error::custom(e.message))).transpose()
    }
}

#[cfg(test)]
mod tests;
