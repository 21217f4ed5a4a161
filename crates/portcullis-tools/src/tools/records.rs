//! Portcullis' own records: the audit trail, the change journal, and alarms.

use portcullis_core::model::Timestamp;
use portcullis_guard::{Category, Level};

use async_trait::async_trait;
use portcullis_guard::CallContext;

use crate::args::*;
use crate::catalogue::{Decl, Tool, ToolKind::*};
use crate::views::*;
use crate::work::{LocalJob, Work};
use crate::{CallError, ToolService, Trace, changes, until_cancelled};

pub(crate) struct GetActiveAlarms;

impl Tool for GetActiveAlarms {
    type Args = AlarmsArgs;
    type Output = AlarmsResult;
    const DECL: Decl = Decl {
        name: "get_active_alarms",
        title: "Active alarms",
        operation: "read_alarms",
        kind: Read,
        category: Category::Security,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Alarms with type, severity and a recommendation: managed block and grant lists edited by hand on the \
         firewall (drift), bursts of denied calls, refused high-risk changes.",
    };

    fn route(a: AlarmsArgs, _now: Timestamp) -> Result<Work<AlarmsResult>, CallError> {
        Ok(Work::local(a))
    }
}

pub(crate) struct ListPendingChanges;

impl Tool for ListPendingChanges {
    type Args = NoArgs;
    type Output = PendingChangesResult;
    const DECL: Decl = Decl {
        name: "list_pending_changes",
        title: "Changes awaiting confirmation",
        operation: "read_changes",
        kind: Read,
        category: Category::Security,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Changes applied with a confirmation window (confirm_within) that are undone automatically unless \
         confirmed, with the time left.",
    };

    fn route(a: NoArgs, _now: Timestamp) -> Result<Work<PendingChangesResult>, CallError> {
        let NoArgs {} = a;
        Ok(Work::local_now(|svc, _| svc.pending_changes()))
    }
}

pub(crate) struct ConfirmChange;

impl Tool for ConfirmChange {
    type Args = ChangeIdArgs;
    type Output = ChangeRecordView;
    const DECL: Decl = Decl {
        name: "confirm_change",
        title: "Confirm a change",
        operation: "confirm_change",
        kind: Change,
        category: Category::Security,
        level: Level::Write,
        destructive: false,
        idempotent: true,
        description: "Keep a change that was applied with a confirmation window; without it the change is undone at confirm_by.",
    };

    fn route(a: ChangeIdArgs, _now: Timestamp) -> Result<Work<ChangeRecordView>, CallError> {
        let id = change_id(&a.change_id)?;
        Ok(Work::local_now(move |svc, trace| svc.confirm_change(&id, trace)))
    }
}

pub(crate) struct RollbackChange;

impl Tool for RollbackChange {
    type Args = ChangeIdArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl {
        name: "rollback_change",
        title: "Roll back a change",
        operation: "rollback_change",
        kind: Change,
        category: Category::Security,
        level: Level::Write,
        destructive: true,
        idempotent: false,
        description: "Undo an applied change now: the undo plan restores the objects the change touched, verified by \
         read-back. dry_run: true shows the undo plan.",
    };

    fn route(a: ChangeIdArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Ok(Work::local(changes::Rollback { change_id: change_id(&a.change_id)?, dry_run: a.dry_run.unwrap_or(false) }))
    }
}

pub(crate) struct GetAuditLog;

impl Tool for GetAuditLog {
    type Args = AuditLogArgs;
    type Output = AuditLogResult;
    const DECL: Decl = Decl {
        name: "get_audit_log",
        title: "Audit log",
        operation: "read_audit",
        kind: Read,
        category: Category::System,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "The audit trail, newest first: one record per call with principal, tool, redacted arguments, \
         decision, reason, risk score and outcome. Filters: tool, principal, decision, timeframe.",
    };

    fn route(a: AuditLogArgs, _now: Timestamp) -> Result<Work<AuditLogResult>, CallError> {
        Ok(Work::local_now(move |svc, _| svc.audit_log(&a)))
    }
}

pub(crate) struct VerifyAuditLog;

impl Tool for VerifyAuditLog {
    type Args = NoArgs;
    type Output = AuditVerifyResult;
    const DECL: Decl = Decl {
        name: "verify_audit_log",
        title: "Verify the audit log",
        operation: "read_audit",
        kind: Read,
        category: Category::System,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Check the audit trail's hash chain; reports the first edited, deleted or reordered record.",
    };

    fn route(a: NoArgs, _now: Timestamp) -> Result<Work<AuditVerifyResult>, CallError> {
        let NoArgs {} = a;
        Ok(Work::local_now(|svc, _| svc.audit_verify()))
    }
}

/// `get_active_alarms`: it reads every target for drift, so it ends when the caller gives up.
#[async_trait]
impl LocalJob for AlarmsArgs {
    type Output = AlarmsResult;
    async fn run(self, svc: &ToolService, ctx: &CallContext, _trace: &mut Trace) -> Result<AlarmsResult, CallError> {
        until_cancelled(ctx, svc.active_alarms(&self)).await
    }
}
