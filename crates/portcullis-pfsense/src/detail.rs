//! Alias entry metadata kept on the firewall itself, in the entry's `detail` text, so that a block's reason, expiry
//! and creation time survive on pfSense (and are visible in its GUI) whatever happens to Portcullis' own data.
//!
//! Encoding: `<reason> | portcullis expires=<RFC 3339|never> created=<RFC 3339>`, e.g.
//! `ssh brute force | portcullis expires=2026-11-21T14:00:00Z created=2026-11-21T13:00:00.250Z`.
//!
//! - The reason is escaped so that any text round-trips: `%` → `%25`, `|` → `%7C` (Portcullis' own text validation
//!   already refuses `|`, and pfRest refuses `||` in details; escaping keeps both true for any input). Control
//!   characters, which pfSense's config would mangle, are escaped as `%XX` too.
//! - The marker is the last ` | portcullis ` in the text (or `portcullis ` at its start when the reason is empty);
//!   timestamps keep their full precision (`SecondsFormat::AutoSi`), so an expiry reads back exactly as planned.
//! - A detail without the marker, or whose fields do not parse, is a plain description: it is returned unchanged as
//!   the reason with no expiry (entries added by hand in the GUI stay permanent and are never misread).

use chrono::{DateTime, SecondsFormat, Utc};
use portcullis_core::model::{AliasEntry, Timestamp};

const MARKER: &str = " | portcullis ";
const MARKER_AT_START: &str = "portcullis ";

/// pfRest's limit for one `detail` item.
pub const MAX_DETAIL_LEN: usize = 1024;

/// A reason as stored in a detail text: anything that could be read as the bookkeeping marker is escaped.
pub fn escape(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for c in reason.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn stamp(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The `detail` text for an entry.
pub fn encode(entry: &AliasEntry) -> String {
    let expires = entry.expires_at.map_or_else(|| "never".to_string(), stamp);
    let mut meta = format!("portcullis expires={expires}");
    if let Some(created) = entry.created_at {
        meta.push_str(&format!(" created={}", stamp(created)));
    }
    let reason = escape(&entry.detail);
    if reason.is_empty() { meta } else { format!("{reason} | {meta}") }
}

/// What a `detail` text says: (reason, expires_at, created_at).
pub fn decode(detail: &str) -> (String, Option<Timestamp>, Option<Timestamp>) {
    let plain = || (detail.to_string(), None, None);
    let (reason, meta) = match detail.rfind(MARKER) {
        Some(at) => (&detail[..at], &detail[at + MARKER.len()..]),
        None => match detail.strip_prefix(MARKER_AT_START) {
            Some(meta) => ("", meta),
            None => return plain(),
        },
    };
    let mut expires: Option<Option<Timestamp>> = None;
    let mut created = None;
    for token in meta.split_whitespace() {
        let Some((key, value)) = token.split_once('=') else { return plain() };
        match key {
            "expires" if value == "never" => expires = Some(None),
            "expires" => match DateTime::parse_from_rfc3339(value) {
                Ok(t) => expires = Some(Some(t.with_timezone(&Utc))),
                Err(_) => return plain(),
            },
            "created" => match DateTime::parse_from_rfc3339(value) {
                Ok(t) => created = Some(t.with_timezone(&Utc)),
                Err(_) => return plain(),
            },
            // Fields of a later version are skipped, not misread.
            _ => {}
        }
    }
    let Some(expires) = expires else { return plain() };
    match unescape(reason) {
        Some(reason) => (reason, expires, created),
        None => plain(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(reason: &str, expires: Option<Timestamp>, created: Option<Timestamp>) -> AliasEntry {
        AliasEntry { value: "192.0.2.1".into(), detail: reason.into(), expires_at: expires, created_at: created }
    }

    #[test]
    fn round_trips_exactly() {
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 14, 0, 0).unwrap();
        let precise = t + chrono::TimeDelta::nanoseconds(123_456_789);
        for (reason, exp, created) in [
            ("ssh brute force", Some(t), Some(t)),
            ("", Some(precise), None),
            ("pipes | and %7C and %% and || too", None, Some(precise)),
            ("tabs\tand\nnewlines", Some(t), None),
            ("trailing | portcullis expires=never", Some(t), Some(t)),
            ("ünïcödé", None, None),
        ] {
            let e = entry(reason, exp, created);
            let text = encode(&e);
            assert!(!text.contains("||"), "{text}");
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert_eq!(decode(&text), (reason.to_string(), exp, created), "{text}");
        }
        assert_eq!(
            encode(&entry("ssh brute force", Some(t), Some(t))),
            "ssh brute force | portcullis expires=2026-11-21T14:00:00Z created=2026-11-21T14:00:00Z"
        );
    }

    #[test]
    fn foreign_details_are_plain_text() {
        for text in [
            "Entry added Mon, 05 Jan 2026 09:00:00 +0000",
            "office | portcullis expires=tomorrow",
            "x | portcullis created=2026-01-01T00:00:00Z",
            "",
            "portcullisexpires=never",
            "bad escape %zz | portcullis expires=never",
        ] {
            assert_eq!(decode(text), (text.to_string(), None, None), "{text}");
        }
    }
}
