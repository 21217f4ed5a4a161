//! Planners of the rule tools (create, modify, delete, pause, resume) and the checks of a rule against the
//! firewall's state that the block and grant planners share.

use crate::error::{FieldError, FieldResult};
use crate::model::{
    Action, AddressMatch, AddressTarget, AliasKind, IpVersion, PortMatch, Rule, RuleId, RuleSet, Timestamp,
};

use super::{ChangeFacts, ChangePlan, MANAGED_BLOCK, Operation, RuleDraft, RulePatch};

pub(super) fn plan_create(state: &RuleSet, draft: &RuleDraft, now: Timestamp) -> FieldResult<ChangePlan> {
    let interface = state.resolve_interface("interface", &draft.interface)?.name.clone();
    let mut rule = Rule {
        direction: draft.direction,
        protocol: draft.protocol,
        source: canonical_address(state, &draft.source),
        source_port: draft.source_port.clone(),
        destination: canonical_address(state, &draft.destination),
        destination_port: draft.destination_port.clone(),
        description: draft.description.clone(),
        enabled: draft.enabled,
        log: draft.log,
        ..Rule::new(interface.clone(), draft.action).stamped(now)
    };
    rule.ip_version = settle_ip_version(&rule, draft.ip_version)?;
    check_rule(state, &rule)?;
    let position = insertion_position(state, &interface, draft.position, None)?;
    let mut warnings = breadth_warnings(state, &rule, now);
    if draft.position.is_some_and(|p| p < position) {
        warnings.push(format!(
            "position {} is above the system rules of {interface}; the rule goes at position {position}",
            draft.position.unwrap_or_default()
        ));
    }
    let facts = ChangeFacts {
        host_bits: rule_host_bits(state, &rule, now),
        widens_exposure: rule.action == Action::Pass && rule.enabled,
        lifetime_seconds: None,
        permanent: true,
        interfaces: vec![interface.clone()],
    };
    Ok(ChangePlan {
        summary: format!(
            "create {} rule on {interface} at position {position}: {}",
            rule.action.as_str(),
            describe_match(&rule)
        ),
        operations: vec![Operation::CreateRule { position, after: rule }],
        warnings,
        facts,
    })
}

pub(super) fn plan_modify(state: &RuleSet, id: &RuleId, patch: &RulePatch, now: Timestamp) -> FieldResult<ChangePlan> {
    let before = editable_rule(state, id)?;
    let mut after = before.clone();
    apply_patch(state, &mut after, patch);
    if patch.enabled.is_some() {
        // An explicit enable or disable ends any pause.
        after.paused_until = None;
    }
    after.ip_version = settle_ip_version(&after, patch.ip_version.or(Some(before.ip_version)))?;
    check_rule(state, &after)?;
    let current = state.position_of(id).unwrap_or_default();
    let position = match patch.position {
        Some(p) => Some(insertion_position(state, &before.interface, Some(p), Some(id))?),
        None => None,
    }
    .filter(|p| *p != current);
    if &after == before && position.is_none() {
        return Err(FieldError::new("rule_id", format!("rule {id} already has these values; nothing to change")));
    }
    after.updated_at = Some(now);
    let facts = ChangeFacts {
        host_bits: rule_host_bits(state, &after, now).max(rule_host_bits(state, before, now)),
        widens_exposure: widens(before, &after) || position.is_some(),
        lifetime_seconds: None,
        permanent: true,
        interfaces: vec![after.interface.clone()],
    };
    let mut warnings = breadth_warnings(state, &after, now);
    if position.is_some() {
        warnings.push("moving a rule changes which rule matches first for overlapping traffic".into());
    }
    Ok(ChangePlan {
        summary: format!("modify rule {id} on {}: {}", after.interface, describe_match(&after)),
        operations: vec![Operation::UpdateRule { before: before.clone(), after, position }],
        warnings,
        facts,
    })
}

fn apply_patch(state: &RuleSet, rule: &mut Rule, patch: &RulePatch) {
    let RulePatch {
        action,
        ip_version: _,
        protocol,
        source,
        source_port,
        destination,
        destination_port,
        description,
        enabled,
        log,
        position: _,
    } = patch;
    set(&mut rule.action, action);
    set(&mut rule.protocol, protocol);
    set(&mut rule.source_port, source_port);
    set(&mut rule.destination_port, destination_port);
    set(&mut rule.description, description);
    set(&mut rule.enabled, enabled);
    set(&mut rule.log, log);
    if let Some(s) = source {
        rule.source = canonical_address(state, s);
    }
    if let Some(d) = destination {
        rule.destination = canonical_address(state, d);
    }
}

fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *slot = v.clone();
    }
}

/// Whether a rule edit may let more traffic through than before: a pass rule that appears, or changes what it
/// matches; a block that goes away, or changes what it matches. Descriptions and logging widen nothing.
fn widens(before: &Rule, after: &Rule) -> bool {
    let matching_changed = before.direction != after.direction
        || before.ip_version != after.ip_version
        || before.protocol != after.protocol
        || before.source != after.source
        || before.source_port != after.source_port
        || before.destination != after.destination
        || before.destination_port != after.destination_port
        || before.interface != after.interface;
    let passing = |r: &Rule| r.action == Action::Pass && r.enabled;
    let blocking = |r: &Rule| r.action != Action::Pass && r.enabled;
    (passing(after) && (!passing(before) || matching_changed))
        || (blocking(before) && (!blocking(after) || matching_changed))
}

pub(super) fn plan_delete(state: &RuleSet, id: &RuleId) -> FieldResult<ChangePlan> {
    let before = editable_rule(state, id)?;
    Ok(ChangePlan {
        summary: format!("delete rule {id} on {}: {}", before.interface, describe_match(before)),
        facts: ChangeFacts {
            widens_exposure: before.action != Action::Pass && before.enabled,
            permanent: true,
            interfaces: vec![before.interface.clone()],
            ..ChangeFacts::default()
        },
        operations: vec![Operation::DeleteRule { before: before.clone() }],
        warnings: Vec::new(),
    })
}

pub(super) fn plan_pause(state: &RuleSet, id: &RuleId, until: Timestamp, now: Timestamp) -> FieldResult<ChangePlan> {
    let before = editable_rule(state, id)?;
    if !before.enabled && before.paused_until.is_none() {
        return Err(FieldError::new("rule_id", format!("rule {id} is disabled, so there is nothing to pause")));
    }
    let mut after = before.clone();
    after.enabled = false;
    after.paused_until = Some(until);
    after.updated_at = Some(now);
    Ok(ChangePlan {
        summary: format!("pause rule {id} on {} until {}", before.interface, until.to_rfc3339()),
        facts: ChangeFacts {
            widens_exposure: before.action != Action::Pass,
            lifetime_seconds: Some((until - now).num_seconds()),
            interfaces: vec![before.interface.clone()],
            ..ChangeFacts::default()
        },
        operations: vec![Operation::UpdateRule { before: before.clone(), after, position: None }],
        warnings: Vec::new(),
    })
}

pub(super) fn plan_resume(state: &RuleSet, id: &RuleId, now: Timestamp) -> FieldResult<ChangePlan> {
    let before = editable_rule(state, id)?;
    if before.paused_until.is_none() {
        return Err(FieldError::new("rule_id", format!("rule {id} is not paused")));
    }
    let mut after = before.clone();
    after.enabled = true;
    after.paused_until = None;
    after.updated_at = Some(now);
    Ok(ChangePlan {
        summary: format!("resume rule {id} on {}", before.interface),
        facts: ChangeFacts {
            widens_exposure: before.action == Action::Pass,
            interfaces: vec![before.interface.clone()],
            ..ChangeFacts::default()
        },
        operations: vec![Operation::UpdateRule { before: before.clone(), after, position: None }],
        warnings: Vec::new(),
    })
}

/// A rule the rule tools may change: it exists and is not owned by the system or by Portcullis.
fn editable_rule<'a>(state: &'a RuleSet, id: &RuleId) -> FieldResult<&'a Rule> {
    let rule = state.find_rule("rule_id", id)?;
    if let Some(owner) = &rule.managed {
        let how = if owner == MANAGED_BLOCK {
            "use block_ip_address / unblock_ip_address"
        } else if owner == crate::egress::MANAGED_EGRESS {
            "use set_egress_policy"
        } else {
            "it is part of the firewall's own configuration"
        };
        return Err(FieldError::new("rule_id", format!("rule {id} is managed ({owner}); {how}")));
    }
    Ok(rule)
}

/// Interface names given as addresses are interface nets; keep them in pfRest's lower-case form.
fn canonical_address(state: &RuleSet, m: &AddressMatch) -> AddressMatch {
    match &m.target {
        AddressTarget::Alias(name) if state.alias(name).is_none() => {
            match state.interfaces.iter().find(|i| i.name.eq_ignore_ascii_case(name)) {
                Some(iface) => AddressMatch { target: AddressTarget::Alias(iface.name.clone()), negate: m.negate },
                None => m.clone(),
            }
        }
        _ => m.clone(),
    }
}

/// The IP version follows literal addresses when not given; a contradiction is an error.
fn settle_ip_version(rule: &Rule, asked: Option<IpVersion>) -> FieldResult<IpVersion> {
    let families: Vec<(&str, bool)> = [("source", &rule.source), ("destination", &rule.destination)]
        .into_iter()
        .filter_map(|(field, m)| match &m.target {
            AddressTarget::Net(net) => Some((field, net.addr().is_ipv6())),
            _ => None,
        })
        .collect();
    if let [(_, a), (field, b)] = families.as_slice()
        && a != b
    {
        return Err(FieldError::new(*field, "source and destination are of different IP families"));
    }
    let literal = families.first().map(|(f, v6)| (*f, if *v6 { IpVersion::Inet6 } else { IpVersion::Inet }));
    match (asked, literal) {
        (None, Some((_, v))) => Ok(v),
        (None, None) => Ok(IpVersion::Inet46),
        (Some(asked), Some((field, v))) if asked != v => {
            if asked == IpVersion::Inet46 {
                Ok(v)
            } else {
                Err(FieldError::new(field, format!("address family does not match ip_version {asked:?}")))
            }
        }
        (Some(asked), _) => Ok(asked),
    }
}

/// Checks references and field combinations of a complete rule against the firewall's state.
pub(super) fn check_rule(state: &RuleSet, rule: &Rule) -> FieldResult<()> {
    for (field, m) in [("source", &rule.source), ("destination", &rule.destination)] {
        if let AddressTarget::Alias(name) = &m.target {
            super::check_reference(field, name, m.negate, rule.action)?;
        }
        check_address(state, field, m)?;
    }
    for (field, port) in [("source_port", &rule.source_port), ("destination_port", &rule.destination_port)] {
        if port.is_any() {
            continue;
        }
        if !rule.protocol.has_ports() {
            return Err(FieldError::new(
                field,
                format!("ports apply only to tcp, udp or tcp/udp rules, not to protocol {}", rule.protocol),
            ));
        }
        if let PortMatch::Alias(name) = port {
            match state.alias(name) {
                Some(a) if a.kind == AliasKind::Port => {}
                Some(_) => return Err(FieldError::new(field, format!("alias {name} is not a port alias"))),
                None => return Err(FieldError::new(field, format!("no port alias named {name}"))),
            }
        }
    }
    Ok(())
}

fn check_address(state: &RuleSet, field: &str, m: &AddressMatch) -> FieldResult<()> {
    match &m.target {
        AddressTarget::Alias(name) => {
            let is_interface = state.interface(name).is_some();
            match state.alias(name) {
                Some(a) if a.kind == AliasKind::Port => {
                    Err(FieldError::new(field, format!("alias {name} is a port alias, not an address alias")))
                }
                Some(_) => Ok(()),
                None if is_interface => Ok(()),
                None => Err(FieldError::new(
                    field,
                    format!("{name:?} is neither an alias nor an interface of this firewall"),
                )),
            }
        }
        AddressTarget::InterfaceNet(name) | AddressTarget::InterfaceAddress(name) => state
            .interface(name)
            .map(|_| ())
            .ok_or_else(|| FieldError::new(field, format!("unknown interface {name:?}"))),
        _ => Ok(()),
    }
}

/// Rules owned by the system (anti-lockout) and Portcullis' block lists stay at the top of an interface.
pub(crate) fn leading_system_rules(state: &RuleSet, interface: &str) -> usize {
    state.rules_on(interface).take_while(|r| r.managed.is_some()).count()
}

fn insertion_position(
    state: &RuleSet,
    interface: &str,
    asked: Option<usize>,
    moving: Option<&RuleId>,
) -> FieldResult<usize> {
    let count = state.rules_on(interface).filter(|r| Some(&r.rule_id) != moving).count();
    let floor = leading_system_rules(state, interface);
    match asked {
        None => Ok(count),
        Some(p) if p > count => {
            Err(FieldError::new("position", format!("position {p} is past the end of {interface}'s {count} rules")))
        }
        Some(p) => Ok(p.max(floor)),
    }
}

/// Breadth of a rule is the breadth of its source: who the rule admits (or stops). A pass from one subnet to any
/// destination is an everyday outbound rule; a pass from any source is exposure.
fn rule_host_bits(state: &RuleSet, rule: &Rule, now: Timestamp) -> u8 {
    let source = crate::eval::Resolver::new(state, now).address_set(&rule.source);
    crate::address::match_host_bits(&source, rule.source.negate, rule.ip_version)
}

/// Warnings about what a pass rule's addresses cover, not how they are spelled (`0.0.0.0/0` is `any` for IPv4).
fn breadth_warnings(state: &RuleSet, rule: &Rule, now: Timestamp) -> Vec<String> {
    let mut warnings = Vec::new();
    if rule.action != Action::Pass {
        return warnings;
    }
    let mut resolver = crate::eval::Resolver::new(state, now);
    let source = resolver.address_set(&rule.source);
    let destination = resolver.address_set(&rule.destination);
    let every_source = crate::address::families_of(rule.ip_version)
        .iter()
        .any(|f| crate::address::covers_family(&source, rule.source.negate, *f));
    if every_source {
        warnings.push(format!("the rule passes traffic from every device on {}", rule.interface));
    }
    let any_to_any = crate::address::any_to_any(
        (&source, rule.source.negate),
        (&destination, rule.destination.negate),
        rule.ip_version,
    );
    if any_to_any && rule.destination_port.is_any() {
        warnings.push("the rule passes any traffic to any destination (any → any)".into());
    }
    warnings
}

fn describe_match(rule: &Rule) -> String {
    let mut s = format!("{} from {}", rule.protocol, rule.source);
    if !rule.source_port.is_any() {
        s.push_str(&format!(" port {}", rule.source_port));
    }
    s.push_str(&format!(" to {}", rule.destination));
    if !rule.destination_port.is_any() {
        s.push_str(&format!(" port {}", rule.destination_port));
    }
    s
}
