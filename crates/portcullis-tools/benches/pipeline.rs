//! The guard pipeline's cost per call, beside the bare tool work it wraps (same process, same run):
//! - bare: read the lab's state and build the `get_firewall_rules` answer, no guard, no audit;
//! - guarded: `ToolService::call` for the same tool — authorize, validate, rate-limit, audit (SQLite WAL).
//!
//! Run: `cargo bench -p portcullis-tools --bench pipeline`

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::firewall::Firewall;
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::json;

const CALLS: usize = 20_000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("portcullis-pipeline-{}", std::process::id()));
    let store = Arc::new(Store::open(&dir.join("store.sqlite")).expect("store"));
    let lab = Arc::new(LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).expect("lab"));
    let rates =
        portcullis_guard::RateQuotas { default: u32::MAX, sensitive: u32::MAX, admin: u32::MAX, mirror: u32::MAX };
    let settings = GuardSettings { rates, ..GuardSettings::default() };
    let guard = Guard::new(settings, Auditor::new(store.clone(), None).expect("auditor")).expect("guard");
    let service = ToolService::new(guard, vec![Target::new("lab", lab.clone())]).expect("service");
    let ctx = CallContext::new(Principal { name: "bench".into(), role: "viewer".into() }, Transport::Cli, None);
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");

    runtime.block_on(async {
        let mut bare = Vec::with_capacity(CALLS);
        let mut guarded = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            let state = lab.snapshot().await.expect("snapshot");
            let value = serde_json::to_value(&state.rules).expect("json");
            std::hint::black_box(value);
            bare.push(t.elapsed());

            let t = Instant::now();
            let value = service.call(&ctx, "get_firewall_rules", json!({})).await.expect("call");
            std::hint::black_box(value);
            guarded.push(t.elapsed());
        }
        let (b, g) = (median(bare), median(guarded));
        println!("pipeline/bare get_firewall_rules (snapshot + JSON)      median {:.1} µs", b.as_secs_f64() * 1e6);
        println!("pipeline/guarded ToolService::call (incl. audit write) median {:.1} µs", g.as_secs_f64() * 1e6);
        println!(
            "pipeline/guard overhead per call                         {:.1} µs",
            (g.saturating_sub(b)).as_secs_f64() * 1e6
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
