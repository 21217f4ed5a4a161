//! Devices on pfSense's networks: its ARP table (address, MAC, NIC, and how long the entry has left) and its DHCP
//! server's leases (address, MAC, hostname, and whether pfSense sees the leased address online).
//!
//! FreeBSD keeps an ARP entry 1200 s (`net.link.ether.inet.max_age`) after it was last refreshed, so an entry that
//! expires in N seconds was confirmed about 1200 − N seconds ago; a permanent entry (the firewall's own, or one set
//! by hand) says nothing of presence.

use chrono::TimeDelta;
use portcullis_core::device::{Mac, Sighting, SightingSource};
use portcullis_core::model::Timestamp;
use portcullis_pfrest::types::{ArpEntry, DhcpLease};

use crate::mapping::InterfaceMap;

/// FreeBSD's default lifetime of an ARP entry.
const ARP_MAX_AGE: i64 = 1200;

pub fn from_arp(entries: &[ArpEntry], ifaces: &InterfaceMap, now: Timestamp) -> Vec<Sighting> {
    entries
        .iter()
        .filter_map(|e| {
            let address = e.ip_address.as_deref()?.trim().parse().ok()?;
            let mac = Mac::parse("mac_address", e.mac_address.as_deref()?).ok()?;
            let expires = e.expires.as_deref().unwrap_or_default();
            let permanent = e.permanent == Some(true) || expires.contains("permanent");
            let left = expires.split_whitespace().find_map(|w| w.parse::<i64>().ok());
            let present_at = match (permanent, left) {
                (true, _) => None,
                (false, Some(left)) => Some(now - TimeDelta::seconds((ARP_MAX_AGE - left).clamp(0, ARP_MAX_AGE))),
                (false, None) => Some(now),
            };
            let hostname = e.hostname.as_deref().filter(|h| *h != "?").map(|h| h.trim_end_matches('.').to_string());
            Some(Sighting {
                address,
                mac: Some(mac),
                hostname,
                interface: e.interface.as_deref().map(|i| ifaces.normalize(i)),
                source: SightingSource::Arp,
                present_at,
            })
        })
        .collect()
}

pub fn from_leases(leases: &[DhcpLease], ifaces: &InterfaceMap, now: Timestamp) -> Vec<Sighting> {
    leases
        .iter()
        .filter(|l| l.active_status.as_deref().is_none_or(|s| !s.contains("expired")))
        .filter_map(|l| {
            let address = l.ip.as_deref()?.trim().parse().ok()?;
            let mac = Mac::parse("mac", l.mac.as_deref()?).ok()?;
            let online = l.online_status.as_deref().is_some_and(|s| s.contains("online") && !s.contains("offline"));
            Some(Sighting {
                address,
                mac: Some(mac),
                hostname: l.hostname.clone().filter(|h| !h.trim().is_empty()),
                interface: l.if_.as_deref().map(|i| ifaces.normalize(i)),
                source: SightingSource::DhcpLease,
                present_at: online.then_some(now),
            })
        })
        .collect()
}

/// The address of a state end: `a.b.c.d:port`, `[v6]:port`, `v6.port` (pf's own spelling) or a bare address.
fn state_address(end: &str) -> Option<std::net::IpAddr> {
    let end = end.trim();
    if let Ok(ip) = end.parse() {
        return Some(ip);
    }
    if let Some(rest) = end.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Some((host, _)) = end.rsplit_once(':')
        && let Ok(ip) = host.parse::<std::net::Ipv4Addr>()
    {
        return Some(ip.into());
    }
    end.rsplit_once('.').and_then(|(host, _)| host.parse().ok())
}

/// What each address of the inside networks (`inside`) sent and received on pf's current states: for the end
/// that opened the state, `bytes_in` is what it sent; for the other, what it received.
pub fn from_states(
    states: &[portcullis_pfrest::types::FirewallState],
    inside: &[ipnet::IpNet],
) -> Vec<portcullis_core::firewall::AddressTraffic> {
    let mut tally = portcullis_core::firewall::TrafficTally::default();
    let is_inside = |a: &std::net::IpAddr| inside.iter().any(|n| n.contains(a));
    for s in states {
        if let Some(src) = s.source.as_deref().and_then(state_address).filter(is_inside) {
            tally.sent(src, s.bytes_in, s.packets_in);
            tally.received(src, s.bytes_out, s.packets_out);
        }
        if let Some(dst) = s.destination.as_deref().and_then(state_address).filter(is_inside) {
            tally.sent(dst, s.bytes_out, s.packets_out);
            tally.received(dst, s.bytes_in, s.packets_in);
        }
    }
    tally.into_rows()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_ends_are_read_in_every_spelling() {
        for (end, want) in [
            ("192.168.1.20:51234", "192.168.1.20"),
            ("[2001:db8::5]:443", "2001:db8::5"),
            ("2001:db8::5.443", "2001:db8::5"),
            ("10.0.0.1", "10.0.0.1"),
        ] {
            assert_eq!(state_address(end), Some(want.parse().unwrap()), "{end}");
        }
        assert_eq!(state_address("not an address"), None);
    }
}
