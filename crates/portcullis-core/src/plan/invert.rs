//! The plan that undoes a plan.

use crate::firewall::Applied;
use crate::model::RuleSet;

use super::{ChangeFacts, ChangePlan, Operation};

/// Deleted rules come back in the order of their old positions: each is then inserted where it was, counting the
/// ones before it that are already back (restoring the last one first would put it above the others).
fn restore_deleted_in_order(undo: &mut [Operation]) {
    let is_create = |op: &Operation| matches!(op, Operation::CreateRule { .. });
    let position = |op: &Operation| match op {
        Operation::CreateRule { position, after } => (after.interface.clone(), *position),
        _ => (String::new(), 0),
    };
    let mut start = 0;
    while start < undo.len() {
        let len = undo[start..].iter().take_while(|op| is_create(op)).count();
        undo[start..start + len].sort_by_key(position);
        start += len.max(1);
    }
}

/// An alias as created empty, and the entries that go into it after.
fn split_entries(alias: &crate::model::Alias) -> (Vec<crate::model::AliasEntry>, crate::model::Alias) {
    let empty = crate::model::Alias { entries: Vec::new(), ..alias.clone() };
    (alias.entries.clone(), empty)
}

/// The protection as the firewall held it right after the change (what an undo's `before` must match), or as
/// planned when the read-back did not hold it.
fn held_protection(after_state: &RuleSet, planned: &crate::protection::Protection) -> crate::protection::Protection {
    after_state
        .protections
        .iter()
        .find(|p| p.protection_id == planned.protection_id)
        .cloned()
        .unwrap_or_else(|| planned.clone())
}

/// Whether the undo deletes `alias` whole (a geo list the plan created), so its entries need no removal first.
fn deleted_by_undo(plan: &ChangePlan, alias: &str) -> bool {
    plan.operations.iter().any(|op| {
        matches!(op, Operation::CreateAlias { after }
            if after.name == alias && after.managed.as_deref() == Some(crate::geo::MANAGED_GEO))
    })
}

/// The plan that undoes `plan`, given what applying it produced and the state before it. Applied against the
/// state right after the change it restores the rules and entries as they were; if the firewall has drifted
/// since, its `before` values no longer match and the backend refuses it as a conflict. Block and grant lists the
/// change created are left in place, empty (a later block uses them again); geo lists, which belong to one geo
/// block, are deleted, and a deleted geo list comes back whole.
pub fn invert(plan: &ChangePlan, applied: &Applied, before_state: &RuleSet, after_state: &RuleSet) -> ChangePlan {
    let mut created = applied.created_rules.iter();
    let mut undo: Vec<Operation> = Vec::new();
    // Deleted aliases come back first, in their order, before the rules that use them.
    let mut restored_aliases: Vec<Operation> = Vec::new();
    for op in &plan.operations {
        match op {
            Operation::CreateRule { .. } => {
                if let Some(rule) = created.next().and_then(|id| after_state.rule(id)) {
                    undo.push(Operation::DeleteRule { before: rule.clone() });
                }
            }
            Operation::UpdateRule { before, after, position } => {
                let now = after_state.rule(&after.rule_id).cloned().unwrap_or_else(|| after.clone());
                let back = position.and_then(|_| before_state.position_of(&before.rule_id));
                undo.push(Operation::UpdateRule { before: now, after: before.clone(), position: back });
            }
            Operation::DeleteRule { before } => {
                let position = before_state.position_of(&before.rule_id).unwrap_or_default();
                undo.push(Operation::CreateRule { position, after: before.clone() });
            }
            Operation::CreateAlias { after } if after.managed.as_deref() == Some(crate::geo::MANAGED_GEO) => {
                let held = after_state.alias(&after.name).cloned().unwrap_or_else(|| after.clone());
                undo.push(Operation::DeleteAlias { before: held });
            }
            Operation::CreateAlias { .. } => {}
            Operation::DeleteAlias { before } => {
                let (entries, empty) = split_entries(before);
                restored_aliases.push(Operation::CreateAlias { after: empty });
                restored_aliases.push(Operation::PutAliasEntries {
                    alias: before.name.clone(),
                    before: Vec::new(),
                    after: entries,
                });
            }
            Operation::PutAliasEntries { alias, .. } if deleted_by_undo(plan, alias) => {}
            Operation::PutAliasEntries { alias, before, after } => {
                // Pushed in reverse, like every undo step (the list is reversed below): the entries put are
                // removed first and then the ones they replaced are put back. The other way round, the removal
                // (by value) would take the restored entries away again.
                if !before.is_empty() {
                    undo.push(Operation::PutAliasEntries {
                        alias: alias.clone(),
                        before: Vec::new(),
                        after: before.clone(),
                    });
                }
                undo.push(Operation::RemoveAliasEntries { alias: alias.clone(), before: after.clone() });
            }
            Operation::CreateProtection { after } => {
                let now = held_protection(after_state, after);
                undo.push(Operation::DeleteProtection { before: now });
            }
            Operation::UpdateProtection { before, after } => {
                let now = held_protection(after_state, after);
                undo.push(Operation::UpdateProtection { before: now, after: before.clone() });
            }
            Operation::DeleteProtection { before } => {
                undo.push(Operation::CreateProtection { after: before.clone() });
            }
            Operation::CreateMirror { after } => undo.push(Operation::DeleteMirror { before: after.clone() }),
            Operation::DeleteMirror { before } => undo.push(Operation::CreateMirror { after: before.clone() }),
            Operation::CreateVpnAccount { after } => undo.push(Operation::DeleteVpnAccount { before: after.clone() }),
            Operation::DeleteVpnAccount { before } => undo.push(Operation::CreateVpnAccount { after: before.clone() }),
            Operation::RemoveAliasEntries { alias, before } => {
                undo.push(Operation::PutAliasEntries {
                    alias: alias.clone(),
                    before: Vec::new(),
                    after: before.clone(),
                });
            }
        }
    }
    undo.reverse();
    restore_deleted_in_order(&mut undo);
    restored_aliases.append(&mut undo);
    let undo = restored_aliases;
    ChangePlan {
        summary: format!("undo: {}", plan.summary),
        operations: undo,
        warnings: Vec::new(),
        facts: ChangeFacts { widens_exposure: !plan.facts.widens_exposure, ..plan.facts.clone() },
    }
}
