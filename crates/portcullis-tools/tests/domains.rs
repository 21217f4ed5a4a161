//! Domain blocks end to end through `ToolService::call` on the lab backend, against a real DNS server: dnsmasq on
//! loopback serves a test zone (`.test`, answers with a TTL of 2 s). `block_domain` blocks the name's A and AAAA
//! addresses as the destination, `list_blocks` shows them with the name, a changed record is followed at the
//! TTL (the old address unblocked), `unblock_domain` removes what the block added but keeps an address another
//! blocked name stands for, and hostile or dangerous names are refused naming `domain`, with nothing changed.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use portcullis_tools::{DomainSettings, Target, ToolService};
use serde_json::{Value, json};

#[path = "common/dns.rs"]
mod dns;
use dns::Dns;

const ADMIN_HOST: &str = "192.168.1.10";

fn service(dns: &Dns) -> ToolService {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        management_hosts: vec![format!("{ADMIN_HOST}/32").parse().unwrap()],
        protected_addresses: vec!["203.0.113.0/24".parse().unwrap()],
        ..GuardSettings::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).unwrap()).unwrap();
    ToolService::new(guard, vec![Target::new("lab", Arc::new(lab))]).unwrap().with_domains(DomainSettings {
        resolver: Some(dns.address()),
        min_refresh: Duration::from_secs(1),
        max_refresh: Duration::from_secs(3600),
    })
}

fn admin() -> CallContext {
    CallContext::new(Principal { name: "ada".into(), role: "admin".into() }, Transport::Cli, None)
}

async fn call(svc: &ToolService, tool: &str, args: Value) -> Result<Value, portcullis_tools::CallError> {
    svc.call(&admin(), tool, args).await
}

/// The blocked addresses of `domain`, sorted.
async fn blocked(svc: &ToolService, domain: &str) -> Vec<String> {
    let listed = call(svc, "list_blocks", json!({})).await.unwrap();
    let mut out: Vec<String> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["domain"] == domain)
        .map(|b| {
            assert_eq!(b["kind"], "domain");
            b["ip_address"].as_str().unwrap().to_string()
        })
        .collect();
    out.sort();
    out
}

async fn verdict(svc: &ToolService, destination: &str) -> String {
    let packet = json!({"interface": "lan", "direction": "in", "protocol": "tcp", "source": "192.168.1.50",
                        "destination": destination, "destination_port": 443});
    let answer = call(svc, "simulate_packet", packet).await.unwrap();
    answer["action"].as_str().or(answer["verdict"].as_str()).unwrap_or_default().to_string()
}

const ZONE: &str = "192.0.2.10 ads.example.test\n2001:db8::10 ads.example.test\n192.0.2.20 cdn.example.test\n";

#[tokio::test]
async fn a_domain_block_holds_the_names_addresses_and_follows_a_changed_record_at_its_ttl() {
    let dns = Dns::start(ZONE);
    let svc = service(&dns);
    let before = verdict(&svc, "192.0.2.10").await;
    let made = call(&svc, "block_domain", json!({"domain": "ADS.example.test.", "duration": "1h", "reason": "ads"}))
        .await
        .unwrap();
    assert_eq!((made["status"].as_str(), made["verified"].as_bool()), (Some("applied"), Some(true)), "{made}");
    assert_eq!(blocked(&svc, "ads.example.test").await, vec!["192.0.2.10", "2001:db8::10"]);
    let listed = call(&svc, "list_blocks", json!({})).await.unwrap();
    let row = listed["data"].as_array().unwrap().iter().find(|b| b["domain"] == "ads.example.test").unwrap().clone();
    assert_eq!(row["reason"], "ads", "the reason is the call's, without the name: {row}");
    assert!(row["remaining_seconds"].as_i64().unwrap() > 3500);
    assert_ne!(verdict(&svc, "192.0.2.10").await, before, "traffic to the name's address is now decided otherwise");
    assert_eq!(verdict(&svc, "192.0.2.20").await, before, "another name's address is untouched");

    // The record moves: within the TTL (2 s) the block follows it, and the old address is reachable again.
    dns.serve("192.0.2.11 ads.example.test\n2001:db8::10 ads.example.test\n192.0.2.20 cdn.example.test\n");
    let moved = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for (_, outcome) in svc.refresh_domains_due().await {
            outcome.unwrap();
        }
        if blocked(&svc, "ads.example.test").await == vec!["192.0.2.11", "2001:db8::10"] {
            break;
        }
        assert!(moved.elapsed() < Duration::from_secs(10), "the block did not follow the record");
    }
    println!("the block followed the changed record after {:.1?} (TTL 2 s)", moved.elapsed());
    assert_eq!(verdict(&svc, "192.0.2.10").await, before, "the old address is reachable again");
    assert_ne!(verdict(&svc, "192.0.2.11").await, before);
    let audit = call(&svc, "get_audit_log", json!({"limit": 50})).await.unwrap();
    assert!(audit.to_string().contains("\"refresh\""), "the refresh is audited: {audit}");

    let gone = call(&svc, "unblock_domain", json!({"domain": "ads.example.test"})).await.unwrap();
    assert_eq!(gone["status"], "applied", "{gone}");
    assert!(blocked(&svc, "ads.example.test").await.is_empty());
    assert_eq!(verdict(&svc, "192.0.2.11").await, before);
    let e = call(&svc, "unblock_domain", json!({"domain": "ads.example.test"})).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("domain"), "{e:?}");
}

#[tokio::test]
async fn an_address_two_blocked_names_share_stays_blocked_when_one_is_unblocked() {
    let dns = Dns::start("192.0.2.30 one.example.test\n192.0.2.30 two.example.test\n192.0.2.31 two.example.test\n");
    let svc = service(&dns);
    call(&svc, "block_domain", json!({"domain": "one.example.test", "duration": "1h", "reason": "a"})).await.unwrap();
    let second = call(&svc, "block_domain", json!({"domain": "two.example.test", "duration": "1h", "reason": "b"}))
        .await
        .unwrap();
    assert!(second["warnings"].to_string().contains("one.example.test"), "{second}");
    call(&svc, "unblock_domain", json!({"domain": "one.example.test"})).await.unwrap();
    assert_eq!(blocked(&svc, "two.example.test").await, vec!["192.0.2.30", "192.0.2.31"]);
    assert!(blocked(&svc, "one.example.test").await.is_empty());
}

#[tokio::test]
async fn hostile_and_dangerous_names_are_refused_naming_the_field_with_nothing_changed() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_ascii_lowercase();
    let own = format!("{}.test", host.split('.').next().unwrap());
    let zone = format!(
        "{ADMIN_HOST} admin.example.test\n192.168.1.1 fw.example.test\n203.0.113.7 partner.example.test\n\
         192.0.2.40 {own}\n"
    );
    let dns = Dns::start(&zone);
    let svc = service(&dns);
    let long = format!("{}.test", vec!["a".repeat(60); 5].join("."));
    let cases: Vec<(String, &str)> = vec![
        ("exa mple.com".into(), "not a domain name"),
        ("*.evil.com".into(), "wildcard"),
        ("a..b".into(), "empty label"),
        (long, "253"),
        ("localhost".into(), "single label"),
        ("printer.localhost".into(), ".localhost"),
        ("192.0.2.1".into(), "address"),
        ("admin.example.test".into(), "management host"),
        ("fw.example.test".into(), "firewall's own address"),
        ("partner.example.test".into(), "protected"),
        (own.clone(), "firewall's own name"),
        ("missing.example.test".into(), "does not exist"),
    ];
    let before = call(&svc, "list_blocks", json!({})).await.unwrap();
    for (name, why) in cases {
        let e = call(&svc, "block_domain", json!({"domain": name, "duration": "1h", "reason": "x"})).await.unwrap_err();
        assert_eq!(e.field.as_deref(), Some("domain"), "{name}: {e:?}");
        assert!(e.message.contains(why), "{name}: {}", e.message);
    }
    assert_eq!(call(&svc, "list_blocks", json!({})).await.unwrap(), before, "nothing changed");
}
