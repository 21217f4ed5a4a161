//! The pfSense backend: Portcullis' [`Firewall`] over pfRest v2 (the pfSense-pkg-RESTAPI package).
//!
//! - **Identity**: a rule's id is its pfSense `tracker` (stable); pfRest's `id` is a list position that shifts, so
//!   it is resolved by tracker (rules) or name (aliases) right before every write.
//! - **Plans are applied whole**: one writer at a time per firewall (pfRest itself loses concurrent updates), each
//!   rule `before` checked against the device (`conflict` if it changed), alias entries edited in memory and written
//!   with ONE PATCH per alias, then one `POST /api/v2/firewall/apply` (`async: false`) confirmed by
//!   `GET /api/v2/firewall/apply`. A failure part-way undoes what was done, newest first, and reloads the filter, so
//!   the firewall ends before or after the plan, not between. A write whose outcome is unknown (timeout, dropped
//!   connection) is never repeated: the object is re-read and, if the write landed, undone too.
//! - **State kept on the device**: block entries carry their reason, expiry and creation time in the alias entry's
//!   `detail` text ([`detail`]), so they survive on pfSense itself. Only pause deadlines, which pfSense has no field
//!   for, live in the Portcullis store (`pfsense:{target}:pause:{tracker}`), tied to the rule's `updated_time` so a
//!   rule edited by hand since is not resumed by surprise.
//! - **DDoS protections** ([`protection`]): pfRest v2 has no field for pf's connection limits, so a protection's
//!   SYN proxy is `synproxy state` on the TCP pass rules of its interface and ports, its per-source bandwidth cap
//!   one limiter with a source mask named in those pass rules' `dnpipe`, and every other limit is reported
//!   unsupported. pfSense has no object for the protection itself: its definition, the statetypes and pipes it
//!   replaced and its limiter's name live in the store (`pfsense:{target}:protections`), and it is read back only
//!   while its rules and limiter still hold what Portcullis set. Its live side is pf's `virusprot` table.

mod apply;
mod cache;
pub mod detail;
pub mod devices;
pub mod mapping;
pub mod mirror;
pub mod protection;
mod status;
mod vpn;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use portcullis_core::firewall::{
    Applied, BackendError, BackendKind, ErrorCode, Firewall, InterfaceCounters, MirrorCounter, OverloadedSource,
    ProtectionLive, SystemStatus, TargetInfo, UnsupportedField, VpnKind, VpnStatus,
};
use portcullis_core::freshness::StateRead;
use portcullis_core::model::{AliasEntry, Rule, RuleSet, Timestamp};
use portcullis_core::plan::ChangePlan;
use portcullis_core::protection::Protection;
use portcullis_pfrest::types::{FirewallAlias, FirewallRule};
use portcullis_pfrest::{ClientConfig, PfRestClient};
use portcullis_store::Store;
use serde::{Deserialize, Serialize};

use crate::cache::StateCache;
use crate::mapping::InterfaceMap;

pub use crate::cache::CacheAges;

pub use portcullis_pfrest;

/// Tuning of the apply step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfSenseOptions {
    /// How often to ask `GET /api/v2/firewall/apply` whether the reload finished.
    pub apply_poll_attempts: u32,
    pub apply_poll_interval: Duration,
    /// Least time between two rule creations. pfRest stamps a new rule's `tracker` with the creation's unix time
    /// (`time()`), so two rules created within the same second share a tracker, and Portcullis could no longer
    /// tell them apart; one second apart they differ.
    pub tracker_spacing: Duration,
    /// How long recent reads are used ([`CacheAges`]).
    pub cache: CacheAges,
    /// The most prefixes one geo list (one country and family) may hold here; longer ones are refused
    /// (`unsupported`) before anything is written.
    pub geo_alias_max_entries: usize,
    /// Whether mirrors may be written as pf rules through pfRest's root shell (`diagnostics/command_prompt`;
    /// [`mirror`]). Off by default: with it, whoever may mirror on this target runs root commands built by
    /// Portcullis, so only admins may.
    pub allow_shell: bool,
    /// The host WireGuard clients reach the firewall at, in the client configurations Portcullis returns;
    /// `None`: the host Portcullis reaches pfRest at.
    pub vpn_endpoint_host: Option<String>,
}

/// pfRest validates each entry of an alias against every alias, so a write costs the square of its length; 10,000
/// takes China's IPv4 list (8,157) and not Russia's (12,851) or the United States' (155,487).
pub const DEFAULT_GEO_ALIAS_MAX_ENTRIES: usize = 10_000;

impl Default for PfSenseOptions {
    fn default() -> Self {
        PfSenseOptions {
            apply_poll_attempts: 20,
            apply_poll_interval: Duration::from_millis(250),
            tracker_spacing: Duration::from_millis(1050),
            cache: CacheAges::default(),
            geo_alias_max_entries: DEFAULT_GEO_ALIAS_MAX_ENTRIES,
            allow_shell: false,
            vpn_endpoint_host: None,
        }
    }
}

/// A pfSense firewall reached through pfRest.
pub struct PfSenseFirewall {
    name: String,
    client: Arc<PfRestClient>,
    store: Arc<Store>,
    /// One writer per firewall: held for a whole `apply`.
    writer: tokio::sync::Mutex<()>,
    options: PfSenseOptions,
    cache: StateCache,
}

impl std::fmt::Debug for PfSenseFirewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PfSenseFirewall")
            .field("name", &self.name)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// What the store keeps for a paused rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PauseRecord {
    pub until: String,
    /// The rule's `updated_time` right after Portcullis disabled it; a different value means someone edited the
    /// rule since, and the pause no longer applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<i64>,
}

pub(crate) fn store_error(e: portcullis_store::StoreError) -> BackendError {
    BackendError::new(ErrorCode::InternalError, format!("store: {e}"))
        .with_hint("check that the data directory is writable and not full")
}

impl PfSenseFirewall {
    /// A pfSense target named `name`. No request is sent until the first call.
    pub fn new(name: &str, client_config: ClientConfig, store: Arc<Store>) -> Result<Self, BackendError> {
        let client = PfRestClient::new(client_config)?;
        Ok(PfSenseFirewall {
            name: name.to_string(),
            client: Arc::new(client),
            store,
            writer: tokio::sync::Mutex::new(()),
            options: PfSenseOptions::default(),
            cache: StateCache::new(CacheAges::default()),
        })
    }

    pub fn with_options(mut self, options: PfSenseOptions) -> Self {
        self.cache = StateCache::new(options.cache);
        self.options = options;
        self
    }

    /// The pfRest client (shared).
    pub fn client(&self) -> &Arc<PfRestClient> {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pause deadline Portcullis recorded for this device rule, if it still applies.
    pub(crate) fn paused_until(&self, rule: &FirewallRule) -> Result<Option<Timestamp>, BackendError> {
        let Some(tracker) = rule.tracker else { return Ok(None) };
        if !rule.disabled {
            return Ok(None);
        }
        let key = mapping::pause_key(&self.name, &tracker.to_string());
        let Some(raw) = self.store.meta_get(&key).map_err(store_error)? else { return Ok(None) };
        let Ok(record) = serde_json::from_str::<PauseRecord>(&raw) else { return Ok(None) };
        if record.updated_time.is_some() && rule.updated_time.is_some() && record.updated_time != rule.updated_time {
            return Ok(None);
        }
        Ok(DateTime::parse_from_rfc3339(&record.until).ok().map(|t| t.with_timezone(&Utc)))
    }

    pub(crate) fn pause_record(until: Timestamp, updated_time: Option<i64>) -> String {
        let record = PauseRecord { until: until.to_rfc3339_opts(SecondsFormat::AutoSi, true), updated_time };
        serde_json::to_string(&record).unwrap_or_default()
    }

    /// A device rule in the model.
    pub(crate) fn model_rule(&self, raw: &FirewallRule, ifaces: &InterfaceMap) -> Result<Rule, BackendError> {
        let paused = self.paused_until(raw)?;
        mapping::rule_from_device(raw, ifaces, paused).map_err(|e| {
            mapping::unexpected(format!(
                "GET /api/v2/firewall/rules: rule {} holds a value Portcullis cannot read: {e}",
                mapping::rule_id(raw)
            ))
        })
    }

    /// The interfaces' configuration and status, from a recent read where there is one.
    pub(crate) async fn interfaces(&self) -> Result<cache::Interfaces, BackendError> {
        if let Some(recent) = self.cache.interfaces() {
            return Ok(recent);
        }
        let c = &self.client;
        let read = tokio::try_join!(c.interfaces(), c.interface_stats())?;
        self.cache.put_interfaces(read.clone());
        Ok(read)
    }

    /// The rules `read` asks for read now, the others from a recent read.
    async fn rules_for(&self, read: &StateRead) -> Result<Vec<FirewallRule>, BackendError> {
        let trackers: Option<Vec<i64>> = read.rules.iter().map(|id| id.as_str().parse().ok()).collect();
        if !read.all_rules
            && let Some(trackers) = trackers
            && self.cache.rules_are_recent()
        {
            let mut found = Vec::with_capacity(trackers.len());
            for tracker in trackers {
                found.push((tracker, self.client.rule_by_tracker(tracker).await?));
            }
            if let Some(rules) = self.cache.put_rules_read(found) {
                return Ok(rules);
            }
        }
        let rules = self.client.rules().await?;
        self.cache.put_rules(rules.clone());
        Ok(rules)
    }

    /// The aliases `read` asks for read now, the others from a recent read.
    async fn aliases_for(&self, read: &StateRead) -> Result<Vec<FirewallAlias>, BackendError> {
        if !read.all_aliases && self.cache.aliases_are_recent() {
            let mut found = Vec::with_capacity(read.aliases.len());
            for name in &read.aliases {
                found.push((name.clone(), self.client.alias_by_name(name).await?));
            }
            if let Some(aliases) = self.cache.put_aliases_read(found) {
                return Ok(aliases);
            }
        }
        let aliases = self.client.aliases().await?;
        self.cache.put_aliases(aliases.clone());
        Ok(aliases)
    }

    async fn read_state(&self, read: &StateRead) -> Result<RuleSet, BackendError> {
        let records = protection::load(&self.store, &self.name)?;
        // Limiters are read (now: they are few, and never cached) only when a protection has one.
        let limiters =
            async { if protection::needs_limiters(&records) { self.client.limiters().await } else { Ok(Vec::new()) } };
        let ((config, stats), rules, aliases, limiters) =
            tokio::try_join!(self.interfaces(), self.rules_for(read), self.aliases_for(read), async {
                limiters.await.map_err(BackendError::from)
            })?;
        let ifaces = InterfaceMap::new(&config);
        // Judged on the rules as read (with their raw statetype and dnpipe, which the model's rules do not carry)
        // and the limiters as read.
        let protections = protection::in_force(&records, &rules, &limiters);
        let rules = rules.iter().map(|r| self.model_rule(r, &ifaces)).collect::<Result<Vec<_>, _>>()?;
        let aliases = aliases
            .iter()
            .filter_map(|a| {
                let alias = mapping::alias_from_device(a);
                if alias.is_none() {
                    tracing::debug!(alias = %a.name, kind = %a.type_, "skipping an alias of a type the model has no kind for");
                }
                alias
            })
            .collect();
        let interfaces = mapping::interfaces(&config, &stats);
        let mirrors = self.held_mirrors(&interfaces).await?;
        // Read on a whole read (the reconciler's, which expires users whatever Portcullis' data holds) and where
        // Portcullis may have made VPN users (the store's list of names is a superset); not on a target without.
        let whole = read.all_rules && read.all_aliases;
        let vpn_accounts = if whole || !vpn::known_users(&self.store, &self.name)?.is_empty() {
            vpn::accounts(&self.client).await?
        } else {
            Vec::new()
        };
        Ok(RuleSet { interfaces, rules, aliases, protections, mirrors, vpn_accounts })
    }

    /// Runs one command through pfRest's shell; its output, or an error with what it printed.
    pub(crate) async fn shell(&self, command: &str) -> Result<String, BackendError> {
        let ran = self.client.command_prompt(command).await?;
        match ran.result_code {
            Some(0) => Ok(ran.output),
            code => Err(BackendError::new(
                ErrorCode::ApplyFailed,
                format!(
                    "the firewall's shell answered {} to `{}`: {}",
                    code.map_or_else(|| "no exit status".to_string(), |c| format!("exit status {c}")),
                    command.chars().take(120).collect::<String>(),
                    ran.output.trim()
                ),
            )
            .with_hint("check that pfRest's user may use diagnostics/command_prompt and that pfctl runs")),
        }
    }

    /// The recorded mirrors whose rules the anchor holds now (none without `allow_shell`, or without records:
    /// then no shell command is run).
    async fn held_mirrors(
        &self,
        interfaces: &[portcullis_core::model::Interface],
    ) -> Result<Vec<portcullis_core::mirror::Mirror>, BackendError> {
        if !self.options.allow_shell {
            return Ok(Vec::new());
        }
        let records = mirror::load(&self.store, &self.name)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let labels = mirror::labels_in(&self.shell(&mirror::list_command(false)).await?);
        Ok(records.into_iter().filter(|m| mirror::held(m, &labels, interfaces)).collect())
    }

    /// Loads the anchor with exactly `rules` and checks that `pfctl -sr` shows every label of `wanted`.
    pub(crate) async fn load_anchor(
        &self,
        rules: &[String],
        wanted: &[portcullis_core::mirror::Mirror],
        interfaces: &[portcullis_core::model::Interface],
    ) -> Result<(), BackendError> {
        for command in mirror::load_commands(rules)? {
            self.shell(&command).await?;
        }
        let labels = mirror::labels_in(&self.shell(&mirror::list_command(false)).await?);
        if let Some(missing) = wanted.iter().find(|m| !mirror::held(m, &labels, interfaces)) {
            return Err(BackendError::new(
                ErrorCode::VerificationFailed,
                format!("pfctl -a {} -sr does not show mirror {} after the load", mirror::ANCHOR, missing.mirror_id),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Firewall for PfSenseFirewall {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            name: self.name.clone(),
            kind: BackendKind::Pfsense,
            description: format!("pfSense at {} (pfRest v2)", self.client.host()),
        }
    }

    /// From the status endpoint (pfRest reports no per-rule counters).
    async fn interface_counters(&self) -> Result<Option<Vec<InterfaceCounters>>, BackendError> {
        Ok(Some(mapping::interface_counters(&self.client.interface_stats().await?)))
    }

    /// Rules and aliases read now; interfaces from a recent read (they change rarely; see `cache.rs`).
    async fn snapshot(&self) -> Result<RuleSet, BackendError> {
        self.read_state(&StateRead::everything()).await
    }

    async fn state(&self, read: &StateRead) -> Result<RuleSet, BackendError> {
        self.read_state(read).await
    }

    fn keeps_recent_state(&self) -> bool {
        true
    }

    /// One alias read, not a snapshot (the reconciler's expiries).
    async fn alias_entries(&self, alias: &str, values: &[String]) -> Result<Option<Vec<AliasEntry>>, BackendError> {
        let found = self.client.alias_by_name(alias).await?;
        self.cache.put_aliases_read(vec![(alias.to_string(), found.clone())]);
        Ok(found.as_ref().and_then(mapping::alias_from_device).map(|a| a.entries_among(values)))
    }

    async fn apply(&self, plan: &ChangePlan) -> Result<Applied, BackendError> {
        apply::apply(self, plan).await
    }

    async fn system_status(&self) -> Result<SystemStatus, BackendError> {
        status::system_status(self).await
    }

    async fn check(&self, plan: &ChangePlan) -> Result<(), BackendError> {
        apply::check(self, plan).await
    }

    async fn vpn_status(&self, kind: Option<VpnKind>) -> Result<VpnStatus, BackendError> {
        status::vpn_status(&self.client, kind).await
    }

    async fn vpn_servers(&self) -> Result<Vec<portcullis_core::vpn::VpnServer>, BackendError> {
        vpn::servers(&self.client).await
    }

    async fn vpn_accounts(&self) -> Result<Vec<portcullis_core::vpn::VpnAccount>, BackendError> {
        vpn::accounts(&self.client).await
    }

    async fn wireguard_server_side(
        &self,
        server: &str,
    ) -> Result<portcullis_core::vpn::WireguardServerSide, BackendError> {
        vpn::wireguard_server_side(&self.client, server, self.options.vpn_endpoint_host.as_deref()).await
    }

    async fn firewall_log(&self, limit: usize) -> Result<Vec<String>, BackendError> {
        Ok(self.client.firewall_log(limit).await?)
    }

    fn pages_firewall_log(&self) -> bool {
        true
    }

    async fn firewall_log_page(&self, skip: usize, limit: usize) -> Result<Vec<String>, BackendError> {
        Ok(self.client.firewall_log_page(skip, limit).await?)
    }

    /// Everything but the SYN proxy and the per-source bandwidth cap: pfRest v2 has no field for pf's connection
    /// limits.
    fn unsupported_protection_fields(&self, protection: &Protection) -> Vec<UnsupportedField> {
        protection::unsupported_fields(protection)
    }

    fn unsupported_mirror(&self, ask: &portcullis_core::mirror::MirrorAsk) -> Option<UnsupportedField> {
        if self.options.allow_shell { mirror::unsupported_with_shell(ask) } else { Some(mirror::unsupported()) }
    }

    /// The ARP table and the DHCP server's leases.
    async fn device_sightings(&self) -> Result<Option<Vec<portcullis_core::device::Sighting>>, BackendError> {
        let ((config, _), arp, leases) = tokio::try_join!(
            self.interfaces(),
            async { self.client.arp_table().await.map_err(BackendError::from) },
            async { self.client.dhcp_leases().await.map_err(BackendError::from) }
        )?;
        let ifaces = InterfaceMap::new(&config);
        let now = Utc::now();
        let mut seen = devices::from_arp(&arp, &ifaces, now);
        seen.extend(devices::from_leases(&leases.unwrap_or_default(), &ifaces, now));
        Ok(Some(seen))
    }

    /// What pfSense offers per address: the byte counters of pf's current states (pfRest has no per-host
    /// accounting), for the addresses of the inside networks.
    async fn address_counters(&self) -> Result<Option<portcullis_core::firewall::AddressCounters>, BackendError> {
        let ((config, stats), states) = tokio::try_join!(self.interfaces(), async {
            self.client.firewall_states().await.map_err(BackendError::from)
        })?;
        let inside: Vec<ipnet::IpNet> = portcullis_core::device::inside_networks(&mapping::interfaces(&config, &stats))
            .into_iter()
            .map(|(_, net)| net)
            .collect();
        Ok(Some(portcullis_core::firewall::AddressCounters {
            rows: devices::from_states(&states, &inside),
            cumulative: false,
            started_now: false,
            source: "pf's current states (GET /api/v2/firewall/states)".into(),
            misses: Some(
                "connections already closed, and states pfSense has let expire: the figure is what open \
                 connections carried, not the timeframe's traffic"
                    .into(),
            ),
        }))
    }

    /// pfSense's filterdns keeps the FQDN entries of host aliases resolved (at their TTL) in the pf tables.
    fn resolves_names(&self) -> bool {
        true
    }

    fn mirror_needs_admin(&self) -> Option<String> {
        self.options
            .allow_shell
            .then(|| "its mirrors are pf rules loaded through pfSense's root shell (allow_shell: true)".to_string())
    }

    /// pf's counters of each mirror's rules (`pfctl -vsr`). pf counts per loaded rule, so a mirror's count starts
    /// again whenever the anchor is written (any mirror of this target started or stopped).
    async fn mirror_counters(&self, state: &RuleSet) -> Result<Vec<MirrorCounter>, BackendError> {
        if state.mirrors.is_empty() || !self.options.allow_shell {
            return Ok(Vec::new());
        }
        let counted = mirror::counters_in(&self.shell(&mirror::list_command(true)).await?);
        Ok(state
            .mirrors
            .iter()
            .map(|m| {
                let (packets, bytes) = counted.get(m.mirror_id.hex()).copied().unwrap_or_default();
                MirrorCounter { mirror_id: m.mirror_id.to_string(), packets, bytes }
            })
            .collect())
    }

    /// The anchor's rules as the plan leaves them: Portcullis' block copies, then every mirror's rules.
    fn preview_statements(&self, plan: &ChangePlan, state: &RuleSet) -> Result<Vec<String>, BackendError> {
        if !self.options.allow_shell || !plan.operations.iter().any(portcullis_core::plan::Operation::is_mirror) {
            return Ok(Vec::new());
        }
        mirror::anchor_rules(&portcullis_core::mirror::mirrors_after(&state.mirrors, &plan.operations), state)
    }

    /// Loads the anchor again when it lost recorded mirrors that have not expired (pfSense empties anchors on a
    /// reboot), and forgets expired records it no longer holds.
    async fn restore_lost(&self, state: &RuleSet) -> Result<Vec<String>, BackendError> {
        if !self.options.allow_shell {
            return Ok(Vec::new());
        }
        let _writer = self.writer.lock().await;
        let records = mirror::load(&self.store, &self.name)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let labels = mirror::labels_in(&self.shell(&mirror::list_command(false)).await?);
        let now = Utc::now();
        let (held, lost): (Vec<_>, Vec<_>) =
            records.iter().cloned().partition(|m| mirror::held(m, &labels, &state.interfaces));
        let (lost, gone): (Vec<_>, Vec<_>) = lost.into_iter().partition(|m| m.expires_at > now);
        if lost.is_empty() && gone.is_empty() {
            return Ok(Vec::new());
        }
        let keep: Vec<_> = held.into_iter().chain(lost.iter().cloned()).collect();
        if !lost.is_empty() {
            self.load_anchor(&mirror::anchor_rules(&keep, state)?, &keep, &state.interfaces).await?;
        }
        self.store.meta_set(&mirror::mirrors_key(&self.name), &mirror::encode(&keep)).map_err(store_error)?;
        Ok(lost.iter().map(|m| format!("mirror {}", m.mirror_id)).collect())
    }

    /// pf's `virusprot` table, read now: the sources pf blocked for exceeding a rule's "Max. src. conn. Rate".
    /// Portcullis sets no such rate on pfSense (it cannot), so what is there comes from rules edited in the GUI;
    /// the table is one for the whole firewall, and each protection shows all of it.
    async fn protection_live(&self, state: &RuleSet) -> Result<Vec<ProtectionLive>, BackendError> {
        if state.protections.is_empty() {
            return Ok(Vec::new());
        }
        let overloaded: Vec<OverloadedSource> = self
            .client
            .pf_table(VIRUSPROT)
            .await?
            .map(|t| t.entries)
            .unwrap_or_default()
            .into_iter()
            .map(|source| OverloadedSource { source, expires_at: None })
            .collect();
        Ok(state
            .protections
            .iter()
            .map(|p| ProtectionLive {
                protection_id: p.protection_id.clone(),
                live: true,
                overloaded: overloaded.clone(),
                dropped: Vec::new(),
                host_checks: Vec::new(),
                note: Some(VIRUSPROT_NOTE.into()),
            })
            .collect())
    }
}

/// pf's overload table on pfSense (`overload <virusprot> flush global`, blocked by `block in quick from
/// <virusprot>`).
const VIRUSPROT: &str = "virusprot";
const VIRUSPROT_NOTE: &str = "pf's virusprot table is shared by every rule with overload; pfSense's cron expires its \
     entries after an hour (expiretable -t 3600)";
