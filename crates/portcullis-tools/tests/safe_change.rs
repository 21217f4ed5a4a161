//! Safe change on the lab backend: lockout prevention refuses changes that cut a management flow, names the
//! flow and the rule, and changes nothing.

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
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000 },
        management_hosts: vec![format!("{ADMIN_HOST}/32").parse().unwrap()],
        management_flows: vec![ManagementFlow {
            name: "monitoring → DMZ web".into(),
            interface: "lan".into(),
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
