//! Traffic per device address, counted in the kernel: the table `inet <table>_acct`, beside Portcullis' own and
//! only counting (its chains accept everything), holds four sets with a counter per element: what each address of
//! an inside interface sent (`sent4`/`sent6`, on `prerouting` by `iifname`, the source address) and received
//! (`recv4`/`recv6`, on `postrouting` by `oifname`, the destination). Elements are made by the packets themselves
//! (`update @set { ip saddr counter }`) and leave after a day without traffic. The inside interfaces are every
//! configured one but `wan`. Counters count IP lengths (headers included), from the moment the table is made.
//!
//! The table is made on the first reading when the target's `accounting` is on; it is written as nft JSON
//! from validated device names only (nft 1.0.6's JSON takes no `dynamic` flag; a `timeout` set is updated from
//! the packet path all the same).

use std::net::IpAddr;

use portcullis_core::firewall::{AddressCounters, BackendError, ErrorCode, TrafficTally};
use serde_json::{Value, json};

/// How long an address with no traffic keeps its counter.
const IDLE_SECONDS: u64 = 86_400;
/// The most addresses one set holds.
const SET_SIZE: u64 = 65_536;

/// The name of the accounting table beside `table`.
pub fn table_name(table: &str) -> String {
    format!("{table}_acct")
}

/// The JSON batch that makes the accounting table for the inside devices.
pub fn create_batch(table: &str, devices: &[String]) -> Result<Value, BackendError> {
    for d in devices {
        let ok = !d.is_empty() && d.len() <= 15 && d.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
        if !ok {
            return Err(BackendError::new(ErrorCode::ValidationError, format!("{d:?} is not a device name")));
        }
    }
    let t = table_name(table);
    let mut commands = vec![json!({"add": {"table": {"family": "inet", "name": t}}})];
    for (set, kind) in [("sent4", "ipv4_addr"), ("sent6", "ipv6_addr"), ("recv4", "ipv4_addr"), ("recv6", "ipv6_addr")]
    {
        commands.push(json!({"add": {"set": {"family": "inet", "table": t, "name": set, "type": kind,
            "size": SET_SIZE, "flags": ["timeout"], "timeout": IDLE_SECONDS, "stmt": [{"counter": null}]}}}));
    }
    for (chain, hook, prio) in [("sent", "prerouting", -160), ("recv", "postrouting", 160)] {
        commands.push(json!({"add": {"chain": {"family": "inet", "table": t, "name": chain, "type": "filter",
            "hook": hook, "prio": prio, "policy": "accept"}}}));
    }
    let names = json!({"set": devices});
    for (chain, meta, field, family, set) in [
        ("sent", "iifname", "saddr", "ip", "sent4"),
        ("sent", "iifname", "saddr", "ip6", "sent6"),
        ("recv", "oifname", "daddr", "ip", "recv4"),
        ("recv", "oifname", "daddr", "ip6", "recv6"),
    ] {
        commands.push(json!({"add": {"rule": {"family": "inet", "table": t, "chain": chain, "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": meta}}, "right": names}},
            {"set": {"op": "update", "elem": {"payload": {"protocol": family, "field": field}},
                     "set": format!("@{set}"), "stmt": [{"counter": null}]}}
        ]}}}));
    }
    Ok(json!({"nftables": commands}))
}

/// The counters in a listing of the accounting table.
pub fn read(listing: &Value) -> AddressCounters {
    let mut tally = TrafficTally::default();
    let items = listing["nftables"].as_array().map(Vec::as_slice).unwrap_or_default();
    for set in items.iter().filter_map(|i| i.get("set")) {
        let sent = matches!(set["name"].as_str(), Some("sent4" | "sent6"));
        for e in set["elem"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let e = &e["elem"];
            let Some(address) = e["val"].as_str().and_then(|v| v.parse::<IpAddr>().ok()) else { continue };
            let (packets, bytes) =
                (e["counter"]["packets"].as_u64().unwrap_or(0), e["counter"]["bytes"].as_u64().unwrap_or(0));
            if sent {
                tally.sent(address, bytes, packets);
            } else {
                tally.received(address, bytes, packets);
            }
        }
    }
    AddressCounters {
        rows: tally.into_rows(),
        cumulative: true,
        started_now: false,
        source: "the kernel's per-address counters (nftables accounting table)".into(),
        misses: Some("addresses idle for a day lose their counters; IP lengths, headers included".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_names_only_valid_devices_and_the_listing_reads_back_per_address() {
        assert!(create_batch("portcullis", &["lan0;reboot".into()]).is_err());
        let batch = create_batch("portcullis", &["lan0".into(), "dmz0".into()]).unwrap();
        assert_eq!(batch["nftables"].as_array().unwrap().len(), 1 + 4 + 2 + 4);
        let listing = json!({"nftables": [
            {"set": {"name": "sent4", "elem": [{"elem": {"val": "10.77.1.2", "counter": {"packets": 3, "bytes": 300}}}]}},
            {"set": {"name": "recv4", "elem": [{"elem": {"val": "10.77.1.2", "counter": {"packets": 9, "bytes": 9000}}},
                                               {"elem": {"val": "10.77.1.3", "counter": {"packets": 1, "bytes": 60}}}]}}
        ]});
        let read = read(&listing);
        assert_eq!(read.rows.len(), 2);
        assert_eq!((read.rows[0].bytes_sent, read.rows[0].bytes_received), (300, 9000));
        assert_eq!(read.rows[1].packets_received, 1);
    }
}
