//! `set_egress_policy` through `ToolService::call`: roles, the target check, lockout prevention, dry run, a
//! person's approval, the audit trail, and removal (and rollback) giving back exactly the rules there were.

mod common;

use std::sync::Arc;

use portcullis_core::firewall::ErrorCode;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use portcullis_tools::{EgressSources, FirewallApi, Target, ToolService};
use serde_json::{Value, json};

const API: &str = "203.0.113.10";

struct Fixture {
    svc: ToolService,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).expect("lab");
    let host = LabFirewall::open("host", store.clone(), lab_interfaces(&default_interfaces())).expect("host");
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        ..GuardSettings::default()
    };
    let guard = Guard::new(settings, Auditor::new(store.clone(), None).expect("auditor")).expect("guard");
    let dir = tempfile::tempdir().expect("tempdir");
    let resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(&resolv_conf, "nameserver 192.0.2.53\n").expect("resolv.conf");
    let sources = EgressSources {
        firewall_apis: vec![FirewallApi { target: "hq".into(), host: API.into(), port: 443 }],
        mcp_clients: vec!["198.51.100.0/24".parse().expect("net")],
        resolv_conf,
    };
    let targets = vec![Target::new("host", Arc::new(common::OwnHost(host))), Target::new("lab", Arc::new(lab))];
    let svc = ToolService::new(guard, targets).expect("service").with_egress_sources(sources);
    Fixture { svc, store, _dir: dir }
}

fn as_role(role: &str) -> CallContext {
    CallContext::new(Principal { name: format!("{role}-user"), role: role.into() }, Transport::Http, None)
}

fn set(extra: Value) -> Value {
    let mut args = json!({"interface": "wan", "allow": [{"name": "mirror", "destination": "192.0.2.80", "port": 443}]});
    if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    args
}

impl Fixture {
    async fn rules(&self) -> Value {
        self.svc.call(&as_role("admin"), "get_firewall_rules", json!({"interface": "wan"})).await.expect("rules")["data"]
            .clone()
    }

    /// Calls as admin; a call that needs approval is approved by a person, then repeated.
    async fn approved(&self, ctx: &CallContext, args: Value) -> Value {
        let e = self.svc.call(ctx, "set_egress_policy", args.clone()).await.expect_err("needs a person");
        assert_eq!(e.code, ErrorCode::ApprovalRequired, "{e:?}");
        let id = e.approval_id.clone().expect("approval id");
        self.store.approval_decide(&id, true, "human:alice", chrono::Utc::now()).expect("decide");
        let done = self.svc.call(ctx, "set_egress_policy", args).await.expect("applied");
        assert_eq!((done["status"].as_str(), done["approval_id"].as_str()), (Some("applied"), Some(id.as_str())));
        done
    }

    fn last_audit(&self) -> Value {
        self.store.audit_tail(1).expect("audit")[0].record.clone()
    }
}

fn descriptions(rules: &Value) -> Vec<String> {
    rules.as_array().map_or_else(Vec::new, |r| {
        r.iter().map(|r| r["description"].as_str().unwrap_or_default().to_string()).collect()
    })
}

#[tokio::test]
async fn viewers_and_operators_may_not_and_targets_that_do_not_filter_the_host_refuse() {
    let f = fixture();
    for role in ["viewer", "operator"] {
        let e = f.svc.call(&as_role(role), "set_egress_policy", set(json!({}))).await.expect_err("denied");
        assert_eq!(e.code, ErrorCode::AuthorizationFailed, "{role}");
        assert_eq!(f.last_audit()["decision"], "denied");
        assert!(!f.svc.tools_for(&as_role(role)).iter().any(|t| t.name == "set_egress_policy"), "hidden from {role}");
    }
    let e = f.svc.call(&as_role("admin"), "set_egress_policy", set(json!({"target": "lab"}))).await.expect_err("lab");
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::ValidationError, Some("target")), "{e:?}");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("nftables")), "{e:?}");
    let bad = set(json!({"allow": [{"name": "x", "destination": "192.0.2.1", "protocol": "icmp", "port": 1}]}));
    let e = f.svc.call(&as_role("admin"), "set_egress_policy", bad).await.expect_err("icmp with a port");
    assert_eq!(e.field.as_deref(), Some("allow[0].port"), "{e:?}");
    let misspelt = set(json!({"allow": [{"name": "x", "destination": "192.0.2.1", "ports": 443}]}));
    let e = f.svc.call(&as_role("admin"), "set_egress_policy", misspelt).await.expect_err("unknown key");
    assert_eq!(e.field.as_deref(), Some("allow[0].ports"), "{e:?}");
}

#[tokio::test]
async fn a_policy_that_would_cut_a_firewall_api_or_the_caller_is_refused() {
    let f = fixture();
    let before = f.rules().await;
    let e = f
        .svc
        .call(&as_role("admin"), "set_egress_policy", set(json!({"include_firewall_apis": false})))
        .await
        .expect_err("cuts the API of hq");
    assert_eq!(e.code, ErrorCode::LockoutPrevented, "{e:?}");
    assert!(e.message.contains("API of target hq") && e.message.contains(API), "{}", e.message);
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("include_firewall_apis")), "{e:?}");

    let caller = as_role("admin").with_peer(Some("192.0.2.200:50123".parse().expect("peer")));
    let e = f
        .svc
        .call(&caller, "set_egress_policy", set(json!({"include_mcp_clients": false})))
        .await
        .expect_err("cuts the caller");
    assert_eq!(e.code, ErrorCode::LockoutPrevented, "{e:?}");
    assert!(e.message.contains("the calling MCP client 192.0.2.200"), "{}", e.message);
    assert_eq!(f.last_audit()["outcome"], "lockout_prevented");
    assert_eq!(f.rules().await, before, "nothing changed");
}

#[tokio::test]
async fn setting_needs_approval_is_audited_and_removing_gives_back_the_rules_there_were() {
    let f = fixture();
    let admin = as_role("admin").with_peer(Some("192.0.2.200:50123".parse().expect("peer")));
    let before = f.rules().await;

    let planned = f.svc.call(&admin, "set_egress_policy", set(json!({"dry_run": true}))).await.expect("dry run");
    assert_eq!((planned["status"].as_str(), planned["approval_required"].as_bool()), (Some("planned"), Some(true)));
    assert!(planned["risk_score"].as_u64().is_some_and(|r| r > 80), "{planned}");
    let planned_rules: Vec<String> = planned["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .map(|op| op["after"]["description"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        planned_rules,
        [
            "Portcullis egress: allow mirror",
            "Portcullis egress: allow DNS 192.0.2.53",
            &format!("Portcullis egress: allow API of target hq ({API})"),
            "Portcullis egress: allow MCP client 198.51.100.0/24",
            "Portcullis egress: allow MCP client 192.0.2.200/32",
            "Portcullis egress: log and drop the rest",
        ]
    );
    assert_eq!(f.last_audit()["outcome"], "dry_run");
    assert_eq!(f.rules().await, before, "a dry run changes nothing");

    let applied = f.approved(&admin, set(json!({}))).await;
    let audit = f.last_audit();
    assert_eq!((audit["tool"].as_str(), audit["outcome"].as_str()), (Some("set_egress_policy"), Some("ok")));
    assert_eq!(audit["change_id"], applied["change_id"]);
    assert_eq!(audit["approval_id"], applied["approval_id"]);
    assert!(audit["risk_score"].as_u64().is_some_and(|r| r > 80));
    let with_policy = f.rules().await;
    assert_eq!(descriptions(&with_policy)[descriptions(&before).len()..], planned_rules[..]);
    let egress_rule = &with_policy.as_array().expect("rules")[descriptions(&before).len()];
    assert_eq!((egress_rule["direction"].as_str(), egress_rule["source"].as_str()), (Some("out"), Some("(self)")));

    // The rule tools leave the policy's rules alone.
    let id = egress_rule["rule_id"].clone();
    let e = f
        .svc
        .call(&admin, "delete_firewall_rule", json!({"target": "host", "rule_id": id}))
        .await
        .expect_err("managed");
    assert!(e.message.contains("set_egress_policy"), "{e:?}");

    // Setting again replaces the policy in one change.
    f.approved(&admin, set(json!({"allow": [], "include_dns": false}))).await;
    assert_eq!(descriptions(&f.rules().await).len(), descriptions(&before).len() + 4);

    let removed = f.approved(&admin, json!({"interface": "wan", "enabled": false})).await;
    assert_eq!(f.rules().await, before, "removal gives back exactly the rules there were");
    let undo = f.svc.call(&admin, "rollback_change", json!({"change_id": removed["change_id"]})).await.expect("undo");
    assert_eq!(undo["status"], "rolled_back", "{undo}");
    let back = descriptions(&f.rules().await);
    assert_eq!(back.len(), descriptions(&before).len() + 4);
    assert_eq!(back.last().map(String::as_str), Some("Portcullis egress: log and drop the rest"), "in order: {back:?}");
    let verified = f.svc.call(&admin, "verify_audit_log", json!({})).await.expect("verify");
    assert_eq!(verified["ok"], true);
}

/// A dual-stack HTTP listener sees an IPv4 client as `::ffff:a.b.c.d`: the policy keeps the IPv4 host reachable,
/// the only form its packets carry, and lockout prevention names it so.
#[tokio::test]
async fn a_caller_seen_through_a_dual_stack_socket_is_kept_reachable_as_its_ipv4_host() {
    let f = fixture();
    let mapped = as_role("admin").with_peer(Some("[::ffff:192.0.2.200]:50123".parse().expect("peer")));
    let planned = f.svc.call(&mapped, "set_egress_policy", set(json!({"dry_run": true}))).await.expect("dry run");
    assert!(planned.to_string().contains("allow MCP client 192.0.2.200/32"), "{planned}");
    assert!(!planned.to_string().contains("::ffff:"), "{planned}");
    let e = f
        .svc
        .call(&mapped, "set_egress_policy", set(json!({"include_mcp_clients": false})))
        .await
        .expect_err("cuts the caller");
    assert_eq!(e.code, ErrorCode::LockoutPrevented, "{e:?}");
    assert!(e.message.contains("the calling MCP client 192.0.2.200: "), "{}", e.message);
}
