//! Traffic mirrors on pfSense: refused by default (pfRest has no dup-to); with `allow_shell` written as pf rules
//! into the anchor `userrules/portcullis_mirror` through `diagnostics/command_prompt`, exactly as the plan shows
//! them, removed at expiry and loaded again after a reboot empties the anchor. Mirrors that would let flows skip
//! the rules, or that pf cannot carry out, are refused with nothing changed.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod common;

use chrono::TimeDelta;
use common::{Lab, client_config, now, options};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::mirror::{MirrorAsk, MirrorDirection, MirrorId, Selector, Sensor, SensorKind};
use portcullis_core::model::{PortRange, Protocol};
use portcullis_core::plan::{self, Intent};
use portcullis_pfrest_emulator::Emulator;
use portcullis_pfsense::mirror::{ANCHOR, mirrors_key};
use portcullis_pfsense::{PfSenseFirewall, PfSenseOptions};

const PROMPT: &str = "/api/v2/diagnostics/command_prompt";

fn sensor() -> Sensor {
    Sensor {
        name: "zeek".into(),
        kind: SensorKind::Address { address: "10.10.10.50".parse().unwrap(), interface: "opt1".into() },
    }
}

fn web(interface: &str, seed: u32) -> MirrorAsk {
    MirrorAsk {
        mirror_id: MirrorId::from_seed(seed),
        interface: interface.into(),
        sensor: sensor(),
        direction: MirrorDirection::In,
        selector: Selector {
            protocol: Protocol::Tcp,
            source: Some("192.168.1.0/24".parse().unwrap()),
            destination_port: Some(PortRange::single(80)),
            ..Selector::default()
        },
        rate_limit: 500,
        burst: 50,
        reason: "incident 42".into(),
        expires_at: now() + TimeDelta::hours(2),
    }
}

async fn shell_lab() -> Lab {
    let mut lab = Lab::start().await;
    let mut config = client_config(&lab.emu);
    config.observer = Some(lab.trap.observer());
    lab.fw = PfSenseFirewall::new("fw1", config, lab.store.clone())
        .unwrap()
        .with_options(PfSenseOptions { allow_shell: true, ..options() });
    lab
}

fn start(ask: MirrorAsk) -> Intent {
    Intent::StartMirror(Box::new(ask))
}

fn anchor_texts(emu: &Emulator) -> Vec<String> {
    emu.anchor_rules(ANCHOR).into_iter().map(|r| r.text).collect()
}

#[tokio::test]
async fn without_allow_shell_a_mirror_is_unsupported_with_the_alternatives_and_no_shell_is_run() {
    let lab = Lab::start().await;
    let refused = lab.fw.unsupported_mirror(&web("lan", 1)).expect("refused");
    assert_eq!(refused.field, "interface");
    assert!(refused.instead.contains("SPAN") && refused.instead.contains("allow_shell"), "{}", refused.instead);
    assert_eq!(lab.fw.mirror_needs_admin(), None);
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &start(web("lan", 1)), now()).unwrap();
    let e = lab.fw.apply(&p).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unsupported, "{e:?}");
    assert!(e.hint.unwrap_or_default().contains("SPAN"));
    assert_eq!(lab.count("POST", PROMPT), 0);
    assert!(lab.fw.preview_statements(&p, &state).unwrap().is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn the_anchor_holds_exactly_the_rules_the_plan_shows_behind_the_block_lists_until_stopped() {
    let lab = shell_lab().await;
    assert!(lab.fw.mirror_needs_admin().unwrap().contains("root shell"));
    assert_eq!(lab.fw.unsupported_mirror(&web("lan", 1)), None);
    let block = Intent::Block {
        addresses: "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap().into(),
        interface: Some("lan".into()),
        expires_at: None,
        reason: "abuse".into(),
        replace: false,
    };
    lab.change(&block).await;
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &start(web("lan", 0x0a1b2c)), now()).unwrap();
    lab.fw.check(&p).await.expect("a mirror of traffic the LAN rules pass is accepted");
    let shown = lab.fw.preview_statements(&p, &state).unwrap();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(shown[0].starts_with("block in quick on em1 from <") && shown[0].ends_with("> to any"), "{}", shown[0]);
    assert_eq!(
        shown[1],
        "pass in quick on em1 dup-to (em2 10.10.10.50) inet proto tcp from 192.168.1.0/24 to ! 10.10.10.50 port 80 \
         keep state max-pkt-rate 500/1 label \"pcm:0a1b2c:0\""
    );
    let applied = lab.fw.apply(&p).await.unwrap();
    let after = lab.verify(&p, &applied).await;
    assert_eq!(after.mirrors.len(), 1);
    assert_eq!(anchor_texts(&lab.emu), shown, "the anchor holds exactly what the plan showed");

    assert!(lab.emu.count_anchor_rule(ANCHOR, "pcm:0a1b2c:0", 1234, 98_765));
    let counted = lab.fw.mirror_counters(&after).await.unwrap();
    assert_eq!((counted[0].mirror_id.as_str(), counted[0].packets, counted[0].bytes), ("mir-0a1b2c", 1234, 98_765));

    let stop = plan::plan(&after, &Intent::StopMirror { mirror_id: MirrorId::from_seed(0x0a1b2c) }, now()).unwrap();
    let applied = lab.fw.apply(&stop).await.unwrap();
    let after = lab.verify(&stop, &applied).await;
    assert!(after.mirrors.is_empty());
    assert!(anchor_texts(&lab.emu).is_empty(), "stopping the last mirror flushes the anchor");
    assert_eq!(lab.store.meta_get(&mirrors_key("fw1")).unwrap().unwrap_or_default(), "");
    lab.finish().await;
}

#[tokio::test]
async fn expiry_removes_the_rules_and_a_reboot_that_emptied_the_anchor_is_restored() {
    let lab = shell_lab().await;
    let (p, _) = lab.change(&start(web("lan", 7))).await;
    let state = lab.fw.snapshot().await.unwrap();
    let planned = lab.fw.preview_statements(&p, &state).unwrap();
    let mut second = web("lan", 8);
    second.selector.destination_port = Some(PortRange::single(8080));
    second.expires_at = now() + TimeDelta::minutes(10);
    lab.change(&start(second)).await;
    let loaded = anchor_texts(&lab.emu);
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0], planned[0]);

    lab.emu.reboot();
    let state = lab.fw.snapshot().await.unwrap();
    assert!(state.mirrors.is_empty(), "an emptied anchor holds no mirror, so none is listed");
    let restored = lab.fw.restore_lost(&state).await.unwrap();
    assert_eq!(restored, vec!["mirror mir-000007".to_string(), "mirror mir-000008".to_string()]);
    assert_eq!(anchor_texts(&lab.emu), loaded, "restored as it was");
    let state = lab.fw.snapshot().await.unwrap();
    assert_eq!(state.mirrors.len(), 2);
    assert!(lab.fw.restore_lost(&state).await.unwrap().is_empty(), "nothing is lost any more");

    // The 10-minute mirror expires first: only its rule leaves.
    let cutoff = now() + TimeDelta::minutes(11);
    let expiry = plan::plan_expiry(&state, cutoff).expect("one mirror is due");
    let applied = lab.fw.apply(&expiry).await.unwrap();
    let after = lab.verify(&expiry, &applied).await;
    assert_eq!(after.mirrors.len(), 1);
    assert_eq!(anchor_texts(&lab.emu), planned, "the remaining mirror's rule is all that is left");

    // A reboot after the other one expired: it is forgotten, not put back.
    let mut records: Vec<portcullis_core::mirror::Mirror> =
        serde_json::from_str(&lab.store.meta_get(&mirrors_key("fw1")).unwrap().unwrap()).unwrap();
    records[0].expires_at = now() - TimeDelta::seconds(1);
    lab.store.meta_set(&mirrors_key("fw1"), &serde_json::to_string(&records).unwrap()).unwrap();
    lab.emu.reboot();
    let state = lab.fw.snapshot().await.unwrap();
    assert!(lab.fw.restore_lost(&state).await.unwrap().is_empty());
    assert!(anchor_texts(&lab.emu).is_empty());
    assert_eq!(lab.store.meta_get(&mirrors_key("fw1")).unwrap().unwrap_or_default(), "");
    lab.finish().await;
}

#[tokio::test]
async fn mirrors_that_would_open_flows_or_that_pf_cannot_copy_are_refused_with_nothing_changed() {
    let lab = shell_lab().await;
    let state = lab.fw.snapshot().await.unwrap();

    // WAN passes nothing inbound: an anchor pass rule there would open port 80 to the world.
    let mut wan = web("wan", 3);
    wan.selector.source = None;
    let p = plan::plan(&state, &start(wan), now()).unwrap();
    let e = lab.fw.check(&p).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationError);
    assert!(e.message.contains("would let through") && e.message.contains("wan"), "{}", e.message);

    let mut tunnel = web("lan", 4);
    tunnel.sensor = Sensor {
        name: "far".into(),
        kind: SensorKind::Vxlan { remote: "10.10.10.60".parse().unwrap(), vni: 7, local: None, port: 4789 },
    };
    assert_eq!(lab.fw.unsupported_mirror(&tunnel).unwrap().field, "sensor");
    let mut both = web("lan", 5);
    both.direction = MirrorDirection::Both;
    assert_eq!(lab.fw.unsupported_mirror(&both).unwrap().field, "direction");
    let mut around = web("lan", 6);
    around.selector.source = None;
    around.selector.destination = Some("10.10.10.0/24".parse().unwrap());
    assert_eq!(lab.fw.unsupported_mirror(&around).unwrap().field, "destination");

    // A LAN pass rule that routes through a gateway: the anchor's rule would skip it.
    let mut routed = common::draft("lan", "via gateway", 443);
    routed.source = portcullis_core::model::AddressMatch::parse("source", "lan").unwrap();
    let (_, applied) = lab.change(&Intent::CreateRule(routed)).await;
    let tracker = common::tracker(&applied.created_rules[0]);
    let rules = lab.emu.state().rules;
    let at = rules.iter().position(|r| r["tracker"] == tracker).unwrap();
    let c = portcullis_pfrest::PfRestClient::new(client_config(&lab.emu)).unwrap();
    let req = portcullis_pfrest::types::FirewallRuleRequest {
        id: Some(at as u64),
        gateway: Some(Some("WAN_DHCP".into())),
        ..Default::default()
    };
    c.update_rule(&req).await.unwrap();
    let state = lab.fw.snapshot().await.unwrap();
    let p = plan::plan(&state, &start(web("lan", 9)), now()).unwrap();
    let e = lab.fw.check(&p).await.unwrap_err();
    assert!(e.message.contains("gateway WAN_DHCP"), "{}", e.message);

    assert_eq!(lab.count("POST", PROMPT), 0, "nothing was sent to the shell");
    assert!(anchor_texts(&lab.emu).is_empty());
    lab.finish().await;
}

#[tokio::test]
async fn a_load_the_shell_refuses_leaves_the_anchor_and_the_records_as_they_were() {
    let lab = shell_lab().await;
    lab.change(&start(web("lan", 10))).await;
    let loaded = anchor_texts(&lab.emu);
    let records = lab.store.meta_get(&mirrors_key("fw1")).unwrap();
    let state = lab.fw.snapshot().await.unwrap();
    let mut second = web("lan", 11);
    second.selector.destination_port = Some(PortRange::single(25));
    let p = plan::plan(&state, &start(second), now()).unwrap();
    // The emulator answers 500 to the first command of the write: it is refused part-way.
    let emu = lab.emu.clone();
    lab.trap.arm("POST", PROMPT, move || emu.faults().fail_next(1, 500));
    let e = lab.fw.apply(&p).await.unwrap_err();
    assert!(e.message.contains("mirror anchor"), "{e:?}");
    assert_eq!(anchor_texts(&lab.emu), loaded, "the anchor is as before");
    assert_eq!(lab.store.meta_get(&mirrors_key("fw1")).unwrap(), records, "so are the records");
    lab.finish().await;
}
