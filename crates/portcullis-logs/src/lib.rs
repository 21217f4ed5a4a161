//! Log analytics for Portcullis: the pfSense `filterlog` parser, the compact stored record ([`compact`]),
//! mergeable aggregates ([`rollup`]), detections and the threat score ([`detect`]), the filterlog writer
//! ([`format`](mod@format)) and the security report ([`report`]).
//!
//! [`parse_line`] reads one line in any of the forms pfSense and syslog collectors produce (contract §8: BSD/RFC
//! 3164 with or without `<PRI>` and host, RFC 5424, RFC 3339-timestamped collector lines, and the bare CSV body)
//! into a [`FilterLogEntry`] that borrows its text from the line: no allocation, addresses parsed into
//! [`std::net::IpAddr`], numbers into integers, the protocol-specific fields in a small typed struct per protocol
//! ([`ProtocolInfo`]). Malformed input gives a [`ParseError`] naming what is wrong and, for the CSV body, the field
//! by index and name; no input makes the parser panic (all indexing is checked, and the crate denies the lints that
//! would allow otherwise).
//!
//! - [`parse_lines`] / [`parse_lines_counted`] / [`ParseStats`]: many lines at once, with counts per error kind.
//! - [`FilterLogEntry::timestamp`]: BSD timestamps have no year or zone; this resolves them against a year hint
//!   and the current time.
//! - [`FilterLogEntry::to_record`]: the owned, serialisable [`FilterLogRecord`] with the tool output's field names.
//! - [`FilterLogEntry::tracker`] (also [`FilterLogEntry::rule_id`]) links a line to its rule.
//!
//! ```
//! use portcullis_logs::{parse_line, Action};
//!
//! let line = "<134>Jul  3 19:10:30 filterlog[72237]: 176,,,1520797901,igb1.27,match,pass,in,4,0xb8,,64,58355,0,none,\
//!             17,udp,76,10.170.27.27,216.229.4.66,123,123,56";
//! let entry = parse_line(line).unwrap();
//! assert_eq!(entry.action, Action::Pass);
//! assert_eq!(entry.tracker, Some(1520797901));
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
pub mod format;
mod header;
mod icmp;
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
