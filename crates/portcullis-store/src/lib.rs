//! The embedded store: one SQLite file (WAL mode) that holds the lab firewall's state and the hash-chained
//! audit trail. Every write is one transaction, so a crash leaves the state before or after, never between.

mod approvals;
mod audit;
mod journal;
mod lab;
mod managed;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

pub use approvals::{Alert, Approval};
pub use audit::{AuditFilter, AuditRow, AuditVerification, Witness};
pub use journal::{JournalEntry, JournalStatus};
pub use lab::{LabState, LabWrite};
pub use managed::ManagedEntry;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot create the data directory {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    #[error("the store was written by a newer Portcullis (schema {found}, this build knows {known})")]
    SchemaTooNew { found: i64, known: i64 },
}

pub type StoreResult<T> = Result<T, StoreError>;

const SCHEMA_VERSION: i64 = 2;

/// Steps that bring a store written by an older Portcullis to [`SCHEMA_VERSION`]: each runs once, in order, for
/// stores older than its version. [`SCHEMA`] already holds their result for new stores.
const MIGRATIONS: &[(i64, &str)] = &[
    // Who put each managed entry, so an unblock of another principal's block needs the permission to do so.
    (2, "ALTER TABLE managed_entries ADD COLUMN owner TEXT;"),
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lab_rules (
    target TEXT NOT NULL, rule_id TEXT NOT NULL, ord INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (target, rule_id));
CREATE INDEX IF NOT EXISTS lab_rules_ord ON lab_rules (target, ord);
CREATE TABLE IF NOT EXISTS lab_aliases (
    target TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (target, name));
CREATE TABLE IF NOT EXISTS lab_alias_entries (
    target TEXT NOT NULL, alias TEXT NOT NULL, value TEXT NOT NULL, detail TEXT NOT NULL,
    expires_at_ms INTEGER, created_at_ms INTEGER, PRIMARY KEY (target, alias, value));
CREATE INDEX IF NOT EXISTS lab_alias_entries_expiry ON lab_alias_entries (expires_at_ms)
    WHERE expires_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, record TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY, digest TEXT NOT NULL, principal TEXT NOT NULL, tool TEXT NOT NULL, target TEXT NOT NULL,
    arguments TEXT NOT NULL, summary TEXT NOT NULL, risk_score INTEGER NOT NULL, reason TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL, status TEXT NOT NULL, decided_by TEXT,
    decided_at_ms INTEGER);
CREATE INDEX IF NOT EXISTS approvals_lookup ON approvals (principal, digest, status);
CREATE TABLE IF NOT EXISTS changes (
    change_id TEXT PRIMARY KEY, target TEXT NOT NULL, tool TEXT NOT NULL, principal TEXT NOT NULL,
    status TEXT NOT NULL, summary TEXT NOT NULL, plan TEXT NOT NULL, inverse TEXT, created_at_ms INTEGER NOT NULL,
    confirm_by_ms INTEGER, note TEXT);
CREATE INDEX IF NOT EXISTS changes_status ON changes (status);
CREATE TABLE IF NOT EXISTS managed_entries (
    target TEXT NOT NULL, alias TEXT NOT NULL, value TEXT NOT NULL, expires_at_ms INTEGER, owner TEXT,
    PRIMARY KEY (target, alias, value));
CREATE INDEX IF NOT EXISTS managed_entries_by_expiry ON managed_entries (target, expires_at_ms)
    WHERE expires_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, kind TEXT NOT NULL, principal TEXT NOT NULL,
    message TEXT NOT NULL);
";

/// The store. Cheap to share behind an `Arc`; calls are serialised on one connection.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Directory { path: dir.display().to_string(), source })?;
        }
        Self::init(Connection::open(path)?)
    }

    pub fn open_in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> StoreResult<Self> {
        // WAL with synchronous=NORMAL: a committed transaction survives a process crash, and commits do not
        // wait for fsync, which keeps the audit write of each call in microseconds.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let found: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get::<_, String>(0))
            .ok()
            .and_then(|v| v.parse().ok());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew { found: v, known: SCHEMA_VERSION });
            }
            Some(v) => Self::migrate(&conn, v)?,
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// Runs the migrations a store at `version` has not had, and the version update, in one transaction.
    fn migrate(conn: &Connection, version: i64) -> StoreResult<()> {
        let due: Vec<&str> = MIGRATIONS.iter().filter(|(v, _)| *v > version).map(|(_, sql)| *sql).collect();
        if due.is_empty() {
            return Ok(());
        }
        let mut batch = String::from("BEGIN;");
        batch.extend(due);
        batch.push_str(&format!("UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version'; COMMIT;"));
        conn.execute_batch(&batch)?;
        Ok(())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written transaction (SQLite rolls it back),
        // so a poisoned lock is safe to take over.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn meta_get(&self, key: &str) -> StoreResult<Option<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
        let mut rows = stmt.query([key])?;
        Ok(match rows.next()? {
            Some(row) => Some(row.get(0)?),
            None => None,
        })
    }

    pub fn meta_set(&self, key: &str, value: &str) -> StoreResult<()> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_of_the_first_schema_is_migrated_and_keeps_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '1');
                 CREATE TABLE managed_entries (
                     target TEXT NOT NULL, alias TEXT NOT NULL, value TEXT NOT NULL, expires_at_ms INTEGER,
                     PRIMARY KEY (target, alias, value));
                 INSERT INTO managed_entries VALUES ('lab', 'PORTCULLIS_BLOCK', '192.0.2.1', NULL);",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.meta_get("schema_version").unwrap().as_deref(), Some("2"));
        assert_eq!(store.managed_owner("lab", "PORTCULLIS_BLOCK", "192.0.2.1").unwrap(), None);
        assert_eq!(store.managed_live("lab", chrono::Utc::now()).unwrap()["PORTCULLIS_BLOCK"], vec!["192.0.2.1"]);
        drop(store);
        // Opening again runs nothing twice.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.meta_get("schema_version").unwrap().as_deref(), Some("2"));
    }
}
