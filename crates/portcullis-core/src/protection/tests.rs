use chrono::Utc;

use super::*;
use crate::model::{Interface, RuleSet};
use crate::plan::{Entries, Ids, Intent, Operation, carry_out, invert, plan, verify};

fn state() -> RuleSet {
    RuleSet {
        interfaces: vec![Interface::up("wan", "em0", Some("203.0.113.1/24".parse().unwrap()))],
        ..RuleSet::default()
    }
}

fn asked(ports: &[u16]) -> Protection {
    Protection {
        protection_id: String::new(),
        interface: "WAN".into(),
        protocol: Transport::Tcp,
        ports: ports.iter().map(|p| PortRange::single(*p)).collect(),
        rate_limit: Some(Rate::parse("rate_limit", "1000/s").unwrap()),
        per_source_rate: Some(Rate::parse("per_source_rate", "20/s").unwrap()),
        overload_block_seconds: Some(600),
        max_connections_per_source: Some(50),
        per_source_bandwidth: None,
        syn_proxy: false,
        exempt: vec!["198.51.100.0/24".parse().unwrap()],
        created_at: None,
        updated_at: None,
    }
}

#[test]
fn a_protection_is_created_changed_and_removed_and_each_undo_restores_the_state() {
    let now = Utc::now();
    let s0 = state();
    let create = plan(&s0, &Intent::ConfigureProtection(Box::new(asked(&[443]))), now).unwrap();
    assert!(
        matches!(&create.operations[..], [Operation::CreateProtection { after }] if after.protection_id == "wan/tcp/443")
    );
    let c1 = carry_out(&s0, &create, Ids::Placeholders, Entries::Apply).unwrap();
    verify(&create, &c1.applied, &c1.state).unwrap();
    let s1 = c1.state;

    let mut looser = asked(&[443]);
    looser.per_source_rate = Some(Rate::parse("per_source_rate", "40/s").unwrap());
    let change = plan(&s1, &Intent::ConfigureProtection(Box::new(looser)), now).unwrap();
    assert!(change.facts.widens_exposure, "a higher per-source rate lets more through");
    let c2 = carry_out(&s1, &change, Ids::Placeholders, Entries::Apply).unwrap();
    assert_eq!(c2.state.protections.len(), 1);
    let undo = invert(&change, &c2.applied, &s1, &c2.state);
    let back = carry_out(&c2.state, &undo, Ids::Placeholders, Entries::Apply).unwrap().state;
    assert!(same_enforcement(&back.protections[0], &s1.protections[0]));

    let key = ProtectionKey { interface: "wan".into(), protocol: Transport::Tcp, ports: vec![PortRange::single(443)] };
    let remove = plan(&s1, &Intent::RemoveProtection(key), now).unwrap();
    let c3 = carry_out(&s1, &remove, Ids::Placeholders, Entries::Apply).unwrap();
    assert!(c3.state.protections.is_empty());
    let undo = invert(&remove, &c3.applied, &s1, &c3.state);
    let back = carry_out(&c3.state, &undo, Ids::Placeholders, Entries::Apply).unwrap().state;
    assert_eq!(back.protections, s1.protections);
}

#[test]
fn a_stale_before_is_a_conflict() {
    let now = Utc::now();
    let s0 = state();
    let create = plan(&s0, &Intent::ConfigureProtection(Box::new(asked(&[443]))), now).unwrap();
    let s1 = carry_out(&s0, &create, Ids::Placeholders, Entries::Apply).unwrap().state;
    assert!(carry_out(&s1, &create, Ids::Placeholders, Entries::Apply).is_err(), "created twice");
    let key = ProtectionKey { interface: "wan".into(), protocol: Transport::Tcp, ports: vec![PortRange::single(443)] };
    let remove = plan(&s1, &Intent::RemoveProtection(key), now).unwrap();
    let mut drifted = s1.clone();
    drifted.protections[0].max_connections_per_source = Some(5);
    assert!(carry_out(&drifted, &remove, Ids::Placeholders, Entries::Apply).is_err());
}

#[test]
fn bad_combinations_name_their_field() {
    let now = Utc::now();
    let s0 = state();
    type Edit = Box<dyn Fn(&mut Protection)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("interface", Box::new(|p| p.interface = "dmz9".into())),
        (
            "syn_proxy",
            Box::new(|p| {
                p.syn_proxy = true;
                p.protocol = Transport::Udp;
            }),
        ),
        ("overload_block", Box::new(|p| p.per_source_rate = None)),
        ("max_connections_per_source", Box::new(|p| p.max_connections_per_source = Some(0))),
        ("per_source_rate", Box::new(|p| p.per_source_rate = Some(Rate::parse("x", "2000/s").unwrap()))),
        (
            "rate_limit",
            Box::new(|p| {
                p.rate_limit = None;
                p.per_source_rate = None;
                p.overload_block_seconds = None;
                p.max_connections_per_source = None;
            }),
        ),
        ("ports[1]", Box::new(|p| p.ports = vec![PortRange { first: 80, last: 90 }, PortRange::single(85)])),
    ];
    for (field, edit) in cases {
        let mut p = asked(&[443]);
        edit(&mut p);
        let err = plan(&s0, &Intent::ConfigureProtection(Box::new(p)), now).expect_err(field);
        assert_eq!(err.field, field, "{}", err.message);
    }
}

#[test]
fn a_management_flow_the_protection_would_limit_is_found_unless_its_source_is_exempt() {
    let now = Utc::now();
    let s0 = state();
    let flow = ManagementFlow {
        name: "ops ssh".into(),
        interface: "wan".into(),
        direction: Direction::In,
        source: "192.0.2.10".parse().unwrap(),
        destination: "203.0.113.1".parse().unwrap(),
        port: 22,
    };
    let flows = vec![flow];
    let on_22 = plan(&s0, &Intent::ConfigureProtection(Box::new(asked(&[22]))), now).unwrap();
    let err = crate::lockout::check(&s0, &on_22, &flows, now).expect_err("22 limited");
    assert!(err.rule_description.contains("wan/tcp/22"), "{}", err.rule_description);
    let on_443 = plan(&s0, &Intent::ConfigureProtection(Box::new(asked(&[443]))), now).unwrap();
    crate::lockout::check(&s0, &on_443, &flows, now).unwrap();
    let mut exempt = asked(&[22]);
    exempt.exempt.push("192.0.2.10/32".parse().unwrap());
    let spared = plan(&s0, &Intent::ConfigureProtection(Box::new(exempt)), now).unwrap();
    crate::lockout::check(&s0, &spared, &flows, now).unwrap();
}
