//! A change's effect on traffic (`effect::of`) for one rule added to a 1,000-rule set with a 100,000-entry block
//! list, beside what any change already costs in the same run: compiling the rule set before and after (the
//! lockout check does that too).
//!
//! Run with `cargo bench -p portcullis-core --bench effect`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::Utc;
use portcullis_core::effect;
use portcullis_core::eval::CompiledRuleSet;
use portcullis_core::model::{
    Action, AddressMatch, AddressTarget, Alias, AliasEntry, AliasKind, Interface, IpVersion, PortMatch, Protocol, Rule,
    RuleSet,
};
use portcullis_core::plan::{self, Entries, Ids, Intent, RuleDraft, carry_out};

const RULES: usize = 1_000;
const BLOCKLIST_ENTRIES: u32 = 100_000;
const ROUNDS: usize = 30;
const INTERFACES: [&str; 4] = ["wan", "lan", "dmz", "guest"];
const PORTS: [u16; 8] = [22, 25, 53, 80, 443, 3389, 8080, 8443];

/// A deterministic rule set: rules spread over four interfaces with /24 sources and common ports, the block
/// list rule first on each interface.
fn rule_set(blocked: u32) -> RuleSet {
    let interfaces = INTERFACES
        .iter()
        .enumerate()
        .map(|(i, name)| Interface::up(*name, format!("em{i}"), format!("10.{i}.0.1/24").parse().ok()))
        .collect();
    let entries = (0..blocked)
        .map(|n| AliasEntry {
            value: std::net::Ipv4Addr::from(0xC000_0000 | (n * 7)).to_string(),
            detail: "feed".into(),
            expires_at: None,
            created_at: None,
        })
        .collect();
    let blocklist = Alias {
        name: plan::BLOCK_ALIAS.into(),
        kind: AliasKind::Host,
        description: "block list".into(),
        entries,
        managed: Some(plan::MANAGED_BLOCK.into()),
    };
    let mut rules = Vec::with_capacity(RULES);
    for (i, name) in INTERFACES.iter().enumerate() {
        rules.push(Rule {
            source: AddressMatch { target: AddressTarget::Alias(plan::BLOCK_ALIAS.into()), negate: false },
            ..Rule::new(*name, Action::Block).with_id(format!("{}", 9_000 + i))
        });
    }
    for n in 0..RULES - INTERFACES.len() {
        let interface = INTERFACES[n % INTERFACES.len()];
        let source = format!("172.{}.{}.0/24", 16 + n % 16, n % 251);
        rules.push(Rule {
            protocol: Protocol::Tcp,
            ip_version: IpVersion::Inet,
            source: AddressMatch::parse("source", &source).expect("source"),
            destination_port: PortMatch::parse("port", &PORTS[n % PORTS.len()].to_string()).expect("port"),
            ..Rule::new(interface, if n % 5 == 0 { Action::Block } else { Action::Pass }).with_id(n.to_string())
        });
    }
    RuleSet { interfaces, rules, aliases: vec![blocklist], ..RuleSet::default() }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() {
    for blocked in [BLOCKLIST_ENTRIES, 0] {
        measure(blocked);
    }
}

fn measure(blocked: u32) {
    let state = rule_set(blocked);
    let now = Utc::now();
    let intent = Intent::CreateRule(RuleDraft {
        interface: "lan".into(),
        direction: portcullis_core::model::Direction::In,
        action: Action::Block,
        ip_version: None,
        protocol: Protocol::Tcp,
        source: AddressMatch::ANY,
        source_port: PortMatch::Any,
        destination: AddressMatch::ANY,
        destination_port: PortMatch::parse("port", "25").expect("port"),
        description: "No direct SMTP".into(),
        log: false,
        enabled: true,
        position: Some(120),
    });
    let plan = plan::plan(&state, &intent, now).expect("plan");
    let (mut effect_times, mut baseline_times) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        last = black_box(effect::of(&state, &plan, now));
        effect_times.push(started.elapsed());

        let started = Instant::now();
        let after = carry_out(&state, &plan, Ids::Placeholders, Entries::Apply).expect("carry out").state;
        black_box((CompiledRuleSet::compile(&state, now), CompiledRuleSet::compile(&after, now)));
        baseline_times.push(started.elapsed());
    }
    let effect = last.expect("the plan fits the state");
    println!(
        "effect/one rule added to {RULES} rules + {blocked} block-list entries: median {:.2} ms \
         ({:?}, {} classes examined, {} changed, complete: {})",
        median(&mut effect_times).as_secs_f64() * 1e3,
        effect.verdict,
        effect.examined_classes,
        effect.changed_classes,
        effect.complete
    );
    println!(
        "effect/baseline ({blocked} entries): carrying the plan out and compiling before and after   median {:.2} ms",
        median(&mut baseline_times).as_secs_f64() * 1e3
    );
}
