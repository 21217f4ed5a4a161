//! Log analytics over 10 million stored lines (7 days), through `ToolService::call` (the whole guard pipeline,
//! audit included), beside a baseline measured in the same run: decoding and counting every stored record
//! (what a store without rollups has to do for any aggregate).
//!
//! Run: `cargo bench -p portcullis-tools --bench log_analytics` (LINES=1000000 for a quicker run). The store is
//! written under the system temp dir and deleted afterwards (about 640 MB for 10 M lines).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, Transport};
use portcullis_lab::traffic::Rng;
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_logs::compact::Record;
use portcullis_logs::rollup::HOUR_MS;
use portcullis_logs::{Action, Direction};
use portcullis_logstore::{LogStore, Retention};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::json;

/// 70% LAN clients passing to the web, 30% internet sources (a heavy-tailed pool of 50,000) blocked on WAN.
fn record(rng: &mut Rng, ts_ms: i64, wan: u16, lan: u16) -> Record {
    let r = rng.next_u64();
    if r % 10 < 7 {
        Record {
            ts_ms,
            interface: lan,
            action: Action::Pass,
            direction: Direction::In,
            protocol: if r.is_multiple_of(7) { 17 } else { 6 },
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10 + (r >> 8) as u8 % 200)),
            dst: IpAddr::V4(Ipv4Addr::new(93, 184, (r >> 16) as u8, (r >> 24) as u8)),
            src_port: Some(32768 + (r >> 32) as u16 % 28000),
            dst_port: Some([443, 443, 443, 80, 53][(r >> 40) as usize % 5]),
            tracker: Some(1_700_000_001),
            length: 60 + (r >> 48) as u32 % 1400,
        }
    } else {
        let pool = (r >> 8) % 50_000;
        let skewed = pool * pool / 50_000; // small numbers far more often: a few loud sources, many quiet ones
        Record {
            ts_ms,
            interface: wan,
            action: Action::Block,
            direction: Direction::In,
            protocol: 6,
            src: IpAddr::V4(Ipv4Addr::new(198, 18, (skewed >> 8) as u8, skewed as u8)),
            dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            src_port: Some(1024 + (r >> 32) as u16 % 60000),
            // Each source keeps to its own one or two ports, as background noise does.
            dst_port: Some([22, 23, 80, 443, 445, 3389, 8080, 5900][((skewed + (r >> 40) % 2) % 8) as usize]),
            tracker: Some(1_000_000_103),
            length: 60,
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let lines: u64 = std::env::var("LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let dir = std::env::temp_dir().join(format!("portcullis-logbench-{}", std::process::id()));
    let now = Utc::now();
    let span_ms = 7 * 24 * HOUR_MS;
    let start_ms = now.timestamp_millis() - span_ms;
    let retention = Retention { max_age: chrono::TimeDelta::days(30), max_bytes: u64::MAX };

    let t = Instant::now();
    {
        let logs = LogStore::open(dir.join("lab"), retention).expect("log store");
        let (wan, lan) = (logs.interface_id("em0").expect("id"), logs.interface_id("em1").expect("id"));
        let mut rng = Rng(42);
        let chunk = 1_000_000u64;
        let mut done = 0;
        while done < lines {
            let n = chunk.min(lines - done);
            let records: Vec<Record> = (0..n)
                .map(|i| {
                    record(&mut rng, start_ms + ((done + i) as i128 * span_ms as i128 / lines as i128) as i64, wan, lan)
                })
                .collect();
            logs.append(&records).expect("append");
            done += n;
        }
        println!("wrote {lines} records in {:.1} s", t.elapsed().as_secs_f64());
        // What `serve`'s maintenance task does for the hours and days that ended.
        let t = Instant::now();
        let blocks = logs.settle(now).expect("settle");
        println!(
            "built and wrote the rollups of what ended ({blocks} day and quarter-day blocks) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }

    // Baseline: decode and count every record, as an aggregate over a store without rollups would.
    let logs = LogStore::open(dir.join("lab"), retention).expect("log store");
    let t = Instant::now();
    let mut blocked = 0u64;
    let mut total = 0u64;
    let first_hour = start_ms.div_euclid(HOUR_MS);
    for h in first_hour..=now.timestamp_millis().div_euclid(HOUR_MS) {
        for r in logs.hour_records(h).expect("records") {
            total += 1;
            blocked += u64::from(r.action != Action::Pass);
        }
    }
    let baseline = t.elapsed();
    println!("baseline: decode + count all {total} records ({blocked} blocked): {}", ms(baseline));

    // The store alone, opened afresh: a 7-day aggregate read from the rollup files, then again from memory.
    {
        let fresh = LogStore::open(dir.join("lab"), retention).expect("log store");
        let week = (now.timestamp_millis() - span_ms, now.timestamp_millis() + 1);
        let t = Instant::now();
        let traffic = fresh.traffic_rollup(week.0, week.1).expect("rollup");
        let cold = t.elapsed();
        let t = Instant::now();
        let full = fresh.rollup(week.0, week.1).expect("rollup");
        let merged = t.elapsed();
        let t = Instant::now();
        fresh.rollup(week.0, week.1).expect("rollup");
        println!(
            "store: 7-day traffic aggregate on a freshly opened store {} ({} records); full aggregate after it {} \
             ({} sources); again {}",
            ms(cold),
            traffic.records,
            ms(merged),
            full.sources.len(),
            ms(t.elapsed())
        );
    }

    let store = Arc::new(Store::open(&dir.join("store.sqlite")).expect("store"));
    let lab = Arc::new(LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).expect("lab"));
    let rates =
        portcullis_guard::RateQuotas { default: u32::MAX, sensitive: u32::MAX, admin: u32::MAX, mirror: u32::MAX };
    let guard = Guard::new(GuardSettings { rates, ..Default::default() }, Auditor::new(store, None).expect("auditor"))
        .expect("guard");
    let service = ToolService::new(guard, vec![Target::new("lab", lab)])
        .expect("service")
        .with_log_stores(HashMap::from([("lab".to_string(), logs)]));
    let ctx = CallContext::new(Principal { name: "bench".into(), role: "viewer".into() }, Transport::Cli, None);
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let cases = [
        ("get_traffic_stats 24h", "get_traffic_stats", json!({"timeframe": "24h"})),
        ("get_traffic_stats 7d", "get_traffic_stats", json!({"timeframe": "7d"})),
        ("analyze_threats 24h", "analyze_threats", json!({"timeframe": "24h"})),
        ("analyze_threats 7d", "analyze_threats", json!({"timeframe": "7d"})),
        (
            "query_firewall_logs 24h page",
            "query_firewall_logs",
            json!({"timeframe": "24h", "action": "block", "limit": 100}),
        ),
        ("generate_security_report 7d html", "generate_security_report", json!({"timeframe": "7d", "format": "html"})),
    ];
    runtime.block_on(async {
        for (label, tool, args) in &cases {
            let t = Instant::now();
            service.call(&ctx, tool, args.clone()).await.expect(label);
            let cold = t.elapsed();
            let mut warm = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                std::hint::black_box(service.call(&ctx, tool, args.clone()).await.expect(label));
                warm.push(t.elapsed());
            }
            let w = median(warm);
            println!(
                "{label:<36} first call {:>10}, then median {:>10}  ({:.0}x faster than the baseline scan)",
                ms(cold),
                ms(w),
                baseline.as_secs_f64() / w.as_secs_f64()
            );
        }
    });
    let logs = service.log_store("lab").expect("store");
    println!(
        "rollups kept in memory after these calls: {:.0} MiB (budget {} MiB)",
        logs.cached_bytes() as f64 / f64::from(1 << 20),
        portcullis_logstore::DEFAULT_CACHE_BUDGET >> 20
    );
    let _ = std::fs::remove_dir_all(&dir);
}
