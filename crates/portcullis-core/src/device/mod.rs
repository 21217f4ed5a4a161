//! Devices on the networks a firewall serves: what each source saw of them (a sighting: the kernel's neighbour
//! table, pfSense's ARP table, a DHCP lease, generated traffic), merged into one record per device (by MAC where
//! known, else by address) that remembers when it was first and last seen, so that devices gone quiet can still be
//! listed as offline. Presence is judged against an idle time: a device is online while it was seen within it.
//!
//! Only presence sightings (a reachable neighbour, an ARP entry, an online lease, traffic) move `last_seen`; a lease
//! alone says which address and name a MAC was given, not that the device is there.

mod leases;
mod oui;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use chrono::TimeDelta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldResult};
use crate::model::Timestamp;

pub use leases::{LeaseFormat, parse_leases};
pub use oui::OuiRegistry;

/// Whether devices live behind the interface of this logical name: every interface but `wan`, which faces the
/// internet (its hosts are not the firewall's devices).
pub fn is_inside(interface: &str) -> bool {
    !interface.eq_ignore_ascii_case("wan")
}

/// The networks of the inside interfaces, with the interface each belongs to.
pub fn inside_networks(interfaces: &[crate::model::Interface]) -> Vec<(String, ipnet::IpNet)> {
    interfaces
        .iter()
        .filter(|i| is_inside(&i.name))
        .flat_map(|i| [i.ipv4, i.ipv6].into_iter().flatten().map(|n| (i.name.clone(), n.trunc())))
        .collect()
}

/// A 48-bit hardware address, shown as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct Mac([u8; 6]);

impl Mac {
    /// `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF` or `aabb.ccdd.eeff`; a single-digit group (`0:1b:…`, as BSD's
    /// `arp` prints) is read as `00`.
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        let t = text.trim();
        let bad = || FieldError::new(field, format!("{text:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
        let groups: Vec<&str> = if t.contains(':') || t.contains('-') {
            t.split([':', '-']).collect()
        } else if t.contains('.') {
            if t.split('.').count() != 3 || t.split('.').any(|g| g.len() != 4) {
                return Err(bad());
            }
            let joined: String = t.split('.').collect();
            return Self::from_hex(&joined).ok_or_else(bad);
        } else {
            return Self::from_hex(t).filter(|_| t.len() == 12).ok_or_else(bad);
        };
        if groups.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (slot, g) in out.iter_mut().zip(groups) {
            if g.is_empty() || g.len() > 2 {
                return Err(bad());
            }
            *slot = u8::from_str_radix(g, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }

    fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 6];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Set by the device itself rather than its maker (phones randomise per network): no vendor to look up.
    pub fn locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Group (multicast or broadcast) addresses name no device.
    pub fn is_group(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl TryFrom<String> for Mac {
    type Error = FieldError;
    fn try_from(s: String) -> FieldResult<Self> {
        Self::parse("mac", &s)
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

/// Where a sighting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SightingSource {
    /// The kernel's neighbour table (ARP and NDP) of a Linux target.
    Neighbour,
    /// pfSense's ARP table.
    Arp,
    /// A DHCP lease (pfSense's, or a dnsmasq, ISC or Kea leases file).
    DhcpLease,
    /// Traffic the firewall passed or logged (the lab's generator).
    Traffic,
}

/// What one source says of one device now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub address: IpAddr,
    pub mac: Option<Mac>,
    pub hostname: Option<String>,
    /// The firewall interface it is behind (logical name), where the source says.
    pub interface: Option<String>,
    pub source: SightingSource,
    /// When the source last saw the device present; `None` when it only records it (a lease, a stale
    /// neighbour entry).
    pub present_at: Option<Timestamp>,
}

/// One device as Portcullis remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Its addresses, newest first in meaning but kept sorted; a device with a MAC may have several.
    #[schemars(with = "Vec<String>")]
    pub addresses: BTreeSet<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// When Portcullis first recorded it.
    pub first_seen: Timestamp,
    /// When a source last saw it present; `None`: never (only a lease names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    pub sources: BTreeSet<SightingSource>,
}

impl DeviceRecord {
    fn new(s: &Sighting, now: Timestamp) -> Self {
        Self {
            mac: s.mac,
            addresses: BTreeSet::new(),
            hostname: None,
            interface: None,
            first_seen: now,
            last_seen: None,
            sources: BTreeSet::new(),
        }
    }

    fn take(&mut self, s: &Sighting) {
        self.addresses.insert(s.address);
        if let Some(h) = s.hostname.as_deref().map(str::trim).filter(|h| !h.is_empty() && *h != "*") {
            self.hostname = Some(h.to_string());
        }
        if s.interface.is_some() {
            self.interface.clone_from(&s.interface);
        }
        if self.mac.is_none() {
            self.mac = s.mac;
        }
        if let Some(at) = s.present_at {
            self.last_seen = Some(self.last_seen.map_or(at, |l| l.max(at)));
        }
        self.sources.insert(s.source);
    }

    /// Online while it was seen present within `idle` of `now`.
    pub fn presence(&self, now: Timestamp, idle: TimeDelta) -> Presence {
        match self.last_seen {
            Some(at) if now - at <= idle => Presence::Online,
            _ => Presence::Offline,
        }
    }
}

/// Whether a device is on the network now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Offline,
}

/// Merges `sightings` into `records`: by MAC where the sighting has one, else by address (an address a MAC-keyed
/// record holds joins it). A MAC seen at a new address keeps its old ones; an address taken over by another MAC
/// leaves the record that held it.
pub fn merge(records: &mut Vec<DeviceRecord>, sightings: &[Sighting], now: Timestamp) {
    for s in sightings.iter().filter(|s| !s.mac.is_some_and(|m| m.is_group())) {
        let found = match s.mac {
            Some(mac) => records
                .iter()
                .position(|r| r.mac == Some(mac))
                .or_else(|| records.iter().position(|r| r.mac.is_none() && r.addresses.contains(&s.address))),
            None => records.iter().position(|r| r.addresses.contains(&s.address)),
        };
        let at = match found {
            Some(i) => i,
            None => {
                records.push(DeviceRecord::new(s, now));
                records.len() - 1
            }
        };
        if let Some(mac) = s.mac {
            for (i, other) in records.iter_mut().enumerate() {
                if i != at && other.mac.is_some_and(|m| m != mac) {
                    other.addresses.remove(&s.address);
                }
            }
        }
        records[at].take(s);
    }
    records.retain(|r| !r.addresses.is_empty());
}

#[cfg(test)]
mod tests;
