//! The audit trail: one record per tool call, each chained to the previous by SHA-256 so that an edited,
//! deleted or reordered record is detected.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Store, StoreResult};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A stored audit record with its place in the chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub record: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// What `audit_query` selects; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tool: Option<String>,
    pub principal: Option<String>,
    pub decision: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: usize,
}

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditVerification {
    pub ok: bool,
    pub records: i64,
    /// The first sequence number at which the chain breaks, and why.
    pub broken_at: Option<i64>,
    pub problem: Option<String>,
}

fn append_in_transaction(conn: &rusqlite::Connection, record_json: &str) -> StoreResult<(i64, String, String)> {
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let hash = chain_hash(&prev_hash, seq, record_json);
    conn.prepare_cached("INSERT INTO audit (seq, record, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![seq, record_json, prev_hash, hash])?;
    Ok((seq, prev_hash, hash))
}

fn chain_hash(prev_hash: &str, seq: i64, record_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(seq.to_le_bytes());
    h.update(record_json.as_bytes());
    hex::encode(h.finalize())
}

impl Store {
    /// Appends a record to the chain; returns its sequence number and hash.
    pub fn audit_append(&self, record: &serde_json::Value) -> StoreResult<AuditRow> {
        let record_json = serde_json::to_string(record)?;
        let conn = self.conn();
        // IMMEDIATE takes the write lock before reading the chain's head, so that two processes appending at
        // once (the CLI beside a running server) cannot both extend the same record. Statements are cached:
        // this runs on every tool call.
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let appended = append_in_transaction(&conn, &record_json);
        let end = if appended.is_ok() { "COMMIT" } else { "ROLLBACK" };
        conn.prepare_cached(end)?.execute([])?;
        let (seq, prev_hash, hash) = appended?;
        Ok(AuditRow { seq, record: record.clone(), prev_hash, hash })
    }

    /// The newest `limit` records, newest first.
    pub fn audit_tail(&self, limit: usize) -> StoreResult<Vec<AuditRow>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT seq, record, prev_hash, hash FROM audit ORDER BY seq DESC LIMIT ?1")?;
        let rows = stmt
            .query_map([limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)))?;
        rows.map(|row| {
            let (seq, record, prev_hash, hash) = row?;
            Ok(AuditRow { seq, record: serde_json::from_str(&record)?, prev_hash, hash })
        })
        .collect()
    }

    /// Records matching a filter, newest first.
    pub fn audit_query(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, record, prev_hash, hash FROM audit
             WHERE (?1 IS NULL OR json_extract(record, '$.tool') = ?1)
               AND (?2 IS NULL OR json_extract(record, '$.principal.name') = ?2)
               AND (?3 IS NULL OR json_extract(record, '$.decision') = ?3)
               AND (?4 IS NULL OR json_extract(record, '$.time') >= ?4)
             ORDER BY seq DESC LIMIT ?5",
        )?;
        let since = filter.since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let rows = stmt
            .query_map(params![filter.tool, filter.principal, filter.decision, since, filter.limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))
            })?;
        rows.map(|row| {
            let (seq, record, prev_hash, hash) = row?;
            Ok(AuditRow { seq, record: serde_json::from_str(&record)?, prev_hash, hash })
        })
        .collect()
    }

    /// Walks the chain from the first record and reports the first break.
    pub fn audit_verify(&self) -> StoreResult<AuditVerification> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT seq, record, prev_hash, hash FROM audit ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut expected_prev = GENESIS.to_string();
        let mut expected_seq = 1i64;
        let mut count = 0i64;
        let broken = |seq: i64, count: i64, problem: String| AuditVerification {
            ok: false,
            records: count,
            broken_at: Some(seq),
            problem: Some(problem),
        };
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let record: String = row.get(1)?;
            let prev_hash: String = row.get(2)?;
            let hash: String = row.get(3)?;
            count += 1;
            if seq != expected_seq {
                return Ok(broken(
                    expected_seq,
                    count,
                    format!("record {expected_seq} is missing (next present is {seq})"),
                ));
            }
            if prev_hash != expected_prev {
                return Ok(broken(seq, count, format!("record {seq} does not follow record {}", seq - 1)));
            }
            if chain_hash(&prev_hash, seq, &record) != hash {
                return Ok(broken(seq, count, format!("record {seq} was modified after it was written")));
            }
            expected_prev = hash;
            expected_seq += 1;
        }
        Ok(AuditVerification { ok: true, records: count, broken_at: None, problem: None })
    }

    /// Test support for tamper detection: runs raw SQL against the store.
    #[doc(hidden)]
    pub fn execute_raw_for_tests(&self, sql: &str) -> StoreResult<usize> {
        Ok(self.conn().execute(sql, [])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with(n: i64) -> Store {
        let store = Store::open_in_memory().unwrap();
        for i in 0..n {
            store.audit_append(&json!({"tool": "get_firewall_rules", "i": i})).unwrap();
        }
        store
    }

    #[test]
    fn intact_chain_verifies() {
        let v = store_with(5).audit_verify().unwrap();
        assert!(v.ok);
        assert_eq!(v.records, 5);
    }

    #[test]
    fn edit_delete_and_swap_are_detected_with_sequence() {
        let store = store_with(5);
        store
            .execute_raw_for_tests("UPDATE audit SET record = replace(record, 'rules', 'RULES') WHERE seq = 3")
            .unwrap();
        assert_eq!(store.audit_verify().unwrap().broken_at, Some(3));

        let store = store_with(5);
        store.execute_raw_for_tests("DELETE FROM audit WHERE seq = 2").unwrap();
        assert_eq!(store.audit_verify().unwrap().broken_at, Some(2));

        let store = store_with(5);
        for sql in [
            "UPDATE audit SET seq = -2 WHERE seq = 2",
            "UPDATE audit SET seq = 2 WHERE seq = 4",
            "UPDATE audit SET seq = 4 WHERE seq = -2",
        ] {
            store.execute_raw_for_tests(sql).unwrap();
        }
        let v = store.audit_verify().unwrap();
        assert!(!v.ok);
        assert_eq!(v.broken_at, Some(2));
    }
}
