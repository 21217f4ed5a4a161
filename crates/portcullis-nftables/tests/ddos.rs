//! DDoS protection under a real flood, in network namespaces: an attacker opens new TCP connections at five times
//! its per-source rate while a well-behaved client connects at its normal pace; the figures are printed. Then
//! the overload block, connections per source, the SYN proxy with a real handshake, read-back and removal.
//!
//! The generator (`common::flood`) is bounded in count and time and sends only inside the test's namespaces.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;
#[path = "common/flood.rs"]
mod flood;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{CLIENT_A, CLIENT_B, SERVER, Topology, change};
use flood::{Listener, Outcome};
use portcullis_core::firewall::Firewall;
use portcullis_core::model::PortRange;
use portcullis_core::plan::Intent;
use portcullis_core::protection::{Protection, ProtectionKey, Rate, Transport};

const PER_SOURCE: u32 = 20;
const ATTACK_FACTOR: u32 = 5;
const FLOOD: Duration = Duration::from_secs(3);

fn protection(port: u16) -> Protection {
    Protection {
        protection_id: String::new(),
        interface: "lan".into(),
        protocol: Transport::Tcp,
        ports: vec![PortRange::single(port)],
        rate_limit: None,
        per_source_rate: None,
        overload_block_seconds: None,
        max_connections_per_source: None,
        per_source_bandwidth: None,
        syn_proxy: false,
        exempt: vec!["192.0.2.0/24".parse().unwrap(), "2001:db8::/64".parse().unwrap()],
        created_at: None,
        updated_at: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn server(port: u16) -> SocketAddr {
    SocketAddr::new(ip(SERVER), port)
}

/// The attacker's flood and the well-behaved client's steady pace, at the same time.
fn flood_with_bystander(t: &Topology, port: u16) -> (flood::Tally, flood::Tally) {
    let (ns_a, ns_b) = (t.client.clone(), t.client.clone());
    let attacker =
        std::thread::spawn(move || flood::run_at(&ns_a, ip(CLIENT_A), server(port), PER_SOURCE * ATTACK_FACTOR, FLOOD));
    let bystander = std::thread::spawn(move || flood::run_at(&ns_b, ip(CLIENT_B), server(port), 4, FLOOD));
    (attacker.join().unwrap(), bystander.join().unwrap())
}

#[tokio::test]
async fn a_flood_is_held_to_the_per_source_rate_and_the_bystander_loses_nothing() {
    let t = Topology::new();
    let _listener = Listener::start(&t.server, server(9080));
    let fw = t.firewall();

    // Without protection, as the baseline the figures are printed beside.
    let (open_a, open_b) = flood_with_bystander(&t, 9080);

    let mut p = protection(9080);
    p.per_source_rate = Some(Rate::parse("per_source_rate", "20/s").unwrap());
    let (_, _, _, after) = change(&fw, Intent::ConfigureProtection(Box::new(p.clone()))).await;
    assert_eq!(after.protections.len(), 1, "read back: {:?}", after.protections);
    assert_eq!(after.protections[0].per_source_rate, p.per_source_rate);
    assert_eq!(after.protections[0].exempt, p.exempt);

    let (a, b) = flood_with_bystander(&t, 9080);
    let burst = PER_SOURCE;
    let cap = burst as f64 + f64::from(PER_SOURCE) * FLOOD.as_secs_f64();
    eprintln!(
        "flood {}/s for {:?}: attacker accepted {} of {} without protection, {} of {} with it (cap {} + burst {} = {cap}); \
         bystander accepted {}/{} without, {}/{} with (mean connect {:?}, worst {:?})",
        PER_SOURCE * ATTACK_FACTOR,
        FLOOD,
        open_a.accepted,
        open_a.attempted,
        a.accepted,
        a.attempted,
        f64::from(PER_SOURCE) * FLOOD.as_secs_f64(),
        burst,
        open_b.accepted,
        open_b.attempted,
        b.accepted,
        b.attempted,
        b.mean_connect(),
        b.worst_connect,
    );
    assert_eq!(open_a.accepted, open_a.attempted, "without protection the flood gets through: {open_a:?}");
    assert!(f64::from(a.accepted as u32) <= cap * 1.1 + 2.0, "the attacker got past the cap: {a:?}");
    assert!(f64::from(a.accepted as u32) >= cap * 0.6, "the limit is a rate, not a block: {a:?}");
    assert_eq!(b.accepted, b.attempted, "the well-behaved client lost a connection: {b:?}");

    let live = fw.protection_live(&after).await.unwrap();
    let dropped: u64 = live[0].dropped.iter().filter(|c| c.limit == "per_source_rate").map(|c| c.packets).sum();
    assert!(dropped as usize >= a.timed_out, "the counter saw every dropped SYN: {:?} vs {a:?}", live[0].dropped);
}

#[tokio::test]
async fn an_overloaded_source_is_blocked_until_its_time_passes_and_others_are_not() {
    let t = Topology::new();
    let _listener = Listener::start(&t.server, server(9080));
    let fw = t.firewall();
    let mut p = protection(9080);
    p.per_source_rate = Some(Rate::parse("per_source_rate", "20/s").unwrap());
    p.overload_block_seconds = Some(4);
    let (_, _, _, after) = change(&fw, Intent::ConfigureProtection(Box::new(p.clone()))).await;
    assert_eq!(after.protections[0].overload_block_seconds, Some(4));

    let (a, b) = flood_with_bystander(&t, 9080);
    eprintln!(
        "overload: attacker accepted {} of {}, bystander {} of {}",
        a.accepted, a.attempted, b.accepted, b.attempted
    );
    // The bucket refills while the flood spends its burst: burst / (flood rate - rate) seconds at the rate.
    let spent_in = f64::from(PER_SOURCE) / f64::from(PER_SOURCE * (ATTACK_FACTOR - 1));
    let most = f64::from(PER_SOURCE) + f64::from(PER_SOURCE) * spent_in + 2.0;
    assert!(f64::from(a.accepted as u32) <= most, "once over its rate the attacker is blocked (at most {most}): {a:?}");
    assert_eq!(b.accepted, b.attempted, "the bystander lost a connection: {b:?}");

    let live = fw.protection_live(&after).await.unwrap();
    let overloaded: Vec<&str> = live[0].overloaded.iter().map(|o| o.source.as_str()).collect();
    assert_eq!(overloaded, [CLIENT_A], "{:?}", live[0]);
    assert!(live[0].overloaded[0].expires_at.is_some(), "{:?}", live[0]);

    // Still blocked, even at a gentle pace; the bystander is not.
    let (blocked, _) = flood::connect(&t.client, ip(CLIENT_A), server(9080), Duration::from_millis(600));
    assert_eq!(blocked, Outcome::TimedOut);
    let (fine, _) = flood::connect(&t.client, ip(CLIENT_B), server(9080), Duration::from_millis(600));
    assert_eq!(fine, Outcome::Accepted);
    // Let in again once the overload time has passed.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let (again, _) = flood::connect(&t.client, ip(CLIENT_A), server(9080), Duration::from_millis(600));
    assert_eq!(again, Outcome::Accepted, "the overload block should have ended");
}

#[tokio::test]
async fn connections_per_source_refuse_the_next_one_of_that_source_only() {
    let t = Topology::new();
    let listener = Listener::start(&t.server, server(9081));
    let fw = t.firewall();
    let mut p = protection(9081);
    p.max_connections_per_source = Some(3);
    let (_, _, _, after) = change(&fw, Intent::ConfigureProtection(Box::new(p))).await;
    assert_eq!(after.protections[0].max_connections_per_source, Some(3));

    let mut held = Vec::new();
    for n in 0..3 {
        let (outcome, stream) = flood::connect(&t.client, ip(CLIENT_A), server(9081), Duration::from_millis(600));
        assert_eq!(outcome, Outcome::Accepted, "connection {n}");
        held.push(stream);
    }
    let (fourth, _) = flood::connect(&t.client, ip(CLIENT_A), server(9081), Duration::from_millis(600));
    assert_eq!(fourth, Outcome::Refused, "the fourth concurrent connection of one source is reset");
    let (other, _b) = flood::connect(&t.client, ip(CLIENT_B), server(9081), Duration::from_millis(600));
    assert_eq!(other, Outcome::Accepted, "another source is not counted with it");
    for _ in 0..100 {
        if listener.accepted.load(std::sync::atomic::Ordering::Relaxed) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        listener.accepted.load(std::sync::atomic::Ordering::Relaxed),
        4,
        "the refused one never reached the server"
    );
    drop(held);
}

#[tokio::test]
async fn a_real_handshake_completes_through_the_syn_proxy_and_removal_restores_the_table() {
    let t = Topology::new();
    let listener = Listener::start(&t.server, server(9082));
    let fw = t.firewall();
    // The table as it is before any protection (the skeleton written by a first change).
    let key = ProtectionKey { interface: "lan".into(), protocol: Transport::Tcp, ports: vec![PortRange::single(9082)] };
    let mut p = protection(9082);
    p.syn_proxy = true;
    p.per_source_rate = Some(Rate::parse("per_source_rate", "50/s").unwrap());
    // Portcullis reports the SYN proxy's host settings and does not change them; the test sets them.
    let (_, _, _, after) = change(&fw, Intent::ConfigureProtection(Box::new(p))).await;
    let before_sysctls = fw.protection_live(&after).await.unwrap()[0].host_checks.clone();
    eprintln!("synproxy sysctls as found: {before_sysctls:?}");
    assert!(
        before_sysctls.iter().any(|c| c.setting == "net.netfilter.nf_conntrack_tcp_loose" && !c.ok),
        "loose tracking is on by default and reported: {before_sysctls:?}"
    );
    for setting in ["net.netfilter.nf_conntrack_tcp_loose=0", "net.ipv4.tcp_syncookies=1", "net.ipv4.tcp_timestamps=1"]
    {
        let ok = std::process::Command::new("ip")
            .args(["netns", "exec", &t.router, "sysctl", "-qw", setting])
            .status()
            .unwrap();
        assert!(ok.success(), "{setting}");
    }
    let live = fw.protection_live(&after).await.unwrap();
    assert!(live[0].host_checks.iter().all(|c| c.ok), "{:?}", live[0].host_checks);

    let (outcome, stream) = flood::connect(&t.client, ip(CLIENT_A), server(9082), Duration::from_millis(900));
    assert_eq!(outcome, Outcome::Accepted, "the handshake through the proxy");
    use std::io::Write;
    stream.unwrap().write_all(b"hello through the proxy").unwrap();
    for _ in 0..50 {
        if listener.accepted.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        listener.accepted.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the server completed its own handshake"
    );
    let live = fw.protection_live(&after).await.unwrap();
    let proxied: u64 = live[0].dropped.iter().filter(|c| c.limit == "syn_proxy").map(|c| c.packets).sum();
    assert!(proxied >= 1, "the SYN proxy answered: {:?}", live[0].dropped);

    let listed = t.list_table();
    assert!(listed.to_string().contains("synproxy"), "the kernel holds the proxy");
    change(&fw, Intent::RemoveProtection(key)).await;
    let listed = t.list_table().to_string();
    assert!(!listed.contains("\"pd_"), "every protection object is gone: {listed}");
    let (after_removal, _) = flood::connect(&t.client, ip(CLIENT_B), server(9082), Duration::from_millis(600));
    assert_eq!(after_removal, Outcome::Accepted);
}

#[tokio::test]
async fn a_source_is_held_to_its_bandwidth_and_ipv6_sources_share_their_64() {
    let t = Topology::new();
    let drain = Listener::draining(&t.server, server(9083));
    let fw = t.firewall();
    let send = |source: &'static str| {
        let ns = t.client.clone();
        std::thread::spawn(move || flood::send_for(&ns, ip(source), server(9083), Duration::from_secs(2)))
    };
    let received = || drain.received.load(std::sync::atomic::Ordering::Relaxed);
    // Bytes the server receives from one sending source past its first half second, and over how long: the window
    // is timed, not assumed, since a loaded machine oversleeps.
    let steady_window = || {
        let sender = send(CLIENT_A);
        std::thread::sleep(Duration::from_millis(500));
        let (from, start) = (received(), std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(1500));
        let (bytes, seconds) = (received() - from, start.elapsed().as_secs_f64());
        sender.join().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        (bytes as f64, seconds)
    };
    let (open_bytes, open_seconds) = steady_window();
    let open = open_bytes / open_seconds;

    let mut p = protection(9083);
    p.per_source_bandwidth = Some(portcullis_core::protection::Bandwidth::parse("b", "800kbit/s").unwrap());
    let (_, _, _, after) = change(&fw, Intent::ConfigureProtection(Box::new(p.clone()))).await;
    assert_eq!(after.protections[0].per_source_bandwidth, p.per_source_bandwidth, "read back from the kernel");
    let (capped_bytes, capped_seconds) = steady_window();
    let capped = capped_bytes / capped_seconds;
    // A token bucket of one second's burst lets at most rate x window + burst through any window: TCP backing off
    // after drops leaves the bucket time to refill, so the burst can recur inside the window.
    let (cap, burst) = (100_000.0, 100_000.0);
    let bound = cap * capped_seconds * 1.1 + burst;
    eprintln!(
        "bandwidth: one source's steady rate {open:.0} B/s without a cap, {capped:.0} B/s with 800kbit/s ({cap} B/s); \
         {capped_bytes:.0} B in {capped_seconds:.2} s against the bucket's bound of {bound:.0} B"
    );
    assert!(open > 10.0 * cap, "without a cap the link carries far more: {open}");
    assert!(capped_bytes <= bound, "the cap held: {capped_bytes} B in {capped_seconds:.2} s");
    assert!(capped >= cap * 0.4, "a cap, not a block: {capped} B/s");

    // IPv6: a per-source rate counts a whole /64, so two addresses of one /64 share one bucket.
    assert!(t.ipv6_ready(), "IPv6 neighbours");
    let mut p6 = protection(9084);
    p6.per_source_rate = Some(Rate::parse("per_source_rate", "5/s").unwrap());
    let _l6 = Listener::start(&t.server, SocketAddr::new(ip(common::SERVER6), 9084));
    change(&fw, Intent::ConfigureProtection(Box::new(p6))).await;
    let dest6 = SocketAddr::new(ip(common::SERVER6), 9084);
    // Both addresses at once, each at ten times the rate for a second: one shared bucket lets in its burst of 5
    // and 5 more over the second, about 10 in all; a bucket each would let in about 20.
    let (ns_a, ns_b) = (t.client.clone(), t.client.clone());
    let a6 = std::thread::spawn(move || flood::run_at(&ns_a, ip(common::CLIENT6_A), dest6, 50, Duration::from_secs(1)));
    let b6 = std::thread::spawn(move || flood::run_at(&ns_b, ip(common::CLIENT6_B), dest6, 50, Duration::from_secs(1)));
    let (a6, b6) = (a6.join().unwrap(), b6.join().unwrap());
    eprintln!(
        "ipv6 /64: two addresses of one /64 at 50/s each for 1 s (5/s per source): {} + {} accepted",
        a6.accepted, b6.accepted
    );
    assert!(a6.accepted + b6.accepted <= 13, "one /64, one bucket: {a6:?} {b6:?}");
    assert!(a6.accepted + b6.accepted >= 6, "{a6:?} {b6:?}");
    let (v4, _) = flood::connect(&t.client, ip(CLIENT_B), server(9083), Duration::from_millis(600));
    assert_eq!(v4, Outcome::Accepted);
}
