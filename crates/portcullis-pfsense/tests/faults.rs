//! Every fault switch of the emulator: the documented error code, and the firewall left exactly as before or
//! exactly as after the change.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{KEY, Lab, draft, now};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::plan::{self, ChangePlan, Intent};
use portcullis_pfrest::{Auth, PfRestClient};
use portcullis_pfrest_emulator::EmulatorConfig;

async fn create_plan(lab: &Lab, description: &str) -> ChangePlan {
    let state = lab.fw.snapshot().await.unwrap();
    plan::plan(&state, &Intent::CreateRule(draft("wan", description, 443)), now()).unwrap()
}

/// Applies `p` and checks that the firewall ends exactly before or exactly after. Returns the outcome.
async fn apply_whole(lab: &Lab, p: &ChangePlan) -> Result<(), portcullis_core::firewall::BackendError> {
    let before = lab.state();
    let result = lab.fw.apply(p).await;
    lab.emu.wait_for_applies().await;
    match &result {
        Ok(applied) => {
            lab.verify(p, applied).await;
            assert_ne!(lab.state(), before, "applied: the state changed");
        }
        Err(_) => assert_eq!(lab.state(), before, "failed: the state is exactly as before"),
    }
    result.map(|_| ())
}

#[tokio::test]
async fn latency_within_the_timeout_is_fine() {
    let lab = Lab::start().await;
    lab.emu.faults().set_latency(Duration::from_millis(150));
    let p = create_plan(&lab, "slow but fine").await;
    apply_whole(&lab, &p).await.unwrap();
    lab.finish().await;
}

#[tokio::test]
async fn latency_beyond_the_timeout_is_a_timeout() {
    let lab =
        Lab::start_with(EmulatorConfig::with_api_key(KEY), |c| c.request_timeout = Duration::from_millis(300)).await;
    let p = create_plan(&lab, "never").await;
    lab.emu.faults().set_latency(Duration::from_millis(600));
    let err = lab.fw.snapshot().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err:?}");
    assert!(err.message.contains("GET /api/v2/"), "{}", err.message);
    assert!(err.message.contains("4 attempts"), "reads are retried: {}", err.message);
    let err = apply_whole(&lab, &p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout);
    lab.emu.faults().set_latency(Duration::ZERO);
    lab.finish().await;
}

#[tokio::test]
async fn a_5xx_on_a_read_is_retried_and_the_change_lands() {
    for status in [500, 502, 504] {
        let lab = Lab::start().await;
        let p = create_plan(&lab, "retried read").await;
        lab.emu.faults().fail_next(2, status);
        apply_whole(&lab, &p).await.unwrap();
        let failed = lab.emu.request_log().iter().filter(|r| r.fault.as_deref() == Some("fail")).count();
        assert_eq!(failed, 2, "{status}");
        lab.finish().await;
    }
}

#[tokio::test]
async fn a_5xx_on_a_write_is_not_retried_and_nothing_changes() {
    for status in [500, 502] {
        let lab = Lab::start().await;
        let p = create_plan(&lab, "failed write").await;
        let emu = lab.emu.clone();
        lab.trap.arm("POST", "/api/v2/firewall/rule", move || emu.faults().fail_next(1, status));
        let err = apply_whole(&lab, &p).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::ApplyFailed, "{status}: {err:?}");
        assert!(err.message.contains("POST /api/v2/firewall/rule"), "{}", err.message);
        assert_eq!(lab.count("POST", "/api/v2/firewall/rule"), 1, "a write is never repeated");
        lab.finish().await;
    }
}

#[tokio::test]
async fn a_5xx_on_the_filter_apply_is_retried() {
    let lab = Lab::start().await;
    let p = create_plan(&lab, "apply retried").await;
    let emu = lab.emu.clone();
    lab.trap.arm("POST", "/api/v2/firewall/apply", move || emu.faults().fail_next(1, 502));
    apply_whole(&lab, &p).await.unwrap();
    assert_eq!(lab.count("POST", "/api/v2/firewall/apply"), 2);
    lab.finish().await;
}

#[tokio::test]
async fn a_locked_config_is_retried_and_succeeds() {
    let lab = Lab::start().await;
    let p = create_plan(&lab, "locked then fine").await;
    lab.emu.faults().config_locked_next(2);
    apply_whole(&lab, &p).await.unwrap();
    let locked = lab.emu.request_log().iter().filter(|r| r.fault.as_deref() == Some("config_locked")).count();
    assert_eq!(locked, 2);
    assert_eq!(lab.count("POST", "/api/v2/firewall/rule"), 3, "the POST was repeated: pfRest had not written");
    lab.finish().await;
}

#[tokio::test]
async fn a_config_locked_for_good_is_unavailable() {
    let lab = Lab::start().await;
    let p = create_plan(&lab, "locked for good").await;
    lab.emu.faults().config_locked_next(100);
    let err = apply_whole(&lab, &p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    assert!(err.hint.unwrap().contains("another administrator"));
    lab.emu.faults().config_locked_next(0);
    lab.finish().await;
}

#[tokio::test]
async fn a_garbage_answer_is_an_unexpected_response() {
    let lab = Lab::start().await;
    lab.emu.faults().garbage_next(1);
    let err = lab.fw.snapshot().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UnexpectedResponse, "{err:?}");
    assert!(err.message.contains("not JSON"), "{}", err.message);

    let p = create_plan(&lab, "garbage").await;
    let emu = lab.emu.clone();
    lab.trap.arm("POST", "/api/v2/firewall/rule", move || emu.faults().garbage_next(1));
    let err = apply_whole(&lab, &p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApplyFailed, "{err:?}");
    lab.finish().await;
}

#[tokio::test]
async fn a_dropped_connection_fails_a_write_without_repeating_it() {
    let lab = Lab::start().await;
    // Reads are retried.
    lab.emu.faults().drop_next(1);
    lab.fw.snapshot().await.unwrap();

    let p = create_plan(&lab, "dropped").await;
    let emu = lab.emu.clone();
    lab.trap.arm("POST", "/api/v2/firewall/rule", move || emu.faults().drop_next(1));
    let err = apply_whole(&lab, &p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApplyFailed, "{err:?}");
    assert!(err.message.contains("connection closed"), "{}", err.message);
    assert_eq!(lab.count("POST", "/api/v2/firewall/rule"), 1);

    // In a multi-step plan (alias, then rules, then entries) the first rule POST is dropped: the alias created
    // before it is removed again.
    let state = lab.fw.snapshot().await.unwrap();
    let intent = common::block("192.0.2.1/32", None, "r");
    let block = plan::plan(&state, &intent, now()).unwrap();
    let emu = lab.emu.clone();
    lab.trap.arm("POST", "/api/v2/firewall/rule", move || emu.faults().drop_next(1));
    let err = apply_whole(&lab, &block).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ApplyFailed);
    lab.finish().await;
}

#[tokio::test]
async fn wrong_credentials_are_authentication_failed() {
    let lab = Lab::start().await;
    let p = create_plan(&lab, "no auth").await;
    lab.emu.faults().set_wrong_credentials(true);
    let err = lab.fw.snapshot().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthenticationFailed);
    assert!(err.hint.as_deref().unwrap().contains("auth_methods"));
    lab.emu.clear_request_log();
    let err = apply_whole(&lab, &p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthenticationFailed);
    let attempts = lab.emu.request_log().iter().filter(|r| r.status == 401).count();
    assert_eq!(attempts, 1, "bad credentials are never retried (sshguard would block us)");
    lab.emu.faults().set_wrong_credentials(false);

    // A wrong key, for real.
    let mut cfg = common::client_config(&lab.emu);
    cfg.auth = Auth::ApiKey("wrong-key-secret".into());
    let fw = common::firewall(cfg, &lab.store);
    let err = fw.snapshot().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthenticationFailed);
    assert!(!err.message.contains("wrong-key-secret") && !err.hint.unwrap().contains("wrong-key-secret"));
    lab.finish().await;
}

#[tokio::test]
async fn a_read_only_key_is_authorization_failed() {
    let cfg = EmulatorConfig { read_only_api_keys: vec!["ro-key".into()], ..EmulatorConfig::with_api_key(KEY) };
    let lab = Lab::start_with(cfg, |c| c.auth = Auth::ApiKey("ro-key".into())).await;
    let p = create_plan(&lab, "read only").await;
    let err = apply_whole(&lab, &p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthorizationFailed, "{err:?}");
    lab.finish().await;
}

#[tokio::test]
async fn html_404_everywhere_is_pfrest_not_installed() {
    let lab = Lab::start().await;
    let p = create_plan(&lab, "no pfrest").await;
    lab.emu.faults().set_html_404_everything(true);
    let err = lab.fw.snapshot().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PfrestNotInstalled);
    assert!(err.message.starts_with("GET /api/v2/"), "{}", err.message);
    assert!(err.message.contains("pfRest is not installed on this firewall"), "{}", err.message);
    assert!(err.hint.unwrap().contains("pfSense-pkg-RESTAPI"));
    let err = apply_whole(&lab, &p).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PfrestNotInstalled);
    let err = lab.fw.system_status().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PfrestNotInstalled);
    lab.emu.faults().set_html_404_everything(false);
    lab.finish().await;
}

#[tokio::test]
async fn tls_to_a_plain_http_port_is_a_tls_error() {
    let lab = Lab::start().await;
    let https = lab.emu.base_url().replace("http://", "https://");
    let mut cfg = common::client_config(&lab.emu);
    cfg.base_url = https;
    let client = PfRestClient::new(cfg).unwrap();
    let err = client.rules().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TlsError, "{err:?}");
    let hint = err.hint.unwrap();
    assert!(hint.contains("ca_file") && hint.contains("verify_ssl"), "only keys the config has: {hint}");
    assert!(!hint.contains("ca_bundle") && !hint.contains("base_url"), "{hint}");
    lab.finish().await;
}

#[tokio::test]
async fn nothing_listening_is_connection_refused() {
    let lab = Lab::start().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = common::client_config(&lab.emu);
    cfg.base_url = format!("http://127.0.0.1:{port}");
    let fw = common::firewall(cfg, &lab.store);
    let err = fw.snapshot().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ConnectionRefused, "{err:?}");
    assert!(err.message.contains("cannot connect"));
    lab.finish().await;
}

#[tokio::test]
async fn errors_name_the_endpoint_and_pfrest_message() {
    let lab = Lab::start().await;
    let mut req = portcullis_pfrest::types::FirewallRuleRequest {
        type_: Some("allow".into()),
        interface: Some(vec!["wan".into()]),
        ipprotocol: Some("inet".into()),
        source: Some("any".into()),
        destination: Some("any".into()),
        ..Default::default()
    };
    req.controls.dry_run = Some(true);
    let err = lab.fw.client().create_rule(&req).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
    assert_eq!(err.response_id.as_deref(), Some("FIELD_INVALID_CHOICE"));
    assert!(err.message.starts_with("POST /api/v2/firewall/rule: "), "{}", err.message);
    assert!(err.message.contains("must be one of"), "{}", err.message);
    assert!(!err.message.contains(KEY));
    // The linter flags the bad value as expected; this test sent it on purpose.
    let v: Vec<String> = lab.emu.schema_violations();
    assert!(v.iter().all(|v| v.contains("`type` value")), "{v:?}");
    lab.emu.clear_schema_violations();
    lab.finish().await;
}
