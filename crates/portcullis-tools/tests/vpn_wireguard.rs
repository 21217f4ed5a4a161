//! VPN users on a Linux target with a real tunnel: the router namespace runs a WireGuard interface
//! (`wireguard-go`, userspace), `create_vpn_user` returns a client configuration, and a second `wireguard-go`
//! in the client namespace, brought up with exactly that configuration, completes a handshake and pings the
//! server behind the router through the tunnel. After `delete_vpn_user`, and separately after `expires`, the
//! tunnel carries nothing. The private key is in the answer once and nowhere in the store.

#[path = "common/logs.rs"]
mod logs;
use logs::captured_logs;

#[path = "../../portcullis-nftables/tests/common/mod.rs"]
mod nft;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nft::{SERVER, Topology};
use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_nftables::NftablesFirewall;
use portcullis_nftables::wireguard::WireguardSettings;
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::json;

fn admin() -> CallContext {
    CallContext::new(Principal { name: "root".into(), role: "admin".into() }, Transport::Cli, None)
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `wireguard-go` interface in a namespace, stopped on drop. Names are per process: the userspace sockets of
/// every namespace share `/var/run/wireguard`.
struct WgDevice {
    name: String,
    child: Child,
}

impl WgDevice {
    fn new(ns: &str, tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("wg{tag}{}x{n}", std::process::id() % 100_000);
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "wireguard-go", "-f", &name])
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wireguard-go (apt-get install wireguard-go wireguard-tools)");
        let sock = format!("/var/run/wireguard/{name}.sock");
        for _ in 0..100 {
            if std::path::Path::new(&sock).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(std::path::Path::new(&sock).exists(), "wireguard-go made no {sock}");
        WgDevice { name, child }
    }
}

impl Drop for WgDevice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.name));
    }
}

/// The client side from the returned configuration: the keys and peer go to `wg setconf` (which takes the
/// `[Interface]` key and the `[Peer]` section), the address and routes to `ip`, as `wg-quick` would.
fn bring_up_client(ns: &str, dev: &WgDevice, config: &str, dir: &std::path::Path) {
    let address = config.lines().find_map(|l| l.strip_prefix("Address = ")).expect("Address").to_string();
    let allowed = config.lines().find_map(|l| l.strip_prefix("AllowedIPs = ")).expect("AllowedIPs").to_string();
    let wg_only: String = config
        .lines()
        .filter(|l| !l.starts_with("Address = ") && !l.starts_with("DNS = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("client.conf");
    std::fs::write(&path, wg_only).expect("write");
    run(&["ip", "netns", "exec", ns, "wg", "setconf", &dev.name, path.to_str().expect("path")]);
    run(&["ip", "-n", ns, "address", "add", &address, "dev", &dev.name]);
    run(&["ip", "-n", ns, "link", "set", &dev.name, "up"]);
    for net in allowed.split(", ") {
        run(&["ip", "-n", ns, "route", "replace", net, "dev", &dev.name]);
    }
}

fn ping_through(ns: &str, from: &str, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c1", "-W2", "-I", from, to])
        .stdout(Stdio::null())
        .status()
        .expect("ping")
        .success()
}

struct Lab {
    net: Topology,
    server_dev: WgDevice,
    data: tempfile::TempDir,
    fw: Arc<NftablesFirewall>,
    store: Arc<Store>,
    svc: ToolService,
}

fn service(fw: Arc<NftablesFirewall>, store: Arc<Store>) -> ToolService {
    let guard = Guard::new(
        GuardSettings {
            rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
            ..GuardSettings::default()
        },
        Auditor::new(store, None).expect("auditor"),
    )
    .expect("guard");
    ToolService::new(guard, vec![Target::new("router", fw)]).expect("service")
}

fn lab() -> Lab {
    let net = Topology::new();
    let server_dev = WgDevice::new(&net.router, "s");
    let key = run(&["wg", "genkey"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("server.key");
    std::fs::write(&key_file, key.trim()).expect("key");
    let r = net.router.clone();
    run(&[
        "ip",
        "netns",
        "exec",
        &r,
        "wg",
        "set",
        &server_dev.name,
        "private-key",
        key_file.to_str().expect("p"),
        "listen-port",
        "51820",
    ]);
    run(&["ip", "-n", &r, "address", "add", "10.8.0.1/24", "dev", &server_dev.name]);
    run(&["ip", "-n", &r, "link", "set", &server_dev.name, "up"]);
    let mut settings = net.settings();
    settings.wireguard = Some(WireguardSettings {
        device: server_dev.name.clone(),
        address: "10.8.0.1/24".parse().expect("net"),
        endpoint: "10.77.1.1:51820".into(),
        client_allowed_ips: vec!["10.8.0.0/24".parse().expect("net"), "10.77.2.0/24".parse().expect("net")],
        client_dns: Vec::new(),
    });
    let data = tempfile::tempdir().expect("data dir");
    let store = Arc::new(Store::open(&data.path().join("portcullis.db")).expect("store"));
    let fw = Arc::new(NftablesFirewall::new("router", settings, store.clone()));
    let svc = service(fw.clone(), store.clone());
    Lab { net, server_dev, data, fw, store, svc }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_user_gets_a_tunnel_that_works_and_loses_it_when_deleted() {
    let logs = captured_logs();
    let lab = lab();
    let created = lab
        .svc
        .call(&admin(), "create_vpn_user", json!({"username": "remote_user", "static_ip": "10.8.0.100"}))
        .await
        .expect("create_vpn_user");
    assert_eq!(created["verified"], true, "{created}");
    let config = created["client_config"].as_str().expect("a client configuration").to_string();
    let private_key = config.lines().find_map(|l| l.strip_prefix("PrivateKey = ")).expect("key").to_string();
    assert!(config.contains("Address = 10.8.0.100/32") && config.contains("Endpoint = 10.77.1.1:51820"), "{config}");

    let client_dev = WgDevice::new(&lab.net.client, "c");
    let dir = tempfile::tempdir().expect("tempdir");
    bring_up_client(&lab.net.client, &client_dev, &config, dir.path());
    assert!(ping_through(&lab.net.client, "10.8.0.100", "10.8.0.1"), "the tunnel to the router carries pings");
    assert!(ping_through(&lab.net.client, "10.8.0.100", SERVER), "and reaches the server behind it");
    let handshakes =
        run(&["ip", "netns", "exec", &lab.net.client, "wg", "show", &client_dev.name, "latest-handshakes"]);
    assert!(handshakes.split_whitespace().nth(1).is_some_and(|t| t != "0"), "a handshake: {handshakes}");

    let listed = lab.svc.call(&admin(), "list_vpn_users", json!({})).await.expect("list");
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["users"][0]["username"], "remote_user");
    let status = lab.svc.call(&admin(), "get_vpn_status", json!({"type": "wireguard"})).await.expect("status");
    assert_eq!(status["users"][0]["name"], "remote_user", "{status}");
    let grants = lab.svc.call(&admin(), "list_grants", json!({})).await.expect("grants");
    assert!(grants.to_string().contains("10.8.0.100"), "the address is granted: {grants}");

    // The same address or name again is refused, naming the field, nothing changed.
    let again =
        lab.svc.call(&admin(), "create_vpn_user", json!({"username": "other", "static_ip": "10.8.0.100"})).await;
    assert_eq!(again.expect_err("taken").field.as_deref(), Some("static_ip"));
    for (args, field) in [
        (json!({"username": "x;rm -rf", "static_ip": "10.8.0.7"}), "username"),
        (json!({"username": "outside", "static_ip": "10.9.0.7"}), "static_ip"),
        (json!({"username": "cert", "certificate": "user_cert.crt"}), "certificate"),
    ] {
        let refused = lab.svc.call(&admin(), "create_vpn_user", args.clone()).await.expect_err("refused");
        assert_eq!(refused.field.as_deref(), Some(field), "{args}: {refused:?}");
    }
    let operator = CallContext::new(Principal { name: "op".into(), role: "operator".into() }, Transport::Cli, None);
    let denied = lab.svc.call(&operator, "create_vpn_user", json!({"username": "op_user"})).await;
    assert_eq!(denied.expect_err("admin only").code, portcullis_core::firewall::ErrorCode::AuthorizationFailed);

    let deleted = lab.svc.call(&admin(), "delete_vpn_user", json!({"username": "remote_user"})).await.expect("delete");
    assert_eq!(deleted["verified"], true, "{deleted}");
    assert!(!ping_through(&lab.net.client, "10.8.0.100", "10.8.0.1"), "no tunnel after the deletion");
    let peers = run(&["ip", "netns", "exec", &lab.net.router, "wg", "show", &lab.server_dev.name, "peers"]);
    assert!(peers.trim().is_empty(), "the peer is gone: {peers}");
    let grants = lab.svc.call(&admin(), "list_grants", json!({})).await.expect("grants");
    assert!(!grants.to_string().contains("10.8.0.100"), "and its grant: {grants}");

    // The private key was in the one answer: nowhere in the store, the audit or the journal.
    let audit = lab.svc.call(&admin(), "get_audit_log", json!({"limit": 100})).await.expect("audit");
    assert!(!audit.to_string().contains(&private_key));
    let logged = logs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(!logged.is_empty(), "the capture sees the service's log lines");
    assert!(!logged.windows(private_key.len()).any(|w| w == private_key.as_bytes()), "no log line holds the key");
    for entry in std::fs::read_dir(lab.data.path()).expect("data dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        let found = bytes.windows(private_key.len()).any(|w| w == private_key.as_bytes());
        assert!(!found, "{} holds the private key", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_user_is_removed_by_the_reconciler() {
    let lab = lab();
    let created = lab
        .svc
        .call(&admin(), "create_vpn_user", json!({"username": "contractor", "expires": "2s"}))
        .await
        .expect("create_vpn_user");
    let config = created["client_config"].as_str().expect("config").to_string();
    assert!(config.contains("Address = 10.8.0.2/32"), "the first free address: {config}");
    let client_dev = WgDevice::new(&lab.net.client, "e");
    let dir = tempfile::tempdir().expect("tempdir");
    bring_up_client(&lab.net.client, &client_dev, &config, dir.path());
    assert!(ping_through(&lab.net.client, "10.8.0.2", "10.8.0.1"), "the tunnel works until it expires");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let swept = lab.svc.sweep_expired().await;
    assert!(swept.iter().all(|(_, r)| r.is_ok()), "{swept:?}");
    let listed = lab.svc.call(&admin(), "list_vpn_users", json!({})).await.expect("list");
    assert_eq!(listed["count"], 0, "{listed}");
    assert!(!ping_through(&lab.net.client, "10.8.0.2", "10.8.0.1"), "no tunnel after the expiry");
}

/// A WireGuard interface that is not there stops VPN calls, with why, and nothing else: the table's changes go on.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_interface_fails_the_vpn_calls_and_no_other_change() {
    let net = Topology::new();
    let mut settings = net.settings();
    settings.wireguard = Some(WireguardSettings {
        device: "wgmissing0".into(),
        address: "10.8.0.1/24".parse().expect("net"),
        endpoint: "10.77.1.1:51820".into(),
        client_allowed_ips: Vec::new(),
        client_dns: Vec::new(),
    });
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let fw = Arc::new(NftablesFirewall::new("router", settings, store.clone()));
    let guard = Guard::new(GuardSettings::default(), Auditor::new(store, None).expect("auditor")).expect("guard");
    let svc = ToolService::new(guard, vec![Target::new("router", fw)]).expect("service");
    let blocked = svc
        .call(&admin(), "block_ip_address", json!({"ip_address": "192.0.2.9", "duration": "1h", "reason": "scan"}))
        .await
        .expect("a block is not held up by the VPN interface");
    assert_eq!(blocked["verified"], true, "{blocked}");
    let listed = svc.call(&admin(), "list_vpn_users", json!({})).await.expect_err("no interface");
    assert!(listed.message.contains("wgmissing0"), "{listed:?}");
    let created = svc.call(&admin(), "create_vpn_user", json!({"username": "u1"})).await.expect_err("no interface");
    assert!(created.message.contains("wgmissing0"), "{created:?}");
}

/// The interface restarted from a file without Portcullis' peers: the reconciler's next whole read (here the first
/// of a restarted service) puts the confirmed users' peers back, audited as a restore, and the tunnel works again.
#[tokio::test(flavor = "multi_thread")]
async fn peers_the_interface_lost_are_put_back_by_the_reconciler() {
    let lab = lab();
    let created = lab
        .svc
        .call(&admin(), "create_vpn_user", json!({"username": "field_tech", "static_ip": "10.8.0.50"}))
        .await
        .expect("create_vpn_user");
    let config = created["client_config"].as_str().expect("config").to_string();
    let public_key = created["plan"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["op"] == "create_vpn_account"))
        .and_then(|o| o["after"]["public_key"].as_str())
        .expect("the planned public key")
        .to_string();
    let client_dev = WgDevice::new(&lab.net.client, "r");
    let dir = tempfile::tempdir().expect("tempdir");
    bring_up_client(&lab.net.client, &client_dev, &config, dir.path());
    assert!(ping_through(&lab.net.client, "10.8.0.50", "10.8.0.1"));

    run(&["ip", "netns", "exec", &lab.net.router, "wg", "set", &lab.server_dev.name, "peer", &public_key, "remove"]);
    assert!(!ping_through(&lab.net.client, "10.8.0.50", "10.8.0.1"), "the peer is gone from the interface");
    let restarted = service(lab.fw.clone(), lab.store.clone());
    let swept = restarted.sweep_expired().await;
    assert!(swept.iter().all(|(_, r)| r.is_ok()), "{swept:?}");
    let peers = run(&["ip", "netns", "exec", &lab.net.router, "wg", "show", &lab.server_dev.name, "allowed-ips"]);
    assert!(peers.contains(&public_key) && peers.contains("10.8.0.50/32"), "the peer is back: {peers}");
    // The client reconnects (its old session died with the server's peer) with the same configuration.
    let server_key = config.lines().filter_map(|l| l.strip_prefix("PublicKey = ")).next().expect("server key");
    run(&["ip", "netns", "exec", &lab.net.client, "wg", "set", &client_dev.name, "peer", server_key, "remove"]);
    let conf = dir.path().join("client.conf");
    run(&["ip", "netns", "exec", &lab.net.client, "wg", "addconf", &client_dev.name, conf.to_str().expect("path")]);
    assert!(ping_through(&lab.net.client, "10.8.0.50", "10.8.0.1"), "put back: the same configuration works again");
    let audit = restarted.call(&admin(), "get_audit_log", json!({"limit": 20})).await.expect("audit");
    assert!(audit.to_string().contains("field_tech"), "the restore is audited: {audit}");
}
