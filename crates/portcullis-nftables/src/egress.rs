//! An egress policy for the host that runs Portcullis: its own outbound traffic may reach the firewall APIs it
//! manages, its DNS servers and its MCP clients, and everything else it sends is logged and dropped — so a
//! compromised or confused Portcullis cannot be used to reach anything else.
//!
//! The policy is ordinary outbound rules of the model, owned by Portcullis (`managed: egress`), with the source
//! `(self)` so that they decide only traffic the host itself sends (`fib saddr type local`), never traffic it
//! forwards. Applying and removing it are plans like any other change: one atomic batch, verified by reading the
//! kernel back, and undone by the inverse plan.

use ipnet::IpNet;
use portcullis_core::model::{
    Action, AddressMatch, AddressTarget, Direction, IpVersion, PortMatch, PortRange, Protocol, Rule, RuleId, RuleSet,
    Timestamp,
};
use portcullis_core::plan::{ChangeFacts, ChangePlan, Operation};
use portcullis_core::{FieldError, FieldResult};

/// The `managed` tag of egress policy rules.
pub const MANAGED_EGRESS: &str = "egress";

/// One flow the host may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressFlow {
    /// What it is for, e.g. `pfSense API hq` or `DNS`.
    pub name: String,
    pub protocol: Protocol,
    pub destination: IpNet,
    pub port: Option<PortRange>,
}

/// The flows allowed out of one interface; the rest is logged and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    pub interface: String,
    pub allow: Vec<EgressFlow>,
}

impl EgressPolicy {
    /// DNS to each resolver of `/etc/resolv.conf`-style text (`nameserver 192.0.2.53`), over UDP and TCP.
    pub fn dns_flows(resolv_conf: &str) -> Vec<EgressFlow> {
        resolv_conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
            .map(|ip| EgressFlow {
                name: format!("DNS {ip}"),
                protocol: Protocol::TcpUdp,
                destination: IpNet::from(ip),
                port: Some(PortRange::single(53)),
            })
            .collect()
    }

    fn rule(
        &self,
        description: String,
        action: Action,
        protocol: Protocol,
        dst: AddressMatch,
        port: PortMatch,
        now: Timestamp,
    ) -> Rule {
        let ip_version = match &dst.target {
            AddressTarget::Net(IpNet::V4(_)) => IpVersion::Inet,
            AddressTarget::Net(IpNet::V6(_)) => IpVersion::Inet6,
            _ => IpVersion::Inet46,
        };
        Rule {
            rule_id: RuleId(String::new()),
            interface: self.interface.clone(),
            direction: Direction::Out,
            action,
            ip_version,
            protocol,
            source: AddressMatch { target: AddressTarget::ThisFirewall, negate: false },
            source_port: PortMatch::Any,
            destination: dst,
            destination_port: port,
            description,
            enabled: true,
            log: action != Action::Pass,
            managed: Some(MANAGED_EGRESS.into()),
            paused_until: None,
            created_at: Some(now),
            updated_at: Some(now),
        }
    }

    /// The plan that puts the policy in place: the allowed flows in order, then "log and drop the rest".
    pub fn plan_apply(&self, state: &RuleSet, now: Timestamp) -> FieldResult<ChangePlan> {
        let interface = state.resolve_interface("interface", &self.interface)?.name.clone();
        if state.rules_on(&interface).any(|r| r.managed.as_deref() == Some(MANAGED_EGRESS)) {
            return Err(FieldError::new(
                "interface",
                format!("{interface} already has an egress policy; remove it first"),
            ));
        }
        let policy = EgressPolicy { interface: interface.clone(), ..self.clone() };
        let first = state.rules_on(&interface).count();
        let mut operations = Vec::new();
        for flow in &self.allow {
            if flow.port.is_some() && !flow.protocol.has_ports() {
                return Err(FieldError::new("allow", format!("{}: ports need tcp or udp", flow.name)));
            }
            let rule = policy.rule(
                format!("Portcullis egress: allow {}", flow.name),
                Action::Pass,
                flow.protocol,
                AddressMatch { target: AddressTarget::Net(flow.destination), negate: false },
                flow.port.map_or(PortMatch::Any, PortMatch::Range),
                now,
            );
            operations.push(Operation::CreateRule { position: first + operations.len(), after: rule });
        }
        let rest = policy.rule(
            "Portcullis egress: log and drop the rest".into(),
            Action::Block,
            Protocol::Any,
            AddressMatch::ANY,
            PortMatch::Any,
            now,
        );
        operations.push(Operation::CreateRule { position: first + operations.len(), after: rest });
        Ok(ChangePlan {
            summary: format!("egress policy on {interface}: allow {} flows, log and drop the rest", self.allow.len()),
            operations,
            warnings: vec![format!("traffic this host starts on {interface} is dropped unless it is allowed")],
            facts: ChangeFacts { permanent: true, interfaces: vec![interface], ..ChangeFacts::default() },
        })
    }

    /// The plan that removes the egress policy of `interface`.
    pub fn plan_remove(state: &RuleSet, interface: &str) -> FieldResult<ChangePlan> {
        let interface = state.resolve_interface("interface", interface)?.name.clone();
        let operations: Vec<Operation> = state
            .rules_on(&interface)
            .filter(|r| r.managed.as_deref() == Some(MANAGED_EGRESS))
            .map(|r| Operation::DeleteRule { before: r.clone() })
            .collect();
        if operations.is_empty() {
            return Err(FieldError::new("interface", format!("{interface} has no egress policy")));
        }
        Ok(ChangePlan {
            summary: format!("remove the egress policy of {interface}"),
            operations,
            warnings: Vec::new(),
            facts: ChangeFacts {
                widens_exposure: true,
                permanent: true,
                interfaces: vec![interface],
                ..ChangeFacts::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_become_dns_flows() {
        let flows = EgressPolicy::dns_flows("# comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch x\n");
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[1].destination.to_string(), "2001:db8::53/128");
        assert_eq!(flows[0].port, Some(PortRange::single(53)));
    }
}
