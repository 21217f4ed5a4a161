//! The change journal: the intent of a change is written before the firewall is touched, then its outcome,
//! its undo plan and, for changes applied with a confirmation window, the deadline. After a crash the next
//! start reads it to finish or undo what was in flight and to revert overdue unconfirmed changes.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::{Store, StoreResult};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JournalEntry {
    pub change_id: String,
    pub target: String,
    pub tool: String,
    pub principal: String,
    /// applying, applied, pending_confirmation, confirmed, rolled_back, rollback_failed, failed.
    pub status: String,
    pub summary: String,
    pub plan: serde_json::Value,
    pub inverse: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub confirm_by: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

const COLUMNS: &str = "change_id, target, tool, principal, status, summary, plan, inverse, created_at_ms, \
                       confirm_by_ms, note";

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let time = |ms: Option<i64>| ms.and_then(DateTime::<Utc>::from_timestamp_millis);
    Ok(JournalEntry {
        change_id: r.get(0)?,
        target: r.get(1)?,
        tool: r.get(2)?,
        principal: r.get(3)?,
        status: r.get(4)?,
        summary: r.get(5)?,
        plan: json(r.get(6)?).unwrap_or(serde_json::Value::Null),
        inverse: json(r.get(7)?),
        created_at: time(r.get(8)?).unwrap_or_default(),
        confirm_by: time(r.get(9)?),
        note: r.get(10)?,
    })
}

impl Store {
    /// Records the intent of a change before the firewall is touched.
    pub fn journal_begin(&self, e: &JournalEntry) -> StoreResult<()> {
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO changes ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                e.change_id,
                e.target,
                e.tool,
                e.principal,
                e.status,
                e.summary,
                serde_json::to_string(&e.plan)?,
                e.inverse.as_ref().map(serde_json::to_string).transpose()?,
                e.created_at.timestamp_millis(),
                e.confirm_by.map(|t| t.timestamp_millis()),
                e.note
            ])?;
        Ok(())
    }

    /// Moves a change to a new status; `inverse` and `note` are kept when `None`.
    pub fn journal_update(
        &self,
        change_id: &str,
        status: &str,
        inverse: Option<&serde_json::Value>,
        note: Option<&str>,
    ) -> StoreResult<()> {
        self.conn()
            .prepare_cached(
                "UPDATE changes SET status = ?2, inverse = COALESCE(?3, inverse), note = COALESCE(?4, note)
                 WHERE change_id = ?1",
            )?
            .execute(params![change_id, status, inverse.map(serde_json::to_string).transpose()?, note])?;
        Ok(())
    }

    /// Moves a change from one of `from` to `to`, atomically; false when another process got there first.
    pub fn journal_claim(&self, change_id: &str, from: &[&str], to: &str) -> StoreResult<bool> {
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE changes SET status = ?3 WHERE change_id = ?1 AND status IN (SELECT value FROM json_each(?2))",
            )?
            .execute(params![change_id, serde_json::to_string(from)?, to])?;
        Ok(changed == 1)
    }

    pub fn journal_get(&self, change_id: &str) -> StoreResult<Option<JournalEntry>> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM changes WHERE change_id = ?1"))?
            .query_row([change_id], entry_row)
            .optional()?)
    }

    /// Changes in one of the given statuses, oldest first.
    pub fn journal_with_status(&self, statuses: &[&str]) -> StoreResult<Vec<JournalEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM changes WHERE status IN (SELECT value FROM json_each(?1)) ORDER BY created_at_ms"
        ))?;
        let rows = stmt.query_map([serde_json::to_string(statuses)?], entry_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trip_and_status_queries() {
        let store = Store::open_in_memory().unwrap();
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
        let entry = JournalEntry {
            change_id: "c1".into(),
            target: "lab".into(),
            tool: "block_ip_address".into(),
            principal: "ops".into(),
            status: "applying".into(),
            summary: "block".into(),
            plan: serde_json::json!({"operations": []}),
            inverse: None,
            created_at: now,
            confirm_by: Some(now),
            note: None,
        };
        store.journal_begin(&entry).unwrap();
        assert_eq!(store.journal_with_status(&["applying"]).unwrap(), vec![entry.clone()]);
        store.journal_update("c1", "pending_confirmation", Some(&serde_json::json!({"operations": []})), None).unwrap();
        assert!(store.journal_with_status(&["applying"]).unwrap().is_empty());
        let got = store.journal_get("c1").unwrap().unwrap();
        assert_eq!(got.status, "pending_confirmation");
        assert!(got.inverse.is_some());
    }
}
