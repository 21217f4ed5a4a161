//! Rules on pfSense through the emulator: snapshot mapping, create/modify/delete by tracker, pause/resume, stale
//! plans, serialised concurrent applies, dry-run checks.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use chrono::TimeDelta;
use common::{Lab, draft, now, tracker};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::model::{Action, AddressTarget, IpVersion, PortMatch, Protocol, RuleId};
use portcullis_core::plan::{self, ChangePlan, Intent, Operation, RulePatch};
use portcullis_pfrest::types::FirewallRuleRequest;
use portcullis_pfrest_emulator::EmulatorConfig;
use portcullis_pfsense::mapping::pause_key;
use serde_json::json;

#[tokio::test]
async fn snapshot_maps_the_default_rules_and_interfaces() {
    let lab = Lab::start().await;
    let state = lab.fw.snapshot().await.unwrap();

    let names: Vec<(&str, &str, &str)> =
        state.interfaces.iter().map(|i| (i.name.as_str(), i.device.as_str(), i.description.as_str())).collect();
    assert_eq!(names, vec![("wan", "em0", "WAN"), ("lan", "em1", "LAN"), ("opt1", "em2", "OPT1")]);
    let lan = state.interface("lan").unwrap();
    assert_eq!(lan.ipv4.unwrap().to_string(), "192.168.1.1/24");
    assert_eq!(state.interface("wan").unwrap().ipv4.unwrap().to_string(), "203.0.113.2/24", "DHCP address from status");

    assert_eq!(state.rules.len(), 2);
    let ids: Vec<&str> = state.rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(ids, vec!["100000101", "100000102"], "rule ids are the trackers");
    for (rule, version) in state.rules.iter().zip([IpVersion::Inet, IpVersion::Inet6]) {
        assert_eq!(rule.interface, "lan", "descr LAN maps back to the id");
        assert_eq!(rule.action, Action::Pass);
        assert_eq!(rule.ip_version, version);
        assert_eq!(rule.protocol, Protocol::Any);
        assert_eq!(rule.source.target, AddressTarget::Alias("lan".into()), "source LAN is the lan net");
        assert!(rule.destination.is_any());
        assert!(rule.enabled && !rule.log && rule.managed.is_none() && rule.paused_until.is_none());
        assert!(rule.created_at.is_some());
    }
    assert_eq!(state.rules[0].description, "Default allow LAN to any rule");
    assert!(state.aliases.is_empty());
    // No anti-lockout rule is invented: pfRest shows it as a setting, not a rule.
    assert!(state.rules.iter().all(|r| r.managed.is_none()));
    lab.finish().await;
}

#[tokio::test]
async fn created_rules_get_their_tracker_as_id_and_are_enforced_after_apply() {
    let lab = Lab::start().await;
    let (_, applied) = lab.change(&Intent::CreateRule(draft("wan", "HTTPS to the firewall", 443))).await;
    let id = &applied.created_rules[0];
    let state = lab.emu.state();
    let device = state.rule_by_tracker(tracker(id)).expect("the rule is on the device");
    assert_eq!(device["interface"], json!(["WAN"]));
    assert_eq!(device["destination"], "WAN:ip");
    assert_eq!(device["destination_port"], "443", "ports are strings");
    assert_eq!(device["protocol"], "tcp");
    assert!(state.applied_trackers().contains(&tracker(id)), "enforced after the filter reload");
    assert!(state.pending_subsystems.is_empty());

    // A rule at position 0 of lan goes above the factory rules.
    let mut top = draft("lan", "first on lan", 22);
    top.position = Some(0);
    let (_, applied) = lab.change(&Intent::CreateRule(top)).await;
    let lan_order: Vec<i64> = lab
        .emu
        .state()
        .rules
        .iter()
        .filter(|r| r["interface"] == json!(["LAN"]))
        .filter_map(|r| r["tracker"].as_i64())
        .collect();
    assert_eq!(lan_order, vec![tracker(&applied.created_rules[0]), 100000101, 100000102]);
    let snapshot = lab.fw.snapshot().await.unwrap();
    assert_eq!(snapshot.position_of(&applied.created_rules[0]), Some(0));
    lab.finish().await;
}

#[tokio::test]
async fn modify_and_delete_resolve_by_tracker_after_ids_shift() {
    let lab = Lab::start().await;
    let (_, a) = lab.change(&Intent::CreateRule(draft("lan", "rule A", 22))).await;
    let (_, b) = lab.change(&Intent::CreateRule(draft("lan", "rule B", 80))).await;
    let (a, b) = (a.created_rules[0].clone(), b.created_rules[0].clone());
    let id_before = lab.emu.state().rules.iter().position(|r| r["tracker"].as_i64() == Some(tracker(&b))).unwrap();

    lab.change(&Intent::DeleteRule { rule_id: a.clone() }).await;
    let state = lab.emu.state();
    assert!(state.rule_by_tracker(tracker(&a)).is_none());
    let id_after = state.rules.iter().position(|r| r["tracker"].as_i64() == Some(tracker(&b))).unwrap();
    assert_eq!(id_after, id_before - 1, "B's pfRest id shifted");

    lab.emu.clear_request_log();
    let patch = RulePatch {
        destination_port: Some(PortMatch::parse("p", "8080").unwrap()),
        description: Some("rule B on 8080".into()),
        ..Default::default()
    };
    lab.change(&Intent::ModifyRule { rule_id: b.clone(), patch }).await;
    let patches: Vec<_> = lab.emu.request_log().into_iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].json(),
        json!({"id": id_after, "destination_port": "8080", "descr": "rule B on 8080"}),
        "only the changed fields, with the id resolved from the tracker"
    );
    let device = lab.emu.state().rule_by_tracker(tracker(&b)).unwrap().clone();
    assert_eq!(device["destination_port"], "8080");
    assert_eq!(
        lab.emu.state().applied.rules.iter().find(|r| r["tracker"] == device["tracker"]).unwrap()["destination_port"],
        "8080"
    );

    // Moving B to the top of lan.
    let patch = RulePatch { position: Some(0), ..Default::default() };
    lab.change(&Intent::ModifyRule { rule_id: b.clone(), patch }).await;
    assert_eq!(lab.emu.state().rule_trackers()[0], tracker(&b));

    lab.change(&Intent::DeleteRule { rule_id: b.clone() }).await;
    assert_eq!(lab.emu.state().rule_trackers(), vec![100000101, 100000102]);
    lab.finish().await;
}

#[tokio::test]
async fn pause_records_the_deadline_and_resume_clears_it() {
    let lab = Lab::start().await;
    let (_, created) = lab.change(&Intent::CreateRule(draft("lan", "pausable", 22))).await;
    let id = created.created_rules[0].clone();
    let until = now() + TimeDelta::hours(2);

    lab.change(&Intent::PauseRule { rule_id: id.clone(), until }).await;
    let device = lab.emu.state().rule_by_tracker(tracker(&id)).unwrap().clone();
    assert_eq!(device["disabled"], true);
    assert!(!lab.emu.state().applied_trackers().contains(&tracker(&id)), "a paused rule is not enforced");
    let key = pause_key("fw1", id.as_str());
    assert!(lab.store.meta_get(&key).unwrap().unwrap().contains("until"));
    let snapshot = lab.fw.snapshot().await.unwrap();
    let rule = snapshot.rule(&id).unwrap();
    assert_eq!(rule.paused_until, Some(until));
    assert!(!rule.enabled);

    // The sweeper's plan resumes it once due.
    let due = plan::plan_expiry(&snapshot, until + TimeDelta::seconds(1)).expect("the pause is due");
    assert_eq!(due.operations.len(), 1);

    lab.change(&Intent::ResumeRule { rule_id: id.clone() }).await;
    assert_eq!(lab.store.meta_get(&key).unwrap().as_deref(), Some(""));
    assert_eq!(lab.emu.state().rule_by_tracker(tracker(&id)).unwrap()["disabled"], false);
    assert!(lab.emu.state().applied_trackers().contains(&tracker(&id)));
    let rule = lab.fw.snapshot().await.unwrap().rule(&id).unwrap().clone();
    assert!(rule.enabled && rule.paused_until.is_none());

    // A pause whose rule was edited by hand since (updated_time moved) no longer shows.
    lab.change(&Intent::PauseRule { rule_id: id.clone(), until }).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let current = lab.fw.client().rule_by_tracker(tracker(&id)).await.unwrap().unwrap();
    let edit = FirewallRuleRequest { id: current.id, descr: Some("edited in the GUI".into()), ..Default::default() };
    lab.fw.client().update_rule(&edit).await.unwrap();
    let rule = lab.fw.snapshot().await.unwrap().rule(&id).unwrap().clone();
    assert!(!rule.enabled);
    assert_eq!(rule.paused_until, None, "stale pause records are ignored");
    lab.finish().await;
}

#[tokio::test]
async fn a_stale_before_is_a_conflict_and_changes_nothing() {
    let lab = Lab::start().await;
    let (_, created) = lab.change(&Intent::CreateRule(draft("lan", "to be raced", 22))).await;
    let id = created.created_rules[0].clone();
    let state = lab.fw.snapshot().await.unwrap();
    let modify = plan::plan(
        &state,
        &Intent::ModifyRule { rule_id: id.clone(), patch: RulePatch { log: Some(true), ..Default::default() } },
        now(),
    )
    .unwrap();
    let delete = plan::plan(&state, &Intent::DeleteRule { rule_id: id.clone() }, now()).unwrap();

    // Someone edits the rule on the firewall after the plans were made.
    let current = lab.fw.client().rule_by_tracker(tracker(&id)).await.unwrap().unwrap();
    let edit =
        FirewallRuleRequest { id: current.id, destination_port: Some(Some("2222".into())), ..Default::default() };
    lab.fw.client().update_rule(&edit).await.unwrap();
    let before = lab.state();

    for p in [&modify, &delete] {
        let err = lab.fw.apply(p).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
        assert!(err.message.contains("changed"), "{}", err.message);
        assert_eq!(lab.state(), before, "nothing changed");
    }

    // A rule that is gone is a conflict too.
    lab.change(&Intent::DeleteRule { rule_id: id.clone() }).await;
    let err = lab.fw.apply(&delete).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    lab.finish().await;
}

#[tokio::test]
async fn concurrent_applies_through_one_firewall_are_serialised_while_raw_patches_lose_updates() {
    let lab = Lab::start().await;
    lab.emu.faults().set_write_latency(std::time::Duration::from_millis(200));
    let (_, a) = lab.change(&Intent::CreateRule(draft("lan", "A", 22))).await;
    let (_, b) = lab.change(&Intent::CreateRule(draft("lan", "B", 80))).await;
    let (a, b) = (a.created_rules[0].clone(), b.created_rules[0].clone());

    // Unserialised: two PATCHes at once, each pfRest request reads config.xml, waits, writes it back.
    let client = lab.fw.client().clone();
    let ra = client.rule_by_tracker(tracker(&a)).await.unwrap().unwrap();
    let rb = client.rule_by_tracker(tracker(&b)).await.unwrap().unwrap();
    let pa = FirewallRuleRequest { id: ra.id, descr: Some("A raw".into()), ..Default::default() };
    let pb = FirewallRuleRequest { id: rb.id, descr: Some("B raw".into()), ..Default::default() };
    let (x, y) = tokio::join!(client.update_rule(&pa), client.update_rule(&pb));
    x.unwrap();
    y.unwrap();
    let state = lab.emu.state();
    let descrs =
        [&state.rule_by_tracker(tracker(&a)).unwrap()["descr"], &state.rule_by_tracker(tracker(&b)).unwrap()["descr"]];
    let landed = descrs.iter().filter(|d| d.as_str().is_some_and(|s| s.ends_with("raw"))).count();
    assert_eq!(landed, 1, "pfRest lost one of two concurrent writes: {descrs:?}");

    // Serialised: two plans made from the same snapshot, applied at once through one firewall.
    let snapshot = lab.fw.snapshot().await.unwrap();
    let plan_for = |id: &RuleId, text: &str| -> ChangePlan {
        let patch = RulePatch { description: Some(text.into()), ..Default::default() };
        plan::plan(&snapshot, &Intent::ModifyRule { rule_id: id.clone(), patch }, now()).unwrap()
    };
    let (p1, p2) = (plan_for(&a, "A serialised"), plan_for(&b, "B serialised"));
    let fw = Arc::new(lab.fw);
    let (r1, r2) = tokio::join!(fw.apply(&p1), fw.apply(&p2));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let after = fw.snapshot().await.unwrap();
    plan::verify(&p1, &r1, &after).unwrap();
    plan::verify(&p2, &r2, &after).unwrap();
    assert_eq!(after.rule(&a).unwrap().description, "A serialised");
    assert_eq!(after.rule(&b).unwrap().description, "B serialised");
    let v = lab.emu.schema_violations();
    assert!(v.is_empty(), "{v:?}");
}

#[tokio::test]
async fn check_validates_with_dry_run_and_changes_nothing() {
    let lab = Lab::start().await;
    let state = lab.fw.snapshot().await.unwrap();
    let good = plan::plan(&state, &Intent::CreateRule(draft("wan", "ok", 443)), now()).unwrap();
    let block = plan::plan(&state, &common::block("198.51.100.7/32", None, "x"), now()).unwrap();
    let id = RuleId("100000101".into());
    let patch = RulePatch { log: Some(true), ..Default::default() };
    let modify = plan::plan(&state, &Intent::ModifyRule { rule_id: id.clone(), patch }, now()).unwrap();
    let delete = plan::plan(&state, &Intent::DeleteRule { rule_id: id }, now()).unwrap();
    let before = lab.state();
    lab.emu.clear_request_log();
    for p in [&good, &block, &modify, &delete] {
        lab.fw.check(p).await.unwrap_or_else(|e| panic!("{}: {e:?}", p.summary));
    }
    assert_eq!(lab.state(), before);
    let writes: Vec<_> = lab.emu.request_log().into_iter().filter(|r| r.method != "GET").collect();
    // The block rules reference the alias the same plan creates, so only the alias and its entries are checked.
    assert_eq!(writes.len(), 5, "rule, alias, alias with entries, PATCH, DELETE: {writes:?}");
    for w in &writes {
        let dry = if w.method == "DELETE" { w.query.contains("dry_run=true") } else { w.json()["dry_run"] == true };
        assert!(dry, "every write was a dry run: {w:?}");
    }

    // pfSense refuses what the planner cannot know about: an alias that does not exist on the firewall.
    let mut bad = good.clone();
    if let Operation::CreateRule { after, .. } = &mut bad.operations[0] {
        after.source = portcullis_core::model::AddressMatch::parse("source", "NO_SUCH_ALIAS").unwrap();
    }
    let err = lab.fw.check(&bad).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
    assert!(err.message.contains("FILTER_ADDRESS_FIELD_INVALID"), "{}", err.message);
    assert_eq!(lab.state(), before);
    lab.finish().await;
}

#[tokio::test]
async fn check_sends_nothing_to_pfrest_before_2_8() {
    let lab = Lab::start_with(
        EmulatorConfig { version: "v2.7.2".into(), ..EmulatorConfig::with_api_key(common::KEY) },
        |_| {},
    )
    .await;
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &Intent::CreateRule(draft("wan", "ok", 443)), now()).unwrap();
    lab.emu.clear_request_log();
    lab.fw.check(&p).await.unwrap();
    let log = lab.emu.request_log();
    assert!(log.iter().all(|r| r.method == "GET"), "no write without dry_run support: {log:?}");
    // The client refuses a dry run outright rather than let an old pfRest run it for real.
    let mut req = FirewallRuleRequest { id: Some(0), descr: Some("x".into()), ..Default::default() };
    req.controls.dry_run = Some(true);
    let err = lab.fw.client().update_rule(&req).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert_eq!(lab.emu.state().rules[0]["descr"], "Default allow LAN to any rule");
    lab.finish().await;
}

#[tokio::test]
async fn pfsense_only_refusals_are_validation_errors_before_any_write() {
    let lab = Lab::start().await;
    let state = lab.fw.snapshot().await.unwrap();
    let mut d = draft("wan", "icmpv6", 443);
    d.protocol = Protocol::Icmpv6;
    d.destination_port = PortMatch::Any;
    d.ip_version = Some(IpVersion::Inet6);
    let p = plan::plan(&state, &Intent::CreateRule(d), now()).unwrap();
    lab.emu.clear_request_log();
    let err = lab.fw.apply(&p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
    assert!(lab.emu.request_log().iter().all(|r| r.method == "GET"));
    lab.finish().await;
}

#[tokio::test]
async fn rules_created_in_the_same_second_get_distinct_trackers() {
    // Real pfRest: tracker = time() of the creation, shared by rules created within one second.
    let cfg = EmulatorConfig { unique_trackers: false, ..EmulatorConfig::with_api_key(common::KEY) };
    for spacing in [std::time::Duration::from_millis(1050), std::time::Duration::ZERO] {
        let lab = Lab::start_with(cfg.clone(), |_| {}).await;
        let fw = common::firewall(common::client_config(&lab.emu), &lab.store)
            .with_options(portcullis_pfsense::PfSenseOptions { tracker_spacing: spacing, ..common::options() });
        let state = fw.snapshot().await.unwrap();
        let intent = common::block("192.0.2.9/32", None, "r");
        let p = plan::plan(&state, &intent, now()).unwrap();
        let applied = fw.apply(&p).await.unwrap();
        let trackers: std::collections::HashSet<_> = applied.created_rules.iter().collect();
        assert_eq!(trackers.len(), 3, "spacing {spacing:?}: {:?}", applied.created_rules);
        plan::verify(&p, &applied, &fw.snapshot().await.unwrap()).unwrap();
        let device: std::collections::HashSet<i64> = lab.emu.state().rule_trackers().into_iter().collect();
        assert_eq!(device.len(), 5, "no duplicate tracker left on the device");
        if spacing.is_zero() {
            assert!(lab.count("DELETE", "/api/v2/firewall/rule") >= 1, "a collision was detected and repaired");
        } else {
            assert_eq!(lab.count("DELETE", "/api/v2/firewall/rule"), 0, "spacing avoids collisions");
        }
        lab.finish().await;
    }
}

#[tokio::test]
async fn a_failed_filter_reload_undoes_rule_edits_and_deletions() {
    let lab = Lab::start().await;
    let (_, a) = lab.change(&Intent::CreateRule(draft("lan", "edit me", 22))).await;
    let (_, b) = lab.change(&Intent::CreateRule(draft("lan", "delete me", 80))).await;
    let (a, b) = (a.created_rules[0].clone(), b.created_rules[0].clone());
    let before = lab.emu.state();

    let state = lab.fw.snapshot().await.unwrap();
    let patch = RulePatch { description: Some("edited".into()), position: Some(0), ..Default::default() };
    let edit = plan::plan(&state, &Intent::ModifyRule { rule_id: a.clone(), patch }, now()).unwrap();
    let emu = lab.emu.clone();
    // Every attempt of the reload fails (it is retried as it is idempotent), then the rollback's reload works.
    lab.trap.arm("POST", "/api/v2/firewall/apply", move || emu.faults().fail_next(4, 500));
    let err = lab.fw.apply(&edit).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApplyFailed, "{err:?}");
    assert!(err.message.contains("rolled back"), "{}", err.message);
    let strip = |rules: &[serde_json::Value]| -> Vec<serde_json::Value> {
        rules
            .iter()
            .map(|r| {
                let mut r = r.clone();
                for volatile in ["updated_time", "updated_by", "created_time", "created_by", "tracker"] {
                    r.as_object_mut().unwrap().remove(volatile);
                }
                r
            })
            .collect()
    };
    let after = lab.emu.state();
    assert_eq!(after.rule_trackers(), before.rule_trackers(), "same rules, same order");
    assert_eq!(strip(&after.rules), strip(&before.rules), "same content (the PATCH back bumps updated_time)");

    let delete =
        plan::plan(&lab.fw.snapshot().await.unwrap(), &Intent::DeleteRule { rule_id: b.clone() }, now()).unwrap();
    let emu = lab.emu.clone();
    lab.trap.arm("POST", "/api/v2/firewall/apply", move || emu.faults().fail_next(4, 500));
    let err = lab.fw.apply(&delete).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApplyFailed);
    let after = lab.emu.state();
    assert_eq!(strip(&after.rules), strip(&before.rules), "the deleted rule is back in its place");
    assert!(after.rule_by_tracker(tracker(&b)).is_none(), "re-created rules get a new tracker (pfRest cannot set it)");
    assert_eq!(after.applied_trackers(), after.rule_trackers(), "the filter enforces the restored config");
    assert!(after.pending_subsystems.is_empty());
    lab.finish().await;
}
