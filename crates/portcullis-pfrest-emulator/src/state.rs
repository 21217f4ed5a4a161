//! Emulator state: the config (what config.xml holds), dirty subsystems, the running ruleset (what the filter
//! enforces after the last reload), request log, schema violations, JWT secret, firewall log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::model::{
    ApiError, InterfaceRepresentation, Obj, ValidateCtx, is_ip, is_ipv4, is_ipv6, is_subnet, rule_alias_refs, to_repr,
    validate,
};
use crate::schema::model;
use crate::util::now;
use crate::{AppliedRuleset, EmulatorConfig, Faults, LoggedRequest, StateView};

/// Firewall subsystems whose dirty flags `filter_configure()` clears (pfSense >= 2.7).
pub(crate) const FIREWALL_SUBSYSTEMS: &[&str] = &["aliases", "natconf", "filter", "shaper"];

/// The pf tables pfSense's generated ruleset always declares (`filter.inc`): they live across filter reloads,
/// whatever the config holds. `virusprot` is where `overload <virusprot>` puts sources that exceed a rule's
/// "Max. src. conn. Rate".
pub(crate) const SYSTEM_TABLES: &[&str] =
    &["bogons", "bogonsv6", "negate_networks", "snort2c", "sshguard", "virusprot"];

/// What config.xml holds for the emulated models (stored form: interfaces by pfSense id).
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub rules: Vec<Obj>,
    pub aliases: Vec<Obj>,
    /// Traffic shaper limiters (`dnshaper/queue`), which rules name in `dnpipe` / `pdnpipe`.
    pub limiters: Vec<Obj>,
    /// Users, certificates, OpenVPN servers and overrides, WireGuard tunnels and peers.
    pub vpn: crate::vpn::VpnObjects,
}

pub(crate) struct Inner {
    pub cfg: EmulatorConfig,
    pub faults: Faults,
    pub config: Mutex<Config>,
    pub dirty: Mutex<BTreeSet<String>>,
    pub running: Mutex<AppliedRuleset>,
    /// pf's tables as `pfctl -sT` / `-T show` list them: the system tables and, after each filter reload, one per
    /// host or network alias (what pfRest's `/api/v2/diagnostics/table(s)` read).
    pub tables: Mutex<BTreeMap<String, Vec<String>>>,
    /// The files and pf anchors that `diagnostics/command_prompt` works on: running state, not config.xml.
    pub shell: Mutex<crate::shell::ShellState>,
    /// The ARP table and DHCP leases a test put in place of the fixtures (`arp`, `leases`).
    pub device_tables: Mutex<BTreeMap<String, Vec<Value>>>,
    /// Serialises writes when lost-update emulation is off.
    pub write_lock: tokio::sync::Mutex<()>,
    /// Serialises filter reloads.
    pub apply_lock: tokio::sync::Mutex<()>,
    pub applies_in_flight: AtomicUsize,
    pub apply_done: tokio::sync::Notify,
    pub last_tracker: Mutex<i64>,
    pub jwt_secret: Vec<u8>,
    pub log_lines: Mutex<Vec<String>>,
    pub requests: Mutex<Vec<LoggedRequest>>,
    pub violations: Mutex<Vec<String>>,
    pub started_at: i64,
    pub shut_down: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// pfSense's factory LAN rules (config.xml defaults), so `many_minimum = 1` behaves as on a real box. They go through
/// the same validation as API writes, so condition-dependent fields read back the same way (e.g. `quick: null`).
fn default_rules(now: i64) -> Vec<Obj> {
    let m = model("FirewallRule");
    let make = |tracker: i64, ipprotocol: &str, descr: &str| -> Obj {
        let request = json!({"type": "pass", "interface": ["lan"], "ipprotocol": ipprotocol, "source": "lan",
                             "destination": "any", "descr": descr});
        let ctx = ValidateCtx {
            peers: &[],
            self_id: None,
            initial: None,
            aliases: &[],
            limiters: &[],
            vpn: None,
            repr: InterfaceRepresentation::Id,
            client: "(system)",
            keep_read_only: false,
            now,
        };
        let mut obj = validate(m, request.as_object().expect("object"), &ctx).expect("default rule is valid");
        obj.insert("tracker".into(), json!(tracker));
        obj
    };
    vec![
        make(100000101, "inet", "Default allow LAN to any rule"),
        make(100000102, "inet6", "Default allow LAN IPv6 to any rule"),
    ]
}

impl Inner {
    pub(crate) fn new(cfg: EmulatorConfig) -> Self {
        let started = now();
        let config = Config {
            rules: if cfg.seed_default_rules { default_rules(started) } else { vec![] },
            aliases: vec![],
            limiters: vec![],
            vpn: crate::vpn::seed(started),
        };
        let faults = Faults::new(cfg.lost_updates, cfg.write_latency, cfg.apply_delay);
        let log = cfg.firewall_log.clone().unwrap_or_else(crate::status::default_firewall_log);
        let secret = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()).into_bytes();
        let inner = Inner {
            faults,
            config: Mutex::new(config),
            dirty: Mutex::new(BTreeSet::new()),
            running: Mutex::new(AppliedRuleset::default()),
            tables: Mutex::new(SYSTEM_TABLES.iter().map(|t| (t.to_string(), Vec::new())).collect()),
            shell: Mutex::new(crate::shell::ShellState::default()),
            device_tables: Mutex::new(BTreeMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
            apply_lock: tokio::sync::Mutex::new(()),
            applies_in_flight: AtomicUsize::new(0),
            apply_done: tokio::sync::Notify::new(),
            last_tracker: Mutex::new(0),
            jwt_secret: secret,
            log_lines: Mutex::new(log),
            requests: Mutex::new(vec![]),
            violations: Mutex::new(vec![]),
            started_at: started,
            shut_down: AtomicBool::new(false),
            cfg,
        };
        // The boot-time filter load.
        let snapshot = inner.config_snapshot();
        *lock(&inner.running) = inner.compute_running(&snapshot, 0);
        inner.load_alias_tables(&snapshot);
        inner
    }

    pub(crate) fn repr(&self) -> InterfaceRepresentation {
        self.cfg.represent_interfaces_as
    }

    pub(crate) fn config_snapshot(&self) -> Config {
        lock(&self.config).clone()
    }

    /// Allocate a rule tracker: the creation's unix time like pfRest's `UnixTimeField(auto_add_now)`; with
    /// `unique_trackers` (default) bumped past the last one so two rules created in the same second differ.
    pub(crate) fn next_tracker(&self) -> i64 {
        let t = now();
        let mut last = lock(&self.last_tracker);
        let t = if self.cfg.unique_trackers { t.max(*last + 1) } else { t };
        *last = (*last).max(t);
        t
    }

    pub(crate) fn mark_dirty(&self, subsystem: &str) {
        lock(&self.dirty).insert(subsystem.to_string());
    }

    pub(crate) fn clear_dirty(&self, subsystem: &str) {
        lock(&self.dirty).remove(subsystem);
    }

    pub(crate) fn is_dirty(&self, subsystem: &str) -> bool {
        lock(&self.dirty).contains(subsystem)
    }

    pub(crate) fn pending_subsystems(&self) -> Vec<String> {
        let dirty = lock(&self.dirty);
        FIREWALL_SUBSYSTEMS.iter().filter(|s| dirty.contains(**s)).map(|s| s.to_string()).collect()
    }

    /// Read-modify-write of the config like pfRest: read the current config, let `f` change a copy, wait
    /// `write_latency`, write the copy back. With lost-update emulation on, concurrent writers overwrite each other;
    /// off, writes are serialised. `dry_run` validates only (no wait, no write).
    pub(crate) async fn write_config<T>(
        &self,
        dry_run: bool,
        f: impl FnOnce(&mut Config) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let _serial = if self.faults.lost_updates() { None } else { Some(self.write_lock.lock().await) };
        let mut copy = self.config_snapshot();
        let out = f(&mut copy)?;
        if dry_run {
            return Ok(out);
        }
        let latency = self.faults.write_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        *lock(&self.config) = copy;
        Ok(out)
    }

    /// What `filter_configure()` would load from `cfg`: enabled rules whose aliases resolve (others are skipped with
    /// a notice like pfSense's "Unresolvable source alias"), plus the alias tables.
    pub(crate) fn compute_running(&self, cfg: &Config, generation: u64) -> AppliedRuleset {
        let repr = self.repr();
        let rule_model = model("FirewallRule");
        let alias_model = model("FirewallAlias");
        let mut notices = Vec::new();
        let mut rules = Vec::new();
        for rule in &cfg.rules {
            if rule.get("disabled").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let missing: Vec<_> = rule_alias_refs(rule)
                .into_iter()
                .filter(|(_, name)| {
                    !cfg.aliases.iter().any(|a| a.get("name").and_then(Value::as_str) == Some(name.as_str()))
                })
                .collect();
            if let Some((label, name)) = missing.first() {
                notices.push(format!(
                    "Unresolvable {label} alias `{name}` for rule `{}` (tracker {}): rule skipped",
                    rule.get("descr").and_then(Value::as_str).unwrap_or_default(),
                    rule.get("tracker").cloned().unwrap_or(Value::Null)
                ));
                continue;
            }
            rules.push(to_repr(rule_model, rule, None, repr));
        }
        let aliases = cfg.aliases.iter().map(|a| to_repr(alias_model, a, None, repr)).collect();
        // The shaper is reloaded with the filter (`filter_configure()` runs the dummynet configuration).
        let limiter_model = model("TrafficShaperLimiter");
        let limiters = cfg.limiters.iter().map(|l| to_repr(limiter_model, l, None, repr)).collect();
        AppliedRuleset { generation, applied_at: now(), rules, aliases, limiters, notices }
    }

    /// What a filter reload does to pf's tables: every host or network alias is loaded as a table with its
    /// addresses (as `pfctl -T show` prints them: a host route without its prefix length); a table that is
    /// neither a system table nor an alias is killed (`filter.inc` diffs `pfctl -sT` against the aliases);
    /// system tables keep their entries.
    pub(crate) fn load_alias_tables(&self, cfg: &Config) {
        let mut tables = lock(&self.tables);
        tables.retain(|name, _| SYSTEM_TABLES.contains(&name.as_str()));
        for alias in &cfg.aliases {
            let ty = alias.get("type").and_then(Value::as_str).unwrap_or_default();
            let Some(name) = alias.get("name").and_then(Value::as_str) else { continue };
            if !matches!(ty, "host" | "network") {
                continue;
            }
            let entries = alias
                .get("address")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter(|v| is_ip(v) || is_subnet(v))
                        .map(|v| match v.split_once('/') {
                            Some((ip, "32")) if is_ipv4(ip) => ip.to_string(),
                            Some((ip, "128")) if is_ipv6(ip) => ip.to_string(),
                            _ => v.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            tables.insert(name.to_string(), entries);
        }
    }

    /// The pf tables now, by name.
    pub(crate) fn tables(&self) -> BTreeMap<String, Vec<String>> {
        lock(&self.tables).clone()
    }

    /// Empties one table (`pfctl -t NAME -T flush`); returns its entries before, `None` if there is no such table.
    pub(crate) fn flush_table(&self, name: &str) -> Option<Vec<String>> {
        lock(&self.tables).get_mut(name).map(std::mem::take)
    }

    /// Adds entries to a table as pf itself would (an `overload` rule adding a source to `virusprot`), creating
    /// the table if needed; entries already there are not repeated.
    pub(crate) fn add_table_entries(&self, name: &str, entries: impl IntoIterator<Item = String>) {
        let mut tables = lock(&self.tables);
        let table = tables.entry(name.to_string()).or_default();
        for e in entries {
            if !table.contains(&e) {
                table.push(e);
            }
        }
    }

    /// Runs a command as `diagnostics/command_prompt` would; one the emulator does not know is recorded as a
    /// violation.
    pub(crate) fn run_command(&self, command: &str) -> crate::shell::Ran {
        let ran = lock(&self.shell).run(command);
        if ran.unexpected {
            self.record_violation(format!("POST /api/v2/diagnostics/command_prompt: command not emulated: {command}"));
        }
        ran
    }

    /// The ARP table (`arp`) or DHCP leases (`leases`) a test set, if any.
    pub(crate) fn device_table(&self, which: &str) -> Option<Vec<Value>> {
        lock(&self.device_tables).get(which).cloned()
    }

    pub(crate) fn set_device_table(&self, which: &str, rows: Vec<Value>) {
        lock(&self.device_tables).insert(which.to_string(), rows);
    }

    /// pf's anchors with their rules and counters.
    pub(crate) fn anchors(&self) -> BTreeMap<String, Vec<crate::shell::AnchorRule>> {
        lock(&self.shell).anchors()
    }

    /// What a reboot loses that config.xml does not hold: pf's anchors and `/tmp`.
    pub(crate) fn reboot(&self) {
        lock(&self.shell).reboot();
    }

    /// Sets the counters of the anchor rule with `label`; false when there is none.
    pub(crate) fn count_anchor_rule(&self, anchor: &str, label: &str, packets: u64, bytes: u64) -> bool {
        lock(&self.shell).count(anchor, label, packets, bytes)
    }

    /// Sets a key of a stored rule that pfRest has no field for (a GUI advanced option such as
    /// `max-src-conn-rate`): kept by a PATCH (pfRest merges into the stored rule), lost by a PUT of the rules.
    pub(crate) fn set_rule_config(&self, tracker: i64, key: &str, value: Value) -> Result<(), String> {
        if model("FirewallRule").field(key).is_some() || key == "id" {
            return Err(format!("`{key}` is a pfRest field of FirewallRule; write it through the API"));
        }
        let mut config = lock(&self.config);
        let rule = config
            .rules
            .iter_mut()
            .find(|r| r.get("tracker").and_then(Value::as_i64) == Some(tracker))
            .ok_or_else(|| format!("no rule has tracker {tracker}"))?;
        if value.is_null() {
            rule.remove(key);
        } else {
            rule.insert(key.to_string(), value);
        }
        Ok(())
    }

    /// The stored form of a rule, with the keys pfRest does not show.
    pub(crate) fn rule_config(&self, tracker: i64) -> Option<Obj> {
        lock(&self.config).rules.iter().find(|r| r.get("tracker").and_then(Value::as_i64) == Some(tracker)).cloned()
    }

    /// One filter reload: wait `apply_delay`, load the config as it is then, clear the firewall dirty flags.
    pub(crate) async fn run_apply(&self) {
        let _g = self.apply_lock.lock().await;
        let delay = self.faults.apply_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let snapshot = self.config_snapshot();
        let generation = lock(&self.running).generation + 1;
        let running = self.compute_running(&snapshot, generation);
        *lock(&self.running) = running;
        self.load_alias_tables(&snapshot);
        let mut dirty = lock(&self.dirty);
        for s in FIREWALL_SUBSYSTEMS {
            dirty.remove(*s);
        }
    }

    /// Start a filter reload in the background (pfRest's async Dispatcher).
    pub(crate) fn spawn_apply(self: &Arc<Self>) {
        self.applies_in_flight.fetch_add(1, Ordering::SeqCst);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            me.run_apply().await;
            me.applies_in_flight.fetch_sub(1, Ordering::SeqCst);
            me.apply_done.notify_waiters();
        });
    }

    /// Run a filter reload now (async=false).
    pub(crate) async fn apply_now(&self) {
        self.applies_in_flight.fetch_add(1, Ordering::SeqCst);
        self.run_apply().await;
        self.applies_in_flight.fetch_sub(1, Ordering::SeqCst);
        self.apply_done.notify_waiters();
    }

    pub(crate) async fn wait_for_applies(&self) {
        loop {
            let notified = self.apply_done.notified();
            if self.applies_in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn record_violation(&self, v: String) {
        tracing::warn!(target: "pfrest_emulator", "schema violation: {v}");
        lock(&self.violations).push(v);
    }

    pub(crate) fn log_request(&self, r: LoggedRequest) {
        lock(&self.requests).push(r);
    }

    pub(crate) fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn request_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for r in lock(&self.requests).iter() {
            *counts.entry(format!("{} {}", r.method, r.path)).or_insert(0) += 1;
        }
        counts
    }

    pub(crate) fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        lock(&self.violations).clone()
    }

    pub(crate) fn clear_violations(&self) {
        lock(&self.violations).clear();
    }

    pub(crate) fn log_lines(&self) -> Vec<String> {
        lock(&self.log_lines).clone()
    }

    pub(crate) fn push_log_lines(&self, lines: impl IntoIterator<Item = String>) {
        lock(&self.log_lines).extend(lines);
    }

    /// Appends `n` new filterlog lines stamped now, each distinct (IP id, source port and TCP sequence count up).
    pub(crate) fn grow_log(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut log = lock(&self.log_lines);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let first = log.len();
        log.extend((first..first + n as usize).map(|i| {
            format!(
                "<134>1 {now} pfSense.home.arpa filterlog 72237 - - 5,,,1000000103,em0,match,block,in,4,0x0,,64,{},0,\
                 none,6,tcp,60,198.51.100.77,203.0.113.2,{},22,0,S,{i},,64240,,mss",
                i % 65536,
                1024 + i % 64512
            )
        }));
    }

    pub(crate) fn state_view(&self) -> StateView {
        let cfg = self.config_snapshot();
        let repr = self.repr();
        let rm = model("FirewallRule");
        let am = model("FirewallAlias");
        let lm = model("TrafficShaperLimiter");
        StateView {
            rules: cfg.rules.iter().enumerate().map(|(i, r)| to_repr(rm, r, Some(json!(i)), repr)).collect(),
            aliases: cfg.aliases.iter().enumerate().map(|(i, a)| to_repr(am, a, Some(json!(i)), repr)).collect(),
            limiters: cfg.limiters.iter().enumerate().map(|(i, l)| to_repr(lm, l, Some(json!(i)), repr)).collect(),
            pending_subsystems: self.pending_subsystems(),
            applied: lock(&self.running).clone(),
            applies_in_progress: self.applies_in_flight.load(Ordering::SeqCst),
            vpn: crate::vpn::view(&cfg.vpn, repr),
        }
    }
}
