//! Guardrails, end to end through `ToolService::call` on the lab backend: the role matrix against the
//! documented table, human approval bound to exact arguments, hostile inputs, rate classes, alerts, tampering.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use portcullis_core::firewall::ErrorCode;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Roles, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService, catalogue, permissions_markdown};
use serde_json::{Value, json};

const MANAGEMENT_HOST: &str = "192.168.1.10";

#[path = "common/dns.rs"]
mod dns;

/// One DNS server for every service of this file, answering the names the matrix blocks.
fn dns() -> &'static dns::Dns {
    static DNS: std::sync::OnceLock<dns::Dns> = std::sync::OnceLock::new();
    DNS.get_or_init(|| dns::Dns::start("192.0.2.90 ads.matrix.test\n192.0.2.91 tracker.matrix.test\n"))
}

fn service_with(mut settings: GuardSettings) -> (ToolService, Arc<Store>) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    settings.protected_addresses.push(format!("{MANAGEMENT_HOST}/32").parse().unwrap());
    let guard = Guard::new(settings, Auditor::new(store.clone(), None).unwrap()).unwrap();
    let logs_dir = tempfile::tempdir().unwrap().keep();
    let logs = portcullis_logstore::LogStore::open(logs_dir, portcullis_logstore::Retention::default()).unwrap();
    let stores = std::collections::HashMap::from([("lab".to_string(), logs)]);
    let host = LabFirewall::open("host", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let vpn = LabFirewall::open("vpn", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let targets = vec![
        Target::new("lab", Arc::new(lab)),
        Target::new("host", Arc::new(common::OwnHost(host))),
        Target::new("vpn", Arc::new(common::VpnHost(vpn, Default::default()))),
    ];
    let sensor = portcullis_tools::SensorSetting {
        target: None,
        sensor: portcullis_core::mirror::Sensor {
            name: "ids".into(),
            kind: portcullis_core::mirror::SensorKind::Interface { interface: "em9".into() },
        },
        serves: vec!["dmz".into()],
        engine: Some("suricata".into()),
    };
    let mirroring = portcullis_tools::MirrorSettings { sensors: vec![sensor], ..Default::default() };
    let domains = portcullis_tools::DomainSettings { resolver: Some(dns().address()), ..Default::default() };
    let svc = ToolService::new(guard, targets)
        .unwrap()
        .with_log_stores(stores)
        .with_mirroring(mirroring)
        .with_domains(domains);
    (svc.with_country_db(Some(common::test_country_db())), store)
}

fn generous() -> GuardSettings {
    GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        ..GuardSettings::default()
    }
}

fn as_role(role: &str) -> CallContext {
    CallContext::new(Principal { name: format!("{role}-user"), role: role.into() }, Transport::Cli, None)
}

async fn call(svc: &ToolService, role: &str, tool: &str, args: Value) -> Result<Value, portcullis_tools::CallError> {
    svc.call(&as_role(role), tool, args).await
}

fn docs_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/PERMISSIONS.md")
}

#[test]
fn permissions_doc_is_generated_from_the_code() {
    let generated = permissions_markdown(&Roles::default());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(docs_path(), &generated).unwrap();
    }
    let documented = std::fs::read_to_string(docs_path()).unwrap_or_default();
    assert_eq!(documented, generated, "docs/PERMISSIONS.md is stale: run with UPDATE_DOCS=1");
}

/// The documented allow/deny of (tool, role), read from docs/PERMISSIONS.md.
fn documented(tool: &str, role: &str) -> bool {
    let doc = std::fs::read_to_string(docs_path()).unwrap();
    let header: Vec<&str> =
        doc.lines().find(|l| l.starts_with("| tool |")).unwrap().split('|').map(str::trim).collect();
    let column = header.iter().position(|c| *c == role).unwrap();
    let row =
        doc.lines().find(|l| l.starts_with(&format!("| {tool} |"))).unwrap_or_else(|| panic!("{tool} undocumented"));
    row.split('|').map(str::trim).nth(column).unwrap() == "allow"
}

/// Valid arguments for each tool, with whatever state the call needs prepared as admin.
async fn valid_call(svc: &ToolService, tool: &str) -> Value {
    let rule = || async {
        let created = call(
            svc,
            "admin",
            "create_firewall_rule",
            json!({"interface": "dmz", "action": "pass", "protocol": "tcp", "source": "10.10.10.0/24",
                   "destination": "any", "destination_port": 443, "description": "DMZ web out"}),
        )
        .await
        .unwrap();
        created["rule"]["rule_id"].clone()
    };
    match tool {
        "get_firewall_rules" | "list_blocks" | "get_system_status" | "lint_rules" | "verify_audit_log" => json!({}),
        "get_vpn_status" => json!({"type": "openvpn"}),
        "create_vpn_user" => json!({"target": "vpn", "username": "matrix_user", "expires": "1h"}),
        "list_vpn_users" => json!({"target": "vpn"}),
        "delete_vpn_user" => {
            call(svc, "admin", "create_vpn_user", json!({"target": "vpn", "username": "leaving"})).await.unwrap();
            json!({"target": "vpn", "username": "leaving"})
        }
        "query_firewall_logs" => json!({"timeframe": "1h", "action": "block"}),
        "get_traffic_stats" => json!({"timeframe": "1h"}),
        "analyze_threats" => json!({"timeframe": "24h"}),
        "generate_security_report" => json!({"timeframe": "24h", "format": "html"}),
        "get_dashboard_data" => json!({}),
        "list_pending_changes" | "list_grants" | "get_active_alarms" | "list_aliases" => json!({}),
        "grant_access" => json!({"ip_address": "203.0.113.44", "duration": "1h", "reason": "matrix"}),
        "revoke_access" => {
            call(svc, "admin", "grant_access", json!({"ip_address": "203.0.113.45", "duration": "1h", "reason": "x"}))
                .await
                .unwrap();
            json!({"ip_address": "203.0.113.45"})
        }
        "confirm_change" | "rollback_change" => {
            let change = call(
                svc,
                "admin",
                "block_ip_address",
                json!({"ip_address": "203.0.113.88", "duration": "1h", "reason": "matrix", "confirm_within": "1h"}),
            )
            .await
            .unwrap();
            json!({"change_id": change["change_id"]})
        }
        "get_audit_log" => json!({"limit": 5}),
        "lookup_country" => json!({"ip_address": "203.0.113.7"}),
        "list_geo_blocks" => json!({}),
        "get_ddos_protection" | "list_mirrors" => json!({}),
        "list_devices" => json!({"status": "all"}),
        "get_online_devices" | "get_offline_devices" => json!({}),
        "get_bandwidth_usage" => json!({"timeframe": "1h"}),
        "enable_traffic_analysis" => json!({"interface": "dmz", "alert_threshold": "5GB/h"}),
        "mirror_traffic" => {
            json!({"interface": "dmz", "sensor": "ids", "reason": "matrix", "protocol": "tcp", "port": 80})
        }
        "stop_mirror" => {
            let mirror =
                json!({"interface": "dmz", "sensor": "ids", "reason": "matrix", "protocol": "udp", "port": 53});
            call(svc, "admin", "mirror_traffic", mirror).await.unwrap();
            let listed = call(svc, "admin", "list_mirrors", json!({})).await.unwrap();
            json!({"mirror_id": listed["data"][0]["mirror_id"]})
        }
        "configure_ddos_protection" => json!({"interface": "dmz", "rate_limit": "1000/s", "burst_limit": "5000"}),
        "refresh_geo_blocks" => {
            let block = json!({"countries": ["DE"], "interfaces": ["dmz"], "description": "matrix"});
            call(svc, "admin", "create_geo_block", block).await.unwrap();
            let later = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/geoip/dbip-layout-later.mmdb");
            svc.use_country_db(Some(Arc::new(portcullis_geo::CountryDb::open(&later).unwrap())));
            json!({})
        }
        "create_geo_block" => json!({"countries": ["DE"], "interfaces": ["dmz"], "description": "matrix"}),
        "delete_geo_block" => {
            let made = call(
                svc,
                "admin",
                "create_geo_block",
                json!({"countries": ["DE"], "interfaces": ["dmz"], "description": "matrix", "direction": "out"}),
            )
            .await
            .unwrap();
            let listed = call(svc, "admin", "list_geo_blocks", json!({})).await.unwrap();
            assert!(made["change_id"].is_string());
            json!({"geo_block_id": listed["data"][0]["geo_block_id"]})
        }
        "simulate_packet" => json!({"interface": "wan", "direction": "in", "protocol": "tcp",
                                    "source": "203.0.113.5", "destination": "198.51.100.2", "destination_port": 22}),
        "create_firewall_rule" => json!({"interface": "dmz", "action": "block", "protocol": "udp", "source": "any",
                                         "destination": "any", "destination_port": 53, "description": "No DNS"}),
        "modify_firewall_rule" => json!({"rule_id": rule().await, "description": "renamed"}),
        "delete_firewall_rule" => json!({"rule_id": rule().await}),
        "pause_rule" => json!({"rule_id": rule().await, "minutes": 30}),
        "resume_rule" => {
            let id = rule().await;
            call(svc, "admin", "pause_rule", json!({"rule_id": id, "minutes": 30})).await.unwrap();
            json!({"rule_id": id})
        }
        "block_ip_address" => json!({"ip_address": "203.0.113.66", "duration": "1h", "reason": "matrix"}),
        "block_domain" => json!({"domain": "ads.matrix.test", "duration": "1h", "reason": "matrix"}),
        "unblock_domain" => {
            let block = json!({"domain": "tracker.matrix.test", "duration": "1h", "reason": "matrix"});
            call(svc, "admin", "block_domain", block).await.unwrap();
            json!({"domain": "tracker.matrix.test"})
        }
        // A dry run: the change itself needs a person's approval at any role.
        "set_egress_policy" => json!({"target": "host", "interface": "wan", "dry_run": true, "include_dns": false,
                                      "allow": [{"name": "mirror", "destination": "203.0.113.80", "port": 443}]}),
        "unblock_ip_address" => {
            // The operator's own block: anyone's needs admin access to security (see `ownership.rs`).
            call(
                svc,
                "operator",
                "block_ip_address",
                json!({"ip_address": "203.0.113.77", "duration": "1h", "reason": "x"}),
            )
            .await
            .unwrap();
            json!({"ip_address": "203.0.113.77"})
        }
        other => panic!("the matrix has no valid call for {other}: add one"),
    }
}

#[tokio::test]
async fn every_tool_for_every_builtin_role_matches_the_documented_table() {
    for def in catalogue() {
        for role in ["viewer", "operator", "admin"] {
            let (svc, store) = service_with(generous());
            let args = valid_call(&svc, def.name).await;
            let outcome = call(&svc, role, def.name, args.clone()).await;
            let expected = documented(def.name, role);
            match (&outcome, expected) {
                (Ok(_), true) => {}
                (Err(e), false) => assert_eq!(e.code, ErrorCode::AuthorizationFailed, "{} as {role}", def.name),
                (Ok(_), false) => panic!("{} as {role} was allowed but the table says deny", def.name),
                (Err(e), true) => panic!("{} as {role} failed: {e:?} ({args})", def.name),
            }
            let last = &store.audit_tail(1).unwrap()[0].record;
            assert_eq!(last["tool"], def.name);
            assert_eq!(last["decision"], if expected { "allowed" } else { "denied" });
            let visible = svc.tools_for(&as_role(role)).iter().any(|t| t.name == def.name);
            assert_eq!(visible, expected, "{} listed for {role}", def.name);
        }
    }
}

/// A pass any → any where nothing passes yet (the lab's DMZ has no rules): it opens everything.
fn any_any_dmz() -> Value {
    json!({"interface": "dmz", "action": "pass", "protocol": "any", "source": "any", "destination": "any",
           "description": "open everything"})
}

#[tokio::test]
async fn risk_weighs_what_a_rule_opens_not_how_it_is_written() {
    let (svc, _) = service_with(generous());
    let from_lan_net = |dry_run: bool| {
        json!({"interface": "lan", "action": "pass", "protocol": "any", "source": "lan", "destination": "any",
               "description": "LAN out", "dry_run": dry_run})
    };
    // Under the default allow rules (LAN net to any) the same rule opens nothing.
    let redundant = call(&svc, "admin", "create_firewall_rule", from_lan_net(true)).await.unwrap();
    assert_eq!(redundant["effect"]["verdict"], "no_effect", "{redundant}");
    let mut anywhere = any_any_dmz();
    anywhere["dry_run"] = json!(true);
    let opens = call(&svc, "admin", "create_firewall_rule", anywhere).await.unwrap();
    assert_eq!(opens["effect"]["verdict"], "widens");
    assert_eq!(opens["approval_required"], true);
    let (low, high) = (redundant["risk_score"].as_u64().unwrap(), opens["risk_score"].as_u64().unwrap());
    assert!(low < high, "{low} vs {high}");
}

#[tokio::test]
async fn approval_is_bound_to_exact_arguments_and_single_use() {
    let (svc, store) = service_with(generous());
    let err = call(&svc, "admin", "create_firewall_rule", any_any_dmz()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApprovalRequired);
    let id = err.approval_id.clone().unwrap();
    let rules_before = call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["count"].clone();

    // The model cannot approve itself by insisting: an argument the tool does not take is refused outright.
    let mut insisting = any_any_dmz();
    insisting["confirm"] = json!(true);
    let refused = call(&svc, "admin", "create_firewall_rule", insisting).await.unwrap_err();
    assert_eq!((refused.code, refused.field.as_deref()), (ErrorCode::ValidationError, Some("confirm")));
    let mut logged = any_any_dmz();
    logged["log"] = json!(true);
    let again = call(&svc, "admin", "create_firewall_rule", logged).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::ApprovalRequired);
    assert_ne!(again.approval_id.as_deref(), Some(id.as_str()), "different arguments, different approval");

    store.approval_decide(&id, true, "human:alice", chrono::Utc::now()).unwrap();
    let mut other = any_any_dmz();
    other["description"] = json!("open everything, but different");
    let e = call(&svc, "admin", "create_firewall_rule", other).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ApprovalRequired, "a grant for one call does not authorise another");
    assert_eq!(call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["count"], rules_before);

    let applied = call(&svc, "admin", "create_firewall_rule", any_any_dmz()).await.unwrap();
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["approval_id"], id.as_str());
    // With the rule gone again, the same call opens the same flows, and the approval it used is spent.
    let rule_id = applied["rule"]["rule_id"].clone();
    call(&svc, "admin", "delete_firewall_rule", json!({"rule_id": rule_id})).await.unwrap();
    let reuse = call(&svc, "admin", "create_firewall_rule", any_any_dmz()).await.unwrap_err();
    assert_eq!(reuse.code, ErrorCode::ApprovalRequired, "an approval is single-use");

    let dry = json!({"dry_run": true});
    let mut planned = any_any_dmz();
    planned.as_object_mut().unwrap().extend(dry.as_object().unwrap().clone());
    let plan = call(&svc, "admin", "create_firewall_rule", planned).await.unwrap();
    assert_eq!(plan["status"], "planned");
    assert_eq!(plan["approval_required"], true);
}

#[tokio::test]
async fn restricted_interfaces_need_admin_or_approval_and_never_pass_any_any() {
    let settings = GuardSettings { restricted_interfaces: vec!["wan".into()], ..generous() };
    let (svc, _) = service_with(settings);
    let wan_block = json!({"ip_address": "203.0.113.9", "interface": "wan", "duration": "1h", "reason": "scan"});
    let err = call(&svc, "operator", "block_ip_address", wan_block.clone()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApprovalRequired);
    call(&svc, "admin", "block_ip_address", wan_block).await.unwrap();
    let wan_any = json!({"interface": "wan", "action": "pass", "protocol": "any", "source": "any",
                         "destination": "any", "description": "oops"});
    let err = call(&svc, "admin", "create_firewall_rule", wan_any).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PolicyDenied);
    assert_eq!(err.field.as_deref(), Some("source"));
}

#[tokio::test]
async fn hostile_inputs_are_refused_with_field_errors_and_change_nothing() {
    let (svc, store) = service_with(generous());
    let block = |ip: &str| json!({"ip_address": ip, "duration": "1h", "reason": "corpus"});
    let rule = |field: &str, value: &str| {
        let mut args = json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "any",
                              "destination": "any", "destination_port": 25, "description": "corpus"});
        args[field] = json!(value);
        args
    };
    let long_name = "a".repeat(300);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("block_ip_address", block("1.2.3.4; rm -rf /"), "ip_address"),
        ("block_ip_address", block("$(reboot)"), "ip_address"),
        ("block_ip_address", block("' OR 1=1 --"), "ip_address"),
        ("block_ip_address", block("<script>alert(1)</script>"), "ip_address"),
        ("block_ip_address", block("0.0.0.0/0"), "ip_address"),
        ("block_ip_address", block("::/0"), "ip_address"),
        ("block_ip_address", block(MANAGEMENT_HOST), "ip_address"),
        ("block_ip_address", block("127.0.0.1"), "ip_address"),
        ("block_ip_address", block("198.51.100.2"), "ip_address"),
        ("block_ip_address", block("10.0.0.0/8"), "ip_address"),
        ("block_ip_address", json!({"ip_address": "203.0.113.1", "duration": "1h", "reason": "x`id`"}), "reason"),
        ("block_ip_address", json!({"ip_address": "203.0.113.1", "duration": "1h; reboot", "reason": "x"}), "duration"),
        ("create_firewall_rule", rule("description", "'; DROP TABLE rules; --"), "description"),
        ("create_firewall_rule", rule("description", "<img src=x onerror=alert(1)>"), "description"),
        ("create_firewall_rule", rule("source", "any; reboot"), "source"),
        ("create_firewall_rule", rule("destination", "$(curl evil)"), "destination"),
        ("create_firewall_rule", rule("interface", &long_name), "interface"),
        ("create_firewall_rule", rule("source", &format!("{}.example.com", "x".repeat(260))), "source"),
        (
            "simulate_packet",
            json!({"interface": "wan", "protocol": "tcp", "source": "1.2.3.4|id",
                                   "destination": "198.51.100.2", "destination_port": 22}),
            "source",
        ),
    ];
    let before_rules = call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["data"].clone();
    for (tool, args, field) in &cases {
        // Operators are the everyday role for blocks; admin for rules.
        let role = if *tool == "block_ip_address" { "operator" } else { "admin" };
        let err = call(&svc, role, tool, args.clone()).await.unwrap_err();
        assert!(matches!(err.code, ErrorCode::ValidationError | ErrorCode::PolicyDenied), "{tool} {args}: {err:?}");
        assert_eq!(err.field.as_deref(), Some(*field), "{tool} {args}: {}", err.message);
    }
    assert_eq!(call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["data"], before_rules);
    assert_eq!(call(&svc, "admin", "list_blocks", json!({})).await.unwrap()["count"], 0);
    let denied = store
        .audit_query(&portcullis_store::AuditFilter {
            decision: Some("denied".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(denied.len(), cases.len());
}

#[tokio::test]
async fn sensitive_calls_have_their_own_rate_and_denial_bursts_raise_an_alert() {
    let settings = GuardSettings {
        rates: RateQuotas { default: 100, sensitive: 3, admin: 1, mirror: 1 },
        ..GuardSettings::default()
    };
    let (svc, store) = service_with(settings);
    for i in 0..3 {
        let args = json!({"ip_address": format!("203.0.113.{}", 10 + i), "duration": "1h", "reason": "rate"});
        call(&svc, "operator", "block_ip_address", args).await.unwrap();
    }
    let err = call(
        &svc,
        "operator",
        "block_ip_address",
        json!({"ip_address": "203.0.113.20", "duration": "1h", "reason": "r"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
    assert!(err.retry_after_seconds.is_some());
    call(&svc, "operator", "list_blocks", json!({})).await.expect("reads keep their own budget");

    for _ in 0..6 {
        let _ = call(
            &svc,
            "viewer",
            "block_ip_address",
            json!({"ip_address": "203.0.113.30", "duration": "1h", "reason": "r"}),
        )
        .await;
    }
    let alerts = store.alerts_since(chrono::Utc::now() - chrono::TimeDelta::minutes(1)).unwrap();
    assert!(alerts.iter().any(|a| a.kind == "denial_burst" && a.principal == "viewer-user"), "{alerts:?}");
}

#[tokio::test]
async fn refused_high_risk_change_raises_an_alert() {
    let (svc, store) = service_with(generous());
    let _ = call(&svc, "admin", "create_firewall_rule", any_any_dmz()).await.unwrap_err();
    let alerts = store.alerts_since(chrono::Utc::now() - chrono::TimeDelta::minutes(1)).unwrap();
    assert!(alerts.iter().any(|a| a.kind == "high_risk_refused"), "{alerts:?}");
}

#[tokio::test]
async fn verify_audit_log_reports_tampering_with_the_sequence_number() {
    let (svc, store) = service_with(generous());
    for _ in 0..4 {
        call(&svc, "viewer", "get_firewall_rules", json!({})).await.unwrap();
    }
    assert_eq!(call(&svc, "viewer", "verify_audit_log", json!({})).await.unwrap()["ok"], true);
    store.execute_raw_for_tests("UPDATE audit SET record = replace(record, 'viewer', 'admin') WHERE seq = 2").unwrap();
    let report = call(&svc, "viewer", "verify_audit_log", json!({})).await.unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["broken_at"], 2);
    let log = call(&svc, "viewer", "get_audit_log", json!({"tool": "get_firewall_rules", "limit": 2})).await.unwrap();
    assert_eq!(log["count"], 2);
}

#[tokio::test]
async fn an_operator_unblocks_its_own_blocks_but_not_the_automated_responses() {
    let (svc, _) = service_with(generous());
    let auto = CallContext::new(
        Principal { name: "auto_response".into(), role: "operator".into() },
        Transport::System,
        Some("auto_response".into()),
    );
    let block = |ip: &str| json!({"ip_address": ip, "duration": "1h", "reason": "auto: port scan"});
    svc.call(&auto, "block_ip_address", block("203.0.113.90")).await.unwrap();
    call(&svc, "operator", "block_ip_address", block("203.0.113.91")).await.unwrap();
    let before = call(&svc, "admin", "list_blocks", json!({})).await.unwrap();

    let refused =
        call(&svc, "operator", "unblock_ip_address", json!({"ip_address": "203.0.113.90"})).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::AuthorizationFailed);
    assert!(refused.message.contains("blocked by auto_response"), "{}", refused.message);
    assert_eq!(call(&svc, "admin", "list_blocks", json!({})).await.unwrap(), before, "nothing changed");

    call(&svc, "operator", "unblock_ip_address", json!({"ip_address": "203.0.113.91"})).await.unwrap();
    // Re-blocking it for less time keeps the longer block and its owner: the operator still cannot take it away.
    svc.call(&auto, "block_ip_address", json!({"ip_address": "203.0.113.90", "duration": "10m", "reason": "again"}))
        .await
        .unwrap();
    call(&svc, "admin", "unblock_ip_address", json!({"ip_address": "203.0.113.90"})).await.unwrap();
    let left = call(&svc, "admin", "list_blocks", json!({})).await.unwrap();
    assert_eq!(left["count"], 0, "{left}");
}

#[tokio::test]
async fn invisible_characters_are_refused_in_every_free_text_field() {
    let (svc, _) = service_with(generous());
    let before = call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap();
    let spellings = ["\u{202E}kcolb", "a\u{2066}b\u{2069}", "zero\u{200B}width", "\u{FEFF}bom", "soft\u{AD}hyphen"];
    for text in spellings {
        let calls = [
            ("block_ip_address", "reason", json!({"ip_address": "203.0.113.5", "duration": "1h", "reason": text})),
            ("grant_access", "reason", json!({"ip_address": "203.0.113.6", "duration": "1h", "reason": text})),
            (
                "create_firewall_rule",
                "description",
                json!({"interface": "dmz", "action": "block", "protocol": "tcp", "source": "any",
                       "destination": "any", "destination_port": 23, "description": text}),
            ),
            (
                "modify_firewall_rule",
                "description",
                json!({"rule_id": before["data"][0]["rule_id"], "description": text}),
            ),
        ];
        for (tool, field, args) in calls {
            let e = call(&svc, "admin", tool, args).await.unwrap_err();
            assert_eq!(
                (e.code, e.field.as_deref()),
                (ErrorCode::ValidationError, Some(field)),
                "{tool} {text:?}: {e:?}"
            );
            assert!(e.message.contains("U+"), "{tool}: {}", e.message);
        }
    }
    assert_eq!(call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["data"], before["data"]);
    assert_eq!(call(&svc, "admin", "list_blocks", json!({})).await.unwrap()["count"], 0);
}

#[tokio::test]
async fn managed_names_cannot_be_taken_for_another_purpose() {
    let (svc, _) = service_with(generous());
    for alias in ["PORTCULLIS_BLOCK", "portcullis_block", "PORTCULLIS_BLOCK_LAN", "PORTCULLIS_GEO_CN", "PORTCULLIS_X"] {
        let grant = json!({"ip_address": "203.0.113.20", "duration": "1h", "reason": "vendor", "alias": alias});
        let e = call(&svc, "admin", "grant_access", grant).await.unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::ValidationError, Some("alias")), "{alias}: {e:?}");
        assert!(e.message.contains("reserved"), "{}", e.message);
    }
    call(&svc, "admin", "block_ip_address", json!({"ip_address": "203.0.113.21", "duration": "1h", "reason": "scan"}))
        .await
        .unwrap();
    // A pass rule from the block list would let the blocked in; a block from it acts as the list does.
    for (field, source, destination) in [
        ("source", "PORTCULLIS_BLOCK", "any"),
        ("destination", "any", "PORTCULLIS_BLOCK"),
        ("source", "portcullis_block", "any"),
    ] {
        let rule = json!({"interface": "lan", "action": "pass", "protocol": "tcp", "source": source,
                          "destination": destination, "destination_port": 443, "description": "hijack"});
        let e = call(&svc, "admin", "create_firewall_rule", rule).await.unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::ValidationError, Some(field)), "{source}: {e:?}");
    }
    let outbound = json!({"interface": "lan", "action": "block", "direction": "out", "protocol": "any",
                          "source": "any", "destination": "PORTCULLIS_BLOCK", "description": "no replies to blocked"});
    let made = call(&svc, "admin", "create_firewall_rule", outbound).await.unwrap();
    assert_eq!(made["status"], "applied", "{made}");
    // Blocks still land in the block list, and the grant list holds nothing.
    let aliases = call(&svc, "admin", "list_aliases", json!({})).await.unwrap();
    let by_name = |n: &str| aliases["data"].as_array().unwrap().iter().find(|a| a["name"] == n).cloned();
    assert_eq!(by_name("PORTCULLIS_BLOCK").unwrap()["managed"], "block_list", "{aliases}");
    assert!(by_name("PORTCULLIS_GRANT").is_none(), "{aliases}");
}

/// A network alias on the lab, put there as an administrator outside Portcullis would.
async fn seed_alias(lab: &LabFirewall, name: &str, entries: &[&str]) {
    use portcullis_core::firewall::Firewall;
    use portcullis_core::model::{Alias, AliasEntry, AliasKind};
    use portcullis_core::plan::{ChangeFacts, ChangePlan, Operation};
    let entries = entries
        .iter()
        .map(|v| AliasEntry { value: v.to_string(), detail: String::new(), expires_at: None, created_at: None })
        .collect();
    let alias = Alias {
        name: name.into(),
        kind: AliasKind::Network,
        description: String::new(),
        entries: Vec::new(),
        managed: None,
    };
    let plan = ChangePlan {
        summary: format!("seed {name}"),
        operations: vec![
            Operation::CreateAlias { after: alias },
            Operation::PutAliasEntries { alias: name.into(), before: Vec::new(), after: entries },
        ],
        warnings: Vec::new(),
        facts: ChangeFacts::default(),
    };
    lab.apply(&plan).await.unwrap();
}

#[tokio::test]
async fn any_to_any_is_judged_by_what_the_addresses_cover_not_their_spelling() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    seed_alias(&lab, "HALVES_V4", &["0.0.0.0/1", "128.0.0.0/1"]).await;
    seed_alias(&lab, "HALVES_V6", &["::/1", "8000::/1"]).await;
    seed_alias(&lab, "NOTHING", &[]).await;
    seed_alias(&lab, "MOST_V4", &["0.0.0.0/1", "128.0.0.0/2"]).await;
    let settings = GuardSettings { restricted_interfaces: vec!["wan".into()], ..generous() };
    let guard = Guard::new(settings, Auditor::new(store.clone(), None).unwrap()).unwrap();
    let svc = ToolService::new(guard, vec![Target::new("lab", Arc::new(lab))]).unwrap();
    let wan_pass = |source: &str, destination: &str, ip_version: &str| {
        json!({"interface": "wan", "action": "pass", "protocol": "any", "source": source,
               "destination": destination, "ip_version": ip_version, "description": "spelling", "dry_run": true})
    };
    let before_rules = call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["data"].clone();
    let everything = [
        ("any", "any", "inet46"),
        ("any", "any", "inet"),
        ("any", "any", "inet6"),
        ("0.0.0.0/0", "0.0.0.0/0", "inet"),
        ("0.0.0.0/0", "any", "inet46"),
        ("any", "0.0.0.0/0", "inet"),
        ("::/0", "::/0", "inet6"),
        ("::/0", "any", "inet6"),
        ("HALVES_V4", "any", "inet"),
        ("HALVES_V4", "HALVES_V4", "inet46"),
        ("HALVES_V6", "::/0", "inet6"),
        ("!NOTHING", "any", "inet"),
    ];
    for (source, destination, version) in everything {
        let err =
            call(&svc, "admin", "create_firewall_rule", wan_pass(source, destination, version)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::PolicyDenied, "{source} → {destination} ({version}): {err:?}");
        assert_eq!(err.field.as_deref(), Some("source"), "{source} → {destination}");
    }
    // Less than everything in every family the rule applies to waits for a person, like any wide exposure; the
    // risk of each counts it as broad as `any` when its source covers a whole family.
    let less = [
        ("MOST_V4", "any", "inet"),
        ("0.0.0.0/1", "any", "inet"),
        ("HALVES_V6", "any", "inet"),
        ("any", "198.51.100.0/24", "inet"),
        ("HALVES_V4", "HALVES_V6", "inet46"),
    ];
    let spelled_any = call(&svc, "admin", "create_firewall_rule", {
        let mut a = wan_pass("any", "198.51.100.0/24", "inet");
        a["dry_run"] = json!(true);
        a
    })
    .await
    .unwrap()["risk_score"]
        .clone();
    for (source, destination, version) in less {
        let plan = call(&svc, "admin", "create_firewall_rule", wan_pass(source, destination, version)).await;
        let plan = plan.unwrap_or_else(|e| panic!("{source} → {destination} ({version}): {e:?}"));
        assert_eq!(plan["approval_required"], true, "{source} → {destination}: {plan}");
    }
    for source in ["0.0.0.0/0", "HALVES_V4", "!NOTHING"] {
        let plan = call(&svc, "admin", "create_firewall_rule", wan_pass(source, "198.51.100.0/24", "inet")).await;
        assert_eq!(plan.unwrap()["risk_score"], spelled_any, "{source} weighs like any");
    }
    assert_eq!(call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["data"], before_rules);
}

#[tokio::test]
async fn ipv6_spellings_of_ipv4_hosts_are_refused_everywhere_an_address_enters() {
    let (svc, store) = service_with(generous());
    let mapped_forms = ["::ffff:192.0.2.50", "::FFFF:c000:232", "0:0:0:0:0:ffff:192.0.2.50/128", "::192.0.2.50"];
    let management_forms = [format!("::ffff:{MANAGEMENT_HOST}"), format!("::{MANAGEMENT_HOST}")];
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    for form in mapped_forms.iter().copied().chain(management_forms.iter().map(String::as_str)) {
        cases.push((
            "block_ip_address",
            json!({"ip_address": form, "duration": "1h", "reason": "mapped"}),
            "ip_address",
        ));
        cases.push(("unblock_ip_address", json!({"ip_address": form}), "ip_address"));
        cases.push(("grant_access", json!({"ip_address": form, "duration": "1h", "reason": "mapped"}), "ip_address"));
        cases.push(("revoke_access", json!({"ip_address": form}), "ip_address"));
        for field in ["source", "destination"] {
            let mut rule = json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "any",
                                  "destination": "any", "destination_port": 22, "description": "mapped"});
            rule[field] = json!(form);
            cases.push(("create_firewall_rule", rule, field));
            let mut simulated = json!({"interface": "wan", "protocol": "tcp", "source": "203.0.113.7",
                                       "destination": "198.51.100.2", "destination_port": 22});
            simulated[field] = json!(form);
            cases.push(("simulate_packet", simulated, field));
        }
    }
    cases.push((
        "block_ip_address",
        json!({"ip_address": "::ffff:192.0.2.0/120", "duration": "1h", "reason": "m"}),
        "ip_address",
    ));
    cases.push((
        "block_ip_address",
        json!({"ip_address": "::ffff:0:0/96", "duration": "1h", "reason": "m"}),
        "ip_address",
    ));
    cases.push((
        "block_ip_address",
        json!({"ip_address": "fe80::1%eth0", "duration": "1h", "reason": "m"}),
        "ip_address",
    ));
    cases.push(("block_ip_address", json!({"ip_address": "010.0.0.1", "duration": "1h", "reason": "m"}), "ip_address"));
    cases.push((
        "block_ip_address",
        json!({"ip_address": "192.0.2.0/024", "duration": "1h", "reason": "m"}),
        "ip_address",
    ));
    let before_rules = call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["data"].clone();
    for (tool, args, field) in &cases {
        let err = call(&svc, "admin", tool, args.clone()).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{tool} {args}: {err:?}");
        assert_eq!(err.field.as_deref(), Some(*field), "{tool} {args}: {}", err.message);
    }
    let hint = call(&svc, "admin", "block_ip_address", cases[0].1.clone()).await.unwrap_err();
    assert!(hint.message.contains("use 192.0.2.50"), "{}", hint.message);
    let managed = json!({"ip_address": format!("::ffff:{MANAGEMENT_HOST}"), "duration": "1h", "reason": "m"});
    let hint = call(&svc, "admin", "block_ip_address", managed).await.unwrap_err();
    assert!(hint.message.contains(&format!("use {MANAGEMENT_HOST}")), "{}", hint.message);
    assert_eq!(call(&svc, "admin", "get_firewall_rules", json!({})).await.unwrap()["data"], before_rules);
    assert_eq!(call(&svc, "admin", "list_blocks", json!({})).await.unwrap()["count"], 0);
    assert_eq!(call(&svc, "admin", "list_grants", json!({})).await.unwrap()["count"], 0);
    let denied = store
        .audit_query(&portcullis_store::AuditFilter {
            decision: Some("denied".into()),
            limit: 500,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(denied.len(), cases.len() + 2);
    // The IPv4 form is what blocks the host, and is accepted.
    let ipv4 = json!({"ip_address": "192.0.2.50", "duration": "1h", "reason": "the IPv4 form"});
    call(&svc, "operator", "block_ip_address", ipv4).await.unwrap();
}
