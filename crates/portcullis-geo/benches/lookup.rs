//! Country lookups per second on one core, on the real DB-IP Lite database (`scripts/fetch-geoip`), beside a
//! baseline measured in the same run: a binary search over the same data's CSV ranges held in memory (the
//! fastest hand-rolled reading of the CSV edition). Both answer the same addresses and must agree.
//!
//! Run with `cargo bench -p portcullis-geo --bench lookup`. Target: over 5 M lookups per second.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use portcullis_geo::CountryDb;

const LOOKUPS: usize = 2_000_000;

mod common;

use common::{Rng, dataset};

fn main() {
    let db = CountryDb::open(&dataset("dbip-country.mmdb")).expect("run scripts/fetch-geoip first");
    let csv = std::fs::read_to_string(dataset("dbip-country-ipv4.csv")).expect("csv");
    let ranges: Vec<(u32, u32, [u8; 2])> = csv
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let start: Ipv4Addr = f.next()?.parse().ok()?;
            let end: Ipv4Addr = f.next()?.parse().ok()?;
            let cc = f.next()?.as_bytes();
            Some((u32::from(start), u32::from(end), [cc[0], cc[1]]))
        })
        .collect();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let addresses: Vec<u32> = (0..LOOKUPS).map(|_| rng.next() as u32).collect();

    let started = Instant::now();
    let mut baseline_found = 0usize;
    for &a in &addresses {
        let i = ranges.partition_point(|r| r.0 <= a);
        if i > 0 && a <= ranges[i - 1].1 {
            baseline_found += usize::from(black_box(ranges[i - 1].2)[0] != 0);
        }
    }
    let baseline = started.elapsed();

    let started = Instant::now();
    let mut found = 0usize;
    for &a in &addresses {
        if black_box(db.lookup(IpAddr::V4(Ipv4Addr::from(a))).expect("lookup")).is_some() {
            found += 1;
        }
    }
    let mmdb = started.elapsed();
    assert_eq!(found, baseline_found, "both readings locate the same addresses");

    let rate = |d: std::time::Duration| LOOKUPS as f64 / d.as_secs_f64() / 1e6;
    println!("country lookups, {LOOKUPS} random IPv4 addresses, one core ({found} located):");
    println!("  baseline  CSV ranges, binary search in memory   {:>6.2} M lookups/s", rate(baseline));
    println!("  portcullis-geo (maxminddb, DB-IP mmdb)         {:>6.2} M lookups/s  (target: > 5 M/s)", rate(mmdb));
}
