//! DHCP lease files of the servers Linux routers run: dnsmasq's (`<expiry> <mac> <ip> <hostname> <client-id>` a
//! line), ISC dhcpd's (`lease <ip> { … }` blocks) and Kea's memfile CSV (`address,hwaddr,…,hostname,state,…`).
//! A lease says which address and name a MAC was given; it is not a sign the device is there now.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Mac, Sighting, SightingSource};

/// The layout of a leases file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseFormat {
    Dnsmasq,
    Isc,
    Kea,
}

/// The leases in `text` that hold an address and a MAC, as sightings on `interface` (when the file is one
/// network's); the second value counts the lines or blocks left out (unreadable, or not an assigned lease).
pub fn parse_leases(format: LeaseFormat, text: &str, interface: Option<&str>) -> (Vec<Sighting>, usize) {
    let make = |ip: &str, mac: &str, host: Option<&str>| -> Option<Sighting> {
        Some(Sighting {
            address: ip.trim().parse::<IpAddr>().ok()?,
            mac: Some(Mac::parse("mac", mac).ok()?),
            hostname: host.map(str::trim).filter(|h| !h.is_empty() && *h != "*").map(str::to_string),
            interface: interface.map(str::to_string),
            source: SightingSource::DhcpLease,
            present_at: None,
        })
    };
    match format {
        LeaseFormat::Dnsmasq => {
            count(text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("duid")).map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4).then(|| make(f[2], f[1], Some(f[3]))).flatten()
            }))
        }
        LeaseFormat::Isc => count(isc_blocks(text).map(|(ip, body)| {
            let field = |key: &str| {
                body.split(';').map(str::trim).find_map(|s| s.strip_prefix(key)).map(|v| v.trim().trim_matches('"'))
            };
            if field("binding state").is_some_and(|s| s != "active") {
                return None;
            }
            make(ip, field("hardware ethernet")?, field("client-hostname"))
        })),
        LeaseFormat::Kea => {
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
            let headers = reader.headers().cloned().unwrap_or_default();
            let col = |name: &str| headers.iter().position(|h| h == name);
            let (Some(a), Some(h), host, state) = (col("address"), col("hwaddr"), col("hostname"), col("state")) else {
                return (Vec::new(), usize::from(!text.trim().is_empty()));
            };
            count(reader.records().map(|row| {
                let row = row.ok()?;
                // State 0 is an assigned lease; 1 declined, 2 expired-reclaimed.
                if state.and_then(|s| row.get(s)).is_some_and(|s| s.trim() != "0") {
                    return None;
                }
                make(row.get(a)?, row.get(h)?, host.and_then(|c| row.get(c)))
            }))
        }
    }
}

fn count(items: impl Iterator<Item = Option<Sighting>>) -> (Vec<Sighting>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for item in items {
        match item {
            Some(s) => out.push(s),
            None => skipped += 1,
        }
    }
    (out, skipped)
}

/// `lease <ip> { <body> }` blocks.
fn isc_blocks(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split("lease ").skip(1).filter_map(|chunk| {
        let (ip, rest) = chunk.split_once('{')?;
        let (body, _) = rest.split_once('}')?;
        Some((ip.trim(), body))
    })
}
