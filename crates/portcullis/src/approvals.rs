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
        // Audited as a refusal; the approval stays pending for someone else.
        let why = "policy_denied: the principal who asked cannot approve (approvals.distinct_approver)";
        record_approve(app, approval, &approver, &by, grant, Err(why))?;
        bail!(
            "four eyes (approvals.distinct_approver): {} asked for this change and cannot approve it; another \
             principal must (PORTCULLIS_PRINCIPAL=NAME portcullis approve {id})",
            approver.name
        );
    }
    let decided = app.store.approval_decide(id, grant, &by, Utc::now())?.context("approval vanished")?;
    record_approve(app, &decided, &approver, &by, grant, Ok(&decided.status))?;
    println!("approval {id}: {}", decided.status);
    Ok(if decided.status == "granted" || decided.status == "denied" { 0 } else { 1 })
}

/// The audit record of a decision on `approval` at the CLI: `Ok(status)` when it was taken, `Err(reason)` when
/// it was refused. It names the approver (principal and OS user) and, in its arguments, the principal who asked.
fn record_approve(
    app: &App,
    approval: &portcullis_store::Approval,
    approver: &portcullis_guard::Principal,
    by: &str,
    grant: bool,
    outcome: Result<&str, &str>,
) -> anyhow::Result<()> {
    let record = AuditRecord {
        time: Utc::now(),
        context: CallContext::new(approver.clone(), Transport::Cli, Some(by.to_string())),
        target: Some(approval.target.clone()),
        tool: "approve".into(),
        operation: "approve".into(),
        arguments: json!({"approval_id": approval.id, "grant": grant, "for_tool": approval.tool,
                          "for_principal": approval.principal}),
        decision: if outcome.is_ok() { Decision::Allowed } else { Decision::Denied },
        reason: outcome.err().map(String::from),
        risk_score: approval.risk_score,
        change_id: None,
        approval_id: Some(approval.id.clone()),
        outcome: outcome.map_or("policy_denied".into(), String::from),
        duration_us: 0,
    };
    app.service.guard().auditor.record(&record).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(())
}
