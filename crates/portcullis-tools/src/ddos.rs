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

use crate::CallError;
use crate::args::ConfigureDdosProtectionArgs;
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
        Ok(PlannedIntent { intent, must_reach: Vec::new() })
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
