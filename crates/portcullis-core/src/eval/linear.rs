//! The straightforward evaluator: scan the rules in order, first match wins. It defines the semantics the
//! indexed evaluator must reproduce, and it is the baseline of the evaluator benchmark.

use super::{Evaluator, PacketKey, ResolvedRule, Verdict};
use crate::eval::Decision;

pub struct LinearEvaluator {
    rules: Vec<ResolvedRule>,
}

impl LinearEvaluator {
    pub fn new(rules: &[ResolvedRule]) -> Self {
        Self { rules: rules.to_vec() }
    }
}

impl Evaluator for LinearEvaluator {
    fn evaluate(&self, packet: &PacketKey) -> Verdict {
        self.rules
            .iter()
            .find(|r| r.matches(packet))
            .map(|r| Verdict { action: r.action, decision: Decision::Rule(r.index) })
            .unwrap_or_else(|| Verdict::default_for(packet.direction))
    }
}
