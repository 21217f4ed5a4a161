use chrono::{TimeDelta, TimeZone, Utc};

use super::*;
use crate::model::{Interface, PROTO_ICMP, PROTO_TCP, PROTO_UDP, RuleSet};
use crate::plan::{self, Intent, Operation};

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
}

fn state() -> RuleSet {
    RuleSet {
        interfaces: vec![
            Interface::up("wan", "eth0", Some("203.0.113.1/24".parse().unwrap())),
            Interface::up("lan", "eth1", Some("192.168.1.1/24".parse().unwrap())),
            Interface::up("ids", "eth2", None),
        ],
        ..RuleSet::default()
    }
}

fn local_sensor() -> Sensor {
    Sensor { name: "zeek".into(), kind: SensorKind::Interface { interface: "eth2".into() } }
}

fn ask(selector: Selector) -> MirrorAsk {
    MirrorAsk {
        mirror_id: MirrorId::from_seed(0xabc123),
        interface: "lan".into(),
        sensor: local_sensor(),
        direction: MirrorDirection::Both,
        selector,
        rate_limit: 1000,
        burst: 100,
        reason: "look at web traffic".into(),
        expires_at: now() + TimeDelta::hours(2),
    }
}

fn web() -> Selector {
    Selector { protocol: Protocol::Tcp, port: Some(PortRange::single(80)), ..Selector::default() }
}

fn packet(direction: Direction, proto: u8, src: &str, sport: u16, dst: &str, dport: u16) -> Packet {
    Packet {
        interface: "lan".into(),
        direction,
        protocol: proto,
        source: src.parse().unwrap(),
        destination: dst.parse().unwrap(),
        source_port: Some(sport),
        destination_port: Some(dport),
    }
}

fn started(a: &MirrorAsk) -> Mirror {
    let plan = plan_start(&state(), a, now()).unwrap();
    let Operation::CreateMirror { after } = &plan.operations[0] else { panic!("{plan:?}") };
    after.clone()
}

#[test]
fn port_80_both_ways_copies_the_conversation_and_nothing_else() {
    let m = started(&ask(web()));
    let client = "192.168.1.20";
    let server = "198.51.100.80";
    assert!(m.copies(&packet(Direction::In, PROTO_TCP, client, 40000, server, 80)));
    assert!(m.copies(&packet(Direction::Out, PROTO_TCP, server, 80, client, 40000)));
    assert!(!m.copies(&packet(Direction::In, PROTO_TCP, client, 40000, server, 443)));
    assert!(!m.copies(&packet(Direction::In, PROTO_UDP, client, 40000, server, 80)));
    assert!(!m.copies(&packet(Direction::In, PROTO_ICMP, client, 0, server, 0)));
    let mut other_iface = packet(Direction::In, PROTO_TCP, client, 40000, server, 80);
    other_iface.interface = "wan".into();
    assert!(!m.copies(&other_iface));
    // A packet whose two ends are port 80 is matched by exactly one clause, so it is copied once.
    let both_ends = packet(Direction::In, PROTO_TCP, client, 80, server, 80);
    assert_eq!(m.clauses().iter().filter(|c| c.matches(Direction::In, &both_ends)).count(), 1);
}

#[test]
fn both_directions_swap_the_ends_for_the_replies() {
    let m = started(&ask(Selector {
        protocol: Protocol::Tcp,
        source: Some("192.168.1.20/32".parse().unwrap()),
        destination_port: Some(PortRange::single(443)),
        ..Selector::default()
    }));
    assert!(m.copies(&packet(Direction::In, PROTO_TCP, "192.168.1.20", 50000, "198.51.100.1", 443)));
    assert!(m.copies(&packet(Direction::Out, PROTO_TCP, "198.51.100.1", 443, "192.168.1.20", 50000)));
    assert!(!m.copies(&packet(Direction::In, PROTO_TCP, "192.168.1.21", 50000, "198.51.100.1", 443)));
    let only_in = started(&MirrorAsk { direction: MirrorDirection::In, ..ask(web()) });
    assert!(!only_in.copies(&packet(Direction::Out, PROTO_TCP, "198.51.100.80", 80, "192.168.1.20", 40000)));
}

#[test]
fn an_empty_selector_needs_all_and_all_takes_no_selector() {
    let e = plan_start(&state(), &ask(Selector::default()), now()).unwrap_err();
    assert_eq!(e.field, "all");
    let e = plan_start(&state(), &ask(Selector { all: true, ..web() }), now()).unwrap_err();
    assert_eq!(e.field, "all");
    let everything = plan_start(&state(), &ask(Selector { all: true, ..Selector::default() }), now()).unwrap();
    assert_eq!(everything.facts.host_bits, 128);
    assert!(everything.warnings.iter().any(|w| w.contains("every packet")), "{everything:?}");
}

#[test]
fn the_sensor_interface_and_address_are_never_mirrored() {
    let e = plan_start(&state(), &MirrorAsk { interface: "ids".into(), ..ask(web()) }, now()).unwrap_err();
    assert_eq!(e.field, "interface");
    let e = plan_start(&state(), &MirrorAsk { interface: "eth2".into(), ..ask(web()) }, now()).unwrap_err();
    assert_eq!(e.field, "interface", "the device name is the same interface");

    let remote = Sensor {
        name: "far".into(),
        kind: SensorKind::Vxlan { remote: "198.51.100.9".parse().unwrap(), vni: 42, local: None, port: VXLAN_PORT },
    };
    let to_sensor = Selector { destination: Some("198.51.100.9/32".parse().unwrap()), ..Selector::default() };
    let e = plan_start(&state(), &MirrorAsk { sensor: remote.clone(), ..ask(to_sensor) }, now()).unwrap_err();
    assert_eq!(e.field, "destination");
    // The tunnel's own packets (to the remote sensor) are excluded from a broad mirror.
    let m = started(&MirrorAsk { sensor: remote, ..ask(Selector { protocol: Protocol::Udp, ..Selector::default() }) });
    let vxlan = packet(Direction::Out, PROTO_UDP, "192.168.1.1", 50000, "198.51.100.9", VXLAN_PORT);
    assert!(!m.copies(&vxlan));
    assert!(m.copies(&packet(Direction::Out, PROTO_UDP, "192.168.1.1", 50000, "198.51.100.10", 53)));
}

#[test]
fn an_l3_sensor_copies_its_own_family_only() {
    let l3 = Sensor {
        name: "suricata".into(),
        kind: SensorKind::Address { address: "10.99.0.2".parse().unwrap(), interface: "eth2".into() },
    };
    let plan = plan_start(&state(), &MirrorAsk { sensor: l3.clone(), ..ask(web()) }, now()).unwrap();
    assert!(plan.warnings.iter().any(|w| w.starts_with("IPv6 packets are not copied")), "{plan:?}");
    let Operation::CreateMirror { after } = &plan.operations[0] else { panic!() };
    assert!(after.clauses().iter().all(|c| c.family == Family::V4));
    let v6 = Selector { source: Some("2001:db8::/64".parse().unwrap()), ..Selector::default() };
    let e = plan_start(&state(), &MirrorAsk { sensor: l3, ..ask(v6) }, now()).unwrap_err();
    assert_eq!(e.field, "sensor");
}

#[test]
fn bad_selectors_name_their_field() {
    let ports_without_transport =
        Selector { protocol: Protocol::Icmp, port: Some(PortRange::single(80)), ..Selector::default() };
    assert_eq!(plan_start(&state(), &ask(ports_without_transport), now()).unwrap_err().field, "protocol");
    let mixed = Selector {
        source: Some("192.0.2.0/24".parse().unwrap()),
        destination: Some("2001:db8::/32".parse().unwrap()),
        ..Selector::default()
    };
    assert_eq!(plan_start(&state(), &ask(mixed), now()).unwrap_err().field, "destination");
    assert_eq!(
        plan_start(&state(), &MirrorAsk { rate_limit: 0, ..ask(web()) }, now()).unwrap_err().field,
        "rate_limit"
    );
    assert_eq!(
        plan_start(&state(), &MirrorAsk { expires_at: now(), ..ask(web()) }, now()).unwrap_err().field,
        "duration"
    );
    assert_eq!(
        plan_start(&state(), &MirrorAsk { interface: "dmz".into(), ..ask(web()) }, now()).unwrap_err().field,
        "interface"
    );
    for bad in ["ze ek", "zeek;reboot", "$(id)", "-x", ""] {
        assert!(check_name("sensor", bad).is_err(), "{bad:?}");
    }
    assert!(check_name("sensor", "zeek-1.lab_2").is_ok());
}

#[test]
fn started_mirrors_carry_stop_expire_and_undo() {
    let a = ask(web());
    let start = plan::plan(&state(), &Intent::StartMirror(Box::new(a.clone())), now()).unwrap();
    assert!(start.decides_no_verdict() && start.only_mirrors());
    assert_eq!(start.facts.lifetime_seconds, Some(7200));
    let carried = plan::carry_out(&state(), &start, plan::Ids::Placeholders, plan::Entries::Apply).unwrap();
    let running = carried.state.clone();
    assert_eq!(running.mirrors.len(), 1);
    assert!(plan::verify(&start, &carried.applied, &running).is_ok());
    assert!(plan::verify(&start, &carried.applied, &state()).is_err(), "a missing mirror fails verification");

    let again = plan_start(&running, &MirrorAsk { mirror_id: MirrorId::from_seed(7), ..a.clone() }, now()).unwrap_err();
    assert_eq!(again.field, "sensor", "the same copy twice is refused");

    let stop = plan::plan(&running, &Intent::StopMirror { mirror_id: a.mirror_id.clone() }, now()).unwrap();
    let stopped = plan::carry_out(&running, &stop, plan::Ids::Placeholders, plan::Entries::Apply).unwrap().state;
    assert!(stopped.mirrors.is_empty());
    let e = plan_stop(&stopped, &a.mirror_id).unwrap_err();
    assert_eq!(e.field, "mirror_id");

    let undo = plan::invert(&start, &carried.applied, &state(), &running);
    assert!(matches!(undo.operations[..], [Operation::DeleteMirror { .. }]), "{undo:?}");

    assert!(plan::plan_expiry(&running, now() + TimeDelta::hours(1)).is_none());
    assert_eq!(plan::next_pause_end(&running), Some(a.expires_at));
    let due = plan::plan_expiry(&running, a.expires_at).unwrap();
    assert!(matches!(due.operations[..], [Operation::DeleteMirror { .. }]), "{due:?}");
    assert!(due.summary.contains("stop 1 mirrors") && due.summary.contains("resume 0"), "{}", due.summary);
}

#[test]
fn ids_parse_with_and_without_their_prefix() {
    let id = MirrorId::from_seed(0x1234_abcd);
    assert_eq!(id.to_string(), "mir-34abcd");
    assert_eq!(MirrorId::parse("mirror_id", "MIR-34ABCD").unwrap(), id);
    assert_eq!(MirrorId::parse("mirror_id", "34abcd").unwrap(), id);
    assert_eq!(MirrorId::parse("mirror_id", "mir-34abc").unwrap_err().field, "mirror_id");
    let m = started(&ask(web()));
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["selector"]["port"], "80");
    assert_eq!(json["sensor"]["kind"], "interface");
    let back: Mirror = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
}
