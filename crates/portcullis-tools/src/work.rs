//! What a validated call is: a tool's route turns its parsed arguments into one of four kinds of work, and
//! `ToolService::run` runs each kind in its own step with one exhaustive match. The work is typed by the tool's
//! result (`Work<R>`), so the output schema a tool declares is the type its handler returns.

use std::marker::PhantomData;

use async_trait::async_trait;
use chrono::TimeDelta;
use portcullis_core::model::{RuleSet, Timestamp};
use portcullis_core::plan::Intent;
use portcullis_guard::CallContext;
use serde::Serialize;
use serde_json::Value;

use crate::args::ChangeOptions;
use crate::views::{ChangeResult, LogGap};
use crate::{CallError, Target, ToolService, Trace, to_json};

/// The work of one call, typed by its answer.
pub(crate) struct Work<R> {
    pub(crate) kind: WorkKind,
    answer: PhantomData<fn() -> R>,
}

/// The four kinds of work, each with its own step in the pipeline.
pub(crate) enum WorkKind {
    /// Answered from Portcullis' own records (audit trail, change journal, alarms); no target is read.
    Local(Box<dyn LocalStep>),
    /// Answered from one target's freshly read firewall.
    Read { target: Option<String>, job: Box<dyn ReadStep> },
    /// Answered from one target's log store, brought up to date from the firewall first.
    LogRead { target: Option<String>, job: Box<dyn LogStep> },
    /// A change of one target, through the change door.
    Change { target: Option<String>, options: ChangeSettings, job: Box<dyn IntentStep> },
}

/// The common options of a change call, validated.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChangeSettings {
    pub dry_run: bool,
    pub confirm_within: Option<TimeDelta>,
    pub allow_no_effect: bool,
}

impl ChangeOptions {
    /// The target named, and the validated dry-run and confirmation window.
    pub(crate) fn settle(&self) -> Result<(Option<String>, ChangeSettings), CallError> {
        let confirm_within = self
            .confirm_within
            .as_deref()
            .map(|c| portcullis_core::duration::parse_span("confirm_within", c))
            .transpose()?;
        let settings = ChangeSettings {
            dry_run: self.dry_run.unwrap_or(false),
            confirm_within,
            allow_no_effect: self.allow_no_effect.unwrap_or(false),
        };
        Ok((self.target.clone(), settings))
    }
}

/// What a read sees: the service and the target it reads.
pub(crate) struct ReadScope<'a> {
    pub svc: &'a ToolService,
    pub target: &'a Target,
    /// Who is calling.
    pub ctx: &'a CallContext,
}

impl ReadScope<'_> {
    pub(crate) async fn state(&self) -> Result<RuleSet, CallError> {
        Ok(self.target.firewall.snapshot().await?)
    }

    /// The state with what `read` names read now and the rest from a recent read, where the backend keeps one.
    pub(crate) async fn state_with(&self, read: &portcullis_core::freshness::StateRead) -> Result<RuleSet, CallError> {
        Ok(self.target.firewall.state(read).await?)
    }
}

/// A target's state as a read answered from it alone sees it.
pub(crate) struct StateView<'a> {
    pub svc: &'a ToolService,
    /// The target's name.
    pub target: &'a str,
    pub state: &'a RuleSet,
    pub now: Timestamp,
}

/// What a log read sees: the target's state read just before the log was brought up to date.
pub(crate) struct LogScope<'a> {
    pub svc: &'a ToolService,
    pub target: &'a Target,
    pub state: &'a RuleSet,
    pub now: Timestamp,
}

/// What a change's intent is worked out with (the egress policy's flows need the service and the caller).
pub(crate) struct IntentScope<'a> {
    pub svc: &'a ToolService,
    pub ctx: &'a CallContext,
    pub target: &'a Target,
}

/// A change's intent, and the endpoints the host must still reach after it (an egress policy's firewall APIs
/// and caller), which lockout prevention keeps.
pub(crate) struct PlannedIntent {
    pub intent: Intent,
    pub must_reach: Vec<(String, std::net::SocketAddr)>,
    /// Why a person must approve this change whatever its risk score (a copy of everything on an interface).
    pub person_must_approve: Option<String>,
    /// What Portcullis records of its own once the change is applied (a domain block's answer and refresh time);
    /// not run for a dry run or a refused change.
    pub after_apply: Option<AfterApply>,
    /// Fields added to the answer of the call that applied the change, and to nothing else (a VPN user's client
    /// configuration with its private key): not run for a dry run or a refused change, never journalled or audited.
    pub reveal: Option<Reveal>,
}

/// A record written once a change is applied.
pub(crate) type AfterApply = Box<dyn FnOnce(&crate::ToolService) -> Result<(), CallError> + Send + Sync>;

/// Fields for the answer of an applied change, from that answer.
pub(crate) type Reveal =
    Box<dyn FnOnce(&serde_json::Value) -> serde_json::Map<String, serde_json::Value> + Send + Sync>;

/// A handler answered from Portcullis' own records.
#[async_trait]
pub(crate) trait LocalJob: Send + 'static {
    type Output: Serialize;
    async fn run(self, svc: &ToolService, ctx: &CallContext, trace: &mut Trace) -> Result<Self::Output, CallError>;
}

/// A handler that reads one target.
#[async_trait]
pub(crate) trait ReadJob: Send + 'static {
    type Output: Serialize;
    async fn read(self, at: &ReadScope<'_>) -> Result<Self::Output, CallError>;
}

/// A log tool's answer carries the gap of the pull made for it, if the pull hit its cap.
pub(crate) trait LogAnswer: Serialize {
    fn set_log_gap(&mut self, gap: Option<LogGap>);
}

/// A handler that reads one target's log store.
#[async_trait]
pub(crate) trait LogJob: Send + 'static {
    type Output: LogAnswer;
    /// Checks what needs the firewall's state (interfaces named in filters) before the log is pulled, so a bad
    /// filter costs no pull.
    fn prepare(&mut self, _state: &RuleSet, _now: Timestamp) -> Result<(), CallError> {
        Ok(())
    }
    async fn answer(self, at: &LogScope<'_>) -> Result<Self::Output, CallError>;
}

/// A change whose intent needs more than its arguments to work out.
#[async_trait]
pub(crate) trait IntentJob: Send + 'static {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError>;
}

impl<R: Serialize + 'static> Work<R> {
    fn of(kind: WorkKind) -> Self {
        Self { kind, answer: PhantomData }
    }

    /// Work answered from Portcullis' own records.
    pub(crate) fn local(job: impl LocalJob<Output = R>) -> Self {
        Self::of(WorkKind::Local(Box::new(Erased(job))))
    }

    /// Work answered from Portcullis' own records, without waiting for anything.
    pub(crate) fn local_now(
        answer: impl FnOnce(&ToolService, &mut Trace) -> Result<R, CallError> + Send + 'static,
    ) -> Self {
        Self::local(Now(answer, PhantomData))
    }

    /// A read of one target.
    pub(crate) fn read(target: Option<String>, job: impl ReadJob<Output = R>) -> Self {
        Self::of(WorkKind::Read { target, job: Box::new(Erased(job)) })
    }

    /// A read answered from the target's fresh state alone.
    pub(crate) fn from_state(
        target: Option<String>,
        answer: impl FnOnce(&StateView<'_>) -> Result<R, CallError> + Send + 'static,
    ) -> Self {
        Self::read(target, FromState(answer, PhantomData))
    }
}

impl<R: LogAnswer + 'static> Work<R> {
    /// A read of one target's log store.
    pub(crate) fn log_read(target: Option<String>, job: impl LogJob<Output = R>) -> Self {
        Self::of(WorkKind::LogRead { target, job: Box::new(Erased(job)) })
    }
}

impl Work<ChangeResult> {
    /// A change whose intent the arguments alone give.
    pub(crate) fn change(options: &ChangeOptions, intent: Intent) -> Result<Self, CallError> {
        Self::change_with(options, Ready(intent))
    }

    /// A change whose intent is worked out once the target is known.
    pub(crate) fn change_with(options: &ChangeOptions, job: impl IntentJob) -> Result<Self, CallError> {
        let (target, options) = options.settle()?;
        Ok(Self::of(WorkKind::Change { target, options, job: Box::new(Erased(job)) }))
    }
}

// ---- the steps `ToolService::run` calls, with the answer serialised ----

#[async_trait]
pub(crate) trait LocalStep: Send {
    async fn run(self: Box<Self>, svc: &ToolService, ctx: &CallContext, trace: &mut Trace) -> Result<Value, CallError>;
}

#[async_trait]
pub(crate) trait ReadStep: Send {
    async fn read(self: Box<Self>, at: &ReadScope<'_>) -> Result<Value, CallError>;
}

#[async_trait]
pub(crate) trait LogStep: Send {
    fn prepare(&mut self, state: &RuleSet, now: Timestamp) -> Result<(), CallError>;
    async fn answer(self: Box<Self>, at: &LogScope<'_>, gap: Option<LogGap>) -> Result<Value, CallError>;
}

/// A handler behind the step that serialises its answer.
struct Erased<J>(J);

#[async_trait]
impl<J: LocalJob> LocalStep for Erased<J> {
    async fn run(self: Box<Self>, svc: &ToolService, ctx: &CallContext, trace: &mut Trace) -> Result<Value, CallError> {
        to_json(&self.0.run(svc, ctx, trace).await?)
    }
}

#[async_trait]
impl<J: ReadJob> ReadStep for Erased<J> {
    async fn read(self: Box<Self>, at: &ReadScope<'_>) -> Result<Value, CallError> {
        to_json(&self.0.read(at).await?)
    }
}

#[async_trait]
impl<J: LogJob> LogStep for Erased<J> {
    fn prepare(&mut self, state: &RuleSet, now: Timestamp) -> Result<(), CallError> {
        self.0.prepare(state, now)
    }

    async fn answer(self: Box<Self>, at: &LogScope<'_>, gap: Option<LogGap>) -> Result<Value, CallError> {
        let mut answer = self.0.answer(at).await?;
        answer.set_log_gap(gap);
        to_json(&answer)
    }
}

/// The intent step as the change door runs it.
#[async_trait]
pub(crate) trait IntentStep: Send {
    async fn intent(self: Box<Self>, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError>;
}

#[async_trait]
impl<J: IntentJob> IntentStep for Erased<J> {
    async fn intent(self: Box<Self>, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        self.0.intent(at).await
    }
}

/// An intent the arguments alone give.
struct Ready(Intent);

#[async_trait]
impl IntentJob for Ready {
    async fn intent(self, _at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        Ok(PlannedIntent {
            intent: self.0,
            must_reach: Vec::new(),
            person_must_approve: None,
            after_apply: None,
            reveal: None,
        })
    }
}

struct Now<F, R>(F, PhantomData<fn() -> R>);

#[async_trait]
impl<F, R> LocalJob for Now<F, R>
where
    F: FnOnce(&ToolService, &mut Trace) -> Result<R, CallError> + Send + 'static,
    R: Serialize + 'static,
{
    type Output = R;
    async fn run(self, svc: &ToolService, _ctx: &CallContext, trace: &mut Trace) -> Result<R, CallError> {
        (self.0)(svc, trace)
    }
}

struct FromState<F, R>(F, PhantomData<fn() -> R>);

#[async_trait]
impl<F, R> ReadJob for FromState<F, R>
where
    F: FnOnce(&StateView<'_>) -> Result<R, CallError> + Send + 'static,
    R: Serialize + 'static,
{
    type Output = R;
    async fn read(self, at: &ReadScope<'_>) -> Result<R, CallError> {
        let state = at.state().await?;
        (self.0)(&StateView { svc: at.svc, target: &at.target.name, state: &state, now: crate::now() })
    }
}
