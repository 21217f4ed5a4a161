//! The tool service: the one place where tool calls run. MCP (stdio and HTTP) and the CLI hand every call to
//! `ToolService::call`, which passes it through the guard pipeline in a fixed order:
//!
//! authenticate (by the transport) → authorize → validate arguments → rate-limit → read fresh state and plan
//! (semantic validation) → assess risk → execute → verify by read-back → audit (always, allowed or denied).

mod args;
mod catalogue;
mod reads;
mod views;

use std::sync::Arc;
use std::time::Instant;

use chrono::{SubsecRound, Utc};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::model::{RuleSet, Timestamp};
use portcullis_core::plan::{self, ChangePlan, Intent, Operation};
use portcullis_guard::{AuditRecord, CallContext, Decision, Guard, Principal, RiskInput, Transport, redact};
use serde::Serialize;
use serde_json::Value;

pub use catalogue::{ToolDef, ToolKind, catalogue};
pub use portcullis_guard::CallError;
pub use views::*;

use args::*;

/// A configured firewall and its write lock: writes to one firewall are serialised, because concurrent
/// writes to pfSense silently lose data.
pub struct Target {
    pub name: String,
    pub firewall: Arc<dyn Firewall>,
    writer: tokio::sync::Mutex<()>,
}

impl Target {
    pub fn new(name: impl Into<String>, firewall: Arc<dyn Firewall>) -> Self {
        Self { name: name.into(), firewall, writer: tokio::sync::Mutex::new(()) }
    }
}

pub struct ToolService {
    guard: Guard,
    targets: Vec<Target>,
    tools: Vec<ToolDef>,
    /// Interfaces facing untrusted networks (restricted ones and `wan`), for lint.
    exposed_interfaces: Vec<String>,
}

/// What a validated call will do.
enum Request {
    Rules(GetFirewallRulesArgs),
    Blocks(Option<String>),
    Status,
    Simulate(SimulatePacketArgs),
    Lint(Option<String>),
    Change { intent: Intent, dry_run: bool },
}

/// What the audit record needs to know about how far a call got.
#[derive(Default)]
struct Trace {
    target: Option<String>,
    risk: u8,
    change_id: Option<String>,
    dry_run: bool,
}

/// Millisecond precision, so that times survive the store and the firewall unchanged.
fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

impl ToolService {
    /// `targets` must not be empty; the first one is the default.
    pub fn new(guard: Guard, targets: Vec<Target>) -> Result<Self, CallError> {
        if targets.is_empty() {
            return Err(CallError::internal("no firewall target is configured"));
        }
        let mut exposed = guard.settings.restricted_interfaces.clone();
        exposed.push("wan".into());
        Ok(Self { guard, targets, tools: catalogue(), exposed_interfaces: exposed })
    }

    pub fn tools(&self) -> &[ToolDef] {
        &self.tools
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub fn target_names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// Runs one tool call through the whole pipeline and writes its audit record.
    pub async fn call(&self, ctx: &CallContext, tool: &str, args: Value) -> Result<Value, CallError> {
        let started = Instant::now();
        let mut trace = Trace::default();
        let operation = self.tools.iter().find(|t| t.name == tool).map_or("unknown", |t| t.operation);
        let result = self.run(ctx, tool, &args, &mut trace).await;
        let record = AuditRecord {
            time: Utc::now(),
            context: ctx.clone(),
            target: trace.target,
            tool: tool.to_string(),
            operation: operation.to_string(),
            arguments: redact(&args),
            decision: match &result {
                Err(e) if is_denial(e.code) => Decision::Denied,
                _ => Decision::Allowed,
            },
            reason: result.as_ref().err().map(|e| format!("{}: {}", e.code.as_str(), e.message)),
            risk_score: trace.risk,
            change_id: trace.change_id,
            outcome: match &result {
                Ok(_) if trace.dry_run => "dry_run".into(),
                Ok(_) => "ok".into(),
                Err(e) => e.code.as_str().into(),
            },
            duration_us: started.elapsed().as_micros() as u64,
        };
        if let Err(audit_error) = self.guard.auditor.record(&record) {
            tracing::error!(tool, "audit record not written: {audit_error}");
            return Err(match result {
                Ok(_) if record.change_id.is_some() && !trace.dry_run => CallError::internal(format!(
                    "the change was applied but its audit record could not be written: {}",
                    audit_error.message
                )),
                _ => audit_error,
            });
        }
        result
    }

    async fn run(&self, ctx: &CallContext, tool: &str, args: &Value, trace: &mut Trace) -> Result<Value, CallError> {
        authenticate(ctx)?;
        let def = self.tools.iter().find(|t| t.name == tool).ok_or_else(|| {
            CallError::new(ErrorCode::NotFound, format!("there is no tool named {tool:?}"))
                .with_hint("`portcullis tools` lists the catalogue")
        })?;
        self.guard.authorize(ctx, def.operation)?;
        let (target_name, request) = prepare(tool, args)?;
        self.guard.rate_limit(ctx)?;
        let target = self.target(target_name.as_deref())?;
        trace.target = Some(target.name.clone());
        match request {
            Request::Change { intent, dry_run } => {
                trace.dry_run = dry_run;
                self.change(def, target, &intent, dry_run, trace).await
            }
            read => self.read(target, read).await,
        }
    }

    fn target(&self, name: Option<&str>) -> Result<&Target, CallError> {
        match name {
            None => Ok(&self.targets[0]),
            Some(n) => self.targets.iter().find(|t| t.name == n).ok_or_else(|| {
                CallError::from(portcullis_core::FieldError::new(
                    "target",
                    format!("unknown target {n:?}; configured targets: {}", self.target_names().join(", ")),
                ))
            }),
        }
    }

    async fn read(&self, target: &Target, request: Request) -> Result<Value, CallError> {
        let name = target.name.as_str();
        if let Request::Status = request {
            let status = target.firewall.system_status().await?;
            let backend = format!("{:?}", target.firewall.info().kind).to_ascii_lowercase();
            return to_json(&SystemStatusResult { target: name.into(), backend, status });
        }
        let state = target.firewall.snapshot().await?;
        let now = now();
        match request {
            Request::Rules(a) => to_json(&reads::firewall_rules(name, &state, &a)?),
            Request::Blocks(i) => to_json(&reads::blocks(name, &state, i.as_deref(), now)?),
            Request::Simulate(a) => to_json(&reads::simulate(name, &state, &a, now)?),
            Request::Lint(i) => to_json(&reads::lint_rules(name, &state, i.as_deref(), &self.exposed_interfaces, now)?),
            Request::Status | Request::Change { .. } => Err(CallError::internal("not a read request")),
        }
    }

    async fn change(
        &self,
        def: &ToolDef,
        target: &Target,
        intent: &Intent,
        dry_run: bool,
        trace: &mut Trace,
    ) -> Result<Value, CallError> {
        let change_id = uuid::Uuid::new_v4().to_string();
        trace.change_id = Some(change_id.clone());
        // One writer per firewall, from reading the state the plan is made against until the read-back.
        let _writer = target.writer.lock().await;
        let now = now();
        let state = target.firewall.snapshot().await?;
        let plan = plan::plan(&state, intent, now)?;
        let (risk, approval) =
            self.guard.assess(&RiskInput { operation: def.operation, read_only: false, facts: Some(&plan.facts) });
        trace.risk = risk;
        approval?;
        let mut result = ChangeResult {
            change_id,
            status: ChangeStatus::Planned,
            target: target.name.clone(),
            summary: plan.summary.clone(),
            plan: plan.operations.clone(),
            warnings: plan.warnings.clone(),
            risk_score: risk,
            expires_at: expiry_of(intent),
            rule: None,
            verified: false,
        };
        if dry_run {
            result.rule = planned_rule(&state, &plan);
            return to_json(&result);
        }
        let after = apply_and_verify(target.firewall.as_ref(), &plan).await?;
        result.status = ChangeStatus::Applied;
        result.verified = true;
        result.rule = applied_rule(&after.state, &plan, &after.created);
        to_json(&result)
    }

    /// Carries out every expiry that is due (blocks, pauses) on every target, audited as a system call.
    pub async fn sweep_expired(&self) -> Vec<(String, Result<usize, CallError>)> {
        let mut report = Vec::new();
        for target in &self.targets {
            let outcome = self.sweep_target(target).await;
            report.push((target.name.clone(), outcome));
        }
        report
    }

    async fn sweep_target(&self, target: &Target) -> Result<usize, CallError> {
        let _writer = target.writer.lock().await;
        let state = target.firewall.snapshot().await?;
        let Some(plan) = plan::plan_expiry(&state, now()) else {
            return Ok(0);
        };
        let started = Instant::now();
        let result = apply_and_verify(target.firewall.as_ref(), &plan).await;
        let ctx = CallContext::new(
            Principal { name: "portcullis".into(), role: "system".into() },
            Transport::System,
            Some("expiry sweeper".into()),
        );
        let record = AuditRecord {
            time: Utc::now(),
            context: ctx,
            target: Some(target.name.clone()),
            tool: "expire".into(),
            operation: "expire".into(),
            arguments: serde_json::to_value(&plan.operations).unwrap_or(Value::Null),
            decision: Decision::Allowed,
            reason: result.as_ref().err().map(|e| e.message.clone()),
            risk_score: 0,
            change_id: Some(uuid::Uuid::new_v4().to_string()),
            outcome: result.as_ref().map_or_else(|e| e.code.as_str().to_string(), |_| "ok".into()),
            duration_us: started.elapsed().as_micros() as u64,
        };
        self.guard.auditor.record(&record)?;
        result.map(|_| plan.operations.len())
    }
}

/// Denials are refusals by the guard; other errors are failures of an allowed call.
fn is_denial(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::PolicyDenied
            | ErrorCode::RateLimited
            | ErrorCode::ValidationError
            | ErrorCode::ApprovalRequired
            | ErrorCode::AuthenticationFailed
            | ErrorCode::AuthorizationFailed
            | ErrorCode::LockoutPrevented
            | ErrorCode::NotFound
    )
}

fn authenticate(ctx: &CallContext) -> Result<(), CallError> {
    if ctx.principal.name.trim().is_empty() {
        return Err(CallError::new(ErrorCode::AuthenticationFailed, "the call carries no principal"));
    }
    Ok(())
}

struct AfterApply {
    state: RuleSet,
    created: Vec<portcullis_core::model::RuleId>,
}

/// Applies a plan and reads the firewall back; a change that did not take effect is an error.
async fn apply_and_verify(firewall: &dyn Firewall, plan: &ChangePlan) -> Result<AfterApply, CallError> {
    let applied = firewall.apply(plan).await.map_err(|e| {
        let code = if e.code == ErrorCode::InternalError { ErrorCode::ApplyFailed } else { e.code };
        CallError { code, ..CallError::from(e) }
    })?;
    let state = firewall.snapshot().await?;
    plan::verify(plan, &applied, &state).map_err(|why| {
        CallError::new(ErrorCode::VerificationFailed, format!("the change did not take effect as planned: {why}"))
            .with_hint("read the rules back with get_firewall_rules and retry; the firewall may be locked")
    })?;
    Ok(AfterApply { state, created: applied.created_rules })
}

fn expiry_of(intent: &Intent) -> Option<Timestamp> {
    match intent {
        Intent::Block { expires_at, .. } => *expires_at,
        Intent::PauseRule { until, .. } => Some(*until),
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

fn to_json<T: Serialize>(value: &T) -> Result<Value, CallError> {
    serde_json::to_value(value).map_err(|e| CallError::internal(format!("result not serialisable: {e}")))
}

/// Validates a tool's arguments into a request. Every catalogue tool has an arm here.
fn prepare(tool: &str, args: &Value) -> Result<(Option<String>, Request), CallError> {
    let now = now();
    let change = |target: Option<String>, intent: Intent, dry_run: Option<bool>| {
        Ok((target, Request::Change { intent, dry_run: dry_run.unwrap_or(false) }))
    };
    match tool {
        "get_firewall_rules" => {
            let a: GetFirewallRulesArgs = parse_args(args)?;
            Ok((a.target.clone(), Request::Rules(a)))
        }
        "list_blocks" => {
            let a: InterfaceFilterArgs = parse_args(args)?;
            Ok((a.target, Request::Blocks(a.interface)))
        }
        "lint_rules" => {
            let a: InterfaceFilterArgs = parse_args(args)?;
            Ok((a.target, Request::Lint(a.interface)))
        }
        "get_system_status" => Ok((parse_args::<TargetArg>(args)?.target, Request::Status)),
        "simulate_packet" => {
            let a: SimulatePacketArgs = parse_args(args)?;
            Ok((a.target.clone(), Request::Simulate(a)))
        }
        "create_firewall_rule" => {
            let a: CreateFirewallRuleArgs = parse_args(args)?;
            change(a.target.clone(), create_intent(&a)?, a.dry_run)
        }
        "modify_firewall_rule" => {
            let a: ModifyFirewallRuleArgs = parse_args(args)?;
            change(a.target.clone(), modify_intent(&a)?, a.dry_run)
        }
        "delete_firewall_rule" => {
            let a: RuleIdArgs = parse_args(args)?;
            change(a.target, Intent::DeleteRule { rule_id: rule_id(&a.rule_id)? }, a.dry_run)
        }
        "pause_rule" => {
            let a: PauseRuleArgs = parse_args(args)?;
            let until = now + pause_span(a.minutes)?;
            change(a.target, Intent::PauseRule { rule_id: rule_id(&a.rule_id)?, until }, a.dry_run)
        }
        "resume_rule" => {
            let a: RuleIdArgs = parse_args(args)?;
            change(a.target, Intent::ResumeRule { rule_id: rule_id(&a.rule_id)? }, a.dry_run)
        }
        "block_ip_address" => {
            let a: BlockIpAddressArgs = parse_args(args)?;
            let intent = Intent::Block {
                net: block_target("ip_address", &a.ip_address)?,
                interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
                expires_at: lifetime(&a.duration)?.expires_at(now),
                reason: reason(&a.reason)?,
            };
            change(a.target, intent, a.dry_run)
        }
        "unblock_ip_address" => {
            let a: UnblockIpAddressArgs = parse_args(args)?;
            let intent = Intent::Unblock {
                net: block_target("ip_address", &a.ip_address)?,
                interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
            };
            change(a.target, intent, a.dry_run)
        }
        other => Err(CallError::internal(format!("tool {other} is in the catalogue but has no handler"))),
    }
}

#[cfg(test)]
mod tests;
