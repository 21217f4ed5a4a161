//! DDoS protection tools: `configure_ddos_protection` (set or, with `enabled: false`, remove one) and
//! `get_ddos_protection` (what is in force and what it is doing now). The protection itself is the core's
//! (`portcullis_core::protection`); this module adds what only the service knows: the addresses configuration
//! never lets be blocked (exempt from every limit), the caller, and what the target cannot enforce.

use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;
use portcullis_core::firewall::{ErrorCode, ProtectionLive, UnsupportedField};
use portcullis_core::plan::Intent;
use portcullis_core::protection::{Protection, ProtectionKey};
use schemars::JsonSchema;
use serde::Serialize;

use portcullis_core::firewall::OverloadedSource;
use portcullis_core::model::{RuleSet, Timestamp};

use crate::CallError;
use crate::analytics::{ThreatView, ThreatsResult};
use crate::args::ConfigureDdosProtectionArgs;
use crate::views::BlockView;
use crate::work::{IntentJob, IntentScope, PlannedIntent, ReadJob, ReadScope};

/// A `configure_ddos_protection` call with its arguments checked.
pub(crate) struct ProtectionRequest(Result<Protection, ProtectionKey>);

impl ProtectionRequest {
    pub(crate) fn parse(a: &ConfigureDdosProtectionArgs) -> Result<Self, CallError> {
        Ok(Self(a.protection()?))
    }
}

#[async_trait]
impl IntentJob for ProtectionRequest {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        let intent = match self.0 {
            Err(key) => Intent::RemoveProtection(key),
            Ok(mut asked) => {
                refuse_unsupported(&at.target.name, &at.target.firewall.unsupported_protection_fields(&asked))?;
                let settings = &at.svc.guard.settings;
                asked.exempt = exempt_sources(
                    &settings.management_hosts,
                    &settings.protected_addresses,
                    at.ctx.peer.map(|p| p.ip()),
                );
                Intent::ConfigureProtection(Box::new(asked))
            }
        };
        Ok(PlannedIntent { intent, must_reach: Vec::new(), person_must_approve: None, after_apply: None, reveal: None })
    }
}

/// The sources no protection may limit: management hosts and protected ranges from configuration, and the
/// caller's own address when it came over the network (each once, in that order).
fn exempt_sources(management: &[IpNet], protected: &[IpNet], caller: Option<IpAddr>) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    let caller = caller.filter(|ip| !ip.is_loopback()).map(IpNet::from);
    for net in management.iter().chain(protected).chain(caller.as_ref()) {
        let net = net.trunc();
        if !out.iter().any(|held| held.contains(&net)) {
            out.retain(|held| !net.contains(held));
            out.push(net);
        }
    }
    out
}

/// A protection with fields the target cannot enforce is refused whole, each field with why and what to do.
fn refuse_unsupported(target: &str, fields: &[UnsupportedField]) -> Result<(), CallError> {
    let Some(first) = fields.first() else { return Ok(()) };
    let what: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.why)).collect();
    let instead: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.instead)).collect();
    let mut e = CallError::new(
        ErrorCode::Unsupported,
        format!(
            "target {target} cannot enforce {} of this protection, so nothing was changed — {}",
            fields.len(),
            what.join("; ")
        ),
    )
    .with_hint(format!("{}; leave those fields out to apply the rest", instead.join("; ")));
    e.field = Some(first.field.clone());
    Err(e)
}

/// `get_ddos_protection`'s answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DdosProtectionResult {
    pub target: String,
    pub data: Vec<ProtectionView>,
    pub count: usize,
}

/// One protection as it is in force, with what it is doing now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProtectionView {
    #[serde(flatten)]
    pub protection: Protection,
    /// What it does, in one line.
    pub summary: String,
    pub live: ProtectionLive,
}

/// The read behind `get_ddos_protection`, optionally of one interface.
pub(crate) struct ProtectionRead {
    pub interface: Option<String>,
}

#[async_trait]
impl ReadJob for ProtectionRead {
    type Output = DdosProtectionResult;

    async fn read(self, at: &ReadScope<'_>) -> Result<DdosProtectionResult, CallError> {
        let mut state = at.state().await?;
        if let Some(name) = &self.interface {
            let iface = state.resolve_interface("interface", name)?.name.clone();
            state.protections.retain(|p| p.interface == iface);
        }
        let mut live = at.target.firewall.protection_live(&state).await?;
        let data: Vec<ProtectionView> = state
            .protections
            .into_iter()
            .map(|p| {
                let found = live.iter().position(|l| l.protection_id == p.protection_id);
                let live = match found {
                    Some(i) => live.swap_remove(i),
                    None => ProtectionLive { protection_id: p.protection_id.clone(), ..Default::default() },
                };
                ProtectionView { summary: p.describe(), protection: p, live }
            })
            .collect();
        Ok(DdosProtectionResult { target: at.target.name.clone(), count: data.len(), data })
    }
}

/// Sources the target's protections hold blocked for overload now, each with the protection that blocked it.
/// A target whose live state cannot be read gives none (and says so in the log): the answers that show them
/// are about more than protections.
pub(crate) async fn overloaded_sources(target: &crate::Target, state: &RuleSet) -> Vec<(Protection, OverloadedSource)> {
    if !state.protections.iter().any(|p| p.overload_block_seconds.is_some()) {
        return Vec::new();
    }
    let live = match target.firewall.protection_live(state).await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(target = %target.name, error = %e, "cannot read the protections' overloaded sources");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for l in live {
        if let Some(p) = state.protections.iter().find(|p| p.protection_id == l.protection_id) {
            out.extend(l.overloaded.into_iter().map(|o| (p.clone(), o)));
        }
    }
    out
}

/// The overloaded sources as `list_blocks` rows (kind `overload`).
pub(crate) fn overload_blocks(limited: Vec<(Protection, OverloadedSource)>, now: Timestamp) -> Vec<BlockView> {
    limited
        .into_iter()
        .map(|(p, o)| BlockView {
            ip_address: o.source,
            interface: p.interface.clone(),
            domain: None,
            reason: format!("over the per-source rate of DDoS protection {}", p.protection_id),
            created_at: None,
            expires_at: o.expires_at,
            remaining_seconds: o.expires_at.map(|t| (t - now).num_seconds().max(0)),
            permanent: false,
            alias: String::new(),
            kind: "overload".into(),
        })
        .collect()
}

/// The overloaded sources as `analyze_threats` findings of type `rate_limited`.
pub(crate) fn add_rate_limited(
    result: &mut ThreatsResult,
    limited: Vec<(Protection, OverloadedSource)>,
    now: Timestamp,
) {
    for (p, o) in limited {
        let until = o.expires_at.map_or("its block ends".to_string(), |t| t.to_rfc3339());
        result.data.push(ThreatView {
            kind: "rate_limited".into(),
            severity: "medium".into(),
            source_ip: o.source.clone(),
            attempt_count: 0,
            recommendation: format!(
                "blocked by DDoS protection {} until {until}; if it floods again, block it for longer (block_ip_address)",
                p.protection_id
            ),
            threat_score: 40,
            recommended_block_duration: Some("24h".into()),
            ports: p.ports.iter().filter(|r| r.first == r.last).map(|r| r.first).collect(),
            detail: format!("opened new connections faster than {} ({})", p.per_source_rate.map_or(String::new(), |r| r.to_string()), p.describe()),
            first_seen: now,
            last_seen: now,
            ids: None,
        });
        *result.by_type.entry("rate_limited".into()).or_default() += 1;
        result.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exempt_sources_keep_the_widest_of_overlapping_networks_once() {
        let nets = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>();
        let out = exempt_sources(
            &nets(&["192.0.2.10/32", "198.51.100.0/24"]),
            &nets(&["192.0.2.0/24", "198.51.100.7/32"]),
            Some("203.0.113.9".parse().unwrap()),
        );
        assert_eq!(out, nets(&["198.51.100.0/24", "192.0.2.0/24", "203.0.113.9/32"]));
        assert!(
            exempt_sources(&[], &[], Some("127.0.0.1".parse().unwrap())).is_empty(),
            "loopback never crosses an interface"
        );
    }
}
