//! The guard pipeline's stages: who is calling (principal, transport), whether the operation is allowed,
//! whether the caller is within its rate, how risky the change is, and the audit record of the call.
//! `portcullis-tools` runs these stages, in this order, for every tool call from every transport.

mod audit;
mod error;
mod policy;
mod rate;
mod risk;

pub use audit::{AuditRecord, Auditor, Decision, redact};
pub use error::CallError;
pub use policy::{OperationPolicy, pattern_matches};
pub use rate::RateLimits;
pub use risk::{RiskInput, RiskWeights, risk_score};

use serde::Serialize;

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

/// Everything known about a call before its arguments are read.
#[derive(Debug, Clone, Serialize)]
pub struct CallContext {
    pub principal: Principal,
    pub transport: Transport,
    /// Where the call came from: the MCP client name, the HTTP peer, or the CLI user.
    pub origin: Option<String>,
    pub correlation_id: String,
}

impl CallContext {
    pub fn new(principal: Principal, transport: Transport, origin: Option<String>) -> Self {
        Self { principal, transport, origin, correlation_id: uuid::Uuid::new_v4().to_string() }
    }
}

/// The guard's settings, from config `security:`.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    pub policy: OperationPolicy,
    pub rate_limit_per_minute: u32,
    pub max_risk_score: u8,
    pub restricted_interfaces: Vec<String>,
    pub weights: RiskWeights,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            policy: OperationPolicy::allow_all(),
            rate_limit_per_minute: 100,
            max_risk_score: 80,
            restricted_interfaces: Vec::new(),
            weights: RiskWeights::default(),
        }
    }
}

/// The guard: policy, rate limits and the auditor, shared by every transport.
pub struct Guard {
    pub settings: GuardSettings,
    rates: RateLimits,
    pub auditor: Auditor,
}

impl Guard {
    pub fn new(settings: GuardSettings, auditor: Auditor) -> Result<Self, CallError> {
        let rates = RateLimits::per_minute(settings.rate_limit_per_minute)?;
        Ok(Self { settings, rates, auditor })
    }

    /// Authorize: the operation must be allowed for this call.
    pub fn authorize(&self, ctx: &CallContext, operation: &str) -> Result<(), CallError> {
        self.settings.policy.check(operation).map_err(|reason| {
            CallError::policy(format!("{} may not {operation}: {reason}", ctx.principal.name))
                .with_hint("the operation is not in security.allowed_operations (or is in denied_operations)")
        })
    }

    /// Rate limit: one token per call from this principal.
    pub fn rate_limit(&self, ctx: &CallContext) -> Result<(), CallError> {
        self.rates.check(&ctx.principal.name)
    }

    /// Risk: the score of a change; above `max_risk_score` the change needs a human approval.
    pub fn assess(&self, input: &RiskInput<'_>) -> (u8, Result<(), CallError>) {
        let score = risk_score(&self.settings.weights, input, &self.settings.restricted_interfaces);
        let max = self.settings.max_risk_score;
        let verdict = if score > max {
            Err(CallError::approval_required(format!(
                "risk score {score} is above security.max_risk_score {max}; this change needs a human approval"
            ))
            .with_hint(
                "review the plan with dry_run: true; approvals (`portcullis approve`) are not yet available in \
                 this version, so an administrator must raise max_risk_score for this change",
            ))
        } else {
            Ok(())
        };
        (score, verdict)
    }
}
