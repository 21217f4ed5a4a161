//! Pending human approvals and raised alerts. An approval is bound to the digest of the exact call it
//! authorises, is granted by a person outside the model's reach, and is consumed by one call.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::{Store, StoreResult};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub digest: String,
    pub principal: String,
    pub tool: String,
    pub target: String,
    pub arguments: serde_json::Value,
    pub summary: String,
    pub risk_score: u8,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// pending, granted, denied or used.
    pub status: String,
    pub decided_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Alert {
    pub id: i64,
    pub time: DateTime<Utc>,
    pub kind: String,
    pub principal: String,
    pub message: String,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

const APPROVAL_COLUMNS: &str = "id, digest, principal, tool, target, arguments, summary, risk_score, reason, \
                                created_at_ms, expires_at_ms, status, decided_by";

/// An `alerts` row selected as `id, time_ms, kind, principal, message`.
fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert { id: r.get(0)?, time: time(r.get(1)?), kind: r.get(2)?, principal: r.get(3)?, message: r.get(4)? })
}

fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let arguments: String = r.get(5)?;
    Ok(Approval {
        id: r.get(0)?,
        digest: r.get(1)?,
        principal: r.get(2)?,
        tool: r.get(3)?,
        target: r.get(4)?,
        arguments: serde_json::from_str(&arguments).unwrap_or(serde_json::Value::Null),
        summary: r.get(6)?,
        risk_score: r.get(7)?,
        reason: r.get(8)?,
        created_at: time(r.get(9)?),
        expires_at: time(r.get(10)?),
        status: r.get(11)?,
        decided_by: r.get(12)?,
    })
}

impl Store {
    /// Records a pending approval, or returns the live pending one for the same principal and digest.
    pub fn approval_request(&self, request: &Approval) -> StoreResult<Approval> {
        let conn = self.conn();
        let existing = conn
            .prepare_cached(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE principal = ?1 AND digest = ?2
                 AND status = 'pending' AND expires_at_ms > ?3 ORDER BY created_at_ms DESC LIMIT 1"
            ))?
            .query_row(params![request.principal, request.digest, ms(request.created_at)], approval_row)
            .optional()?;
        if let Some(found) = existing {
            return Ok(found);
        }
        conn.prepare_cached(&format!(
            "INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))?
        .execute(params![
            request.id,
            request.digest,
            request.principal,
            request.tool,
            request.target,
            serde_json::to_string(&request.arguments)?,
            request.summary,
            request.risk_score,
            request.reason,
            ms(request.created_at),
            ms(request.expires_at),
            request.status,
            request.decided_by
        ])?;
        Ok(request.clone())
    }

    /// Consumes a granted, unexpired approval for exactly this principal and digest; `None` when there is none.
    pub fn approval_consume(&self, principal: &str, digest: &str, now: DateTime<Utc>) -> StoreResult<Option<Approval>> {
        let conn = self.conn();
        let found = conn
            .prepare_cached(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE principal = ?1 AND digest = ?2
                 AND status = 'granted' AND expires_at_ms > ?3 ORDER BY created_at_ms LIMIT 1"
            ))?
            .query_row(params![principal, digest, ms(now)], approval_row)
            .optional()?;
        let Some(approval) = found else { return Ok(None) };
        // The status guard makes consumption single-use even if two calls race for it.
        let changed = conn
            .prepare_cached("UPDATE approvals SET status = 'used' WHERE id = ?1 AND status = 'granted'")?
            .execute([&approval.id])?;
        Ok((changed == 1).then_some(Approval { status: "used".into(), ..approval }))
    }

    /// A person's decision on a pending approval. Returns the approval as it now stands.
    pub fn approval_decide(
        &self,
        id: &str,
        grant: bool,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Approval>> {
        let conn = self.conn();
        let status = if grant { "granted" } else { "denied" };
        conn.prepare_cached(
            "UPDATE approvals SET status = ?2, decided_by = ?3, decided_at_ms = ?4
             WHERE id = ?1 AND status = 'pending' AND expires_at_ms > ?4",
        )?
        .execute(params![id, status, by, ms(now)])?;
        Ok(conn
            .prepare_cached(&format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"))?
            .query_row([id], approval_row)
            .optional()?)
    }

    pub fn approvals_pending(&self, now: DateTime<Utc>) -> StoreResult<Vec<Approval>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at_ms > ?1
             ORDER BY created_at_ms"
        ))?;
        let rows = stmt.query_map([ms(now)], approval_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn alert_raise(&self, kind: &str, principal: &str, message: &str, now: DateTime<Utc>) -> StoreResult<i64> {
        let conn = self.conn();
        conn.prepare_cached("INSERT INTO alerts (time_ms, kind, principal, message) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![ms(now), kind, principal, message])?;
        Ok(conn.last_insert_rowid())
    }

    /// The alerts raised after the one with id `after`, oldest first, at most `limit`: what an outbox delivers next.
    pub fn alerts_after(&self, after: i64, limit: usize) -> StoreResult<Vec<Alert>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, time_ms, kind, principal, message FROM alerts WHERE id > ?1 ORDER BY id ASC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], alert_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The id of the newest alert (0 when there is none).
    pub fn alerts_newest_id(&self) -> StoreResult<i64> {
        Ok(self.conn().query_row("SELECT COALESCE(MAX(id), 0) FROM alerts", [], |r| r.get(0))?)
    }

    pub fn alerts_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Alert>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, time_ms, kind, principal, message FROM alerts WHERE time_ms >= ?1 ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([ms(since)], alert_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn request(id: &str, digest: &str, now: DateTime<Utc>) -> Approval {
        Approval {
            id: id.into(),
            digest: digest.into(),
            principal: "bot".into(),
            tool: "block_ip_address".into(),
            target: "lab".into(),
            arguments: serde_json::json!({"ip_address": "10.0.0.0/8"}),
            summary: "block 10.0.0.0/8".into(),
            risk_score: 90,
            reason: "risk".into(),
            created_at: now,
            expires_at: now + TimeDelta::minutes(15),
            status: "pending".into(),
            decided_by: None,
        }
    }

    #[test]
    fn granted_approval_is_single_use_and_bound_to_its_digest() {
        let store = Store::open_in_memory().unwrap();
        let now = Utc::now();
        let a = store.approval_request(&request("a1", "d1", now)).unwrap();
        assert_eq!(store.approval_request(&request("a2", "d1", now)).unwrap().id, a.id, "same call reuses");
        assert!(store.approval_consume("bot", "d1", now).unwrap().is_none(), "pending is not granted");
        store.approval_decide("a1", true, "alice", now).unwrap();
        assert!(store.approval_consume("bot", "d2", now).unwrap().is_none(), "other arguments");
        assert!(store.approval_consume("eve", "d1", now).unwrap().is_none(), "other principal");
        assert!(store.approval_consume("bot", "d1", now).unwrap().is_some());
        assert!(store.approval_consume("bot", "d1", now).unwrap().is_none(), "single use");
    }

    #[test]
    fn expired_approvals_cannot_be_granted_or_used() {
        let store = Store::open_in_memory().unwrap();
        let past = Utc::now() - TimeDelta::hours(1);
        store.approval_request(&request("old", "d", past)).unwrap();
        let decided = store.approval_decide("old", true, "alice", Utc::now()).unwrap().unwrap();
        assert_eq!(decided.status, "pending");
        assert!(store.approval_consume("bot", "d", Utc::now()).unwrap().is_none());
    }
}
