//! The audit trail as tools read it: `get_audit_log` and `verify_audit_log`.

use chrono::Utc;
use portcullis_store::AuditFilter;

use crate::args::AuditLogArgs;
use crate::views::{AuditEntry, AuditLogResult, AuditVerifyResult};
use crate::{CallError, ToolService};

impl ToolService {
    pub(crate) fn audit_log(&self, a: &AuditLogArgs) -> Result<AuditLogResult, CallError> {
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
        Ok(AuditLogResult { count: data.len(), data })
    }

    /// The chain, cross-checked with the audit witness when there is one.
    pub fn audit_verify(&self) -> Result<AuditVerifyResult, CallError> {
        let v = self.guard.auditor.verify()?;
        Ok(AuditVerifyResult { ok: v.ok, records: v.records, broken_at: v.broken_at, problem: v.problem })
    }
}
