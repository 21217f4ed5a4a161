//! Portcullis' own record of the entries it placed in managed aliases (blocks, grants), kept apart from the
//! firewall so that an entry removed or added there by hand shows up as drift.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
    /// `owner` is the principal who put them; `None` (adopted or restored entries) keeps the owner on record.
    pub fn managed_record(
        &self,
        target: &str,
        put: &[ManagedEntry],
        removed: &[(String, String)],
        owner: Option<&str>,
    ) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO managed_entries (target, alias, value, expires_at_ms, owner) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(target, alias, value) DO UPDATE SET expires_at_ms = excluded.expires_at_ms,
                 owner = COALESCE(excluded.owner, managed_entries.owner)",
            )?;
            for e in put {
                insert.execute(params![target, e.alias, e.value, e.expires_at.map(|t| t.timestamp_millis()), owner])?;
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

    /// Who put an entry of a managed alias, where that is on record.
    pub fn managed_owner(&self, target: &str, alias: &str, value: &str) -> StoreResult<Option<String>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT owner FROM managed_entries WHERE target = ?1 AND alias = ?2 AND value = ?3")?;
        let mut rows = stmt.query(params![target, alias, value])?;
        Ok(match rows.next()? {
            Some(row) => row.get(0)?,
            None => None,
        })
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

    /// Which of `wanted` (alias, values) are recorded for a target and still live at `now`: a drift check of the
    /// entries others touched, one index probe each.
    pub fn managed_live_among(
        &self,
        target: &str,
        wanted: &BTreeMap<String, BTreeSet<String>>,
        now: DateTime<Utc>,
    ) -> StoreResult<HashSet<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT 1 FROM managed_entries WHERE target = ?1 AND alias = ?2 AND value = ?3
             AND (expires_at_ms IS NULL OR expires_at_ms > ?4)",
        )?;
        let mut live = HashSet::new();
        for (alias, values) in wanted {
            for value in values {
                if stmt.exists(params![target, alias, value, now.timestamp_millis()])? {
                    live.insert((alias.clone(), value.clone()));
                }
            }
        }
        Ok(live)
    }

    /// The earliest expiry among a target's recorded entries, overdue ones included: the reconciler's time
    /// index. One probe of the `managed_entries_by_expiry` index, however many entries are pending.
    pub fn managed_next_expiry(&self, target: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT MIN(expires_at_ms) FROM managed_entries WHERE target = ?1 AND expires_at_ms IS NOT NULL",
        )?;
        let ms: Option<i64> = stmt.query_row(params![target], |r| r.get(0))?;
        Ok(ms.and_then(DateTime::from_timestamp_millis))
    }

    /// The recorded entries of a target that expire at or before `cutoff`, earliest first, at most `limit`, by
    /// alias: what the reconciler removes next, read from the time index without touching the rest.
    pub fn managed_due(
        &self,
        target: &str,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Vec<String>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT alias, value FROM managed_entries WHERE target = ?1 AND expires_at_ms IS NOT NULL
             AND expires_at_ms <= ?2 ORDER BY expires_at_ms LIMIT ?3",
        )?;
        let mut by_alias: Vec<(String, Vec<String>)> = Vec::new();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        for row in stmt.query_map(params![target, cutoff.timestamp_millis(), limit], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (alias, value): (String, String) = row?;
            match by_alias.iter_mut().find(|(a, _)| *a == alias) {
                Some((_, values)) => values.push(value),
                None => by_alias.push((alias, vec![value])),
            }
        }
        Ok(by_alias)
    }

    /// Forgets the records of a target's entries that expired at or before `cutoff`, once a sweep has taken
    /// every such entry off the firewall (or found it already gone). Returns how many were forgotten.
    pub fn managed_forget_expired(&self, target: &str, cutoff: DateTime<Utc>) -> StoreResult<usize> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "DELETE FROM managed_entries WHERE target = ?1 AND expires_at_ms IS NOT NULL AND expires_at_ms <= ?2",
        )?;
        Ok(stmt.execute(params![target, cutoff.timestamp_millis()])?)
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
        store.managed_record("lab", &[e("192.0.2.1", 60), e("192.0.2.2", -1)], &[], Some("alice")).unwrap();
        store
            .managed_record("lab", &[e("192.0.2.3", 60)], &[("PORTCULLIS_BLOCK".into(), "192.0.2.1".into())], None)
            .unwrap();
        let live = store.managed_live("lab", now).unwrap();
        assert_eq!(live["PORTCULLIS_BLOCK"], vec!["192.0.2.3".to_string()]);
        assert!(store.managed_live("other", now).unwrap().is_empty());
    }

    #[test]
    fn the_time_index_gives_the_earliest_expiry_and_forgets_what_a_sweep_settled() {
        let store = Store::open_in_memory().unwrap();
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        let e = |v: &str, ttl: Option<i64>| ManagedEntry {
            alias: "PORTCULLIS_BLOCK".into(),
            value: v.into(),
            expires_at: ttl.map(|s| now + chrono::TimeDelta::seconds(s)),
        };
        assert_eq!(store.managed_next_expiry("lab").unwrap(), None);
        store
            .managed_record(
                "lab",
                &[e("192.0.2.1", Some(60)), e("192.0.2.2", Some(-5)), e("192.0.2.3", None)],
                &[],
                None,
            )
            .unwrap();
        store.managed_record("other", &[e("192.0.2.9", Some(-60))], &[], None).unwrap();
        assert_eq!(store.managed_next_expiry("lab").unwrap(), Some(now - chrono::TimeDelta::seconds(5)));
        let due = store.managed_due("lab", now, 10).unwrap();
        assert_eq!(due, vec![("PORTCULLIS_BLOCK".to_string(), vec!["192.0.2.2".to_string()])]);
        assert_eq!(store.managed_due("lab", now + chrono::TimeDelta::hours(1), 10).unwrap()[0].1.len(), 2);
        assert_eq!(store.managed_due("lab", now + chrono::TimeDelta::hours(1), 1).unwrap()[0].1, vec!["192.0.2.2"]);
        assert_eq!(store.managed_forget_expired("lab", now).unwrap(), 1);
        assert_eq!(store.managed_next_expiry("lab").unwrap(), Some(now + chrono::TimeDelta::seconds(60)));
        // Permanent entries and other targets are untouched.
        assert_eq!(store.managed_live("lab", now).unwrap()["PORTCULLIS_BLOCK"].len(), 2);
        assert!(store.managed_next_expiry("other").unwrap().is_some());
    }

    #[test]
    fn the_owner_is_whoever_last_put_the_entry_and_survives_a_restore() {
        let store = Store::open_in_memory().unwrap();
        let e = ManagedEntry { alias: "PORTCULLIS_BLOCK".into(), value: "192.0.2.1".into(), expires_at: None };
        assert_eq!(store.managed_owner("lab", "PORTCULLIS_BLOCK", "192.0.2.1").unwrap(), None);
        store.managed_record("lab", std::slice::from_ref(&e), &[], Some("alice")).unwrap();
        store.managed_record("lab", std::slice::from_ref(&e), &[], None).unwrap();
        assert_eq!(store.managed_owner("lab", "PORTCULLIS_BLOCK", "192.0.2.1").unwrap().as_deref(), Some("alice"));
        store.managed_record("lab", std::slice::from_ref(&e), &[], Some("bob")).unwrap();
        assert_eq!(store.managed_owner("lab", "PORTCULLIS_BLOCK", "192.0.2.1").unwrap().as_deref(), Some("bob"));
        assert_eq!(store.managed_owner("other", "PORTCULLIS_BLOCK", "192.0.2.1").unwrap(), None);
    }
}
