//! Traffic mirroring end to end through `ToolService::call` on the lab backend: a mirror as state
//! (`list_mirrors`, `simulate_packet`'s `mirrored_to`), stop, expiry by the reconciler across a restart of the
//! service, rollback, roles and approvals, the rate class, and hostile input refused naming the field with
//! nothing changed.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::sync::Arc;

use chrono::TimeDelta;
use portcullis_core::mirror::{Sensor, SensorKind, VXLAN_PORT};
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use portcullis_tools::{MirrorSettings, SensorSetting, Target, ToolService};
use serde_json::{Value, json};

fn sensors() -> Vec<SensorSetting> {
    let sensor = |name: &str, kind| SensorSetting {
        target: None,
        sensor: Sensor { name: name.into(), kind },
        serves: vec!["wan".into()],
        engine: Some("suricata".into()),
    };
    vec![
        sensor("zeek", SensorKind::Interface { interface: "dmz".into() }),
        sensor(
            "far",
            SensorKind::Vxlan { remote: "198.51.100.9".parse().unwrap(), vni: 42, local: None, port: VXLAN_PORT },
        ),
    ]
}

fn service_on(store: Arc<Store>, quotas: RateQuotas) -> ToolService {
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let settings =
        GuardSettings { rates: quotas, restricted_interfaces: vec!["wan".into()], ..GuardSettings::default() };
    let guard = Guard::new(settings, Auditor::new(store, None).unwrap()).unwrap();
    ToolService::new(guard, vec![Target::new("lab", Arc::new(lab))])
        .unwrap()
        .with_mirroring(MirrorSettings { sensors: sensors(), ..MirrorSettings::default() })
}

fn service() -> (ToolService, Arc<Store>) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let quotas = RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 };
    (service_on(store.clone(), quotas), store)
}

fn as_role(role: &str) -> CallContext {
    CallContext::new(Principal { name: format!("{role}-user"), role: role.into() }, Transport::Cli, None)
}

async fn call(svc: &ToolService, role: &str, tool: &str, args: Value) -> Result<Value, portcullis_tools::CallError> {
    svc.call(&as_role(role), tool, args).await
}

fn web_mirror() -> Value {
    json!({"interface": "lan", "sensor": "zeek", "duration": "2h", "reason": "look at plain HTTP",
           "protocol": "tcp", "port": 80})
}

async fn mirrors(svc: &ToolService) -> Value {
    call(svc, "viewer", "list_mirrors", json!({})).await.unwrap()
}

fn simulate(interface: &str, direction: &str, source: &str, destination: &str, port: u16) -> Value {
    json!({"interface": interface, "direction": direction, "protocol": "tcp", "source": source,
           "destination": destination, "destination_port": port})
}

#[tokio::test]
async fn a_mirror_is_state_simulated_listed_and_stopped() {
    let (svc, _) = service();
    let started = call(&svc, "operator", "mirror_traffic", web_mirror()).await.unwrap();
    assert_eq!(started["status"], "applied", "{started:#}");
    assert!(!started["warnings"].to_string().contains("no effect"), "a copy decides no verdict: {started:#}");
    assert!(started["expires_at"].is_string(), "{started:#}");
    let listed = mirrors(&svc).await;
    assert_eq!(listed["count"], 1, "{listed:#}");
    let m = &listed["data"][0];
    let id = m["mirror_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("mir-"), "{m:#}");
    assert_eq!(m["sensor"]["name"], "zeek");
    assert_eq!(m["selector"]["port"], "80");
    assert_eq!(m["rate_limit"], 1000, "the configured default cap");
    assert!(m["remaining_seconds"].as_i64().unwrap() > 7000);
    assert!(listed["note"].as_str().unwrap().contains("does not count"), "the lab counts nothing: {listed:#}");

    let copied = call(&svc, "viewer", "simulate_packet", simulate("lan", "in", "192.168.1.20", "198.51.100.80", 80))
        .await
        .unwrap();
    assert_eq!(copied["mirrored_to"][0]["sensor"], "zeek", "{copied:#}");
    let not = call(&svc, "viewer", "simulate_packet", simulate("lan", "in", "192.168.1.20", "198.51.100.80", 443))
        .await
        .unwrap();
    assert_eq!(not["mirrored_to"], json!([]), "{not:#}");

    let stopped = call(&svc, "operator", "stop_mirror", json!({"mirror_id": id})).await.unwrap();
    assert_eq!(stopped["status"], "applied", "{stopped:#}");
    assert_eq!(mirrors(&svc).await["count"], 0);
    let again = call(&svc, "operator", "stop_mirror", json!({"mirror_id": id})).await.unwrap_err();
    assert_eq!(again.field.as_deref(), Some("mirror_id"), "{again:?}");
}

#[tokio::test]
async fn hostile_and_unbounded_asks_are_refused_naming_the_field_with_nothing_changed() {
    let (svc, _) = service();
    let with = |extra: Value| {
        let mut args = web_mirror();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                args.as_object_mut().unwrap().remove(k);
            } else {
                args[k] = v.clone();
            }
        }
        args
    };
    let cases = [
        (with(json!({"sensor": "10.0.0.9"})), "sensor"),
        (with(json!({"sensor": "nosuch"})), "sensor"),
        (with(json!({"protocol": null, "port": null})), "all"),
        (with(json!({"protocol": null, "port": null, "source": "any", "destination": "any"})), "all"),
        (with(json!({"duration": "30d"})), "duration"),
        (with(json!({"duration": "permanent"})), "duration"),
        (with(json!({"interface": "dmz"})), "interface"),
        (with(json!({"rate_limit": 10_000_000})), "rate_limit"),
        (with(json!({"sensor": "zeek; reboot"})), "sensor"),
        (with(json!({"interface": "lan$(id)"})), "interface"),
        (with(json!({"source": "10.0.0.1`id`"})), "source"),
        (with(json!({"port": "80;ls"})), "port"),
        (with(json!({"reason": "x\u{202e}y"})), "reason"),
        (with(json!({"direction": "sideways"})), "direction"),
        (with(json!({"all": true})), "all"),
        (with(json!({"sensor": "far", "destination": "198.51.100.9"})), "destination"),
    ];
    for (args, field) in cases {
        let e = call(&svc, "admin", "mirror_traffic", args.clone()).await.unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{args} → {e:?}");
    }
    assert_eq!(mirrors(&svc).await["count"], 0, "nothing changed");
}

#[tokio::test]
async fn copying_everything_needs_an_admin_and_a_person_and_restricted_interfaces_need_one_too() {
    let (svc, _) = service();
    let all = json!({"interface": "lan", "sensor": "zeek", "reason": "full capture", "all": true});
    let e = call(&svc, "operator", "mirror_traffic", all.clone()).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("all"), "{e:?}");
    let e = call(&svc, "admin", "mirror_traffic", all.clone()).await.unwrap_err();
    assert_eq!(e.code.as_str(), "approval_required", "{e:?}");
    let planned = call(
        &svc,
        "admin",
        "mirror_traffic",
        json!({"dry_run": true, "interface": "lan", "sensor": "zeek", "reason": "full capture", "all": true}),
    )
    .await
    .unwrap();
    assert_eq!(planned["approval_required"], true, "{planned:#}");

    let wan = json!({"interface": "wan", "sensor": "zeek", "reason": "web", "protocol": "tcp", "port": 80});
    let e = call(&svc, "operator", "mirror_traffic", wan.clone()).await.unwrap_err();
    assert_eq!(e.code.as_str(), "approval_required", "a restricted interface: {e:?}");
    let done = call(&svc, "admin", "mirror_traffic", wan).await.unwrap();
    assert_eq!(done["status"], "applied", "an admin may on a restricted interface: {done:#}");
    assert!(done["risk_score"].as_u64().unwrap() >= 45, "{done:#}");

    let e = call(&svc, "viewer", "mirror_traffic", web_mirror()).await.unwrap_err();
    assert_eq!(e.code.as_str(), "authorization_failed", "{e:?}");
}

#[tokio::test]
async fn mirrors_have_a_rate_class_of_their_own() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let svc = service_on(store, RateQuotas { default: 100, sensitive: 100, admin: 100, mirror: 1 });
    call(&svc, "operator", "mirror_traffic", web_mirror()).await.unwrap();
    let e = call(
        &svc,
        "operator",
        "mirror_traffic",
        json!({"interface": "lan", "sensor": "zeek", "reason": "dns", "protocol": "udp", "port": 53}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code.as_str(), "rate_limited", "{e:?}");
    call(
        &svc,
        "operator",
        "block_ip_address",
        json!({"ip_address": "203.0.113.7", "interface": "lan", "duration": "1h", "reason": "scan"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_mirror_expires_on_time_across_a_restart_and_a_rollback_stops_it() {
    let (svc, store) = service();
    let short = json!({"interface": "lan", "sensor": "zeek", "duration": "1s", "reason": "short look",
                       "protocol": "tcp", "port": 80});
    let started = call(&svc, "operator", "mirror_traffic", short).await.unwrap();
    assert_eq!(started["status"], "applied");
    drop(svc);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    // A new service on the same store: the reconciler's first sweep reads the target whole.
    let svc = service_on(store, RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 });
    assert!(svc.next_deadline() <= chrono::Utc::now() + TimeDelta::seconds(1));
    let swept = svc.sweep_expired().await;
    assert!(matches!(swept[..], [(_, Ok(1))]), "{swept:?}");
    assert_eq!(mirrors(&svc).await["count"], 0);

    let started = call(&svc, "operator", "mirror_traffic", web_mirror()).await.unwrap();
    let change = started["change_id"].as_str().unwrap();
    let undone = call(&svc, "admin", "rollback_change", json!({"change_id": change})).await.unwrap();
    assert_eq!(undone["status"], "rolled_back", "{undone:#}");
    assert_eq!(mirrors(&svc).await["count"], 0);
}

#[tokio::test]
async fn the_customers_traffic_analysis_call_mirrors_to_the_sensor_once_a_person_approves() {
    let (svc, store) = service();
    let customer = json!({"interface": "wan", "deep_packet_inspection": true, "alert_threshold": "5GB/h"});
    let e = call(&svc, "operator", "enable_traffic_analysis", customer.clone()).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("all"), "copying everything is for an admin: {e:?}");
    let e = call(&svc, "admin", "enable_traffic_analysis", customer.clone()).await.unwrap_err();
    assert_eq!(e.code.as_str(), "approval_required", "{e:?}");
    let id = e.approval_id.clone().unwrap();
    assert_eq!(mirrors(&svc).await["count"], 0, "nothing is copied before a person says yes");
    store.approval_decide(&id, true, "alice", chrono::Utc::now()).unwrap();
    let on = call(&svc, "admin", "enable_traffic_analysis", customer).await.unwrap();
    assert_eq!(on["supported"], true, "{on:#}");
    assert_eq!(on["engine"], "suricata");
    assert_eq!(on["mode"], "ids");
    assert_eq!(on["sensor"], "zeek");
    assert_eq!(on["mirror"]["status"], "applied", "{on:#}");
    assert_eq!(on["alert_threshold"]["amount"], 5_000_000_000u64);
    let listed = mirrors(&svc).await;
    assert_eq!(listed["data"][0]["selector"]["all"], true, "{listed:#}");
    assert_eq!(listed["data"][0]["interface"], "wan");

    let e = call(&svc, "admin", "enable_traffic_analysis", json!({"interface": "lan", "deep_packet_inspection": true}))
        .await
        .unwrap_err();
    assert_eq!(e.code.as_str(), "unsupported", "no sensor serves lan: {e:?}");
    assert_eq!(e.field.as_deref(), Some("deep_packet_inspection"));
    let flow = call(
        &svc,
        "operator",
        "enable_traffic_analysis",
        json!({"interface": "lan", "alert_threshold": "100000 packets/m"}),
    )
    .await
    .unwrap();
    assert_eq!((flow["engine"].as_str(), flow["mode"].as_str()), (Some("none"), Some("flow")), "{flow:#}");
    let e = call(
        &svc,
        "operator",
        "enable_traffic_analysis",
        json!({"interface": "lan", "alert_threshold": "5 parsecs/h"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("alert_threshold"));
}
