//! Planners of the managed lists: blocks and grants, each an alias of entries and the rules that enforce it.

use ipnet::IpNet;

use crate::error::{FieldError, FieldResult};
use crate::model::{
    Action, AddressMatch, AddressTarget, Alias, AliasEntry, AliasKind, Rule, RuleSet, Timestamp, net_to_string,
};

use super::reserved::{Purpose, check_name_for};
use super::rules::{check_rule, leading_system_rules};
use super::{
    BLOCK_ALIAS, BLOCK_ALIAS_DESCR, BLOCK_RULE_DESCR, ChangeFacts, ChangePlan, GRANT_ALIAS, GRANT_ALIAS_DESCR,
    GRANT_RULE_DESCR, GrantRule, MANAGED_BLOCK, MANAGED_GRANT, Operation,
};

/// The block alias for one interface, or for all of them.
pub fn block_alias_name(interface: Option<&str>) -> String {
    match interface {
        None => BLOCK_ALIAS.to_string(),
        Some(i) => format!("{BLOCK_ALIAS}_{}", i.to_ascii_uppercase()),
    }
}

pub(super) fn plan_grant(
    state: &RuleSet,
    net: IpNet,
    alias: Option<&str>,
    expires_at: Option<Timestamp>,
    reason: &str,
    rule: Option<&GrantRule>,
    now: Timestamp,
) -> FieldResult<ChangePlan> {
    let alias_name = alias.unwrap_or(GRANT_ALIAS).to_string();
    check_name_for("alias", &alias_name, Purpose::GrantList)?;
    let mut operations = Vec::new();
    let mut warnings = Vec::new();
    match state.alias(&alias_name) {
        Some(a) if a.managed.as_deref() != Some(MANAGED_GRANT) => {
            return Err(FieldError::new("alias", format!("alias {alias_name} is not a Portcullis grant list")));
        }
        Some(_) => {}
        None => operations.push(Operation::CreateAlias {
            after: Alias {
                name: alias_name.clone(),
                kind: AliasKind::Network,
                description: GRANT_ALIAS_DESCR.into(),
                entries: Vec::new(),
                managed: Some(MANAGED_GRANT.into()),
            },
        }),
    }
    let referenced = |iface: Option<&str>| {
        state.rules.iter().any(|r| {
            r.action == Action::Pass
                && iface.is_none_or(|i| r.interface == i)
                && r.source.target == AddressTarget::Alias(alias_name.clone())
        })
    };
    let mut interfaces = Vec::new();
    match rule {
        Some(g) => {
            let iface = state.resolve_interface("interface", &g.interface)?.name.clone();
            if !referenced(Some(&iface)) {
                let pass = grant_rule(&iface, &alias_name, g, now);
                // The alias the rule's source names may be created by this same plan: check the rest.
                check_rule(state, &Rule { source: AddressMatch::ANY, ..pass.clone() })?;
                operations.push(Operation::CreateRule { position: leading_system_rules(state, &iface), after: pass });
            }
            interfaces.push(iface);
        }
        None if !referenced(None) => warnings.push(format!(
            "no pass rule references {alias_name} yet, so the grant has no effect until one does \
             (give interface and port to create it)"
        )),
        None => {}
    }
    let value = net_to_string(&net);
    let replaced: Vec<AliasEntry> = state
        .alias(&alias_name)
        .map(|a| a.entries.iter().filter(|e| e.value == value).cloned().collect())
        .unwrap_or_default();
    let entry = AliasEntry { value: value.clone(), detail: reason.to_string(), expires_at, created_at: Some(now) };
    operations.push(Operation::PutAliasEntries { alias: alias_name.clone(), before: replaced, after: vec![entry] });
    Ok(ChangePlan {
        summary: format!("grant {value} access through {alias_name} {}", until(expires_at)),
        operations,
        warnings,
        facts: entry_facts(net, expires_at, now, true, interfaces),
    })
}

fn grant_rule(interface: &str, alias_name: &str, g: &GrantRule, now: Timestamp) -> Rule {
    Rule {
        protocol: g.protocol,
        source: AddressMatch { target: AddressTarget::Alias(alias_name.to_string()), negate: false },
        destination: g.destination.clone(),
        destination_port: g.destination_port.clone(),
        description: format!("{GRANT_RULE_DESCR} {alias_name}"),
        log: true,
        managed: Some(MANAGED_GRANT.into()),
        ..Rule::new(interface, Action::Pass).stamped(now)
    }
}

pub(super) fn plan_revoke(state: &RuleSet, net: IpNet, alias: Option<&str>) -> FieldResult<ChangePlan> {
    if let Some(name) = alias {
        check_name_for("alias", name, Purpose::GrantList)?;
    }
    let value = net_to_string(&net);
    let operations = removals(state, MANAGED_GRANT, alias, &value);
    if operations.is_empty() {
        return Err(FieldError::new("ip_address", format!("{value} has no grant (see list_grants)")));
    }
    Ok(ChangePlan {
        summary: format!("revoke the access of {value}"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts { host_bits: crate::address::net_host_bits(&net), ..ChangeFacts::default() },
    })
}

/// What a block asks for.
pub(super) struct BlockAsk<'a> {
    pub net: IpNet,
    pub interface: Option<&'a str>,
    pub expires_at: Option<Timestamp>,
    pub reason: &'a str,
    pub replace: bool,
}

pub(super) fn plan_block(state: &RuleSet, ask: &BlockAsk<'_>, now: Timestamp) -> FieldResult<ChangePlan> {
    let (net, expires_at) = (ask.net, ask.expires_at);
    let interface = match ask.interface {
        Some(name) => Some(state.resolve_interface("interface", name)?.name.clone()),
        None => None,
    };
    let alias_name = block_alias_name(interface.as_deref());
    let value = net_to_string(&net);
    let targets: Vec<String> = match &interface {
        Some(i) => vec![i.clone()],
        None => state.interfaces.iter().map(|i| i.name.clone()).collect(),
    };
    // A list of this name that is not a block list (made by hand, or a grant list from before names were
    // reserved) would take the block as an entry of another meaning.
    if let Some(other) = state.alias(&alias_name).filter(|a| a.managed.as_deref() != Some(MANAGED_BLOCK)) {
        let what = other.managed.as_deref().unwrap_or("not managed by Portcullis");
        return Err(FieldError::new(
            "ip_address",
            format!("alias {alias_name} exists but is not a Portcullis block list ({what}); rename or remove it first"),
        ));
    }
    let mut operations = ensure_block_list(state, &alias_name, &targets, now);
    let replaced: Vec<AliasEntry> = state
        .alias(&alias_name)
        .map(|a| a.entries.iter().filter(|e| e.value == value).cloned().collect())
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let longer = replaced.iter().find(|old| old.is_live(now) && outlasts(old.expires_at, expires_at));
    let entry = match longer {
        // The longer protection stays, as it was: its reason too, so an automated block cannot overwrite why a
        // person blocked the address.
        Some(old) if !ask.replace => {
            warnings.push(format!(
                "{value} is already blocked {} ({:?}); that longer block is kept (replace: true sets this duration)",
                old.expires_at.map_or("permanently".into(), |t| format!("until {}", t.to_rfc3339())),
                old.detail
            ));
            old.clone()
        }
        _ => {
            if let Some(old) = replaced.first() {
                warnings.push(format!(
                    "{value} was already blocked (until {}); the new duration replaces it",
                    old.expires_at.map_or("removed by hand".into(), |t| t.to_rfc3339())
                ));
            }
            AliasEntry { value: value.clone(), detail: ask.reason.to_string(), expires_at, created_at: Some(now) }
        }
    };
    if interface.is_none() {
        warnings.push(format!("the block applies on every interface ({})", targets.join(", ")));
    }
    if net.prefix_len() == 0 {
        warnings.push("this block covers every address of its family".into());
    }
    let kept = entry.expires_at;
    operations.push(Operation::PutAliasEntries { alias: alias_name.clone(), before: replaced, after: vec![entry] });
    let scope = interface.as_deref().unwrap_or("all interfaces");
    Ok(ChangePlan {
        summary: format!("block {value} on {scope} {}", until(kept)),
        operations,
        warnings,
        // Risk weighs what the call asks for: keeping a longer block adds nothing to it.
        facts: entry_facts(net, expires_at, now, false, targets),
    })
}

/// Whether an expiry comes later than another (`None`: never expires).
fn outlasts(this: Option<Timestamp>, other: Option<Timestamp>) -> bool {
    match (this, other) {
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// Creates the block alias and its enforcing rules where they are missing.
fn ensure_block_list(state: &RuleSet, alias_name: &str, interfaces: &[String], now: Timestamp) -> Vec<Operation> {
    let mut ops = Vec::new();
    if state.alias(alias_name).is_none() {
        ops.push(Operation::CreateAlias {
            after: Alias {
                name: alias_name.to_string(),
                kind: AliasKind::Network,
                description: BLOCK_ALIAS_DESCR.into(),
                entries: Vec::new(),
                managed: Some(MANAGED_BLOCK.into()),
            },
        });
    }
    for iface in interfaces {
        let enforced = state.rules_on(iface).any(|r| {
            r.managed.as_deref() == Some(MANAGED_BLOCK)
                && r.source.target == AddressTarget::Alias(alias_name.to_string())
        });
        if !enforced {
            ops.push(Operation::CreateRule {
                position: leading_system_rules(state, iface),
                after: block_rule(iface, alias_name, now),
            });
        }
    }
    ops
}

fn block_rule(interface: &str, alias_name: &str, now: Timestamp) -> Rule {
    Rule {
        source: AddressMatch { target: AddressTarget::Alias(alias_name.to_string()), negate: false },
        description: format!("{BLOCK_RULE_DESCR} {alias_name}"),
        log: true,
        managed: Some(MANAGED_BLOCK.into()),
        ..Rule::new(interface, Action::Block).stamped(now)
    }
}

pub(super) fn plan_unblock(state: &RuleSet, net: IpNet, interface: Option<&str>) -> FieldResult<ChangePlan> {
    let value = net_to_string(&net);
    let wanted_alias = match interface {
        Some(name) => Some(block_alias_name(Some(&state.resolve_interface("interface", name)?.name))),
        None => None,
    };
    let operations = removals(state, MANAGED_BLOCK, wanted_alias.as_deref(), &value);
    if operations.is_empty() {
        return Err(FieldError::new("ip_address", format!("{value} is not blocked (see list_blocks)")));
    }
    Ok(ChangePlan {
        summary: format!("unblock {value}"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts {
            host_bits: crate::address::net_host_bits(&net),
            widens_exposure: true,
            permanent: true,
            ..ChangeFacts::default()
        },
    })
}

/// The removals of `value` from every managed alias with this tag (or only from `wanted`) that holds it.
fn removals(state: &RuleSet, tag: &str, wanted: Option<&str>, value: &str) -> Vec<Operation> {
    state
        .aliases
        .iter()
        .filter(|a| a.managed.as_deref() == Some(tag))
        .filter(|a| wanted.is_none_or(|w| w == a.name))
        .filter_map(|a| {
            let before: Vec<AliasEntry> = a.entries.iter().filter(|e| e.value == value).cloned().collect();
            (!before.is_empty()).then(|| Operation::RemoveAliasEntries { alias: a.name.clone(), before })
        })
        .collect()
}

/// `until <time>`, or `permanently`.
fn until(expires_at: Option<Timestamp>) -> String {
    expires_at.map_or("permanently".to_string(), |t| format!("until {}", t.to_rfc3339()))
}

/// The risk facts of putting an entry for `net` into a managed list until `expires_at`.
fn entry_facts(
    net: IpNet,
    expires_at: Option<Timestamp>,
    now: Timestamp,
    widens_exposure: bool,
    interfaces: Vec<String>,
) -> ChangeFacts {
    ChangeFacts {
        host_bits: crate::address::net_host_bits(&net),
        widens_exposure,
        lifetime_seconds: expires_at.map(|t| (t - now).num_seconds()),
        permanent: expires_at.is_none(),
        interfaces,
    }
}
