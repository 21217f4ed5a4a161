//! The tool service: the one place where tool calls run. MCP (stdio and HTTP) and the CLI hand every call to
//! `ToolService::call`, which passes it through the guard pipeline in a fixed order:
//!
//! authenticate (by the transport) → authorize → validate arguments → rate-limit → read fresh state and plan
//! (semantic validation) → assess risk → execute → verify by read-back → audit (always, allowed or denied).

mod analytics;
mod args;
mod catalogue;
mod changes;
mod counters;
mod drift;
mod egress;
mod logs;
mod prompts;
mod reads;
mod reconciler;
mod resources;
mod views;

use std::sync::Arc;
use std::time::Instant;

use chrono::{SubsecRound, TimeDelta, Utc};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::lockout;
use portcullis_core::model::{RuleSet, Timestamp};
use portcullis_core::plan::{self, ChangePlan, Intent, Operation};
use portcullis_guard::approval::{self, ApprovalNeed};
use portcullis_guard::argpolicy::{self, PolicyInput};
use portcullis_guard::{AuditRecord, CallContext, Decision, Guard, RiskInput, redact};
use portcullis_store::AuditFilter;
use serde::Serialize;
use serde_json::Value;

pub use analytics::{
    DEFAULT_LOG_PULL_CAP, DashboardResult, ReportResult, ThreatView, ThreatsResult, TrafficPoint, TrafficStatsResult,
};
pub use catalogue::{ToolDef, ToolKind, catalogue, permissions_markdown};
pub use counters::{HitsView, InterfaceTraffic};
pub use egress::{EgressSources, FirewallApi};
pub use logs::LINES_PER_QUERY as LINES_PER_PULL_PAGE;
pub use portcullis_guard::CallError;
pub use prompts::{PromptArgDef, PromptBody, PromptDef, prompts};
pub use reconciler::{SweepOutcome, TargetSchedule};
pub use resources::{ResourceBody, ResourceDef, ResourceTemplateDef, resource_templates, resources};
pub use views::*;

use args::*;

/// A configured firewall and its write lock: writes to one firewall are serialised, because concurrent
/// writes to pfSense silently lose data.
pub struct Target {
    pub name: String,
    pub firewall: Arc<dyn Firewall>,
    writer: tokio::sync::Mutex<()>,
    /// One pull of the firewall's own log at a time.
    log_pull: tokio::sync::Mutex<()>,
    /// What the reconciler knows of this target's next deadlines.
    schedule: std::sync::Mutex<TargetSchedule>,
}

impl Target {
    pub fn new(name: impl Into<String>, firewall: Arc<dyn Firewall>) -> Self {
        Self {
            name: name.into(),
            firewall,
            writer: tokio::sync::Mutex::new(()),
            log_pull: tokio::sync::Mutex::new(()),
            schedule: std::sync::Mutex::new(TargetSchedule::default()),
        }
    }
}

pub struct ToolService {
    guard: Guard,
    /// The last drift reported per target, so that a standing difference raises one alarm, not one per check.
    last_drift: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// How long the last drift check took, so the reconciler can keep it out of the way of deadlines.
    drift_check_cost: std::sync::Mutex<std::time::Duration>,
    targets: Vec<Target>,
    /// Each target's log store, by target name.
    log_stores: std::collections::HashMap<String, Arc<portcullis_logstore::LogStore>>,
    log_pull_cap: usize,
    tools: Vec<ToolDef>,
    /// Interfaces facing untrusted networks (restricted ones and `wan`), for lint.
    exposed_interfaces: Vec<String>,
    /// The name of each target whose firewall a change (from any caller, the sweeper or a rollback) altered.
    changed: tokio::sync::broadcast::Sender<String>,
    /// Interface counter readings, for rates over a timeframe.
    counter_history: counters::CounterHistory,
    /// Where the flows of the host's egress policy come from.
    egress: EgressSources,
}

/// What a validated call will do.
enum Request {
    Rules(GetFirewallRulesArgs),
    Blocks(Option<String>),
    Status,
    Vpn(Option<portcullis_core::firewall::VpnKind>),
    Simulate(SimulatePacketArgs),
    Lint(Option<String>),
    Grants(Option<String>),
    Aliases(Option<String>),
    Logs(QueryLogsArgs),
    TrafficStats(TrafficStatsArgs),
    Threats(AnalyzeThreatsArgs),
    Report(ReportArgs),
    Dashboard,
    AuditLog(AuditLogArgs),
    AuditVerify,
    Change {
        intent: Intent,
        dry_run: bool,
        confirm_within: Option<TimeDelta>,
    },
    /// `set_egress_policy`: its intent needs the configured flows, added once the target is known.
    Egress {
        ask: egress::EgressRequest,
        dry_run: bool,
        confirm_within: Option<TimeDelta>,
    },
    ConfirmChange(String),
    RollbackChange {
        change_id: String,
        dry_run: bool,
    },
    PendingChanges,
    Alarms(AlarmsArgs),
}

/// What the audit record needs to know about how far a call got.
#[derive(Default)]
struct Trace {
    target: Option<String>,
    risk: u8,
    change_id: Option<String>,
    approval_id: Option<String>,
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
        let (changed, _) = tokio::sync::broadcast::channel(64);
        Ok(Self {
            guard,
            last_drift: Default::default(),
            drift_check_cost: Default::default(),
            targets,
            log_stores: Default::default(),
            log_pull_cap: analytics::DEFAULT_LOG_PULL_CAP,
            tools: catalogue(),
            exposed_interfaces: exposed,
            changed,
            counter_history: Default::default(),
            egress: EgressSources::default(),
        })
    }

    /// What `set_egress_policy` adds to the flows a call gives: firewall APIs, resolv.conf, MCP clients.
    pub fn with_egress_sources(mut self, sources: EgressSources) -> Self {
        self.egress = sources;
        self
    }

    /// Announces each change applied to a target (its name), e.g. for MCP resource subscriptions.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    pub fn tools(&self) -> &[ToolDef] {
        &self.tools
    }

    /// The tools this caller may use; the others are hidden from its `tools/list` (and refused if called).
    pub fn tools_for(&self, ctx: &CallContext) -> Vec<&ToolDef> {
        self.tools.iter().filter(|t| self.guard.permits(ctx, t.operation, t.requirement)).collect()
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
            approval_id: trace.approval_id.clone(),
            outcome: match &result {
                Ok(_) if trace.dry_run => "dry_run".into(),
                Ok(_) => "ok".into(),
                Err(e) => e.code.as_str().into(),
            },
            duration_us: started.elapsed().as_micros() as u64,
        };
        if let Err(e) = &result {
            self.raise_alerts(ctx, tool, e, trace.risk);
        }
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

    fn raise_alerts(&self, ctx: &CallContext, tool: &str, error: &CallError, risk: u8) {
        let store = self.guard.auditor.store();
        let now = Utc::now();
        if is_denial(error.code) {
            self.guard.alerts.denial(store, &ctx.principal.name, now);
        }
        let high_risk = risk > self.guard.settings.max_risk_score;
        if error.code == ErrorCode::ApprovalRequired && high_risk
            || error.code == ErrorCode::PolicyDenied && risk >= self.guard.settings.max_risk_score
        {
            self.guard.alerts.refused_high_risk(store, &ctx.principal.name, tool, risk, now);
        }
    }

    async fn run(&self, ctx: &CallContext, tool: &str, args: &Value, trace: &mut Trace) -> Result<Value, CallError> {
        authenticate(ctx)?;
        let def = self.tools.iter().find(|t| t.name == tool).ok_or_else(|| {
            CallError::new(ErrorCode::NotFound, format!("there is no tool named {tool:?}"))
                .with_hint("`portcullis tools` lists the catalogue")
        })?;
        self.guard.authorize(ctx, def.operation, def.requirement)?;
        let (target_name, request) = prepare(tool, args)?;
        self.guard.rate_limit(ctx, def.rate_class)?;
        ctx.check_cancelled()?;
        match request {
            Request::AuditLog(a) => return self.audit_log(&a),
            Request::AuditVerify => return self.audit_verify(),
            Request::PendingChanges => return self.pending_changes(),
            Request::Alarms(a) => return until_cancelled(ctx, self.active_alarms(&a)).await,
            Request::ConfirmChange(id) => return self.confirm_change(&id, trace),
            Request::RollbackChange { change_id, dry_run } => {
                trace.dry_run = dry_run;
                return self.rollback_change(ctx, &change_id, dry_run, trace).await;
            }
            _ => {}
        }
        let target = self.target(target_name.as_deref())?;
        trace.target = Some(target.name.clone());
        match request {
            Request::Change { intent, dry_run, confirm_within } => {
                trace.dry_run = dry_run;
                let call = ChangeCall {
                    ctx,
                    def,
                    target,
                    args,
                    intent: &intent,
                    dry_run,
                    confirm_within,
                    must_reach: Vec::new(),
                };
                self.change(&call, trace).await
            }
            Request::Egress { ask, dry_run, confirm_within } => {
                trace.dry_run = dry_run;
                egress::require_own_host(target)?;
                let egress::EgressIntent { intent, must_reach } =
                    until_cancelled(ctx, self.egress.intent(ctx, ask)).await?;
                let call = ChangeCall { ctx, def, target, args, intent: &intent, dry_run, confirm_within, must_reach };
                self.change(&call, trace).await
            }
            // A read changes nothing, so it may stop at any await point once the caller gives up.
            read => until_cancelled(ctx, self.read(ctx, target, read)).await,
        }
    }

    fn audit_log(&self, a: &AuditLogArgs) -> Result<Value, CallError> {
        let limit = a.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(portcullis_core::FieldError::new("limit", "must be 1-1000").into());
        }
        if let Some(d) = &a.decision
            && d != "allowed"
            && d != "denied"
        {
            return Err(portcullis_core::FieldError::new("decision", "must be allowed or denied").into());
        }
        let since = match &a.timeframe {
            Some(t) => Some(Utc::now() - portcullis_core::duration::parse_span("timeframe", t)?),
            None => None,
        };
        let filter = AuditFilter {
            tool: a.tool.clone(),
            principal: a.principal.clone(),
            decision: a.decision.clone(),
            since,
            limit: limit as usize,
        };
        let rows = self.guard.auditor.store().audit_query(&filter).map_err(|e| CallError::internal(e.to_string()))?;
        let data: Vec<AuditEntry> =
            rows.into_iter().map(|r| AuditEntry { seq: r.seq, hash: r.hash, record: r.record }).collect();
        to_json(&AuditLogResult { count: data.len(), data })
    }

    fn audit_verify(&self) -> Result<Value, CallError> {
        let v = self.guard.auditor.store().audit_verify().map_err(|e| CallError::internal(e.to_string()))?;
        to_json(&AuditVerifyResult { ok: v.ok, records: v.records, broken_at: v.broken_at, problem: v.problem })
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

    async fn read(&self, ctx: &CallContext, target: &Target, request: Request) -> Result<Value, CallError> {
        let name = target.name.as_str();
        if let Request::Status = request {
            let status = target.firewall.system_status().await?;
            let backend = format!("{:?}", target.firewall.info().kind).to_ascii_lowercase();
            return to_json(&SystemStatusResult { target: name.into(), backend, status });
        }
        if let Request::Vpn(kind) = request {
            let status = target.firewall.vpn_status(kind).await?;
            let connections_up = status.connections.iter().filter(|c| c.status.eq_ignore_ascii_case("up")).count();
            let result = VpnStatusResult {
                target: name.into(),
                connections: status.connections,
                users: status.users,
                connections_up,
            };
            return to_json(&result);
        }
        let state = target.firewall.snapshot().await?;
        let now = now();
        match request {
            Request::Rules(a) => {
                let hits = self.rule_hits(target).await;
                to_json(&reads::firewall_rules(name, &state, &a, hits.as_ref())?)
            }
            Request::Blocks(i) => to_json(&reads::blocks(name, &state, i.as_deref(), now)?),
            Request::Simulate(a) => to_json(&reads::simulate(name, &state, &a, now)?),
            Request::Lint(i) => to_json(&reads::lint_rules(name, &state, i.as_deref(), &self.exposed_interfaces, now)?),
            Request::Grants(a) => to_json(&reads::grants(name, &state, a.as_deref(), now)),
            Request::Aliases(a) => to_json(&reads::aliases(name, &state, a.as_deref(), now)?),
            log_read @ (Request::Logs(_)
            | Request::TrafficStats(_)
            | Request::Threats(_)
            | Request::Report(_)
            | Request::Dashboard) => self.log_read(ctx, target, &state, log_read, now).await,
            _ => Err(CallError::internal("not a target read")),
        }
    }

    /// A read of the target's log store, in two steps reported as progress: bring the store up to date (pfSense
    /// targets are pulled first), then query or aggregate it.
    async fn log_read(
        &self,
        ctx: &CallContext,
        target: &Target,
        state: &RuleSet,
        request: Request,
        now: Timestamp,
    ) -> Result<Value, CallError> {
        let name = target.name.as_str();
        let query = match &request {
            Request::Logs(a) => Some(logs::LogQuery::parse(a, state, now)?),
            _ => None,
        };
        ctx.report_progress(0, Some(2), "reading the firewall log");
        let log_gap = self.sync_logs(target).await?;
        ctx.report_progress(1, Some(2), "querying the log store");
        let result = match (request, query) {
            (Request::Logs(_), Some(query)) => {
                let mut r = logs::query(name, self.store_of(target)?, state, &query, now)?;
                r.log_gap = log_gap;
                to_json(&r)
            }
            (Request::TrafficStats(a), _) => {
                let mut r = self.traffic_stats(target, state, &a, now)?;
                r.log_gap = log_gap;
                let from = (now - analytics::span("timeframe", &a.timeframe)?).timestamp_millis();
                r.interfaces = self.link_traffic(target, from).await.map(|mut links| {
                    links.retain(|l| r.interface.as_ref().is_none_or(|i| &l.counters.interface == i));
                    links
                });
                to_json(&r)
            }
            (Request::Threats(a), _) => {
                let mut r = self.analyze_threats(target, &a, now)?;
                r.log_gap = log_gap;
                to_json(&r)
            }
            (Request::Report(a), _) => {
                let mut r = self.security_report(target, state, &a, now)?;
                r.log_gap = log_gap;
                to_json(&r)
            }
            (Request::Dashboard, _) => {
                let mut r = self.dashboard(target, state, now).await?;
                r.log_gap = log_gap;
                to_json(&r)
            }
            _ => Err(CallError::internal("not a log read")),
        };
        ctx.report_progress(2, Some(2), "done");
        result
    }

    async fn change(&self, call: &ChangeCall<'_>, trace: &mut Trace) -> Result<Value, CallError> {
        let change_id = uuid::Uuid::new_v4().to_string();
        trace.change_id = Some(change_id.clone());
        let target = call.target;
        let ctx = call.ctx;
        ctx.report_progress(0, Some(CHANGE_STEPS), "waiting for the target's writer lock");
        // One writer per firewall, from reading the state the plan is made against until the read-back.
        let _writer = until_cancelled(ctx, async { Ok(target.writer.lock().await) }).await?;
        ctx.report_progress(1, Some(CHANGE_STEPS), "planning against fresh state");
        let now = now();
        let state = until_cancelled(ctx, async { Ok(target.firewall.snapshot().await?) }).await?;
        let plan = plan::plan(&state, call.intent, now)?;
        self.check_arguments(call, &plan, &state, now)?;
        self.check_lockout(call, &plan, &state, now)?;
        let (risk, needs_approval) = self
            .guard
            .assess(call.ctx, &RiskInput { operation: call.def.operation, read_only: false, facts: Some(&plan.facts) });
        trace.risk = risk;
        let mut result = ChangeResult {
            change_id,
            status: ChangeStatus::Planned,
            target: target.name.clone(),
            summary: plan.summary.clone(),
            plan: plan.operations.clone(),
            warnings: plan.warnings.clone(),
            risk_score: risk,
            expires_at: expiry_of(call.intent),
            rule: None,
            verified: false,
            approval_required: needs_approval.is_some(),
            approval_id: None,
            confirm_by: None,
        };
        // The firewall validates the plan itself where it can (pfRest dry_run) before anything is written. Until the
        // apply starts, every wait (fresh state, the target's check, a person's approval) ends when the caller
        // cancels; a pending approval then simply expires.
        until_cancelled(ctx, async { Ok(target.firewall.check(&plan).await?) }).await?;
        if call.dry_run {
            result.rule = planned_rule(&state, &plan);
            return to_json(&result);
        }
        if let Some(reason) = needs_approval {
            let need = ApprovalNeed {
                principal: &call.ctx.principal.name,
                tool: call.def.name,
                target: &target.name,
                args: call.args,
                summary: &plan.summary,
                risk_score: risk,
                reason: &reason,
                now,
                ttl: self.guard.settings.approval_ttl,
            };
            let granted = until_cancelled(ctx, self.approve(ctx, &need)).await.inspect_err(|e| {
                trace.approval_id.clone_from(&e.approval_id);
            })?;
            trace.approval_id = Some(granted.id.clone());
            result.approval_id = Some(granted.id);
        }
        let confirm_by = self.confirm_window(call, &plan).map(|w| now + w);
        // The last moment a cancellation is honoured: once applying starts, the change runs to its end (before
        // or after, never between).
        ctx.check_cancelled()?;
        ctx.report_progress(2, Some(CHANGE_STEPS), "applying");
        self.journal_begin(&result.change_id, call, &plan, confirm_by, now)?;
        let after = match self.apply_verified(target, &plan).await {
            Ok(after) => after,
            Err(e) => {
                self.journal_failed(&result.change_id, &e);
                return Err(e);
            }
        };
        let applied = portcullis_core::firewall::Applied { created_rules: after.created.clone() };
        let inverse = plan::invert(&plan, &applied, &state, &after.state);
        self.journal_applied(&result.change_id, &inverse, confirm_by)?;
        result.status = if confirm_by.is_some() { ChangeStatus::PendingConfirmation } else { ChangeStatus::Applied };
        result.confirm_by = confirm_by;
        result.verified = true;
        result.rule = applied_rule(&after.state, &plan, &after.created);
        ctx.report_progress(CHANGE_STEPS, Some(CHANGE_STEPS), "applied and verified");
        to_json(&result)
    }

    /// The confirmation window of a change: asked for, or the default for restricted interfaces.
    fn confirm_window(&self, call: &ChangeCall<'_>, plan: &ChangePlan) -> Option<TimeDelta> {
        let settings = &self.guard.settings;
        let restricted = plan
            .facts
            .interfaces
            .iter()
            .any(|i| settings.restricted_interfaces.iter().any(|r| r.eq_ignore_ascii_case(i)));
        call.confirm_within.or(if restricted { settings.confirm_restricted } else { None })
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
    fn check_lockout(
        &self,
        call: &ChangeCall<'_>,
        plan: &ChangePlan,
        state: &RuleSet,
        now: Timestamp,
    ) -> Result<(), CallError> {
        let settings = &self.guard.settings;
        let mut flows = settings.management_flows.clone();
        flows.extend(lockout::flows_for_hosts(state, &settings.management_hosts));
        if let Intent::SetEgressPolicy(policy) = call.intent {
            flows.extend(portcullis_core::egress::must_reach_flows(state, &policy.interface, &call.must_reach));
        }
        lockout::check(state, plan, &flows, now).map_err(|l| {
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
    fn check_arguments(
        &self,
        call: &ChangeCall<'_>,
        plan: &ChangePlan,
        state: &RuleSet,
        now: Timestamp,
    ) -> Result<(), CallError> {
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
            intent: call.intent,
            plan,
            state,
            now,
            caps: &role.caps,
            role: &call.ctx.principal.role,
            protected: &settings.protected_addresses,
            restricted_interfaces: &settings.restricted_interfaces,
        })
    }
}

/// A change call on its way through the pipeline.
struct ChangeCall<'a> {
    ctx: &'a CallContext,
    def: &'a ToolDef,
    target: &'a Target,
    args: &'a Value,
    intent: &'a Intent,
    dry_run: bool,
    confirm_within: Option<TimeDelta>,
    /// Endpoints the host must still reach after the change (an egress policy's firewall APIs and caller).
    must_reach: Vec<(String, std::net::SocketAddr)>,
}

/// Progress steps of a change: lock, plan, apply, verified.
const CHANGE_STEPS: u64 = 3;

/// Runs work that may be abandoned at any await point, until it ends or the caller cancels.
async fn until_cancelled<T>(
    ctx: &CallContext,
    work: impl std::future::Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => Err(CallError::cancelled()),
        result = work => result,
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

pub(crate) struct AfterApply {
    state: RuleSet,
    created: Vec<portcullis_core::model::RuleId>,
}

/// Applies a plan and reads the firewall back; a change that did not take effect is an error.
async fn apply_and_verify(firewall: &dyn Firewall, plan: &ChangePlan) -> Result<AfterApply, CallError> {
    let applied = apply_plan(firewall, plan).await?;
    let state = firewall.snapshot().await?;
    plan::verify(plan, &applied, &state).map_err(|why| {
        CallError::new(ErrorCode::VerificationFailed, format!("the change did not take effect as planned: {why}"))
            .with_hint("read the rules back with get_firewall_rules and retry; the firewall may be locked")
    })?;
    Ok(AfterApply { state, created: applied.created_rules })
}

/// Applies a plan; a backend's internal failure is reported as `apply_failed`.
async fn apply_plan(
    firewall: &dyn Firewall,
    plan: &ChangePlan,
) -> Result<portcullis_core::firewall::Applied, CallError> {
    firewall.apply(plan).await.map_err(|e| {
        let code = if e.code == ErrorCode::InternalError { ErrorCode::ApplyFailed } else { e.code };
        CallError { code, ..CallError::from(e) }
    })
}

fn expiry_of(intent: &Intent) -> Option<Timestamp> {
    match intent {
        Intent::Block { expires_at, .. } | Intent::Grant { expires_at, .. } => *expires_at,
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

/// The `confirm_within` of a change call.
fn confirm_span(confirm: &Option<String>) -> Result<Option<TimeDelta>, CallError> {
    Ok(confirm.as_deref().map(|c| portcullis_core::duration::parse_span("confirm_within", c)).transpose()?)
}

/// Validates a tool's arguments into a request. Every catalogue tool has an arm here.
fn prepare(tool: &str, args: &Value) -> Result<(Option<String>, Request), CallError> {
    let now = now();
    let change = |target: Option<String>, intent: Intent, dry_run: Option<bool>, confirm: &Option<String>| {
        Ok((
            target,
            Request::Change { intent, dry_run: dry_run.unwrap_or(false), confirm_within: confirm_span(confirm)? },
        ))
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
        "get_audit_log" => Ok((None, Request::AuditLog(parse_args(args)?))),
        "get_active_alarms" => Ok((None, Request::Alarms(parse_args(args)?))),
        "list_pending_changes" => {
            parse_args::<NoArgs>(args)?;
            Ok((None, Request::PendingChanges))
        }
        "confirm_change" => {
            let a: ChangeIdArgs = parse_args(args)?;
            Ok((None, Request::ConfirmChange(change_id(&a.change_id)?)))
        }
        "rollback_change" => {
            let a: ChangeIdArgs = parse_args(args)?;
            Ok((
                None,
                Request::RollbackChange { change_id: change_id(&a.change_id)?, dry_run: a.dry_run.unwrap_or(false) },
            ))
        }
        "get_vpn_status" => {
            let a: VpnStatusArgs = parse_args(args)?;
            Ok((a.target, Request::Vpn(a.kind.as_deref().map(vpn_kind).transpose()?)))
        }
        "verify_audit_log" => {
            parse_args::<NoArgs>(args)?;
            Ok((None, Request::AuditVerify))
        }
        "simulate_packet" => {
            let a: SimulatePacketArgs = parse_args(args)?;
            Ok((a.target.clone(), Request::Simulate(a)))
        }
        "create_firewall_rule" => {
            let a: CreateFirewallRuleArgs = parse_args(args)?;
            change(a.target.clone(), create_intent(&a)?, a.dry_run, &a.confirm_within)
        }
        "modify_firewall_rule" => {
            let a: ModifyFirewallRuleArgs = parse_args(args)?;
            change(a.target.clone(), modify_intent(&a)?, a.dry_run, &a.confirm_within)
        }
        "delete_firewall_rule" => {
            let a: RuleIdArgs = parse_args(args)?;
            change(a.target, Intent::DeleteRule { rule_id: rule_id(&a.rule_id)? }, a.dry_run, &a.confirm_within)
        }
        "pause_rule" => {
            let a: PauseRuleArgs = parse_args(args)?;
            let until = now + pause_span(a.minutes)?;
            change(a.target, Intent::PauseRule { rule_id: rule_id(&a.rule_id)?, until }, a.dry_run, &a.confirm_within)
        }
        "resume_rule" => {
            let a: RuleIdArgs = parse_args(args)?;
            change(a.target, Intent::ResumeRule { rule_id: rule_id(&a.rule_id)? }, a.dry_run, &a.confirm_within)
        }
        "block_ip_address" => {
            let a: BlockIpAddressArgs = parse_args(args)?;
            let intent = Intent::Block {
                net: block_target("ip_address", &a.ip_address)?,
                interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
                expires_at: lifetime(&a.duration)?.expires_at(now),
                reason: reason(&a.reason)?,
            };
            change(a.target, intent, a.dry_run, &a.confirm_within)
        }
        "grant_access" => {
            let a: GrantAccessArgs = parse_args(args)?;
            change(a.target.clone(), grant_intent(&a, now)?, a.dry_run, &a.confirm_within)
        }
        "revoke_access" => {
            let a: RevokeAccessArgs = parse_args(args)?;
            let intent =
                Intent::Revoke { net: block_target("ip_address", &a.ip_address)?, alias: alias_name(&a.alias)? };
            change(a.target, intent, a.dry_run, &a.confirm_within)
        }
        "query_firewall_logs" => {
            let a: QueryLogsArgs = parse_args(args)?;
            Ok((a.target.clone(), Request::Logs(a)))
        }
        "list_aliases" => {
            let a: ListAliasesArgs = parse_args(args)?;
            Ok((a.target, Request::Aliases(a.name)))
        }
        "get_traffic_stats" => {
            let a: TrafficStatsArgs = parse_args(args)?;
            Ok((a.target.clone(), Request::TrafficStats(a)))
        }
        "analyze_threats" => {
            let a: AnalyzeThreatsArgs = parse_args(args)?;
            Ok((a.target.clone(), Request::Threats(a)))
        }
        "generate_security_report" => {
            let a: ReportArgs = parse_args(args)?;
            Ok((a.target.clone(), Request::Report(a)))
        }
        "get_dashboard_data" => Ok((parse_args::<TargetArg>(args)?.target, Request::Dashboard)),
        "list_grants" => {
            let a: ListGrantsArgs = parse_args(args)?;
            Ok((a.target, Request::Grants(alias_name(&a.alias)?)))
        }
        "unblock_ip_address" => {
            let a: UnblockIpAddressArgs = parse_args(args)?;
            let intent = Intent::Unblock {
                net: block_target("ip_address", &a.ip_address)?,
                interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
            };
            change(a.target, intent, a.dry_run, &a.confirm_within)
        }
        "set_egress_policy" => {
            let a: SetEgressPolicyArgs = parse_args(args)?;
            let ask = egress::EgressRequest {
                interface: interface_name("interface", &a.interface)?,
                enabled: a.enabled.unwrap_or(true),
                allow: egress_allow(a.allow.as_deref().unwrap_or_default())?,
                include_dns: a.include_dns.unwrap_or(true),
                include_firewall_apis: a.include_firewall_apis.unwrap_or(true),
                include_mcp_clients: a.include_mcp_clients.unwrap_or(true),
            };
            let confirm_within = confirm_span(&a.confirm_within)?;
            Ok((a.target, Request::Egress { ask, dry_run: a.dry_run.unwrap_or(false), confirm_within }))
        }
        other => Err(CallError::internal(format!("tool {other} is in the catalogue but has no handler"))),
    }
}

#[cfg(test)]
mod tests;
