//! The `Firewall` trait every backend implements (lab, pfSense, nftables), and the stable error codes that
//! travel from a backend to a script.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::freshness::StateRead;
use crate::model::{Alias, AliasEntry, RuleId, RuleSet, Timestamp};
use crate::plan::ChangePlan;
use crate::protection::Protection;

/// Stable, matchable error codes (BRIEF §6). Scripts match on these strings; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    ConnectionRefused,
    AuthenticationFailed,
    AuthorizationFailed,
    TlsError,
    Timeout,
    PfrestNotInstalled,
    NotFound,
    Conflict,
    ValidationError,
    PolicyDenied,
    RateLimited,
    ApprovalRequired,
    LockoutPrevented,
    ApplyFailed,
    VerificationFailed,
    UnexpectedResponse,
    Unavailable,
    InternalError,
    /// The caller gave up (MCP `notifications/cancelled`) before the work finished; nothing was changed.
    Cancelled,
    /// This target or installation cannot do what was asked; the message says why and the hint what to do instead.
    Unsupported,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionRefused => "connection_refused",
            Self::AuthenticationFailed => "authentication_failed",
            Self::AuthorizationFailed => "authorization_failed",
            Self::TlsError => "tls_error",
            Self::Timeout => "timeout",
            Self::PfrestNotInstalled => "pfrest_not_installed",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::ValidationError => "validation_error",
            Self::PolicyDenied => "policy_denied",
            Self::RateLimited => "rate_limited",
            Self::ApprovalRequired => "approval_required",
            Self::LockoutPrevented => "lockout_prevented",
            Self::ApplyFailed => "apply_failed",
            Self::VerificationFailed => "verification_failed",
            Self::UnexpectedResponse => "unexpected_response",
            Self::Unavailable => "unavailable",
            Self::InternalError => "internal_error",
            Self::Cancelled => "cancelled",
            Self::Unsupported => "unsupported",
        }
    }
}

/// A failure inside a backend, with a hint a person can act on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    pub code: ErrorCode,
    pub message: String,
    pub hint: Option<String>,
}

impl BackendError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// What kind of firewall a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Lab,
    Pfsense,
    Nftables,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    pub name: String,
    pub kind: BackendKind,
    pub description: String,
}

/// A health check of a target, as reported by `get_system_status`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HealthCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// System status of a target. Percentages are 0-100.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SystemStatus {
    pub cpu_usage: f64,
    pub memory_usage: f64,
    /// Seconds since the system started.
    pub uptime: u64,
    pub uptime_human: String,
    pub version: String,
    pub platform: String,
    pub hostname: String,
    pub health: Vec<HealthCheck>,
}

/// The kind of VPN a status row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VpnKind {
    Openvpn,
    Ipsec,
    Wireguard,
}

/// A VPN server, tunnel or phase-1 connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VpnConnection {
    pub kind: VpnKind,
    pub name: String,
    /// up, down, connecting, or what the firewall reports.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
}

/// A connected VPN user or peer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VpnUser {
    pub kind: VpnKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<String>,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct VpnStatus {
    pub connections: Vec<VpnConnection>,
    pub users: Vec<VpnUser>,
}

/// What anyone but this process changed in a target's lists since the last [`Firewall::hand_edits`] call: what a
/// drift check must compare, so that it costs the edits and not the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandEdits {
    /// The backend cannot tell (it does not watch, started watching only now, or lost notifications): compare
    /// the lists whole.
    Unknown,
    /// Only these entries, by alias and value, can differ from what this process wrote; none when nobody else
    /// touched the lists.
    Touched(BTreeMap<String, BTreeSet<String>>),
}

/// What applying a plan produced that the plan could not know in advance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Ids assigned to the rules of `CreateRule` operations, in operation order.
    pub created_rules: Vec<RuleId>,
    /// What the firewall made for the caller alone while applying (an OpenVPN user's client configuration and
    /// password): added to the answer of the call that applied the change, and kept nowhere else.
    pub handed_over: HandedOver,
}

/// Secrets made by an apply for its caller, by answer field. `Debug` shows the field names only, so a logged
/// `Applied` never carries them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HandedOver(pub BTreeMap<String, String>);

impl std::fmt::Debug for HandedOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// One firewall. Implementations read fresh state on every `snapshot` and apply a whole plan or nothing.
#[async_trait]
pub trait Firewall: Send + Sync {
    fn info(&self) -> TargetInfo;

    /// Interfaces, rules in evaluation order, and aliases, read from the firewall now.
    async fn snapshot(&self) -> Result<RuleSet, BackendError>;

    /// The state with the parts `read` names read from the firewall now, and the others from what this backend
    /// read recently (within its configured age; older parts are read now too). Backends that keep no recent
    /// state read everything, as [`Firewall::snapshot`] does.
    async fn state(&self, _read: &StateRead) -> Result<RuleSet, BackendError> {
        self.snapshot().await
    }

    /// Whether [`Firewall::state`] answers parts from a recent read. Only then is a change planned against the
    /// recent state first and its touched objects read afterwards (two reads instead of one elsewhere).
    fn keeps_recent_state(&self) -> bool {
        false
    }

    /// Whether [`Firewall::state`] answers [`StateRead::entries_with`] with only those entries, looked up: then a
    /// change of single addresses is planned against them, not against lists of a million entries.
    fn plans_on_looked_up_entries(&self) -> bool {
        false
    }

    /// Applies every operation of the plan, or none of them.
    async fn apply(&self, plan: &ChangePlan) -> Result<Applied, BackendError>;

    /// The entries of its lists that others changed since the last call ([`HandEdits`]). The default cannot tell.
    async fn hand_edits(&self) -> HandEdits {
        HandEdits::Unknown
    }

    async fn system_status(&self) -> Result<SystemStatus, BackendError>;

    /// Validates a plan with the firewall itself without changing anything (pfRest `dry_run`). Backends that
    /// cannot do this accept every plan the core planner made.
    async fn check(&self, _plan: &ChangePlan) -> Result<(), BackendError> {
        Ok(())
    }

    /// Whether this firewall decides the traffic that the host running Portcullis starts itself (outbound rules with
    /// the source `(self)`), which an egress policy for that host needs. Only a firewall on that host can.
    fn filters_own_traffic(&self) -> bool {
        false
    }

    /// The VPN servers whose users Portcullis manages on this firewall (`crate::vpn`), read now where the firewall
    /// holds them; none by default.
    async fn vpn_servers(&self) -> Result<Vec<crate::vpn::VpnServer>, BackendError> {
        Ok(Vec::new())
    }

    /// The VPN users Portcullis manages here, read now; an error when the VPN server does not answer.
    async fn vpn_accounts(&self) -> Result<Vec<crate::vpn::VpnAccount>, BackendError> {
        Ok(self.snapshot().await?.vpn_accounts)
    }

    /// What a WireGuard client of `server` needs of it (its public key, endpoint, routes).
    async fn wireguard_server_side(&self, server: &str) -> Result<crate::vpn::WireguardServerSide, BackendError> {
        Err(BackendError::new(
            ErrorCode::Unsupported,
            format!("this firewall has no WireGuard server {server} Portcullis manages"),
        ))
    }

    /// VPN servers, tunnels and connected users, optionally of one kind.
    async fn vpn_status(&self, _kind: Option<VpnKind>) -> Result<VpnStatus, BackendError> {
        Ok(VpnStatus::default())
    }

    /// The newest raw firewall log lines (pfSense filterlog format), newest last, at most `limit`.
    async fn firewall_log(&self, _limit: usize) -> Result<Vec<String>, BackendError> {
        Err(BackendError::new(ErrorCode::Unavailable, "this firewall does not serve its log"))
    }

    /// Whether [`Firewall::firewall_log_page`] reaches past the newest page. Pulls from a backend that does not
    /// page cannot go deeper than one page, so they cannot close a gap and do not try.
    fn pages_firewall_log(&self) -> bool {
        false
    }

    /// One page of the log counted from the newest line: the `limit` lines before the newest `skip` ones, oldest
    /// first; shorter than `limit` when it reaches the oldest line. Lines that arrive between two calls shift the
    /// pages towards the newest, so consecutive pages may overlap, never leave a gap. The default serves the
    /// first page only, through [`Firewall::firewall_log`].
    async fn firewall_log_page(&self, skip: usize, limit: usize) -> Result<Vec<String>, BackendError> {
        if skip > 0 {
            return Err(BackendError::new(ErrorCode::Unavailable, "this firewall's log is not paged"));
        }
        self.firewall_log(limit).await
    }

    /// The entries of `alias` whose values are among `values`, read from the firewall now; `None` when the alias
    /// does not exist. The reconciler reads only the entries that are due this way, so backends that hold long
    /// lists locally answer without copying the whole state; the default reads a full snapshot.
    async fn alias_entries(&self, alias: &str, values: &[String]) -> Result<Option<Vec<AliasEntry>>, BackendError> {
        let state = self.snapshot().await?;
        Ok(state.alias(alias).map(|a| a.entries_among(values)))
    }

    /// The interfaces and every alias' definition (no entries, no rules), read now: what a paged listing of
    /// entries starts from. The default reads a snapshot.
    async fn outline(&self) -> Result<RuleSet, BackendError> {
        let state = self.snapshot().await?;
        let aliases = state.aliases.into_iter().map(|a| Alias { entries: Vec::new(), ..a }).collect();
        Ok(RuleSet {
            interfaces: state.interfaces,
            rules: Vec::new(),
            aliases,
            protections: Vec::new(),
            mirrors: Vec::new(),
            vpn_accounts: Vec::new(),
        })
    }

    /// Entries `skip..skip + limit` of `alias` in the firewall's own order, and whether more follow; `None` when
    /// the alias does not exist. Entries added or removed between two pages may shift them. The default reads a
    /// snapshot; a backend whose lists are too long to read whole reads only up to the page.
    async fn alias_entries_page(
        &self,
        alias: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Option<(Vec<AliasEntry>, bool)>, BackendError> {
        let state = self.snapshot().await?;
        Ok(state.alias(alias).map(|a| {
            let page = a.entries.iter().skip(skip).take(limit).cloned().collect();
            (page, a.entries.len() > skip.saturating_add(limit))
        }))
    }

    /// The interfaces' cumulative counters, kept by the firewall itself (every packet, where logs see only the
    /// logged ones); `None` for a firewall that keeps none (the lab).
    async fn interface_counters(&self) -> Result<Option<Vec<InterfaceCounters>>, BackendError> {
        Ok(None)
    }

    /// What each rule has matched since it was written; `None` where the firewall does not report it.
    async fn rule_hits(&self) -> Result<Option<Vec<RuleHits>>, BackendError> {
        Ok(None)
    }

    /// The parts of `protection` this firewall cannot enforce, field by field; a protection with any is refused
    /// whole (`unsupported`) rather than half applied. The default: everything is enforced.
    fn unsupported_protection_fields(&self, _protection: &Protection) -> Vec<UnsupportedField> {
        Vec::new()
    }

    /// What the protections in `state` are doing now: sources blocked for overload, what they dropped, and the
    /// host settings they depend on. The default: state only (the lab, which sees no live traffic).
    async fn protection_live(&self, state: &RuleSet) -> Result<Vec<ProtectionLive>, BackendError> {
        Ok(state
            .protections
            .iter()
            .map(|p| ProtectionLive {
                protection_id: p.protection_id.clone(),
                live: false,
                note: Some("this target holds the protection as state and sees no live traffic".into()),
                ..Default::default()
            })
            .collect())
    }

    /// Why this firewall cannot carry out `mirror` (which field, why, what to do instead), or `None` when it can.
    /// A mirror is refused whole before it is planned. The default: no mirroring at all.
    fn unsupported_mirror(&self, _mirror: &crate::mirror::MirrorAsk) -> Option<UnsupportedField> {
        Some(UnsupportedField {
            field: "interface".into(),
            why: "this target has no way to copy traffic".into(),
            instead: "copy the traffic with a switch SPAN port, or mirror on a target that can (nftables, lab)".into(),
        })
    }

    /// What each mirror in `state` has copied, from the firewall's own counters. The default: none counted.
    async fn mirror_counters(&self, _state: &RuleSet) -> Result<Vec<MirrorCounter>, BackendError> {
        Ok(Vec::new())
    }

    /// The exact statements the firewall would run for the plan's mirrors (nft JSON, pf rules), for dry_run
    /// answers; `state` is what the plan was made on. The default: none to show.
    fn preview_statements(&self, _plan: &ChangePlan, _state: &RuleSet) -> Result<Vec<String>, BackendError> {
        Ok(Vec::new())
    }

    /// The devices the firewall sees on its networks now (neighbour or ARP table, its DHCP leases); `None` when it
    /// keeps no such table (then only configured lease files and traffic name devices).
    async fn device_sightings(&self) -> Result<Option<Vec<crate::device::Sighting>>, BackendError> {
        Ok(None)
    }

    /// Traffic per address of the inside networks, as the firewall counts it (see [`AddressCounters`]); `None`
    /// when it counts none.
    async fn address_counters(&self) -> Result<Option<AddressCounters>, BackendError> {
        Ok(None)
    }

    /// Whether the firewall resolves host names in its lists itself and keeps them current (pfSense's FQDN alias
    /// entries): a domain block then holds the name, not the addresses Portcullis resolved.
    fn resolves_names(&self) -> bool {
        false
    }

    /// Why a mirror on this firewall needs an admin, when the way it is carried out is root-equivalent (pfSense's
    /// shell); `None` when the mirror permission is enough.
    fn mirror_needs_admin(&self) -> Option<String> {
        None
    }

    /// Puts back objects the firewall lost without any change Portcullis made (pfSense empties anchors on a
    /// reboot), as `state` holds them; the names of what was restored. The reconciler calls it on every full
    /// read. The default: the firewall keeps what it is given.
    async fn restore_lost(&self, _state: &RuleSet) -> Result<Vec<String>, BackendError> {
        Ok(Vec::new())
    }
}

/// Traffic per address, as a firewall counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressCounters {
    pub rows: Vec<AddressTraffic>,
    /// True: counters that only grow, since the counting began (a difference of two readings is the traffic in
    /// between); false: what the firewall's current connections carried (pf states), which forgets closed ones.
    pub cumulative: bool,
    /// The counting began just now (this reading set it up).
    pub started_now: bool,
    /// Where the figures come from, in a few words.
    pub source: String,
    /// What they miss.
    pub misses: Option<String>,
}

/// What one address sent and received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressTraffic {
    pub address: std::net::IpAddr,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
}

impl AddressTraffic {
    /// Nothing counted yet.
    pub fn zero(address: std::net::IpAddr) -> Self {
        Self { address, bytes_sent: 0, bytes_received: 0, packets_sent: 0, packets_received: 0 }
    }
}

/// Traffic summed per address, as counters are read one by one (set elements, states, log lines).
#[derive(Debug, Default)]
pub struct TrafficTally(std::collections::BTreeMap<std::net::IpAddr, AddressTraffic>);

impl TrafficTally {
    fn row(&mut self, address: std::net::IpAddr) -> &mut AddressTraffic {
        self.0.entry(address).or_insert_with(|| AddressTraffic::zero(address))
    }

    pub fn sent(&mut self, address: std::net::IpAddr, bytes: u64, packets: u64) {
        let row = self.row(address);
        row.bytes_sent += bytes;
        row.packets_sent += packets;
    }

    pub fn received(&mut self, address: std::net::IpAddr, bytes: u64, packets: u64) {
        let row = self.row(address);
        row.bytes_received += bytes;
        row.packets_received += packets;
    }

    /// One row per address, in address order.
    pub fn into_rows(self) -> Vec<AddressTraffic> {
        self.0.into_values().collect()
    }
}

/// What one mirror copied, as the firewall counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MirrorCounter {
    pub mirror_id: String,
    /// Packets copied to the sensor (after the cap).
    pub packets: u64,
    pub bytes: u64,
}

/// A field of a call that this firewall cannot carry out, with why and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnsupportedField {
    pub field: String,
    pub why: String,
    pub instead: String,
}

/// A protection's live state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProtectionLive {
    pub protection_id: String,
    /// Whether the figures below were read from the firewall now.
    pub live: bool,
    /// Sources blocked for exceeding their per-source rate, with when the block ends.
    pub overloaded: Vec<OverloadedSource>,
    /// What each of the protection's limits dropped or refused since it was written.
    pub dropped: Vec<LimitCounter>,
    /// Host settings the protection depends on (the SYN proxy's sysctls), as found; never changed by Portcullis.
    pub host_checks: Vec<HostCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OverloadedSource {
    /// An IPv4 address, or an IPv6 /64.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LimitCounter {
    /// `overload`, `per_source_rate`, `max_connections_per_source`, `rate_limit`, `syn_proxy`.
    pub limit: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostCheck {
    /// e.g. `net.ipv4.tcp_syncookies`.
    pub setting: String,
    pub wanted: String,
    /// `None` where it could not be read.
    pub found: Option<String>,
    pub ok: bool,
}

/// An interface's cumulative counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InterfaceCounters {
    /// Logical name, e.g. `wan`.
    pub interface: String,
    /// Device, e.g. `em0`.
    pub device: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// What one rule has matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleHits {
    pub rule_id: RuleId,
    pub packets: u64,
    pub bytes: u64,
}
