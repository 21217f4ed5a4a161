//! Evaluator verdicts per second with the United States', China's and Russia's geo lists (about 350,000
//! prefixes from the real DB-IP Lite database, `scripts/fetch-geoip`) loaded as one geo block on top of a
//! 1,000-rule set, beside the same rule set without them measured in the same run, on the same packets.
//!
//! Run with `cargo bench -p portcullis-geo --bench geo_evaluator`. Target: over 1 M verdicts per second.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use portcullis_core::eval::{CompiledRuleSet, PacketKey};
use portcullis_core::geo::{CountryCode, GeoBlock, GeoBlockId, GeoDirection};
use portcullis_core::model::{
    Action, AddressMatch, AddressTarget, Direction, Interface, PortMatch, PortRange, Protocol, Rule, RuleSet,
};
use portcullis_core::plan::{self, Entries, Ids, Intent, carry_out};
use portcullis_geo::CountryDb;

const RULES: usize = 1_000;
const PACKETS: usize = 1_000_000;

mod common;

use common::{Rng, dataset};

/// 1,000 rules over two interfaces: pass and block rules on /16–/24 sources and common ports.
fn rule_set(rng: &mut Rng) -> RuleSet {
    let wan = Interface::up("wan", "em0", "198.51.100.2/24".parse().ok());
    let lan = Interface::up("lan", "em1", "10.0.0.1/24".parse().ok());
    let ports = [22u16, 25, 53, 80, 123, 443, 993, 3389, 8080, 8443];
    let rules = (0..RULES)
        .map(|i| {
            let interface = if i % 3 == 0 { "lan" } else { "wan" };
            let action = if i % 4 == 0 { Action::Block } else { Action::Pass };
            let r = rng.next();
            let len = 16 + (r % 9) as u8;
            let net = ipnet::Ipv4Net::new(Ipv4Addr::from((r >> 8) as u32), len).expect("prefix").trunc();
            Rule {
                protocol: Protocol::Tcp,
                source: AddressMatch { target: AddressTarget::Net(net.into()), negate: false },
                destination_port: PortMatch::Range(PortRange::single(ports[(r >> 40) as usize % ports.len()])),
                description: format!("rule {i}"),
                ..Rule::new(interface, action).with_id(i.to_string())
            }
        })
        .collect();
    RuleSet { interfaces: vec![wan, lan], rules, aliases: Vec::new(), ..RuleSet::default() }
}

fn verdicts(compiled: &CompiledRuleSet, packets: &[PacketKey]) -> (f64, usize) {
    let started = Instant::now();
    let mut blocked = 0usize;
    for p in packets {
        if black_box(compiled.evaluate_key(p)).action != Action::Pass {
            blocked += 1;
        }
    }
    (PACKETS as f64 / started.elapsed().as_secs_f64() / 1e6, blocked)
}

fn main() {
    let db = CountryDb::open(&dataset("dbip-country.mmdb")).expect("run scripts/fetch-geoip first");
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let base = rule_set(&mut rng);
    let codes: Vec<CountryCode> = ["US", "CN", "RU"].iter().map(|c| CountryCode::parse("c", c).expect("cc")).collect();
    let countries = db.networks(&codes).expect("networks");
    let prefixes: usize = countries.iter().map(|c| c.v4.len() + c.v6.len()).sum();
    let now = chrono::Utc::now();
    let block = Intent::CreateGeoBlock(Box::new(GeoBlock {
        id: GeoBlockId::from_seed(1),
        countries,
        interfaces: vec!["wan".into()],
        direction: GeoDirection::In,
        expires_at: None,
        description: "benchmark".into(),
        data_date: db.info().data_date.clone(),
    }));
    let p = plan::plan(&base, &block, now).expect("plan");
    let with_geo = carry_out(&base, &p, Ids::Placeholders, Entries::Apply).expect("carry").state;

    let packets: Vec<PacketKey> = (0..PACKETS)
        .map(|_| {
            let r = rng.next();
            PacketKey {
                interface: u16::from(r.is_multiple_of(3)),
                direction: Direction::In,
                protocol: 6,
                source: IpAddr::V4(Ipv4Addr::from((r >> 16) as u32)),
                destination: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
                source_port: Some(40_000),
                destination_port: Some([22u16, 80, 443, 8080][(r >> 56) as usize % 4]),
            }
        })
        .collect();
    let started = Instant::now();
    let plain = CompiledRuleSet::compile(&base, now);
    let compile_plain = started.elapsed();
    let started = Instant::now();
    let geo = CompiledRuleSet::compile(&with_geo, now);
    let compile_geo = started.elapsed();
    let (base_rate, base_blocked) = verdicts(&plain, &packets);
    let (geo_rate, geo_blocked) = verdicts(&geo, &packets);
    assert!(geo_blocked > base_blocked, "the geo lists block more of the random sources");
    println!("indexed evaluator, {RULES} rules, {PACKETS} random IPv4 packets, one core:");
    println!(
        "  baseline  without geo lists           {base_rate:>6.2} M verdicts/s  (compiled in {:.0} ms)",
        compile_plain.as_secs_f64() * 1e3
    );
    println!(
        "  with US + CN + RU ({prefixes} prefixes) {geo_rate:>6.2} M verdicts/s  (compiled in {:.0} ms; target: > 1 M/s)",
        compile_geo.as_secs_f64() * 1e3
    );
    println!("  blocked: {base_blocked} without, {geo_blocked} with the geo lists");
}
