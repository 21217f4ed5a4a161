//! Rule-set lint: rules that can never match (shadowed or redundant), overly broad pass rules, and disabled
//! rules left behind.

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
    for (pos, later) in resolved.iter().enumerate() {
        if let Some(earlier) = resolved[..pos].iter().find(|e| covers(e, later)) {
            findings.push(shadow_finding(rules, earlier, later));
        }
    }
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
        if rule.enabled && rule.action == Action::Pass && rule.source.is_any() {
            let exposed = options.exposed_interfaces.iter().any(|i| i.eq_ignore_ascii_case(&rule.interface));
            let any_any = rule.destination.is_any() && rule.destination_port.is_any();
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

fn shadow_finding(rules: &RuleSet, earlier: &ResolvedRule, later: &ResolvedRule) -> Finding {
    let e = &rules.rules[earlier.index];
    let l = &rules.rules[later.index];
    let (kind, severity, verb) = if earlier.action == later.action {
        (FindingKind::Redundant, Severity::Warning, "already covered by")
    } else {
        (FindingKind::Shadowed, Severity::High, "never matches: it is shadowed by")
    };
    Finding {
        kind,
        severity,
        rule_id: l.rule_id.to_string(),
        interface: l.interface.clone(),
        description: l.description.clone(),
        message: format!("{verb} rule {} ({:?}) above it", e.rule_id, e.description),
        related_rule_id: Some(e.rule_id.to_string()),
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
