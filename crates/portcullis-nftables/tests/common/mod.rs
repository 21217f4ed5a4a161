//! Three network namespaces joined by veth links — client, router (running the backend), server — made fresh
//! for each test and deleted on drop. Traffic checks are real packets: `ping` and TCP connects with `nc`.
//!
//! ```text
//!  client (10.77.1.2 and 10.77.1.3)  ──lan0── router ──wan0──  server (10.77.2.2, TCP 8080 and 8081 listening)
//!  client (fd77:1::2 and fd77:1::3)                           server (fd77:2::2, for IPv6 pings)
//! ```
//!
//! These tests need root, `ip`, `nft`, `ping` and `nc` (netcat-openbsd); `scripts/test` installs them. They fail
//! loudly when something is missing: a skipped enforcement test proves nothing.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use portcullis_core::firewall::{Applied, Firewall};
use portcullis_core::model::RuleSet;
use portcullis_core::plan::{self, ChangePlan, Intent};
use portcullis_nftables::{NftRunner, NftablesFirewall, NftablesSettings};
use portcullis_store::Store;

pub const CLIENT_A: &str = "10.77.1.2";
pub const CLIENT_B: &str = "10.77.1.3";
pub const ROUTER_LAN: &str = "10.77.1.1";
pub const SERVER: &str = "10.77.2.2";
pub const CLIENT6_A: &str = "fd77:1::2";
pub const CLIENT6_B: &str = "fd77:1::3";
pub const SERVER6: &str = "fd77:2::2";

static NEXT: AtomicU32 = AtomicU32::new(0);

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

pub struct Topology {
    pub client: String,
    pub router: String,
    pub server: String,
    listeners: Vec<Child>,
}

impl Topology {
    pub fn new() -> Self {
        let id = format!("pc{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let t = Topology {
            client: format!("{id}c"),
            router: format!("{id}r"),
            server: format!("{id}s"),
            listeners: Vec::new(),
        };
        for ns in [&t.client, &t.router, &t.server] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            // No duplicate address detection on the links made next: a tentative link-local address delays
            // neighbour discovery and loses the first IPv6 packets.
            let no_dad = ["net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"];
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", no_dad[0], no_dad[1]]);
        }
        run(&[
            "ip", "-n", &t.router, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", &t.client,
        ]);
        run(&[
            "ip", "-n", &t.router, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", &t.server,
        ]);
        let addr = |ns: &str, cidr: &str, dev: &str| run(&["ip", "-n", ns, "address", "add", cidr, "dev", dev]);
        addr(&t.router, "10.77.1.1/24", "lan0");
        addr(&t.router, "10.77.2.1/24", "wan0");
        addr(&t.client, "10.77.1.2/24", "eth0");
        addr(&t.client, "10.77.1.3/24", "eth0");
        addr(&t.server, "10.77.2.2/24", "eth0");
        let addr6 =
            |ns: &str, cidr: &str, dev: &str| run(&["ip", "-n", ns, "-6", "address", "add", cidr, "dev", dev, "nodad"]);
        addr6(&t.router, "fd77:1::1/64", "lan0");
        addr6(&t.router, "fd77:2::1/64", "wan0");
        addr6(&t.client, "fd77:1::2/64", "eth0");
        addr6(&t.client, "fd77:1::3/64", "eth0");
        addr6(&t.server, "fd77:2::2/64", "eth0");
        for (ns, dev) in [(&t.router, "lan0"), (&t.router, "wan0"), (&t.client, "eth0"), (&t.server, "eth0")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        run(&["ip", "-n", &t.client, "route", "add", "default", "via", "10.77.1.1"]);
        run(&["ip", "-n", &t.server, "route", "add", "default", "via", "10.77.2.1"]);
        run(&["ip", "-n", &t.client, "-6", "route", "add", "default", "via", "fd77:1::1"]);
        run(&["ip", "-n", &t.server, "-6", "route", "add", "default", "via", "fd77:2::1"]);
        run(&["ip", "netns", "exec", &t.router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        run(&["ip", "netns", "exec", &t.router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        let mut t = t;
        for port in ["8080", "8081"] {
            let child = Command::new("ip")
                .args(["netns", "exec", &t.server, "nc", "-lk", SERVER, port])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nc listener (apt-get install netcat-openbsd)");
            t.listeners.push(child);
        }
        // The listeners are up once a connect succeeds.
        for _ in 0..50 {
            if t.tcp_from_server_side("8080") && t.tcp_from_server_side("8081") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        t
    }

    fn tcp_from_server_side(&self, port: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.server, "nc", "-z", "-w1", SERVER, port])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// One ICMP echo from `source` (an address of the client) to `destination`.
    pub fn ping(&self, source: &str, destination: &str) -> bool {
        self.ping_waiting(source, destination, "1")
    }

    /// One ICMP echo, waiting up to `seconds` for the answer.
    fn ping_waiting(&self, source: &str, destination: &str, seconds: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.client, "ping", "-c1", "-W", seconds, "-I", source, destination])
            .stdout(Stdio::null())
            .status()
            .expect("ping (apt-get install iputils-ping)")
            .success()
    }

    /// Whether both IPv6 sources of the client reach the server: the first packet to a new IPv6 neighbour can
    /// wait a second for neighbour discovery, longer than [`Topology::ping`] waits, so this also warms them up.
    pub fn ipv6_ready(&self) -> bool {
        [CLIENT6_A, CLIENT6_B].into_iter().all(|source| self.ping_waiting(source, SERVER6, "3"))
    }

    /// A TCP connect from `source` (an address of the client) to the server.
    pub fn tcp(&self, source: &str, port: u16) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.client, "nc", "-z", "-w1", "-s", source, SERVER, &port.to_string()])
            .stderr(Stdio::null())
            .status()
            .expect("nc (apt-get install netcat-openbsd)")
            .success()
    }

    /// A TCP connect from the router itself to the server.
    pub fn router_tcp(&self, port: u16) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.router, "nc", "-z", "-w1", SERVER, &port.to_string()])
            .stderr(Stdio::null())
            .status()
            .expect("nc")
            .success()
    }

    /// One ICMP echo from the router itself.
    pub fn router_ping(&self, destination: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.router, "ping", "-c1", "-W1", destination])
            .stdout(Stdio::null())
            .status()
            .expect("ping")
            .success()
    }

    pub fn settings(&self) -> NftablesSettings {
        NftablesSettings {
            runner: NftRunner::in_netns(self.router.clone()),
            ..NftablesSettings::new(vec![("lan".into(), "lan0".into()), ("wan".into(), "wan0".into())])
        }
    }

    pub fn firewall(&self) -> NftablesFirewall {
        NftablesFirewall::new("router", self.settings(), Arc::new(Store::open_in_memory().expect("store")))
    }

    /// `nft -j list table inet portcullis` in the router, as JSON.
    pub fn list_table(&self) -> serde_json::Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.router, "nft", "-j", "list", "table", "inet", "portcullis"])
            .output()
            .expect("nft");
        assert!(out.status.success(), "nft list table: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("nft JSON")
    }

    /// `nft ARGS` in the router with `input` on stdin.
    pub fn nft_stdin(&self, args: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.router, "nft"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft");
        child.stdin.take().expect("stdin").write_all(input).expect("write to nft");
        let out = child.wait_with_output().expect("nft");
        assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn nft(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.router, "nft"]).args(args).output().expect("nft");
        assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for child in &mut self.listeners {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.client, &self.router, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The table listing without what changes by itself: handles, counters, the time left on entries, and the write
/// generation.
pub fn normalised(mut listing: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("handle");
                map.remove("expires");
                if let Some(c) = map.get_mut("counter")
                    && c.is_object()
                {
                    *c = serde_json::json!({});
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut listing);
    // The write generation changes with every batch by design.
    if let Some(objects) = listing["nftables"].as_array_mut() {
        objects.retain(|o| o["set"]["name"] != "generation");
    }
    listing
}

/// Plans `intent` on a fresh snapshot, applies it, and verifies the read-back, as the tool service does.
pub async fn change(fw: &NftablesFirewall, intent: Intent) -> (ChangePlan, Applied, RuleSet, RuleSet) {
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    let before = fw.snapshot().await.expect("snapshot");
    let plan = plan::plan(&before, &intent, now).expect("plan");
    let applied = fw.apply(&plan).await.expect("apply");
    let after = fw.snapshot().await.expect("read back");
    if let Err(why) = plan::verify(&plan, &applied, &after) {
        panic!("{why}\nplan: {:#?}\nread back: {:#?}", plan.operations, after.rules);
    }
    (plan, applied, before, after)
}
