//! Stateless verdicts with pfSense semantics: rules of the packet's interface in order, first match wins
//! (interface rules are `quick`), inbound traffic that matches nothing is blocked by the implicit default deny
//! rule, outbound traffic that matches nothing passes (pfSense's implicit `pass out`).

mod indexed;
mod linear;
mod resolve;

use std::collections::HashMap;

pub(crate) mod region;

pub use indexed::IndexedEvaluator;
pub use linear::LinearEvaluator;
pub use resolve::{AddrSet, PacketKey, PortSet, ResolvedRule, Resolver};

use crate::error::{FieldError, FieldResult};
use crate::model::{Action, Direction, Packet, RuleSet, Timestamp};

/// What decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The rule at this index of `RuleSet::rules` matched first.
    Rule(usize),
    /// No rule matched an inbound packet: pfSense's implicit "Default deny rule".
    DefaultDeny,
    /// No rule matched an outbound packet: pfSense's implicit "let out anything from firewall host itself".
    DefaultPassOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub decision: Decision,
}

impl Verdict {
    pub fn default_for(direction: Direction) -> Self {
        match direction {
            Direction::Out => Self { action: Action::Pass, decision: Decision::DefaultPassOut },
            Direction::In | Direction::Any => Self { action: Action::Block, decision: Decision::DefaultDeny },
        }
    }
}

/// Anything that can decide packets against a resolved rule set.
pub trait Evaluator {
    fn evaluate(&self, packet: &PacketKey) -> Verdict;
}

/// A rule set compiled for fast evaluation at a moment in time.
pub struct CompiledRuleSet {
    interface_ids: HashMap<String, u16>,
    evaluator: IndexedEvaluator,
}

impl CompiledRuleSet {
    pub fn compile(rules: &RuleSet, now: Timestamp) -> Self {
        Self::of_resolved(rules, &Resolver::new(rules, now).resolve_all())
    }

    /// The compiled form of rules already resolved (`Resolver::resolve_all` of the same rule set), for callers
    /// that need the resolved rules too and should not resolve long alias lists twice.
    pub fn of_resolved(rules: &RuleSet, resolved: &[ResolvedRule]) -> Self {
        let interface_ids =
            rules.interfaces.iter().enumerate().map(|(i, iface)| (iface.name.clone(), i as u16)).collect();
        Self { interface_ids, evaluator: IndexedEvaluator::new(resolved) }
    }

    pub fn packet_key(&self, packet: &Packet) -> FieldResult<PacketKey> {
        let interface = *self
            .interface_ids
            .get(&packet.interface)
            .ok_or_else(|| FieldError::new("interface", format!("unknown interface {:?}", packet.interface)))?;
        if packet.source.is_ipv4() != packet.destination.is_ipv4() {
            return Err(FieldError::new("destination", "source and destination must be of the same IP family"));
        }
        Ok(PacketKey {
            interface,
            direction: packet.direction,
            protocol: packet.protocol,
            source: packet.source,
            destination: packet.destination,
            source_port: packet.source_port,
            destination_port: packet.destination_port,
        })
    }

    pub fn evaluate(&self, packet: &Packet) -> FieldResult<Verdict> {
        let key = self.packet_key(packet)?;
        Ok(self.evaluator.evaluate(&key))
    }

    pub fn evaluate_key(&self, key: &PacketKey) -> Verdict {
        self.evaluator.evaluate(key)
    }
}
