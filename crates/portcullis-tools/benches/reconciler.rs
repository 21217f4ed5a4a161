//! The reconciler holding 1,000,000 pending expiries on the lab firewall: how late the due ones leave the
//! firewall, and what holding them costs in memory. Printed beside a baseline from the same run: the same
//! service swept by a fixed one-second poll (the design the reconciler replaced).
//!
//! Of the 1,000,000 blocks, 2 × `DUE` fall due during the run, one per `SPACING` ms, all others hours later.
//! Lateness of an entry = when the sweep that removed it had verified the firewall − the entry's expiry.
//!
//! Run: `cargo bench -p portcullis-tools --bench reconciler`

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use portcullis_core::firewall::Firewall;
use portcullis_core::model::AliasEntry;
use portcullis_core::plan::{BLOCK_ALIAS, ChangeFacts, ChangePlan, Operation};
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::{ManagedEntry, Store};
use portcullis_tools::{SweepOutcome, Target, ToolService};
use serde_json::json;

const PENDING: u32 = 1_000_000;
/// Entries that fall due in each phase of the run.
const DUE: u32 = 20_000;
/// Milliseconds between consecutive due entries (so each phase lasts DUE × SPACING ms).
const SPACING: i64 = 1;
/// Time to settle after seeding, before the first entry falls due.
const LEAD: TimeDelta = TimeDelta::seconds(3);

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn address(i: u32) -> String {
    Ipv4Addr::from(0x0A00_0000 + i).to_string()
}

/// Expiries of the entries that fall due: phase one's from `start`, phase two's `gap` later.
fn due_expiries(start: DateTime<Utc>, gap: TimeDelta) -> Vec<DateTime<Utc>> {
    (0..2 * DUE)
        .map(|i| {
            let offset =
                if i < DUE { TimeDelta::zero() } else { gap - TimeDelta::milliseconds(i64::from(DUE) * SPACING) };
            start + offset + TimeDelta::milliseconds(i64::from(i) * SPACING)
        })
        .collect()
}

/// Expiries of the entries that stay pending through the run: hours away, one per millisecond.
fn later_expiries(now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    (0..PENDING - 2 * DUE).map(|i| now + TimeDelta::hours(2) + TimeDelta::milliseconds(i64::from(i))).collect()
}

/// One real block creates the managed list and its rules.
async fn first_block(service: &ToolService) {
    let ctx = CallContext::new(Principal { name: "bench".into(), role: "admin".into() }, Transport::Cli, None);
    let first = json!({"ip_address": "192.0.2.1", "duration": "permanent", "reason": "bench"});
    service.call(&ctx, "block_ip_address", first).await.expect("first block");
}

/// Puts entries numbered from `first` with these expiries straight into the block list and the time index,
/// in one plan: seeding a million blocks one call at a time would take the bench hours.
async fn seed(lab: &LabFirewall, store: &Store, first: u32, expires: &[DateTime<Utc>]) {
    let entries: Vec<AliasEntry> = expires
        .iter()
        .zip(first..)
        .map(|(t, i)| AliasEntry {
            value: address(i),
            detail: "bench block".into(),
            expires_at: Some(*t),
            created_at: Some(Utc::now()),
        })
        .collect();
    let records: Vec<ManagedEntry> = entries
        .iter()
        .map(|e| ManagedEntry { alias: BLOCK_ALIAS.into(), value: e.value.clone(), expires_at: e.expires_at })
        .collect();
    let plan = ChangePlan {
        summary: "bench seed".into(),
        operations: vec![Operation::PutAliasEntries { alias: BLOCK_ALIAS.into(), before: Vec::new(), after: entries }],
        warnings: Vec::new(),
        facts: ChangeFacts::default(),
    };
    lab.apply(&plan).await.expect("seed the block list");
    store.managed_record("lab", &records, &[], None).expect("seed the time index");
}

/// Lateness in ms of every entry in `due` (sorted expiries), given the sweeps in order.
fn lateness(due: &[DateTime<Utc>], sweeps: &[(DateTime<Utc>, DateTime<Utc>)]) -> Vec<f64> {
    let mut out = Vec::with_capacity(due.len());
    let mut next = 0;
    for (cutoff, finished) in sweeps {
        while next < due.len() && due[next] <= *cutoff {
            out.push((*finished - due[next]).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
            next += 1;
        }
    }
    assert_eq!(out.len(), due.len(), "every due entry was swept");
    out
}

fn describe(name: &str, mut late: Vec<f64>, sweeps: usize) {
    late.sort_by(f64::total_cmp);
    let at = |p: f64| late[((late.len() - 1) as f64 * p).round() as usize];
    println!(
        "reconciler/{name:<28} {} entries in {sweeps:>3} sweeps: lateness p50 {:>6.0} ms  p90 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms",
        late.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    let dir = std::env::temp_dir().join(format!("portcullis-reconciler-{}", std::process::id()));
    let store_path = dir.join("store.sqlite");
    let store = Arc::new(Store::open(&store_path).expect("store"));
    let lab = Arc::new(LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).expect("lab"));
    let rates =
        portcullis_guard::RateQuotas { default: u32::MAX, sensitive: u32::MAX, admin: u32::MAX, mirror: u32::MAX };
    let settings = GuardSettings { rates, ..GuardSettings::default() };
    let guard = Guard::new(settings, Auditor::new(store.clone(), None).expect("auditor")).expect("guard");
    let service = ToolService::new(guard, vec![Target::new("lab", lab.clone())]).expect("service");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    runtime.block_on(async {
        let rss_empty = rss_mib();
        let seeding = Instant::now();
        first_block(&service).await;
        seed(&lab, &store, 2 * DUE, &later_expiries(Utc::now())).await;
        // A server adopts its managed lists into the record at its first drift check, once in its life; do it
        // here so that the phases measure the steady state. Then time a steady-state check, which the
        // reconciler runs every ten seconds or less often.
        let adopt = Instant::now();
        service.check_drift().await;
        let adopted_in = adopt.elapsed();
        let check = Instant::now();
        service.check_drift().await;
        println!(
            "reconciler/drift check over 1 M entries: {:.2} s (first one, adopting the lists: {:.2} s)",
            check.elapsed().as_secs_f64(),
            adopted_in.as_secs_f64()
        );
        let phase_gap = TimeDelta::milliseconds(i64::from(DUE) * SPACING) + TimeDelta::seconds(3);
        let start = Utc::now().trunc_subsecs(3) + LEAD;
        let expires = due_expiries(start, phase_gap);
        seed(&lab, &store, 0, &expires).await;
        let seeded_in = seeding.elapsed();
        let rss_held = rss_mib();
        let store_mib = std::fs::metadata(&store_path).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
        println!(
            "reconciler/holding {PENDING} pending expiries: RSS {rss_held:.0} MiB (empty service {rss_empty:.0} MiB, \
             {:.0} bytes/entry), store {store_mib:.0} MiB; seeded and checked in {:.1} s",
            (rss_held - rss_empty) * f64::from(1 << 20) / f64::from(PENDING),
            seeded_in.as_secs_f64()
        );
        let idle = Instant::now();
        let next = service.next_deadline();
        println!(
            "reconciler/next deadline lookup (time index, 1 M pending): {:.1} µs",
            idle.elapsed().as_secs_f64() * 1e6
        );
        assert!(next <= Utc::now() + TimeDelta::seconds(1), "the first read of a target is due at once: {next}");

        // Phase one: the reconciler, woken by deadlines.
        let mut sweeps = Vec::new();
        let stop_at = start + TimeDelta::milliseconds(i64::from(DUE) * SPACING) + TimeDelta::seconds(2);
        let stop = tokio::time::sleep((stop_at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        let mut busy = Duration::ZERO;
        service
            .reconcile(stop, |s: &SweepOutcome| {
                assert!(s.result.is_ok(), "sweep failed: {:?}", s.result);
                busy += (s.finished - s.cutoff).to_std().unwrap_or_default();
                if s.cutoff >= start {
                    sweeps.push((s.cutoff, s.finished));
                }
            })
            .await;
        let late = lateness(&expires[..DUE as usize], &sweeps);
        describe("deadline-driven reconciler", late, sweeps.len());
        println!("reconciler/time spent sweeping: {:.2} s of the phase", busy.as_secs_f64());

        // Phase two, the baseline: the same service swept once a second, whatever is due.
        let mut polls = Vec::new();
        let end = start + phase_gap + TimeDelta::milliseconds(i64::from(DUE) * SPACING) + TimeDelta::seconds(2);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while Utc::now() < end {
            tick.tick().await;
            for s in service.sweep_due().await {
                assert!(s.result.is_ok(), "sweep failed: {:?}", s.result);
                if s.cutoff >= start + phase_gap {
                    polls.push((s.cutoff, s.finished));
                }
            }
        }
        let late = lateness(&expires[DUE as usize..2 * DUE as usize], &polls);
        describe("baseline: 1 s polling sweep", late, polls.len());
        let left = lab.snapshot().await.expect("snapshot").aliases.iter().map(|a| a.entries.len()).sum::<usize>();
        println!("reconciler/entries still pending after both phases: {left}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
