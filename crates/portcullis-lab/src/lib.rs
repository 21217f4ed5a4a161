//! The embedded lab firewall: pfSense semantics (interfaces, ordered first-match rules, aliases, managed block
//! lists), persisted in the store so that a restart keeps every change. It is the default target, and the
//! same evaluator it uses decides `simulate_packet` for every backend.

mod seed;
pub mod traffic;

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;
use portcullis_core::firewall::{
    Applied, BackendError, BackendKind, ErrorCode, Firewall, HealthCheck, SystemStatus, TargetInfo, UnsupportedField,
};
use portcullis_core::model::{AliasEntry, Interface, RuleSet};
use portcullis_core::plan::{ChangePlan, Entries, Ids, carry_out};
use portcullis_store::{LabState, LabWrite, Store};

pub use seed::{LabInterface, default_interfaces, lab_interfaces};

/// The lab firewall for one target name.
pub struct LabFirewall {
    name: String,
    store: Arc<Store>,
    interfaces: Vec<Interface>,
    /// The in-memory copy of the stored state (with `interfaces`); writes go to the store first, then here.
    state: Mutex<RuleSet>,
    /// The store's lab version the in-memory copy was read at; another process's write moves it.
    loaded_version: Mutex<i64>,
    host: portcullis_host::HostProbe,
}

/// The lab's rule set: the stored rules and aliases on the configured interfaces.
fn with_interfaces(interfaces: &[Interface], stored: LabState) -> RuleSet {
    RuleSet {
        interfaces: interfaces.to_vec(),
        rules: stored.rules,
        aliases: stored.aliases,
        protections: stored.protections,
        mirrors: stored.mirrors,
        // The lab has no VPN server.
        vpn_accounts: Vec::new(),
    }
}

fn store_error(e: portcullis_store::StoreError) -> BackendError {
    BackendError::new(ErrorCode::InternalError, format!("lab store: {e}"))
        .with_hint("check that the data directory is writable and not full")
}

impl LabFirewall {
    /// Opens the lab target `name`, creating a fresh-install rule set the first time.
    pub fn open(name: &str, store: Arc<Store>, interfaces: Vec<Interface>) -> Result<Self, BackendError> {
        let stored = match store.lab_load(name).map_err(store_error)? {
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
        let state = with_interfaces(&interfaces, stored);
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
    fn state(&self) -> Result<MutexGuard<'_, RuleSet>, BackendError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut loaded = self.loaded_version.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.store.lab_version(&self.name).map_err(store_error)?;
        if current != *loaded {
            if let Some(fresh) = self.store.lab_load(&self.name).map_err(store_error)? {
                *state = with_interfaces(&self.interfaces, fresh);
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
        Ok(state.clone())
    }

    async fn apply(&self, plan: &ChangePlan) -> Result<Applied, BackendError> {
        if plan.operations.iter().any(portcullis_core::plan::Operation::is_vpn_account) {
            return Err(BackendError::new(ErrorCode::Unsupported, "the lab firewall has no VPN server")
                .with_hint("VPN users are made on an nftables target with a WireGuard interface configured"));
        }
        // One writer: the state lock is held from reading the current state to committing the new one.
        let mut state = self.state()?;
        // Entries are only recorded, and written into the lists in place once the store has committed: a block
        // list of a million entries is not copied for every change (each expiry, say), and an error anywhere
        // leaves the state as it was.
        let carried = carry_out(&state, plan, Ids::Tracker(Utc::now()), Entries::Record)?;
        let write = LabWrite {
            rules: carried.rules_changed().then_some(carried.state.rules.as_slice()),
            aliases: carried.new_aliases.iter().filter_map(|name| carried.state.alias(name)).collect(),
            put_entries: carried.put.clone(),
            remove_entries: carried.removed.iter().map(|(alias, e)| (*alias, e.value.as_str())).collect(),
            delete_aliases: carried.deleted_aliases.iter().map(String::as_str).collect(),
            protections: (carried.state.protections != state.protections)
                .then_some(carried.state.protections.as_slice()),
            mirrors: (carried.state.mirrors != state.mirrors).then_some(carried.state.mirrors.as_slice()),
        };
        self.store.lab_write(&self.name, &write).map_err(store_error)?;
        state.aliases.retain(|a| !carried.deleted_aliases.contains(&a.name));
        // New aliases first: the plan's entries may go into them.
        for name in &carried.new_aliases {
            if let Some(alias) = carried.state.alias(name) {
                state.aliases.push(alias.clone());
            }
        }
        carried.apply_entries(&mut state.aliases);
        if carried.rules_changed() {
            state.rules = carried.state.rules;
        }
        state.protections = carried.state.protections;
        state.mirrors = carried.state.mirrors;
        self.mark_current()?;
        Ok(carried.applied)
    }

    /// The lab keeps mirrors as state (and `simulate_packet` says what they copy); it carries no traffic, so
    /// nothing is sent anywhere.
    fn unsupported_mirror(&self, _mirror: &portcullis_core::mirror::MirrorAsk) -> Option<UnsupportedField> {
        None
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
