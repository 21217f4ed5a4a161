//! Log analytics for Portcullis: the pfSense `filterlog` parser, the compact stored record ([`compact`]),
//! mergeable aggregates ([`rollup`]), detections and the threat score ([`detect`]), the filterlog writer
//! ([`format`](mod@format)), the security report ([`report`]), and the Suricata `eve.json` parser ([`eve`]: one
//! JSON event per line into an owned [`eve::EveEvent`], alerts and flow counters decoded, other event types
//! counted).
//!
//! [`parse_line`] reads one line in any of the forms pfSense and syslog collectors produce (contract §8: BSD/RFC
//! 3164 with or without `<PRI>` and host, RFC 5424, RFC 3339-timestamped collector lines, and the bare CSV body)
//! into a [`FilterLogEntry`] that borrows its text from the line: no allocation, addresses parsed into
//! [`std::net::IpAddr`], numbers into integers, the protocol-specific fields in a small typed struct per protocol
//! ([`ProtocolInfo`]). Malformed input gives a [`ParseError`] naming what is wrong and, for the CSV body, the field
//! by index and name (its `Display` is the reason an import reports for a skipped line); no input makes the parser
//! panic (all indexing is checked, and the crate denies the lints that would allow otherwise).
//!
//! Producer variants understood beyond pfSense's default lines (each rule cites its source where it is applied):
//!
//! - **OPNsense**: field 3 holds the pf rule's label (a 32-hex-digit MD5 hash from the GUI, a UUID, free text,
//!   or `0` without one) instead of pfSense's numeric tracker: [`FilterLogEntry::rule_label`] keeps it and
//!   [`FilterLogEntry::rule_id`] returns it; [`FilterLogEntry::tracker`] stays the number when there is one. The
//!   rest of the layout is pfSense's (OPNsense prints IPv6 protocol names in lower case). OPNsense's ICMP layout
//!   `datalength=N,type,code,id,seq,mtu` is [`IcmpDetail::Coded`].
//! - **Placeholders**: an action, reason or direction filterlog has no word for prints as `unkn(%u)` on pfSense
//!   (the format string unformatted), `unkn(N)`, or `unknown(N)` on OPNsense: the action and direction become
//!   [`Action::Unknown`] / [`Direction::Unknown`] (so do pf's `scrub`/`nat`/`binat`/`rdr`/`synproxy-drop` and
//!   `in/out`), the reason stays text. The line is kept, not refused.
//! - **Rule numbers**: pf's "no rule" (`4294967295`, or an empty field on OPNsense) is `rule_number: None`;
//!   sub-rule numbers and anchor names (fields 1 and 2) are kept.
//! - **Prefixes**: tabs may stand for the spaces of a prefix (`Jul  3 19:10:30\tfw\tfilterlog[1]:\t...`), and a BSD
//!   or RFC 3339 timestamp may stand alone before the CSV body.
//! - **ICMP lengths**: pfSense appends the ICMP message length to the last ICMP field without a separator
//!   (`request,37728,164` is seq 1, 64 bytes); it is split off by the IP length into [`IcmpInfo::data_length`].
//!
//! - [`parse_lines`] / [`parse_lines_counted`] / [`ParseStats`]: many lines at once, with counts per error kind
//!   ([`ParseErrorKind::describe`] words them).
//! - [`FilterLogEntry::timestamp`]: BSD timestamps have no year or zone; this resolves them against a year hint
//!   and the current time.
//! - [`FilterLogEntry::to_record`]: the owned, serialisable [`FilterLogRecord`] with the tool output's field names.
//! - [`FilterLogEntry::rule_id`] (also [`FilterLogEntry::tracker`]) links a line to its rule.
//!
//! ```
//! use portcullis_logs::{parse_line, Action};
//!
//! let line = "<134>Jul  3 19:10:30 filterlog[72237]: 176,,,1520797901,igb1.27,match,pass,in,4,0xb8,,64,58355,0,none,\
//!             17,udp,76,10.170.27.27,216.229.4.66,123,123,56";
//! let entry = parse_line(line).unwrap();
//! assert_eq!(entry.action, Action::Pass);
//! assert_eq!(entry.tracker, Some(1520797901));
//! assert_eq!(entry.rule_id(), Some("1520797901"));
//! assert_eq!(entry.dst_port(), Some(123));
//! assert_eq!(entry.to_record().dst_port.as_deref(), Some("123"));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod body;
pub mod compact;
pub mod detect;
mod entry;
mod error;
pub mod eve;
pub mod format;
mod header;
mod icmp;
pub mod ids;
mod ip;
mod num;
mod record;
pub mod report;
pub mod rollup;
mod stats;
mod time;

pub use entry::{
    Action, CarpInfo, Direction, FilterLogEntry, IcmpDetail, IcmpInfo, IpHeader, Ipv4Header, Ipv6Header, OtherInfo,
    ProtocolInfo, SeqRange, SyslogFormat, TcpInfo, UdpInfo,
};
pub use error::{Field, HeaderPart, ParseError, ParseErrorKind};
pub use record::FilterLogRecord;
pub use stats::{ParseStats, parse_lines, parse_lines_counted};

/// Parses one filterlog line (a trailing `\n` or `\r\n` is ignored; a blank line is [`ParseError::Empty`]).
pub fn parse_line(line: &str) -> Result<FilterLogEntry<'_>, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.bytes().all(|b| b == b' ' || b == b'\t') {
        return Err(ParseError::Empty);
    }
    body::parse(header::split(line)?)
}
