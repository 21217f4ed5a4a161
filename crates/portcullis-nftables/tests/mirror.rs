//! Traffic mirrors with real packets and a real capture: the client–router–server namespaces of `common`, plus a
//! sensor namespace on a link of its own from the router, with `tcpdump` listening there. A mirror of TCP port 80
//! from the client to the server must copy the port-80 packets of both directions and nothing else (not the
//! port-443 connection nor the pings sent at the same time), leave the original traffic unchanged, and stop
//! copying when it is stopped, when it expires (across a restart of Portcullis in between), and above its
//! `rate_limit`. The same with a sensor behind a VXLAN tunnel in another namespace.
//!
//! Nothing here leaves the test's namespaces: the sensors' links are veth pairs inside them, and no namespace has
//! a route out of the machine.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;
#[path = "common/flood.rs"]
mod flood;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use common::{CLIENT_A, SERVER, Topology, change};
use portcullis_core::firewall::Firewall;
use portcullis_core::mirror::{MirrorAsk, MirrorDirection, MirrorId, Selector, Sensor, SensorKind, VXLAN_PORT};
use portcullis_core::model::{PortRange, Protocol};
use portcullis_core::plan::{self, Intent};
use portcullis_nftables::netlink::in_namespace;

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A namespace joined to the router by a veth pair: `router_dev` in the router, `eth0` in it.
struct Sensor4 {
    ns: String,
}

impl Sensor4 {
    /// `router_cidr`/`own_cidr`: the link's addresses, when the sensor is reached over IP (VXLAN).
    fn attach(t: &Topology, suffix: &str, router_dev: &str, addresses: Option<(&str, &str)>) -> Self {
        let ns = format!("{}{suffix}", t.router);
        run(&["ip", "netns", "add", &ns]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        run(&["ip", "-n", &t.router, "link", "add", router_dev, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        if let Some((router_cidr, own_cidr)) = addresses {
            run(&["ip", "-n", &t.router, "address", "add", router_cidr, "dev", router_dev]);
            run(&["ip", "-n", &ns, "address", "add", own_cidr, "dev", "eth0"]);
        }
        run(&["ip", "-n", &t.router, "link", "set", router_dev, "up"]);
        run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        Sensor4 { ns }
    }
}

impl Drop for Sensor4 {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// `tcpdump` writing what arrives on a device of a namespace to a file.
struct Capture {
    child: Child,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    fn start(ns: &str, device: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("capture.pcap");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "--immediate-mode", "-i", device, "-n", "-U", "-s", "128", "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (apt-get install tcpdump)");
        // tcpdump says "listening on" once its socket is bound: packets before that are not seen. Immediate mode:
        // without it, packets wait in a ring block that a SIGINT leaves unread.
        let mut line = String::new();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "tcpdump: {line}");
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Capture { child, file, _dir: dir }
    }

    /// Stops the capture and returns one line per packet (`tcpdump -r -n`).
    fn packets(mut self) -> Vec<String> {
        // Copies in flight arrive within a few milliseconds on veth links.
        std::thread::sleep(Duration::from_millis(300));
        run(&["kill", "-INT", &self.child.id().to_string()]);
        self.child.wait().unwrap();
        let out = Command::new("tcpdump").args(["-n", "-r"]).arg(&self.file).output().expect("tcpdump -r");
        assert!(out.status.success(), "tcpdump -r: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }
}

/// What a capture holds, by kind.
#[derive(Debug, Default)]
struct Seen {
    to_80: usize,
    from_80: usize,
    port_443: usize,
    /// The pings between client and server (not the links' own IPv6 neighbour discovery, which is `other`).
    icmp: usize,
    other: usize,
}

fn seen(packets: &[String]) -> Seen {
    let mut s = Seen::default();
    let server_80 = format!("{SERVER}.80");
    for p in packets {
        if p.contains(&format!("> {server_80}:")) {
            s.to_80 += 1;
        } else if p.contains(&format!(" {server_80} >")) {
            s.from_80 += 1;
        } else if p.contains(".443") {
            s.port_443 += 1;
        } else if p.contains(&format!("{CLIENT_A} > {SERVER}: ICMP"))
            || p.contains(&format!("{SERVER} > {CLIENT_A}: ICMP"))
        {
            s.icmp += 1;
        } else {
            s.other += 1;
        }
    }
    s
}

/// An echo server on `port` of the server: every byte a connection sends comes back.
fn echo_server(t: &Topology, port: u16) {
    let listener =
        in_namespace(&t.server, || TcpListener::bind(SocketAddr::new(SERVER.parse().unwrap(), port))).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// Sends 64 KiB to the echo server on `port` and returns whether exactly the same bytes came back.
fn echoed_unchanged(t: &Topology, port: u16) -> bool {
    let (outcome, stream) = flood::connect(
        &t.client,
        CLIENT_A.parse().unwrap(),
        SocketAddr::new(SERVER.parse().unwrap(), port),
        Duration::from_secs(2),
    );
    let Some(mut stream) = stream.filter(|_| outcome == flood::Outcome::Accepted) else { return false };
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let sent: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let writer = {
        let mut w = stream.try_clone().unwrap();
        let sent = sent.clone();
        std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    let read = stream.read_to_end(&mut back);
    writer.join().unwrap();
    read.is_ok() && back == sent
}

/// The traffic each capture is measured with: the port-80 echo (both directions), a port-443 echo and pings.
fn mixed_traffic(t: &Topology) -> bool {
    let http = echoed_unchanged(t, 80);
    let https = echoed_unchanged(t, 443);
    let pings = (0..3).all(|_| t.ping(CLIENT_A, SERVER));
    http && https && pings
}

fn web_selector() -> Selector {
    Selector { protocol: Protocol::Tcp, port: Some(PortRange::single(80)), ..Selector::default() }
}

fn ask(sensor: Sensor, selector: Selector, rate_limit: u32, lasting: TimeDelta) -> MirrorAsk {
    MirrorAsk {
        mirror_id: MirrorId::from_seed(rand_seed()),
        interface: "lan".into(),
        sensor,
        direction: MirrorDirection::Both,
        selector,
        rate_limit,
        burst: (rate_limit / 10).max(rate_limit.min(5)),
        reason: "IDS look at the web traffic".into(),
        expires_at: Utc::now().trunc_subsecs(3) + lasting,
    }
}

fn rand_seed() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

fn local_sensor() -> Sensor {
    Sensor { name: "zeek".into(), kind: SensorKind::Interface { interface: "sen0".into() } }
}

#[tokio::test]
async fn a_port_80_mirror_copies_both_directions_and_nothing_else_until_stopped_or_expired() {
    let t = Topology::new();
    let sensor = Sensor4::attach(&t, "m", "sen0", None);
    echo_server(&t, 80);
    echo_server(&t, 443);
    let fw = t.firewall();

    // Before any mirror, the sensor sees nothing of the client's traffic.
    let capture = Capture::start(&sensor.ns, "eth0");
    assert!(mixed_traffic(&t), "the traffic flows before any mirror");
    let before = seen(&capture.packets());
    assert_eq!((before.to_80, before.from_80, before.port_443, before.icmp), (0, 0, 0, 0), "{before:?}");

    let start = ask(local_sensor(), web_selector(), 10_000, TimeDelta::hours(1));
    let mirror_id = start.mirror_id.clone();
    // dry_run's statements: the exact nft commands the batch will hold, rendered on the read the plan was made on.
    let state = fw.snapshot().await.unwrap();
    let planned = plan::plan(&state, &Intent::StartMirror(Box::new(start.clone())), Utc::now());
    let statements = fw.preview_statements(&planned.unwrap(), &state).unwrap();
    let rules: Vec<&String> = statements.iter().filter(|s| s.contains("\"dup\"")).collect();
    assert_eq!(rules.len(), 8, "dport and sport rules, IPv4 and IPv6, in and out: {statements:#?}");
    assert!(rules.iter().all(|r| r.contains("\"sen0\"")), "{rules:?}");
    let (_, _, _, after) = change(&fw, Intent::StartMirror(Box::new(start))).await;
    assert_eq!(after.mirrors.len(), 1, "the mirror is read back from the kernel");
    assert_eq!(after.mirrors[0].selector, web_selector());

    let capture = Capture::start(&sensor.ns, "eth0");
    assert!(mixed_traffic(&t), "the original traffic arrives unchanged while it is mirrored");
    let copied = seen(&capture.packets());
    println!("mirrored: {copied:?}");
    assert!(copied.to_80 >= 5 && copied.from_80 >= 5, "both directions of port 80 are copied: {copied:?}");
    assert_eq!((copied.port_443, copied.icmp), (0, 0), "nothing but port 80 is copied: {copied:?}");

    let counted = fw.mirror_counters(&after).await.unwrap();
    assert_eq!(counted.len(), 1);
    assert!(counted[0].packets as usize >= copied.to_80 + copied.from_80, "{counted:?} {copied:?}");
    assert!(counted[0].bytes > 64 * 1024, "{counted:?}");

    change(&fw, Intent::StopMirror { mirror_id }).await;
    let capture = Capture::start(&sensor.ns, "eth0");
    assert!(mixed_traffic(&t));
    let stopped = seen(&capture.packets());
    assert_eq!((stopped.to_80, stopped.from_80), (0, 0), "nothing after stop_mirror: {stopped:?}");
    assert!(t.nft(&["list", "tables"]).lines().all(|l| !l.contains("portcullis_mirror")), "the mirror table is gone");

    // Expiry, with Portcullis restarted in between: the new instance reads the mirror (and its expiry) back from
    // the kernel, and the sweep of expired objects removes it.
    let short = ask(local_sensor(), web_selector(), 10_000, TimeDelta::seconds(3));
    let expires_at = short.expires_at;
    change(&fw, Intent::StartMirror(Box::new(short))).await;
    drop(fw);
    let restarted = t.firewall();
    let state = restarted.snapshot().await.unwrap();
    assert_eq!(state.mirrors.len(), 1);
    assert_eq!(state.mirrors[0].expires_at, expires_at, "the expiry survives the restart");
    assert!(plan::plan_expiry(&state, Utc::now()).is_none(), "not yet due");
    let capture = Capture::start(&sensor.ns, "eth0");
    assert!(echoed_unchanged(&t, 80));
    assert!(seen(&capture.packets()).to_80 > 0, "copying until it expires");
    tokio::time::sleep((expires_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(50)).await;
    let state = restarted.snapshot().await.unwrap();
    let sweep = plan::plan_expiry(&state, Utc::now()).expect("the expired mirror is due");
    let applied = restarted.apply(&sweep).await.unwrap();
    let after = restarted.snapshot().await.unwrap();
    plan::verify(&sweep, &applied, &after).unwrap();
    assert!(after.mirrors.is_empty());
    let capture = Capture::start(&sensor.ns, "eth0");
    assert!(mixed_traffic(&t));
    let expired = seen(&capture.packets());
    assert_eq!((expired.to_80, expired.from_80), (0, 0), "nothing after the expiry: {expired:?}");
}

#[tokio::test]
async fn a_flood_reaches_the_sensor_at_no_more_than_the_cap() {
    const CAP: u32 = 200;
    const PORT: u16 = 9999;
    let t = Topology::new();
    let sensor = Sensor4::attach(&t, "m", "sen0", None);
    let fw = t.firewall();
    let selector = Selector { protocol: Protocol::Udp, port: Some(PortRange::single(PORT)), ..Selector::default() };
    let mut start = ask(local_sensor(), selector, CAP, TimeDelta::hours(1));
    start.direction = MirrorDirection::In;
    let burst = start.burst;
    change(&fw, Intent::StartMirror(Box::new(start))).await;

    let capture = Capture::start(&sensor.ns, "eth0");
    let socket = in_namespace(&t.client, || UdpSocket::bind(SocketAddr::new(CLIENT_A.parse().unwrap(), 0))).unwrap();
    let destination = SocketAddr::new(SERVER.parse::<IpAddr>().unwrap(), PORT);
    let (began, mut sent) = (Instant::now(), 0u64);
    while began.elapsed() < Duration::from_secs(2) {
        if socket.send_to(&[0x42; 64], destination).is_ok() {
            sent += 1;
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    let copies = capture.packets().iter().filter(|p| p.contains(&format!("{SERVER}.{PORT}:"))).count();
    let ceiling = f64::from(CAP) * elapsed + f64::from(burst);
    println!(
        "flood: {sent} packets in {elapsed:.2} s; the sensor got {copies} (cap {CAP}/s + burst {burst}: {ceiling:.0})"
    );
    assert!(sent as f64 > 5.0 * ceiling, "the flood is well above the cap ({sent} sent)");
    assert!(copies as f64 <= ceiling * 1.05, "{copies} copies exceed the cap ({ceiling:.0})");
    assert!(copies as f64 >= ceiling * 0.5, "the mirror copies up to its cap ({copies} of {ceiling:.0})");
}

#[tokio::test]
async fn a_vxlan_sensor_in_another_namespace_gets_the_port_80_packets() {
    let t = Topology::new();
    // The remote sensor: reached over IP from the router's mgmt0, decapsulating on its own VXLAN device.
    let sensor = Sensor4::attach(&t, "v", "mgmt0", Some(("10.77.4.1/24", "10.77.4.2/24")));
    run(&[
        "ip",
        "-n",
        &sensor.ns,
        "link",
        "add",
        "vx42",
        "type",
        "vxlan",
        "id",
        "42",
        "local",
        "10.77.4.2",
        "dstport",
        "4789",
        "nolearning",
    ]);
    run(&["ip", "-n", &sensor.ns, "link", "set", "vx42", "up"]);
    echo_server(&t, 80);
    echo_server(&t, 443);
    let fw = t.firewall();
    let far = Sensor {
        name: "far".into(),
        kind: SensorKind::Vxlan {
            remote: "10.77.4.2".parse().unwrap(),
            vni: 42,
            local: Some("10.77.4.1".parse().unwrap()),
            port: VXLAN_PORT,
        },
    };
    let start = ask(far.clone(), web_selector(), 10_000, TimeDelta::hours(1));
    let mirror_id = start.mirror_id.clone();
    let (_, _, _, after) = change(&fw, Intent::StartMirror(Box::new(start))).await;
    assert_eq!(after.mirrors[0].sensor, far, "the tunnel is read back as the sensor");
    let link = Command::new("ip").args(["-n", &t.router, "-d", "link", "show", "pcvx42"]).output().unwrap();
    assert!(link.status.success(), "the tunnel device exists");

    let capture = Capture::start(&sensor.ns, "vx42");
    assert!(mixed_traffic(&t), "the original traffic arrives unchanged");
    let copied = seen(&capture.packets());
    println!("through VXLAN: {copied:?}");
    assert!(copied.to_80 >= 5 && copied.from_80 >= 5, "{copied:?}");
    assert_eq!((copied.port_443, copied.icmp), (0, 0), "{copied:?}");

    change(&fw, Intent::StopMirror { mirror_id }).await;
    let link = Command::new("ip").args(["-n", &t.router, "link", "show", "pcvx42"]).output().unwrap();
    assert!(!link.status.success(), "the tunnel device is deleted with its last mirror");
    let capture = Capture::start(&sensor.ns, "vx42");
    assert!(mixed_traffic(&t));
    let stopped = seen(&capture.packets());
    assert_eq!((stopped.to_80, stopped.from_80), (0, 0), "{stopped:?}");
}
