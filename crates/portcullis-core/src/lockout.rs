//! Lockout prevention: the flows administrators need to reach the firewall are evaluated on the rule set as
//! it would be after a change; a change that cuts one of them is refused, naming the flow and the rule.

use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::compare::Compared;
use crate::eval::Decision;
use crate::model::{Direction, PROTO_TCP, Packet, RuleSet, Timestamp};
use crate::plan::{ChangePlan, Conflict, Entries, Ids, carry_out};

/// A flow that must keep working, e.g. the admin subnet → the firewall's GUI on 443.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagementFlow {
    pub name: String,
    /// The interface the flow arrives on (or, outbound, leaves by).
    pub interface: String,
    /// `in` (default): to the firewall; `out`: a flow the firewall host itself starts, e.g. to an API it manages.
    #[serde(default = "inbound")]
    pub direction: Direction,
    #[schemars(with = "String")]
    pub source: IpAddr,
    #[schemars(with = "String")]
    pub destination: IpAddr,
    /// TCP destination port.
    pub port: u16,
}

fn inbound() -> Direction {
    Direction::In
}

impl ManagementFlow {
    /// The flow's opening TCP packet, as the evaluator and the protections judge it.
    pub fn packet(&self) -> Packet {
        Packet {
            interface: self.interface.clone(),
            direction: self.direction,
            protocol: PROTO_TCP,
            source: self.source,
            destination: self.destination,
            source_port: Some(49152),
            destination_port: Some(self.port),
        }
    }
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lockout {
    pub flow: ManagementFlow,
    /// The rule that would decide the flow after the change (`None`: the implicit default deny).
    pub rule_id: Option<String>,
    pub rule_description: String,
    /// The DDoS protection that would limit the flow, when that is what cuts it (`rule_id` is then `None`).
    pub protection: Option<crate::protection::Protection>,
}

/// The flows implied by management hosts: each must keep reaching the firewall's address on the interface
/// whose subnet holds it, on HTTPS (443) and SSH (22).
pub fn flows_for_hosts(state: &RuleSet, hosts: &[IpNet]) -> Vec<ManagementFlow> {
    let mut flows = Vec::new();
    for host in hosts.iter().filter(|h| h.prefix_len() == h.max_prefix_len()) {
        for iface in &state.interfaces {
            for net in [iface.ipv4, iface.ipv6].into_iter().flatten() {
                if net.trunc().contains(&host.addr()) {
                    for port in [443, 22] {
                        flows.push(ManagementFlow {
                            name: format!("{} → {} ({}) port {port}", host.addr(), net.addr(), iface.name),
                            interface: iface.name.clone(),
                            direction: Direction::In,
                            source: host.addr(),
                            destination: net.addr(),
                            port,
                        });
                    }
                }
            }
        }
    }
    flows
}

/// The rule set as it would be after the plan, for evaluation only (new rules get placeholder ids); a conflict
/// when the plan does not fit `state`.
pub fn preview(state: &RuleSet, plan: &ChangePlan) -> Result<RuleSet, Conflict> {
    Ok(carry_out(state, plan, Ids::Placeholders, Entries::Apply)?.state)
}

/// The first flow that passes before the change and not after it.
pub fn check(
    before: &RuleSet,
    plan: &ChangePlan,
    flows: &[ManagementFlow],
    now: Timestamp,
) -> Result<(), Box<Lockout>> {
    if flows.is_empty() {
        return Ok(());
    }
    // A plan that does not fit the state cannot be applied either: every backend carries it out with the same
    // checks and refuses it as a conflict, so there is no lockout to prevent and the conflict is reported there.
    let Some(compared) = Compared::of(before, plan, now) else { return Ok(()) };
    check_compared(&compared, flows)
}

/// [`check`] on rule sets already compared for the plan.
pub fn check_compared(compared: &Compared<'_>, flows: &[ManagementFlow]) -> Result<(), Box<Lockout>> {
    let (old, new, after) = (&compared.old.compiled, &compared.new.compiled, &compared.new.state);
    for flow in flows {
        let packet = flow.packet();
        let (Ok(was), Ok(will)) = (old.evaluate(&packet), new.evaluate(&packet)) else { continue };
        let passed = was.action == crate::model::Action::Pass;
        if passed && will.action != crate::model::Action::Pass {
            let (rule_id, rule_description) = match will.decision {
                Decision::Rule(i) => (Some(after.rules[i].rule_id.to_string()), after.rules[i].description.clone()),
                _ => (None, "the implicit default deny (no rule would pass it any more)".to_string()),
            };
            return Err(Box::new(Lockout { flow: flow.clone(), rule_id, rule_description, protection: None }));
        }
    }
    // A protection decides no verdict, but a flow it limits is one a flood could cut: its source must be exempt.
    if let Some((protection, flow)) = crate::protection::limits_flow(&after.protections, flows) {
        return Err(Box::new(Lockout {
            flow: flow.clone(),
            rule_id: None,
            rule_description: format!("DDoS protection {}", protection.protection_id),
            protection: Some(protection.clone()),
        }));
    }
    Ok(())
}
