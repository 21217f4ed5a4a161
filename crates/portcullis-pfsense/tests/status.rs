//! Reads besides rules (system, VPN, firewall log), authentication methods, TLS options and paging.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{KEY, Lab};
use portcullis_core::firewall::{ErrorCode, Firewall, VpnKind};
use portcullis_pfrest::{Auth, ClientConfig, PfRestClient, PfRestVersion};
use portcullis_pfrest_emulator::EmulatorConfig;

fn with_users(config: EmulatorConfig) -> EmulatorConfig {
    EmulatorConfig { users: vec![("admin".into(), "pfsense-secret".into())], ..config }
}

#[tokio::test]
async fn system_status_reads_pfsense() {
    let lab = Lab::start().await;
    let st = lab.fw.system_status().await.unwrap();
    assert_eq!(st.cpu_usage, 6.0);
    assert_eq!(st.memory_usage, 23.0);
    assert!(st.uptime >= 3 * 86_400, "{}", st.uptime);
    assert!(st.uptime_human.contains('d'), "{}", st.uptime_human);
    assert!(st.version.contains("v2.10.0"), "{}", st.version);
    assert!(st.platform.starts_with("pfSense"), "{}", st.platform);
    assert_eq!(st.hostname, "127.0.0.1");
    let check = |name: &str| st.health.iter().find(|h| h.name == name).unwrap_or_else(|| panic!("{name}")).clone();
    assert!(check("api").ok);
    assert!(check("pending_changes").ok);
    let gateways = check("gateways");
    assert!(!gateways.ok, "WAN_DHCP6 is down in the emulator");
    assert!(gateways.detail.contains("WAN_DHCP6"), "{}", gateways.detail);
    let info = lab.fw.info();
    assert_eq!(info.kind, portcullis_core::firewall::BackendKind::Pfsense);
    let links = lab.fw.interface_counters().await.unwrap().expect("pfSense counts every interface");
    let wan = links.iter().find(|l| l.interface == "wan").expect("wan");
    assert_eq!(
        (wan.bytes_in, wan.bytes_out, wan.packets_in, wan.packets_out),
        (123_456_789, 98_765_432, 234_567, 198_765)
    );
    assert!(!wan.device.is_empty(), "{wan:?}");
    assert_eq!(lab.fw.rule_hits().await.unwrap(), None, "pfRest reports no rule counters");
    lab.finish().await;
}

#[tokio::test]
async fn vpn_status_covers_openvpn_ipsec_and_wireguard() {
    let lab = Lab::start().await;
    let all = lab.fw.vpn_status(None).await.unwrap();
    let kinds = |k: VpnKind| all.connections.iter().filter(|c| c.kind == k).count();
    assert_eq!(kinds(VpnKind::Openvpn), 2, "a server and a client");
    assert_eq!(kinds(VpnKind::Ipsec), 1);
    assert_eq!(kinds(VpnKind::Wireguard), 1);
    let alice = all.users.iter().find(|u| u.name == "alice").unwrap();
    assert_eq!(alice.remote_address.as_deref(), Some("198.51.100.23:51234"));
    assert_eq!(alice.virtual_address.as_deref(), Some("10.0.1.2"));
    assert_eq!((alice.bytes_in, alice.bytes_out), (123_456, 654_321));
    let ipsec = all.connections.iter().find(|c| c.kind == VpnKind::Ipsec).unwrap();
    assert_eq!(ipsec.status, "established");
    assert_eq!(ipsec.remote.as_deref(), Some("192.0.2.10"));
    assert_eq!((ipsec.bytes_in, ipsec.bytes_out), (10_240, 20_480));
    let laptop = all.users.iter().find(|u| u.kind == VpnKind::Wireguard).unwrap();
    assert_eq!(laptop.name, "laptop");
    assert_eq!(laptop.virtual_address.as_deref(), Some("10.6.0.2/32"));

    let only = lab.fw.vpn_status(Some(VpnKind::Ipsec)).await.unwrap();
    assert!(only.connections.iter().all(|c| c.kind == VpnKind::Ipsec) && only.users.is_empty());
    lab.finish().await;

    let lab =
        Lab::start_with(EmulatorConfig { wireguard_installed: false, ..EmulatorConfig::with_api_key(KEY) }, |_| {})
            .await;
    let all = lab.fw.vpn_status(None).await.unwrap();
    assert!(all.connections.iter().all(|c| c.kind != VpnKind::Wireguard), "no package, no WireGuard rows");
    assert!(all.users.iter().all(|u| u.kind != VpnKind::Wireguard));
    assert!(!all.connections.is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn firewall_log_is_the_newest_lines_newest_last_on_every_version() {
    for version in ["v2.10.0", "v2.7.2"] {
        let lines: Vec<String> = (1..=50).map(|i| format!("line {i:02}")).collect();
        let cfg =
            EmulatorConfig { version: version.into(), firewall_log: Some(lines), ..EmulatorConfig::with_api_key(KEY) };
        let lab = Lab::start_with(cfg, |_| {}).await;
        let log = lab.fw.firewall_log(5).await.unwrap();
        assert_eq!(log, vec!["line 46", "line 47", "line 48", "line 49", "line 50"], "{version}");
        assert_eq!(lab.fw.firewall_log(500).await.unwrap().len(), 50);
        assert!(lab.fw.firewall_log(0).await.unwrap().is_empty());
        lab.finish().await;
    }
    // The default log holds real filterlog lines.
    let lab = Lab::start().await;
    let all = lab.fw.firewall_log(1000).await.unwrap();
    assert_eq!(all.len(), 63, "the 63 real filterlog samples");
    let log = lab.fw.firewall_log(3).await.unwrap();
    assert_eq!(log, all[60..].to_vec());
    lab.finish().await;
}

#[tokio::test]
async fn firewall_log_pages_count_from_the_newest_line_oldest_first_on_every_version() {
    for version in ["v2.10.0", "v2.7.2"] {
        let lines: Vec<String> = (1..=50).map(|i| format!("line {i:02}")).collect();
        let cfg =
            EmulatorConfig { version: version.into(), firewall_log: Some(lines), ..EmulatorConfig::with_api_key(KEY) };
        let lab = Lab::start_with(cfg, |_| {}).await;
        assert!(lab.fw.pages_firewall_log());
        let page = lab.fw.firewall_log_page(10, 3).await.unwrap();
        assert_eq!(page, vec!["line 38", "line 39", "line 40"], "{version}");
        let oldest = lab.fw.firewall_log_page(48, 5).await.unwrap();
        assert_eq!(oldest, vec!["line 01", "line 02"], "{version}: the oldest page is short");
        assert!(lab.fw.firewall_log_page(50, 5).await.unwrap().is_empty(), "{version}");
        // Pages read one after another join up into the whole log.
        let mut whole: Vec<String> = Vec::new();
        for skip in (0..50).step_by(7) {
            let mut page = lab.fw.firewall_log_page(skip, 7).await.unwrap();
            page.extend(whole);
            whole = page;
        }
        assert_eq!(whole, lab.fw.firewall_log(50).await.unwrap(), "{version}");
        lab.finish().await;
    }
}

#[tokio::test]
async fn jwt_auth_gets_a_token_reuses_it_and_renews_it() {
    let cfg = EmulatorConfig { jwt_exp: Duration::from_secs(3), ..with_users(EmulatorConfig::with_api_key(KEY)) };
    let lab = Lab::start_with(cfg, |c| {
        c.auth = Auth::Jwt { username: "admin".into(), password: "pfsense-secret".into() };
    })
    .await;
    lab.fw.snapshot().await.unwrap();
    lab.fw.snapshot().await.unwrap();
    assert_eq!(lab.count("POST", "/api/v2/auth/jwt"), 1, "one token for both snapshots");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    lab.fw.snapshot().await.unwrap();
    assert_eq!(lab.count("POST", "/api/v2/auth/jwt"), 2, "renewed once expired");

    // A token the firewall stops accepting is renewed once; still refused → authentication_failed.
    lab.emu.faults().set_wrong_credentials(true);
    lab.emu.clear_request_log();
    let err = lab.fw.client().rules().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthenticationFailed);
    assert!(!err.message.contains("pfsense-secret"));
    lab.emu.faults().set_wrong_credentials(false);
    lab.finish().await;
}

#[tokio::test]
async fn basic_auth_works_and_a_wrong_password_is_refused() {
    let lab = Lab::start_with(with_users(EmulatorConfig::with_api_key(KEY)), |c| {
        c.auth = Auth::Basic { username: "admin".into(), password: "pfsense-secret".into() };
    })
    .await;
    assert_eq!(lab.fw.snapshot().await.unwrap().rules.len(), 2);
    let mut cfg = common::client_config(&lab.emu);
    cfg.auth = Auth::Basic { username: "admin".into(), password: "nope-secret".into() };
    let err = common::firewall(cfg, &lab.store).snapshot().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthenticationFailed);
    assert!(!err.message.contains("nope-secret"));
    lab.finish().await;
}

#[tokio::test]
async fn tls_options_build_clients() {
    let ca = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-ca.pem");
    let mut cfg = ClientConfig::new("https://fw.example", Auth::ApiKey("k".into()));
    cfg.verify_ssl = false;
    assert!(PfRestClient::new(cfg.clone()).is_ok());
    cfg.verify_ssl = true;
    cfg.ca_bundle = Some(ca);
    assert!(PfRestClient::new(cfg.clone()).is_ok());
    cfg.ca_bundle = Some(PathBuf::from("/nonexistent/ca.pem"));
    let err = PfRestClient::new(cfg.clone()).unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
    assert!(err.message.contains("CA bundle"), "{}", err.message);
    let garbage = std::env::temp_dir().join(format!("portcullis-not-a-ca-{}.pem", std::process::id()));
    std::fs::write(&garbage, "hello").unwrap();
    cfg.ca_bundle = Some(garbage.clone());
    assert!(PfRestClient::new(cfg).is_err());
    std::fs::remove_file(garbage).unwrap();
    assert!(ClientConfig::new("https://fw", Auth::ApiKey("k".into())).with_timeouts_secs(3, 30).verify_ssl);
}

#[tokio::test]
async fn lists_are_paged_and_the_version_is_cached() {
    let lab = Lab::start_with(EmulatorConfig::with_api_key(KEY), |c| c.page_size = 1).await;
    let state = lab.fw.snapshot().await.unwrap();
    assert_eq!(state.rules.len(), 2);
    assert_eq!(state.interfaces.len(), 3);
    let rule_pages: Vec<String> =
        lab.emu.request_log().into_iter().filter(|r| r.path == "/api/v2/firewall/rules").map(|r| r.query).collect();
    assert_eq!(rule_pages, vec!["limit=1&offset=0", "limit=1&offset=1", "limit=1&offset=2"]);

    let client = lab.fw.client();
    assert_eq!(client.version().await.unwrap(), PfRestVersion::new(2, 10, 0));
    assert!(client.supports_dry_run().await.unwrap());
    client.version().await.unwrap();
    assert_eq!(lab.count("GET", "/api/v2/system/restapi/version"), 1, "cached");
    lab.finish().await;
}
