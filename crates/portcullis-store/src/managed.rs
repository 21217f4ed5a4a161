//! Portcullis' own record of the entries it placed in managed aliases (blocks, grants), kept apart from the
//! firewall so that an entry removed or added there by hand shows up as drift.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::{Store, StoreResult};

/// One recorded entry: alias and value, with its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    pub alias: String,
    pub value: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records entries put into and removed from managed aliases by one applied change, in one transaction.
    pub fn managed_record(&self, target: &str, put: &[ManagedEntry], removed: &[(String, String)]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO managed_entries (target, alias, value, expires_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(target, alias, value) DO UPDATE SET expires_at_ms = excluded.expires_at_ms",
            )?;
            for e in put {
                insert.execute(params![target, e.alias, e.value, e.expires_at.map(|t| t.timestamp_millis())])?;
            }
            let mut delete =
                tx.prepare_cached("DELETE FROM managed_entries WHERE target = ?1 AND alias = ?2 AND value = ?3")?;
            for (alias, value) in removed {
                delete.execute(params![target, alias, value])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The recorded entries of a target that are still live at `now`, by alias.
    pub fn managed_live(&self, target: &str, now: DateTime<Utc>) -> StoreResult<HashMap<String, Vec<String>>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT alias, value FROM managed_entries WHERE target = ?1
             AND (expires_at_ms IS NULL OR expires_at_ms > ?2)",
        )?;
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for row in stmt.query_map(params![target, now.timestamp_millis()], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (alias, value): (String, String) = row?;
            out.entry(alias).or_default().push(value);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_follow_puts_removals_and_expiry() {
        let store = Store::open_in_memory().unwrap();
        let now = Utc::now();
        let e = |v: &str, ttl: i64| ManagedEntry {
            alias: "PORTCULLIS_BLOCK".into(),
            value: v.into(),
            expires_at: Some(now + chrono::TimeDelta::seconds(ttl)),
        };
        store.managed_record("lab", &[e("192.0.2.1", 60), e("192.0.2.2", -1)], &[]).unwrap();
        store.managed_record("lab", &[e("192.0.2.3", 60)], &[("PORTCULLIS_BLOCK".into(), "192.0.2.1".into())]).unwrap();
        let live = store.managed_live("lab", now).unwrap();
        assert_eq!(live["PORTCULLIS_BLOCK"], vec!["192.0.2.3".to_string()]);
        assert!(store.managed_live("other", now).unwrap().is_empty());
    }
}
