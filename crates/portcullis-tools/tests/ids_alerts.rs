//! Suricata alerts end to end inside the service: a real eve.json file (the parser's fixtures and generated lines,
//! `+0100` offsets, hostile lines, a rotation mid-stream) followed by the service's eve source, then
//! `analyze_threats`, `get_active_alarms` (severity and threshold alarms), the report and the dashboard through
//! `ToolService::call`, and the automated response blocking an `ids_alert` source through the same path as every
//! other threat.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_logs::eve::{EventKind, parse_line};
use portcullis_logstore::{LogStore, Retention};
use portcullis_store::Store;
use portcullis_tools::{AutoResponse, AutoResponseMemory, EveSourceSpec, Target, ToolService};
use serde_json::{Value, json};

/// 40 severity-1 alerts of one signature: the exploit attempt the alarms and the automated response must see.
const EXPLOITER: &str = "203.0.113.50";
/// 12 severity-2 scan alerts.
const SCANNER: &str = "198.51.100.77";
/// A few severity-3 alerts: watched, not blocked.
const NOISY: &str = "192.0.2.33";

fn service(dir: &Path, store: Arc<Store>, eve: &Path) -> ToolService {
    service_counting_on(dir, store, eve, Some("wan"))
}

/// A service following `eve` as sensor ids1's, its alerts counted on `interface`.
fn service_counting_on(dir: &Path, store: Arc<Store>, eve: &Path, interface: Option<&str>) -> ToolService {
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        ..Default::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).unwrap()).unwrap();
    let logs = LogStore::open(dir.join("lab"), Retention::default()).unwrap();
    ToolService::new(guard, vec![Target::new("lab", Arc::new(lab))])
        .unwrap()
        .with_log_stores(HashMap::from([("lab".to_string(), logs)]))
        .with_eve_sources(vec![EveSourceSpec {
            path: eve.to_path_buf(),
            target: "lab".into(),
            interface: interface.map(String::from),
            sensor: Some("ids1".into()),
        }])
        .unwrap()
}

fn viewer() -> CallContext {
    CallContext::new(Principal { name: "eve".into(), role: "viewer".into() }, Transport::Cli, None)
}

/// A time `back` seconds ago as Suricata writes it on a sensor at UTC+1.
fn ts(back: i64) -> String {
    (Utc::now() - TimeDelta::seconds(back) + TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%S%.6f+0100").to_string()
}

fn alert(back: i64, src: &str, sid: u32, sev: u8, signature: &str, port: u16) -> String {
    format!(
        r#"{{"timestamp":"{}","flow_id":{},"in_iface":"eth1","event_type":"alert","src_ip":"{src}","src_port":{},"dest_ip":"198.51.100.10","dest_port":{port},"proto":"TCP","community_id":"1:Xy3mXk2vB4x1mU0jM6bQvQ0m9nE=","alert":{{"action":"allowed","gid":1,"signature_id":{sid},"rev":3,"signature":"{signature}","category":"Attempted Administrator Privilege Gain","severity":{sev}}}}}"#,
        ts(back),
        1_000_000 + back,
        40_000 + back % 20_000
    )
}

/// The parser's fixtures, each line's own timestamp replaced with a recent one.
fn fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../portcullis-logs/tests/fixtures/eve");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for (i, line) in std::fs::read_to_string(f).unwrap().lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let start = line.find(r#""timestamp":""#).unwrap() + 13;
            let end = start + line[start..].find('"').unwrap();
            out.push(format!("{}{}{}", &line[..start], ts(600 + i as i64), &line[end..]));
        }
    }
    out
}

fn write(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for l in lines {
        f.write_all(l.as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

fn threats_of<'a>(found: &'a Value, ip: &str) -> Vec<&'a Value> {
    found["data"].as_array().unwrap().iter().filter(|t| t["type"] == "ids_alert" && t["source_ip"] == ip).collect()
}

#[tokio::test]
async fn followed_eve_alerts_are_threats_alarms_report_sections_and_auto_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let store = Arc::new(Store::open_in_memory().unwrap());
    let svc = service(dir.path(), store.clone(), &eve);

    let fixtures = fixtures();
    let fixture_alerts =
        fixtures.iter().filter(|l| parse_line(l).is_ok_and(|e| e.kind == EventKind::Alert)).count() as u64;
    assert!(fixture_alerts >= 4);
    let mut first: Vec<String> = fixtures.clone();
    for i in 0..20 {
        first.push(alert(300 - i, EXPLOITER, 2024217, 1, "ET EXPLOIT Possible Apache Struts OGNL", 8080));
    }
    for i in 0..12 {
        first.push(alert(400 - i, SCANNER, 2001219, 2, "ET SCAN Potential SSH Scan", 22));
    }
    // Hostile lines: garbage, a line far beyond 64 KiB, wrong types, an impossible severity, a year ahead.
    let hostile = [
        "garbage".to_string(),
        format!("{{\"a\":\"{}\"}}", "x".repeat(200_000)),
        alert(10, EXPLOITER, 1, 1, "x", 22).replace("\"severity\":1", "\"severity\":\"critical\""),
        alert(10, EXPLOITER, 1, 1, "x", 22).replace("\"src_ip\":\"203.0.113.50\"", "\"src_ip\":42"),
        alert(10, EXPLOITER, 1, 1, "x", 22).replace("\"severity\":1", "\"severity\":0"),
        alert(-400 * 86_400, EXPLOITER, 1, 1, "x", 22),
    ];
    first.extend(hostile.iter().cloned());
    write(&eve, &first);
    assert_eq!(svc.poll_eve_sources(), fixture_alerts + 32);

    // Rotation mid-stream: lines written just before the rename, then a new file.
    let before_rename: Vec<String> = (0..10)
        .map(|i| alert(200 - i, EXPLOITER, 2024217, 1, "ET EXPLOIT Possible Apache Struts OGNL", 8080))
        .collect();
    write(&eve, &before_rename);
    std::fs::rename(&eve, dir.path().join("eve.json.1")).unwrap();
    let mut after: Vec<String> = (0..10)
        .map(|i| alert(100 - i, EXPLOITER, 2024217, 1, "ET EXPLOIT Possible Apache Struts OGNL", 8080))
        .collect();
    after.extend((0..3).map(|i| alert(50 - i, NOISY, 2100366, 3, "GPL ICMP_INFO PING *NIX", 0)));
    write(&eve, &after);
    assert_eq!(svc.poll_eve_sources(), 23);
    let stored = fixture_alerts + 55;

    let sources = svc.eve_sources();
    assert_eq!(sources.len(), 1);
    let s = &sources[0];
    assert!(s.ok, "{s:?}");
    assert_eq!((s.alerts_stored, s.lines_skipped), (stored, hostile.len() as u64), "{s:?}");
    assert_eq!(s.lines_ingested, (fixtures.len() + 32 + hostile.len() + 23) as u64);
    assert!(s.events["flow"] > 0 && s.events["stats"] > 0, "other events are counted: {:?}", s.events);
    assert!(s.last_alert.is_some() && s.last_stats.is_some());
    assert_eq!(svc.eve_sources_for("lab", Some("WAN")).len(), 1, "the interface's sensor is ingested");
    assert!(svc.eve_sources_for("lab", Some("lan")).is_empty());

    // analyze_threats: grouped per source and signature, severity from Suricata's, scored like the rest.
    let found = svc.call(&viewer(), "analyze_threats", json!({"timeframe": "1h"})).await.unwrap();
    assert_eq!(found["ids_alerts_analyzed"], stored, "nothing hostile was stored: {found}");
    let exploit = threats_of(&found, EXPLOITER);
    assert_eq!(exploit.len(), 1, "{found}");
    let t = exploit[0];
    assert_eq!(t["attempt_count"], 40);
    assert_eq!(t["severity"], "critical");
    assert_eq!(t["ports"], json!([8080]));
    assert_eq!(t["ids"]["signature_id"], 2024217);
    assert_eq!(t["ids"]["signature"], "ET EXPLOIT Possible Apache Struts OGNL");
    assert_eq!(t["ids"]["category"], "Attempted Administrator Privilege Gain");
    assert_eq!((t["ids"]["interface"].as_str(), t["ids"]["sensor"].as_str()), (Some("wan"), Some("ids1")));
    let score = t["threat_score"].as_u64().unwrap();
    assert!((65..80).contains(&score), "{t}");
    assert_eq!(t["recommended_block_duration"], "24h");
    assert!(t["recommendation"].as_str().unwrap().contains("block_ip_address ip_address=203.0.113.50"), "{t}");
    let scan = threats_of(&found, SCANNER);
    assert_eq!((scan[0]["severity"].as_str(), scan[0]["attempt_count"].as_u64()), (Some("high"), Some(12)));
    let noisy = threats_of(&found, NOISY);
    assert_eq!(noisy[0]["recommended_block_duration"], Value::Null, "three severity-3 alerts are only watched");
    assert!(found["by_type"]["ids_alert"].as_u64().unwrap() >= 3);

    // get_active_alarms: the severity-1 source and the scanner (score ≥ 50), not the noise.
    let alarms = svc.call(&viewer(), "get_active_alarms", json!({"timeframe": "1h"})).await.unwrap();
    let ids_alarms: Vec<&Value> =
        alarms["data"].as_array().unwrap().iter().filter(|a| a["type"] == "ids_alert").collect();
    assert!(ids_alarms.iter().any(|a| a["source_ip"] == EXPLOITER && a["severity"] == "critical"), "{alarms}");
    assert!(ids_alarms.iter().any(|a| a["source_ip"] == SCANNER), "{alarms}");
    assert!(!ids_alarms.iter().any(|a| a["source_ip"] == NOISY), "{alarms}");
    assert!(!alarms["data"].as_array().unwrap().iter().any(|a| a["type"] == "ids_alert_rate"), "no threshold yet");

    // A threshold on wan: 30 alerts within 10 minutes is crossed (the 40 exploit alerts come within 5 minutes);
    // one on lan is not; the threshold survives a restart (it is in the store).
    svc.set_alert_threshold("lab", "wan", 30, TimeDelta::minutes(10)).unwrap();
    svc.set_alert_threshold("lab", "lan", 1, TimeDelta::minutes(10)).unwrap();
    assert!(svc.set_alert_threshold("lab", "wan", 0, TimeDelta::minutes(1)).is_err());
    assert!(svc.set_alert_threshold("nowhere", "wan", 1, TimeDelta::minutes(1)).is_err());
    assert!(svc.set_alert_threshold("lab", "wan", 1, TimeDelta::days(2)).is_err());
    let alarms = svc.call(&viewer(), "get_active_alarms", json!({"timeframe": "1h"})).await.unwrap();
    let rate: Vec<&Value> =
        alarms["data"].as_array().unwrap().iter().filter(|a| a["type"] == "ids_alert_rate").collect();
    assert_eq!(rate.len(), 1, "{alarms}");
    assert_eq!(rate[0]["source_ip"], EXPLOITER);
    assert!(rate[0]["message"].as_str().unwrap().contains("on wan within 10m (threshold: 30 per 10m)"), "{}", rate[0]);
    let restarted = service(&dir.path().join("again"), store.clone(), &eve);
    assert_eq!(restarted.alert_threshold("lab", "WAN").unwrap().unwrap().count, 30);
    assert!(restarted.clear_alert_threshold("lab", "lan").unwrap());
    assert_eq!(svc.alert_thresholds().unwrap().len(), 1);

    // The report and the dashboard have an ids_alerts section.
    let report = svc.call(&viewer(), "generate_security_report", json!({"timeframe": "24h"})).await.unwrap();
    let ids = &report["ids_alerts"];
    assert_eq!(ids["alerts"], stored, "{ids}");
    assert_eq!(ids["top_signatures"][0]["signature_id"], 2024217);
    assert_eq!(ids["top_sources"][0]["ip"], EXPLOITER);
    assert_eq!(
        ids["by_severity"][0],
        json!({"severity": 1, "label": "critical", "alerts": ids["by_severity"][0]["alerts"]})
    );
    assert_eq!(ids["by_interface"][0]["interface"], "wan");
    assert_eq!(ids["sensors"][0]["sensor"], "ids1");
    assert!(ids["events"]["flow"].as_u64().unwrap() > 0);
    let recs = report["recommendations"].to_string();
    assert!(recs.contains("severity-1 alert(s)") && recs.contains(EXPLOITER), "{recs}");
    let md = svc.call(&viewer(), "generate_security_report", json!({"timeframe": "24h", "format": "markdown"})).await;
    let md = md.unwrap();
    let md = md["content"].as_str().unwrap();
    assert!(
        md.contains("## Suricata alerts") && md.contains("| 1:2024217 | ET EXPLOIT Possible Apache Struts OGNL"),
        "{md}"
    );
    let dashboard = svc.call(&viewer(), "get_dashboard_data", json!({})).await.unwrap();
    assert_eq!(dashboard["ids_alerts"]["top_sources"][0]["ip"], EXPLOITER, "{dashboard}");
    assert!(dashboard["ids_alerts"]["top_signatures"].as_array().unwrap().len() <= 5);
    assert!(dashboard["recent_threats"].as_array().unwrap().iter().any(|t| t["type"] == "ids_alert"), "{dashboard}");

    // The automated response acts on ids_alert threats through block_ip_address, like on any other threat.
    let auto = CallContext::new(
        Principal { name: "portcullis-auto".into(), role: "operator".into() },
        Transport::System,
        Some("auto_response".into()),
    );
    let cfg = AutoResponse { timeframe: "1h".into(), min_score: 50 };
    let mut memory = AutoResponseMemory::default();
    let blocks = svc.auto_response_round(&auto, &cfg, &mut memory).await;
    let exploit_block = blocks.iter().find(|b| b.ip == EXPLOITER).unwrap();
    assert_eq!((exploit_block.kind.as_str(), exploit_block.duration.as_str()), ("ids_alert", "24h"));
    assert_eq!(exploit_block.outcome, Ok(()), "{blocks:?}");
    assert!(!blocks.iter().any(|b| b.ip == NOISY), "below min_score: {blocks:?}");
    let listed = svc.call(&viewer(), "list_blocks", json!({})).await.unwrap();
    let entry = listed["data"].as_array().unwrap().iter().find(|b| b["ip_address"] == EXPLOITER).unwrap();
    assert!(entry["reason"].as_str().unwrap().starts_with("auto: ids alert (threat score"), "{entry}");
    assert!(svc.auto_response_round(&auto, &cfg, &mut memory).await.is_empty(), "each source once");
}

#[tokio::test]
async fn a_missing_eve_file_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("later.json");
    let svc = service(dir.path(), Arc::new(Store::open_in_memory().unwrap()), &eve);
    assert_eq!(svc.poll_eve_sources(), 0);
    let s = &svc.eve_sources()[0];
    assert!(!s.ok && s.last_error.as_deref().unwrap().contains("does not exist"), "{s:?}");
    write(&eve, &[alert(5, EXPLOITER, 2024217, 1, "ET EXPLOIT x", 80)]);
    assert_eq!(svc.poll_eve_sources(), 1);
    assert!(svc.eve_sources()[0].ok);
}

fn operator() -> CallContext {
    CallContext::new(Principal { name: "olga".into(), role: "operator".into() }, Transport::Cli, None)
}

fn with_sensor(svc: ToolService, serves: &[&str]) -> ToolService {
    use portcullis_core::mirror::{Sensor, SensorKind};
    use portcullis_tools::{MirrorSettings, SensorSetting};
    let sensor = SensorSetting {
        target: None,
        sensor: Sensor { name: "ids1".into(), kind: SensorKind::Interface { interface: "dmz".into() } },
        serves: serves.iter().map(|s| s.to_string()).collect(),
        engine: Some("suricata".into()),
    };
    svc.with_mirroring(MirrorSettings { sensors: vec![sensor], ..MirrorSettings::default() })
}

#[tokio::test]
async fn an_alerts_threshold_from_enable_traffic_analysis_raises_the_alert_rate_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let svc = with_sensor(service(dir.path(), Arc::new(Store::open_in_memory().unwrap()), &eve), &["wan"]);
    let on = svc
        .call(&operator(), "enable_traffic_analysis", json!({"interface": "wan", "alert_threshold": "5 alerts/m"}))
        .await
        .unwrap();
    assert_eq!(on["alert_source"]["path"], eve.display().to_string(), "{on}");
    assert_eq!(on["alert_threshold"]["amount"], 5);
    let stored = svc.alert_threshold("lab", "wan").unwrap().unwrap();
    assert_eq!((stored.count, stored.window_seconds), (5, 60));

    let rate = |alarms: &Value| alarms["data"].as_array().unwrap().iter().any(|a| a["type"] == "ids_alert_rate");
    write(&eve, &(0..3).map(|i| alert(30 + i, SCANNER, 2010935, 2, "ET SCAN x", 22)).collect::<Vec<_>>());
    svc.poll_eve_sources();
    let quiet = svc.call(&viewer(), "get_active_alarms", json!({})).await.unwrap();
    assert!(!rate(&quiet), "3 alerts do not cross 5 per minute: {quiet}");
    write(&eve, &(0..6).map(|i| alert(10 + i, SCANNER, 2010935, 2, "ET SCAN x", 22)).collect::<Vec<_>>());
    svc.poll_eve_sources();
    let loud = svc.call(&viewer(), "get_active_alarms", json!({})).await.unwrap();
    assert!(rate(&loud), "9 alerts within a minute cross 5 per minute: {loud}");

    // A later call without an alerts threshold takes it away.
    svc.call(&operator(), "enable_traffic_analysis", json!({"interface": "wan", "alert_threshold": "5GB/h"}))
        .await
        .unwrap();
    assert!(svc.alert_threshold("lab", "wan").unwrap().is_none());
}

#[tokio::test]
async fn an_alerts_threshold_is_refused_where_alerts_cannot_be_counted_on_the_interface() {
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let ask = json!({"interface": "wan", "alert_threshold": "5 alerts/m"});
    // No sensor serves the interface.
    let svc = service(dir.path(), Arc::new(Store::open_in_memory().unwrap()), &eve);
    let e = svc.call(&operator(), "enable_traffic_analysis", ask.clone()).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("alert_threshold"), "{}", e.message);
    // The sensor serves two interfaces and its alerts are not counted on one of them.
    let store = Arc::new(Store::open_in_memory().unwrap());
    let svc = with_sensor(service_counting_on(dir.path(), store, &eve, None), &["wan", "lan"]);
    let e = svc.call(&operator(), "enable_traffic_analysis", ask.clone()).await.unwrap_err();
    assert!(e.message.contains("more than wan"), "{}", e.message);
    let too_many = json!({"interface": "wan", "alert_threshold": "2000000 alerts/h"});
    let e = svc.call(&operator(), "enable_traffic_analysis", too_many).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("alert_threshold"), "{}", e.message);
    assert!(svc.alert_threshold("lab", "wan").unwrap().is_none(), "nothing was kept");
}
