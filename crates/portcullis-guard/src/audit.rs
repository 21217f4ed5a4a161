//! One audit record per call, allowed or denied: into the store's hash chain and, when configured, as a JSON
//! line into `logging.audit_file` (by default `<data_dir>/audit.jsonl`), the witness of the chain's head that
//! `verify` cross-checks and `reconcile` brings up to date after a crash. Arguments are redacted before they are written anywhere.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use portcullis_store::{AuditRow, AuditVerification, Store, Witness};
use serde::Serialize;
use serde_json::Value;

use crate::{CallContext, CallError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allowed,
    Denied,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub time: DateTime<Utc>,
    #[serde(flatten)]
    pub context: CallContext,
    pub target: Option<String>,
    pub tool: String,
    pub operation: String,
    pub arguments: Value,
    pub decision: Decision,
    /// Why the call was denied or failed (the error code and message), or `None` when it succeeded.
    pub reason: Option<String>,
    pub risk_score: u8,
    pub change_id: Option<String>,
    /// The human approval the call consumed or is waiting for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// `ok`, `dry_run`, or the error code the call ended with.
    pub outcome: String,
    pub duration_us: u64,
}

pub struct Auditor {
    store: Arc<Store>,
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
}

/// What reconciling the witness with the store at start found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Records the store had and the witness lacked (a crash between the commit and the file write), appended.
    pub appended: Vec<i64>,
}

impl Auditor {
    pub fn new(store: Arc<Store>, audit_file: Option<&Path>) -> Result<Self, CallError> {
        let file = match audit_file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        CallError::internal(format!("cannot create audit directory {}: {e}", dir.display()))
                    })?;
                }
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| CallError::internal(format!("cannot open audit_file {}: {e}", path.display())))?;
                Some(Mutex::new(f))
            }
            None => None,
        };
        Ok(Self { store, file, path: audit_file.map(Path::to_path_buf) })
    }

    /// The witness file, if there is one.
    pub fn witness_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn read_witness(&self) -> Result<Option<(Witness, bool)>, CallError> {
        let Some(path) = &self.path else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| CallError::internal(format!("cannot read audit_file {}: {e}", path.display())))?;
        let ends_cleanly = text.is_empty() || text.ends_with('\n');
        Ok(Some((Witness::parse(&text), ends_cleanly)))
    }

    /// Brings the witness up to the store after a crash between the store's commit and the file write: the
    /// records after the witness's head are appended, but only when the store's chain verifies and agrees with
    /// the witness up to that head. A witness ahead of the store (rows deleted) is never reconciled away: that
    /// is what `verify` reports. Says so at WARN and as an alert.
    pub fn reconcile(&self) -> Result<Reconciled, CallError> {
        let internal = |e: portcullis_store::StoreError| CallError::internal(format!("audit reconcile: {e}"));
        let Some((witness, ends_cleanly)) = self.read_witness()? else { return Ok(Reconciled { appended: vec![] }) };
        let missing = self.store.audit_after(witness.head()).map_err(internal)?;
        if missing.is_empty() {
            return Ok(Reconciled { appended: vec![] });
        }
        // The part both hold must agree, or appending would paper over tampering.
        let mut upto = witness.clone();
        for row in &missing {
            upto.hashes.insert(row.seq, vec![row.hash.clone()]);
        }
        let check = self.store.audit_verify_witnessed(&upto).map_err(internal)?;
        if !check.ok {
            tracing::error!(
                "audit witness not reconciled: the store and the witness disagree at record {:?}: {}",
                check.broken_at,
                check.problem.unwrap_or_default()
            );
            return Ok(Reconciled { appended: vec![] });
        }
        if !ends_cleanly {
            self.write_raw("\n");
        }
        for row in &missing {
            self.write_line(row);
        }
        let appended: Vec<i64> = missing.iter().map(|r| r.seq).collect();
        let message = format!(
            "audit witness was behind the store (a crash between the commit and the file write?): appended records {}..={}",
            appended[0],
            appended[appended.len() - 1]
        );
        tracing::warn!("{message}");
        if let Err(e) = self.store.alert_raise("audit_witness_reconciled", "portcullis", &message, Utc::now()) {
            tracing::error!("cannot raise the audit reconcile alert: {e}");
        }
        Ok(Reconciled { appended })
    }

    /// Verifies the chain and, when there is a witness, cross-checks it; says when there is none.
    pub fn verify(&self) -> Result<AuditVerification, CallError> {
        let internal = |e: portcullis_store::StoreError| CallError::internal(format!("audit verify: {e}"));
        match self.read_witness()? {
            Some((witness, _)) => self.store.audit_verify_witnessed(&witness).map_err(internal),
            None => {
                let mut v = self.store.audit_verify().map_err(internal)?;
                if v.ok {
                    v.problem = Some("no audit witness configured: a cut tail cannot be detected".into());
                }
                Ok(v)
            }
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Appends the record to the chain and the audit file; returns its sequence number.
    pub fn record(&self, record: &AuditRecord) -> Result<i64, CallError> {
        let value = serde_json::to_value(record).map_err(|e| CallError::internal(e.to_string()))?;
        let row =
            self.store.audit_append(&value).map_err(|e| CallError::internal(format!("audit write failed: {e}")))?;
        self.write_line(&row);
        Ok(row.seq)
    }

    fn write_line(&self, row: &AuditRow) {
        let line = match serde_json::to_string(row) {
            Ok(l) => l,
            Err(e) => return tracing::error!("audit line not serialisable: {e}"),
        };
        self.write_raw(&(line + "\n"));
    }

    /// One `write` of a whole line on an `O_APPEND` file, so lines of several processes never interleave.
    fn write_raw(&self, text: &str) {
        let Some(file) = &self.file else { return };
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(text.as_bytes()) {
            // The store's chain is the record; the next start reconciles a witness left behind.
            tracing::error!("cannot append to audit_file: {e}");
        }
    }
}

const SECRET_KEYS: &[&str] = &["password", "secret", "token", "api_key", "apikey", "key", "authorization", "jwt"];

/// Replaces the values of secret-looking keys, at any depth, with `***`.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let secret = SECRET_KEYS.iter().any(|s| lower == *s || lower.ends_with(&format!("_{s}")));
                    (k.clone(), if secret { Value::String("***".into()) } else { redact(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn auditor_with(dir: &Path, n: usize) -> (Arc<Store>, Auditor) {
        let store = Arc::new(Store::open(&dir.join("s.sqlite")).unwrap());
        let auditor = Auditor::new(store.clone(), Some(&dir.join("audit.jsonl"))).unwrap();
        for i in 0..n {
            let row = store.audit_append(&json!({"tool": "t", "i": i})).unwrap();
            auditor.write_line(&row);
        }
        (store, auditor)
    }

    #[test]
    fn crash_between_commit_and_file_write_is_reconciled_at_start_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let (store, auditor) = auditor_with(dir.path(), 3);
        // The commit happened, the file write did not.
        store.audit_append(&json!({"tool": "lost"})).unwrap();
        store.audit_append(&json!({"tool": "lost2"})).unwrap();
        assert_eq!(auditor.verify().unwrap().broken_at, Some(4));
        drop(auditor);
        let auditor = Auditor::new(store.clone(), Some(&dir.path().join("audit.jsonl"))).unwrap();
        assert_eq!(auditor.reconcile().unwrap(), Reconciled { appended: vec![4, 5] });
        assert!(auditor.verify().unwrap().ok);
        let alerts = store.alerts_since(Utc::now() - chrono::Duration::minutes(1)).unwrap();
        assert!(alerts.iter().any(|a| a.kind == "audit_witness_reconciled"), "{alerts:?}");
        // A second start has nothing to do.
        assert_eq!(auditor.reconcile().unwrap(), Reconciled { appended: vec![] });
    }

    #[test]
    fn a_witness_ahead_of_the_store_is_never_reconciled_away() {
        let dir = tempfile::tempdir().unwrap();
        let (store, auditor) = auditor_with(dir.path(), 5);
        store.execute_raw_for_tests("DELETE FROM audit WHERE seq >= 4").unwrap();
        assert_eq!(auditor.reconcile().unwrap(), Reconciled { appended: vec![] });
        let v = auditor.verify().unwrap();
        assert!(!v.ok);
        assert_eq!(v.broken_at, Some(4));
        // New records after the cut take the cut numbers again; they disagree with the witness there.
        let row = store.audit_append(&json!({"tool": "after"})).unwrap();
        auditor.write_line(&row);
        assert_eq!(auditor.verify().unwrap().broken_at, Some(4));
    }

    #[test]
    fn redacts_secret_keys_at_any_depth() {
        let v = redact(&json!({"ip_address": "192.0.2.1", "api_key": "abc", "nested": {"password": "p", "note": "x"}}));
        assert_eq!(v, json!({"ip_address": "192.0.2.1", "api_key": "***", "nested": {"password": "***", "note": "x"}}));
    }
}
