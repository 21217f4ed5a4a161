//! Planners of the managed lists: blocks and grants, each an alias of entries and the rules that enforce it.

use crate::error::{FieldError, FieldResult};
use crate::model::{
    Action, AddressMatch, AddressTarget, Alias, AliasEntry, AliasKind, Rule, RuleSet, Timestamp, net_to_string,
};

use super::intent::Addresses;
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
    addresses: &Addresses,
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
    let held = entries_by_value(state, &alias_name);
    let mut replaced = Vec::new();
    let mut put = Vec::new();
    for net in addresses.nets() {
        let value = net_to_string(net);
        replaced.extend(held.get(value.as_str()).map(|e| (*e).clone()));
        put.push(AliasEntry { value, detail: reason.to_string(), expires_at, created_at: Some(now) });
    }
    operations.push(Operation::PutAliasEntries { alias: alias_name.clone(), before: replaced, after: put });
    Ok(ChangePlan {
        summary: format!("grant {} access through {alias_name} {}", describe(addresses), until(expires_at)),
        operations,
        warnings,
        facts: entry_facts(addresses, expires_at, now, true, interfaces),
    })
}

/// The live and expired entries of an alias by value (empty when there is no such alias).
fn entries_by_value<'s>(state: &'s RuleSet, alias: &str) -> std::collections::HashMap<&'s str, &'s AliasEntry> {
    state.alias(alias).map(|a| a.entries.iter().map(|e| (e.value.as_str(), e)).collect()).unwrap_or_default()
}

/// One address as Portcullis writes it, or how many a list holds.
fn describe(addresses: &Addresses) -> String {
    match addresses.nets() {
        [one] if !addresses.is_listed() => net_to_string(one),
        nets => format!("{} address(es)", nets.len()),
    }
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

pub(super) fn plan_revoke(state: &RuleSet, addresses: &Addresses, alias: Option<&str>) -> FieldResult<ChangePlan> {
    if let Some(name) = alias {
        check_name_for("alias", name, Purpose::GrantList)?;
    }
    let operations = removals(state, MANAGED_GRANT, alias, addresses);
    if operations.is_empty() {
        return Err(FieldError::new(
            addresses.field(),
            format!("{} has no grant (see list_grants)", describe(addresses)),
        ));
    }
    Ok(ChangePlan {
        summary: format!("revoke the access of {}", describe(addresses)),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts { host_bits: widest_host_bits(addresses), ..ChangeFacts::default() },
    })
}

/// What a block asks for.
pub(super) struct BlockAsk<'a> {
    pub addresses: &'a Addresses,
    pub interface: Option<&'a str>,
    pub expires_at: Option<Timestamp>,
    pub reason: &'a str,
    pub replace: bool,
}

pub(super) fn plan_block(state: &RuleSet, ask: &BlockAsk<'_>, now: Timestamp) -> FieldResult<ChangePlan> {
    let expires_at = ask.expires_at;
    let interface = match ask.interface {
        Some(name) => Some(state.resolve_interface("interface", name)?.name.clone()),
        None => None,
    };
    let alias_name = block_alias_name(interface.as_deref());
    let targets: Vec<String> = match &interface {
        Some(i) => vec![i.clone()],
        None => state.interfaces.iter().map(|i| i.name.clone()).collect(),
    };
    // A list of this name that is not a block list (made by hand, or a grant list from before names were
    // reserved) would take the block as an entry of another meaning.
    if let Some(other) = state.alias(&alias_name).filter(|a| a.managed.as_deref() != Some(MANAGED_BLOCK)) {
        let what = other.managed.as_deref().unwrap_or("not managed by Portcullis");
        return Err(FieldError::new(
            ask.addresses.field(),
            format!("alias {alias_name} exists but is not a Portcullis block list ({what}); rename or remove it first"),
        ));
    }
    let mut operations = ensure_block_list(state, &alias_name, &targets, now);
    let held = entries_by_value(state, &alias_name);
    let mut entries = BlockEntries::default();
    for net in ask.addresses.nets() {
        let value = net_to_string(net);
        let old = held.get(value.as_str()).copied();
        entries.add(ask, value, old, now);
    }
    let mut warnings = entries.warnings(ask.addresses.is_listed());
    if interface.is_none() {
        warnings.push(format!("the block applies on every interface ({})", targets.join(", ")));
    }
    if ask.addresses.nets().iter().any(|n| n.prefix_len() == 0) {
        warnings.push("this block covers every address of its family".into());
    }
    let kept = match entries.put.as_slice() {
        [one] => one.expires_at,
        _ => expires_at,
    };
    operations.push(Operation::PutAliasEntries {
        alias: alias_name.clone(),
        before: entries.replaced,
        after: entries.put,
    });
    let scope = interface.as_deref().unwrap_or("all interfaces");
    Ok(ChangePlan {
        summary: format!("block {} on {scope} {}", describe(ask.addresses), until(kept)),
        operations,
        warnings,
        // Risk weighs what the call asks for: keeping a longer block adds nothing to it.
        facts: entry_facts(ask.addresses, expires_at, now, false, targets),
    })
}

/// The entries a block puts, and what they replace.
#[derive(Default)]
struct BlockEntries {
    put: Vec<AliasEntry>,
    replaced: Vec<AliasEntry>,
    /// Addresses already blocked for longer, kept as they were: (value, until, reason).
    kept_longer: Vec<(String, Option<Timestamp>, String)>,
    /// Addresses already blocked, whose block the new duration replaces: (value, old expiry).
    renewed: Vec<(String, Option<Timestamp>)>,
}

impl BlockEntries {
    fn add(&mut self, ask: &BlockAsk<'_>, value: String, held: Option<&AliasEntry>, now: Timestamp) {
        let Some(old) = held else {
            self.put.push(AliasEntry {
                value,
                detail: ask.reason.to_string(),
                expires_at: ask.expires_at,
                created_at: Some(now),
            });
            return;
        };
        self.replaced.push(old.clone());
        // The longer protection stays, as it was: its reason too, so an automated block cannot overwrite why a
        // person blocked the address.
        if old.is_live(now) && outlasts(old.expires_at, ask.expires_at) && !ask.replace {
            self.kept_longer.push((value, old.expires_at, old.detail.clone()));
            self.put.push(old.clone());
        } else {
            self.renewed.push((value.clone(), old.expires_at));
            self.put.push(AliasEntry {
                value,
                detail: ask.reason.to_string(),
                expires_at: ask.expires_at,
                created_at: Some(now),
            });
        }
    }

    /// One warning per address for one address; counts for a list, which may hold thousands.
    fn warnings(&self, listed: bool) -> Vec<String> {
        let until = |t: &Option<Timestamp>| t.map_or("permanently".into(), |t| format!("until {}", t.to_rfc3339()));
        if !listed {
            let kept = self.kept_longer.iter().map(|(v, t, why)| {
                format!(
                    "{v} is already blocked {} ({why:?}); that longer block is kept (replace: true sets this duration)",
                    until(t)
                )
            });
            let renewed = self.renewed.iter().map(|(v, t)| {
                format!(
                    "{v} was already blocked (until {}); the new duration replaces it",
                    t.map_or("removed by hand".into(), |t| t.to_rfc3339())
                )
            });
            return kept.chain(renewed).collect();
        }
        let mut out = Vec::new();
        if !self.kept_longer.is_empty() {
            out.push(format!(
                "{} address(es) already blocked for longer keep their longer block (replace: true sets this duration)",
                self.kept_longer.len()
            ));
        }
        if !self.renewed.is_empty() {
            out.push(format!(
                "{} address(es) were already blocked; the new duration replaces theirs",
                self.renewed.len()
            ));
        }
        out
    }
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

pub(super) fn plan_unblock(state: &RuleSet, addresses: &Addresses, interface: Option<&str>) -> FieldResult<ChangePlan> {
    let wanted_alias = match interface {
        Some(name) => Some(block_alias_name(Some(&state.resolve_interface("interface", name)?.name))),
        None => None,
    };
    let operations = removals(state, MANAGED_BLOCK, wanted_alias.as_deref(), addresses);
    if operations.is_empty() {
        return Err(FieldError::new(
            addresses.field(),
            format!("{} is not blocked (see list_blocks)", describe(addresses)),
        ));
    }
    Ok(ChangePlan {
        summary: format!("unblock {}", describe(addresses)),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts {
            host_bits: widest_host_bits(addresses),
            widens_exposure: true,
            permanent: true,
            ..ChangeFacts::default()
        },
    })
}

/// The removals of the addresses from every managed alias with this tag (or only from `wanted`) that holds them:
/// one operation per alias, whatever the number of addresses.
fn removals(state: &RuleSet, tag: &str, wanted: Option<&str>, addresses: &Addresses) -> Vec<Operation> {
    let values: std::collections::HashSet<String> = addresses.nets().iter().map(net_to_string).collect();
    state
        .aliases
        .iter()
        .filter(|a| a.managed.as_deref() == Some(tag))
        .filter(|a| wanted.is_none_or(|w| w == a.name))
        .filter_map(|a| {
            let before: Vec<AliasEntry> = a.entries.iter().filter(|e| values.contains(&e.value)).cloned().collect();
            (!before.is_empty()).then(|| Operation::RemoveAliasEntries { alias: a.name.clone(), before })
        })
        .collect()
}

/// `until <time>`, or `permanently`.
fn until(expires_at: Option<Timestamp>) -> String {
    expires_at.map_or("permanently".to_string(), |t| format!("until {}", t.to_rfc3339()))
}

/// Host bits of the widest address of a list: 0 for hosts only, 8 when it holds a /24.
fn widest_host_bits(addresses: &Addresses) -> u8 {
    addresses.nets().iter().map(crate::address::net_host_bits).max().unwrap_or(0)
}

/// The risk facts of putting entries for `addresses` into a managed list until `expires_at`.
fn entry_facts(
    addresses: &Addresses,
    expires_at: Option<Timestamp>,
    now: Timestamp,
    widens_exposure: bool,
    interfaces: Vec<String>,
) -> ChangeFacts {
    ChangeFacts {
        host_bits: widest_host_bits(addresses),
        widens_exposure,
        lifetime_seconds: expires_at.map(|t| (t - now).num_seconds()),
        permanent: expires_at.is_none(),
        interfaces,
    }
}
