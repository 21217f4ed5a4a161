//! A stateful emulator of pfRest v2 (pfSense-pkg-RESTAPI), for integration tests of pfSense clients.
//!
//! It listens on loopback only and behaves like the contract in `shared/pfrest/CONTRACT.md` (and the pfRest
//! v2.10 source it was read from): the response envelope, KeyAuth/BasicAuth/JWTAuth, ids that are list positions,
//! stable rule trackers, writes that only take effect after `POST /api/v2/firewall/apply`, dirty subsystems,
//! async/sync applies, queries/sorting/paging, the firewall log's paging semantics, nginx HTML 404s for unknown
//! paths, and pfRest's unprotected read-modify-write of config.xml (concurrent writes lose updates).
//!
//! Every request is also linted against the embedded schema subset (`schema/subset.json`, extracted from the pfRest
//! native schema by `scripts/extract-schema.py`); problems are answered the way pfRest answers them (unknown fields
//! are ignored, etc.) *and* recorded in [`Emulator::schema_violations`] so tests can fail on them.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use portcullis_pfrest_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::with_api_key("secret")).await?;
//! let base = emu.base_url(); // http://127.0.0.1:PORT
//! // ... drive a client against `base` ...
//! assert!(emu.schema_violations().is_empty());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

mod faults;
mod model;
mod query;
mod schema;
mod server;
mod shell;
mod state;
mod status;
mod util;
mod vpn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;

pub use crate::shell::AnchorRule;

pub use faults::{DEFAULT_APPLY_DELAY, DEFAULT_WRITE_LATENCY, EchoStyle, Faults, FaultsPatch, FaultsSnapshot};
pub use model::InterfaceRepresentation;

use state::Inner;

/// pfRest authentication methods (REST API setting `auth_methods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMethod {
    /// `Authorization: Basic base64(user:pass)`.
    BasicAuth,
    /// `X-API-Key: <key>`.
    KeyAuth,
    /// `Authorization: Bearer <jwt>` (token from `POST /api/v2/auth/jwt` with Basic credentials).
    #[allow(clippy::upper_case_acronyms)]
    JWTAuth,
}

/// Emulator settings. `EmulatorConfig::default()` has no credentials; use [`EmulatorConfig::with_api_key`] or fill
/// `api_keys` / `users`.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Keys accepted in `X-API-Key` (full privileges).
    pub api_keys: Vec<String>,
    /// Keys of a user that only holds the `...-get` privileges: non-GET requests get 403 `AUTH_AUTHORIZATION_FAILED`.
    pub read_only_api_keys: Vec<String>,
    /// Local users for Basic auth (and for obtaining JWTs), as (username, password). Full privileges.
    pub users: Vec<(String, String)>,
    /// Reported pfRest version, e.g. `v2.10.0`. Versions before `v2.8.0` switch the emulator to the old behaviour
    /// where it matters to clients: no `dry_run` (the request is executed!) and the old log `limit` semantics.
    pub version: String,
    /// Enabled auth methods, in the order pfRest tries them (first method whose credentials are present wins).
    /// A fresh pfRest install has only `BasicAuth`; the emulator enables all three by default.
    pub auth_methods: Vec<AuthMethod>,
    /// REST API setting `represent_interfaces_as` (default `descr`: `WAN`, `LAN`, `OPT1`).
    pub represent_interfaces_as: InterfaceRepresentation,
    /// REST API setting `hateoas` (adds `_links`; default off like pfRest).
    pub hateoas: bool,
    /// JWT lifetime (REST API setting `jwt_exp`, default 3600 s).
    pub jwt_exp: Duration,
    /// Start with pfSense's two factory LAN pass rules (trackers 100000101/100000102). Default true.
    pub seed_default_rules: bool,
    /// Bump trackers so rules created within the same second still get distinct trackers (default true). pfRest
    /// itself uses the creation's unix time (`time()`), so two rules created in the same second share a tracker.
    pub unique_trackers: bool,
    /// pfSense-pkg-WireGuard installed (WireGuard status endpoints answer; otherwise 404
    /// `MODEL_MISSING_REQUIRED_PACKAGE`). Default true.
    pub wireguard_installed: bool,
    /// pfSense-pkg-openvpn-client-export installed (`POST /api/v2/vpn/openvpn/client_export` answers; otherwise
    /// 404 `MODEL_MISSING_REQUIRED_PACKAGE`). Default true.
    pub client_export_installed: bool,
    /// Refuse deleting an alias that a rule references (409 `MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED`). Default
    /// false: pfRest v2.10 does NOT check this (FirewallAlias.name has no `referenced_by`); the rule is then
    /// silently skipped at the next filter reload (see [`AppliedRuleset::notices`]).
    pub refuse_referenced_alias_delete: bool,
    /// Refuse deleting a limiter that a rule's `dnpipe` / `pdnpipe` names (409
    /// `MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED`, naming the rules). Default true, although pfRest v2.10 does not
    /// check it either (`FirewallRule.dnpipe` is a plain string field, and `TrafficShaperLimiter::_delete()` only
    /// runs `dnctl pipe delete`): the GUI refuses it, and a rule left naming a missing pipe fails every later PATCH
    /// of that rule (`FIREWALL_RULE_DNPIPE_NOT_FOUND`), so a client must unhook the rules first.
    pub refuse_referenced_limiter_delete: bool,
    /// Initial firewall log lines (default: the 63 real filterlog samples in `fixtures/`).
    pub firewall_log: Option<Vec<String>>,
    /// Emulate lost updates of concurrent unserialised writes (default true, like the real device).
    pub lost_updates: bool,
    /// Time between a write reading the config and writing it back (default 20 ms).
    pub write_latency: Duration,
    /// Duration of a filter reload (default 150 ms).
    pub apply_delay: Duration,
    /// Port on 127.0.0.1 (0 = pick a free one).
    pub port: u16,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            api_keys: vec![],
            read_only_api_keys: vec![],
            users: vec![],
            version: "v2.10.0".to_string(),
            auth_methods: vec![AuthMethod::BasicAuth, AuthMethod::KeyAuth, AuthMethod::JWTAuth],
            represent_interfaces_as: InterfaceRepresentation::Descr,
            hateoas: false,
            jwt_exp: Duration::from_secs(3600),
            seed_default_rules: true,
            unique_trackers: true,
            wireguard_installed: true,
            client_export_installed: true,
            refuse_referenced_alias_delete: false,
            refuse_referenced_limiter_delete: true,
            firewall_log: None,
            lost_updates: true,
            write_latency: DEFAULT_WRITE_LATENCY,
            apply_delay: DEFAULT_APPLY_DELAY,
            port: 0,
        }
    }
}

impl EmulatorConfig {
    /// Defaults plus one API key.
    pub fn with_api_key(key: impl Into<String>) -> Self {
        EmulatorConfig { api_keys: vec![key.into()], ..Default::default() }
    }
}

/// One request as received (for counting API calls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Raw body (lossy UTF-8).
    pub body: String,
    /// HTTP status sent; 0 when the connection was dropped without a response.
    pub status: u16,
    /// The fault that hit this request, if any (`drop`, `fail`, `garbage`, `config_locked`, ...).
    pub fault: Option<String>,
}

impl LoggedRequest {
    /// The body parsed as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// What the filter actually enforces: the config as of the last completed filter reload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedRuleset {
    /// Number of completed filter reloads since start (0 = the boot-time load).
    pub generation: u64,
    /// Unix time of that reload.
    pub applied_at: i64,
    /// Enforced rules in evaluation order (enabled rules whose aliases resolve), representation form without `id`.
    pub rules: Vec<Value>,
    /// Alias tables loaded by that reload.
    pub aliases: Vec<Value>,
    /// Limiters (dummynet pipes) loaded by that reload.
    #[serde(default)]
    pub limiters: Vec<Value>,
    /// Filter reload notices (e.g. a rule skipped because an alias it uses no longer exists).
    pub notices: Vec<String>,
}

/// A copy of the emulator's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateView {
    /// Configured rules in order; `id` is the position, `tracker` the stable id.
    pub rules: Vec<Value>,
    /// Configured aliases in order, with `id`.
    pub aliases: Vec<Value>,
    /// Configured traffic shaper limiters in order, with `id` (a list position that shifts on delete).
    #[serde(default)]
    pub limiters: Vec<Value>,
    /// Dirty firewall subsystems (what `GET /api/v2/firewall/apply` reports); rule edits never appear here.
    pub pending_subsystems: Vec<String>,
    /// The running ruleset.
    pub applied: AppliedRuleset,
    /// Filter reloads queued or running.
    pub applies_in_progress: usize,
    /// VPN users' objects as pfRest shows them (sensitive fields left out), by collection: `users`,
    /// `certificates`, `authorities`, `openvpn_servers`, `csos`, `wireguard_tunnels`, `wireguard_peers`.
    #[serde(default)]
    pub vpn: std::collections::BTreeMap<String, Vec<Value>>,
}

impl StateView {
    /// The configured rule with this tracker.
    pub fn rule_by_tracker(&self, tracker: i64) -> Option<&Value> {
        self.rules.iter().find(|r| r["tracker"].as_i64() == Some(tracker))
    }
    /// Trackers of the configured rules, in order.
    pub fn rule_trackers(&self) -> Vec<i64> {
        self.rules.iter().filter_map(|r| r["tracker"].as_i64()).collect()
    }
    /// Trackers of the enforced rules, in order.
    pub fn applied_trackers(&self) -> Vec<i64> {
        self.applied.rules.iter().filter_map(|r| r["tracker"].as_i64()).collect()
    }
    /// The configured alias with this name.
    pub fn alias(&self, name: &str) -> Option<&Value> {
        self.aliases.iter().find(|a| a["name"] == name)
    }
    /// The enforced alias table with this name.
    pub fn applied_alias(&self, name: &str) -> Option<&Value> {
        self.applied.aliases.iter().find(|a| a["name"] == name)
    }
    /// The configured limiter with this name.
    pub fn limiter(&self, name: &str) -> Option<&Value> {
        self.limiters.iter().find(|l| l["name"] == name)
    }
    /// The VPN objects of one collection (see [`StateView::vpn`]).
    pub fn vpn_objects(&self, collection: &str) -> &[Value] {
        self.vpn.get(collection).map(Vec::as_slice).unwrap_or_default()
    }
    /// The limiter with this name as the last filter reload loaded it.
    pub fn applied_limiter(&self, name: &str) -> Option<&Value> {
        self.applied.limiters.iter().find(|l| l["name"] == name)
    }
}

/// A running emulator. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Emulator {
    /// Bind 127.0.0.1:`config.port` (0 = any free port) and serve in a background task.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(config));
        let task = tokio::spawn(server::serve(Arc::clone(&inner), listener));
        Ok(Emulator { inner, addr, task: Arc::new(std::sync::Mutex::new(Some(task))) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Fault switches.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// A copy of the current config, pending subsystems and running ruleset.
    pub fn state(&self) -> StateView {
        self.inner.state_view()
    }

    /// Every `/api` request received so far (control requests under `/__emulator` are not logged).
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.inner.requests()
    }

    /// How many requests each route (`METHOD /path`, without the query) received since the log was last cleared.
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, usize> {
        self.inner.request_counts()
    }

    /// Forget the request log.
    pub fn clear_request_log(&self) {
        self.inner.clear_requests();
    }

    /// Every request that did not match the schema (unknown fields, wrong types, bad enum values, missing required
    /// fields, control parameters that have no effect, ...), as `"METHOD /path: problem"`.
    pub fn schema_violations(&self) -> Vec<String> {
        self.inner.violations()
    }

    /// Forget recorded schema violations.
    pub fn clear_schema_violations(&self) {
        self.inner.clear_violations();
    }

    /// Append raw lines to the firewall log (`/api/v2/status/logs/firewall`).
    pub fn push_firewall_log_lines<I, S>(&self, lines: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner.push_log_lines(lines.into_iter().map(Into::into));
    }

    /// The entries of pf table `name` now (`GET /api/v2/diagnostics/table?id=NAME`); `None` when pf has no such
    /// table. The system tables (`virusprot`, `sshguard`, `snort2c`, `bogons`, ...) always exist; each host or
    /// network alias is a table from the filter reload after its creation.
    pub fn table(&self, name: &str) -> Option<Vec<String>> {
        self.inner.tables().remove(name)
    }

    /// Puts entries into pf table `name` as pf itself does (pfRest cannot add to a table): e.g. sources an
    /// `overload <virusprot>` rule blocked. A table that is neither a system table nor an alias is killed by the
    /// next filter reload, as on pfSense. Also `POST /__emulator/tables` `{"name": ..., "entries": [...]}`.
    pub fn add_table_entries<I, S>(&self, name: &str, entries: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner.add_table_entries(name, entries.into_iter().map(Into::into));
    }

    /// Sets (or with `Value::Null` removes) a key of the stored rule with this tracker that pfRest has no field
    /// for, like the GUI's advanced options (`max-src-conn-rate`, `max-src-conn`, `max`, ...): invisible in
    /// pfRest's answers, kept by a PATCH (pfRest merges), lost by a PUT of `/api/v2/firewall/rules`. Refuses keys
    /// that are pfRest fields. Also `POST /__emulator/rule_config` `{"tracker": N, "key": ..., "value": ...}`.
    pub fn set_rule_config(&self, tracker: i64, key: &str, value: Value) -> Result<(), String> {
        self.inner.set_rule_config(tracker, key, value)
    }

    /// The stored form of the rule with this tracker, with the keys pfRest does not show (interfaces by id).
    pub fn rule_config(&self, tracker: i64) -> Option<serde_json::Map<String, Value>> {
        self.inner.rule_config(tracker)
    }

    /// The rules of pf anchor `anchor` (e.g. `userrules/portcullis_mirror`) with their counters, as loaded through
    /// `diagnostics/command_prompt`; empty when it holds none. Also `GET /__emulator/anchors`.
    pub fn anchor_rules(&self, anchor: &str) -> Vec<AnchorRule> {
        self.inner.anchors().remove(anchor).unwrap_or_default()
    }

    /// Sets the counters of the anchor rule labelled `label`, as traffic through it would; false when there is
    /// none. Also `POST /__emulator/anchor_counters` `{"anchor": ..., "label": ..., "packets": N, "bytes": N}`.
    pub fn count_anchor_rule(&self, anchor: &str, label: &str, packets: u64, bytes: u64) -> bool {
        self.inner.count_anchor_rule(anchor, label, packets, bytes)
    }

    /// Replaces the ARP table (`GET /api/v2/diagnostics/arp_table`) with these rows (pfRest `ARPTable` fields),
    /// as when devices come and go.
    pub fn set_arp_table(&self, rows: Vec<Value>) {
        self.inner.set_device_table("arp", rows);
    }

    /// Replaces the DHCP leases (`GET /api/v2/status/dhcp_server/leases`, pfRest `DHCPServerLease` fields).
    pub fn set_dhcp_leases(&self, rows: Vec<Value>) {
        self.inner.set_device_table("leases", rows);
    }

    /// A reboot as far as state outside config.xml goes: every pf anchor and `/tmp` is empty again (config,
    /// aliases and rules stay). Also `POST /__emulator/reboot`.
    pub fn reboot(&self) {
        self.inner.reboot();
    }

    /// Wait until no filter reload is queued or running.
    pub async fn wait_for_applies(&self) {
        self.inner.wait_for_applies().await;
    }

    /// Stop accepting connections and drop any further requests on open connections.
    pub async fn shutdown(self) {
        self.inner.shut_down.store(true, std::sync::atomic::Ordering::SeqCst);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}
