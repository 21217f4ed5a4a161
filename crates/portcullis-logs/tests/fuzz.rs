//! Property tests as a fuzzer: arbitrary strings and arbitrary mutations of the real sample lines (truncation,
//! byte replacement, inserted and deleted delimiters, spliced lines) never make the parser panic, and whatever
//! parses is consistent. Until a `cargo fuzz` target exists, `fuzz_many_mutations` runs 20,000 cases (`cargo fuzz`
//! needs a nightly toolchain). The seeds are the fixture's lines and the producer variants of `variants.rs`.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::time::Instant;

use chrono::{TimeZone, Utc};
use portcullis_logs::{ParseStats, parse_line, parse_lines};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

mod common;

use common::mutate::{apply, mutation};

const FIXTURE: &str = include_str!("fixtures/filterlog-samples.txt");

/// The producer variants of `tests/variants.rs` (OPNsense labels and ICMP layout, placeholders, no-rule numbers
/// and anchors, glued ICMP lengths, tab-separated and timestamp-only prefixes), as seeds beside the fixture.
const VARIANT_SEEDS: &[&str] = &[
    "<134>1 2025-10-10T00:00:00+02:00 opnsense.filter.log filterlog 86605 - [meta sequenceId=\"4\"] 68,,,\
     4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a,eth1,match,pass,out,4,0x0,,127,17785,0,DF,6,tcp,52,192.168.1.100,10.0.0.5,46376,\
     80,0,S,1356197145,,64480,,mss;nop;wscale;nop;nop;sackOK",
    "61,,,1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d,eth0,match,pass,in,6,0x00,0xfd492,128,udp,17,60,fd00:1234:5678:9abc::1,\
     fd00:1234:5678:9abc::2,63511,53,60",
    "77,,,8f3a1f8e-7b1c-4a51-9d1e-2b4c6d8e0f12,vtnet0,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,192.0.2.10,198.51.100.20,\
     51000,443,0,S,2145306578,,65228,,mss",
    "3,,,Default deny / state violation rule,igb0,match,block,in,4,0x0,,64,0,0,DF,17,udp,76,192.0.2.10,198.51.100.20,\
     123,123,56",
    "5,,,1000000103,igb0,unkn(%u),unkn(%u),unkn(%u),4,0x0,,64,0,0,DF,17,udp,76,192.0.2.10,198.51.100.20,123,123,56",
    "5,,,0,em0,unknown(15),unknown(11),unknown(3),4,0x0,,64,0,0,DF,17,udp,76,192.0.2.10,198.51.100.20,123,123,56",
    "4294967295,0,userrules,1000000103,igb0,match,rdr,in/out,4,0x0,,64,0,0,DF,17,udp,76,192.0.2.10,198.51.100.20,123,\
     123,56",
    ",,,0,em0,match,block,in,4,0x0,,64,0,0,none,1,icmp,84,203.0.113.9,192.0.2.1,datalength=64,echoreq,0,4660,1,",
    "5,,,1000000103,igb0,match,block,in,4,0x0,,64,0,0,none,1,icmp,84,203.0.113.9,192.0.2.1,request,4660,364",
    "5,,,1000000103,igb0,match,block,in,4,0x0,,64,0,0,none,1,icmp,576,203.0.113.9,192.0.2.1,needfrag,198.51.100.7,\
     1400556",
    "5,,,1000000103,igb0,match,block,in,4,0x0,,64,0,0,none,1,icmp,56,203.0.113.9,192.0.2.1,unreachport,198.51.100.7,\
     TCP,44336",
    "5,,,1000000103,igb0,match,block,in,4,0x0,,64,0,0,none,1,icmp,40,203.0.113.9,192.0.2.1,tstampreply, 17664,83,\
     00:00:00.000,372:53:59.424,1045:02:39.61620",
    "Jul  3 19:10:30\tfw\tfilterlog[1]:\t176,,,1520797901,igb1.27,match,pass,in,4,0xb8,,64,58355,0,none,17,udp,76,\
     10.170.27.27,216.229.4.66,123,123,56",
    "Jul  3 19:10:30\t176,,,1520797901,igb1.27,match,pass,in,4,0xb8,,64,58355,0,none,17,udp,76,10.170.27.27,\
     216.229.4.66,123,123,56",
    "2026-07-03T19:10:30.123456+02:00 176,,,1520797901,igb1.27,match,pass,in,4,0xb8,,64,58355,0,none,17,udp,76,\
     10.170.27.27,216.229.4.66,123,123,56",
    "2026-07-03T19:10:30Z filterlog[123]: 176,,,1520797901,igb1.27,match,pass,in,4,0xb8,,64,58355,0,none,17,udp,76,\
     10.170.27.27,216.229.4.66,123,123,56",
];

fn samples() -> Vec<&'static str> {
    let fixture = FIXTURE.lines().filter(|l| !l.is_empty() && !l.starts_with('#'));
    fixture.chain(VARIANT_SEEDS.iter().copied()).collect()
}

/// Parses `line`; when it parses, exercises everything derived from the entry.
fn check(line: &str) {
    if let Ok(entry) = parse_line(line) {
        assert!(line.contains(entry.body));
        assert!(matches!(entry.ip_version, 4 | 6));
        assert_eq!(entry.ip_version == 4, entry.src.is_ipv4());
        assert_eq!(entry.ip_version == 4, entry.dst.is_ipv4());
        assert!(!entry.interface.is_empty());
        // A numeric tracker is the label's digits; a label without one is not a number.
        match (entry.tracker, entry.rule_label) {
            (Some(t), Some(label)) => assert_eq!(label.parse::<u64>().ok(), Some(t)),
            (Some(_), None) => panic!("a tracker without its text: {line}"),
            (None, Some(label)) => assert!(label.parse::<u64>().is_err(), "{line}"),
            (None, None) => {}
        }
        assert_eq!(entry.rule_id(), entry.rule_label);
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 13, 4, 5).unwrap();
        let _ = entry.timestamp(2026, now);
        let _ = entry.timestamp(i32::MIN, now);
        let _ = entry.timestamp(i32::MAX, now);
        let record = entry.to_record();
        assert_eq!(record.interface, entry.interface);
        for year in [2026, 262_143, -262_144, i32::MIN, i32::MAX] {
            let _ = entry.to_record_at(year, now);
        }
        let _ = entry.timestamp_in(2026, now, chrono::FixedOffset::east_opt(86_399).unwrap());
        let _ = (entry.src_port(), entry.dst_port(), entry.tcp_flags(), entry.icmp_type());
    }
}

/// Delimiters, placeholders and numbers that make or break a filterlog line.
const TOKENS: &[&str] = &[
    ",",
    ",,",
    ":",
    " ",
    "-",
    "0",
    "9999999999999999999999",
    "\u{fffd}",
    "[",
    "]",
    "\"",
    "'",
    "<",
    "\r",
    "\n",
    "error=",
    "errormsg='",
    "datalength=",
    "\t",
    "unkn(%u)",
    "unknown(7)",
    "4294967295",
    "0123456789abcdef0123456789abcdef",
    "2026-07-03T19:10:30Z ",
];

/// 20,000 cases by default; `PORTCULLIS_FUZZ_CASES=2000000` for a longer run.
#[test]
fn fuzz_many_mutations() {
    let samples = samples();
    let cases = std::env::var("PORTCULLIS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let started = Instant::now();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (0..samples.len(), prop::collection::vec(mutation(TOKENS), 1..6));
    runner
        .run(&strategy, |(index, mutations)| {
            let line = apply(samples[index], &mutations, &samples);
            check(&line);
            Ok(())
        })
        .unwrap();
    eprintln!("fuzz_many_mutations: {cases} cases in {:.2?}", started.elapsed());
}

proptest! {
    #![proptest_config(Config { cases: 5_000, failure_persistence: None, ..Config::default() })]

    /// Any string at all.
    #[test]
    fn arbitrary_strings(line in any::<String>()) {
        check(&line);
    }

    /// Strings from the alphabet of filterlog lines, so the parser gets past the first fields.
    #[test]
    fn filterlog_alphabet(line in "(<[0-9]{1,3}>)?(1 |[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} )?[a-z0-9 .:\\[\\]-]{0,12} ?(filterlog(\\[[0-9]+\\])?:? )?[0-9a-fx.:,A-Za-z=;' -]{0,160}") {
        check(&line);
    }

    /// A body assembled from plausible field values in plausible places.
    #[test]
    fn plausible_fields(fields in prop::collection::vec(
        prop::sample::select(vec![
            "", "0", "1", "4", "6", "17", "58", "112", "255", "65535", "4294967296", "0x0", "0xf6279", "match", "pass",
            "block", "in", "out", "em0", "tcp", "udp", "icmp", "DF", "none", "S", "PA", "1:2", "10.0.0.1", "fe80::1",
            "256.0.0.1", "request", "tstampreply", "unreachport", "needfrag", "advertise", "datalength=8",
            "errormsg='x,y'", "error=short", "IPV4-IN-IPV4", "-12", "unkn(%u)", "unknown(3)", "in/out", "rdr",
            "4294967295", "4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a", "8f3a1f8e-7b1c-4a51-9d1e-2b4c6d8e0f12", "echoreq",
            "port-unr", "164", "1400556", "type-??20",
        ]),
        0..40,
    )) {
        check(&fields.join(","));
    }
}

#[test]
fn parse_lines_survives_arbitrary_text() {
    let mut runner = TestRunner::new(Config { cases: 2_000, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(any::<String>(), 0..20), |parts| {
            let text = parts.join("\n");
            let stats = ParseStats::of_text(&text);
            assert_eq!(stats.total() as usize, parse_lines(&text).count());
            Ok(())
        })
        .unwrap();
}
