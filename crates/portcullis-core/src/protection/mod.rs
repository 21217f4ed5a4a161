//! DDoS protection: caps on new connections for what arrives on one interface, overall and per source, with
//! sources that exceed their rate blocked for a while, connections per source counted, and an optional SYN
//! proxy.
//!
//! A protection is an object of the model of its own (`RuleSet::protections`): rules cannot say "at most 20 new
//! connections a second from each source". There is at most one per interface and selector (protocol and
//! destination ports), named by them (`wan/tcp/80,443`). Creating, changing and removing one are plans like any
//! other (`Operation::{Create,Update,Delete}Protection`), carried out, verified and undone by the same code.
//!
//! The addresses configuration says are never blocked (management hosts, protected ranges) are carried in the
//! protection as its `exempt` list, and every backend lets them through before any limit. Lockout prevention
//! proves it on the planned rule set ([`limits_flow`]): a management flow or the caller that a protection would
//! limit, because its source is not exempt, refuses the change.

mod plan;
pub mod rate;

use std::fmt;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use plan::{ProtectionKey, plan_configure, plan_remove};
pub use rate::{Bandwidth, Rate, RateUnit};

use crate::error::{FieldError, FieldResult};
use crate::lockout::ManagementFlow;
use crate::model::{Direction, PROTO_TCP, PROTO_UDP, Packet, PortRange, Timestamp};

/// The transport a protection covers. Connections are what it counts, so ICMP and other protocols have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema, Default)]
pub enum Transport {
    #[default]
    #[serde(rename = "tcp")]
    Tcp,
    #[serde(rename = "udp")]
    Udp,
    #[serde(rename = "tcp/udp")]
    TcpUdp,
}

impl Transport {
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            "tcp/udp" | "tcp_udp" | "tcpudp" => Ok(Self::TcpUdp),
            other => Err(FieldError::new(
                field,
                format!(
                    "{other:?} cannot be protected: connection limits count TCP or UDP flows; use tcp, udp or tcp/udp"
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::TcpUdp => "tcp/udp",
        }
    }

    /// The IP protocol numbers it covers.
    pub fn protocols(self) -> &'static [u8] {
        match self {
            Self::Tcp => &[PROTO_TCP],
            Self::Udp => &[PROTO_UDP],
            Self::TcpUdp => &[PROTO_TCP, PROTO_UDP],
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One DDoS protection as it is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Protection {
    /// `interface/protocol[/ports]`, e.g. `wan/tcp/80,443`; what `configure_ddos_protection` replaces.
    pub protection_id: String,
    pub interface: String,
    pub protocol: Transport,
    /// Destination ports protected; empty: every port of the protocol.
    #[serde(with = "port_list")]
    #[schemars(with = "Vec<String>")]
    pub ports: Vec<PortRange>,
    /// New connections per unit of time on the interface, all sources together (the customer's `rate_limit`
    /// with its `burst_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Rate>,
    /// New connections per unit of time from one source (an IPv4 address, an IPv6 /64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_source_rate: Option<Rate>,
    /// How long a source that exceeds `per_source_rate` stays blocked, in seconds (none: only its excess is
    /// dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overload_block_seconds: Option<u32>,
    /// What one source may send, in bits per second (packets beyond it are dropped); on pfSense a limiter with a
    /// source mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_source_bandwidth: Option<Bandwidth>,
    /// Connections one source may hold open at once; the next is refused (TCP reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_source: Option<u32>,
    /// Handshakes answered by the firewall's SYN proxy before the server sees them (TCP only).
    #[serde(default)]
    pub syn_proxy: bool,
    /// Sources never limited: configuration's management hosts and protected ranges, as planned.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub exempt: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// The longest overload block: a week, after which a source that still floods is simply blocked again.
pub const MAX_OVERLOAD_SECONDS: u32 = 7 * 86_400;
/// The most connections per source a protection may allow.
pub const MAX_CONNECTIONS_PER_SOURCE: u32 = 1_000_000;

impl Protection {
    /// The id of the protection for this interface and selector.
    pub fn id_for(interface: &str, protocol: Transport, ports: &[PortRange]) -> String {
        if ports.is_empty() {
            format!("{interface}/{protocol}")
        } else {
            let ports: Vec<String> = ports.iter().map(ToString::to_string).collect();
            format!("{interface}/{protocol}/{}", ports.join(","))
        }
    }

    /// Whether the protection's selector takes `packet` (a new connection arriving on its interface, of its
    /// protocol, to one of its ports), whatever its source.
    pub fn selects(&self, packet: &Packet) -> bool {
        packet.direction == Direction::In
            && packet.interface == self.interface
            && self.protocol.protocols().contains(&packet.protocol)
            && (self.ports.is_empty()
                || packet.destination_port.is_some_and(|p| self.ports.iter().any(|r| r.contains(p))))
    }

    /// Whether `packet`'s source is one the protection lets through before any limit.
    pub fn exempts(&self, packet: &Packet) -> bool {
        self.exempt.iter().any(|n| n.contains(&packet.source))
    }

    /// Whether it limits anything at all: a protection with nothing to enforce is refused when planned.
    pub fn enforces_something(&self) -> bool {
        self.rate_limit.is_some()
            || self.per_source_rate.is_some()
            || self.max_connections_per_source.is_some()
            || self.per_source_bandwidth.is_some()
            || self.syn_proxy
    }

    /// What it does, in one line, for plans, answers and `simulate_packet`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.rate_limit {
            parts.push(format!("at most {r} new connections overall"));
        }
        if let Some(r) = &self.per_source_rate {
            let then = match self.overload_block_seconds {
                Some(s) => format!(
                    ", then the source is blocked for {}",
                    crate::duration::format_span(chrono::TimeDelta::seconds(i64::from(s)))
                ),
                None => String::new(),
            };
            parts.push(format!("at most {r} per source{then}"));
        }
        if let Some(b) = &self.per_source_bandwidth {
            parts.push(format!("at most {b} sent per source"));
        }
        if let Some(n) = self.max_connections_per_source {
            parts.push(format!("at most {n} open connections per source"));
        }
        if self.syn_proxy {
            parts.push("handshakes through the SYN proxy".into());
        }
        format!("{}: {}", self.protection_id, parts.join("; "))
    }
}

/// Whether two protections enforce the same, bookkeeping times aside.
pub fn same_enforcement(a: &Protection, b: &Protection) -> bool {
    let strip = |p: &Protection| Protection { created_at: None, updated_at: None, ..p.clone() };
    strip(a) == strip(b)
}

/// The first management flow (inbound, TCP, on its interface) that a protection in `protections` would limit:
/// its selector takes the flow and its source is not exempt. Lockout prevention refuses a plan that leaves one.
pub fn limits_flow<'a>(
    protections: &'a [Protection],
    flows: &'a [ManagementFlow],
) -> Option<(&'a Protection, &'a ManagementFlow)> {
    flows.iter().filter(|f| f.direction == Direction::In).find_map(|flow| {
        let packet = flow.packet();
        protections.iter().find(|p| p.selects(&packet) && !p.exempts(&packet)).map(|p| (p, flow))
    })
}

/// Ports as strings (`"443"`, `"1000:2000"`), the model's usual spelling.
mod port_list {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    use crate::model::PortRange;

    pub fn serialize<S: Serializer>(ports: &[PortRange], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(ports.len()))?;
        for p in ports {
            seq.serialize_element(&p.to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PortRange>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| PortRange::parse("ports", t).map_err(|e| serde::de::Error::custom(e.message))).collect()
    }
}

#[cfg(test)]
mod tests;
