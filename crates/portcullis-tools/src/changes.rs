//! Confirm or roll back: the change journal around every applied change, `confirm_change`,
//! `rollback_change`, `list_pending_changes`, the automatic undo of overdue unconfirmed changes, and recovery
//! after a crash (a change in flight is finished or recorded as not made; overdue ones are undone before
//! serving).

use async_trait::async_trait;
use chrono::Utc;
use portcullis_core::firewall::{Applied, ErrorCode};
use portcullis_core::model::{RuleId, RuleSet, Timestamp};
use portcullis_core::plan::{self, ChangePlan, Operation};
use portcullis_guard::{AuditRecord, CallContext, Decision, Principal, Transport};
use portcullis_store::JournalEntry;
use portcullis_store::JournalStatus::{self, *};
use serde_json::Value;
use std::time::Instant;

use crate::door::ChangeCall;
use crate::door::ReadBack;
use crate::views::{ChangeRecordView, ChangeResult, ChangeStatus, PendingChangesResult};
use crate::work::LocalJob;
use crate::{CallError, Target, ToolService, Trace, now};

/// The journal statuses from which a change can be undone.
const ROLLBACK_FROM: &[JournalStatus] = &[PendingConfirmation, Applied, Confirmed];

fn store_error(e: portcullis_store::StoreError) -> CallError {
    CallError::internal(format!("change journal: {e}"))
}

fn view(e: &JournalEntry, now: Timestamp) -> ChangeRecordView {
    ChangeRecordView {
        change_id: e.change_id.clone(),
        target: e.target.clone(),
        tool: e.tool.clone(),
        principal: e.principal.clone(),
        status: e.status.as_str().to_string(),
        summary: e.summary.clone(),
        created_at: e.created_at,
        confirm_by: e.confirm_by,
        seconds_left: e.confirm_by.filter(|_| e.status == PendingConfirmation).map(|t| (t - now).num_seconds()),
        note: e.note.clone(),
    }
}

/// The audit record of something Portcullis did by itself (expiry, automatic rollback, recovery).
pub(crate) fn system_record<T>(
    target: &str,
    tool: &str,
    why: &str,
    arguments: Value,
    change_id: &str,
    outcome: &Result<T, CallError>,
    started: Instant,
) -> AuditRecord {
    let context = CallContext::new(
        Principal { name: "portcullis".into(), role: "system".into() },
        Transport::System,
        Some(why.into()),
    );
    AuditRecord {
        time: Utc::now(),
        context,
        target: Some(target.to_string()),
        tool: tool.into(),
        operation: tool.into(),
        arguments,
        decision: Decision::Allowed,
        reason: outcome.as_ref().err().map(|e| e.message.clone()),
        risk_score: 0,
        change_id: Some(change_id.to_string()),
        approval_id: None,
        outcome: outcome.as_ref().map_or_else(|e| e.code.as_str().to_string(), |_| "ok".into()),
        duration_us: started.elapsed().as_micros() as u64,
    }
}

/// `rollback_change`: the undo plan of a journalled change, applied now (or shown, with `dry_run`).
pub(crate) struct Rollback {
    pub change_id: String,
    pub dry_run: bool,
}

#[async_trait]
impl LocalJob for Rollback {
    type Output = ChangeResult;
    async fn run(self, svc: &ToolService, ctx: &CallContext, trace: &mut Trace) -> Result<ChangeResult, CallError> {
        trace.dry_run = self.dry_run;
        trace.change_id = Some(self.change_id.clone());
        let entry = svc.journal_entry(&self.change_id)?;
        trace.target = Some(entry.target.clone());
        // Undoing a change needs the permission the change itself needed.
        if let Some(original) = svc.tools().iter().find(|t| t.name == entry.tool) {
            svc.guard.authorize(ctx, original.operation, original.requirement)?;
        }
        svc.roll_back(&entry, self.dry_run).await
    }
}

impl ToolService {
    /// Writes the intent of a change before the firewall is touched.
    pub(crate) fn journal_begin(
        &self,
        change_id: &str,
        call: &ChangeCall<'_>,
        plan: &ChangePlan,
        confirm_by: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), CallError> {
        let entry = JournalEntry {
            change_id: change_id.to_string(),
            target: call.target.name.clone(),
            tool: call.def.name.to_string(),
            principal: call.ctx.principal.name.clone(),
            status: Applying,
            summary: plan.summary.clone(),
            plan: serde_json::to_value(plan).map_err(|e| CallError::internal(e.to_string()))?,
            inverse: None,
            created_at: now,
            confirm_by,
            note: None,
        };
        self.guard.auditor.store().journal_begin(&entry).map_err(store_error)
    }

    pub(crate) fn journal_failed(&self, change_id: &str, error: &CallError) {
        let note = format!("{}: {}", error.code.as_str(), error.message);
        if let Err(e) = self.guard.auditor.store().journal_update(change_id, Failed, None, Some(&note)) {
            tracing::error!(change_id, "journal not updated after a failed change: {e}");
        }
    }

    pub(crate) fn journal_applied(
        &self,
        change_id: &str,
        inverse: &ChangePlan,
        confirm_by: Option<Timestamp>,
    ) -> Result<(), CallError> {
        let status = if confirm_by.is_some() { PendingConfirmation } else { Applied };
        let inverse = serde_json::to_value(inverse).map_err(|e| CallError::internal(e.to_string()))?;
        self.guard.auditor.store().journal_update(change_id, status, Some(&inverse), None).map_err(store_error)
    }

    fn journal_entry(&self, change_id: &str) -> Result<JournalEntry, CallError> {
        self.guard.auditor.store().journal_get(change_id).map_err(store_error)?.ok_or_else(|| {
            CallError::from(portcullis_core::FieldError::new(
                "change_id",
                format!("no change {change_id} (see list_pending_changes)"),
            ))
        })
    }

    pub(crate) fn pending_changes(&self) -> Result<PendingChangesResult, CallError> {
        let now = now();
        let rows = self.guard.auditor.store().journal_with_status(&[PendingConfirmation]).map_err(store_error)?;
        let data: Vec<ChangeRecordView> = rows.iter().map(|e| view(e, now)).collect();
        Ok(PendingChangesResult { count: data.len(), data })
    }

    pub(crate) fn confirm_change(&self, change_id: &str, trace: &mut Trace) -> Result<ChangeRecordView, CallError> {
        trace.change_id = Some(change_id.to_string());
        let entry = self.journal_entry(change_id)?;
        if entry.status != PendingConfirmation {
            return Err(CallError::new(
                ErrorCode::Conflict,
                format!("change {change_id} is {}, not waiting for confirmation", entry.status),
            ));
        }
        if entry.confirm_by.is_some_and(|t| t <= now()) {
            return Err(CallError::new(
                ErrorCode::Conflict,
                format!("change {change_id} missed its confirmation window and is being rolled back"),
            ));
        }
        let store = self.guard.auditor.store();
        store.journal_update(change_id, Confirmed, None, None).map_err(store_error)?;
        let entry = self.journal_entry(change_id)?;
        Ok(view(&entry, now()))
    }

    /// Applies the undo plan of a journal entry.
    async fn roll_back(&self, entry: &JournalEntry, dry_run: bool) -> Result<ChangeResult, CallError> {
        if !ROLLBACK_FROM.contains(&entry.status) {
            return Err(CallError::new(
                ErrorCode::Conflict,
                format!("change {} is {}; only applied changes can be rolled back", entry.change_id, entry.status),
            ));
        }
        let inverse: ChangePlan = entry
            .inverse
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| CallError::internal(format!("change {} has no undo plan", entry.change_id)))?;
        let target = self.target(Some(&entry.target))?;
        let mut result = ChangeResult {
            change_id: entry.change_id.clone(),
            status: ChangeStatus::Planned,
            target: target.name.clone(),
            summary: inverse.summary.clone(),
            plan: inverse.operations.clone(),
            warnings: inverse.warnings.clone(),
            risk_score: 0,
            expires_at: None,
            rule: None,
            verified: false,
            approval_required: false,
            approval_id: None,
            confirm_by: None,
            effect: None,
            addresses: Vec::new(),
            statements: Vec::new(),
            client_config: None,
            password: None,
            secret_notice: None,
        };
        if dry_run {
            return Ok(result);
        }
        let inside = self.enter(target).await;
        let store = self.guard.auditor.store();
        // Claimed in the journal first: another process (the CLI beside a server) may be undoing it too.
        if !store.journal_claim(&entry.change_id, ROLLBACK_FROM, RollingBack).map_err(store_error)? {
            return Err(CallError::new(
                ErrorCode::Conflict,
                format!("change {} is already being rolled back or was settled meanwhile", entry.change_id),
            ));
        }
        match inside.carry(&inverse, ReadBack::Whole, None).await {
            Ok(_) => {
                store.journal_update(&entry.change_id, RolledBack, None, None).map_err(store_error)?;
                self.raise_alarm(
                    "rollback",
                    &entry.principal,
                    &format!("change {} on {} was rolled back: {}", entry.change_id, entry.target, inverse.summary),
                );
                result.status = ChangeStatus::RolledBack;
                result.verified = true;
                Ok(result)
            }
            Err(e) => {
                let note = format!("rollback failed: {}: {}", e.code.as_str(), e.message);
                store.journal_update(&entry.change_id, RollbackFailed, None, Some(&note)).map_err(store_error)?;
                self.raise_alarm(
                    "rollback",
                    &entry.principal,
                    &format!(
                        "[high] the rollback of change {} on {} failed: {}",
                        entry.change_id, entry.target, e.message
                    ),
                );
                Err(e)
            }
        }
    }

    /// Undoes every unconfirmed change whose window has passed, audited as Portcullis itself.
    pub async fn roll_back_overdue(&self) -> Vec<(String, Result<(), CallError>)> {
        let store = self.guard.auditor.store();
        let now = now();
        let due: Vec<JournalEntry> = match store.journal_with_status(&[PendingConfirmation]) {
            Ok(rows) => rows.into_iter().filter(|e| e.confirm_by.is_some_and(|t| t <= now)).collect(),
            Err(e) => return vec![(String::new(), Err(store_error(e)))],
        };
        let mut report = Vec::new();
        for entry in due {
            let started = Instant::now();
            let outcome = self.roll_back(&entry, false).await.map(|_| ());
            self.audit_system(&entry, "rollback_change", "confirmation window passed", &outcome, started);
            report.push((entry.change_id.clone(), outcome));
        }
        report
    }

    fn audit_system(
        &self,
        entry: &JournalEntry,
        tool: &str,
        why: &str,
        outcome: &Result<(), CallError>,
        started: Instant,
    ) {
        let arguments = serde_json::json!({"change_id": entry.change_id});
        let record = system_record(&entry.target, tool, why, arguments, &entry.change_id, outcome, started);
        if let Err(e) = self.guard.auditor.record(&record) {
            tracing::error!("audit of {tool} for {} failed: {}", entry.change_id, e.message);
        }
    }

    /// After a restart: settles changes that were in flight when the process died, then undoes overdue
    /// unconfirmed changes. Run before serving. Returns one line per action taken.
    pub async fn recover(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let in_flight = self.guard.auditor.store().journal_with_status(&[Applying]).unwrap_or_default();
        for entry in in_flight {
            let started = Instant::now();
            let outcome = self.settle(&entry).await;
            let line = match &outcome {
                Ok(status) => format!("change {} was in flight: {status}", entry.change_id),
                Err(e) => format!("change {} was in flight and could not be settled: {}", entry.change_id, e.message),
            };
            self.audit_system(&entry, "recover_change", "restart", &outcome.map(|_| ()), started);
            notes.push(line);
        }
        for (id, outcome) in self.roll_back_overdue().await {
            notes.push(match outcome {
                Ok(()) => format!("change {id} missed its confirmation window and was rolled back"),
                Err(e) => format!("change {id} missed its confirmation window; rollback failed: {}", e.message),
            });
        }
        notes
    }

    /// Decides, from the firewall itself, whether an in-flight change took effect, and records it.
    async fn settle(&self, entry: &JournalEntry) -> Result<String, CallError> {
        let plan: ChangePlan = serde_json::from_value(entry.plan.clone())
            .map_err(|e| CallError::internal(format!("unreadable plan in the journal: {e}")))?;
        let target: &Target = self.target(Some(&entry.target))?;
        let inside = self.enter(target).await;
        let state = inside.fresh_state().await?;
        let store = self.guard.auditor.store();
        match took_effect(&plan, &state) {
            Some(applied) => {
                let inverse = plan::invert(&plan, &applied, &state, &state);
                let status = if entry.confirm_by.is_some() { PendingConfirmation } else { Applied };
                let inverse = serde_json::to_value(&inverse).map_err(|e| CallError::internal(e.to_string()))?;
                store
                    .journal_update(&entry.change_id, status, Some(&inverse), Some("settled after a restart"))
                    .map_err(store_error)?;
                Ok(format!("it had been applied; now {status}"))
            }
            None => {
                store
                    .journal_update(&entry.change_id, Failed, None, Some("not applied: the process stopped first"))
                    .map_err(store_error)?;
                Ok("it had not been applied; recorded as failed".into())
            }
        }
    }
}

/// Whether every operation of a plan holds on the firewall; the rules it created, in order.
fn took_effect(plan: &ChangePlan, state: &RuleSet) -> Option<Applied> {
    let mut created: Vec<RuleId> = Vec::new();
    for op in &plan.operations {
        let holds = match op {
            Operation::CreateRule { after, .. } => {
                let found = state
                    .rules
                    .iter()
                    .find(|r| !created.contains(&r.rule_id) && plan::same_enforcement(r, after))
                    .map(|r| r.rule_id.clone());
                found.map(|id| created.push(id)).is_some()
            }
            Operation::UpdateRule { after, .. } => {
                state.rule(&after.rule_id).is_some_and(|r| plan::same_enforcement(r, after))
            }
            Operation::DeleteRule { before } => state.rule(&before.rule_id).is_none(),
            Operation::CreateAlias { after } => state.alias(&after.name).is_some(),
            Operation::DeleteAlias { before } => state.alias(&before.name).is_none(),
            Operation::PutAliasEntries { alias, after, .. } => state.alias(alias).is_some_and(|a| {
                after.iter().all(|e| a.entries.iter().any(|f| f.value == e.value && f.expires_at == e.expires_at))
            }),
            Operation::RemoveAliasEntries { alias, before } => {
                state.alias(alias).is_none_or(|a| before.iter().all(|e| a.entries.iter().all(|f| f.value != e.value)))
            }
            Operation::CreateProtection { after } | Operation::UpdateProtection { after, .. } => {
                state.protections.iter().any(|p| portcullis_core::protection::same_enforcement(p, after))
            }
            Operation::DeleteProtection { before } => {
                state.protections.iter().all(|p| p.protection_id != before.protection_id)
            }
            Operation::CreateMirror { after } => {
                state.mirrors.iter().any(|m| portcullis_core::mirror::same_enforcement(m, after))
            }
            Operation::DeleteMirror { before } => state.mirrors.iter().all(|m| m.mirror_id != before.mirror_id),
            Operation::CreateVpnAccount { after } => state.vpn_accounts.iter().any(|u| u.same_enforcement(after)),
            Operation::DeleteVpnAccount { before } => state.vpn_accounts.iter().all(|u| u.username != before.username),
        };
        if !holds {
            return None;
        }
    }
    Some(Applied { created_rules: created, ..Default::default() })
}
