//! The tool service: the one place where tool calls run. MCP (stdio and HTTP) and the CLI hand every call to
//! `ToolService::call`, which passes it through the guard pipeline in a fixed order:
//!
//! authenticate (by the transport) → authorize → validate arguments → rate-limit → read fresh state and plan
//! (semantic validation) → assess risk → execute → verify by read-back → audit (always, allowed or denied).

mod analysis;
mod analytics;
mod args;
mod audit;
mod bandwidth;
mod catalogue;
mod changes;
mod counters;
mod ddos;
mod devices;
mod domains;
mod door;
mod drift;
mod egress;
mod geo;
mod ids;
mod logs;
mod mirror;
mod ownership;
mod prompts;
mod reads;
mod reconciler;
mod resources;
mod respond;
mod threat_alarms;
mod views;
mod vpn;
mod work;

use std::sync::Arc;
use std::time::Instant;

use chrono::{SubsecRound, Utc};
use portcullis_core::firewall::{ErrorCode, Firewall};
use portcullis_core::model::Timestamp;
use portcullis_guard::{AuditRecord, CallContext, Decision, Guard, redact};
use serde::Serialize;
use serde_json::Value;

pub use analysis::{AlertThreshold, TrafficAnalysisResult};
pub use analytics::{
    DEFAULT_LOG_PULL_CAP, DashboardResult, IdsThreat, ReportResult, ThreatView, ThreatsResult, TrafficPoint,
    TrafficStatsResult,
};
pub use bandwidth::{BandwidthResult, BandwidthRow};
pub use catalogue::{ToolDef, ToolKind, catalogue, permissions_markdown};
pub use counters::{HitsView, InterfaceTraffic};
pub use devices::{DEFAULT_OUI_FILES, DeviceSettings, DeviceView, DevicesResult, LeaseFile};
pub use domains::{Answer, DomainSettings, NameResolver, ResolveFailure};
pub use egress::{EgressSources, FirewallApi};
pub use ids::{EveSourceSpec, EveSourceStatus, IdsAlertThreshold};
pub use logs::LINES_PER_QUERY as LINES_PER_PULL_PAGE;
pub use mirror::{MirrorSettings, MirrorView, MirrorsResult, SensorSetting};
pub use portcullis_guard::CallError;
pub use prompts::{PromptArgDef, PromptBody, PromptDef, prompts};
pub use reconciler::{SweepOutcome, TargetSchedule};
pub use resources::{ResourceBody, ResourceDef, ResourceTemplateDef, resource_templates, resources};
pub use respond::{AutoBlock, AutoResponse, AutoResponseMemory};
pub use threat_alarms::{ThreatAlarmMemory, ThreatAlarms};
pub use views::*;

use door::ChangeCall;
use work::{IntentScope, LogScope, LogStep, ReadScope, WorkKind};

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
    /// What drift checks remember between runs.
    drift: drift::DriftWatch,
    targets: Vec<Target>,
    /// Each target's log store, and how much one pull of a firewall's log reads.
    logs: analytics::LogStores,
    tools: Vec<ToolDef>,
    /// Interfaces facing untrusted networks (restricted ones and `wan`), for lint.
    exposed_interfaces: Vec<String>,
    /// The name of each target whose firewall a change (from any caller, the sweeper or a rollback) altered.
    changed: tokio::sync::broadcast::Sender<String>,
    /// Interface counter readings, for rates over a timeframe.
    counter_history: counters::CounterHistory,
    /// Where the flows of the host's egress policy come from.
    egress: EgressSources,
    /// The offline country database, if one is installed.
    geo: geo::CountryData,
    /// Sensors, and the bounds of every mirror.
    mirroring: mirror::MirrorSettings,
    /// The followed Suricata eve.json sources and the alert thresholds' writer.
    ids: ids::IdsState,
    /// How domain blocks resolve names, and the resolver once made.
    domains: domains::DomainSettings,
    resolver: std::sync::Mutex<Option<std::sync::Arc<domains::NameResolver>>>,
    /// Where devices come from beside the firewall, and the vendor registry once read.
    devices: devices::DeviceSettings,
    oui: std::sync::OnceLock<std::sync::Arc<portcullis_core::device::OuiRegistry>>,
    /// Readings of the targets' per-address counters, for traffic over a timeframe.
    bandwidth: bandwidth::BandwidthHistory,
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
            drift: Default::default(),
            targets,
            logs: Default::default(),
            tools: catalogue(),
            exposed_interfaces: exposed,
            changed,
            counter_history: Default::default(),
            egress: EgressSources::default(),
            geo: Default::default(),
            mirroring: Default::default(),
            ids: Default::default(),
            domains: Default::default(),
            resolver: std::sync::Mutex::new(None),
            devices: Default::default(),
            oui: std::sync::OnceLock::new(),
            bandwidth: Default::default(),
        })
    }

    /// What `set_egress_policy` adds to the flows a call gives: firewall APIs, resolv.conf, MCP clients.
    pub fn with_egress_sources(mut self, sources: EgressSources) -> Self {
        self.egress = sources;
        self
    }

    /// The sensors traffic may be copied to, and the bounds of a mirror (`mirroring:`).
    pub fn with_mirroring(mut self, settings: MirrorSettings) -> Self {
        self.mirroring = settings;
        self
    }

    /// The same service reading devices this way.
    pub fn with_devices(mut self, settings: DeviceSettings) -> Self {
        self.devices = settings;
        self.oui = std::sync::OnceLock::new();
        self
    }

    /// The same service resolving domain blocks' names this way.
    pub fn with_domains(mut self, settings: DomainSettings) -> Self {
        self.domains = settings;
        self.resolver = std::sync::Mutex::new(None);
        self
    }

    /// The target used when a call names none.
    pub(crate) fn default_target_name(&self) -> &str {
        &self.targets[0].name
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

    /// Records an alarm for the people the configured sinks reach (`portcullis_notify`): a row of the store's
    /// outbox, which is all a call waits for.
    pub(crate) fn raise_alarm(&self, kind: &str, principal: &str, message: &str) {
        if let Err(e) = self.guard.auditor.store().alert_raise(kind, principal, message, Utc::now()) {
            tracing::error!(kind, "alarm not stored: {e}");
        }
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
            // Only the tools this caller may see are offered.
            let visible: Vec<&str> = self.tools_for(ctx).iter().map(|t| t.name).collect();
            let message = match catalogue::closest(tool, &visible) {
                Some(name) => format!("there is no tool named {tool:?}; did you mean `{name}`?"),
                None => format!("there is no tool named {tool:?}"),
            };
            CallError::new(ErrorCode::NotFound, message).with_hint("`portcullis tools` lists the catalogue")
        })?;
        self.guard.authorize(ctx, def.operation, def.requirement)?;
        let work = (def.route)(args, now())?;
        self.guard.rate_limit(ctx, def.rate_class)?;
        ctx.check_cancelled()?;
        match work {
            WorkKind::Local(job) => job.run(self, ctx, trace).await,
            // A read changes nothing, so it may stop at any await point once the caller gives up.
            WorkKind::Read { target, job } => {
                let target = self.target_of(target.as_deref(), trace)?;
                until_cancelled(ctx, job.read(&ReadScope { svc: self, target, ctx })).await
            }
            WorkKind::LogRead { target, job } => {
                let target = self.target_of(target.as_deref(), trace)?;
                until_cancelled(ctx, self.log_read(ctx, target, job)).await
            }
            WorkKind::Change { target, options, job } => {
                let target = self.target_of(target.as_deref(), trace)?;
                trace.dry_run = options.dry_run;
                let mut planned = until_cancelled(ctx, job.intent(&IntentScope { svc: self, ctx, target })).await?;
                let after_apply = planned.after_apply.take();
                let reveal = planned.reveal.take();
                let call = ChangeCall { ctx, def, target, args, planned: &planned, options };
                let mut answer = self.change(&call, trace).await?;
                let applied = matches!(answer["status"].as_str(), Some("applied" | "pending_confirmation"));
                if let Some(record) = after_apply.filter(|_| applied) {
                    record(self)?;
                }
                if let Some(reveal) = reveal.filter(|_| applied) {
                    let extra = reveal(&answer);
                    if let Some(fields) = answer.as_object_mut() {
                        fields.extend(extra);
                    }
                }
                Ok(answer)
            }
        }
    }

    /// The target a call names (the default one when it names none), noted for its audit record.
    fn target_of(&self, name: Option<&str>, trace: &mut Trace) -> Result<&Target, CallError> {
        let target = self.target(name)?;
        trace.target = Some(target.name.clone());
        Ok(target)
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

    /// A read of the target's log store, in two steps reported as progress: bring the store up to date (pfSense
    /// targets are pulled first), then query or aggregate it.
    async fn log_read(
        &self,
        ctx: &CallContext,
        target: &Target,
        mut job: Box<dyn LogStep>,
    ) -> Result<Value, CallError> {
        // Log entries name interfaces and rules: a recent read of them will do.
        let state = target.firewall.state(&portcullis_core::freshness::StateRead::recent()).await?;
        let now = now();
        job.prepare(&state, now)?;
        ctx.report_progress(0, Some(2), "reading the firewall log");
        let log_gap = self.sync_logs(target).await?;
        ctx.report_progress(1, Some(2), "querying the log store");
        let result = job.answer(&LogScope { svc: self, target, state: &state, now }, log_gap).await;
        ctx.report_progress(2, Some(2), "done");
        result
    }
}

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

fn to_json<T: Serialize>(value: &T) -> Result<Value, CallError> {
    serde_json::to_value(value).map_err(|e| CallError::internal(format!("result not serialisable: {e}")))
}

#[cfg(test)]
mod tests;
