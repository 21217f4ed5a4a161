use super::*;
use portcullis_logs::{Action, Direction};

fn rec(ts_ms: i64, src: &str, port: u16, action: Action) -> Record {
    Record {
        ts_ms,
        interface: 0,
        action,
        direction: Direction::In,
        protocol: 6,
        src: src.parse().unwrap(),
        dst: "198.51.100.2".parse().unwrap(),
        src_port: Some(40000),
        dst_port: Some(port),
        tracker: Some(1),
        length: 60,
    }
}

const T0: i64 = 1_000 * HOUR_MS;

fn open(dir: &Path) -> Arc<LogStore> {
    LogStore::open(dir, Retention { max_age: TimeDelta::days(36500), max_bytes: u64::MAX }).unwrap()
}

#[test]
fn rollups_over_spans_equal_a_fold_of_the_records_in_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let records: Vec<Record> = (0..1000)
        .map(|i| rec(T0 + i * 100_000, &format!("203.0.113.{}", i % 7), (i % 50) as u16, Action::Block))
        .collect();
    store.append(&records).unwrap();
    store.flush().unwrap();
    for (from, to) in [
        (T0, T0 + 3 * HOUR_MS),
        (T0 + 1234, T0 + 2 * HOUR_MS + 77),
        (T0 + HOUR_MS, T0 + 2 * HOUR_MS),
        (T0 - 10 * HOUR_MS + 5, T0 + 40 * HOUR_MS + 5),
    ] {
        let got = store.rollup(from, to).unwrap();
        let mut want = Rollup::default();
        let mut by_hour: BTreeMap<i64, Rollup> = BTreeMap::new();
        for r in records.iter().filter(|r| r.ts_ms >= from && r.ts_ms < to) {
            by_hour.entry(hour_of(r.ts_ms)).or_default().fold(r);
        }
        by_hour.values().for_each(|h| want.merge(h));
        assert_eq!((got.records, got.actions), (want.records, want.actions), "{from}..{to}");
        assert_eq!(got.minutes, want.minutes, "{from}..{to}");
        assert_eq!(got.hours, want.hours, "{from}..{to}");
        assert_eq!(got.ports, want.ports, "{from}..{to}");
        assert_eq!(got.rules, want.rules, "{from}..{to}");
        for (ip, s) in &want.sources {
            assert_eq!(got.sources.get(ip), Some(s), "{from}..{to} {ip}");
        }
        assert_eq!(got, want, "{from}..{to}");
    }
    // Whole days come from the day cache, which notices appends.
    let days = (41 * 24 * HOUR_MS, 44 * 24 * HOUR_MS);
    let before = store.rollup(days.0, days.1).unwrap();
    store.append(&[rec(T0 + 5, "203.0.113.7", 22, Action::Block)]).unwrap();
    let after = store.rollup(days.0, days.1).unwrap();
    assert_eq!(after.records, before.records + 1);
    assert!(after.sources.contains_key(&"203.0.113.7".parse().unwrap()));
    // A second process sees the same, from the rollup files plus what was appended after them.
    store.append(&[rec(T0 + 10, "203.0.113.9", 22, Action::Pass)]).unwrap();
    let other = open(dir.path());
    let r = other.rollup(T0, T0 + HOUR_MS).unwrap();
    assert_eq!(r.records, 38);
    assert_eq!(other.hourly_counts(T0, T0 + 30 * HOUR_MS).unwrap().values().sum::<u64>(), 1002);
}

#[test]
fn queries_come_newest_first_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let records: Vec<Record> = (0..300).map(|i| rec(T0 + i * 60_000, "203.0.113.1", 22, Action::Block)).collect();
    store.append(&records).unwrap();
    let first = store.query(T0, T0 + 10 * HOUR_MS, 0, 100, |r| r.ts_ms % 120_000 == 0).unwrap();
    assert_eq!(first.records.len(), 100);
    assert!(first.more);
    assert!(first.records.windows(2).all(|w| w[0].ts_ms > w[1].ts_ms));
    assert_eq!(first.records[0].ts_ms, T0 + 298 * 60_000);
    let last = store.query(T0, T0 + 10 * HOUR_MS, 100, 100, |r| r.ts_ms % 120_000 == 0).unwrap();
    assert_eq!(last.records.len(), 50);
    assert!(!last.more);
}

#[test]
fn a_torn_tail_is_ignored_and_cut_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&[rec(T0, "203.0.113.1", 22, Action::Block)]).unwrap();
    let seg = store.seg_path(hour_of(T0));
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[1, 2, 3]).unwrap();
    assert_eq!(store.rollup(T0, T0 + HOUR_MS).unwrap().records, 1);
    store.append(&[rec(T0 + 1, "203.0.113.2", 22, Action::Block)]).unwrap();
    let all = store.hour_records(hour_of(T0)).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].src.to_string(), "203.0.113.2");
}

#[test]
fn retention_deletes_old_segments_and_keeps_within_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Retention { max_age: TimeDelta::hours(5), max_bytes: 64 * 25 }).unwrap();
    let now = DateTime::from_timestamp_millis(T0 + 10 * HOUR_MS).unwrap();
    let records: Vec<Record> = (0..10)
        .flat_map(|h| (0..10).map(move |i| rec(T0 + h * HOUR_MS + i, "203.0.113.1", 22, Action::Block)))
        .collect();
    store.append(&records).unwrap();
    store.flush().unwrap();
    let deleted = store.enforce_retention(now).unwrap();
    assert_eq!(deleted, 8, "5 too old, then 3 more over the byte budget");
    assert_eq!(store.size().unwrap(), (20, 20 * 64));
    assert_eq!(store.rollup(T0, T0 + 10 * HOUR_MS).unwrap().records, 20);
    assert!(!store.rollup_path(hour_of(T0)).exists());
}

#[test]
fn lines_are_parsed_interned_and_pulls_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let now = Utc::now();
    let line = |t: &str, src: &str| {
        format!(
            "<134>1 {t} fw filterlog 1 - - 5,,,1000000103,em0,match,block,in,4,0x0,,64,1,0,DF,6,tcp,60,{src},198.51.100.2,40000,22,0,S,1,,64240,,mss"
        )
    };
    let t = (now - TimeDelta::minutes(5)).to_rfc3339();
    let lines = vec![line(&t, "203.0.113.1"), line(&t, "203.0.113.2"), "garbage".to_string()];
    let pull_once = |lines: &[String]| {
        let mut dedup = PullDedup::load(&store, "fw").unwrap();
        let mut pull = dedup.start(100, 1_000);
        pull.add_older_page(lines.to_vec());
        dedup.ingest(&store, pull, now).unwrap()
    };
    let s = pull_once(&lines);
    assert_eq!((s.stored, s.malformed, s.duplicates), (2, 1, 0));
    let mut more = lines.clone();
    more.push(line(&t, "203.0.113.3"));
    let s = pull_once(&more);
    assert_eq!((s.stored, s.duplicates, s.gaps), (1, 3, 0));
    let page = store.query(0, i64::MAX / 2, 0, 10, |_| true).unwrap();
    assert_eq!(page.records.len(), 3);
    assert_eq!(store.device(page.records[0].interface), "em0");
}

/// Records spread over three whole UTC days from `T0`'s day, a few distinct sources an hour.
/// A store in a new folder holding [`three_days`] of records: the folder, the first day's start, the store.
fn three_days_stored() -> (tempfile::TempDir, i64, Arc<LogStore>) {
    let dir = tempfile::tempdir().unwrap();
    let (day0, records) = three_days();
    let store = open(dir.path());
    store.append(&records).unwrap();
    (dir, day0, store)
}

fn three_days() -> (i64, Vec<Record>) {
    let day0 = hour_of(T0).div_euclid(24) * 24 * HOUR_MS;
    let records = (0..3 * 24 * 12)
        .map(|i| rec(day0 + i * 5 * 60_000, &format!("203.0.113.{}", i % 40), (i % 9) as u16, Action::Block))
        .collect();
    (day0, records)
}

#[test]
fn whole_days_are_answered_from_block_files_that_go_stale_when_their_segments_grow() {
    let dir = tempfile::tempdir().unwrap();
    let (day0, records) = three_days();
    let span = (day0 - 30 * 60_000, day0 + 3 * 24 * HOUR_MS + 30 * 60_000);
    let want = {
        let store = open(dir.path());
        store.append(&records).unwrap();
        assert_eq!(store.settle(Utc::now()).unwrap(), 3);
        assert_eq!(store.settle(Utc::now()).unwrap(), 0, "current block files are not built again");
        store.rollup(span.0, span.1).unwrap()
    };
    let first_hour = hour_of(day0);
    for d in 0..3 {
        assert!(dir.path().join(format!("{}.b24.rollup", first_hour + d * 24)).exists());
    }
    // A fresh store answers from the day files alone: not one hour rollup is loaded.
    let fresh = open(dir.path());
    assert_eq!(fresh.rollup(span.0, span.1).unwrap(), want);
    assert_eq!(fresh.lock().hours.values().filter(|h| h.loaded).count(), 0, "no hour rollup was needed");

    // One more line in the middle day: its file is stale, for this process and for a fresh one.
    fresh.append(&[rec(day0 + 24 * HOUR_MS + 7, "198.51.100.77", 22, Action::Block)]).unwrap();
    let grown = fresh.rollup(span.0, span.1).unwrap();
    assert_eq!(grown.records, want.records + 1);
    assert!(grown.sources.contains_key(&"198.51.100.77".parse().unwrap()));
    assert_eq!(open(dir.path()).rollup(span.0, span.1).unwrap(), grown);
}

#[test]
fn rollups_in_memory_stay_within_the_budget_and_answers_do_not_change() {
    let (_dir, day0, store) = three_days_stored();
    let span = (day0 + 90 * 60_000, day0 + 3 * 24 * HOUR_MS - 90 * 60_000);
    let unbounded = store.rollup(span.0, span.1).unwrap();
    let everything = store.cached_bytes();
    let budget = everything / 4;
    store.set_cache_budget(budget as u64);
    assert!(store.cached_bytes() <= budget, "{} > {budget}", store.cached_bytes());
    for _ in 0..3 {
        assert_eq!(store.rollup(span.0, span.1).unwrap(), unbounded);
        assert!(store.cached_bytes() <= budget, "{} > {budget}", store.cached_bytes());
    }
    let sources: Vec<std::net::IpAddr> = vec!["203.0.113.5".parse().unwrap()];
    assert_eq!(store.sources_rollup(span.0, span.1, &sources).unwrap()[&sources[0]], unbounded.sources[&sources[0]]);
    assert_eq!(store.traffic_rollup(span.0, span.1).unwrap().minutes, unbounded.minutes);
}

#[test]
fn retention_deletes_the_block_files_of_deleted_hours() {
    let (dir, day0, store) = three_days_stored();
    store.settle(Utc::now()).unwrap();
    let day_file = dir.path().join(format!("{}.b24.rollup", hour_of(day0)));
    assert!(day_file.exists());
    let aged = LogStore::open(dir.path(), Retention { max_age: TimeDelta::hours(1), max_bytes: u64::MAX }).unwrap();
    assert!(!day_file.exists());
    assert_eq!(aged.rollup(day0, day0 + 3 * 24 * HOUR_MS).unwrap().records, 0);
}
