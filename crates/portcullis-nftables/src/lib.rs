//! The nftables backend: Portcullis' [`Firewall`] on a Linux host or router through `nft -j`.
//!
//! - **Its own table** (`inet portcullis` by default). Nothing outside it is read or written, so rules of other
//!   tables stay in charge of everything Portcullis does not decide; base chains have an `accept` policy.
//! - **pfSense semantics, enforced by the kernel**: one chain per logical interface and direction
//!   (`in_lan`, `out_lan`), entered from the base chains by device name; rules in order, first match wins;
//!   inbound traffic that no rule passes is dropped at the end of the interface's chain (the implicit default
//!   deny the core evaluator models); replies of accepted connections pass by conntrack state. A fresh table
//!   starts with one "default allow" rule per interface (an ordinary rule that can be edited or removed), so that
//!   installing Portcullis changes nothing until rules are added.
//! - **One atomic batch per plan** (`nft -j -f -`); rules carry their stable id and bookkeeping in their comment
//!   ([`comment`]); a disabled or paused rule keeps its place and its counter but has no verdict.
//! - **Blocks and grants are sets** with per-element timeouts (the kernel removes an entry on time even if
//!   Portcullis is down) and the exact expiry in the element comment (the sweeper's plans remove it too).
//! - **`snapshot` reads the kernel** (`nft -j list table`) and translates the rules' expressions back to the
//!   model, so the verifier checks what the kernel enforces.
//! - **Mirrors** copy traffic to IDS sensors from tables beside it (`dup` is refused in an `inet` table):
//!   [`mirror`], written in the same batch, read back the same way, listed only when they exist.

pub mod accounting;
pub mod apply;
pub mod comment;
pub mod devices;
pub mod logs;
pub mod mirror;
pub mod netlink;
pub mod protect;
pub mod read;
pub mod runner;
mod status;
mod touched;
pub mod translate;
mod watch;
pub mod wireguard;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use portcullis_core::firewall::{
    AddressCounters, Applied, BackendError, BackendKind, ErrorCode, Firewall, HostCheck, InterfaceCounters,
    MirrorCounter, ProtectionLive, RuleHits, SystemStatus, TargetInfo, UnsupportedField,
};
use portcullis_core::freshness::StateRead;
use portcullis_core::mirror::{Mirror, MirrorAsk};
use portcullis_core::model::{Action, AliasEntry, Direction, Interface, Rule, RuleId, RuleSet, Timestamp};
use portcullis_core::plan::{ChangePlan, Operation};
use portcullis_core::protection::Protection;
use portcullis_store::Store;
use sha2::Digest;

use crate::apply::{BatchBuilder, Layout, simulate};
use crate::comment::TextStore;
use crate::mirror::{Devices, MirrorTable, TunnelChanges};
use crate::netlink::{BatchStep, NetlinkError, errno};
use crate::read::{HitMap, KernelTable, aliases, chain_rules};
use crate::touched::netlink_failure;
use crate::translate::rule_chain;

pub use runner::{NftError, NftRunner};

/// Settings of one nftables target.
#[derive(Debug, Clone)]
pub struct NftablesSettings {
    /// The table in family `inet` that Portcullis owns.
    pub table: String,
    /// (logical name, kernel device) of every interface Portcullis filters, e.g. (`lan`, `eth1`).
    pub interfaces: Vec<(String, String)>,
    pub runner: NftRunner,
    /// Whether a new interface chain starts with a "default allow" rule (true) or denies inbound traffic until
    /// rules pass it (false, as on a pfSense WAN).
    pub default_allow: bool,
    /// The WireGuard interface whose peers are this target's VPN users ([`wireguard`]).
    pub wireguard: Option<wireguard::WireguardSettings>,
}

impl NftablesSettings {
    pub fn new(interfaces: Vec<(String, String)>) -> Self {
        Self {
            table: "portcullis".into(),
            interfaces,
            runner: NftRunner::default(),
            default_allow: true,
            wireguard: None,
        }
    }
}

/// A Linux host or router filtered by nftables.
pub struct NftablesFirewall {
    name: String,
    settings: NftablesSettings,
    texts: TextStore,
    /// Portcullis' own records kept for this target (the VPN users' peers, [`wireguard`]).
    store: Arc<Store>,
    /// One writer per firewall: held from reading the table to applying the batch.
    writer: tokio::sync::Mutex<()>,
    host: portcullis_host::HostProbe,
    /// Whether this process has written the table's skeleton (base chains, the dispatch of the configured
    /// interfaces): until it has, every change goes through `nft` and writes it, so a changed configuration takes
    /// effect with the first change; after, changes of single entries go over netlink ([`touched`]).
    skeleton_written: std::sync::atomic::AtomicBool,
    /// Changes applied over netlink since start (shown in status; tests check which path a change took).
    netlink_batches: std::sync::atomic::AtomicU64,
    /// Whole listings of the table since start (a change of single entries makes none).
    whole_reads: std::sync::atomic::AtomicU64,
    /// Whether traffic per device address is counted ([`accounting`]): the accounting table is made on the first
    /// reading.
    accounting: bool,
    /// The rules of the last whole read, while the kernel's generation vouches for them ([`touched`]).
    recent_rules: std::sync::Mutex<Option<touched::RecentRules>>,
    /// The mirror tables and mirrors of the last whole read: what a preview of a plan's mirror statements is
    /// rendered against (the plan was made on that read).
    last_mirrors: std::sync::Mutex<Option<(BTreeSet<MirrorTable>, Vec<Mirror>)>>,
    /// The running kernel's (major, minor) and release, read once: the netdev egress hook needs 5.16.
    kernel: std::sync::OnceLock<Option<((u32, u32), String)>>,
    /// What others change in the table, for drift checks ([`watch`]).
    edits: watch::EditWatch,
}

/// What the kernel holds now, in both forms.
pub struct Current {
    /// Whether Portcullis' table exists.
    pub exists: bool,
    pub kernel: KernelTable,
    pub state: RuleSet,
    pub hits: HitMap,
    /// The mirror tables as listed (none listed when none exists).
    pub mirrors: mirror::Listed,
}

/// The id of an interface's "default allow" rule: numeric like every rule id (log lines carry it as a pfSense
/// tracker), derived from the interface name so that it is the same before and after the chain exists, and far
/// below the ids of created rules (ten times a Unix time).
fn seed_rule_id(interface: &str) -> RuleId {
    let digest = sha2::Sha256::digest(interface.as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    RuleId((1_000_000 + u64::from(n)).to_string())
}

/// A new generation number, different from the one read.
fn next_generation(read: Option<u32>) -> u32 {
    let now = Utc::now();
    let fresh =
        now.timestamp_subsec_nanos() ^ (now.timestamp() as u32).rotate_left(7) ^ std::process::id().rotate_left(19);
    if Some(fresh) == read { fresh.wrapping_add(1) } else { fresh }
}

/// The description of the rule a new interface chain starts with.
pub const DEFAULT_ALLOW_DESCR: &str = "Default allow (other nftables tables decide the rest)";

impl NftablesFirewall {
    pub fn new(name: &str, settings: NftablesSettings, store: Arc<Store>) -> Self {
        Self {
            name: name.to_string(),
            texts: TextStore::new(store.clone()),
            store,
            writer: tokio::sync::Mutex::new(()),
            host: portcullis_host::HostProbe::default(),
            skeleton_written: std::sync::atomic::AtomicBool::new(false),
            netlink_batches: std::sync::atomic::AtomicU64::new(0),
            recent_rules: std::sync::Mutex::new(None),
            accounting: false,
            whole_reads: std::sync::atomic::AtomicU64::new(0),
            last_mirrors: std::sync::Mutex::new(None),
            kernel: std::sync::OnceLock::new(),
            edits: watch::EditWatch::new(settings.table.clone(), netlink::Netlink::new(settings.runner.netns.clone())),
            settings,
        }
    }

    /// The same firewall counting traffic per device address (the accounting table, made on the first reading).
    pub fn with_accounting(mut self, on: bool) -> Self {
        self.accounting = on;
        self
    }

    /// The accounting table's counters, making the table first when it is missing.
    async fn accounting_counters(&self) -> Result<AddressCounters, BackendError> {
        let table = accounting::table_name(&self.settings.table);
        let list = ["-j", "list", "table", "inet", table.as_str()];
        let (listing, made) = match self.settings.runner.nft(&list).await {
            Ok(text) => (text, false),
            Err(e) if e.is_missing_table() => {
                let inside: Vec<String> = self
                    .settings
                    .interfaces
                    .iter()
                    .filter(|(logical, _)| portcullis_core::device::is_inside(logical))
                    .map(|(_, device)| device.clone())
                    .collect();
                let batch = accounting::create_batch(&self.settings.table, &inside)?;
                self.settings
                    .runner
                    .nft_stdin(&["-j", "-f", "-"], batch.to_string().as_bytes())
                    .await
                    .map_err(|e| e.into_backend("nft -j -f (accounting table)"))?;
                let text = self.settings.runner.nft(&list).await.map_err(|e| e.into_backend("nft list table"))?;
                (text, true)
            }
            Err(e) => return Err(e.into_backend("nft list table")),
        };
        let parsed: serde_json::Value = serde_json::from_str(&listing)
            .map_err(|e| BackendError::new(ErrorCode::UnexpectedResponse, format!("nft -j list: {e}")))?;
        Ok(AddressCounters { started_now: made, ..accounting::read(&parsed) })
    }

    pub fn settings(&self) -> &NftablesSettings {
        &self.settings
    }

    /// How many times this process listed the whole table (`nft -j list table`).
    pub fn whole_reads(&self) -> u64 {
        self.whole_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many changes this process applied as one netlink transaction of set elements, not through `nft`.
    pub fn netlink_batches(&self) -> u64 {
        self.netlink_batches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `nft -j list table inet NAME`, or `None` when the table does not exist yet.
    pub async fn list_table_json(&self) -> Result<Option<String>, BackendError> {
        self.list_table(&["-j"]).await
    }

    /// The table listed with `flags` before `list` (`-t` leaves set elements out), or `None` when it does not exist.
    async fn list_table(&self, flags: &[&str]) -> Result<Option<String>, BackendError> {
        let table = ["list", "table", "inet", self.settings.table.as_str()];
        let args: Vec<&str> = flags.iter().copied().chain(table).collect();
        match self.settings.runner.nft(&args).await {
            Ok(json) => Ok(Some(json)),
            Err(e) if e.is_missing_table() => Ok(None),
            Err(e) => Err(e.into_backend("nft list table")),
        }
    }

    /// The sysctls the nftables wiki's SYN proxy recipe needs, as found in the target's namespace.
    async fn synproxy_sysctls(&self) -> Vec<HostCheck> {
        let mut checks = Vec::new();
        for (setting, wanted) in [
            ("net.netfilter.nf_conntrack_tcp_loose", "0"),
            ("net.ipv4.tcp_syncookies", "1"),
            ("net.ipv4.tcp_timestamps", "1"),
        ] {
            let found = self.settings.runner.sysctl(setting).await;
            let ok = found.as_deref() == Some(wanted);
            checks.push(HostCheck { setting: setting.into(), wanted: wanted.into(), found, ok });
        }
        checks
    }

    /// Reads the table and the interfaces and translates them into the model.
    pub async fn read_current(&self) -> Result<Current, BackendError> {
        let (mut current, interfaces) = tokio::try_join!(self.read_table(), self.interfaces())?;
        current.state.interfaces = interfaces;
        Ok(current)
    }

    /// Reads the table alone and translates it into the model, whose interfaces stay empty: what `apply` and
    /// `check` plan against (they address rules and aliases only, and an `ip` run less per change counts when a
    /// change carries 100,000 entries).
    pub async fn read_table(&self) -> Result<Current, BackendError> {
        let now = Utc::now();
        let generation_before = self.kernel_generation().await.ok();
        self.whole_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (json, listed_mirrors) = tokio::try_join!(self.list_table_json(), self.read_mirror_tables())?;
        let generation_after = self.kernel_generation().await.ok();
        let kernel = match &json {
            Some(json) => KernelTable::parse(json)?,
            None => KernelTable::default(),
        };
        let (rules, hits) = self.rules_and_hits(&kernel)?;
        self.remember_rules(generation_before, generation_after, &rules).await;
        let mirrors = mirror::read(&listed_mirrors, self.devices(), &self.texts)?;
        *self.last_mirrors.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((listed_mirrors.existing(), mirrors.clone()));
        let state = RuleSet {
            interfaces: Vec::new(),
            rules,
            aliases: aliases(&kernel, &self.texts, now)?,
            protections: protect::read(&kernel.protections)?,
            mirrors,
            vpn_accounts: self.vpn_accounts_or_none().await,
        };
        Ok(Current { exists: json.is_some(), kernel, state, hits, mirrors: listed_mirrors })
    }

    fn devices(&self) -> Devices<'_> {
        Devices(&self.settings.interfaces)
    }

    /// The mirror tables the kernel holds, each listed (`nft -j list table`), with their netdev chains' devices
    /// and, when a mirror sends to a VXLAN sensor, the tunnel devices. Which tables exist comes from one netlink
    /// dump of the namespace's tables (a fraction of a millisecond), so a firewall without mirrors lists nothing
    /// more than before.
    pub async fn read_mirror_tables(&self) -> Result<mirror::Listed, BackendError> {
        let mut listed = mirror::Listed::default();
        for table in self.mirror_tables_present().await? {
            let name = table.name(&self.settings.table);
            let json = match self.settings.runner.nft(&["-j", "list", "table", table.family(), &name]).await {
                Ok(json) => json,
                // Deleted since the dump.
                Err(e) if e.is_missing_table() => continue,
                Err(e) => return Err(e.into_backend("nft list table")),
            };
            let mut t = mirror::parse_table(table, &json)?;
            if table == MirrorTable::Netdev {
                t.devices = self.chain_devices(table, &name).await?;
            }
            listed.tables.insert(table, t);
        }
        if listed.needs_tunnels() {
            listed.tunnels = self.tunnel_links().await?;
        }
        Ok(listed)
    }

    /// The VXLAN devices of the target's namespace.
    async fn tunnel_links(&self) -> Result<BTreeMap<String, mirror::Tunnel>, BackendError> {
        Ok(mirror::tunnels_of(&self.settings.runner.ip_json(&["-d", "link", "show", "type", "vxlan"]).await?))
    }

    /// Which mirror tables exist: a netlink dump of the tables, or `nft -j list tables` where netlink cannot be
    /// reached.
    async fn mirror_tables_present(&self) -> Result<Vec<MirrorTable>, BackendError> {
        let netlink = self.netlink();
        let dumped = tokio::task::spawn_blocking(move || netlink.tables()).await.ok().and_then(Result::ok);
        let tables: Vec<(String, String)> = match dumped {
            Some(tables) => tables
                .into_iter()
                .filter_map(|(family, name)| {
                    MirrorTable::ALL.into_iter().find(|t| t.nfproto() == family).map(|t| (t.family().to_string(), name))
                })
                .collect(),
            None => {
                let json = self
                    .settings
                    .runner
                    .nft(&["-j", "list", "tables"])
                    .await
                    .map_err(|e| e.into_backend("nft list tables"))?;
                let listing: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
                    BackendError::new(
                        ErrorCode::UnexpectedResponse,
                        format!("nft -j list tables printed invalid JSON: {e}"),
                    )
                })?;
                listing["nftables"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| {
                        let t = o.get("table")?;
                        Some((t["family"].as_str()?.to_string(), t["name"].as_str()?.to_string()))
                    })
                    .collect()
            }
        };
        let base = &self.settings.table;
        Ok(MirrorTable::ALL
            .into_iter()
            .filter(|t| tables.iter().any(|(family, name)| family == t.family() && *name == t.name(base)))
            .collect())
    }

    /// The devices of a table's base chains, over netlink (nft 1.0.6's JSON listing leaves them out).
    async fn chain_devices(
        &self,
        table: MirrorTable,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, BackendError> {
        let netlink = self.netlink();
        let (family, name) = (table.nfproto(), name.to_string());
        let hooks = tokio::task::spawn_blocking(move || netlink.chain_hooks(family, &name))
            .await
            .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("the netlink read failed: {e}")))?
            .map_err(|e| touched::netlink_failure("reading the mirror chains' devices", e))?;
        Ok(hooks.into_iter().map(|c| (c.name, c.devices)).collect())
    }

    /// The running kernel's version, read once from `/proc` (every network namespace shares the kernel).
    fn kernel(&self) -> Option<&((u32, u32), String)> {
        self.kernel
            .get_or_init(|| {
                let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
                Some((mirror::kernel_version(&release)?, release.trim().to_string()))
            })
            .as_ref()
    }

    /// The exact statements `plan`'s mirrors would run, in order: the VXLAN tunnel devices made (`ip link add`),
    /// the nft commands of the batch that concern the mirror tables (each the JSON object `nft -j -f` reads), the
    /// tunnel devices deleted after. Rendered against the mirror tables of the last read (the one the plan was
    /// made on); empty for a plan without mirrors. For dry runs: nothing is run.
    pub fn mirror_statements(&self, plan: &ChangePlan) -> Result<Vec<String>, BackendError> {
        use portcullis_core::plan::Operation;
        let touches = |op: &Operation| matches!(op, Operation::CreateMirror { .. } | Operation::DeleteMirror { .. });
        if !plan.operations.iter().any(touches) {
            return Ok(Vec::new());
        }
        let remembered = self.last_mirrors.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (existing, before) = remembered.unwrap_or_else(|| {
            let before: Vec<Mirror> = plan
                .operations
                .iter()
                .filter_map(|op| match op {
                    Operation::DeleteMirror { before } => Some(before.clone()),
                    _ => None,
                })
                .collect();
            (before.iter().map(|m| MirrorTable::of(&m.sensor)).collect(), before)
        });
        let after = portcullis_core::mirror::mirrors_after(&before, &plan.operations);
        let writer = mirror::Writer { base: &self.settings.table, devices: self.devices(), texts: &self.texts };
        let commands = writer.commands(&existing, &before, &after)?;
        Ok(mirror::statements(&commands, &TunnelChanges::between(&before, &after)))
    }

    /// Makes the tunnel devices `changes` wants that are missing (`ip link add … type vxlan`, then up), before the
    /// batch whose rules copy into them (nft resolves a device name when it reads the rule). Returns the devices
    /// made, for deletion when the batch fails. A device of the name with other settings is refused: a mirror
    /// sending elsewhere, or one Portcullis did not make.
    async fn make_tunnels(&self, changes: &TunnelChanges) -> Result<Vec<String>, BackendError> {
        if changes.wanted.is_empty() {
            return Ok(Vec::new());
        }
        let links = self.tunnel_links().await?;
        let mut made = Vec::new();
        for tunnel in &changes.wanted {
            match links.get(&tunnel.device) {
                Some(have) if have == tunnel => continue,
                Some(have) => {
                    self.delete_tunnels(&made).await;
                    return Err(BackendError::new(
                        ErrorCode::Conflict,
                        format!(
                            "device {} exists with other settings (VXLAN {} to {:?}:{}) than the sensor needs (VXLAN {}                              to {:?}:{})",
                            tunnel.device, have.vni, have.remote, have.port, tunnel.vni, tunnel.remote, tunnel.port
                        ),
                    )
                    .with_hint(format!(
                        "if no mirror uses it any more, delete it (ip link delete {}) and start the mirror again",
                        tunnel.device
                    )));
                }
                None => {}
            }
            let args = tunnel.add_args();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let up = self.settings.runner.ip(&args).await;
            let up = match up {
                Ok(()) => {
                    made.push(tunnel.device.clone());
                    self.settings.runner.ip(&["link", "set", &tunnel.device, "up"]).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = up {
                self.delete_tunnels(&made).await;
                return Err(e);
            }
        }
        Ok(made)
    }

    /// Deletes tunnel devices; a failure is logged (an idle device left behind copies nothing).
    async fn delete_tunnels(&self, devices: &[String]) {
        for device in devices {
            if let Err(e) = self.settings.runner.ip(&["link", "delete", device]).await {
                tracing::warn!(target = %self.name, device = %device, "cannot delete a mirror's tunnel device: {}", e.message);
            }
        }
    }

    /// The model rules of the listed chains, with what each matched (a rule in both directions sums its two nft
    /// counters).
    fn rules_and_hits(&self, kernel: &KernelTable) -> Result<(Vec<Rule>, HitMap), BackendError> {
        let mut rules = Vec::new();
        let mut hits = HitMap::new();
        for (logical, _) in &self.settings.interfaces {
            let in_chain = rule_chain(logical, Direction::In);
            if !kernel.chains.contains_key(&in_chain) {
                rules.extend(self.seed_rules(logical));
                continue;
            }
            let inbound = chain_rules(kernel, &in_chain, logical, Direction::In, &self.texts)?;
            let outbound =
                chain_rules(kernel, &rule_chain(logical, Direction::Out), logical, Direction::Out, &self.texts)?;
            let out_ids: HashSet<RuleId> = outbound.iter().map(|(r, _)| r.rule_id.clone()).collect();
            let in_ids: HashSet<RuleId> = inbound.iter().map(|(r, _)| r.rule_id.clone()).collect();
            for (mut rule, h) in inbound {
                if out_ids.contains(&rule.rule_id) {
                    rule.direction = Direction::Any;
                }
                hits.insert(rule.rule_id.clone(), h);
                rules.push(rule);
            }
            for (rule, h) in outbound {
                if let Some(seen) = hits.get_mut(&rule.rule_id) {
                    seen.packets += h.packets;
                    seen.bytes += h.bytes;
                }
                if !in_ids.contains(&rule.rule_id) {
                    hits.insert(rule.rule_id.clone(), h);
                    rules.push(rule);
                }
            }
        }
        Ok((rules, hits))
    }

    /// The rules a new interface chain starts with.
    fn seed_rules(&self, interface: &str) -> Vec<Rule> {
        if !self.settings.default_allow {
            return Vec::new();
        }
        vec![Rule {
            rule_id: seed_rule_id(interface),
            description: DEFAULT_ALLOW_DESCR.into(),
            ..Rule::new(interface, Action::Pass)
        }]
    }

    /// The configured interfaces with their addresses and link state, read from the kernel.
    async fn interfaces(&self) -> Result<Vec<Interface>, BackendError> {
        self.each_link(&["address", "show"], |logical, device, link| {
            let address = |family: &str| {
                link.and_then(|l| l["addr_info"].as_array()).and_then(|infos| {
                    infos.iter().find_map(|i| {
                        let global = i["scope"].as_str() == Some("global");
                        if i["family"].as_str() != Some(family) || !global {
                            return None;
                        }
                        format!("{}/{}", i["local"].as_str()?, i["prefixlen"].as_u64()?).parse().ok()
                    })
                })
            };
            let up = link
                .and_then(|l| l["flags"].as_array())
                .is_some_and(|flags| flags.iter().any(|f| f.as_str() == Some("UP")));
            Interface {
                name: logical.clone(),
                device: device.clone(),
                description: format!("{logical} ({device})"),
                ipv4: address("inet"),
                ipv6: address("inet6"),
                enabled: up,
            }
        })
        .await
    }

    /// One answer per configured interface from an `ip -j` listing of links: `answer(logical, device, its link)`.
    async fn each_link<T>(
        &self,
        listing: &[&str],
        answer: impl Fn(&String, &String, Option<&serde_json::Value>) -> T,
    ) -> Result<Vec<T>, BackendError> {
        let links = self.settings.runner.ip_json(listing).await?;
        let links = links.as_array().cloned().unwrap_or_default();
        let link_of = |device: &str| links.iter().find(|l| l["ifname"].as_str() == Some(device));
        Ok(self.settings.interfaces.iter().map(|(logical, device)| answer(logical, device, link_of(device))).collect())
    }

    fn layout(&self) -> Layout<'_> {
        Layout { table: &self.settings.table, interfaces: &self.settings.interfaces }
    }

    /// The batch that carries `plan` out on `current`, and what applying it yields.
    pub fn batch(
        &self,
        current: &Current,
        plan: &ChangePlan,
        now: Timestamp,
    ) -> Result<(apply::Batch, Applied), BackendError> {
        let outcome = simulate(&current.state, plan, now)?;
        let layout = self.layout();
        let mut batch = BatchBuilder::new(&layout, &self.texts);
        batch.skeleton(current.exists);
        batch.generation(current.kernel.generation, next_generation(current.kernel.generation));
        for alias in &outcome.new_aliases {
            batch.create_alias_sets(&outcome.state, alias)?;
        }
        // A mirror decides no verdict: a plan of mirrors alone leaves the interfaces' chains (and counters) alone.
        let rules_touched = !plan.only_mirrors();
        for (logical, _) in &self.settings.interfaces {
            // Interfaces whose chains are not in the kernel yet get their (seed) rules written now.
            let materialized = current.kernel.chains.contains_key(&rule_chain(logical, Direction::In));
            if (rules_touched && outcome.interfaces.contains(logical)) || !materialized {
                batch.rebuild_interface(&outcome.state, logical, &current.hits)?;
            }
        }
        batch.delete_alias_sets(&outcome.state, &outcome.deleted_aliases)?;
        if outcome.state.protections != current.state.protections {
            batch.protections(&current.state.protections, &outcome.state.protections)?;
        }
        let ids = |ms: &[Mirror]| ms.iter().map(|m| m.mirror_id.clone()).collect::<BTreeSet<_>>();
        if ids(&outcome.state.mirrors) != ids(&current.state.mirrors) {
            batch.mirrors(&current.mirrors.existing(), &current.state.mirrors, &outcome.state.mirrors)?;
        }
        batch.elements(&current.state, &outcome.put, &outcome.removed, now)?;
        Ok((batch.finish(), outcome.applied))
    }

    /// [`Firewall::apply`] under the writer lock: what it applied, and in how many kernel transactions.
    async fn apply_locked(&self, plan: &ChangePlan) -> Result<(Applied, u32), BackendError> {
        if self.skeleton_written.load(std::sync::atomic::Ordering::Acquire)
            && touched::host_entries_only(plan)
            && let Some(applied) = self.apply_touched(plan, touched::Commit::Yes).await?
        {
            self.netlink_batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(target = %self.name, operations = plan.operations.len(), "applied one netlink batch");
            return Ok((applied, 1));
        }
        let current = self.read_table().await?;
        let (mut batch, applied) = self.batch(&current, plan, Utc::now())?;
        self.forget_rules();
        // Into a table that exists, new sets are made and filled over netlink first (no rule uses them yet).
        let staged = if current.exists {
            batch.take_new_sets(&current.kernel.sets, &read::leftover_sets(&current.kernel, &self.texts)?)
        } else {
            Vec::new()
        };
        let made = self.make_tunnels(&batch.tunnels).await?;
        if let Err(e) = self.stage_sets(&staged).await {
            self.delete_tunnels(&made).await;
            return Err(e);
        }
        if let Err(e) = self.run_batch(&batch, false).await {
            // Nothing of the change stays: not even the tunnel devices made for it, or the sets staged for it.
            self.delete_tunnels(&made).await;
            self.unstage_sets(&staged).await;
            // Another process wrote to the table since it was read: its generation number is gone.
            let now = self.list_table_json().await.ok().flatten().and_then(|j| KernelTable::parse(&j).ok());
            let table_now = now.map(|t| t.generation);
            if table_now.is_some_and(|g| g != current.kernel.generation) || (!current.exists && table_now.is_some()) {
                return Err(BackendError::new(
                    ErrorCode::Conflict,
                    format!("the table changed during the write ({})", e.message),
                )
                .with_hint("another Portcullis process wrote to this firewall at the same time; plan again"));
            }
            return Err(e);
        }
        self.skeleton_written.store(true, std::sync::atomic::Ordering::Release);
        self.delete_tunnels(&batch.tunnels.unused).await;
        tracing::info!(target = %self.name, operations = plan.operations.len(), "applied one nft batch");
        Ok((applied, if staged.is_empty() { 1 } else { 2 }))
    }

    /// Commits the steps [`apply::Batch::take_new_sets`] took out of a batch, as one transaction.
    async fn stage_sets(&self, steps: &[BatchStep]) -> Result<(), BackendError> {
        if steps.is_empty() {
            return Ok(());
        }
        let (netlink, table, owned) = (self.netlink(), self.settings.table.clone(), steps.to_vec());
        let committed = tokio::task::spawn_blocking(move || netlink.commit_steps(&table, &owned))
            .await
            .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("the netlink write failed: {e}")))?;
        let Err(e) = committed else { return Ok(()) };
        let NetlinkError::Refused { index, errno } = e else { return Err(netlink_failure("netlink batch (sets)", e)) };
        Err(match steps.get(index) {
            Some(BatchStep::MakeSet(set)) if errno == errno::EEXIST => BackendError::new(
                ErrorCode::Conflict,
                format!("set {} appeared in the table during the write ({e})", set.name),
            )
            .with_hint("another Portcullis process wrote to this firewall at the same time; plan again"),
            Some(BatchStep::Elements(change)) if [errno::EEXIST, errno::ENOTEMPTY].contains(&errno) => {
                BackendError::new(ErrorCode::ValidationError, format!("set {}: {e}", change.set)).with_hint(
                    "nftables interval sets cannot hold overlapping networks; remove the overlapping entry first",
                )
            }
            _ => BackendError::new(ErrorCode::ApplyFailed, format!("netlink batch (sets): {e}")),
        })
    }

    /// Deletes the sets [`Self::stage_sets`] made, when the batch that was to use them failed. Should that fail
    /// too, the sets stay unused and the next change deletes them (`read::leftover_sets`).
    async fn unstage_sets(&self, steps: &[BatchStep]) {
        let made: Vec<BatchStep> = steps
            .iter()
            .filter_map(|s| match s {
                BatchStep::MakeSet(set) => Some(BatchStep::DeleteSet(set.name.clone())),
                _ => None,
            })
            .collect();
        if made.is_empty() {
            return;
        }
        let (netlink, table) = (self.netlink(), self.settings.table.clone());
        match tokio::task::spawn_blocking(move || netlink.commit_steps(&table, &made)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(target = %self.name, "staged sets not deleted, the next change will: {e}"),
            Err(e) => tracing::error!(target = %self.name, "staged sets not deleted, the next change will: {e}"),
        }
    }

    async fn run_batch(&self, batch: &apply::Batch, check_only: bool) -> Result<(), BackendError> {
        let json = batch.to_json()?;
        let args: &[&str] = if check_only { &["-c", "-j", "-f", "-"] } else { &["-j", "-f", "-"] };
        self.settings.runner.nft_stdin(args, &json).await.map(|_| ()).map_err(|e| {
            let doing = if check_only { "nft -c (check)" } else { "nft -f (apply)" };
            let mut err = e.into_backend(doing);
            if err.message.contains("conflicting intervals") || err.message.contains("interval overlaps") {
                err.code = ErrorCode::ValidationError;
                err.hint = Some(
                    "nftables interval sets cannot hold overlapping networks; remove the overlapping entry first"
                        .into(),
                );
            }
            err
        })
    }

    /// Byte and packet counters of every configured interface (the kernel's link statistics, `ip -s link`), for
    /// traffic statistics.
    pub async fn link_counters(&self) -> Result<Vec<InterfaceCounters>, BackendError> {
        self.each_link(&["-s", "link", "show"], |logical, device, link| {
            let stats = link.map(|l| &l["stats64"]);
            let n = |dir: &str, what: &str| stats.and_then(|s| s[dir][what].as_u64()).unwrap_or(0);
            InterfaceCounters {
                interface: logical.clone(),
                device: device.clone(),
                bytes_in: n("rx", "bytes"),
                bytes_out: n("tx", "bytes"),
                packets_in: n("rx", "packets"),
                packets_out: n("tx", "packets"),
            }
        })
        .await
    }

    /// Deletes Portcullis' table (and with it every rule, set and block it holds), its mirror tables and the
    /// mirrors' tunnel devices. Nothing else is touched.
    pub async fn remove_table(&self) -> Result<(), BackendError> {
        let _writer = self.writer.lock().await;
        let listed = self.read_mirror_tables().await?;
        for table in listed.existing() {
            match self
                .settings
                .runner
                .nft(&["delete", "table", table.family(), &table.name(&self.settings.table)])
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_missing_table() => {}
                Err(e) => return Err(e.into_backend("nft delete table")),
            }
        }
        let tunnels: Vec<String> = listed.tunnels.into_keys().collect();
        self.delete_tunnels(&tunnels).await;
        *self.last_mirrors.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match self.settings.runner.nft(&["delete", "table", "inet", &self.settings.table]).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_missing_table() => Ok(()),
            Err(e) => Err(e.into_backend("nft delete table")),
        }
    }
}

#[async_trait]
impl Firewall for NftablesFirewall {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            name: self.name.clone(),
            kind: BackendKind::Nftables,
            description: format!("{} (table inet {})", self.settings.runner, self.settings.table),
        }
    }

    /// The table filters the host (or network namespace) `nft` runs in, Portcullis' own traffic included.
    async fn vpn_servers(&self) -> Result<Vec<portcullis_core::vpn::VpnServer>, BackendError> {
        Ok(self.vpn_server().into_iter().collect())
    }

    async fn vpn_accounts(&self) -> Result<Vec<portcullis_core::vpn::VpnAccount>, BackendError> {
        NftablesFirewall::vpn_accounts(self).await
    }

    async fn wireguard_server_side(
        &self,
        _server: &str,
    ) -> Result<portcullis_core::vpn::WireguardServerSide, BackendError> {
        NftablesFirewall::wireguard_server_side(self).await
    }

    async fn vpn_status(
        &self,
        kind: Option<portcullis_core::firewall::VpnKind>,
    ) -> Result<portcullis_core::firewall::VpnStatus, BackendError> {
        if kind.is_some_and(|k| k != portcullis_core::firewall::VpnKind::Wireguard) {
            return Ok(portcullis_core::firewall::VpnStatus::default());
        }
        let (connections, users) = self.wireguard_status().await?;
        Ok(portcullis_core::firewall::VpnStatus { connections, users })
    }

    fn filters_own_traffic(&self) -> bool {
        true
    }

    async fn snapshot(&self) -> Result<RuleSet, BackendError> {
        Ok(self.read_current().await?.state)
    }

    /// A read of entries alone (a change's read-back) looks them up; anything else is a snapshot.
    async fn state(&self, read: &StateRead) -> Result<RuleSet, BackendError> {
        // Where netlink cannot be reached the table is read whole.
        if read.only_entries()
            && let Ok(Some(touched)) = self.read_touched(touched::Wanted::ByAlias(read.entries.clone())).await
        {
            return Ok(touched.state);
        }
        if let Some(values) = &read.values
            && let Some(state) = self.planning_state(values).await?
        {
            return Ok(state);
        }
        self.snapshot().await
    }

    fn plans_on_looked_up_entries(&self) -> bool {
        true
    }

    /// From the `aliases` chain's comments over netlink; a whole read where netlink cannot answer.
    async fn outline(&self) -> Result<RuleSet, BackendError> {
        if let Some(outline) = self.outline_by_netlink().await {
            return Ok(outline);
        }
        let state = self.snapshot().await?;
        let aliases = state.aliases.into_iter().map(|a| portcullis_core::model::Alias { entries: Vec::new(), ..a });
        Ok(RuleSet {
            interfaces: state.interfaces,
            rules: Vec::new(),
            aliases: aliases.collect(),
            protections: Vec::new(),
            vpn_accounts: Vec::new(),
            mirrors: Vec::new(),
        })
    }

    /// Read only as far as the page reaches; a whole read where netlink cannot answer.
    async fn alias_entries_page(
        &self,
        alias: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Option<(Vec<AliasEntry>, bool)>, BackendError> {
        match self.page_by_netlink(alias, skip, limit).await {
            Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::AuthorizationFailed) => {
                let state = self.snapshot().await?;
                Ok(state.alias(alias).map(|a| {
                    let page = a.entries.iter().skip(skip).take(limit).cloned().collect();
                    (page, a.entries.len() > skip.saturating_add(limit))
                }))
            }
            page => page,
        }
    }

    /// Looked up one by one, not listed: the reconciler checks its expiries this way.
    async fn alias_entries(&self, alias: &str, values: &[String]) -> Result<Option<Vec<AliasEntry>>, BackendError> {
        let wanted = BTreeMap::from([(alias.to_string(), values.iter().cloned().collect::<BTreeSet<String>>())]);
        match self.read_touched(touched::Wanted::ByAlias(wanted)).await {
            Ok(Some(touched)) => Ok(touched.state.alias(alias).map(|a| a.entries_among(values))),
            Ok(None) => Ok(None),
            // Where netlink cannot be reached, from a whole read.
            Err(_) => Ok(self.snapshot().await?.alias(alias).map(|a| a.entries_among(values))),
        }
    }

    async fn apply(&self, plan: &ChangePlan) -> Result<Applied, BackendError> {
        let _writer = self.writer.lock().await;
        // VPN users' peers first (`wireguard`), then the table; a failure of the table undoes the peers.
        let vpn: Vec<&Operation> = plan.operations.iter().filter(|o| o.is_vpn_account()).collect();
        let table_plan = wireguard::without_vpn(plan);
        if !vpn.is_empty() {
            self.apply_vpn(&vpn).await?;
            if table_plan.operations.is_empty() {
                self.confirm_vpn(&vpn)?;
                return Ok(Applied::default());
            }
        }
        let before = self.kernel_generation().await.ok();
        let (applied, transactions) = match self.apply_locked(&table_plan).await {
            Ok(done) => done,
            Err(e) => {
                self.undo_vpn(&vpn).await;
                return Err(e);
            }
        };
        if !vpn.is_empty() {
            self.confirm_vpn(&vpn)?;
        }
        // Generations that advanced by exactly this apply's transactions are its own, not hand edits.
        if let (Some(before), Ok(after)) = (before, self.kernel_generation().await)
            && after.wrapping_sub(before) == transactions
            && transactions > 0
        {
            self.edits.own(before.wrapping_add(1), after);
        }
        Ok(applied)
    }

    /// VPN users' peers the WireGuard interface lost (restarted from a file without them) are added back.
    async fn restore_lost(&self, _state: &RuleSet) -> Result<Vec<String>, BackendError> {
        let _writer = self.writer.lock().await;
        self.restore_lost_peers().await
    }

    async fn hand_edits(&self) -> portcullis_core::firewall::HandEdits {
        self.edits.take()
    }

    /// `nft -c`, or for a change of single entries the same netlink batch without its end: either way the kernel
    /// checks the whole batch without committing it.
    async fn check(&self, plan: &ChangePlan) -> Result<(), BackendError> {
        // VPN users' peers are checked against the interface when they are applied; the table checks the rest.
        if plan.operations.iter().any(Operation::is_vpn_account) {
            self.wireguard_server_side().await?;
        }
        let plan = &wireguard::without_vpn(plan);
        if plan.operations.is_empty() {
            return Ok(());
        }
        if self.skeleton_written.load(std::sync::atomic::Ordering::Acquire)
            && touched::host_entries_only(plan)
            && self.apply_touched(plan, touched::Commit::No).await?.is_some()
        {
            return Ok(());
        }
        let current = self.read_table().await?;
        let (batch, _) = self.batch(&current, plan, Utc::now())?;
        if batch.tunnels.wanted.is_empty() {
            return self.run_batch(&batch, true).await;
        }
        // nft resolves the device a rule copies into when it reads the rule, so a new mirror's tunnel must exist for
        // the check too: made for it (idle, no rule uses it) and deleted after, while no apply runs.
        let _writer = self.writer.lock().await;
        let made = self.make_tunnels(&batch.tunnels).await?;
        let checked = self.run_batch(&batch, true).await;
        self.delete_tunnels(&made).await;
        checked
    }

    async fn system_status(&self) -> Result<SystemStatus, BackendError> {
        status::system_status(self).await
    }

    async fn interface_counters(&self) -> Result<Option<Vec<InterfaceCounters>>, BackendError> {
        Ok(Some(self.link_counters().await?))
    }

    /// From the accounting table when `accounting` is on; refused with how to turn it on otherwise.
    async fn address_counters(&self) -> Result<Option<AddressCounters>, BackendError> {
        if !self.accounting {
            return Err(BackendError::new(
                ErrorCode::Unsupported,
                format!("target {} does not count traffic per device", self.name),
            )
            .with_hint(format!(
                "set targets.{}.accounting: true: Portcullis then makes the table inet {} (counting only) on the \
                 first reading and counts from then on",
                self.name,
                accounting::table_name(&self.settings.table)
            )));
        }
        Ok(Some(self.accounting_counters().await?))
    }

    /// The kernel's neighbour table of the configured interfaces.
    async fn device_sightings(&self) -> Result<Option<Vec<portcullis_core::device::Sighting>>, BackendError> {
        let listing = self.settings.runner.ip_json(&["-s", "neigh", "show"]).await?;
        Ok(Some(devices::sightings(&listing, &self.settings.interfaces, chrono::Utc::now())))
    }

    fn unsupported_protection_fields(&self, protection: &Protection) -> Vec<UnsupportedField> {
        protect::unsupported(protection)
    }

    /// Everything but copying what leaves an interface on a kernel older than 5.16 (no netdev egress hook).
    fn unsupported_mirror(&self, ask: &MirrorAsk) -> Option<UnsupportedField> {
        mirror::unsupported(ask, self.kernel().map(|(version, release)| (*version, release.as_str())))
    }

    /// From the mirrors' named counters; nothing is listed for a state without mirrors.
    async fn mirror_counters(&self, state: &RuleSet) -> Result<Vec<MirrorCounter>, BackendError> {
        if state.mirrors.is_empty() {
            return Ok(Vec::new());
        }
        Ok(mirror::counters(&self.read_mirror_tables().await?, &state.mirrors))
    }

    fn preview_statements(&self, plan: &ChangePlan, _state: &RuleSet) -> Result<Vec<String>, BackendError> {
        self.mirror_statements(plan)
    }

    /// Counters from a listing without set elements, the overload sets listed one by one (a block list of a
    /// million entries is not listed for them), and the SYN proxy's sysctls read in the target's namespace.
    async fn protection_live(&self, state: &RuleSet) -> Result<Vec<ProtectionLive>, BackendError> {
        if state.protections.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let mut listed = match self.list_table(&["-j", "-t"]).await? {
            Some(json) => KernelTable::parse(&json)?.protections,
            None => protect::ListedProtections::default(),
        };
        let mut live = Vec::new();
        for p in &state.protections {
            if p.overload_block_seconds.is_some() {
                for part in ["ov4", "ov6"] {
                    let name = format!("{}_{part}", protect::short_name(&p.protection_id));
                    let args = ["-j", "list", "set", "inet", self.settings.table.as_str(), name.as_str()];
                    let json = self.settings.runner.nft(&args).await.map_err(|e| e.into_backend("nft list set"))?;
                    listed.sets.extend(KernelTable::parse(&json)?.protections.sets);
                }
            }
            let host_checks = if p.syn_proxy { self.synproxy_sysctls().await } else { Vec::new() };
            let note = host_checks.iter().any(|c| !c.ok).then(|| {
                "the SYN proxy needs the host settings marked not ok; Portcullis does not change them (set them with \
                 sysctl -w, in the target's network namespace)"
                    .to_string()
            });
            live.push(ProtectionLive {
                protection_id: p.protection_id.clone(),
                live: true,
                overloaded: protect::overloaded(&listed, p, now),
                dropped: protect::counters(&listed, p),
                host_checks,
                note,
            });
        }
        Ok(live)
    }

    /// From a listing without set elements: counters live on the rules, and a block list of 100,000 entries
    /// would otherwise be listed and parsed for nothing.
    async fn rule_hits(&self) -> Result<Option<Vec<RuleHits>>, BackendError> {
        let kernel = match self.list_table(&["-j", "-t"]).await? {
            Some(json) => KernelTable::parse(&json)?,
            None => KernelTable::default(),
        };
        let mut rules: Vec<RuleHits> = self
            .rules_and_hits(&kernel)?
            .1
            .into_iter()
            .map(|(rule_id, h)| RuleHits { rule_id, packets: h.packets, bytes: h.bytes })
            .collect();
        rules.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        Ok(Some(rules))
    }

    /// The kernel log lines of Portcullis' rules, as filterlog lines, oldest first, at most `limit`.
    async fn firewall_log(&self, limit: usize) -> Result<Vec<String>, BackendError> {
        let output = tokio::process::Command::new("dmesg")
            .args(["--time-format", "iso", "--nopager"])
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| BackendError::new(ErrorCode::Unavailable, format!("cannot run dmesg: {e}")))?;
        if !output.status.success() {
            return Err(BackendError::new(
                ErrorCode::Unavailable,
                format!("dmesg: {}", String::from_utf8_lossy(&output.stderr).trim()),
            )
            .with_hint("reading the kernel log needs root or CAP_SYSLOG"));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let hostname = portcullis_host::hostname();
        let devices: Vec<&str> = self.settings.interfaces.iter().map(|(_, d)| d.as_str()).collect();
        let mut lines: Vec<String> = text
            .lines()
            .filter_map(|l| logs::filterlog_line(l, hostname.trim()))
            .filter(|l| devices.iter().any(|d| l.contains(&format!(",{d},match,"))))
            .collect();
        let skip = lines.len().saturating_sub(limit);
        lines.drain(..skip);
        Ok(lines)
    }
}
