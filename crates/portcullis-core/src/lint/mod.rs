//! Rule-set lint: rules that can never match (shadowed or redundant), overly broad pass rules, and disabled
//! rules left behind.

mod union;

use chrono::TimeDelta;
use schemars::JsonSchema;
use serde::Serialize;

use crate::eval::{ResolvedRule, Resolver};
use crate::model::{Action, Direction, IpVersion, RuleSet, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An earlier rule with a different action matches everything this rule matches: it never decides.
    Shadowed,
    /// An earlier rule with the same action matches everything this rule matches: it can be removed.
    Redundant,
    OverlyBroad,
    Disabled,
    LongDisabled,
    Paused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    High,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub rule_id: String,
    pub interface: String,
    pub description: String,
    pub message: String,
    /// The earlier rule that shadows this one, where that applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Where several rules shadow it together, this is the first of them; the message names them all.
    pub related_rule_id: Option<String>,
}

/// Settings of the lint.
pub struct LintOptions<'a> {
    /// Interfaces facing untrusted networks, where a pass rule from `any` is flagged.
    pub exposed_interfaces: &'a [String],
    /// Disabled longer than this is "long disabled".
    pub stale_after: TimeDelta,
}

pub fn lint(rules: &RuleSet, now: Timestamp, options: &LintOptions<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let resolved = Resolver::new(rules, now).resolve_all();
    let regions = union::Regions::of(&resolved);
    for (pos, later) in resolved.iter().enumerate() {
        let above = &resolved[..pos];
        if let Some(earlier) = above.iter().find(|e| covers(e, later)) {
            findings.push(shadow_finding(rules, &[earlier], later));
            continue;
        }
        let same_interface: Vec<(usize, &ResolvedRule)> =
            above.iter().enumerate().filter(|(_, e)| e.interface == later.interface).collect();
        if let Some(together) = union::deciders(&same_interface, (pos, later), &regions) {
            findings.push(shadow_finding(rules, &together, later));
        }
    }
    let mut resolver = Resolver::new(rules, now);
    for rule in &rules.rules {
        let finding = |kind, severity, message: String| Finding {
            kind,
            severity,
            rule_id: rule.rule_id.to_string(),
            interface: rule.interface.clone(),
            description: rule.description.clone(),
            message,
            related_rule_id: None,
        };
        if rule.paused_until.is_some() {
            let until = rule.paused_until.map(|t| t.to_rfc3339()).unwrap_or_default();
            findings.push(finding(FindingKind::Paused, Severity::Info, format!("paused until {until}")));
        } else if !rule.enabled {
            let stale = rule.updated_at.is_some_and(|t| now - t > options.stale_after);
            findings.push(if stale {
                finding(
                    FindingKind::LongDisabled,
                    Severity::Warning,
                    format!(
                        "disabled for more than {} days; delete it if it is no longer needed",
                        options.stale_after.num_days()
                    ),
                )
            } else {
                finding(FindingKind::Disabled, Severity::Info, "disabled; consider deleting it".into())
            });
        }
        if rule.enabled && rule.action == Action::Pass && from_everywhere(&mut resolver, rule) {
            let exposed = options.exposed_interfaces.iter().any(|i| i.eq_ignore_ascii_case(&rule.interface));
            let any_any = rule.destination_port.is_any() && to_everywhere(&mut resolver, rule);
            if exposed || any_any {
                let msg = if any_any {
                    "passes any traffic from any source to any destination".to_string()
                } else {
                    format!("passes traffic from any source on exposed interface {}", rule.interface)
                };
                findings.push(finding(FindingKind::OverlyBroad, Severity::High, msg));
            }
        }
    }
    findings
}

/// A rule that never decides anything: the earlier rules that match everything it does (one, or several together)
/// decide instead. Shadowed when one of them acts otherwise, redundant when they all act alike.
fn shadow_finding(rules: &RuleSet, earlier: &[&ResolvedRule], later: &ResolvedRule) -> Finding {
    let l = &rules.rules[later.index];
    let names: Vec<String> = earlier
        .iter()
        .map(|e| &rules.rules[e.index])
        .map(|e| format!("rule {} ({:?})", e.rule_id, e.description))
        .collect();
    let differs = earlier.iter().any(|e| e.action != later.action);
    let (kind, severity) =
        if differs { (FindingKind::Shadowed, Severity::High) } else { (FindingKind::Redundant, Severity::Warning) };
    let message = match (names.as_slice(), differs) {
        ([one], false) => format!("already covered by {one} above it"),
        ([one], true) => format!("never matches: it is shadowed by {one} above it"),
        (_, false) => format!("already covered by {} above it together", names.join(", ")),
        (_, true) => format!(
            "never matches: it is shadowed by {} above it together, which decide its traffic with {}",
            names.join(", "),
            if earlier.iter().all(|e| e.action != later.action) { "another action" } else { "mixed actions" }
        ),
    };
    Finding {
        kind,
        severity,
        rule_id: l.rule_id.to_string(),
        interface: l.interface.clone(),
        description: l.description.clone(),
        message,
        related_rule_id: earlier.first().map(|e| rules.rules[e.index].rule_id.to_string()),
    }
}

/// Whether every packet `b` matches is matched by `a` (conservative: `false` when unsure).
fn covers(a: &ResolvedRule, b: &ResolvedRule) -> bool {
    a.interface == b.interface
        && (a.direction == Direction::Any || a.direction == b.direction)
        && (a.ip_version == IpVersion::Inet46 || a.ip_version == b.ip_version)
        && a.protocol.covers(b.protocol)
        && side_covers(&a.source, a.source_negate, &b.source, b.source_negate)
        && side_covers(&a.destination, a.destination_negate, &b.destination, b.destination_negate)
        && ports_cover(&a.source_ports, &b.source_ports)
        && ports_cover(&a.destination_ports, &b.destination_ports)
}

/// Whether a rule's source holds every address of a family it applies to, however it is written (`any`,
/// `0.0.0.0/0`, an alias of two `/1`s).
fn from_everywhere(resolver: &mut Resolver<'_>, rule: &crate::model::Rule) -> bool {
    let source = resolver.address_set(&rule.source);
    crate::address::families_of(rule.ip_version)
        .iter()
        .any(|f| crate::address::covers_family(&source, rule.source.negate, *f))
}

/// Whether a rule passes every source to every destination address of some family it applies to.
fn to_everywhere(resolver: &mut Resolver<'_>, rule: &crate::model::Rule) -> bool {
    let source = resolver.address_set(&rule.source);
    let destination = resolver.address_set(&rule.destination);
    crate::address::any_to_any((&source, rule.source.negate), (&destination, rule.destination.negate), rule.ip_version)
}

fn side_covers(a: &crate::eval::AddrSet, a_neg: bool, b: &crate::eval::AddrSet, b_neg: bool) -> bool {
    match (a_neg, b_neg) {
        (false, false) => a.covers(b),
        // !A ⊇ !B exactly when B ⊇ A.
        (true, true) => b.covers(a),
        _ => false,
    }
}

fn ports_cover(a: &Option<crate::eval::PortSet>, b: &Option<crate::eval::PortSet>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|(lo, hi)| a.iter().any(|(x, y)| x <= lo && hi <= y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interface, PortMatch, Protocol, Rule};

    fn lan_rules(rules: Vec<Rule>) -> RuleSet {
        let lan = Interface::up("lan", "em1", "192.168.1.1/24".parse().ok());
        let rules = rules.into_iter().enumerate().map(|(i, r)| r.with_id((i + 1).to_string())).collect();
        RuleSet { interfaces: vec![lan], rules, aliases: Vec::new(), ..RuleSet::default() }
    }

    fn rule(action: Action, ip_version: IpVersion, protocol: Protocol, port: &str, description: &str) -> Rule {
        Rule {
            ip_version,
            protocol,
            destination_port: if port.is_empty() { PortMatch::Any } else { PortMatch::parse("port", port).unwrap() },
            description: description.into(),
            ..Rule::new("lan", action)
        }
    }

    /// Rules on LAN from `action protocol [ports] [inet|inet6]` separated by `;` (inet46 unless said).
    fn spec(text: &str) -> Vec<Rule> {
        text.split(';')
            .map(|r| {
                let words: Vec<&str> = r.split_whitespace().collect();
                let action = Action::parse("action", words[0]).unwrap();
                let protocol = Protocol::parse("protocol", words[1]).unwrap();
                let version = |w: &str| IpVersion::parse("ip_version", w).ok();
                let ports = words.get(2).filter(|w| version(w).is_none()).copied().unwrap_or("");
                let ip_version = words.iter().skip(2).find_map(|w| version(w)).unwrap_or(IpVersion::Inet46);
                rule(action, ip_version, protocol, ports, r.trim())
            })
            .collect()
    }

    fn findings_of(state: &RuleSet, rule_id: &str) -> Vec<Finding> {
        let options = LintOptions { exposed_interfaces: &[], stale_after: TimeDelta::days(30) };
        lint(state, chrono::Utc::now(), &options)
            .into_iter()
            .filter(|f| f.rule_id == rule_id && matches!(f.kind, FindingKind::Shadowed | FindingKind::Redundant))
            .collect()
    }

    #[test]
    fn a_rule_under_the_ipv4_and_ipv6_allow_rules_together_is_shadowed_by_both() {
        let state = lan_rules(vec![
            rule(Action::Pass, IpVersion::Inet, Protocol::Any, "", "Default allow LAN to any rule"),
            rule(Action::Pass, IpVersion::Inet6, Protocol::Any, "", "Default allow LAN IPv6 to any rule"),
            rule(Action::Block, IpVersion::Inet46, Protocol::Tcp, "25", "No direct SMTP"),
        ]);
        let found = findings_of(&state, "3");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, FindingKind::Shadowed);
        assert!(found[0].message.contains("rule 1") && found[0].message.contains("rule 2"), "{}", found[0].message);
        assert!(found[0].message.contains("another action"), "{}", found[0].message);
        assert_eq!(found[0].related_rule_id.as_deref(), Some("1"));
    }

    #[test]
    fn three_rules_that_each_take_a_part_of_the_ports_shadow_a_rule_for_all_of_them() {
        let state = lan_rules(spec(
            "pass tcp 1:1000; block tcp 1001:2000; pass tcp/udp 2001:65535; pass tcp 1:65535; pass any",
        ));
        let found = findings_of(&state, "4");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, FindingKind::Shadowed, "rule 2 blocks part of it");
        for id in ["rule 1", "rule 2", "rule 3"] {
            assert!(found[0].message.contains(id), "{}", found[0].message);
        }
        assert!(found[0].message.contains("mixed actions"), "{}", found[0].message);
        assert!(findings_of(&state, "5").is_empty(), "other protocols still reach the last rule");
    }

    #[test]
    fn overly_broad_is_what_the_addresses_cover_not_their_spelling() {
        let pass = |source: &str, destination: &str, ip_version| Rule {
            ip_version,
            source: crate::model::AddressMatch::parse("source", source).unwrap(),
            destination: crate::model::AddressMatch::parse("destination", destination).unwrap(),
            ..Rule::new("lan", Action::Pass)
        };
        let mut state = lan_rules(vec![
            pass("any", "any", IpVersion::Inet46),
            pass("0.0.0.0/0", "0.0.0.0/0", IpVersion::Inet),
            pass("::/0", "any", IpVersion::Inet6),
            pass("HALVES", "any", IpVersion::Inet),
            pass("0.0.0.0/1", "any", IpVersion::Inet),
            pass("any", "192.0.2.0/24", IpVersion::Inet),
        ]);
        let entry = |v: &str| crate::model::AliasEntry {
            value: v.into(),
            detail: String::new(),
            expires_at: None,
            created_at: None,
        };
        state.aliases.push(crate::model::Alias {
            name: "HALVES".into(),
            kind: crate::model::AliasKind::Network,
            description: String::new(),
            entries: vec![entry("0.0.0.0/1"), entry("128.0.0.0/1")],
            managed: None,
        });
        let options = LintOptions { exposed_interfaces: &[], stale_after: TimeDelta::days(30) };
        let broad: Vec<String> = lint(&state, chrono::Utc::now(), &options)
            .into_iter()
            .filter(|f| f.kind == FindingKind::OverlyBroad)
            .map(|f| f.rule_id)
            .collect();
        assert_eq!(broad, ["1", "2", "3", "4"]);
        let exposed = ["lan".to_string()];
        let options = LintOptions { exposed_interfaces: &exposed, ..options };
        let from_anywhere = lint(&state, chrono::Utc::now(), &options)
            .into_iter()
            .filter(|f| f.kind == FindingKind::OverlyBroad)
            .count();
        assert_eq!(from_anywhere, 5, "every rule but the one from 0.0.0.0/1, on an exposed interface");
    }

    #[test]
    fn a_rule_only_partly_covered_is_not_reported() {
        let state = lan_rules(spec("pass any inet; pass tcp 1:1000; block tcp 25; block tcp 2000"));
        assert_eq!(findings_of(&state, "3").first().map(|f| f.kind), Some(FindingKind::Shadowed), "v4 by 1, v6 by 2");
        assert!(findings_of(&state, "4").is_empty(), "IPv6 port 2000 is decided by no earlier rule");
    }
}
