//! Domain blocks on pfSense through `ToolService::call` against the pfRest emulator: pfSense resolves FQDN
//! entries of host aliases itself (filterdns), so the block is the name in the managed host alias
//! `PORTCULLIS_BLOCKDNS`, enforced by a block rule on the destination; Portcullis resolves it only to refuse names
//! that stand for the firewall, a management host or a protected address (dnsmasq on loopback answers). Hostile
//! names are refused naming `domain`, with nothing changed on the firewall.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_pfrest_emulator::EmulatorConfig;
use portcullis_tools::DomainSettings;
use serde_json::{Value, json};

#[path = "common/pfsense.rs"]
mod pfsense_service;

#[path = "common/dns.rs"]
mod dns;

fn admin() -> CallContext {
    CallContext::new(Principal { name: "ada".into(), role: "admin".into() }, Transport::Cli, None)
}

/// The emulated firewall's configuration: rules and aliases.
fn configuration(s: &pfsense_service::PfSenseService) -> (Vec<Value>, Vec<Value>) {
    let state = s.emu.state();
    (state.rules.clone(), state.aliases.clone())
}

#[tokio::test]
async fn the_alias_carries_the_name_and_hostile_names_change_nothing() {
    // 192.168.1.1 is the emulated LAN address of the firewall.
    let zone = "198.51.100.80 ads.example.test\n192.168.1.1 fw.example.test\n203.0.113.7 partner.example.test\n";
    let dns = dns::Dns::start(zone);
    let mut s = pfsense_service::start(EmulatorConfig::with_api_key(pfsense_service::KEY)).await;
    s.svc = s.svc.with_domains(DomainSettings { resolver: Some(dns.address()), ..DomainSettings::default() });
    let before = configuration(&s);

    let hostile = [
        ("exa mple.com", "holds other characters"),
        ("*.evil.com", "wildcard"),
        ("a..b", "empty label"),
        ("localhost", "single label"),
        ("fw.example.test", "firewall's own address"),
        ("missing.example.test", "does not exist"),
    ];
    let long = format!("{}.test", vec!["b".repeat(60); 5].join("."));
    for (name, why) in hostile.iter().map(|(n, w)| (n.to_string(), *w)).chain([(long, "253")]) {
        let args = json!({"domain": name, "duration": "1h", "reason": "x"});
        let e = s.svc.call(&admin(), "block_domain", args).await.unwrap_err();
        assert_eq!(e.field.as_deref(), Some("domain"), "{name}: {e:?}");
        assert!(e.message.contains(why), "{name}: {}", e.message);
    }
    assert_eq!(configuration(&s), before, "nothing changed on the firewall");

    let made = s
        .svc
        .call(&admin(), "block_domain", json!({"domain": "ads.example.test", "duration": "2h", "reason": "ads"}))
        .await
        .unwrap();
    assert_eq!((made["status"].as_str(), made["verified"].as_bool()), (Some("applied"), Some(true)), "{made}");
    let state = s.emu.state();
    let alias = state.alias("PORTCULLIS_BLOCKDNS").expect("the domain block alias");
    assert_eq!(alias["type"], "host", "{alias}");
    assert_eq!(alias["address"], json!(["ads.example.test"]), "the alias carries the name, which pfSense resolves");
    assert!(alias["detail"][0].as_str().unwrap().contains("ads"), "{alias}");
    let rule = state.rules.iter().find(|r| r["descr"].as_str().is_some_and(|d| d.contains("domain block"))).unwrap();
    assert_eq!((rule["type"].as_str(), rule["destination"].as_str()), (Some("block"), Some("PORTCULLIS_BLOCKDNS")));

    let listed = s.svc.call(&admin(), "list_blocks", json!({})).await.unwrap();
    let row = listed["data"].as_array().unwrap().iter().find(|b| b["kind"] == "domain").unwrap().clone();
    assert_eq!((row["domain"].as_str(), row["reason"].as_str()), (Some("ads.example.test"), Some("ads")), "{row}");

    let gone = s.svc.call(&admin(), "unblock_domain", json!({"domain": "ads.example.test"})).await.unwrap();
    assert_eq!(gone["status"], "applied", "{gone}");
    let state = s.emu.state();
    assert_eq!(state.alias("PORTCULLIS_BLOCKDNS").unwrap()["address"], json!([]));
    assert!(s.emu.schema_violations().is_empty(), "{:?}", s.emu.schema_violations());
}
