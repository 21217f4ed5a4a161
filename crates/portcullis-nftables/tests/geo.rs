//! Geo blocks on nftables, with real packets in network namespaces: the test country database
//! (`tests/fixtures/geoip`) puts the client's 10.77.1.2 and fd77:1::2 in CN and 10.77.1.3 and fd77:1::3 in US; a
//! geo block of CN on lan drops the first pair and nothing else, and deleting it restores the exact previous
//! table. Then China and Russia from the real DB-IP database: planned, applied in one batch, verified, deleted.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use portcullis_core::firewall::Firewall;
use portcullis_core::geo::{CountryCode, GeoBlock, GeoBlockId, GeoDirection, geo_blocks};
use portcullis_core::plan::Intent;
use portcullis_geo::CountryDb;

fn database(path: &str) -> CountryDb {
    CountryDb::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path))
        .unwrap_or_else(|e| panic!("{e} (the real database comes from scripts/fetch-geoip, which scripts/test runs)"))
}

fn geo_block(db: &CountryDb, codes: &[&str], interface: &str, seed: u32) -> Intent {
    let countries: Vec<CountryCode> = codes.iter().map(|c| CountryCode::parse("c", c).unwrap()).collect();
    Intent::CreateGeoBlock(Box::new(GeoBlock {
        id: GeoBlockId::from_seed(seed),
        countries: db.networks(&countries).unwrap(),
        interfaces: vec![interface.into()],
        direction: GeoDirection::In,
        expires_at: None,
        description: "test geo block".into(),
        data_date: db.info().data_date.clone(),
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_geo_block_drops_its_country_on_both_families_and_nothing_else_and_its_deletion_restores_the_table() {
    let net = Topology::new();
    let fw = net.firewall();
    assert!(net.ping(CLIENT_A, SERVER) && net.ping(CLIENT_B, SERVER), "the topology must pass traffic");
    assert!(net.ipv6_ready(), "IPv6 must pass before the block");
    // A first change makes the table; the geo block is then measured against it.
    let block = Intent::Block {
        addresses: portcullis_core::model::parse_net("ip", "192.0.2.1").unwrap().into(),
        interface: None,
        expires_at: None,
        reason: "makes the table".into(),
        replace: false,
    };
    change(&fw, block).await;
    let before = normalised(net.list_table());
    let before_model = fw.snapshot().await.unwrap();

    let db = database("tests/fixtures/geoip/dbip-layout.mmdb");
    let (plan, _, _, after) = change(&fw, geo_block(&db, &["CN"], "lan", 0xc0ffee)).await;
    assert_eq!(geo_blocks(&after, chrono::Utc::now()).len(), 1);
    assert!(!net.ping(CLIENT_A, SERVER), "CN's IPv4 client is dropped");
    assert!(!net.tcp(CLIENT_A, 8080), "for TCP too");
    assert!(!net.ping(CLIENT6_A, SERVER6), "CN's IPv6 client is dropped");
    assert!(net.ping(CLIENT_B, SERVER) && net.tcp(CLIENT_B, 8080), "the US client still passes");
    assert!(net.ping(CLIENT6_B, SERVER6), "on IPv6 too");
    let sets = net.nft(&["-t", "list", "sets", "inet"]);
    assert!(sets.contains("PORTCULLIS_GEO_C0FFEE_CN_V4_n4"), "{sets}");
    assert!(plan.summary.contains("CN"));

    let id = GeoBlockId::from_seed(0xc0ffee);
    change(&fw, Intent::DeleteGeoBlock { id }).await;
    assert_eq!(normalised(net.list_table()), before, "the table is exactly as before the geo block");
    assert_eq!(fw.snapshot().await.unwrap().aliases, before_model.aliases);
    assert!(net.ping(CLIENT_A, SERVER) && net.ping(CLIENT6_A, SERVER6), "the CN client passes again");
}

#[tokio::test(flavor = "multi_thread")]
async fn china_and_russia_from_the_real_database_apply_verify_and_delete_in_one_batch_each() {
    let net = Topology::new();
    let fw = net.firewall();
    let db = database(".ci/geoip/dbip-country.mmdb");
    let intent = geo_block(&db, &["CN", "RU"], "wan", 0x00c4);
    let started = Instant::now();
    let (plan, _, _, after) = change(&fw, intent).await;
    eprintln!("CN + RU: plan, apply, read back and verify in {:?}", started.elapsed());
    let listed = geo_blocks(&after, chrono::Utc::now());
    assert_eq!(listed[0].prefixes["CN"].ipv4, 8_157);
    assert_eq!(listed[0].prefixes["RU"].ipv6, 9_827);
    assert_eq!(
        plan.operations.iter().filter(|o| matches!(o, portcullis_core::plan::Operation::CreateRule { .. })).count(),
        4
    );
    let started = Instant::now();
    change(&fw, Intent::DeleteGeoBlock { id: GeoBlockId::from_seed(0x00c4) }).await;
    eprintln!("CN + RU deleted in {:?}", started.elapsed());
    let sets = net.nft(&["-t", "list", "sets", "inet"]);
    assert!(!sets.contains("PORTCULLIS_GEO"), "{sets}");
}

/// An `nft` that fails every batch on stdin while `flag` exists, and is the real one otherwise: the batch that
/// follows the staged sets fails after they are committed.
fn failing_nft(dir: &Path, flag: &Path) -> std::path::PathBuf {
    let script = dir.join("nft");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e {} ] && [ \"$*\" = \"-j -f -\" ]; then echo 'Error: injected failure' >&2; exit 1; fi\nexec nft \"$@\"\n",
            flag.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    script
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_that_fails_after_its_sets_were_staged_leaves_the_table_exactly_as_before() {
    let net = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fail");
    let mut settings = net.settings();
    settings.runner.nft = failing_nft(dir.path(), &flag);
    let fw = portcullis_nftables::NftablesFirewall::new(
        "router",
        settings,
        std::sync::Arc::new(portcullis_store::Store::open_in_memory().unwrap()),
    );
    let block = Intent::Block {
        addresses: portcullis_core::model::parse_net("ip", "192.0.2.1").unwrap().into(),
        interface: None,
        expires_at: None,
        reason: "makes the table".into(),
        replace: false,
    };
    change(&fw, block).await;
    let before = normalised(net.list_table());
    let db = database("tests/fixtures/geoip/dbip-layout.mmdb");
    let state = fw.snapshot().await.unwrap();
    let plan =
        portcullis_core::plan::plan(&state, &geo_block(&db, &["CN"], "lan", 0xfa11), chrono::Utc::now()).unwrap();
    std::fs::write(&flag, "").unwrap();
    let err = fw.apply(&plan).await.expect_err("the batch fails");
    assert!(err.message.contains("injected failure"), "{}", err.message);
    assert_eq!(normalised(net.list_table()), before, "no staged set stays behind");
    assert!(net.ping(CLIENT_A, SERVER), "and the CN client still passes");

    std::fs::remove_file(&flag).unwrap();
    fw.apply(&plan).await.expect("the same plan applies once nft works");
    assert!(!net.ping(CLIENT_A, SERVER), "CN's client is dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn sets_an_interrupted_apply_staged_are_left_out_of_reads_and_deleted_by_the_next_change() {
    use portcullis_nftables::netlink::{BatchStep, ElementChange, Netlink, NewSet, network_elements};
    let net = Topology::new();
    let fw = net.firewall();
    let db = database("tests/fixtures/geoip/dbip-layout.mmdb");
    // The geo block's own set names, from applying and deleting it once.
    change(&fw, geo_block(&db, &["CN"], "lan", 0x5e7)).await;
    let geo_set = "PORTCULLIS_GEO_0005E7_CN_V4_n4";
    assert!(net.nft(&["-t", "list", "sets", "inet"]).contains(geo_set));
    change(&fw, Intent::DeleteGeoBlock { id: GeoBlockId::from_seed(0x5e7) }).await;
    let before = normalised(net.list_table());

    // What a process stopped between the two transactions leaves: staged sets no rule describes or uses, one of
    // them with the name (and other networks) the geo block will use again.
    let staged = |name: &str| NewSet {
        name: name.into(),
        ipv6: false,
        interval: true,
        timeout: true,
        comment: Some(portcullis_nftables::apply::STAGED_SET_COMMENT.into()),
    };
    let stray = network_elements("198.18.0.0/15".parse().unwrap(), None, None);
    let steps = [
        BatchStep::MakeSet(staged(geo_set)),
        BatchStep::Elements(ElementChange { set: geo_set.into(), delete: false, elements: stray.clone() }),
        BatchStep::MakeSet(staged("PORTCULLIS_GEO_0000AA_RU_V4_n4")),
    ];
    Netlink::new(net.settings().runner.netns.clone()).commit_steps("portcullis", &steps).unwrap();
    let restarted = net.firewall();
    let read = restarted.snapshot().await.expect("reads leave the staged sets out");
    assert!(geo_blocks(&read, chrono::Utc::now()).is_empty());

    let (_, _, _, after) = change(&restarted, geo_block(&db, &["CN"], "lan", 0x5e7)).await;
    let sets = net.nft(&["-t", "list", "sets", "inet"]);
    assert!(!sets.contains("PORTCULLIS_GEO_0000AA"), "the stray staged set is gone: {sets}");
    let listed = net.nft(&["list", "set", "inet", "portcullis", geo_set]);
    assert!(!listed.contains("198.18.0.0"), "the set holds the geo block's networks only: {listed}");
    assert_eq!(geo_blocks(&after, chrono::Utc::now()).len(), 1);
    assert!(!net.ping(CLIENT_A, SERVER), "CN's client is dropped");
    change(&restarted, Intent::DeleteGeoBlock { id: GeoBlockId::from_seed(0x5e7) }).await;
    assert_eq!(normalised(net.list_table()), before);
}
