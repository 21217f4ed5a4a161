//! `portcullis approve ID` and `portcullis approvals`: a person decides on pending approvals at a terminal,
//! out of the assistant's reach. Each decision is audited.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use chrono::Utc;
use portcullis_guard::{AuditRecord, CallContext, Decision, Transport};
use serde_json::json;

use crate::app::App;

fn person() -> String {
    std::env::var("USER").map(|u| format!("cli:{u}")).unwrap_or_else(|_| "cli:unknown".into())
}

pub fn list(app: &App) -> anyhow::Result<i32> {
    let pending = app.store.approvals_pending(Utc::now())?;
    if pending.is_empty() {
        println!("no pending approvals");
    }
    for a in pending {
        println!(
            "{}  {} asks {} on {} (risk {}), until {}\n    {}\n    why: {}\n    arguments: {}",
            a.id,
            a.principal,
            a.tool,
            a.target,
            a.risk_score,
            a.expires_at.to_rfc3339(),
            a.summary,
            a.reason,
            a.arguments
        );
    }
    Ok(0)
}

pub fn decide(app: &App, id: &str, grant: bool, yes: bool) -> anyhow::Result<i32> {
    let pending = app.store.approvals_pending(Utc::now())?;
    let Some(approval) = pending.iter().find(|a| a.id == id) else {
        bail!(
            "no pending approval {id} (it may have expired, been decided, or never existed); see `portcullis approvals`"
        );
    };
    println!(
        "{} asks to run {} on {} (risk {}):\n  {}\n  arguments: {}",
        approval.principal, approval.tool, approval.target, approval.risk_score, approval.summary, approval.arguments
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to decide without a person at a terminal; pass --yes to confirm non-interactively");
        }
        print!("{} this call? [y/N] ", if grant { "Approve" } else { "Deny" });
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).context("reading the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing decided");
            return Ok(1);
        }
    }
    let by = person();
    let approver = app.local_principal();
    if grant && app.config.approvals.distinct_approver && approver.name == approval.principal {
        refuse_own_approval(app, approval, &approver, &by)?;
        bail!(
            "four eyes (approvals.distinct_approver): {} asked for this change and cannot approve it; another \
             principal must (PORTCULLIS_PRINCIPAL=NAME portcullis approve {id})",
            approver.name
        );
    }
    let decided = app.store.approval_decide(id, grant, &by, Utc::now())?.context("approval vanished")?;
    let ctx = CallContext::new(approver, Transport::Cli, Some(by.clone()));
    let record = AuditRecord {
        time: Utc::now(),
        context: ctx,
        target: Some(decided.target.clone()),
        tool: "approve".into(),
        operation: "approve".into(),
        arguments: json!({"approval_id": id, "grant": grant, "for_tool": decided.tool, "for_principal": decided.principal}),
        decision: Decision::Allowed,
        reason: None,
        risk_score: decided.risk_score,
        change_id: None,
        approval_id: Some(id.to_string()),
        outcome: decided.status.clone(),
        duration_us: 0,
    };
    app.service.guard().auditor.record(&record).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    println!("approval {id}: {}", decided.status);
    Ok(if decided.status == "granted" || decided.status == "denied" { 0 } else { 1 })
}

/// Audits a refused attempt to approve one's own change; the approval stays pending for someone else.
fn refuse_own_approval(
    app: &App,
    approval: &portcullis_store::Approval,
    approver: &portcullis_guard::Principal,
    by: &str,
) -> anyhow::Result<()> {
    let record = AuditRecord {
        time: Utc::now(),
        context: CallContext::new(approver.clone(), Transport::Cli, Some(by.to_string())),
        target: Some(approval.target.clone()),
        tool: "approve".into(),
        operation: "approve".into(),
        arguments: json!({"approval_id": approval.id, "grant": true, "for_tool": approval.tool,
                          "for_principal": approval.principal}),
        decision: Decision::Denied,
        reason: Some("policy_denied: the principal who asked cannot approve (approvals.distinct_approver)".into()),
        risk_score: approval.risk_score,
        change_id: None,
        approval_id: Some(approval.id.clone()),
        outcome: "policy_denied".into(),
        duration_us: 0,
    };
    app.service.guard().auditor.record(&record).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(())
}
