//! Plans that create, change and remove a protection.

use super::{MAX_CONNECTIONS_PER_SOURCE, MAX_OVERLOAD_SECONDS, Protection, Transport};
use crate::error::{FieldError, FieldResult};
use crate::model::{PortRange, RuleSet, Timestamp};
use crate::plan::{ChangeFacts, ChangePlan, Operation};

/// Which protection a removal is about: its interface and selector, as the call named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionKey {
    pub interface: String,
    pub protocol: Transport,
    pub ports: Vec<PortRange>,
}

/// Plans `asked` (its interface as the caller named it) in place of the protection of the same selector.
pub fn plan_configure(state: &RuleSet, asked: &Protection, now: Timestamp) -> FieldResult<ChangePlan> {
    let interface = state.resolve_interface("interface", &asked.interface)?.name.clone();
    let mut after = Protection {
        protection_id: Protection::id_for(&interface, asked.protocol, &asked.ports),
        interface,
        created_at: Some(now),
        updated_at: None,
        ..asked.clone()
    };
    validate(&after)?;
    let before = state.protections.iter().find(|p| p.protection_id == after.protection_id);
    let (operation, verb) = match before {
        Some(before) => {
            if super::same_enforcement(before, &after) {
                return Err(FieldError::new(
                    "enabled",
                    format!("{} is already in force exactly as asked; nothing to change", after.protection_id),
                ));
            }
            after.created_at = before.created_at;
            after.updated_at = Some(now);
            (Operation::UpdateProtection { before: before.clone(), after: after.clone() }, "change")
        }
        None => (Operation::CreateProtection { after: after.clone() }, "add"),
    };
    let mut warnings = Vec::new();
    if after.ports.is_empty() {
        warnings.push(format!(
            "{} covers every {} port of {}: every new connection there is counted",
            after.protection_id, after.protocol, after.interface
        ));
    }
    Ok(ChangePlan {
        summary: format!("{verb} DDoS protection {}", after.describe()),
        operations: vec![operation],
        warnings,
        facts: ChangeFacts {
            // Breadth weighs the addresses a change admits or stops outright; a protection stops none outright,
            // only what a source sends beyond its limits.
            host_bits: 0,
            // A change may loosen one limit while it tightens another; only removal is plainly a widening.
            widens_exposure: before.is_some_and(|b| loosens(b, &after)),
            lifetime_seconds: None,
            permanent: true,
            interfaces: vec![after.interface.clone()],
        },
    })
}

/// Plans the removal of the protection `key` names.
pub fn plan_remove(state: &RuleSet, key: &ProtectionKey) -> FieldResult<ChangePlan> {
    let interface = state.resolve_interface("interface", &key.interface)?.name.clone();
    let id = Protection::id_for(&interface, key.protocol, &key.ports);
    let Some(before) = state.protections.iter().find(|p| p.protection_id == id) else {
        let known: Vec<&str> = state.protections.iter().map(|p| p.protection_id.as_str()).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        return Err(FieldError::new(
            "interface",
            format!(
                "there is no DDoS protection {id} to remove (protections in force: {known}; see get_ddos_protection)"
            ),
        ));
    };
    Ok(ChangePlan {
        summary: format!("remove DDoS protection {}", before.describe()),
        operations: vec![Operation::DeleteProtection { before: before.clone() }],
        warnings: Vec::new(),
        facts: ChangeFacts {
            host_bits: 0,
            widens_exposure: true,
            lifetime_seconds: None,
            permanent: true,
            interfaces: vec![interface],
        },
    })
}

fn validate(p: &Protection) -> FieldResult<()> {
    if p.syn_proxy && p.protocol != Transport::Tcp {
        return Err(FieldError::new(
            "syn_proxy",
            format!("a SYN proxy answers TCP handshakes; protocol is {}", p.protocol),
        ));
    }
    if p.overload_block_seconds.is_some() && p.per_source_rate.is_none() {
        return Err(FieldError::new(
            "overload_block",
            "a source is blocked for exceeding its per-source rate: give per_source_rate too",
        ));
    }
    if let Some(s) = p.overload_block_seconds
        && !(1..=MAX_OVERLOAD_SECONDS).contains(&s)
    {
        return Err(FieldError::new("overload_block", format!("{s} s is outside 1 s to 7d")));
    }
    if let Some(n) = p.max_connections_per_source
        && !(1..=MAX_CONNECTIONS_PER_SOURCE).contains(&n)
    {
        return Err(FieldError::new(
            "max_connections_per_source",
            format!("{n} is outside 1 to {MAX_CONNECTIONS_PER_SOURCE}"),
        ));
    }
    if let (Some(all), Some(one)) = (&p.rate_limit, &p.per_source_rate)
        && one.per_second() > all.per_second()
    {
        return Err(FieldError::new(
            "per_source_rate",
            format!(
                "{}/{} per source is above the interface-wide rate_limit {}/{}",
                one.count,
                one.unit.as_str(),
                all.count,
                all.unit.as_str()
            ),
        ));
    }
    if !p.enforces_something() {
        return Err(FieldError::new(
            "rate_limit",
            "a protection needs something to enforce: give rate_limit, per_source_rate, per_source_bandwidth, max_connections_per_source or syn_proxy: true",
        ));
    }
    for (i, a) in p.ports.iter().enumerate() {
        if p.ports[..i].iter().any(|b| a.first <= b.last && b.first <= a.last) {
            return Err(FieldError::new(
                format!("ports[{i}]"),
                format!("port {a} overlaps an earlier port of the list"),
            ));
        }
    }
    Ok(())
}

/// Whether `after` lets through something `before` stopped: a limit dropped or raised, the overload block
/// shortened, the SYN proxy switched off, or more sources exempt.
fn loosens(before: &Protection, after: &Protection) -> bool {
    let rate_looser = |b: &Option<super::Rate>, a: &Option<super::Rate>| match (b, a) {
        (Some(_), None) => true,
        (Some(b), Some(a)) => a.per_second() > b.per_second() || a.burst > b.burst,
        _ => false,
    };
    rate_looser(&before.rate_limit, &after.rate_limit)
        || rate_looser(&before.per_source_rate, &after.per_source_rate)
        || match (before.max_connections_per_source, after.max_connections_per_source) {
            (Some(_), None) => true,
            (Some(b), Some(a)) => a > b,
            _ => false,
        }
        || match (before.per_source_bandwidth, after.per_source_bandwidth) {
            (Some(_), None) => true,
            (Some(b), Some(a)) => a.bits_per_second > b.bits_per_second,
            _ => false,
        }
        || before.overload_block_seconds.unwrap_or(0) > after.overload_block_seconds.unwrap_or(0)
        || (before.syn_proxy && !after.syn_proxy)
        || after.exempt.iter().any(|n| !before.exempt.contains(n))
}
