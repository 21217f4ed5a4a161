//! Plans for what falls due with time: expired list entries and paused rules whose pause is over.

use crate::model::{Alias, AliasEntry, Rule, RuleSet, Timestamp};

use super::{ChangeFacts, ChangePlan, Operation};

/// The plan that carries out every expiry due at `now`: managed alias entries past their time are removed and
/// paused rules whose pause is over are resumed. `None` when nothing is due.
pub fn plan_expiry(state: &RuleSet, now: Timestamp) -> Option<ChangePlan> {
    // A geo block whose every entry is due goes whole, its rules and lists with it.
    let geo = crate::geo::expired_geo_blocks(state, now);
    let deleted: Vec<&str> = geo
        .iter()
        .filter_map(|op| match op {
            Operation::DeleteAlias { before } => Some(before.name.as_str()),
            _ => None,
        })
        .collect();
    let mut operations: Vec<Operation> = state
        .aliases
        .iter()
        .filter(|a| a.managed.is_some() && !deleted.contains(&a.name.as_str()))
        .filter_map(|a| {
            let before: Vec<AliasEntry> = a.entries.iter().filter(|e| !e.is_live(now)).cloned().collect();
            (!before.is_empty()).then(|| Operation::RemoveAliasEntries { alias: a.name.clone(), before })
        })
        .collect();
    let geo_rules: Vec<&Rule> = geo
        .iter()
        .filter_map(|op| match op {
            Operation::DeleteRule { before } => Some(before),
            _ => None,
        })
        .collect();
    let resumable = state.rules.iter().filter(|r| r.paused_until.is_some_and(|t| t <= now));
    for rule in resumable.filter(|r| !geo_rules.iter().any(|g| g.rule_id == r.rule_id)) {
        let after = Rule { enabled: true, paused_until: None, updated_at: Some(now), ..rule.clone() };
        operations.push(Operation::UpdateRule { before: rule.clone(), after, position: None });
    }
    operations.extend(geo);
    let mirrors = crate::mirror::expired_mirrors(state, now);
    let stopped = mirrors.len();
    operations.extend(mirrors);
    let accounts = crate::vpn::expired_accounts(state, now);
    let removed_users = accounts.len();
    operations.extend(accounts);
    if operations.is_empty() {
        return None;
    }
    let (entries, settled) = expiry_counts(&operations);
    let resumed = settled - stopped;
    let mirrors = if stopped == 0 { String::new() } else { format!(" and stop {stopped} mirrors") };
    let users = if removed_users == 0 { String::new() } else { format!(" and remove {removed_users} VPN users") };
    Some(ChangePlan {
        summary: format!("expire {entries} entries and resume {resumed} paused rules that are due{mirrors}{users}"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts::default(),
    })
}

/// What an expiry plan settles: the alias entries it removes, and the paused rules it resumes with the mirrors
/// it stops.
pub fn expiry_counts(operations: &[Operation]) -> (usize, usize) {
    operations.iter().fold((0, 0), |(entries, resumed), op| match op {
        Operation::RemoveAliasEntries { before, .. }
        | Operation::DeleteAlias { before: Alias { entries: before, .. } } => (entries + before.len(), resumed),
        Operation::UpdateRule { .. } | Operation::DeleteMirror { .. } => (entries, resumed + 1),
        _ => (entries, resumed),
    })
}

/// The plan that removes, from each alias, those of the given entries that are no longer live at `now`; `None`
/// when none is due. The reconciler's plan for entries read by value instead of from a full snapshot.
pub fn plan_entry_expiry(entries: Vec<(String, Vec<AliasEntry>)>, now: Timestamp) -> Option<ChangePlan> {
    let operations: Vec<Operation> = entries
        .into_iter()
        .filter_map(|(alias, entries)| {
            let before: Vec<AliasEntry> = entries.into_iter().filter(|e| !e.is_live(now)).collect();
            (!before.is_empty()).then_some(Operation::RemoveAliasEntries { alias, before })
        })
        .collect();
    let (count, _) = expiry_counts(&operations);
    (!operations.is_empty()).then(|| ChangePlan {
        summary: format!("expire {count} entries that are due"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts::default(),
    })
}

/// When the earliest pause or mirror in `state` ends (overdue ones included), for the reconciler's schedule.
/// Entry expiries are scheduled from the store's time index instead, so this looks at rules and mirrors only and
/// stays cheap however long the managed lists are.
pub fn next_pause_end(state: &RuleSet) -> Option<Timestamp> {
    let pauses = state.rules.iter().filter_map(|r| r.paused_until).min();
    pauses.into_iter().chain(crate::mirror::next_mirror_end(state)).chain(crate::vpn::next_account_end(state)).min()
}
