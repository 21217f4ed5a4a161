//! The lab and pfSense (the pfRest emulator) agree on every spelling of an IPv4 host: through `ToolService::call`
//! both refuse the same spellings with the same field and message, and for every spelling both accept, the
//! IPv4 host's packets get the same verdict from `simulate_packet` — blocked.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::sync::Arc;

use portcullis_guard::{Auditor, CallContext, Guard, GuardSettings, Principal, RateQuotas, Transport};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_pfrest::{Auth, ClientConfig};
use portcullis_pfrest_emulator::{Emulator, EmulatorConfig};
use portcullis_pfsense::PfSenseFirewall;
use portcullis_store::Store;
use portcullis_tools::{Target, ToolService};
use serde_json::{Value, json};

const KEY: &str = "test-key-0123456789";
const HOST: &str = "192.0.2.50";
const TARGETS: [&str; 2] = ["lab", "fw1"];

async fn service() -> (ToolService, Emulator) {
    let emu = Emulator::start(EmulatorConfig::with_api_key(KEY)).await.expect("emulator starts");
    let store = Arc::new(Store::open_in_memory().unwrap());
    let client = ClientConfig::new(emu.base_url(), Auth::ApiKey(KEY.into()));
    let fw = PfSenseFirewall::new("fw1", client, store.clone()).unwrap();
    let lab = LabFirewall::open("lab", store.clone(), lab_interfaces(&default_interfaces())).unwrap();
    let settings = GuardSettings {
        rates: RateQuotas { default: 10_000, sensitive: 10_000, admin: 10_000, mirror: 10_000 },
        ..Default::default()
    };
    let guard = Guard::new(settings, Auditor::new(store, None).unwrap()).unwrap();
    let targets = vec![Target::new("lab", Arc::new(lab)), Target::new("fw1", Arc::new(fw))];
    (ToolService::new(guard, targets).unwrap(), emu)
}

async fn call(svc: &ToolService, tool: &str, target: &str, mut args: Value) -> Result<Value, String> {
    args["target"] = json!(target);
    let admin = CallContext::new(Principal { name: "alice".into(), role: "admin".into() }, Transport::Cli, None);
    svc.call(&admin, tool, args).await.map_err(|e| format!("{:?} {:?}: {}", e.code, e.field, e.message))
}

/// The verdict on a packet from `source`, and whether the managed block list decided it.
async fn verdict_from(svc: &ToolService, target: &str, source: &str) -> (String, bool) {
    let packet = json!({"interface": "wan", "protocol": "tcp", "source": source, "destination": "198.51.100.2",
                        "destination_port": 443});
    let answer = call(svc, "simulate_packet", target, packet).await.unwrap();
    let by_block_list = answer["rule"]["managed"] == portcullis_core::plan::MANAGED_BLOCK;
    (answer["verdict"].as_str().unwrap().to_string(), by_block_list)
}

#[tokio::test]
async fn lab_and_pfsense_refuse_the_same_spellings_and_block_the_ipv4_host_for_the_rest() {
    let (svc, _emu) = service().await;
    let spellings = [
        HOST.to_string(),
        format!("{HOST}/32"),
        format!(" {HOST}"),
        format!("::ffff:{HOST}"),
        "::ffff:c000:232".to_string(),
        format!("0:0:0:0:0:ffff:{HOST}/128"),
        "::ffff:192.0.2.0/120".to_string(),
        format!("::{HOST}"),
        "192.000.2.50".to_string(),
        "fe80::1%wan".to_string(),
        "192.0.2.0/+24".to_string(),
    ];
    let mut accepted = 0;
    for spelling in &spellings {
        let block = json!({"ip_address": spelling, "duration": "1h", "reason": "spelling"});
        let mut outcomes = Vec::new();
        for target in TARGETS {
            outcomes.push(call(&svc, "block_ip_address", target, block.clone()).await.map(|a| a["status"].clone()));
        }
        assert_eq!(outcomes[0], outcomes[1], "{spelling:?}: the lab and pfSense disagree");
        match &outcomes[0] {
            Ok(status) => {
                accepted += 1;
                assert_eq!(status, "applied", "{spelling:?}");
                for target in TARGETS {
                    let blocked = ("block".to_string(), true);
                    assert_eq!(verdict_from(&svc, target, HOST).await, blocked, "{spelling:?} on {target}");
                    assert!(!verdict_from(&svc, target, "192.0.2.51").await.1, "only the host, on {target}");
                    call(&svc, "unblock_ip_address", target, json!({"ip_address": HOST})).await.unwrap();
                }
            }
            Err(refusal) => {
                assert!(refusal.starts_with("ValidationError Some(\"ip_address\")"), "{spelling:?}: {refusal}");
                for target in TARGETS {
                    assert_eq!(call(&svc, "list_blocks", target, json!({})).await.unwrap()["count"], 0);
                }
            }
        }
    }
    assert_eq!(accepted, 3);
    // simulate_packet itself: the mapped source is no packet either target can see, refused the same way.
    let mut refusals = Vec::new();
    for target in TARGETS {
        let packet = json!({"interface": "wan", "protocol": "tcp", "source": format!("::ffff:{HOST}"),
                            "destination": "198.51.100.2", "destination_port": 443});
        refusals.push(call(&svc, "simulate_packet", target, packet).await.unwrap_err());
    }
    assert_eq!(refusals[0], refusals[1]);
    assert!(refusals[0].contains(&format!("use {HOST}")), "{}", refusals[0]);
}
