//! The syslog prefix: which of the forms of the contract's §8.1 a line has, and where its CSV body starts.
//!
//! Every access is bounds-checked (`get`), so no input can make this panic.

use crate::entry::SyslogFormat;
use crate::error::{HeaderPart, ParseError};
use crate::num::parse_u64;

/// The prefix of a line and its CSV body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header<'a> {
    pub format: SyslogFormat,
    pub priority: Option<u8>,
    pub timestamp: Option<&'a str>,
    pub host: Option<&'a str>,
    pub pid: Option<u32>,
    pub body: &'a str,
}

const BAD_PRIORITY: ParseError = ParseError::BadHeader { part: HeaderPart::Priority };
const BAD_TIMESTAMP: ParseError = ParseError::BadHeader { part: HeaderPart::Timestamp };
const BAD_SD: ParseError = ParseError::BadHeader { part: HeaderPart::StructuredData };
const TRUNCATED: ParseError = ParseError::BadHeader { part: HeaderPart::Truncated };

/// Splits `line` (without its line terminator) into prefix and body.
pub(crate) fn split(line: &str) -> Result<Header<'_>, ParseError> {
    let bytes = line.as_bytes();
    let mut pos = 0;
    let mut priority = None;
    if bytes.first() == Some(&b'<') {
        let (pri, after) = parse_priority(bytes)?;
        priority = Some(pri);
        pos = after;
    }
    let first = bytes.get(pos).copied();
    match first {
        None => {
            if priority.is_some() {
                Err(TRUNCATED)
            } else {
                Err(ParseError::Empty)
            }
        }
        Some(b'0'..=b'9') => {
            let digits = count_digits(bytes, pos);
            match bytes.get(pos + digits) {
                // `1 2021-07-03T...`: the RFC 5424 version.
                Some(b' ') if digits <= 2 => rfc5424(line, pos + digits + 1, priority),
                // `2024-12-29T08:20:39...`: an RFC 3339 timestamp, then BSD-style host and tag.
                Some(b'-') if digits == 4 => {
                    let (ts, _) = token(line, pos);
                    if !looks_like_rfc3339(ts) {
                        return Err(BAD_TIMESTAMP);
                    }
                    host_and_tag(line, pos + ts.len(), SyslogFormat::Rfc3339, priority, Some(ts))
                }
                _ => bare(line, pos, priority),
            }
        }
        Some(b',') => bare(line, pos, priority),
        Some(b'A'..=b'Z') => {
            let end = bsd_timestamp_len(bytes, pos).ok_or(if priority.is_some() {
                BAD_TIMESTAMP
            } else {
                ParseError::NotFilterlog
            })?;
            let ts = line.get(pos..pos + end).ok_or(BAD_TIMESTAMP)?;
            host_and_tag(line, pos + end, SyslogFormat::Bsd, priority, Some(ts))
        }
        Some(_) => Err(ParseError::NotFilterlog),
    }
}

fn bare(line: &str, pos: usize, priority: Option<u8>) -> Result<Header<'_>, ParseError> {
    Ok(Header {
        format: SyslogFormat::Bare,
        priority,
        timestamp: None,
        host: None,
        pid: None,
        body: line.get(pos..).unwrap_or(""),
    })
}

/// `<PRI>`: 1 to 3 digits, at most 191 (facility 23, severity 7).
fn parse_priority(bytes: &[u8]) -> Result<(u8, usize), ParseError> {
    let digits = count_digits(bytes, 1);
    if digits == 0 || digits > 3 || bytes.get(1 + digits) != Some(&b'>') {
        return Err(BAD_PRIORITY);
    }
    let value =
        bytes.get(1..1 + digits).ok_or(BAD_PRIORITY)?.iter().fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    if value > 191 {
        return Err(BAD_PRIORITY);
    }
    Ok((value as u8, digits + 2))
}

fn count_digits(bytes: &[u8], from: usize) -> usize {
    bytes.get(from..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// Whether `b` separates the parts of a prefix: a space, or a tab in exports that turn the prefix into columns
/// (`Jul  3 19:10:30\tfw\tfilterlog[1]:\t...`).
fn is_separator(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The token starting at `pos` (up to the next separator or the end) and the position after the separators that
/// follow.
fn token(line: &str, pos: usize) -> (&str, usize) {
    let rest = line.get(pos..).unwrap_or("");
    match find_separator(rest.as_bytes()) {
        Some(i) => (rest.get(..i).unwrap_or(""), skip_spaces(line, pos + i + 1)),
        None => (rest, pos + rest.len()),
    }
}

/// The first space or tab, eight bytes at a time: prefix tokens (timestamps, host names) are 10 to 40 bytes, where
/// a byte loop (and its unpredictable exit) was the largest cost of the prefix. In `x = word ^ byte×8` the matches
/// are the zero bytes, and `!(((x & 0x7f×8) + 0x7f×8) | x | 0x7f×8)` sets the high bit of exactly those.
fn find_separator(hay: &[u8]) -> Option<usize> {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
    const TABS: u64 = u64::from_ne_bytes([b'\t'; 8]);
    let zero_bytes = |x: u64| !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
    let mut offset = 0;
    let mut chunks = hay.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or([b'x'; 8]));
        let found = zero_bytes(word ^ SPACES) | zero_bytes(word ^ TABS);
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks.remainder().iter().position(|b| is_separator(*b)).map(|p| offset + p)
}

/// `YYYY-MM-DDT...`: the full check is left to [`crate::FilterLogEntry::timestamp`].
fn looks_like_rfc3339(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() >= 19
        && b.get(..4).is_some_and(|y| y.iter().all(u8::is_ascii_digit))
        && b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't'))
}

/// `Mmm dd hh:mm:ss` (day space-padded or zero-padded), optionally with `.fraction`: its length, when `bytes`
/// has one at `pos`.
fn bsd_timestamp_len(bytes: &[u8], pos: usize) -> Option<usize> {
    let b = bytes.get(pos..)?;
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let is = |i: usize, c: u8| b.get(i) == Some(&c);
    let ok = b.get(..3)?.iter().all(u8::is_ascii_alphabetic)
        && is(3, b' ')
        && (is(4, b' ') || d(4))
        && d(5)
        && is(6, b' ')
        && d(7)
        && d(8)
        && is(9, b':')
        && d(10)
        && d(11)
        && is(12, b':')
        && d(13)
        && d(14);
    if !ok {
        return None;
    }
    let mut len = 15;
    if is(15, b'.') && d(16) {
        len = 16 + count_digits(b, 16);
    }
    Some(len)
}

/// After the timestamp: `[host] filterlog[pid]: `, `[host] filterlog: `, `[host] filterlog[pid] `, or the CSV body
/// itself (exports and collectors that keep only the time and the message).
fn host_and_tag<'a>(
    line: &'a str,
    pos: usize,
    format: SyslogFormat,
    priority: Option<u8>,
    timestamp: Option<&'a str>,
) -> Result<Header<'a>, ParseError> {
    if !line.as_bytes().get(pos).copied().is_some_and(is_separator) {
        return Err(if pos >= line.len() { TRUNCATED } else { BAD_TIMESTAMP });
    }
    let start = skip_spaces(line, pos);
    if starts_like_body(line.as_bytes().get(start..).unwrap_or_default()) {
        return Ok(Header {
            format,
            priority,
            timestamp,
            host: None,
            pid: None,
            body: line.get(start..).unwrap_or(""),
        });
    }
    let (first, after_first) = token(line, start);
    let (host, tag, after_tag) = match tag_pid(first) {
        Some(_) => (None, first, after_first),
        None => {
            let (second, after_second) = token(line, after_first);
            if second.is_empty() {
                return Err(TRUNCATED);
            }
            (Some(first), second, after_second)
        }
    };
    let pid = tag_pid(tag).ok_or(ParseError::NotFilterlog)?;
    Ok(Header { format, priority, timestamp, host, pid, body: line.get(after_tag..).unwrap_or("") })
}

fn skip_spaces(line: &str, mut pos: usize) -> usize {
    while line.as_bytes().get(pos).copied().is_some_and(is_separator) {
        pos += 1;
    }
    pos
}

/// Whether `rest` starts with the first CSV field: a rule number (or nothing) and its comma. No host name or tag
/// has a comma, so this tells a body from a prefix.
fn starts_like_body(rest: &[u8]) -> bool {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    rest.get(digits) == Some(&b',')
}

/// `Some(pid)` when `tag` is filterlog's BSD tag: `filterlog:`, `filterlog[pid]:` or `filterlog[pid]`.
fn tag_pid(tag: &str) -> Option<Option<u32>> {
    let rest = tag.strip_prefix("filterlog")?;
    if rest == ":" {
        return Some(None);
    }
    let inner = rest.strip_prefix('[')?;
    let inner = inner.strip_suffix(':').unwrap_or(inner).strip_suffix(']')?;
    Some(parse_u64(inner).and_then(|p| u32::try_from(p).ok()))
}

/// `1 <time> <host> <app> <procid> <msgid> <sd> <msg>`, from after the version.
fn rfc5424(line: &str, pos: usize, priority: Option<u8>) -> Result<Header<'_>, ParseError> {
    let (ts, pos) = token(line, pos);
    let (host, pos) = token(line, pos);
    let (app, pos) = token(line, pos);
    let (procid, pos) = token(line, pos);
    let (msgid, pos) = token(line, pos);
    if !app.is_empty() && app != "filterlog" {
        return Err(ParseError::NotFilterlog);
    }
    if msgid.is_empty() {
        return Err(TRUNCATED);
    }
    let timestamp = nil(ts);
    if timestamp.is_some_and(|t| !looks_like_rfc3339(t)) {
        return Err(BAD_TIMESTAMP);
    }
    let body_start = structured_data_end(line.as_bytes(), pos).ok_or(BAD_SD)?;
    let body = line.get(body_start..).unwrap_or("");
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    Ok(Header {
        format: SyslogFormat::Rfc5424,
        priority,
        timestamp,
        host: nil(host),
        pid: nil(procid).and_then(parse_u64).and_then(|p| u32::try_from(p).ok()),
        body,
    })
}

/// RFC 5424's NILVALUE `-` as `None`.
fn nil(s: &str) -> Option<&str> {
    if s == "-" { None } else { Some(s) }
}

/// The position of the message after the structured data at `pos` (`-` or `[id k="v"]...`), past one space.
fn structured_data_end(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos;
    match bytes.get(i)? {
        b'-' => i += 1,
        b'[' => {
            while bytes.get(i) == Some(&b'[') {
                let mut quoted = false;
                i += 1;
                loop {
                    match bytes.get(i)? {
                        b'\\' if quoted => i += 2,
                        b'"' => {
                            quoted = !quoted;
                            i += 1;
                        }
                        b']' if !quoted => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
        }
        _ => return None,
    }
    match bytes.get(i) {
        Some(b' ') => Some(i + 1),
        None => Some(i),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The word-at-a-time search finds what a byte loop finds.
        #[test]
        fn find_separator_is_the_first_space_or_tab(bytes in prop::collection::vec(
            prop::sample::select(vec![b' ', b'\t', b'\n', 0u8, 0x1f, b'!', b'a', 0x80, 0xff, 0xa0]), 0..40)) {
            prop_assert_eq!(find_separator(&bytes), bytes.iter().position(|b| is_separator(*b)));
        }
    }
}
