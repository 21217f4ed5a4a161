//! What this backend read from pfRest recently, so that a call reads now only what it needs now
//! ([`StateRead`](portcullis_core::freshness::StateRead)).
//!
//! - **Interfaces** (config and status) change rarely: they are kept for `interfaces_max_age`.
//! - **Rules and aliases** are kept for `state_max_age` as the background a change is judged against (lockout,
//!   effect); the objects a plan touches are always read again before it is planned for good and after it is
//!   applied, so a rule or alias edited behind Portcullis' back is caught as before.
//! - Nothing here is used for a write: the apply reads each object right before it writes it, and that read is
//!   the concurrency check. A failed apply forgets the rules and aliases entirely.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use portcullis_pfrest::types::{FirewallAlias, FirewallRule, InterfaceStats, NetworkInterface};

/// How long recent reads are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheAges {
    pub interfaces: Duration,
    pub state: Duration,
}

impl Default for CacheAges {
    fn default() -> Self {
        CacheAges { interfaces: Duration::from_secs(300), state: Duration::from_secs(30) }
    }
}

impl CacheAges {
    /// Every part read for every call (ages of zero).
    pub fn none() -> Self {
        CacheAges { interfaces: Duration::ZERO, state: Duration::ZERO }
    }
}

struct Stamped<T> {
    value: T,
    at: Instant,
}

impl<T: Clone> Stamped<T> {
    fn new(value: T) -> Self {
        Stamped { value, at: Instant::now() }
    }

    fn within(&self, age: Duration) -> Option<T> {
        (self.at.elapsed() < age).then(|| self.value.clone())
    }
}

pub(crate) type Interfaces = (Vec<NetworkInterface>, Vec<InterfaceStats>);

#[derive(Default)]
struct Recent {
    interfaces: Option<Stamped<Interfaces>>,
    rules: Option<Stamped<Vec<FirewallRule>>>,
    aliases: Option<Stamped<Vec<FirewallAlias>>>,
}

pub(crate) struct StateCache {
    ages: CacheAges,
    recent: Mutex<Recent>,
}

impl StateCache {
    pub(crate) fn new(ages: CacheAges) -> Self {
        StateCache { ages, recent: Mutex::new(Recent::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn interfaces(&self) -> Option<Interfaces> {
        self.lock().interfaces.as_ref().and_then(|s| s.within(self.ages.interfaces))
    }

    pub(crate) fn put_interfaces(&self, interfaces: Interfaces) {
        self.lock().interfaces = Some(Stamped::new(interfaces));
    }

    /// Whether the rule list was read within the state age.
    pub(crate) fn rules_are_recent(&self) -> bool {
        self.lock().rules.as_ref().is_some_and(|s| s.at.elapsed() < self.ages.state)
    }

    pub(crate) fn put_rules(&self, rules: Vec<FirewallRule>) {
        self.lock().rules = Some(Stamped::new(rules));
    }

    /// Puts rules read by their trackers (`None`: gone) into the list, keeping its age, and returns the list with
    /// them. `None` when there is no list or it does not know one of them: a new rule's position is unknown, and
    /// the whole list must be read.
    pub(crate) fn put_rules_read(&self, read: Vec<(i64, Option<FirewallRule>)>) -> Option<Vec<FirewallRule>> {
        let mut recent = self.lock();
        let list = &mut recent.rules.as_mut()?.value;
        for (tracker, found) in read {
            let at = list.iter().position(|r| r.tracker == Some(tracker));
            match (at, found) {
                (Some(i), Some(rule)) => list[i] = rule,
                (Some(i), None) => {
                    list.remove(i);
                }
                (None, None) => {}
                (None, Some(_)) => {
                    recent.rules = None;
                    return None;
                }
            }
        }
        Some(list.clone())
    }

    /// Whether the aliases were read within the state age.
    pub(crate) fn aliases_are_recent(&self) -> bool {
        self.lock().aliases.as_ref().is_some_and(|s| s.at.elapsed() < self.ages.state)
    }

    pub(crate) fn put_aliases(&self, aliases: Vec<FirewallAlias>) {
        self.lock().aliases = Some(Stamped::new(aliases));
    }

    /// Puts aliases read by name (`None`: it does not exist) into the list, keeping its age, and returns the list
    /// with them; `None` when there is no list.
    pub(crate) fn put_aliases_read(&self, read: Vec<(String, Option<FirewallAlias>)>) -> Option<Vec<FirewallAlias>> {
        let mut recent = self.lock();
        let list = &mut recent.aliases.as_mut()?.value;
        for (name, found) in read {
            let at = list.iter().position(|a| a.name == name);
            match (at, found) {
                (Some(i), Some(alias)) => list[i] = alias,
                (Some(i), None) => {
                    list.remove(i);
                }
                (None, Some(alias)) => list.push(alias),
                (None, None) => {}
            }
        }
        Some(list.clone())
    }

    /// Forgets the rules and aliases (after a failed apply nothing about them is trusted).
    pub(crate) fn forget_state(&self) {
        let mut recent = self.lock();
        recent.rules = None;
        recent.aliases = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(name: &str, address: &[&str]) -> FirewallAlias {
        FirewallAlias {
            name: name.into(),
            type_: "network".into(),
            address: address.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_is_reused_past_its_age() {
        let cache = StateCache::new(CacheAges::none());
        cache.put_aliases(vec![alias("B", &[])]);
        cache.put_rules(Vec::new());
        cache.put_interfaces((Vec::new(), Vec::new()));
        assert!(!cache.aliases_are_recent() && !cache.rules_are_recent() && cache.interfaces().is_none());
    }

    #[test]
    fn a_rule_the_list_does_not_know_asks_for_the_whole_list() {
        let cache = StateCache::new(CacheAges::default());
        let rule = |t: i64| FirewallRule { tracker: Some(t), ..Default::default() };
        cache.put_rules(vec![rule(1), rule(3)]);
        assert_eq!(cache.put_rules_read(vec![(1, None)]), Some(vec![rule(3)]), "a deleted rule leaves the list");
        assert_eq!(cache.put_rules_read(vec![(2, Some(rule(2)))]), None, "a new rule's position is unknown");
        assert!(!cache.rules_are_recent(), "so the list is read again");
        cache.put_rules(vec![rule(1)]);
        cache.forget_state();
        assert!(!cache.rules_are_recent());
    }
}
