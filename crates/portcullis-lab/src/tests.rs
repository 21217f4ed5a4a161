use std::sync::Arc;

use chrono::{SubsecRound, TimeDelta, Utc};
use portcullis_core::eval::{CompiledRuleSet, Decision};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::model::{Action, Direction, PROTO_TCP, Packet, Rule, Timestamp};
use portcullis_core::plan::{self, Intent, Operation};
use portcullis_store::Store;

use super::*;

fn lab(store: &Arc<Store>) -> LabFirewall {
    LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap()
}

fn packet(interface: &str, src: &str, dst: &str, port: u16) -> Packet {
    Packet {
        interface: interface.into(),
        direction: Direction::In,
        protocol: PROTO_TCP,
        source: src.parse().unwrap(),
        destination: dst.parse().unwrap(),
        source_port: Some(40000),
        destination_port: Some(port),
    }
}

#[tokio::test]
async fn fresh_install_has_pfsense_defaults() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fw = lab(&store);
    let state = fw.snapshot().await.unwrap();
    let compiled = CompiledRuleSet::compile(&state, Utc::now());
    let lan_out = compiled.evaluate(&packet("lan", "192.168.1.50", "203.0.113.9", 443)).unwrap();
    assert_eq!(lan_out.action, Action::Pass);
    let wan_in = compiled.evaluate(&packet("wan", "203.0.113.9", "198.51.100.2", 22)).unwrap();
    assert_eq!(wan_in.decision, Decision::DefaultDeny);
    let gui = compiled.evaluate(&packet("lan", "192.168.1.50", "192.168.1.1", 443)).unwrap();
    let Decision::Rule(idx) = gui.decision else { panic!("anti-lockout should decide") };
    assert_eq!(state.rules[idx].description, "Anti-Lockout Rule");
}

#[tokio::test]
async fn block_applies_persists_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let now = Utc::now().trunc_subsecs(3);
    {
        let store = Arc::new(Store::open(&path).unwrap());
        let fw = lab(&store);
        let state = fw.snapshot().await.unwrap();
        let intent = Intent::Block {
            addresses: "203.0.113.9/32".parse::<ipnet::IpNet>().unwrap().into(),
            interface: None,
            expires_at: Some(now + TimeDelta::hours(1)),
            reason: "ssh brute force".into(),
            replace: false,
        };
        let p = plan::plan(&state, &intent, now).unwrap();
        let applied = fw.apply(&p).await.unwrap();
        plan::verify(&p, &applied, &fw.snapshot().await.unwrap()).unwrap();
    }
    let store = Arc::new(Store::open(&path).unwrap());
    let fw = lab(&store);
    let state = fw.snapshot().await.unwrap();
    let compiled = CompiledRuleSet::compile(&state, now);
    let verdict = compiled.evaluate(&packet("wan", "203.0.113.9", "198.51.100.2", 22)).unwrap();
    let Decision::Rule(idx) = verdict.decision else { panic!("the block rule should decide") };
    assert_eq!(verdict.action, Action::Block, "block survives reopen");
    assert_eq!(state.rules[idx].managed.as_deref(), Some(portcullis_core::plan::MANAGED_BLOCK));
    let later = CompiledRuleSet::compile(&state, now + TimeDelta::hours(2));
    let after = later.evaluate(&packet("wan", "203.0.113.9", "198.51.100.2", 22)).unwrap();
    assert_eq!(after.decision, Decision::DefaultDeny, "expired entry no longer matches");
}

#[tokio::test]
async fn stale_plan_is_a_conflict_and_changes_nothing() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fw = lab(&store);
    let state = fw.snapshot().await.unwrap();
    let id = state.rules[1].rule_id.clone();
    let now = Utc::now();
    let pause = Intent::PauseRule { rule_id: id.clone(), until: now + TimeDelta::hours(1) };
    let first = plan::plan(&state, &pause, now).unwrap();
    let second = plan::plan(&state, &Intent::DeleteRule { rule_id: id }, now).unwrap();
    fw.apply(&first).await.unwrap();
    let before = fw.snapshot().await.unwrap();
    let err = fw.apply(&second).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(fw.snapshot().await.unwrap(), before);
}

#[tokio::test]
async fn a_second_process_sees_and_respects_the_first_ones_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let server =
        LabFirewall::open("lab", Arc::new(Store::open(&path).unwrap()), lab_interfaces(&default_interfaces())).unwrap();
    let cli =
        LabFirewall::open("lab", Arc::new(Store::open(&path).unwrap()), lab_interfaces(&default_interfaces())).unwrap();
    let now = Utc::now().trunc_subsecs(3);
    let stale = server.snapshot().await.unwrap();
    let block = |ip: &str| Intent::Block {
        addresses: ip.parse::<ipnet::IpNet>().unwrap().into(),
        interface: None,
        expires_at: Some(now + TimeDelta::hours(1)),
        reason: "x".into(),
        replace: false,
    };
    let from_cli = plan::plan(&cli.snapshot().await.unwrap(), &block("203.0.113.1/32"), now).unwrap();
    cli.apply(&from_cli).await.unwrap();
    let seen = server.snapshot().await.unwrap();
    assert!(seen.alias("PORTCULLIS_BLOCK").is_some(), "the server reloads what the CLI wrote");
    // A plan the server made before the CLI's write no longer matches: a conflict, not a silent overwrite.
    let stale_plan = plan::plan(&stale, &block("203.0.113.2/32"), now).unwrap();
    assert_eq!(server.apply(&stale_plan).await.unwrap_err().code, ErrorCode::Conflict);
}

#[tokio::test]
async fn entry_plans_are_applied_in_place_persisted_and_refused_whole_on_a_missing_alias() {
    let (store, fw, now, state, block) = lab_and_hour_block().await;
    fw.apply(&plan::plan(&state, &block, now).unwrap()).await.unwrap();
    let entry = |v: &str| AliasEntry { value: v.into(), detail: "t".into(), expires_at: None, created_at: Some(now) };
    let put = |alias: &str, v: &str| Operation::PutAliasEntries {
        alias: alias.into(),
        before: vec![],
        after: vec![entry(v)],
    };
    let plan_of =
        |operations| ChangePlan { summary: "t".into(), operations, warnings: vec![], facts: Default::default() };

    // One operation on a missing alias refuses the whole plan: the other entry is not added either.
    let refused = fw.apply(&plan_of(vec![put(plan::BLOCK_ALIAS, "203.0.113.2"), put("NO_SUCH", "203.0.113.3")])).await;
    assert_eq!(refused.unwrap_err().code, ErrorCode::Conflict);
    let values = ["203.0.113.1".to_string(), "203.0.113.2".to_string()];
    let read = fw.alias_entries(plan::BLOCK_ALIAS, &values).await.unwrap().unwrap();
    assert_eq!(read.iter().map(|e| e.value.as_str()).collect::<Vec<_>>(), ["203.0.113.1"]);
    assert!(fw.alias_entries("NO_SUCH", &values).await.unwrap().is_none());

    fw.apply(&plan_of(vec![put(plan::BLOCK_ALIAS, "203.0.113.2")])).await.unwrap();
    let removal = Operation::RemoveAliasEntries { alias: plan::BLOCK_ALIAS.into(), before: vec![entry("203.0.113.1")] };
    fw.apply(&plan_of(vec![removal])).await.unwrap();
    // A new process sees exactly what this one wrote.
    let reopened = lab(&store);
    let read = reopened.alias_entries(plan::BLOCK_ALIAS, &values).await.unwrap().unwrap();
    assert_eq!(read.iter().map(|e| e.value.as_str()).collect::<Vec<_>>(), ["203.0.113.2"]);
}

#[tokio::test]
async fn a_plan_refused_part_way_changes_neither_the_store_nor_the_memory() {
    let (store, fw, now, state, block) = lab_and_hour_block().await;
    let mut p = plan::plan(&state, &block, now).unwrap();
    // The alias, its rules and its entry come first; the last operation deletes a rule that is not there.
    let gone = Rule { rule_id: portcullis_core::model::RuleId("1".into()), ..state.rules[1].clone() };
    p.operations.push(Operation::DeleteRule { before: gone });
    assert_eq!(fw.apply(&p).await.unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(fw.snapshot().await.unwrap(), state);
    assert_eq!(lab(&store).snapshot().await.unwrap(), state, "nothing was written either");
}

#[tokio::test]
async fn undoing_a_second_block_of_an_address_restores_the_first() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fw = lab(&store);
    let now = Utc::now().trunc_subsecs(3);
    let block = |hours: i64| Intent::Block {
        addresses: "203.0.113.1/32".parse::<ipnet::IpNet>().unwrap().into(),
        interface: None,
        reason: format!("{hours}h"),
        expires_at: Some(now + TimeDelta::hours(hours)),
        replace: false,
    };
    fw.apply(&plan::plan(&fw.snapshot().await.unwrap(), &block(1), now).unwrap()).await.unwrap();
    let first = fw.snapshot().await.unwrap();
    let again = plan::plan(&first, &block(5), now).unwrap();
    let applied = fw.apply(&again).await.unwrap();
    let second = fw.snapshot().await.unwrap();
    let undo = plan::invert(&again, &applied, &first, &second);
    let undone = fw.apply(&undo).await.unwrap();
    let back = fw.snapshot().await.unwrap();
    plan::verify(&undo, &undone, &back).unwrap();
    assert_eq!(back, first, "the first block, with its reason and expiry, is back");
    assert_eq!(lab(&store).snapshot().await.unwrap(), first, "and stored");
}

/// A block of `net` on every interface for an hour.
fn hour_block(net: &str, now: Timestamp) -> Intent {
    Intent::Block {
        addresses: net.parse::<ipnet::IpNet>().unwrap().into(),
        interface: None,
        reason: "t".into(),
        expires_at: Some(now + TimeDelta::hours(1)),
        replace: false,
    }
}

/// A fresh lab, the time, its state, and an hour's block of 203.0.113.1 (not applied).
async fn lab_and_hour_block() -> (Arc<Store>, LabFirewall, Timestamp, portcullis_core::model::RuleSet, Intent) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let fw = lab(&store);
    let now = Utc::now().trunc_subsecs(3);
    let state = fw.snapshot().await.unwrap();
    (store, fw, now, state, hour_block("203.0.113.1/32", now))
}
