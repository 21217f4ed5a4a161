//! Mirrors on pfSense through `ToolService::call` against the pfRest emulator: refused by default with the
//! alternatives; with `allow_shell` only an admin may mirror (the shell is root), a dry run shows the exact pf rules
//! the anchor then holds, `list_mirrors` reports pf's counters, and `stop_mirror` empties the anchor.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use portcullis_core::mirror::{Sensor, SensorKind};
use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_pfrest_emulator::EmulatorConfig;
use portcullis_pfsense::mirror::ANCHOR;
use portcullis_tools::{MirrorSettings, SensorSetting};
use serde_json::{Value, json};

#[path = "common/pfsense.rs"]
mod pfsense_service;

fn as_role(role: &str) -> CallContext {
    CallContext::new(Principal { name: format!("{role}-user"), role: role.into() }, Transport::Cli, None)
}

fn mirroring() -> MirrorSettings {
    let zeek = SensorSetting {
        target: None,
        sensor: Sensor {
            name: "zeek".into(),
            kind: SensorKind::Address { address: "10.10.10.50".parse().unwrap(), interface: "opt1".into() },
        },
        serves: vec!["lan".into()],
        engine: None,
    };
    MirrorSettings { sensors: vec![zeek], ..MirrorSettings::default() }
}

fn lan_web() -> Value {
    json!({"interface": "lan", "sensor": "zeek", "duration": "1h", "reason": "incident 7", "protocol": "tcp",
           "source": "192.168.1.0/24", "destination_port": 80})
}

fn inbound(mut args: Value) -> Value {
    args["direction"] = json!("in");
    args
}

#[tokio::test]
async fn without_allow_shell_a_mirror_is_unsupported_and_names_the_alternatives() {
    let s =
        pfsense_service::start(EmulatorConfig::with_api_key(pfsense_service::KEY)).await.with_mirroring(mirroring());
    let e = s.svc.call(&as_role("admin"), "mirror_traffic", lan_web()).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.field.as_deref()), ("unsupported", Some("interface")), "{e:?}");
    let hint = e.hint.unwrap_or_default();
    assert!(hint.contains("SPAN") && hint.contains("allow_shell"), "{hint}");
    assert!(s.emu.anchor_rules(ANCHOR).is_empty());
}

#[tokio::test]
async fn with_allow_shell_only_an_admin_mirrors_and_the_anchor_holds_what_the_dry_run_showed() {
    let s = pfsense_service::start_with(EmulatorConfig::with_api_key(pfsense_service::KEY), |o| o.allow_shell = true)
        .await
        .with_mirroring(mirroring());
    let e = s.svc.call(&as_role("operator"), "mirror_traffic", lan_web()).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.field.as_deref()), ("authorization_failed", Some("interface")), "{e:?}");
    assert!(e.message.contains("root shell"), "{}", e.message);

    // The tool's default direction is both, which pf cannot copy.
    let e = s.svc.call(&as_role("admin"), "mirror_traffic", lan_web()).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.field.as_deref()), ("unsupported", Some("direction")), "{e:?}");

    let mut dry = lan_web();
    dry["dry_run"] = json!(true);
    let planned = s.svc.call(&as_role("admin"), "mirror_traffic", inbound(dry)).await.unwrap();
    let shown: Vec<String> =
        planned["statements"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(shown.len(), 1, "{planned}");
    assert!(shown[0].starts_with("pass in quick on em1 dup-to (em2 10.10.10.50) inet proto tcp"), "{}", shown[0]);
    assert!(s.emu.anchor_rules(ANCHOR).is_empty(), "a dry run writes nothing");

    let started = s.svc.call(&as_role("admin"), "mirror_traffic", inbound(lan_web())).await.unwrap();
    assert_eq!((started["status"].as_str(), started["verified"].as_bool()), (Some("applied"), Some(true)), "{started}");
    let loaded: Vec<String> = s.emu.anchor_rules(ANCHOR).into_iter().map(|r| r.text).collect();
    assert_eq!(loaded.len(), 1);
    // The id differs between the dry run and the start; the rest of the rule is the same.
    let without_label = |r: &str| r.split(" label ").next().unwrap().to_string();
    assert_eq!(without_label(&loaded[0]), without_label(&shown[0]));

    let label = loaded[0].split("label \"").nth(1).unwrap().trim_end_matches('"').to_string();
    assert!(s.emu.count_anchor_rule(ANCHOR, &label, 321, 45_000));
    let listed = s.svc.call(&as_role("viewer"), "list_mirrors", json!({})).await.unwrap();
    assert_eq!((listed["data"][0]["packets"].as_u64(), listed["data"][0]["bytes"].as_u64()), (Some(321), Some(45_000)));
    let id = listed["data"][0]["mirror_id"].as_str().unwrap().to_string();

    let stopped = s.svc.call(&as_role("admin"), "stop_mirror", json!({"mirror_id": id})).await.unwrap();
    assert_eq!(stopped["status"], "applied", "{stopped}");
    assert!(s.emu.anchor_rules(ANCHOR).is_empty());
    assert!(s.emu.schema_violations().is_empty(), "{:?}", s.emu.schema_violations());
}
