use super::*;

use portcullis_core::mirror::{MirrorId, Selector, Sensor};

fn lan_mirror(seed: u32) -> Mirror {
    Mirror {
        mirror_id: MirrorId::from_seed(seed),
        interface: "lan".into(),
        sensor: Sensor { name: "zeek".into(), kind: SensorKind::Interface { interface: "opt1".into() } },
        direction: MirrorDirection::Out,
        selector: Selector { protocol: Protocol::TcpUdp, port: Some(PortRange::single(53)), ..Selector::default() },
        rate_limit: 100,
        burst: 10,
        excluded: Vec::new(),
        reason: "dns".into(),
        created_at: None,
        expires_at: chrono::Utc::now(),
    }
}

fn interfaces() -> Vec<Interface> {
    vec![Interface::up("lan", "em1", None), Interface::up("opt1", "em2", None)]
}

#[test]
fn one_mirror_is_a_rule_per_clause_and_protocol_each_labelled() {
    let rules = mirror_rules(&lan_mirror(0xabc), &interfaces()).unwrap();
    // Two families, two clauses (destination port, then source port elsewhere), two protocols.
    assert_eq!(rules.len(), 8, "{rules:#?}");
    assert_eq!(
        rules[0],
        "pass out quick on em1 dup-to em2 inet proto tcp from any to any port 53 keep state max-pkt-rate 100/1 \
         label \"pcm:000abc:0\""
    );
    assert!(rules[2].contains("from any port 53 to any port != 53"), "{}", rules[2]);
    assert!(rules[4].contains(" inet6 proto tcp "), "{}", rules[4]);
    let labels: BTreeSet<String> = rules.iter().filter_map(|r| label_of(r)).map(str::to_string).collect();
    assert_eq!(labels.len(), 8);
    assert!(held(&lan_mirror(0xabc), &labels, &interfaces()));
    let mut fewer = labels.clone();
    fewer.remove("pcm:000abc:7");
    assert!(!held(&lan_mirror(0xabc), &fewer, &interfaces()), "a mirror missing one rule is not held");
}

#[test]
fn a_hostile_device_name_never_reaches_a_command() {
    for bad in ["em1;reboot", "em1 ", "$(id)", "em1'", "", "averyveryverylongname"] {
        assert!(device_name(bad).is_err(), "{bad:?}");
    }
    let mut m = lan_mirror(1);
    m.sensor.kind = SensorKind::Interface { interface: "em2;reboot".into() };
    let mut ifaces = interfaces();
    ifaces.push(Interface::up("evil", "em2;reboot", None));
    assert!(mirror_rules(&m, &ifaces).is_err());
}

#[test]
fn long_anchors_are_written_in_pieces_that_fit_a_command_then_loaded_once() {
    let rules: Vec<String> = (0..40)
        .map(|n| format!("pass in quick on em1 dup-to em2 inet proto tcp from any to any port {n} keep state label \"pcm:000001:{n}\""))
        .collect();
    let commands = load_commands(&rules).unwrap();
    assert!(commands.len() > 3, "{}", commands.len());
    assert!(commands.iter().all(|c| c.len() <= COMMAND_MAX_LEN));
    assert!(commands[0].ends_with(&format!(" > {RULES_FILE}")));
    assert!(commands[1..commands.len() - 1].iter().all(|c| c.ends_with(&format!(" >> {RULES_FILE}"))));
    assert_eq!(commands.last().unwrap(), &format!("/sbin/pfctl -a {ANCHOR} -f {RULES_FILE}"));
    let written: usize = commands.iter().map(|c| c.matches(" 'pass in").count()).sum();
    assert_eq!(written, 40);
    assert_eq!(load_commands(&[]).unwrap(), vec![format!("/sbin/pfctl -a {ANCHOR} -F rules")]);
}

#[test]
fn counters_are_summed_per_mirror_from_the_verbose_listing() {
    let listing = "block in quick on em1 from <PORTCULLIS_BLOCK> to any\n  [ Evaluations: 9 Packets: 9 Bytes: 900 States: 0 ]\n\
                   pass in quick on em1 dup-to em2 inet from any to any label \"pcm:00000a:0\"\n  [ Evaluations: 5         Packets: 4         Bytes: 400         States: 1     ]\n  [ Inserted: uid 0 pid 1 State Creations: 1 ]\n\
                   pass in quick on em1 dup-to em2 inet6 from any to any label \"pcm:00000a:1\"\n  [ Evaluations: 2 Packets: 2 Bytes: 160 States: 0 ]\n";
    let counted = counters_in(listing);
    assert_eq!(counted.len(), 1);
    assert_eq!(counted["00000a"], (6, 560));
}
