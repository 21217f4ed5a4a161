use chrono::{TimeDelta, TimeZone, Utc};

use super::*;
use crate::eval::CompiledRuleSet;
use crate::model::{Direction, Interface, PROTO_TCP, Packet};
use crate::plan::{self, Intent};

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
}

fn state() -> RuleSet {
    RuleSet {
        interfaces: vec![
            Interface::up("wan", "eth0", Some("203.0.113.1/24".parse().unwrap())),
            Interface::up("lan", "eth1", Some("192.168.1.1/24".parse().unwrap())),
        ],
        // What the lan may do otherwise: everything.
        rules: vec![crate::model::Rule::new("lan", Action::Pass)],
        ..RuleSet::default()
    }
}

fn name(s: &str) -> DomainName {
    DomainName::parse("domain", s).unwrap()
}

fn ask(domain: &str, addresses: &[&str]) -> DomainBlockAsk {
    DomainBlockAsk {
        domain: name(domain),
        interface: Some("lan".into()),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        expires_at: Some(now() + TimeDelta::hours(1)),
        reason: "phishing".into(),
        others: BTreeMap::new(),
        by_name: false,
    }
}

fn carried(state: &RuleSet, plan: &ChangePlan) -> RuleSet {
    plan::carry_out(state, plan, plan::Ids::Placeholders, plan::Entries::Apply).unwrap().state
}

fn values(state: &RuleSet) -> Vec<(String, String)> {
    let list = state.alias("PORTCULLIS_BLOCKDNS_LAN").map(|a| a.entries.clone()).unwrap_or_default();
    list.into_iter().map(|e| (e.value, domain_of(&e.detail).to_string())).collect()
}

#[test]
fn names_are_hostnames_in_ascii_and_everything_else_is_refused_naming_the_field() {
    assert_eq!(name("Evil.Example.COM.").as_str(), "evil.example.com");
    assert_eq!(name("bücher.example").as_str(), "xn--bcher-kva.example");
    let long = format!("{}.example", "a".repeat(250));
    for bad in [
        "exa mple.com",
        "*.evil.com",
        "a..b",
        "localhost",
        "host",
        "-a.example",
        "a_b.example",
        "1.2.3.4",
        "x.123",
        &long,
    ] {
        let e = DomainName::parse("domain", bad).unwrap_err();
        assert_eq!(e.field, "domain", "{bad}");
    }
    assert!(DomainName::parse("domain", "*.evil.com").unwrap_err().message.contains("wildcard"));
    assert!(DomainName::parse("domain", "example.localhost").is_err());
}

#[test]
fn a_block_drops_traffic_to_the_answer_and_follows_it_when_it_changes() {
    let first = plan::plan(
        &state(),
        &Intent::BlockDomain(Box::new(ask("evil.example", &["198.51.100.7", "2001:db8::7"]))),
        now(),
    )
    .unwrap();
    let blocked = carried(&state(), &first);
    assert!(
        plan::verify(
            &first,
            &plan::carry_out(&state(), &first, plan::Ids::Placeholders, plan::Entries::Apply).unwrap().applied,
            &blocked
        )
        .is_ok()
    );
    assert_eq!(values(&blocked).len(), 2);
    let blocks = |state: &RuleSet, dst: &str| {
        CompiledRuleSet::compile(state, now()).evaluate(&packet(dst)).unwrap().action == Action::Block
    };
    fn packet(dst: &str) -> Packet {
        Packet {
            interface: "lan".into(),
            direction: Direction::In,
            protocol: PROTO_TCP,
            source: if dst.contains(':') { "fd00::20".parse().unwrap() } else { "192.168.1.20".parse().unwrap() },
            destination: dst.parse().unwrap(),
            source_port: Some(40000),
            destination_port: Some(443),
        }
    }
    assert!(blocks(&blocked, "198.51.100.7") && blocks(&blocked, "2001:db8::7"));
    assert!(!blocks(&blocked, "198.51.100.8"), "nothing else");

    // The name moves: the old address leaves the list, the new one joins, the expiry is kept.
    let refresh = plan::plan(
        &blocked,
        &Intent::BlockDomain(Box::new(ask("evil.example", &["198.51.100.9", "2001:db8::7"]))),
        now(),
    )
    .unwrap();
    let moved = carried(&blocked, &refresh);
    let got: Vec<String> = values(&moved).into_iter().map(|(v, _)| v).collect();
    assert_eq!(got.iter().filter(|v| *v == "198.51.100.7").count(), 0, "{got:?}");
    assert!(got.contains(&"198.51.100.9".to_string()) && got.contains(&"2001:db8::7".to_string()), "{got:?}");
    assert!(!blocks(&moved, "198.51.100.7"), "reachable again");
    assert!(blocks(&moved, "198.51.100.9"));
    // The same answer again changes nothing.
    let same = plan::plan(
        &moved,
        &Intent::BlockDomain(Box::new(ask("evil.example", &["198.51.100.9", "2001:db8::7"]))),
        now(),
    )
    .unwrap();
    assert!(same.operations.is_empty(), "{:?}", same.operations);

    let unblock = Intent::UnblockDomain { domain: name("evil.example"), interface: None, others: BTreeMap::new() };
    let gone = carried(&moved, &plan::plan(&moved, &unblock, now()).unwrap());
    assert!(values(&gone).is_empty());
    assert!(plan::plan(&gone, &unblock, now()).unwrap_err().message.contains("not blocked"));
}

#[test]
fn an_address_two_names_share_stays_while_the_other_name_still_stands_for_it() {
    let a = carried(
        &state(),
        &plan::plan(&state(), &Intent::BlockDomain(Box::new(ask("a.example", &["198.51.100.5"]))), now()).unwrap(),
    );
    let b_ask = ask("b.example", &["198.51.100.5", "198.51.100.6"]);
    let both = carried(&a, &plan::plan(&a, &Intent::BlockDomain(Box::new(b_ask)), now()).unwrap());
    assert_eq!(
        values(&both),
        vec![("198.51.100.5".into(), "a.example".into()), ("198.51.100.6".into(), "b.example".into())]
    );
    let others = BTreeMap::from([("198.51.100.5".parse().unwrap(), name("b.example"))]);
    let unblock = Intent::UnblockDomain { domain: name("a.example"), interface: Some("lan".into()), others };
    let left = carried(&both, &plan::plan(&both, &unblock, now()).unwrap());
    let mut got = values(&left);
    got.sort();
    assert_eq!(got, vec![("198.51.100.5".into(), "b.example".into()), ("198.51.100.6".into(), "b.example".into())]);
}

#[test]
fn an_empty_or_huge_answer_is_refused() {
    let none = ask("gone.example", &[]);
    assert!(
        plan::plan(&state(), &Intent::BlockDomain(Box::new(none)), now()).unwrap_err().message.contains("no address")
    );
    let mut cdn = ask("cdn.example", &[]);
    cdn.addresses =
        (0..=MAX_ADDRESSES as u32).map(|i| IpAddr::from(std::net::Ipv4Addr::from(0xC633_6400 + i))).collect();
    assert!(plan::plan(&state(), &Intent::BlockDomain(Box::new(cdn)), now()).unwrap_err().message.contains("CDN"));
}
