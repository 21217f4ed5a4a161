//! The one place configured secrets are taken out of text: a [`Scrubber`] knows every secret value of the
//! configuration (pfRest API keys, passwords, `user:password` pairs, JWTs obtained at run time) and the ways a
//! hostile or careless upstream can echo them back — raw, JSON-escaped (also PHP's `\/` and `\uXXXX`),
//! percent-encoded (upper- and lower-case hex, `+` for a space), HTML-escaped, and base64 (standard and URL-safe,
//! padded or not, and at the three byte alignments a secret can have inside a longer encoded text, which is how
//! `Authorization: Basic base64(user:password)` appears). Every covered byte range is replaced by [`REDACTED`];
//! overlapping and adjacent matches merge into one marker, so no part of any secret survives between them.
//!
//! The pfRest client scrubs every answer (the parsed JSON's strings and keys, header values, transport errors)
//! before any of it reaches an error, a log line, a tool's answer or an audit record; the binary also scrubs every
//! log line it writes with the same scrubber. A clone shares the same secrets.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this cannot be told apart from ordinary text (the configuration refuses them). The
/// scrubber still removes them if given one: over-redaction is preferred to a leak.
pub const MIN_SECRET_LEN: usize = 4;

/// Secrets learnt at run time (JWTs) kept at once: the newest ones, renewed tokens replace the oldest.
const MAX_RUNTIME: usize = 8;

/// Shifted base64 fragments (a secret encoded inside a longer text) shorter than this are not searched for.
const MIN_FRAGMENT: usize = 6;

/// Removes configured secrets and their encodings from text. Cheap to clone; clones share their secrets.
#[derive(Clone, Default)]
pub struct Scrubber {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    fixed: Vec<String>,
    runtime: VecDeque<String>,
    /// Every form of every secret, deduplicated.
    needles: Vec<Vec<u8>>,
    /// Needles by first byte (indexes into `needles`).
    by_first: Vec<Vec<usize>>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.read();
        write!(f, "Scrubber({} secrets, {} forms)", inner.fixed.len() + inner.runtime.len(), inner.needles.len())
    }
}

impl Scrubber {
    pub fn new() -> Self {
        Scrubber::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a secret (its value and every encoding of it). Empty values are ignored.
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut inner = self.write();
        if !inner.fixed.iter().any(|s| s == secret) {
            inner.fixed.push(secret.to_string());
            inner.rebuild();
        }
    }

    /// Adds HTTP Basic credentials: the password, and `user:password` (whose base64 is the `Authorization` header).
    pub fn add_basic(&self, username: &str, password: &str) {
        self.add(password);
        if !password.is_empty() {
            self.add(&format!("{username}:{password}"));
        }
    }

    /// Adds a secret learnt at run time (a JWT): only the newest few are kept, so renewals do not pile up.
    pub fn add_runtime(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut inner = self.write();
        if inner.runtime.iter().any(|s| s == secret) {
            return;
        }
        if inner.runtime.len() >= MAX_RUNTIME {
            inner.runtime.pop_front();
        }
        inner.runtime.push_back(secret.to_string());
        inner.rebuild();
    }

    /// Whether no secret is known.
    pub fn is_empty(&self) -> bool {
        self.read().needles.is_empty()
    }

    /// The text with every form of every secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let inner = self.read();
        inner.scrub(text).unwrap_or_else(|| text.to_string())
    }

    /// Scrubs every string and object key of a JSON value in place.
    pub fn scrub_value(&self, value: &mut Value) {
        let inner = self.read();
        if !inner.needles.is_empty() {
            inner.scrub_value(value);
        }
    }
}

impl Inner {
    fn rebuild(&mut self) {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for secret in self.fixed.iter().chain(self.runtime.iter()) {
            for form in forms(secret) {
                if !form.is_empty() && !needles.contains(&form) {
                    needles.push(form);
                }
            }
        }
        let mut by_first = vec![Vec::new(); 256];
        for (i, n) in needles.iter().enumerate() {
            by_first[usize::from(n[0])].push(i);
        }
        self.needles = needles;
        self.by_first = by_first;
    }

    /// `None` when nothing matched (the text is clean).
    fn scrub(&self, text: &str) -> Option<String> {
        if self.needles.is_empty() {
            return None;
        }
        let bytes = text.as_bytes();
        // Covered ranges, merged as they are found (positions are visited in order).
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for i in 0..bytes.len() {
            for &n in &self.by_first[usize::from(bytes[i])] {
                let needle = &self.needles[n];
                if bytes[i..].starts_with(needle) {
                    let end = i + needle.len();
                    match ranges.last_mut() {
                        Some(last) if i <= last.1 => last.1 = last.1.max(end),
                        _ => ranges.push((i, end)),
                    }
                }
            }
        }
        if ranges.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in ranges {
            // Needles are whole UTF-8 strings, so they start and end on character boundaries; a merged range is a
            // union of such ranges. Fall back to byte-safe slicing all the same.
            out.push_str(text.get(at..start).unwrap_or_default());
            out.push_str(REDACTED);
            at = end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Some(out)
    }

    fn scrub_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Some(clean) = self.scrub(s) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_value(v)),
            Value::Object(map) => {
                let dirty_keys: Vec<String> = map.keys().filter(|k| self.scrub(k).is_some()).cloned().collect();
                for key in dirty_keys {
                    if let Some(v) = map.remove(&key) {
                        let clean = self.scrub(&key).unwrap_or(key);
                        map.insert(clean, v);
                    }
                }
                map.values_mut().for_each(|v| self.scrub_value(v));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Every spelling of a secret that an upstream may echo.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let mut texts: Vec<String> = vec![secret.to_string(), json_escaped(secret, false), json_escaped(secret, true)];
    let pct = percent_encoded(secret, false);
    texts.push(pct.to_ascii_lowercase());
    texts.push(percent_encoded(secret, true));
    texts.push(pct);
    texts.push(html_escaped(secret));
    let mut out: Vec<Vec<u8>> = texts.into_iter().map(String::into_bytes).collect();
    for b64 in base64_forms(secret.as_bytes()) {
        out.push(b64.into_bytes());
    }
    out
}

/// JSON string content (without quotes); `php` also escapes `/` and every non-ASCII character as `\uXXXX`, as
/// PHP's `json_encode` does by default.
fn json_escaped(s: &str, php: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '/' if php => out.push_str("\\/"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if php && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Every byte outside RFC 3986's unreserved set as `%XX` (upper-case hex); `form` writes a space as `+`.
fn percent_encoded(s: &str, form: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(b)),
            b' ' if form => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Base64 of the secret alone (standard and URL-safe alphabets, padded or not), and the characters that encode it whatever the bytes around it, at each of the three alignments it can
/// have inside a longer encoded text.
fn base64_forms(secret: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for shift in 0..3usize {
        let mut bytes = vec![0u8; shift];
        bytes.extend_from_slice(secret);
        let padded = STANDARD.encode(&bytes);
        let enc = padded.trim_end_matches('=');
        let bits_before = 8 * shift;
        let first = bits_before.div_ceil(6);
        let last = (8 * (shift + secret.len())) / 6;
        let fragment = enc.get(first..last.min(enc.len())).unwrap_or_default();
        if shift == 0 {
            out.push(padded.clone());
            out.push(enc.to_string());
        }
        if fragment.len() >= MIN_FRAGMENT || shift == 0 {
            out.push(fragment.to_string());
        }
    }
    let url: Vec<String> = out.iter().map(|s| s.replace('+', "-").replace('/', "_")).collect();
    out.extend(url);
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    fn with(secrets: &[&str]) -> Scrubber {
        let s = Scrubber::new();
        for secret in secrets {
            s.add(secret);
        }
        s
    }

    #[test]
    fn raw_secret_is_replaced_and_the_rest_kept() {
        let s = with(&["s3cr3t-key"]);
        assert_eq!(s.scrub("X-API-Key: s3cr3t-key\r\nHost: fw"), "X-API-Key: [redacted]\r\nHost: fw");
        assert_eq!(s.scrub("nothing here"), "nothing here");
        assert_eq!(s.scrub(""), "");
        assert_eq!(s.scrub("s3cr3t-keys3cr3t-key"), "[redacted]");
    }

    #[test]
    fn an_empty_scrubber_changes_nothing() {
        let s = Scrubber::new();
        assert!(s.is_empty());
        assert_eq!(s.scrub("X-API-Key: abc"), "X-API-Key: abc");
        s.add("");
        assert!(s.is_empty());
    }

    #[test]
    fn secrets_that_contain_each_other_leave_nothing() {
        let s = with(&["pass", "password123", "word1"]);
        assert_eq!(s.scrub("a password123 b"), "a [redacted] b");
        assert_eq!(s.scrub("a pass b"), "a [redacted] b");
        assert_eq!(s.scrub("xword1x"), "x[redacted]x");
        // Added in the other order, the longer one still wins.
        let s = with(&["password123", "pass"]);
        assert_eq!(s.scrub("password123"), "[redacted]");
    }

    #[test]
    fn overlapping_secrets_merge_into_one_marker() {
        let s = with(&["abcdef", "defghi"]);
        assert_eq!(s.scrub("0abcdefghi1"), "0[redacted]1");
        // Adjacent matches merge too: no marker boundary hints at where one secret ends.
        assert_eq!(s.scrub("abcdefdefghi"), "[redacted]");
        let s = with(&["aaaa"]);
        assert_eq!(s.scrub("aaaaaaa!"), "[redacted]!");
    }

    #[test]
    fn encodings_are_replaced() {
        let secret = "p@ss w/rd\"é&<x>";
        let s = with(&[secret]);
        let cases = [
            serde_json::to_string(secret).unwrap().trim_matches('"').to_string(),
            json_escaped(secret, true),
            "p%40ss%20w%2Frd%22%C3%A9%26%3Cx%3E".to_string(),
            "p%40ss%20w%2frd%22%c3%a9%26%3cx%3e".to_string(),
            "p%40ss+w%2Frd%22%C3%A9%26%3Cx%3E".to_string(),
            "p@ss w/rd&quot;é&amp;&lt;x&gt;".to_string(),
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
        ];
        for form in cases {
            let text = format!("<{form}>");
            let out = s.scrub(&text);
            assert_eq!(out.trim_end_matches(['=', '>']), "<[redacted]", "{form} -> {out}");
        }
        // PHP's escapes really are what json_encode writes.
        assert_eq!(json_escaped("a/é", true), "a\\/\\u00e9");
        assert_eq!(json_escaped("😀", true), "\\ud83d\\ude00");
    }

    #[test]
    fn base64_padding_variants() {
        // Lengths 1, 2 and 0 mod 3 give two, one and no padding characters.
        for secret in ["abcd", "abcde", "abcdef", "admin:pfsense", "admin:pfsense!"] {
            let s = with(&[secret]);
            for engine in [&STANDARD, &URL_SAFE] {
                let padded = engine.encode(secret);
                let out = s.scrub(&format!("Basic {padded}\r\n"));
                assert!(out.starts_with("Basic [redacted]"), "{secret}: {out}");
                assert!(out.trim_start_matches("Basic [redacted]").trim_start_matches('=') == "\r\n", "{out}");
            }
        }
    }

    #[test]
    fn base64_inside_a_longer_encoded_text() {
        let secret = "the-api-key-0123456789";
        let s = with(&[secret]);
        for prefix in ["", "X", "XY", "XYZ", "X-API-Key: "] {
            let encoded = STANDARD.encode(format!("{prefix}{secret}\r\nHost: fw"));
            let out = s.scrub(&encoded);
            assert!(out.contains(REDACTED), "{prefix:?}: {out}");
            // What is left decodes to nothing that contains a long piece of the secret.
            let left: String = out.split(REDACTED).collect();
            assert!(!left.contains(&STANDARD_NO_PAD.encode(&secret[3..15])), "{prefix:?}: {out}");
        }
    }

    #[test]
    fn basic_credentials_cover_the_header() {
        let s = Scrubber::new();
        s.add_basic("admin", "hunter22");
        let header = format!("Authorization: Basic {}", STANDARD.encode("admin:hunter22"));
        assert_eq!(s.scrub(&header), "Authorization: Basic [redacted]");
        assert_eq!(s.scrub("admin:hunter22"), "[redacted]");
        assert_eq!(s.scrub("user admin"), "user admin", "the user name alone is not a secret");
    }

    #[test]
    fn runtime_secrets_are_bounded_and_shared_by_clones() {
        let s = Scrubber::new();
        let clone = s.clone();
        for i in 0..(MAX_RUNTIME + 3) {
            s.add_runtime(&format!("jwt.token.{i:04}"));
        }
        assert_eq!(clone.scrub("Bearer jwt.token.0010"), "Bearer [redacted]");
        assert_eq!(clone.scrub("jwt.token.0000"), "jwt.token.0000", "the oldest token was dropped");
    }

    #[test]
    fn short_secrets_are_still_removed() {
        let s = with(&["ab"]);
        assert_eq!(s.scrub("xabx"), "x[redacted]x");
    }

    #[test]
    fn json_values_are_scrubbed_in_strings_and_keys() {
        let s = with(&["topsecret"]);
        let mut v = serde_json::json!({"message": "key topsecret", "topsecret": [1, "a topsecret"], "n": 3});
        s.scrub_value(&mut v);
        assert_eq!(v, serde_json::json!({"message": "key [redacted]", "[redacted]": [1, "a [redacted]"], "n": 3}));
    }

    #[test]
    fn non_ascii_text_around_secrets_survives() {
        let s = with(&["clé-secrète"]);
        assert_eq!(s.scrub("é clé-secrète ü"), "é [redacted] ü");
        assert_eq!(s.scrub("ééé"), "ééé");
    }
}
