//! Blocks and unblocks of single addresses through `ToolService::call` on a real nftables router: after the
//! first change they are planned against looked-up entries and remembered rules, applied over netlink, and never
//! list the table; the kernel enforces them, and lockout prevention still refuses a block of a management host.

#[path = "../../portcullis-nftables/tests/common/mod.rs"]
mod nft;

use std::sync::Arc;

use nft::{CLIENT_A, CLIENT_B, Topology};
use portcullis_core::firewall::ErrorCode;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_nftables::NftablesFirewall;
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::json;

fn admin() -> CallContext {
    CallContext::new(Principal { name: "root".into(), role: "admin".into() }, Transport::Cli, None)
}

fn service(net: &Topology, management: &str) -> (ToolService, Arc<NftablesFirewall>) {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let fw = Arc::new(NftablesFirewall::new("router", net.settings(), store.clone()));
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        management_hosts: vec![management.parse().expect("host")],
        ..GuardSettings::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).expect("auditor")).expect("guard");
    let svc = ToolService::new(guard, vec![Target::new("router", fw.clone())]).expect("service");
    (svc, fw)
}

async fn block(svc: &ToolService, ip: &str) -> Result<serde_json::Value, portcullis_tools::CallError> {
    svc.call(&admin(), "block_ip_address", json!({"ip_address": ip, "duration": "1h", "reason": "scan"})).await
}

#[tokio::test(flavor = "multi_thread")]
async fn single_address_changes_never_list_the_table_and_still_hold() {
    let net = Topology::new();
    let (svc, fw) = service(&net, "10.77.1.9/32");
    let first = block(&svc, "192.0.2.44").await.expect("first block");
    assert_eq!(first["verified"], true, "{first}");
    let reads = fw.whole_reads();

    let second = block(&svc, CLIENT_B).await.expect("block");
    assert_eq!(second["verified"], true, "{second}");
    assert!(!net.tcp(CLIENT_B, 8080) && net.tcp(CLIENT_A, 8080), "the kernel drops the blocked source only");
    let unblocked = svc.call(&admin(), "unblock_ip_address", json!({"ip_address": CLIENT_B})).await.expect("unblock");
    assert_eq!(unblocked["verified"], true, "{unblocked}");
    assert!(net.tcp(CLIENT_B, 8080), "unblocked");
    assert_eq!(fw.whole_reads(), reads, "no change of single addresses listed the table");
    assert_eq!(fw.netlink_batches(), 2);

    // Another table's transaction moves the kernel's generation on, but the digest of this table's rules holds.
    net.nft(&["add", "table", "inet", "someone_else"]);
    block(&svc, "192.0.2.46").await.expect("block after another table's write");
    assert_eq!(fw.whole_reads(), reads, "another table's write made no whole read");

    // A hand edit of this table's rules: the next change reads the table whole once.
    net.nft(&["add", "rule", "inet", "portcullis", "aliases", "counter"]);
    net.nft(&["flush", "chain", "inet", "portcullis", "aliases"]);
    let refused = block(&svc, "192.0.2.45").await.expect_err("the aliases' descriptions are gone");
    assert_ne!(refused.code, ErrorCode::InternalError, "{refused:?}");
    assert!(fw.whole_reads() > reads, "the hand edit made the remembered rules stale");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_of_a_management_host_is_refused_on_a_whole_read() {
    let net = Topology::new();
    let (svc, fw) = service(&net, &format!("{CLIENT_A}/32"));
    block(&svc, "192.0.2.44").await.expect("first block");
    let reads = fw.whole_reads();
    let refused = block(&svc, CLIENT_A).await.expect_err("lockout");
    assert_eq!(refused.code, ErrorCode::LockoutPrevented, "{refused:?}");
    assert_eq!(fw.whole_reads(), reads + 1, "the refusal was confirmed on the whole table");
    assert!(net.tcp(CLIENT_A, 8080), "nothing changed");
    let blocks = svc.call(&admin(), "list_blocks", json!({})).await.expect("list");
    assert!(!blocks.to_string().contains(CLIENT_A), "{blocks}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_grant_list_beside_the_block_list_blocks_still_list_nothing() {
    let net = Topology::new();
    let (svc, fw) = service(&net, "10.77.1.9/32");
    block(&svc, "192.0.2.44").await.expect("first block");
    let grant = json!({"ip_address": "198.51.100.1", "duration": "1h", "reason": "vendor"});
    svc.call(&admin(), "grant_access", grant).await.expect("grant");
    let reads = fw.whole_reads();
    block(&svc, CLIENT_B).await.expect("block");
    let grant = json!({"ip_address": "198.51.100.2", "duration": "1h", "reason": "vendor"});
    svc.call(&admin(), "grant_access", grant).await.expect("grant");
    assert_eq!(fw.whole_reads(), reads, "no change of single addresses listed the table");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_page_of_blocks_is_read_without_listing_the_table() {
    let net = Topology::new();
    let (svc, fw) = service(&net, "10.77.1.9/32");
    let list: Vec<String> = (0..1500).map(|i| format!("198.18.{}.{}", i / 250, i % 250 + 1)).collect();
    let args = json!({"ip_addresses": list, "duration": "1h", "reason": "feed"});
    svc.call(&admin(), "block_ip_address", args).await.expect("bulk block");
    let net_block = json!({"ip_address": "203.0.113.0/24", "duration": "1h", "reason": "range"});
    svc.call(&admin(), "block_ip_address", net_block).await.expect("network block");
    let reads = fw.whole_reads();
    let page = svc.call(&admin(), "list_blocks", json!({"limit": 100})).await.expect("page");
    assert_eq!(page["count"], 100, "{page}");
    assert_eq!(page["data"][0]["ip_address"], "203.0.113.0/24", "networks first, then single addresses");
    assert!(page["next_cursor"].is_string());
    assert_eq!(fw.whole_reads(), reads, "a page lists nothing whole");
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = page["next_cursor"].as_str().map(str::to_string);
    page["data"].as_array().into_iter().flatten().for_each(|b| {
        seen.insert(b["ip_address"].to_string());
    });
    while let Some(c) = cursor {
        let page = svc.call(&admin(), "list_blocks", json!({"limit": 400, "cursor": c})).await.expect("page");
        page["data"].as_array().into_iter().flatten().for_each(|b| {
            seen.insert(b["ip_address"].to_string());
        });
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 1501, "every block once");
    assert_eq!(fw.whole_reads(), reads);
}

/// After one whole comparison, drift checks look at what others changed since (the nf_tables notifications) and
/// at what differed before: hand edits of single addresses are found without listing the table, Portcullis' own
/// changes are not reported, and a hand edit of a network falls back to the whole comparison.
#[tokio::test(flavor = "multi_thread")]
async fn drift_checks_after_the_first_look_only_at_what_others_changed() {
    let net = Topology::new();
    let (svc, fw) = service(&net, "10.77.1.9/32");
    block(&svc, "192.0.2.44").await.expect("first block");
    assert!(svc.check_drift().await.is_empty(), "the first check adopts what is there");
    assert!(svc.check_drift().await.is_empty(), "and a whole comparison finds nothing");
    let reads = fw.whole_reads();

    block(&svc, "192.0.2.45").await.expect("own block");
    assert!(svc.check_drift().await.is_empty(), "Portcullis' own change is not drift");
    assert_eq!(fw.whole_reads(), reads, "and the check listed nothing");

    net.nft(&["add", "element", "inet", "portcullis", "PORTCULLIS_BLOCK_h4", "{ 198.18.0.7 timeout 1h }"]);
    net.nft(&["delete", "element", "inet", "portcullis", "PORTCULLIS_BLOCK_h4", "{ 192.0.2.45 }"]);
    let drift = svc.check_drift().await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].added_by_hand, vec![("PORTCULLIS_BLOCK".to_string(), "198.18.0.7".to_string())]);
    assert_eq!(drift[0].removed_by_hand, vec![("PORTCULLIS_BLOCK".to_string(), "192.0.2.45".to_string())]);
    assert_eq!(fw.whole_reads(), reads, "found by looking the touched addresses up");

    // A standing difference stays reported until it is put right, also when nothing else changes.
    assert_eq!(svc.check_drift().await, drift);
    net.nft(&["delete", "element", "inet", "portcullis", "PORTCULLIS_BLOCK_h4", "{ 198.18.0.7 }"]);
    net.nft(&["add", "element", "inet", "portcullis", "PORTCULLIS_BLOCK_h4", "{ 192.0.2.45 timeout 1h }"]);
    assert!(svc.check_drift().await.is_empty(), "put right by hand");
    assert_eq!(fw.whole_reads(), reads);

    // A network added by hand is not pinned to single addresses: the check compares whole.
    net.nft(&["add", "element", "inet", "portcullis", "PORTCULLIS_BLOCK_n4", "{ 198.18.8.0/24 timeout 1h }"]);
    let drift = svc.check_drift().await;
    assert_eq!(drift[0].added_by_hand, vec![("PORTCULLIS_BLOCK".to_string(), "198.18.8.0/24".to_string())]);
    assert_eq!(fw.whole_reads(), reads + 1, "one whole listing");
}
