//! Addresses as they enter Portcullis, in one place: the strict spelling of an IP address or CIDR, the refusal of
//! IPv6 spellings of IPv4 addresses, and the breadth of an address match judged by what it covers.
//!
//! An IPv4-mapped (`::ffff:192.0.2.50`) or IPv4-compatible (`::192.0.2.50`) address names an IPv4 host in IPv6
//! notation, but IPv4 packets never carry it: a block of it would be listed and enforce nothing, and a protected
//! management host would be reachable under its other spelling. So every argument and configured address is
//! refused in those forms with the IPv4 form as the hint; what a firewall already holds is read as it is
//! (`parse_held_net`), and evaluated as the firewall evaluates it. Log lines are data, not requests: the log parser
//! maps such addresses to IPv4 instead.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv6Net};

use crate::error::{FieldError, FieldResult};
use crate::eval::AddrSet;
use crate::model::IpVersion;

/// The longest text taken for an address or CIDR (the longest IPv6 CIDR is 43 characters).
const MAX_LEN: usize = 64;

/// Parses an address or CIDR given as an argument or in config: strict spelling (`parse_held_net`), and no IPv6
/// spelling of IPv4 addresses.
pub fn parse_net(field: &str, value: &str) -> FieldResult<IpNet> {
    let net = parse_held_net(field, value)?;
    check_net(field, &net)?;
    Ok(net)
}

/// Parses one host address given as an argument (a packet's source or destination), with the rules of
/// `parse_net`.
pub fn parse_host(field: &str, value: &str) -> FieldResult<IpAddr> {
    let v = value.trim();
    if v.contains('/') {
        return Err(FieldError::new(field, format!("{v:?} is a network; give one IP address")));
    }
    parse_net(field, v).map(|net| net.addr())
}

/// Parses an address or CIDR strictly, as a firewall may hold it: no host bits beyond the prefix, no prefix longer
/// than the family, a prefix of plain decimal digits. Zone ids (`fe80::1%eth0`), octets with leading zeros
/// (`010.0.0.1`), short or numeric IPv4 forms (`10.1`, `167772161`) and brackets are refused like `str::parse`
/// refuses them. IPv4-mapped and IPv4-compatible forms are accepted here: use it only for state read back.
pub fn parse_held_net(field: &str, value: &str) -> FieldResult<IpNet> {
    let v = value.trim();
    if v.is_empty() {
        return Err(FieldError::new(field, "an IP address or CIDR is required"));
    }
    if v.len() > MAX_LEN || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(FieldError::new(field, format!("{v:?} is not an IP address or CIDR")));
    }
    let bad_address = |addr: &str| {
        let hint = if addr.contains('%') { "; zone ids (%eth0) are not accepted" } else { "" };
        FieldError::new(field, format!("{addr:?} is not a valid IPv4 or IPv6 address{hint}"))
    };
    let Some((addr, prefix)) = v.split_once('/') else {
        return v.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad_address(v));
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad_address(addr))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = prefix_length(prefix, max).ok_or_else(|| {
        FieldError::new(
            field,
            format!("prefix length /{prefix} is invalid; it must be 0-{max} for this address family"),
        )
    })?;
    let net = IpNet::new(ip, len).map_err(|e| FieldError::new(field, e.to_string()))?;
    if net.trunc() != net {
        return Err(FieldError::new(
            field,
            format!("{v} has host bits set beyond /{len}; did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

/// A prefix length in plain decimal: `u8::from_str` would also take `+24` and `024`, which other parsers read
/// differently (or as octal).
fn prefix_length(text: &str, max: u8) -> Option<u8> {
    let plain = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    plain.then(|| text.parse::<u8>().ok()).flatten().filter(|len| *len <= max)
}

/// Refuses a network that spells IPv4 addresses in IPv6 (see the module comment), with the IPv4 form as the hint.
pub fn check_net(field: &str, net: &IpNet) -> FieldResult<()> {
    let IpNet::V6(v6) = net else { return Ok(()) };
    match embedded_ipv4(v6) {
        None => Ok(()),
        Some(Embedded { kind, ipv4: Some(ipv4) }) => Err(FieldError::new(
            field,
            format!(
                "{} is an {kind} IPv6 address, which IPv4 traffic never carries; use {}",
                crate::model::net_to_string(net),
                crate::model::net_to_string(&ipv4)
            ),
        )),
        Some(Embedded { kind, ipv4: None }) => Err(FieldError::new(
            field,
            format!(
                "{net} lies in the IPv6 space that spells IPv4 addresses ({kind}, ::/80), which no traffic carries; \
                 give the IPv4 network (e.g. 0.0.0.0/0) or a real IPv6 network"
            ),
        )),
    }
}

/// Refuses an IPv6 spelling of an IPv4 host (see `check_net`).
pub fn check_host(field: &str, addr: &IpAddr) -> FieldResult<()> {
    check_net(field, &IpNet::from(*addr))
}

/// The IPv4 form of an IPv4-mapped address (`::ffff:a.b.c.d`), for data such as log lines; other addresses as
/// they are.
pub fn mapped_to_ipv4(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

struct Embedded {
    kind: &'static str,
    /// The same network in IPv4 form, when the whole network lies in one embedding.
    ipv4: Option<IpNet>,
}

/// Whether an IPv6 network lies in `::/80`, the space whose only meaning apart from `::` and `::1` is IPv4
/// addresses (`::ffff:0:0/96` mapped, `::/96` compatible). A wider network that holds all of `::/80` (`::/0`,
/// `::/1`) is a real IPv6 range and is not refused.
fn embedded_ipv4(net: &Ipv6Net) -> Option<Embedded> {
    let network = u128::from(net.network());
    if net.prefix_len() < 80 || network >> 48 != 0 || matches!(network, 0 | 1) && net.prefix_len() == 128 {
        return None;
    }
    let ipv4 = |kind| {
        let addr = Ipv4Addr::from((network & 0xffff_ffff) as u32);
        let ipv4 = ipnet::Ipv4Net::new(addr, net.prefix_len() - 96).ok().map(IpNet::V4);
        Some(Embedded { kind, ipv4 })
    };
    match (net.prefix_len() >= 96, network >> 32) {
        (true, 0xffff) => ipv4("IPv4-mapped"),
        (true, 0) => ipv4("IPv4-compatible"),
        _ => Some(Embedded { kind: "IPv4-mapped and IPv4-compatible", ipv4: None }),
    }
}

/// Whether a match, negated or not, holds every address of one family (`IpVersion::Inet` or `Inet6`): `any`,
/// `0.0.0.0/0`, `::/0`, an alias of `0.0.0.0/1` and `128.0.0.0/1`, `!` of an alias with nothing of the family.
/// What a value covers decides, never how it is spelled.
pub fn covers_family(set: &AddrSet, negate: bool, family: IpVersion) -> bool {
    if negate {
        return !set.any && holds_none_of(set, family);
    }
    set.covers(&whole_family(family))
}

/// Whether a match holds every address of every family a rule of `version` applies to.
pub fn covers_every_family(set: &AddrSet, negate: bool, version: IpVersion) -> bool {
    families_of(version).iter().all(|f| covers_family(set, negate, *f))
}

/// The single families a rule of `version` applies to.
pub fn families_of(version: IpVersion) -> &'static [IpVersion] {
    match version {
        IpVersion::Inet => &[IpVersion::Inet],
        IpVersion::Inet6 => &[IpVersion::Inet6],
        IpVersion::Inet46 => &[IpVersion::Inet, IpVersion::Inet6],
    }
}

/// Host bits of a rule's address match for risk (`ChangeFacts::host_bits`): 128 when it holds every address of a
/// family the rule applies to, however it is spelled; otherwise the set's own breadth (`AddrSet::breadth_bits`),
/// and 128 for a negation, whose complement is nearly everything.
pub fn match_host_bits(set: &AddrSet, negate: bool, version: IpVersion) -> u8 {
    if negate || families_of(version).iter().any(|f| covers_family(set, negate, *f)) {
        return 128;
    }
    set.breadth_bits()
}

/// Host bits of one network put into a block or grant list: 128 for a whole family (`0.0.0.0/0` is as broad as
/// `::/0`), else the bits below its prefix.
pub fn net_host_bits(net: &IpNet) -> u8 {
    if net.prefix_len() == 0 { 128 } else { net.max_prefix_len() - net.prefix_len() }
}

/// Whether a rule matches every source and every destination address in some family it applies to: an IPv4
/// any → any is as open for IPv4 traffic whether it is written `any`, `0.0.0.0/0` or two `/1`s, and whatever the
/// rule does for IPv6.
pub fn any_to_any(source: (&AddrSet, bool), destination: (&AddrSet, bool), version: IpVersion) -> bool {
    families_of(version)
        .iter()
        .any(|f| covers_family(source.0, source.1, *f) && covers_family(destination.0, destination.1, *f))
}

fn whole_family(family: IpVersion) -> AddrSet {
    let all = match family {
        IpVersion::Inet => IpNet::V4(ipnet::Ipv4Net::default()),
        IpVersion::Inet6 | IpVersion::Inet46 => IpNet::V6(Ipv6Net::default()),
    };
    AddrSet::from_nets([&all])
}

fn holds_none_of(set: &AddrSet, family: IpVersion) -> bool {
    match family {
        IpVersion::Inet => set.v4.is_empty(),
        IpVersion::Inet6 | IpVersion::Inet46 => set.v6.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(value: &str) -> FieldError {
        parse_net("ip_address", value).expect_err(value)
    }

    #[test]
    fn ipv6_spellings_of_ipv4_hosts_are_refused_with_the_ipv4_form() {
        let cases = [
            ("::ffff:192.0.2.50", "use 192.0.2.50"),
            ("::FFFF:192.0.2.50", "use 192.0.2.50"),
            ("::ffff:c000:232", "use 192.0.2.50"),
            ("0:0:0:0:0:ffff:c000:0232", "use 192.0.2.50"),
            ("::ffff:192.0.2.50/128", "use 192.0.2.50"),
            ("::ffff:192.0.2.0/120", "use 192.0.2.0/24"),
            ("::ffff:0:0/96", "use 0.0.0.0/0"),
            ("::192.0.2.50", "use 192.0.2.50"),
            ("::c000:232", "use 192.0.2.50"),
            ("::10.0.0.0/104", "use 10.0.0.0/8"),
            ("::/96", "use 0.0.0.0/0"),
        ];
        for (value, hint) in cases {
            let err = refusal(value);
            assert_eq!(err.field, "ip_address", "{value}");
            assert!(err.message.contains(hint), "{value}: {}", err.message);
        }
    }

    #[test]
    fn networks_around_the_embedded_space_are_refused_and_real_ipv6_ranges_are_not() {
        for value in ["::ff00:0:0/88", "::/80", "::fffe:0:0/95", "::8000:0:0/81"] {
            assert!(refusal(value).message.contains("spells IPv4 addresses"), "{value}");
        }
        for value in ["::", "::1", "::/0", "::/1", "::/64", "2001:db8::ffff:c000:232", "64:ff9b::192.0.2.50", "fe80::1"]
        {
            assert!(parse_net("ip_address", value).is_ok(), "{value}");
        }
    }

    #[test]
    fn ambiguous_spellings_keep_being_refused() {
        let cases = [
            "fe80::1%eth0",
            "fe80::1%1",
            "010.0.0.1",
            "10.0.0.01",
            "10.1",
            "10.0.1",
            "167772161",
            "0x0a.0.0.1",
            "0x0a000001",
            "[::1]",
            "192.0.2.50.",
            "10.0.0.0/024",
            "10.0.0.0/+24",
            "10.0.0.0/",
            "10.0.0.0/-0",
            "1.2.3.4 5",
        ];
        for value in cases {
            assert_eq!(parse_held_net("ip_address", value).expect_err(value).field, "ip_address", "{value}");
        }
        assert!(refusal("fe80::1%eth0").message.contains("zone id"));
        assert!(parse_net("ip_address", "0.0.0.0/0").is_ok());
    }

    #[test]
    fn held_state_keeps_what_the_firewall_holds() {
        let held = parse_held_net("alias", "::ffff:192.0.2.50").unwrap();
        assert_eq!(held.addr(), "::ffff:192.0.2.50".parse::<IpAddr>().unwrap());
        assert!(parse_host("source", "::ffff:192.0.2.50").is_err());
        assert!(parse_host("source", "192.0.2.0/24").unwrap_err().message.contains("network"));
        assert_eq!(mapped_to_ipv4("::ffff:192.0.2.50".parse().unwrap()), "192.0.2.50".parse::<IpAddr>().unwrap());
        assert_eq!(mapped_to_ipv4("2001:db8::1".parse().unwrap()), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    fn set(nets: &[&str]) -> AddrSet {
        let nets: Vec<IpNet> = nets.iter().map(|n| n.parse().unwrap()).collect();
        AddrSet::from_nets(&nets)
    }

    #[test]
    fn every_address_of_a_family_is_judged_by_what_a_match_covers() {
        let v4 = IpVersion::Inet;
        let v6 = IpVersion::Inet6;
        for spelling in [AddrSet::any(), set(&["0.0.0.0/0"]), set(&["0.0.0.0/1", "128.0.0.0/1"])] {
            assert!(covers_family(&spelling, false, v4), "{spelling:?}");
        }
        for spelling in
            [AddrSet::any(), set(&["::/0"]), set(&["::/1", "8000::/1"]), set(&["::/1", "8000::/1", "10.0.0.0/8"])]
        {
            assert!(covers_family(&spelling, false, v6), "{spelling:?}");
        }
        assert!(!covers_family(&set(&["0.0.0.0/1"]), false, v4));
        assert!(!covers_family(&set(&["0.0.0.0/0"]), false, v6));
        assert!(!covers_family(&set(&["0.0.0.0/1", "128.0.0.0/2"]), false, v4));
        assert!(covers_every_family(&AddrSet::any(), false, IpVersion::Inet46));
        assert!(!covers_every_family(&set(&["0.0.0.0/0"]), false, IpVersion::Inet46));
        assert!(covers_every_family(&set(&["0.0.0.0/0", "::/0"]), false, IpVersion::Inet46));
        // `!` of what holds nothing of a family is all of it; `!` of anything it holds is not.
        assert!(covers_family(&AddrSet::default(), true, v4));
        assert!(covers_family(&set(&["2001:db8::/32"]), true, v4));
        assert!(!covers_family(&set(&["10.0.0.0/8"]), true, v4));
        assert!(!covers_family(&AddrSet::any(), true, v4));
    }
}
