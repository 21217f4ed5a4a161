//! Which parts of a target's state must be read from the firewall now, and which may come from what its backend
//! read recently.
//!
//! On a firewall reached over a slow API (pfSense: every pfRest request runs PHP over `config.xml` on a small
//! appliance) each request counts. A read tool needs its rules now, a log query needs neither rules nor aliases
//! now, and a change needs now exactly the objects its plan touches: the rest of the state it is judged against
//! (lockout, effect) may be a recent read, no older than the backend's configured age.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Alias, RuleId, RuleSet};
use crate::plan::{ChangePlan, Operation};

/// The parts of a state to read now. Everything else may come from a recent read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateRead {
    /// Every rule, in order (also the positions of rules nobody named).
    pub all_rules: bool,
    /// Rules read now by id (when not all of them).
    pub rules: BTreeSet<RuleId>,
    /// Every alias.
    pub all_aliases: bool,
    /// Aliases read now by name (when not all of them).
    pub aliases: BTreeSet<String>,
    /// The entries a plan puts or removes, by alias and value. Their aliases are in `aliases` too, so a backend
    /// that reads whole aliases needs nothing else; one that can look entries up one by one (nftables, where a
    /// list holds a million addresses) may read only these, and the alias' definition.
    pub entries: BTreeMap<String, BTreeSet<String>>,
    /// Of every alias, only the entries with these values (with every rule, every alias' definition and the
    /// interfaces): what a block, unblock, grant or revoke of those addresses is planned against on a backend that
    /// looks entries up ([`crate::firewall::Firewall::plans_on_looked_up_entries`]). `None`: every entry.
    pub values: Option<BTreeSet<String>>,
}

impl StateRead {
    /// Everything now: a snapshot.
    pub fn everything() -> Self {
        StateRead { all_rules: true, all_aliases: true, ..Default::default() }
    }

    /// Nothing now: what was read recently is good enough (a log query, which only names interfaces and rules).
    pub fn recent() -> Self {
        StateRead::default()
    }

    /// Every rule and interface, and of the aliases only the entries with `values`: what a change of those
    /// entries needs.
    pub fn entries_with(values: impl IntoIterator<Item = String>) -> Self {
        StateRead { all_rules: true, values: Some(values.into_iter().collect()), ..Default::default() }
    }

    /// The rules now (a rules read).
    pub fn rules() -> Self {
        StateRead { all_rules: true, ..Default::default() }
    }

    /// The objects a plan changes: what it must be made against, and what its read-back reads. A plan that
    /// creates or moves a rule needs every rule (positions and the ids the firewall gives).
    pub fn touched_by(plan: &ChangePlan) -> Self {
        let mut read = StateRead::default();
        // Aliases the plan creates or deletes are read whole, whatever entries it also puts into them.
        let mut whole = BTreeSet::new();
        for op in &plan.operations {
            match op {
                Operation::CreateRule { .. } | Operation::UpdateRule { position: Some(_), .. } => {
                    read.all_rules = true;
                }
                Operation::UpdateRule { before, position: None, .. } | Operation::DeleteRule { before } => {
                    read.rules.insert(before.rule_id.clone());
                }
                Operation::CreateAlias { after } | Operation::DeleteAlias { before: after } => {
                    read.aliases.insert(after.name.clone());
                    whole.insert(after.name.clone());
                }
                Operation::PutAliasEntries { alias, before, after } => {
                    read.aliases.insert(alias.clone());
                    let values = read.entries.entry(alias.clone()).or_default();
                    values.extend(before.iter().chain(after).map(|e| e.value.clone()));
                }
                Operation::RemoveAliasEntries { alias, before } => {
                    read.aliases.insert(alias.clone());
                    read.entries.entry(alias.clone()).or_default().extend(before.iter().map(|e| e.value.clone()));
                }
                // Protections are read with the rules: on pfSense a protection is carried by the pass rules it
                // covers.
                Operation::CreateProtection { .. }
                | Operation::UpdateProtection { .. }
                | Operation::DeleteProtection { .. }
                // Mirrors are read with the rules too (on pfSense from the anchor they are loaded into).
                | Operation::CreateMirror { .. }
                | Operation::DeleteMirror { .. }
                // VPN users are read with the rules (a backend reads its VPN server whole).
                | Operation::CreateVpnAccount { .. }
                | Operation::DeleteVpnAccount { .. } => read.all_rules = true,
            }
        }
        read.entries.retain(|alias, _| !whole.contains(alias));
        read
    }

    /// Whether nothing but entries (and their aliases' definitions) is asked for: no rule, and no alias whole
    /// (one created or deleted).
    pub fn only_entries(&self) -> bool {
        !self.all_rules
            && self.rules.is_empty()
            && !self.all_aliases
            && !self.entries.is_empty()
            && self.aliases.iter().all(|a| self.entries.contains_key(a))
    }

    /// Whether two states agree on every part this read names: a plan made against `recent` holds against
    /// `fresh` when they do.
    pub fn agrees(&self, recent: &RuleSet, fresh: &RuleSet) -> bool {
        let rules_agree = if self.all_rules {
            recent.rules == fresh.rules && recent.protections == fresh.protections
        } else {
            self.rules.iter().all(|id| {
                let find = |s: &RuleSet| s.rules.iter().find(|r| &r.rule_id == id).cloned();
                find(recent) == find(fresh)
            })
        };
        let alias = |s: &RuleSet, name: &str| -> Option<Alias> { s.alias(name).cloned() };
        let aliases_agree = if self.all_aliases {
            recent.aliases == fresh.aliases
        } else {
            self.aliases.iter().all(|name| alias(recent, name) == alias(fresh, name))
        };
        rules_agree && aliases_agree
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AliasEntry, AliasKind, Interface};
    use crate::plan::{Entries, Ids, Intent, carry_out, plan};
    use chrono::Utc;

    fn entry(value: &str) -> AliasEntry {
        AliasEntry { value: value.into(), detail: "t".into(), expires_at: None, created_at: None }
    }

    #[test]
    fn a_block_touches_its_list_and_a_first_block_every_rule() {
        let now = Utc::now();
        let intent = Intent::Block {
            addresses: crate::model::parse_net("ip_address", "198.51.100.7").unwrap().into(),
            interface: None,
            expires_at: None,
            reason: "t".into(),
            replace: false,
        };
        let start = RuleSet { interfaces: vec![Interface::up("wan", "em0", None)], ..Default::default() };
        let first = plan(&start, &intent, now).unwrap();
        let touched = StateRead::touched_by(&first);
        assert!(touched.all_rules, "the first block creates its rule: {touched:?}");
        assert!(!touched.only_entries() && touched.entries.is_empty(), "its list is created, so read whole");

        let state = carry_out(&start, &first, Ids::Tracker(now), Entries::Apply).unwrap().state;
        let again = plan(&state, &intent, now).unwrap();
        let touched = StateRead::touched_by(&again);
        assert!(!touched.all_rules && touched.rules.is_empty(), "{touched:?}");
        assert_eq!(touched.aliases.len(), 1, "{touched:?}");
        assert!(touched.only_entries(), "a later block touches one entry of its list: {touched:?}");
        let values: Vec<&String> = touched.entries.values().flatten().collect();
        assert_eq!(values, ["198.51.100.7"]);
    }

    #[test]
    fn states_agree_only_on_what_was_read() {
        let list = |entries: Vec<AliasEntry>| Alias {
            name: "L".into(),
            kind: AliasKind::Network,
            description: String::new(),
            entries,
            managed: None,
        };
        let a = RuleSet { aliases: vec![list(vec![entry("192.0.2.1")])], ..Default::default() };
        let b = RuleSet { aliases: vec![list(vec![entry("192.0.2.1"), entry("192.0.2.2")])], ..Default::default() };
        let of_l = StateRead { aliases: ["L".to_string()].into(), ..Default::default() };
        let of_other = StateRead { aliases: ["M".to_string()].into(), ..Default::default() };
        assert!(!of_l.agrees(&a, &b));
        assert!(of_other.agrees(&a, &b));
        assert!(StateRead::recent().agrees(&a, &b));
        assert!(!StateRead::everything().agrees(&a, &b));
    }
}
