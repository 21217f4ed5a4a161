//! Starting and stopping a traffic mirror on nftables, in network namespaces made for the run (client, router,
//! server and a sensor on its own link; nothing routes out of them): the backend's whole change (read the table
//! and the mirror tables, carry the plan out, one `nft -j -f` batch, read back and verify) beside the baseline of
//! a hand-written `nft -f` of the same statements (a netdev table, ingress and egress chains, the rules with a
//! limit and a counter, `dup to` the sensor) and `nft delete table`. Target: under 50 ms for each.
//!
//! Needs root, ip and nft. Run: `cargo bench -p portcullis-nftables --bench mirror` (a few seconds).

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use common::Topology;
use portcullis_core::firewall::Firewall;
use portcullis_core::mirror::{MirrorAsk, MirrorDirection, MirrorId, Selector, Sensor, SensorKind};
use portcullis_core::model::{PortRange, Protocol};
use portcullis_core::plan::{self, Intent};

const ROUNDS: u32 = 15;

/// The same mirror as the backend writes it, in nft's own language.
const HAND_WRITTEN: &str = r#"table netdev bench_mirror {
  limit m_1 { rate 10000/second burst 1000 packets }
  counter m_1 { }
  chain m_1_in {
    type filter hook ingress device "lan0" priority 0; policy accept;
    meta protocol ip tcp dport 80 limit name "m_1" counter name "m_1" dup to "sen0"
    meta protocol ip tcp sport 80 tcp dport != 80 limit name "m_1" counter name "m_1" dup to "sen0"
    meta protocol ip6 tcp dport 80 limit name "m_1" counter name "m_1" dup to "sen0"
    meta protocol ip6 tcp sport 80 tcp dport != 80 limit name "m_1" counter name "m_1" dup to "sen0"
  }
  chain m_1_out {
    type filter hook egress device "lan0" priority 0; policy accept;
    meta protocol ip tcp dport 80 limit name "m_1" counter name "m_1" dup to "sen0"
    meta protocol ip tcp sport 80 tcp dport != 80 limit name "m_1" counter name "m_1" dup to "sen0"
    meta protocol ip6 tcp dport 80 limit name "m_1" counter name "m_1" dup to "sen0"
    meta protocol ip6 tcp sport 80 tcp dport != 80 limit name "m_1" counter name "m_1" dup to "sen0"
  }
}
"#;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn ask(round: u32) -> MirrorAsk {
    MirrorAsk {
        mirror_id: MirrorId::from_seed(0x100 + round),
        interface: "lan".into(),
        sensor: Sensor { name: "zeek".into(), kind: SensorKind::Interface { interface: "sen0".into() } },
        direction: MirrorDirection::Both,
        selector: Selector { protocol: Protocol::Tcp, port: Some(PortRange::single(80)), ..Selector::default() },
        rate_limit: 10_000,
        burst: 1000,
        reason: "bench".into(),
        expires_at: Utc::now().trunc_subsecs(3) + TimeDelta::hours(1),
    }
}

/// One change as the tool service makes it: a fresh read, the plan, the apply, the read-back and its check.
async fn change(fw: &portcullis_nftables::NftablesFirewall, intent: &Intent) -> f64 {
    let started = Instant::now();
    let before = fw.snapshot().await.unwrap();
    let plan = plan::plan(&before, intent, Utc::now().trunc_subsecs(3)).unwrap();
    let applied = fw.apply(&plan).await.unwrap();
    let after = fw.snapshot().await.unwrap();
    plan::verify(&plan, &applied, &after).unwrap();
    ms(started.elapsed())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let t = Topology::new();
    let sensor = format!("{}m", t.router);
    run(&["ip", "netns", "add", &sensor]);
    run(&["ip", "-n", &t.router, "link", "add", "sen0", "type", "veth", "peer", "name", "eth0", "netns", &sensor]);
    run(&["ip", "-n", &t.router, "link", "set", "sen0", "up"]);
    let fw = t.firewall();
    // The table itself is written by the first change; it is not what is measured.
    let warm = ask(0);
    change(&fw, &Intent::StartMirror(Box::new(warm.clone()))).await;
    change(&fw, &Intent::StopMirror { mirror_id: warm.mirror_id }).await;

    let (mut starts, mut stops, mut hand_adds, mut hand_deletes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let a = ask(round);
        starts.push(change(&fw, &Intent::StartMirror(Box::new(a.clone()))).await);
        stops.push(change(&fw, &Intent::StopMirror { mirror_id: a.mirror_id }).await);

        let started = Instant::now();
        t.nft_stdin(&["-f", "-"], HAND_WRITTEN.as_bytes());
        hand_adds.push(ms(started.elapsed()));
        let started = Instant::now();
        t.nft(&["delete", "table", "netdev", "bench_mirror"]);
        hand_deletes.push(ms(started.elapsed()));
    }
    println!("traffic mirror on nftables (port 80 both ways to a local sensor), {ROUNDS} rounds, medians:");
    println!("  start {:>7.1} ms   (target < 50 ms; read, plan, apply, read back, verify)", median(starts));
    println!("  stop  {:>7.1} ms   (target < 50 ms)", median(stops));
    println!("  baseline: hand-written nft -f of the same statements {:>7.1} ms", median(hand_adds));
    println!("  baseline: nft delete table {:>7.1} ms", median(hand_deletes));
    drop(fw);
    let _ = Command::new("ip").args(["netns", "del", &sensor]).status();
}
