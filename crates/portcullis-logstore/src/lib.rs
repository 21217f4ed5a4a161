//! The embedded log store, sized for tens of millions of lines on one machine.
//!
//! Lines are kept per firewall target in a directory of hour segments: `<hour>.seg` is an array of 64-byte
//! [`Record`]s (appended in whole records with `O_APPEND`, so another process may append at the same time), and
//! `<hour>.rollup` is the [`Rollup`] of the first `covered` records of that segment. A question over a span merges
//! the rollups of the whole hours inside it and folds the records of the partial hours at its edges; a rollup that
//! covers fewer records than its segment holds (written before a crash, or by another process) is brought up to
//! date by folding the missing tail, so rollup files are a cache that can never be wrong, only late. Aligned
//! blocks of hours (UTC quarter days and days) get merged rollups of their own, `<first hour>.b<hours>.rollup`,
//! stamped with the record count of each segment they were made from: a stamp that no longer matches makes them
//! stale, never wrong. With them a freshly opened store answers a week from about twenty files, not 168.
//!
//! Rollups in memory are a cache with a byte budget ([`LogStore::set_cache_budget`]); the least recently used are
//! dropped and read again from their files when needed. Retention deletes whole segments by age and by total size.
//!
//! Beside the segments, [`alerts::AlertStore`] keeps the target's Suricata alerts (`eve/<hour>.alerts`), under the
//! same retention.

pub mod alerts;
pub mod files;
mod ingest;
pub mod syslog;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};
use portcullis_logs::compact::{RECORD_SIZE, Record};
use portcullis_logs::rollup::{HOUR_MS, Rollup};

pub use alerts::{AlertStore, EveIngestStats, EveOrigin};
pub use ingest::{IngestStats, PullDedup};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("log store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store holds more interface devices than ids.
    #[error("log store: too many interface devices")]
    TooManyInterfaces,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// How long lines are kept and how much disk they may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Segments whose hour ended longer ago than this are deleted.
    pub max_age: TimeDelta,
    /// The oldest segments are deleted while the segments use more bytes than this.
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self { max_age: TimeDelta::days(30), max_bytes: 4 << 30 }
    }
}

#[derive(Default)]
struct HourCache {
    rollup: Rollup,
    /// Records of the segment folded into `rollup`.
    covered: u64,
    /// `covered` at the last write of the rollup file.
    persisted: u64,
    /// Whether the rollup file was read (or found missing).
    loaded: bool,
    /// The cache clock at the last use, for eviction.
    used: u64,
    /// `rollup.approx_bytes()` at the last refresh.
    bytes: usize,
}

impl HourCache {
    /// Takes in what the hour's rollup file held (nothing if it was missing or unreadable): the cache is loaded.
    fn install(&mut self, file: Option<(u64, Rollup)>) {
        self.loaded = true;
        if let Some((covered, rollup)) = file {
            self.covered = covered;
            self.persisted = covered;
            self.bytes = rollup.approx_bytes();
            self.rollup = rollup;
        }
    }
}

#[derive(Default)]
struct Inner {
    devices: Vec<String>,
    ids: HashMap<String, u16>,
    hours: BTreeMap<i64, HourCache>,
}

/// One target's log store.
pub struct LogStore {
    dir: PathBuf,
    retention: Retention,
    inner: Mutex<Inner>,
    /// Merged rollups of aligned blocks of hours, by (first hour, hours).
    blocks: Mutex<HashMap<(i64, i64), CachedBlock>>,
    /// Ticks on every use of a cached rollup; the least recent are evicted first.
    clock: AtomicU64,
    /// Bytes the rollups in memory may take before the least recently used are dropped.
    cache_budget: AtomicU64,
    /// The target's Suricata alerts.
    alerts: AlertStore,
}

/// A block's merged rollup, valid while the segments still hold `signature` records each.
struct CachedBlock {
    signature: Vec<u64>,
    /// `None` once evicted from memory.
    rollup: Option<Arc<Rollup>>,
    /// Whether the block file holds this signature.
    on_disk: bool,
    used: u64,
    bytes: usize,
}

/// Cached block lengths in hours, longest first: UTC days, quarter days.
const BLOCK_HOURS: [i64; 2] = [24, 6];

/// The default budget of rollups in memory.
pub const DEFAULT_CACHE_BUDGET: u64 = 256 << 20;

enum Evictable {
    Hour(i64),
    Block((i64, i64)),
}

/// A page of records, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The records of the page.
    pub records: Vec<Record>,
    /// Records read to answer.
    pub scanned: u64,
    /// Whether more records match after this page.
    pub more: bool,
}

fn hour_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(HOUR_MS)
}

impl LogStore {
    /// Opens (creating) the store in `dir` and applies retention.
    pub fn open(dir: impl Into<PathBuf>, retention: Retention) -> Result<Arc<Self>, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let store = Self {
            alerts: AlertStore::new(dir.join("eve"), retention),
            dir,
            retention,
            inner: Mutex::new(Inner::default()),
            blocks: Mutex::default(),
            clock: AtomicU64::new(0),
            cache_budget: AtomicU64::new(DEFAULT_CACHE_BUDGET),
        };
        {
            let mut inner = store.lock();
            store.reload_devices(&mut inner)?;
            store.scan_dir(&mut inner)?;
        }
        store.enforce_retention(Utc::now())?;
        Ok(Arc::new(store))
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The target's Suricata alerts.
    pub fn alerts(&self) -> &AlertStore {
        &self.alerts
    }

    /// Sets how many bytes of rollups the store keeps in memory.
    pub fn set_cache_budget(&self, bytes: u64) {
        self.cache_budget.store(bytes, Ordering::Relaxed);
        self.trim_cache();
    }

    /// About how many bytes the rollups in memory take.
    pub fn cached_bytes(&self) -> usize {
        let hours: usize = self.lock().hours.values().map(|h| h.bytes).sum();
        hours + self.lock_blocks().values().map(|b| b.bytes).sum::<usize>()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_blocks(&self) -> MutexGuard<'_, HashMap<(i64, i64), CachedBlock>> {
        self.blocks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn seg_path(&self, hour: i64) -> PathBuf {
        self.dir.join(format!("{hour}.seg"))
    }

    fn rollup_path(&self, hour: i64) -> PathBuf {
        self.dir.join(format!("{hour}.rollup"))
    }

    fn block_path(&self, first_hour: i64, len: i64) -> PathBuf {
        self.dir.join(format!("{first_hour}.b{len}.rollup"))
    }

    fn devices_path(&self) -> PathBuf {
        self.dir.join("interfaces.txt")
    }

    fn reload_devices(&self, inner: &mut Inner) -> Result<(), StoreError> {
        let path = self.devices_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        inner.devices = text.lines().map(str::to_string).collect();
        inner.ids = inner.devices.iter().enumerate().map(|(i, d)| (d.clone(), i as u16)).collect();
        Ok(())
    }

    /// Notices segments created since the last look (by this or another process).
    fn scan_dir(&self, inner: &mut Inner) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let Some(hour) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|h| h.parse::<i64>().ok())
            else {
                continue;
            };
            inner.hours.entry(hour).or_default();
        }
        Ok(())
    }

    /// The id of an interface device, interned on first use.
    pub fn interface_id(&self, device: &str) -> Result<u16, StoreError> {
        let mut inner = self.lock();
        self.intern(&mut inner, device)
    }

    fn intern(&self, inner: &mut Inner, device: &str) -> Result<u16, StoreError> {
        if let Some(id) = inner.ids.get(device) {
            return Ok(*id);
        }
        // Another process may have added devices since.
        self.reload_devices(inner)?;
        if let Some(id) = inner.ids.get(device) {
            return Ok(*id);
        }
        let id = u16::try_from(inner.devices.len()).map_err(|_| StoreError::TooManyInterfaces)?;
        let path = self.devices_path();
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        let clean: String = device.chars().filter(|c| !c.is_control()).collect();
        f.write_all(format!("{clean}\n").as_bytes()).map_err(io(&path))?;
        inner.devices.push(clean.clone());
        inner.ids.insert(clean, id);
        inner.ids.insert(device.to_string(), id);
        Ok(id)
    }

    /// The id of a known device, without interning it.
    pub fn known_interface_id(&self, device: &str) -> Option<u16> {
        let mut inner = self.lock();
        if !inner.ids.contains_key(device) {
            let _ = self.reload_devices(&mut inner);
        }
        inner.ids.get(device).copied()
    }

    /// The device of an interface id.
    pub fn device(&self, id: u16) -> String {
        let mut inner = self.lock();
        if usize::from(id) >= inner.devices.len() {
            let _ = self.reload_devices(&mut inner);
        }
        inner.devices.get(usize::from(id)).cloned().unwrap_or_else(|| format!("if{id}"))
    }

    /// Appends records (any order, any hours). Each hour's records are written with one append.
    pub fn append(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut by_hour: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        for r in records {
            by_hour.entry(hour_of(r.ts_ms)).or_default().extend_from_slice(&r.encode());
        }
        let mut inner = self.lock();
        for (hour, bytes) in by_hour {
            let path = self.seg_path(hour);
            let mut f = OpenOptions::new().create(true).append(true).read(true).open(&path).map_err(io(&path))?;
            let len = f.metadata().map_err(io(&path))?.len();
            if len % RECORD_SIZE as u64 != 0 {
                // A torn record from a crash: appending after it would misalign every later record.
                f.set_len(len - len % RECORD_SIZE as u64).map_err(io(&path))?;
            }
            f.write_all(&bytes).map_err(io(&path))?;
            inner.hours.entry(hour).or_default();
        }
        Ok(())
    }

    /// Writes the rollups that changed since they were last written (a cache: losing them costs a rescan).
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let hours: Vec<i64> = inner.hours.keys().copied().collect();
        for hour in hours {
            if let Some(h) = inner.hours.get(&hour)
                && h.loaded
                && h.covered > h.persisted
            {
                let bytes = postcard::to_stdvec(&(h.covered, &h.rollup)).unwrap_or_default();
                let covered = h.covered;
                let path = self.rollup_path(hour);
                let tmp = self.dir.join(format!("{hour}.rollup.tmp{}", std::process::id()));
                fs::write(&tmp, &bytes).map_err(io(&tmp))?;
                fs::rename(&tmp, &path).map_err(io(&path))?;
                if let Some(h) = inner.hours.get_mut(&hour) {
                    h.persisted = covered;
                }
            }
        }
        Ok(())
    }

    /// Brings one hour's rollup up to date with its segment.
    fn refresh_hour(&self, inner: &mut Inner, hour: i64) -> Result<(), StoreError> {
        let cache = inner.hours.entry(hour).or_default();
        if !cache.loaded {
            cache.install(self.read_hour_file(hour));
        }
        let path = self.seg_path(hour);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len() / RECORD_SIZE as u64,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&path)(e)),
        };
        if len < cache.covered {
            // The segment was replaced (retention in another process): start over.
            *cache = HourCache { loaded: true, ..Default::default() };
        }
        if len > cache.covered {
            for r in read_records(&path, cache.covered, len)? {
                cache.rollup.fold(&r);
            }
            cache.covered = len;
            cache.bytes = cache.rollup.approx_bytes();
        } else if cache.bytes == 0 {
            cache.bytes = cache.rollup.approx_bytes();
        }
        cache.used = self.tick();
        Ok(())
    }

    /// An hour's rollup file: the records it covers and their rollup (`None` if missing or unreadable).
    fn read_hour_file(&self, hour: i64) -> Option<(u64, Rollup)> {
        let bytes = fs::read(self.rollup_path(hour)).ok()?;
        postcard::from_bytes::<(u64, Rollup)>(&bytes).ok()
    }

    /// Reads an hour's rollup file into memory unless it is there, decoding outside the store's lock so that
    /// several hours can be read at once.
    fn load_hour(&self, hour: i64) {
        if self.lock().hours.get(&hour).is_none_or(|c| c.loaded) {
            return;
        }
        let decoded = self.read_hour_file(hour);
        let mut inner = self.lock();
        if let Some(cache) = inner.hours.get_mut(&hour)
            && !cache.loaded
        {
            cache.install(decoded);
        }
    }

    /// Whole records in an hour's segment now (0 when there is none).
    fn segment_records(&self, hour: i64) -> u64 {
        fs::metadata(self.seg_path(hour)).map_or(0, |m| m.len() / RECORD_SIZE as u64)
    }

    /// Records of one hour, in file order.
    pub fn hour_records(&self, hour: i64) -> Result<Vec<Record>, StoreError> {
        match self.segment_records(hour) {
            0 => Ok(Vec::new()),
            len => read_records(&self.seg_path(hour), 0, len),
        }
    }

    fn hours_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<i64>, StoreError> {
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let mut inner = self.lock();
        self.scan_dir(&mut inner)?;
        Ok(inner.hours.range(hour_of(from_ms)..=hour_of(to_ms.saturating_sub(1))).map(|(h, _)| *h).collect())
    }

    /// Calls `visit` with the rollup of every hour of `[from_ms, to_ms)`: the cached rollup for whole hours, a
    /// rollup of the records inside the span for the partial hours at the edges.
    pub fn visit_rollups(&self, from_ms: i64, to_ms: i64, mut visit: impl FnMut(&Rollup)) -> Result<(), StoreError> {
        for hour in self.hours_between(from_ms, to_ms)? {
            let start = hour * HOUR_MS;
            if start >= from_ms && start + HOUR_MS <= to_ms {
                let mut inner = self.lock();
                self.refresh_hour(&mut inner, hour)?;
                if let Some(h) = inner.hours.get(&hour) {
                    visit(&h.rollup);
                }
            } else {
                let mut edge = Rollup::default();
                for r in self.hour_records(hour)?.iter().filter(|r| r.ts_ms >= from_ms && r.ts_ms < to_ms) {
                    edge.fold(r);
                }
                visit(&edge);
            }
        }
        Ok(())
    }

    /// Calls `visit` with rollups that together cover exactly `[from_ms, to_ms)`: aligned blocks of whole hours
    /// inside the span (UTC days, then quarter days) as block rollups, the other whole hours as hour rollups,
    /// and the partial hours at the edges folded from their records.
    fn visit_span(&self, from_ms: i64, to_ms: i64, mut visit: impl FnMut(&Rollup)) -> Result<(), StoreError> {
        let first_hour = from_ms.div_euclid(HOUR_MS) + i64::from(from_ms.rem_euclid(HOUR_MS) != 0);
        let end_hour = to_ms.div_euclid(HOUR_MS);
        if first_hour >= end_hour {
            return self.visit_rollups(from_ms, to_ms, visit);
        }
        let mut pieces = Vec::new();
        let mut hour = first_hour;
        while hour < end_hour {
            let len = BLOCK_HOURS.iter().copied().find(|len| hour % len == 0 && hour + len <= end_hour).unwrap_or(1);
            pieces.push((hour, len));
            hour += len;
        }
        self.preload(&pieces);
        self.visit_rollups(from_ms, first_hour * HOUR_MS, &mut visit)?;
        for (hour, len) in pieces {
            if len == 1 {
                self.visit_rollups(hour * HOUR_MS, (hour + 1) * HOUR_MS, &mut visit)?;
            } else {
                visit(&*self.block_rollup(hour, len)?);
            }
        }
        self.visit_rollups(end_hour * HOUR_MS, to_ms, visit)?;
        self.trim_cache();
        Ok(())
    }

    /// Brings the hour and block rollups of `pieces` that are not in memory into it, on as many threads as there
    /// are cores: reading a rollup file is mostly decoding tens of thousands of sources, and a week needs a dozen.
    fn preload(&self, pieces: &[(i64, i64)]) {
        let missing: Vec<(i64, i64)> = {
            let hours = &self.lock().hours;
            let blocks = self.lock_blocks();
            pieces
                .iter()
                .copied()
                .filter(|(hour, len)| match len {
                    1 => hours.get(hour).is_some_and(|h| !h.loaded),
                    _ => blocks.get(&(*hour, *len)).is_none_or(|b| b.rollup.is_none()),
                })
                .collect()
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from).min(missing.len());
        if threads < 2 {
            return;
        }
        std::thread::scope(|scope| {
            for share in missing.chunks(missing.len().div_ceil(threads)) {
                scope.spawn(move || {
                    for (hour, len) in share {
                        if *len == 1 {
                            self.load_hour(*hour);
                        } else {
                            // An error comes back when the block is visited, in order.
                            drop(self.block_rollup(*hour, *len));
                        }
                    }
                });
            }
        });
    }

    /// Aggregates of the records with `from_ms <= ts < to_ms`; a week merges about twenty rollups, not 168.
    pub fn rollup(&self, from_ms: i64, to_ms: i64) -> Result<Rollup, StoreError> {
        let mut out = Rollup::default();
        self.visit_span(from_ms, to_ms, |r| {
            if out.records == 0 && out.sources.is_empty() {
                out = r.clone();
            } else {
                out.merge(r);
            }
        })?;
        Ok(out)
    }

    /// The record count of each segment of `len` hours from `first_hour`: what a block rollup was made from.
    fn block_signature(&self, first_hour: i64, len: i64) -> Vec<u64> {
        (first_hour..first_hour + len).map(|h| self.segment_records(h)).collect()
    }

    /// The merged rollup of `len` hours from `first_hour`: from memory, else from its file, else merged from
    /// its quarters or hours (and then written, once all its hours are over).
    fn block_rollup(&self, first_hour: i64, len: i64) -> Result<Arc<Rollup>, StoreError> {
        let signature = self.block_signature(first_hour, len);
        let mut on_disk = false;
        if let Some(b) = self.lock_blocks().get_mut(&(first_hour, len))
            && b.signature == signature
        {
            if let Some(r) = &b.rollup {
                b.used = self.tick();
                return Ok(r.clone());
            }
            on_disk = b.on_disk;
        }
        let path = self.block_path(first_hour, len);
        let from_file = if on_disk || path.exists() { read_block(&path, &signature) } else { None };
        let on_disk = from_file.is_some();
        let merged = match from_file {
            Some(r) => r,
            None => self.merge_block(first_hour, len)?,
        };
        let merged = Arc::new(merged);
        let settled = first_hour + len <= hour_of(Utc::now().timestamp_millis());
        let on_disk =
            on_disk || (settled && signature.iter().any(|n| *n > 0) && self.write_block(&path, &signature, &merged));
        let cached = CachedBlock {
            bytes: merged.approx_bytes(),
            signature,
            rollup: Some(merged.clone()),
            on_disk,
            used: self.tick(),
        };
        self.lock_blocks().insert((first_hour, len), cached);
        Ok(merged)
    }

    fn merge_block(&self, first_hour: i64, len: i64) -> Result<Rollup, StoreError> {
        let mut merged = Rollup::default();
        match BLOCK_HOURS.iter().copied().find(|part| *part < len && len % part == 0) {
            Some(part) => {
                for start in (first_hour..first_hour + len).step_by(part as usize) {
                    merged.merge(&*self.block_rollup(start, part)?);
                }
            }
            None => self.visit_rollups(first_hour * HOUR_MS, (first_hour + len) * HOUR_MS, |r| merged.merge(r))?,
        }
        Ok(merged)
    }

    /// Writes a block file; a cache, so a failure is logged and the block stays in memory only.
    fn write_block(&self, path: &Path, signature: &[u64], rollup: &Rollup) -> bool {
        let written = postcard::to_stdvec(&(signature, rollup)).map_err(std::io::Error::other).and_then(|bytes| {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            fs::write(&tmp, &bytes)?;
            fs::rename(&tmp, path)
        });
        match written {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(path = %path.display(), "block rollup not written: {e}");
                false
            }
        }
    }

    /// Writes the rollup files of everything that ended before `now`: a block file for every whole UTC day with
    /// lines, then for today's quarter days that ended, then the hour rollups of the current quarter's past hours.
    /// A store opened later (a restart) then answers a week from about twenty files. Meant for a background task:
    /// what is already current costs a look at segment sizes. Returns the number of blocks (re)built.
    pub fn settle(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let current_hour = hour_of(now.timestamp_millis());
        let today = current_hour.div_euclid(24) * 24;
        let quarter = current_hour.div_euclid(6) * 6;
        let hours: Vec<i64> = {
            let mut inner = self.lock();
            self.scan_dir(&mut inner)?;
            inner.hours.range(..current_hour).map(|(h, _)| *h).collect()
        };
        let days: std::collections::BTreeSet<i64> =
            hours.iter().map(|h| h.div_euclid(24) * 24).filter(|d| *d < today).collect();
        let quarters: std::collections::BTreeSet<i64> =
            hours.iter().map(|h| h.div_euclid(6) * 6).filter(|q| (today..quarter).contains(q)).collect();
        let mut built = 0;
        for (first_hour, len) in days.into_iter().map(|d| (d, 24)).chain(quarters.into_iter().map(|q| (q, 6))) {
            built += usize::from(self.settle_block(first_hour, len)?);
        }
        for hour in hours.into_iter().filter(|h| *h >= quarter) {
            self.refresh_hour(&mut self.lock(), hour)?;
        }
        self.flush()?;
        self.trim_cache();
        Ok(built)
    }

    /// Builds (or reads) a block unless its file is known to be current; whether it was not.
    fn settle_block(&self, first_hour: i64, len: i64) -> Result<bool, StoreError> {
        let signature = self.block_signature(first_hour, len);
        let current = self.lock_blocks().get(&(first_hour, len)).is_some_and(|b| b.on_disk && b.signature == signature);
        if !current {
            self.block_rollup(first_hour, len)?;
            self.trim_cache();
        }
        Ok(!current)
    }

    /// Drops the least recently used rollups from memory while they take more than the budget. Hour rollups
    /// not yet written are dropped too: they are folded again from their segment when needed.
    fn trim_cache(&self) {
        let budget = usize::try_from(self.cache_budget.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        let mut inner = self.lock();
        let mut blocks = self.lock_blocks();
        let mut total: usize =
            inner.hours.values().map(|h| h.bytes).sum::<usize>() + blocks.values().map(|b| b.bytes).sum::<usize>();
        if total <= budget {
            return;
        }
        let mut candidates: Vec<(u64, Evictable)> = inner
            .hours
            .iter()
            .filter(|(_, h)| h.loaded)
            .map(|(hour, h)| (h.used, Evictable::Hour(*hour)))
            .chain(blocks.iter().filter(|(_, b)| b.rollup.is_some()).map(|(k, b)| (b.used, Evictable::Block(*k))))
            .collect();
        candidates.sort_unstable_by_key(|c| c.0);
        for (_, victim) in candidates {
            if total <= budget {
                break;
            }
            match victim {
                Evictable::Hour(hour) => {
                    if let Some(h) = inner.hours.get_mut(&hour) {
                        total -= h.bytes;
                        *h = HourCache::default();
                    }
                }
                Evictable::Block(key) => {
                    if let Some(b) = blocks.get_mut(&key) {
                        total -= b.bytes;
                        b.bytes = 0;
                        b.rollup = None;
                    }
                }
            }
        }
    }

    /// Totals and traffic (no per-source, per-port or per-rule detail) of `[from_ms, to_ms)`.
    pub fn traffic_rollup(&self, from_ms: i64, to_ms: i64) -> Result<Rollup, StoreError> {
        let mut out = Rollup::default();
        self.visit_span(from_ms, to_ms, |r| out.merge_traffic(r))?;
        Ok(out)
    }

    /// What the given sources did in `[from_ms, to_ms)` (sources never seen are absent).
    pub fn sources_rollup(
        &self,
        from_ms: i64,
        to_ms: i64,
        sources: &[std::net::IpAddr],
    ) -> Result<HashMap<std::net::IpAddr, portcullis_logs::rollup::SourceStat>, StoreError> {
        let mut out: HashMap<std::net::IpAddr, portcullis_logs::rollup::SourceStat> = HashMap::new();
        self.visit_span(from_ms, to_ms, |r| {
            for ip in sources {
                if let Some(s) = r.sources.get(ip) {
                    out.entry(*ip).or_default().merge(s);
                }
            }
        })?;
        Ok(out)
    }

    /// Lines per hour start (ms) for the hours of `[from_ms, to_ms)`, from segment sizes (nothing is read).
    pub fn hourly_counts(&self, from_ms: i64, to_ms: i64) -> Result<BTreeMap<i64, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for hour in self.hours_between(from_ms, to_ms)? {
            let len = self.segment_records(hour);
            out.insert(hour * HOUR_MS, len);
        }
        Ok(out)
    }

    /// Records with `from_ms <= ts < to_ms` that `keep` accepts, newest first, skipping `offset` and returning at
    /// most `limit`.
    pub fn query(
        &self,
        from_ms: i64,
        to_ms: i64,
        offset: usize,
        limit: usize,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> Result<Page, StoreError> {
        let mut page = Page { records: Vec::new(), scanned: 0, more: false };
        let mut skipped = 0;
        for hour in self.hours_between(from_ms, to_ms)?.into_iter().rev() {
            let mut records = self.hour_records(hour)?;
            page.scanned += records.len() as u64;
            records.retain(|r| r.ts_ms >= from_ms && r.ts_ms < to_ms && keep(r));
            records.sort_by_key(|r| std::cmp::Reverse(r.ts_ms));
            for r in records {
                if skipped < offset {
                    skipped += 1;
                } else if page.records.len() < limit {
                    page.records.push(r);
                } else {
                    page.more = true;
                    return Ok(page);
                }
            }
        }
        Ok(page)
    }

    /// Total records and bytes on disk.
    pub fn size(&self) -> Result<(u64, u64), StoreError> {
        let mut bytes = 0;
        for hour in self.hours_between(i64::MIN / 2, i64::MAX / 2)? {
            bytes += fs::metadata(self.seg_path(hour)).map(|m| m.len()).unwrap_or(0);
        }
        Ok((bytes / RECORD_SIZE as u64, bytes))
    }

    /// Deletes segments older than the maximum age, then the oldest while over the byte budget, and the alert
    /// files the same way (their bytes counted on their own). Returns the number of segments and alert files
    /// deleted.
    pub fn enforce_retention(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let alert_files = self.alerts.enforce_retention(now)?;
        Ok(alert_files + self.enforce_segment_retention(now)?)
    }

    fn enforce_segment_retention(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        self.scan_dir(&mut inner)?;
        let oldest_kept = hour_of((now - self.retention.max_age).timestamp_millis());
        let mut sizes: Vec<(i64, u64)> =
            inner.hours.keys().map(|h| (*h, fs::metadata(self.seg_path(*h)).map(|m| m.len()).unwrap_or(0))).collect();
        let mut total: u64 = sizes.iter().map(|s| s.1).sum();
        let mut doomed = Vec::new();
        for (hour, size) in sizes.drain(..) {
            if hour < oldest_kept || total > self.retention.max_bytes {
                doomed.push(hour);
                total -= size;
            }
        }
        for hour in &doomed {
            let blocks = BLOCK_HOURS.map(|len| self.block_path(hour - hour.rem_euclid(len), len));
            for path in [self.seg_path(*hour), self.rollup_path(*hour)].into_iter().chain(blocks) {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
            }
            inner.hours.remove(hour);
        }
        if !doomed.is_empty() {
            self.lock_blocks().clear();
        }
        Ok(doomed.len())
    }
}

/// A block file's rollup, if it was made from segments of exactly `signature` records.
fn read_block(path: &Path, signature: &[u64]) -> Option<Rollup> {
    let bytes = fs::read(path).ok()?;
    let (stamp, rest) = postcard::take_from_bytes::<Vec<u64>>(&bytes).ok()?;
    if stamp != signature {
        return None;
    }
    postcard::from_bytes::<Rollup>(rest).ok()
}

fn read_records(path: &Path, from: u64, to: u64) -> Result<Vec<Record>, StoreError> {
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(from * RECORD_SIZE as u64)).map_err(io(path))?;
    let mut buf = vec![0u8; ((to - from) as usize) * RECORD_SIZE];
    f.read_exact(&mut buf).map_err(io(path))?;
    Ok(buf.chunks_exact(RECORD_SIZE).filter_map(Record::decode).collect())
}

#[cfg(test)]
mod tests;
