//! Log files: one-shot import (plain or `.gz`), and a follower that reads what is appended, across rotation
//! (rename and create: the rest of the old file is read from the still-open handle first) and truncation
//! (copytruncate), remembering its place in a file beside the segments so a restart neither skips nor repeats.

use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::{IngestStats, LogStore, StoreError, io};

/// Lines stored per append while importing.
const IMPORT_BATCH: usize = 50_000;

/// Imports a whole file; a name ending in `.gz` is decompressed.
pub fn import_file(store: &LogStore, path: &Path, now: DateTime<Utc>) -> Result<IngestStats, StoreError> {
    let file = File::open(path).map_err(io(path))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut stats = IngestStats::default();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    for line in BufReader::new(reader).split(b'\n') {
        let line = line.map_err(io(path))?;
        batch.push(String::from_utf8_lossy(&line).into_owned());
        if batch.len() == IMPORT_BATCH {
            stats.add(store.ingest_lines(batch.iter().map(String::as_str), now)?);
            batch.clear();
        }
    }
    stats.add(store.ingest_lines(batch.iter().map(String::as_str), now)?);
    store.flush()?;
    Ok(stats)
}

/// Follows one growing log file.
pub struct Follower {
    path: PathBuf,
    state_path: PathBuf,
    file: Option<File>,
    inode: u64,
    offset: u64,
    /// An incomplete last line, completed by the next read.
    partial: Vec<u8>,
}

impl Follower {
    /// A follower of `path`, resuming where an earlier one stopped when the file is still the same.
    pub fn new(store: &LogStore, path: &Path) -> Self {
        let mut h = DefaultHasher::new();
        path.hash(&mut h);
        let state_path = store.dir().join(format!("follow-{:016x}.pos", h.finish()));
        let (inode, offset) = fs::read_to_string(&state_path)
            .ok()
            .and_then(|t| {
                let (i, o) = t.trim().split_once(' ')?;
                Some((i.parse().ok()?, o.parse().ok()?))
            })
            .unwrap_or((0, 0));
        Self { path: path.to_path_buf(), state_path, file: None, inode, offset, partial: Vec::new() }
    }

    /// Reads and stores what was appended since the last poll.
    pub fn poll(&mut self, store: &LogStore, now: DateTime<Utc>) -> Result<IngestStats, StoreError> {
        let mut bytes = Vec::new();
        // The rest of the file we had open: after a rename it is the rotated file.
        if let Some(f) = self.file.as_mut() {
            self.offset += f.read_to_end(&mut bytes).map_err(io(&self.path))? as u64;
        }
        match fs::metadata(&self.path) {
            Ok(meta) if meta.ino() != self.inode || self.file.is_none() => {
                let mut f = File::open(&self.path).map_err(io(&self.path))?;
                let resume = meta.ino() == self.inode && self.offset <= meta.len();
                if !resume {
                    self.offset = 0;
                    self.partial.clear();
                }
                f.seek(SeekFrom::Start(self.offset)).map_err(io(&self.path))?;
                self.offset += f.read_to_end(&mut bytes).map_err(io(&self.path))? as u64;
                self.inode = meta.ino();
                self.file = Some(f);
            }
            Ok(meta) if meta.len() < self.offset => {
                // Truncated in place (copytruncate): start again from the top.
                if let Some(f) = self.file.as_mut() {
                    f.seek(SeekFrom::Start(0)).map_err(io(&self.path))?;
                    bytes.clear();
                    self.partial.clear();
                    self.offset = f.read_to_end(&mut bytes).map_err(io(&self.path))? as u64;
                }
            }
            Ok(_) => {}
            // Between rotation and the new file's creation: read the new one next time.
            Err(_) => self.file = None,
        }
        self.partial.extend_from_slice(&bytes);
        let complete = match self.partial.iter().rposition(|b| *b == b'\n') {
            Some(i) => self.partial.drain(..=i).collect::<Vec<u8>>(),
            None => Vec::new(),
        };
        let text = String::from_utf8_lossy(&complete);
        let stats = store.ingest_lines(text.lines().filter(|l| !l.is_empty()), now)?;
        let kept = self.offset - self.partial.len() as u64;
        let tmp = self.state_path.with_extension("tmp");
        fs::write(&tmp, format!("{} {kept}\n", self.inode)).map_err(io(&tmp))?;
        fs::rename(&tmp, &self.state_path).map_err(io(&self.state_path))?;
        Ok(stats)
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
