//! Devices on pfSense through `ToolService::call` against the pfRest emulator's ARP table and DHCP leases, with
//! vendors from the real IEEE registry (Debian's ieee-data): the customer's `get_online_devices` and
//! `get_offline_devices`, and `list_devices`; a device that leaves goes offline after the idle time and is still
//! listed, remembered in the store.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::time::Duration;

use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_pfrest_emulator::EmulatorConfig;
use portcullis_tools::DeviceSettings;
use serde_json::{Value, json};

#[path = "common/pfsense.rs"]
mod pfsense_service;

fn viewer() -> CallContext {
    CallContext::new(Principal { name: "vi".into(), role: "viewer".into() }, Transport::Cli, None)
}

fn by_address<'a>(answer: &'a Value, address: &str) -> Option<&'a Value> {
    answer["data"].as_array().unwrap().iter().find(|d| d["address"] == address)
}

fn arp(ip: &str, mac: &str, nic: &str, expires: &str) -> Value {
    json!({"hostname": "?", "ip_address": ip, "mac_address": mac, "interface": nic, "type": "ethernet",
           "permanent": false, "dnsresolve": "?", "expires": expires})
}

#[tokio::test]
async fn arp_and_leases_give_devices_with_vendors_that_go_offline_after_the_idle_time() {
    let mut s = pfsense_service::start(EmulatorConfig::with_api_key(pfsense_service::KEY)).await;
    s.svc = s.svc.with_devices(DeviceSettings { idle: Duration::from_secs(2), ..DeviceSettings::default() });
    s.emu.set_arp_table(vec![
        arp("192.168.1.20", "00:1b:21:3a:4f:5c", "em1", "Expires in 1200 seconds"),
        arp("10.10.10.5", "00:50:56:aa:bb:cc", "em2", "Expires in 1199 seconds"),
        arp("192.168.1.44", "02:11:22:33:44:55", "em1", "Expires in 1200 seconds"),
    ]);

    let online = s.svc.call(&viewer(), "get_online_devices", json!({})).await.unwrap();
    assert_eq!(online["count"], 3, "{online}");
    let laptop = by_address(&online, "192.168.1.20").unwrap();
    assert_eq!(laptop["mac"], "00:1b:21:3a:4f:5c");
    assert_eq!(laptop["vendor"], "Intel Corporate", "from the IEEE registry: {laptop}");
    assert_eq!((laptop["hostname"].as_str(), laptop["interface"].as_str()), (Some("laptop"), Some("lan")));
    assert_eq!(laptop["status"], "online");
    assert_eq!(laptop["sources"], json!(["arp", "dhcp_lease"]));
    assert_eq!(by_address(&online, "10.10.10.5").unwrap()["vendor"], "VMware, Inc.");
    assert_eq!(by_address(&online, "10.10.10.5").unwrap()["interface"], "opt1");
    let phone = by_address(&online, "192.168.1.44").unwrap();
    assert_eq!((phone["randomized_mac"].as_bool(), phone.get("vendor")), (Some(true), None), "{phone}");

    // The printer has a lease but pfSense does not see it: offline, with the lease's name and its maker.
    let offline = s.svc.call(&viewer(), "get_offline_devices", json!({})).await.unwrap();
    let printer = by_address(&offline, "192.168.1.30").unwrap();
    assert_eq!(
        (printer["hostname"].as_str(), printer["vendor"].as_str()),
        (Some("printer"), Some("Brother industries, LTD."))
    );
    assert!(printer.get("last_seen").is_none(), "never seen present: {printer}");

    // The laptop leaves: gone from the ARP table, its lease idle. After the idle time it is offline, still listed.
    s.emu.set_arp_table(vec![arp("10.10.10.5", "00:50:56:aa:bb:cc", "em2", "Expires in 1200 seconds")]);
    s.emu.set_dhcp_leases(vec![json!({"ip": "192.168.1.20", "mac": "00:1b:21:3a:4f:5c", "hostname": "laptop",
        "if": "lan", "starts": "2026/12/07 08:00:00", "ends": "2026/12/07 20:00:00", "active_status": "active",
        "online_status": "idle/offline", "descr": ""})]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = s.svc.call(&viewer(), "list_devices", json!({"status": "all"})).await.unwrap();
    let laptop = by_address(&all, "192.168.1.20").unwrap();
    assert_eq!(laptop["status"], "offline", "{laptop}");
    assert!(laptop["last_seen"].is_string());
    assert_eq!(by_address(&all, "10.10.10.5").unwrap()["status"], "online");
    assert_eq!((all["online"].as_u64(), all["offline"].as_u64()), (Some(1), Some(3)), "{all}");
    let lan = s.svc.call(&viewer(), "list_devices", json!({"interface": "lan", "status": "offline"})).await.unwrap();
    assert!(lan["data"].as_array().unwrap().iter().all(|d| d["interface"] == "lan"), "{lan}");

    let e = s.svc.call(&viewer(), "list_devices", json!({"status": "sometimes"})).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("status"), "{e:?}");
    assert!(s.emu.schema_violations().is_empty(), "{:?}", s.emu.schema_violations());
}

#[tokio::test]
async fn bandwidth_on_pfsense_comes_from_its_current_states_and_says_what_it_misses() {
    let s = pfsense_service::start(EmulatorConfig::with_api_key(pfsense_service::KEY)).await;
    s.svc.call(&viewer(), "list_devices", json!({})).await.unwrap();
    let usage = s.svc.call(&viewer(), "get_bandwidth_usage", json!({"timeframe": "24h"})).await.unwrap();
    assert!(usage["source"].as_str().unwrap().contains("states"), "{usage}");
    assert!(usage["misses"].as_str().unwrap().contains("closed"), "{usage}");
    assert_eq!(usage["complete"], false);
    let top = &usage["data"][0];
    assert_eq!((top["address"].as_str(), top["hostname"].as_str()), (Some("192.168.1.20"), Some("laptop")), "{usage}");
    assert_eq!((top["bytes_in"].as_u64(), top["bytes_out"].as_u64()), (Some(5_006_000), Some(122_000)));
    let dmz = usage["data"].as_array().unwrap().iter().find(|r| r["address"] == "10.10.10.5").unwrap();
    assert_eq!((dmz["bytes_out"].as_u64(), dmz["bytes_in"].as_u64()), (Some(900_000), Some(30_000)), "{dmz}");
    assert!(!usage.to_string().contains("198.51.100.9"), "an internet host is no device: {usage}");
    let one = s.svc.call(&viewer(), "get_bandwidth_usage", json!({"timeframe": "1h", "limit": 1})).await.unwrap();
    assert_eq!(one["count"], 1);
    let e = s.svc.call(&viewer(), "get_bandwidth_usage", json!({"timeframe": "1h", "limit": 0})).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("limit"));
    assert!(s.emu.schema_violations().is_empty(), "{:?}", s.emu.schema_violations());
}
