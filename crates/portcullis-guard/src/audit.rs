//! One audit record per call, allowed or denied: into the store's hash chain and, when configured, as a JSON
//! line into `logging.audit_file`. Arguments are redacted before they are written anywhere.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use portcullis_store::{AuditRow, Store};
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
        Ok(Self { store, file })
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
        let Some(file) = &self.file else { return };
        let line = match serde_json::to_string(row) {
            Ok(l) => l,
            Err(e) => return tracing::error!("audit line not serialisable: {e}"),
        };
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = writeln!(f, "{line}") {
            // The store's chain is the record of truth; the file is a copy for log shippers.
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

    #[test]
    fn redacts_secret_keys_at_any_depth() {
        let v = redact(&json!({"ip_address": "192.0.2.1", "api_key": "abc", "nested": {"password": "p", "note": "x"}}));
        assert_eq!(v, json!({"ip_address": "192.0.2.1", "api_key": "***", "nested": {"password": "***", "note": "x"}}));
    }
}
