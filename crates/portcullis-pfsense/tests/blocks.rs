//! Block lists on pfSense: managed alias + managed rules, expiry kept in the device's `detail` texts, unblock,
//! 100,000 entries in one PATCH, and rollback of a plan that fails part-way.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use std::time::Instant;

use chrono::TimeDelta;
use common::{Lab, now};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::model::{AddressTarget, AliasEntry};
use portcullis_core::plan::{self, BLOCK_ALIAS, ChangeFacts, ChangePlan, Intent, MANAGED_BLOCK, Operation};
use portcullis_store::Store;
use std::sync::Arc;

use common::block;

#[tokio::test]
async fn three_blocks_with_their_expiry_survive_on_the_device() {
    let lab = Lab::start().await;
    let t0 = now();
    let (first, _) = lab.change(&block("203.0.113.9/32", Some(1), "ssh brute force")).await;
    let kinds: Vec<&str> = first
        .operations
        .iter()
        .map(|op| match op {
            Operation::CreateAlias { .. } => "alias",
            Operation::CreateRule { .. } => "rule",
            Operation::PutAliasEntries { .. } => "entries",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["alias", "rule", "rule", "rule", "entries"], "alias + a rule on every interface");
    lab.change(&block("2001:db8::66/128", Some(24), "scanner")).await;
    lab.change(&block("198.51.100.0/24", None, "abusive network")).await;

    // On the device: one network alias with CIDR entries and metadata in the detail texts, enforced.
    let state = lab.emu.state();
    let alias = state.alias(BLOCK_ALIAS).expect("alias on the device");
    assert_eq!(alias["type"], "network");
    assert_eq!(alias["address"], serde_json::json!(["203.0.113.9/32", "2001:db8::66/128", "198.51.100.0/24"]));
    let details: Vec<&str> = alias["detail"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(details[0].starts_with("ssh brute force | portcullis expires="), "{}", details[0]);
    assert!(details[2].starts_with("abusive network | portcullis expires=never created="), "{}", details[2]);
    assert!(state.applied_alias(BLOCK_ALIAS).is_some(), "the alias table is loaded");
    for iface in ["WAN", "LAN", "OPT1"] {
        let rules: Vec<_> = state.rules.iter().filter(|r| r["interface"] == serde_json::json!([iface])).collect();
        assert_eq!(rules[0]["source"], BLOCK_ALIAS, "the block rule is first on {iface}");
        assert_eq!(rules[0]["type"], "block");
        assert!(state.applied.rules.iter().any(|r| r["tracker"] == rules[0]["tracker"]), "enforced on {iface}");
    }

    // A new PfSenseFirewall with an empty store reads the same blocks back from the device.
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fresh = common::firewall(common::client_config(&lab.emu), &store);
    let snapshot = fresh.snapshot().await.unwrap();
    let alias = snapshot.alias(BLOCK_ALIAS).unwrap();
    assert_eq!(alias.managed.as_deref(), Some(MANAGED_BLOCK));
    let values: Vec<&str> = alias.entries.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(values, vec!["203.0.113.9", "2001:db8::66", "198.51.100.0/24"]);
    let old = lab.fw.snapshot().await.unwrap();
    assert_eq!(snapshot.alias(BLOCK_ALIAS), old.alias(BLOCK_ALIAS), "identical from either instance");
    let e = &alias.entries;
    assert_eq!(e[0].detail, "ssh brute force");
    assert!(e[0].expires_at.unwrap() - t0 >= TimeDelta::minutes(59));
    assert!(e[1].expires_at.unwrap() - t0 >= TimeDelta::hours(23));
    assert_eq!(e[2].expires_at, None);
    assert!(e.iter().all(|x| x.created_at.is_some()));
    let managed_rules: Vec<_> = snapshot.rules.iter().filter(|r| r.managed.as_deref() == Some(MANAGED_BLOCK)).collect();
    assert_eq!(managed_rules.len(), 3);
    assert!(managed_rules.iter().all(|r| r.source.target == AddressTarget::Alias(BLOCK_ALIAS.into())));

    // Expiry: the sweeper's plan removes exactly the due entries.
    let due = plan::plan_expiry(&snapshot, now() + TimeDelta::hours(2)).unwrap();
    let applied = fresh.apply(&due).await.unwrap();
    plan::verify(&due, &applied, &fresh.snapshot().await.unwrap()).unwrap();
    let left: Vec<String> =
        fresh.snapshot().await.unwrap().alias(BLOCK_ALIAS).unwrap().entries.iter().map(|e| e.value.clone()).collect();
    assert_eq!(left, vec!["2001:db8::66", "198.51.100.0/24"]);

    // Unblock.
    lab.change(&Intent::Unblock {
        addresses: "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap().into(),
        interface: None,
    })
    .await;
    let left = lab.emu.state().alias(BLOCK_ALIAS).unwrap()["address"].clone();
    assert_eq!(left, serde_json::json!(["2001:db8::66/128"]));
    assert_eq!(lab.emu.state().applied_alias(BLOCK_ALIAS).unwrap()["address"], left, "unblock is enforced");
    lab.finish().await;
}

#[tokio::test]
async fn reblocking_replaces_the_entry_and_interface_blocks_get_their_own_alias() {
    let lab = Lab::start().await;
    lab.change(&block("203.0.113.9/32", Some(1), "first")).await;
    let (p, _) = lab.change(&block("203.0.113.9/32", Some(48), "second")).await;
    assert!(p.warnings.iter().any(|w| w.contains("already blocked")));
    let alias = lab.fw.snapshot().await.unwrap().alias(BLOCK_ALIAS).unwrap().clone();
    assert_eq!(alias.entries.len(), 1);
    assert_eq!(alias.entries[0].detail, "second");

    let intent = Intent::Block {
        addresses: "192.0.2.50/32".parse::<ipnet::IpNet>().unwrap().into(),
        interface: Some("LAN".into()),
        expires_at: None,
        reason: "lan only".into(),
        replace: false,
    };
    lab.change(&intent).await;
    let state = lab.emu.state();
    assert!(state.alias("PORTCULLIS_BLOCK_LAN").is_some());
    let lan_rules: Vec<_> = state.rules.iter().filter(|r| r["interface"] == serde_json::json!(["LAN"])).collect();
    assert_eq!(lan_rules[0]["source"], BLOCK_ALIAS);
    assert_eq!(lan_rules[1]["source"], "PORTCULLIS_BLOCK_LAN", "below the existing block rule, above the rest");
    lab.finish().await;
}

#[tokio::test]
async fn one_hundred_thousand_blocks_are_one_alias_patch() {
    let lab = Lab::start().await;
    lab.change(&block("203.0.113.9/32", Some(1), "seed")).await;
    let t = now();
    let entries: Vec<AliasEntry> = (0..100_000u32)
        .map(|i| AliasEntry {
            value: format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
            detail: "threat feed".into(),
            expires_at: Some(t + TimeDelta::hours(1) + TimeDelta::seconds(i64::from(i % 3600))),
            created_at: Some(t),
        })
        .collect();
    let big = ChangePlan {
        summary: "block 100000 addresses".into(),
        operations: vec![Operation::PutAliasEntries { alias: BLOCK_ALIAS.into(), before: vec![], after: entries }],
        warnings: vec![],
        facts: ChangeFacts::default(),
    };
    lab.emu.clear_request_log();
    let started = Instant::now();
    let applied = lab.fw.apply(&big).await.unwrap();
    let elapsed = started.elapsed();
    let log = lab.emu.request_log();
    println!(
        "100,000-entry block: {} requests ({} PATCH) in {:.2?}: {:?}",
        log.len(),
        lab.count("PATCH", "/api/v2/firewall/alias"),
        elapsed,
        log.iter().map(|r| format!("{} {}", r.method, r.path)).collect::<Vec<_>>()
    );
    assert_eq!(lab.count("PATCH", "/api/v2/firewall/alias"), 1, "one alias PATCH for 100,000 entries");
    assert!(log.len() <= 5, "read alias, PATCH, apply, apply status (+ interfaces): {}", log.len());
    assert!(applied.created_rules.is_empty());
    let started = Instant::now();
    let after = lab.fw.snapshot().await.unwrap();
    println!("snapshot with 100,001 entries: {:.2?}", started.elapsed());
    // The same check as `plan::verify` for PutAliasEntries (value and expiry of every entry), with a hash map:
    // `plan::verify` compares each planned entry with every entry read back, O(n·m), ~60 s for 100k in debug.
    let found: std::collections::HashMap<&str, _> =
        after.alias(BLOCK_ALIAS).unwrap().entries.iter().map(|e| (e.value.as_str(), e.expires_at)).collect();
    let Operation::PutAliasEntries { after: wanted, .. } = &big.operations[0] else { unreachable!() };
    assert!(wanted.iter().all(|e| found.get(e.value.as_str()) == Some(&e.expires_at)), "every entry as planned");
    assert_eq!(found.len(), 100_001);
    assert_eq!(lab.emu.state().applied_alias(BLOCK_ALIAS).unwrap()["address"].as_array().unwrap().len(), 100_001);

    // Their expiry removes them all again in one PATCH.
    let due = plan::plan_expiry(&after, t + TimeDelta::hours(3)).unwrap();
    lab.emu.clear_request_log();
    let started = Instant::now();
    let applied = lab.fw.apply(&due).await.unwrap();
    println!("100,001-entry expiry: {} requests in {:.2?}", lab.emu.request_log().len(), started.elapsed());
    assert_eq!(lab.count("PATCH", "/api/v2/firewall/alias"), 1);
    let after = lab.verify(&due, &applied).await;
    assert!(after.alias(BLOCK_ALIAS).unwrap().entries.is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn a_failure_after_the_rule_posts_rolls_the_whole_plan_back() {
    let lab = Lab::start().await;
    let before = lab.state();
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &block("203.0.113.9/32", Some(1), "x"), now()).unwrap();
    let emu = lab.emu.clone();
    lab.trap.arm("PATCH", "/api/v2/firewall/alias", move || emu.faults().fail_next(1, 500));
    let err = lab.fw.apply(&p).await.unwrap_err();
    assert!(lab.trap.fired());
    assert_eq!(err.code, ErrorCode::ApplyFailed, "{err:?}");
    assert!(err.message.contains("rolled back"), "{}", err.message);
    assert!(lab.count("POST", "/api/v2/firewall/rule") == 3, "the three rules were created first");
    assert_eq!(lab.state(), before, "the firewall is exactly as before");

    // The same plan still applies afterwards.
    let applied = lab.fw.apply(&p).await.unwrap();
    lab.verify(&p, &applied).await;
    lab.finish().await;
}

#[tokio::test]
async fn a_write_that_landed_although_its_answer_was_lost_is_rolled_back_too() {
    let lab = Lab::start().await;
    let before = lab.state();
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &block("203.0.113.9/32", None, "x"), now()).unwrap();
    let emu = lab.emu.clone();
    // The PATCH is processed, then the connection drops: the client cannot know, re-reads, and undoes it.
    lab.trap.arm("PATCH", "/api/v2/firewall/alias", move || emu.faults().drop_after_commit_next(1));
    let err = lab.fw.apply(&p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApplyFailed, "{err:?}");
    let patches = lab.count("PATCH", "/api/v2/firewall/alias");
    assert_eq!(patches, 2, "the PATCH (not retried) and its undo");
    assert_eq!(lab.state(), before);

    // A rule POST that landed without an answer is found by content and removed.
    let emu = lab.emu.clone();
    lab.trap.arm("POST", "/api/v2/firewall/rule", move || emu.faults().drop_after_commit_next(1));
    let err = lab.fw.apply(&p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApplyFailed);
    assert_eq!(lab.state(), before);
    lab.finish().await;
}
