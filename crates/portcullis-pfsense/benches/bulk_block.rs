//! Blocking 100,000 addresses with expiry on a pfSense target (the pfRest emulator, in process): the whole
//! guarded path of the backend — read the alias fresh, one PATCH, synchronous apply, read-back verification —
//! beside the emulator's own minimum for the same alias update (one raw PATCH of the same entries plus the
//! apply, sent directly). API calls are counted from the emulator's request log.
//!
//! Run: `cargo bench -p portcullis-pfsense --bench bulk_block`

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use portcullis_core::firewall::Firewall;
use portcullis_core::model::AliasEntry;
use portcullis_core::plan::{self, BLOCK_ALIAS, ChangeFacts, ChangePlan, Intent, Operation};
use portcullis_pfrest::types::{FirewallAliasRequest, WriteControls};
use portcullis_pfrest::{Auth, ClientConfig, PfRestClient};
use portcullis_pfrest_emulator::{Emulator, EmulatorConfig};
use portcullis_pfsense::PfSenseFirewall;
use portcullis_store::Store;

const KEY: &str = "bench-key";
const N: u32 = 100_000;

fn addresses(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("10.{}.{}.{}/32", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)).collect()
}

fn client(emu: &Emulator) -> ClientConfig {
    ClientConfig::new(emu.base_url(), Auth::ApiKey(KEY.into()))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (baseline, baseline_calls) = raw_alias_update().await;
        let (full, calls, patches, verify) = guarded_block().await;
        println!("pfsense/block {N} addresses with expiry: {:.2?} in {calls} API calls ({patches} alias PATCH), read-back verification {verify:.2?}", full);
        println!("pfsense/baseline: emulator's minimum for one {N}-entry alias update: {baseline:.2?} in {baseline_calls} API calls (PATCH + apply)");
        println!("pfsense/ratio: {:.2}× the baseline", full.as_secs_f64() / baseline.as_secs_f64());
    });
}

/// The emulator's own minimum: one PATCH with every entry, then the apply.
async fn raw_alias_update() -> (Duration, usize) {
    let emu = Emulator::start(EmulatorConfig::with_api_key(KEY)).await.expect("emulator");
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let fw = PfSenseFirewall::new("fw", client(&emu), store).expect("firewall");
    seed(&fw).await;
    let pf = PfRestClient::new(client(&emu)).expect("client");
    let alias = pf.alias_by_name(BLOCK_ALIAS).await.expect("read").expect("alias exists");
    let address = addresses(N);
    let detail = vec![
        "threat feed | portcullis expires=2026-12-01T00:00:00Z created=2026-11-21T00:00:00Z".to_string();
        address.len()
    ];
    let request = FirewallAliasRequest {
        id: alias.id,
        address: Some(address),
        detail: Some(detail),
        controls: WriteControls::default(),
        ..Default::default()
    };
    emu.clear_request_log();
    let started = Instant::now();
    pf.update_alias(&request).await.expect("patch");
    pf.apply_firewall().await.expect("apply");
    let elapsed = started.elapsed();
    let calls = emu.request_log().len();
    emu.shutdown().await;
    (elapsed, calls)
}

/// The backend's path, as `block` tools use it, for 100,000 entries at once.
async fn guarded_block() -> (Duration, usize, usize, Duration) {
    let emu = Emulator::start(EmulatorConfig::with_api_key(KEY)).await.expect("emulator");
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let fw = PfSenseFirewall::new("fw", client(&emu), store).expect("firewall");
    seed(&fw).await;
    let now = Utc::now().trunc_subsecs(3);
    let entries: Vec<AliasEntry> = addresses(N)
        .into_iter()
        .enumerate()
        .map(|(i, value)| AliasEntry {
            value: value.trim_end_matches("/32").to_string(),
            detail: "threat feed".into(),
            expires_at: Some(now + TimeDelta::hours(1) + TimeDelta::seconds(i as i64 % 3600)),
            created_at: Some(now),
        })
        .collect();
    let big = ChangePlan {
        summary: format!("block {N} addresses"),
        operations: vec![Operation::PutAliasEntries { alias: BLOCK_ALIAS.into(), before: vec![], after: entries }],
        warnings: vec![],
        facts: ChangeFacts::default(),
    };
    emu.clear_request_log();
    let started = Instant::now();
    let applied = fw.apply(&big).await.expect("apply");
    let elapsed = started.elapsed();
    let log = emu.request_log();
    let patches = log.iter().filter(|r| r.method == "PATCH" && r.path.ends_with("/firewall/alias")).count();
    let verify_started = Instant::now();
    let after = fw.snapshot().await.expect("snapshot");
    plan::verify(&big, &applied, &after).expect("every entry as planned");
    let verify = verify_started.elapsed();
    emu.shutdown().await;
    (elapsed, log.len(), patches, verify)
}

/// Creates the block alias and its rules with one ordinary block.
async fn seed(fw: &PfSenseFirewall) {
    let state = fw.snapshot().await.expect("snapshot");
    let now = Utc::now().trunc_subsecs(3);
    let intent = Intent::Block {
        addresses: "203.0.113.9/32".parse::<ipnet::IpNet>().expect("net").into(),
        interface: None,
        expires_at: Some(now + TimeDelta::hours(1)),
        reason: "seed".into(),
        replace: false,
    };
    let seed = plan::plan(&state, &intent, now).expect("plan");
    fw.apply(&seed).await.expect("seed");
}
