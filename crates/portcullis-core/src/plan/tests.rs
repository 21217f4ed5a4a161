//! Table tests for the planners and for `lockout::check`; unit tests of `carry_out`; and properties of plans made
//! by the real planners: a plan's inverse carried out after it gives back the start, `verify` accepts what
//! `carry_out` produced, and recording entries means the same as applying them.

use chrono::{DateTime, TimeDelta};
use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::egress::{EgressFlow, EgressPolicy};
use crate::firewall::{BackendError, ErrorCode};
use crate::lockout::{self, ManagementFlow};
use crate::model::{Action, AddressMatch, AddressTarget, Direction, Interface, PortMatch, PortRange, Protocol, RuleId};

fn now() -> Timestamp {
    DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01 is a valid time")
}

fn net(s: &str) -> IpNet {
    crate::model::parse_net("net", s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn interface(name: &str, device: &str, v4: &str) -> Interface {
    let ipv4 = Some(v4.parse().unwrap_or_else(|e| panic!("{v4}: {e}")));
    Interface { description: name.to_ascii_uppercase(), ..Interface::up(name, device, ipv4) }
}

fn target(t: AddressTarget) -> AddressMatch {
    AddressMatch { target: t, negate: false }
}

fn port(p: u16) -> PortMatch {
    PortMatch::Range(PortRange::single(p))
}

/// pfSense after its setup wizard, as the lab seeds it (anti-lockout and default allow on lan), plus an SSH rule
/// for one outside network on wan and a web server rule on dmz.
fn seeded() -> RuleSet {
    let t = now() - TimeDelta::days(1);
    let rules = vec![
        Rule {
            protocol: Protocol::Tcp,
            destination: target(AddressTarget::InterfaceAddress("lan".into())),
            destination_port: port(443),
            description: "Anti-Lockout Rule".into(),
            managed: Some(MANAGED_ANTI_LOCKOUT.into()),
            ..Rule::new("lan", Action::Pass).with_id("17672256000").stamped(t)
        },
        Rule {
            source: target(AddressTarget::Alias("lan".into())),
            description: "Default allow LAN to any rule".into(),
            ..Rule::new("lan", Action::Pass).with_id("17672256001").stamped(t)
        },
        Rule {
            protocol: Protocol::Tcp,
            source: target(AddressTarget::Net(net("203.0.113.0/24"))),
            destination: target(AddressTarget::InterfaceAddress("wan".into())),
            destination_port: port(22),
            description: "SSH from the office".into(),
            ip_version: crate::model::IpVersion::Inet,
            ..Rule::new("wan", Action::Pass).with_id("17672256002").stamped(t)
        },
        Rule {
            protocol: Protocol::Tcp,
            destination: target(AddressTarget::Net(net("10.10.10.5/32"))),
            destination_port: port(80),
            description: "web server".into(),
            ip_version: crate::model::IpVersion::Inet,
            ..Rule::new("dmz", Action::Pass).with_id("17672256003").stamped(t)
        },
    ];
    RuleSet {
        interfaces: vec![
            interface("wan", "em0", "198.51.100.2/24"),
            interface("lan", "em1", "192.168.1.1/24"),
            interface("dmz", "em2", "10.10.10.1/24"),
        ],
        rules,
        aliases: Vec::new(),
        protections: Vec::new(),
        mirrors: Vec::new(),
        vpn_accounts: Vec::new(),
    }
}

const WAN_SSH: &str = "17672256002";
const DMZ_WEB: &str = "17672256003";
const ANTI_LOCKOUT: &str = "17672256000";

/// `state` with `intent` planned and carried out at `now()`.
fn after(state: &RuleSet, intent: &Intent) -> RuleSet {
    let p = plan(state, intent, now()).expect("plan");
    carry_out(state, &p, Ids::Tracker(now()), Entries::Apply).expect("carry out").state
}

/// A block on every interface for `span`.
fn block_for(ip: &str, span: TimeDelta, replace: bool) -> Intent {
    Intent::Block {
        addresses: net(ip).into(),
        interface: None,
        expires_at: Some(now() + span),
        reason: "test".into(),
        replace,
    }
}

fn block(ip: &str, iface: Option<&str>) -> Intent {
    Intent::Block {
        addresses: net(ip).into(),
        interface: iface.map(Into::into),
        expires_at: Some(now() + TimeDelta::hours(1)),
        reason: "test".into(),
        replace: false,
    }
}

fn grant(ip: &str, rule: Option<GrantRule>) -> Intent {
    Intent::Grant { addresses: net(ip).into(), alias: None, expires_at: None, reason: "test".into(), rule }
}

fn ssh_grant_rule() -> GrantRule {
    GrantRule {
        interface: "WAN".into(),
        protocol: Protocol::Tcp,
        destination: target(AddressTarget::ThisFirewall),
        destination_port: port(22),
    }
}

fn draft(iface: &str, action: Action, position: Option<usize>) -> RuleDraft {
    RuleDraft {
        interface: iface.into(),
        direction: Direction::In,
        action,
        ip_version: None,
        protocol: Protocol::Any,
        source: AddressMatch::ANY,
        source_port: PortMatch::Any,
        destination: AddressMatch::ANY,
        destination_port: PortMatch::Any,
        description: "t".into(),
        log: false,
        enabled: true,
        position,
    }
}

fn id(s: &str) -> RuleId {
    RuleId(s.into())
}

fn values(entries: &[AliasEntry]) -> String {
    entries.iter().map(|e| e.value.as_str()).collect::<Vec<_>>().join(",")
}

/// One line per operation, naming what a reader of a plan checks.
fn shape(op: &Operation) -> String {
    match op {
        Operation::CreateRule { position, after } => {
            format!("create {} {}@{position} from {}", after.action.as_str(), after.interface, after.source)
        }
        Operation::UpdateRule { before, after, position } => format!(
            "update {} {} enabled={} position={position:?}",
            before.rule_id,
            after.action.as_str(),
            after.enabled
        ),
        Operation::DeleteRule { before } => format!("delete {}", before.rule_id),
        Operation::CreateAlias { after } => {
            format!("alias {} {}", after.name, after.managed.as_deref().unwrap_or("unmanaged"))
        }
        Operation::DeleteAlias { before } => format!("delete alias {}", before.name),
        Operation::PutAliasEntries { alias, before, after } => {
            format!("put {alias} {} replacing [{}]", values(after), values(before))
        }
        Operation::RemoveAliasEntries { alias, before } => format!("remove {alias} {}", values(before)),
        Operation::CreateProtection { after } => format!("protect {}", after.protection_id),
        Operation::UpdateProtection { after, .. } => format!("change protection {}", after.protection_id),
        Operation::DeleteProtection { before } => format!("unprotect {}", before.protection_id),
        Operation::CreateMirror { after } => format!("mirror {}", after.mirror_id),
        Operation::DeleteMirror { before } => format!("unmirror {}", before.mirror_id),
        Operation::CreateVpnAccount { after } => format!("vpn user {}", after.username),
        Operation::DeleteVpnAccount { before } => format!("delete vpn user {}", before.username),
    }
}

struct Case {
    name: &'static str,
    state: RuleSet,
    intent: Intent,
    /// The operations' shapes and a piece of every warning, or a piece of the error (`field: message`).
    expect: Result<(Vec<&'static str>, Vec<&'static str>), &'static str>,
}

#[test]
fn planners_turn_intents_into_these_operations_and_warnings() {
    let blocked = after(&seeded(), &block("203.0.113.9", None));
    let blocked_for_a_week = after(&seeded(), &block_for("203.0.113.9", TimeDelta::days(7), false));
    let granted = after(&seeded(), &grant("203.0.113.9", None));
    let paused = after(&seeded(), &Intent::PauseRule { rule_id: id(WAN_SSH), until: now() + TimeDelta::hours(1) });
    let cases = vec![
        Case {
            name: "a first block creates the list and its rule on every interface, below the system rules",
            state: seeded(),
            intent: block("203.0.113.9", None),
            expect: Ok((
                vec![
                    "alias PORTCULLIS_BLOCK block_list",
                    "create block wan@0 from PORTCULLIS_BLOCK",
                    "create block lan@1 from PORTCULLIS_BLOCK",
                    "create block dmz@0 from PORTCULLIS_BLOCK",
                    "put PORTCULLIS_BLOCK 203.0.113.9 replacing []",
                ],
                vec!["the block applies on every interface (wan, lan, dmz)"],
            )),
        },
        Case {
            name: "blocking again replaces the entry and says so",
            state: blocked.clone(),
            intent: block("203.0.113.9", None),
            expect: Ok((
                vec!["put PORTCULLIS_BLOCK 203.0.113.9 replacing [203.0.113.9]"],
                vec!["203.0.113.9 was already blocked (until", "the block applies on every interface"],
            )),
        },
        Case {
            name: "a shorter block keeps the longer one already there, and says so",
            state: blocked_for_a_week.clone(),
            intent: block("203.0.113.9", None),
            expect: Ok((
                vec!["put PORTCULLIS_BLOCK 203.0.113.9 replacing [203.0.113.9]"],
                vec!["203.0.113.9 is already blocked until", "the block applies on every interface"],
            )),
        },
        Case {
            name: "replace: true sets the shorter duration",
            state: blocked_for_a_week,
            intent: block_for("203.0.113.9", TimeDelta::hours(1), true),
            expect: Ok((
                vec!["put PORTCULLIS_BLOCK 203.0.113.9 replacing [203.0.113.9]"],
                vec!["203.0.113.9 was already blocked (until", "the block applies on every interface"],
            )),
        },
        Case {
            name: "a block on one interface has its own list",
            state: seeded(),
            intent: block("203.0.113.0/24", Some("LAN")),
            expect: Ok((
                vec![
                    "alias PORTCULLIS_BLOCK_LAN block_list",
                    "create block lan@1 from PORTCULLIS_BLOCK_LAN",
                    "put PORTCULLIS_BLOCK_LAN 203.0.113.0/24 replacing []",
                ],
                vec![],
            )),
        },
        Case {
            name: "blocking a whole family is warned about",
            state: seeded(),
            intent: block("0.0.0.0/0", Some("wan")),
            expect: Ok((
                vec![
                    "alias PORTCULLIS_BLOCK_WAN block_list",
                    "create block wan@0 from PORTCULLIS_BLOCK_WAN",
                    "put PORTCULLIS_BLOCK_WAN 0.0.0.0/0 replacing []",
                ],
                vec!["this block covers every address of its family"],
            )),
        },
        Case {
            name: "a block on an unknown interface names the field",
            state: seeded(),
            intent: block("203.0.113.9", Some("opt7")),
            expect: Err("interface: unknown interface \"opt7\""),
        },
        Case {
            name: "unblocking removes the entry",
            state: blocked.clone(),
            intent: Intent::Unblock { addresses: net("203.0.113.9").into(), interface: None },
            expect: Ok((vec!["remove PORTCULLIS_BLOCK 203.0.113.9"], vec![])),
        },
        Case {
            name: "unblocking what is not blocked is refused",
            state: seeded(),
            intent: Intent::Unblock { addresses: net("203.0.113.9").into(), interface: None },
            expect: Err("ip_address: 203.0.113.9 is not blocked"),
        },
        Case {
            name: "a grant without a rule warns that nothing passes it yet",
            state: seeded(),
            intent: grant("203.0.113.9", None),
            expect: Ok((
                vec!["alias PORTCULLIS_GRANT grant_list", "put PORTCULLIS_GRANT 203.0.113.9 replacing []"],
                vec!["no pass rule references PORTCULLIS_GRANT yet"],
            )),
        },
        Case {
            name: "a grant with a rule creates the pass rule once",
            state: seeded(),
            intent: grant("203.0.113.9", Some(ssh_grant_rule())),
            expect: Ok((
                vec![
                    "alias PORTCULLIS_GRANT grant_list",
                    "create pass wan@0 from PORTCULLIS_GRANT",
                    "put PORTCULLIS_GRANT 203.0.113.9 replacing []",
                ],
                vec![],
            )),
        },
        Case {
            name: "revoking removes the grant",
            state: granted.clone(),
            intent: Intent::Revoke { addresses: net("203.0.113.9").into(), alias: None },
            expect: Ok((vec!["remove PORTCULLIS_GRANT 203.0.113.9"], vec![])),
        },
        Case {
            name: "revoking what was never granted is refused",
            state: granted,
            intent: Intent::Revoke { addresses: net("203.0.113.10").into(), alias: None },
            expect: Err("ip_address: 203.0.113.10 has no grant"),
        },
        Case {
            name: "a pass rule from anywhere to anywhere goes last and is warned about twice",
            state: seeded(),
            intent: Intent::CreateRule(draft("lan", Action::Pass, None)),
            expect: Ok((
                vec!["create pass lan@2 from any"],
                vec!["passes traffic from every device on lan", "passes any traffic to any destination"],
            )),
        },
        Case {
            name: "a rule asked above the system rules goes just below them",
            state: seeded(),
            intent: Intent::CreateRule(draft("lan", Action::Block, Some(0))),
            expect: Ok((
                vec!["create block lan@1 from any"],
                vec!["position 0 is above the system rules of lan; the rule goes at position 1"],
            )),
        },
        Case {
            name: "a rule past the end of its interface is refused",
            state: seeded(),
            intent: Intent::CreateRule(draft("dmz", Action::Block, Some(5))),
            expect: Err("position: position 5 is past the end of dmz's 1 rules"),
        },
        Case {
            name: "modifying a rule updates it in place",
            state: seeded(),
            intent: Intent::ModifyRule {
                rule_id: id(WAN_SSH),
                patch: RulePatch { action: Some(Action::Block), ..RulePatch::default() },
            },
            expect: Ok((vec!["update 17672256002 block enabled=true position=None"], vec![])),
        },
        Case {
            name: "a modification that changes nothing is refused",
            state: seeded(),
            intent: Intent::ModifyRule {
                rule_id: id(WAN_SSH),
                patch: RulePatch { action: Some(Action::Pass), ..RulePatch::default() },
            },
            expect: Err("rule_id: rule 17672256002 already has these values"),
        },
        Case {
            name: "the system's rules are not edited by hand",
            state: seeded(),
            intent: Intent::DeleteRule { rule_id: id(ANTI_LOCKOUT) },
            expect: Err("is managed (anti_lockout)"),
        },
        Case {
            name: "deleting a rule",
            state: seeded(),
            intent: Intent::DeleteRule { rule_id: id(DMZ_WEB) },
            expect: Ok((vec!["delete 17672256003"], vec![])),
        },
        Case {
            name: "pausing disables the rule until its time",
            state: seeded(),
            intent: Intent::PauseRule { rule_id: id(WAN_SSH), until: now() + TimeDelta::hours(1) },
            expect: Ok((vec!["update 17672256002 pass enabled=false position=None"], vec![])),
        },
        Case {
            name: "resuming enables a paused rule",
            state: paused,
            intent: Intent::ResumeRule { rule_id: id(WAN_SSH) },
            expect: Ok((vec!["update 17672256002 pass enabled=true position=None"], vec![])),
        },
        Case {
            name: "resuming a rule that is not paused is refused",
            state: seeded(),
            intent: Intent::ResumeRule { rule_id: id(WAN_SSH) },
            expect: Err("rule_id: rule 17672256002 is not paused"),
        },
    ];
    for case in cases {
        let got = plan(&case.state, &case.intent, now());
        match (&case.expect, got) {
            (Ok((ops, warnings)), Ok(p)) => {
                let shapes: Vec<String> = p.operations.iter().map(shape).collect();
                assert_eq!(shapes, *ops, "{}", case.name);
                assert_eq!(p.warnings.len(), warnings.len(), "{}: {:?}", case.name, p.warnings);
                for (w, want) in p.warnings.iter().zip(warnings) {
                    assert!(w.contains(want), "{}: {w:?} should say {want:?}", case.name);
                }
            }
            (Err(want), Err(e)) => assert!(e.to_string().contains(want), "{}: {e} should say {want:?}", case.name),
            (want, got) => panic!("{}: expected {want:?}, got {got:?}", case.name),
        }
    }
}

/// The management flow a change cuts, and the rule that would decide it (`None`: the default deny).
type Cut = Option<(&'static str, Option<&'static str>)>;

#[test]
fn lockout_check_refuses_what_cuts_a_management_flow_and_keeps_the_rest() {
    let flow = |name: &str, iface: &str, source: &str, destination: &str, port: u16| ManagementFlow {
        name: name.into(),
        interface: iface.into(),
        direction: Direction::In,
        source: source.parse().expect("ip"),
        destination: destination.parse().expect("ip"),
        port,
    };
    let flows = [
        flow("admin gui", "lan", "192.168.1.50", "192.168.1.1", 443),
        flow("admin ssh", "lan", "192.168.1.50", "192.168.1.1", 22),
        flow("office ssh", "wan", "203.0.113.7", "198.51.100.2", 22),
    ];
    let state = seeded();
    // (what, intent, the flow cut and the rule that would decide it, or None when every flow is kept)
    let cases: Vec<(&str, Intent, Cut)> = vec![
        (
            "blocking the admin on lan keeps the gui (the anti-lockout rule comes first) and cuts ssh",
            block("192.168.1.50", Some("lan")),
            Some(("admin ssh", Some("planned-1"))),
        ),
        ("blocking another outside address keeps the office", block("198.51.100.77", None), None),
        (
            "blocking the office everywhere cuts its ssh",
            block("203.0.113.7", None),
            Some(("office ssh", Some("planned-1"))),
        ),
        (
            "deleting the office rule leaves the default deny",
            Intent::DeleteRule { rule_id: id(WAN_SSH) },
            Some(("office ssh", None)),
        ),
        (
            "pausing the office rule cuts it too",
            Intent::PauseRule { rule_id: id(WAN_SSH), until: now() + TimeDelta::hours(1) },
            Some(("office ssh", None)),
        ),
        ("a rule on another interface keeps every flow", Intent::CreateRule(draft("dmz", Action::Block, None)), None),
        (
            "a block rule above lan's default allow cuts admin ssh only",
            Intent::CreateRule(draft("lan", Action::Block, Some(1))),
            Some(("admin ssh", Some("planned-0"))),
        ),
    ];
    for (what, intent, cut) in cases {
        let p = plan(&state, &intent, now()).expect(what);
        let got = lockout::check(&state, &p, &flows, now());
        match (cut, got) {
            (None, Ok(())) => {}
            (Some((name, rule)), Err(lockout)) => {
                assert_eq!(lockout.flow.name, name, "{what}");
                assert_eq!(lockout.rule_id.as_deref(), rule, "{what}");
            }
            (cut, got) => panic!("{what}: expected {cut:?}, got {got:?}"),
        }
        assert!(lockout::check(&state, &p, &[], now()).is_ok(), "{what}: no flows, nothing to cut");
    }
    // A plan that no longer fits the state is left to the backend, which refuses it as a conflict.
    let gone = plan(&state, &Intent::DeleteRule { rule_id: id(WAN_SSH) }, now()).expect("plan");
    let without = after(&state, &Intent::DeleteRule { rule_id: id(WAN_SSH) });
    assert!(lockout::preview(&without, &gone).is_err());
    assert!(lockout::check(&without, &gone, &flows, now()).is_ok());
}

fn plan_of(operations: Vec<Operation>) -> ChangePlan {
    ChangePlan { summary: "t".into(), operations, warnings: Vec::new(), facts: ChangeFacts::default() }
}

#[test]
fn carry_out_refuses_a_plan_that_no_longer_fits() {
    let state = after(&seeded(), &block("203.0.113.9", None));
    let ssh = state.rule(&id(WAN_SSH)).expect("rule").clone();
    let entry = AliasEntry { value: "192.0.2.1".into(), detail: String::new(), expires_at: None, created_at: None };
    let cases = vec![
        (
            "a rule changed since",
            Operation::DeleteRule { before: Rule { action: Action::Block, ..ssh.clone() } },
            "rule 17672256002 was changed by someone else",
        ),
        (
            "a rule gone",
            Operation::UpdateRule { before: ssh.clone().with_id("1"), after: ssh.clone(), position: None },
            "rule 1 no longer exists",
        ),
        (
            "an alias there already",
            Operation::CreateAlias { after: state.aliases[0].clone() },
            "alias PORTCULLIS_BLOCK already exists",
        ),
        (
            "entries for an alias not there",
            Operation::PutAliasEntries { alias: "NOPE".into(), before: vec![], after: vec![entry.clone()] },
            "alias NOPE does not exist",
        ),
        (
            "removals from an alias not there",
            Operation::RemoveAliasEntries { alias: "NOPE".into(), before: vec![entry] },
            "alias NOPE does not exist",
        ),
    ];
    for (what, op, message) in cases {
        // The failing operation comes last: what came before it must not show anywhere.
        let p = plan_of(vec![Operation::DeleteRule { before: state.rules[1].clone() }, op]);
        for entries in [Entries::Apply, Entries::Record] {
            let err = carry_out(&state, &p, Ids::Placeholders, entries).expect_err(what);
            assert_eq!(err.message, message, "{what}");
        }
        let backend = BackendError::from(carry_out(&state, &p, Ids::Placeholders, Entries::Apply).expect_err(what));
        assert_eq!(backend.code, ErrorCode::Conflict);
        assert_eq!(backend.hint.as_deref(), Some("the firewall changed since the plan was made; plan again"));
    }
}

#[test]
fn carry_out_compares_rules_as_enforced_ignoring_bookkeeping_times() {
    let state = seeded();
    let ssh = state.rule(&id(WAN_SSH)).expect("rule").clone();
    let stale_times = Rule { created_at: None, updated_at: Some(now() - TimeDelta::days(9)), ..ssh.clone() };
    let p = plan_of(vec![Operation::DeleteRule { before: stale_times }]);
    let carried = carry_out(&state, &p, Ids::Placeholders, Entries::Apply).expect("same enforcement");
    assert!(carried.state.rule(&id(WAN_SSH)).is_none());
    assert_eq!(carried.interfaces.iter().collect::<Vec<_>>(), ["wan"]);
}

#[test]
fn tracker_ids_count_up_from_the_largest_in_use_or_from_now() {
    let state = seeded();
    assert_eq!(next_tracker(&state.rules, now()), id("17672256004"));
    assert_eq!(next_tracker(&[], now()), id("17672256000"));
    let later = now() + TimeDelta::days(1);
    assert_eq!(next_tracker(&state.rules, later), id("17673120001"), "the clock is ahead of every id");
    let p = plan(&state, &block("203.0.113.9", None), now()).expect("plan");
    let trackers = carry_out(&state, &p, Ids::Tracker(now()), Entries::Record).expect("fits");
    assert_eq!(trackers.applied.created_rules, [id("17672256004"), id("17672256005"), id("17672256006")]);
    let placeholders = carry_out(&state, &p, Ids::Placeholders, Entries::Record).expect("fits");
    assert_eq!(placeholders.applied.created_rules, [id("planned-1"), id("planned-2"), id("planned-3")]);
    assert_eq!(trackers.new_aliases, [BLOCK_ALIAS]);
    assert!(trackers.state.aliases.iter().all(|a| a.entries.is_empty()), "recorded, not applied");
}

#[test]
fn entries_put_and_removed_in_one_plan_are_recorded_as_their_net_change() {
    let state = after(&seeded(), &block("203.0.113.9", None));
    let entry = |v: &str, detail: &str| AliasEntry {
        value: v.into(),
        detail: detail.into(),
        expires_at: None,
        created_at: Some(now()),
    };
    let put = |e: AliasEntry| Operation::PutAliasEntries { alias: BLOCK_ALIAS.into(), before: vec![], after: vec![e] };
    let remove = |e: AliasEntry| Operation::RemoveAliasEntries { alias: BLOCK_ALIAS.into(), before: vec![e] };
    let cases = vec![
        (
            "put then removed: gone",
            vec![put(entry("192.0.2.1", "a")), remove(entry("192.0.2.1", "a"))],
            vec!["203.0.113.9:test"],
        ),
        (
            "removed then put back: there, as put",
            vec![remove(entry("203.0.113.9", "")), put(entry("203.0.113.9", "new"))],
            vec!["203.0.113.9:new"],
        ),
        (
            "put twice: the second one",
            vec![put(entry("192.0.2.1", "a")), put(entry("192.0.2.1", "b"))],
            vec!["203.0.113.9:test", "192.0.2.1:b"],
        ),
    ];
    for (what, ops, want) in cases {
        let p = plan_of(ops);
        let applied = carry_out(&state, &p, Ids::Placeholders, Entries::Apply).expect(what);
        let got: Vec<String> =
            applied.state.aliases[0].entries.iter().map(|e| format!("{}:{}", e.value, e.detail)).collect();
        assert_eq!(got, want, "{what}");
        let recorded = carry_out(&state, &p, Ids::Placeholders, Entries::Record).expect(what);
        let overlap =
            recorded.put.iter().any(|(a, e)| recorded.removed.iter().any(|(b, r)| a == b && e.value == r.value));
        assert!(!overlap, "{what}: no value is both put and removed");
    }
}

// Properties over plans made by the real planners.

const NETS: &[&str] =
    &["203.0.113.7/32", "203.0.113.0/24", "198.51.100.9/32", "2001:db8::7/128", "192.168.1.50/32", "10.10.10.0/24"];
const IFACES: &[&str] = &["wan", "lan", "dmz"];
const ACTIONS: &[Action] = &[Action::Pass, Action::Block, Action::Reject];

/// An intent in terms of indices into the pools and into the state's rules, so that it can be drawn before the
/// state it applies to is known.
#[derive(Debug, Clone)]
enum Spec {
    Block {
        net: usize,
        iface: Option<usize>,
        expires: bool,
    },
    Unblock {
        net: usize,
        iface: Option<usize>,
    },
    Grant {
        net: usize,
        own_alias: bool,
        expires: bool,
        rule: Option<usize>,
    },
    Revoke {
        net: usize,
        own_alias: bool,
    },
    Create {
        iface: usize,
        action: usize,
        port: Option<u16>,
        source: Option<usize>,
        position: Option<usize>,
    },
    Modify {
        rule: usize,
        action: Option<usize>,
        enabled: Option<bool>,
        position: Option<usize>,
        log: Option<bool>,
    },
    Delete {
        rule: usize,
    },
    Pause {
        rule: usize,
    },
    Resume {
        rule: usize,
    },
    SetEgress {
        iface: usize,
        flows: usize,
    },
    RemoveEgress {
        iface: usize,
    },
    /// `plan_expiry` two hours on: blocks and grants with an expiry are due, and pauses are over.
    Expire,
}

fn spec() -> impl Strategy<Value = Spec> {
    let n = || 0..NETS.len();
    let iface = || 0..IFACES.len();
    prop_oneof![
        3 => (n(), prop::option::of(iface()), any::<bool>()).prop_map(|(net, iface, expires)| Spec::Block { net, iface, expires }),
        2 => (n(), prop::option::of(iface())).prop_map(|(net, iface)| Spec::Unblock { net, iface }),
        2 => (n(), any::<bool>(), any::<bool>(), prop::option::of(iface()))
            .prop_map(|(net, own_alias, expires, rule)| Spec::Grant { net, own_alias, expires, rule }),
        1 => (n(), any::<bool>()).prop_map(|(net, own_alias)| Spec::Revoke { net, own_alias }),
        3 => (iface(), 0..ACTIONS.len(), prop::option::of(prop::sample::select(vec![22u16, 80, 443])), prop::option::of(n()), prop::option::of(0..4usize))
            .prop_map(|(iface, action, port, source, position)| Spec::Create { iface, action, port, source, position }),
        2 => (any::<usize>(), prop::option::of(0..ACTIONS.len()), prop::option::of(any::<bool>()), prop::option::of(0..4usize), prop::option::of(any::<bool>()))
            .prop_map(|(rule, action, enabled, position, log)| Spec::Modify { rule, action, enabled, position, log }),
        1 => any::<usize>().prop_map(|rule| Spec::Delete { rule }),
        1 => any::<usize>().prop_map(|rule| Spec::Pause { rule }),
        1 => any::<usize>().prop_map(|rule| Spec::Resume { rule }),
        1 => (iface(), 0..3usize).prop_map(|(iface, flows)| Spec::SetEgress { iface, flows }),
        1 => iface().prop_map(|iface| Spec::RemoveEgress { iface }),
        1 => Just(Spec::Expire),
    ]
}

/// The plan for `spec` on `state` at `at`: `None` when the planner refuses it (a refusal changes nothing).
fn plan_spec(state: &RuleSet, spec: &Spec, at: Timestamp) -> Option<ChangePlan> {
    let rule_id = |i: &usize| (!state.rules.is_empty()).then(|| state.rules[i % state.rules.len()].rule_id.clone());
    let expiry = |e: &bool| e.then(|| at + TimeDelta::hours(1));
    let own = |o: &bool| o.then(|| "OPS_GRANT".to_string());
    // Unblocks and revokes mostly name what is listed, so that the planners do not just refuse them.
    let listed = |managed: &str, i: usize| {
        let values: Vec<&str> = state
            .aliases
            .iter()
            .filter(|a| a.managed.as_deref() == Some(managed))
            .flat_map(|a| a.entries.iter().map(|e| e.value.as_str()))
            .chain(NETS.iter().copied().take(1))
            .collect();
        Some(net(values[i % values.len()]))
    };
    let intent = match spec {
        Spec::Block { net: n, iface, expires } => Intent::Block {
            addresses: net(NETS[*n]).into(),
            interface: iface.map(|i| IFACES[i].into()),
            expires_at: expiry(expires),
            reason: "p".into(),
            replace: false,
        },
        Spec::Unblock { net: n, iface } => {
            Intent::Unblock { addresses: listed(MANAGED_BLOCK, *n)?.into(), interface: iface.map(|i| IFACES[i].into()) }
        }
        Spec::Grant { net: n, own_alias, expires, rule } => Intent::Grant {
            addresses: net(NETS[*n]).into(),
            alias: own(own_alias),
            expires_at: expiry(expires),
            reason: "p".into(),
            rule: rule.map(|i| GrantRule { interface: IFACES[i].into(), ..ssh_grant_rule() }),
        },
        Spec::Revoke { net: n, own_alias } => {
            Intent::Revoke { addresses: listed(MANAGED_GRANT, *n)?.into(), alias: own(own_alias) }
        }
        Spec::Create { iface, action, port: p, source, position } => Intent::CreateRule(RuleDraft {
            protocol: if p.is_some() { Protocol::Tcp } else { Protocol::Any },
            destination_port: p.map_or(PortMatch::Any, port),
            source: source.map_or(AddressMatch::ANY, |n| target(AddressTarget::Net(net(NETS[n])))),
            ..draft(IFACES[*iface], ACTIONS[*action], *position)
        }),
        Spec::Modify { rule, action, enabled, position, log } => Intent::ModifyRule {
            rule_id: rule_id(rule)?,
            patch: RulePatch {
                action: action.map(|a| ACTIONS[a]),
                enabled: *enabled,
                position: *position,
                log: *log,
                ..RulePatch::default()
            },
        },
        Spec::Delete { rule } => Intent::DeleteRule { rule_id: rule_id(rule)? },
        Spec::Pause { rule } => Intent::PauseRule { rule_id: rule_id(rule)?, until: at + TimeDelta::minutes(30) },
        Spec::Resume { rule } => {
            let paused: Vec<&Rule> = state.rules.iter().filter(|r| r.paused_until.is_some()).collect();
            let chosen = (!paused.is_empty()).then(|| paused[rule % paused.len()])?;
            Intent::ResumeRule { rule_id: chosen.rule_id.clone() }
        }
        Spec::SetEgress { iface, flows } => Intent::SetEgressPolicy(EgressPolicy {
            interface: IFACES[*iface].into(),
            allow: (0..*flows)
                .map(|k| EgressFlow {
                    name: format!("flow {k}"),
                    protocol: Protocol::Tcp,
                    destination: net(NETS[k]),
                    port: Some(PortRange::single(443)),
                })
                .collect(),
        }),
        Spec::RemoveEgress { iface } => Intent::RemoveEgressPolicy { interface: IFACES[*iface].into() },
        Spec::Expire => return plan_expiry(state, at + TimeDelta::hours(2)),
    };
    plan(state, &intent, at).ok()
}

fn sorted_entries(alias: &Alias) -> Vec<AliasEntry> {
    let mut entries = alias.entries.clone();
    entries.sort_by(|a, b| a.value.cmp(&b.value));
    entries
}

/// The equivalence a plan and its inverse keep: the same interfaces; on every interface the same rules in the
/// same order (a position is an index among the rules of one interface: where an interface's rules sit among
/// other interfaces' rules means nothing, and a rule restored to an interface left empty goes last), equal in
/// every field, except that a rule the plan deleted comes back under a new id; every alias of the start with the
/// same definition and the same entries (as a set: entries are matched by value, and a restored entry goes to
/// the end of its list); and, besides those, only the aliases the plan created, still there and empty.
fn restored(start: &RuleSet, p: &ChangePlan, back: &RuleSet) -> Result<(), String> {
    if back.interfaces != start.interfaces {
        return Err("interfaces differ".into());
    }
    if back.rules.len() != start.rules.len() {
        return Err(format!("{} rules instead of {}", back.rules.len(), start.rules.len()));
    }
    let deleted = |rid: &RuleId| {
        p.operations.iter().any(|op| matches!(op, Operation::DeleteRule { before } if &before.rule_id == rid))
    };
    for name in start.rules.iter().map(|r| r.interface.as_str()) {
        let (was, now): (Vec<&Rule>, Vec<&Rule>) = (start.rules_on(name).collect(), back.rules_on(name).collect());
        if was.len() != now.len() {
            return Err(format!("{name}: {} rules instead of {}", now.len(), was.len()));
        }
        for (i, (was, now)) in was.into_iter().zip(now).enumerate() {
            let same =
                was == now || (deleted(&was.rule_id) && Rule { rule_id: was.rule_id.clone(), ..now.clone() } == *was);
            if !same {
                return Err(format!("{name} rule {i}: {was:?} came back as {now:?}"));
            }
        }
    }
    for was in &start.aliases {
        let now = back.alias(&was.name).ok_or_else(|| format!("alias {} is gone", was.name))?;
        let definition = |a: &Alias| Alias { entries: Vec::new(), ..a.clone() };
        if definition(now) != definition(was) || sorted_entries(now) != sorted_entries(was) {
            return Err(format!("alias {}: {:?} came back as {:?}", was.name, was, now));
        }
    }
    for now in back.aliases.iter().filter(|a| start.alias(&a.name).is_none()) {
        let created =
            p.operations.iter().any(|op| matches!(op, Operation::CreateAlias { after } if after.name == now.name));
        if !created || !now.entries.is_empty() {
            return Err(format!("alias {} should not be there, or not with entries: {now:?}", now.name));
        }
    }
    Ok(())
}

/// Every property, for one plan on one state; returns the state after the plan.
fn check_plan(state: &RuleSet, p: &ChangePlan, at: Timestamp) -> Result<RuleSet, TestCaseError> {
    let carried = carry_out(state, p, Ids::Tracker(at), Entries::Apply)
        .map_err(|c| TestCaseError::fail(format!("a fresh plan must fit its state: {c}\n{p:#?}")))?;
    // (b) verify accepts what carry_out produced.
    prop_assert_eq!(verify(p, &carried.applied, &carried.state), Ok(()), "{:#?}", p);

    // Recording entries means the same as applying them: the recorded change, written into the lists the
    // state had (and the new, empty aliases), gives the applied state's lists, order included.
    let recorded =
        carry_out(state, p, Ids::Tracker(at), Entries::Record).map_err(|c| TestCaseError::fail(c.message))?;
    prop_assert_eq!(&recorded.state.rules, &carried.state.rules);
    prop_assert_eq!(&recorded.applied, &carried.applied);
    let mut lists = state.aliases.clone();
    lists.extend(recorded.new_aliases.iter().filter_map(|n| recorded.state.alias(n)).cloned());
    recorded.apply_entries(&mut lists);
    prop_assert_eq!(&lists, &carried.state.aliases);

    // (a) The inverse, carried out right after, gives back the start (see `restored` for the equivalence).
    let undo = invert(p, &carried.applied, state, &carried.state);
    let later = at + TimeDelta::seconds(1);
    let back = carry_out(&carried.state, &undo, Ids::Tracker(later), Entries::Apply)
        .map_err(|c| TestCaseError::fail(format!("the inverse must fit: {c}\n{p:#?}\n{undo:#?}")))?;
    prop_assert_eq!(verify(&undo, &back.applied, &back.state), Ok(()));
    if let Err(why) = restored(state, p, &back.state) {
        return Err(TestCaseError::fail(format!("{why}\nplan: {p:#?}\nundo: {undo:#?}")));
    }
    Ok(carried.state)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// From the seeded firewall, a run of planned changes; every step's plan keeps the properties.
    #[test]
    fn planned_changes_carry_out_verify_and_undo_to_the_start(specs in prop::collection::vec(spec(), 1..10)) {
        let mut state = seeded();
        for (k, s) in specs.iter().enumerate() {
            let at = now() + TimeDelta::minutes(k as i64);
            if let Some(p) = plan_spec(&state, s, at) {
                state = check_plan(&state, &p, at)?;
            }
        }
    }
}

#[test]
fn a_block_never_lands_in_a_list_of_another_purpose_under_its_name() {
    for managed in [Some(MANAGED_GRANT.to_string()), None] {
        let mut state = seeded();
        state.aliases.push(Alias {
            name: BLOCK_ALIAS.into(),
            kind: crate::model::AliasKind::Network,
            description: "made by hand".into(),
            entries: Vec::new(),
            managed: managed.clone(),
        });
        let e = plan(&state, &block("203.0.113.9", None), now()).unwrap_err();
        assert_eq!(e.field, "ip_address", "{managed:?}");
        assert!(e.message.contains("not a Portcullis block list"), "{}", e.message);
    }
}
