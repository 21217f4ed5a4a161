//! The rule tools: read, change, simulate and lint the rule set.

use portcullis_core::model::Timestamp;
use portcullis_guard::{Category, Level};

use async_trait::async_trait;
use portcullis_core::plan::Intent;

use crate::args::*;
use crate::catalogue::{Decl, Tool, ToolKind::*};
use crate::views::*;
use crate::work::{ReadJob, ReadScope, Work};
use crate::{CallError, reads};

pub(crate) struct GetFirewallRules;

impl Tool for GetFirewallRules {
    type Args = GetFirewallRulesArgs;
    type Output = RulesResult;
    const DECL: Decl = Decl {
        name: "get_firewall_rules",
        title: "Firewall rules",
        operation: "read_rules",
        kind: Read,
        category: Category::RuleManagement,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "List firewall rules in evaluation order with stable rule_id, interface, action, protocol, source, \
         destination, ports, description, enabled/paused state and position.",
    };

    fn route(a: GetFirewallRulesArgs, _now: Timestamp) -> Result<Work<RulesResult>, CallError> {
        Ok(Work::read(a.target.clone(), a))
    }
}

pub(crate) struct CreateFirewallRule;

impl Tool for CreateFirewallRule {
    type Args = CreateFirewallRuleArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "create_firewall_rule",
        title: "Create a firewall rule",
        operation: "create_rule",
        kind: Change,
        category: Category::RuleManagement,
        level: Level::Write,
        destructive: false,
        idempotent: false,
        description: "Create a rule on an interface. Returns the plan, risk score and the rule as read back from the \
         firewall. dry_run: true returns the exact plan and changes nothing.",
    };

    fn route(a: CreateFirewallRuleArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, create_intent(&a)?)
    }
}

pub(crate) struct ModifyFirewallRule;

impl Tool for ModifyFirewallRule {
    type Args = ModifyFirewallRuleArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "modify_firewall_rule",
        title: "Modify a firewall rule",
        operation: "modify_rule",
        kind: Change,
        category: Category::RuleManagement,
        level: Level::Write,
        destructive: true,
        idempotent: true,
        description: "Change fields of a rule addressed by rule_id (enable/disable, description, action, addresses, \
         ports, position). Managed rules (anti-lockout, block lists) are refused.",
    };

    fn route(a: ModifyFirewallRuleArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, modify_intent(&a)?)
    }
}

pub(crate) struct DeleteFirewallRule;

impl Tool for DeleteFirewallRule {
    type Args = RuleIdArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "delete_firewall_rule",
        title: "Delete a firewall rule",
        operation: "delete_rule",
        kind: Change,
        category: Category::RuleManagement,
        level: Level::Admin,
        destructive: true,
        idempotent: true,
        description: "Delete a rule by rule_id. The plan shows the rule as it was.",
    };

    fn route(a: RuleIdArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, Intent::DeleteRule { rule_id: rule_id(&a.rule_id)? })
    }
}

pub(crate) struct PauseRule;

impl Tool for PauseRule {
    type Args = PauseRuleArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "pause_rule",
        title: "Pause a rule",
        operation: "pause_rule",
        kind: Change,
        category: Category::Security,
        level: Level::Write,
        destructive: true,
        idempotent: true,
        description: "Disable a rule for 1-1440 minutes (default 60); it resumes by itself.",
    };

    fn route(a: PauseRuleArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let until = now + pause_span(a.minutes)?;
        Work::change(&a.change, Intent::PauseRule { rule_id: rule_id(&a.rule_id)?, until })
    }
}

pub(crate) struct ResumeRule;

impl Tool for ResumeRule {
    type Args = RuleIdArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "resume_rule",
        title: "Resume a paused rule",
        operation: "resume_rule",
        kind: Change,
        category: Category::Security,
        level: Level::Write,
        destructive: false,
        idempotent: true,
        description: "Re-enable a paused rule now.",
    };

    fn route(a: RuleIdArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, Intent::ResumeRule { rule_id: rule_id(&a.rule_id)? })
    }
}

pub(crate) struct SimulatePacket;

impl Tool for SimulatePacket {
    type Args = SimulatePacketArgs;
    type Output = SimulateResult;
    const DECL: Decl = Decl {
        name: "simulate_packet",
        title: "Simulate a packet",
        operation: "read_rules",
        kind: Read,
        category: Category::RuleManagement,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Decide a packet against the current rule set with pfSense first-match semantics and name the rule \
         that decides it (or the implicit default).",
    };

    fn route(a: SimulatePacketArgs, _now: Timestamp) -> Result<Work<SimulateResult>, CallError> {
        Ok(Work::from_state(a.target.clone(), move |v| Ok(reads::simulate(v.target, v.state, &a, v.now)?)))
    }
}

pub(crate) struct LintRules;

impl Tool for LintRules {
    type Args = InterfaceFilterArgs;
    type Output = LintResult;
    const DECL: Decl = Decl {
        name: "lint_rules",
        title: "Lint the rule set",
        operation: "read_rules",
        kind: Read,
        category: Category::RuleManagement,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Find shadowed, redundant, overly broad, disabled, long-disabled and paused rules.",
    };

    fn route(a: InterfaceFilterArgs, _now: Timestamp) -> Result<Work<LintResult>, CallError> {
        Ok(Work::from_state(a.target, move |v| {
            Ok(reads::lint_rules(v.target, v.state, a.interface.as_deref(), &v.svc.exposed_interfaces, v.now)?)
        }))
    }
}

/// The rules, each with what the firewall counted for it.
#[async_trait]
impl ReadJob for GetFirewallRulesArgs {
    type Output = RulesResult;
    async fn read(self, at: &ReadScope<'_>) -> Result<RulesResult, CallError> {
        let state = at.state().await?;
        let hits = at.svc.rule_hits(at.target).await;
        Ok(reads::firewall_rules(&at.target.name, &state, &self, hits.as_ref())?)
    }
}
