//! Pulls of a pfSense target's log through pfRest (the emulator, with both paging semantics) into the log store,
//! through `ToolService::call`: a burst between two questions is stored whole and once, a burst beyond the cap is
//! reported, and lines that arrive while the pull pages are not stored twice.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{SecondsFormat, Utc};
use portcullis_core::firewall::Firewall;
use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_pfrest_emulator::EmulatorConfig;
use portcullis_tools::ToolService;
use serde_json::{Value, json};

const BURST_SOURCE: &str = "192.0.2.45";
/// The source of the lines the emulator adds while a client pages (`log_growth_per_read`).
const GROWTH_SOURCE: &str = "198.51.100.77";

#[path = "common/pfsense.rs"]
mod pfsense_service;

use pfsense_service::PfSenseService as Setup;

async fn setup(version: &str, cap: Option<usize>) -> Setup {
    let emulator = EmulatorConfig { version: version.into(), ..EmulatorConfig::with_api_key(pfsense_service::KEY) };
    let mut s = pfsense_service::start(emulator).await;
    if let Some(cap) = cap {
        s.svc = s.svc.with_log_pull_cap(cap);
    }
    s
}

fn viewer() -> CallContext {
    CallContext::new(Principal { name: "eve".into(), role: "viewer".into() }, Transport::Cli, None)
}

/// `n` distinct blocked SSH attempts from [`BURST_SOURCE`], stamped now; the source port tells them apart.
fn burst(first_port: u16, n: u16) -> Vec<String> {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, false);
    (first_port..first_port + n)
        .map(|port| {
            format!(
                "<134>1 {now} pfSense.home.arpa filterlog 72237 - - 5,,,1000000103,em0,match,block,in,4,0x0,,64,\
                 {port},0,DF,6,tcp,60,{BURST_SOURCE},203.0.113.2,{port},22,0,S,{port},,64240,,mss"
            )
        })
        .collect()
}

async fn ask(svc: &ToolService) -> Value {
    svc.call(&viewer(), "query_firewall_logs", json!({"timeframe": "1h", "limit": 10})).await.expect("log query")
}

/// The source ports of the stored lines from `source`, and how many lines that is (a port twice = stored twice).
fn stored_ports(svc: &ToolService, source: &str) -> (BTreeSet<u16>, usize) {
    let store = svc.log_store("fw1").unwrap();
    let source: IpAddr = source.parse().unwrap();
    let page = store.query(0, i64::MAX / 2, 0, 1_000_000, |r| r.src == source).unwrap();
    let ports: BTreeSet<u16> = page.records.iter().filter_map(|r| r.src_port).collect();
    (ports, page.records.len())
}

#[tokio::test]
async fn a_burst_between_two_questions_is_stored_whole_and_once_on_every_version() {
    for version in ["v2.10.0", "v2.7.6"] {
        let s = setup(version, None).await;
        let first = ask(&s.svc).await;
        assert!(first.get("log_gap").is_none(), "{version}: a first pull has nothing to miss");
        s.emu.push_firewall_log_lines(burst(10_000, 12_000));
        let second = ask(&s.svc).await;
        assert!(second.get("log_gap").is_none(), "{version}: {}", second["log_gap"]);
        let (ports, lines) = stored_ports(&s.svc, BURST_SOURCE);
        assert_eq!((ports.len(), lines), (12_000, 12_000), "{version}: every line of the burst, once");
        assert_eq!(ports.first().copied(), Some(10_000), "{version}: the burst's oldest line is stored");
        // A question with nothing new stores nothing.
        ask(&s.svc).await;
        assert_eq!(stored_ports(&s.svc, BURST_SOURCE).1, 12_000, "{version}");
        assert!(s.emu.schema_violations().is_empty(), "{:?}", s.emu.schema_violations());
        s.emu.shutdown().await;
    }
}

#[tokio::test]
async fn a_burst_beyond_the_cap_is_reported_and_the_next_pull_resumes() {
    for version in ["v2.10.0", "v2.7.6"] {
        let s = setup(version, Some(10_000)).await;
        ask(&s.svc).await;
        s.emu.push_firewall_log_lines(burst(10_000, 12_000));
        let answer = ask(&s.svc).await;
        let gap = &answer["log_gap"];
        assert_eq!(gap["cap"], 10_000, "{version}: {answer}");
        assert!(gap["lines_read"].as_u64().unwrap() >= 10_000, "{gap}");
        assert!(gap["warning"].as_str().unwrap().contains("missing"), "{gap}");
        let (ports, lines) = stored_ports(&s.svc, BURST_SOURCE);
        assert_eq!((lines, ports.first().copied()), (10_000, Some(12_000)), "{version}: the newest 10,000 lines");
        s.emu.push_firewall_log_lines(burst(30_000, 10));
        let answer = ask(&s.svc).await;
        assert!(answer.get("log_gap").is_none(), "{version}: the next pull met this one: {answer}");
        assert_eq!(stored_ports(&s.svc, BURST_SOURCE).1, 10_010);
        s.emu.shutdown().await;
    }
}

#[tokio::test]
async fn lines_arriving_while_the_pull_pages_are_stored_once() {
    for version in ["v2.10.0", "v2.7.6"] {
        let s = setup(version, None).await;
        ask(&s.svc).await;
        s.emu.push_firewall_log_lines(burst(10_000, 12_000));
        s.emu.faults().set_log_growth_per_read(7);
        let answer = ask(&s.svc).await;
        assert!(answer.get("log_gap").is_none(), "{version}: {answer}");
        s.emu.faults().set_log_growth_per_read(0);
        ask(&s.svc).await;
        let served: BTreeSet<u16> =
            s.fw.firewall_log(1_000_000)
                .await
                .unwrap()
                .iter()
                .filter(|l| l.contains(GROWTH_SOURCE))
                .filter_map(|l| l.split(',').nth(20)?.parse().ok())
                .collect();
        assert!(served.len() >= 21, "{version}: the log grew during three page reads at least");
        let (ports, lines) = stored_ports(&s.svc, GROWTH_SOURCE);
        assert_eq!((&ports, lines), (&served, served.len()), "{version}: every grown line, once");
        assert_eq!(stored_ports(&s.svc, BURST_SOURCE).1, 12_000, "{version}");
        s.emu.shutdown().await;
    }
}
