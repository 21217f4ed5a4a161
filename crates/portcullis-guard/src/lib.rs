//! The guard pipeline's stages: who is calling (principal, transport), whether the operation is allowed,
//! whether the caller is within its rate, how risky the change is, and the audit record of the call.
//! `portcullis-tools` runs these stages, in this order, for every tool call from every transport.

mod alerts;
pub mod approval;
pub mod argpolicy;
mod audit;
mod error;
mod policy;
mod rate;
mod risk;
pub mod roles;

pub use alerts::AlertMonitor;
pub use audit::{AuditRecord, Auditor, Decision, Reconciled, redact};
pub use error::CallError;
pub use policy::{OperationPolicy, pattern_matches};
pub use rate::{RateClass, RateLimits, RateQuotas};
pub use risk::{RiskInput, RiskWeights, risk_score};
pub use roles::{Caps, Category, Level, Requirement, Role, Roles};

use chrono::TimeDelta;
use ipnet::IpNet;
use portcullis_core::firewall::ErrorCode;
use serde::Serialize;
pub use tokio_util::sync::CancellationToken;

/// How a call reached Portcullis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Stdio,
    Http,
    Cli,
    /// Portcullis itself, e.g. the expiry sweeper.
    System,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: String,
}

/// A person who can be asked, during a call, to approve it (an MCP client that shows elicitation requests to
/// its user). The model behind the client never sees the question, so it cannot answer it.
#[async_trait::async_trait]
pub trait HumanApprover: Send + Sync {
    /// Who answers, for the audit trail (e.g. `elicitation:claude-desktop 1.2`).
    fn name(&self) -> String;
    /// Asks the person; `Ok(true)` only on an explicit approval.
    async fn confirm(&self, question: &str) -> Result<bool, String>;
}

/// Receives progress of a call's work (done out of total, with a short message). Must not block.
pub trait ProgressSink: Send + Sync {
    fn report(&self, done: u64, total: Option<u64>, message: &str);
}

/// A shared progress sink; `Debug` so that call contexts stay printable.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn ProgressSink>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// A shared approver; `Debug` so that call contexts stay printable.
#[derive(Clone)]
pub struct Approver(pub std::sync::Arc<dyn HumanApprover>);

impl std::fmt::Debug for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Approver({})", self.0.name())
    }
}

/// Everything known about a call before its arguments are read.
#[derive(Debug, Clone, Serialize)]
pub struct CallContext {
    pub principal: Principal,
    pub transport: Transport,
    /// Where the call came from: the MCP client name, the HTTP peer, or the CLI user.
    pub origin: Option<String>,
    /// The network address the call came from, when the transport knows it (HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<std::net::SocketAddr>,
    pub correlation_id: String,
    /// A person reachable during the call, when the transport offers one.
    #[serde(skip)]
    pub approver: Option<Approver>,
    /// Cancelled when the caller gives up (MCP `notifications/cancelled`); long work checks it.
    #[serde(skip)]
    pub cancel: CancellationToken,
    /// Where progress of long work goes, when the caller asked for it (MCP `_meta.progressToken`).
    #[serde(skip)]
    pub progress: Option<Progress>,
}

impl CallContext {
    pub fn new(principal: Principal, transport: Transport, origin: Option<String>) -> Self {
        Self {
            principal,
            transport,
            origin,
            peer: None,
            correlation_id: uuid::Uuid::new_v4().to_string(),
            approver: None,
            cancel: CancellationToken::new(),
            progress: None,
        }
    }

    pub fn with_approver(mut self, approver: Option<Approver>) -> Self {
        self.approver = approver;
        self
    }

    pub fn with_peer(mut self, peer: Option<std::net::SocketAddr>) -> Self {
        self.peer = peer;
        self
    }

    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn with_progress(mut self, progress: Option<Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// `Err(cancelled)` once the caller has given up: long work calls this between steps.
    pub fn check_cancelled(&self) -> Result<(), CallError> {
        if self.cancel.is_cancelled() {
            return Err(CallError::cancelled());
        }
        Ok(())
    }

    /// Reports progress to the caller, if it asked for it.
    pub fn report_progress(&self, done: u64, total: Option<u64>, message: &str) {
        if let Some(p) = &self.progress {
            p.0.report(done, total, message);
        }
    }
}

/// The guard's settings, from config `security:`.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    pub policy: OperationPolicy,
    pub roles: Roles,
    pub rates: RateQuotas,
    pub max_risk_score: u8,
    pub restricted_interfaces: Vec<String>,
    /// Management hosts and the never-block list (loopback and the firewall's own addresses are always added).
    pub protected_addresses: Vec<IpNet>,
    /// Hosts administrators manage the firewall from: they must keep reaching it (443, 22) after any change.
    pub management_hosts: Vec<IpNet>,
    /// Further flows that no change may cut.
    pub management_flows: Vec<portcullis_core::lockout::ManagementFlow>,
    pub weights: RiskWeights,
    pub approval_ttl: TimeDelta,
    /// Changes on restricted interfaces are applied with this confirmation window unless the call sets one.
    pub confirm_restricted: Option<TimeDelta>,
    /// Four eyes: a change is approved by a principal other than the one who asked for it.
    pub distinct_approver: bool,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            policy: OperationPolicy::allow_all(),
            roles: Roles::default(),
            rates: RateQuotas::default(),
            max_risk_score: 80,
            restricted_interfaces: Vec::new(),
            protected_addresses: Vec::new(),
            management_hosts: Vec::new(),
            management_flows: Vec::new(),
            weights: RiskWeights::default(),
            approval_ttl: TimeDelta::minutes(15),
            confirm_restricted: None,
            distinct_approver: false,
        }
    }
}

/// The guard: policy, rate limits, the auditor and the alert monitor, shared by every transport.
pub struct Guard {
    pub settings: GuardSettings,
    rates: RateLimits,
    pub auditor: Auditor,
    pub alerts: AlertMonitor,
}

impl Guard {
    pub fn new(settings: GuardSettings, auditor: Auditor) -> Result<Self, CallError> {
        let rates = RateLimits::new(settings.rates)?;
        Ok(Self { settings, rates, auditor, alerts: AlertMonitor::default() })
    }

    pub fn role(&self, ctx: &CallContext) -> Result<&Role, CallError> {
        self.settings.roles.get(&ctx.principal.role).ok_or_else(|| {
            CallError::new(
                ErrorCode::AuthorizationFailed,
                format!("principal {} has role {:?}, which is not defined", ctx.principal.name, ctx.principal.role),
            )
        })
    }

    /// Whether the principal may call a tool at all (used to hide tools from `tools/list` too).
    pub fn permits(&self, ctx: &CallContext, operation: &str, need: Requirement) -> bool {
        self.authorize(ctx, operation, need).is_ok()
    }

    /// Authorize: the role must grant the tool's category and level, and the operation must be allowed.
    pub fn authorize(&self, ctx: &CallContext, operation: &str, need: Requirement) -> Result<(), CallError> {
        let role = self.role(ctx)?;
        if !role.allows(need) {
            return Err(CallError::new(
                ErrorCode::AuthorizationFailed,
                format!(
                    "{} (role {}) may not {operation}: it needs {} access to {}, the role has {}",
                    ctx.principal.name,
                    ctx.principal.role,
                    need.level,
                    need.category.as_str(),
                    role.level(need.category)
                ),
            )
            .with_hint(self.who_may(need)));
        }
        self.settings.policy.check(operation).map_err(|reason| {
            CallError::policy(format!("{} may not {operation}: {reason}", ctx.principal.name))
                .with_hint("the operation is not in security.allowed_operations (or is in denied_operations)")
        })
    }

    /// Which roles grant `need`, and how to run as one.
    fn who_may(&self, need: Requirement) -> String {
        let roles: Vec<&str> = self
            .settings
            .roles
            .names()
            .filter(|name| self.settings.roles.get(name).is_some_and(|r| r.allows(need)))
            .collect();
        if roles.is_empty() {
            return "no configured role grants it; an administrator can add one under security.roles".into();
        }
        format!(
            "role {} may; run as a principal with that role (security.principal in the config, or \
             PORTCULLIS_PRINCIPAL for the CLI and stdio; a bearer token of such a principal over HTTP)",
            roles.join(" or ")
        )
    }

    /// Rate limit: one token per call from this principal, in the tool's class.
    pub fn rate_limit(&self, ctx: &CallContext, class: RateClass) -> Result<(), CallError> {
        self.rates.check(&ctx.principal.name, class)
    }

    /// Risk: the score of a change, and why it needs a person's approval, if it does.
    pub fn assess(&self, ctx: &CallContext, input: &RiskInput<'_>) -> (u8, Option<String>) {
        let score = risk_score(&self.settings.weights, input, &self.settings.restricted_interfaces);
        let max = self.settings.max_risk_score;
        if score > max {
            return (score, Some(format!("risk score {score} is above security.max_risk_score {max}")));
        }
        let restricted = input.facts.map(|f| {
            f.interfaces.iter().find(|i| self.settings.restricted_interfaces.iter().any(|r| r.eq_ignore_ascii_case(i)))
        });
        if let Some(Some(iface)) = restricted
            && !input.read_only
            && ctx.principal.role != "admin"
        {
            return (
                score,
                Some(format!("changes on restricted interface {iface} need an admin or a person's approval")),
            );
        }
        (score, None)
    }
}
