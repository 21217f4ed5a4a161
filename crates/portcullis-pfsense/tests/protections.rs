//! DDoS protections on pfSense through pfRest v2: the SYN proxy as `statetype: "synproxy state"` on the
//! protection's TCP pass rules, the protection kept in the store and read back only while its rules carry the
//! proxy, every other limit refused field by field, the live side from pf's `virusprot` table, and faults that
//! leave the device before or after.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{KEY, Lab, draft, now, tracker};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::model::{PortRange, Protocol, RuleSet};
use portcullis_core::plan::{self, ChangePlan, Intent, carry_out, invert};
use portcullis_core::protection::{Protection, ProtectionKey, Rate, Transport};
use portcullis_pfrest::types::FirewallRuleRequest;
use portcullis_pfrest::{RequestInfo, RequestObserver};
use portcullis_pfrest_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

fn syn_proxy(interface: &str, ports: &[u16]) -> Protection {
    Protection {
        protection_id: String::new(),
        interface: interface.into(),
        protocol: Transport::Tcp,
        ports: ports.iter().map(|p| PortRange::single(*p)).collect(),
        rate_limit: None,
        per_source_rate: None,
        overload_block_seconds: None,
        max_connections_per_source: None,
        per_source_bandwidth: None,
        syn_proxy: true,
        exempt: vec!["198.51.100.0/24".parse().unwrap()],
        created_at: None,
        updated_at: None,
    }
}

fn configure(p: Protection) -> Intent {
    Intent::ConfigureProtection(Box::new(p))
}

fn remove(interface: &str, ports: &[u16]) -> Intent {
    Intent::RemoveProtection(ProtectionKey {
        interface: interface.into(),
        protocol: Transport::Tcp,
        ports: ports.iter().map(|p| PortRange::single(*p)).collect(),
    })
}

/// A TCP pass rule on `interface` for `port`; returns its tracker.
async fn web_rule(lab: &Lab, interface: &str, description: &str, port: u16) -> i64 {
    let (_, applied) = lab.change(&Intent::CreateRule(draft(interface, description, port))).await;
    tracker(&applied.created_rules[0])
}

/// The statetype the emulator stores for a rule, and the one its running ruleset enforces.
fn statetypes(emu: &Emulator, tracker: i64) -> (String, String) {
    let s = emu.state();
    let stored = s.rule_by_tracker(tracker).unwrap()["statetype"].as_str().unwrap_or_default().to_string();
    let running = s
        .applied
        .rules
        .iter()
        .find(|r| r["tracker"].as_i64() == Some(tracker))
        .and_then(|r| r["statetype"].as_str())
        .unwrap_or_default()
        .to_string();
    (stored, running)
}

/// Plans `intent` against a fresh snapshot, applies it and verifies the read-back; returns the states before and
/// after with the plan, for undoing it.
async fn change(lab: &Lab, intent: &Intent) -> (ChangePlan, portcullis_core::firewall::Applied, RuleSet, RuleSet) {
    let before = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&before, intent, now()).unwrap_or_else(|e| panic!("plan: {e}"));
    lab.fw.check(&p).await.unwrap_or_else(|e| panic!("check {}: {e:?}", p.summary));
    let applied = lab.fw.apply(&p).await.unwrap_or_else(|e| panic!("apply {}: {e:?}", p.summary));
    let after = lab.verify(&p, &applied).await;
    (p, applied, before, after)
}

/// Rules without the stamps a PATCH back moves.
fn content(rules: &Value) -> Value {
    let mut rules = rules.clone();
    for r in rules.as_array_mut().unwrap() {
        let o = r.as_object_mut().unwrap();
        o.remove("updated_time");
        o.remove("updated_by");
    }
    rules
}

/// PATCHes a rule's statetype behind Portcullis' back, as the GUI would.
async fn set_statetype_by_hand(lab: &Lab, tracker: i64, statetype: &str) {
    let c = lab.fw.client();
    let rule = c.rule_by_tracker(tracker).await.unwrap().unwrap();
    let req = FirewallRuleRequest { id: rule.id, statetype: Some(statetype.into()), ..Default::default() };
    c.update_rule(&req).await.unwrap();
}

#[tokio::test]
async fn a_syn_proxy_is_put_on_the_tcp_pass_rules_read_back_removed_and_undone() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    let ssh = web_rule(&lab, "wan", "ssh", 22).await;
    let lan_web = web_rule(&lab, "lan", "lan web", 443).await;
    // Someone chose sloppy state for the web rule in the GUI, and set a per-source rate pfRest cannot see.
    set_statetype_by_hand(&lab, web, "sloppy state").await;
    lab.emu.set_rule_config(web, "max-src-conn-rate", json!("20")).unwrap();
    lab.emu.set_rule_config(web, "max-src-conn-rates", json!("1")).unwrap();
    lab.emu.clear_request_log();

    let (create, applied, s0, s1) = change(&lab, &configure(syn_proxy("WAN", &[443]))).await;
    assert_eq!(statetypes(&lab.emu, web), ("synproxy state".into(), "synproxy state".into()), "set and enforced");
    assert_eq!(statetypes(&lab.emu, ssh).0, "keep state", "another port");
    assert_eq!(statetypes(&lab.emu, lan_web).0, "keep state", "another interface");
    assert_eq!(lab.emu.rule_config(web).unwrap()["max-src-conn-rate"], "20", "the PATCH kept the GUI's options");
    assert_eq!(s1.protections.len(), 1);
    assert_eq!(s1.protections[0].protection_id, "wan/tcp/443");
    assert!(s1.protections[0].syn_proxy);
    assert_eq!(lab.count("PUT", "/api/v2/firewall/rules"), 0, "never a PUT of the rules");
    let patches: Vec<Value> = lab
        .emu
        .request_log()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == "/api/v2/firewall/rule")
        .map(|r| r.json())
        .collect();
    assert_eq!(patches.len(), 2, "the check's dry run, then the write: {patches:?}");
    assert_eq!(patches[0]["dry_run"], true);
    let patches = &patches[1..];
    assert_eq!(patches[0].as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "statetype"], "only statetype");
    // The record says what to put back.
    let stored = lab.store.meta_get("pfsense:fw1:protections").unwrap().unwrap();
    assert!(stored.contains("\"previous_statetype\":\"sloppy state\""), "{stored}");

    // Undoing the creation puts the old statetype back and the protection is gone.
    let undo = invert(&create, &applied, &s0, &s1);
    let undone = lab.fw.apply(&undo).await.unwrap();
    let s2 = lab.verify(&undo, &undone).await;
    assert!(s2.protections.is_empty());
    assert_eq!(statetypes(&lab.emu, web), ("sloppy state".into(), "sloppy state".into()));
    assert_eq!(lab.emu.rule_config(web).unwrap()["max-src-conn-rate"], "20");

    // Again, then removed, and the removal undone.
    change(&lab, &configure(syn_proxy("wan", &[443]))).await;
    let (removal, applied, s3, s4) = change(&lab, &remove("wan", &[443])).await;
    assert!(s4.protections.is_empty());
    assert_eq!(statetypes(&lab.emu, web).0, "sloppy state");
    assert_eq!(lab.store.meta_get("pfsense:fw1:protections").unwrap().as_deref(), Some(""), "the record is gone");
    let undo = invert(&removal, &applied, &s3, &s4);
    let undone = lab.fw.apply(&undo).await.unwrap();
    let s5 = lab.verify(&undo, &undone).await;
    assert_eq!(s5.protections.len(), 1);
    assert_eq!(statetypes(&lab.emu, web).0, "synproxy state");
    // The state read back is what the core's own carrying out of the plan gives.
    let carried = carry_out(&s4, &undo, plan::Ids::Placeholders, plan::Entries::Apply).unwrap().state;
    assert!(portcullis_core::protection::same_enforcement(&carried.protections[0], &s5.protections[0]));
    lab.finish().await;
}

#[tokio::test]
async fn every_port_and_several_rules_and_a_rule_that_had_the_proxy_already() {
    let lab = Lab::start().await;
    let a = web_rule(&lab, "wan", "a", 443).await;
    let b = web_rule(&lab, "wan", "b", 8443).await;
    let already = web_rule(&lab, "wan", "already", 25).await;
    set_statetype_by_hand(&lab, already, "synproxy state").await;
    let (_, _, _, s1) = change(&lab, &configure(syn_proxy("wan", &[]))).await;
    assert_eq!(s1.protections[0].protection_id, "wan/tcp");
    for t in [a, b, already] {
        assert_eq!(statetypes(&lab.emu, t).0, "synproxy state", "{t}");
    }
    change(&lab, &remove("wan", &[])).await;
    assert_eq!(statetypes(&lab.emu, a).0, "keep state");
    assert_eq!(statetypes(&lab.emu, b).0, "keep state");
    assert_eq!(statetypes(&lab.emu, already).0, "synproxy state", "it had the proxy before Portcullis came");
    lab.finish().await;
}

#[tokio::test]
async fn a_rule_changed_back_in_the_gui_drops_the_protection_out_of_the_state() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    change(&lab, &configure(syn_proxy("wan", &[443]))).await;
    set_statetype_by_hand(&lab, web, "keep state").await;
    let state = lab.fw.snapshot().await.unwrap();
    assert!(state.protections.is_empty(), "the device no longer holds it");
    // Removing it is then a plan against nothing; configuring it again proxies the rule again.
    assert!(plan::plan(&state, &remove("wan", &[443]), now()).is_err());
    let (_, _, _, after) = change(&lab, &configure(syn_proxy("wan", &[443]))).await;
    assert_eq!(after.protections.len(), 1);
    change(&lab, &remove("wan", &[443])).await;
    assert_eq!(statetypes(&lab.emu, web).0, "keep state", "what the rule had right before it was proxied again");
    lab.finish().await;
}

#[tokio::test]
async fn without_a_tcp_pass_rule_to_proxy_the_protection_is_refused_before_any_write() {
    let lab = Lab::start().await;
    // A tcp/udp pass rule for 443 cannot carry the proxy: pfRest refuses synproxy on anything but tcp.
    let mut both = draft("wan", "tcp and udp", 443);
    both.protocol = Protocol::TcpUdp;
    let (_, applied) = lab.change(&Intent::CreateRule(both)).await;
    let both = tracker(&applied.created_rules[0]);
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &configure(syn_proxy("wan", &[443])), now()).unwrap();
    let before = lab.state();
    lab.emu.clear_request_log();
    for result in [lab.fw.check(&p).await, lab.fw.apply(&p).await.map(|_| ())] {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{err:?}");
        assert!(err.message.contains("no TCP pass rule on wan for port 443 to proxy; create one first"), "{err:?}");
        assert!(err.message.contains(&format!("{both} (tcp/udp)")), "{}", err.message);
    }
    assert_eq!(lab.state(), before);
    assert!(lab.emu.request_log().iter().all(|r| r.method == "GET"), "nothing was written");
    assert!(lab.fw.snapshot().await.unwrap().protections.is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn limits_pfrest_cannot_set_are_unsupported_field_by_field_and_refused_whole() {
    let lab = Lab::start().await;
    web_rule(&lab, "wan", "web", 443).await;
    let mut p = syn_proxy("wan", &[443]);
    p.rate_limit = Some(Rate::parse("rate_limit", "1000/s").unwrap().with_burst("burst_limit", "5000").unwrap());
    p.per_source_rate = Some(Rate::parse("per_source_rate", "20/s").unwrap());
    p.overload_block_seconds = Some(600);
    p.max_connections_per_source = Some(50);
    let fields = lab.fw.unsupported_protection_fields(&p);
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["rate_limit", "per_source_rate", "overload_block", "max_connections_per_source"]);
    assert!(fields.iter().all(|f| f.why.starts_with("pfRest v2 has no field") && !f.instead.is_empty()));
    assert!(lab.fw.unsupported_protection_fields(&syn_proxy("wan", &[443])).is_empty());

    // Should a caller get past the tool layer, the backend refuses it whole before writing.
    let state = lab.fw.snapshot().await.unwrap();
    let planned = plan::plan(&state, &configure(p), now()).unwrap();
    let before = lab.state();
    for result in [lab.fw.check(&planned).await, lab.fw.apply(&planned).await.map(|_| ())] {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unsupported, "{err:?}");
        assert!(err.message.contains("rate_limit, per_source_rate, overload_block, max_connections_per_source"));
        assert!(err.hint.unwrap().contains("Max. src. conn. Rate"));
    }
    assert_eq!(lab.state(), before);
    lab.finish().await;
}

#[tokio::test]
async fn overloaded_sources_come_from_pfs_virusprot_table() {
    let lab = Lab::start().await;
    web_rule(&lab, "wan", "web", 443).await;
    let (_, _, _, state) = change(&lab, &configure(syn_proxy("wan", &[443]))).await;
    let live = lab.fw.protection_live(&state).await.unwrap();
    assert_eq!(live.len(), 1);
    assert!(live[0].live && live[0].overloaded.is_empty());
    assert!(live[0].note.as_deref().unwrap().contains("expiretable -t 3600"));

    lab.emu.add_table_entries("virusprot", ["203.0.113.50", "2001:db8:9::/64"]);
    let live = lab.fw.protection_live(&state).await.unwrap();
    let sources: Vec<&str> = live[0].overloaded.iter().map(|o| o.source.as_str()).collect();
    assert_eq!(sources, ["203.0.113.50", "2001:db8:9::/64"]);
    assert!(live[0].overloaded.iter().all(|o| o.expires_at.is_none()));
    assert!(live[0].dropped.is_empty() && live[0].host_checks.is_empty());
    assert_eq!(lab.count("GET", "/api/v2/diagnostics/table"), 2);
    lab.finish().await;
}

#[tokio::test]
async fn a_missing_virusprot_table_is_no_overloaded_source() {
    let lab = Lab::start().await;
    let state = RuleSet { protections: vec![syn_proxy("wan", &[443])], ..RuleSet::default() };
    // pf has the table only while the ruleset declares it; pfRest then answers 404.
    let c = lab.fw.client();
    assert!(c.pf_table("nosuchtable").await.unwrap().is_none());
    assert!(c.pf_table("virusprot").await.unwrap().is_some());
    let live = lab.fw.protection_live(&state).await.unwrap();
    assert!(live[0].overloaded.is_empty());
    lab.finish().await;
}

/// An observer that puts an emulator fault on the `n`-th request `method path`.
fn nth_request(
    emu: Arc<Mutex<Option<Emulator>>>,
    method: &'static str,
    path: &'static str,
    n: usize,
    fault: fn(&Emulator),
) -> RequestObserver {
    let seen = Arc::new(AtomicUsize::new(0));
    Arc::new(move |req: &RequestInfo| {
        if req.method == method
            && req.path == path
            && seen.fetch_add(1, Ordering::SeqCst) + 1 == n
            && let Some(emu) = emu.lock().unwrap().as_ref()
        {
            fault(emu);
        }
    })
}

async fn lab_with_fault_on(
    method: &'static str,
    path: &'static str,
    n: usize,
    fault: fn(&Emulator),
) -> (Lab, Arc<Mutex<Option<Emulator>>>) {
    let slot: Arc<Mutex<Option<Emulator>>> = Arc::new(Mutex::new(None));
    let observer = nth_request(slot.clone(), method, path, n, fault);
    let lab = Lab::start_with(EmulatorConfig::with_api_key(KEY), move |c| c.observer = Some(observer)).await;
    (lab, slot)
}

#[tokio::test]
async fn a_fault_on_the_second_rule_leaves_the_device_as_before() {
    // The rules are created through the client first (two PATCH-free creations), so the n-th PATCH counts only
    // the protection's.
    let (lab, slot) =
        lab_with_fault_on("PATCH", "/api/v2/firewall/rule", 2, |emu| emu.faults().fail_next(1, 500)).await;
    let a = web_rule(&lab, "wan", "a", 443).await;
    let b = web_rule(&lab, "wan", "b", 443).await;
    *slot.lock().unwrap() = Some(lab.emu.clone());
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &configure(syn_proxy("wan", &[443])), now()).unwrap();
    let before = lab.state();
    let err = lab.fw.apply(&p).await.unwrap_err();
    lab.emu.wait_for_applies().await;
    assert_eq!(err.code, ErrorCode::ApplyFailed, "{err:?}");
    assert!(err.message.contains("rolled back"), "{}", err.message);
    assert_eq!(statetypes(&lab.emu, a).0, "keep state", "the first PATCH was undone");
    assert_eq!(statetypes(&lab.emu, b).0, "keep state");
    assert_eq!(content(&lab.state()["rules"]), content(&before["rules"]), "the PATCH back only bumps updated_time");
    assert!(lab.fw.snapshot().await.unwrap().protections.is_empty());
    assert!(lab.store.meta_get("pfsense:fw1:protections").unwrap().unwrap_or_default().is_empty(), "nothing recorded");
    // Once the fault is gone the same plan goes through.
    let applied = lab.fw.apply(&p).await.unwrap();
    lab.verify(&p, &applied).await;
    lab.finish().await;
}

#[tokio::test]
async fn a_patch_that_landed_but_lost_its_answer_is_undone_too() {
    let (lab, slot) =
        lab_with_fault_on("PATCH", "/api/v2/firewall/rule", 1, |emu| emu.faults().drop_after_commit_next(1)).await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    *slot.lock().unwrap() = Some(lab.emu.clone());
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &configure(syn_proxy("wan", &[443])), now()).unwrap();
    let err = lab.fw.apply(&p).await.unwrap_err();
    lab.emu.wait_for_applies().await;
    assert!(err.message.contains("rolled back"), "{err:?}");
    assert_eq!(statetypes(&lab.emu, web), ("keep state".into(), "keep state".into()));
    assert!(lab.fw.snapshot().await.unwrap().protections.is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn a_failed_filter_reload_leaves_a_removal_undone_and_the_protection_in_force() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    change(&lab, &configure(syn_proxy("wan", &[443]))).await;
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &remove("wan", &[443]), now()).unwrap();
    let record = lab.store.meta_get("pfsense:fw1:protections").unwrap();
    let emu = lab.emu.clone();
    // Every reload fails (each is retried), after the PATCH and the store write.
    lab.trap.arm("POST", "/api/v2/firewall/apply", move || emu.faults().fail_next(4, 500));
    let err = lab.fw.apply(&p).await.unwrap_err();
    lab.emu.wait_for_applies().await;
    assert!(lab.trap.fired());
    assert!(err.message.contains("apply the change on the firewall failed"), "{err:?}");
    assert_eq!(statetypes(&lab.emu, web).0, "synproxy state", "the PATCH was undone");
    assert_eq!(lab.store.meta_get("pfsense:fw1:protections").unwrap(), record, "the record was put back");
    assert_eq!(lab.fw.snapshot().await.unwrap().protections.len(), 1);
    lab.finish().await;
}

#[tokio::test]
async fn a_conflicting_plan_is_refused() {
    let lab = Lab::start().await;
    web_rule(&lab, "wan", "web", 443).await;
    let empty = lab.fw.snapshot().await.unwrap();
    let create = plan::plan(&empty, &configure(syn_proxy("wan", &[443])), now()).unwrap();
    change(&lab, &configure(syn_proxy("wan", &[443]))).await;
    let err = lab.fw.apply(&create).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "created meanwhile: {err:?}");
    let held = lab.fw.snapshot().await.unwrap();
    let removal = plan::plan(&held, &remove("wan", &[443]), now()).unwrap();
    change(&lab, &remove("wan", &[443])).await;
    let err = lab.fw.apply(&removal).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "removed meanwhile: {err:?}");
    lab.finish().await;
}

#[tokio::test]
async fn a_paused_rule_gets_the_proxy_and_stays_paused() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    let id = portcullis_core::model::RuleId(web.to_string());
    let until = now() + chrono::TimeDelta::hours(1);
    lab.change(&Intent::PauseRule { rule_id: id.clone(), until }).await;
    // The statetype PATCH moves the rule's updated_time (unix seconds), to which the pause is tied.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, _, _, after) = change(&lab, &configure(syn_proxy("wan", &[443]))).await;
    assert_eq!(statetypes(&lab.emu, web).0, "synproxy state");
    assert_eq!(after.rule(&id).unwrap().paused_until, Some(until), "still paused until then");
    let (_, _, _, after) = change(&lab, &remove("wan", &[443])).await;
    assert_eq!(after.rule(&id).unwrap().paused_until, Some(until));
    lab.finish().await;
}

#[tokio::test]
async fn a_per_source_bandwidth_is_never_silently_dropped() {
    let lab = Lab::start().await;
    web_rule(&lab, "wan", "web", 443).await;
    let mut p = syn_proxy("wan", &[443]);
    p.per_source_bandwidth = Some(portcullis_core::protection::Bandwidth::parse("b", "10Mbit/s").unwrap());
    let names: Vec<String> = lab.fw.unsupported_protection_fields(&p).into_iter().map(|f| f.field).collect();
    assert_eq!(names, ["per_source_bandwidth"]);
    let state = lab.fw.snapshot().await.unwrap();
    let planned = plan::plan(&state, &configure(p), now()).unwrap();
    let before = lab.state();
    for result in [lab.fw.check(&planned).await, lab.fw.apply(&planned).await.map(|_| ())] {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unsupported, "{err:?}");
        assert!(err.message.contains("per_source_bandwidth"), "{}", err.message);
    }
    assert_eq!(lab.state(), before, "the SYN proxy was not set without the cap either");
    lab.finish().await;
}
