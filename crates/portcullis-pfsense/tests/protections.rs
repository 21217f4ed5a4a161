//! DDoS protections on pfSense through pfRest v2: the SYN proxy as `statetype: "synproxy state"` on the
//! protection's TCP pass rules, the per-source bandwidth cap as one source-masked limiter named in the pass rules'
//! `dnpipe`, the protection kept in the store and read back only while the device holds what was set, every other
//! limit refused field by field, the live side from pf's `virusprot` table, and faults that leave the device
//! before or after.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{KEY, Lab, draft, now, tracker};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::model::{PortRange, Protocol, RuleSet};
use portcullis_core::plan::{self, ChangePlan, Intent, Operation, carry_out, invert};
use portcullis_core::protection::{Bandwidth, Protection, ProtectionKey, Rate, Transport};
use portcullis_pfrest::types::{FirewallRuleRequest, LimiterBandwidth, TrafficShaperLimiterRequest};
use portcullis_pfrest::{RequestInfo, RequestObserver};
use portcullis_pfrest_emulator::{Emulator, EmulatorConfig};
use portcullis_pfsense::protection::limiter_name;
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

// ---------------------------------------------------------------------------------------------------------------
// The per-source bandwidth cap: one limiter per protection, named in the protected pass rules' dnpipe.

const LIMITER_PATH: &str = "/api/v2/firewall/traffic_shaper/limiter";
const RULE_PATH: &str = "/api/v2/firewall/rule";

fn bandwidth(text: &str) -> Bandwidth {
    Bandwidth::parse("per_source_bandwidth", text).unwrap()
}

/// A protection that only caps what each source sends.
fn capped(interface: &str, protocol: Transport, ports: &[u16], cap: &str) -> Protection {
    Protection { protocol, syn_proxy: false, per_source_bandwidth: Some(bandwidth(cap)), ..syn_proxy(interface, ports) }
}

fn remove_key(interface: &str, protocol: Transport, ports: &[u16]) -> Intent {
    Intent::RemoveProtection(ProtectionKey {
        interface: interface.into(),
        protocol,
        ports: ports.iter().map(|p| PortRange::single(*p)).collect(),
    })
}

/// A pass rule on `interface` for `port` with `protocol`; returns its tracker.
async fn pass_rule(lab: &Lab, interface: &str, description: &str, protocol: Protocol, port: u16) -> i64 {
    let mut d = draft(interface, description, port);
    d.protocol = protocol;
    let (_, applied) = lab.change(&Intent::CreateRule(d)).await;
    tracker(&applied.created_rules[0])
}

/// The limiter the emulator stores for protection `id`, and whether the last filter reload loaded it as stored.
fn limiter_of(emu: &Emulator, id: &str) -> Option<Value> {
    let s = emu.state();
    let name = limiter_name(id);
    let stored = s.limiter(&name).cloned()?;
    // Ids (the limiter's and its bandwidth items' parent_id) are positions in the config, which the running
    // shaper does not have.
    let without_ids = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("id");
            for b in o.get_mut("bandwidth").and_then(Value::as_array_mut).into_iter().flatten() {
                b.as_object_mut().map(|b| b.remove("parent_id"));
            }
        }
        v
    };
    let running = s.applied_limiter(&name).map(without_ids);
    assert_eq!(running, Some(without_ids(&stored)), "the filter reload loaded the limiter as stored");
    Some(stored)
}

/// The dnpipe the emulator stores for a rule, and the one its running ruleset has.
fn dnpipes(emu: &Emulator, tracker: i64) -> (Option<String>, Option<String>) {
    let s = emu.state();
    let stored = s.rule_by_tracker(tracker).unwrap()["dnpipe"].as_str().map(str::to_string);
    let running = s
        .applied
        .rules
        .iter()
        .find(|r| r["tracker"].as_i64() == Some(tracker))
        .and_then(|r| r["dnpipe"].as_str().map(str::to_string));
    (stored, running)
}

/// The emulator state without the stamps a PATCH back moves.
fn settled(lab: &Lab) -> Value {
    let mut s = lab.state();
    for key in ["rules", "enforced_rules"] {
        s[key] = content(&s[key]);
    }
    s
}

fn writes(lab: &Lab) -> Vec<(String, String, Value)> {
    lab.emu
        .request_log()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method.clone(), r.path.clone(), r.json()))
        .collect()
}

#[tokio::test]
async fn a_bandwidth_cap_is_one_source_masked_limiter_named_in_the_rules_read_back_and_undone() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    let ssh = web_rule(&lab, "wan", "ssh", 22).await;
    let lan_web = web_rule(&lab, "lan", "lan web", 443).await;
    let before = settled(&lab);
    lab.emu.clear_request_log();

    let (create, applied, s0, s1) = change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s"))).await;
    let name = limiter_name("wan/tcp/443");
    let l = limiter_of(&lab.emu, "wan/tcp/443").expect("the limiter exists");
    assert_eq!(l["bandwidth"].as_array().unwrap().len(), 1);
    assert_eq!((l["bandwidth"][0]["bw"].as_i64(), l["bandwidth"][0]["bwscale"].as_str()), (Some(10), Some("Mb")));
    assert_eq!(
        (l["mask"].as_str(), l["maskbits"].as_i64(), l["maskbitsv6"].as_i64()),
        (Some("srcaddress"), Some(32), Some(64))
    );
    assert_eq!(
        (l["enabled"].as_bool(), l["aqm"].as_str(), l["sched"].as_str()),
        (Some(true), Some("droptail"), Some("wf2q+"))
    );
    assert!(l["description"].as_str().unwrap().contains("wan/tcp/443"), "{l}");
    assert_eq!(dnpipes(&lab.emu, web), (Some(name.clone()), Some(name.clone())), "named and enforced");
    assert_eq!(dnpipes(&lab.emu, ssh).0, None, "another port");
    assert_eq!(dnpipes(&lab.emu, lan_web).0, None, "another interface");
    assert_eq!(statetypes(&lab.emu, web).0, "keep state", "no SYN proxy was asked");
    // The snapshot lists it with the cap read from the limiter, as planned.
    assert_eq!(s1.protections.len(), 1);
    let Operation::CreateProtection { after: planned } = &create.operations[0] else { panic!("{create:?}") };
    assert!(portcullis_core::protection::same_enforcement(&s1.protections[0], planned));
    assert_eq!(s1.protections[0].per_source_bandwidth, Some(bandwidth("10Mbit/s")));
    assert!(!s1.protections[0].syn_proxy);
    // What was sent: the check's dry run of the limiter, then the limiter, the rule's dnpipe alone, one reload.
    let w = writes(&lab);
    let paths: Vec<(&str, &str)> = w.iter().map(|(m, p, _)| (m.as_str(), p.as_str())).collect();
    assert_eq!(
        paths,
        [("POST", LIMITER_PATH), ("POST", LIMITER_PATH), ("PATCH", RULE_PATH), ("POST", "/api/v2/firewall/apply")],
        "{w:?}"
    );
    assert_eq!(w[0].2["dry_run"], true);
    assert!(w[1].2.get("dry_run").is_none());
    assert_eq!(w[2].2.as_object().unwrap().keys().collect::<Vec<_>>(), ["dnpipe", "id"], "only dnpipe");
    let stored = lab.store.meta_get("pfsense:fw1:protections").unwrap().unwrap();
    assert!(stored.contains(&format!("\"limiter\":{{\"name\":\"{name}\"")), "{stored}");

    // Undoing the creation clears the rule's pipe and deletes the limiter: the device is as before.
    let undo = invert(&create, &applied, &s0, &s1);
    let undone = lab.fw.apply(&undo).await.unwrap();
    let s2 = lab.verify(&undo, &undone).await;
    assert!(s2.protections.is_empty());
    assert_eq!(settled(&lab), before);
    assert_eq!(lab.emu.rule_config(web).unwrap()["dnpipe"], Value::Null, "cleared with null");

    // Again, then removed, and the removal undone.
    change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s"))).await;
    let (removal, applied, s3, s4) = change(&lab, &remove("wan", &[443])).await;
    assert!(s4.protections.is_empty());
    assert!(limiter_of(&lab.emu, "wan/tcp/443").is_none());
    assert_eq!(settled(&lab), before);
    let undo = invert(&removal, &applied, &s3, &s4);
    let undone = lab.fw.apply(&undo).await.unwrap();
    let s5 = lab.verify(&undo, &undone).await;
    assert_eq!(s5.protections.len(), 1);
    assert_eq!(dnpipes(&lab.emu, web).0.as_deref(), Some(name.as_str()));
    assert_eq!(limiter_of(&lab.emu, "wan/tcp/443").unwrap()["bandwidth"][0]["bw"], 10);
    let carried = carry_out(&s4, &undo, plan::Ids::Placeholders, plan::Entries::Apply).unwrap().state;
    assert!(portcullis_core::protection::same_enforcement(&carried.protections[0], &s5.protections[0]));
    lab.finish().await;
}

#[tokio::test]
async fn a_changed_cap_patches_the_limiter_and_the_change_undoes() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s"))).await;
    let number = limiter_of(&lab.emu, "wan/tcp/443").unwrap()["number"].clone();
    lab.emu.clear_request_log();
    let (update, applied, s0, s1) = change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "1500kbit/s"))).await;
    let l = limiter_of(&lab.emu, "wan/tcp/443").unwrap();
    assert_eq!((l["bandwidth"][0]["bw"].as_i64(), l["bandwidth"][0]["bwscale"].as_str()), (Some(1500), Some("Kb")));
    assert_eq!(l["number"], number, "the same pipe, PATCHed");
    assert_eq!(s1.protections[0].per_source_bandwidth, Some(bandwidth("1500kbit/s")));
    let w = writes(&lab);
    assert!(w.iter().all(|(_, p, _)| p != RULE_PATH), "the rule already names the limiter: {w:?}");
    assert_eq!(w.iter().filter(|(m, p, b)| m == "PATCH" && p == LIMITER_PATH && b.get("dry_run").is_none()).count(), 1);
    assert_eq!(dnpipes(&lab.emu, web).0, Some(limiter_name("wan/tcp/443")));
    let undo = invert(&update, &applied, &s0, &s1);
    let undone = lab.fw.apply(&undo).await.unwrap();
    let s2 = lab.verify(&undo, &undone).await;
    assert_eq!(s2.protections[0].per_source_bandwidth, Some(bandwidth("10Mbit/s")));
    assert_eq!(limiter_of(&lab.emu, "wan/tcp/443").unwrap()["bandwidth"][0]["bwscale"], "Mb");
    lab.finish().await;
}

#[tokio::test]
async fn udp_and_tcp_udp_rules_are_capped_when_the_protection_covers_their_protocol() {
    let lab = Lab::start().await;
    let dns_udp = pass_rule(&lab, "wan", "dns udp", Protocol::Udp, 53).await;
    let dns_both = pass_rule(&lab, "wan", "dns both", Protocol::TcpUdp, 53).await;
    let dns_tcp = pass_rule(&lab, "wan", "dns tcp", Protocol::Tcp, 53).await;

    // A TCP cap would also cap the tcp/udp rule's UDP: it goes on the TCP rule only.
    let (_, _, _, s1) = change(&lab, &configure(capped("wan", Transport::Tcp, &[53], "1Mbit/s"))).await;
    let tcp_limiter = limiter_name("wan/tcp/53");
    assert_eq!(dnpipes(&lab.emu, dns_tcp).0.as_deref(), Some(tcp_limiter.as_str()));
    assert_eq!(dnpipes(&lab.emu, dns_both).0, None);
    assert_eq!(dnpipes(&lab.emu, dns_udp).0, None);
    assert_eq!(s1.protections.len(), 1);
    change(&lab, &remove("wan", &[53])).await;

    // tcp/udp covers all three.
    let (_, _, _, s2) = change(&lab, &configure(capped("wan", Transport::TcpUdp, &[53], "1Mbit/s"))).await;
    let both = limiter_name("wan/tcp/udp/53");
    for t in [dns_udp, dns_both, dns_tcp] {
        assert_eq!(dnpipes(&lab.emu, t).0.as_deref(), Some(both.as_str()), "{t}");
    }
    assert_eq!(s2.protections[0].protection_id, "wan/tcp/udp/53");
    change(&lab, &remove_key("wan", Transport::TcpUdp, &[53])).await;
    for t in [dns_udp, dns_both, dns_tcp] {
        assert_eq!(dnpipes(&lab.emu, t).0, None, "{t}");
    }
    assert!(lab.emu.state().limiters.is_empty());

    // A UDP cap with only a tcp/udp rule for the port has nothing to go on, and says why.
    let only_both = pass_rule(&lab, "wan", "ntp both", Protocol::TcpUdp, 123).await;
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &configure(capped("wan", Transport::Udp, &[123], "1Mbit/s")), now()).unwrap();
    let before = lab.state();
    lab.emu.clear_request_log();
    for result in [lab.fw.check(&p).await, lab.fw.apply(&p).await.map(|_| ())] {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{err:?}");
        assert!(err.message.contains("no udp pass rule on wan for port 123"), "{}", err.message);
        assert!(err.message.contains(&format!("{only_both} (tcp/udp)")), "{}", err.message);
    }
    assert_eq!(lab.state(), before);
    assert!(lab.emu.request_log().iter().all(|r| r.method == "GET"), "nothing was written");
    lab.finish().await;
}

#[tokio::test]
async fn a_rule_with_a_limiter_the_protection_did_not_set_is_refused_with_nothing_changed() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    let other = web_rule(&lab, "wan", "web too", 443).await;
    // Someone capped the second rule with a limiter of their own in the GUI.
    let c = lab.fw.client();
    let office = TrafficShaperLimiterRequest {
        name: Some("office".into()),
        enabled: Some(true),
        aqm: Some("droptail".into()),
        sched: Some("wf2q+".into()),
        bandwidth: Some(vec![LimiterBandwidth { bw: 50, bwscale: "Mb".into(), bwsched: None }]),
        ..Default::default()
    };
    c.create_limiter(&office).await.unwrap();
    let rule = c.rule_by_tracker(other).await.unwrap().unwrap();
    c.update_rule(&FirewallRuleRequest { id: rule.id, dnpipe: Some(Some("office".into())), ..Default::default() })
        .await
        .unwrap();
    let state = lab.fw.snapshot().await.unwrap();
    let mut both = capped("wan", Transport::Tcp, &[443], "10Mbit/s");
    both.syn_proxy = true;
    let p = plan::plan(&state, &configure(both), now()).unwrap();
    let before = lab.state();
    lab.emu.clear_request_log();
    for result in [lab.fw.check(&p).await, lab.fw.apply(&p).await.map(|_| ())] {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{err:?}");
        assert!(
            err.message.contains(&format!("{other} (dnpipe office)")),
            "names the rule and its limiter: {}",
            err.message
        );
        assert!(!err.message.contains(&web.to_string()), "{}", err.message);
        assert!(err.hint.as_deref().unwrap().contains("In / Out pipe"), "{err:?}");
    }
    assert_eq!(lab.state(), before, "neither the proxy nor the limiter was set");
    assert!(lab.emu.request_log().iter().all(|r| r.method == "GET"), "nothing was written: {:?}", writes(&lab));
    assert!(lab.fw.snapshot().await.unwrap().protections.is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn a_limiter_of_the_same_name_that_portcullis_did_not_make_is_not_taken_over() {
    let lab = Lab::start().await;
    web_rule(&lab, "wan", "web", 443).await;
    let name = limiter_name("wan/tcp/443");
    let theirs = TrafficShaperLimiterRequest {
        name: Some(name.clone()),
        description: Some("someone else's".into()),
        aqm: Some("droptail".into()),
        sched: Some("wf2q+".into()),
        bandwidth: Some(vec![LimiterBandwidth { bw: 1, bwscale: "Mb".into(), bwsched: None }]),
        ..Default::default()
    };
    lab.fw.client().create_limiter(&theirs).await.unwrap();
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s")), now()).unwrap();
    let before = lab.state();
    for result in [lab.fw.check(&p).await, lab.fw.apply(&p).await.map(|_| ())] {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{err:?}");
        assert!(err.message.contains(&format!("a limiter named {name} exists")), "{}", err.message);
    }
    assert_eq!(lab.state(), before);
    lab.finish().await;
}

#[tokio::test]
async fn a_bandwidth_cap_and_a_syn_proxy_together_and_one_of_them_dropped() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    let mut both = capped("wan", Transport::Tcp, &[443], "10Mbit/s");
    both.syn_proxy = true;
    let (_, _, _, s1) = change(&lab, &configure(both.clone())).await;
    let name = limiter_name("wan/tcp/443");
    assert_eq!(statetypes(&lab.emu, web), ("synproxy state".into(), "synproxy state".into()));
    assert_eq!(dnpipes(&lab.emu, web), (Some(name.clone()), Some(name.clone())));
    assert!(s1.protections[0].syn_proxy && s1.protections[0].per_source_bandwidth.is_some());
    // Either one changed by hand drops the protection out of the state.
    set_statetype_by_hand(&lab, web, "keep state").await;
    assert!(lab.fw.snapshot().await.unwrap().protections.is_empty(), "lost its proxy");
    set_statetype_by_hand(&lab, web, "synproxy state").await;
    assert_eq!(lab.fw.snapshot().await.unwrap().protections.len(), 1);

    // The proxy dropped, the cap kept.
    let (_, _, _, s2) = change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s"))).await;
    assert_eq!(statetypes(&lab.emu, web).0, "keep state");
    assert_eq!(dnpipes(&lab.emu, web).0.as_deref(), Some(name.as_str()));
    assert!(!s2.protections[0].syn_proxy);
    // The cap dropped, the proxy kept: the limiter goes once the rule no longer names it.
    let (_, _, _, s3) = change(&lab, &configure(syn_proxy("wan", &[443]))).await;
    assert_eq!(statetypes(&lab.emu, web).0, "synproxy state");
    assert_eq!(dnpipes(&lab.emu, web).0, None);
    assert!(limiter_of(&lab.emu, "wan/tcp/443").is_none());
    assert!(s3.protections[0].per_source_bandwidth.is_none());
    // Both again, then removed whole.
    change(&lab, &configure(both)).await;
    change(&lab, &remove("wan", &[443])).await;
    assert_eq!(statetypes(&lab.emu, web).0, "keep state");
    assert_eq!(dnpipes(&lab.emu, web).0, None);
    assert!(lab.emu.state().limiters.is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn a_limiter_changed_in_the_gui_drops_the_protection_and_configuring_it_again_puts_the_cap_back() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s"))).await;
    let c = lab.fw.client();
    let l = c.limiter_by_name(&limiter_name("wan/tcp/443")).await.unwrap().unwrap();
    let by_hand = TrafficShaperLimiterRequest {
        id: l.id,
        bandwidth: Some(vec![LimiterBandwidth { bw: 20, bwscale: "Mb".into(), bwsched: None }]),
        ..Default::default()
    };
    c.update_limiter(&by_hand).await.unwrap();
    assert!(lab.fw.snapshot().await.unwrap().protections.is_empty(), "the device no longer holds the cap asked");
    let (_, _, _, after) = change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s"))).await;
    assert_eq!(after.protections[0].per_source_bandwidth, Some(bandwidth("10Mbit/s")));
    assert_eq!(limiter_of(&lab.emu, "wan/tcp/443").unwrap()["bandwidth"][0]["bw"], 10);
    assert_eq!(lab.emu.state().limiters.len(), 1, "the same limiter, PATCHed back");
    // A rule pointed at the limiter by hand loses it with the protection, so no rule names a missing pipe.
    let stray = web_rule(&lab, "wan", "pointed by hand", 8080).await;
    let rule = c.rule_by_tracker(stray).await.unwrap().unwrap();
    let name = limiter_name("wan/tcp/443");
    c.update_rule(&FirewallRuleRequest { id: rule.id, dnpipe: Some(Some(name)), ..Default::default() }).await.unwrap();
    change(&lab, &remove("wan", &[443])).await;
    assert_eq!(dnpipes(&lab.emu, web).0, None);
    assert_eq!(dnpipes(&lab.emu, stray).0, None);
    assert!(lab.emu.state().limiters.is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn a_fault_on_the_second_rule_pipe_leaves_no_limiter_and_no_pipe() {
    let (lab, slot) = lab_with_fault_on("PATCH", RULE_PATH, 2, |emu| emu.faults().fail_next(1, 500)).await;
    let a = web_rule(&lab, "wan", "a", 443).await;
    let b = web_rule(&lab, "wan", "b", 443).await;
    *slot.lock().unwrap() = Some(lab.emu.clone());
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s")), now()).unwrap();
    let before = settled(&lab);
    let err = lab.fw.apply(&p).await.unwrap_err();
    lab.emu.wait_for_applies().await;
    assert_eq!(err.code, ErrorCode::ApplyFailed, "{err:?}");
    assert!(err.message.contains("rolled back"), "{}", err.message);
    assert_eq!(dnpipes(&lab.emu, a), (None, None), "the first PATCH was undone");
    assert_eq!(dnpipes(&lab.emu, b), (None, None));
    assert_eq!(settled(&lab), before, "and the limiter deleted");
    assert!(lab.fw.snapshot().await.unwrap().protections.is_empty());
    assert!(lab.store.meta_get("pfsense:fw1:protections").unwrap().unwrap_or_default().is_empty());
    let applied = lab.fw.apply(&p).await.unwrap();
    lab.verify(&p, &applied).await;
    lab.finish().await;
}

#[tokio::test]
async fn a_limiter_creation_that_landed_but_lost_its_answer_is_undone() {
    let (lab, slot) = lab_with_fault_on("POST", LIMITER_PATH, 1, |emu| emu.faults().drop_after_commit_next(1)).await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    *slot.lock().unwrap() = Some(lab.emu.clone());
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s")), now()).unwrap();
    let err = lab.fw.apply(&p).await.unwrap_err();
    lab.emu.wait_for_applies().await;
    assert!(err.message.contains("rolled back"), "{err:?}");
    assert!(lab.emu.state().limiters.is_empty(), "the limiter that landed was deleted");
    assert_eq!(dnpipes(&lab.emu, web), (None, None));
    assert!(lab.fw.snapshot().await.unwrap().protections.is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn a_failed_limiter_deletion_or_filter_reload_leaves_the_capped_protection_in_force() {
    let (lab, slot) = lab_with_fault_on("DELETE", LIMITER_PATH, 1, |emu| emu.faults().fail_next(1, 500)).await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s"))).await;
    let name = limiter_name("wan/tcp/443");
    let record = lab.store.meta_get("pfsense:fw1:protections").unwrap();
    let held = settled(&lab);
    *slot.lock().unwrap() = Some(lab.emu.clone());
    let state = lab.fw.snapshot().await.unwrap();
    let removal = plan::plan(&state, &remove("wan", &[443]), now()).unwrap();
    let err = lab.fw.apply(&removal).await.unwrap_err();
    lab.emu.wait_for_applies().await;
    assert!(err.message.contains("remove DDoS protection wan/tcp/443 failed"), "{err:?}");
    assert!(err.message.contains("rolled back"), "{err:?}");
    assert_eq!(dnpipes(&lab.emu, web), (Some(name.clone()), Some(name.clone())), "the pipe was put back");
    assert_eq!(settled(&lab), held);
    assert_eq!(lab.store.meta_get("pfsense:fw1:protections").unwrap(), record);
    assert_eq!(lab.fw.snapshot().await.unwrap().protections.len(), 1);

    // With the fault gone the removal goes through.
    let applied = lab.fw.apply(&removal).await.unwrap();
    lab.verify(&removal, &applied).await;
    lab.finish().await;
}

#[tokio::test]
async fn a_failed_filter_reload_after_a_removal_creates_the_limiter_again() {
    let lab = Lab::start().await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    change(&lab, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s"))).await;
    let name = limiter_name("wan/tcp/443");
    let record = lab.store.meta_get("pfsense:fw1:protections").unwrap();
    let state = lab.fw.snapshot().await.unwrap();
    let removal = plan::plan(&state, &remove("wan", &[443]), now()).unwrap();
    // After the pipe, the deletion and the record, every filter reload fails (each is retried).
    let emu = lab.emu.clone();
    lab.trap.arm("POST", "/api/v2/firewall/apply", move || emu.faults().fail_next(4, 500));
    let err = lab.fw.apply(&removal).await.unwrap_err();
    lab.emu.wait_for_applies().await;
    assert!(lab.trap.fired());
    assert!(err.message.contains("apply the change on the firewall failed"), "{err:?}");
    assert_eq!(dnpipes(&lab.emu, web).0.as_deref(), Some(name.as_str()), "the pipe was put back");
    let l = limiter_of(&lab.emu, "wan/tcp/443").expect("re-created");
    assert_eq!((l["bandwidth"][0]["bw"].as_i64(), l["mask"].as_str()), (Some(10), Some("srcaddress")));
    assert_eq!(lab.store.meta_get("pfsense:fw1:protections").unwrap(), record, "the record was put back");
    let again = lab.fw.snapshot().await.unwrap();
    assert_eq!(again.protections.len(), 1);
    assert_eq!(again.protections[0].per_source_bandwidth, Some(bandwidth("10Mbit/s")));
    let applied = lab.fw.apply(&removal).await.unwrap();
    lab.verify(&removal, &applied).await;
    lab.finish().await;
}

#[tokio::test]
async fn before_pfrest_2_8_the_check_judges_the_cap_without_a_dry_run() {
    let config = EmulatorConfig { version: "v2.7.6".into(), ..EmulatorConfig::with_api_key(KEY) };
    let lab = Lab::start_with(config, |_| {}).await;
    let web = web_rule(&lab, "wan", "web", 443).await;
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &configure(capped("wan", Transport::Tcp, &[443], "10Mbit/s")), now()).unwrap();
    lab.emu.clear_request_log();
    lab.fw.check(&p).await.unwrap();
    // pfRest before v2.8.0 would run a "dry run" for real: nothing but reads was sent.
    assert!(lab.emu.request_log().iter().all(|r| r.method == "GET"), "{:?}", writes(&lab));
    assert!(lab.emu.state().limiters.is_empty());
    let applied = lab.fw.apply(&p).await.unwrap();
    lab.verify(&p, &applied).await;
    assert_eq!(dnpipes(&lab.emu, web).0, Some(limiter_name("wan/tcp/443")));
    lab.finish().await;
}
