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

/// What a witness holds: each record's sequence number and hash (several lines for one record are
/// tolerated when they agree: a reconcile racing a writer may repeat one), and the lines it could not read.
#[derive(Debug, Clone, Default)]
pub struct Witness {
    pub hashes: std::collections::BTreeMap<i64, Vec<String>>,
    /// 1-based numbers of lines that are not a record's `{seq, hash}`.
    pub unreadable: Vec<usize>,
}

impl Witness {
    /// Reads JSON lines carrying `seq` and `hash` (the audit file's lines).
    pub fn parse(text: &str) -> Self {
        let mut w = Witness::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| Some((v.get("seq")?.as_i64()?, v.get("hash")?.as_str()?.to_owned())));
            match parsed {
                Some((seq, hash)) => w.hashes.entry(seq).or_default().push(hash),
                None => w.unreadable.push(i + 1),
            }
        }
        w
    }

    /// The newest sequence number the witness holds.
    pub fn head(&self) -> i64 {
        self.hashes.keys().next_back().copied().unwrap_or(0)
    }
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

    /// Every record after `seq`, oldest first (what a witness behind the store is missing).
    pub fn audit_after(&self, seq: i64) -> StoreResult<Vec<AuditRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT seq, record, prev_hash, hash FROM audit WHERE seq > ?1 ORDER BY seq")?;
        let rows =
            stmt.query_map([seq], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)))?;
        rows.map(|row| {
            let (seq, record, prev_hash, hash) = row?;
            Ok(AuditRow { seq, record: serde_json::from_str(&record)?, prev_hash, hash })
        })
        .collect()
    }

    /// Checks the chain, then cross-checks it with a witness (the sequence number and hash of every record,
    /// kept outside the table) and reports the first sequence number where they disagree: a record the
    /// witness holds and the table does not (a cut tail, a deleted row), a hash that differs (an edited or
    /// swapped row whose chain was rewritten), or a record the witness lacks.
    pub fn audit_verify_witnessed(&self, witness: &Witness) -> StoreResult<AuditVerification> {
        let chain = self.audit_verify()?;
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT seq, hash FROM audit ORDER BY seq")?;
        let rows: Vec<(i64, String)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        let records = rows.len() as i64;
        let mut first: Option<(i64, String)> = None;
        let mut note = |seq: i64, problem: String| {
            if first.as_ref().is_none_or(|(s, _)| seq < *s) {
                first = Some((seq, problem));
            }
        };
        for (seq, hash) in &rows {
            match witness.hashes.get(seq) {
                Some(w) if w.iter().all(|h| h == hash) => {}
                Some(_) => note(*seq, format!("record {seq} differs from the audit witness")),
                None => note(*seq, format!("record {seq} is not in the audit witness")),
            }
        }
        let db_seqs: std::collections::HashSet<i64> = rows.iter().map(|(s, _)| *s).collect();
        let head = rows.last().map_or(0, |(s, _)| *s);
        for seq in witness.hashes.keys() {
            if !db_seqs.contains(seq) {
                if *seq > head {
                    note(
                        *seq,
                        format!(
                            "record {seq} is in the audit witness but missing from the store (the tail was cut after record {head})"
                        ),
                    );
                } else {
                    note(*seq, format!("record {seq} is in the audit witness but missing from the store"));
                }
            }
        }
        if let Some(line) = witness.unreadable.first() {
            note(i64::MAX, format!("line {line} of the audit witness is unreadable"));
        }
        // The chain's own break and the witness's first disagreement: the earlier is reported.
        let from_chain = chain.broken_at.map(|s| (s, chain.problem.clone().unwrap_or_default()));
        let worst = match (from_chain, first) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        Ok(match worst {
            None => AuditVerification { ok: true, records, broken_at: None, problem: None },
            Some((seq, problem)) => AuditVerification {
                ok: false,
                records,
                broken_at: (seq != i64::MAX).then_some(seq),
                problem: Some(problem),
            },
        })
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

    fn witness_of(store: &Store) -> Witness {
        let text: String =
            store.audit_after(0).unwrap().iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        Witness::parse(&text)
    }

    #[test]
    fn witnessed_clean_chain_verifies() {
        let store = store_with(5);
        let w = witness_of(&store);
        let v = store.audit_verify_witnessed(&w).unwrap();
        assert_eq!(v, AuditVerification { ok: true, records: 5, broken_at: None, problem: None });
    }

    #[test]
    fn witness_reports_cut_tail_edit_deletion_and_swap_with_sequence() {
        // Cut tail: the chain alone still verifies; the witness does not.
        let store = store_with(5);
        let w = witness_of(&store);
        store.execute_raw_for_tests("DELETE FROM audit WHERE seq >= 4").unwrap();
        assert!(store.audit_verify().unwrap().ok);
        let v = store.audit_verify_witnessed(&w).unwrap();
        assert!(!v.ok);
        assert_eq!(v.broken_at, Some(4), "{v:?}");
        assert!(v.problem.unwrap().contains("tail was cut"));

        // Edited row with its chain rewritten from there on: the chain verifies, the witness disagrees.
        let store = store_with(5);
        let w = witness_of(&store);
        let rows = store.audit_after(0).unwrap();
        let mut prev = rows[1].hash.clone();
        for row in &rows[2..] {
            let mut record = row.record.clone();
            if row.seq == 3 {
                record["tool"] = serde_json::json!("edited");
            }
            let json = serde_json::to_string(&record).unwrap();
            let hash = chain_hash(&prev, row.seq, &json);
            store
                .execute_raw_for_tests(&format!(
                    "UPDATE audit SET record = '{json}', prev_hash = '{prev}', hash = '{hash}' WHERE seq = {}",
                    row.seq
                ))
                .unwrap();
            prev = hash;
        }
        assert!(store.audit_verify().unwrap().ok);
        assert_eq!(store.audit_verify_witnessed(&w).unwrap().broken_at, Some(3));

        // Deleted middle row and swapped pair: reported at their sequence number with the witness too.
        let store = store_with(5);
        let w = witness_of(&store);
        store.execute_raw_for_tests("DELETE FROM audit WHERE seq = 2").unwrap();
        assert_eq!(store.audit_verify_witnessed(&w).unwrap().broken_at, Some(2));
        let store = store_with(5);
        let w = witness_of(&store);
        for sql in [
            "UPDATE audit SET seq = -2 WHERE seq = 2",
            "UPDATE audit SET seq = 2 WHERE seq = 4",
            "UPDATE audit SET seq = 4 WHERE seq = -2",
        ] {
            store.execute_raw_for_tests(sql).unwrap();
        }
        assert_eq!(store.audit_verify_witnessed(&w).unwrap().broken_at, Some(2));
    }

    #[test]
    fn witness_behind_the_store_is_reported_until_reconciled() {
        let store = store_with(3);
        let w = witness_of(&store);
        store.audit_append(&json!({"tool": "x"})).unwrap();
        let v = store.audit_verify_witnessed(&w).unwrap();
        assert_eq!(v.broken_at, Some(4));
        assert_eq!(w.head(), 3);
        assert_eq!(store.audit_after(w.head()).unwrap().len(), 1);
    }
}
