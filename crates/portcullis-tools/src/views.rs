//! Tool results. Each type here is a tool's structured output and generates its output schema; list-like
//! results carry their rows under `data` (BRIEF §2).

use std::collections::BTreeMap;

use portcullis_core::firewall::{SystemStatus, VpnConnection, VpnUser};
use portcullis_core::lint::Finding;
use portcullis_core::model::{Rule, RuleSet, Timestamp};
use portcullis_core::plan::Operation;
use schemars::JsonSchema;
use serde::Serialize;

/// A rule with its position among its interface's rules and its state in words.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RuleView {
    #[serde(flatten)]
    pub rule: Rule,
    /// 0-based index among the rules of the rule's interface; evaluation goes top to bottom.
    pub position: usize,
    /// enabled, disabled or paused.
    pub status: String,
    /// What the rule matched since it was written, where the firewall counts it (nftables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hits: Option<crate::HitsView>,
}

impl RuleView {
    pub fn of(state: &RuleSet, rule: &Rule) -> Self {
        let status = if rule.paused_until.is_some() {
            "paused"
        } else if rule.enabled {
            "enabled"
        } else {
            "disabled"
        };
        Self {
            rule: rule.clone(),
            position: state.position_of(&rule.rule_id).unwrap_or_default(),
            status: status.into(),
            hits: None,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RulesSummary {
    pub total: usize,
    pub enabled: usize,
    pub disabled: usize,
    pub paused: usize,
    pub by_interface: BTreeMap<String, usize>,
    pub by_action: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DefaultPolicy {
    pub inbound: String,
    pub outbound: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RulesResult {
    pub target: String,
    pub data: Vec<RuleView>,
    pub count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<RulesSummary>,
    /// The target's interfaces (names rules use, devices, addresses).
    pub interfaces: Vec<portcullis_core::model::Interface>,
    pub default_policy: DefaultPolicy,
}

/// `list_aliases`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AliasesResult {
    pub target: String,
    pub data: Vec<AliasView>,
    pub count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AliasView {
    pub name: String,
    pub kind: portcullis_core::model::AliasKind,
    pub description: String,
    /// The kind of list Portcullis manages (`block_list`, `grant_list`), if it manages this alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed: Option<String>,
    /// Live entries (expired ones not yet swept are left out).
    pub entry_count: usize,
    /// The live entries, when one alias is asked for by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<portcullis_core::model::AliasEntry>>,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Applied on the firewall and verified by reading it back.
    Applied,
    /// `dry_run`: the exact plan; nothing was changed.
    Planned,
    /// Applied and verified; undone automatically at `confirm_by` unless `confirm_change` arrives.
    PendingConfirmation,
    /// The undo of an earlier change, applied and verified.
    RolledBack,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeResult {
    pub change_id: String,
    pub status: ChangeStatus,
    pub target: String,
    pub summary: String,
    /// Before and after of every object the change touches, in the order they are applied.
    pub plan: Vec<Operation>,
    pub warnings: Vec<String>,
    pub risk_score: u8,
    /// When the change undoes itself (block expiry, end of a pause).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The rule as it is now on the firewall, for rule changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleView>,
    pub verified: bool,
    /// Whether applying this change needs a person's approval (reported by dry runs too).
    pub approval_required: bool,
    /// The approval this change used, when it needed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// When an unconfirmed change is undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_by: Option<Timestamp>,
    /// What the change does to traffic: the flows that change verdict, each with a packet `simulate_packet`
    /// confirms, and `no_effect`, `narrows`, `widens` or `mixed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<portcullis_core::effect::Effect>,
    /// For a call with `ip_addresses`: what the change does to each address, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<AddressOutcome>,
    /// The exact statements the firewall runs for the change's mirrors (nft JSON commands, pf rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<String>,
    /// `create_vpn_user`: the client's configuration file with its private key (WireGuard's `wg-quick` file, or
    /// OpenVPN's inline `.ovpn` exported by pfSense), in the answer of the call that applied the change and nowhere
    /// else (never stored; it cannot be shown again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_config: Option<String>,
    /// `create_vpn_user` on an OpenVPN server of pfSense: the password of the user pfSense authenticates, made for
    /// this user, shown here once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// What `client_config` and `password` hold and that no copy is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_notice: Option<String>,
}

/// What a list change does to one of its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AddressOutcome {
    pub ip_address: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Newly blocked.
    Blocked,
    /// Already blocked or granted; the new duration replaces the old one.
    Renewed,
    /// Already blocked for longer; that block is kept as it was.
    KeptLonger,
    Unblocked,
    /// Not blocked: nothing to remove.
    NotBlocked,
    Granted,
    Revoked,
    /// No grant: nothing to remove.
    NoGrant,
}

impl AddressOutcome {
    /// Each listed address's outcome, read from the plan made for it; none for a call with one `ip_address`.
    pub(crate) fn of(intent: &portcullis_core::plan::Intent, plan: &portcullis_core::plan::ChangePlan) -> Vec<Self> {
        use portcullis_core::plan::Intent;
        let (addresses, kind) = match intent {
            Intent::Block { addresses, .. } => (addresses, (Outcome::Blocked, Outcome::NotBlocked)),
            Intent::Grant { addresses, .. } => (addresses, (Outcome::Granted, Outcome::NoGrant)),
            Intent::Unblock { addresses, .. } => (addresses, (Outcome::Unblocked, Outcome::NotBlocked)),
            Intent::Revoke { addresses, .. } => (addresses, (Outcome::Revoked, Outcome::NoGrant)),
            _ => return Vec::new(),
        };
        if !addresses.is_listed() {
            return Vec::new();
        }
        let mut replaced = std::collections::HashMap::new();
        let mut kept = std::collections::HashSet::new();
        let mut removed = std::collections::HashSet::new();
        for op in &plan.operations {
            match op {
                Operation::PutAliasEntries { before, after, .. } => {
                    replaced.extend(before.iter().map(|e| (e.value.as_str(), e)));
                    kept.extend(after.iter().filter(|e| before.contains(e)).map(|e| e.value.as_str()));
                }
                Operation::RemoveAliasEntries { before, .. } => removed.extend(before.iter().map(|e| e.value.as_str())),
                _ => {}
            }
        }
        let putting = matches!(intent, Intent::Block { .. } | Intent::Grant { .. });
        addresses
            .nets()
            .iter()
            .map(|net| {
                let value = portcullis_core::model::net_to_string(net);
                let outcome = match (putting, kept.contains(value.as_str()), replaced.contains_key(value.as_str())) {
                    (true, true, _) => Outcome::KeptLonger,
                    (true, false, true) => Outcome::Renewed,
                    (true, false, false) => kind.0,
                    (false, ..) if removed.contains(value.as_str()) => kind.0,
                    (false, ..) => kind.1,
                };
                Self { ip_address: value, outcome }
            })
            .collect()
    }
}

/// A change as the journal holds it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeRecordView {
    pub change_id: String,
    pub target: String,
    pub tool: String,
    pub principal: String,
    /// applying, applied, pending_confirmation, confirmed, rolled_back, rollback_failed or failed.
    pub status: String,
    pub summary: String,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_by: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PendingChangesResult {
    pub data: Vec<ChangeRecordView>,
    pub count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BlockView {
    pub ip_address: String,
    /// The interface the block applies on, or `all`.
    pub interface: String,
    /// For a domain block (kind `domain`): the name the address is blocked as, one of the addresses it resolves
    /// to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<i64>,
    pub permanent: bool,
    /// The block list it is in (empty for an overload block, which lives in its protection).
    pub alias: String,
    /// `block` (a block list's entry), `domain` (an address of a blocked name, destination blocked) or `overload`
    /// (a source a DDoS protection holds blocked for exceeding its per-source rate).
    pub kind: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BlocksResult {
    pub target: String,
    pub data: Vec<BlockView>,
    /// Blocks in `data`.
    pub count: usize,
    /// With `limit`: where the next page starts (give it as `cursor`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SystemStatusResult {
    pub target: String,
    pub backend: String,
    /// Who is asking: the principal this call runs as, and its role.
    pub principal: CallerView,
    #[serde(flatten)]
    pub status: SystemStatus,
}

/// The principal a call runs as.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallerView {
    pub name: String,
    pub role: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DecidingRule {
    /// `rule`, `default_deny` or `default_pass_out`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    pub interface: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed: Option<String>,
}

/// The packet `simulate_packet` decided: the same shape as the witness packets of a change's effect.
pub use portcullis_core::effect::Witness as SimulatedPacket;

#[derive(Debug, Serialize, JsonSchema)]
pub struct SimulateResult {
    pub target: String,
    /// pass, block or reject.
    pub verdict: String,
    pub rule: DecidingRule,
    pub packet: SimulatedPacket,
    pub explanation: String,
    /// The DDoS protections whose limits a new connection like this one counts against (each applies); empty
    /// when none does.
    pub rate_limited_by: Vec<ProtectionMatch>,
    /// The mirrors that would copy this packet, each with the sensor the copy goes to; empty when none does.
    pub mirrored_to: Vec<MirrorMatch>,
    pub evaluated_at: Timestamp,
}

/// A mirror that copies a simulated packet.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MirrorMatch {
    pub mirror_id: String,
    pub sensor: String,
    /// What it copies, in one line.
    pub summary: String,
}

/// A protection that takes a simulated packet.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProtectionMatch {
    pub protection_id: String,
    /// Its limits, in one line.
    pub summary: String,
    /// Whether the packet's source is exempt (a management host, protected range or the caller it was set by).
    pub exempt: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LintResult {
    pub target: String,
    pub data: Vec<Finding>,
    pub count: usize,
    pub by_kind: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub hash: String,
    /// The record as written: time, principal, transport, tool, operation, arguments (redacted), decision,
    /// reason, risk score, change id, outcome.
    pub record: serde_json::Value,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditLogResult {
    pub data: Vec<AuditEntry>,
    pub count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditVerifyResult {
    pub ok: bool,
    pub records: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VpnStatusResult {
    pub target: String,
    pub connections: Vec<VpnConnection>,
    pub users: Vec<VpnUser>,
    /// Servers and tunnels that are up.
    pub connections_up: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GrantView {
    pub ip_address: String,
    pub alias: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<i64>,
    pub permanent: bool,
    /// The pass rules that let this grant in (rule ids).
    pub rules: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GrantsResult {
    pub target: String,
    pub data: Vec<GrantView>,
    pub count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogEntryView {
    pub timestamp: Option<Timestamp>,
    /// The logical interface (wan, lan, ...), or the device when it is not known.
    pub interface: String,
    pub action: String,
    pub direction: String,
    pub protocol: String,
    pub src_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    pub dst_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<String>,
    /// The tracker of the rule that logged the packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    pub length: u32,
    /// The source's and destination's countries (ISO 3166-1 alpha-2), where a country database is installed and
    /// knows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_country: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogsResult {
    pub target: String,
    /// The country database behind `src_country`/`dst_country`, with its attribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countries: Option<CountrySource>,
    pub data: Vec<LogEntryView>,
    pub count: usize,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Raw lines read from the firewall, and those that were not filterlog lines.
    pub lines_read: usize,
    pub lines_malformed: usize,
    /// Present when the pull of the firewall's own log before this answer could not reach back to the previous
    /// pull: lines logged in between may be missing from the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_gap: Option<LogGap>,
}

/// A pull of the firewall's own log (pfRest) that ended before it met the lines the previous pull had read: the
/// page cap was reached during a burst, or the firewall's log no longer holds them (cleared or rotated).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LogGap {
    /// Lines this pull read from the firewall.
    pub lines_read: u64,
    /// The most a pull reads.
    pub cap: u64,
    pub warning: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Alarm {
    /// drift, denial_burst, high_risk_refused, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub severity: String,
    pub time: Timestamp,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For threats found in the logs: the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// For threats found in the logs: the adaptive threat score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat_score: Option<u8>,
    pub recommendation: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AlarmsResult {
    pub data: Vec<Alarm>,
    pub count: usize,
}

/// Which country the offline database puts an address in, with the data's date and the attribution its
/// licence asks for.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CountryLookupResult {
    pub ip_address: String,
    /// ISO 3166-1 alpha-2 code; absent for private, reserved and unassigned space.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_name: Option<String>,
    pub source: CountrySource,
}

/// The country database an answer comes from.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CountrySource {
    pub database_type: String,
    /// The data's build date (YYYY-MM-DD).
    pub data_date: String,
    pub attribution: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GeoBlocksResult {
    pub data: Vec<portcullis_core::geo::GeoBlockView>,
    pub count: usize,
    /// The country database new blocks and refreshes come from (absent when none is installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<CountrySource>,
}
