//! Log analytics end to end inside the service: `lab traffic` scenarios through the lab rule set into a real log
//! store, then the log tools through `ToolService::call` (the guard pipeline).

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::traffic::{BRUTE_FORCER, FLOODER, PERSISTENT_RDP, SCANNER, Scenario, TrafficOptions};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_logstore::{LogStore, Retention};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::{Value, json};

fn service(dir: &std::path::Path) -> ToolService {
    let store = Arc::new(Store::open_in_memory().unwrap());
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
}

fn viewer() -> CallContext {
    CallContext::new(Principal { name: "eve".into(), role: "viewer".into() }, Transport::Cli, None)
}

async fn with_traffic(scenario: Scenario) -> (tempfile::TempDir, ToolService) {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let options = TrafficOptions { scenario, seed: 11, end: Utc::now(), days: 3, peak_per_hour: 400 };
    let stats = svc.generate_lab_traffic(&options).await.unwrap();
    assert!(stats.stored > 15_000 && stats.malformed == 0, "{stats:?}");
    (dir, svc)
}

fn sources(threats: &Value, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = threats["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == kind)
        .map(|t| t["source_ip"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn analyze_threats_finds_the_attackers_and_not_the_normal_hosts() {
    let (_dir, svc) = with_traffic(Scenario::Default).await;
    let found = svc.call(&viewer(), "analyze_threats", json!({"timeframe": "1h"})).await.unwrap();
    assert_eq!(sources(&found, "brute_force"), vec![BRUTE_FORCER]);
    assert_eq!(sources(&found, "port_scan"), vec![SCANNER]);
    assert_eq!(sources(&found, "unusual_traffic_volume"), vec![FLOODER]);
    for t in found["data"].as_array().unwrap() {
        let ip = t["source_ip"].as_str().unwrap();
        assert!(!ip.starts_with("192.168.1.") && !ip.starts_with("198.18."), "normal host flagged: {t}");
        assert!(
            t["severity"].is_string() && t["attempt_count"].as_u64().unwrap() > 0 && t["recommendation"].is_string()
        );
    }
    let brute = found["data"].as_array().unwrap().iter().find(|t| t["type"] == "brute_force").unwrap();
    assert_eq!(brute["attempt_count"], 300);
    assert_eq!(brute["recommended_block_duration"], "24h", "{brute}");

    // Over a day the persistent RDP host shows up too, as brute force and as a repeated attack.
    let day = svc.call(&viewer(), "analyze_threats", json!({"timeframe": "24h"})).await.unwrap();
    assert!(sources(&day, "repeated_attack").contains(&PERSISTENT_RDP.to_string()), "{day}");
    assert!(sources(&day, "brute_force").contains(&PERSISTENT_RDP.to_string()));

    // The alarms list the high-scoring threats.
    let alarms = svc.call(&viewer(), "get_active_alarms", json!({"timeframe": "1h"})).await.unwrap();
    assert!(alarms["data"].as_array().unwrap().iter().any(|a| a["source_ip"] == BRUTE_FORCER), "{alarms}");
}

#[tokio::test]
async fn normal_traffic_alone_raises_nothing() {
    let (_dir, svc) = with_traffic(Scenario::Normal).await;
    for timeframe in ["1h", "24h", "7d"] {
        let found = svc.call(&viewer(), "analyze_threats", json!({"timeframe": timeframe})).await.unwrap();
        assert_eq!(found["count"], 0, "{timeframe}: {found}");
    }
}

#[tokio::test]
async fn logs_and_stats_answer_from_the_store() {
    let (_dir, svc) = with_traffic(Scenario::Default).await;
    let ssh = svc
        .call(
            &viewer(),
            "query_firewall_logs",
            json!({"timeframe": "1h", "source_ip": "203.0.113.0/24", "destination_port": "22", "limit": 50}),
        )
        .await
        .unwrap();
    let data = ssh["data"].as_array().unwrap();
    assert_eq!(data.len(), 50);
    assert!(ssh["next_cursor"].is_string());
    for e in data {
        assert_eq!(
            (e["src_ip"].as_str(), e["dst_port"].as_str(), e["action"].as_str()),
            (Some(BRUTE_FORCER), Some("22"), Some("block"))
        );
        assert_eq!(e["interface"], "wan");
        assert_eq!(e["rule_id"], "1000000103");
    }
    // Compared as times: RFC 3339 text with and without a fraction of a second does not sort as text
    // (`…:05Z` > `…:05.250Z`).
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        data.iter().map(|e| e["timestamp"].as_str().unwrap().parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let page2 = svc
        .call(&viewer(), "query_firewall_logs", json!({"timeframe": "1h", "source_ip": BRUTE_FORCER, "destination_port": 22, "limit": 1000, "cursor": ssh["next_cursor"]}))
        .await
        .unwrap();
    assert_eq!(page2["count"].as_u64().unwrap() + 50, 300);

    let lan = svc
        .call(&viewer(), "get_traffic_stats", json!({"timeframe": "24h", "interface": "lan", "granularity": "1h"}))
        .await
        .unwrap();
    let buckets = lan["data"].as_array().unwrap();
    assert!(buckets.len() == 24 || buckets.len() == 25, "{}", buckets.len());
    let sum: u64 = buckets.iter().map(|b| b["packets"].as_u64().unwrap()).sum();
    assert_eq!(sum, lan["total_packets"].as_u64().unwrap());
    assert_eq!(lan["blocked"], 0, "LAN clients pass by the default allow rule");
    assert!(lan["bytes_in"].as_u64().unwrap() > 0 && lan["bandwidth_util"].as_f64().unwrap() > 0.0);

    let err =
        svc.call(&viewer(), "get_traffic_stats", json!({"timeframe": "7d", "granularity": "1m"})).await.unwrap_err();
    assert!(err.message.contains("granularity"), "{}", err.message);
    let err = svc
        .call(&viewer(), "query_firewall_logs", json!({"timeframe": "1h", "source_ip": "300.1.1.1"}))
        .await
        .unwrap_err();
    assert!(err.message.contains("source_ip"), "{}", err.message);
}

#[tokio::test]
async fn report_in_three_formats_and_dashboard() {
    let (dir, svc) = with_traffic(Scenario::Default).await;
    let json_report = svc.call(&viewer(), "generate_security_report", json!({"timeframe": "24h"})).await.unwrap();
    let r = &json_report;
    assert!(r["summary"]["blocked"].as_u64().unwrap() > 6000, "{}", r["summary"]);
    assert_eq!(r["top_blocked_ips"][0]["ip"], FLOODER);
    assert!(r["security_events"].as_array().unwrap().iter().any(|e| e["port"] == "tcp:22" && e["blocked"] == 300));
    let recs = r["recommendations"].as_array().unwrap();
    assert!(recs.iter().any(|x| x.as_str().unwrap().starts_with("Heavy SSH attack volume")), "{recs:?}");
    let md = svc
        .call(&viewer(), "generate_security_report", json!({"timeframe": "24h", "format": "markdown"}))
        .await
        .unwrap();
    assert!(md["content"].as_str().unwrap().contains("| tcp:22 | 300 | 0 |"));
    let html =
        svc.call(&viewer(), "generate_security_report", json!({"timeframe": "24h", "format": "html"})).await.unwrap();
    let page = html["content"].as_str().unwrap();
    assert_eq!(page.matches("<svg").count(), 4);
    std::fs::write(dir.path().join("report.html"), page).unwrap();
    let bad = svc
        .call(&viewer(), "generate_security_report", json!({"timeframe": "24h", "format": "pdf"}))
        .await
        .unwrap_err();
    assert!(bad.message.contains("format"));

    let dash = svc.call(&viewer(), "get_dashboard_data", json!({})).await.unwrap();
    assert!(dash["system_health"]["uptime"].is_u64(), "{dash}");
    assert!(dash["traffic"]["total_packets"].as_u64().unwrap() > 0);
    assert!(dash["recent_threats"].as_array().unwrap().iter().any(|t| t["source_ip"] == BRUTE_FORCER));
    assert_eq!(dash["active_blocks"], 0);
}

#[tokio::test]
async fn recommendations_name_each_source_once_and_skip_what_is_blocked_already() {
    let (_dir, svc) = with_traffic(Scenario::Default).await;
    let block_lines = |report: &Value| -> Vec<String> {
        let recs = report["recommendations"].as_array().unwrap();
        recs.iter().filter_map(|r| r.as_str()).filter(|r| r.starts_with("Block ")).map(String::from).collect()
    };
    let before = svc.call(&viewer(), "generate_security_report", json!({"timeframe": "24h"})).await.unwrap();
    let lines = block_lines(&before);
    let named: Vec<&str> = lines.iter().filter_map(|l| l.split_whitespace().nth(1)).collect();
    let once: std::collections::HashSet<&&str> = named.iter().collect();
    assert_eq!(once.len(), named.len(), "each source once: {lines:?}");
    assert!(named.contains(&BRUTE_FORCER), "{lines:?}");

    let operator = CallContext::new(Principal { name: "op".into(), role: "operator".into() }, Transport::Cli, None);
    let block = json!({"ip_address": BRUTE_FORCER, "duration": "7d", "reason": "brute force"});
    svc.call(&operator, "block_ip_address", block).await.unwrap();
    let after = svc.call(&viewer(), "generate_security_report", json!({"timeframe": "24h"})).await.unwrap();
    let lines = block_lines(&after);
    assert!(!lines.iter().any(|l| l.contains(BRUTE_FORCER)), "{lines:?}");
    let recs = after["recommendations"].to_string();
    assert!(recs.contains("blocked already"), "{recs}");
}

/// With a country database (the test fixture puts the lab's attackers 203.0.113.9, .50 and .77 in CN), log
/// entries carry countries, `country` filters them, and threats, the dashboard and the report name the top source
/// countries of blocked traffic with the data's attribution.
#[tokio::test]
async fn countries_appear_wherever_addresses_do() {
    let (_dir, svc) = with_traffic(Scenario::Default).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/geoip/dbip-layout.mmdb");
    let svc = svc.with_country_db(Some(Arc::new(portcullis_geo::CountryDb::open(&path).unwrap())));
    let logs = svc
        .call(&viewer(), "query_firewall_logs", json!({"timeframe": "1h", "country": "cn", "limit": 200}))
        .await
        .unwrap();
    let entries = logs["data"].as_array().unwrap();
    assert!(!entries.is_empty(), "{logs}");
    assert!(entries.iter().all(|e| e["src_country"] == "CN" || e["dst_country"] == "CN"), "{logs}");
    assert!(logs["countries"]["attribution"].as_str().unwrap().contains("DB-IP"));
    let all = svc.call(&viewer(), "query_firewall_logs", json!({"timeframe": "1h", "limit": 1000})).await.unwrap();
    assert!(all["data"].as_array().unwrap().iter().any(|e| e.get("src_country").is_none()), "unknown stay unknown");
    let e = svc.call(&viewer(), "query_firewall_logs", json!({"timeframe": "1h", "country": "XX"})).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("country"));

    let threats = svc.call(&viewer(), "analyze_threats", json!({"timeframe": "1h"})).await.unwrap();
    assert_eq!(threats["top_blocked_countries"][0]["country"], "CN", "{}", threats["top_blocked_countries"]);
    assert!(threats["top_blocked_countries"][0]["sources"].as_u64().unwrap() >= 2);
    let dashboard = svc.call(&viewer(), "get_dashboard_data", json!({})).await.unwrap();
    assert_eq!(dashboard["top_blocked_countries"][0]["country"], "CN", "{dashboard}");
    let report =
        svc.call(&viewer(), "generate_security_report", json!({"timeframe": "24h", "format": "html"})).await.unwrap();
    let html = report["content"].as_str().unwrap();
    assert!(html.contains("chart-countries") && html.contains("IP Geolocation by DB-IP"), "a country chart");
    assert_eq!(report["top_blocked_countries"][0]["country"], "CN");
}

#[tokio::test]
async fn the_labs_generated_traffic_names_its_lan_clients_as_devices_linked_to_their_log_lines() {
    let (_dir, svc) = with_traffic(Scenario::Normal).await;
    let all = svc.call(&viewer(), "list_devices", json!({})).await.unwrap();
    let rows = all["data"].as_array().unwrap();
    let lan: Vec<&Value> = rows.iter().filter(|d| d["interface"] == "lan").collect();
    assert!(lan.len() >= 10, "the generator's LAN clients (192.168.1.10-39): {all}");
    for d in &lan {
        let last = d["address"].as_str().unwrap().rsplit('.').next().unwrap().parse::<u8>().unwrap();
        assert!(portcullis_lab::traffic::LAN_CLIENTS.contains(&last), "{d}");
        assert_eq!(d["sources"], json!(["traffic"]), "{d}");
        assert!(d.get("mac").is_none(), "the generator knows no MAC, and none is made up: {d}");
        assert!(d["logged"]["lines"].as_u64().unwrap() > 0, "{d}");
        assert_eq!(d["logged"]["query"]["source_ip"], d["address"]);
    }
    assert!(!rows.iter().any(|d| d["interface"] == "wan"), "internet hosts are not devices: {all}");
    let online = svc.call(&viewer(), "get_online_devices", json!({})).await.unwrap();
    assert!(online["count"].as_u64().unwrap() >= 1, "clients seen within the idle time: {online}");
}

#[tokio::test]
async fn the_labs_bandwidth_per_device_comes_from_its_generated_traffic() {
    let (_dir, svc) = with_traffic(Scenario::Normal).await;
    let usage = svc.call(&viewer(), "get_bandwidth_usage", json!({"timeframe": "24h", "limit": 5})).await.unwrap();
    assert!(usage["source"].as_str().unwrap().contains("log"), "{usage}");
    let rows = usage["data"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{usage}");
    for r in rows {
        assert_eq!(r["interface"], "lan", "{r}");
        assert!(r["total_bytes"].as_u64().unwrap() > 0);
    }
    assert!(rows.windows(2).all(|w| w[0]["total_bytes"].as_u64() >= w[1]["total_bytes"].as_u64()), "top first");
}

#[tokio::test]
async fn a_lan_device_that_scans_links_to_the_threat_analyze_threats_finds() {
    let (_dir, svc) = with_traffic(Scenario::Normal).await;
    let now = Utc::now();
    let lines: Vec<String> = (1..=200u16)
        .map(|port| {
            format!(
                "<134>1 {} fw.example filterlog 123 - - 5,,,1000000103,em1,match,block,in,4,0x0,,64,1234,0,DF,6,\
                 tcp,60,192.168.1.66,10.10.10.5,40000,{port},0,S,1,,64240,,mss",
                (now - chrono::TimeDelta::seconds(i64::from(200 - port))).to_rfc3339()
            )
        })
        .collect();
    let stats = svc.log_store("lab").unwrap().ingest_lines(lines.iter().map(String::as_str), now).unwrap();
    assert_eq!(stats.stored, 200, "{stats:?}");
    let all = svc.call(&viewer(), "list_devices", json!({"interface": "lan"})).await.unwrap();
    let scanner = all["data"].as_array().unwrap().iter().find(|d| d["address"] == "192.168.1.66").unwrap().clone();
    assert_eq!(scanner["logged"]["blocked"].as_u64(), Some(200), "{scanner}");
    let threats = scanner["logged"]["threats"].as_array().cloned().unwrap_or_default();
    assert!(threats.iter().any(|t| t["type"] == "port_scan"), "the device links to its threat: {scanner}");
}
