//! Log files: one-shot import (plain or `.gz`), and a follower that reads what is appended, across rotation
//! (rename and create: the rest of the old file is read from the still-open handle first) and truncation
//! (copytruncate), remembering its place in a file beside the segments so a restart neither skips nor repeats.
//! Both read in bounded chunks and hand whole lines to a sink: the filterlog segments ([`Follower::poll`],
//! [`import_file`]) or the Suricata alerts ([`Follower::poll_eve`], [`import_eve`]).

use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::alerts::{EveIngestStats, EveOrigin, LINE_TOO_LONG};
use crate::{IngestStats, LogStore, StoreError, io};

/// Bytes read at a time, and so the most handed to a sink at once (plus a partial line carried over).
const CHUNK: usize = 4 << 20;

/// The longest filterlog line read whole (pfSense's are a few hundred bytes): a longer one is dropped unread, so a
/// file without line breaks cannot fill the memory.
pub const MAX_FILTERLOG_LINE: usize = 1 << 20;

/// A sink of whole lines: each call gets complete lines, `\n`-separated (the last one ends with `\n`, except at the
/// end of an imported file).
pub type LineSink<'a> = dyn FnMut(&[u8]) -> Result<(), StoreError> + 'a;

/// Splits a stream of bytes into whole lines, carrying a partial line over to the next bytes and dropping (and
/// counting) lines longer than `max_line` without holding them.
struct Lines {
    partial: Vec<u8>,
    max_line: usize,
    /// Inside a line that was too long: bytes are dropped up to its end.
    discarding: bool,
    /// Lines dropped as too long.
    overlong: u64,
}

impl Lines {
    fn new(max_line: usize) -> Self {
        Self { partial: Vec::new(), max_line, discarding: false, overlong: 0 }
    }

    /// Hands the whole lines `bytes` completes to `sink`.
    fn feed(&mut self, mut bytes: &[u8], sink: &mut LineSink<'_>) -> Result<(), StoreError> {
        if self.discarding {
            match memchr::memchr(b'\n', bytes) {
                None => return Ok(()),
                Some(i) => {
                    self.discarding = false;
                    bytes = bytes.get(i + 1..).unwrap_or_default();
                }
            }
        }
        let Some(last) = memchr::memrchr(b'\n', bytes) else {
            self.hold(bytes);
            return Ok(());
        };
        let (whole, tail) = bytes.split_at(last + 1);
        if self.partial.is_empty() {
            sink(whole)?;
        } else {
            self.partial.extend_from_slice(whole);
            let result = sink(&self.partial);
            self.partial.clear();
            result?;
        }
        self.hold(tail);
        Ok(())
    }

    /// Keeps the start of a line until its end arrives, unless it is already too long.
    fn hold(&mut self, bytes: &[u8]) {
        if self.partial.len() + bytes.len() > self.max_line {
            self.partial.clear();
            self.discarding = true;
            self.overlong += 1;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// At the end of a file that is read once: its last line, if it has no line break.
    fn finish(&mut self, sink: &mut LineSink<'_>) -> Result<(), StoreError> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let result = sink(&self.partial);
        self.partial.clear();
        result
    }

    fn reset(&mut self) {
        self.partial.clear();
        self.discarding = false;
    }
}

/// Reads a whole file (decompressed when its name ends in `.gz`), handing whole lines to `sink`; returns the
/// lines dropped as longer than `max_line`.
pub fn read_lines(path: &Path, max_line: usize, sink: &mut LineSink<'_>) -> Result<u64, StoreError> {
    let file = File::open(path).map_err(io(path))?;
    let mut reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut lines = Lines::new(max_line);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path)(e)),
        };
        lines.feed(chunk.get(..n).unwrap_or_default(), sink)?;
    }
    lines.finish(sink)?;
    Ok(lines.overlong)
}

/// The filterlog lines of `bytes`, stored; counts added to `stats`.
fn ingest_filterlog(
    store: &LogStore,
    bytes: &[u8],
    now: DateTime<Utc>,
    stats: &mut IngestStats,
) -> Result<(), StoreError> {
    let text = String::from_utf8_lossy(bytes);
    stats.add(store.ingest_lines(text.lines().filter(|l| !l.is_empty()), now)?);
    Ok(())
}

/// Counts `n` filterlog lines dropped as too long.
fn count_overlong(stats: &mut IngestStats, n: u64) {
    if n > 0 {
        stats.lines += n;
        stats.malformed += n;
        *stats.skipped.entry(LINE_TOO_LONG.to_string()).or_insert(0) += n;
    }
}

/// Imports a whole file of filterlog lines; a name ending in `.gz` is decompressed.
pub fn import_file(store: &LogStore, path: &Path, now: DateTime<Utc>) -> Result<IngestStats, StoreError> {
    let mut stats = IngestStats::default();
    let overlong = read_lines(path, MAX_FILTERLOG_LINE, &mut |bytes| ingest_filterlog(store, bytes, now, &mut stats))?;
    count_overlong(&mut stats, overlong);
    store.flush()?;
    Ok(stats)
}

/// Imports a whole Suricata eve.json file (plain or `.gz`) into the store's alerts: alerts stored with `origin`'s
/// interface and sensor, other events counted, lines that are not events skipped and counted by reason.
pub fn import_eve(
    store: &LogStore,
    path: &Path,
    origin: &EveOrigin<'_>,
    now: DateTime<Utc>,
) -> Result<EveIngestStats, StoreError> {
    let mut stats = EveIngestStats::default();
    let max = portcullis_logs::eve::MAX_LINE_BYTES + 2;
    let overlong = read_lines(path, max, &mut |bytes| {
        stats.add(store.alerts().ingest(bytes, origin, now)?);
        Ok(())
    })?;
    stats.skip(LINE_TOO_LONG, overlong);
    Ok(stats)
}

/// Where a follower is in its file, as last saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Position {
    inode: u64,
    /// The offset of the first byte not yet handed to a sink whole.
    offset: u64,
    /// Inside a line too long to keep.
    discarding: bool,
}

/// Follows one growing log file: what is appended is read in chunks of at most 4 MiB and handed to a sink in whole
/// lines, across rotation (rename and create: the rest of the old file is read from the still-open handle first)
/// and truncation (copytruncate). The place reached is saved beside the store after every chunk a sink took, so a
/// restart neither skips nor repeats; a sink that fails leaves the place where it was, and the same lines are
/// offered again at the next poll.
pub struct Follower {
    path: PathBuf,
    state_path: PathBuf,
    /// The open file and its inode.
    file: Option<(File, u64)>,
    inode: u64,
    /// Bytes of the current file read so far.
    offset: u64,
    lines: Lines,
    saved: Position,
}

/// 64-bit FNV-1a: a name for a file's state that stays the same across Rust releases.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

impl Follower {
    /// A follower of a filterlog file, resuming where an earlier one stopped when the file is still the same.
    pub fn new(store: &LogStore, path: &Path) -> Self {
        let mut h = DefaultHasher::new();
        path.hash(&mut h);
        let state_path = store.dir().join(format!("follow-{:016x}.pos", h.finish()));
        Self::with_state(path, state_path, MAX_FILTERLOG_LINE)
    }

    /// A follower of a Suricata eve.json file, its place kept beside `store` (`follow-eve-<hash>.pos`).
    pub fn eve(store: &LogStore, path: &Path) -> Self {
        let state_path = store.dir().join(format!("follow-eve-{:016x}.pos", fnv(path.as_os_str().as_encoded_bytes())));
        Self::with_state(path, state_path, portcullis_logs::eve::MAX_LINE_BYTES + 2)
    }

    /// A follower of `path` whose place is kept in `state_path`; lines longer than `max_line` bytes are dropped.
    pub fn with_state(path: &Path, state_path: PathBuf, max_line: usize) -> Self {
        let saved = fs::read_to_string(&state_path)
            .ok()
            .and_then(|t| {
                let mut words = t.split_whitespace();
                let inode = words.next()?.parse().ok()?;
                let offset = words.next()?.parse().ok()?;
                Some(Position { inode, offset, discarding: words.next() == Some("d") })
            })
            .unwrap_or_default();
        let mut lines = Lines::new(max_line);
        lines.discarding = saved.discarding;
        Self {
            path: path.to_path_buf(),
            state_path,
            file: None,
            inode: saved.inode,
            offset: saved.offset,
            lines,
            saved,
        }
    }

    /// The followed file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and stores the filterlog lines appended since the last poll.
    pub fn poll(&mut self, store: &LogStore, now: DateTime<Utc>) -> Result<IngestStats, StoreError> {
        let mut stats = IngestStats::default();
        let overlong = self.poll_with(&mut |bytes| ingest_filterlog(store, bytes, now, &mut stats))?;
        count_overlong(&mut stats, overlong);
        Ok(stats)
    }

    /// Reads the eve.json lines appended since the last poll into the store's alerts.
    pub fn poll_eve(
        &mut self,
        store: &LogStore,
        origin: &EveOrigin<'_>,
        now: DateTime<Utc>,
    ) -> Result<EveIngestStats, StoreError> {
        let mut stats = EveIngestStats::default();
        let overlong = self.poll_with(&mut |bytes| {
            stats.add(store.alerts().ingest(bytes, origin, now)?);
            Ok(())
        })?;
        stats.skip(LINE_TOO_LONG, overlong);
        Ok(stats)
    }

    /// Reads what was appended since the last poll, handing whole lines to `sink`; returns the lines dropped as
    /// too long. On an error (of the file or of the sink) the place goes back to the last one saved.
    pub fn poll_with(&mut self, sink: &mut LineSink<'_>) -> Result<u64, StoreError> {
        let before = self.lines.overlong;
        match self.read_new(sink) {
            Ok(()) => {
                self.save()?;
                Ok(self.lines.overlong - before)
            }
            Err(e) => {
                self.restore();
                Err(e)
            }
        }
    }

    fn read_new(&mut self, sink: &mut LineSink<'_>) -> Result<(), StoreError> {
        // The rest of the file we had open: after a rename it is the rotated file.
        if let Some((mut f, ino)) = self.file.take() {
            let read = self.drain(&mut f, sink);
            self.file = Some((f, ino));
            read?;
        }
        match fs::metadata(&self.path) {
            Ok(meta) if meta.ino() != self.inode || self.file.is_none() => {
                let mut f = File::open(&self.path).map_err(io(&self.path))?;
                // The file opened, which may have been replaced since the look above.
                let meta = f.metadata().map_err(io(&self.path))?;
                let resume = meta.ino() == self.inode && self.offset <= meta.len();
                if !resume {
                    self.offset = 0;
                    self.lines.reset();
                }
                f.seek(SeekFrom::Start(self.offset)).map_err(io(&self.path))?;
                self.inode = meta.ino();
                let read = self.drain(&mut f, sink);
                self.file = Some((f, meta.ino()));
                read?;
            }
            Ok(meta) if meta.len() < self.offset => {
                // Truncated in place (copytruncate): start again from the top.
                if let Some((mut f, ino)) = self.file.take() {
                    f.seek(SeekFrom::Start(0)).map_err(io(&self.path))?;
                    self.offset = 0;
                    self.lines.reset();
                    let read = self.drain(&mut f, sink);
                    self.file = Some((f, ino));
                    read?;
                }
            }
            Ok(_) => {}
            // Between rotation and the new file's creation: read the new one next time.
            Err(_) => self.file = None,
        }
        Ok(())
    }

    /// Reads `f` to its end in chunks, each chunk's whole lines to `sink`, saving the place after each.
    fn drain(&mut self, f: &mut File, sink: &mut LineSink<'_>) -> Result<(), StoreError> {
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = match f.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(&self.path)(e)),
            };
            self.offset += n as u64;
            self.lines.feed(chunk.get(..n).unwrap_or_default(), sink)?;
            self.save()?;
        }
    }

    fn position(&self) -> Position {
        Position {
            inode: self.inode,
            offset: self.offset - self.lines.partial.len() as u64,
            discarding: self.lines.discarding,
        }
    }

    fn save(&mut self) -> Result<(), StoreError> {
        let now = self.position();
        if now == self.saved {
            return Ok(());
        }
        let tmp = self.state_path.with_extension("tmp");
        let flag = if now.discarding { " d" } else { "" };
        fs::write(&tmp, format!("{} {}{flag}\n", now.inode, now.offset)).map_err(io(&tmp))?;
        fs::rename(&tmp, &self.state_path).map_err(io(&self.state_path))?;
        self.saved = now;
        Ok(())
    }

    /// Back to the last saved place: the open file is kept (and rewound) when it is the saved one.
    fn restore(&mut self) {
        let saved = self.saved;
        self.lines.reset();
        self.lines.discarding = saved.discarding;
        self.inode = saved.inode;
        self.offset = saved.offset;
        let rewound = match self.file.as_mut() {
            Some((f, ino)) if *ino == saved.inode => f.seek(SeekFrom::Start(saved.offset)).is_ok(),
            _ => false,
        };
        if !rewound {
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::Retention;

    fn line(i: u32) -> String {
        format!(
            "<134>1 2026-11-21T10:00:00Z fw filterlog 1 - - 5,,,1000000103,em0,match,block,in,4,0x0,,64,1,0,DF,6,tcp,60,203.0.113.{},198.51.100.2,40000,22,0,S,1,,64240,,mss\n",
            i % 250
        )
    }

    fn append(path: &Path, from: u32, to: u32) {
        let mut f = fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        for i in from..to {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    }

    #[test]
    fn follows_appends_rotation_truncation_and_restarts_without_loss_or_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path().join("store"), Retention::default()).unwrap();
        let log = dir.path().join("filter.log");
        let now = Utc::now();
        append(&log, 0, 10);
        let mut f = Follower::new(&store, &log);
        assert_eq!(f.poll(&store, now).unwrap().stored, 10);
        // A half-written line waits for its end.
        fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"<134>1 2026-11-21T10:00:00Z fw").unwrap();
        assert_eq!(f.poll(&store, now).unwrap().stored, 0);
        fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(line(0).trim_start_matches("<134>1 2026-11-21T10:00:00Z fw").as_bytes())
            .unwrap();
        assert_eq!(f.poll(&store, now).unwrap().stored, 1);
        // Rotation: lines written to the old file just before the rename, then a new file.
        append(&log, 10, 15);
        fs::rename(&log, dir.path().join("filter.log.0")).unwrap();
        append(&log, 15, 22);
        assert_eq!(f.poll(&store, now).unwrap().stored, 12);
        // A restart resumes at the same place.
        append(&log, 22, 25);
        let mut again = Follower::new(&store, &log);
        assert_eq!(again.poll(&store, now).unwrap().stored, 3);
        // copytruncate.
        fs::write(&log, line(99)).unwrap();
        assert_eq!(again.poll(&store, now).unwrap().stored, 1);
        assert_eq!(store.size().unwrap().0, 10 + 1 + 12 + 3 + 1);
    }

    fn eve_line(i: u32) -> String {
        format!(
            r#"{{"timestamp":"2026-11-30T10:00:{:02}.000001+0100","event_type":"alert","src_ip":"203.0.113.{}","dest_ip":"198.51.100.2","dest_port":22,"proto":"TCP","alert":{{"signature_id":{},"signature":"ET SCAN test","severity":2}}}}
"#,
            i % 60,
            i % 250,
            1000 + i
        )
    }

    fn append_text(path: &Path, text: &[u8]) {
        fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text).unwrap();
    }

    #[test]
    fn eve_follower_stores_alerts_across_rotation_truncation_restart_and_overlong_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path().join("store"), Retention::default()).unwrap();
        let eve = dir.path().join("eve.json");
        let now: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let origin = EveOrigin { interface: Some("wan"), sensor: Some("ids1") };
        let lines = |from: u32, to: u32| (from..to).map(eve_line).collect::<String>();
        append_text(&eve, lines(0, 5).as_bytes());
        let mut f = Follower::eve(&store, &eve);
        assert_eq!(f.poll_eve(&store, &origin, now).unwrap().alerts, 5);
        // A line with no end yet longer than any event: dropped without being held, counted once it ends.
        append_text(&eve, &vec![b'x'; 40_000]);
        assert_eq!(f.poll_eve(&store, &origin, now).unwrap().lines, 0);
        append_text(&eve, &vec![b'y'; 40_000]);
        let s = f.poll_eve(&store, &origin, now).unwrap();
        assert_eq!((s.lines, s.skipped, s.alerts), (1, 1, 0), "{s:?}");
        assert!(f.lines.partial.is_empty());
        append_text(&eve, format!("zzz\n{}", lines(5, 7)).as_bytes());
        let s = f.poll_eve(&store, &origin, now).unwrap();
        assert_eq!((s.alerts, s.skipped), (2, 0), "the rest of the long line is not a line: {s:?}");
        // Rotation mid-stream: lines written to the old file just before the rename, a half line, then a new file.
        append_text(&eve, lines(7, 10).as_bytes());
        fs::rename(&eve, dir.path().join("eve.json.1")).unwrap();
        append_text(&eve, lines(10, 14).as_bytes());
        let s = f.poll_eve(&store, &origin, now).unwrap();
        assert_eq!(s.alerts, 7, "{s:?}");
        // A restart resumes at the same place.
        append_text(&eve, lines(14, 16).as_bytes());
        drop(f);
        let mut again = Follower::eve(&store, &eve);
        assert_eq!(again.poll_eve(&store, &origin, now).unwrap().alerts, 2);
        // copytruncate.
        fs::write(&eve, eve_line(99)).unwrap();
        assert_eq!(again.poll_eve(&store, &origin, now).unwrap().alerts, 1);
        let mut sids = Vec::new();
        store.alerts().visit_alerts(0, i64::MAX / 2, |a| sids.push(a.signature_id)).unwrap();
        sids.sort();
        let mut want: Vec<u32> = (1000..1016).chain([1099]).collect();
        want.sort();
        assert_eq!(sids, want, "every alert once");
        // A filterlog follower of the same path keeps its own place.
        assert_ne!(Follower::new(&store, &eve).state_path, again.state_path);
    }

    #[test]
    fn a_failing_sink_leaves_the_place_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path().join("store"), Retention::default()).unwrap();
        let log = dir.path().join("filter.log");
        append(&log, 0, 3);
        let mut f = Follower::new(&store, &log);
        let failing = f.poll_with(&mut |_| Err(StoreError::TooManyInterfaces));
        assert!(failing.is_err());
        let mut seen = 0;
        f.poll_with(&mut |bytes| {
            seen += bytes.iter().filter(|b| **b == b'\n').count();
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 3, "the same lines are offered again");
        assert_eq!(f.poll(&store, Utc::now()).unwrap().lines, 0);
    }

    #[test]
    fn imports_eve_files_and_says_what_it_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path().join("store"), Retention::default()).unwrap();
        let eve = dir.path().join("eve.json.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&eve).unwrap(), flate2::Compression::fast());
        for i in 0..10 {
            enc.write_all(eve_line(i).as_bytes()).unwrap();
        }
        enc.write_all(b"not json\n").unwrap();
        enc.write_all(&vec![b'{'; 200_000]).unwrap();
        enc.write_all(b"\n").unwrap();
        enc.write_all(eve_line(10).trim_end().as_bytes()).unwrap();
        enc.finish().unwrap();
        let now: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let s = import_eve(&store, &eve, &EveOrigin::default(), now).unwrap();
        assert_eq!((s.lines, s.alerts, s.skipped), (13, 11, 2), "{s:?}");
        assert_eq!(s.skipped_summary(), "skipped 2: 1 line too long, 1 not JSON");
        assert_eq!(s.events_summary(), "11 alert");
    }

    #[test]
    fn imports_plain_and_gzipped_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path().join("store"), Retention::default()).unwrap();
        let plain = dir.path().join("filter.log.1");
        append(&plain, 0, 40);
        let gz = dir.path().join("filter.log.2.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        for i in 0..60 {
            enc.write_all(line(i).as_bytes()).unwrap();
        }
        enc.write_all(b"not a filterlog line\n").unwrap();
        enc.finish().unwrap();
        let now = Utc::now();
        assert_eq!(import_file(&store, &plain, now).unwrap().stored, 40);
        let s = import_file(&store, &gz, now).unwrap();
        assert_eq!((s.stored, s.malformed), (60, 1));
        assert_eq!(store.size().unwrap().0, 100);
    }
}
