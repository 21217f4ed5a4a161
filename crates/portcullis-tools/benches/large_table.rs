//! One block, one unblock and one grant through `ToolService::call` (every guard, the plan, the kernel's check,
//! the apply, the read-back that verifies it, the audit) on an nftables table that already holds 100,000 and then
//! 1,000,000 managed entries, in a network namespace made for the run. Beside each figure: `nft add element` of one
//! element by hand in the same namespace; the first page of `list_blocks` (`limit: 100`) and a drift check (which
//! looks at what others changed since the last one, and must find the elements added by hand), which a million
//! entries do not make slow; and the reads that still list the table whole (all of `list_blocks`, a process's
//! first drift comparison), which they do.
//!
//! Needs root and nft. Run: `cargo bench -p portcullis-tools --bench large_table` (about two minutes; set
//! `PORTCULLIS_BENCH_WHOLE_READS_AT_1M=1` to also time the whole reads at a million, which take minutes).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use portcullis_core::firewall::Firewall;
use portcullis_core::model::AliasEntry;
use portcullis_core::plan::{BLOCK_ALIAS, ChangeFacts, ChangePlan, Operation};
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_nftables::{NftRunner, NftablesFirewall, NftablesSettings};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::json;

const CHUNK: u32 = 100_000;
const ROUNDS: usize = 5;

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("pclarge{}{tag}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name} failed: the benchmark needs root and iproute2");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn address(i: u32) -> String {
    format!("10.{}.{}.{}", 100 + (i >> 16), (i >> 8) & 0xff, i & 0xff)
}

fn admin() -> CallContext {
    CallContext::new(Principal { name: "bench".into(), role: "admin".into() }, Transport::Cli, None)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Puts `count` timed entries into the block list, a chunk per netlink batch, straight through the backend.
async fn load(fw: &NftablesFirewall, count: u32) -> Duration {
    let now = Utc::now().trunc_subsecs(3);
    let started = Instant::now();
    for start in (0..count).step_by(CHUNK as usize) {
        let after = (start..(start + CHUNK).min(count))
            .map(|i| AliasEntry {
                value: address(i),
                detail: "threat feed".into(),
                expires_at: Some(now + TimeDelta::days(7)),
                created_at: Some(now),
            })
            .collect();
        let plan = ChangePlan {
            summary: "load".into(),
            operations: vec![Operation::PutAliasEntries { alias: BLOCK_ALIAS.into(), before: Vec::new(), after }],
            warnings: Vec::new(),
            facts: ChangeFacts::default(),
        };
        fw.apply(&plan).await.expect("load");
    }
    started.elapsed()
}

async fn timed(svc: &ToolService, tool: &str, args: serde_json::Value) -> Duration {
    let started = Instant::now();
    let result = svc.call(&admin(), tool, args).await.unwrap_or_else(|e| panic!("{tool}: {e:?}"));
    let elapsed = started.elapsed();
    if let Some(verified) = result.get("verified") {
        assert_eq!(verified, true, "{tool}: {result}");
    }
    elapsed
}

fn nft_add_by_hand(ns: &Netns, i: u32) -> Duration {
    let element = format!("{{ 172.16.{}.{} timeout 1h comment \"by hand\" }}", i >> 8, i & 0xff);
    let started = Instant::now();
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns.0, "nft", "add", "element", "inet", "portcullis", "PORTCULLIS_BLOCK_h4", &element])
        .status()
        .is_ok_and(|s| s.success());
    let elapsed = started.elapsed();
    assert!(ok, "nft add element");
    elapsed
}

async fn run(entries: u32, whole_reads: bool) {
    let ns = Netns::new(&entries.to_string());
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let settings = NftablesSettings {
        runner: NftRunner::in_netns(ns.0.clone()),
        ..NftablesSettings::new(vec![("lan".into(), "lan0".into()), ("wan".into(), "wan0".into())])
    };
    let fw = Arc::new(NftablesFirewall::new("bench", settings, store.clone()));
    let rates = RateQuotas { default: u32::MAX, sensitive: u32::MAX, admin: u32::MAX, mirror: u32::MAX };
    let guard_over = |store: Arc<Store>| {
        Guard::new(GuardSettings { rates, ..GuardSettings::default() }, Auditor::new(store, None).expect("a"))
            .expect("guard")
    };
    let guard = guard_over(store.clone());
    let svc = ToolService::new(guard, vec![Target::new("bench", fw.clone())]).expect("service");
    // The first block and grant create their lists and rules, as on any firewall.
    timed(&svc, "block_ip_address", json!({"ip_address": "192.0.2.1", "duration": "1h", "reason": "seed"})).await;
    timed(&svc, "grant_access", json!({"ip_address": "198.51.100.1", "duration": "1h", "reason": "seed"})).await;
    // The first drift checks adopt the lists and compare them whole, while they are short (as when a process
    // starts on a firewall it manages); from then on a check looks at what others changed.
    svc.check_drift().await;
    svc.check_drift().await;
    let loading = load(&fw, entries).await;
    let reads_before = fw.whole_reads();

    let (mut blocks, mut unblocks, mut grants, mut by_hand) = (vec![], vec![], vec![], vec![]);
    for i in 0..ROUNDS as u32 {
        let ip = format!("203.0.113.{}", 10 + i);
        blocks
            .push(timed(&svc, "block_ip_address", json!({"ip_address": ip, "duration": "1h", "reason": "scan"})).await);
        unblocks.push(timed(&svc, "unblock_ip_address", json!({"ip_address": ip})).await);
        let granted = format!("198.51.100.{}", 10 + i);
        grants.push(
            timed(&svc, "grant_access", json!({"ip_address": granted, "duration": "1h", "reason": "vendor"})).await,
        );
        by_hand.push(nft_add_by_hand(&ns, i));
    }
    let mut pages = Vec::new();
    for _ in 0..ROUNDS {
        pages.push(timed(&svc, "list_blocks", json!({"limit": 100})).await);
    }
    let mut drifts = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let found = svc.check_drift().await;
        drifts.push(started.elapsed());
        let by_hand: Vec<_> =
            found.iter().flat_map(|d| &d.added_by_hand).filter(|(_, v)| v.starts_with("172.16.")).collect();
        assert_eq!(by_hand.len(), ROUNDS, "the drift check finds every element added by hand: {found:?}");
    }
    let listed = fw.whole_reads() - reads_before;
    println!(
        "large_table/{entries}: loaded in {:.1} s ({} netlink batches of up to {CHUNK}); median of {ROUNDS}: block {}, unblock {}, grant {} \
         (each applied and verified through the tool service), list_blocks first page of 100 {}, drift check {} (finds the {ROUNDS} elements added by hand); \
         baseline nft add element of one element by hand {}; whole listings during them: {listed}",
        loading.as_secs_f64(),
        entries.div_ceil(CHUNK),
        ms(median(blocks)),
        ms(median(unblocks)),
        ms(median(grants)),
        ms(median(pages)),
        ms(median(drifts)),
        ms(median(by_hand)),
    );
    if whole_reads {
        let started = Instant::now();
        let blocks = svc.call(&admin(), "list_blocks", json!({})).await.expect("list_blocks");
        let list = started.elapsed();
        // A process that has not compared the lists yet (a fresh service on the same firewall) compares whole.
        let fresh =
            ToolService::new(guard_over(store.clone()), vec![Target::new("bench", fw.clone())]).expect("service");
        let started = Instant::now();
        fresh.check_drift().await;
        let drift = started.elapsed();
        println!(
            "large_table/{entries}: list_blocks (all {} blocks, one whole listing) {:.2} s; whole drift comparison (one whole listing, a process's first) {:.2} s",
            blocks["count"],
            list.as_secs_f64(),
            drift.as_secs_f64()
        );
    } else {
        println!(
            "large_table/{entries}: list_blocks of all and the whole drift comparison not run (each lists the table whole: minutes at this size)"
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let at_1m = std::env::var_os("PORTCULLIS_BENCH_WHOLE_READS_AT_1M").is_some();
    println!("large_table: load {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    runtime.block_on(async {
        run(100_000, true).await;
        run(1_000_000, at_1m).await;
    });
}
