//! `block_domain` and `unblock_domain`: blocks of the addresses a name resolves to, kept following the name.
//!
//! The name is resolved here (A and AAAA, with hickory's resolver: the system's configuration or
//! `domains.resolver`, no cache, so every answer is the server's). The addresses become entries of the domain
//! block lists (`portcullis_core::domain`), planned and applied like every change. Each live domain block has a
//! record in the store (`domains:<target>`): the last answer and when to ask again — at the answer's TTL, kept
//! between `domains.min_refresh` and `domains.max_refresh`. The reconciler asks again when a record is due and
//! plans the name's entries to the new answer through the same apply-and-verify path (audited as `refresh`), so
//! addresses that leave the answer leave the list. A failed or empty answer keeps the entries and asks again
//! after `min_refresh`. The firewall's entries are the truth: a record whose name has no live entry left (it
//! expired or was unblocked) is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{Resolver, TokioResolver};
use ipnet::IpNet;
use portcullis_core::domain::{DomainBlockAsk, DomainName, MANAGED_DOMAIN_BLOCK, domain_alias_name, domain_of};
use portcullis_core::firewall::ErrorCode;
use portcullis_core::model::{RuleSet, Timestamp};
use portcullis_core::plan::Intent;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::door::ReadBack;
use crate::work::{IntentJob, IntentScope, PlannedIntent};
use crate::{CallError, Target, ToolService, changes, now};

/// How domain blocks resolve names and how often they ask again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSettings {
    /// The DNS server asked; the system's configuration (`/etc/resolv.conf`) when unset.
    pub resolver: Option<SocketAddr>,
    /// The shortest time between two lookups of a name, whatever its TTL.
    pub min_refresh: Duration,
    /// The longest.
    pub max_refresh: Duration,
}

impl Default for DomainSettings {
    fn default() -> Self {
        Self { resolver: None, min_refresh: Duration::from_secs(30), max_refresh: Duration::from_secs(3600) }
    }
}

impl DomainSettings {
    fn refresh_after(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min_refresh, self.max_refresh.max(self.min_refresh))
    }
}

/// What a name resolves to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addresses: BTreeSet<IpAddr>,
    /// The smallest TTL of the records.
    pub ttl: Duration,
}

/// Why a name has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveFailure {
    #[error("{0} does not exist (NXDOMAIN)")]
    NoSuchName(String),
    #[error("{0} has no A or AAAA record")]
    NoAddress(String),
    #[error("the DNS lookup of {0} failed: {1}")]
    Failed(String, String),
}

/// Resolves names to their A and AAAA records, with no cache of its own.
pub struct NameResolver {
    resolver: TokioResolver,
}

impl std::fmt::Debug for NameResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameResolver").finish_non_exhaustive()
    }
}

impl NameResolver {
    pub fn new(settings: &DomainSettings) -> Result<Self, CallError> {
        let mut builder = match settings.resolver {
            Some(server) => {
                let connection = |mut c: ConnectionConfig| {
                    c.port = server.port();
                    c
                };
                let ns = NameServerConfig::new(
                    server.ip(),
                    true,
                    vec![connection(ConnectionConfig::udp()), connection(ConnectionConfig::tcp())],
                );
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => Resolver::builder_tokio().map_err(|e| {
                CallError::new(ErrorCode::Unavailable, format!("the system's DNS configuration does not read: {e}"))
                    .with_hint("set domains.resolver to the DNS server to ask (address:port)")
            })?,
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        options.timeout = Duration::from_secs(3);
        options.attempts = 2;
        let resolver = builder
            .build()
            .map_err(|e| CallError::new(ErrorCode::Unavailable, format!("the DNS resolver does not start: {e}")))?;
        Ok(Self { resolver })
    }

    pub async fn resolve(&self, name: &DomainName) -> Result<Answer, ResolveFailure> {
        // Fully qualified, so no search domain is tried.
        let fqdn = format!("{name}.");
        match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(found) => {
                let addresses: BTreeSet<IpAddr> = found.iter().collect();
                if addresses.is_empty() {
                    return Err(ResolveFailure::NoAddress(name.to_string()));
                }
                let ttl = found.valid_until().saturating_duration_since(Instant::now());
                Ok(Answer { addresses, ttl })
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => {
                if none.response_code == hickory_resolver::proto::op::ResponseCode::NXDomain {
                    Err(ResolveFailure::NoSuchName(name.to_string()))
                } else {
                    Err(ResolveFailure::NoAddress(name.to_string()))
                }
            }
            Err(e) => Err(ResolveFailure::Failed(name.to_string(), e.to_string())),
        }
    }
}

/// What the store keeps of one live domain block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DomainRecord {
    pub domain: DomainName,
    /// `None`: every interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The last answer.
    pub addresses: BTreeSet<IpAddr>,
    pub ttl_seconds: u64,
    pub next_refresh: Timestamp,
}

impl DomainRecord {
    fn list(&self) -> String {
        domain_alias_name(self.interface.as_deref())
    }
}

fn records_key(target: &str) -> String {
    format!("domains:{target}")
}

pub(crate) fn load_records(svc: &ToolService, target: &str) -> Result<Vec<DomainRecord>, CallError> {
    let text =
        svc.guard.auditor.store().meta_get(&records_key(target)).map_err(|e| CallError::internal(e.to_string()))?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| CallError::internal(format!("the domain block records do not read: {e}"))),
    }
}

fn save_records(svc: &ToolService, target: &str, records: &[DomainRecord]) -> Result<(), CallError> {
    let text = if records.is_empty() { String::new() } else { serde_json::to_string(records).unwrap_or_default() };
    svc.guard.auditor.store().meta_set(&records_key(target), &text).map_err(|e| CallError::internal(e.to_string()))
}

/// Replaces the record of the same name and list, or adds it.
fn put_record(svc: &ToolService, target: &str, record: DomainRecord) -> Result<(), CallError> {
    let mut records = load_records(svc, target)?;
    records.retain(|r| !(r.domain == record.domain && r.interface == record.interface));
    records.push(record);
    save_records(svc, target, &records)
}

/// The addresses other live names of the same list stand for, by their last answers.
fn others_of(records: &[DomainRecord], domain: &DomainName, list: &str) -> BTreeMap<IpAddr, DomainName> {
    records
        .iter()
        .filter(|r| &r.domain != domain && r.list() == list)
        .flat_map(|r| r.addresses.iter().map(|a| (*a, r.domain.clone())))
        .collect()
}

fn domain_error(message: String, hint: &str) -> CallError {
    let mut e = CallError::new(ErrorCode::ValidationError, message).with_hint(hint);
    e.field = Some("domain".into());
    e
}

/// `block_domain`'s request, resolved once the target is known.
pub(crate) struct DomainBlockRequest {
    pub domain: DomainName,
    pub interface: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub reason: String,
}

impl DomainBlockRequest {
    /// Refuses names of the firewall itself and answers that hold an address that must stay reachable.
    async fn refuse_own(&self, at: &IntentScope<'_>, answer: &Answer) -> Result<(), CallError> {
        let status = at.target.firewall.system_status().await.ok();
        if let Some(host) = status.map(|s| s.hostname.to_ascii_lowercase()).filter(|h| !h.is_empty()) {
            let own = host.trim_end_matches('.');
            let name = self.domain.as_str();
            // A short hostname (`pfsense`) is the first label of the firewall's full names.
            let short = !own.contains('.') && name.split('.').next() == Some(own);
            if name == own || short {
                return Err(domain_error(
                    format!("{} is the firewall's own name ({host}); a firewall never blocks itself", self.domain),
                    "block another name",
                ));
            }
        }
        let settings = &at.svc.guard.settings;
        let mut kept: Vec<(IpNet, String)> =
            settings.management_hosts.iter().map(|h| (*h, format!("management host {h}"))).collect();
        kept.extend(settings.protected_addresses.iter().map(|p| (*p, format!("protected address {p}"))));
        if let Some(peer) = at.ctx.peer {
            kept.push((IpNet::from(peer.ip()), format!("the caller ({})", peer.ip())));
        }
        let outline = at.target.firewall.outline().await?;
        kept.extend(portcullis_guard::argpolicy::protected_nets(&outline, &[]));
        for addr in &answer.addresses {
            if let Some((_, why)) = kept.iter().find(|(net, _)| net.contains(addr)) {
                return Err(domain_error(
                    format!(
                        "{} resolves to {addr}, which must stay reachable ({why}); nothing was changed",
                        self.domain
                    ),
                    "block the name only where it does not resolve to the firewall or a management host",
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl IntentJob for DomainBlockRequest {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        let resolver = at.svc.name_resolver()?;
        let answer = resolver.resolve(&self.domain).await.map_err(|f| match f {
            ResolveFailure::Failed(..) => CallError::new(ErrorCode::Unavailable, f.to_string())
                .with_hint("check domains.resolver and that the DNS server answers"),
            _ => domain_error(format!("{f}, so there is nothing to block"), "check the name's spelling"),
        })?;
        self.refuse_own(at, &answer).await?;
        // A firewall that resolves names itself (pfSense) holds the name; the answer was only for the checks.
        let by_name = at.target.firewall.resolves_names();
        let list = domain_alias_name(self.interface.as_deref());
        let records = load_records(at.svc, &at.target.name)?;
        let ask = DomainBlockAsk {
            domain: self.domain.clone(),
            interface: self.interface.clone(),
            addresses: answer.addresses.clone(),
            expires_at: self.expires_at,
            reason: self.reason,
            others: others_of(&records, &self.domain, &list),
            by_name,
        };
        let settings = at.svc.domains.clone();
        let record = DomainRecord {
            domain: self.domain,
            interface: self.interface,
            addresses: answer.addresses,
            ttl_seconds: answer.ttl.as_secs(),
            next_refresh: now() + settings.refresh_after(answer.ttl),
        };
        let target = at.target.name.clone();
        let after_apply: Option<crate::work::AfterApply> =
            if by_name { None } else { Some(Box::new(move |svc: &ToolService| put_record(svc, &target, record))) };
        Ok(PlannedIntent {
            intent: Intent::BlockDomain(Box::new(ask)),
            must_reach: Vec::new(),
            person_must_approve: None,
            after_apply,
            reveal: None,
        })
    }
}

/// `unblock_domain`'s request: the other names' last answers keep the addresses they share.
pub(crate) struct DomainUnblockRequest {
    pub domain: DomainName,
    pub interface: Option<String>,
}

#[async_trait]
impl IntentJob for DomainUnblockRequest {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        let records = load_records(at.svc, &at.target.name)?;
        let list = domain_alias_name(self.interface.as_deref());
        let others = others_of(&records, &self.domain, &list);
        let target = at.target.name.clone();
        let (domain, interface) = (self.domain.clone(), self.interface.clone());
        Ok(PlannedIntent {
            intent: Intent::UnblockDomain { domain: self.domain, interface: self.interface, others },
            must_reach: Vec::new(),
            person_must_approve: None,
            after_apply: Some(Box::new(move |svc: &ToolService| {
                let mut records = load_records(svc, &target)?;
                records.retain(|r| !(r.domain == domain && (interface.is_none() || r.interface == interface)));
                save_records(svc, &target, &records)
            })),
            reveal: None,
        })
    }
}

/// Whether `record`'s name still has a live entry in its list.
fn still_blocked(state: &RuleSet, record: &DomainRecord, at: Timestamp) -> Option<(Option<Timestamp>, String)> {
    let list = state.alias(&record.list()).filter(|a| a.managed.as_deref() == Some(MANAGED_DOMAIN_BLOCK))?;
    let entry = list.entries.iter().find(|e| domain_of(&e.detail) == record.domain.as_str() && e.is_live(at))?;
    let reason = entry.detail.split_once(": ").map(|(_, r)| r.to_string()).unwrap_or_default();
    Some((entry.expires_at, reason))
}

impl ToolService {
    /// The resolver domain blocks use, made on first use.
    pub(crate) fn name_resolver(&self) -> Result<Arc<NameResolver>, CallError> {
        let mut slot = self.resolver.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let made = Arc::new(NameResolver::new(&self.domains)?);
        *slot = Some(made.clone());
        Ok(made)
    }

    /// Asks again for every domain block whose record is due, on every target, and follows the answers; failures
    /// are logged and tried again after `min_refresh`.
    pub(crate) async fn refresh_domains_logged(&self) {
        for (target, outcome) in self.refresh_domains_due().await {
            if let Err(e) = outcome {
                tracing::warn!(target, "domain block refresh failed: {}", e.message);
            }
        }
    }

    /// Asks again for every due domain block of every target: per target, how many changes it applied.
    pub async fn refresh_domains_due(&self) -> Vec<(String, Result<usize, CallError>)> {
        let mut out = Vec::new();
        for target in &self.targets {
            out.push((target.name.clone(), self.refresh_domains(target).await));
        }
        out
    }

    /// Refreshes the due domain blocks of one target; how many plans it applied.
    async fn refresh_domains(&self, target: &Target) -> Result<usize, CallError> {
        let at = now();
        let records = load_records(self, &target.name)?;
        if !records.iter().any(|r| r.next_refresh <= at) {
            return Ok(0);
        }
        let inside = self.enter(target).await;
        let mut state = inside.fresh_state().await?;
        let mut kept = Vec::with_capacity(records.len());
        let mut applied = 0;
        for record in records.iter().cloned() {
            let Some((expires_at, reason)) = still_blocked(&state, &record, at) else { continue };
            if record.next_refresh > at {
                kept.push(record);
                continue;
            }
            match self.name_resolver()?.resolve(&record.domain).await {
                Ok(answer) => {
                    let ask = DomainBlockAsk {
                        domain: record.domain.clone(),
                        interface: record.interface.clone(),
                        addresses: answer.addresses.clone(),
                        expires_at,
                        reason,
                        others: others_of(&records, &record.domain, &record.list()),
                        by_name: false,
                    };
                    let plan = portcullis_core::domain::plan_domain_block(&state, &ask, at)?;
                    if !plan.operations.is_empty() {
                        let started = Instant::now();
                        let result = inside.carry(&plan, ReadBack::Whole, None).await.map(|_| ());
                        let summary = json!({"domain": record.domain, "addresses": answer.addresses, "ttl_seconds": answer.ttl.as_secs()});
                        let audit = changes::system_record(
                            &target.name,
                            "refresh",
                            "domain block reconciler",
                            summary,
                            &uuid::Uuid::new_v4().to_string(),
                            &result,
                            started,
                        );
                        self.guard.auditor.record(&audit)?;
                        result?;
                        applied += 1;
                        state = inside.fresh_state().await?;
                    }
                    kept.push(DomainRecord {
                        addresses: answer.addresses,
                        ttl_seconds: answer.ttl.as_secs(),
                        next_refresh: now() + self.domains.refresh_after(answer.ttl),
                        ..record
                    });
                }
                Err(failure) => {
                    tracing::warn!(target = target.name, "{failure}; the block keeps its addresses");
                    kept.push(DomainRecord { next_refresh: now() + self.domains.min_refresh, ..record });
                }
            }
        }
        save_records(self, &target.name, &kept)?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_follows_the_ttl_within_the_bounds() {
        let s = DomainSettings::default();
        assert_eq!(s.refresh_after(Duration::from_secs(5)), Duration::from_secs(30));
        assert_eq!(s.refresh_after(Duration::from_secs(300)), Duration::from_secs(300));
        assert_eq!(s.refresh_after(Duration::from_secs(86_400)), Duration::from_secs(3600));
    }

    #[test]
    fn other_names_of_the_same_list_keep_their_addresses() {
        let record = |d: &str, iface: Option<&str>, a: &str| DomainRecord {
            domain: DomainName::parse("domain", d).unwrap(),
            interface: iface.map(str::to_string),
            addresses: [a.parse().unwrap()].into(),
            ttl_seconds: 60,
            next_refresh: now(),
        };
        let records = vec![
            record("a.example", None, "192.0.2.1"),
            record("b.example", None, "192.0.2.2"),
            record("c.example", Some("lan"), "192.0.2.3"),
        ];
        let a = DomainName::parse("domain", "a.example").unwrap();
        let others = others_of(&records, &a, &domain_alias_name(None));
        assert_eq!(others.len(), 1);
        assert_eq!(others[&"192.0.2.2".parse::<IpAddr>().unwrap()].as_str(), "b.example");
    }
}
