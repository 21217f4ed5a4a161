//! Geo blocks on pfSense through `ToolService::call` against the pfRest emulator, with the real DB-IP database
//! (`scripts/fetch-geoip`): China (8,157 IPv4 and 6,548 IPv6 prefixes) is one network alias per family created with
//! its entries in one POST each, short details, and one block rule per alias; Russia's IPv4 list (12,851) is above
//! the per-alias cap (10,000) and refused as `unsupported` before anything is written. Deleting China leaves the
//! emulator's configuration as it was.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_pfrest_emulator::EmulatorConfig;
use serde_json::{Value, json};

#[path = "common/pfsense.rs"]
mod pfsense_service;

fn admin() -> CallContext {
    CallContext::new(Principal { name: "ada".into(), role: "admin".into() }, Transport::Cli, None)
}

fn real_database() -> Arc<portcullis_geo::CountryDb> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/geoip/dbip-country.mmdb");
    Arc::new(portcullis_geo::CountryDb::open(&path).expect("run scripts/fetch-geoip (scripts/test does)"))
}

fn configuration(s: &pfsense_service::PfSenseService) -> (Vec<Value>, Vec<Value>) {
    let state = s.emu.state();
    (state.rules.clone(), state.aliases.clone())
}

#[tokio::test]
async fn china_is_blocked_in_a_few_requests_russia_is_refused_above_the_cap_and_deletion_restores_the_config() {
    let s = pfsense_service::start(EmulatorConfig::with_api_key(pfsense_service::KEY))
        .await
        .with_country_db(real_database());
    let before = configuration(&s);

    s.emu.clear_request_log();
    let started = Instant::now();
    let made = s
        .svc
        .call(&admin(), "create_geo_block", json!({"countries": ["CN"], "interfaces": ["wan"], "description": "CN"}))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let took = started.elapsed();
    let counts = s.emu.request_counts();
    println!("CN geo block on the emulator: {} requests in {took:.2?}: {counts:?}", counts.values().sum::<usize>());
    assert_eq!(made["status"], "applied", "{made}");
    assert_eq!(made["verified"], true);
    // Per family: the target's own check (a dry run of the empty alias) and one POST with the entries.
    assert_eq!(counts.get("POST /api/v2/firewall/alias"), Some(&4), "one write per family, entries included");
    assert_eq!(counts.get("PATCH /api/v2/firewall/alias"), None, "no second write of the long lists");

    let listed = s.svc.call(&admin(), "list_geo_blocks", json!({})).await.unwrap();
    let block = &listed["data"][0];
    assert_eq!(block["prefixes"]["CN"], json!({"ipv4": 8157, "ipv6": 6548}), "{listed}");
    let id = block["geo_block_id"].as_str().unwrap().to_string();
    let alias_name = format!("PORTCULLIS_GEO_{}_CN_V4", id.trim_start_matches("geo-").to_ascii_uppercase());
    let state = s.emu.state();
    let alias = state.alias(&alias_name).unwrap_or_else(|| panic!("{alias_name} on the emulator"));
    assert_eq!(alias["type"], "network");
    let details = alias["detail"].as_array().unwrap();
    assert!(details.iter().all(|d| d.as_str().is_some_and(|d| d.len() <= 40 && d.starts_with("CN "))), "short details");
    assert!(state.applied_alias(&alias_name).is_some(), "the filter was reloaded with it");

    let after_cn = configuration(&s);
    let outbound = json!({"countries": ["CN"], "interfaces": ["lan"], "description": "x", "direction": "out"});
    let e = s.svc.call(&admin(), "create_geo_block", outbound).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.field.as_deref()), ("unsupported", Some("direction")), "{e:?}");
    let refused = s
        .svc
        .call(&admin(), "create_geo_block", json!({"countries": ["RU"], "interfaces": ["wan"], "description": "RU"}))
        .await
        .unwrap_err();
    assert_eq!(refused.code.as_str(), "unsupported", "{refused:?}");
    assert!(refused.message.contains("12851") && refused.message.contains("10000"), "{}", refused.message);
    assert!(refused.hint.as_deref().unwrap_or_default().contains("nftables"), "{refused:?}");
    assert_eq!(configuration(&s), after_cn, "nothing was written for Russia");

    let gone = s.svc.call(&admin(), "delete_geo_block", json!({"geo_block_id": id})).await.unwrap();
    assert_eq!(gone["status"], "applied", "{gone}");
    assert_eq!(configuration(&s), before, "rules and aliases exactly as before the geo block");
}
