//! The change door: the one way a change reaches a firewall. Tool calls pass every stage of it, in a fixed order:
//!
//! enter (the target's writer lock) → fresh state → plan → argument policy → ownership → lockout → effect → risk
//! weighed by the effect → the target's own check → approval → journal → apply → verify by read-back → record
//! managed entries (with their owner) → announce.
//!
//! Rollbacks (`changes.rs`) and the reconciler's expiries (`reconciler.rs`) enter the same door and carry their
//! plans out through the same [`Inside::carry`]: a plan reaches a firewall only from inside, while the target's
//! writer lock is held.

use chrono::{TimeDelta, Utc};
use portcullis_core::compare::Compared;
use portcullis_core::firewall::{Applied, ErrorCode};
use portcullis_core::freshness::StateRead;
use portcullis_core::lockout;
use portcullis_core::model::{RuleId, RuleSet, Timestamp};
use portcullis_core::plan::{self, ChangePlan, Intent, Operation};
use portcullis_guard::approval::{self, ApprovalNeed};
use portcullis_guard::argpolicy::{self, PolicyInput};
use portcullis_guard::{CallContext, RiskInput};
use serde_json::Value;

use crate::views::{ChangeResult, ChangeStatus, RuleView};
use crate::work::{ChangeSettings, PlannedIntent};
use crate::{CallError, Target, ToolDef, ToolService, Trace, now, to_json, until_cancelled};

/// A plan, the answer as planned, and why approval is needed, if it is.
type Vetted = (ChangePlan, ChangeResult, Option<String>);

/// A target entered through the door: its writer lock is held for as long as this lives, from the state a
/// plan is made against to the read-back.
pub(crate) struct Inside<'a> {
    svc: &'a ToolService,
    pub target: &'a Target,
    _writer: tokio::sync::MutexGuard<'a, ()>,
}

/// How a plan's effect is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadBack {
    /// The objects the plan touched are read again (the whole target on a backend that keeps no recent state)
    /// and checked against every operation (`plan::verify`); the entries the plan put into or took out of managed
    /// lists are recorded.
    Whole,
    /// Only the entries the plan removed are looked up, and none may remain: the reconciler's expiries of long
    /// lists, which settle their own records from what they read.
    RemovedEntries,
}

/// What carrying a plan out left on the firewall.
pub(crate) struct Carried {
    /// The target as read back (`ReadBack::Whole` only).
    pub state: Option<RuleSet>,
    /// The ids the firewall gave the rules the plan created, in order.
    pub created: Vec<RuleId>,
    /// Secrets the firewall made for the caller ([`Applied::handed_over`]).
    pub handed_over: portcullis_core::firewall::HandedOver,
}

impl ToolService {
    /// Enters a target: waits for its writer lock.
    pub(crate) async fn enter<'a>(&'a self, target: &'a Target) -> Inside<'a> {
        Inside { svc: self, target, _writer: target.writer.lock().await }
    }
}

impl Inside<'_> {
    /// The target's state, read now.
    pub(crate) async fn fresh_state(&self) -> Result<RuleSet, CallError> {
        let state = self.target.firewall.snapshot().await?;
        self.target.note_state(&state);
        Ok(state)
    }

    /// Applies a plan whole, reads its effect back, records what it did to managed lists and announces it.
    /// `owner` is the principal whose call put the entries it puts; `None` keeps the owners on record (a rollback
    /// restores entries, the reconciler only removes them).
    pub(crate) async fn carry(
        &self,
        plan: &ChangePlan,
        read_back: ReadBack,
        owner: Option<&str>,
    ) -> Result<Carried, CallError> {
        let firewall = self.target.firewall.as_ref();
        let applied = firewall.apply(plan).await.map_err(|e| {
            let code = if e.code == ErrorCode::InternalError { ErrorCode::ApplyFailed } else { e.code };
            CallError { code, ..CallError::from(e) }
        })?;
        // Nobody listening is fine; a lagging listener only misses announcements, never the change.
        let announce = || {
            let _ = self.svc.changed.send(self.target.name.clone());
        };
        match read_back {
            ReadBack::Whole => {
                let touched = StateRead::touched_by(plan);
                let state = firewall.state(&touched).await?;
                plan::verify(plan, &applied, &state).map_err(|why| {
                    CallError::new(
                        ErrorCode::VerificationFailed,
                        format!("the change did not take effect as planned: {why}"),
                    )
                    .with_hint("read the rules back with get_firewall_rules and retry; the firewall may be locked")
                })?;
                // A read of entries alone may hold no rules (nftables looks the entries up); the pause deadlines
                // the reconciler keeps come from rules, which the change did not touch.
                if !touched.only_entries() {
                    self.target.note_state(&state);
                }
                announce();
                self.svc.record_managed(&self.target.name, plan, &state, owner)?;
                Ok(Carried { state: Some(state), created: applied.created_rules, handed_over: applied.handed_over })
            }
            ReadBack::RemovedEntries => {
                announce();
                self.verify_removed(plan).await?;
                Ok(Carried { state: None, created: applied.created_rules, handed_over: applied.handed_over })
            }
        }
    }

    /// Looks up the entries a plan removed: none may remain.
    async fn verify_removed(&self, plan: &ChangePlan) -> Result<(), CallError> {
        for op in &plan.operations {
            let Operation::RemoveAliasEntries { alias, before } = op else { continue };
            let values: Vec<String> = before.iter().map(|e| e.value.clone()).collect();
            let left = self.target.firewall.alias_entries(alias, &values).await?.unwrap_or_default();
            if let Some(e) = left.first() {
                return Err(CallError::new(
                    ErrorCode::VerificationFailed,
                    format!("expired entry {} is still in {alias} after its removal", e.value),
                ));
            }
        }
        Ok(())
    }
}

impl ToolService {
    /// A change tool's call, through every stage of the door.
    pub(crate) async fn change(&self, call: &ChangeCall<'_>, trace: &mut Trace) -> Result<Value, CallError> {
        let ctx = call.ctx;
        ctx.report_progress(0, Some(CHANGE_STEPS), "waiting for the target's writer lock");
        let inside = until_cancelled(ctx, async { Ok(self.enter(call.target).await) }).await?;
        ctx.report_progress(1, Some(CHANGE_STEPS), "planning against fresh state");
        let now = now();
        let (state, (plan, mut result, needs_approval)) =
            until_cancelled(ctx, self.plan_fresh(&inside, call, now, trace)).await?;
        // The firewall validates the plan itself where it can (pfRest dry_run) before anything is written. Until the
        // apply starts, every wait (fresh state, the target's check, a person's approval) ends when the caller
        // cancels; a pending approval then simply expires.
        until_cancelled(ctx, async { Ok(call.target.firewall.check(&plan).await?) }).await?;
        if call.options.dry_run {
            result.rule = planned_rule(&state, &plan);
            return to_json(&result);
        }
        if !call.options.allow_no_effect {
            refuse_a_rule_that_never_decides(&call.planned.intent, result.effect.as_ref(), &state)?;
        }
        if let Some(reason) = needs_approval {
            let summary = approval_summary(&plan.summary, result.effect.as_ref());
            result.approval_id = Some(self.approval_for(call, &summary, &reason, result.risk_score, now, trace).await?);
        }
        let confirm_by = self.confirm_window(call, &plan).map(|w| now + w);
        // The last moment a cancellation is honoured: once applying starts, the change runs to its end (before
        // or after, never between).
        ctx.check_cancelled()?;
        ctx.report_progress(2, Some(CHANGE_STEPS), "applying");
        self.journal_begin(&result.change_id, call, &plan, confirm_by, now)?;
        let carried = match inside.carry(&plan, ReadBack::Whole, Some(&ctx.principal.name)).await {
            Ok(carried) => carried,
            Err(e) => {
                self.journal_failed(&result.change_id, &e);
                return Err(e);
            }
        };
        let after = carried.state.as_ref().ok_or_else(|| CallError::internal("a whole read-back without state"))?;
        let applied = Applied { created_rules: carried.created.clone(), ..Default::default() };
        self.journal_applied(&result.change_id, &plan::invert(&plan, &applied, &state, after), confirm_by)?;
        result.status = if confirm_by.is_some() { ChangeStatus::PendingConfirmation } else { ChangeStatus::Applied };
        result.confirm_by = confirm_by;
        result.verified = true;
        result.rule = applied_rule(after, &plan, &carried.created);
        ctx.report_progress(CHANGE_STEPS, Some(CHANGE_STEPS), "applied and verified");
        self.raise_alarm(
            "change_applied",
            &ctx.principal.name,
            &format!("{} on {} ({}, change {})", plan.summary, call.target.name, call.def.name, result.change_id),
        );
        let mut answer = to_json(&result)?;
        // After the journal: what the firewall made for the caller goes into this answer and nowhere else.
        if let Some(fields) = answer.as_object_mut() {
            fields.extend(carried.handed_over.0.into_iter().map(|(k, v)| (k, Value::String(v))));
        }
        Ok(answer)
    }

    /// Plans the call against the state it needs fresh, and returns that state with the vetted plan.
    ///
    /// A backend that keeps recent state (pfSense, where every request counts) is planned against it first; the
    /// objects that plan touches are then read now, and where they differ from the recent read the call is planned
    /// again against what was read (at most twice, then against a whole snapshot). Lockout prevention and the
    /// effect then judge the touched objects as they are and the rest as recently read. A refusal is only given
    /// on a whole fresh read.
    async fn plan_fresh(
        &self,
        inside: &Inside<'_>,
        call: &ChangeCall<'_>,
        now: Timestamp,
        trace: &mut Trace,
    ) -> Result<(RuleSet, Vetted), CallError> {
        let firewall = inside.target.firewall.as_ref();
        if firewall.plans_on_looked_up_entries()
            && let Some(values) = call.planned.intent.entry_values()
        {
            let state = firewall.state(&StateRead::entries_with(self.with_flow_hosts(values))).await?;
            match self.vet(call, &state, now, trace) {
                // A refusal is given on a whole read only: entries that were not looked up (a grant that keeps a
                // management host in) may change the verdict.
                Err(e) if e.code == ErrorCode::LockoutPrevented => {}
                vetted => return Ok((state, vetted?)),
            }
        }
        if firewall.keeps_recent_state() {
            let mut state = firewall.state(&StateRead::recent()).await?;
            for _ in 0..2 {
                let Ok(vetted) = self.vet(call, &state, now, trace) else { break };
                let touched = StateRead::touched_by(&vetted.0);
                let fresh = firewall.state(&touched).await?;
                if touched.agrees(&state, &fresh) {
                    inside.target.note_state(&fresh);
                    return Ok((fresh, vetted));
                }
                state = fresh;
            }
        }
        let state = inside.fresh_state().await?;
        let vetted = self.vet(call, &state, now, trace)?;
        Ok((state, vetted))
    }

    /// `values` and the single addresses of the management hosts and flows: the entries lockout prevention needs
    /// beside those a change touches.
    fn with_flow_hosts(&self, mut values: Vec<String>) -> Vec<String> {
        let settings = &self.guard.settings;
        let hosts = settings.management_hosts.iter().filter(|h| h.prefix_len() == h.max_prefix_len());
        values.extend(hosts.map(|h| h.addr().to_string()));
        values.extend(settings.management_flows.iter().map(|f| f.source.to_string()));
        values
    }

    /// Plans the call against fresh state and runs the guards that judge a plan: argument policy, lockout
    /// prevention, risk. Returns the plan, the answer as planned, and why approval is needed, if it is.
    fn vet(
        &self,
        call: &ChangeCall<'_>,
        state: &RuleSet,
        now: Timestamp,
        trace: &mut Trace,
    ) -> Result<Vetted, CallError> {
        let change_id = uuid::Uuid::new_v4().to_string();
        trace.change_id = Some(change_id.clone());
        let plan = plan::plan(state, &call.planned.intent, now)?;
        // Carried out and compiled once, for lockout prevention and the effect alike.
        let compared = Compared::of(state, &plan, now);
        let planned = Planned { plan: &plan, state, now, compared: compared.as_ref() };
        self.check_arguments(call, &planned)?;
        self.check_ownership(call, &planned)?;
        self.check_lockout(call, &planned)?;
        let effect = compared.as_ref().map(|c| portcullis_core::effect::of_compared(c, &plan));
        let facts = portcullis_core::effect::weigh(&plan.facts, effect.as_ref());
        let (risk, needs_approval) = self
            .guard
            .assess(call.ctx, &RiskInput { operation: call.def.operation, read_only: false, facts: Some(&facts) });
        let needs_approval = needs_approval.or_else(|| call.planned.person_must_approve.clone());
        let statements = call.target.firewall.preview_statements(&plan, state)?;
        trace.risk = risk;
        let mut warnings = plan.warnings.clone();
        if !plan.decides_no_verdict() {
            warnings.extend(effect.as_ref().and_then(effect_warning));
        }
        let result = ChangeResult {
            change_id,
            status: ChangeStatus::Planned,
            target: call.target.name.clone(),
            summary: plan.summary.clone(),
            plan: plan.operations.clone(),
            warnings,
            risk_score: risk,
            expires_at: expiry_of(&call.planned.intent, &plan),
            rule: None,
            verified: false,
            approval_required: needs_approval.is_some(),
            approval_id: None,
            confirm_by: None,
            addresses: crate::views::AddressOutcome::of(&call.planned.intent, &plan),
            effect,
            statements,
            client_config: None,
            password: None,
            secret_notice: None,
        };
        Ok((plan, result, needs_approval))
    }

    /// The id of a person's approval of exactly this call, asked for now if the transport reaches a person.
    async fn approval_for(
        &self,
        call: &ChangeCall<'_>,
        summary: &str,
        reason: &str,
        risk_score: u8,
        now: Timestamp,
        trace: &mut Trace,
    ) -> Result<String, CallError> {
        let need = ApprovalNeed {
            principal: &call.ctx.principal.name,
            tool: call.def.name,
            target: &call.target.name,
            args: call.args,
            summary,
            risk_score,
            reason,
            now,
            ttl: self.guard.settings.approval_ttl,
        };
        let granted = until_cancelled(call.ctx, self.approve(call.ctx, &need)).await.inspect_err(|e| {
            trace.approval_id.clone_from(&e.approval_id);
        })?;
        trace.approval_id = Some(granted.id.clone());
        Ok(granted.id)
    }

    /// The confirmation window of a change: asked for, or the default for restricted interfaces.
    fn confirm_window(&self, call: &ChangeCall<'_>, plan: &ChangePlan) -> Option<TimeDelta> {
        let settings = &self.guard.settings;
        let restricted = plan
            .facts
            .interfaces
            .iter()
            .any(|i| settings.restricted_interfaces.iter().any(|r| r.eq_ignore_ascii_case(i)));
        call.options.confirm_within.or(if restricted { settings.confirm_restricted } else { None })
    }

    /// Consumes a person's grant for exactly this call; when none exists and a person is reachable through the
    /// transport (MCP elicitation), asks them now.
    async fn approve(
        &self,
        ctx: &CallContext,
        need: &ApprovalNeed<'_>,
    ) -> Result<portcullis_store::Approval, CallError> {
        let store = self.guard.auditor.store();
        let pending = match approval::require(store, need) {
            Ok(granted) => return Ok(granted),
            Err(e) => e,
        };
        // Four eyes: the person behind this client's prompt is the one who asked, so they are not asked.
        if self.guard.settings.distinct_approver {
            return Err(pending.with_hint(
                "four eyes (approvals.distinct_approver): another principal approves it with `portcullis approve ID`",
            ));
        }
        let (Some(approver), Some(id)) = (&ctx.approver, pending.approval_id.clone()) else {
            return Err(pending);
        };
        let question = format!(
            "Portcullis: {} asks to {} on target {} (risk {}). {}. Approve this exact change?",
            need.principal, need.summary, need.target, need.risk_score, need.reason
        );
        let answer = approver.0.confirm(&question).await;
        let grant = matches!(answer, Ok(true));
        let by = approver.0.name();
        store.approval_decide(&id, grant, &by, Utc::now()).map_err(|e| CallError::internal(e.to_string()))?;
        if !grant {
            let why = match answer {
                Err(e) => format!("the approval request could not be shown: {e}"),
                Ok(_) => format!("{by} declined"),
            };
            let mut refused = CallError::new(ErrorCode::ApprovalRequired, format!("approval {id}: {why}"))
                .with_hint("the change was not made");
            refused.approval_id = Some(id);
            return Err(refused);
        }
        approval::require(store, need)
    }

    /// Lockout prevention: every management flow that passes now must still pass after the change, and so must the
    /// host's own flows to the endpoints an egress policy must keep (firewall APIs, the calling client).
    fn check_lockout(&self, call: &ChangeCall<'_>, planned: &Planned<'_>) -> Result<(), CallError> {
        let settings = &self.guard.settings;
        let state = planned.state;
        let mut flows = settings.management_flows.clone();
        flows.extend(lockout::flows_for_hosts(state, &settings.management_hosts));
        if let Intent::SetEgressPolicy(policy) = &call.planned.intent {
            flows.extend(portcullis_core::egress::must_reach_flows(state, &policy.interface, &call.planned.must_reach));
        }
        // A plan that does not fit the state is refused as a conflict by the backend; there is no lockout to prevent.
        let Some(compared) = planned.compared.filter(|_| !flows.is_empty()) else { return Ok(()) };
        lockout::check_compared(compared, &flows).map_err(|l| {
            if let Some(protection) = &l.protection {
                return limited_flow(protection, &l.flow);
            }
            let by = match &l.rule_id {
                Some(id) => format!("rule {id} ({:?})", l.rule_description),
                None => l.rule_description.clone(),
            };
            CallError::new(
                ErrorCode::LockoutPrevented,
                format!("this change would cut the management flow {}: {by} would decide it", l.flow.name),
            )
            .with_hint(if l.flow.direction == portcullis_core::model::Direction::Out {
                "allow the flow in the egress policy (allow, include_firewall_apis, include_mcp_clients)"
            } else {
                "keep a rule that passes the flow above the change, or change the management flows in config"
            })
        })
    }

    /// Argument policy: protected addresses, the role's caps, no pass any → any on restricted interfaces.
    fn check_arguments(&self, call: &ChangeCall<'_>, planned: &Planned<'_>) -> Result<(), CallError> {
        let Planned { plan, state, now, compared } = *planned;
        // A grant that creates its pass rule creates a rule: that needs the permission rules need.
        if plan.operations.iter().any(|op| matches!(op, Operation::CreateRule { after, .. } if after.managed.as_deref() == Some(plan::MANAGED_GRANT))) {
            let need = portcullis_guard::Requirement {
                category: portcullis_guard::Category::RuleManagement,
                level: portcullis_guard::Level::Write,
            };
            self.guard.authorize(call.ctx, "create_rule", need)?;
        }
        let role = self.guard.role(call.ctx)?;
        let settings = &self.guard.settings;
        argpolicy::check(&PolicyInput {
            intent: &call.planned.intent,
            plan,
            state,
            after: compared.map(Compared::after),
            now,
            caps: &role.caps,
            role: &call.ctx.principal.role,
            protected: &settings.protected_addresses,
            restricted_interfaces: &settings.restricted_interfaces,
        })
    }
}

/// A new rule that would change no traffic, while rules above it that decide what it matches act otherwise (a
/// block rule under an allow rule): the caller meant a change and would get none. A redundant rule (the same action
/// as what decides its traffic) only warns.
fn refuse_a_rule_that_never_decides(
    intent: &Intent,
    effect: Option<&portcullis_core::effect::Effect>,
    state: &RuleSet,
) -> Result<(), CallError> {
    let (Intent::CreateRule(draft), Some(effect)) = (intent, effect) else { return Ok(()) };
    if !draft.enabled || !effect.complete || effect.verdict != portcullis_core::effect::EffectVerdict::NoEffect {
        return Ok(());
    }
    let deciders: Vec<&portcullis_core::model::Rule> =
        effect.decided_by.iter().filter_map(|id| state.rules.iter().find(|r| r.rule_id.as_str() == id)).collect();
    if !deciders.iter().any(|r| r.action != draft.action) {
        return Ok(());
    }
    let names: Vec<String> = deciders.iter().map(|r| format!("rule {} ({:?})", r.rule_id, r.description)).collect();
    Err(CallError::from(portcullis_core::FieldError::new(
        "allow_no_effect",
        format!(
            "this rule would change no traffic: {} above it decide(s) the flows it matches, the other way, and the \
             rest is decided as it would decide it",
            names.join(", ")
        ),
    ))
    .with_hint("place it above them (position), or pass allow_no_effect: true to create it anyway"))
}

/// What a person is asked to approve: the plan's summary, and what it opens where it opens flows, with an example
/// packet, so that a widening is named in the prompt and in `portcullis approvals`.
fn approval_summary(summary: &str, effect: Option<&portcullis_core::effect::Effect>) -> String {
    use portcullis_core::effect::EffectVerdict;
    let Some(effect) = effect.filter(|e| matches!(e.verdict, EffectVerdict::Widens | EffectVerdict::Mixed)) else {
        return summary.to_string();
    };
    let example = effect.changes.iter().find(|c| c.after == "pass").map(|c| {
        let w = &c.witness;
        let port = w.destination_port.map(|p| format!(" port {p}")).unwrap_or_default();
        format!(", e.g. {} {} → {}{port} on {}", w.protocol, w.source, w.destination, w.interface)
    });
    let what = match effect.verdict {
        EffectVerdict::Widens => format!("it opens {} class(es) of flows that were blocked", effect.changed_classes),
        _ => format!("it changes {} class(es) of flows, opening some that were blocked", effect.changed_classes),
    };
    format!("{summary}; {what}{}", example.unwrap_or_default())
}

/// What the answer says loudly about a change's effect on traffic.
fn effect_warning(effect: &portcullis_core::effect::Effect) -> Option<String> {
    use portcullis_core::effect::EffectVerdict;
    let partial = if effect.complete { "" } else { " (of a sample of the flows it touches)" };
    match effect.verdict {
        EffectVerdict::NoEffect if effect.decided_by.is_empty() => {
            Some(format!("no effect on traffic{partial}: no flow changes verdict"))
        }
        EffectVerdict::NoEffect => Some(format!(
            "no effect on traffic{partial}: the flows it matches are decided as before, by rule(s) {}",
            effect.decided_by.join(", ")
        )),
        EffectVerdict::Widens => {
            Some(format!("widens: {} class(es) of flows pass that did not{partial}", effect.changed_classes))
        }
        EffectVerdict::Mixed => {
            Some(format!("mixed: {} class(es) of flows change verdict both ways{partial}", effect.changed_classes))
        }
        EffectVerdict::Narrows => None,
    }
}

/// A plan and the state it was made against, as the guards judge it.
#[derive(Clone, Copy)]
pub(crate) struct Planned<'a> {
    pub plan: &'a ChangePlan,
    pub state: &'a RuleSet,
    pub now: Timestamp,
    /// The rule sets before and after the plan; `None` when the plan does not fit the state.
    pub compared: Option<&'a Compared<'a>>,
}

/// A change call on its way through the pipeline.
pub(crate) struct ChangeCall<'a> {
    pub ctx: &'a CallContext,
    pub def: &'a ToolDef,
    pub target: &'a Target,
    pub args: &'a Value,
    pub planned: &'a PlannedIntent,
    pub options: ChangeSettings,
}

/// Progress steps of a change: lock, plan, apply, verified.
const CHANGE_STEPS: u64 = 3;

/// When what the change put in place expires: a block or grant's entry as planned (a longer block already there
/// is kept), a pause's end.
fn expiry_of(intent: &Intent, plan: &ChangePlan) -> Option<Timestamp> {
    let put = plan.operations.iter().rev().find_map(|op| match op {
        Operation::PutAliasEntries { after, .. } => after.first().map(|e| e.expires_at),
        _ => None,
    });
    match intent {
        Intent::Block { expires_at, .. } | Intent::Grant { expires_at, .. } => put.unwrap_or(*expires_at),
        Intent::PauseRule { until, .. } => Some(*until),
        Intent::StartMirror(ask) => Some(ask.expires_at),
        Intent::CreateVpnUser(ask) => ask.expires_at,
        _ => None,
    }
}

/// The user's rule in a plan (not a managed rule the plan also creates).
fn plan_rule(plan: &ChangePlan) -> Option<(usize, &portcullis_core::model::Rule)> {
    let mut creates = 0;
    for op in &plan.operations {
        match op {
            Operation::CreateRule { after, .. } if after.managed.is_none() => return Some((creates, after)),
            Operation::CreateRule { .. } => creates += 1,
            Operation::UpdateRule { after, .. } => return Some((usize::MAX, after)),
            _ => {}
        }
    }
    None
}

fn planned_rule(state: &RuleSet, plan: &ChangePlan) -> Option<RuleView> {
    plan_rule(plan).map(|(_, rule)| RuleView::of(state, rule))
}

fn applied_rule(state: &RuleSet, plan: &ChangePlan, created: &[portcullis_core::model::RuleId]) -> Option<RuleView> {
    let (index, rule) = plan_rule(plan)?;
    let id = if index == usize::MAX { &rule.rule_id } else { created.get(index)? };
    state.rule(id).map(|r| RuleView::of(state, r))
}

/// The refusal of a protection that would rate-limit a management flow: it names the selector field that takes
/// the flow and the two ways out.
fn limited_flow(protection: &portcullis_core::protection::Protection, flow: &lockout::ManagementFlow) -> CallError {
    let field = if protection.ports.is_empty() { "interface" } else { "ports" };
    let mut e = CallError::new(
        ErrorCode::LockoutPrevented,
        format!(
            "{field}: DDoS protection {} would rate-limit the management flow {} (from {} to port {}), whose source \
             is not exempt; a flood would lock the administrators out with everyone else",
            protection.protection_id, flow.name, flow.source, flow.port
        ),
    )
    .with_hint(format!(
        "leave port {} out of ports, or add {} to security.management_hosts (every protection exempts management \
         hosts and protected ranges)",
        flow.port, flow.source
    ));
    e.field = Some(field.into());
    e
}
