//! DDoS protection end to end through `ToolService::call` on the lab backend: the customer's exact call, the
//! protection as state (`get_ddos_protection`, `simulate_packet`), replacement, removal with `enabled: false`,
//! rollback, roles, hostile input refused naming the field with nothing changed, and lockout prevention for a
//! management flow the protection would limit.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::sync::Arc;

use portcullis_core::lockout::ManagementFlow;
use portcullis_core::model::Direction;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::{Value, json};

const ADMIN_HOST: &str = "192.168.1.10";
/// An operator reaching the firewall's SSH from outside; not a management host, so not exempt.
const OPS_SOURCE: &str = "192.0.2.44";

/// The service, with the log store the report reads (kept as long as the directory handle lives).
fn service() -> (ToolService, tempfile::TempDir) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        // The wan pass rule the first test opens scores 100 (any source).
        max_risk_score: 100,
        management_hosts: vec![format!("{ADMIN_HOST}/32").parse().unwrap()],
        protected_addresses: vec!["203.0.113.0/24".parse().unwrap()],
        management_flows: vec![ManagementFlow {
            name: "ops ssh into the dmz".into(),
            interface: "dmz".into(),
            direction: Direction::In,
            source: OPS_SOURCE.parse().unwrap(),
            destination: "10.10.10.1".parse().unwrap(),
            port: 22,
        }],
        ..GuardSettings::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logs =
        portcullis_logstore::LogStore::open(dir.path().join("lab"), portcullis_logstore::Retention::default()).unwrap();
    let svc = ToolService::new(guard, vec![Target::new("lab", Arc::new(lab))])
        .unwrap()
        .with_log_stores(std::collections::HashMap::from([("lab".to_string(), logs)]));
    (svc, dir)
}

fn as_role(role: &str) -> CallContext {
    CallContext::new(Principal { name: format!("{role}-user"), role: role.into() }, Transport::Cli, None)
}

async fn call(svc: &ToolService, tool: &str, args: Value) -> Result<Value, portcullis_tools::CallError> {
    svc.call(&as_role("admin"), tool, args).await
}

async fn protections(svc: &ToolService) -> Value {
    call(svc, "get_ddos_protection", json!({})).await.unwrap()
}

const CUSTOMER_CALL: &str = r#"{"interface": "wan", "rate_limit": "1000/s", "burst_limit": "5000", "enabled": true}"#;

#[tokio::test]
async fn the_customers_call_sets_a_protection_that_is_state_simulated_and_removed() {
    let (svc, _logs) = service();
    let set = call(&svc, "configure_ddos_protection", serde_json::from_str(CUSTOMER_CALL).unwrap()).await.unwrap();
    assert_eq!(set["status"], "applied", "{set:#}");
    let warnings = set["warnings"].to_string();
    assert!(
        !warnings.contains("no effect"),
        "a protection changes no verdict and is not said to be useless: {warnings}"
    );
    let listed = protections(&svc).await;
    assert_eq!(listed["count"], 1, "{listed:#}");
    let p = &listed["data"][0];
    assert_eq!(p["protection_id"], "wan/tcp");
    assert_eq!(p["rate_limit"], json!({"count": 1000, "unit": "second", "burst": 5000}));
    // Management hosts and protected ranges are carried as the protection's exempt sources.
    assert_eq!(p["exempt"], json!(["192.168.1.10/32", "203.0.113.0/24"]));
    assert_eq!(p["live"]["live"], false, "the lab sees no live traffic and says so");

    // The lab's wan passes nothing by default: open HTTPS so there is a connection to count.
    let rule = json!({"interface": "wan", "action": "pass", "protocol": "tcp", "source": "any",
                      "destination": "any", "destination_port": 443, "description": "HTTPS in"});
    call(&svc, "create_firewall_rule", rule).await.unwrap();
    let sim = |source: &str| {
        json!({"interface": "wan", "protocol": "tcp", "source": source, "destination": "198.51.100.2",
               "destination_port": 443})
    };
    let counted = call(&svc, "simulate_packet", sim("192.0.2.200")).await.unwrap();
    assert_eq!(counted["verdict"], "pass");
    assert_eq!(counted["rate_limited_by"][0]["protection_id"], "wan/tcp", "{counted:#}");
    assert_eq!(counted["rate_limited_by"][0]["exempt"], false);
    let report =
        call(&svc, "generate_security_report", json!({"timeframe": "1h", "format": "markdown"})).await.unwrap();
    assert_eq!(
        report["ddos_protections"][0], "wan/tcp: at most 1000/second burst 5000 new connections overall",
        "{report:#}"
    );
    assert!(report["content"].as_str().unwrap().contains("## DDoS protections in force"), "{report:#}");
    let spared = call(&svc, "simulate_packet", sim("203.0.113.5")).await.unwrap();
    assert_eq!(spared["rate_limited_by"][0]["exempt"], true, "{spared:#}");

    // A second call for the same interface and selector replaces it; a different selector is a second one.
    let replaced =
        json!({"interface": "wan", "rate_limit": "500/s", "per_source_rate": "20/s", "overload_block": "10m"});
    call(&svc, "configure_ddos_protection", replaced).await.unwrap();
    let web = json!({"interface": "wan", "ports": [80, 443], "max_connections_per_source": 50, "syn_proxy": true});
    call(&svc, "configure_ddos_protection", web).await.unwrap();
    let listed = protections(&svc).await;
    assert_eq!(listed["count"], 2, "{listed:#}");
    assert_eq!(listed["data"][0]["rate_limit"]["count"], 500);
    assert_eq!(listed["data"][0]["overload_block_seconds"], 600);
    assert_eq!(listed["data"][1]["protection_id"], "wan/tcp/80,443");
    let narrowed = call(&svc, "simulate_packet", sim("192.0.2.200")).await.unwrap();
    let ids: Vec<&str> =
        narrowed["rate_limited_by"].as_array().unwrap().iter().map(|m| m["protection_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["wan/tcp", "wan/tcp/80,443"], "every protection that takes it applies");

    // Removal and its undo.
    let removed =
        call(&svc, "configure_ddos_protection", json!({"interface": "wan", "ports": "80,443", "enabled": false}))
            .await
            .unwrap();
    assert_eq!(protections(&svc).await["count"], 1);
    let change_id = removed["change_id"].as_str().unwrap().to_string();
    call(&svc, "rollback_change", json!({"change_id": change_id})).await.unwrap();
    let back = protections(&svc).await;
    assert_eq!(back["count"], 2, "{back:#}");
    assert_eq!(back["data"][1]["max_connections_per_source"], 50);

    let gone = call(&svc, "configure_ddos_protection", json!({"interface": "wan", "enabled": false})).await.unwrap();
    assert_eq!(gone["status"], "applied");
    let again =
        call(&svc, "configure_ddos_protection", json!({"interface": "wan", "enabled": false})).await.unwrap_err();
    assert_eq!(again.field.as_deref(), Some("interface"), "{again:?}");
}

#[tokio::test]
async fn hostile_input_is_refused_naming_the_field_and_nothing_changes() {
    let (svc, _logs) = service();
    call(&svc, "configure_ddos_protection", json!({"interface": "wan", "rate_limit": "100/s"})).await.unwrap();
    let before = protections(&svc).await;
    let audit_before = call(&svc, "get_audit_log", json!({"limit": 1000})).await.unwrap()["count"].clone();
    let cases = [
        (json!({"interface": "wan", "rate_limit": "0/s"}), "rate_limit"),
        (json!({"interface": "wan", "rate_limit": "-5/s"}), "rate_limit"),
        (json!({"interface": "wan", "rate_limit": "1e99/s"}), "rate_limit"),
        (json!({"interface": "wan", "rate_limit": "1000/fortnight"}), "rate_limit"),
        (json!({"interface": "wan", "rate_limit": "1000/s", "burst_limit": "-1"}), "burst_limit"),
        (json!({"interface": "wan", "rate_limit": "1000/s", "burst_limit": -1}), "burst_limit"),
        (json!({"interface": "wan", "per_source_rate": "20/s", "per_source_burst": "-3"}), "per_source_burst"),
        (json!({"interface": "wan9", "rate_limit": "1000/s"}), "interface"),
        (json!({"interface": "wan", "rate_limit": "1000/s", "ports": 70000}), "ports"),
        (json!({"interface": "wan", "rate_limit": "1000/s", "protocol": "icmp"}), "protocol"),
        (json!({"interface": "wan", "syn_proxy": true, "protocol": "udp"}), "syn_proxy"),
        (json!({"interface": "wan", "overload_block": "10m"}), "overload_block"),
        (json!({"interface": "wan", "per_source_rate": "20/s", "overload_block": "30d"}), "overload_block"),
        (json!({"interface": "wan", "max_connections_per_source": "1.5"}), "max_connections_per_source"),
        (json!({"interface": "wan"}), "rate_limit"),
        (json!({"interface": "wan", "per_source_bandwidth": "0Mbit/s"}), "per_source_bandwidth"),
        (json!({"interface": "wan", "per_source_bandwidth": "10 furlongs"}), "per_source_bandwidth"),
        (json!({"interface": "wan", "rate_limit": "1000/s", "bogus": 1}), "bogus"),
    ];
    for (args, field) in cases {
        let err = call(&svc, "configure_ddos_protection", args.clone()).await.unwrap_err();
        assert_eq!(err.field.as_deref(), Some(field), "{args}: {err:?}");
    }
    // Protecting the management port so that an operator's own source would be limited: a lockout.
    let ssh = json!({"interface": "dmz", "ports": 22, "per_source_rate": "5/s", "overload_block": "1h"});
    let err = call(&svc, "configure_ddos_protection", ssh).await.unwrap_err();
    assert_eq!(err.code.as_str(), "lockout_prevented", "{err:?}");
    assert_eq!(err.field.as_deref(), Some("ports"), "{err:?}");
    assert!(err.message.contains("ops ssh into the dmz") && err.message.contains("dmz/tcp/22"), "{}", err.message);
    // The same protection on other ports of the dmz does not take the flow.
    let web = json!({"interface": "dmz", "ports": [80, 443], "per_source_rate": "5/s", "dry_run": true});
    call(&svc, "configure_ddos_protection", web).await.unwrap();
    assert_eq!(protections(&svc).await, before, "nothing changed");
    let audit_after = call(&svc, "get_audit_log", json!({"limit": 1000})).await.unwrap()["count"].clone();
    assert!(audit_after.as_u64() > audit_before.as_u64(), "refusals are audited");
}

#[tokio::test]
async fn only_admins_configure_protections_and_operators_may_read_them() {
    let (svc, _logs) = service();
    let err = svc
        .call(&as_role("operator"), "configure_ddos_protection", serde_json::from_str(CUSTOMER_CALL).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "authorization_failed", "{err:?}");
    svc.call(&as_role("operator"), "get_ddos_protection", json!({})).await.unwrap();
    let dry =
        call(&svc, "configure_ddos_protection", json!({"interface": "wan", "rate_limit": "10/s", "dry_run": true}))
            .await
            .unwrap();
    assert_eq!(dry["status"], "planned", "{dry:#}");
    assert_eq!(protections(&svc).await["count"], 0);
}
