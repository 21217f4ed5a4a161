//! The parsed, borrowed form of one filterlog line.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// Which syslog prefix the line carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// RFC 3164 / BSD: `[<PRI>]Mmm dd hh:mm:ss [host] filterlog[pid]: ` (also `filterlog: ` without a pid). Local
    /// `/var/log/filter.log` lines have a host and no `<PRI>`; lines received by a remote collector have a `<PRI>`
    /// and no host. The timestamp has no year and no zone. Exports may separate the parts with tabs, or keep only
    /// the timestamp before the CSV body (then there is no host and no pid).
    Bsd,
    /// RFC 5424: `[<PRI>]1 <RFC 3339 time> <host> filterlog <pid> <msgid> <structured data> `.
    Rfc5424,
    /// An RFC 3339 timestamp followed by the BSD-style host and tag (`host filterlog[pid] ` or `host filterlog: `),
    /// as written by collectors that re-format the time (rsyslog's `RSYSLOG_FileFormat`, syslog-ng ISO dates);
    /// also the timestamp alone before the CSV body, and tabs for spaces, as for [`SyslogFormat::Bsd`].
    Rfc3339,
    /// No prefix: the CSV body alone.
    Bare,
}

/// The rule's action. pfSense logs `reject` rules as `block`; `reject` is accepted for other pf producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `pass`
    Pass,
    /// `block`
    Block,
    /// `reject`
    Reject,
    /// An action filterlog has no word for, or one that neither passes nor blocks: pfSense's literal placeholder
    /// `unkn(%u)` (its `code2str` fallback is printed unformatted, so `match` rules log as `unkn(%u)`; pfSense
    /// `sysutils/filterlog/files/filterlog.c`), a formatted `unkn(N)`, OPNsense's `unknown(N)` (OPNsense
    /// `opnsense/filterlog/files/filterlog.c`), and the other words of pf's action table in both sources
    /// (`scrub`, `nat`, `binat`, `rdr`, `synproxy-drop`).
    Unknown,
}

impl Action {
    /// The word as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Block => "block",
            Action::Reject => "reject",
            Action::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The packet's direction on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// `in`
    In,
    /// `out`
    Out,
    /// `in/out` (pf's `PF_INOUT`), or a placeholder for a direction filterlog has no word for (`unkn(%u)` on
    /// pfSense, `unknown(N)` on OPNsense; see [`Action::Unknown`]).
    Unknown,
}

impl Direction {
    /// The word as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The IPv4 header fields that filterlog prints (fields 9–14 of the CSV, before the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ipv4Header<'a> {
    /// Type of service (`0x0`, `0xb8`, ...), parsed from hex.
    pub tos: u8,
    /// ECN as printed: empty, `0`, `1` or `CE`.
    pub ecn: &'a str,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub id: u16,
    /// Fragment offset in bytes.
    pub offset: u32,
    /// Flags as printed: `none`, `DF`, `+` (more fragments), `rsvd`.
    pub flags: &'a str,
}

/// The IPv6 header fields that filterlog prints (fields 9–11 of the CSV, before the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ipv6Header {
    /// Traffic class (`0x00`), parsed from hex.
    pub class: u8,
    /// Flow label (`0x00000`, `0xf6279`), parsed from hex.
    pub flow_label: u32,
    /// Hop limit.
    pub hop_limit: u8,
}

/// The version-specific part of the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpHeader<'a> {
    /// IPv4.
    V4(Ipv4Header<'a>),
    /// IPv6.
    V6(Ipv6Header),
}

/// A TCP sequence number as logged: one number, or `start:end` for a segment with data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeqRange {
    /// The first sequence number.
    pub start: u32,
    /// The end of the range, for `start:end`.
    pub end: Option<u32>,
}

/// TCP trailing fields. Everything after the ports is optional: the producer omits it on damaged packets (and
/// prints `errormsg=...` instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct TcpInfo<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload bytes; negative on a packet whose header length is wrong (seen: `-12`).
    pub data_length: Option<i32>,
    /// Flags as letters (`S`, `SA`, `PA`, `FA`, `R`, `SEC`...); empty when absent.
    pub flags: &'a str,
    /// Sequence number or range.
    pub seq: Option<SeqRange>,
    /// Acknowledgement number.
    pub ack: Option<u32>,
    /// Window.
    pub window: Option<u32>,
    /// Urgent pointer.
    pub urg: Option<u32>,
    /// Options, `;`-separated (`mss;sackOK;TS;nop;wscale`); may contain junk such as `[bad opt]`.
    pub options: &'a str,
    /// The text of an `errormsg='...'` field (quotes removed); it may contain commas and ends the line.
    pub error_message: Option<&'a str>,
    /// Whatever follows the options (seen: `>,` after `[bad opt]`); usually empty.
    pub extra: &'a str,
}

/// UDP (17) and SCTP (132) trailing fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UdpInfo {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Data length as printed (for UDP the UDP length, header included).
    pub data_length: Option<u32>,
}

/// The type-specific part of an ICMP (IPv4) entry.
///
/// The typed variants are used when every field parses; otherwise the producer's text is kept as
/// [`IcmpDetail::Text`] (real logs carry odd values here, for instance an id with a leading space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IcmpDetail<'a> {
    /// `request`, `reply`, `tstamp`: identifier and sequence number.
    Echo {
        /// Identifier.
        id: u32,
        /// Sequence number.
        seq: u32,
    },
    /// `tstampreply`: identifier, sequence and the three timestamps as printed.
    TimestampReply {
        /// Identifier.
        id: u32,
        /// Sequence number.
        seq: u32,
        /// Originate timestamp.
        otime: &'a str,
        /// Receive timestamp.
        rtime: &'a str,
        /// Transmit timestamp.
        ttime: &'a str,
    },
    /// `unreachproto`: the unreachable destination and protocol number.
    UnreachProto {
        /// Destination of the original packet.
        dst: IpAddr,
        /// Protocol number of the original packet.
        proto: u32,
    },
    /// `unreachport`: the unreachable destination, protocol name and port.
    UnreachPort {
        /// Destination of the original packet.
        dst: IpAddr,
        /// Protocol of the original packet, as printed (`UDP`, `TCP`).
        proto: &'a str,
        /// Destination port of the original packet.
        port: u32,
    },
    /// `needfrag`: destination and next-hop MTU.
    NeedFrag {
        /// Destination of the original packet.
        dst: IpAddr,
        /// Next-hop MTU.
        mtu: u32,
    },
    /// `datalength=<n>` in place of a type: the ICMP header was not captured (or the line is OPNsense's and has
    /// nothing after the length).
    DataLength(u32),
    /// OPNsense's layout since its 2026 ICMP decoder (`opnsense/filterlog/files/print-icmp.c` and
    /// `description.txt`): `datalength=N,type,code,id,seq,mtu`, type and code as pf.conf keywords
    /// (`echoreq`, `unreach`/`port-unr`), id and seq only for echo/timestamp/info/mask messages, mtu only for
    /// `needfrag`. The type is in [`IcmpInfo::icmp_type`], the length in [`IcmpInfo::data_length`].
    Coded {
        /// The code keyword, or the code number when pf.conf has no keyword for it; empty when truncated.
        code: &'a str,
        /// Identifier, for the types that carry one.
        id: Option<u16>,
        /// Sequence number, for the types that carry one.
        seq: Option<u16>,
        /// Next-hop MTU of a `needfrag`.
        mtu: Option<u32>,
    },
    /// Free text: the rest of the line after the type (`unreach`, `timexceed`, `paramprob`, `redirect`,
    /// `maskreply`, unknown types such as `type-??20`, and typed ones whose fields did not parse).
    Text(&'a str),
}

/// ICMP (IPv4, protocol 1) trailing fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IcmpInfo<'a> {
    /// The type as printed (`request`, `reply`, `unreachport`, `type-??`, OPNsense's `echoreq`...); `None` for a
    /// bare `datalength=<n>`.
    pub icmp_type: Option<&'a str>,
    /// The type-specific fields.
    pub detail: IcmpDetail<'a>,
    /// The ICMP message length (IP payload bytes). pfSense appends it to the last ICMP field without a separator
    /// (`icmp_print` ends with `sbuf_printf(sbuf, "%u", plen)`, pfSense `sysutils/filterlog/files/print-icmp.c`:
    /// `request,37728,164` is seq 1 and 64 bytes); the parser splits it off. OPNsense prints it as
    /// `datalength=N`. `None` when the line's last field does not end with it.
    pub data_length: Option<u32>,
}

/// CARP (protocol 112) advertisement fields, as printed for IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CarpInfo<'a> {
    /// Message type (`advertise`).
    pub carp_type: &'a str,
    /// TTL.
    pub ttl: u8,
    /// Virtual host id.
    pub vhid: u8,
    /// Protocol version.
    pub version: u8,
    /// Advertisement skew.
    pub advskew: u8,
    /// Advertisement base.
    pub advbase: u8,
}

/// Any other protocol: ICMPv6 (one empty field), IGMP/GRE/ESP/... (`datalength=<n>`), IP-in-IP
/// (`IPV4-IN-IPV4`/`IPV6-IN-IPV4`), and CARP/VRRP over IPv6 (one empty field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OtherInfo<'a> {
    /// `n` from a `datalength=<n>` field.
    pub data_length: Option<u32>,
    /// The rest of the line after the destination address, verbatim (may be empty).
    pub text: &'a str,
}

/// The protocol-specific trailing fields, chosen by the protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolInfo<'a> {
    /// TCP (6).
    Tcp(TcpInfo<'a>),
    /// UDP (17) and SCTP (132).
    Udp(UdpInfo),
    /// ICMP (1).
    Icmp(IcmpInfo<'a>),
    /// CARP (112) over IPv4.
    Carp(CarpInfo<'a>),
    /// Everything else.
    Other(OtherInfo<'a>),
}

/// One filterlog line, borrowing its text from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FilterLogEntry<'a> {
    /// The syslog prefix form.
    pub format: SyslogFormat,
    /// `<PRI>` when present (filterlog logs to local0.info: 134).
    pub priority: Option<u8>,
    /// The timestamp as it appears in the prefix (`Jul  3 19:10:30` or RFC 3339); `None` without a prefix or
    /// with RFC 5424's `-`. [`FilterLogEntry::timestamp`] resolves it.
    pub timestamp: Option<&'a str>,
    /// The host name from the prefix (absent on BSD lines forwarded by the firewall itself).
    pub host: Option<&'a str>,
    /// filterlog's process id, when the prefix has one.
    pub pid: Option<u32>,
    /// The CSV body (everything after the prefix).
    pub body: &'a str,

    /// Field 0: pf rule number in the loaded ruleset (changes when the ruleset changes). `None` for pf's "no rule"
    /// (`4294967295`, u32::MAX: pfSense prints it as a number, OPNsense as an empty field) and for an empty field.
    pub rule_number: Option<u32>,
    /// Field 1: the sub-rule number inside an anchor (empty outside anchors; `16777216` on older versions).
    pub sub_rule: Option<u32>,
    /// Field 2: the anchor (ruleset) name, printed with a sub-rule (usually empty).
    pub anchor: &'a str,
    /// Field 3 as a number: pfSense's tracker, the rule's stable id. `None` when the field is empty or is an
    /// OPNsense label.
    pub tracker: Option<u64>,
    /// Field 3 as logged, when not empty: the tracker's digits on pfSense, the rule label on OPNsense (the
    /// filterlog there prints the pf rule's label, or `0` without one: `opnsense/filterlog/files/filterlog.c`; the
    /// GUI's labels are 32-hex-digit MD5 hashes, `src/opnsense/scripts/filter/read_log.py`, newer rules UUIDs,
    /// hand-written rules free text). [`FilterLogEntry::rule_id`] returns it.
    pub rule_label: Option<&'a str>,
    /// Field 4: the real interface (device: `igb1.12`, `em0`, `ovpns2`).
    pub interface: &'a str,
    /// Field 5: the reason (`match`, or a pf reason such as `bad-offset`, `state-mismatch`).
    pub reason: &'a str,
    /// Field 6: the action.
    pub action: Action,
    /// Field 7: the direction.
    pub direction: Direction,
    /// Field 8: the IP version, 4 or 6.
    pub ip_version: u8,
    /// The text of an `error=` field after the IP version (a truncated packet); it shifts the following fields.
    pub error: Option<&'a str>,
    /// The version-specific header fields.
    pub ip: IpHeader<'a>,
    /// The protocol name as printed (`tcp`, `udp`, `icmp` for IPv4; `UDP`, `ICMPv6`, `VRRP` for IPv6 on pfSense).
    pub protocol_name: &'a str,
    /// The protocol number.
    pub protocol_id: u8,
    /// The length as printed: for IPv4 the total length; for IPv6 the payload length (the samples' IPv6 UDP line
    /// has length 32 and UDP length 32, its ICMPv6 lines 8 and 64).
    pub length: u32,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The protocol-specific trailing fields.
    pub proto: ProtocolInfo<'a>,
}

impl<'a> FilterLogEntry<'a> {
    /// The rule's stable id as logged: pfSense's tracker, or OPNsense's rule label.
    pub fn rule_id(&self) -> Option<&'a str> {
        self.rule_label
    }

    /// The source port for TCP, UDP and SCTP.
    pub fn src_port(&self) -> Option<u16> {
        match self.proto {
            ProtocolInfo::Tcp(t) => Some(t.src_port),
            ProtocolInfo::Udp(u) => Some(u.src_port),
            _ => None,
        }
    }

    /// The destination port for TCP, UDP and SCTP.
    pub fn dst_port(&self) -> Option<u16> {
        match self.proto {
            ProtocolInfo::Tcp(t) => Some(t.dst_port),
            ProtocolInfo::Udp(u) => Some(u.dst_port),
            _ => None,
        }
    }

    /// TCP flags, when the line has them.
    pub fn tcp_flags(&self) -> Option<&'a str> {
        match self.proto {
            ProtocolInfo::Tcp(t) if !t.flags.is_empty() => Some(t.flags),
            _ => None,
        }
    }

    /// The ICMP type as printed, for ICMP lines that carry one.
    pub fn icmp_type(&self) -> Option<&'a str> {
        match self.proto {
            ProtocolInfo::Icmp(i) => i.icmp_type,
            _ => None,
        }
    }

    /// Whether the protocol is the one named, ignoring case (IPv6 lines print `UDP`, IPv4 lines `udp`).
    pub fn is_protocol(&self, name: &str) -> bool {
        self.protocol_name.eq_ignore_ascii_case(name)
    }
}
