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

/// The decimal number at the start of `bytes`: its digit count (0 when there is none) and its value; `None` when
/// it does not fit a `u64`.
#[inline(always)]
pub(crate) fn number_at(bytes: &[u8]) -> Option<(usize, u64)> {
    let (mut len, mut value) = leading_digits(word_at(bytes, 0));
    if len == 8 {
        // Trackers and TCP sequence numbers run to ten digits: one more word.
        let (more, low) = leading_digits(word_at(bytes, 8));
        len += more;
        value = value * POW10.get(more).copied().unwrap_or(1) + low;
        if more == 8 {
            // 16 digits or more: rare enough for the checked byte loop (20 digits may fit, more never do).
            len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            value = bytes.get(..len).and_then(|d| std::str::from_utf8(d).ok()).and_then(parse_u64)?;
        }
    }
    Some((len, value))
}

/// Powers of ten up to 10^8, for joining the digits of two words.
const POW10: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// The eight bytes of `hay` from `at` as a little-endian word (the text's first byte lowest), padded with zero
/// bytes (not digits) past its end.
#[inline(always)]
pub(crate) fn word_at(hay: &[u8], at: usize) -> u64 {
    let rest = hay.get(at..).unwrap_or_default();
    match rest.get(..8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        Some(w) => u64::from_le_bytes(w),
        None => {
            let mut w = [0u8; 8];
            for (dst, src) in w.iter_mut().zip(rest) {
                *dst = *src;
            }
            u64::from_le_bytes(w)
        }
    }
}

/// The ASCII digits at the start of `word` (at most 8): their count and value, without a loop over the bytes.
/// `x = word ^ 0x30×8` maps digits to 0–9; `((x & 0x7f×8) + 0x76×8) | x` has the high bit set in exactly the
/// bytes that are not digits. The digits, moved to the top of the word with zero bytes (leading zeros) below, are
/// combined in three multiplications (the SWAR conversion of simdjson's `parse_eight_digits_unrolled`).
#[inline(always)]
pub(crate) fn leading_digits(word: u64) -> (usize, u64) {
    const ZEROS: u64 = u64::from_ne_bytes([b'0'; 8]);
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const PAST_NINE: u64 = u64::from_ne_bytes([0x76; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let x = word ^ ZEROS;
    let not_digit = (((x & LOW7).wrapping_add(PAST_NINE)) | x) & HIGH;
    let len = (not_digit.trailing_zeros() / 8) as usize;
    if len == 0 {
        return (0, 0);
    }
    let v = x << (64 - 8 * len as u32);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let v = ((v & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    (len, v & 0xffff_ffff)
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
