//! Small helpers: base64, percent/form decoding with pfRest's type inference, HMAC-SHA256, time.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64-encode; `url` selects the URL-safe alphabet without padding (as used by JWTs).
pub(crate) fn b64_encode(data: &[u8], url: bool) -> String {
    let table = if url { URL } else { STD };
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, c) in chars.iter().enumerate() {
            if i <= chunk.len() {
                out.push(table[*c as usize] as char);
            } else if !url {
                out.push('=');
            }
        }
    }
    out
}

/// Base64-decode either alphabet, padding optional. `None` on invalid input.
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for c in s.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}

/// Percent-decode a query-string component (`+` is a space).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// pfRest's form decoder type inference: `true`/`false`/`null` become bool/null, all-digit strings become integers,
/// `1.5`-style strings become floats; everything else stays a string.
pub(crate) fn infer(s: &str) -> Value {
    match s {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" => return Value::Null,
        _ => {}
    }
    if !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = s.parse::<i64>()
    {
        return Value::from(n);
    }
    if let Some((a, b)) = s.split_once('.')
        && !b.is_empty()
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
        && let Ok(f) = s.parse::<f64>()
    {
        return Value::from(f);
    }
    Value::String(s.to_string())
}

/// Decode an `application/x-www-form-urlencoded` string the way pfRest's form content handler does
/// (type inference, `key[]=a&key[]=b` arrays; later scalar keys win).
pub(crate) fn parse_form(q: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k);
        let value = infer(&percent_decode(v));
        if let Some(base) = key.strip_suffix("[]") {
            match out.get_mut(base) {
                Some(Value::Array(items)) => items.push(value),
                _ => {
                    out.insert(base.to_string(), Value::Array(vec![value]));
                }
            }
        } else {
            out.insert(key, value);
        }
    }
    out
}

/// HMAC-SHA256 (RFC 2104) over `msg` with `key`.
pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        let d = Sha256::digest(key);
        k[..d.len()].copy_from_slice(&d);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().to_vec()
}

/// Current unix time in seconds.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// pfRest replaces `"` and `'` in messages with backticks.
pub(crate) fn backticks(msg: &str) -> String {
    msg.replace(['"', '\''], "`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "admin:pfsense"] {
            let e = b64_encode(s.as_bytes(), false);
            assert_eq!(b64_decode(&e).unwrap(), s.as_bytes());
            let u = b64_encode(s.as_bytes(), true);
            assert!(!u.contains('='));
            assert_eq!(b64_decode(&u).unwrap(), s.as_bytes());
        }
        assert_eq!(b64_encode(b"foobar", false), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo", false), "Zm8=");
    }

    #[test]
    fn form_inference() {
        let m = parse_form("a=true&b=12&c=1.5&d=x%20y&e=null&f[]=1&f[]=two&g=+");
        assert_eq!(m["a"], Value::Bool(true));
        assert_eq!(m["b"], Value::from(12));
        assert_eq!(m["c"], Value::from(1.5));
        assert_eq!(m["d"], Value::from("x y"));
        assert_eq!(m["e"], Value::Null);
        assert_eq!(m["f"], serde_json::json!([1, "two"]));
        assert_eq!(m["g"], Value::from(" "));
    }

    #[test]
    fn hmac_known_vector() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
