//! DDoS protection through `ToolService::call` on a real nftables router: set by the customer's call shape,
//! checked by the kernel (`nft -c`) and verified on read-back; a source in the kernel's overload set shows in
//! `list_blocks` (kind `overload`, with its expiry) and in `analyze_threats` (`rate_limited`); a target's
//! unsupported combination is refused whole; removal and rollback restore the table exactly.

#[path = "../../portcullis-nftables/tests/common/mod.rs"]
mod nft;

use std::sync::Arc;

use nft::{CLIENT_A, Topology, normalised};
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_nftables::NftablesFirewall;
use portcullis_nftables::protect::short_name;
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::{Value, json};

fn admin() -> CallContext {
    CallContext::new(Principal { name: "root".into(), role: "admin".into() }, Transport::Cli, None)
}

fn service(net: &Topology, logs: &std::path::Path) -> ToolService {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let fw = Arc::new(NftablesFirewall::new("router", net.settings(), store.clone()));
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        management_hosts: vec!["10.77.1.9/32".parse().expect("host")],
        ..GuardSettings::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).expect("auditor")).expect("guard");
    let logs = portcullis_logstore::LogStore::open(logs.join("router"), portcullis_logstore::Retention::default())
        .expect("log store");
    ToolService::new(guard, vec![Target::new("router", fw)])
        .expect("service")
        .with_log_stores(std::collections::HashMap::from([("router".to_string(), logs)]))
}

async fn call(svc: &ToolService, tool: &str, args: Value) -> Result<Value, portcullis_tools::CallError> {
    svc.call(&admin(), tool, args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overloaded_source_is_a_block_and_a_threat_and_removal_restores_the_table() {
    let net = Topology::new();
    let logs = tempfile::tempdir().expect("log dir");
    let svc = service(&net, logs.path());
    // A first change writes the table's skeleton, so "before" is the table as Portcullis keeps it.
    call(&svc, "block_ip_address", json!({"ip_address": "192.0.2.44", "duration": "1h", "reason": "scan"}))
        .await
        .expect("block");
    let before = normalised(net.list_table());

    let set = call(
        &svc,
        "configure_ddos_protection",
        json!({"interface": "lan", "rate_limit": "1000/s", "burst_limit": "5000", "per_source_rate": "20/s",
               "overload_block": "10m", "max_connections_per_source": 50, "ports": [9080, "9100:9110"]}),
    )
    .await
    .expect("configure");
    assert_eq!(set["verified"], true, "{set}");
    let id = "lan/tcp/9080,9100:9110";

    // The kernel adds a source that exceeds its rate to the overload set; here it is put there as the rule would.
    let overload_set = format!("{}_ov4", short_name(id));
    net.nft(&["add", "element", "inet", "portcullis", &overload_set, &format!("{{ {CLIENT_A} }}")]);
    let blocks = call(&svc, "list_blocks", json!({})).await.expect("list_blocks");
    let overload: Vec<&Value> = blocks["data"].as_array().unwrap().iter().filter(|b| b["kind"] == "overload").collect();
    assert_eq!(overload.len(), 1, "{blocks}");
    assert_eq!(overload[0]["ip_address"], CLIENT_A);
    assert_eq!(overload[0]["interface"], "lan");
    let remaining = overload[0]["remaining_seconds"].as_i64().unwrap();
    assert!((590..=600).contains(&remaining), "the set's 10m timeout: {remaining}");
    let threats = call(&svc, "analyze_threats", json!({"timeframe": "1h"})).await.expect("threats");
    let limited: Vec<&Value> =
        threats["data"].as_array().unwrap().iter().filter(|t| t["type"] == "rate_limited").collect();
    assert_eq!(limited.len(), 1, "{threats}");
    assert_eq!(limited[0]["source_ip"], CLIENT_A);
    let live = call(&svc, "get_ddos_protection", json!({"interface": "lan"})).await.expect("get");
    assert_eq!(live["data"][0]["live"]["overloaded"][0]["source"], CLIENT_A, "{live}");

    // With the SYN proxy, connections per source cannot be counted at the SYN: refused whole, nothing changed.
    let with_proxy = json!({"interface": "lan", "ports": 9082, "syn_proxy": true, "max_connections_per_source": 5});
    let refused = call(&svc, "configure_ddos_protection", with_proxy).await.unwrap_err();
    assert_eq!(refused.code.as_str(), "unsupported", "{refused:?}");
    assert_eq!(refused.field.as_deref(), Some("max_connections_per_source"));

    // Removal restores the table as it was; its undo brings the protection back, limits and all.
    let removed = call(
        &svc,
        "configure_ddos_protection",
        json!({"interface": "lan", "ports": [9080, "9100:9110"], "enabled": false}),
    )
    .await
    .expect("remove");
    assert_eq!(normalised(net.list_table()), before, "removal leaves the table as before");
    call(&svc, "rollback_change", json!({"change_id": removed["change_id"]})).await.expect("rollback");
    let back = call(&svc, "get_ddos_protection", json!({})).await.expect("get");
    assert_eq!(back["data"][0]["protection_id"], id, "{back}");
    assert_eq!(back["data"][0]["per_source_rate"], json!({"count": 20, "unit": "second", "burst": 20}));
    assert_eq!(back["data"][0]["max_connections_per_source"], 50);
}
