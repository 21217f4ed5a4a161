//! Turning text lines into stored records.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use chrono::{DateTime, Datelike, Utc};
use portcullis_logs::compact::Record;
use portcullis_logs::parse_line;
use serde::Serialize;

use crate::{LogStore, StoreError, io};

/// What an ingestion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Lines seen.
    pub lines: u64,
    /// Lines stored.
    pub stored: u64,
    /// Lines that were not filterlog lines (other syslog traffic, damage).
    pub malformed: u64,
    /// Lines skipped as already stored (pfRest pulls).
    pub duplicates: u64,
}

impl IngestStats {
    /// Adds another ingestion's counts.
    pub fn add(&mut self, o: IngestStats) {
        self.lines += o.lines;
        self.stored += o.stored;
        self.malformed += o.malformed;
        self.duplicates += o.duplicates;
    }
}

impl LogStore {
    /// Parses filterlog lines and stores them. BSD timestamps (no year) are resolved against `now`; lines without
    /// a timestamp get `now`.
    pub fn ingest_lines<'a>(
        &self,
        lines: impl IntoIterator<Item = &'a str>,
        now: DateTime<Utc>,
    ) -> Result<IngestStats, StoreError> {
        let mut stats = IngestStats::default();
        let mut records = Vec::new();
        for line in lines {
            stats.lines += 1;
            let Ok(entry) = parse_line(line) else {
                stats.malformed += 1;
                continue;
            };
            let at = entry.timestamp(now.year(), now).unwrap_or(now);
            let iface = self.interface_id(entry.interface)?;
            records.push(Record::from_entry(&entry, at, iface));
        }
        stats.stored = records.len() as u64;
        self.append(&records)?;
        Ok(stats)
    }
}

fn line_hash(line: &str) -> u64 {
    let mut h = DefaultHasher::new();
    line.hash(&mut h);
    h.finish()
}

/// Deduplication of repeated pulls of a firewall's most recent lines (the pfRest log endpoint returns the last N
/// lines each time): a line is new when it was not in the previous pull. The previous pull's line hashes are kept
/// in a file beside the segments, so a restart does not store a pull twice.
pub struct PullDedup {
    path: PathBuf,
    previous: HashSet<u64>,
}

impl PullDedup {
    /// Loads the previous pull of `store` (named, for several sources per store).
    pub fn load(store: &LogStore, name: &str) -> Self {
        let path = store.dir().join(format!("pull-{name}.hashes"));
        let previous = std::fs::read(&path)
            .map(|b| {
                b.chunks_exact(8).filter_map(|c| c.try_into().ok()).map(u64::from_le_bytes).collect::<HashSet<u64>>()
            })
            .unwrap_or_default();
        Self { path, previous }
    }

    /// Stores the lines of a pull that the previous pull did not have, and remembers this pull.
    pub fn ingest(
        &mut self,
        store: &LogStore,
        lines: &[String],
        now: DateTime<Utc>,
    ) -> Result<IngestStats, StoreError> {
        let hashes: Vec<u64> = lines.iter().map(|l| line_hash(l)).collect();
        let fresh: Vec<&str> =
            lines.iter().zip(&hashes).filter(|(_, h)| !self.previous.contains(h)).map(|(l, _)| l.as_str()).collect();
        let duplicates = (lines.len() - fresh.len()) as u64;
        let mut stats = store.ingest_lines(fresh, now)?;
        stats.duplicates = duplicates;
        stats.lines += duplicates;
        let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.to_le_bytes()).collect();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        self.previous = hashes.into_iter().collect();
        Ok(stats)
    }
}
