#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use super::*;

const DEVICES: &[(String, String)] = &[];

fn devices() -> Devices<'static> {
    Devices(DEVICES)
}

fn mirror(sensor: SensorKind, direction: MirrorDirection, selector: Selector) -> Mirror {
    let expires_at = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
    Mirror {
        mirror_id: MirrorId::parse("mirror_id", "mir-3f9a1c").unwrap(),
        interface: "eth1".into(),
        sensor: Sensor { name: "zeek".into(), kind: sensor },
        direction,
        selector,
        rate_limit: 1000,
        burst: 100,
        excluded: Vec::new(),
        reason: "look".into(),
        created_at: Some(expires_at - chrono::TimeDelta::hours(1)),
        expires_at,
    }
}

fn web() -> Selector {
    Selector { protocol: Protocol::Tcp, port: Some(PortRange::single(80)), ..Selector::default() }
}

fn local() -> SensorKind {
    SensorKind::Interface { interface: "eth3".into() }
}

#[test]
fn every_rule_written_parses_back_to_the_form_it_was_rendered_from() {
    let selectors = [
        web(),
        Selector {
            protocol: Protocol::Udp,
            destination_port: Some(PortRange { first: 53, last: 54 }),
            ..Default::default()
        },
        Selector { source: Some("192.0.2.0/24".parse().unwrap()), ..Default::default() },
        Selector {
            protocol: Protocol::Icmp,
            destination: Some("2001:db8::1/128".parse().unwrap()),
            ..Default::default()
        },
        Selector { all: true, ..Default::default() },
    ];
    let sensors = [
        local(),
        SensorKind::Address { address: "10.99.0.2".parse().unwrap(), interface: "eth3".into() },
        SensorKind::Vxlan { remote: "198.51.100.9".parse().unwrap(), vni: 42, local: None, port: 4789 },
    ];
    for selector in &selectors {
        for sensor in &sensors {
            let m = mirror(sensor.clone(), MirrorDirection::Both, selector.clone());
            let table = MirrorTable::of(&m.sensor);
            if table == MirrorTable::Ip && selector.destination.is_some_and(|d| d.addr().is_ipv6()) {
                continue; // refused by the core: an IPv4 sensor cannot get IPv6 copies
            }
            for (hook, forms) in forms_of(&m, devices()) {
                for form in forms {
                    let written = json!(render(&form, hook.direction()));
                    let read = parse_rule(table, hook.direction(), &written).unwrap();
                    assert_eq!(read, form, "{selector:?} to {sensor:?}: {written}");
                }
            }
        }
    }
}

#[test]
fn the_listing_nft_prints_parses_to_what_was_written() {
    // `tcp dport 80` as nft lists `meta l4proto tcp th dport 80`, the family left implied by the address match.
    let m = mirror(local(), MirrorDirection::In, Selector { source: Some("192.0.2.7/32".parse().unwrap()), ..web() });
    let listed = json!([
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.0.2.7"}},
        {"limit": "m_3f9a1c"}, {"counter": "m_3f9a1c"}, {"dup": {"addr": "eth3"}}
    ]);
    let form = parse_rule(MirrorTable::Netdev, Direction::In, &listed).unwrap();
    let written = &forms_of(&m, devices())[&Hook::In];
    assert_eq!(&form, &written[0]);
}

#[test]
fn rules_portcullis_does_not_write_are_refused() {
    let base = |extra: Value| {
        let mut rule = vec![
            json!({"match": {"op": "==", "left": {"meta": {"key": "protocol"}}, "right": "ip"}}),
            json!({"limit": "m_3f9a1c"}),
            json!({"counter": "m_3f9a1c"}),
            json!({"dup": {"addr": "eth3"}}),
        ];
        rule.insert(1, extra);
        json!(rule)
    };
    let foreign = [
        json!({"accept": null}),
        json!({"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}),
        json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "2001:db8::1"}}),
        json!({"counter": "m_000000"}),
    ];
    for extra in foreign {
        assert!(parse_rule(MirrorTable::Netdev, Direction::In, &base(extra.clone())).is_err(), "{extra}");
    }
    let no_dup = json!([{"match": {"op": "==", "left": {"meta": {"key": "protocol"}}, "right": "ip"}},
                        {"limit": "m_3f9a1c"}, {"counter": "m_3f9a1c"}]);
    assert!(parse_rule(MirrorTable::Netdev, Direction::In, &no_dup).unwrap_err().contains("copies nothing"));
}

#[test]
fn bookkeeping_survives_its_comment_and_garbage_does_not_pass_for_it() {
    let meta = MirrorMeta {
        hex: "3f9a1c".into(),
        created_at: Some(Utc.timestamp_millis_opt(1_700_000_000_123).unwrap()),
        expires_at: Utc.timestamp_millis_opt(1_700_003_600_123).unwrap(),
        kind: 'v',
        sensor: "far".into(),
        sensor_interface: Some("dmz".into()),
        protocol: Some("icmp".into()),
    };
    assert_eq!(MirrorMeta::parse(&meta.head()), Some(meta));
    for garbage in ["", "pm1", "pm1 id=3f9a1c s=x k=i", "pm2 id=3f9a1c x=1 k=i s=x", "pm1 id=3f9a1c x=1 k=q s=x"] {
        assert_eq!(MirrorMeta::parse(garbage), None, "{garbage:?}");
    }
}

#[test]
fn a_table_is_written_while_it_holds_a_mirror_and_deleted_with_its_last() {
    let texts = TextStore::new(std::sync::Arc::new(portcullis_store::Store::open_in_memory().unwrap()));
    let writer = Writer { base: "portcullis", devices: devices(), texts: &texts };
    let m = mirror(local(), MirrorDirection::Both, web());
    let add = writer.commands(&BTreeSet::new(), &[], std::slice::from_ref(&m)).unwrap();
    assert_eq!(add[0], json!({"add": {"table": {"family": "netdev", "name": "portcullis_mirror"}}}));
    let chains: Vec<&Value> = add.iter().filter_map(|c| c["add"].get("chain")).collect();
    assert_eq!(chains.len(), 2, "ingress and egress");
    assert!(chains.iter().all(|c| c["dev"] == "eth1"), "{chains:?}");
    let limit = add.iter().find_map(|c| c["add"].get("limit")).unwrap();
    assert_eq!((limit["rate"].as_u64(), limit["burst"].as_u64()), (Some(1000), Some(100)));

    let existing = BTreeSet::from([MirrorTable::Netdev]);
    let remove = writer.commands(&existing, std::slice::from_ref(&m), &[]).unwrap();
    assert_eq!(remove, vec![json!({"delete": {"table": {"family": "netdev", "name": "portcullis_mirror"}}})]);
    assert!(writer.commands(&existing, std::slice::from_ref(&m), std::slice::from_ref(&m)).unwrap().is_empty());
}

#[test]
fn a_tunnel_is_made_for_its_first_mirror_and_deleted_after_its_last() {
    let vx = SensorKind::Vxlan { remote: "198.51.100.9".parse().unwrap(), vni: 42, local: None, port: 4789 };
    let m = mirror(vx, MirrorDirection::In, web());
    let start = TunnelChanges::between(&[], std::slice::from_ref(&m));
    assert_eq!(start.wanted.len(), 1);
    assert_eq!(
        start.wanted[0].add_args().join(" "),
        "link add pcvx42 type vxlan id 42 remote 198.51.100.9 dstport 4789 nolearning"
    );
    assert_eq!(TunnelChanges::between(std::slice::from_ref(&m), &[]).unused, vec!["pcvx42".to_string()]);
    assert!(TunnelChanges::between(std::slice::from_ref(&m), std::slice::from_ref(&m)).is_empty());
    let listed = json!([{"ifname": "pcvx42", "linkinfo": {"info_kind": "vxlan",
                         "info_data": {"id": 42, "remote": "198.51.100.9", "port": 4789}}},
                        {"ifname": "eth0", "linkinfo": {"info_kind": "veth"}}]);
    assert_eq!(tunnels_of(&listed).into_values().collect::<Vec<_>>(), start.wanted);
}

#[test]
fn egress_needs_linux_5_16() {
    let ask = |direction| MirrorAsk {
        mirror_id: MirrorId::from_seed(1),
        interface: "lan".into(),
        sensor: Sensor { name: "zeek".into(), kind: local() },
        direction,
        selector: web(),
        rate_limit: 10,
        burst: 5,
        reason: String::new(),
        expires_at: Utc::now(),
    };
    assert_eq!(kernel_version("6.18.44-fc43"), Some((6, 18)));
    assert_eq!(kernel_version("5.4.0"), Some((5, 4)));
    let old = Some(((5, 10), "5.10.0"));
    assert_eq!(unsupported(&ask(MirrorDirection::Both), old).unwrap().field, "direction");
    assert!(unsupported(&ask(MirrorDirection::In), old).is_none());
    assert!(unsupported(&ask(MirrorDirection::Both), Some(((6, 1), "6.1.0"))).is_none());
}
