//! The owned form of an entry, for storage and for tool output.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::entry::{FilterLogEntry, ProtocolInfo};

/// One filterlog line as owned values. The first fields are the tool output of the product brief (`timestamp`,
/// `interface`, `action`, `direction`, `protocol`, `src_ip`, `src_port`, `dst_ip`, `dst_port` as a string,
/// `rule_id` as a string, `length`); the others are kept for storage and queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterLogRecord {
    /// RFC 3339 in UTC (`2021-07-04T00:10:14.578288Z`); `None` when the line has no resolvable timestamp (and,
    /// from [`FilterLogEntry::to_record`], for BSD timestamps, which need a year: use
    /// [`FilterLogEntry::to_record_at`]).
    pub timestamp: Option<String>,
    /// The interface device (`igb1.12`).
    pub interface: String,
    /// `pass`, `block`, `reject` or `unknown`.
    pub action: String,
    /// `in`, `out` or `unknown`.
    pub direction: String,
    /// The protocol name in lower case (`tcp`, `udp`, `icmp`, `icmpv6`, `vrrp`...).
    pub protocol: String,
    /// Source address.
    pub src_ip: String,
    /// Source port for TCP/UDP/SCTP.
    pub src_port: Option<u16>,
    /// Destination address.
    pub dst_ip: String,
    /// Destination port for TCP/UDP/SCTP, as a string.
    pub dst_port: Option<String>,
    /// The rule's id as logged: pfSense's tracker or OPNsense's rule label.
    pub rule_id: Option<String>,
    /// IP length as logged (IPv4 total length, IPv6 payload length).
    pub length: u32,

    /// The timestamp exactly as in the prefix.
    pub raw_timestamp: Option<String>,
    /// The host from the prefix.
    pub host: Option<String>,
    /// pf rule number (not stable across ruleset reloads).
    pub rule_number: Option<u32>,
    /// pf reason (`match`...).
    pub reason: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Protocol number.
    pub protocol_id: u8,
    /// TCP flags.
    pub tcp_flags: Option<String>,
    /// ICMP type.
    pub icmp_type: Option<String>,
}

impl FilterLogEntry<'_> {
    /// The owned form. Only timestamps that carry their year (RFC 3339) are resolved; see
    /// [`FilterLogEntry::to_record_at`].
    pub fn to_record(&self) -> FilterLogRecord {
        self.record_with(self.absolute_timestamp())
    }

    /// The owned form, with BSD timestamps resolved as by [`FilterLogEntry::timestamp`].
    pub fn to_record_at(&self, year_hint: i32, now: DateTime<Utc>) -> FilterLogRecord {
        self.record_with(self.timestamp(year_hint, now))
    }

    fn record_with(&self, ts: Option<DateTime<Utc>>) -> FilterLogRecord {
        FilterLogRecord {
            timestamp: ts.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            interface: self.interface.to_owned(),
            action: self.action.as_str().to_owned(),
            direction: self.direction.as_str().to_owned(),
            protocol: self.protocol_name.to_ascii_lowercase(),
            src_ip: self.src.to_string(),
            src_port: self.src_port(),
            dst_ip: self.dst.to_string(),
            dst_port: self.dst_port().map(|p| p.to_string()),
            rule_id: self.rule_label.map(str::to_owned),
            length: self.length,
            raw_timestamp: self.timestamp.map(str::to_owned),
            host: self.host.map(str::to_owned),
            rule_number: self.rule_number,
            reason: self.reason.to_owned(),
            ip_version: self.ip_version,
            protocol_id: self.protocol_id,
            tcp_flags: self.tcp_flags().map(str::to_owned),
            icmp_type: match self.proto {
                ProtocolInfo::Icmp(i) => i.icmp_type.map(str::to_owned),
                _ => None,
            },
        }
    }
}
