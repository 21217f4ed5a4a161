//! The rule sets before and after a plan, resolved and compiled once for every question a change is asked: its
//! effect on traffic (`effect`) and whether it cuts a management flow (`lockout`). With a long block list,
//! carrying the plan out and compiling both sides is most of what either question costs.

use std::borrow::Cow;

use crate::eval::{CompiledRuleSet, ResolvedRule, Resolver};
use crate::model::{RuleSet, Timestamp};
use crate::plan::{ChangePlan, Entries, Ids, carry_out};

/// One rule set, resolved and compiled.
pub(crate) struct Side<'a> {
    pub(crate) state: Cow<'a, RuleSet>,
    pub(crate) resolved: Vec<ResolvedRule>,
    pub(crate) compiled: CompiledRuleSet,
}

impl<'a> Side<'a> {
    fn new(state: Cow<'a, RuleSet>, now: Timestamp) -> Self {
        let resolved = Resolver::new(&state, now).resolve_all();
        Self { compiled: CompiledRuleSet::of_resolved(&state, &resolved), resolved, state }
    }

    pub(crate) fn rule_id(&self, index: usize) -> String {
        self.state.rules.get(index).map(|r| r.rule_id.to_string()).unwrap_or_default()
    }
}

/// A plan's rule sets before and after (new rules with placeholder ids `planned-N`).
pub struct Compared<'a> {
    pub(crate) old: Side<'a>,
    pub(crate) new: Side<'a>,
}

impl<'a> Compared<'a> {
    /// `None` when the plan does not fit the state: every backend refuses such a plan as a conflict.
    pub fn of(before: &'a RuleSet, plan: &ChangePlan, now: Timestamp) -> Option<Self> {
        let after = carry_out(before, plan, Ids::Placeholders, Entries::Apply).ok()?.state;
        Some(Self { old: Side::new(Cow::Borrowed(before), now), new: Side::new(Cow::Owned(after), now) })
    }

    /// The rule set as the plan leaves it.
    pub fn after(&self) -> &RuleSet {
        &self.new.state
    }
}
