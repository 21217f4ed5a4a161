//! IP address parsing for the hot path, with exactly the acceptance of `str::parse` (checked against it by a
//! differential property test below) at a fraction of its cost.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A dotted quad at the start of `bytes`, ended by `,` or the end: the address and its length. Strict like
/// `str::parse` (1–3 digits per octet, no leading zeros).
#[inline]
pub(crate) fn parse_ipv4(bytes: &[u8]) -> Option<(Ipv4Addr, usize)> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        let first = bytes.get(i)?.wrapping_sub(b'0');
        if first > 9 {
            return None;
        }
        let mut value = u16::from(first);
        i += 1;
        if first != 0 {
            for _ in 0..2 {
                match bytes.get(i) {
                    Some(&c) if c.is_ascii_digit() => {
                        value = value * 10 + u16::from(c - b'0');
                        i += 1;
                    }
                    _ => break,
                }
            }
        }
        *octet = u8::try_from(value).ok()?;
        match (n, bytes.get(i)) {
            (0..=2, Some(b'.')) => i += 1,
            (3, None | Some(b',')) => {}
            _ => return None,
        }
    }
    Some((Ipv4Addr::from(octets), i))
}

/// An IPv6 address. Pure hexadecimal forms (`fe80::208:9bff:fef3:652b`, `ff02::1:2`, `::`) are parsed here; anything
/// else, such as an embedded IPv4 tail (`::ffff:1.2.3.4`), is left to `str::parse`.
#[inline]
pub(crate) fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    match fast_ipv6(s.as_bytes()) {
        Some(addr) => Some(addr),
        None if s.as_bytes().contains(&b'.') => s.parse().ok(),
        None => None,
    }
}

/// Groups of 1–4 hex digits separated by `:`, with at most one `::` standing for at least one zero group; eight
/// groups without `::`. The same grammar as the standard library's parser, minus the IPv4 tail.
fn fast_ipv6(b: &[u8]) -> Option<Ipv6Addr> {
    if b.len() < 2 || b.len() > 39 {
        return None;
    }
    let mut head = [0u16; 8];
    let mut tail = [0u16; 8];
    let (mut head_n, mut tail_n) = (0usize, 0usize);
    let mut compressed = false;
    let mut i = 0;
    if b.first() == Some(&b':') {
        if b.get(1) != Some(&b':') {
            return None;
        }
        compressed = true;
        i = 2;
        if i == b.len() {
            return Some(Ipv6Addr::UNSPECIFIED);
        }
    }
    loop {
        let mut group: u16 = 0;
        let mut digits = 0;
        while let Some(d) = b.get(i).and_then(|&c| (c as char).to_digit(16)) {
            if digits == 4 {
                return None;
            }
            group = (group << 4) | d as u16;
            digits += 1;
            i += 1;
        }
        if digits == 0 {
            return None;
        }
        if compressed {
            *tail.get_mut(tail_n)? = group;
            tail_n += 1;
        } else {
            *head.get_mut(head_n)? = group;
            head_n += 1;
        }
        match b.get(i) {
            None => break,
            Some(b':') => i += 1,
            Some(_) => return None,
        }
        if b.get(i) == Some(&b':') {
            if compressed {
                return None;
            }
            compressed = true;
            i += 1;
            if i == b.len() {
                break;
            }
        }
    }
    let groups = head_n + tail_n;
    if (compressed && groups > 7) || (!compressed && groups != 8) {
        return None;
    }
    let mut all = head;
    let gap = 8 - groups;
    for (k, g) in tail.iter().take(tail_n).enumerate() {
        *all.get_mut(head_n + gap + k)? = *g;
    }
    Some(Ipv6Addr::from(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> Option<Ipv4Addr> {
        parse_ipv4(s.as_bytes()).filter(|(_, len)| *len == s.len()).map(|(a, _)| a)
    }

    #[test]
    fn known_forms() {
        for s in [
            "::",
            "::1",
            "1::",
            "fe80::1",
            "ff02::1:2",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "2321:5e8:6134:c:ede0:df3:5972:e285",
            "FE80::ABCD",
            "0:0:0:0:0:0:0:0",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
        ] {
            assert_eq!(parse_ipv6(s), s.parse().ok(), "{s}");
            assert!(parse_ipv6(s).is_some(), "{s}");
        }
        for s in [
            "",
            ":",
            ":::",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "1::2::3",
            "12345::",
            "1:2:3:4:5:6:7",
            "g::",
            "1:",
            ":1",
            "1:::2",
            "fe80::1%em0",
            " ::1",
            "::1 ",
            "::ffff:1.2.3",
            "1.2.3.4",
        ] {
            assert_eq!(parse_ipv6(s), s.parse().ok(), "{s}");
            assert!(parse_ipv6(s).is_none(), "{s}");
        }
        for s in ["0.0.0.0", "255.255.255.255", "10.170.12.50", "1.1.1.1"] {
            assert_eq!(v4(s), s.parse().ok(), "{s}");
        }
        for s in ["", "1.1.1", "1.1.1.1.1", "256.1.1.1", "01.1.1.1", "1..1.1", "1.1.1.", ".1.1.1", "1.1.1.1a"] {
            assert_eq!(v4(s), None, "{s}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The fast parsers accept exactly what `str::parse` accepts, with the same value.
        #[test]
        fn same_as_std_on_near_misses(s in "[0-9a-fA-F:.]{0,41}") {
            prop_assert_eq!(parse_ipv6(&s), s.parse::<Ipv6Addr>().ok());
            prop_assert_eq!(v4(&s), s.parse::<Ipv4Addr>().ok());
        }

        #[test]
        fn same_as_std_on_addresses(a in any::<[u16; 8]>(), b in any::<[u8; 4]>(), upper in any::<bool>()) {
            let v6 = Ipv6Addr::from(a).to_string();
            let v6 = if upper { v6.to_uppercase() } else { v6 };
            prop_assert_eq!(parse_ipv6(&v6), v6.parse::<Ipv6Addr>().ok());
            prop_assert!(parse_ipv6(&v6).is_some());
            let full = a.iter().map(|g| format!("{g:x}")).collect::<Vec<_>>().join(":");
            prop_assert_eq!(parse_ipv6(&full), Some(Ipv6Addr::from(a)));
            let v4s = Ipv4Addr::from(b).to_string();
            prop_assert_eq!(v4(&v4s), Some(Ipv4Addr::from(b)));
        }
    }
}
