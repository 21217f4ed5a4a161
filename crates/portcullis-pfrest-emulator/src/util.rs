//! Small helpers: base64, percent/form decoding with pfRest's type inference, HMAC-SHA256, time.

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Either base64 alphabet, padding optional, trailing bits tolerated: what clients send in Basic auth and JWTs.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Base64-encode; `url` selects the URL-safe alphabet without padding (as used by JWTs).
pub(crate) fn b64_encode(data: &[u8], url: bool) -> String {
    if url { URL_SAFE_NO_PAD.encode(data) } else { STANDARD.encode(data) }
}

/// Base64-decode either alphabet, padding optional. `None` on invalid input.
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    STANDARD_LENIENT.decode(s).or_else(|_| URL_SAFE_LENIENT.decode(s)).ok()
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
