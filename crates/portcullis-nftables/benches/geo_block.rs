//! Geo-blocking China and Russia on nftables (WAVE2-FACTS §1b: 8,157 + 12,851 IPv4 and 6,548 + 9,827 IPv6
//! prefixes from the real DB-IP Lite database, `scripts/fetch-geoip`), in a network namespace made for the run:
//! the backend's whole apply (read the table, carry the plan out, make and fill the four new interval sets over
//! netlink, then one `nft -j -f -` batch with the four rules that use them) beside two baselines: `nft -f`
//! loading the same four interval sets and elements from a text file written by hand, and the same sets made and
//! filled over netlink alone (the kernel's share). `nft -j -f` of the backend's whole batch, sets and all, shows
//! what the apply cost before the sets were staged. The read-back that verifies the change, and the deletion, are
//! timed too.
//!
//! Needs root and nft. Run: `cargo bench -p portcullis-nftables --bench geo_block`. Target: apply under 0.5 s.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use portcullis_core::firewall::Firewall;
use portcullis_core::geo::{CountryCode, CountryNetworks, GeoBlock, GeoBlockId, GeoDirection};
use portcullis_core::plan::{self, Intent};
use portcullis_geo::CountryDb;
use portcullis_nftables::netlink::{BatchStep, ElementChange, Netlink, NewSet, network_elements};

mod common;

use common::{Netns, firewall};

fn intent(countries: &[CountryNetworks], data_date: &str, round: u32) -> Intent {
    Intent::CreateGeoBlock(Box::new(GeoBlock {
        id: GeoBlockId::from_seed(round),
        countries: countries.to_vec(),
        interfaces: vec!["wan".into()],
        direction: GeoDirection::In,
        expires_at: None,
        description: "benchmark".into(),
        data_date: data_date.into(),
    }))
}

struct Backend {
    plan: Duration,
    /// `nft -j -f FILE` of the whole batch the backend builds, the new sets in it: the apply before staging.
    batch_by_nft: Duration,
    apply: Duration,
    verify: Duration,
    delete: Duration,
}

async fn backend(countries: &[CountryNetworks], data_date: &str, round: u32) -> Backend {
    let ns = Netns::new(&format!("b{round}"));
    let fw = firewall(&ns);
    let now = Utc::now().trunc_subsecs(3);
    // The table exists before the geo block, as it does on a host Portcullis already manages.
    let seed = fw.snapshot().await.expect("snapshot");
    let first = Intent::Block {
        addresses: "192.0.2.1/32".parse::<ipnet::IpNet>().expect("net").into(),
        interface: None,
        expires_at: None,
        reason: "seed".into(),
        replace: false,
    };
    fw.apply(&plan::plan(&seed, &first, now).expect("plan")).await.expect("seed");
    let state = fw.snapshot().await.expect("snapshot");
    let started = Instant::now();
    let p = plan::plan(&state, &intent(countries, data_date, round), now).expect("plan");
    let plan_time = started.elapsed();
    let batch_by_nft = {
        let other = Netns::new(&format!("j{round}"));
        let twin = firewall(&other);
        twin.apply(&plan::plan(&twin.snapshot().await.expect("snapshot"), &first, now).expect("plan"))
            .await
            .expect("seed");
        let current = twin.read_table().await.expect("read");
        let (batch, _) = twin.batch(&current, &p, now).expect("batch");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("batch.json");
        std::fs::write(&path, batch.to_json().expect("json")).expect("write");
        let started = Instant::now();
        let out = other.nft(&["-j", "-f", path.to_str().expect("path")]);
        assert!(out.status.success(), "nft -j -f: {}", String::from_utf8_lossy(&out.stderr));
        started.elapsed()
    };
    let started = Instant::now();
    let applied = fw.apply(&p).await.expect("apply");
    let apply = started.elapsed();
    let started = Instant::now();
    let after = fw.snapshot().await.expect("read back");
    plan::verify(&p, &applied, &after).expect("verified");
    let verify = started.elapsed();
    let started = Instant::now();
    let delete = plan::plan(&after, &Intent::DeleteGeoBlock { id: GeoBlockId::from_seed(round) }, now).expect("plan");
    fw.apply(&delete).await.expect("delete");
    Backend { plan: plan_time, batch_by_nft, apply, verify, delete: started.elapsed() }
}

/// The baseline: a table with the same four interval sets, written in nft's text syntax and loaded with `nft -f`.
fn by_hand(countries: &[CountryNetworks], round: u32) -> Duration {
    let ns = Netns::new(&format!("h{round}"));
    let mut file = String::from("table inet bench {\n");
    for c in countries {
        for (family, nets) in [
            ("ipv4_addr", c.v4.iter().map(ToString::to_string).collect::<Vec<_>>()),
            ("ipv6_addr", c.v6.iter().map(ToString::to_string).collect::<Vec<_>>()),
        ] {
            let _ = writeln!(file, "  set geo_{}_{family} {{ type {family}; flags interval;", c.country);
            let _ = writeln!(file, "    elements = {{ {} }}\n  }}", nets.join(", "));
        }
    }
    file.push_str("}\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("geo.nft");
    std::fs::write(&path, file).expect("write");
    let started = Instant::now();
    let out = ns.nft(&["-f", path.to_str().expect("path")]);
    let elapsed = started.elapsed();
    assert!(out.status.success(), "nft -f: {}", String::from_utf8_lossy(&out.stderr));
    elapsed
}

/// The kernel's own share: the same four interval sets made and filled over netlink in one batch, no `nft`.
fn by_netlink(countries: &[CountryNetworks], round: u32) -> Duration {
    let ns = Netns::new(&format!("n{round}"));
    let out = ns.nft(&["add", "table", "inet", "bench"]);
    assert!(out.status.success(), "nft add table: {}", String::from_utf8_lossy(&out.stderr));
    let mut steps = Vec::new();
    for c in countries {
        let v4: Vec<ipnet::IpNet> = c.v4.iter().copied().map(Into::into).collect();
        let v6: Vec<ipnet::IpNet> = c.v6.iter().copied().map(Into::into).collect();
        for (ipv6, nets) in [(false, v4), (true, v6)] {
            let name = format!("geo_{}_{}", c.country, if ipv6 { "v6" } else { "v4" });
            steps.push(BatchStep::MakeSet(NewSet {
                name: name.clone(),
                ipv6,
                interval: true,
                timeout: true,
                comment: None,
            }));
            let elements = nets.iter().flat_map(|n| network_elements(*n, None, None)).collect();
            steps.push(BatchStep::Elements(ElementChange { set: name, delete: false, elements }));
        }
    }
    let started = Instant::now();
    Netlink::new(Some(ns.0.clone())).commit_steps("bench", &steps).expect("netlink batch");
    started.elapsed()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let db = CountryDb::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/geoip/dbip-country.mmdb"))
        .expect("run scripts/fetch-geoip first");
    let codes = [CountryCode::parse("c", "CN").expect("CN"), CountryCode::parse("c", "RU").expect("RU")];
    let started = Instant::now();
    let countries = db.networks(&codes).expect("networks");
    let lookup = started.elapsed();
    let prefixes: usize = countries.iter().map(|c| c.v4.len() + c.v6.len()).sum();
    let data_date = db.info().data_date.clone();
    let (mut hand, mut kernel, mut rounds) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        hand.push(by_hand(&countries, round));
        kernel.push(by_netlink(&countries, round));
        rounds.push(runtime.block_on(backend(&countries, &data_date, round)));
    }
    let pick = |f: fn(&Backend) -> Duration| median(rounds.iter().map(f).collect());
    println!("geo block CN + RU on nftables, {prefixes} prefixes in 4 interval sets (median of 3 rounds):");
    println!("  networks of CN + RU from the database (one pass)  {:>8.0} ms", lookup.as_secs_f64() * 1e3);
    println!("  baseline  nft -f of the same sets from a text file {:>8.0} ms", median(hand).as_secs_f64() * 1e3);
    println!("  baseline  the same sets over netlink, one batch    {:>8.0} ms", median(kernel).as_secs_f64() * 1e3);
    println!("  plan (lists, rules, facts)                        {:>8.0} ms", pick(|b| b.plan).as_secs_f64() * 1e3);
    println!(
        "  baseline  nft -j -f of the whole batch, sets too  {:>8.0} ms",
        pick(|b| b.batch_by_nft).as_secs_f64() * 1e3
    );
    println!(
        "  portcullis apply (read, stage sets, one batch)    {:>8.0} ms  (target: < 500 ms)",
        pick(|b| b.apply).as_secs_f64() * 1e3
    );
    println!("  read-back and verify                              {:>8.0} ms", pick(|b| b.verify).as_secs_f64() * 1e3);
    println!("  delete (plan and apply)                           {:>8.0} ms", pick(|b| b.delete).as_secs_f64() * 1e3);
}
