//! Checking, on state read back after applying, that a plan took effect.

use std::collections::HashMap;

use crate::firewall::Applied;
use crate::model::{Alias, AliasEntry, Rule, RuleId, RuleSet};

use super::{ChangePlan, Operation};

/// Compares two rules as the firewall would enforce them, ignoring identity and bookkeeping timestamps.
pub fn same_enforcement(a: &Rule, b: &Rule) -> bool {
    let strip = |r: &Rule| Rule { rule_id: RuleId(String::new()), created_at: None, updated_at: None, ..r.clone() };
    strip(a) == strip(b)
}

/// Checks, on state read back after applying, that every operation of the plan took effect.
pub fn verify(plan: &ChangePlan, applied: &Applied, after: &RuleSet) -> Result<(), String> {
    let mut created = applied.created_rules.iter();
    let decided = last_entry_operations(plan);
    // Entries are put and removed by value, so of the operations on one value the last decides (an undo removes
    // the entry a change put and puts back the one it replaced): earlier ones are not checked.
    let checked = |n: usize, alias: &str, value: &str| decided.get(&(alias, value)).is_none_or(|last| *last == n);
    for (n, op) in plan.operations.iter().enumerate() {
        match op {
            Operation::CreateRule { after: wanted, .. } => {
                let id = created.next().ok_or("the firewall reported fewer created rules than planned")?;
                let found = after.rule(id).ok_or_else(|| format!("created rule {id} is missing on read-back"))?;
                if !same_enforcement(found, wanted) {
                    return Err(format!("rule {id} was created but differs from the plan"));
                }
            }
            Operation::UpdateRule { after: wanted, .. } => {
                let found = after
                    .rule(&wanted.rule_id)
                    .ok_or_else(|| format!("rule {} vanished during the change", wanted.rule_id))?;
                if !same_enforcement(found, wanted) {
                    return Err(format!("rule {} does not hold the planned values", wanted.rule_id));
                }
            }
            Operation::DeleteRule { before } => {
                if after.rule(&before.rule_id).is_some() {
                    return Err(format!("rule {} is still present", before.rule_id));
                }
            }
            Operation::CreateAlias { after: alias } => {
                if after.alias(&alias.name).is_none() {
                    return Err(format!("alias {} is missing on read-back", alias.name));
                }
            }
            Operation::DeleteAlias { before } => {
                if after.alias(&before.name).is_some() {
                    return Err(format!("alias {} is still present", before.name));
                }
            }
            Operation::PutAliasEntries { alias, after: entries, .. } => {
                let found = after.alias(alias).ok_or_else(|| format!("alias {alias} is missing"))?.entries_by_value();
                for e in entries.iter().filter(|e| checked(n, alias, &e.value)) {
                    let ok = found.get(e.value.as_str()).is_some_and(|f| f.expires_at == e.expires_at);
                    if !ok {
                        return Err(format!("{} is not in alias {alias} as planned", e.value));
                    }
                }
            }
            Operation::CreateProtection { after: wanted } | Operation::UpdateProtection { after: wanted, .. } => {
                let found = after
                    .protections
                    .iter()
                    .find(|p| p.protection_id == wanted.protection_id)
                    .ok_or_else(|| format!("DDoS protection {} is missing on read-back", wanted.protection_id))?;
                if !crate::protection::same_enforcement(found, wanted) {
                    return Err(format!("DDoS protection {} does not hold the planned limits", wanted.protection_id));
                }
            }
            Operation::DeleteProtection { before } => {
                if after.protections.iter().any(|p| p.protection_id == before.protection_id) {
                    return Err(format!("DDoS protection {} is still present", before.protection_id));
                }
            }
            Operation::CreateMirror { after: wanted } => {
                let found = after
                    .mirrors
                    .iter()
                    .find(|m| m.mirror_id == wanted.mirror_id)
                    .ok_or_else(|| format!("mirror {} is missing on read-back", wanted.mirror_id))?;
                if !crate::mirror::same_enforcement(found, wanted) {
                    return Err(format!("mirror {} does not copy as planned", wanted.mirror_id));
                }
            }
            Operation::DeleteMirror { before } => {
                if after.mirrors.iter().any(|m| m.mirror_id == before.mirror_id) {
                    return Err(format!("mirror {} is still present", before.mirror_id));
                }
            }
            Operation::CreateVpnAccount { after: wanted } => {
                let found = after
                    .vpn_accounts
                    .iter()
                    .find(|u| u.username == wanted.username)
                    .ok_or_else(|| format!("VPN user {} is missing on read-back", wanted.username))?;
                if !found.same_enforcement(wanted) {
                    return Err(format!("VPN user {} is not as planned on read-back", wanted.username));
                }
            }
            Operation::DeleteVpnAccount { before } => {
                if after.vpn_accounts.iter().any(|u| u.username == before.username) {
                    return Err(format!("VPN user {} is still present", before.username));
                }
            }
            Operation::RemoveAliasEntries { alias, before } => {
                if let Some(found) = after.alias(alias).map(Alias::entries_by_value)
                    && let Some(e) =
                        before.iter().find(|e| checked(n, alias, &e.value) && found.contains_key(e.value.as_str()))
                {
                    return Err(format!("{} is still in alias {alias}", e.value));
                }
            }
        }
    }
    Ok(())
}

/// For the values of aliases that more than one entry operation of the plan touches, the index of the last such
/// operation. Aliases touched once (a bulk block of 100,000 entries in one operation) are left out: nothing
/// there is superseded, and the map stays small.
fn last_entry_operations(plan: &ChangePlan) -> HashMap<(&str, &str), usize> {
    let mut touches: HashMap<&str, usize> = HashMap::new();
    for (alias, _) in plan.operations.iter().filter_map(entry_op) {
        *touches.entry(alias).or_default() += 1;
    }
    let mut last = HashMap::new();
    for (n, (alias, entries)) in plan.operations.iter().enumerate().filter_map(|(n, op)| Some((n, entry_op(op)?))) {
        if touches.get(alias).is_some_and(|t| *t > 1) {
            last.extend(entries.iter().map(|e| ((alias, e.value.as_str()), n)));
        }
    }
    last
}

fn entry_op(op: &Operation) -> Option<(&str, &[AliasEntry])> {
    match op {
        Operation::PutAliasEntries { alias, after: entries, .. }
        | Operation::RemoveAliasEntries { alias, before: entries } => Some((alias.as_str(), entries.as_slice())),
        _ => None,
    }
}
