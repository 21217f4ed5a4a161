//! Turning text lines into stored records.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};
use portcullis_logs::compact::{RECORD_SIZE, Record};
use portcullis_logs::{ParseError, parse_line};
use serde::{Deserialize, Serialize};

use crate::{LogStore, StoreError, hour_of, io};

/// What an ingestion did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Lines seen.
    pub lines: u64,
    /// Lines stored.
    pub stored: u64,
    /// Lines that were not filterlog lines (other syslog traffic, damage).
    pub malformed: u64,
    /// The `malformed` lines by reason, as the parser words it (`not filterlog`, `bad number in field 3
    /// (tracker)`): what an import reports it skipped and why.
    pub skipped: BTreeMap<String, u64>,
    /// Lines skipped as already stored (pfRest pulls).
    pub duplicates: u64,
    /// Pulls that did not reach back to the previous pull (the page cap was hit, or the firewall's log no longer
    /// holds the previous pull's newest lines): lines between the two may be missing.
    pub gaps: u64,
}

impl IngestStats {
    /// Adds another ingestion's counts.
    pub fn add(&mut self, o: IngestStats) {
        self.lines += o.lines;
        self.stored += o.stored;
        self.malformed += o.malformed;
        self.duplicates += o.duplicates;
        self.gaps += o.gaps;
        for (reason, n) in o.skipped {
            *self.skipped.entry(reason).or_insert(0) += n;
        }
    }

    /// The skipped lines in words, most frequent reason first: `skipped 4: 3 not filterlog, 1 bad number in field
    /// 3 (tracker)`; empty when nothing was skipped.
    pub fn skipped_summary(&self) -> String {
        if self.malformed == 0 {
            return String::new();
        }
        let mut reasons: Vec<(&String, &u64)> = self.skipped.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let reasons: Vec<String> = reasons.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        format!("skipped {}: {}", self.malformed, reasons.join(", "))
    }
}

/// Malformed lines by error, counted without allocating per line and worded once at the end.
#[derive(Default)]
struct SkipCounter(BTreeMap<ParseError, u64>);

impl SkipCounter {
    fn count(&mut self, error: ParseError) {
        *self.0.entry(error).or_insert(0) += 1;
    }

    fn into_reasons(self) -> BTreeMap<String, u64> {
        let mut reasons = BTreeMap::new();
        for (error, n) in self.0 {
            *reasons.entry(error.to_string()).or_insert(0) += n;
        }
        reasons
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
        let (records, stats) = self.parse_lines(lines, now)?;
        self.append(&records)?;
        Ok(stats)
    }

    fn parse_lines<'a>(
        &self,
        lines: impl IntoIterator<Item = &'a str>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Record>, IngestStats), StoreError> {
        let mut stats = IngestStats::default();
        let mut skipped = SkipCounter::default();
        let mut records = Vec::new();
        for line in lines {
            stats.lines += 1;
            let entry = match parse_line(line) {
                Ok(entry) => entry,
                Err(e) => {
                    stats.malformed += 1;
                    skipped.count(e);
                    continue;
                }
            };
            let at = entry.timestamp(now.year(), now).unwrap_or(now);
            let iface = self.interface_id(entry.interface)?;
            records.push(Record::from_entry(&entry, at, iface));
        }
        stats.stored = records.len() as u64;
        stats.skipped = skipped.into_reasons();
        Ok((records, stats))
    }
}

/// A line's identity across pulls and processes: 64-bit FNV-1a, fixed by definition (std's hasher may change
/// between Rust releases, and these hashes outlive the binary in the pull file).
fn line_hash(line: &str) -> u64 {
    line.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The hash the previous file format (`pull-<name>.hashes`) used, read once to carry a store across the upgrade.
fn legacy_line_hash(line: &str) -> u64 {
    let mut h = DefaultHasher::new();
    line.hash(&mut h);
    h.finish()
}

/// How many of a pull's newest lines are remembered to find where the next pull meets it: a run this long
/// matches by accident only inside floods of identical lines.
const ANCHOR_LINES: usize = 64;

/// Deduplication of repeated pulls of a firewall's log read newest page first (the pfRest log endpoint): the
/// hashes of the previous pull's newest lines (its *anchor*) are kept beside the segments, and a new pull is read
/// back until it meets them; only the lines after them are stored. Ingestion is journalled, so a crash leaves
/// the store and the anchor as before the pull or as after it, never in between.
///
/// Limitation: lines are compared by their text, and filterlog lines carry no sequence number. Identical lines
/// (same second, same packet fields) are told apart only by their neighbours: a flood of identical lines longer
/// than `ANCHOR_LINES` that spans two pulls, or identical lines exactly at a page boundary while the log grows,
/// can be taken for lines already read. (The single-page pull this replaces dropped every line whose text was in
/// the previous pull.) One pull of a store at a time: the service serialises its own pulls per target, but two
/// processes pulling the same target at the same moment both store what is new since the same anchor.
pub struct PullDedup {
    anchor_path: PathBuf,
    journal_path: PathBuf,
    anchor: Vec<u64>,
    /// The previous format's unordered hashes of the whole previous pull, until the first pull replaces them.
    legacy: Option<(PathBuf, HashSet<u64>)>,
}

/// What a crash may have left half done: the records of one pull, and where each hour's part was appended.
#[derive(Serialize, Deserialize)]
struct Journal {
    anchor: Vec<u64>,
    appends: Vec<SegmentAppend>,
}

#[derive(Serialize, Deserialize)]
struct SegmentAppend {
    hour: i64,
    /// The segment's length in records before the append: the pull's records are at or after it (other
    /// writers may have appended in between).
    from_record: u64,
    records: Vec<u8>,
}

impl PullDedup {
    /// Loads the previous pull of `store` (named, for several sources per store), first completing a pull that a
    /// crash interrupted.
    pub fn load(store: &LogStore, name: &str) -> Result<Self, StoreError> {
        let anchor_path = store.dir().join(format!("pull-{name}.anchor"));
        let journal_path = store.dir().join(format!("pull-{name}.journal"));
        recover(store, &journal_path, &anchor_path)?;
        let anchor = read_hashes(&anchor_path)?;
        let legacy_path = store.dir().join(format!("pull-{name}.hashes"));
        let legacy = match anchor.is_empty() {
            true => Some(read_hashes(&legacy_path)?).filter(|h| !h.is_empty()),
            false => None,
        };
        let legacy = legacy.map(|h| (legacy_path, h.into_iter().collect()));
        Ok(Self { anchor_path, journal_path, anchor, legacy })
    }

    /// A new pull, read `page` lines at a time from the newest, of at most about `cap` lines.
    pub fn start(&self, page: usize, cap: usize) -> PagedPull {
        PagedPull {
            anchor: self.anchor.clone(),
            first_pull: self.anchor.is_empty(),
            page: page.max(1),
            cap,
            lines: VecDeque::new(),
            hashes: VecDeque::new(),
            growth: 0,
            pages: 0,
            read: 0,
            met_at: None,
            reached_oldest: false,
        }
    }

    /// Stores the lines of `pull` that are newer than the previous pull, and remembers this pull. Journalled: the
    /// journal (records and their segment offsets, and the new anchor) is written before the segments, the anchor
    /// after them, then the journal is removed; [`PullDedup::load`] finishes whatever a crash interrupted.
    pub fn ingest(&mut self, store: &LogStore, pull: PagedPull, now: DateTime<Utc>) -> Result<IngestStats, StoreError> {
        let anchor = pull.anchor_for_next();
        let gap = pull.missed_previous();
        let read = pull.read;
        let legacy = self.legacy.as_ref().map(|(_, set)| set);
        let fresh = pull.into_fresh(legacy);
        let (records, mut stats) = store.parse_lines(fresh.iter().map(String::as_str), now)?;
        stats.duplicates = read - stats.lines;
        stats.lines = read;
        stats.gaps = u64::from(gap);
        self.write_journal(store, &records, &anchor)?;
        store.append(&records)?;
        self.remember(anchor)?;
        Ok(stats)
    }

    /// The first step of an ingestion: what a crash must not leave half done.
    fn write_journal(&self, store: &LogStore, records: &[Record], anchor: &[u64]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let journal = Journal { anchor: anchor.to_vec(), appends: store.planned_appends(records)? };
        let bytes = postcard::to_stdvec(&journal).unwrap_or_default();
        write_atomically(&self.journal_path, &bytes)
    }

    /// The last step: the pull is stored, so its anchor replaces the previous one and the journal goes.
    fn remember(&mut self, anchor: Vec<u64>) -> Result<(), StoreError> {
        write_atomically(&self.anchor_path, &hash_bytes(&anchor))?;
        remove_if_present(&self.journal_path)?;
        if let Some((legacy_path, _)) = self.legacy.take() {
            remove_if_present(&legacy_path)?;
        }
        self.anchor = anchor;
        Ok(())
    }
}

/// A pull being read from the newest page back, stitched into one run of lines, oldest first.
pub struct PagedPull {
    anchor: Vec<u64>,
    first_pull: bool,
    page: usize,
    cap: usize,
    lines: VecDeque<String>,
    hashes: VecDeque<u64>,
    /// Lines the log has grown by since the first page was read, as seen in the overlaps of later pages.
    growth: usize,
    pages: usize,
    /// Lines received, overlaps included.
    read: u64,
    /// Where the previous pull's anchor starts in `lines`, once found.
    met_at: Option<usize>,
    reached_oldest: bool,
}

impl PagedPull {
    /// The lines per page.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// How many of the newest lines the next page skips, or `None` when the pull is complete: the previous pull
    /// was met, the oldest line of the log was read, there is no previous pull (a first pull stores one page, as
    /// much as the firewall kept before), or the cap was reached. A log that keeps growing faster than it is paged
    /// also ends the pull, after twice the pages the cap needs.
    pub fn next_skip(&self) -> Option<usize> {
        let started = self.pages > 0;
        let done = self.met_at.is_some()
            || self.reached_oldest
            || (self.first_pull && started)
            || self.lines.len() >= self.cap
            || self.pages > 2 * self.cap.div_ceil(self.page);
        (!done).then_some(self.lines.len() + self.growth)
    }

    /// Distinct lines held.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether the pull ended without meeting a previous one, so lines between them may be missing.
    pub fn missed_previous(&self) -> bool {
        !self.anchor.is_empty() && self.met_at.is_none()
    }

    /// Adds the page read at [`PagedPull::next_skip`] (oldest first; shorter than a page at the log's start).
    pub fn add_older_page(&mut self, page: Vec<String>) {
        self.pages += 1;
        self.read += page.len() as u64;
        self.reached_oldest |= page.len() < self.page;
        let page_hashes: Vec<u64> = page.iter().map(|l| line_hash(l)).collect();
        let grown = self.growth_before(&page_hashes);
        self.growth += grown;
        let added = page.len().saturating_sub(grown);
        for (line, hash) in page.into_iter().zip(page_hashes).take(added).rev() {
            self.lines.push_front(line);
            self.hashes.push_front(hash);
        }
        if let Some(at) = self.met_at.as_mut() {
            *at += added;
        } else {
            self.met_at = self.find_anchor(added);
        }
    }

    /// How many lines the log grew by since the previous page was read: the page then ends that many lines into
    /// what is held (wholly inside it when the growth exceeds a page). The smallest shift that lines the page up
    /// with what is held wins; with distinct lines only the true one does.
    fn growth_before(&self, page: &[u64]) -> usize {
        let Some(&newest) = page.last() else {
            return 0;
        };
        let lines_up = |grown: usize| {
            let shared = grown.min(page.len());
            page[page.len() - shared..].iter().eq(self.hashes.range(grown - shared..grown))
        };
        (1..=self.hashes.len()).find(|&g| self.hashes[g - 1] == newest && lines_up(g)).unwrap_or(0)
    }

    /// The newest place where the anchor starts among windows that include one of the `added` newest-read lines.
    fn find_anchor(&self, added: usize) -> Option<usize> {
        let width = self.anchor.len();
        if width == 0 || self.hashes.len() < width {
            return None;
        }
        let last_start = (self.hashes.len() - width).min(added.checked_sub(1)?);
        (0..=last_start).rev().find(|&s| self.hashes.range(s..s + width).eq(self.anchor.iter()))
    }

    fn anchor_for_next(&self) -> Vec<u64> {
        if self.lines.is_empty() {
            return self.anchor.clone();
        }
        let from = self.hashes.len().saturating_sub(ANCHOR_LINES);
        self.hashes.range(from..).copied().collect()
    }

    /// The lines newer than the previous pull, oldest first; without one met, every line held (minus those the
    /// previous file format listed, the first time).
    fn into_fresh(self, legacy: Option<&HashSet<u64>>) -> Vec<String> {
        let from = self.met_at.map_or(0, |at| at + self.anchor.len());
        let fresh = self.lines.into_iter().skip(from);
        match legacy {
            Some(seen) if self.met_at.is_none() => fresh.filter(|l| !seen.contains(&legacy_line_hash(l))).collect(),
            _ => fresh.collect(),
        }
    }
}

impl LogStore {
    /// Where each hour's part of `records` will be appended: the segment's current whole-record length.
    fn planned_appends(&self, records: &[Record]) -> Result<Vec<SegmentAppend>, StoreError> {
        let mut by_hour: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        for r in records {
            by_hour.entry(hour_of(r.ts_ms)).or_default().extend_from_slice(&r.encode());
        }
        by_hour
            .into_iter()
            .map(|(hour, records)| {
                let path = self.seg_path(hour);
                let from_record = match std::fs::metadata(&path) {
                    Ok(m) => m.len() / RECORD_SIZE as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                    Err(e) => return Err(io(&path)(e)),
                };
                Ok(SegmentAppend { hour, from_record, records })
            })
            .collect()
    }

    /// Whether `bytes` (whole records) are in the hour's segment at a record boundary at or after `from_record`.
    fn holds_append(&self, append: &SegmentAppend) -> Result<bool, StoreError> {
        let path = self.seg_path(append.hour);
        let segment = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(&path)(e)),
        };
        let from = (append.from_record as usize * RECORD_SIZE).min(segment.len());
        let wanted = &append.records;
        Ok(!wanted.is_empty()
            && segment[from..].chunks(RECORD_SIZE).enumerate().any(|(i, _)| {
                let at = from + i * RECORD_SIZE;
                segment.get(at..at + wanted.len()) == Some(wanted.as_slice())
            }))
    }
}

/// Finishes a journalled pull: appends the parts a crash kept out of the segments, then stores its anchor.
fn recover(store: &LogStore, journal_path: &Path, anchor_path: &Path) -> Result<(), StoreError> {
    let bytes = match std::fs::read(journal_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(journal_path)(e)),
    };
    let Ok(journal) = postcard::from_bytes::<Journal>(&bytes) else {
        // Written whole by rename, so only a damaged disk gets here; the segments' state is then unknown too.
        tracing::warn!(path = %journal_path.display(), "unreadable pull journal discarded: that pull may be stored twice or not at all");
        return remove_if_present(journal_path);
    };
    for append in &journal.appends {
        if !store.holds_append(append)? {
            let records: Vec<Record> = append.records.chunks_exact(RECORD_SIZE).filter_map(Record::decode).collect();
            store.append(&records)?;
        }
    }
    write_atomically(anchor_path, &hash_bytes(&journal.anchor))?;
    tracing::info!(path = %journal_path.display(), "completed a log pull interrupted by a crash");
    remove_if_present(journal_path)
}

fn read_hashes(path: &Path) -> Result<Vec<u64>, StoreError> {
    match std::fs::read(path) {
        Ok(b) => Ok(b.chunks_exact(8).filter_map(|c| c.try_into().ok()).map(u64::from_le_bytes).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(path)(e)),
    }
}

fn hash_bytes(hashes: &[u64]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.to_le_bytes()).collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Retention;

    fn store(dir: &Path) -> std::sync::Arc<LogStore> {
        LogStore::open(dir, Retention { max_age: chrono::TimeDelta::days(36500), max_bytes: u64::MAX }).unwrap()
    }

    /// Distinct filterlog lines `from..to` (the source port is 10000 + i), all in the same second.
    fn log(from: usize, to: usize) -> Vec<String> {
        let t = "2026-01-01T00:00:00+00:00";
        (from..to)
            .map(|i| {
                format!(
                    "<134>1 {t} fw filterlog 1 - - 5,,,1000000103,em0,match,block,in,4,0x0,,64,{i},0,DF,6,tcp,60,\
                     203.0.113.9,198.51.100.2,{},22,0,S,{i},,64240,,mss",
                    10_000 + i
                )
            })
            .collect()
    }

    /// A firewall's log read the way pfRest pages it, growing by `growth` lines before every page read.
    struct Firewall {
        log: Vec<String>,
        growth: usize,
    }

    impl Firewall {
        fn page(&mut self, skip: usize, limit: usize) -> Vec<String> {
            let n = self.log.len();
            self.log.extend(log(n, n + self.growth));
            let end = self.log.len().saturating_sub(skip);
            self.log[end.saturating_sub(limit)..end].to_vec()
        }

        fn pull(&mut self, store: &LogStore, page: usize, cap: usize) -> IngestStats {
            let mut dedup = PullDedup::load(store, "fw").unwrap();
            let mut pull = dedup.start(page, cap);
            while let Some(skip) = pull.next_skip() {
                let lines = self.page(skip, page);
                pull.add_older_page(lines);
            }
            dedup.ingest(store, pull, Utc::now()).unwrap()
        }
    }

    /// The line numbers of the stored records, sorted (duplicates stay).
    fn stored_ids(store: &LogStore) -> Vec<usize> {
        let page = store.query(0, i64::MAX / 2, 0, 1_000_000, |_| true).unwrap();
        let mut ids: Vec<usize> =
            page.records.iter().map(|r| usize::from(r.src_port.unwrap_or_default()) - 10_000).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn skipped_lines_are_counted_by_reason_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut lines = log(0, 2);
        lines.push("hello".into());
        lines.push("Jul  3 19:10:30 fw sshd[1]: Accepted".into());
        lines.push(lines[0].replacen("1000000103", "-1", 1));
        let mut stats = store.ingest_lines(lines.iter().map(String::as_str), Utc::now()).unwrap();
        assert_eq!((stats.lines, stats.stored, stats.malformed), (5, 2, 3));
        let expected = |pairs: &[(&str, u64)]| pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        assert_eq!(stats.skipped, expected(&[("bad number in field 3 (tracker)", 1), ("not filterlog", 2)]));
        assert_eq!(stats.skipped_summary(), "skipped 3: 2 not filterlog, 1 bad number in field 3 (tracker)");
        stats.add(store.ingest_lines(["garbage"], Utc::now()).unwrap());
        assert_eq!(stats.malformed, 4);
        assert_eq!(stats.skipped, expected(&[("bad number in field 3 (tracker)", 1), ("not filterlog", 3)]));
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["skipped"]["not filterlog"], 3);
        assert_eq!(IngestStats::default().skipped_summary(), "");
    }

    #[test]
    fn a_pull_reads_back_page_by_page_until_it_meets_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut fw = Firewall { log: log(0, 250), growth: 0 };
        let s = fw.pull(&store, 100, 10_000);
        assert_eq!((s.lines, s.stored, s.gaps), (100, 100, 0), "a first pull stores one page");
        fw.log.extend(log(250, 1_000));
        let s = fw.pull(&store, 100, 10_000);
        assert_eq!((s.stored, s.gaps), (750, 0));
        assert_eq!(s.duplicates, s.lines - 750, "the page that met the previous pull is only partly new");
        let s = fw.pull(&store, 100, 10_000);
        assert_eq!((s.stored, s.lines, s.gaps), (0, 100, 0), "nothing new: one page read");
        assert_eq!(stored_ids(&store), (150..1_000).collect::<Vec<usize>>());
    }

    #[test]
    fn lines_arriving_between_page_reads_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut fw = Firewall { log: log(0, 100), growth: 0 };
        fw.pull(&store, 100, 10_000);
        fw.log.extend(log(100, 1_300));
        fw.growth = 37;
        let s = fw.pull(&store, 100, 10_000);
        assert_eq!(s.gaps, 0);
        fw.growth = 0;
        fw.pull(&store, 100, 10_000);
        let expected: Vec<usize> = (0..fw.log.len()).collect();
        let stored = stored_ids(&store);
        assert!(stored == expected, "every line once, the grown ones included: {} of {}", stored.len(), expected.len());
        // Growth of a whole page or more between reads: pages wholly overlap, the pull still ends.
        fw.log.extend(log(fw.log.len(), fw.log.len() + 500));
        fw.growth = 150;
        let s = fw.pull(&store, 100, 5_000);
        assert_eq!(s.gaps, 1, "a log growing faster than it is paged reaches the cap");
    }

    #[test]
    fn a_burst_beyond_the_cap_is_reported_as_a_gap_and_the_next_pull_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut fw = Firewall { log: log(0, 10), growth: 0 };
        fw.pull(&store, 100, 1_000);
        fw.log.extend(log(10, 2_010));
        let s = fw.pull(&store, 100, 1_000);
        assert_eq!((s.stored, s.gaps), (1_000, 1));
        fw.log.extend(log(2_010, 2_050));
        let s = fw.pull(&store, 100, 1_000);
        assert_eq!((s.stored, s.gaps), (40, 0), "the anchor moved to the newest line read");
        let mut expected: Vec<usize> = (0..10).collect();
        expected.extend(1_010..2_050);
        assert_eq!(stored_ids(&store), expected);
    }

    #[test]
    fn a_cleared_log_is_a_gap_and_its_lines_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut fw = Firewall { log: log(0, 100), growth: 0 };
        fw.pull(&store, 50, 1_000);
        fw.log = log(500, 520);
        let s = fw.pull(&store, 50, 1_000);
        assert_eq!((s.stored, s.gaps), (20, 1));
    }

    #[test]
    fn identical_lines_in_a_run_are_kept_when_the_anchor_is_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut fw = Firewall { log: log(0, 100), growth: 0 };
        fw.pull(&store, 100, 1_000);
        let same = log(100, 101).remove(0);
        fw.log.extend(std::iter::repeat_n(same, 5));
        let s = fw.pull(&store, 100, 1_000);
        assert_eq!(s.stored, 5, "five identical lines after the previous pull are five lines");
    }

    #[test]
    fn the_previous_format_dedups_the_first_pull_after_an_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let old = log(0, 80);
        let legacy: Vec<u64> = old.iter().map(|l| legacy_line_hash(l)).collect();
        std::fs::write(dir.path().join("pull-fw.hashes"), hash_bytes(&legacy)).unwrap();
        let mut fw = Firewall { log: log(0, 90), growth: 0 };
        let s = fw.pull(&store, 100, 1_000);
        assert_eq!((s.stored, s.duplicates, s.gaps), (10, 80, 0));
        assert!(!dir.path().join("pull-fw.hashes").exists());
        assert_eq!(fw.pull(&store, 100, 1_000).stored, 0, "the new anchor took over");
    }

    /// Runs a pull's ingestion up to a crash after the journal (`appended`: and after the segments).
    fn crash_during_pull(store: &LogStore, lines: Vec<String>, appended: bool) {
        let dedup = PullDedup::load(store, "fw").unwrap();
        let mut pull = dedup.start(1_000, 10_000);
        pull.add_older_page(lines);
        let anchor = pull.anchor_for_next();
        let fresh = pull.into_fresh(None);
        let (records, _) = store.parse_lines(fresh.iter().map(String::as_str), Utc::now()).unwrap();
        dedup.write_journal(store, &records, &anchor).unwrap();
        if appended {
            store.append(&records).unwrap();
        }
    }

    #[test]
    fn a_crash_inside_an_ingestion_leaves_each_line_stored_once() {
        for appended in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store = store(dir.path());
            let mut fw = Firewall { log: log(0, 100), growth: 0 };
            fw.pull(&store, 1_000, 10_000);
            fw.log.extend(log(100, 300));
            crash_during_pull(&store, fw.log.clone(), appended);
            // Another writer appends to the same hour meanwhile.
            store.ingest_lines(log(5_000, 5_003).iter().map(String::as_str), Utc::now()).unwrap();
            let s = fw.pull(&store, 1_000, 10_000);
            assert_eq!(s.stored, 0, "recovery completed the interrupted pull and moved the anchor");
            let mut expected: Vec<usize> = (0..300).collect();
            expected.extend(5_000..5_003);
            assert_eq!(stored_ids(&store), expected, "crash after the append: {appended}");
            assert!(!dir.path().join("pull-fw.journal").exists());
        }
    }
}
