//! DDoS protections on pfSense, as far as pfRest v2 can carry them.
//!
//! pfSense has no object for a protection, and pfRest v2 has no field for pf's connection limits
//! (`max-src-conn-rate`, `overload <virusprot>`, `max-src-conn`; WAVE2-FACTS §2a, CONTRACT §6.1). Two limits can be
//! set:
//!
//! - the SYN proxy, as `statetype: "synproxy state"` on the TCP pass rules of the protection's interface and ports;
//! - the per-source bandwidth cap, as ONE traffic shaper limiter per protection ([`limiter_name`]: `pc_` and 8 hex
//!   digits of the id's SHA-256) with a source mask (`mask: srcaddress`, 32 bits for IPv4 and 64 for IPv6, so each
//!   IPv4 source and each IPv6 /64 gets a dummynet pipe of its own, as nftables counts them), named in the `dnpipe`
//!   (In pipe) of the pass rules of the interface and ports whose protocol the protection covers.
//!
//! Everything else is reported field by field ([`unsupported_fields`]) and the tool refuses it whole.
//!
//! The protection itself is Portcullis' own record, kept in the store under [`protections_key`]: its definition,
//! the rules whose statetype Portcullis set and the statetype each had before, and its limiter with the rules
//! whose `dnpipe` Portcullis set and what each had before (what a removal puts back). The state read from the
//! device lists a recorded protection only while pfSense still holds it ([`ProtectionRecord::held`]): its rules
//! still carry `synproxy state`, its limiter is there as Portcullis set it and its rules still name it. One
//! changed in the GUI drops out, so verification fails and drift shows; the cap listed is the one read from the
//! limiter.

use std::collections::HashMap;

use portcullis_core::firewall::{BackendError, ErrorCode, UnsupportedField};
use portcullis_core::model::{Action, PortMatch, PortRange, Protocol, Rule, RuleId};
use portcullis_core::protection::{Bandwidth, Protection, Rate, Transport};
use portcullis_pfrest::PfRestClient;
use portcullis_pfrest::types::{FirewallRule, LimiterBandwidth, TrafficShaperLimiter, TrafficShaperLimiterRequest};
use portcullis_store::Store;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::mapping::{self, InterfaceMap, MANAGED_FLOATING, MANAGED_UNTRACKED};
use crate::store_error;

/// The statetype that makes pf answer a rule's TCP handshakes itself.
pub const SYNPROXY: &str = "synproxy state";
/// pfRest's default statetype: what a rule is given back when its earlier one is not known.
pub const KEEP_STATE: &str = "keep state";

/// Where a target's protections are kept: one small JSON list (a target has a handful), so a change writes it in
/// one store write and a read is one lookup (the store lists no keys by prefix).
pub fn protections_key(target: &str) -> String {
    format!("pfsense:{target}:protections")
}

/// A rule whose statetype Portcullis set to `synproxy state` for a protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxiedRule {
    pub tracker: i64,
    /// Its statetype before (`synproxy state` when it already had the proxy, which a removal then leaves); `None`
    /// when pfRest did not say, and [`KEEP_STATE`] is put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_statetype: Option<String>,
}

/// A rule whose `dnpipe` Portcullis set to a protection's limiter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipedRule {
    pub tracker: i64,
    /// Its `dnpipe` before (`None`: it had none, and a removal clears it). A rule with another limiter is
    /// refused, never taken over, so this is only ever `None` or the protection's own limiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_dnpipe: Option<String>,
}

/// A protection's limiter and the rules that send their traffic through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimiterRecord {
    pub name: String,
    pub rules: Vec<PipedRule>,
}

/// One protection as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionRecord {
    pub protection: Protection,
    /// The rules Portcullis gave the SYN proxy (empty without `syn_proxy`).
    pub rules: Vec<ProxiedRule>,
    /// The limiter of `per_source_bandwidth` (absent without it, and in records written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limiter: Option<LimiterRecord>,
}

/// Whether recorded rules still carry what Portcullis set: at least one of them is still there, and every one
/// still there passes `carries`. A rule deleted since does not end the protection (the others still carry it);
/// one changed does.
fn still_carry(
    trackers: impl Iterator<Item = i64>,
    rules: &[FirewallRule],
    carries: impl Fn(&FirewallRule) -> bool,
) -> bool {
    let present: Vec<&FirewallRule> = trackers.filter_map(|t| rules.iter().find(|r| r.tracker == Some(t))).collect();
    !present.is_empty() && present.into_iter().all(carries)
}

impl ProtectionRecord {
    /// The protection as pfSense holds it, if it does: with `syn_proxy`, its proxied rules still carry `synproxy
    /// state`; with `per_source_bandwidth`, its limiter is there as Portcullis set it ([`limiter_cap`]) with the
    /// recorded cap, and its rules still name it in `dnpipe`. The cap returned is the one read from the limiter,
    /// so verification checks what the firewall holds.
    pub fn held(&self, rules: &[FirewallRule], limiters: &[TrafficShaperLimiter]) -> Option<Protection> {
        let p = &self.protection;
        if p.syn_proxy
            && !still_carry(self.rules.iter().map(|r| r.tracker), rules, |r| r.statetype.as_deref() == Some(SYNPROXY))
        {
            return None;
        }
        let mut held = p.clone();
        if let Some(wanted) = p.per_source_bandwidth {
            let record = self.limiter.as_ref()?;
            let device = limiters.iter().find(|l| l.name == record.name)?;
            let cap = limiter_cap(device)?;
            if cap != wanted
                || !still_carry(record.rules.iter().map(|r| r.tracker), rules, |r| {
                    r.dnpipe.as_deref() == Some(record.name.as_str())
                })
            {
                return None;
            }
            held.per_source_bandwidth = Some(cap);
        }
        (held.syn_proxy || held.per_source_bandwidth.is_some()).then_some(held)
    }

    /// Whether pfSense still holds it ([`ProtectionRecord::held`]).
    pub fn in_force(&self, rules: &[FirewallRule], limiters: &[TrafficShaperLimiter]) -> bool {
        self.held(rules, limiters).is_some()
    }

    /// The statetype recorded for `tracker` before Portcullis proxied it, if this record has the rule.
    pub fn previous_of(&self, tracker: i64) -> Option<Option<String>> {
        self.rules.iter().find(|r| r.tracker == tracker).map(|r| r.previous_statetype.clone())
    }

    /// The `dnpipe` recorded for `tracker` before Portcullis named the limiter there, if this record has the rule.
    pub fn previous_dnpipe_of(&self, tracker: i64) -> Option<Option<String>> {
        let limiter = self.limiter.as_ref()?;
        limiter.rules.iter().find(|r| r.tracker == tracker).map(|r| r.previous_dnpipe.clone())
    }
}

/// Where a protection's limiter is: `pc_` and the first 4 bytes of the SHA-256 of its id, in hex. pfSense
/// limiter names take letters, digits and `_` only (pfRest's `FilterNameValidator`) and the GUI at most 32 of
/// them, so the id itself (`wan/tcp/80,443`) cannot be the name; 11 characters leave room, and the nftables
/// backend names its objects the same way (`pd_…`).
pub fn limiter_name(protection_id: &str) -> String {
    let digest = sha2::Sha256::digest(protection_id.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{LIMITER_PREFIX}{hex}")
}

/// Every limiter name Portcullis gives starts with this.
pub const LIMITER_PREFIX: &str = "pc_";

/// The description Portcullis gives a protection's limiter: it names the protection, so a person reading
/// Firewall > Traffic Shaper > Limiters knows whose it is, and Portcullis recognises its own limiter left behind
/// without a record (a crash between the write and the record) by it.
pub fn limiter_description(p: &Protection, cap: Bandwidth) -> String {
    format!("{}{cap} per source (managed by Portcullis)", limiter_description_prefix(&p.protection_id))
}

fn limiter_description_prefix(protection_id: &str) -> String {
    format!("Portcullis DDoS protection {protection_id}: ")
}

/// Whether `limiter` (named like the protection's) is one Portcullis made for that protection.
pub(crate) fn is_own_limiter(limiter: &TrafficShaperLimiter, protection_id: &str) -> bool {
    limiter.name == limiter_name(protection_id)
        && limiter.description.starts_with(&limiter_description_prefix(protection_id))
}

/// The IPv4 and IPv6 prefix lengths one source pipe covers: an address, and a /64 (a single IPv6 host usually
/// holds a whole /64), as the protection's per-source limits count sources everywhere.
pub const MASK_BITS_V4: u32 = 32;
pub const MASK_BITS_V6: u32 = 64;
/// dummynet's plain tail drop and its default scheduler: a cap, with nothing to tune.
pub const LIMITER_AQM: &str = "droptail";
pub const LIMITER_SCHED: &str = "wf2q+";
const MASK_SOURCE: &str = "srcaddress";

/// A cap as one pfRest bandwidth profile, in the largest unit that holds it exactly (dummynet's `Kb` and `Mb`
/// are decimal, as [`Bandwidth`] is): 10 Mbit/s is `{bw: 10, bwscale: Mb}`, 1 Gbit/s `{bw: 1000, bwscale: Mb}`.
pub fn bandwidth_profile(cap: Bandwidth) -> LimiterBandwidth {
    let bits = cap.bits_per_second;
    let (bw, bwscale) = if bits.is_multiple_of(1_000_000) {
        (bits / 1_000_000, "Mb")
    } else if bits.is_multiple_of(1_000) {
        (bits / 1_000, "Kb")
    } else {
        (bits, "b")
    };
    LimiterBandwidth { bw, bwscale: bwscale.into(), bwsched: None }
}

/// The cap a limiter holds, if it is one Portcullis would have set: enabled, masked by source with 32 and 64 bits,
/// and a single unscheduled bandwidth profile that is a valid [`Bandwidth`]. A limiter edited into anything else
/// holds no protection's cap.
pub fn limiter_cap(limiter: &TrafficShaperLimiter) -> Option<Bandwidth> {
    let masked = limiter.mask.as_deref() == Some(MASK_SOURCE)
        && limiter.maskbits == Some(i64::from(MASK_BITS_V4))
        && limiter.maskbitsv6 == Some(i64::from(MASK_BITS_V6));
    let [profile] = limiter.bandwidth.as_slice() else { return None };
    let unscheduled = profile.bwsched.as_deref().is_none_or(|s| s.is_empty() || s == "none");
    if !limiter.enabled || !masked || !unscheduled {
        return None;
    }
    let scale: u64 = match profile.bwscale.as_str() {
        "b" => 1,
        "Kb" => 1_000,
        "Mb" => 1_000_000,
        _ => return None,
    };
    let bits = profile.bw.checked_mul(scale)?;
    // Through the parser, so a limiter below 8 kbit/s or beyond 100 Gbit/s is not taken for a protection's cap.
    Bandwidth::parse("per_source_bandwidth", &format!("{bits}bit/s")).ok()
}

/// The creation request of `p`'s limiter with cap `cap`.
pub fn limiter_request(p: &Protection, cap: Bandwidth) -> TrafficShaperLimiterRequest {
    TrafficShaperLimiterRequest {
        name: Some(limiter_name(&p.protection_id)),
        enabled: Some(true),
        mask: Some(MASK_SOURCE.into()),
        maskbits: Some(MASK_BITS_V4),
        maskbitsv6: Some(MASK_BITS_V6),
        description: Some(limiter_description(p, cap)),
        aqm: Some(LIMITER_AQM.into()),
        sched: Some(LIMITER_SCHED.into()),
        bandwidth: Some(vec![bandwidth_profile(cap)]),
        ..Default::default()
    }
}

/// What of `limiter` a PATCH to `wanted` changes, as a request of the fields Portcullis sets (without `name`);
/// `None` when it already is so.
pub(crate) fn limiter_patch(
    limiter: &TrafficShaperLimiter,
    wanted: &TrafficShaperLimiterRequest,
) -> Option<TrafficShaperLimiterRequest> {
    let now = limiter_settings(limiter);
    let wanted = TrafficShaperLimiterRequest { id: None, name: None, controls: Default::default(), ..wanted.clone() };
    (now != wanted).then_some(wanted)
}

/// The fields Portcullis sets, as `limiter` has them: what an undo of a PATCH or a deletion writes back. A mask
/// length goes only with a mask (pfRest drops it otherwise); bandwidth profiles lose their ids.
pub(crate) fn limiter_settings(limiter: &TrafficShaperLimiter) -> TrafficShaperLimiterRequest {
    let masked = matches!(limiter.mask.as_deref(), Some("srcaddress" | "dstaddress"));
    let bits = |b: Option<i64>| if masked { b.and_then(|b| u32::try_from(b).ok()) } else { None };
    TrafficShaperLimiterRequest {
        enabled: Some(limiter.enabled),
        mask: limiter.mask.clone(),
        maskbits: bits(limiter.maskbits),
        maskbitsv6: bits(limiter.maskbitsv6),
        description: Some(limiter.description.clone()),
        aqm: limiter.aqm.clone(),
        sched: limiter.sched.clone(),
        bandwidth: Some(
            limiter
                .bandwidth
                .iter()
                .map(|b| LimiterBandwidth {
                    bwsched: b.bwsched.clone().filter(|s| !s.is_empty() && s != "none"),
                    ..b.clone()
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// The records of `target`. A value that does not parse (edited by hand) counts as none, like a pause record
/// that does not parse: the protections then drop out of the state, which shows as drift, rather than every
/// read of the target failing.
pub(crate) fn load(store: &Store, target: &str) -> Result<Vec<ProtectionRecord>, BackendError> {
    let key = protections_key(target);
    let Some(raw) = store.meta_get(&key).map_err(store_error)? else { return Ok(Vec::new()) };
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(&raw) {
        Ok(records) => Ok(records),
        Err(e) => {
            tracing::warn!(%key, error = %e, "the stored DDoS protections cannot be read; treating them as none");
            Ok(Vec::new())
        }
    }
}

pub(crate) fn encode(records: &[ProtectionRecord]) -> String {
    if records.is_empty() {
        return String::new();
    }
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string(records).unwrap_or_default()
}

/// The protections the device still holds, as it holds them, in the order they were recorded.
pub(crate) fn in_force(
    records: &[ProtectionRecord],
    rules: &[FirewallRule],
    limiters: &[TrafficShaperLimiter],
) -> Vec<Protection> {
    records.iter().filter_map(|r| r.held(rules, limiters)).collect()
}

/// Whether reading the state needs the limiters: some record has one.
pub(crate) fn needs_limiters(records: &[ProtectionRecord]) -> bool {
    records.iter().any(|r| r.limiter.is_some() || r.protection.per_source_bandwidth.is_some())
}

fn ports_text(p: &Protection) -> String {
    match p.ports.len() {
        0 => String::new(),
        1 => format!(" for port {}", p.ports[0]),
        _ => {
            let ports: Vec<String> = p.ports.iter().map(ToString::to_string).collect();
            format!(" for ports {}", ports.join(", "))
        }
    }
}

/// pf's spelling of a rate: so many connections per so many seconds.
fn pf_rate(rate: &Rate) -> String {
    format!("{} connections per {} second(s)", rate.count, rate.unit.seconds())
}

fn burst_note(rate: &Rate, field: &str) -> String {
    if rate.burst == rate.count {
        String::new()
    } else {
        format!(", and {field} {} cannot be held either: pf's connection rate has no burst of its own", rate.burst)
    }
}

/// The parts of `p` pfSense cannot enforce through pfRest, one per field present, named as the tool's arguments
/// are. Only `syn_proxy` and `per_source_bandwidth` (a limiter) are carried out.
pub fn unsupported_fields(p: &Protection) -> Vec<UnsupportedField> {
    let rule = format!(
        "Firewall > Rules > {} > edit the TCP pass rule{} > Display Advanced",
        p.interface.to_ascii_uppercase(),
        ports_text(p)
    );
    let mut out = Vec::new();
    if let Some(rate) = &p.rate_limit {
        out.push(UnsupportedField {
            field: "rate_limit".into(),
            why: format!(
                "pfRest v2 has no field for an interface-wide new-connection rate, and pf has none to set: its \
                 connection rate (max-src-conn-rate) counts per source; {}/{} with burst_limit {} cannot be \
                 enforced on pfSense",
                rate.count,
                rate.unit.as_str(),
                rate.burst
            ),
            instead: format!(
                "there is no pf equivalent: cap the states the rule may create ({rule} > \"Max. states\"), or what \
                 each source may send with per_source_bandwidth (a limiter, which Portcullis sets here); or \
                 enforce the rate on an nftables target in front of this firewall"
            ),
        });
    }
    if let Some(rate) = &p.per_source_rate {
        out.push(UnsupportedField {
            field: "per_source_rate".into(),
            why: format!(
                "pfRest v2 has no field for pf's max-src-conn-rate (new connections per source), so {}/{} per \
                 source cannot be set through it{}",
                rate.count,
                rate.unit.as_str(),
                burst_note(rate, "per_source_burst")
            ),
            instead: format!(
                "{rule} > \"Max. src. conn. Rate\" {} and \"Max. src. conn. Rates\" {} ({}); pfSense then also \
                 blocks a source that exceeds it (overload <virusprot>)",
                rate.count,
                rate.unit.seconds(),
                pf_rate(rate)
            ),
        });
    }
    if let Some(seconds) = p.overload_block_seconds {
        out.push(UnsupportedField {
            field: "overload_block".into(),
            why: format!(
                "pfRest v2 has no field for pf's overload <virusprot>: pfSense adds `overload <virusprot> flush \
                 global` itself to a rule whose \"Max. src. conn. Rate\" is set, and its cron job (expiretable -t \
                 3600 virusprot) lets a source go after about an hour, not after the {seconds} s asked"
            ),
            instead: format!(
                "set \"Max. src. conn. Rate\" and \"Max. src. conn. Rates\" in the GUI ({rule}): a source over the \
                 rate is then blocked through the virusprot table for about an hour; Diagnostics > Tables > \
                 virusprot lists and flushes it (get_ddos_protection shows its entries)"
            ),
        });
    }
    if let Some(n) = p.max_connections_per_source {
        out.push(UnsupportedField {
            field: "max_connections_per_source".into(),
            why: format!(
                "pfRest v2 has no field for pf's max-src-conn (connections one source may hold open), so {n} \
                 cannot be set through it"
            ),
            instead: format!("{rule} > \"Max. src. connections\" {n}"),
        });
    }
    out
}

/// The error of a protection with fields pfSense cannot enforce: it is refused whole, never half applied.
pub(crate) fn unsupported_error(p: &Protection, fields: &[UnsupportedField]) -> BackendError {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    let why: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.why)).collect();
    let instead: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.instead)).collect();
    BackendError::new(
        ErrorCode::Unsupported,
        format!(
            "DDoS protection {} cannot be enforced on pfSense through pfRest ({}): {}",
            p.protection_id,
            names.join(", "),
            why.join("; ")
        ),
    )
    .with_hint(format!("only syn_proxy and per_source_bandwidth are carried out here; {}", instead.join("; ")))
}

/// How a device rule stands to a protection's SYN proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// A TCP pass rule of the interface whose ports meet the protection's: the proxy goes on it.
    Proxy,
    /// A pass rule that would match but is not `protocol: tcp` (tcp/udp, any): pfRest refuses `synproxy state`.
    NotTcp,
    /// A TCP pass rule that routes through a gateway: pfRest refuses `synproxy state` there too.
    Gateway,
    /// Another interface, action, protocol or port, a floating or untracked rule.
    Elsewhere,
}

/// Whether a destination port of a rule meets the protection's ports (all of them when it has none). A port alias
/// counts by the ports it holds (`aliases`); an alias not found there does not meet them.
fn ports_meet(p: &Protection, port: &PortMatch, aliases: &HashMap<String, Vec<PortRange>>) -> bool {
    if p.ports.is_empty() {
        return true;
    }
    let overlaps = |r: &PortRange| p.ports.iter().any(|q| q.first <= r.last && r.first <= q.last);
    match port {
        PortMatch::Any => true,
        PortMatch::Range(r) => overlaps(r),
        PortMatch::Alias(name) => aliases.get(name).is_some_and(|ranges| ranges.iter().any(overlaps)),
    }
}

/// How `raw` (read as `model`) stands to `p`'s SYN proxy.
pub(crate) fn fit(raw: &FirewallRule, model: &Rule, p: &Protection, aliases: &HashMap<String, Vec<PortRange>>) -> Fit {
    let addressable = !matches!(model.managed.as_deref(), Some(MANAGED_FLOATING | MANAGED_UNTRACKED));
    if !addressable
        || model.action != Action::Pass
        || model.interface != p.interface
        || !ports_meet(p, &model.destination_port, aliases)
    {
        return Fit::Elsewhere;
    }
    match model.protocol {
        Protocol::Tcp if raw.gateway.as_deref().is_some_and(|g| !g.trim().is_empty()) => Fit::Gateway,
        Protocol::Tcp => Fit::Proxy,
        Protocol::TcpUdp | Protocol::Any => Fit::NotTcp,
        _ => Fit::Elsewhere,
    }
}

/// The ports of the port aliases that pass rules of `p`'s interface use as destination, read now (only when the
/// protection names ports: without, every port meets). Nested aliases are not followed.
async fn port_aliases(
    client: &PfRestClient,
    p: &Protection,
    models: &[Rule],
) -> Result<HashMap<String, Vec<PortRange>>, BackendError> {
    let mut out = HashMap::new();
    if p.ports.is_empty() {
        return Ok(out);
    }
    for rule in models.iter().filter(|r| r.action == Action::Pass && r.interface == p.interface) {
        let PortMatch::Alias(name) = &rule.destination_port else { continue };
        if out.contains_key(name) {
            continue;
        }
        let ranges = match client.alias_by_name(name).await? {
            Some(alias) if alias.type_ == "port" => {
                alias.address.iter().filter_map(|a| PortRange::parse("destination_port", a).ok()).collect()
            }
            _ => Vec::new(),
        };
        out.insert(name.clone(), ranges);
    }
    Ok(out)
}

/// The device rules `p`'s SYN proxy goes on, among `rules` (read now); refused as a validation error when there is
/// none, naming the pass rules that come close and why they cannot carry it.
pub(crate) async fn proxy_targets(
    client: &PfRestClient,
    ifaces: &InterfaceMap,
    p: &Protection,
    rules: &[FirewallRule],
) -> Result<Vec<FirewallRule>, BackendError> {
    // A rule Portcullis cannot read is not one it proxies; the state read reports it.
    let read: Vec<(&FirewallRule, Rule)> =
        rules.iter().filter_map(|r| mapping::rule_from_device(r, ifaces, None).ok().map(|m| (r, m))).collect();
    let models: Vec<Rule> = read.iter().map(|(_, m)| m.clone()).collect();
    let aliases = port_aliases(client, p, &models).await?;
    let mut targets = Vec::new();
    let mut near = Vec::new();
    for (raw, model) in &read {
        match fit(raw, model, p, &aliases) {
            Fit::Proxy => targets.push((*raw).clone()),
            Fit::Elsewhere => {}
            other => near.push((model.rule_id.clone(), model.protocol, other)),
        }
    }
    if targets.is_empty() {
        return Err(nothing_to_proxy(p, &near));
    }
    Ok(targets)
}

fn nothing_to_proxy(p: &Protection, near: &[(RuleId, Protocol, Fit)]) -> BackendError {
    let mut message = format!("no TCP pass rule on {}{} to proxy; create one first", p.interface, ports_text(p));
    let not_tcp: Vec<String> =
        near.iter().filter(|(_, _, f)| *f == Fit::NotTcp).map(|(id, proto, _)| format!("{id} ({proto})")).collect();
    if !not_tcp.is_empty() {
        message.push_str(&format!(
            " (pass rules {} match but pfSense's SYN proxy works on protocol tcp rules only; give TCP its own pass \
             rule)",
            not_tcp.join(", ")
        ));
    }
    let routed: Vec<String> =
        near.iter().filter(|(_, _, f)| *f == Fit::Gateway).map(|(id, _, _)| id.to_string()).collect();
    if !routed.is_empty() {
        message.push_str(&format!(
            " (rules {} route through a gateway, where pfSense cannot proxy handshakes)",
            routed.join(", ")
        ));
    }
    BackendError::new(ErrorCode::ValidationError, message).with_hint(format!(
        "create a pass rule with protocol tcp on {}{} (create_firewall_rule), then configure the protection again",
        p.interface,
        ports_text(p)
    ))
}

/// How a device rule stands to a protection's bandwidth cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipeFit {
    /// A pass rule of the interface whose ports meet the protection's and whose protocol it covers: the limiter
    /// goes on it. A limiter has no TCP-only restriction (unlike the SYN proxy), and routing does not matter.
    Pipe,
    /// A pass rule that would match but also passes what the protection does not cover (tcp/udp for a TCP
    /// protection, any protocol): capping it would cap that too.
    Wider,
    /// Another interface, action, protocol or port, a floating or untracked rule.
    Elsewhere,
}

/// How `model` stands to `p`'s bandwidth cap.
pub(crate) fn pipe_fit(model: &Rule, p: &Protection, aliases: &HashMap<String, Vec<PortRange>>) -> PipeFit {
    let addressable = !matches!(model.managed.as_deref(), Some(MANAGED_FLOATING | MANAGED_UNTRACKED));
    if !addressable
        || model.action != Action::Pass
        || model.interface != p.interface
        || !ports_meet(p, &model.destination_port, aliases)
    {
        return PipeFit::Elsewhere;
    }
    let covers_tcp = matches!(p.protocol, Transport::Tcp | Transport::TcpUdp);
    let covers_udp = matches!(p.protocol, Transport::Udp | Transport::TcpUdp);
    match model.protocol {
        Protocol::Tcp if covers_tcp => PipeFit::Pipe,
        Protocol::Udp if covers_udp => PipeFit::Pipe,
        Protocol::TcpUdp if covers_tcp && covers_udp => PipeFit::Pipe,
        Protocol::TcpUdp | Protocol::Any => PipeFit::Wider,
        _ => PipeFit::Elsewhere,
    }
}

/// The device rules `p`'s limiter `limiter` goes on, among `rules` (read now). Refused as a validation error, with
/// nothing written, when there is none (naming the pass rules that come close) or when one of them already sends
/// its traffic through another limiter: Portcullis never takes over a pipe it did not set.
pub(crate) async fn pipe_targets(
    client: &PfRestClient,
    ifaces: &InterfaceMap,
    p: &Protection,
    rules: &[FirewallRule],
) -> Result<Vec<FirewallRule>, BackendError> {
    let limiter = limiter_name(&p.protection_id);
    let read: Vec<(&FirewallRule, Rule)> =
        rules.iter().filter_map(|r| mapping::rule_from_device(r, ifaces, None).ok().map(|m| (r, m))).collect();
    let models: Vec<Rule> = read.iter().map(|(_, m)| m.clone()).collect();
    let aliases = port_aliases(client, p, &models).await?;
    let mut targets = Vec::new();
    let mut wider = Vec::new();
    let mut foreign = Vec::new();
    for (raw, model) in &read {
        match pipe_fit(model, p, &aliases) {
            PipeFit::Pipe => {
                let theirs = [("dnpipe", &raw.dnpipe), ("pdnpipe", &raw.pdnpipe)]
                    .into_iter()
                    .find_map(|(field, pipe)| pipe.as_deref().filter(|n| *n != limiter).map(|n| (field, n)));
                match theirs {
                    Some((field, name)) => foreign.push(format!("{} ({field} {name})", model.rule_id)),
                    None => targets.push((*raw).clone()),
                }
            }
            PipeFit::Wider => wider.push(format!("{} ({})", model.rule_id, model.protocol)),
            PipeFit::Elsewhere => {}
        }
    }
    if !foreign.is_empty() {
        return Err(BackendError::new(
            ErrorCode::ValidationError,
            format!(
                "pass rules on {}{} already send their traffic through a limiter this protection did not set: {}; \
                 Portcullis does not replace another limiter",
                p.interface,
                ports_text(p),
                foreign.join(", ")
            ),
        )
        .with_hint(
            "remove that limiter from the rule (Firewall > Rules > edit the rule > Display Advanced > In / Out pipe) \
             or cap its traffic in that limiter, then configure the protection again",
        ));
    }
    if targets.is_empty() {
        let mut message = format!(
            "no {} pass rule on {}{} to cap what each source sends; create one first",
            p.protocol,
            p.interface,
            ports_text(p)
        );
        if !wider.is_empty() {
            message.push_str(&format!(
                " (pass rules {} match but also pass traffic the protection does not cover, which the cap would \
                 limit too; give {} its own pass rule)",
                wider.join(", "),
                p.protocol
            ));
        }
        return Err(BackendError::new(ErrorCode::ValidationError, message).with_hint(format!(
            "create a pass rule with protocol {} on {}{} (create_firewall_rule), then configure the protection again",
            p.protocol,
            p.interface,
            ports_text(p)
        )));
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::protection::Transport;
    use serde_json::json;

    fn syn_proxy(ports: &[u16]) -> Protection {
        Protection {
            protection_id: Protection::id_for(
                "wan",
                Transport::Tcp,
                &ports.iter().map(|p| PortRange::single(*p)).collect::<Vec<_>>(),
            ),
            interface: "wan".into(),
            protocol: Transport::Tcp,
            ports: ports.iter().map(|p| PortRange::single(*p)).collect(),
            rate_limit: None,
            per_source_rate: None,
            overload_block_seconds: None,
            max_connections_per_source: None,
            per_source_bandwidth: None,
            syn_proxy: true,
            exempt: Vec::new(),
            created_at: None,
            updated_at: None,
        }
    }

    fn ifaces() -> InterfaceMap {
        let list = serde_json::from_value::<Vec<portcullis_pfrest::types::NetworkInterface>>(json!([
            {"id": "wan", "if": "em0", "descr": "WAN"}, {"id": "lan", "if": "em1", "descr": "LAN"}
        ]))
        .unwrap();
        InterfaceMap::new(&list)
    }

    fn rule(v: serde_json::Value) -> FirewallRule {
        let mut base = json!({"id": 0, "tracker": 1700000001, "type": "pass", "interface": ["WAN"],
            "ipprotocol": "inet", "protocol": "tcp", "source": "any", "destination": "any",
            "destination_port": "443", "statetype": "keep state"});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn fit_of(raw: &FirewallRule, p: &Protection) -> Fit {
        let aliases = HashMap::from([("WEB".to_string(), vec![PortRange::single(80), PortRange::single(443)])]);
        fit(raw, &mapping::rule_from_device(raw, &ifaces(), None).unwrap(), p, &aliases)
    }

    #[test]
    fn only_syn_proxy_and_the_bandwidth_cap_are_carried_out_and_every_other_field_says_why_and_what_instead() {
        let mut p = syn_proxy(&[443]);
        assert!(unsupported_fields(&p).is_empty());
        p.rate_limit = Some(Rate::parse("rate_limit", "1000/s").unwrap().with_burst("burst_limit", "5000").unwrap());
        p.per_source_rate = Some(Rate::parse("per_source_rate", "600/minute").unwrap());
        p.overload_block_seconds = Some(600);
        p.max_connections_per_source = Some(50);
        let fields = unsupported_fields(&p);
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["rate_limit", "per_source_rate", "overload_block", "max_connections_per_source"]);
        assert!(!names.contains(&"burst_limit"), "the burst is told in rate_limit's why, not a field of its own");
        assert!(fields[0].why.contains("burst_limit 5000"), "{}", fields[0].why);
        assert!(fields[0].instead.contains("no pf equivalent") && fields[0].instead.contains("Max. states"));
        assert!(fields[1].why.contains("max-src-conn-rate"), "{}", fields[1].why);
        assert!(!fields[1].why.contains("per_source_burst"), "the burst equals the count: nothing to say");
        assert!(
            fields[1].instead.contains("\"Max. src. conn. Rate\" 600 and \"Max. src. conn. Rates\" 60"),
            "{}",
            fields[1].instead
        );
        assert!(fields[1].instead.contains("Firewall > Rules > WAN > edit the TCP pass rule for port 443"));
        assert!(fields[2].why.contains("overload <virusprot>") && fields[2].why.contains("600 s"));
        assert!(fields[3].why.contains("max-src-conn") && fields[3].instead.contains("\"Max. src. connections\" 50"));
        for f in &fields {
            assert!(f.why.starts_with("pfRest v2 has no field"), "{}: {}", f.field, f.why);
        }

        let mut capped = syn_proxy(&[443]);
        capped.per_source_bandwidth = Some(cap("10Mbit/s"));
        assert!(unsupported_fields(&capped).is_empty(), "a limiter carries it");

        p.per_source_rate = Some(Rate::parse("per_source_rate", "20/s").unwrap().with_burst("b", "40").unwrap());
        let fields = unsupported_fields(&p);
        assert!(fields[1].why.contains("per_source_burst 40"), "{}", fields[1].why);
        let err = unsupported_error(&p, &fields);
        assert_eq!(err.code, ErrorCode::Unsupported);
        assert!(err.message.contains("rate_limit, per_source_rate, overload_block, max_connections_per_source"));
    }

    #[test]
    fn the_proxy_goes_on_tcp_pass_rules_of_the_interface_whose_ports_meet() {
        let p = syn_proxy(&[443]);
        assert_eq!(fit_of(&rule(json!({})), &p), Fit::Proxy);
        assert_eq!(fit_of(&rule(json!({"destination_port": null})), &p), Fit::Proxy, "any port includes 443");
        assert_eq!(fit_of(&rule(json!({"destination_port": "400:500"})), &p), Fit::Proxy);
        assert_eq!(fit_of(&rule(json!({"destination_port": "WEB"})), &p), Fit::Proxy, "a port alias holding 443");
        assert_eq!(fit_of(&rule(json!({"destination_port": "OTHER"})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"destination_port": "22"})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"interface": ["LAN"]})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"type": "block"})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"protocol": "udp"})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"protocol": "tcp/udp"})), &p), Fit::NotTcp);
        assert_eq!(fit_of(&rule(json!({"protocol": null, "destination_port": null})), &p), Fit::NotTcp);
        assert_eq!(fit_of(&rule(json!({"gateway": "WAN_DHCP"})), &p), Fit::Gateway);
        assert_eq!(fit_of(&rule(json!({"floating": true})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"tracker": null})), &p), Fit::Elsewhere);
        assert_eq!(fit_of(&rule(json!({"destination_port": "22"})), &syn_proxy(&[])), Fit::Proxy, "every port");

        let near =
            [(RuleId("17".into()), Protocol::TcpUdp, Fit::NotTcp), (RuleId("18".into()), Protocol::Tcp, Fit::Gateway)];
        let err = nothing_to_proxy(&p, &near);
        assert_eq!(err.code, ErrorCode::ValidationError);
        assert!(err.message.starts_with("no TCP pass rule on wan for port 443 to proxy; create one first"));
        assert!(err.message.contains("17 (tcp/udp)") && err.message.contains("rules 18 route"), "{}", err.message);
    }

    fn cap(text: &str) -> Bandwidth {
        Bandwidth::parse("per_source_bandwidth", text).unwrap()
    }

    #[test]
    fn a_protection_is_in_force_while_its_remaining_rules_carry_the_proxy() {
        let record = ProtectionRecord {
            protection: syn_proxy(&[443]),
            rules: vec![
                ProxiedRule { tracker: 1, previous_statetype: Some("keep state".into()) },
                ProxiedRule { tracker: 2, previous_statetype: None },
            ],
            limiter: None,
        };
        let with = |states: &[(i64, &str)]| -> Vec<FirewallRule> {
            states.iter().map(|(t, s)| rule(json!({"tracker": t, "statetype": s}))).collect()
        };
        assert!(record.in_force(&with(&[(1, SYNPROXY), (2, SYNPROXY), (3, KEEP_STATE)]), &[]));
        assert!(record.in_force(&with(&[(2, SYNPROXY)]), &[]), "rule 1 was deleted; 2 still proxies");
        assert!(!record.in_force(&with(&[(1, SYNPROXY), (2, KEEP_STATE)]), &[]), "changed back in the GUI");
        assert!(!record.in_force(&with(&[(3, SYNPROXY)]), &[]), "none of its rules is left");
        // A record written before limiters existed reads as one without.
        let old: ProtectionRecord = serde_json::from_value(json!({
            "protection": serde_json::to_value(syn_proxy(&[443])).unwrap(),
            "rules": [{"tracker": 1, "previous_statetype": "keep state"}]
        }))
        .unwrap();
        assert_eq!(old.limiter, None);
        assert_eq!(record.previous_of(1), Some(Some("keep state".into())));
        assert_eq!(record.previous_of(9), None);

        let text = encode(std::slice::from_ref(&record));
        let back: Vec<ProtectionRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![record]);
        assert_eq!(encode(&[]), "");
    }

    fn limiter(v: serde_json::Value) -> TrafficShaperLimiter {
        let mut base = json!({"id": 0, "name": limiter_name("wan/tcp/443"), "number": 1, "enabled": true,
            "mask": "srcaddress", "maskbits": 32, "maskbitsv6": 64, "aqm": "droptail", "sched": "wf2q+",
            "description": "Portcullis DDoS protection wan/tcp/443: 10Mbit/s per source (managed by Portcullis)",
            "bandwidth": [{"id": 0, "parent_id": 0, "bw": 10, "bwscale": "Mb", "bwsched": "none"}]});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_cap_is_a_limiter_in_the_largest_exact_unit_named_after_the_protection() {
        assert_eq!(limiter_name("wan/tcp/443"), limiter_name("wan/tcp/443"));
        assert_ne!(limiter_name("wan/tcp/443"), limiter_name("wan/tcp/80"));
        let name = limiter_name("wan/tcp/80,443");
        assert!(name.starts_with("pc_") && name.len() == 11, "{name}");
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "a pfSense filter name: {name}");
        let unit = |t: &str| {
            let b = bandwidth_profile(cap(t));
            (b.bw, b.bwscale)
        };
        assert_eq!(unit("10Mbit/s"), (10, "Mb".into()));
        assert_eq!(unit("1Gbit/s"), (1000, "Mb".into()), "pfRest has no Gb");
        assert_eq!(unit("100Gbit/s"), (100_000, "Mb".into()));
        assert_eq!(unit("500kbit/s"), (500, "Kb".into()));
        assert_eq!(unit("1500kbit/s"), (1500, "Kb".into()));
        assert_eq!(unit("8008bit/s"), (8008, "b".into()));

        let mut p = syn_proxy(&[443]);
        p.per_source_bandwidth = Some(cap("10Mbit/s"));
        let req = limiter_request(&p, cap("10Mbit/s"));
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"name": limiter_name("wan/tcp/443"), "enabled": true, "mask": "srcaddress", "maskbits": 32,
                   "maskbitsv6": 64, "aqm": "droptail", "sched": "wf2q+",
                   "description": "Portcullis DDoS protection wan/tcp/443: 10Mbit/s per source (managed by Portcullis)",
                   "bandwidth": [{"bw": 10, "bwscale": "Mb"}]})
        );
        // Read back: the cap is what the limiter holds, or nothing when it no longer is a per-source cap.
        assert_eq!(limiter_cap(&limiter(json!({}))), Some(cap("10Mbit/s")));
        assert_eq!(
            limiter_cap(&limiter(json!({"bandwidth": [{"bw": 10000, "bwscale": "Kb"}]}))),
            Some(cap("10Mbit/s"))
        );
        for edited in [
            json!({"enabled": false}),
            json!({"mask": "none", "maskbits": null, "maskbitsv6": null}),
            json!({"mask": "dstaddress"}),
            json!({"maskbitsv6": 128}),
            json!({"bandwidth": []}),
            json!({"bandwidth": [{"bw": 10, "bwscale": "Mb"}, {"bw": 1, "bwscale": "Mb", "bwsched": "night"}]}),
            json!({"bandwidth": [{"bw": 10, "bwscale": "Mb", "bwsched": "night"}]}),
            json!({"bandwidth": [{"bw": 7, "bwscale": "Kb"}]}),
        ] {
            assert_eq!(limiter_cap(&limiter(edited.clone())), None, "{edited}");
        }
        assert!(limiter_patch(&limiter(json!({})), &req).is_none(), "already so: no PATCH");
        let patch = limiter_patch(&limiter(json!({"bandwidth": [{"bw": 5, "bwscale": "Mb"}]})), &req).unwrap();
        assert_eq!(patch.name, None, "a PATCH does not rename");
        assert_eq!(patch.bandwidth.unwrap()[0].bw, 10);
        // The settings of a limiter as an undo writes them back: a mask length only with a mask.
        let undo = limiter_settings(&limiter(json!({"mask": "none", "description": "x"})));
        assert_eq!((undo.maskbits, undo.maskbitsv6, undo.bandwidth.unwrap()[0].bwsched.clone()), (None, None, None));
        assert!(is_own_limiter(&limiter(json!({})), "wan/tcp/443"));
        assert!(!is_own_limiter(&limiter(json!({"description": "office cap"})), "wan/tcp/443"));
        assert!(!is_own_limiter(&limiter(json!({})), "wan/tcp/4430"));
    }

    #[test]
    fn the_cap_goes_on_pass_rules_whose_protocol_the_protection_covers() {
        let aliases = HashMap::new();
        let fit = |v: serde_json::Value, proto: Transport| {
            let mut p = syn_proxy(&[443]);
            p.syn_proxy = false;
            p.protocol = proto;
            pipe_fit(&mapping::rule_from_device(&rule(v), &ifaces(), None).unwrap(), &p, &aliases)
        };
        assert_eq!(fit(json!({}), Transport::Tcp), PipeFit::Pipe);
        assert_eq!(fit(json!({"gateway": "WAN_DHCP"}), Transport::Tcp), PipeFit::Pipe, "routing does not matter");
        assert_eq!(fit(json!({"protocol": "udp"}), Transport::Tcp), PipeFit::Elsewhere);
        assert_eq!(fit(json!({"protocol": "udp"}), Transport::Udp), PipeFit::Pipe);
        assert_eq!(fit(json!({"protocol": "udp"}), Transport::TcpUdp), PipeFit::Pipe);
        assert_eq!(fit(json!({}), Transport::TcpUdp), PipeFit::Pipe);
        assert_eq!(fit(json!({"protocol": "tcp/udp"}), Transport::TcpUdp), PipeFit::Pipe);
        assert_eq!(fit(json!({"protocol": "tcp/udp"}), Transport::Tcp), PipeFit::Wider, "it would cap UDP too");
        assert_eq!(fit(json!({"protocol": null, "destination_port": null}), Transport::TcpUdp), PipeFit::Wider);
        assert_eq!(fit(json!({"protocol": "icmp", "destination_port": null}), Transport::TcpUdp), PipeFit::Elsewhere);
        assert_eq!(fit(json!({"destination_port": "22"}), Transport::Tcp), PipeFit::Elsewhere);
        assert_eq!(fit(json!({"type": "block"}), Transport::Tcp), PipeFit::Elsewhere);
        assert_eq!(fit(json!({"floating": true}), Transport::Tcp), PipeFit::Elsewhere);
    }

    #[test]
    fn a_capped_protection_is_held_while_its_limiter_and_rules_are_as_set() {
        let mut p = syn_proxy(&[443]);
        p.per_source_bandwidth = Some(cap("10Mbit/s"));
        let name = limiter_name("wan/tcp/443");
        let record = ProtectionRecord {
            protection: p.clone(),
            rules: vec![ProxiedRule { tracker: 1, previous_statetype: None }],
            limiter: Some(LimiterRecord {
                name: name.clone(),
                rules: vec![
                    PipedRule { tracker: 1, previous_dnpipe: None },
                    PipedRule { tracker: 2, previous_dnpipe: None },
                ],
            }),
        };
        let rules = |pipe1: Option<&str>, state1: &str, pipe2: Option<&str>| {
            vec![
                rule(json!({"tracker": 1, "statetype": state1, "dnpipe": pipe1})),
                rule(json!({"tracker": 2, "protocol": "udp", "dnpipe": pipe2})),
            ]
        };
        let ours = Some(name.as_str());
        let held = record.held(&rules(ours, SYNPROXY, ours), &[limiter(json!({}))]).unwrap();
        assert_eq!(held, p);
        // The cap listed is the limiter's, in whatever unit it is written.
        let kb = limiter(json!({"bandwidth": [{"bw": 10000, "bwscale": "Kb"}]}));
        assert_eq!(
            record.held(&rules(ours, SYNPROXY, ours), &[kb]).unwrap().per_source_bandwidth,
            Some(cap("10Mbit/s"))
        );
        assert!(record.held(&rules(ours, SYNPROXY, ours), &[]).is_none(), "the limiter was deleted");
        let changed = limiter(json!({"bandwidth": [{"bw": 20, "bwscale": "Mb"}]}));
        assert!(record.held(&rules(ours, SYNPROXY, ours), &[changed]).is_none(), "another cap set in the GUI");
        assert!(record.held(&rules(ours, SYNPROXY, None), &[limiter(json!({}))]).is_none(), "a rule lost its pipe");
        assert!(record.held(&rules(ours, KEEP_STATE, ours), &[limiter(json!({}))]).is_none(), "lost the proxy");
        assert!(record.held(&rules(ours, SYNPROXY, Some("other")), &[limiter(json!({}))]).is_none());
        let only_two = vec![rule(json!({"tracker": 2, "protocol": "udp", "dnpipe": ours}))];
        assert!(record.held(&only_two, &[limiter(json!({}))]).is_none(), "the proxied rule is gone");
        assert_eq!(record.previous_dnpipe_of(2), Some(None));
        assert_eq!(record.previous_dnpipe_of(3), None);
        let text = encode(std::slice::from_ref(&record));
        let back: Vec<ProtectionRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![record]);
    }
}
