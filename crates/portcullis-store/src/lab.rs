//! Persistence of the lab firewall: rules in order, alias definitions, and alias entries as rows so that a
//! change to one entry of a 100,000-entry block list writes one row.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use portcullis_core::mirror::Mirror;
use portcullis_core::model::{Alias, AliasEntry, Rule, Timestamp};
use portcullis_core::protection::Protection;
use rusqlite::{Transaction, params};

use crate::{Store, StoreResult};

/// Everything the lab stores for one target.
#[derive(Debug, Clone, Default)]
pub struct LabState {
    pub rules: Vec<Rule>,
    pub aliases: Vec<Alias>,
    pub protections: Vec<Protection>,
    pub mirrors: Vec<Mirror>,
}

/// One atomic write to the lab's state.
#[derive(Debug, Default)]
pub struct LabWrite<'a> {
    /// When set, the complete ordered rule list replaces the stored one.
    pub rules: Option<&'a [Rule]>,
    /// Alias definitions (entries are ignored here) to insert or update.
    pub aliases: Vec<&'a Alias>,
    pub put_entries: Vec<(&'a str, &'a AliasEntry)>,
    pub remove_entries: Vec<(&'a str, &'a str)>,
    /// Aliases deleted with all their entries, before anything else is written.
    pub delete_aliases: Vec<&'a str>,
    /// When set, the complete list of DDoS protections replaces the stored one.
    pub protections: Option<&'a [Protection]>,
    /// When set, the complete list of traffic mirrors replaces the stored one.
    pub mirrors: Option<&'a [Mirror]>,
}

/// Where a lab target's protections are kept: one small JSON list (a target has a handful), in `meta`, written
/// in the same transaction as the rules.
fn protections_key(target: &str) -> String {
    format!("lab:{target}:protections")
}

fn mirrors_key(target: &str) -> String {
    format!("lab:{target}:mirrors")
}

fn to_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

fn from_ms(ms: Option<i64>) -> Option<Timestamp> {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
}

impl Store {
    /// Loads a lab target's state; `None` when the target was never initialised.
    pub fn lab_load(&self, target: &str) -> StoreResult<Option<LabState>> {
        let conn = self.conn();
        let initialised: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM meta WHERE key = ?1)",
            [format!("lab:{target}:initialised")],
            |r| r.get(0),
        )?;
        if !initialised {
            return Ok(None);
        }
        let mut stmt = conn.prepare_cached("SELECT body FROM lab_rules WHERE target = ?1 ORDER BY ord")?;
        let rules = stmt
            .query_map([target], |r| r.get::<_, String>(0))?
            .map(|body| Ok(serde_json::from_str::<Rule>(&body?)?))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut stmt = conn.prepare_cached("SELECT body FROM lab_aliases WHERE target = ?1 ORDER BY name")?;
        let mut aliases = stmt
            .query_map([target], |r| r.get::<_, String>(0))?
            .map(|body| Ok(serde_json::from_str::<Alias>(&body?)?))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut entries: HashMap<String, Vec<AliasEntry>> = HashMap::new();
        let mut stmt = conn.prepare_cached(
            "SELECT alias, value, detail, expires_at_ms, created_at_ms FROM lab_alias_entries
             WHERE target = ?1 ORDER BY alias, rowid",
        )?;
        let rows = stmt.query_map([target], |r| {
            Ok((
                r.get::<_, String>(0)?,
                AliasEntry {
                    value: r.get(1)?,
                    detail: r.get(2)?,
                    expires_at: from_ms(r.get(3)?),
                    created_at: from_ms(r.get(4)?),
                },
            ))
        })?;
        for row in rows {
            let (alias, entry) = row?;
            entries.entry(alias).or_default().push(entry);
        }
        for alias in &mut aliases {
            alias.entries = entries.remove(&alias.name).unwrap_or_default();
        }
        let mut stmt = conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
        let stored: Option<String> =
            stmt.query([protections_key(target)])?.next()?.map(|row| row.get(0)).transpose()?;
        let protections = match stored {
            Some(json) => serde_json::from_str(&json)?,
            None => Vec::new(),
        };
        let stored: Option<String> = stmt.query([mirrors_key(target)])?.next()?.map(|row| row.get(0)).transpose()?;
        let mirrors = match stored {
            Some(json) => serde_json::from_str(&json)?,
            None => Vec::new(),
        };
        Ok(Some(LabState { rules, aliases, protections, mirrors }))
    }

    /// Applies one write in a single transaction and marks the target initialised.
    pub fn lab_write(&self, target: &str, write: &LabWrite<'_>) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(rules) = write.rules {
            replace_rules(&tx, target, rules)?;
        }
        for alias in &write.delete_aliases {
            tx.execute("DELETE FROM lab_alias_entries WHERE target = ?1 AND alias = ?2", params![target, alias])?;
            tx.execute("DELETE FROM lab_aliases WHERE target = ?1 AND name = ?2", params![target, alias])?;
        }
        for alias in &write.aliases {
            let definition = Alias { entries: Vec::new(), ..(*alias).clone() };
            tx.execute(
                "INSERT INTO lab_aliases (target, name, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(target, name) DO UPDATE SET body = excluded.body",
                params![target, alias.name, serde_json::to_string(&definition)?],
            )?;
        }
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO lab_alias_entries (target, alias, value, detail, expires_at_ms, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(target, alias, value) DO UPDATE SET detail = excluded.detail,
                   expires_at_ms = excluded.expires_at_ms, created_at_ms = excluded.created_at_ms",
            )?;
            for (alias, e) in &write.put_entries {
                put.execute(params![target, alias, e.value, e.detail, to_ms(e.expires_at), to_ms(e.created_at)])?;
            }
            let mut remove =
                tx.prepare_cached("DELETE FROM lab_alias_entries WHERE target = ?1 AND alias = ?2 AND value = ?3")?;
            for (alias, value) in &write.remove_entries {
                remove.execute(params![target, alias, value])?;
            }
        }
        if let Some(protections) = write.protections {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![protections_key(target), serde_json::to_string(protections)?],
            )?;
        }
        if let Some(mirrors) = write.mirrors {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![mirrors_key(target), serde_json::to_string(mirrors)?],
            )?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, 'true')",
            [format!("lab:{target}:initialised")],
        )?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [format!("lab:{target}:version")],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A counter that every write to the lab target bumps: another process holding the state in memory reloads
    /// when it has moved.
    pub fn lab_version(&self, target: &str) -> StoreResult<i64> {
        Ok(self.meta_get(&format!("lab:{target}:version"))?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

fn replace_rules(tx: &Transaction<'_>, target: &str, rules: &[Rule]) -> StoreResult<()> {
    tx.execute("DELETE FROM lab_rules WHERE target = ?1", [target])?;
    let mut insert = tx.prepare_cached("INSERT INTO lab_rules (target, rule_id, ord, body) VALUES (?1, ?2, ?3, ?4)")?;
    for (ord, rule) in rules.iter().enumerate() {
        insert.execute(params![target, rule.rule_id.as_str(), ord as i64, serde_json::to_string(rule)?])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::model::AliasKind;

    #[test]
    fn entries_survive_reopen_and_remove_by_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let alias = Alias {
            name: "BLOCK".into(),
            kind: AliasKind::Network,
            description: String::new(),
            entries: vec![],
            managed: Some("block_list".into()),
        };
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
        let a = AliasEntry {
            value: "192.0.2.1".into(),
            detail: "scan".into(),
            expires_at: Some(now),
            created_at: Some(now),
        };
        let b =
            AliasEntry { value: "192.0.2.2".into(), detail: "brute".into(), expires_at: None, created_at: Some(now) };
        {
            let store = Store::open(&path).unwrap();
            assert!(store.lab_load("lab").unwrap().is_none());
            let write = LabWrite {
                aliases: vec![&alias],
                put_entries: vec![("BLOCK", &a), ("BLOCK", &b)],
                ..Default::default()
            };
            store.lab_write("lab", &write).unwrap();
            let remove = LabWrite { remove_entries: vec![("BLOCK", "192.0.2.1")], ..Default::default() };
            store.lab_write("lab", &remove).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let state = store.lab_load("lab").unwrap().unwrap();
        assert_eq!(state.aliases.len(), 1);
        assert_eq!(state.aliases[0].entries, vec![b]);
    }
}
