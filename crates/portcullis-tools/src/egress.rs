//! `set_egress_policy`: where the flows of the host's egress policy come from (the configured firewall APIs,
//! resolved at call time; DNS from resolv.conf; the MCP clients) and which endpoints the policy must keep
//! reachable. The policy itself is planned by the core (`portcullis_core::egress`) and applied through the same
//! change path as every other tool.

use async_trait::async_trait;
use ipnet::IpNet;
use portcullis_core::FieldError;
use portcullis_core::egress::{EgressFlow, EgressPolicy};
use portcullis_core::firewall::ErrorCode;
use portcullis_core::model::{PortRange, Protocol};
use portcullis_core::plan::Intent;
use portcullis_guard::CallContext;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::work::{IntentJob, IntentScope, PlannedIntent};
use crate::{CallError, Target};

/// The API of a configured firewall, as the host reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallApi {
    pub target: String,
    /// A host name or an address.
    pub host: String,
    pub port: u16,
}

/// What the binary's configuration says about the host's own traffic.
#[derive(Debug, Clone)]
pub struct EgressSources {
    pub firewall_apis: Vec<FirewallApi>,
    /// Networks MCP clients connect from.
    pub mcp_clients: Vec<IpNet>,
    /// Read at call time, so that a changed resolver list is picked up.
    pub resolv_conf: PathBuf,
}

impl Default for EgressSources {
    fn default() -> Self {
        Self { firewall_apis: Vec::new(), mcp_clients: Vec::new(), resolv_conf: PathBuf::from("/etc/resolv.conf") }
    }
}

/// A validated `set_egress_policy` call, before the flows that come from config are added.
#[derive(Debug, Clone)]
pub(crate) struct EgressRequest {
    pub interface: String,
    pub enabled: bool,
    pub allow: Vec<EgressFlow>,
    pub include_dns: bool,
    pub include_firewall_apis: bool,
    pub include_mcp_clients: bool,
}

/// The policy is worked out once the target is known to be this host's own firewall.
#[async_trait]
impl IntentJob for EgressRequest {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        require_own_host(at.target)?;
        at.svc.egress.intent(at.ctx, self).await
    }
}

/// Traffic to loopback never leaves by an interface, so no egress policy decides it.
fn leaves_the_host(ip: IpAddr) -> bool {
    !ip.is_loopback() && !ip.is_unspecified()
}

/// Only a firewall that filters the traffic of Portcullis' own host can hold its egress policy.
fn require_own_host(target: &Target) -> Result<(), CallError> {
    if target.firewall.filters_own_traffic() {
        return Ok(());
    }
    let kind = format!("{:?}", target.firewall.info().kind).to_ascii_lowercase();
    Err(CallError::from(FieldError::new(
        "target",
        format!("target {} ({kind}) does not filter the traffic of the host that runs Portcullis", target.name),
    ))
    .with_hint("an egress policy needs an nftables target on this host (kind: nftables, without netns in production)"))
}

impl EgressSources {
    /// The intent of a call: the policy with its explicit flows first, then DNS, firewall APIs and MCP clients.
    pub(crate) async fn intent(&self, ctx: &CallContext, ask: EgressRequest) -> Result<PlannedIntent, CallError> {
        if !ask.enabled {
            if !ask.allow.is_empty() {
                return Err(FieldError::new("allow", "flows are given only with enabled: true").into());
            }
            return Ok(PlannedIntent {
                intent: Intent::RemoveEgressPolicy { interface: ask.interface },
                must_reach: Vec::new(),
                person_must_approve: None,
                after_apply: None,
                reveal: None,
            });
        }
        let apis = self.resolve_apis().await?;
        let mut allow = ask.allow;
        if ask.include_dns {
            allow.extend(self.dns_flows()?);
        }
        if ask.include_firewall_apis {
            allow.extend(apis.iter().map(|(name, addr)| EgressFlow {
                name: name.clone(),
                protocol: Protocol::Tcp,
                destination: IpNet::from(addr.ip()),
                port: Some(PortRange::single(addr.port())),
            }));
        }
        // A dual-stack listener sees an IPv4 client as `::ffff:a.b.c.d`: the flow that keeps it reachable is to the
        // IPv4 host, the only form its packets carry.
        let caller = ctx
            .peer
            .map(|p| SocketAddr::new(portcullis_core::address::mapped_to_ipv4(p.ip()), p.port()))
            .filter(|p| leaves_the_host(p.ip()));
        if ask.include_mcp_clients {
            let clients = self.mcp_clients.iter().copied().chain(caller.map(|p| IpNet::from(p.ip())));
            allow.extend(clients.map(|net| EgressFlow {
                name: format!("MCP client {net}"),
                protocol: Protocol::Tcp,
                destination: net,
                port: None,
            }));
        }
        let mut must_reach = apis;
        must_reach.extend(caller.map(|p| (format!("the calling MCP client {}", p.ip()), p)));
        let policy = EgressPolicy { interface: ask.interface, allow };
        Ok(PlannedIntent {
            intent: Intent::SetEgressPolicy(policy),
            must_reach,
            person_must_approve: None,
            after_apply: None,
            reveal: None,
        })
    }

    fn dns_flows(&self) -> Result<Vec<EgressFlow>, CallError> {
        let text = std::fs::read_to_string(&self.resolv_conf).map_err(|e| {
            CallError::new(ErrorCode::Unavailable, format!("cannot read {}: {e}", self.resolv_conf.display()))
                .with_hint("give the DNS servers in allow and set include_dns: false")
        })?;
        Ok(EgressPolicy::dns_flows(&text))
    }

    /// Every configured firewall API that leaves the host, resolved now: `(name, address:port)`.
    async fn resolve_apis(&self) -> Result<Vec<(String, SocketAddr)>, CallError> {
        let mut out = Vec::new();
        for api in &self.firewall_apis {
            let addresses = tokio::net::lookup_host((api.host.as_str(), api.port)).await.map_err(|e| {
                CallError::new(
                    ErrorCode::Unavailable,
                    format!("cannot resolve {} (target {}): {e}", api.host, api.target),
                )
                .with_hint(
                    "the policy must allow the API of every configured target; fix DNS or configure it by address",
                )
            })?;
            let mut seen = Vec::new();
            for addr in addresses.filter(|a| leaves_the_host(a.ip())) {
                if !seen.contains(&addr) {
                    seen.push(addr);
                    out.push((format!("API of target {} ({})", api.target, addr.ip()), addr));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_guard::{Principal, Transport};

    fn ctx(peer: Option<&str>) -> CallContext {
        let ctx = CallContext::new(Principal { name: "root".into(), role: "admin".into() }, Transport::Http, None);
        ctx.with_peer(peer.map(|p| p.parse().expect("peer")))
    }

    fn ask() -> EgressRequest {
        EgressRequest {
            interface: "wan".into(),
            enabled: true,
            allow: Vec::new(),
            include_dns: true,
            include_firewall_apis: true,
            include_mcp_clients: true,
        }
    }

    fn sources(dir: &tempfile::TempDir) -> EgressSources {
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(&resolv_conf, "nameserver 192.0.2.53\nnameserver 127.0.0.53\n").expect("write");
        EgressSources {
            firewall_apis: vec![
                FirewallApi { target: "hq".into(), host: "203.0.113.10".into(), port: 443 },
                FirewallApi { target: "local".into(), host: "localhost".into(), port: 8443 },
            ],
            mcp_clients: vec!["198.51.100.0/24".parse().expect("net")],
            resolv_conf,
        }
    }

    fn names(intent: &Intent) -> Vec<String> {
        match intent {
            Intent::SetEgressPolicy(p) => p.allow.iter().map(|f| f.name.clone()).collect(),
            other => panic!("not a policy: {other:?}"),
        }
    }

    #[tokio::test]
    async fn flows_come_from_resolv_conf_the_targets_and_the_clients() {
        let dir = tempfile::tempdir().expect("tempdir");
        let got = sources(&dir).intent(&ctx(Some("198.51.100.7:50123")), ask()).await.expect("intent");
        assert_eq!(
            names(&got.intent),
            [
                "DNS 192.0.2.53",
                "DNS 127.0.0.53",
                "API of target hq (203.0.113.10)",
                "MCP client 198.51.100.0/24",
                "MCP client 198.51.100.7/32"
            ]
        );
        let reach: Vec<String> = got.must_reach.iter().map(|(_, a)| a.to_string()).collect();
        assert_eq!(reach, ["203.0.113.10:443", "198.51.100.7:50123"], "loopback never leaves the host");
    }

    #[tokio::test]
    async fn switches_leave_flows_out_but_not_what_must_stay_reachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let quiet =
            EgressRequest { include_dns: false, include_firewall_apis: false, include_mcp_clients: false, ..ask() };
        let got = sources(&dir).intent(&ctx(Some("198.51.100.7:50123")), quiet).await.expect("intent");
        assert!(names(&got.intent).is_empty());
        assert_eq!(got.must_reach.len(), 2);
        let removal =
            sources(&dir).intent(&ctx(None), EgressRequest { enabled: false, ..ask() }).await.expect("intent");
        assert!(matches!(removal.intent, Intent::RemoveEgressPolicy { .. }) && removal.must_reach.is_empty());
    }

    #[tokio::test]
    async fn a_missing_resolv_conf_is_an_error_with_a_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = sources(&dir);
        s.resolv_conf = dir.path().join("missing");
        let e = s.intent(&ctx(None), ask()).await.err().expect("refused");
        assert!(e.message.contains("missing") && e.hint.is_some(), "{e:?}");
        assert_eq!(e.code, ErrorCode::Unavailable);
    }
}
