//! Carrying a plan out on an in-memory rule set: the one meaning of every operation, shared by the lockout
//! preview (which evaluates the rule set a change would leave), the lab (which stores it) and nftables (which
//! turns it into one kernel batch).
//!
//! The conflict rule, the same everywhere: an `UpdateRule` or `DeleteRule` names its rule by id, and the rule of
//! that id must still be enforced as the plan saw it (`same_enforcement`: ids and the bookkeeping times
//! `created_at` / `updated_at` are ignored, since a backend's read-back need not keep them to the millisecond).
//! A rule that is gone, an entry operation on an alias that does not exist and a `CreateAlias` of an alias that
//! exists are conflicts too. The `before` entries of entry operations are not checked: entries expire on the
//! firewall on their own between planning and applying, and entries are put and removed by value whatever
//! their old detail was.

use std::collections::{BTreeSet, HashSet};

use crate::firewall::{Applied, BackendError, ErrorCode};
use crate::model::{Alias, AliasEntry, Rule, RuleId, RuleSet, Timestamp};

use super::{ChangePlan, Operation, global_index, same_enforcement};

/// A plan that no longer fits the state it is carried out on: the firewall changed since the plan was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Conflict {
    pub message: String,
}

impl Conflict {
    fn new(message: String) -> Self {
        Self { message }
    }
}

/// Every backend reports a conflict the same way, with the same advice.
impl From<Conflict> for BackendError {
    fn from(c: Conflict) -> Self {
        BackendError::new(ErrorCode::Conflict, c.message)
            .with_hint("the firewall changed since the plan was made; plan again")
    }
}

/// What `carry_out` does with alias entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entries {
    /// Entries are edited in the carried state, which is then the whole state after the plan (for evaluating it).
    Apply,
    /// The carried state's aliases have no entries, and what the plan puts and removes is only recorded in
    /// `Carried::put` / `Carried::removed`: a block list of 100,000 entries is then not copied for every change.
    /// Backends write the recorded entries where their lists live (the lab: `Carried::apply_entries`).
    Record,
}

/// Where the ids of created rules come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// pfSense-style trackers (`next_tracker`), for backends that keep the ids.
    Tracker(Timestamp),
    /// `planned-{n}`, `n` the index of the operation in the plan: for looking at a plan before any backend gave ids.
    Placeholders,
}

impl Ids {
    /// The id of the rule created by operation `operation`, given the rules there are now.
    pub fn next(self, rules: &[Rule], operation: usize) -> RuleId {
        match self {
            Self::Tracker(now) => next_tracker(rules, now),
            Self::Placeholders => RuleId(format!("planned-{operation}")),
        }
    }
}

/// pfSense trackers are unique integers: a new one counts up from the largest numeric id in use, and starts at
/// `now` in tenths of seconds so that ids of a fresh firewall do not repeat those of one wiped before.
pub fn next_tracker(rules: &[Rule], now: Timestamp) -> RuleId {
    let max = rules.iter().filter_map(|r| r.rule_id.as_str().parse::<u64>().ok()).max();
    let base = now.timestamp().max(0) as u64 * 10;
    RuleId(max.map_or(base, |m| m.max(base) + 1).to_string())
}

/// A plan carried out: the state after it and what a backend needs to write it.
#[derive(Debug, Clone)]
pub struct Carried<'p> {
    /// Rules and aliases after the plan; with `Entries::Record` the aliases hold no entries.
    pub state: RuleSet,
    /// The ids given to created rules, in operation order.
    pub applied: Applied,
    /// Interfaces whose rules the plan creates, changes, moves or deletes.
    pub interfaces: BTreeSet<String>,
    /// Aliases the plan creates, in operation order.
    pub new_aliases: Vec<String>,
    /// Aliases the plan deletes, entries and all, in operation order. Nothing is recorded in `put` or `removed`
    /// for them: a backend deletes each whole.
    pub deleted_aliases: Vec<String>,
    /// The plan's net entry change, by reference into the plan: removing `removed` and putting `put` (in either
    /// order: no value of an alias is in both) leaves an alias as carrying the operations out one by one does.
    pub put: Vec<(&'p str, &'p AliasEntry)>,
    pub removed: Vec<(&'p str, &'p AliasEntry)>,
}

impl Carried<'_> {
    /// Whether the ordered rule list changed (a backend that stores it whole writes it only then).
    pub fn rules_changed(&self) -> bool {
        !self.interfaces.is_empty()
    }

    /// Writes the recorded entry change into `aliases`, one pass over each alias the plan touches.
    pub fn apply_entries(&self, aliases: &mut [Alias]) {
        for alias in aliases.iter_mut() {
            let name = alias.name.as_str();
            let put: Vec<&AliasEntry> = self.put.iter().filter(|(a, _)| *a == name).map(|(_, e)| *e).collect();
            let gone: HashSet<&str> = self
                .removed
                .iter()
                .filter(|(a, _)| *a == name)
                .map(|(_, e)| e.value.as_str())
                .chain(put.iter().map(|e| e.value.as_str()))
                .collect();
            if gone.is_empty() {
                continue;
            }
            alias.entries.retain(|e| !gone.contains(e.value.as_str()));
            alias.entries.extend(put.into_iter().cloned());
        }
    }
}

/// Carries `plan` out on `state`, checking every `before` (see the module's conflict rule). `state` is not
/// touched: a conflict anywhere in the plan leaves nothing half done.
pub fn carry_out<'p>(
    state: &RuleSet,
    plan: &'p ChangePlan,
    ids: Ids,
    entries: Entries,
) -> Result<Carried<'p>, Conflict> {
    let aliases = match entries {
        Entries::Apply => state.aliases.clone(),
        Entries::Record => state.aliases.iter().map(without_entries).collect(),
    };
    let mut out = Carried {
        state: RuleSet {
            interfaces: state.interfaces.clone(),
            rules: state.rules.clone(),
            aliases,
            protections: state.protections.clone(),
            mirrors: state.mirrors.clone(),
            vpn_accounts: state.vpn_accounts.clone(),
        },
        applied: Applied::default(),
        interfaces: BTreeSet::new(),
        new_aliases: Vec::new(),
        deleted_aliases: Vec::new(),
        put: Vec::new(),
        removed: Vec::new(),
    };
    let mut entries_seen = EntriesSeen::default();
    for (n, op) in plan.operations.iter().enumerate() {
        let next = &mut out.state;
        match op {
            Operation::CreateRule { position, after } => {
                let id = ids.next(&next.rules, n);
                let rule = Rule { rule_id: id.clone(), ..after.clone() };
                let at = global_index(&next.rules, &rule.interface, *position);
                out.interfaces.insert(rule.interface.clone());
                next.rules.insert(at, rule);
                out.applied.created_rules.push(id);
            }
            Operation::UpdateRule { before, after, position } => {
                let idx = index_matching(next, before)?;
                out.interfaces.insert(before.interface.clone());
                out.interfaces.insert(after.interface.clone());
                match position {
                    None => next.rules[idx] = after.clone(),
                    Some(p) => {
                        next.rules.remove(idx);
                        let at = global_index(&next.rules, &after.interface, *p);
                        next.rules.insert(at, after.clone());
                    }
                }
            }
            Operation::DeleteRule { before } => {
                let idx = index_matching(next, before)?;
                out.interfaces.insert(before.interface.clone());
                next.rules.remove(idx);
            }
            Operation::CreateAlias { after } => {
                if next.alias(&after.name).is_some() {
                    return Err(Conflict::new(format!("alias {} already exists", after.name)));
                }
                // An alias is created empty; its entries arrive through `PutAliasEntries`, as every planner
                // writes them, so that they are recorded and stored like any other entries.
                next.aliases.push(without_entries(after));
                out.new_aliases.push(after.name.clone());
            }
            Operation::PutAliasEntries { alias, after, .. } => {
                existing_alias(next, alias)?;
                entries_seen.put(&mut out.put, &mut out.removed, alias, after);
            }
            Operation::RemoveAliasEntries { alias, before } => {
                existing_alias(next, alias)?;
                entries_seen.remove(&mut out.put, &mut out.removed, alias, before);
            }
            Operation::DeleteAlias { before } => {
                existing_alias(next, &before.name)?;
                let name = before.name.as_str();
                if let Some(rule) = next.rules.iter().find(|r| r.references_alias(name)) {
                    return Err(Conflict::new(format!("alias {name} is still used by rule {}", rule.rule_id)));
                }
                next.aliases.retain(|a| a.name != name);
                out.put.retain(|(a, _)| *a != name);
                out.removed.retain(|(a, _)| *a != name);
                out.new_aliases.retain(|a| a != name);
                out.deleted_aliases.push(before.name.clone());
            }
            Operation::CreateProtection { after } => {
                if next.protections.iter().any(|p| p.protection_id == after.protection_id) {
                    return Err(Conflict::new(format!("DDoS protection {} already exists", after.protection_id)));
                }
                out.interfaces.insert(after.interface.clone());
                next.protections.push(after.clone());
            }
            Operation::UpdateProtection { before, after } => {
                let idx = protection_matching(next, before)?;
                out.interfaces.insert(after.interface.clone());
                next.protections[idx] = after.clone();
            }
            Operation::DeleteProtection { before } => {
                let idx = protection_matching(next, before)?;
                out.interfaces.insert(before.interface.clone());
                next.protections.remove(idx);
            }
            Operation::CreateMirror { after } => {
                if next.mirrors.iter().any(|m| m.mirror_id == after.mirror_id) {
                    return Err(Conflict::new(format!("mirror {} already exists", after.mirror_id)));
                }
                out.interfaces.insert(after.interface.clone());
                next.mirrors.push(after.clone());
            }
            Operation::DeleteMirror { before } => {
                let Some(idx) = next.mirrors.iter().position(|m| crate::mirror::same_enforcement(m, before)) else {
                    return Err(Conflict::new(format!("mirror {} is not running as planned", before.mirror_id)));
                };
                out.interfaces.insert(before.interface.clone());
                next.mirrors.remove(idx);
            }
            Operation::CreateVpnAccount { after } => {
                if next.vpn_accounts.iter().any(|u| u.username == after.username) {
                    return Err(Conflict::new(format!("VPN user {} already exists", after.username)));
                }
                next.vpn_accounts.push(after.clone());
            }
            Operation::DeleteVpnAccount { before } => {
                let Some(idx) = next.vpn_accounts.iter().position(|u| u.same_enforcement(before)) else {
                    return Err(Conflict::new(format!("VPN user {} is not as planned", before.username)));
                };
                next.vpn_accounts.remove(idx);
            }
        }
    }
    if entries == Entries::Apply {
        let mut aliases = std::mem::take(&mut out.state.aliases);
        out.apply_entries(&mut aliases);
        out.state.aliases = aliases;
    }
    Ok(out)
}

/// Keeps the recorded puts and removals a net change. Only an alias touched a second time in one plan (an undo
/// that restores a replaced entry, say) costs a pass over what is recorded; a bulk block of 100,000 entries in
/// one operation is recorded as it is.
#[derive(Default)]
struct EntriesSeen<'p> {
    put_to: HashSet<&'p str>,
    removed_from: HashSet<&'p str>,
}

type Recorded<'p> = Vec<(&'p str, &'p AliasEntry)>;

impl<'p> EntriesSeen<'p> {
    fn put(&mut self, put: &mut Recorded<'p>, removed: &mut Recorded<'p>, alias: &'p str, entries: &'p [AliasEntry]) {
        // A value put again replaces the earlier put, and a value removed earlier is back.
        self.forget_earlier(put, removed, alias, entries);
        self.put_to.insert(alias);
        put.extend(entries.iter().map(|e| (alias, e)));
    }

    fn remove(
        &mut self,
        put: &mut Recorded<'p>,
        removed: &mut Recorded<'p>,
        alias: &'p str,
        entries: &'p [AliasEntry],
    ) {
        // A value put earlier in the plan is gone again; one removed twice is removed once.
        self.forget_earlier(put, removed, alias, entries);
        self.removed_from.insert(alias);
        removed.extend(entries.iter().map(|e| (alias, e)));
    }

    /// Drops what earlier operations recorded for these values of `alias`: only the last operation on a value
    /// counts. Aliases touched once (a bulk block of 100,000 entries) skip the lookup.
    fn forget_earlier(&self, put: &mut Recorded<'p>, removed: &mut Recorded<'p>, alias: &str, entries: &[AliasEntry]) {
        if self.put_to.contains(alias) || self.removed_from.contains(alias) {
            let values: HashSet<&str> = entries.iter().map(|e| e.value.as_str()).collect();
            let keep = |(a, e): &(&str, &AliasEntry)| *a != alias || !values.contains(e.value.as_str());
            put.retain(keep);
            removed.retain(keep);
        }
    }
}

fn without_entries(alias: &Alias) -> Alias {
    Alias {
        name: alias.name.clone(),
        kind: alias.kind,
        description: alias.description.clone(),
        entries: Vec::new(),
        managed: alias.managed.clone(),
    }
}

fn existing_alias(state: &RuleSet, name: &str) -> Result<(), Conflict> {
    match state.alias(name) {
        Some(_) => Ok(()),
        None => Err(Conflict::new(format!("alias {name} does not exist"))),
    }
}

/// The index of the rule the plan saw; a rule edited since then is a conflict, not a silent overwrite.
fn index_matching(state: &RuleSet, before: &Rule) -> Result<usize, Conflict> {
    let idx = state
        .rules
        .iter()
        .position(|r| r.rule_id == before.rule_id)
        .ok_or_else(|| Conflict::new(format!("rule {} no longer exists", before.rule_id)))?;
    if !same_enforcement(&state.rules[idx], before) {
        return Err(Conflict::new(format!("rule {} was changed by someone else", before.rule_id)));
    }
    Ok(idx)
}

/// The index of the protection `before` names, which must hold exactly what `before` says (bookkeeping times
/// aside, which a backend may keep more coarsely).
fn protection_matching(state: &RuleSet, before: &crate::protection::Protection) -> Result<usize, Conflict> {
    let idx = state
        .protections
        .iter()
        .position(|p| p.protection_id == before.protection_id)
        .ok_or_else(|| Conflict::new(format!("DDoS protection {} is not there any more", before.protection_id)))?;
    if !crate::protection::same_enforcement(&state.protections[idx], before) {
        return Err(Conflict::new(format!("DDoS protection {} was changed meanwhile", before.protection_id)));
    }
    Ok(idx)
}
