//! Blocking 100,000 addresses with expiry on nftables, in a network namespace made for the run: the backend's
//! whole apply (look the touched elements up, check the plan against them, send ONE netlink batch of elements with
//! a timeout and comment each, let the kernel commit it) beside the baseline of `nft -f` loading the same
//! elements, timeouts and comments from a file written by hand. The read-back that verifies the change (the
//! entries looked up) is timed too, and a whole `nft -j` listing for comparison.
//!
//! Needs root and nft. Run: `cargo bench -p portcullis-nftables --bench bulk_block` (three rounds, about a minute).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use portcullis_core::firewall::Firewall;
use portcullis_core::freshness::StateRead;
use portcullis_core::model::AliasEntry;
use portcullis_core::plan::{self, BLOCK_ALIAS, ChangeFacts, ChangePlan, Intent, Operation};
use portcullis_nftables::NftablesFirewall;
use portcullis_nftables::comment::{EntryMeta, TextStore};
use portcullis_nftables::read::KernelTable;
use portcullis_store::Store;

const N: u32 = 100_000;
const REASON: &str = "threat feed";

fn address(i: u32) -> String {
    format!("10.{}.{}.{}", 100 + ((i >> 16) & 0xff), (i >> 8) & 0xff, i & 0xff)
}

mod common;

use common::{Netns, firewall};

/// Creates the block list and its rules with one ordinary block, as the first `block_ip_address` would.
async fn seed(fw: &NftablesFirewall) {
    let now = Utc::now().trunc_subsecs(3);
    let state = fw.snapshot().await.expect("snapshot");
    let intent = Intent::Block {
        addresses: "192.0.2.1/32".parse::<ipnet::IpNet>().expect("net").into(),
        interface: None,
        expires_at: Some(now + TimeDelta::days(1)),
        reason: REASON.into(),
        replace: false,
    };
    let p = plan::plan(&state, &intent, now).expect("plan");
    fw.apply(&p).await.expect("seed");
}

fn entries(now: chrono::DateTime<Utc>) -> Vec<AliasEntry> {
    (0..N)
        .map(|i| AliasEntry {
            value: address(i),
            detail: REASON.into(),
            expires_at: Some(now + TimeDelta::hours(24)),
            created_at: Some(now),
        })
        .collect()
}

/// Where the time of a backend apply and read-back goes.
struct Breakdown {
    build: Duration,
    list: Duration,
    parse: Duration,
    /// A whole listing (`snapshot`) right after the apply, and how many elements it listed twice.
    listing: Duration,
    listed_twice: usize,
}

/// One plan that puts all N timed entries into the block list.
fn bulk_block_plan(now: chrono::DateTime<Utc>) -> ChangePlan {
    ChangePlan {
        summary: format!("block {N} addresses"),
        operations: vec![Operation::PutAliasEntries {
            alias: BLOCK_ALIAS.into(),
            before: Vec::new(),
            after: entries(now),
        }],
        warnings: Vec::new(),
        facts: ChangeFacts::default(),
    }
}

/// The backend: one plan with 100,000 entries, applied as one batch, then read back and verified.
async fn backend() -> (Duration, Duration, usize, Breakdown) {
    let ns = Netns::new("b");
    let fw = firewall(&ns);
    seed(&fw).await;
    let now = Utc::now().trunc_subsecs(3);
    let plan = bulk_block_plan(now);
    let current = fw.read_table().await.expect("read");
    let started = Instant::now();
    let (batch, _) = fw.batch(&current, &plan, now).expect("batch");
    let json = batch.to_json().expect("json");
    let build = started.elapsed();
    drop(json);
    let started = Instant::now();
    let applied = fw.apply(&plan).await.expect("apply");
    let apply = started.elapsed();
    let started = Instant::now();
    let state = fw.snapshot().await.expect("read back");
    let distinct: std::collections::HashSet<&str> =
        state.alias(BLOCK_ALIAS).into_iter().flat_map(|a| a.entries.iter().map(|e| e.value.as_str())).collect();
    let listed_twice = state.alias(BLOCK_ALIAS).map_or(0, |a| a.entries.len()) - distinct.len();
    drop(distinct);
    let listing = started.elapsed();
    // The change's own read-back, as the tool service does it: the touched entries looked up one by one.
    let started = Instant::now();
    let touched = fw.state(&StateRead::touched_by(&plan)).await.expect("read back");
    plan::verify(&plan, &applied, &touched).expect("verified");
    let verify = started.elapsed();
    let count = touched.alias(BLOCK_ALIAS).map_or(0, |a| a.entries.len());

    let started = Instant::now();
    let json = fw.list_table_json().await.expect("list").expect("table");
    let list = started.elapsed();
    let started = Instant::now();
    KernelTable::parse(&json).expect("parse");
    let parse = started.elapsed();
    (apply, verify, count, Breakdown { build, list, parse, listing, listed_twice })
}

/// The baseline: the same elements, timeouts and comments in nft's own syntax, loaded with `nft -f FILE` into the
/// set the backend made for them (single addresses: a hash set with `flags timeout`, no `interval`); its listed
/// flags are printed beside the figure.
async fn by_hand() -> (Duration, usize, String) {
    let ns = Netns::new("h");
    let fw = firewall(&ns);
    seed(&fw).await;
    let now = Utc::now().trunc_subsecs(3);
    let texts = TextStore::new(Arc::new(Store::open_in_memory().expect("store")));
    let meta = EntryMeta { expires_at: Some(now + TimeDelta::hours(24)), created_at: Some(now) };
    let comment = texts.compose(&meta.head(), REASON).expect("comment");
    let mut file = String::with_capacity(N as usize * 80);
    file.push_str("add element inet portcullis PORTCULLIS_BLOCK_h4 {\n");
    for i in 0..N {
        file.push_str(&format!("  {} timeout 86400s comment \"{comment}\",\n", address(i)));
    }
    file.push_str("}\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("block.nft");
    std::fs::write(&path, file).expect("write");
    let started = Instant::now();
    let out = ns.nft(&["-f", path.to_str().expect("path")]);
    let elapsed = started.elapsed();
    assert!(out.status.success(), "nft -f: {}", String::from_utf8_lossy(&out.stderr));
    let listed = ns.nft(&["list", "set", "inet", "portcullis", "PORTCULLIS_BLOCK_h4"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let count = listed.matches("timeout").count();
    let flags = listed.lines().find_map(|l| l.trim().strip_prefix("flags ")).unwrap_or("none").to_string();
    (elapsed, count, flags)
}

/// A second baseline: the backend's own JSON batch, written to a file and loaded with `nft -j -f FILE`, to tell
/// nft's JSON path apart from Portcullis' work.
async fn same_batch_by_hand() -> Duration {
    let ns = Netns::new("j");
    let fw = firewall(&ns);
    seed(&fw).await;
    let now = Utc::now().trunc_subsecs(3);
    let plan = bulk_block_plan(now);
    let current = fw.read_table().await.expect("read");
    let (batch, _) = fw.batch(&current, &plan, now).expect("batch");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("batch.json");
    std::fs::write(&path, batch.to_json().expect("json")).expect("write");
    let started = Instant::now();
    let out = ns.nft(&["-j", "-f", path.to_str().expect("path")]);
    let elapsed = started.elapsed();
    assert!(out.status.success(), "nft -j -f: {}", String::from_utf8_lossy(&out.stderr));
    elapsed
}

/// Rounds of the three measurements, interleaved so each round sees the same machine; the figures printed are
/// medians over the rounds (the machine is shared, and single runs vary by ±20%).
const ROUNDS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(values: &[f64]) -> String {
    values.iter().map(|v| format!("{:.0}", v * 1000.0)).collect::<Vec<_>>().join(", ")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (mut baselines, mut applies, mut verifies, mut json_by_hands) = (vec![], vec![], vec![], vec![]);
        let (mut builds, mut lists, mut parses, mut ratios) = (vec![], vec![], vec![], vec![]);
        let (mut listings, mut twice) = (vec![], vec![]);
        let mut flags = String::new();
        for _ in 0..ROUNDS {
            let (baseline, listed, set_flags) = by_hand().await;
            let (apply, verify, count, b) = backend().await;
            let json_by_hand = same_batch_by_hand().await;
            assert!(count == N as usize && listed > N as usize, "every entry must be in the kernel");
            flags = set_flags;
            ratios.push(apply.as_secs_f64() / baseline.as_secs_f64());
            baselines.push(baseline.as_secs_f64());
            applies.push(apply.as_secs_f64());
            verifies.push(verify.as_secs_f64());
            json_by_hands.push(json_by_hand.as_secs_f64());
            builds.push(b.build.as_secs_f64());
            lists.push(b.list.as_secs_f64());
            parses.push(b.parse.as_secs_f64());
            listings.push(b.listing.as_secs_f64());
            twice.push(b.listed_twice.to_string());
        }
        println!("nftables: {N} addresses with expiry, median of {ROUNDS} interleaved rounds (each round's figure in ms)");
        println!(
            "nftables/block, one netlink batch through the backend: {:.0} ms ({}); read-back verification (the entries looked up) {:.0} ms ({})",
            median(applies.clone()) * 1000.0,
            ms(&applies),
            median(verifies.clone()) * 1000.0,
            ms(&verifies)
        );
        println!(
            "nftables/listing: a whole nft -j listing right after the apply {:.2} s; elements it listed twice per round: {} (the kernel's dump walks a hash table that is still growing)",
            median(listings),
            twice.join(", ")
        );
        println!(
            "nftables/baseline: nft -f of the same elements from a file into the backend's set (flags {flags}): {:.0} ms ({})",
            median(baselines.clone()) * 1000.0,
            ms(&baselines)
        );
        println!(
            "nftables/ratio: {:.2}× the baseline (per round: {})",
            median(ratios.clone()),
            ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ")
        );
        println!(
            "nftables/baseline 2: nft -j -f of the batch the nft path would write, from a file: {:.0} ms ({}) (nft's JSON path)",
            median(json_by_hands.clone()) * 1000.0,
            ms(&json_by_hands)
        );
        println!(
            "nftables/breakdown: building and encoding the nft path's JSON batch {:.0} ms; a whole read = nft -j list table {:.2} s + parsing {:.0} ms + model",
            median(builds) * 1000.0,
            median(lists),
            median(parses) * 1000.0
        );
    });
}
