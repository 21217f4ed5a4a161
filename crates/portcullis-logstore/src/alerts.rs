//! Suricata alerts of one target, beside its log store: `<store>/eve/<hour>.alerts`, one file per UTC hour (by the
//! alert's own timestamp), each a sequence of frames appended whole with `O_APPEND` (several processes may write):
//! an alert per frame, and per ingestion batch and hour one frame of counts of every event read (eve.json's other
//! events are counted, not kept), its last `stats` event being the sensor's heartbeat.
//!
//! A frame is `magic (4) | length (u32 LE) | CRC-32 of length and payload (u32 LE) | payload` (the payload is
//! postcard). A reader checks each frame and, at a damaged one (a write torn by a crash, bytes interleaved by a
//! failing disk), skips to the next magic whose frame checks: damage costs the frames it touches, never what
//! follows, nothing is ever truncated (which could cut another process' write in flight), and no damaged bytes
//! are read as an alert.
//!
//! Questions over a span read the hours it touches; retention deletes whole hours by age and by the bytes they
//! use, like the segments.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use portcullis_logs::eve::{EveError, EveErrorKind, EventKind, MAX_EVENT_TYPE_LEN, MAX_OTHER_EVENT_NAMES, parse_line};
use portcullis_logs::ids::{EventCounts, EventTotals, IdsAlert, us_time};
use serde::{Deserialize, Serialize};

use crate::{Retention, StoreError, io};

const MAGIC: [u8; 4] = *b"PcE1";
const HEADER: usize = 12;
/// The largest payload a frame may have: an alert from a line of at most 64 KiB is smaller.
const MAX_PAYLOAD: usize = 128 * 1024;
const HOUR_US: i64 = 3_600_000_000;

/// Events this far ahead of the clock are refused (a sensor's clock a little fast is fine; a year 9999 is not,
/// and would keep an hour file no age limit removes).
pub const MAX_AHEAD: TimeDelta = TimeDelta::days(1);

/// Why a line was skipped, besides the parser's reasons.
pub const NOT_UTF8: &str = "not UTF-8";
/// A line longer than the parser reads (`eve::MAX_LINE_BYTES`), dropped by the reader before its end arrived.
pub const LINE_TOO_LONG: &str = "line too long";
/// An event more than [`MAX_AHEAD`] ahead of the clock.
pub const IN_FUTURE: &str = "timestamp more than a day ahead";
/// An event older than the retention period: it would be deleted at once.
pub const TOO_OLD: &str = "older than the retention period";
/// An alert with `severity: 0` (Suricata's severities, the rules' priorities, start at 1).
pub const SEVERITY_ZERO: &str = "alert.severity 0";

/// One frame's payload.
#[derive(Serialize, Deserialize)]
enum Frame<'a> {
    Alert(#[serde(borrow)] IdsAlert<'a>),
    Counts(#[serde(borrow)] EventCounts<'a>),
}

/// The configured source lines come from: its logical interface and sensor name, stored with each alert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EveOrigin<'a> {
    /// The logical interface the sensor watches.
    pub interface: Option<&'a str>,
    /// The sensor's name.
    pub sensor: Option<&'a str>,
}

/// What an ingestion of eve.json lines did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EveIngestStats {
    /// Lines read (blank lines aside).
    pub lines: u64,
    /// Alerts stored.
    pub alerts: u64,
    /// Events read, by `event_type` (alerts included): counted, and only alerts stored.
    pub events: BTreeMap<String, u64>,
    /// Lines skipped.
    pub skipped: u64,
    /// Skipped lines by reason (`not JSON`, `line too long`, `not UTF-8`, ...).
    pub skipped_by: BTreeMap<String, u64>,
    /// The newest alert stored.
    pub last_alert: Option<DateTime<Utc>>,
    /// The newest event read.
    pub last_event: Option<DateTime<Utc>>,
    /// The newest `stats` event read.
    pub last_stats: Option<DateTime<Utc>>,
}

impl EveIngestStats {
    /// Adds another ingestion's counts.
    pub fn add(&mut self, o: EveIngestStats) {
        self.lines += o.lines;
        self.alerts += o.alerts;
        self.skipped += o.skipped;
        for (k, n) in o.events {
            *self.events.entry(k).or_insert(0) += n;
        }
        for (k, n) in o.skipped_by {
            *self.skipped_by.entry(k).or_insert(0) += n;
        }
        self.last_alert = self.last_alert.max(o.last_alert);
        self.last_event = self.last_event.max(o.last_event);
        self.last_stats = self.last_stats.max(o.last_stats);
    }

    /// Counts `n` lines skipped for `reason`.
    pub fn skip(&mut self, reason: &str, n: u64) {
        if n > 0 {
            self.lines += n;
            self.skipped += n;
            *self.skipped_by.entry(reason.to_string()).or_insert(0) += n;
        }
    }

    /// The events in words, most first: `1200 flow, 300 dns, 12 alert`.
    pub fn events_summary(&self) -> String {
        most_first(&self.events)
    }

    /// The skipped lines in words: `skipped 3: 2 not JSON, 1 line too long`; empty when none was.
    pub fn skipped_summary(&self) -> String {
        if self.skipped == 0 {
            return String::new();
        }
        format!("skipped {}: {}", self.skipped, most_first(&self.skipped_by))
    }
}

fn most_first(counts: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
}

/// The event kinds counted by index; other names in a bounded map.
const KNOWN: [EventKind; 9] = [
    EventKind::Alert,
    EventKind::Flow,
    EventKind::Anomaly,
    EventKind::Dns,
    EventKind::Http,
    EventKind::Tls,
    EventKind::Fileinfo,
    EventKind::Stats,
    EventKind::Drop,
];

fn known_index(kind: &EventKind) -> Option<usize> {
    KNOWN.iter().position(|k| k == kind)
}

/// One hour's counts in a batch.
struct HourCounts {
    known: [u64; KNOWN.len()],
    other: BTreeMap<Box<str>, u64>,
    first_us: i64,
    last_us: i64,
    last_stats_us: Option<i64>,
}

impl HourCounts {
    fn new(ts_us: i64) -> Self {
        Self { known: [0; KNOWN.len()], other: BTreeMap::new(), first_us: ts_us, last_us: ts_us, last_stats_us: None }
    }

    fn count(&mut self, kind: &EventKind, ts_us: i64) {
        match known_index(kind) {
            Some(i) => {
                if let Some(n) = self.known.get_mut(i) {
                    *n += 1;
                }
            }
            None => {
                let name = kind.as_str();
                if let Some(n) = self.other.get_mut(name) {
                    *n += 1;
                } else {
                    // A file of made-up names cannot grow the map: past the bound they are counted as `other`.
                    let name = if self.other.len() < MAX_OTHER_EVENT_NAMES && name.len() <= MAX_EVENT_TYPE_LEN {
                        name
                    } else {
                        "other"
                    };
                    *self.other.entry(name.into()).or_insert(0) += 1;
                }
            }
        }
        self.first_us = self.first_us.min(ts_us);
        self.last_us = self.last_us.max(ts_us);
        if *kind == EventKind::Stats {
            self.last_stats_us = self.last_stats_us.max(Some(ts_us));
        }
    }

    fn events(&self) -> Vec<(&str, u64)> {
        let known = KNOWN.iter().zip(self.known).filter(|(_, n)| *n > 0).map(|(k, n)| (k.as_str(), n));
        known.chain(self.other.iter().map(|(k, n)| (&**k, *n))).collect()
    }
}

/// Appends a frame holding `value` to `buf` (`scratch` is a reused buffer for the encoding).
fn push_frame(buf: &mut Vec<u8>, scratch: &mut Vec<u8>, value: &Frame<'_>) -> Result<(), postcard::Error> {
    scratch.clear();
    *scratch = postcard::to_extend(value, std::mem::take(scratch))?;
    if scratch.len() > MAX_PAYLOAD {
        return Err(postcard::Error::SerializeBufferFull);
    }
    let len_bytes = (scratch.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(scratch);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&len_bytes);
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(scratch);
    Ok(())
}

/// The payloads of the frames of `buf` that check, in order; damaged bytes are skipped to the next good frame.
fn frames(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        loop {
            let rest = buf.get(pos..)?;
            let at = memchr::memmem::find(rest, &MAGIC)?;
            let start = pos + at;
            // Whatever happens, the next search starts after this magic.
            pos = start + 1;
            let header = buf.get(start..start + HEADER)?;
            let len_bytes: [u8; 4] = header.get(4..8)?.try_into().ok()?;
            let crc: [u8; 4] = header.get(8..12)?.try_into().ok()?;
            let len = u32::from_le_bytes(len_bytes) as usize;
            if len > MAX_PAYLOAD {
                continue;
            }
            let Some(payload) = buf.get(start + HEADER..start + HEADER + len) else { continue };
            let mut h = crc32fast::Hasher::new();
            h.update(&len_bytes);
            h.update(payload);
            if h.finalize() != u32::from_le_bytes(crc) {
                continue;
            }
            pos = start + HEADER + len;
            return Some(payload);
        }
    })
}

/// A stored record, as a question over a span sees it.
pub enum Stored<'a, 'b> {
    /// An alert.
    Alert(&'b IdsAlert<'a>),
    /// The counts of one ingestion batch in one hour.
    Counts(&'b EventCounts<'a>),
}

/// One target's Suricata alerts.
pub struct AlertStore {
    dir: PathBuf,
    retention: Retention,
}

impl AlertStore {
    /// The alerts kept in `dir` (created on the first write).
    pub(crate) fn new(dir: PathBuf, retention: Retention) -> Self {
        Self { dir, retention }
    }

    /// The directory of the alert files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn hour_path(&self, hour: i64) -> PathBuf {
        self.dir.join(format!("{hour}.alerts"))
    }

    /// The hours with a file, oldest first.
    fn hours(&self) -> Result<Vec<i64>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut hours = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            if let Some(hour) = name.to_str().and_then(|n| n.strip_suffix(".alerts")).and_then(|h| h.parse().ok()) {
                hours.push(hour);
            }
        }
        hours.sort_unstable();
        Ok(hours)
    }

    /// Parses eve.json lines (`text`: whole lines, `\n`-separated; a `\r` before it and blank lines are ignored),
    /// stores the alerts with `origin`'s interface and sensor, and one counts frame per hour for every event
    /// read. Lines that are not events (or not UTF-8, or too far ahead of `now`, or older than the retention
    /// period) are counted as skipped, by reason.
    pub fn ingest(
        &self,
        text: &[u8],
        origin: &EveOrigin<'_>,
        now: DateTime<Utc>,
    ) -> Result<EveIngestStats, StoreError> {
        let mut stats = EveIngestStats::default();
        let mut errors: BTreeMap<EveErrorKind, u64> = BTreeMap::new();
        let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut buffers: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        let mut counts: BTreeMap<i64, HourCounts> = BTreeMap::new();
        let mut scratch = Vec::new();
        let ahead = (now + MAX_AHEAD).timestamp_micros();
        let oldest = (now - self.retention.max_age).timestamp_micros();
        let (mut last_alert, mut last_event, mut last_stats) = (None, None, None);
        for line in text.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(|b| matches!(b, b' ' | b'\t')) {
                continue;
            }
            stats.lines += 1;
            let Ok(line) = std::str::from_utf8(line) else {
                *refused.entry(NOT_UTF8).or_insert(0) += 1;
                continue;
            };
            let event = match parse_line(line) {
                Ok(e) => e,
                Err(e) => {
                    *errors.entry(EveError::kind(&e)).or_insert(0) += 1;
                    continue;
                }
            };
            let ts = event.timestamp.timestamp_micros();
            if ts > ahead {
                *refused.entry(IN_FUTURE).or_insert(0) += 1;
                continue;
            }
            if ts < oldest {
                *refused.entry(TOO_OLD).or_insert(0) += 1;
                continue;
            }
            if event.alert.as_ref().is_some_and(|a| a.severity == 0) && event.kind == EventKind::Alert {
                *refused.entry(SEVERITY_ZERO).or_insert(0) += 1;
                continue;
            }
            let hour = ts.div_euclid(HOUR_US);
            counts.entry(hour).or_insert_with(|| HourCounts::new(ts)).count(&event.kind, ts);
            last_event = last_event.max(Some(ts));
            if event.kind == EventKind::Stats {
                last_stats = last_stats.max(Some(ts));
            }
            if let Some(alert) = IdsAlert::from_event(&event, origin.interface, origin.sensor) {
                let buf = buffers.entry(hour).or_default();
                if push_frame(buf, &mut scratch, &Frame::Alert(alert)).is_err() {
                    // Only an alert larger than any line could be; counted, never stored cut.
                    *refused.entry("alert too large to store").or_insert(0) += 1;
                    continue;
                }
                stats.alerts += 1;
                last_alert = last_alert.max(Some(ts));
            }
        }
        for (hour, c) in &counts {
            let events = c.events();
            let frame = Frame::Counts(EventCounts {
                sensor: origin.sensor,
                interface: origin.interface,
                first_us: c.first_us,
                last_us: c.last_us,
                last_stats_us: c.last_stats_us,
                events: events.clone(),
            });
            // Counts frames are small (a few dozen names at most); one that would not fit is not written.
            let _ = push_frame(buffers.entry(*hour).or_default(), &mut scratch, &frame);
            for (kind, n) in events {
                *stats.events.entry(kind.to_string()).or_insert(0) += n;
            }
        }
        self.append(&buffers)?;
        for (kind, n) in errors {
            *stats.skipped_by.entry(kind.describe().to_string()).or_insert(0) += n;
            stats.skipped += n;
        }
        for (reason, n) in refused {
            *stats.skipped_by.entry(reason.to_string()).or_insert(0) += n;
            stats.skipped += n;
        }
        stats.last_alert = last_alert.map(us_time);
        stats.last_event = last_event.map(us_time);
        stats.last_stats = last_stats.map(us_time);
        Ok(stats)
    }

    /// Appends each hour's frames with one write.
    fn append(&self, buffers: &BTreeMap<i64, Vec<u8>>) -> Result<(), StoreError> {
        if buffers.values().all(Vec::is_empty) {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        for (hour, bytes) in buffers.iter().filter(|(_, b)| !b.is_empty()) {
            let path = self.hour_path(*hour);
            let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
            f.write_all(bytes).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Every stored record of the hours that `[from_ms, to_ms)` touches whose time is inside it (an alert's
    /// timestamp; a counts frame's last event), oldest hour first, in file order within an hour. Returns the
    /// alerts visited.
    pub fn visit(&self, from_ms: i64, to_ms: i64, mut f: impl FnMut(Stored<'_, '_>)) -> Result<u64, StoreError> {
        if from_ms >= to_ms {
            return Ok(0);
        }
        let (from_us, to_us) = (from_ms.saturating_mul(1000), to_ms.saturating_mul(1000));
        let (first, last) = (from_us.div_euclid(HOUR_US), (to_us - 1).div_euclid(HOUR_US));
        let mut alerts = 0;
        for hour in self.hours()?.into_iter().filter(|h| (first..=last).contains(h)) {
            let path = self.hour_path(hour);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                // Retention in another process.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            for payload in frames(&bytes) {
                match postcard::from_bytes::<Frame<'_>>(payload) {
                    Ok(Frame::Alert(a)) if (from_us..to_us).contains(&a.ts_us) => {
                        alerts += 1;
                        f(Stored::Alert(&a));
                    }
                    Ok(Frame::Counts(c)) if (from_us..to_us).contains(&c.last_us) => f(Stored::Counts(&c)),
                    // Outside the span, or a frame of a later version.
                    _ => {}
                }
            }
        }
        Ok(alerts)
    }

    /// The alerts of `[from_ms, to_ms)`, handed to `f`; returns how many.
    pub fn visit_alerts(&self, from_ms: i64, to_ms: i64, mut f: impl FnMut(&IdsAlert<'_>)) -> Result<u64, StoreError> {
        self.visit(from_ms, to_ms, |s| {
            if let Stored::Alert(a) = s {
                f(a);
            }
        })
    }

    /// The events counted in `[from_ms, to_ms)` (by the counts frames whose last event is inside it).
    pub fn event_totals(&self, from_ms: i64, to_ms: i64) -> Result<EventTotals, StoreError> {
        let mut totals = EventTotals::default();
        self.visit(from_ms, to_ms, |s| {
            if let Stored::Counts(c) = s {
                totals.add(c);
            }
        })?;
        Ok(totals)
    }

    /// The newest alert of `sensor` (with `None`, of any sensor) in the `hours` hours before `now`, looking at
    /// the newest hours first.
    pub fn latest_alert(
        &self,
        sensor: Option<&str>,
        now: DateTime<Utc>,
        hours: i64,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let to = now.timestamp_millis() + 1;
        let from = to - hours * 3_600_000;
        let newest_hour = now.timestamp_micros().div_euclid(HOUR_US);
        for hour in self.hours()?.into_iter().rev().filter(|h| *h <= newest_hour) {
            let (start, end) = ((hour * HOUR_US / 1000).max(from), ((hour + 1) * HOUR_US / 1000).min(to));
            if end <= from {
                break;
            }
            let mut latest = None;
            self.visit_alerts(start, end, |a| {
                if sensor.is_none() || a.sensor == sensor {
                    latest = latest.max(Some(a.ts_us));
                }
            })?;
            if latest.is_some() {
                return Ok(latest.map(us_time));
            }
        }
        Ok(None)
    }

    /// Hour files and the bytes they use.
    pub fn size(&self) -> Result<(usize, u64), StoreError> {
        let hours = self.hours()?;
        let bytes = hours.iter().map(|h| fs::metadata(self.hour_path(*h)).map_or(0, |m| m.len())).sum();
        Ok((hours.len(), bytes))
    }

    /// Deletes the hours that ended longer ago than the maximum age, then the oldest while the files use more
    /// than the byte budget. Returns the files deleted.
    pub fn enforce_retention(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let oldest_kept = (now - self.retention.max_age).timestamp_micros().div_euclid(HOUR_US);
        let sizes: Vec<(i64, u64)> =
            self.hours()?.into_iter().map(|h| (h, fs::metadata(self.hour_path(h)).map_or(0, |m| m.len()))).collect();
        let mut total: u64 = sizes.iter().map(|s| s.1).sum();
        let mut deleted = 0;
        for (hour, size) in sizes {
            if hour < oldest_kept || total > self.retention.max_bytes {
                let path = self.hour_path(hour);
                match fs::remove_file(&path) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
                total -= size;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str = r#"{"timestamp":"2026-11-30T14:15:02.417003+0100","flow_id":1218675916498213,"in_iface":"enp3s0","event_type":"alert","src_ip":"203.0.113.77","src_port":41522,"dest_ip":"198.51.100.10","dest_port":22,"proto":"TCP","community_id":"1:Xy3mXk2vB4x1mU0jM6bQvQ0m9nE=","alert":{"action":"allowed","gid":1,"signature_id":2001219,"rev":20,"signature":"ET SCAN Potential SSH Scan","category":"Attempted Information Leak","severity":2}}"#;
    const FLOW: &str = r#"{"timestamp":"2026-11-30T14:15:03.000000+0100","flow_id":1,"event_type":"flow","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","proto":"UDP","flow":{"pkts_toserver":1}}"#;
    const STATS: &str = r#"{"timestamp":"2026-11-30T14:15:04.000000+0100","event_type":"stats","stats":{"uptime":5}}"#;

    fn now() -> DateTime<Utc> {
        "2026-11-30T13:30:00Z".parse().unwrap()
    }

    fn store(dir: &Path) -> AlertStore {
        AlertStore::new(dir.join("eve"), Retention::default())
    }

    fn alerts(s: &AlertStore) -> Vec<IdsAlert<'static>> {
        let mut out = Vec::new();
        s.visit_alerts(0, i64::MAX / 2, |a| {
            // Owned copies for the assertions: leaked strings are fine in a test.
            let leak = |x: &str| -> &'static str { Box::leak(x.to_string().into_boxed_str()) };
            out.push(IdsAlert {
                ts_us: a.ts_us,
                gid: a.gid,
                signature_id: a.signature_id,
                rev: a.rev,
                signature: leak(a.signature),
                category: a.category.map(leak),
                severity: a.severity,
                action: a.action,
                src_ip: a.src_ip,
                src_port: a.src_port,
                dest_ip: a.dest_ip,
                dest_port: a.dest_port,
                proto: a.proto,
                in_iface: a.in_iface.map(leak),
                interface: a.interface.map(leak),
                sensor: a.sensor.map(leak),
                flow_id: a.flow_id,
                community_id: a.community_id.map(leak),
                app_proto: a.app_proto.map(leak),
            });
        })
        .unwrap();
        out
    }

    #[test]
    fn stores_alerts_counts_the_rest_and_reads_them_back_by_span() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let text = format!("{ALERT}\n{FLOW}\r\n\n{STATS}\n{FLOW}\n");
        let origin = EveOrigin { interface: Some("wan"), sensor: Some("ids1") };
        let stats = s.ingest(text.as_bytes(), &origin, now()).unwrap();
        assert_eq!((stats.lines, stats.alerts, stats.skipped), (4, 1, 0));
        assert_eq!(stats.events_summary(), "2 flow, 1 alert, 1 stats");
        assert_eq!(stats.last_alert.unwrap().to_rfc3339(), "2026-11-30T13:15:02.417003+00:00");
        assert_eq!(stats.last_stats.unwrap().to_rfc3339(), "2026-11-30T13:15:04+00:00");
        let a = alerts(&s);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].signature_id, a[0].signature, a[0].severity), (2001219, "ET SCAN Potential SSH Scan", 2));
        assert_eq!((a[0].interface(), a[0].in_iface, a[0].sensor), (Some("wan"), Some("enp3s0"), Some("ids1")));
        assert_eq!(a[0].community_id, Some("1:Xy3mXk2vB4x1mU0jM6bQvQ0m9nE="));
        assert_eq!(
            (a[0].src_port, a[0].dest_port, a[0].proto, a[0].flow_id),
            (Some(41522), Some(22), Some(6), Some(1218675916498213))
        );
        // By span: the alert is at 13:15:02.417 UTC.
        let at = a[0].ts_us / 1000;
        assert_eq!(s.visit_alerts(at, at + 1, |_| {}).unwrap(), 1);
        assert_eq!(s.visit_alerts(at + 1, at + 3_600_000, |_| {}).unwrap(), 0);
        assert_eq!(s.visit_alerts(at - 3_600_000, at, |_| {}).unwrap(), 0);
        let totals = s.event_totals(0, i64::MAX / 2).unwrap();
        assert_eq!(totals.by_event["flow"], 2);
        let sensors = totals.sensors();
        assert_eq!(sensors[0].sensor.as_deref(), Some("ids1"));
        assert_eq!(sensors[0].last_stats.unwrap().to_rfc3339(), "2026-11-30T13:15:04+00:00");
        assert_eq!(
            s.latest_alert(Some("ids1"), now(), 24).unwrap().unwrap().to_rfc3339(),
            "2026-11-30T13:15:02.417003+00:00"
        );
        assert_eq!(s.latest_alert(Some("other"), now(), 24).unwrap(), None);
    }

    #[test]
    fn hostile_lines_are_skipped_by_reason_and_nothing_wrong_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut text = Vec::new();
        for line in [
            "garbage".to_string(),
            "{\"timestamp\":".to_string(),
            "[1,2,3]".to_string(),
            ALERT.replace("\"severity\":2", "\"severity\":\"high\""),
            ALERT.replace("\"dest_port\":22", "\"dest_port\":70000"),
            ALERT.replace("\"signature_id\":2001219", "\"signature_id\":-1"),
            ALERT.replace("\"severity\":2", "\"severity\":0"),
            ALERT.replace("2026-11-30", "2036-11-30"),
            ALERT.replace("2026-11-30", "2016-11-30"),
            format!("{{\"pad\":\"{}\",{}", "x".repeat(70_000), &ALERT[1..]),
        ] {
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
        text.extend_from_slice(b"{\"timestamp\":\"2026-11-30T14:15:02+0100\",\"event_type\":\"alert\xff\"}\n");
        text.extend_from_slice(ALERT.as_bytes());
        let stats = s.ingest(&text, &EveOrigin::default(), now()).unwrap();
        assert_eq!((stats.lines, stats.alerts, stats.skipped), (12, 1, 11), "{stats:?}");
        assert_eq!(
            stats.skipped_summary(),
            "skipped 11: 3 bad value, 1 alert.severity 0, 1 line too long, 1 not JSON, 1 not UTF-8, \
             1 not a JSON object, 1 older than the retention period, 1 timestamp more than a day ahead, \
             1 truncated JSON"
        );
        assert_eq!(stats.events.get("alert"), Some(&1));
        assert_eq!(alerts(&s).len(), 1);
    }

    #[test]
    fn damaged_bytes_cost_only_the_frames_they_touch() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for _ in 0..3 {
            s.ingest(ALERT.as_bytes(), &EveOrigin::default(), now()).unwrap();
        }
        let path = s.hours().unwrap().first().map(|h| s.hour_path(*h)).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let frame_len = bytes.len() / 3;
        // A torn write, then flipped bits in the second frame, then a stray magic with a bogus length.
        let mut damaged = bytes[..frame_len / 2].to_vec();
        bytes[frame_len + HEADER + 5] ^= 0x40;
        damaged.extend_from_slice(&bytes);
        damaged.extend_from_slice(b"PcE1\xff\xff\x00\x00zz");
        fs::write(&path, &damaged).unwrap();
        // Frames: torn (lost), 1 good, 2 damaged (lost), 3 good, a counts frame after each.
        assert_eq!(alerts(&s).len(), 2);
        // Appending after the damage works.
        s.ingest(ALERT.as_bytes(), &EveOrigin::default(), now()).unwrap();
        assert_eq!(alerts(&s).len(), 3);
    }

    #[test]
    fn retention_deletes_old_hours_then_the_oldest_over_budget() {
        let dir = tempfile::tempdir().unwrap();
        let s = AlertStore::new(dir.path().join("eve"), Retention { max_age: TimeDelta::days(2), max_bytes: 1 << 30 });
        let at = |t: &str| ALERT.replace("2026-11-30T14:15:02", t);
        let text = [at("2026-11-29T10:00:00"), at("2026-11-30T09:00:00"), at("2026-11-30T14:15:02")].join("\n");
        assert_eq!(s.ingest(text.as_bytes(), &EveOrigin::default(), now()).unwrap().alerts, 3);
        assert_eq!(s.enforce_retention(now() + TimeDelta::hours(24)).unwrap(), 1);
        assert_eq!(alerts(&s).len(), 2);
        let one_file = s.size().unwrap().1 / 2;
        let small =
            AlertStore::new(s.dir().to_path_buf(), Retention { max_age: TimeDelta::days(30), max_bytes: one_file });
        assert_eq!(small.enforce_retention(now()).unwrap(), 1);
        assert_eq!(alerts(&small).len(), 1);
    }
}
