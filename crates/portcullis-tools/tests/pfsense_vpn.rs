//! VPN users on pfSense through `ToolService::call` against the pfRest emulator (seeded like a box after the OpenVPN
//! wizard: server `ovpns1` on 10.0.1.0/24 in subnet topology, its CA, and WireGuard tunnel `tun_wg0` on
//! 10.6.0.0/24 with one peer made by hand).
//!
//! - The customer's call (`certificate: "user_cert.crt"`, `static_ip: 10.0.1.100`) makes the user with that
//!   certificate and an override with the address, and hands over the exported client configuration and the
//!   password once; a taken address, an address outside the tunnel network and hostile names are refused naming
//!   the field with nothing made; deleting leaves the firewall's objects exactly as before.
//! - Without a certificate one is generated, and goes with the user.
//! - A failure of the override step leaves no user or certificate behind.
//! - WireGuard: a peer with the key Portcullis made, applied, and a client configuration for the tunnel.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::collections::BTreeMap;

use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_pfrest::{Auth, ClientConfig, PfRestClient};
use portcullis_pfrest_emulator::EmulatorConfig;
use serde_json::{Value, json};

#[path = "common/logs.rs"]
mod logs;

#[path = "common/pfsense.rs"]
mod pfsense_service;

use pfsense_service::{KEY, PfSenseService};

fn admin() -> CallContext {
    CallContext::new(Principal { name: "ada".into(), role: "admin".into() }, Transport::Cli, None)
}

fn operator() -> CallContext {
    CallContext::new(Principal { name: "otto".into(), role: "operator".into() }, Transport::Cli, None)
}

/// The firewall's VPN objects and the addresses in its aliases: what creating and deleting a user must leave as it
/// was. (The grant list a first grant makes stays, empty, as after any grant.)
fn objects(s: &PfSenseService) -> (BTreeMap<String, Vec<Value>>, Vec<Value>) {
    let state = s.emu.state();
    let entries = state.aliases.iter().flat_map(|a| a["address"].as_array().cloned().unwrap_or_default()).collect();
    (state.vpn, entries)
}

async fn start() -> PfSenseService {
    pfsense_service::start(EmulatorConfig::with_api_key(KEY)).await
}

/// A user certificate an administrator made earlier in the certificate manager, signed by the server's CA.
async fn user_certificate(s: &PfSenseService, descr: &str) -> String {
    let client = PfRestClient::new(ClientConfig::new(s.emu.base_url(), Auth::ApiKey(KEY.into()))).unwrap();
    let ca = s.emu.state().vpn_objects("authorities")[0]["refid"].as_str().unwrap().to_string();
    let made: Value = client
        .post(
            "/api/v2/system/certificate/generate",
            &json!({"descr": descr, "caref": ca, "keytype": "RSA", "keylen": 2048, "digest_alg": "sha256",
                    "dn_commonname": "remote_user", "type": "user"}),
        )
        .await
        .unwrap();
    made["refid"].as_str().unwrap().to_string()
}

fn field_of(e: &portcullis_guard::CallError) -> (&str, Option<&str>) {
    (e.code.as_str(), e.field.as_deref())
}

#[tokio::test]
async fn the_customers_call_makes_user_and_override_refuses_what_is_taken_and_deletion_restores_everything() {
    logs::captured_logs();
    let s = start().await;
    let refid = user_certificate(&s, "user_cert.crt").await;
    let before = objects(&s);
    s.emu.clear_schema_violations();

    let call = json!({"username": "remote_user", "certificate": "user_cert.crt", "static_ip": "10.0.1.100"});
    let made = s.svc.call(&admin(), "create_vpn_user", call.clone()).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(made["status"], "applied", "{made}");
    assert_eq!(made["verified"], true);
    let state = s.emu.state();
    let users = state.vpn_objects("users");
    let user = users.iter().find(|u| u["name"] == "remote_user").expect("the user on the firewall");
    assert_eq!(user["cert"], json!([refid]), "the named certificate: {user}");
    assert!(user.get("password").is_none(), "pfRest never shows a password");
    let cso = state.vpn_objects("csos").iter().find(|c| c["common_name"] == "remote_user").cloned().expect("override");
    assert_eq!(cso["tunnel_network"], "10.0.1.100/24", "the client's address with the server's mask: {cso}");
    assert_eq!(cso["server_list"], json!(["ovpns1"]));
    assert_eq!(state.vpn_objects("certificates").len(), before.0["certificates"].len(), "no certificate was made");
    let config = made["client_config"].as_str().expect("the exported configuration");
    assert!(config.contains("<cert>") && config.contains("<key>") && config.contains("remote "), "{config}");
    let password = made["password"].as_str().expect("the password").to_string();
    assert!(password.len() >= 20);
    assert!(made["secret_notice"].as_str().unwrap().contains("no copy"));
    assert!(s.emu.schema_violations().is_empty(), "{:?}", s.emu.schema_violations());

    let listed = s.svc.call(&admin(), "list_vpn_users", json!({})).await.unwrap();
    assert_eq!(listed["count"], 1, "{listed}");
    let account = &listed["users"][0];
    assert_eq!(
        (&account["username"], &account["type"], &account["server"], &account["address"], &account["certificate"]),
        (&json!("remote_user"), &json!("openvpn"), &json!("ovpns1"), &json!("10.0.1.100"), &json!(refid))
    );
    assert!(!listed.to_string().contains(&password));

    // Refused, naming the field, with nothing made.
    let after_create = objects(&s);
    let refusals = [
        (json!({"username": "second", "type": "openvpn", "static_ip": "10.0.1.100"}), "static_ip"),
        (json!({"username": "outside", "type": "openvpn", "static_ip": "10.0.2.5"}), "static_ip"),
        (json!({"username": "bob; rm -rf /", "type": "openvpn", "static_ip": "10.0.1.101"}), "username"),
        (json!({"username": "../../etc/passwd", "type": "openvpn"}), "username"),
        (json!({"username": "admin", "type": "openvpn"}), "username"),
        (json!({"username": "frank", "certificate": "no_such.crt"}), "certificate"),
        (json!({"username": "gina"}), "server"),
    ];
    for (args, field) in refusals {
        let e = s.svc.call(&admin(), "create_vpn_user", args.clone()).await.unwrap_err();
        assert_eq!(field_of(&e), ("validation_error", Some(field)), "{args}: {e:?}");
        assert_eq!(objects(&s), after_create, "{args} changed the firewall");
    }
    let e = s.svc.call(&operator(), "create_vpn_user", json!({"username": "otto"})).await.unwrap_err();
    assert_eq!(e.code.as_str(), "authorization_failed", "VPN users are the admins': {e:?}");

    let deleted = s.svc.call(&admin(), "delete_vpn_user", json!({"username": "remote_user"})).await.unwrap();
    assert_eq!(deleted["status"], "applied", "{deleted}");
    assert_eq!(objects(&s), before, "the firewall's objects are as before the user (the named certificate stays)");
    let audit = s.svc.call(&admin(), "get_audit_log", json!({"limit": 50})).await.unwrap();
    assert!(!audit.to_string().contains(&password), "the password is in no audit record");
    // Every log line of the process, at every level (the pfRest client traces answers at TRACE).
    let logged = logs::logged_text();
    assert!(logged.contains("pfRest answer"), "the capture sees the client's TRACE lines");
    let key = config.split("<key>\n").nth(1).and_then(|k| k.split("</key>").next()).unwrap().trim().to_string();
    assert!(!logged.contains(&password), "no log line holds the password");
    assert!(!logged.contains(&key), "no log line holds the private key");
    // The export's answer (the whole file, base64) is withheld from the trace, not merely cut.
    assert!(!logged.contains(&base64_of(config)[..60]), "the client export's answer is not traced");
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn a_generated_certificate_goes_with_its_user_and_a_failed_override_leaves_nothing() {
    let s = start().await;
    let before = objects(&s);

    // The override step fails: the user and the certificate made before it are taken back.
    s.emu.faults().fail_next_on("POST", "/api/v2/vpn/openvpn/cso", 1, 500);
    let e = s.svc.call(&admin(), "create_vpn_user", json!({"username": "carol", "type": "openvpn"})).await.unwrap_err();
    assert_eq!(e.code.as_str(), "apply_failed", "{e:?}");
    assert!(e.message.contains("rolled back"), "{}", e.message);
    s.emu.faults().reset();
    assert_eq!(objects(&s), before, "no user, certificate, override or grant is left");

    let made = s.svc.call(&admin(), "create_vpn_user", json!({"username": "carol", "type": "openvpn"})).await.unwrap();
    assert_eq!(made["status"], "applied", "{made}");
    let state = s.emu.state();
    let cert = state
        .vpn_objects("certificates")
        .iter()
        .find(|c| c["descr"] == "VPN user carol (Portcullis)")
        .cloned()
        .expect("a certificate made for carol");
    assert_eq!(cert["type"], "user");
    let user = state.vpn_objects("users").iter().find(|u| u["name"] == "carol").cloned().expect("carol");
    assert_eq!(user["cert"], json!([cert["refid"]]));
    let cso = state.vpn_objects("csos").iter().find(|c| c["common_name"] == "carol").cloned().expect("override");
    assert_eq!(cso["tunnel_network"], "10.0.1.2/24", "the first free address after the server's own");
    assert!(made["client_config"].as_str().unwrap().contains("<key>"), "{made}");

    let listed = s.svc.call(&admin(), "list_vpn_users", json!({})).await.unwrap();
    assert!(listed["users"][0].get("certificate").is_none(), "a generated certificate is not named: {listed}");
    s.svc.call(&admin(), "delete_vpn_user", json!({"username": "carol"})).await.unwrap();
    assert_eq!(objects(&s), before, "user, override and the certificate made for carol are gone");
}

#[tokio::test]
async fn a_wireguard_user_on_pfsense_is_a_peer_of_the_tunnel_with_a_client_configuration() {
    let s = start().await;
    let before = objects(&s);
    let tunnel_key = before.0["wireguard_tunnels"][0]["publickey"].as_str().unwrap().to_string();

    let made = s
        .svc
        .call(&admin(), "create_vpn_user", json!({"username": "dave", "type": "wireguard", "expires": "30d"}))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(made["status"], "applied", "{made}");
    let state = s.emu.state();
    let peer =
        state.vpn_objects("wireguard_peers").iter().find(|p| p["descr"].as_str().unwrap().contains("dave")).cloned();
    let peer = peer.expect("dave's peer");
    assert_eq!(peer["enabled"], true);
    assert_eq!(peer["tun"], "tun_wg0");
    assert_eq!(peer["allowedips"][0]["address"], "10.6.0.3", "10.6.0.2 is the hand-made peer's: {peer}");
    assert!(!state.pending_subsystems.contains(&"wireguard".to_string()));
    let config = made["client_config"].as_str().unwrap();
    assert!(config.contains(&format!("PublicKey = {tunnel_key}")), "{config}");
    assert!(config.contains("Endpoint = 127.0.0.1:51820"), "{config}");
    assert!(config.contains("Address = 10.6.0.3/32"), "{config}");
    let private_key = config.lines().find_map(|l| l.strip_prefix("PrivateKey = ")).unwrap().to_string();
    assert_eq!(
        peer["publickey"],
        made["plan"].as_array().unwrap().iter().find(|o| o["op"] == "create_vpn_account").unwrap()["after"]["public_key"]
    );

    let status = s.svc.call(&admin(), "get_vpn_status", json!({"type": "wireguard"})).await.unwrap();
    let dave = status["users"].as_array().unwrap().iter().find(|u| u["name"] == "dave").cloned();
    assert_eq!(dave.expect("dave in the status")["virtual_address"], "10.6.0.3/32", "{status}");

    s.svc.call(&admin(), "delete_vpn_user", json!({"username": "dave"})).await.unwrap();
    assert_eq!(objects(&s), before);
    let audit = s.svc.call(&admin(), "get_audit_log", json!({"limit": 50})).await.unwrap();
    assert!(!audit.to_string().contains(&private_key));
}

/// The expiry is on the firewall: a service started again without Portcullis' data (another store) still finds the
/// user at its next whole read and removes it on time, with the certificate made for it.
#[tokio::test]
async fn an_expired_user_is_removed_by_the_reconciler_of_a_service_started_again() {
    let s = start().await;
    let before = objects(&s);
    let made = s
        .svc
        .call(&admin(), "create_vpn_user", json!({"username": "temp", "type": "openvpn", "expires": "2s"}))
        .await
        .unwrap();
    assert_eq!(made["status"], "applied", "{made}");
    let user = s.emu.state().vpn_objects("users").iter().find(|u| u["name"] == "temp").cloned().unwrap();
    let op = made["plan"].as_array().unwrap().iter().find(|o| o["op"] == "create_vpn_account").unwrap().clone();
    let expires: chrono::DateTime<chrono::Utc> = op["after"]["expires_at"].as_str().unwrap().parse().unwrap();
    let day = (expires + chrono::TimeDelta::days(1)).format("%m/%d/%Y").to_string();
    assert_eq!(user["expires"], day, "pfSense's own expiry, the day after");

    let again = pfsense_service::over(s.emu.clone(), |_| {});
    assert!(again.svc.sweep_expired().await.iter().all(|(_, r)| r.is_ok()));
    let listed = again.svc.call(&admin(), "list_vpn_users", json!({})).await.unwrap();
    assert_eq!(listed["count"], 1, "not expired yet: {listed}");
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let swept = again.svc.sweep_expired().await;
    assert!(swept.iter().all(|(_, r)| r.is_ok()), "{swept:?}");
    assert_eq!(again.svc.call(&admin(), "list_vpn_users", json!({})).await.unwrap()["count"], 0);
    assert_eq!(objects(&s), before, "user, override, certificate and grant are gone");
}

/// Without the client export package the user is made all the same; the answer has the password and says where to
/// export the configuration.
#[tokio::test]
async fn without_the_export_package_the_answer_says_where_the_configuration_is() {
    let config = EmulatorConfig { client_export_installed: false, ..EmulatorConfig::with_api_key(KEY) };
    let s = pfsense_service::start(config).await;
    let made = s.svc.call(&admin(), "create_vpn_user", json!({"username": "erin", "type": "openvpn"})).await.unwrap();
    assert_eq!(made["status"], "applied", "{made}");
    assert!(made.get("client_config").is_none(), "{made}");
    assert!(made["password"].as_str().is_some_and(|p| p.len() >= 20));
    let notice = made["secret_notice"].as_str().unwrap();
    assert!(notice.contains("Client Export") && notice.contains("pfSense-pkg-openvpn-client-export"), "{notice}");
    assert!(!s.emu.request_counts().contains_key("POST /api/v2/vpn/openvpn/client_export"), "not asked for");
}
