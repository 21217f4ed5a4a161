//! Placeholder: delegates to the linear scan until the bit-vector classifier lands.

use super::{Evaluator, LinearEvaluator, PacketKey, ResolvedRule, Verdict};

pub struct IndexedEvaluator {
    inner: LinearEvaluator,
}

impl IndexedEvaluator {
    pub fn new(rules: &[ResolvedRule]) -> Self {
        Self { inner: LinearEvaluator::new(rules) }
    }
}

impl Evaluator for IndexedEvaluator {
    fn evaluate(&self, packet: &PacketKey) -> Verdict {
        self.inner.evaluate(packet)
    }
}
