//! Bulk forms of the list tools: `ip_addresses` on block, unblock, grant and revoke is one plan (one alias update
//! however many addresses), one approval, with each address's outcome; a bad address anywhere refuses the whole
//! call, naming its place, and changes nothing.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::sync::Arc;

use portcullis_core::firewall::ErrorCode;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::{Value, json};

fn service() -> ToolService {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        protected_addresses: vec!["192.168.1.10/32".parse().unwrap()],
        ..GuardSettings::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).unwrap()).unwrap();
    ToolService::new(guard, vec![Target::new("lab", Arc::new(lab))]).unwrap()
}

fn as_role(role: &str) -> CallContext {
    CallContext::new(Principal { name: format!("{role}-user"), role: role.into() }, Transport::Cli, None)
}

fn addresses(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("198.18.{}.{}", i / 250, i % 250 + 1)).collect()
}

async fn call(svc: &ToolService, role: &str, tool: &str, args: Value) -> Result<Value, portcullis_tools::CallError> {
    svc.call(&as_role(role), tool, args).await
}

#[tokio::test]
async fn a_thousand_addresses_are_one_alias_update_with_each_outcome() {
    let svc = service();
    call(&svc, "admin", "block_ip_address", json!({"ip_address": "198.18.0.1", "duration": "7d", "reason": "person"}))
        .await
        .unwrap();
    let list = addresses(1000);
    let args = json!({"ip_addresses": list, "duration": "1h", "reason": "feed"});
    let done = call(&svc, "admin", "block_ip_address", args).await.unwrap();
    assert_eq!(done["status"], "applied", "{}", done["summary"]);
    let puts: Vec<&Value> =
        done["plan"].as_array().unwrap().iter().filter(|op| op["op"] == "put_alias_entries").collect();
    assert_eq!(puts.len(), 1, "one alias update for the whole list");
    assert_eq!(puts[0]["after"].as_array().unwrap().len(), 1000);
    let outcomes = done["addresses"].as_array().unwrap();
    assert_eq!(outcomes.len(), 1000);
    assert_eq!(outcomes[0], json!({"ip_address": "198.18.0.1", "outcome": "kept_longer"}));
    assert!(outcomes[1..].iter().all(|o| o["outcome"] == "blocked"));
    assert!(done["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().starts_with("1 address(es)")));
    assert_eq!(call(&svc, "admin", "list_blocks", json!({})).await.unwrap()["count"], 1000);

    let mut some = addresses(3);
    some.push("203.0.113.99".into());
    let undone = call(&svc, "admin", "unblock_ip_address", json!({"ip_addresses": some})).await.unwrap();
    let outcomes: Vec<&str> =
        undone["addresses"].as_array().unwrap().iter().map(|o| o["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["unblocked", "unblocked", "unblocked", "not_blocked"]);
    assert_eq!(call(&svc, "admin", "list_blocks", json!({})).await.unwrap()["count"], 997);
}

#[tokio::test]
async fn one_bad_address_refuses_the_whole_list_naming_its_place() {
    let svc = service();
    let cases = [
        (vec!["198.18.0.1", "not-an-ip", "198.18.0.3"], "ip_addresses[1]", ErrorCode::ValidationError),
        (vec!["198.18.0.1", "198.18.0.2", "192.168.1.10"], "ip_addresses[2]", ErrorCode::PolicyDenied),
        (vec!["10.0.0.0/8"], "ip_addresses[0]", ErrorCode::PolicyDenied),
    ];
    for (list, field, code) in cases {
        let e =
            call(&svc, "operator", "block_ip_address", json!({"ip_addresses": list, "duration": "1h", "reason": "r"}))
                .await
                .unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), (code, Some(field)), "{list:?}: {e:?}");
    }
    let e = call(&svc, "operator", "block_ip_address", json!({"ip_addresses": [], "duration": "1h", "reason": "r"}))
        .await
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("ip_addresses"));
    let both = json!({"ip_address": "198.18.0.1", "ip_addresses": ["198.18.0.2"], "duration": "1h", "reason": "r"});
    assert_eq!(
        call(&svc, "operator", "block_ip_address", both).await.unwrap_err().field.as_deref(),
        Some("ip_addresses")
    );
    // The operator's cap is 100 addresses per call; an admin's is 100,000.
    let over = json!({"ip_addresses": addresses(101), "duration": "1h", "reason": "r"});
    let e = call(&svc, "operator", "block_ip_address", over).await.unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::PolicyDenied, Some("ip_addresses")), "{e:?}");
    assert_eq!(call(&svc, "admin", "list_blocks", json!({})).await.unwrap()["count"], 0, "nothing changed");
}

#[tokio::test]
async fn grants_and_revokes_take_lists_too() {
    let svc = service();
    let list = addresses(5);
    let granted =
        call(&svc, "admin", "grant_access", json!({"ip_addresses": list, "duration": "1h", "reason": "vendors"}))
            .await
            .unwrap();
    assert!(granted["addresses"].as_array().unwrap().iter().all(|o| o["outcome"] == "granted"), "{granted}");
    assert_eq!(call(&svc, "admin", "list_grants", json!({})).await.unwrap()["count"], 5);
    let revoked =
        call(&svc, "admin", "revoke_access", json!({"ip_addresses": [list[0], "203.0.113.1"]})).await.unwrap();
    let outcomes: Vec<&str> =
        revoked["addresses"].as_array().unwrap().iter().map(|o| o["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["revoked", "no_grant"]);
    assert_eq!(call(&svc, "admin", "list_grants", json!({})).await.unwrap()["count"], 4);
}

#[tokio::test]
async fn list_blocks_pages_through_every_block_once_and_refuses_bad_pages() {
    let svc = service();
    let list = addresses(250);
    call(&svc, "admin", "block_ip_address", json!({"ip_addresses": list, "duration": "1h", "reason": "feed"}))
        .await
        .unwrap();
    let wan = json!({"ip_address": "203.0.113.9", "interface": "wan", "duration": "1h", "reason": "one"});
    call(&svc, "admin", "block_ip_address", wan).await.unwrap();
    let whole = call(&svc, "viewer", "list_blocks", json!({})).await.unwrap();
    assert_eq!(whole["count"], 251);
    assert!(whole.get("next_cursor").is_none(), "without limit every block, no cursor");

    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"limit": 100});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = call(&svc, "viewer", "list_blocks", args).await.unwrap();
        pages += 1;
        assert!(page["count"].as_u64().unwrap() <= 100);
        for b in page["data"].as_array().unwrap() {
            assert!(seen.insert(b["ip_address"].as_str().unwrap().to_string()), "listed twice: {b}");
        }
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    assert_eq!((seen.len(), pages), (251, 3), "every block once, in pages of 100");

    let on_lan = call(&svc, "viewer", "list_blocks", json!({"limit": 1000, "interface": "lan"})).await.unwrap();
    assert_eq!(on_lan["count"], 250, "the wan-only block is not on lan");
    for (args, field) in [
        (json!({"limit": 0}), "limit"),
        (json!({"limit": 10_001}), "limit"),
        (json!({"limit": 10, "cursor": "garbage"}), "cursor"),
        (json!({"limit": 10, "cursor": "NOT_A_LIST:5"}), "cursor"),
        (json!({"limit": 10, "interface": "nope"}), "interface"),
    ] {
        let e = call(&svc, "viewer", "list_blocks", args.clone()).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError, "{args}: {e:?}");
        assert!(e.message.contains(field), "{args}: {}", e.message);
    }
}
