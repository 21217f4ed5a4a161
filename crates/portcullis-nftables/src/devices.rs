//! Devices behind the router's interfaces, from the kernel's neighbour table (`ip -s -j neigh show`): each
//! entry's address, MAC and the interface it is on, seen present when the kernel last heard from it: the later of
//! `confirmed` (reachability confirmed) and `updated` (the entry learnt or changed from a packet of the device,
//! as an ARP request it sent; for a stale entry, when it went stale, at most the reachable time after the last
//! confirmation). Entries that failed or are still being resolved name no device; permanent ones (set by hand)
//! are known but say nothing of presence.

use chrono::TimeDelta;
use portcullis_core::device::{Mac, Sighting, SightingSource};
use portcullis_core::model::Timestamp;
use serde_json::Value;

/// The sightings in a neighbour listing, for the configured interfaces (`(logical, device)`).
pub fn sightings(listing: &Value, interfaces: &[(String, String)], now: Timestamp) -> Vec<Sighting> {
    let logical_of = |dev: &str| interfaces.iter().find(|(_, d)| d.as_str() == dev).map(|(l, _)| l.clone());
    listing
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| {
            let states: Vec<&str> = n["state"].as_array()?.iter().filter_map(Value::as_str).collect();
            if states.iter().any(|s| matches!(*s, "FAILED" | "INCOMPLETE" | "NONE")) {
                return None;
            }
            let interface = logical_of(n["dev"].as_str()?)?;
            let address = n["dst"].as_str()?.parse().ok()?;
            let mac = Mac::parse("lladdr", n["lladdr"].as_str()?).ok()?;
            let present_at = if states.iter().any(|s| matches!(*s, "PERMANENT" | "NOARP")) {
                None
            } else {
                let ago = |key: &str| n[key].as_i64().map(|s| s.max(0));
                ago("confirmed").into_iter().chain(ago("updated")).min().map(|s| now - TimeDelta::seconds(s))
            };
            Some(Sighting {
                address,
                mac: Some(mac),
                hostname: None,
                interface: Some(interface),
                source: SightingSource::Neighbour,
                present_at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reachable_and_stale_neighbours_are_devices_failed_ones_are_not() {
        let now = chrono::Utc::now();
        let listing = json!([
            {"dst": "10.77.1.2", "dev": "lan0", "lladdr": "00:1b:21:3a:4f:5c", "confirmed": 3, "updated": 9,
             "state": ["REACHABLE"]},
            {"dst": "10.77.1.3", "dev": "lan0", "lladdr": "00:1b:21:3a:4f:5d", "confirmed": 400, "updated": 500,
             "state": ["STALE"]},
            {"dst": "10.77.1.4", "dev": "lan0", "confirmed": 1, "state": ["FAILED"]},
            {"dst": "10.77.1.5", "dev": "lan0", "lladdr": "00:1b:21:3a:4f:5e", "state": ["PERMANENT"]},
            {"dst": "10.9.9.9", "dev": "other0", "lladdr": "00:1b:21:3a:4f:5f", "confirmed": 1, "state": ["REACHABLE"]}
        ]);
        let interfaces = vec![("lan".to_string(), "lan0".to_string())];
        let seen = sightings(&listing, &interfaces, now);
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0].present_at, Some(now - TimeDelta::seconds(3)));
        assert_eq!(seen[1].present_at, Some(now - TimeDelta::seconds(400)));
        assert_eq!(seen[2].present_at, None);
        assert!(seen.iter().all(|s| s.interface.as_deref() == Some("lan")));
    }
}
