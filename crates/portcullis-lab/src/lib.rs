//! The embedded lab firewall: pfSense semantics (interfaces, ordered first-match rules, aliases, managed block
//! lists), persisted in the store so that a restart keeps every change. It is the default target, and the
//! same evaluator it uses decides `simulate_packet` for every backend.

mod seed;
pub mod traffic;

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;
use portcullis_core::firewall::{
    Applied, BackendError, BackendKind, ErrorCode, Firewall, HealthCheck, SystemStatus, TargetInfo,
};
use portcullis_core::model::{Alias, AliasEntry, Interface, Rule, RuleId, RuleSet};
use portcullis_core::plan::{ChangePlan, Operation, global_index};
use portcullis_store::{LabState, LabWrite, Store};

pub use seed::{LabInterface, default_interfaces, lab_interfaces};

/// The lab firewall for one target name.
pub struct LabFirewall {
    name: String,
    store: Arc<Store>,
    interfaces: Vec<Interface>,
    /// The in-memory copy of the stored state; writes go to the store first, then here.
    state: Mutex<LabState>,
    /// The store's lab version the in-memory copy was read at; another process's write moves it.
    loaded_version: Mutex<i64>,
    host: portcullis_host::HostProbe,
}

fn store_error(e: portcullis_store::StoreError) -> BackendError {
    BackendError::new(ErrorCode::InternalError, format!("lab store: {e}"))
        .with_hint("check that the data directory is writable and not full")
}

impl LabFirewall {
    /// Opens the lab target `name`, creating a fresh-install rule set the first time.
    pub fn open(name: &str, store: Arc<Store>, interfaces: Vec<Interface>) -> Result<Self, BackendError> {
        let state = match store.lab_load(name).map_err(store_error)? {
            Some(state) => state,
            None => {
                let state = seed::fresh_install(&interfaces, Utc::now());
                let write = LabWrite {
                    rules: Some(&state.rules),
                    aliases: state.aliases.iter().collect(),
                    ..LabWrite::default()
                };
                store.lab_write(name, &write).map_err(store_error)?;
                tracing::info!(target = name, rules = state.rules.len(), "initialised lab firewall");
                state
            }
        };
        let version = store.lab_version(name).map_err(store_error)?;
        Ok(Self {
            name: name.to_string(),
            store,
            interfaces,
            state: Mutex::new(state),
            loaded_version: Mutex::new(version),
            host: portcullis_host::HostProbe::default(),
        })
    }

    /// The state, reloaded first if another process (the CLI beside a server) wrote to the store since.
    fn state(&self) -> Result<MutexGuard<'_, LabState>, BackendError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut loaded = self.loaded_version.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.store.lab_version(&self.name).map_err(store_error)?;
        if current != *loaded {
            if let Some(fresh) = self.store.lab_load(&self.name).map_err(store_error)? {
                *state = fresh;
            }
            *loaded = current;
        }
        Ok(state)
    }

    /// Records that the in-memory copy now matches the store after this process's own write.
    fn mark_current(&self) -> Result<(), BackendError> {
        let current = self.store.lab_version(&self.name).map_err(store_error)?;
        *self.loaded_version.lock().unwrap_or_else(|p| p.into_inner()) = current;
        Ok(())
    }

    fn rule_set(&self, state: &LabState) -> RuleSet {
        RuleSet { interfaces: self.interfaces.clone(), rules: state.rules.clone(), aliases: state.aliases.clone() }
    }
}

/// Whether an operation only adds or removes entries of an existing alias.
fn is_entry_operation(op: &Operation) -> bool {
    matches!(op, Operation::PutAliasEntries { .. } | Operation::RemoveAliasEntries { .. })
}

impl LabFirewall {
    /// Applies a plan that only adds or removes alias entries without copying the state: every alias is checked
    /// first, the store write commits, and only then is the in-memory list edited, which cannot fail. A block
    /// list of a million entries is then not copied for every expiry.
    fn apply_entries_in_place(&self, state: &mut LabState, plan: &ChangePlan) -> Result<Applied, BackendError> {
        let mut write = LabWrite::default();
        for op in &plan.operations {
            match op {
                Operation::PutAliasEntries { alias, after, .. } => {
                    require_alias(state, alias)?;
                    write.put_entries.extend(after.iter().map(|e| (alias.as_str(), e)));
                }
                Operation::RemoveAliasEntries { alias, before } => {
                    require_alias(state, alias)?;
                    write.remove_entries.extend(before.iter().map(|e| (alias.as_str(), e.value.as_str())));
                }
                _ => {}
            }
        }
        self.store.lab_write(&self.name, &write).map_err(store_error)?;
        for op in &plan.operations {
            match op {
                Operation::PutAliasEntries { alias, after, .. } => alias_in(state, alias, |a| a.put_entries(after)),
                Operation::RemoveAliasEntries { alias, before } => alias_in(state, alias, |a| a.remove_entries(before)),
                _ => {}
            }
        }
        self.mark_current()?;
        Ok(Applied::default())
    }
}

fn require_alias(state: &LabState, name: &str) -> Result<(), BackendError> {
    if state.aliases.iter().any(|a| a.name == name) {
        Ok(())
    } else {
        Err(conflict(format!("alias {name} does not exist")))
    }
}

/// Edits the alias `name` (which `apply_entries_in_place` has checked exists).
fn alias_in(state: &mut LabState, name: &str, edit: impl FnOnce(&mut Alias)) {
    if let Some(alias) = state.aliases.iter_mut().find(|a| a.name == name) {
        edit(alias);
    }
}

fn conflict(msg: String) -> BackendError {
    BackendError::new(ErrorCode::Conflict, msg).with_hint("the firewall changed since the plan was made; plan again")
}

/// Applies a plan to a copy of the state and collects the rows to write. Errors leave `state` untouched.
struct Change<'a> {
    next: LabState,
    applied: Applied,
    rules_changed: bool,
    aliases: Vec<String>,
    put: Vec<(&'a str, &'a AliasEntry)>,
    remove: Vec<(&'a str, &'a str)>,
}

impl<'a> Change<'a> {
    fn new(current: &LabState) -> Self {
        Self {
            next: current.clone(),
            applied: Applied::default(),
            rules_changed: false,
            aliases: Vec::new(),
            put: Vec::new(),
            remove: Vec::new(),
        }
    }

    fn apply(&mut self, op: &'a Operation) -> Result<(), BackendError> {
        match op {
            Operation::CreateRule { position, after } => self.create_rule(*position, after),
            Operation::UpdateRule { before, after, position } => self.update_rule(before, after, *position),
            Operation::DeleteRule { before } => {
                let idx = self.index_matching(before)?;
                self.next.rules.remove(idx);
                self.rules_changed = true;
                Ok(())
            }
            Operation::CreateAlias { after } => {
                if self.alias_mut(&after.name).is_some() {
                    return Err(conflict(format!("alias {} already exists", after.name)));
                }
                self.next.aliases.push(Alias { entries: Vec::new(), ..after.clone() });
                self.aliases.push(after.name.clone());
                Ok(())
            }
            Operation::PutAliasEntries { alias, after, .. } => {
                let target = self.alias_mut(alias).ok_or_else(|| conflict(format!("alias {alias} does not exist")))?;
                target.put_entries(after);
                self.put.extend(after.iter().map(|e| (alias.as_str(), e)));
                Ok(())
            }
            Operation::RemoveAliasEntries { alias, before } => {
                let target = self.alias_mut(alias).ok_or_else(|| conflict(format!("alias {alias} does not exist")))?;
                target.remove_entries(before);
                self.remove.extend(before.iter().map(|e| (alias.as_str(), e.value.as_str())));
                Ok(())
            }
        }
    }

    fn alias_mut(&mut self, name: &str) -> Option<&mut Alias> {
        self.next.aliases.iter_mut().find(|a| a.name == name)
    }

    /// The index of the rule the plan saw; a rule edited since then is a conflict, not a silent overwrite.
    fn index_matching(&self, before: &Rule) -> Result<usize, BackendError> {
        let idx = self
            .next
            .rules
            .iter()
            .position(|r| r.rule_id == before.rule_id)
            .ok_or_else(|| conflict(format!("rule {} no longer exists", before.rule_id)))?;
        if &self.next.rules[idx] != before {
            return Err(conflict(format!("rule {} was changed by someone else", before.rule_id)));
        }
        Ok(idx)
    }

    fn create_rule(&mut self, position: usize, after: &Rule) -> Result<(), BackendError> {
        let id = self.next_tracker();
        let rule = Rule { rule_id: id.clone(), ..after.clone() };
        let at = global_index(&self.next.rules, &rule.interface, position);
        self.next.rules.insert(at, rule);
        self.applied.created_rules.push(id);
        self.rules_changed = true;
        Ok(())
    }

    fn update_rule(&mut self, before: &Rule, after: &Rule, position: Option<usize>) -> Result<(), BackendError> {
        let idx = self.index_matching(before)?;
        match position {
            None => self.next.rules[idx] = after.clone(),
            Some(p) => {
                self.next.rules.remove(idx);
                let at = global_index(&self.next.rules, &after.interface, p);
                self.next.rules.insert(at, after.clone());
            }
        }
        self.rules_changed = true;
        Ok(())
    }

    /// pfSense trackers are unique integers; new ones count up from the largest in use.
    fn next_tracker(&self) -> RuleId {
        let max = self.next.rules.iter().filter_map(|r| r.rule_id.as_str().parse::<u64>().ok()).max();
        let base = Utc::now().timestamp().max(0) as u64 * 10;
        RuleId(max.map_or(base, |m| m.max(base) + 1).to_string())
    }
}

#[async_trait]
impl Firewall for LabFirewall {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            name: self.name.clone(),
            kind: BackendKind::Lab,
            description: "Embedded lab firewall with pfSense semantics".into(),
        }
    }

    async fn snapshot(&self) -> Result<RuleSet, BackendError> {
        let state = self.state()?;
        Ok(self.rule_set(&state))
    }

    async fn apply(&self, plan: &ChangePlan) -> Result<Applied, BackendError> {
        // One writer: the state lock is held from reading the current state to swapping in the new one.
        let mut state = self.state()?;
        if plan.operations.iter().all(is_entry_operation) {
            return self.apply_entries_in_place(&mut state, plan);
        }
        let mut change = Change::new(&state);
        for op in &plan.operations {
            change.apply(op)?;
        }
        let alias_defs: Vec<&Alias> = change.next.aliases.iter().filter(|a| change.aliases.contains(&a.name)).collect();
        let write = LabWrite {
            rules: change.rules_changed.then_some(change.next.rules.as_slice()),
            aliases: alias_defs,
            put_entries: change.put.clone(),
            remove_entries: change.remove.clone(),
        };
        self.store.lab_write(&self.name, &write).map_err(store_error)?;
        *state = change.next;
        self.mark_current()?;
        Ok(change.applied)
    }

    async fn alias_entries(&self, alias: &str, values: &[String]) -> Result<Option<Vec<AliasEntry>>, BackendError> {
        let state = self.state()?;
        Ok(state.aliases.iter().find(|a| a.name == alias).map(|a| a.entries_among(values)))
    }

    /// The lab decides packets in `simulate_packet` but carries no traffic, so its log is empty.
    async fn firewall_log(&self, _limit: usize) -> Result<Vec<String>, BackendError> {
        Ok(Vec::new())
    }

    async fn system_status(&self) -> Result<SystemStatus, BackendError> {
        let sample = self.host.sample().await;
        let state = self.state()?;
        let now = Utc::now();
        let live_entries: usize =
            state.aliases.iter().map(|a| a.entries.iter().filter(|e| e.is_live(now)).count()).sum();
        let overdue: usize = state.aliases.iter().map(|a| a.entries.len()).sum::<usize>() - live_entries;
        let store_ok = self.store.meta_get("schema_version");
        Ok(SystemStatus {
            cpu_usage: sample.cpu_usage,
            memory_usage: sample.memory_usage,
            uptime: sample.uptime_seconds,
            uptime_human: portcullis_core::duration::format_span(chrono::TimeDelta::seconds(
                sample.uptime_seconds as i64,
            )),
            version: format!("portcullis-lab {}", env!("CARGO_PKG_VERSION")),
            platform: "Portcullis lab firewall (pfSense semantics) on this host".into(),
            hostname: sample.hostname,
            health: vec![
                HealthCheck {
                    name: "store".into(),
                    ok: store_ok.is_ok(),
                    detail: match store_ok {
                        Ok(_) => "state database readable".into(),
                        Err(e) => e.to_string(),
                    },
                },
                HealthCheck {
                    name: "rules".into(),
                    ok: true,
                    detail: format!(
                        "{} rules ({} enabled) on {} interfaces",
                        state.rules.len(),
                        state.rules.iter().filter(|r| r.enabled).count(),
                        self.interfaces.len()
                    ),
                },
                HealthCheck {
                    name: "expiry".into(),
                    ok: overdue == 0,
                    detail: format!("{live_entries} live alias entries, {overdue} expired awaiting removal"),
                },
            ],
        })
    }
}

#[cfg(test)]
mod tests;
