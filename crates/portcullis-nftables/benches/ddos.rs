//! DDoS protection on nftables, in network namespaces made for the run (client, router, server; nothing routes
//! out of them):
//! - apply and remove of one protection (per-source rate with overload, connections per source, interface-wide
//!   cap) through the backend (read the table, carry the plan out, one `nft -j -f` batch) and read back, beside
//!   the baseline of `nft -j -f` loading the same batch by itself;
//! - under a flood (an attacker opening new connections at five times its per-source rate while a well-behaved
//!   client connects four times a second), the kernel's CPU time over the flood and the well-behaved client's
//!   connect latency, with the protection off and on. No target: the figures are printed side by side.
//!
//! Needs root, ip and nft. Run: `cargo bench -p portcullis-nftables --bench ddos` (about half a minute).

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/flood.rs"]
mod flood;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use common::{CLIENT_A, CLIENT_B, SERVER, Topology};
use portcullis_core::firewall::Firewall;
use portcullis_core::model::PortRange;
use portcullis_core::plan::{self, Intent};
use portcullis_core::protection::{Protection, ProtectionKey, Rate, Transport};

const ROUNDS: usize = 5;
const PORT: u16 = 9080;

fn protection() -> Protection {
    Protection {
        protection_id: String::new(),
        interface: "lan".into(),
        protocol: Transport::Tcp,
        ports: vec![PortRange::single(PORT)],
        rate_limit: Some(Rate::parse("rate_limit", "1000/s").unwrap().with_burst("burst_limit", "5000").unwrap()),
        per_source_rate: Some(Rate::parse("per_source_rate", "20/s").unwrap()),
        overload_block_seconds: Some(600),
        max_connections_per_source: Some(50),
        per_source_bandwidth: None,
        syn_proxy: false,
        exempt: vec!["10.77.1.9/32".parse().unwrap()],
        created_at: None,
        updated_at: None,
    }
}

fn key() -> ProtectionKey {
    ProtectionKey { interface: "lan".into(), protocol: Transport::Tcp, ports: vec![PortRange::single(PORT)] }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The kernel's CPU time (system and softirq, every CPU, in milliseconds) from `/proc/stat`: the namespaces share
/// the one kernel, so this is the machine's, taken over the flood's few seconds.
fn kernel_cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<u64> = stat.lines().next().unwrap().split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect();
    let ticks = cpu[2] + cpu[5] + cpu[6]; // system, irq, softirq
    ticks as f64 * 1000.0 / 100.0
}

/// The attacker's flood and the well-behaved client's pace at the same time; the kernel CPU they cost.
fn flood(t: &Topology) -> (flood::Tally, flood::Tally, f64) {
    let server = SocketAddr::new(SERVER.parse().unwrap(), PORT);
    let (ns_a, ns_b) = (t.client.clone(), t.client.clone());
    let a: IpAddr = CLIENT_A.parse().unwrap();
    let b: IpAddr = CLIENT_B.parse().unwrap();
    let cpu = kernel_cpu_ms();
    let attacker = std::thread::spawn(move || flood::run_at(&ns_a, a, server, 100, Duration::from_secs(3)));
    let bystander = std::thread::spawn(move || flood::run_at(&ns_b, b, server, 4, Duration::from_secs(3)));
    let (a, b) = (attacker.join().unwrap(), bystander.join().unwrap());
    (a, b, kernel_cpu_ms() - cpu)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let t = Topology::new();
        let _listener = flood::Listener::start(&t.server, SocketAddr::new(SERVER.parse().unwrap(), PORT));
        let fw = t.firewall();
        // The first change writes the table's skeleton; what is timed is the protection alone.
        let now = Utc::now().trunc_subsecs(3);
        let seed = Intent::Block {
            addresses: "192.0.2.1/32".parse::<ipnet::IpNet>().unwrap().into(),
            interface: None,
            expires_at: None,
            reason: "seed".into(),
            replace: false,
        };
        let state = fw.snapshot().await.unwrap();
        fw.apply(&plan::plan(&state, &seed, now).unwrap()).await.unwrap();

        let (mut applies, mut removes, mut baselines, mut readbacks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let now = Utc::now().trunc_subsecs(3);
            let state = fw.snapshot().await.unwrap();
            let set = plan::plan(&state, &Intent::ConfigureProtection(Box::new(protection())), now).unwrap();
            // Baseline: nft loading the very batch the backend writes, by itself.
            let current = fw.read_table().await.unwrap();
            let (batch, _) = fw.batch(&current, &set, now).unwrap();
            let json = batch.to_json().unwrap();
            let started = Instant::now();
            t.nft_stdin(&["-c", "-j", "-f", "-"], &json);
            baselines.push(ms(started.elapsed()));

            let started = Instant::now();
            let applied = fw.apply(&set).await.unwrap();
            applies.push(ms(started.elapsed()));
            let started = Instant::now();
            let after = fw.snapshot().await.unwrap();
            readbacks.push(ms(started.elapsed()));
            plan::verify(&set, &applied, &after).unwrap();

            let remove = plan::plan(&after, &Intent::RemoveProtection(key()), Utc::now()).unwrap();
            let started = Instant::now();
            fw.apply(&remove).await.unwrap();
            removes.push(ms(started.elapsed()));
        }
        println!("ddos protection on nftables, {ROUNDS} rounds, medians:");
        println!("  apply  {:>7.1} ms   (target < 50 ms)", median(applies));
        println!("  remove {:>7.1} ms   (target < 50 ms)", median(removes));
        println!("  baseline: nft -c -j -f of the same batch {:>7.1} ms", median(baselines));
        println!("  read-back (whole snapshot) {:>7.1} ms", median(readbacks));

        let (a_off, b_off, cpu_off) = flood(&t);
        let state = fw.snapshot().await.unwrap();
        let set = plan::plan(&state, &Intent::ConfigureProtection(Box::new(protection())), Utc::now()).unwrap();
        fw.apply(&set).await.unwrap();
        let (a_on, b_on, cpu_on) = flood(&t);
        println!("flood of 100 new connections/s for 3 s from one source (per-source rate 20/s), bystander at 4/s:");
        for (label, a, b, cpu) in [("off", a_off, b_off, cpu_off), ("on ", a_on, b_on, cpu_on)] {
            println!(
                "  protection {label}: attacker accepted {:>3}/{}  bystander {:>2}/{} mean connect {:>6.3} ms worst {:>6.3} ms  kernel CPU {:>6.0} ms",
                a.accepted,
                a.attempted,
                b.accepted,
                b.attempted,
                ms(b.mean_connect()),
                ms(b.worst_connect),
                cpu
            );
        }
    });
}
