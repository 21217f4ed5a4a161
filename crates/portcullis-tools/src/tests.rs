use std::sync::Arc;

use portcullis_guard::{Auditor, GuardSettings, OperationPolicy, Principal, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use serde_json::json;

use chrono::TimeDelta;
use portcullis_core::model::RuleSet;
use portcullis_core::plan::ChangePlan;

use super::*;

fn service_with(settings: GuardSettings) -> (ToolService, Arc<Store>) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let guard = Guard::new(settings, Auditor::new(store.clone(), None).unwrap()).unwrap();
    (ToolService::new(guard, vec![Target::new("lab", Arc::new(lab))]).unwrap(), store)
}

fn service() -> (ToolService, Arc<Store>) {
    service_with(GuardSettings::default())
}

fn ctx() -> CallContext {
    ctx_as("admin")
}

fn ctx_as(role: &str) -> CallContext {
    CallContext::new(Principal { name: format!("{role}-user"), role: role.into() }, Transport::Cli, None)
}

#[test]
fn every_catalogue_tool_routes_its_arguments_and_has_object_schemas() {
    for def in catalogue() {
        if let Err(e) = (def.route)(&json!({}), now()) {
            assert_eq!(e.code, ErrorCode::ValidationError, "{}: {e:?}", def.name);
        }
        assert_eq!(def.input_schema.get("type"), Some(&json!("object")), "{}", def.name);
        assert_eq!(def.output_schema.get("type"), Some(&json!("object")), "{}", def.name);
        // Closed to undeclared arguments, the one boolean schema MCP clients take (at the top of an input schema).
        assert_eq!(def.input_schema.get("additionalProperties"), Some(&json!(false)), "{}", def.name);
        let mut open_input = (*def.input_schema).clone();
        open_input.remove("additionalProperties");
        for schema in [&open_input, &*def.output_schema, &*def.result_schema] {
            if let Some(path) = boolean_subschema(&Value::Object(schema.clone()), String::new()) {
                panic!("{}: boolean schema at {path} (MCP clients refuse them)", def.name);
            }
        }
    }
}

#[test]
fn tools_with_the_same_result_type_share_one_schema() {
    let tools = catalogue();
    let schema = |name: &str| tools.iter().find(|d| d.name == name).map(|d| d.result_schema.clone()).unwrap();
    assert!(std::sync::Arc::ptr_eq(&schema("block_ip_address"), &schema("unblock_ip_address")));
    assert!(!std::sync::Arc::ptr_eq(&schema("block_ip_address"), &schema("get_firewall_rules")));
}

/// The path of a `true`/`false` schema under `properties`, `items` or `additionalProperties`, if any.
fn boolean_subschema(schema: &Value, path: String) -> Option<String> {
    let Value::Object(map) = schema else { return None };
    for (key, child) in map {
        let here = format!("{path}/{key}");
        match (key.as_str(), child) {
            ("items" | "additionalProperties", Value::Bool(_)) => return Some(here),
            ("properties", Value::Object(props)) => {
                for (name, prop) in props {
                    if prop.is_boolean() {
                        return Some(format!("{here}/{name}"));
                    }
                    if let Some(p) = boolean_subschema(prop, format!("{here}/{name}")) {
                        return Some(p);
                    }
                }
            }
            (_, Value::Object(_)) => {
                if let Some(p) = boolean_subschema(child, here) {
                    return Some(p);
                }
            }
            (_, Value::Array(items)) => {
                if let Some(p) = items.iter().find_map(|i| boolean_subschema(i, here.clone())) {
                    return Some(p);
                }
            }
            _ => {}
        }
    }
    None
}

#[tokio::test]
async fn block_simulate_unblock_flow() {
    let (svc, _) = service();
    let c = ctx();
    let block = svc
        .call(&c, "block_ip_address", json!({"ip_address": "203.0.113.50", "duration": "1h", "reason": "scan"}))
        .await
        .unwrap();
    assert_eq!(block["status"], "applied");
    assert_eq!(block["verified"], true);
    let blocks = svc.call(&c, "list_blocks", json!({})).await.unwrap();
    assert_eq!(blocks["data"][0]["ip_address"], "203.0.113.50");
    let sim = json!({"interface": "wan", "direction": "in", "protocol": "tcp", "source": "203.0.113.50",
                     "destination": "198.51.100.2", "destination_port": 22});
    let verdict = svc.call(&c, "simulate_packet", sim.clone()).await.unwrap();
    assert_eq!(verdict["verdict"], "block");
    assert_eq!(verdict["rule"]["managed"], "block_list");
    svc.call(&c, "unblock_ip_address", json!({"ip_address": "203.0.113.50"})).await.unwrap();
    let verdict = svc.call(&c, "simulate_packet", sim).await.unwrap();
    assert_eq!(verdict["rule"]["kind"], "default_deny");
}

#[tokio::test]
async fn invalid_inputs_name_the_field_change_nothing_and_are_audited() {
    let (svc, store) = service();
    let c = ctx();
    let rules = svc.call(&c, "get_firewall_rules", json!({})).await.unwrap();
    let some_rule = rules["data"][1]["rule_id"].as_str().unwrap().to_string();
    let cases = [
        ("block_ip_address", json!({"ip_address": "300.1.1.1", "duration": "1h", "reason": "x"}), "ip_address"),
        ("block_ip_address", json!({"ip_address": "10.0.0.0/33", "duration": "1h", "reason": "x"}), "ip_address"),
        ("block_ip_address", json!({"ip_address": "192.0.2.1", "duration": "-1h", "reason": "x"}), "duration"),
        (
            "block_ip_address",
            json!({"ip_address": "192.0.2.1", "duration": "1h", "reason": "x", "interface": "opt9"}),
            "interface",
        ),
        (
            "create_firewall_rule",
            json!({"interface": "lan", "action": "pass", "protocol": "tcp", "source": "any",
            "destination": "any", "destination_port": 70000, "description": "x"}),
            "destination_port",
        ),
        (
            "create_firewall_rule",
            json!({"interface": "nope", "action": "pass", "protocol": "tcp", "source": "any",
            "destination": "any", "destination_port": 22, "description": "x"}),
            "interface",
        ),
        (
            "create_firewall_rule",
            json!({"interface": "lan", "action": "pass", "protocol": "tcp", "source": "any",
            "destination": "any", "destination_port": 22, "description": "bad\u{1b}[31m"}),
            "description",
        ),
        ("modify_firewall_rule", json!({"rule_id": "999999", "enabled": false}), "rule_id"),
        ("delete_firewall_rule", json!({"rule_id": "999999"}), "rule_id"),
        ("pause_rule", json!({"rule_id": some_rule, "minutes": 5000}), "minutes"),
    ];
    let before = svc.call(&c, "get_firewall_rules", json!({})).await.unwrap();
    let audited_before = store.audit_tail(1).unwrap()[0].seq;
    for (tool, args, field) in &cases {
        let err = svc.call(&c, tool, args.clone()).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{tool} {args}");
        assert_eq!(err.field.as_deref(), Some(*field), "{tool} {args}: {}", err.message);
    }
    let after = svc.call(&c, "get_firewall_rules", json!({})).await.unwrap();
    assert_eq!(before["data"], after["data"], "nothing changed");
    let tail = store.audit_tail(cases.len() + 1).unwrap();
    assert_eq!(tail[0].seq, audited_before + cases.len() as i64 + 1);
    let denials = tail.iter().filter(|r| r.record["decision"] == "denied").count();
    assert_eq!(denials, cases.len());
    assert!(store.audit_verify().unwrap().ok);
}

#[tokio::test]
async fn allowed_operations_and_rate_limit_are_enforced() {
    let settings = GuardSettings {
        policy: OperationPolicy::new(Some(vec!["read_*".into(), "block_ip".into()]), vec![]),
        rates: portcullis_guard::RateQuotas { default: 3, sensitive: 10, admin: 5, mirror: 5 },
        ..GuardSettings::default()
    };
    let (svc, _) = service_with(settings);
    let c = ctx();
    let err = svc.call(&c, "delete_firewall_rule", json!({"rule_id": "1"})).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PolicyDenied);
    for _ in 0..3 {
        svc.call(&c, "list_blocks", json!({})).await.unwrap();
    }
    let err = svc.call(&c, "list_blocks", json!({})).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
}

#[tokio::test]
async fn dry_run_plans_without_changing_and_rules_round_trip() {
    let (svc, _) = service();
    let c = ctx();
    let args = json!({"interface": "wan", "action": "pass", "protocol": "tcp", "source": "192.0.2.0/24",
                      "destination": "wan:ip", "destination_port": "443", "description": "Office to GUI"});
    let mut dry = args.clone();
    dry["dry_run"] = json!(true);
    let planned = svc.call(&c, "create_firewall_rule", dry).await.unwrap();
    assert_eq!(planned["status"], "planned");
    assert_eq!(svc.call(&c, "get_firewall_rules", json!({"interface": "wan"})).await.unwrap()["count"], 0);
    let created = svc.call(&c, "create_firewall_rule", args).await.unwrap();
    let id = created["rule"]["rule_id"].as_str().unwrap().to_string();
    assert_eq!(created["rule"]["ip_version"], "inet");
    let paused = svc.call(&c, "pause_rule", json!({"rule_id": id, "minutes": 30})).await.unwrap();
    assert_eq!(paused["rule"]["status"], "paused");
    let resumed = svc.call(&c, "resume_rule", json!({"rule_id": id})).await.unwrap();
    assert_eq!(resumed["rule"]["status"], "enabled");
    svc.call(&c, "delete_firewall_rule", json!({"rule_id": id})).await.unwrap();
}

#[tokio::test]
async fn expired_blocks_are_swept_and_audited() {
    let (svc, store) = service();
    let c = ctx();
    svc.call(&c, "block_ip_address", json!({"ip_address": "198.51.100.77", "duration": "1s", "reason": "test"}))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(svc.call(&c, "list_blocks", json!({})).await.unwrap()["count"], 0, "expired entries are not listed");
    let report = svc.sweep_expired().await;
    assert_eq!(report[0].1.as_ref().unwrap(), &1);
    assert_eq!(store.audit_tail(1).unwrap()[0].record["tool"], "expire");
}

/// A lab that counts full reads, to see when the reconciler reads a target.
struct CountingFirewall {
    inner: LabFirewall,
    snapshots: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Firewall for CountingFirewall {
    fn info(&self) -> portcullis_core::firewall::TargetInfo {
        self.inner.info()
    }
    async fn snapshot(&self) -> Result<RuleSet, portcullis_core::firewall::BackendError> {
        self.snapshots.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.snapshot().await
    }
    async fn apply(
        &self,
        plan: &ChangePlan,
    ) -> Result<portcullis_core::firewall::Applied, portcullis_core::firewall::BackendError> {
        self.inner.apply(plan).await
    }
    async fn system_status(
        &self,
    ) -> Result<portcullis_core::firewall::SystemStatus, portcullis_core::firewall::BackendError> {
        self.inner.system_status().await
    }
}

#[tokio::test]
async fn the_reconciler_reads_a_target_only_when_something_is_due_and_removes_it_on_time() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let counting = Arc::new(CountingFirewall { inner: lab, snapshots: Default::default() });
    let guard = Guard::new(GuardSettings::default(), Auditor::new(store.clone(), None).unwrap()).unwrap();
    let svc = ToolService::new(guard, vec![Target::new("lab", counting.clone())]).unwrap();
    let reads = || counting.snapshots.load(std::sync::atomic::Ordering::SeqCst);
    let c = ctx();
    svc.call(&c, "block_ip_address", json!({"ip_address": "198.51.100.1", "duration": "1h", "reason": "t"}))
        .await
        .unwrap();

    // The first sweep reads the target once; then nothing is due for an hour, so sweeps do not read it.
    assert_eq!(svc.sweep_due().await.len(), 1);
    let after_first = reads();
    for _ in 0..5 {
        assert!(svc.sweep_due().await.is_empty());
    }
    assert_eq!(reads(), after_first, "a target with nothing due is not read");
    let next = svc.next_deadline();
    assert!(next > now() + TimeDelta::seconds(5), "next deadline is the full-read interval, not now: {next}");

    // A block due in a second moves the deadline; the reconciler wakes for it and takes it off the firewall.
    svc.call(&c, "block_ip_address", json!({"ip_address": "198.51.100.22", "duration": "1s", "reason": "t"}))
        .await
        .unwrap();
    let due = svc.next_deadline();
    assert!(due <= now() + TimeDelta::seconds(1), "the time index gives the new block's expiry: {due}");
    let mut swept = Vec::new();
    let stop = tokio::time::sleep(std::time::Duration::from_millis(2500));
    svc.reconcile(stop, |s| swept.push((s.cutoff, s.finished, s.result.as_ref().ok().copied()))).await;
    let removal = swept.iter().find(|(_, _, n)| *n == Some(1)).expect("a sweep removed the expired block");
    assert!(
        removal.0 >= due && removal.0 - due < TimeDelta::milliseconds(500),
        "swept at its time: {removal:?} vs {due}"
    );
    let state = counting.snapshot().await.unwrap();
    let values: Vec<&str> = state.aliases.iter().flat_map(|a| a.entries.iter().map(|e| e.value.as_str())).collect();
    assert!(!values.contains(&"198.51.100.22") && values.contains(&"198.51.100.1"), "{values:?}");
    assert_eq!(store.managed_next_expiry("lab").unwrap(), Some(store_expiry(&state, "198.51.100.1")));
}

fn store_expiry(state: &RuleSet, value: &str) -> Timestamp {
    state.aliases.iter().flat_map(|a| &a.entries).find(|e| e.value == value).and_then(|e| e.expires_at).unwrap()
}

#[tokio::test]
async fn the_flattened_change_options_name_their_field_when_wrong_and_change_nothing() {
    let (svc, store) = service();
    let c = ctx();
    let block = |extra: Value| {
        let mut args = json!({"ip_address": "192.0.2.9", "duration": "1h", "reason": "x"});
        args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        args
    };
    for (extra, field) in [
        (json!({"dry_run": "yes"}), "dry_run"),
        (json!({"confirm_within": "soon"}), "confirm_within"),
        (json!({"target": 7}), "target"),
    ] {
        let err = svc.call(&c, "block_ip_address", block(extra.clone())).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{extra}");
        assert_eq!(err.field.as_deref(), Some(field), "{extra}: {err:?}");
    }
    let planned = svc.call(&c, "block_ip_address", block(json!({"dry_run": true}))).await.unwrap();
    assert_eq!(planned["status"], "planned");
    assert!(store.managed_live("lab", now()).unwrap().is_empty(), "nothing was blocked");
}

#[tokio::test]
async fn unknown_arguments_are_refused_with_the_closest_name_and_change_nothing() {
    let (svc, store) = service();
    let c = ctx();
    let before = svc.call(&c, "get_firewall_rules", json!({})).await.unwrap();
    for (key, suggestion) in
        [("dryRun", Some("dry_run")), ("dry-run", Some("dry_run")), ("dryrun", Some("dry_run")), ("colour", None)]
    {
        let mut args = json!({"ip_address": "192.0.2.9", "duration": "1h", "reason": "x"});
        args[key] = json!(true);
        let err = svc.call(&c, "block_ip_address", args).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{key}");
        assert_eq!(err.field.as_deref(), Some(key), "{key}");
        match suggestion {
            Some(name) => assert!(err.message.contains(&format!("did you mean `{name}`")), "{key}: {}", err.message),
            None => assert!(!err.message.contains("did you mean"), "{key}: {}", err.message),
        }
    }
    let err = svc.call(&c, "verify_audit_log", json!({"full": true})).await.unwrap_err();
    assert_eq!((err.code, err.field.as_deref()), (ErrorCode::ValidationError, Some("full")));
    assert!(store.managed_live("lab", now()).unwrap().is_empty(), "nothing was blocked");
    let after = svc.call(&c, "get_firewall_rules", json!({})).await.unwrap();
    assert_eq!(before["data"], after["data"], "the rules are as they were");
}

#[tokio::test]
async fn a_shorter_block_keeps_the_longer_one_unless_replace() {
    let (svc, _) = service();
    let c = ctx();
    let block = |duration: &str, extra: Value| {
        let mut args = json!({"ip_address": "192.0.2.77", "duration": duration, "reason": duration});
        args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        args
    };
    let week = svc.call(&c, "block_ip_address", block("7d", json!({}))).await.unwrap();
    let hour = svc.call(&c, "block_ip_address", block("1h", json!({}))).await.unwrap();
    assert_eq!(hour["expires_at"], week["expires_at"], "the answer gives the expiry that holds");
    assert!(hour["warnings"].to_string().contains("that longer block is kept"), "{}", hour["warnings"]);
    let listed = svc.call(&c, "list_blocks", json!({})).await.unwrap();
    assert_eq!(listed["data"][0]["expires_at"], week["expires_at"], "still blocked for the week");
    assert_eq!(listed["data"][0]["reason"], "7d", "with the reason of the longer block");
    let remaining = listed["data"][0]["remaining_seconds"].as_i64().unwrap();
    assert!(remaining > 6 * 86_400, "{remaining}");

    let replaced = svc.call(&c, "block_ip_address", block("1h", json!({"replace": true}))).await.unwrap();
    assert_ne!(replaced["expires_at"], week["expires_at"]);
    let listed = svc.call(&c, "list_blocks", json!({})).await.unwrap();
    let remaining = listed["data"][0]["remaining_seconds"].as_i64().unwrap();
    assert!((3500..=3600).contains(&remaining), "replace: true sets the hour: {remaining}");
}

#[tokio::test]
async fn the_readme_smtp_rule_below_the_lan_allow_rules_is_reported_shadowed_by_both() {
    let (svc, _) = service();
    let c = ctx();
    let smtp = json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "lan",
                      "destination": "any", "destination_port": 25, "description": "No direct SMTP",
                      "allow_no_effect": true});
    let created = svc.call(&c, "create_firewall_rule", smtp).await.unwrap();
    let id = created["rule"]["rule_id"].as_str().unwrap().to_string();
    let lint = svc.call(&c, "lint_rules", json!({"interface": "lan"})).await.unwrap();
    let finding = lint["data"].as_array().unwrap().iter().find(|f| f["rule_id"] == id.as_str()).cloned();
    let finding = finding.unwrap_or_else(|| panic!("no finding for the SMTP rule: {lint}"));
    assert_eq!(finding["kind"], "shadowed", "{finding}");
    let message = finding["message"].as_str().unwrap();
    assert!(message.contains("Default allow LAN to any rule") && message.contains("IPv6"), "{message}");
}

#[tokio::test]
async fn a_change_reports_its_effect_and_simulate_packet_confirms_the_witness() {
    let (svc, _) = service();
    let c = ctx();
    let smtp = |position: Option<u32>| {
        let mut args = json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "lan",
                              "destination": "any", "destination_port": 25, "description": "No direct SMTP",
                              "dry_run": true});
        if let Some(p) = position {
            args["position"] = json!(p);
        }
        args
    };
    let below = svc.call(&c, "create_firewall_rule", smtp(None)).await.unwrap();
    assert_eq!(below["effect"]["verdict"], "no_effect", "{}", below["effect"]);
    assert!(below["warnings"].to_string().contains("no effect on traffic"), "{}", below["warnings"]);
    let rules = svc.call(&c, "get_firewall_rules", json!({"interface": "lan"})).await.unwrap();
    let allow_v4 =
        rules["data"].as_array().unwrap().iter().find(|r| r["description"] == "Default allow LAN to any rule");
    let allow_v4 = allow_v4.unwrap()["rule_id"].clone();
    assert!(below["effect"]["decided_by"].as_array().unwrap().contains(&allow_v4), "{}", below["effect"]);

    let above = svc.call(&c, "create_firewall_rule", smtp(Some(1))).await.unwrap();
    assert_eq!(above["effect"]["verdict"], "narrows", "{}", above["effect"]);
    let witness = above["effect"]["changes"][0]["witness"].clone();
    assert_eq!(above["effect"]["changes"][0]["before"], "pass");
    let mut apply = smtp(Some(1));
    apply["dry_run"] = json!(false);
    let applied = svc.call(&c, "create_firewall_rule", apply).await.unwrap();
    assert_eq!(applied["effect"]["verdict"], "narrows");
    let verdict = svc.call(&c, "simulate_packet", witness.clone()).await.unwrap();
    assert_eq!(verdict["verdict"], "block", "the witness {witness} is blocked now: {verdict}");

    let wan_pass = json!({"interface": "wan", "action": "pass", "protocol": "tcp", "source": "any",
                          "destination": "wan:ip", "destination_port": 8443, "description": "t", "dry_run": true});
    let wide = svc.call(&c, "create_firewall_rule", wan_pass).await.unwrap();
    assert_eq!(wide["effect"]["verdict"], "widens", "{}", wide["effect"]);
}

#[tokio::test]
async fn a_rule_that_would_never_decide_its_traffic_is_refused_unless_allowed() {
    let (svc, _) = service();
    let c = ctx();
    let smtp = json!({"interface": "lan", "action": "block", "protocol": "tcp", "source": "lan",
                      "destination": "any", "destination_port": 25, "description": "No direct SMTP"});
    let before = svc.call(&c, "get_firewall_rules", json!({})).await.unwrap();
    let err = svc.call(&c, "create_firewall_rule", smtp.clone()).await.unwrap_err();
    assert_eq!((err.code, err.field.as_deref()), (ErrorCode::ValidationError, Some("allow_no_effect")), "{err:?}");
    assert!(err.message.contains("Default allow LAN to any rule"), "{}", err.message);
    assert_eq!(svc.call(&c, "get_firewall_rules", json!({})).await.unwrap()["data"], before["data"]);
    let mut anyway = smtp;
    anyway["allow_no_effect"] = json!(true);
    let made = svc.call(&c, "create_firewall_rule", anyway).await.unwrap();
    assert_eq!((made["status"].clone(), made["effect"]["verdict"].clone()), (json!("applied"), json!("no_effect")));
}

#[tokio::test]
async fn a_widening_change_is_named_in_what_a_person_approves() {
    let (svc, store) = service();
    let c = ctx();
    let open_wan = json!({"interface": "wan", "action": "pass", "protocol": "any", "source": "any",
                          "destination": "any", "description": "open the WAN"});
    let err = svc.call(&c, "create_firewall_rule", open_wan).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApprovalRequired, "{err:?}");
    let pending = store.approvals_pending(chrono::Utc::now()).unwrap();
    let asked = pending.iter().find(|a| Some(a.id.as_str()) == err.approval_id.as_deref()).unwrap();
    assert!(asked.summary.contains("it opens") && asked.summary.contains("e.g."), "{}", asked.summary);
}

#[tokio::test]
async fn a_misspelt_tool_name_gets_the_closest_tool_the_caller_may_see() {
    let (svc, _) = service();
    let err = svc.call(&ctx(), "block_ip_adress", json!({})).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.contains("did you mean `block_ip_address`"), "{}", err.message);
    // A viewer does not see the change tools, so none is offered to it.
    let err = svc.call(&ctx_as("viewer"), "create_firewall_rul", json!({})).await.unwrap_err();
    assert!(!err.message.contains("create_firewall_rule"), "{}", err.message);
    let err = svc.call(&ctx(), "xyzzy", json!({})).await.unwrap_err();
    assert!(!err.message.contains("did you mean"), "{}", err.message);
}

#[tokio::test]
async fn wrong_types_are_said_in_peoples_words_not_rust_types() {
    let (svc, _) = service();
    let cases = [
        ("get_bandwidth_usage", json!({"timeframe": "1h", "limit": "abc"}), "limit"),
        ("list_blocks", json!({"limit": -5}), "limit"),
        ("get_audit_log", json!({"limit": true}), "limit"),
        (
            "block_ip_address",
            json!({"ip_address": "192.0.2.1", "duration": "1h", "reason": "x", "dry_run": "maybe"}),
            "dry_run",
        ),
        ("pause_rule", json!({"rule_id": "1", "minutes": [1]}), "minutes"),
    ];
    for (tool, args, field) in cases {
        let err = svc.call(&ctx(), tool, args).await.unwrap_err();
        assert_eq!(err.field.as_deref(), Some(field), "{tool}: {err:?}");
        for rust in ["usize", "u32", "u64", "i64", "u16", "u8", "a sequence", "a boolean", "invalid type"] {
            assert!(!err.message.contains(rust), "{tool}: {}", err.message);
        }
    }
}

#[tokio::test]
async fn a_refused_tool_names_the_role_that_would_allow_it_and_how_to_run_as_it() {
    let (svc, _) = service();
    let err = svc.call(&ctx_as("operator"), "delete_firewall_rule", json!({"rule_id": "1"})).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthorizationFailed);
    let hint = err.hint.unwrap_or_default();
    assert!(hint.contains("role admin may") && hint.contains("security.principal"), "{hint}");
    assert!(!hint.contains("operator"), "the refused role is not offered: {hint}");
}

#[tokio::test]
async fn get_system_status_says_who_is_asking() {
    let (svc, _) = service();
    let status = svc.call(&ctx_as("viewer"), "get_system_status", json!({})).await.unwrap();
    assert_eq!(status["principal"], json!({"name": "viewer-user", "role": "viewer"}), "{status}");
}
