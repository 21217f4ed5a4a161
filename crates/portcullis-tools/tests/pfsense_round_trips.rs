//! What a tool call costs in pfRest requests, through `ToolService::call` against the emulator: a warm read is
//! one request, a log query reads nothing but the log, a block or a block of 1,000 addresses is four requests —
//! and objects changed behind Portcullis' back between a read and a change are still read before the change is
//! planned for good, so no hand edit is lost and no answer is made against what was.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::collections::BTreeMap;

use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_pfrest::types::{FirewallAliasRequest, FirewallRuleRequest};
use portcullis_pfrest_emulator::EmulatorConfig;
use serde_json::{Value, json};

const BLOCK_LIST: &str = "PORTCULLIS_BLOCK";

#[path = "common/pfsense.rs"]
mod pfsense_service;

use pfsense_service::PfSenseService as Setup;

async fn setup() -> Setup {
    pfsense_service::start(EmulatorConfig::with_api_key(pfsense_service::KEY)).await
}

fn admin() -> CallContext {
    CallContext::new(Principal { name: "ada".into(), role: "admin".into() }, Transport::Cli, None)
}

impl Setup {
    async fn call(&self, tool: &str, args: Value) -> Value {
        self.svc.call(&admin(), tool, args).await.unwrap_or_else(|e| panic!("{tool}: {e:?}"))
    }

    /// The call's answer and the requests it sent, by route.
    async fn counted(&self, tool: &str, args: Value) -> (Value, BTreeMap<String, usize>) {
        self.emu.clear_request_log();
        let answer = self.call(tool, args).await;
        (answer, self.emu.request_counts())
    }
}

fn total(counts: &BTreeMap<String, usize>) -> usize {
    counts.values().sum()
}

#[tokio::test]
async fn warm_calls_send_only_what_they_need() {
    let s = setup().await;
    s.call("block_ip_address", json!({"ip_address": "203.0.113.50", "duration": "1h", "reason": "first"})).await;

    let (rules, counts) = s.counted("get_firewall_rules", json!({})).await;
    assert!(rules["count"].as_u64().unwrap() > 0);
    assert_eq!(counts, BTreeMap::from([("GET /api/v2/firewall/rules".to_string(), 1)]), "a warm rules read");

    let (logs, counts) = s.counted("query_firewall_logs", json!({"timeframe": "1h", "limit": 5})).await;
    assert!(logs["lines_read"].as_u64().unwrap() > 0, "{logs}");
    assert!(
        counts.keys().all(|route| route == "GET /api/v2/status/logs/firewall"),
        "a log query reads the log only: {counts:?}"
    );

    let (block, counts) =
        s.counted("block_ip_address", json!({"ip_address": "203.0.113.51", "duration": "1h", "reason": "warm"})).await;
    assert_eq!(block["status"], "applied");
    assert_eq!(block["verified"], true);
    assert!(total(&counts) <= 4, "a warm block: {counts:?}");
    assert_eq!(counts.get("PATCH /api/v2/firewall/alias"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("POST /api/v2/firewall/apply"), None, "the PATCH reloads the filter: {counts:?}");

    let addresses: Vec<String> = (1..=1000).map(|i| format!("2001:db8:16::{i:x}")).collect();
    let (bulk, counts) =
        s.counted("block_ip_address", json!({"ip_addresses": addresses, "duration": "1h", "reason": "bulk"})).await;
    assert_eq!(bulk["status"], "applied");
    assert_eq!(bulk["addresses"].as_array().unwrap().len(), 1000);
    assert!(total(&counts) <= 5, "1,000 addresses in one call: {counts:?}");
    let held = s.fw.client().alias_by_name(BLOCK_LIST).await.unwrap().unwrap();
    assert_eq!(held.address.len(), 1002, "every address is on the firewall");
    assert!(s.emu.state().pending_subsystems.is_empty(), "nothing left to apply");
    s.emu.shutdown().await;
}

#[tokio::test]
async fn an_alias_changed_behind_portcullis_back_is_read_before_the_change() {
    let s = setup().await;
    s.call("block_ip_address", json!({"ip_address": "203.0.113.50", "duration": "1h", "reason": "first"})).await;
    s.call("list_blocks", json!({})).await;

    // By hand, after Portcullis last read the list: two more entries.
    let c = s.fw.client();
    let alias = c.alias_by_name(BLOCK_LIST).await.unwrap().unwrap();
    let mut address = alias.address.clone();
    let mut detail = alias.detail.clone();
    for (a, d) in [("192.0.2.98/32", "by hand"), ("192.0.2.99/32", "by hand")] {
        address.push(a.into());
        detail.push(d.into());
    }
    let edit =
        FirewallAliasRequest { id: alias.id, address: Some(address), detail: Some(detail), ..Default::default() };
    c.update_alias(&edit).await.unwrap();

    let done =
        s.call("block_ip_address", json!({"ip_address": "192.0.2.99", "duration": "1h", "reason": "again"})).await;
    assert_eq!(done["status"], "applied");
    assert_ne!(done["addresses"][0]["outcome"], "blocked", "the plan saw the hand entry: {}", done["addresses"]);
    let op = &done["plan"][0];
    assert_eq!(op["op"], "put_alias_entries");
    assert_eq!(op["before"].as_array().unwrap().len(), 1, "the hand entry is what the block replaces: {op}");
    let held = c.alias_by_name(BLOCK_LIST).await.unwrap().unwrap();
    assert!(held.address.iter().any(|a| a == "192.0.2.98/32"), "no hand edit is lost: {:?}", held.address);
    assert!(held.address.iter().any(|a| a == "192.0.2.99/32"));

    // Undoing the change restores the hand entry, not nothing.
    s.call("rollback_change", json!({"change_id": done["change_id"]})).await;
    let restored = c.alias_by_name(BLOCK_LIST).await.unwrap().unwrap();
    let at = restored.address.iter().position(|a| a == "192.0.2.99/32").expect("the hand entry is back");
    assert!(restored.detail[at].starts_with("by hand"), "{}", restored.detail[at]);
    s.emu.shutdown().await;
}

#[tokio::test]
async fn a_rule_changed_behind_portcullis_back_is_read_before_the_change() {
    let s = setup().await;
    let created = s
        .call(
            "create_firewall_rule",
            json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "lan", "destination": "any",
                   "destination_port": 25, "position": 0, "description": "No SMTP"}),
        )
        .await;
    let id = created["rule"]["rule_id"].as_str().unwrap().to_string();
    s.call("get_firewall_rules", json!({})).await;

    // By hand: the port moves to 2525.
    let c = s.fw.client();
    let raw = c.rule_by_tracker(id.parse().unwrap()).await.unwrap().unwrap();
    let edit = FirewallRuleRequest { id: raw.id, destination_port: Some(Some("2525".into())), ..Default::default() };
    c.update_rule(&edit).await.unwrap();

    let done = s.call("modify_firewall_rule", json!({"rule_id": id, "description": "No SMTP (edited)"})).await;
    assert_eq!(done["status"], "applied", "{done}");
    assert!(done["plan"][0]["before"].to_string().contains("2525"), "planned against the hand edit: {}", done["plan"]);
    let now = c.rule_by_tracker(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(now.destination_port.as_deref(), Some("2525"), "the hand edit is kept");
    assert_eq!(now.descr, "No SMTP (edited)");
    s.emu.shutdown().await;
}
