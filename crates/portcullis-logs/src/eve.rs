//! Suricata `eve.json`: one JSON object per line (Suricata's "Eve JSON Format"; OISF/suricata `etc/schema.json`),
//! read into a small owned [`EveEvent`].
//!
//! [`parse_line`] decodes the common fields of every event (`timestamp`, `event_type`, `flow_id`, `in_iface`, the
//! 5-tuple `src_ip`/`src_port`/`dest_ip`/`dest_port`/`proto`, `app_proto`, `community_id`), the `alert{}` object
//! ([`EveAlert`]) and the `flow{}` counters ([`EveFlow`]). The other event types (`dns`, `http`, `tls`,
//! `fileinfo`, `anomaly`, `stats`, `drop`, and any other name) keep their common fields and kind, so they can be
//! counted; their own objects and every unknown field are skipped without being decoded.
//!
//! Hostile input: a line longer than [`MAX_LINE_BYTES`] is refused before it is read; no input panics; the cost of
//! a line is linear in its length (unknown values, however deeply nested, are skipped by `serde_json`'s iterative
//! skipper, whose stack is one byte per level on the heap, so a depth bomb costs at most the line's length); and an
//! event owns no more text than its line holds (decoding escapes never lengthens a string). Every failure is an
//! [`EveError`] that says why, naming the field when it is about one.
//!
//! ```
//! use portcullis_logs::eve::{parse_line, EventKind, Proto};
//!
//! let line = r#"{"timestamp":"2017-04-07T22:24:37.251547+0100","flow_id":586497171462735,"event_type":"alert",
//! "src_ip":"192.168.2.14","src_port":50096,"dest_ip":"209.53.113.5","dest_port":80,"proto":"TCP",
//! "alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,
//! "signature":"ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1",
//! "category":"Potentially Bad Traffic","severity":2},"app_proto":"http"}"#.replace('\n', "");
//! let event = parse_line(&line).unwrap();
//! assert_eq!(event.kind, EventKind::Alert);
//! assert_eq!(event.timestamp.to_rfc3339(), "2017-04-07T21:24:37.251547+00:00");
//! assert_eq!(event.proto, Some(Proto::TCP));
//! assert_eq!(event.alert.unwrap().signature_id, 2018358);
//! ```

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::stats::lines;

/// The longest line read, in bytes (64 KiB, without the line terminator). Suricata's own lines are a few hundred
/// bytes to a few KiB (a `stats` event with every counter is the largest, about 10 KiB); a longer line is refused
/// unread, so a hostile file cannot make one event cost more than this.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The longest `event_type` name kept for [`EventKind::Other`]: Suricata's names are short lower-case words
/// (`smb`, `krb5`, `netflow`, `quic`...).
pub const MAX_EVENT_TYPE_LEN: usize = 32;

/// How many distinct [`EventKind::Other`] names [`EveStats::by_event`] counts by name; the rest are counted under
/// `other`, so a file of made-up names cannot grow the map without bound.
pub const MAX_OTHER_EVENT_NAMES: usize = 64;

/// One eve.json event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EveEvent {
    /// When Suricata saw the packet, in UTC.
    pub timestamp: DateTime<Utc>,
    /// `event_type`.
    pub kind: EventKind,
    /// `flow_id`: correlates the events of one flow (alert, flow, dns, http, fileinfo, anomaly...).
    pub flow_id: Option<u64>,
    /// `in_iface`: the interface Suricata captured on.
    pub in_iface: Option<String>,
    /// `src_ip` (absent from `stats` events).
    pub src_ip: Option<IpAddr>,
    /// `src_port` (TCP, UDP, SCTP).
    pub src_port: Option<u16>,
    /// `dest_ip`.
    pub dest_ip: Option<IpAddr>,
    /// `dest_port`.
    pub dest_port: Option<u16>,
    /// `proto`.
    pub proto: Option<Proto>,
    /// `app_proto` (`http`, `tls`, `dns`, `failed`...).
    pub app_proto: Option<String>,
    /// `community_id` (`1:...`), to correlate with other sensors (Zeek).
    pub community_id: Option<String>,
    /// `alert{}`: always present on `alert` events, and on other events that carry one.
    pub alert: Option<EveAlert>,
    /// `flow{}`: always present on `flow` events; Suricata adds it to alerts too.
    pub flow: Option<EveFlow>,
}

/// `event_type`. The known kinds are those Portcullis counts or decodes; any other well-formed name (a lower-case
/// word of letters, digits and `_`, up to [`MAX_EVENT_TYPE_LEN`] bytes) is [`EventKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `alert`: a signature matched.
    Alert,
    /// `flow`: a flow ended (or timed out), with its counters.
    Flow,
    /// `anomaly`: a decoder, stream or app-layer anomaly.
    Anomaly,
    /// `dns`.
    Dns,
    /// `http`.
    Http,
    /// `tls`.
    Tls,
    /// `fileinfo`.
    Fileinfo,
    /// `stats`: the engine's counters (no 5-tuple).
    Stats,
    /// `drop`: a packet dropped in IPS mode.
    Drop,
    /// Any other name (`ssh`, `smtp`, `netflow`...), as written.
    Other(Box<str>),
}

impl EventKind {
    /// The name as in `event_type`.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Alert => "alert",
            EventKind::Flow => "flow",
            EventKind::Anomaly => "anomaly",
            EventKind::Dns => "dns",
            EventKind::Http => "http",
            EventKind::Tls => "tls",
            EventKind::Fileinfo => "fileinfo",
            EventKind::Stats => "stats",
            EventKind::Drop => "drop",
            EventKind::Other(name) => name,
        }
    }

    /// The kind named `name`; `None` unless it is a known name or a well-formed other one.
    pub fn from_name(name: &str) -> Option<EventKind> {
        match Self::known(name) {
            Some(kind) => Some(kind),
            None if is_word(name) => Some(EventKind::Other(name.into())),
            None => None,
        }
    }

    /// The known kind named `name`.
    fn known(name: &str) -> Option<EventKind> {
        Some(match name {
            "alert" => EventKind::Alert,
            "flow" => EventKind::Flow,
            "anomaly" => EventKind::Anomaly,
            "dns" => EventKind::Dns,
            "http" => EventKind::Http,
            "tls" => EventKind::Tls,
            "fileinfo" => EventKind::Fileinfo,
            "stats" => EventKind::Stats,
            "drop" => EventKind::Drop,
            _ => return None,
        })
    }
}

/// A well-formed `event_type` name: 1 to [`MAX_EVENT_TYPE_LEN`] lower-case letters, digits and `_`.
fn is_word(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_EVENT_TYPE_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The IP protocol number of `proto`. Suricata writes the IANA keyword (`TCP`, `UDP`, `ICMP`, `IPv6-ICMP`, `SCTP`,
/// `GRE`...) or, for a protocol without one, the number in three digits (`047`); both are read, names without
/// regard to case. Serialised as the keyword, or the number in decimal when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proto(pub u8);

/// Keywords read and written, by number (IANA "Assigned Internet Protocol Numbers", as Suricata and
/// `/etc/protocols` spell them); the aliases after the first name of a number are read only.
const PROTO_NAMES: &[(u8, &str)] = &[
    (1, "ICMP"),
    (2, "IGMP"),
    (4, "IPv4"),
    (4, "IPIP"),
    (6, "TCP"),
    (17, "UDP"),
    (41, "IPv6"),
    (47, "GRE"),
    (50, "ESP"),
    (51, "AH"),
    (58, "IPv6-ICMP"),
    (58, "ICMPv6"),
    (88, "EIGRP"),
    (89, "OSPF"),
    (89, "OSPFIGP"),
    (97, "ETHERIP"),
    (103, "PIM"),
    (112, "VRRP"),
    (112, "CARP"),
    (115, "L2TP"),
    (132, "SCTP"),
    (136, "UDPLite"),
    (137, "MPLS-in-IP"),
];

impl Proto {
    /// ICMP (1).
    pub const ICMP: Proto = Proto(1);
    /// TCP (6).
    pub const TCP: Proto = Proto(6);
    /// UDP (17).
    pub const UDP: Proto = Proto(17);
    /// ICMP for IPv6 (58), `IPv6-ICMP` in eve.json.
    pub const IPV6_ICMP: Proto = Proto(58);
    /// SCTP (132).
    pub const SCTP: Proto = Proto(132);

    /// The keyword Suricata writes for this protocol, if there is one in the table.
    pub fn name(self) -> Option<&'static str> {
        PROTO_NAMES.iter().find(|(n, _)| *n == self.0).map(|(_, name)| *name)
    }

    /// Reads `proto` as Suricata writes it: a keyword (any case) or a decimal number up to 255.
    pub fn parse(s: &str) -> Option<Proto> {
        if !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok().map(Proto);
        }
        PROTO_NAMES.iter().find(|(_, name)| name.eq_ignore_ascii_case(s)).map(|(n, _)| Proto(*n))
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Proto {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `alert{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EveAlert {
    /// `action`.
    pub action: AlertAction,
    /// `gid`, the generator (1 for rules; 1 when absent).
    pub gid: u32,
    /// `signature_id` (the rule's `sid`; required).
    pub signature_id: u32,
    /// `rev` (0 when absent).
    pub rev: u32,
    /// `signature`, the rule's `msg` (empty when absent).
    pub signature: String,
    /// `category`, from the rule's `classtype` (absent without one).
    pub category: Option<String>,
    /// `severity`, the rule's priority: 1 is the highest (required).
    pub severity: u8,
}

/// `alert.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    /// `allowed`: the packet went on (IDS mode, or a rule that only alerts).
    Allowed,
    /// `blocked`: dropped or rejected (IPS mode with a `drop` rule, or `reject`).
    Blocked,
    /// Absent, or a word other than the two above; the alert is kept.
    Unknown,
}

/// `flow{}`: the flow's counters so far (on `flow` events, when it ended; on alerts, up to the alert). A counter
/// that is absent is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct EveFlow {
    /// `pkts_toserver`.
    pub pkts_toserver: u64,
    /// `pkts_toclient`.
    pub pkts_toclient: u64,
    /// `bytes_toserver`.
    pub bytes_toserver: u64,
    /// `bytes_toclient`.
    pub bytes_toclient: u64,
    /// `start`: the flow's first packet.
    pub start: Option<DateTime<Utc>>,
    /// `end`: its last packet (on `flow` events).
    pub end: Option<DateTime<Utc>>,
}

/// A field of an eve event, named in errors by its JSON path (`alert.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // each variant is the field of its name; `as_str` gives the path
pub enum EveField {
    Timestamp,
    FlowId,
    EventType,
    SrcIp,
    SrcPort,
    DestIp,
    DestPort,
    Proto,
    InIface,
    AppProto,
    CommunityId,
    Alert,
    Flow,
    AlertAction,
    AlertGid,
    AlertSignatureId,
    AlertRev,
    AlertSignature,
    AlertCategory,
    AlertSeverity,
    FlowPktsToserver,
    FlowPktsToclient,
    FlowBytesToserver,
    FlowBytesToclient,
    FlowStart,
    FlowEnd,
}

impl EveField {
    /// The field's JSON path.
    pub fn as_str(self) -> &'static str {
        match self {
            EveField::Timestamp => "timestamp",
            EveField::FlowId => "flow_id",
            EveField::EventType => "event_type",
            EveField::SrcIp => "src_ip",
            EveField::SrcPort => "src_port",
            EveField::DestIp => "dest_ip",
            EveField::DestPort => "dest_port",
            EveField::Proto => "proto",
            EveField::InIface => "in_iface",
            EveField::AppProto => "app_proto",
            EveField::CommunityId => "community_id",
            EveField::Alert => "alert",
            EveField::Flow => "flow",
            EveField::AlertAction => "alert.action",
            EveField::AlertGid => "alert.gid",
            EveField::AlertSignatureId => "alert.signature_id",
            EveField::AlertRev => "alert.rev",
            EveField::AlertSignature => "alert.signature",
            EveField::AlertCategory => "alert.category",
            EveField::AlertSeverity => "alert.severity",
            EveField::FlowPktsToserver => "flow.pkts_toserver",
            EveField::FlowPktsToclient => "flow.pkts_toclient",
            EveField::FlowBytesToserver => "flow.bytes_toserver",
            EveField::FlowBytesToclient => "flow.bytes_toclient",
            EveField::FlowStart => "flow.start",
            EveField::FlowEnd => "flow.end",
        }
    }

    /// The top-level key `key`, if it is one that is decoded.
    fn top(key: &str) -> Option<EveField> {
        Some(match key {
            "timestamp" => EveField::Timestamp,
            "flow_id" => EveField::FlowId,
            "event_type" => EveField::EventType,
            "src_ip" => EveField::SrcIp,
            "src_port" => EveField::SrcPort,
            "dest_ip" => EveField::DestIp,
            "dest_port" => EveField::DestPort,
            "proto" => EveField::Proto,
            "in_iface" => EveField::InIface,
            "app_proto" => EveField::AppProto,
            "community_id" => EveField::CommunityId,
            "alert" => EveField::Alert,
            "flow" => EveField::Flow,
            _ => return None,
        })
    }

    /// The key `key` of `alert{}`, if it is one that is decoded.
    fn alert(key: &str) -> Option<EveField> {
        Some(match key {
            "action" => EveField::AlertAction,
            "gid" => EveField::AlertGid,
            "signature_id" => EveField::AlertSignatureId,
            "rev" => EveField::AlertRev,
            "signature" => EveField::AlertSignature,
            "category" => EveField::AlertCategory,
            "severity" => EveField::AlertSeverity,
            _ => return None,
        })
    }

    /// The key `key` of `flow{}`, if it is one that is decoded.
    fn flow(key: &str) -> Option<EveField> {
        Some(match key {
            "pkts_toserver" => EveField::FlowPktsToserver,
            "pkts_toclient" => EveField::FlowPktsToclient,
            "bytes_toserver" => EveField::FlowBytesToserver,
            "bytes_toclient" => EveField::FlowBytesToclient,
            "start" => EveField::FlowStart,
            "end" => EveField::FlowEnd,
            _ => return None,
        })
    }

    /// The field's bit in a set of fields seen (there are fewer than 64 fields).
    fn bit(self) -> u64 {
        1u64 << (self as u32)
    }
}

impl fmt::Display for EveField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a timestamp, in [`EveError::BadTimestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampProblem {
    /// Not `YYYY-MM-DDTHH:MM:SS`, optionally with a fraction of a second after `.`.
    Layout,
    /// The layout is right but there is no such date or time (`2017-02-30`, `25:00:00`, a leap second).
    NoSuchTime,
    /// No UTC offset after the time: the instant is unknown.
    NoOffset,
    /// The offset is not `Z`, `±HHMM` or `±HH:MM` with hours up to 23 and minutes up to 59.
    Offset,
}

impl TimestampProblem {
    /// A short description.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampProblem::Layout => "not YYYY-MM-DDTHH:MM:SS[.fraction]",
            TimestampProblem::NoSuchTime => "no such date or time",
            TimestampProblem::NoOffset => "no UTC offset",
            TimestampProblem::Offset => "bad UTC offset",
        }
    }
}

impl fmt::Display for TimestampProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line is not a usable eve event. Errors are small `Copy` values (no allocation is kept on the malformed
/// path); their `Display` is the reason shown for a skipped line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum EveError {
    /// The line is blank.
    #[error("empty line")]
    Empty,
    /// The line is longer than [`MAX_LINE_BYTES`]; it was not read.
    #[error("line too long: {len} bytes, the limit is 65536")]
    LineTooLong {
        /// The line's length in bytes.
        len: usize,
    },
    /// Not JSON: a syntax error (including invalid escapes, numbers beyond `f64` and text after the object).
    #[error("not JSON: syntax error at column {column}")]
    NotJson {
        /// Where, counted in bytes from 1.
        column: usize,
    },
    /// The JSON ends before the object does.
    #[error("truncated JSON")]
    Truncated,
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// No `timestamp`.
    #[error("no timestamp")]
    NoTimestamp,
    /// A timestamp that cannot be read (`field` is `timestamp`, `flow.start` or `flow.end`).
    #[error("bad timestamp in {field}: {problem}")]
    BadTimestamp {
        /// The field.
        field: EveField,
        /// What is wrong with it.
        problem: TimestampProblem,
    },
    /// No `event_type`.
    #[error("missing event_type")]
    MissingEventType,
    /// An `event_type` that is neither a known name nor a short lower-case word.
    #[error("bad event_type")]
    BadEventType,
    /// `src_ip` or `dest_ip` is not an IPv4 or IPv6 address.
    #[error("bad IP address in {field}")]
    BadAddress {
        /// The field.
        field: EveField,
    },
    /// `proto` is neither a known protocol keyword nor a number up to 255.
    #[error("unknown protocol in proto")]
    BadProto,
    /// A field the event's kind requires is absent (`alert` on an alert, `flow` on a flow event,
    /// `alert.signature_id`, `alert.severity`).
    #[error("missing field {field}")]
    MissingField {
        /// The field.
        field: EveField,
    },
    /// A field of the wrong JSON type, or a number out of range (a port above 65535, a negative or fractional
    /// counter, a severity above 255).
    #[error("bad value in {field}: wrong type or out of range")]
    BadField {
        /// The field.
        field: EveField,
    },
    /// A decoded field appears twice in its object: which one to believe is ambiguous.
    #[error("duplicate field {field}")]
    DuplicateField {
        /// The field.
        field: EveField,
    },
}

/// The variant of an [`EveError`] without its details: the key of [`EveStats::by_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // each variant is the `EveError` variant of its name
pub enum EveErrorKind {
    Empty,
    LineTooLong,
    NotJson,
    Truncated,
    NotAnObject,
    NoTimestamp,
    BadTimestamp,
    MissingEventType,
    BadEventType,
    BadAddress,
    BadProto,
    MissingField,
    BadField,
    DuplicateField,
}

impl EveErrorKind {
    /// The kind in words, for counts of skipped lines.
    pub fn describe(self) -> &'static str {
        match self {
            EveErrorKind::Empty => "empty",
            EveErrorKind::LineTooLong => "line too long",
            EveErrorKind::NotJson => "not JSON",
            EveErrorKind::Truncated => "truncated JSON",
            EveErrorKind::NotAnObject => "not a JSON object",
            EveErrorKind::NoTimestamp => "no timestamp",
            EveErrorKind::BadTimestamp => "bad timestamp",
            EveErrorKind::MissingEventType => "missing event_type",
            EveErrorKind::BadEventType => "bad event_type",
            EveErrorKind::BadAddress => "bad IP address",
            EveErrorKind::BadProto => "unknown protocol",
            EveErrorKind::MissingField => "missing field",
            EveErrorKind::BadField => "bad value",
            EveErrorKind::DuplicateField => "duplicate field",
        }
    }
}

impl fmt::Display for EveErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl EveError {
    /// The variant without its details.
    pub fn kind(&self) -> EveErrorKind {
        match self {
            EveError::Empty => EveErrorKind::Empty,
            EveError::LineTooLong { .. } => EveErrorKind::LineTooLong,
            EveError::NotJson { .. } => EveErrorKind::NotJson,
            EveError::Truncated => EveErrorKind::Truncated,
            EveError::NotAnObject => EveErrorKind::NotAnObject,
            EveError::NoTimestamp => EveErrorKind::NoTimestamp,
            EveError::BadTimestamp { .. } => EveErrorKind::BadTimestamp,
            EveError::MissingEventType => EveErrorKind::MissingEventType,
            EveError::BadEventType => EveErrorKind::BadEventType,
            EveError::BadAddress { .. } => EveErrorKind::BadAddress,
            EveError::BadProto => EveErrorKind::BadProto,
            EveError::MissingField { .. } => EveErrorKind::MissingField,
            EveError::BadField { .. } => EveErrorKind::BadField,
            EveError::DuplicateField { .. } => EveErrorKind::DuplicateField,
        }
    }

    /// The field the error is about, when it is about one.
    pub fn field(&self) -> Option<EveField> {
        match *self {
            EveError::NoTimestamp => Some(EveField::Timestamp),
            EveError::MissingEventType | EveError::BadEventType => Some(EveField::EventType),
            EveError::BadProto => Some(EveField::Proto),
            EveError::BadTimestamp { field, .. }
            | EveError::BadAddress { field }
            | EveError::MissingField { field }
            | EveError::BadField { field }
            | EveError::DuplicateField { field } => Some(field),
            _ => None,
        }
    }
}

/// Parses one eve.json line (a trailing `\n` or `\r\n` is ignored; a blank line is [`EveError::Empty`]).
pub fn parse_line(line: &str) -> Result<EveEvent, EveError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.len() > MAX_LINE_BYTES {
        return Err(EveError::LineTooLong { len: line.len() });
    }
    if line.bytes().all(|b| matches!(b, b' ' | b'\t')) {
        return Err(EveError::Empty);
    }
    let ctx = Ctx::default();
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = EventSeed { ctx: &ctx }.deserialize(&mut de).and_then(|event| de.end().map(|()| event));
    parsed.map_err(|e| {
        // A failure found by the visitors themselves says exactly what is wrong; otherwise serde_json's category
        // says whether the text is not JSON, ends early, or holds a value of the wrong type for the field being read.
        if let Some(failure) = ctx.failure.get() {
            return failure;
        }
        match e.classify() {
            serde_json::error::Category::Eof => EveError::Truncated,
            serde_json::error::Category::Data => match ctx.at.get() {
                Some(field) => EveError::BadField { field },
                None => EveError::NotAnObject,
            },
            // A number beyond `f64` is valid JSON that serde_json cannot hold: out of range for the field.
            serde_json::error::Category::Syntax => match ctx.at.get() {
                Some(field) if is_number_out_of_range(&e) => EveError::BadField { field },
                _ => EveError::NotJson { column: e.column() },
            },
            // A `&str` is read without I/O; kept for completeness.
            serde_json::error::Category::Io => EveError::NotJson { column: e.column() },
        }
    })
}

/// serde_json's error for a number beyond `f64`, known only by its message (`number out of range at line 1 column
/// N`; the test of a 5,000-digit `flow_id` keeps this honest across serde_json versions).
fn is_number_out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}

/// The lines of `text` (split on `\n`, a trailing `\r` removed; blank lines skipped), each parsed.
pub fn parse_lines(text: &str) -> impl Iterator<Item = Result<EveEvent, EveError>> + '_ {
    lines(text).map(parse_line)
}

/// The events of `text` that parse, counting every outcome in `stats`.
pub fn parse_lines_counted<'a, 's>(
    text: &'a str,
    stats: &'s mut EveStats,
) -> impl Iterator<Item = EveEvent> + use<'a, 's> {
    parse_lines(text).filter_map(move |result| {
        stats.record(&result);
        result.ok()
    })
}

/// How many lines parsed, by event type, and how many did not, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EveStats {
    /// Lines that parsed.
    pub parsed: u64,
    /// Lines that did not.
    pub malformed: u64,
    /// Malformed lines by kind of error.
    pub by_error: BTreeMap<EveErrorKind, u64>,
    /// Parsed events by `event_type`: the known kinds and up to [`MAX_OTHER_EVENT_NAMES`] other names by name, any
    /// further names together under `other`.
    pub by_event: BTreeMap<String, u64>,
}

impl EveStats {
    /// Counts one outcome.
    pub fn record(&mut self, result: &Result<EveEvent, EveError>) {
        match result {
            Ok(event) => {
                self.parsed += 1;
                let name = event.kind.as_str();
                if let Some(n) = self.by_event.get_mut(name) {
                    *n += 1;
                    return;
                }
                // A new name: one of the known kinds, or another name while there is room for one more.
                let others = self.by_event.keys().filter(|k| is_other_name(k)).count();
                let name = if is_other_name(name) && others >= MAX_OTHER_EVENT_NAMES { "other" } else { name };
                *self.by_event.entry(name.to_owned()).or_insert(0) += 1;
            }
            Err(e) => {
                self.malformed += 1;
                *self.by_error.entry(e.kind()).or_insert(0) += 1;
            }
        }
    }

    /// Parses every line of `text` and counts the outcomes.
    pub fn of_text(text: &str) -> Self {
        let mut stats = EveStats::default();
        for result in parse_lines(text) {
            stats.record(&result);
        }
        stats
    }

    /// Lines seen.
    pub fn total(&self) -> u64 {
        self.parsed + self.malformed
    }

    /// Malformed lines with errors of `kind`.
    pub fn count(&self, kind: EveErrorKind) -> u64 {
        self.by_error.get(&kind).copied().unwrap_or(0)
    }

    /// Parsed events of `event_type` `name`.
    pub fn events(&self, name: &str) -> u64 {
        self.by_event.get(name).copied().unwrap_or(0)
    }
}

/// A name counted under its own key as an [`EventKind::Other`] (not a known kind, not the `other` bucket).
fn is_other_name(name: &str) -> bool {
    name != "other" && EventKind::known(name).is_none() && is_word(name)
}

/// Reads a Suricata timestamp: `YYYY-MM-DDTHH:MM:SS`, an optional fraction (`.251547`, any number of digits, read
/// to the nanosecond), and a UTC offset: `+0100` as Suricata writes it, or `+01:00` and `Z` as other producers do.
/// The same instants as chrono's `%Y-%m-%dT%H:%M:%S%.f%z`, without its format interpreter.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, TimestampProblem> {
    let b = s.as_bytes();
    let digits = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let layout = at(4, b'-') && at(7, b'-') && (at(10, b'T') || at(10, b't')) && at(13, b':') && at(16, b':');
    let fields = (digits(0, 4), digits(5, 7), digits(8, 10), digits(11, 13), digits(14, 16), digits(17, 19));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = fields else {
        return Err(TimestampProblem::Layout);
    };
    if !layout {
        return Err(TimestampProblem::Layout);
    }
    let mut pos = 19;
    let mut nanos = 0u32;
    if at(19, b'.') {
        pos = 20;
        let mut scale = 100_000_000u32;
        while let Some(&c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
            // Digits beyond the ninth are below a nanosecond: read (they must be digits) and dropped.
            nanos += u32::from(c - b'0') * scale;
            scale /= 10;
            pos += 1;
        }
        if pos == 20 {
            return Err(TimestampProblem::Layout);
        }
    }
    let offset_seconds = match b.get(pos..).unwrap_or_default() {
        [] => return Err(TimestampProblem::NoOffset),
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => ([*h1, *h2], [*m1, *m2]),
                _ => return Err(TimestampProblem::Offset),
            };
            let two =
                |d: [u8; 2]| d.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')));
            let (Some(h), Some(m)) = (two(h), two(m)) else { return Err(TimestampProblem::Offset) };
            if h > 23 || m > 59 {
                return Err(TimestampProblem::Offset);
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        [b'Z' | b'z', ..] => return Err(TimestampProblem::Offset),
        _ => return Err(TimestampProblem::Layout),
    };
    // Four digits give years 0-9999, far inside chrono's range: the checks below fail only for impossible dates.
    let local = NaiveDate::from_ymd_opt(year as i32, month, day)
        .and_then(|date| date.and_hms_nano_opt(hour, minute, second, nanos))
        .ok_or(TimestampProblem::NoSuchTime)?;
    let utc = local.checked_sub_signed(TimeDelta::seconds(offset_seconds)).ok_or(TimestampProblem::NoSuchTime)?;
    Ok(utc.and_utc())
}

/// What the visitors tell `parse_line` beyond serde's error: the field being read when a value failed, and a
/// failure they found themselves (which wins).
#[derive(Default)]
struct Ctx {
    at: Cell<Option<EveField>>,
    failure: Cell<Option<EveError>>,
}

impl Ctx {
    /// Records `failure` and returns an error to stop deserialising; `parse_line` reports `failure`.
    fn fail<E: de::Error>(&self, failure: EveError) -> E {
        self.failure.set(Some(failure));
        E::custom(failure)
    }
}

/// A string handed to `f` as it is read, borrowed from the line when it has no escapes (no allocation either way):
/// for the fields that are parsed rather than kept.
struct WithStr<F>(F);

impl<'de, T, F: FnOnce(&str) -> T> DeserializeSeed<'de> for WithStr<F> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, T, F: FnOnce(&str) -> T> Visitor<'de> for WithStr<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.0)(v))
    }
}

/// As [`WithStr`], with `null` read as absent (Suricata omits a field instead, other producers write `null`).
struct OptStr<F>(F);

impl<'de, T, F: FnOnce(&str) -> T> DeserializeSeed<'de> for OptStr<F> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, T, F: FnOnce(&str) -> T> Visitor<'de> for OptStr<F> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        deserializer.deserialize_str(WithStr(self.0)).map(Some)
    }
}

/// Marks `field` seen in `seen`, failing on a second time.
fn once<E: de::Error>(ctx: &Ctx, seen: &mut u64, field: EveField) -> Result<(), E> {
    if *seen & field.bit() != 0 {
        return Err(ctx.fail(EveError::DuplicateField { field }));
    }
    *seen |= field.bit();
    ctx.at.set(Some(field));
    Ok(())
}

/// The top-level object.
struct EventSeed<'c> {
    ctx: &'c Ctx,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = EveEvent;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<EveEvent, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = EveEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an eve.json event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EveEvent, A::Error> {
        let ctx = self.ctx;
        let mut seen = 0u64;
        let mut timestamp = None;
        let mut kind = None;
        let mut event = EveEvent {
            timestamp: DateTime::<Utc>::MIN_UTC,
            kind: EventKind::Alert,
            flow_id: None,
            in_iface: None,
            src_ip: None,
            src_port: None,
            dest_ip: None,
            dest_port: None,
            proto: None,
            app_proto: None,
            community_id: None,
            alert: None,
            flow: None,
        };
        while let Some(key) = map.next_key_seed(WithStr(EveField::top))? {
            let Some(field) = key else {
                // Unknown fields (and the objects of the other event types) are skipped unread.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            once(ctx, &mut seen, field)?;
            match field {
                EveField::Timestamp => {
                    let t = map.next_value_seed(WithStr(parse_timestamp))?;
                    timestamp = Some(t.map_err(|problem| ctx.fail(EveError::BadTimestamp { field, problem }))?);
                }
                EveField::EventType => {
                    let k = map.next_value_seed(WithStr(EventKind::from_name))?;
                    kind = Some(k.ok_or_else(|| ctx.fail(EveError::BadEventType))?);
                }
                EveField::FlowId => event.flow_id = map.next_value()?,
                EveField::SrcIp | EveField::DestIp => {
                    let ip = map.next_value_seed(OptStr(|s: &str| s.parse::<IpAddr>().ok()))?;
                    let ip = match ip {
                        None => None,
                        Some(ip) => Some(ip.ok_or_else(|| ctx.fail(EveError::BadAddress { field }))?),
                    };
                    if field == EveField::SrcIp {
                        event.src_ip = ip;
                    } else {
                        event.dest_ip = ip;
                    }
                }
                EveField::SrcPort => event.src_port = map.next_value()?,
                EveField::DestPort => event.dest_port = map.next_value()?,
                EveField::Proto => {
                    event.proto = match map.next_value_seed(OptStr(Proto::parse))? {
                        None => None,
                        Some(p) => Some(p.ok_or_else(|| ctx.fail(EveError::BadProto))?),
                    }
                }
                EveField::InIface => event.in_iface = map.next_value()?,
                EveField::AppProto => event.app_proto = map.next_value()?,
                EveField::CommunityId => event.community_id = map.next_value()?,
                EveField::Alert => event.alert = Some(map.next_value_seed(AlertSeed { ctx })?),
                EveField::Flow => event.flow = Some(map.next_value_seed(FlowSeed { ctx })?),
                // `top` gives none of the nested fields.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            ctx.at.set(None);
        }
        event.timestamp = timestamp.ok_or_else(|| ctx.fail(EveError::NoTimestamp))?;
        event.kind = kind.ok_or_else(|| ctx.fail(EveError::MissingEventType))?;
        if event.kind == EventKind::Alert && event.alert.is_none() {
            return Err(ctx.fail(EveError::MissingField { field: EveField::Alert }));
        }
        if event.kind == EventKind::Flow && event.flow.is_none() {
            return Err(ctx.fail(EveError::MissingField { field: EveField::Flow }));
        }
        Ok(event)
    }
}

/// `alert{}`.
struct AlertSeed<'c> {
    ctx: &'c Ctx,
}

impl<'de> DeserializeSeed<'de> for AlertSeed<'_> {
    type Value = EveAlert;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<EveAlert, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AlertSeed<'_> {
    type Value = EveAlert;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an alert object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EveAlert, A::Error> {
        let ctx = self.ctx;
        let mut seen = 0u64;
        let (mut signature_id, mut severity) = (None, None);
        let mut alert = EveAlert {
            action: AlertAction::Unknown,
            gid: 1,
            signature_id: 0,
            rev: 0,
            signature: String::new(),
            category: None,
            severity: 0,
        };
        while let Some(key) = map.next_key_seed(WithStr(EveField::alert))? {
            let Some(field) = key else {
                // `metadata`, `rule`, `source`, `target`, `xff`... are not decoded.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            once(ctx, &mut seen, field)?;
            match field {
                EveField::AlertAction => {
                    alert.action = map.next_value_seed(WithStr(|s: &str| match s {
                        "allowed" => AlertAction::Allowed,
                        "blocked" => AlertAction::Blocked,
                        _ => AlertAction::Unknown,
                    }))?
                }
                EveField::AlertGid => alert.gid = map.next_value()?,
                EveField::AlertSignatureId => signature_id = Some(map.next_value()?),
                EveField::AlertRev => alert.rev = map.next_value()?,
                EveField::AlertSignature => alert.signature = map.next_value()?,
                EveField::AlertCategory => alert.category = map.next_value()?,
                EveField::AlertSeverity => severity = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            // Back to the enclosing field: an error now is about `alert` itself.
            ctx.at.set(Some(EveField::Alert));
        }
        alert.signature_id =
            signature_id.ok_or_else(|| ctx.fail(EveError::MissingField { field: EveField::AlertSignatureId }))?;
        alert.severity = severity.ok_or_else(|| ctx.fail(EveError::MissingField { field: EveField::AlertSeverity }))?;
        Ok(alert)
    }
}

/// `flow{}`.
struct FlowSeed<'c> {
    ctx: &'c Ctx,
}

impl<'de> DeserializeSeed<'de> for FlowSeed<'_> {
    type Value = EveFlow;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<EveFlow, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FlowSeed<'_> {
    type Value = EveFlow;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a flow object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EveFlow, A::Error> {
        let ctx = self.ctx;
        let mut seen = 0u64;
        let mut flow = EveFlow::default();
        while let Some(key) = map.next_key_seed(WithStr(EveField::flow))? {
            let Some(field) = key else {
                // `age`, `state`, `reason`, `alerted`, `bypass`... are not decoded.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            once(ctx, &mut seen, field)?;
            match field {
                EveField::FlowPktsToserver => flow.pkts_toserver = map.next_value()?,
                EveField::FlowPktsToclient => flow.pkts_toclient = map.next_value()?,
                EveField::FlowBytesToserver => flow.bytes_toserver = map.next_value()?,
                EveField::FlowBytesToclient => flow.bytes_toclient = map.next_value()?,
                EveField::FlowStart | EveField::FlowEnd => {
                    let t = match map.next_value_seed(OptStr(parse_timestamp))? {
                        None => None,
                        Some(t) => Some(t.map_err(|problem| ctx.fail(EveError::BadTimestamp { field, problem }))?),
                    };
                    if field == EveField::FlowStart {
                        flow.start = t;
                    } else {
                        flow.end = t;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            ctx.at.set(Some(EveField::Flow));
        }
        Ok(flow)
    }
}
