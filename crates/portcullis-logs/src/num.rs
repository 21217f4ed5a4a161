//! Number parsing without allocation or UTF-8 work: plain ASCII digits only (no sign, no spaces, no `_`).

/// Decimal digits, at most 20 of them, that fit a `u64`.
#[inline]
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b.len() < 20 {
        // 19 digits always fit: no overflow checks on the hot path.
        let mut acc: u64 = 0;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            acc = acc * 10 + u64::from(d);
        }
        return Some(acc);
    }
    let mut acc: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        acc = acc.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(acc)
}

/// Decimal with an optional leading `-`.
#[inline]
pub(crate) fn parse_i64(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(digits) => parse_u64(digits).and_then(|v| i64::try_from(v).ok()).map(|v| -v),
        None => parse_u64(s).and_then(|v| i64::try_from(v).ok()),
    }
}

/// Hexadecimal with an optional `0x`/`0X` prefix, at most 16 digits.
#[inline]
pub(crate) fn parse_hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let b = digits.as_bytes();
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let mut acc: u64 = 0;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        acc = (acc << 4) | u64::from(d);
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("064"), Some(64));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("99999999999999999999"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64("1 "), None);
        assert_eq!(parse_i64("-12"), Some(-12));
        assert_eq!(parse_i64("-"), None);
        assert_eq!(parse_i64("--1"), None);
        assert_eq!(parse_hex("0x0"), Some(0));
        assert_eq!(parse_hex("0xb8"), Some(0xb8));
        assert_eq!(parse_hex("0xf6279"), Some(0xf6279));
        assert_eq!(parse_hex("0x"), None);
        assert_eq!(parse_hex("0xg"), None);
        assert_eq!(parse_hex("0x11111111111111111"), None);
    }
}
