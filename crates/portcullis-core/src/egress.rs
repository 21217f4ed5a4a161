//! An egress policy for the host that runs Portcullis: its own outbound traffic may reach the firewall APIs it
//! manages, its DNS servers and its MCP clients, and everything else it sends is logged and dropped — so a
//! compromised or confused Portcullis cannot be used to reach anything else.
//!
//! The policy is ordinary outbound rules of the model, owned by Portcullis (`managed: egress`), with the source
//! `(self)` so that they decide only traffic the host itself sends, never traffic it forwards. Setting and
//! removing it are plans like any other change (`Intent::SetEgressPolicy`, `Intent::RemoveEgressPolicy`): one
//! atomic apply, verified by read-back, undone by the inverse plan.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::error::{FieldError, FieldResult};
use crate::lockout::ManagementFlow;
use crate::model::{
    Action, AddressMatch, AddressTarget, Direction, IpVersion, PortMatch, PortRange, Protocol, Rule, RuleSet, Timestamp,
};
use crate::plan::{ChangeFacts, ChangePlan, Operation};

/// The `managed` tag of egress policy rules.
pub const MANAGED_EGRESS: &str = "egress";
/// The description of the policy's last rule, which logs and drops what no flow allows.
pub const EGRESS_DROP_DESCR: &str = "Portcullis egress: log and drop the rest";

/// One flow the host may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressFlow {
    /// What it is for, e.g. `pfSense API hq` or `DNS 192.0.2.53`.
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
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
            .map(|ip| EgressFlow {
                name: format!("DNS {ip}"),
                protocol: Protocol::TcpUdp,
                destination: IpNet::from(ip),
                port: Some(PortRange::single(53)),
            })
            .collect()
    }
}

/// A rule of the policy: from the host itself (`(self)`) out of `interface` to `destination` (`None`: anywhere).
fn policy_rule(
    interface: &str,
    description: String,
    action: Action,
    protocol: Protocol,
    destination: Option<IpNet>,
    port: PortMatch,
    now: Timestamp,
) -> Rule {
    let (ip_version, destination) = match destination {
        None => (IpVersion::Inet46, AddressMatch::ANY),
        Some(net) => {
            let version = if net.addr().is_ipv4() { IpVersion::Inet } else { IpVersion::Inet6 };
            (version, AddressMatch { target: AddressTarget::Net(net), negate: false })
        }
    };
    Rule {
        direction: Direction::Out,
        ip_version,
        protocol,
        source: AddressMatch { target: AddressTarget::ThisFirewall, negate: false },
        destination,
        destination_port: port,
        description,
        log: action != Action::Pass,
        managed: Some(MANAGED_EGRESS.into()),
        ..Rule::new(interface, action).stamped(now)
    }
}

fn egress_rules<'a>(state: &'a RuleSet, interface: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
    state.rules_on(interface).filter(|r| r.managed.as_deref() == Some(MANAGED_EGRESS))
}

/// The plan that puts `policy` in place after the interface's other rules: the allowed flows in order, then "log
/// and drop the rest". A policy already on the interface is replaced in the same plan.
pub(crate) fn plan_set(state: &RuleSet, policy: &EgressPolicy, now: Timestamp) -> FieldResult<ChangePlan> {
    let interface = state.resolve_interface("interface", &policy.interface)?.name.clone();
    for (i, flow) in policy.allow.iter().enumerate() {
        if flow.port.is_some() && !flow.protocol.has_ports() {
            return Err(FieldError::new(
                format!("allow[{i}].port"),
                format!("{}: ports need tcp, udp or tcp/udp, not {}", flow.name, flow.protocol),
            ));
        }
    }
    // The new rules go after every rule there is, and an old policy's rules are deleted after them: created
    // first, the new rules get ids above every id in use (backends count up from the largest), never the id of
    // a rule the same plan deletes.
    let old: Vec<Operation> =
        egress_rules(state, &interface).map(|r| Operation::DeleteRule { before: r.clone() }).collect();
    let replacing = !old.is_empty();
    let mut operations = Vec::new();
    let mut position = state.rules_on(&interface).count();
    for flow in &policy.allow {
        let rule = policy_rule(
            &interface,
            format!("Portcullis egress: allow {}", flow.name),
            Action::Pass,
            flow.protocol,
            Some(flow.destination),
            flow.port.map_or(PortMatch::Any, PortMatch::Range),
            now,
        );
        operations.push(Operation::CreateRule { position, after: rule });
        position += 1;
    }
    let rest =
        policy_rule(&interface, EGRESS_DROP_DESCR.into(), Action::Block, Protocol::Any, None, PortMatch::Any, now);
    operations.push(Operation::CreateRule { position, after: rest });
    operations.extend(old);
    let mut warnings = vec![format!("traffic this host starts on {interface} is dropped unless it is allowed")];
    if replacing {
        warnings.push(format!("the egress policy already on {interface} is replaced"));
    }
    Ok(ChangePlan {
        summary: format!(
            "{} egress policy on {interface}: allow {} flows, log and drop the rest",
            if replacing { "replace the" } else { "set an" },
            policy.allow.len()
        ),
        operations,
        warnings,
        facts: ChangeFacts {
            // A replacement may allow what the old policy dropped.
            widens_exposure: replacing,
            permanent: true,
            interfaces: vec![interface],
            ..ChangeFacts::default()
        },
    })
}

/// The plan that removes the egress policy of `interface`.
pub(crate) fn plan_remove(state: &RuleSet, interface: &str) -> FieldResult<ChangePlan> {
    let interface = state.resolve_interface("interface", interface)?.name.clone();
    let operations: Vec<Operation> =
        egress_rules(state, &interface).map(|r| Operation::DeleteRule { before: r.clone() }).collect();
    if operations.is_empty() {
        return Err(FieldError::new("interface", format!("{interface} has no egress policy")));
    }
    Ok(ChangePlan {
        summary: format!("remove the egress policy of {interface}"),
        operations,
        warnings: vec![format!("this host may again start any traffic on {interface}")],
        facts: ChangeFacts {
            widens_exposure: true,
            permanent: true,
            interfaces: vec![interface],
            ..ChangeFacts::default()
        },
    })
}

/// The outbound flows the host must keep after an egress policy on `interface`: one TCP flow from the host's own
/// address of the same family (the interface's, else any interface's) to each endpoint. Endpoints of a family the
/// host has no address of cannot leave it anyway and are left out.
pub fn must_reach_flows(state: &RuleSet, interface: &str, endpoints: &[(String, SocketAddr)]) -> Vec<ManagementFlow> {
    let Ok(iface) = state.resolve_interface("interface", interface) else {
        return Vec::new();
    };
    let own_address = |v6: bool| {
        std::iter::once(iface)
            .chain(state.interfaces.iter())
            .flat_map(|i| [i.ipv4, i.ipv6])
            .flatten()
            .map(|n| n.addr())
            .find(|a| a.is_ipv6() == v6)
    };
    endpoints
        .iter()
        .filter_map(|(name, endpoint)| {
            Some(ManagementFlow {
                name: name.clone(),
                interface: iface.name.clone(),
                direction: Direction::Out,
                source: own_address(endpoint.is_ipv6())?,
                destination: endpoint.ip(),
                port: endpoint.port(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Applied;
    use crate::lockout;
    use crate::model::Interface;
    use crate::plan::{Entries, Ids, Intent, carry_out, invert, plan};

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map(|t| t.to_utc()).unwrap_or_default()
    }

    fn host() -> RuleSet {
        let wan = Interface::up("wan", "eth0", "198.51.100.2/24".parse().ok());
        let mut state = RuleSet { interfaces: vec![wan], ..RuleSet::default() };
        let inbound = policy_rule("wan", "ssh in".into(), Action::Pass, Protocol::Tcp, None, PortMatch::Any, now());
        state.rules.push(Rule {
            managed: None,
            direction: Direction::In,
            source: AddressMatch::ANY,
            log: false,
            ..inbound.with_id("1")
        });
        state
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn api() -> EgressFlow {
        EgressFlow {
            name: "pfSense API hq".into(),
            protocol: Protocol::Tcp,
            destination: net("203.0.113.10/32"),
            port: Some(PortRange::single(443)),
        }
    }

    /// Carries a plan out on the model as a backend would, giving created rules tracker ids.
    fn apply(state: &RuleSet, p: &ChangePlan, seed: u32) -> (RuleSet, Applied) {
        let at = chrono::DateTime::from_timestamp(i64::from(seed), 0).expect("time");
        let carried = carry_out(state, p, Ids::Tracker(at), Entries::Apply).expect("the plan fits");
        (carried.state, carried.applied)
    }

    #[test]
    fn resolvers_become_dns_flows() {
        let flows = EgressPolicy::dns_flows("# comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch x\n");
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[1].destination.to_string(), "2001:db8::53/128");
        assert_eq!(flows[0].port, Some(PortRange::single(53)));
    }

    #[test]
    fn a_policy_is_its_flows_then_a_logged_drop_after_the_other_rules() {
        let state = host();
        let policy = EgressPolicy { interface: "WAN".into(), allow: vec![api()] };
        let p = plan(&state, &Intent::SetEgressPolicy(policy), now()).expect("plan");
        let created: Vec<(usize, &Rule)> = p
            .operations
            .iter()
            .filter_map(|op| match op {
                Operation::CreateRule { position, after } => Some((*position, after)),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 2);
        assert_eq!((created[0].0, created[0].1.action, created[0].1.ip_version), (1, Action::Pass, IpVersion::Inet));
        assert_eq!(created[0].1.destination.to_string(), "203.0.113.10");
        assert_eq!((created[1].0, created[1].1.action, created[1].1.log), (2, Action::Block, true));
        assert!(created[1].1.destination.is_any() && created[1].1.ip_version == IpVersion::Inet46);
        for (_, rule) in &created {
            assert_eq!((rule.direction, rule.interface.as_str()), (Direction::Out, "wan"));
            assert_eq!(rule.source.target, AddressTarget::ThisFirewall);
            assert_eq!(rule.managed.as_deref(), Some(MANAGED_EGRESS));
        }
        assert!(!p.facts.widens_exposure && p.facts.permanent);
    }

    #[test]
    fn the_policy_decides_only_what_the_host_itself_sends() {
        let state = host();
        let p =
            plan(&state, &Intent::SetEgressPolicy(EgressPolicy { interface: "wan".into(), allow: vec![api()] }), now())
                .expect("plan");
        let after = lockout::preview(&state, &p).expect("the plan fits");
        let verdict = |source: &str, destination: &str, port: u16| {
            let packet = crate::model::Packet {
                interface: "wan".into(),
                direction: Direction::Out,
                protocol: crate::model::PROTO_TCP,
                source: source.parse().expect("ip"),
                destination: destination.parse().expect("ip"),
                source_port: Some(40000),
                destination_port: Some(port),
            };
            crate::eval::CompiledRuleSet::compile(&after, now()).evaluate(&packet).expect("verdict").action
        };
        assert_eq!(verdict("198.51.100.2", "203.0.113.10", 443), Action::Pass);
        assert_eq!(verdict("198.51.100.2", "203.0.113.10", 22), Action::Block);
        assert_eq!(verdict("198.51.100.2", "192.0.2.1", 443), Action::Block);
        assert_eq!(verdict("10.0.0.5", "192.0.2.1", 443), Action::Pass, "forwarded traffic is not the host's");
    }

    #[test]
    fn ports_without_a_port_protocol_are_refused_naming_the_flow() {
        let flow = EgressFlow { protocol: Protocol::Icmp, ..api() };
        let e =
            plan(&host(), &Intent::SetEgressPolicy(EgressPolicy { interface: "wan".into(), allow: vec![flow] }), now())
                .expect_err("refused");
        assert_eq!(e.field, "allow[0].port");
    }

    #[test]
    fn setting_again_replaces_and_removing_then_undoing_restores_the_rules_in_order() {
        let state = host();
        let set = |s: &RuleSet, allow: Vec<EgressFlow>| {
            plan(s, &Intent::SetEgressPolicy(EgressPolicy { interface: "wan".into(), allow }), now()).expect("plan")
        };
        let first = set(&state, vec![api(), EgressPolicy::dns_flows("nameserver 192.0.2.53")[0].clone()]);
        let (with_policy, _) = apply(&state, &first, 100);
        let replace = set(&with_policy, vec![api()]);
        assert_eq!(replace.operations.iter().filter(|o| matches!(o, Operation::DeleteRule { .. })).count(), 3);
        assert!(replace.facts.widens_exposure);
        let (replaced, applied) = apply(&with_policy, &replace, 400);
        let descriptions = |s: &RuleSet| s.rules.iter().map(|r| r.description.clone()).collect::<Vec<_>>();
        assert_eq!(
            descriptions(&replaced),
            ["ssh in", "Portcullis egress: allow pfSense API hq", EGRESS_DROP_DESCR],
            "the new policy takes the old one's place"
        );
        let undo = invert(&replace, &applied, &with_policy, &replaced);
        assert_eq!(
            descriptions(&apply(&replaced, &undo, 500).0),
            descriptions(&with_policy),
            "and its undo restores it"
        );

        let removal = plan(&with_policy, &Intent::RemoveEgressPolicy { interface: "wan".into() }, now()).expect("plan");
        let (removed, applied) = apply(&with_policy, &removal, 200);
        assert_eq!(removed.rules, state.rules);
        let undo = invert(&removal, &applied, &with_policy, &removed);
        let (restored, _) = apply(&removed, &undo, 300);
        assert_eq!(descriptions(&restored), descriptions(&with_policy), "the undo puts every rule back in its place");
        assert!(restored.rules.iter().zip(&with_policy.rules).all(|(a, b)| crate::plan::same_enforcement(a, b)));

        let e = plan(&removed, &Intent::RemoveEgressPolicy { interface: "wan".into() }, now()).expect_err("none");
        assert_eq!(e.field, "interface");
    }

    #[test]
    fn a_policy_that_cuts_a_needed_endpoint_is_a_lockout() {
        let state = host();
        let endpoints = vec![("API of target hq".to_string(), "203.0.113.10:443".parse().expect("addr"))];
        let flows = must_reach_flows(&state, "wan", &endpoints);
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].source.to_string(), "198.51.100.2");
        let without =
            plan(&state, &Intent::SetEgressPolicy(EgressPolicy { interface: "wan".into(), allow: vec![] }), now())
                .expect("plan");
        let lockout = lockout::check(&state, &without, &flows, now()).expect_err("cut");
        assert_eq!(lockout.rule_description, EGRESS_DROP_DESCR);
        let with =
            plan(&state, &Intent::SetEgressPolicy(EgressPolicy { interface: "wan".into(), allow: vec![api()] }), now())
                .expect("plan");
        assert!(lockout::check(&state, &with, &flows, now()).is_ok());
        let v6 = vec![("v6 client".to_string(), "[2001:db8::1]:443".parse().expect("addr"))];
        assert!(must_reach_flows(&state, "wan", &v6).is_empty(), "the host has no IPv6 address to send from");
    }
}
