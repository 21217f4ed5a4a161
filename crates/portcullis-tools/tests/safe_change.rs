//! Safe change on the lab backend: lockout prevention refuses changes that cut a management flow, names the
//! flow and the rule, and changes nothing.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::sync::Arc;

use portcullis_core::firewall::ErrorCode;
use portcullis_core::lockout::ManagementFlow;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::{Value, json};

const ADMIN_HOST: &str = "192.168.1.10";

fn service() -> ToolService {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        management_hosts: vec![format!("{ADMIN_HOST}/32").parse().unwrap()],
        management_flows: vec![ManagementFlow {
            name: "monitoring → DMZ web".into(),
            interface: "lan".into(),
            direction: portcullis_core::model::Direction::In,
            source: "192.168.1.20".parse().unwrap(),
            destination: "10.10.10.5".parse().unwrap(),
            port: 8443,
        }],
        ..GuardSettings::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).unwrap()).unwrap();
    ToolService::new(guard, vec![Target::new("lab", Arc::new(lab))]).unwrap()
}

fn admin() -> CallContext {
    CallContext::new(Principal { name: "root".into(), role: "admin".into() }, Transport::Cli, None)
}

async fn rules(svc: &ToolService) -> Value {
    svc.call(&admin(), "get_firewall_rules", json!({})).await.unwrap()["data"].clone()
}

async fn default_allow_lan(svc: &ToolService) -> String {
    let all = rules(svc).await;
    let rule = all.as_array().unwrap().iter().find(|r| r["description"] == "Default allow LAN to any rule").unwrap();
    rule["rule_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_rule_that_would_cut_ssh_from_the_admin_host_is_refused() {
    let svc = service();
    let before = rules(&svc).await;
    let block_ssh = json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "lan",
                           "destination": "lan:ip", "destination_port": 22, "position": 0,
                           "description": "No SSH to the firewall"});
    let err = svc.call(&admin(), "create_firewall_rule", block_ssh).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LockoutPrevented);
    assert!(err.message.contains("192.168.1.10") && err.message.contains("port 22"), "{}", err.message);
    assert!(err.message.contains("No SSH to the firewall"), "names the rule: {}", err.message);
    assert_eq!(rules(&svc).await, before, "nothing changed");
}

#[tokio::test]
async fn pausing_or_deleting_the_rule_that_carries_a_flow_is_refused() {
    let svc = service();
    let id = default_allow_lan(&svc).await;
    for (tool, args) in [
        ("pause_rule", json!({"rule_id": id, "minutes": 10})),
        ("delete_firewall_rule", json!({"rule_id": id})),
        ("modify_firewall_rule", json!({"rule_id": id, "action": "block"})),
    ] {
        let err = svc.call(&admin(), tool, args).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::LockoutPrevented, "{tool}");
        assert!(err.message.contains("management flow"), "{}", err.message);
    }
}

#[tokio::test]
async fn configured_flows_are_protected_and_harmless_changes_pass() {
    let svc = service();
    let cut_dmz = json!({"interface": "lan", "action": "reject", "protocol": "tcp", "source": "192.168.1.20",
                         "destination": "10.10.10.0/24", "destination_port": "8000:9000", "position": 1,
                         "description": "Close the DMZ high ports"});
    let err = svc.call(&admin(), "create_firewall_rule", cut_dmz).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LockoutPrevented);
    assert!(err.message.contains("monitoring → DMZ web"), "{}", err.message);

    let harmless = json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "lan",
                          "destination": "any", "destination_port": 25, "position": 1,
                          "description": "No direct SMTP"});
    let created = svc.call(&admin(), "create_firewall_rule", harmless).await.unwrap();
    assert_eq!(created["status"], "applied");
}

#[tokio::test]
async fn an_unconfirmed_change_is_rolled_back_and_a_confirmed_one_stays() {
    let svc = service();
    let kept = svc
        .call(
            &admin(),
            "block_ip_address",
            json!({"ip_address": "203.0.113.1", "duration": "1h", "reason": "kept", "confirm_within": "1s"}),
        )
        .await
        .unwrap();
    assert_eq!(kept["status"], "pending_confirmation");
    assert!(kept["confirm_by"].is_string());
    let dropped = svc
        .call(
            &admin(),
            "block_ip_address",
            json!({"ip_address": "203.0.113.2", "duration": "1h", "reason": "dropped", "confirm_within": "1s"}),
        )
        .await
        .unwrap();
    let pending = svc.call(&admin(), "list_pending_changes", json!({})).await.unwrap();
    assert_eq!(pending["count"], 2);
    let confirmed = svc.call(&admin(), "confirm_change", json!({"change_id": kept["change_id"]})).await.unwrap();
    assert_eq!(confirmed["status"], "confirmed");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let report = svc.roll_back_overdue().await;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].0, dropped["change_id"].as_str().unwrap());
    assert!(report[0].1.is_ok(), "{:?}", report[0].1);

    let blocks = svc.call(&admin(), "list_blocks", json!({})).await.unwrap();
    let ips: Vec<&str> = blocks["data"].as_array().unwrap().iter().map(|b| b["ip_address"].as_str().unwrap()).collect();
    assert_eq!(ips, ["203.0.113.1"]);
    let late = svc.call(&admin(), "confirm_change", json!({"change_id": dropped["change_id"]})).await.unwrap_err();
    assert_eq!(late.code, ErrorCode::Conflict);
}

#[tokio::test]
async fn rollback_on_demand_restores_created_modified_and_deleted_rules() {
    let svc = service();
    let original = rules(&svc).await;
    let created = svc
        .call(
            &admin(),
            "create_firewall_rule",
            json!({"interface": "dmz", "action": "pass", "protocol": "tcp", "source": "10.10.10.0/24",
                     "destination": "any", "destination_port": 443, "description": "DMZ web out"}),
        )
        .await
        .unwrap();
    let undo = svc
        .call(&admin(), "rollback_change", json!({"change_id": created["change_id"], "dry_run": true}))
        .await
        .unwrap();
    assert_eq!(undo["status"], "planned");
    assert_eq!(undo["plan"][0]["op"], "delete_rule");
    let undone = svc.call(&admin(), "rollback_change", json!({"change_id": created["change_id"]})).await.unwrap();
    assert_eq!(undone["status"], "rolled_back");
    assert_eq!(rules(&svc).await, original);

    let smtp = svc
        .call(
            &admin(),
            "create_firewall_rule",
            json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "lan", "destination": "any",
                     "destination_port": 25, "position": 1, "description": "No SMTP"}),
        )
        .await
        .unwrap();
    let id = smtp["rule"]["rule_id"].clone();
    let with_smtp = rules(&svc).await;
    let edit = svc
        .call(
            &admin(),
            "modify_firewall_rule",
            json!({"rule_id": id, "destination_port": "25:26", "description": "No SMTP(s)"}),
        )
        .await
        .unwrap();
    svc.call(&admin(), "rollback_change", json!({"change_id": edit["change_id"]})).await.unwrap();
    assert_eq!(strip_times(rules(&svc).await), strip_times(with_smtp.clone()));
    let deleted = svc.call(&admin(), "delete_firewall_rule", json!({"rule_id": id})).await.unwrap();
    svc.call(&admin(), "rollback_change", json!({"change_id": deleted["change_id"]})).await.unwrap();
    let restored = rules(&svc).await;
    let smtp_rule = restored.as_array().unwrap().iter().find(|r| r["description"] == "No SMTP").unwrap();
    assert_eq!(smtp_rule["position"], 1, "recreated where it was");
}

fn strip_times(mut v: Value) -> Value {
    for r in v.as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("updated_at");
    }
    v
}

#[tokio::test]
async fn a_rollback_after_a_hand_edit_is_refused_as_drift() {
    let svc = service();
    let created = svc
        .call(
            &admin(),
            "create_firewall_rule",
            json!({"interface": "dmz", "action": "block", "protocol": "udp", "source": "any", "destination": "any",
                     "destination_port": 53, "description": "No DNS out"}),
        )
        .await
        .unwrap();
    let id = created["rule"]["rule_id"].clone();
    svc.call(&admin(), "modify_firewall_rule", json!({"rule_id": id, "description": "edited by hand"})).await.unwrap();
    let err = svc.call(&admin(), "rollback_change", json!({"change_id": created["change_id"]})).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    let still = rules(&svc).await;
    assert!(still.as_array().unwrap().iter().any(|r| r["description"] == "edited by hand"), "nothing changed");
}

#[tokio::test]
async fn undoing_a_change_needs_the_permission_the_change_needed() {
    let svc = service();
    let created = svc
        .call(
            &admin(),
            "create_firewall_rule",
            json!({"interface": "dmz", "action": "block", "protocol": "tcp", "source": "any", "destination": "any",
                     "destination_port": 23, "description": "No telnet"}),
        )
        .await
        .unwrap();
    let operator = CallContext::new(Principal { name: "ops".into(), role: "operator".into() }, Transport::Cli, None);
    let err = svc.call(&operator, "rollback_change", json!({"change_id": created["change_id"]})).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthorizationFailed);
}

fn ssh_from(ip: &str) -> Value {
    json!({"interface": "wan", "direction": "in", "protocol": "tcp", "source": ip,
           "destination": "198.51.100.2", "destination_port": 22})
}

#[tokio::test]
async fn a_grant_lets_one_address_in_until_it_expires_or_is_revoked() {
    let svc = service();
    let granted = svc
        .call(
            &admin(),
            "grant_access",
            json!({"ip_address": "203.0.113.5", "duration": "1h", "reason": "contractor until 18:00",
                     "interface": "wan", "port": 22}),
        )
        .await
        .unwrap();
    assert_eq!(granted["status"], "applied");
    let ops: Vec<&str> = granted["plan"].as_array().unwrap().iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["create_alias", "create_rule", "put_alias_entries"]);

    let inside = svc.call(&admin(), "simulate_packet", ssh_from("203.0.113.5")).await.unwrap();
    assert_eq!(inside["verdict"], "pass");
    assert_eq!(inside["rule"]["managed"], "grant_list");
    let other = svc.call(&admin(), "simulate_packet", ssh_from("203.0.113.6")).await.unwrap();
    assert_eq!(other["verdict"], "block", "only the granted address");

    let second = svc
        .call(
            &admin(),
            "grant_access",
            json!({"ip_address": "203.0.113.7", "duration": "1s", "reason": "short", "interface": "wan", "port": 22}),
        )
        .await
        .unwrap();
    let ops: Vec<&str> = second["plan"].as_array().unwrap().iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["put_alias_entries"], "the alias and its rule exist now");
    let listed = svc.call(&admin(), "list_grants", json!({})).await.unwrap();
    assert_eq!(listed["count"], 2);
    assert_eq!(listed["data"][0]["rules"].as_array().unwrap().len(), 1);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let expired = svc.call(&admin(), "simulate_packet", ssh_from("203.0.113.7")).await.unwrap();
    assert_eq!(expired["verdict"], "block", "an expired grant lets nothing in, even before the sweep");

    svc.call(&admin(), "revoke_access", json!({"ip_address": "203.0.113.5"})).await.unwrap();
    let revoked = svc.call(&admin(), "simulate_packet", ssh_from("203.0.113.5")).await.unwrap();
    assert_eq!(revoked["verdict"], "block");
    let err = svc.call(&admin(), "revoke_access", json!({"ip_address": "203.0.113.5"})).await.unwrap_err();
    assert_eq!(err.field.as_deref(), Some("ip_address"));
}

#[tokio::test]
async fn operators_grants_are_capped() {
    let svc = service();
    let operator = CallContext::new(Principal { name: "ops".into(), role: "operator".into() }, Transport::Cli, None);
    let wide = json!({"ip_address": "203.0.0.0/16", "duration": "1h", "reason": "too wide"});
    let err = svc.call(&operator, "grant_access", wide).await.unwrap_err();
    assert_eq!(err.field.as_deref(), Some("ip_address"), "{err:?}");
    let forever = json!({"ip_address": "203.0.113.9", "duration": "permanent", "reason": "forever"});
    assert_eq!(svc.call(&operator, "grant_access", forever).await.unwrap_err().field.as_deref(), Some("duration"));
}

#[tokio::test]
async fn an_operator_grants_into_a_list_but_only_an_admin_creates_its_rule() {
    let svc = service();
    let operator = CallContext::new(Principal { name: "ops".into(), role: "operator".into() }, Transport::Cli, None);
    let knock =
        |ip: &str| json!({"ip_address": ip, "duration": "1h", "reason": "contractor", "interface": "wan", "port": 22});
    let err = svc.call(&operator, "grant_access", knock("203.0.113.20")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthorizationFailed, "{err:?}");
    svc.call(&admin(), "grant_access", knock("203.0.113.21")).await.unwrap();
    let granted = svc.call(&operator, "grant_access", knock("203.0.113.20")).await.unwrap();
    assert_eq!(granted["status"], "applied");
    let sim = svc.call(&operator, "simulate_packet", ssh_from("203.0.113.20")).await.unwrap();
    assert_eq!(sim["verdict"], "pass");
}

#[tokio::test]
async fn a_managed_entry_removed_by_hand_is_reported_as_drift() {
    use portcullis_core::firewall::Firewall;
    use portcullis_core::plan::{ChangeFacts, ChangePlan, Operation};

    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = Arc::new(LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap());
    let guard = Guard::new(GuardSettings::default(), Auditor::new(store, None).unwrap()).unwrap();
    let svc = ToolService::new(guard, vec![Target::new("lab", lab.clone())]).unwrap();
    assert!(svc.check_drift().await.is_empty(), "the first check adopts what is there");
    for ip in ["203.0.113.31", "203.0.113.32"] {
        svc.call(&admin(), "block_ip_address", json!({"ip_address": ip, "duration": "1h", "reason": "drift"}))
            .await
            .unwrap();
    }
    assert!(svc.check_drift().await.is_empty());

    // Someone edits the firewall by hand, outside Portcullis.
    let state = lab.snapshot().await.unwrap();
    let entry =
        state.alias("PORTCULLIS_BLOCK").unwrap().entries.iter().find(|e| e.value == "203.0.113.31").unwrap().clone();
    let by_hand = ChangePlan {
        summary: "hand edit".into(),
        operations: vec![Operation::RemoveAliasEntries { alias: "PORTCULLIS_BLOCK".into(), before: vec![entry] }],
        warnings: vec![],
        facts: ChangeFacts::default(),
    };
    lab.apply(&by_hand).await.unwrap();

    let drift = svc.check_drift().await;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].removed_by_hand, vec![("PORTCULLIS_BLOCK".to_string(), "203.0.113.31".to_string())]);
    let alarms = svc.call(&admin(), "get_active_alarms", json!({})).await.unwrap();
    let drift_alarm = alarms["data"].as_array().unwrap().iter().find(|a| a["type"] == "drift").unwrap();
    assert!(drift_alarm["message"].as_str().unwrap().contains("203.0.113.31"), "{drift_alarm}");
}
