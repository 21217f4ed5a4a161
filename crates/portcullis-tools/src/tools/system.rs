//! The firewall as a system: its status, its VPNs, and the egress policy of the host Portcullis runs on.

use portcullis_core::model::Timestamp;
use portcullis_guard::{Category, Level};

use async_trait::async_trait;
use portcullis_core::firewall::VpnKind;

use crate::args::*;
use crate::catalogue::{Decl, Tool, ToolKind::*};
use crate::views::*;
use crate::work::{ReadJob, ReadScope, Work};
use crate::{CallError, egress};

pub(crate) struct GetSystemStatus;

impl Tool for GetSystemStatus {
    type Args = TargetArg;
    type Output = SystemStatusResult;
    const DECL: Decl = Decl {
        name: "get_system_status",
        title: "System status",
        operation: "read_system",
        kind: Read,
        category: Category::System,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "CPU and memory usage (percent), uptime (seconds), version, platform and health checks of a target.",
    };

    fn route(a: TargetArg, _now: Timestamp) -> Result<Work<SystemStatusResult>, CallError> {
        Ok(Work::read(a.target, Status))
    }
}

pub(crate) struct GetVpnStatus;

impl Tool for GetVpnStatus {
    type Args = VpnStatusArgs;
    type Output = VpnStatusResult;
    const DECL: Decl = Decl {
        name: "get_vpn_status",
        title: "VPN status",
        operation: "read_vpn",
        kind: Read,
        category: Category::Network,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "OpenVPN, IPsec and WireGuard servers and tunnels with their state and traffic, and the connected users \
         and peers. type: openvpn, ipsec or wireguard to narrow it.",
    };

    fn route(a: VpnStatusArgs, _now: Timestamp) -> Result<Work<VpnStatusResult>, CallError> {
        Ok(Work::read(a.target, Vpn(a.kind.as_deref().map(vpn_kind).transpose()?)))
    }
}

pub(crate) struct SetEgressPolicy;

impl Tool for SetEgressPolicy {
    type Args = SetEgressPolicyArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "set_egress_policy",
        title: "Egress policy of the Portcullis host",
        operation: "set_egress_policy",
        kind: Change,
        category: Category::System,
        level: Level::Admin,
        destructive: true,
        idempotent: true,
        description: "Limit what the host that runs Portcullis may start on an interface (an nftables target on that host): \
         the flows in allow, DNS to the resolvers of /etc/resolv.conf, the APIs of the configured firewalls \
         and the MCP clients (each switchable); everything else it sends is logged and dropped. Forwarded \
         traffic is not affected. Replaces a policy already there; enabled: false removes it. Refused if the \
         host could no longer reach a firewall API or the calling client.",
    };

    fn route(a: SetEgressPolicyArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let ask = egress::EgressRequest {
            interface: interface_name("interface", &a.interface)?,
            enabled: a.enabled.unwrap_or(true),
            allow: egress_allow(a.allow.as_deref().unwrap_or_default())?,
            include_dns: a.include_dns.unwrap_or(true),
            include_firewall_apis: a.include_firewall_apis.unwrap_or(true),
            include_mcp_clients: a.include_mcp_clients.unwrap_or(true),
        };
        Work::change_with(&a.change, ask)
    }
}

/// `get_system_status`: the backend's own report of its health.
pub(crate) struct Status;

#[async_trait]
impl ReadJob for Status {
    type Output = SystemStatusResult;
    async fn read(self, at: &ReadScope<'_>) -> Result<SystemStatusResult, CallError> {
        let status = at.target.firewall.system_status().await?;
        let backend = format!("{:?}", at.target.firewall.info().kind).to_ascii_lowercase();
        Ok(SystemStatusResult { target: at.target.name.clone(), backend, status })
    }
}

/// `get_vpn_status`, of one kind of VPN or all.
pub(crate) struct Vpn(Option<VpnKind>);

#[async_trait]
impl ReadJob for Vpn {
    type Output = VpnStatusResult;
    async fn read(self, at: &ReadScope<'_>) -> Result<VpnStatusResult, CallError> {
        let status = at.target.firewall.vpn_status(self.0).await?;
        let connections_up = status.connections.iter().filter(|c| c.status.eq_ignore_ascii_case("up")).count();
        Ok(VpnStatusResult {
            target: at.target.name.clone(),
            connections: status.connections,
            users: status.users,
            connections_up,
        })
    }
}
