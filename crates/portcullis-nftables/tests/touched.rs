//! Changes of single entries go over netlink, touching only what they change, and read back exactly as `nft`
//! lists them; real packets prove the kernel enforces them.

mod common;

use chrono::{SubsecRound, TimeDelta, Utc};
use common::*;
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::freshness::StateRead;
use portcullis_core::model::{AddressMatch, PortMatch, Protocol};
use portcullis_core::plan::{self, GrantRule, Intent};
use portcullis_nftables::netlink::{ElementChange, Netlink, NetlinkError, NewElement, address_key};

fn now() -> chrono::DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn addresses(ip: &str) -> portcullis_core::plan::Addresses {
    portcullis_core::model::parse_net("ip", ip).expect("net").into()
}

fn block(ip: &str, ttl: TimeDelta) -> Intent {
    Intent::Block {
        addresses: addresses(ip),
        interface: None,
        expires_at: Some(now() + ttl),
        reason: "port scan".into(),
        replace: false,
    }
}

/// Applies `intent` planned on a full snapshot and checks it on the entries' own read-back and on a full listing.
async fn change_both_ways(fw: &portcullis_nftables::NftablesFirewall, intent: Intent) -> plan::ChangePlan {
    let before = fw.snapshot().await.expect("snapshot");
    let p = plan::plan(&before, &intent, now()).expect("plan");
    let applied = fw.apply(&p).await.expect("apply");
    let touched = StateRead::touched_by(&p);
    assert!(touched.only_entries());
    let read_back = fw.state(&touched).await.expect("entries read back");
    plan::verify(&p, &applied, &read_back).expect("verified on the looked-up entries");
    plan::verify(&p, &applied, &fw.snapshot().await.expect("listing")).expect("verified on nft's own listing");
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn single_address_blocks_go_over_netlink_are_enforced_and_undo_to_the_exact_table() {
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, block("192.0.2.10", TimeDelta::hours(5))).await;
    assert_eq!(fw.netlink_batches(), 0, "the first change writes the table through nft");
    let before_listing = normalised(net.list_table());
    assert!(net.tcp(CLIENT_A, 8080) && net.tcp(CLIENT_B, 8080));

    let p = change_both_ways(&fw, block(CLIENT_A, TimeDelta::hours(1))).await;
    assert_eq!(fw.netlink_batches(), 1, "a block of one address is one netlink batch");
    assert!(!net.tcp(CLIENT_A, 8080), "the kernel drops the blocked source");
    assert!(net.tcp(CLIENT_B, 8080), "and nothing else");
    let listing = net.nft(&["-j", "list", "set", "inet", "portcullis", "PORTCULLIS_BLOCK_h4"]);
    assert!(listing.contains(CLIENT_A) && listing.contains("port scan"), "nft lists the element and its comment");

    // A longer block of the same address replaces the element (deleted and added again in one batch).
    change_both_ways(&fw, block(CLIENT_A, TimeDelta::hours(3))).await;
    assert!(!net.tcp(CLIENT_A, 8080));

    let unblock = Intent::Unblock { addresses: addresses(CLIENT_A), interface: None };
    change_both_ways(&fw, unblock).await;
    assert_eq!(fw.netlink_batches(), 3);
    assert!(net.tcp(CLIENT_A, 8080), "unblocked");
    assert_eq!(normalised(net.list_table()), before_listing, "the exact previous table is back");
    drop(p);
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_blocks_and_grants_go_over_netlink_too() {
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, Intent::CreateRule(block_8080())).await;
    let grant = |ip: &str| Intent::Grant {
        addresses: addresses(ip),
        alias: None,
        expires_at: Some(now() + TimeDelta::hours(2)),
        reason: "contractor".into(),
        rule: Some(GrantRule {
            interface: "lan".into(),
            protocol: Protocol::Tcp,
            destination: AddressMatch::parse("destination", SERVER).expect("destination"),
            destination_port: PortMatch::parse("destination_port", "8080").expect("port"),
        }),
    };
    // The first grant creates the grant list and its rule (nft); the next one only adds an entry.
    change(&fw, grant(CLIENT_A)).await;
    let batches = fw.netlink_batches();
    change_both_ways(&fw, grant(CLIENT_B)).await;
    assert_eq!(fw.netlink_batches(), batches + 1);
    assert!(net.tcp(CLIENT_A, 8080) && net.tcp(CLIENT_B, 8080), "both granted sources reach the port");

    change(&fw, block("fd77:1::99", TimeDelta::hours(1))).await;
    change_both_ways(&fw, block(CLIENT6_B, TimeDelta::hours(1))).await;
    let listing = net.nft(&["-j", "list", "set", "inet", "portcullis", "PORTCULLIS_BLOCK_h6"]);
    assert!(listing.contains(CLIENT6_B), "{listing}");
}

fn block_8080() -> portcullis_core::plan::RuleDraft {
    portcullis_core::plan::RuleDraft {
        interface: "lan".into(),
        direction: portcullis_core::model::Direction::In,
        action: portcullis_core::model::Action::Block,
        ip_version: None,
        protocol: Protocol::Tcp,
        source: AddressMatch::parse("source", "any").expect("source"),
        source_port: PortMatch::Any,
        destination: AddressMatch::parse("destination", SERVER).expect("destination"),
        destination_port: PortMatch::parse("destination_port", "8080").expect("port"),
        description: "closed".into(),
        log: false,
        enabled: true,
        position: Some(0),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_lookups_answer_the_asked_entries_only() {
    let net = Topology::new();
    let fw = net.firewall();
    let (p, _, _, _) = change(&fw, block("198.51.100.7", TimeDelta::hours(1))).await;
    let wanted = p
        .operations
        .iter()
        .find_map(|op| match op {
            plan::Operation::PutAliasEntries { alias, after, .. } => Some((alias.clone(), after[0].clone())),
            _ => None,
        })
        .expect("a put");
    let values = vec!["198.51.100.7".to_string(), "198.51.100.8".to_string()];
    let found = fw.alias_entries(&wanted.0, &values).await.expect("lookup").expect("the list exists");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].expires_at, wanted.1.expires_at, "the exact expiry from the comment");
    assert_eq!(found[0].detail, wanted.1.detail);
    assert!(fw.alias_entries("PORTCULLIS_NO_SUCH_LIST", &values).await.expect("lookup").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_over_netlink_lose_nothing() {
    let net = Topology::new();
    let (one, two) = (net.firewall(), net.firewall());
    change(&one, block("192.0.2.1", TimeDelta::hours(1))).await;
    change(&two, block("192.0.2.2", TimeDelta::hours(1))).await;
    let writer = |fw: portcullis_nftables::NftablesFirewall, base: u8| async move {
        let mut conflicts = 0;
        for i in 0..15u8 {
            loop {
                let state = fw.snapshot().await.expect("snapshot");
                let p = plan::plan(&state, &block(&format!("203.0.113.{}", base + i), TimeDelta::hours(1)), now())
                    .expect("plan");
                match fw.apply(&p).await {
                    Ok(_) => break,
                    Err(e) if e.code == ErrorCode::Conflict => conflicts += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        (conflicts, fw.netlink_batches())
    };
    let (a, b) = tokio::join!(tokio::spawn(writer(one, 10)), tokio::spawn(writer(two, 100)));
    let ((ca, na), (cb, nb)) = (a.expect("task"), b.expect("task"));
    assert_eq!((na, nb), (15, 15), "every change went over netlink");
    let state = net.firewall().snapshot().await.expect("snapshot");
    let held = state.alias("PORTCULLIS_BLOCK").map_or(0, |a| a.entries.len());
    assert_eq!(held, 32, "every entry landed ({} conflicts retried)", ca + cb);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kernel_generation_advances_once_per_transaction_and_lookups_see_hand_edits() {
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, block("192.0.2.10", TimeDelta::hours(5))).await;
    let netlink = Netlink::new(Some(net.router.clone()));
    let digest = netlink.rules_digest("portcullis").expect("digest");
    assert!(net.tcp(CLIENT_A, 8080), "traffic moves the counters, which the digest leaves out");
    let g0 = netlink.generation().expect("generation");
    net.nft(&["add", "element", "inet", "portcullis", "PORTCULLIS_BLOCK_h4", "{ 192.0.2.77 timeout 1h }"]);
    assert_eq!(netlink.generation().expect("generation"), g0.wrapping_add(1));
    assert_eq!(netlink.rules_digest("portcullis").expect("digest"), digest, "elements are not rules");
    net.nft(&["add", "rule", "inet", "portcullis", "aliases", "counter"]);
    assert_ne!(netlink.rules_digest("portcullis").expect("digest"), digest, "a rule added by hand");
    let keys = [address_key("192.0.2.77".parse().unwrap()), address_key("192.0.2.78".parse().unwrap())];
    let found = netlink.lookup("portcullis", "PORTCULLIS_BLOCK_h4", &keys).expect("lookup");
    assert!(found[0].as_ref().is_some_and(|e| e.timeout_ms == Some(3_600_000)), "{found:?}");
    assert!(found[1].is_none());
    let missing = netlink.lookup("portcullis", "NO_SUCH_SET", &keys).expect_err("no such set");
    assert!(missing.is_missing(), "{missing}");

    // A checked batch is validated message by message: the second change names a set that does not exist.
    let add = |set: &str| ElementChange {
        set: set.into(),
        delete: false,
        elements: vec![NewElement::key(keys[1].clone(), Some(60_000), None)],
    };
    let g1 = netlink.generation().expect("generation");
    let refused = netlink.check("portcullis", &[add("PORTCULLIS_BLOCK_h4"), add("NO_SUCH_SET")]).expect_err("refused");
    assert!(matches!(refused, NetlinkError::Refused { index: 1, .. }), "{refused}");
    netlink.check("portcullis", &[add("PORTCULLIS_BLOCK_h4")]).expect("a valid batch passes the check");
    assert!(netlink.lookup("portcullis", "PORTCULLIS_BLOCK_h4", &keys[1..]).expect("lookup")[0].is_none());
    netlink.commit("portcullis", &[add("PORTCULLIS_BLOCK_h4")]).expect("commit");
    assert!(netlink.lookup("portcullis", "PORTCULLIS_BLOCK_h4", &keys[1..]).expect("lookup")[0].is_some());
    assert_eq!(netlink.generation().expect("generation"), g1.wrapping_add(1), "the checks committed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_change_of_thousands_of_addresses_goes_over_netlink_whole() {
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, block("192.0.2.10", TimeDelta::hours(5))).await;
    let at = now();
    let after: Vec<portcullis_core::model::AliasEntry> = (0..20_000u32)
        .map(|i| portcullis_core::model::AliasEntry {
            value: format!("10.{}.{}.{}", 100 + (i >> 16), (i >> 8) & 0xff, i & 0xff),
            detail: "threat feed".into(),
            expires_at: Some(at + TimeDelta::hours(24)),
            created_at: Some(at),
        })
        .collect();
    let p = plan::ChangePlan {
        summary: "bulk".into(),
        operations: vec![plan::Operation::PutAliasEntries {
            alias: plan::BLOCK_ALIAS.into(),
            before: Vec::new(),
            after: after.clone(),
        }],
        warnings: Vec::new(),
        facts: Default::default(),
    };
    let applied = fw.apply(&p).await.expect("apply");
    assert_eq!(fw.netlink_batches(), 1);
    let state = fw.snapshot().await.expect("listing");
    let held = state.alias(plan::BLOCK_ALIAS).expect("list");
    let wanted = &after[12];
    let found = held.entries.iter().find(|e| e.value == wanted.value);
    assert_eq!(found, Some(wanted), "{} entries held", held.entries.len());
    plan::verify(&p, &applied, &state).expect("verified on nft's listing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_netlink_check_has_the_kernel_validate_the_batch_and_commits_nothing() {
    let net = Topology::new();
    let fw = net.firewall();
    change(&fw, block("192.0.2.10", TimeDelta::hours(5))).await;
    let netlink = Netlink::new(Some(net.router.clone()));
    let before = netlink.generation().expect("generation");
    let listing = normalised(net.list_table());
    let p = plan::plan(&fw.snapshot().await.expect("snapshot"), &block(CLIENT_A, TimeDelta::hours(1)), now())
        .expect("plan");
    fw.check(&p).await.expect("the kernel accepts the batch");
    assert_eq!(netlink.generation().expect("generation"), before, "no transaction was committed");
    assert_eq!(normalised(net.list_table()), listing, "nothing changed");
    assert_eq!(fw.netlink_batches(), 0, "a check is not a change");
    assert!(net.tcp(CLIENT_A, 8080));
}
