//! The change journal: the intent of a change is written before the firewall is touched, then its outcome,
//! its undo plan and, for changes applied with a confirmation window, the deadline. After a crash the next
//! start reads it to finish or undo what was in flight and to revert overdue unconfirmed changes.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::{Store, StoreResult};

/// Where a journalled change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalStatus {
    /// Written before the firewall is touched; still there after a crash, it is settled at the next start.
    Applying,
    Applied,
    /// Applied with a confirmation window: undone at `confirm_by` unless confirmed.
    PendingConfirmation,
    Confirmed,
    /// Claimed by one process for its undo.
    RollingBack,
    RolledBack,
    RollbackFailed,
    /// Not applied.
    Failed,
}

impl JournalStatus {
    pub const ALL: [Self; 8] = [
        Self::Applying,
        Self::Applied,
        Self::PendingConfirmation,
        Self::Confirmed,
        Self::RollingBack,
        Self::RolledBack,
        Self::RollbackFailed,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applying => "applying",
            Self::Applied => "applied",
            Self::PendingConfirmation => "pending_confirmation",
            Self::Confirmed => "confirmed",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
            Self::RollbackFailed => "rollback_failed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for JournalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn status_list(statuses: &[JournalStatus]) -> String {
    serde_json::Value::from(statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>()).to_string()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JournalEntry {
    pub change_id: String,
    pub target: String,
    pub tool: String,
    pub principal: String,
    pub status: JournalStatus,
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
        status: {
            let text: String = r.get(4)?;
            JournalStatus::parse(&text)
                .ok_or_else(|| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, text.into()))?
        },
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
                e.status.as_str(),
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
        status: JournalStatus,
        inverse: Option<&serde_json::Value>,
        note: Option<&str>,
    ) -> StoreResult<()> {
        self.conn()
            .prepare_cached(
                "UPDATE changes SET status = ?2, inverse = COALESCE(?3, inverse), note = COALESCE(?4, note)
                 WHERE change_id = ?1",
            )?
            .execute(params![change_id, status.as_str(), inverse.map(serde_json::to_string).transpose()?, note])?;
        Ok(())
    }

    /// Moves a change from one of `from` to `to`, atomically; false when another process got there first.
    pub fn journal_claim(&self, change_id: &str, from: &[JournalStatus], to: JournalStatus) -> StoreResult<bool> {
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE changes SET status = ?3 WHERE change_id = ?1 AND status IN (SELECT value FROM json_each(?2))",
            )?
            .execute(params![change_id, status_list(from), to.as_str()])?;
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
    pub fn journal_with_status(&self, statuses: &[JournalStatus]) -> StoreResult<Vec<JournalEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM changes WHERE status IN (SELECT value FROM json_each(?1)) ORDER BY created_at_ms"
        ))?;
        let rows = stmt.query_map([status_list(statuses)], entry_row)?;
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
            status: JournalStatus::Applying,
            summary: "block".into(),
            plan: serde_json::json!({"operations": []}),
            inverse: None,
            created_at: now,
            confirm_by: Some(now),
            note: None,
        };
        store.journal_begin(&entry).unwrap();
        assert_eq!(store.journal_with_status(&[JournalStatus::Applying]).unwrap(), vec![entry.clone()]);
        store
            .journal_update(
                "c1",
                JournalStatus::PendingConfirmation,
                Some(&serde_json::json!({"operations": []})),
                None,
            )
            .unwrap();
        assert!(store.journal_with_status(&[JournalStatus::Applying]).unwrap().is_empty());
        let got = store.journal_get("c1").unwrap().unwrap();
        assert_eq!(got.status, JournalStatus::PendingConfirmation);
        assert!(got.inverse.is_some());
        assert!(store.journal_claim("c1", &[JournalStatus::PendingConfirmation], JournalStatus::RollingBack).unwrap());
        assert!(!store.journal_claim("c1", &[JournalStatus::PendingConfirmation], JournalStatus::RollingBack).unwrap());
    }

    #[test]
    fn every_status_reads_back_as_written() {
        for status in JournalStatus::ALL {
            assert_eq!(JournalStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(JournalStatus::parse("applyin"), None);
    }
}
