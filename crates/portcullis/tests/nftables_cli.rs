//! End to end on nftables: the real binary, configured with `kind: nftables` against a router in a network
//! namespace, blocks an address through `portcullis call` (the whole guard pipeline, journal and audit), and
//! real packets show the kernel enforcing it.

#[path = "../../portcullis-nftables/tests/common/mod.rs"]
mod common;

mod cli;

#[path = "../../portcullis-tools/tests/common/dns.rs"]
mod dns;

use cli::run;
use common::*;

fn portcullis(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "portcullis {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("portcullis {args:?} printed no JSON: {e}"))
}

/// A call the guard refuses: its `--json` error.
fn refused(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = run(dir, args);
    assert!(!out.status.success(), "portcullis {args:?} should be refused: {}", String::from_utf8_lossy(&out.stdout));
    let body: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("portcullis {args:?} printed no JSON: {e}"));
    body["error"].clone()
}

/// A change that needs a person: refused with an approval id, approved at the terminal, then run again.
fn approved(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let pending = refused(dir, args);
    assert_eq!(pending["code"], "approval_required", "{pending}");
    let id = pending["approval_id"].as_str().expect("approval_id");
    let out = run(dir, &["approve", id, "--yes"]);
    assert!(out.status.success(), "approve: {}", String::from_utf8_lossy(&out.stderr));
    let done = portcullis(dir, args);
    assert_eq!((done["status"].as_str(), done["approval_id"].as_str()), (Some("applied"), Some(id)), "{done}");
    done
}

/// A data directory whose config makes the namespace's router the default target, run as admin.
fn admin_on_router(net: &Topology) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "targets:\n  router: {{kind: nftables, netns: {}, interfaces: {{lan: lan0, wan: wan0}}}}\ndefault_target: router\n\
         security: {{principal: admin}}\n",
        net.router
    );
    std::fs::write(dir.path().join("config.yaml"), config).expect("config");
    dir
}

#[test]
fn block_ip_address_through_the_cli_is_enforced_by_the_kernel() {
    let net = Topology::new();
    let dir = admin_on_router(&net);
    assert!(net.ping(CLIENT_B, SERVER) && net.tcp(CLIENT_B, 8080));

    let blocked = portcullis(
        dir.path(),
        &["call", "block_ip_address", &format!("ip_address={CLIENT_B}"), "duration=1h", "reason=port scan", "--json"],
    );
    assert_eq!(blocked["status"], "applied", "{blocked}");
    assert!(!net.ping(CLIENT_B, SERVER) && !net.tcp(CLIENT_B, 8080), "the kernel drops the blocked source");
    assert!(net.ping(CLIENT_A, SERVER) && net.tcp(CLIENT_A, 8080), "and only that source");

    // The dropped packets are logged by the kernel and read back through query_firewall_logs. Logging from a
    // network namespace needs this switch.
    std::fs::write("/proc/sys/net/netfilter/nf_log_all_netns", "1").expect("root can enable namespace logging");
    let port = (30000 + std::process::id() % 10000).to_string();
    assert!(!net.tcp(CLIENT_B, port.parse().expect("port")));
    let mut logged = serde_json::Value::Null;
    let mut hit = false;
    for _ in 0..20 {
        logged = portcullis(
            dir.path(),
            &["call", "query_firewall_logs", "timeframe=1h", &format!("source_ip={CLIENT_B}"), "--json"],
        );
        hit = logged["data"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| r["dst_port"] == port.as_str() && r["action"] == "block" && r["interface"] == "lan")
        });
        if hit {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(hit, "the blocked SYN is in query_firewall_logs, on lan, as a block: {logged}");

    // The kernel's own counters: the block rule counted the dropped packets, the link every packet.
    let rules = portcullis(dir.path(), &["call", "get_firewall_rules", "interface=lan", "--json"]);
    let block_rule = rules["data"].as_array().and_then(|rows| {
        rows.iter().find(|r| r["description"].as_str().is_some_and(|d| d.contains("Portcullis managed block list")))
    });
    let dropped = block_rule.and_then(|r| r["hits"]["packets"].as_u64()).unwrap_or(0);
    assert!(dropped >= 2, "the block rule counted the dropped ping and SYNs: {rules}");
    let stats = portcullis(dir.path(), &["call", "get_traffic_stats", "timeframe=1h", "interface=lan", "--json"]);
    let links = stats["interfaces"].as_array().cloned().unwrap_or_default();
    assert_eq!(links.len(), 1, "only the interface asked for: {stats}");
    assert_eq!((links[0]["interface"].as_str(), links[0]["device"].as_str()), (Some("lan"), Some("lan0")));
    assert!(links[0]["packets_in"].as_u64().is_some_and(|p| p >= dropped), "{stats}");

    let blocks = portcullis(dir.path(), &["call", "list_blocks", "--json"]);
    assert!(blocks.to_string().contains(CLIENT_B), "{blocks}");
    let verdict = portcullis(
        dir.path(),
        &[
            "call",
            "simulate_packet",
            "interface=lan",
            "protocol=tcp",
            &format!("source={CLIENT_B}"),
            &format!("destination={SERVER}"),
            "destination_port=8080",
            "--json",
        ],
    );
    assert!(verdict.to_string().contains("block"), "{verdict}");

    let unblocked =
        portcullis(dir.path(), &["call", "unblock_ip_address", &format!("ip_address={CLIENT_B}"), "--json"]);
    assert_eq!(unblocked["status"], "applied", "{unblocked}");
    assert!(net.ping(CLIENT_B, SERVER) && net.tcp(CLIENT_B, 8080), "unblocked");
    let status = portcullis(dir.path(), &["call", "get_system_status", "--json"]);
    assert!(status["version"].as_str().is_some_and(|v| v.contains("nftables")), "{status}");
    let rules = portcullis(dir.path(), &["call", "get_firewall_rules", "interface=lan", "--json"]);
    assert!(rules.to_string().contains("Portcullis managed block list"), "{rules}");
    // rollback_change through the journal restores the table exactly.
    let before = normalised(net.list_table());
    let created = portcullis(
        dir.path(),
        &[
            "call",
            "create_firewall_rule",
            "interface=lan",
            "action=block",
            "protocol=tcp",
            "source=any",
            &format!("destination={SERVER}"),
            "destination_port=8081",
            "description=close 8081",
            "position=0",
            "--json",
        ],
    );
    assert_eq!(created["status"], "applied", "{created}");
    assert!(!net.tcp(CLIENT_A, 8081), "the new rule is enforced");
    let change_id = created["change_id"].as_str().expect("change_id").to_string();
    let rolled = portcullis(dir.path(), &["call", "rollback_change", &format!("change_id={change_id}"), "--json"]);
    assert_eq!(rolled["status"], "rolled_back", "{rolled}");
    assert_eq!(normalised(net.list_table()), before, "the table is exactly as before the change");
    assert!(net.tcp(CLIENT_A, 8081), "and traffic flows again");

    let audit = portcullis(dir.path(), &["call", "verify_audit_log", "--json"]);
    assert!(audit.to_string().contains("true"), "{audit}");
}

/// Every spelling of one IPv4 host given to `block_ip_address` either blocks that host in the kernel, or is refused
/// naming the field and leaves the table as it was: none is listed as blocked while IPv4 traffic still passes.
#[test]
fn every_spelling_of_an_ipv4_host_either_blocks_it_or_is_refused() {
    let net = Topology::new();
    let dir = admin_on_router(&net);
    let passes = || net.ping(CLIENT_B, SERVER) && net.tcp(CLIENT_B, 8080);
    assert!(passes());
    // Creates the managed block list, so that a refused call can be seen to leave the table exactly as it is.
    portcullis(dir.path(), &["call", "block_ip_address", "ip_address=192.0.2.99", "duration=1h", "reason=s", "--json"]);
    let spellings = [
        (CLIENT_B.to_string(), true),
        (format!("{CLIENT_B}/32"), true),
        (format!(" {CLIENT_B} "), true),
        (format!("::ffff:{CLIENT_B}"), false),
        ("::ffff:a4d:103".to_string(), false),
        (format!("0:0:0:0:0:FFFF:{CLIENT_B}"), false),
        (format!("::ffff:{CLIENT_B}/128"), false),
        ("::ffff:10.77.1.0/120".to_string(), false),
        (format!("::{CLIENT_B}"), false),
        ("010.077.001.003".to_string(), false),
        (format!("{CLIENT_B}%lan0"), false),
        ("10.77.259".to_string(), false),
        (format!("{CLIENT_B}/032"), false),
    ];
    let mut accepted = 0;
    for (spelling, expected) in &spellings {
        let before = normalised(net.list_table());
        let args = ["call", "block_ip_address", &format!("ip_address={spelling}"), "duration=1h", "reason=s", "--json"];
        let out = run(dir.path(), &args);
        if out.status.success() {
            accepted += 1;
            assert!(expected, "{spelling:?} was accepted: {}", String::from_utf8_lossy(&out.stdout));
            assert!(!net.ping(CLIENT_B, SERVER) && !net.tcp(CLIENT_B, 8080), "{spelling:?} is accepted and blocks");
            assert!(net.ping(CLIENT_A, SERVER), "and only that host");
            let listed = portcullis(dir.path(), &["call", "list_blocks", "--json"]);
            assert!(listed.to_string().contains(&format!("\"{CLIENT_B}\"")), "listed in its IPv4 form: {listed}");
            portcullis(dir.path(), &["call", "unblock_ip_address", &format!("ip_address={CLIENT_B}"), "--json"]);
            assert!(passes(), "unblocked after {spelling:?}");
        } else {
            let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
            let error = &body["error"];
            assert!(!expected, "{spelling:?} was refused: {error}");
            assert_eq!(
                (error["code"].as_str(), error["field"].as_str()),
                (Some("validation_error"), Some("ip_address"))
            );
            if spelling.contains("ffff") || spelling.starts_with("::1") {
                assert!(error.to_string().contains("use 10.77."), "the hint gives the IPv4 form: {error}");
            }
            assert_eq!(normalised(net.list_table()), before, "{spelling:?} changed the table");
            assert!(passes(), "{spelling:?} is refused and blocks nothing");
        }
    }
    assert_eq!(accepted, 3);
    // simulate_packet speaks of the packets that exist: the mapped source is refused the same way.
    let simulated = refused(
        dir.path(),
        &[
            "call",
            "simulate_packet",
            "interface=lan",
            "protocol=tcp",
            &format!("source=::ffff:{CLIENT_B}"),
            &format!("destination={SERVER}"),
            "destination_port=8080",
            "--json",
        ],
    );
    assert_eq!((simulated["code"].as_str(), simulated["field"].as_str()), (Some("validation_error"), Some("source")));
}

/// The host's egress policy through `set_egress_policy` on the CLI (the whole pipeline: lockout check, approval,
/// journal, audit), enforced by the kernel: the router namespace plays the host that runs Portcullis, the
/// server's 8080 the API of a configured pfSense target, and the server its DNS resolver.
#[test]
fn the_egress_policy_set_through_the_cli_lets_the_host_reach_only_the_allowed_flows() {
    let net = Topology::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(&resolv_conf, format!("nameserver {SERVER}\n")).expect("resolv.conf");
    let config = format!(
        "targets:\n  router: {{kind: nftables, netns: {}, interfaces: {{lan: lan0, wan: wan0}}}}\n  \
         hq: {{kind: pfsense, host: {SERVER}, port: 8080, protocol: http, api_key: unused}}\n\
         default_target: router\nsecurity: {{principal: admin}}\negress: {{resolv_conf: {}}}\n",
        net.router,
        resolv_conf.display()
    );
    std::fs::write(dir.path().join("config.yaml"), config).expect("config");
    // Something in the table first, so that "as before" compares rules and sets, not a table against none.
    let args = ["call", "block_ip_address", "ip_address=192.0.2.99", "duration=1h", "reason=scan", "--json"];
    assert_eq!(portcullis(dir.path(), &args)["status"], "applied");
    let before = normalised(net.list_table());
    assert!(net.router_tcp(8080) && net.router_tcp(8081) && net.router_ping(SERVER));

    let cut =
        refused(dir.path(), &["call", "set_egress_policy", "interface=wan", "include_firewall_apis=false", "--json"]);
    assert_eq!(cut["code"], "lockout_prevented", "the host would lose the API of hq: {cut}");
    assert!(cut["message"].as_str().is_some_and(|m| m.contains("API of target hq")), "{cut}");
    assert_eq!(normalised(net.list_table()), before, "a refused policy changes nothing");

    let set = approved(dir.path(), &["call", "set_egress_policy", "interface=wan", "--json"]);
    assert!(set["risk_score"].as_u64().is_some_and(|r| r > 80), "{set}");
    assert!(net.router_tcp(8080), "the API of hq is allowed");
    assert!(!net.router_tcp(8081), "any other port is dropped");
    assert!(!net.router_ping(SERVER), "and any other protocol");
    assert!(net.tcp(CLIENT_A, 8081) && net.ping(CLIENT_A, SERVER), "forwarded traffic is not the host's own");
    let rules = portcullis(dir.path(), &["call", "get_firewall_rules", "interface=wan", "--json"]);
    let text = rules.to_string();
    assert!(text.contains(&format!("allow DNS {SERVER}")) && text.contains("log and drop the rest"), "{rules}");

    let removed = approved(dir.path(), &["call", "set_egress_policy", "interface=wan", "enabled=false", "--json"]);
    assert!(removed["summary"].as_str().is_some_and(|s| s.contains("remove")), "{removed}");
    assert_eq!(normalised(net.list_table()), before, "the table is exactly as before the policy");
    assert!(net.router_tcp(8081) && net.router_ping(SERVER), "and the host reaches everything again");

    let audit = portcullis(dir.path(), &["call", "get_audit_log", "tool=set_egress_policy", "--json"]);
    let outcomes: Vec<&str> =
        audit["data"].as_array().expect("records").iter().filter_map(|r| r["record"]["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["ok", "approval_required", "ok", "approval_required", "lockout_prevented"], "{audit}");
    assert_eq!(portcullis(dir.path(), &["call", "verify_audit_log", "--json"])["ok"], true);
}

/// A change that may need a person (by its risk score): approved at the terminal when it does.
fn applied_maybe_approved(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = run(dir, args);
    if out.status.success() {
        return serde_json::from_slice(&out.stdout).expect("JSON");
    }
    approved(dir, args)
}

#[test]
fn a_mirror_started_through_the_cli_copies_counts_and_stops() {
    let net = Topology::new();
    let dir = admin_on_router(&net);
    // The sensor: a namespace on its own veth link from the router (sen0), named in config only.
    let sensor_ns = format!("{}m", net.router);
    let ip = |args: &[&str]| assert!(std::process::Command::new("ip").args(args).status().expect("ip").success());
    ip(&["netns", "add", &sensor_ns]);
    ip(&["-n", &net.router, "link", "add", "sen0", "type", "veth", "peer", "name", "eth0", "netns", &sensor_ns]);
    ip(&["-n", &net.router, "link", "set", "sen0", "up"]);
    ip(&["-n", &sensor_ns, "link", "set", "eth0", "up"]);
    let config = dir.path().join("config.yaml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("mirroring:\n  sensors:\n    zeek: {interface: sen0, serves: [lan], engine: zeek}\n");
    std::fs::write(&config, text).expect("config");

    let ask = ["call", "mirror_traffic", "interface=lan", "sensor=zeek", "protocol=tcp", "port=8080", "duration=1h"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        ask.iter().chain(extra).map(|s| s.to_string()).chain(["reason=IDS look".into(), "--json".into()]).collect()
    };
    let dry: Vec<String> = with(&["dry_run=true"]);
    let dry = portcullis(dir.path(), &dry.iter().map(String::as_str).collect::<Vec<_>>());
    let statements = dry["statements"].as_array().cloned().unwrap_or_default();
    assert!(statements.iter().any(|s| s.as_str().is_some_and(|s| s.contains("dup") && s.contains("sen0"))), "{dry}");
    assert!(!net.nft(&["list", "tables"]).contains("portcullis_mirror"), "a dry run changes nothing");

    let hostile = ["call", "mirror_traffic", "interface=lan", "sensor=zeek;reboot", "port=80", "reason=x", "--json"];
    assert_eq!(refused(dir.path(), &hostile)["field"], "sensor");

    let start: Vec<String> = with(&[]);
    let started = applied_maybe_approved(dir.path(), &start.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(started["status"], "applied", "{started}");
    let mirror_id = started["mirror_id"].as_str().or(started["data"]["mirror_id"].as_str()).map(str::to_string);
    assert!(net.tcp(CLIENT_A, 8080) && net.tcp(CLIENT_A, 8080));
    let listed = portcullis(dir.path(), &["call", "list_mirrors", "--json"]);
    let row = &listed["data"][0];
    assert_eq!(row["sensor"]["name"], "zeek", "{listed}");
    assert!(row["packets"].as_u64().is_some_and(|p| p >= 4), "the kernel's counter of copies: {listed}");
    let mirror_id = mirror_id.or(row["mirror_id"].as_str().map(str::to_string)).expect("mirror_id");

    let stopped = portcullis(dir.path(), &["call", "stop_mirror", &format!("mirror_id={mirror_id}"), "--json"]);
    assert_eq!(stopped["status"], "applied", "{stopped}");
    assert!(!net.nft(&["list", "tables"]).contains("portcullis_mirror"), "the mirror table is gone");
    let _ = std::process::Command::new("ip").args(["netns", "del", &sensor_ns]).status();
}

/// `portcullis serve` on stdio, left running (its reconciler refreshes domain blocks) until dropped.
struct Serving(std::process::Child);

impl Serving {
    fn start(dir: &std::path::Path) -> Serving {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("serve")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("portcullis serve runs");
        Serving(child)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `done` holds, up to 20 s; how long it took.
fn within(what: &str, done: impl Fn() -> bool) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{what} did not happen in 20 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    started.elapsed()
}

#[test]
fn a_domain_block_through_the_cli_drops_the_names_addresses_and_follows_it_across_a_restart() {
    const FIRST: &str = "10.77.2.2";
    const SECOND: &str = "10.77.2.3";
    let net = Topology::new();
    let ip = |args: &[&str]| assert!(std::process::Command::new("ip").args(args).status().expect("ip").success());
    ip(&["-n", &net.server, "address", "add", &format!("{SECOND}/24"), "dev", "eth0"]);
    let dns = dns::Dns::start(&format!("{FIRST} web.zone.test\n"));
    let dir = admin_on_router(&net);
    let config = dir.path().join("config.yaml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!("domains: {{resolver: \"{}\", min_refresh: 1s}}\n", dns.address()));
    std::fs::write(&config, text).expect("config");
    assert!(net.ping(CLIENT_A, FIRST) && net.ping(CLIENT_A, SECOND));

    let blocked = portcullis(
        dir.path(),
        &["call", "block_domain", "domain=web.zone.test", "duration=1h", "reason=phishing", "--json"],
    );
    assert_eq!(blocked["status"], "applied", "{blocked}");
    assert!(!net.ping(CLIENT_A, FIRST) && !net.tcp(CLIENT_B, 8080), "traffic to the name's address is dropped");
    assert!(net.ping(CLIENT_A, SECOND) && net.ping(CLIENT_B, SECOND), "and nothing else");
    let blocks = portcullis(dir.path(), &["call", "list_blocks", "--json"]);
    assert!(
        blocks["data"].as_array().unwrap().iter().any(|b| b["domain"] == "web.zone.test" && b["ip_address"] == FIRST)
    );

    // The record moves to the second address: the running server's reconciler follows it at the TTL (2 s).
    let serving = Serving::start(dir.path());
    dns.serve(&format!("{SECOND} web.zone.test\n"));
    let took = within("following the changed record", || net.ping(CLIENT_A, FIRST) && !net.ping(CLIENT_A, SECOND));
    println!("the block followed the record from {FIRST} to {SECOND} in {took:.1?} (TTL 2 s, min_refresh 1 s)");
    drop(serving);

    // The record moves back while no server runs; a new one picks the block up from the store.
    dns.serve(&format!("{FIRST} web.zone.test\n"));
    let serving = Serving::start(dir.path());
    let took = within("following after a restart", || !net.ping(CLIENT_A, FIRST) && net.ping(CLIENT_A, SECOND));
    println!("after a restart of the server the block followed the record back in {took:.1?}");
    drop(serving);

    let gone = portcullis(dir.path(), &["call", "unblock_domain", "domain=web.zone.test", "--json"]);
    assert_eq!(gone["status"], "applied", "{gone}");
    assert!(net.ping(CLIENT_A, FIRST) && net.ping(CLIENT_A, SECOND) && net.tcp(CLIENT_B, 8080));
    let blocks = portcullis(dir.path(), &["call", "list_blocks", "--json"]);
    assert!(!blocks.to_string().contains("web.zone.test"), "nothing of the block is left: {blocks}");
}

#[test]
fn devices_behind_the_router_come_from_its_neighbour_table_with_vendor_and_go_offline_when_gone() {
    let net = Topology::new();
    let ip = |args: &[&str]| assert!(std::process::Command::new("ip").args(args).status().expect("ip").success());
    // An Intel NIC's address on the client, so the vendor is the registry's.
    ip(&["-n", &net.client, "link", "set", "eth0", "address", "00:1b:21:aa:bb:01"]);
    let dir = admin_on_router(&net);
    let leases = dir.path().join("dnsmasq.leases");
    std::fs::write(&leases, format!("1893456000 00:1b:21:aa:bb:01 {CLIENT_A} workstation *\n")).expect("leases");
    let config = dir.path().join("config.yaml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "devices: {{idle: 3s, leases: [{{path: {}, format: dnsmasq, interface: lan}}]}}\n",
        leases.display()
    ));
    std::fs::write(&config, text).expect("config");
    assert!(net.ping(CLIENT_A, SERVER), "the router learns the client as a neighbour");

    let online = portcullis(dir.path(), &["call", "get_online_devices", "--json"]);
    let rows = online["data"].as_array().cloned().unwrap_or_default();
    let client = rows.iter().find(|d| d["address"] == CLIENT_A).unwrap_or_else(|| panic!("{online}"));
    assert_eq!(client["mac"], "00:1b:21:aa:bb:01");
    assert_eq!(client["vendor"], "Intel Corporate", "{client}");
    assert_eq!((client["hostname"].as_str(), client["interface"].as_str()), (Some("workstation"), Some("lan")));
    assert!(rows.iter().any(|d| d["address"] == SERVER && d["interface"] == "wan"), "the server, behind wan: {online}");

    // The client leaves: its neighbour entry is gone; after the idle time it is offline, still listed.
    ip(&["-n", &net.router, "neigh", "flush", "dev", "lan0"]);
    ip(&["-n", &net.client, "link", "set", "eth0", "down"]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let offline = portcullis(dir.path(), &["call", "get_offline_devices", "--json"]);
    let gone = offline["data"].as_array().and_then(|r| r.iter().find(|d| d["address"] == CLIENT_A).cloned());
    let gone = gone.unwrap_or_else(|| panic!("{offline}"));
    assert_eq!((gone["status"].as_str(), gone["mac"].as_str()), (Some("offline"), Some("00:1b:21:aa:bb:01")));
    let listed = portcullis(dir.path(), &["call", "list_devices", "status=online", "--json"]);
    assert!(!listed.to_string().contains(CLIENT_A), "{listed}");
}

#[test]
fn bandwidth_per_device_is_counted_in_the_kernel_within_five_percent_of_a_known_transfer() {
    let net = Topology::new();
    let dir = admin_on_router(&net);
    let config = dir.path().join("config.yaml");
    let text = std::fs::read_to_string(&config).expect("config").replace("wan: wan0}", "wan: wan0}, accounting: true");
    assert!(text.contains("accounting: true"), "{text}");
    std::fs::write(&config, text).expect("config");

    let first = portcullis(dir.path(), &["call", "get_bandwidth_usage", "timeframe=1h", "--json"]);
    assert!(first["source"].as_str().is_some_and(|s| s.contains("kernel")), "{first}");
    assert!(net.nft(&["list", "tables"]).contains("portcullis_acct"), "the accounting table is made on first use");

    // 10 MB from the first client to the server's listener; the second client sends nothing.
    const SIZE: u64 = 10_000_000;
    let sent = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {SIZE} /dev/zero | ip netns exec {} nc -N -w 5 -s {CLIENT_A} {SERVER} 8080", net.client))
        .status()
        .expect("nc");
    assert!(sent.success());
    let usage = portcullis(dir.path(), &["call", "get_bandwidth_usage", "timeframe=1h", "interface=lan", "--json"]);
    let rows = usage["data"].as_array().cloned().unwrap_or_default();
    let top = rows.first().unwrap_or_else(|| panic!("{usage}"));
    assert_eq!(top["address"], CLIENT_A, "the sender is on top: {usage}");
    let out = top["bytes_out"].as_u64().unwrap();
    let error = (out as f64 - SIZE as f64).abs() / SIZE as f64;
    println!(
        "10 MB sent: the kernel counted {out} bytes out of {CLIENT_A} ({:.2}% over, IP and TCP headers)",
        error * 100.0
    );
    assert!(error < 0.05, "within 5%: {out} bytes for {SIZE}");
    assert!(top["bytes_in"].as_u64().unwrap() < SIZE / 10, "what came back is ACKs: {top}");
    assert_eq!(usage["complete"], true, "counted since the table was made, within the timeframe: {usage}");
    assert!(!rows.iter().any(|r| r["address"] == SERVER), "the server is behind wan, not a device: {usage}");
}
