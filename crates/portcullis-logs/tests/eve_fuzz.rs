//! Property tests as a fuzzer for the eve.json parser, as `fuzz.rs` is for filterlog: arbitrary strings, and
//! mutations of the recorded lines of `tests/fixtures/eve/` at the byte level (truncation, byte replacement, JSON
//! tokens inserted, bytes deleted, lines spliced) and at the JSON level (a field's value replaced by a value of
//! another type, a huge number, a deep nest, a long string), never make the parser panic, cost no more than a
//! bound, and whatever parses is consistent with the line. `eve_many_mutations` runs 20,000 cases by default
//! (`PORTCULLIS_FUZZ_CASES` for more); `fuzz/fuzz_targets/eve.rs` is the same for `cargo fuzz`.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use portcullis_logs::eve::{
    EveError, EveEvent, EveStats, EventKind, MAX_LINE_BYTES, parse_line, parse_lines, parse_timestamp,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

mod common;

use common::mutate::{apply, mutation};

const FIXTURES: &[&str] = &[
    include_str!("fixtures/eve/alert.json"),
    include_str!("fixtures/eve/flow.json"),
    include_str!("fixtures/eve/dns.json"),
    include_str!("fixtures/eve/http.json"),
    include_str!("fixtures/eve/tls.json"),
    include_str!("fixtures/eve/anomaly.json"),
    include_str!("fixtures/eve/stats.json"),
    include_str!("fixtures/eve/drop.json"),
    include_str!("fixtures/eve/fileinfo.json"),
    include_str!("fixtures/eve/other.json"),
];

/// The most one line may cost, whatever it holds. A 64 KiB line takes about a millisecond in a debug build; the
/// bound leaves room for a loaded CI machine and still catches anything worse than linear.
const MAX_COST: Duration = Duration::from_millis(500);

fn samples() -> Vec<&'static str> {
    FIXTURES.iter().flat_map(|f| f.lines()).filter(|l| !l.is_empty()).collect()
}

/// The text an event owns.
fn owned_text(e: &EveEvent) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let kind = match &e.kind {
        EventKind::Other(name) => name.len(),
        _ => 0,
    };
    let alert = e.alert.as_ref().map_or(0, |a| a.signature.len() + opt(&a.category));
    kind + opt(&e.in_iface) + opt(&e.app_proto) + opt(&e.community_id) + alert
}

/// Parses `line` within the cost bound; checks what parses against the line and against serde_json's own reading.
fn check(line: &str) {
    let started = Instant::now();
    let result = parse_line(line);
    let cost = started.elapsed();
    assert!(cost < MAX_COST, "{cost:?} for a line of {} bytes", line.len());
    match result {
        Ok(event) => {
            assert!(line.len() <= MAX_LINE_BYTES + 2);
            // No more text is kept than the line holds (unescaping never lengthens a string).
            assert!(owned_text(&event) <= line.len());
            // Only JSON parses: serde_json's own skipper (iterative, no depth limit) accepts the line.
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok(), "{line}");
            if event.kind == EventKind::Alert {
                assert!(event.alert.is_some());
            }
            if event.kind == EventKind::Flow {
                assert!(event.flow.is_some());
            }
            assert!(serde_json::to_string(&event).is_ok());
            // Against serde_json's generic reading, where it has one (its depth limit is 128).
            if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) {
                let ts = map["timestamp"].as_str().unwrap();
                if let Ok(t) = DateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.f%z") {
                    assert_eq!(event.timestamp, t.with_timezone(&Utc), "{ts}");
                }
                assert_eq!(map["event_type"].as_str(), Some(event.kind.as_str()));
                let port = |key: &str| map.get(key).and_then(Value::as_u64);
                assert_eq!(event.src_port.map(u64::from), port("src_port"));
                assert_eq!(event.dest_port.map(u64::from), port("dest_port"));
                assert_eq!(event.flow_id, port("flow_id"));
                let ip = |key: &str| map.get(key).and_then(Value::as_str).map(|s| s.parse().unwrap());
                assert_eq!(event.src_ip, ip("src_ip"));
                assert_eq!(event.dest_ip, ip("dest_ip"));
                if let Some(a) = &event.alert {
                    assert_eq!(Some(u64::from(a.signature_id)), map["alert"]["signature_id"].as_u64());
                    assert_eq!(Some(u64::from(a.severity)), map["alert"]["severity"].as_u64());
                }
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let _ = (e.kind(), e.field());
            if let EveError::LineTooLong { len } = e {
                assert!(len > MAX_LINE_BYTES);
            }
        }
    }
}

/// Tokens that make or break JSON and the fields' values.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "\\u0000",
    "\\\"",
    ":",
    ",",
    " ",
    "null",
    "true",
    "-",
    "-1",
    "0",
    "1e400",
    "99999999999999999999",
    "65536",
    "4294967296",
    "1.5",
    "+0100",
    "-0500",
    "Z",
    "+01:00",
    ".",
    "T",
    "\"alert\"",
    "\"flow\"",
    "\"timestamp\":",
    "\"event_type\":",
    "\"src_ip\":\"::1\",",
    "\"src_port\":",
    "\u{fffd}",
    "\u{0}",
    "\n",
    "\r",
];

/// A hostile JSON value.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,40}".prop_map(Value::from),
        prop::sample::select(vec![
            "2017-04-07T22:24:37.251547+0100",
            "2017-04-07T22:24:37.251547",
            "2017-02-30T00:00:00.0+0000",
            "9999-12-31T23:59:59.999999-2359",
            "0000-01-01T00:00:00.0+2359",
            "::1",
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            "10.0.0.1",
            "10.0.0.256",
            "TCP",
            "IPv6-ICMP",
            "047",
            "alert",
            "flow",
            "stats",
            "Other",
            "blocked",
        ])
        .prop_map(Value::from),
        (1usize..2000).prop_map(|n| {
            let mut v = Value::from(1);
            for _ in 0..n {
                v = Value::Array(vec![v]);
            }
            v
        }),
        (1usize..60_000).prop_map(|n| Value::from("x".repeat(n))),
        Just(serde_json::json!({"signature_id": 1, "severity": 1})),
        Just(serde_json::json!({"pkts_toserver": 1, "start": "2017-04-07T22:24:37.251547+0100"})),
    ]
}

/// A JSON-level edit: the value at a key (of the top level, or of `alert{}`/`flow{}` when present) replaced, or a
/// key removed.
#[derive(Debug, Clone)]
struct Edit {
    path: usize,
    key: usize,
    value: Option<Value>,
}

fn edit() -> impl Strategy<Value = Edit> {
    (0usize..3, any::<usize>(), prop::option::weighted(0.9, hostile_value())).prop_map(|(path, key, value)| Edit {
        path,
        key,
        value,
    })
}

const KEYS: &[&str] = &[
    "timestamp",
    "event_type",
    "flow_id",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "proto",
    "in_iface",
    "app_proto",
    "community_id",
    "alert",
    "flow",
    "signature_id",
    "severity",
    "signature",
    "category",
    "action",
    "gid",
    "rev",
    "pkts_toserver",
    "bytes_toclient",
    "start",
    "end",
    "unknown",
];

fn edit_line(line: &str, edits: &[Edit]) -> String {
    let mut value: Value = serde_json::from_str(line).unwrap();
    for e in edits {
        let target = match e.path {
            0 => Some(&mut value),
            1 => value.get_mut("alert"),
            _ => value.get_mut("flow"),
        };
        if let Some(Value::Object(map)) = target {
            let key = KEYS[e.key % KEYS.len()];
            match &e.value {
                Some(v) => map.insert(key.to_owned(), v.clone()),
                None => map.remove(key),
            };
        }
    }
    // The writer has no depth limit, so the nests of `hostile_value` are written whole.
    serde_json::to_string(&value).unwrap()
}

/// 20,000 cases by default; `PORTCULLIS_FUZZ_CASES=2000000` for a longer run.
#[test]
fn eve_many_mutations() {
    let samples = samples();
    let cases = std::env::var("PORTCULLIS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let started = Instant::now();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (0..samples.len(), prop::collection::vec(mutation(TOKENS), 1..6));
    runner
        .run(&strategy, |(index, mutations)| {
            check(&apply(samples[index], &mutations, &samples));
            Ok(())
        })
        .unwrap();
    eprintln!("eve_many_mutations: {cases} cases in {:.2?}", started.elapsed());
}

#[test]
fn eve_json_level_edits() {
    let samples = samples();
    let cases = std::env::var("PORTCULLIS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000) / 2;
    let started = Instant::now();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (0..samples.len(), prop::collection::vec(edit(), 1..4));
    runner
        .run(&strategy, |(index, edits)| {
            check(&edit_line(samples[index], &edits));
            Ok(())
        })
        .unwrap();
    eprintln!("eve_json_level_edits: {cases} cases in {:.2?}", started.elapsed());
}

/// The worst lines the cap allows, each within the cost bound: deep nests (skipped and in decoded places), every
/// character escaped, thousands of keys, numbers, long strings.
#[test]
fn worst_case_lines_cost_is_bounded() {
    let ts = r#""timestamp":"2026-01-02T03:04:05.000006+0100","event_type":"dns""#;
    let room = MAX_LINE_BYTES - 200;
    let lines = [
        format!("{{{ts},\"x\":{}{}}}", "[".repeat(room / 2), "]".repeat(room / 2)),
        format!("{{{ts},\"x\":{}", "[".repeat(room)),
        format!("{{{ts},\"x\":{}1{}}}", "{\"a\":".repeat(room / 6), "}".repeat(room / 6)),
        format!(
            "{{{ts},\"alert\":{{\"signature_id\":1,\"severity\":1,\"metadata\":{}{}}}}}",
            "[".repeat(room / 2),
            "]".repeat(room / 2)
        ),
        format!("{{{ts},\"in_iface\":\"{}\"}}", "\\u00e9".repeat(room / 6)),
        format!(
            "{{{ts},\"alert\":{{\"signature_id\":1,\"severity\":1,\"signature\":\"{}\"}}}}",
            "\\\"".repeat(room / 2)
        ),
        format!("{{{ts}{}}}", (0..room / 12).map(|i| format!(",\"k{i:05}\":1")).collect::<String>()),
        format!("{{{ts},\"x\":[{}0]}}", "0,".repeat(room / 2)),
        format!("{{{ts},\"x\":{}}}", "9".repeat(room)),
        format!("{{{ts},\"flow_id\":{}}}", "9".repeat(room)),
        format!("{{{ts},\"x\":\"{}\"}}", "a".repeat(room)),
        "[".repeat(MAX_LINE_BYTES),
        " ".repeat(MAX_LINE_BYTES - 1) + "{",
        "x".repeat(4 << 20),
    ];
    for line in &lines {
        let started = Instant::now();
        let result = parse_line(line);
        let cost = started.elapsed();
        eprintln!("{:>8} bytes {:>10.2?} {:?}", line.len(), cost, result.as_ref().map(|e| e.kind.as_str()));
        assert!(cost < MAX_COST);
        check(line);
    }
}

proptest! {
    #![proptest_config(Config { cases: 5_000, failure_persistence: None, ..Config::default() })]

    /// Any string at all.
    #[test]
    fn arbitrary_strings(line in any::<String>()) {
        check(&line);
    }

    /// Strings from the alphabet of JSON, so the parser gets past the first byte.
    #[test]
    fn json_alphabet(line in r#"\{("[a-z_]{1,12}":("[ -~]{0,20}"|-?[0-9]{1,22}|null|true|\{|\[|\]|\}),?){0,12}\}?"#) {
        check(&line);
    }

    /// Suricata's timestamp layout with any offset agrees with chrono's `%Y-%m-%dT%H:%M:%S%.f%z`.
    #[test]
    fn timestamps_agree_with_chrono(
        date in (0i32..=9999, 1u32..=12, 1u32..=31, 0u32..=23, 0u32..=59, 0u32..=59),
        frac in "[0-9]{1,9}",
        sign in prop::sample::select(vec!['+', '-']),
        offset in (0u32..=23, 0u32..=59),
    ) {
        let (y, mo, d, h, mi, s) = date;
        let line = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac}{sign}{:02}{:02}", offset.0, offset.1);
        let chrono = DateTime::parse_from_str(&line, "%Y-%m-%dT%H:%M:%S%.f%z").map(|t| t.with_timezone(&Utc));
        prop_assert_eq!(parse_timestamp(&line).ok(), chrono.ok(), "{}", line);
    }

    /// Any string as a timestamp: no panic, and what parses without `Z` agrees with chrono.
    #[test]
    fn arbitrary_timestamps(s in "[0-9T:.+Zz -]{0,40}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.0-9]{0,12}[-+:Z0-9]{0,7}") {
        if let Ok(t) = parse_timestamp(&s)
            && !s.contains(['Z', 'z'])
        {
            let chrono = DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%z").unwrap().with_timezone(&Utc);
            prop_assert_eq!(t, chrono, "{}", s);
        }
    }
}

#[test]
fn parse_lines_survives_arbitrary_text() {
    let mut runner = TestRunner::new(Config { cases: 2_000, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(any::<String>(), 0..20), |parts| {
            let text = parts.join("\n");
            let stats = EveStats::of_text(&text);
            assert_eq!(stats.total() as usize, parse_lines(&text).count());
            Ok(())
        })
        .unwrap();
}
