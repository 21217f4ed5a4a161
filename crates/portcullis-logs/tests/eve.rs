//! The eve.json parser on recorded lines (`tests/fixtures/eve/`, written after the examples of Suricata's "Eve
//! JSON Format" documentation and `etc/schema.json`, one file per event type), and on hostile lines: each of those
//! is an error that names what is wrong, never a panic.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use portcullis_logs::eve::{
    AlertAction, EveError, EveErrorKind, EveField, EveStats, EventKind, MAX_LINE_BYTES, MAX_OTHER_EVENT_NAMES, Proto,
    TimestampProblem, parse_line, parse_lines, parse_lines_counted, parse_timestamp,
};

const ALERT: &str = include_str!("fixtures/eve/alert.json");
const FLOW: &str = include_str!("fixtures/eve/flow.json");
const DNS: &str = include_str!("fixtures/eve/dns.json");
const HTTP: &str = include_str!("fixtures/eve/http.json");
const TLS: &str = include_str!("fixtures/eve/tls.json");
const ANOMALY: &str = include_str!("fixtures/eve/anomaly.json");
const STATS: &str = include_str!("fixtures/eve/stats.json");
const DROP: &str = include_str!("fixtures/eve/drop.json");
const FILEINFO: &str = include_str!("fixtures/eve/fileinfo.json");
const OTHER: &str = include_str!("fixtures/eve/other.json");

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn nth(text: &str, n: usize) -> &str {
    text.lines().nth(n).unwrap()
}

#[test]
fn every_fixture_line_parses_as_its_kind() {
    let files: [(&str, &str, usize); 9] = [
        (ALERT, "alert", 5),
        (FLOW, "flow", 4),
        (DNS, "dns", 3),
        (HTTP, "http", 2),
        (TLS, "tls", 2),
        (ANOMALY, "anomaly", 3),
        (STATS, "stats", 2),
        (DROP, "drop", 2),
        (FILEINFO, "fileinfo", 1),
    ];
    for (text, kind, lines) in files {
        let events: Vec<_> = parse_lines(text).collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(events.len(), lines, "{kind}");
        for event in events {
            assert_eq!(event.kind.as_str(), kind);
            assert_eq!(EventKind::from_name(kind), Some(event.kind.clone()));
            assert_ne!(event.kind, EventKind::Other(kind.into()), "{kind} is a known kind");
        }
    }
}

/// The documentation's example, `+0100`: 22:24 local is 21:24 UTC.
#[test]
fn documentation_alert() {
    let e = parse_line(nth(ALERT, 0)).unwrap();
    assert_eq!(e.timestamp, utc("2017-04-07T21:24:37.251547Z"));
    assert_eq!(e.kind, EventKind::Alert);
    assert_eq!(e.flow_id, Some(586_497_171_462_735));
    assert_eq!((e.src_ip, e.src_port), (ip("192.168.2.14"), Some(50096)));
    assert_eq!((e.dest_ip, e.dest_port), (ip("209.53.113.5"), Some(80)));
    assert_eq!(e.proto, Some(Proto::TCP));
    assert_eq!(e.app_proto.as_deref(), Some("http"));
    assert_eq!(e.in_iface, None);
    assert_eq!(e.community_id, None);
    assert_eq!(e.flow, None);
    let a = e.alert.unwrap();
    assert_eq!(a.action, AlertAction::Allowed);
    assert_eq!((a.gid, a.signature_id, a.rev, a.severity), (1, 2_018_358, 10, 2));
    assert_eq!(a.signature, "ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1");
    assert_eq!(a.category.as_deref(), Some("Potentially Bad Traffic"));
}

/// `-0500`: 08:15 local is 13:15 UTC; the alert's own `flow{}` is decoded, its `metadata{}` skipped.
#[test]
fn alert_with_negative_offset_flow_and_metadata() {
    let e = parse_line(nth(ALERT, 1)).unwrap();
    assert_eq!(
        e.timestamp,
        Utc.with_ymd_and_hms(2026, 11, 30, 13, 15, 2).unwrap() + chrono::TimeDelta::microseconds(417_003)
    );
    assert_eq!(e.in_iface.as_deref(), Some("enp3s0"));
    assert_eq!(e.community_id.as_deref(), Some("1:Xy3mXk2vB4x1mU0jM6bQvQ0m9nE="));
    let f = e.flow.unwrap();
    assert_eq!((f.pkts_toserver, f.pkts_toclient, f.bytes_toserver, f.bytes_toclient), (3, 2, 206, 140));
    assert_eq!(f.start, Some(utc("2026-11-30T13:15:02.386512Z")));
    assert_eq!(f.end, None);
    let a = e.alert.unwrap();
    assert_eq!((a.signature_id, a.rev, a.severity), (2_001_219, 20, 2));
    assert_eq!(a.signature, "ET SCAN Potential SSH Scan");
}

/// IPv6 in Suricata's long form (every group in four digits), ICMPv6 without ports, `blocked`.
#[test]
fn blocked_ipv6_icmp_alert() {
    let e = parse_line(nth(ALERT, 2)).unwrap();
    assert_eq!(e.src_ip, ip("2001:db8::66"));
    assert_eq!(e.dest_ip, ip("2001:db8::1"));
    assert_eq!((e.src_port, e.dest_port), (None, None));
    assert_eq!(e.proto, Some(Proto::IPV6_ICMP));
    assert_eq!(e.timestamp, utc("2026-11-30T13:20:44.002311Z"));
    let a = e.alert.unwrap();
    assert_eq!(a.action, AlertAction::Blocked);
    assert_eq!((a.signature_id, a.severity), (2_100_366, 3));
}

/// Escapes in a kept string are decoded; an alert without `category` (a rule without `classtype`) has none.
#[test]
fn escaped_signature_and_no_category() {
    let a = parse_line(nth(ALERT, 4)).unwrap().alert.unwrap();
    assert_eq!(a.signature, "LOCAL \"admin\" path /cgi-bin/ probe é");
    assert_eq!(a.category, None);
    assert_eq!(a.severity, 1);
}

#[test]
fn flow_counters() {
    let e = parse_line(nth(FLOW, 0)).unwrap();
    assert_eq!(e.kind, EventKind::Flow);
    assert_eq!(e.alert, None);
    let f = e.flow.unwrap();
    assert_eq!((f.pkts_toserver, f.pkts_toclient, f.bytes_toserver, f.bytes_toclient), (21, 30, 3090, 36017));
    assert_eq!(f.start, Some(utc("2026-11-30T13:01:40.117270Z")));
    assert_eq!(f.end, Some(utc("2026-11-30T13:05:12.441094Z")));

    // Compressed IPv6, `-0500`.
    let e = parse_line(nth(FLOW, 1)).unwrap();
    assert_eq!(e.src_ip, ip("fe80::a00:27ff:fe4e:66a1"));
    assert_eq!(e.dest_ip, ip("ff02::1:2"));
    assert_eq!(e.proto, Some(Proto::UDP));
    assert_eq!(e.timestamp, utc("2026-11-30T14:30:01.120355Z"));
    assert_eq!(e.flow.unwrap().start, Some(utc("2026-11-30T14:28:55.004120Z")));

    // ICMP: no ports.
    let e = parse_line(nth(FLOW, 2)).unwrap();
    assert_eq!((e.proto, e.src_port, e.dest_port), (Some(Proto::ICMP), None, None));
}

#[test]
fn protocol_numbers_and_other_kinds() {
    let events: Vec<_> = parse_lines(OTHER).collect::<Result<_, _>>().unwrap();
    assert_eq!(events[0].kind, EventKind::Other("ssh".into()));
    assert_eq!(events[0].kind.as_str(), "ssh");
    assert_eq!(events[1].kind, EventKind::Other("netflow".into()));
    // `112` is VRRP (and CARP); `253` has no keyword and prints as its number.
    assert_eq!(events[2].proto, Some(Proto(112)));
    assert_eq!(events[2].proto.unwrap().to_string(), "VRRP");
    assert_eq!(events[3].proto, Some(Proto(253)));
    assert_eq!(events[3].proto.unwrap().to_string(), "253");
    assert_eq!(Proto::parse("047"), Some(Proto(47)));
    assert_eq!(Proto::parse("gre"), Some(Proto(47)));
    assert_eq!(Proto::parse("ipv6-icmp"), Some(Proto::IPV6_ICMP));
    assert_eq!(Proto::parse("ICMPv6"), Some(Proto::IPV6_ICMP));
    assert_eq!(Proto::parse("256"), None);
    assert_eq!(Proto::parse("1000"), None);
    assert_eq!(Proto::parse(""), None);
    assert_eq!(Proto::parse("TCPX"), None);
}

/// Stats have no 5-tuple and no flow; a `Z` timestamp is UTC.
#[test]
fn stats_without_tuple() {
    let e = parse_line(nth(STATS, 0)).unwrap();
    assert_eq!(e.kind, EventKind::Stats);
    assert_eq!(
        (e.src_ip, e.dest_ip, e.src_port, e.dest_port, e.proto, e.flow_id),
        (None, None, None, None, None, None)
    );
    assert_eq!(e.timestamp, utc("2026-11-30T13:08:00.000412Z"));
    let e = parse_line(nth(STATS, 1)).unwrap();
    assert_eq!(e.timestamp, utc("2026-11-30T14:08:08Z"));
}

/// The documentation's anomaly from 1969 at `-0800` is four minutes after the epoch.
#[test]
fn anomaly_before_the_epoch_locally() {
    let e = parse_line(nth(ANOMALY, 0)).unwrap();
    assert_eq!(e.timestamp, utc("1970-01-01T00:04:21Z"));
    assert_eq!((e.src_port, e.dest_port, e.flow_id), (Some(0), Some(0), None));
    let e = parse_line(nth(ANOMALY, 1)).unwrap();
    assert_eq!(e.timestamp, utc("2016-01-11T13:10:54.612110Z"));
}

/// A drop event carries the alert that dropped it.
#[test]
fn drop_with_alert() {
    let e = parse_line(nth(DROP, 0)).unwrap();
    assert_eq!(e.kind, EventKind::Drop);
    assert_eq!(e.alert.unwrap().action, AlertAction::Blocked);
    assert_eq!(parse_line(nth(DROP, 1)).unwrap().alert, None);
}

#[test]
fn dns_http_tls_fileinfo_keep_their_tuple() {
    let e = parse_line(nth(DNS, 2)).unwrap();
    assert_eq!((e.src_ip, e.dest_ip, e.dest_port), (ip("2001:db8:10::35"), ip("2001:db8::53"), Some(53)));
    let e = parse_line(nth(HTTP, 0)).unwrap();
    assert_eq!((e.dest_port, e.flow_id), (Some(8080), Some(644_216_208_315_532)));
    let e = parse_line(nth(TLS, 1)).unwrap();
    assert_eq!(e.dest_ip, ip("2606:2800:220:1:248:1893:25c8:1946"));
    let e = parse_line(nth(FILEINFO, 0)).unwrap();
    assert_eq!((e.src_port, e.app_proto.as_deref()), (Some(8080), Some("http")));
}

/// Unknown fields, at the top and inside `alert{}` and `flow{}`, of every JSON type, are ignored.
#[test]
fn unknown_fields_ignored() {
    let line = r#"{"x_future":{"deep":[1,2,{"a":null}]},"timestamp":"2026-01-02T03:04:05.000006+0100","event_type":"alert","host":"sensor-1","vlan":[10,20],"pcap_filename":"/tmp/a.pcap","alert":{"signature_id":1,"severity":3,"new_field":[true,false],"source":{"ip":"1.2.3.4","port":1},"rule":"alert ip any any -> any any (sid:1;)"},"flow":{"pkts_toserver":1,"bypass":"local","exception_policy":[]},"src_ip":"10.0.0.1","ip_v":4,"ether":{"src_mac":"00:00:00:00:00:01"}}"#;
    let e = parse_line(line).unwrap();
    assert_eq!(e.src_ip, ip("10.0.0.1"));
    assert_eq!(e.timestamp, utc("2026-01-02T02:04:05.000006Z"));
    let a = e.alert.unwrap();
    assert_eq!((a.gid, a.signature_id, a.rev, a.severity, a.action), (1, 1, 0, 3, AlertAction::Unknown));
    assert_eq!(a.signature, "");
    assert_eq!(e.flow.unwrap().pkts_toserver, 1);
}

/// Only `timestamp` and `event_type` are required (and `alert{}` / `flow{}` on their kinds); `null` is absent.
#[test]
fn missing_and_null_optional_fields() {
    let e = parse_line(r#"{"timestamp":"2026-01-02T03:04:05.5+0000","event_type":"dns"}"#).unwrap();
    assert_eq!(e.timestamp, utc("2026-01-02T03:04:05.5Z"));
    assert_eq!((e.flow_id, e.src_ip, e.proto, e.in_iface, e.alert, e.flow), (None, None, None, None, None, None));
    let e = parse_line(
        r#"{"timestamp":"2026-01-02T03:04:05.5+0000","event_type":"dns","src_ip":null,"src_port":null,"proto":null,"in_iface":null,"flow_id":null}"#,
    )
    .unwrap();
    assert_eq!((e.flow_id, e.src_ip, e.src_port, e.proto, e.in_iface), (None, None, None, None, None));
    let e = parse_line(r#"{"timestamp":"2026-01-02T03:04:05.5+0000","event_type":"flow","flow":{}}"#).unwrap();
    assert_eq!(e.flow.unwrap(), Default::default());
    // A line ending in `\r\n` (a file copied through Windows).
    assert!(parse_line("{\"timestamp\":\"2026-01-02T03:04:05.5Z\",\"event_type\":\"dns\"}\r\n").is_ok());
}

#[test]
fn timestamps() {
    let t = |s: &str| parse_timestamp(s);
    // Suricata's own form, the RFC 3339 forms other producers write, and any number of fraction digits.
    assert_eq!(t("2017-04-07T22:24:37.251547+0100"), Ok(utc("2017-04-07T21:24:37.251547Z")));
    assert_eq!(t("2017-04-07T22:24:37.251547+01:00"), Ok(utc("2017-04-07T21:24:37.251547Z")));
    assert_eq!(t("2017-04-07T22:24:37.251547Z"), Ok(utc("2017-04-07T22:24:37.251547Z")));
    assert_eq!(t("2017-04-07T22:24:37-0500"), Ok(utc("2017-04-08T03:24:37Z")));
    assert_eq!(t("2017-04-07T22:24:37.1234567891234-0000"), Ok(utc("2017-04-07T22:24:37.123456789Z")));
    assert_eq!(t("2016-12-31T23:30:00.000000-0130"), Ok(utc("2017-01-01T01:00:00Z")));
    assert_eq!(t("2024-02-29T00:00:00.0+2359"), Ok(utc("2024-02-28T00:01:00Z")));
    // Each agrees with chrono's own reading of the format the facts name.
    for s in ["2017-04-07T22:24:37.251547+0100", "2026-11-30T08:15:02.417003-0500", "1969-12-31T16:04:21.000000-0800"] {
        let chrono = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").unwrap().with_timezone(&Utc);
        assert_eq!(t(s), Ok(chrono));
    }
    // The old documentation's form has no offset: the instant is unknown.
    assert_eq!(t("2009-11-24T21:27:09.534255"), Err(TimestampProblem::NoOffset));
    assert_eq!(t("2017-02-29T00:00:00.0+0000"), Err(TimestampProblem::NoSuchTime));
    assert_eq!(t("2017-04-07T24:00:00.0+0000"), Err(TimestampProblem::NoSuchTime));
    assert_eq!(t("2016-12-31T23:59:60.0+0000"), Err(TimestampProblem::NoSuchTime));
    assert_eq!(t("2017-04-07T22:24:37.+0100"), Err(TimestampProblem::Layout));
    assert_eq!(t("2017-04-07 22:24:37.1+0100"), Err(TimestampProblem::Layout));
    assert_eq!(t("17-04-07T22:24:37.1+0100"), Err(TimestampProblem::Layout));
    assert_eq!(t("2017-04-07T22:24:3"), Err(TimestampProblem::Layout));
    assert_eq!(t("2017-04-07T22:24:37.1 +0100"), Err(TimestampProblem::Layout));
    assert_eq!(t("٢٠١٧-04-07T22:24:37.1+0100"), Err(TimestampProblem::Layout));
    assert_eq!(t(""), Err(TimestampProblem::Layout));
    assert_eq!(t("2017-04-07T22:24:37.1+2400"), Err(TimestampProblem::Offset));
    assert_eq!(t("2017-04-07T22:24:37.1+0160"), Err(TimestampProblem::Offset));
    assert_eq!(t("2017-04-07T22:24:37.1+01"), Err(TimestampProblem::Offset));
    assert_eq!(t("2017-04-07T22:24:37.1+01000"), Err(TimestampProblem::Offset));
    assert_eq!(t("2017-04-07T22:24:37.1+0a00"), Err(TimestampProblem::Offset));
    assert_eq!(t("2017-04-07T22:24:37.1Zjunk"), Err(TimestampProblem::Offset));
}

const TS: &str = r#""timestamp":"2026-01-02T03:04:05.000006+0100""#;

fn err(line: &str) -> EveError {
    match parse_line(line) {
        Ok(e) => panic!("parsed: {line}: {e:?}"),
        Err(e) => e,
    }
}

/// Hostile and broken lines: each one an error that says why.
#[test]
fn hostile_lines_are_errors_that_say_why() {
    use EveError::*;
    let bad_field = |field| BadField { field };
    let cases: Vec<(String, EveError)> = vec![
        (String::new(), Empty),
        (" \t ".into(), Empty),
        ("\n".into(), Empty),
        ("Nov 30 14:05:31 sensor suricata[811]: {}".into(), NotJson { column: 1 }),
        ("{\"timestamp\" 1}".into(), NotJson { column: 14 }),
        (format!("{{{TS},\"event_type\":\"dns\"}} trailing"), NotJson { column: 68 }),
        (format!("{{{TS},\"event_type\":\"dns\"}}{{}}"), NotJson { column: 67 }),
        (format!("{{{TS},\"event_type\":\"dns\",}}"), NotJson { column: 67 }),
        // Truncated, at every kind of place.
        (format!("{{{TS},\"event_type\":\"dns\""), Truncated),
        (format!("{{{TS},\"event_type\":\"dn"), Truncated),
        (format!("{{{TS},\"event_type\":"), Truncated),
        (format!("{{{TS},\"alert\":{{\"signature_id\":1"), Truncated),
        ("{".into(), Truncated),
        // Not an object.
        ("[]".into(), NotAnObject),
        ("\"alert\"".into(), NotAnObject),
        ("42".into(), NotAnObject),
        ("null".into(), NotAnObject),
        // Required fields.
        ("{}".into(), NoTimestamp),
        ("{\"event_type\":\"dns\"}".into(), NoTimestamp),
        (format!("{{{TS}}}"), MissingEventType),
        (format!("{{{TS},\"event_type\":\"alert\"}}"), MissingField { field: EveField::Alert }),
        (format!("{{{TS},\"event_type\":\"flow\"}}"), MissingField { field: EveField::Flow }),
        (
            format!("{{{TS},\"event_type\":\"alert\",\"alert\":{{\"severity\":1}}}}"),
            MissingField { field: EveField::AlertSignatureId },
        ),
        (
            format!("{{{TS},\"event_type\":\"alert\",\"alert\":{{\"signature_id\":1}}}}"),
            MissingField { field: EveField::AlertSeverity },
        ),
        // Bad values.
        (
            "{\"timestamp\":\"2009-11-24T21:27:09.534255\",\"event_type\":\"dns\"}".into(),
            BadTimestamp { field: EveField::Timestamp, problem: TimestampProblem::NoOffset },
        ),
        (
            format!("{{{TS},\"event_type\":\"flow\",\"flow\":{{\"start\":\"yesterday\"}}}}"),
            BadTimestamp { field: EveField::FlowStart, problem: TimestampProblem::Layout },
        ),
        (format!("{{{TS},\"event_type\":\"Alert\"}}"), BadEventType),
        (format!("{{{TS},\"event_type\":\"\"}}"), BadEventType),
        (format!("{{{TS},\"event_type\":\"{}\"}}", "a".repeat(33)), BadEventType),
        (format!("{{{TS},\"event_type\":\"dns\",\"src_ip\":\"10.0.0.256\"}}"), BadAddress { field: EveField::SrcIp }),
        (
            format!("{{{TS},\"event_type\":\"dns\",\"dest_ip\":\"fe80::1%eth0\"}}"),
            BadAddress { field: EveField::DestIp },
        ),
        (format!("{{{TS},\"event_type\":\"dns\",\"dest_ip\":\"\"}}"), BadAddress { field: EveField::DestIp }),
        (format!("{{{TS},\"event_type\":\"dns\",\"proto\":\"QUIC\"}}"), BadProto),
        // Wrong types.
        ("{\"timestamp\":1491600277,\"event_type\":\"dns\"}".into(), bad_field(EveField::Timestamp)),
        (format!("{{{TS},\"event_type\":[\"dns\"]}}"), bad_field(EveField::EventType)),
        (format!("{{{TS},\"event_type\":\"dns\",\"src_port\":\"80\"}}"), bad_field(EveField::SrcPort)),
        (format!("{{{TS},\"event_type\":\"dns\",\"src_ip\":167772161}}"), bad_field(EveField::SrcIp)),
        (format!("{{{TS},\"event_type\":\"dns\",\"proto\":6}}"), bad_field(EveField::Proto)),
        (format!("{{{TS},\"event_type\":\"dns\",\"in_iface\":{{}}}}"), bad_field(EveField::InIface)),
        (format!("{{{TS},\"event_type\":\"alert\",\"alert\":\"x\"}}"), bad_field(EveField::Alert)),
        (format!("{{{TS},\"event_type\":\"alert\",\"alert\":[]}}"), bad_field(EveField::Alert)),
        (
            format!(
                "{{{TS},\"event_type\":\"alert\",\"alert\":{{\"signature_id\":1,\"severity\":1,\"signature\":7}}}}"
            ),
            bad_field(EveField::AlertSignature),
        ),
        (
            format!("{{{TS},\"event_type\":\"flow\",\"flow\":{{\"pkts_toserver\":true}}}}"),
            bad_field(EveField::FlowPktsToserver),
        ),
        // Numbers out of range: of the field's type, or even of `f64`. (In a skipped field, any number is skipped.)
        (format!("{{{TS},\"event_type\":\"dns\",\"src_port\":65536}}"), bad_field(EveField::SrcPort)),
        (format!("{{{TS},\"event_type\":\"dns\",\"dest_port\":-1}}"), bad_field(EveField::DestPort)),
        (format!("{{{TS},\"event_type\":\"dns\",\"dest_port\":80.0}}"), bad_field(EveField::DestPort)),
        (format!("{{{TS},\"event_type\":\"dns\",\"flow_id\":18446744073709551616}}"), bad_field(EveField::FlowId)),
        (format!("{{{TS},\"event_type\":\"dns\",\"flow_id\":{}}}", "9".repeat(5000)), bad_field(EveField::FlowId)),
        (format!("{{{TS},\"event_type\":\"dns\",\"flow_id\":1e300}}"), bad_field(EveField::FlowId)),
        (format!("{{{TS},\"event_type\":\"dns\",\"flow_id\":1e400}}"), bad_field(EveField::FlowId)),
        (
            format!("{{{TS},\"event_type\":\"alert\",\"alert\":{{\"signature_id\":1,\"severity\":256}}}}"),
            bad_field(EveField::AlertSeverity),
        ),
        (
            format!("{{{TS},\"event_type\":\"alert\",\"alert\":{{\"signature_id\":4294967296,\"severity\":1}}}}"),
            bad_field(EveField::AlertSignatureId),
        ),
        // Duplicates: which one is true is ambiguous.
        (format!("{{{TS},{TS},\"event_type\":\"dns\"}}"), DuplicateField { field: EveField::Timestamp }),
        (
            format!("{{{TS},\"event_type\":\"dns\",\"src_ip\":\"10.0.0.1\",\"src_ip\":\"10.0.0.2\"}}"),
            DuplicateField { field: EveField::SrcIp },
        ),
        (
            format!(
                "{{{TS},\"event_type\":\"alert\",\"alert\":{{\"signature_id\":1,\"signature_id\":2,\"severity\":1}}}}"
            ),
            DuplicateField { field: EveField::AlertSignatureId },
        ),
        // Invalid escapes and code points (invalid UTF-8 cannot reach a `&str`; its escapes can).
        (format!("{{{TS},\"event_type\":\"dns\",\"in_iface\":\"\\x41\"}}"), NotJson { column: 80 }),
        (format!("{{{TS},\"event_type\":\"dns\",\"in_iface\":\"\\ud800\"}}"), NotJson { column: 85 }),
        (format!("{{{TS},\"event_type\":\"dns\",\"in_iface\":\"\\u12\"}}"), NotJson { column: 84 }),
        (format!("{{{TS},\"event_type\":\"dns\",\"x\":\"\\q\"}}"), NotJson { column: 73 }),
        (format!("{{{TS},\"event_type\":\"dns\",\"in_iface\":\"a\u{0}b\"}}"), NotJson { column: 80 }),
    ];
    let mut wrong = Vec::new();
    for (line, expected) in cases {
        let got = err(&line);
        if got != expected {
            wrong.push(format!("{line}\n  got {got:?}, expected {expected:?}"));
        }
        assert!(!got.to_string().is_empty());
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A skipped field is only checked to be JSON: a number beyond `f64` there is skipped too.
    assert!(parse_line(&format!("{{{TS},\"event_type\":\"dns\",\"x\":1e400}}")).is_ok());
}

/// Escapes in a field that is only parsed (not kept) are decoded before it is read.
#[test]
fn escaped_parsed_fields() {
    let e = parse_line(
        r#"{"timestamp":"2026-01-02T03:04:05\u002e5\u002b0100","event_type":"\u0064ns","src_ip":"10\u002e0.0.1"}"#,
    )
    .unwrap();
    assert_eq!(e.timestamp, utc("2026-01-02T02:04:05.5Z"));
    assert_eq!(e.kind, EventKind::Dns);
    assert_eq!(e.src_ip, ip("10.0.0.1"));
}

#[test]
fn long_lines() {
    // 1 MB: refused unread.
    let huge = format!("{{{TS},\"event_type\":\"dns\",\"x\":\"{}\"}}", "a".repeat(1 << 20));
    assert_eq!(err(&huge), EveError::LineTooLong { len: huge.len() });
    assert_eq!(err(&huge).to_string(), format!("line too long: {} bytes, the limit is 65536", huge.len()));
    // Exactly at the limit: read; one byte over: refused.
    let head = format!("{{{TS},\"event_type\":\"dns\",\"x\":\"");
    let at_limit = format!("{head}{}\"}}", "a".repeat(MAX_LINE_BYTES - head.len() - 2));
    assert_eq!(at_limit.len(), MAX_LINE_BYTES);
    assert!(parse_line(&at_limit).is_ok());
    assert!(parse_line(&format!("{at_limit}\n")).is_ok(), "the terminator does not count");
    let over = format!("{head}{}\"}}", "a".repeat(MAX_LINE_BYTES - head.len() - 1));
    assert_eq!(err(&over), EveError::LineTooLong { len: MAX_LINE_BYTES + 1 });
    // A kept string as long as the line allows owns no more than the line.
    let iface = format!("{{{TS},\"event_type\":\"dns\",\"in_iface\":\"{}\"}}", "e".repeat(60_000));
    assert_eq!(parse_line(&iface).unwrap().in_iface.unwrap().len(), 60_000);
}

/// Nesting as deep as the line allows, in skipped and in decoded places: an error or a skip, never a stack
/// overflow.
#[test]
fn depth_bombs() {
    let n = 30_000;
    let skipped = format!("{{{TS},\"event_type\":\"dns\",\"x\":{}{}}}", "[".repeat(n), "]".repeat(n));
    assert!(skipped.len() < MAX_LINE_BYTES);
    assert_eq!(parse_line(&skipped).unwrap().kind, EventKind::Dns);
    let objects = format!("{{{TS},\"event_type\":\"dns\",\"x\":{}1{}}}", "{\"a\":".repeat(n / 5), "}".repeat(n / 5));
    assert!(parse_line(&objects).is_ok());
    let unclosed = format!("{{{TS},\"event_type\":\"dns\",\"x\":{}", "[".repeat(60_000));
    assert_eq!(err(&unclosed), EveError::Truncated);
    let in_metadata = format!(
        "{{{TS},\"event_type\":\"alert\",\"alert\":{{\"signature_id\":1,\"severity\":1,\"metadata\":{}{}}}}}",
        "[".repeat(n),
        "]".repeat(n)
    );
    assert!(parse_line(&in_metadata).is_ok());
    let in_alert = format!("{{{TS},\"event_type\":\"alert\",\"alert\":{}{}}}", "[".repeat(n), "]".repeat(n));
    assert_eq!(err(&in_alert), EveError::BadField { field: EveField::Alert });
    let top = format!("{}{}", "[".repeat(60_000), "]".repeat(60_000));
    assert_eq!(err(&top), EveError::LineTooLong { len: 120_000 });
    let top = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    assert_eq!(err(&top), EveError::NotAnObject);
}

#[test]
fn error_kinds_and_fields() {
    assert_eq!(EveError::NoTimestamp.field(), Some(EveField::Timestamp));
    assert_eq!(EveError::BadProto.field(), Some(EveField::Proto));
    assert_eq!(EveError::Truncated.field(), None);
    assert_eq!(EveError::BadField { field: EveField::FlowBytesToclient }.kind(), EveErrorKind::BadField);
    assert_eq!(
        EveError::BadField { field: EveField::AlertSeverity }.to_string(),
        "bad value in alert.severity: wrong type or out of range"
    );
    assert_eq!(
        EveError::BadTimestamp { field: EveField::FlowEnd, problem: TimestampProblem::NoOffset }.to_string(),
        "bad timestamp in flow.end: no UTC offset"
    );
    assert_eq!(EveErrorKind::LineTooLong.describe(), "line too long");
}

#[test]
fn stats_count_by_event_and_error() {
    let mut text = [ALERT, FLOW, DNS, HTTP, TLS, ANOMALY, STATS, DROP, FILEINFO, OTHER].concat();
    text.push_str("\nnot json\n{}\n\n[1]\n");
    text.push_str(&format!("{{{TS},\"event_type\":\"dns\",\"src_port\":70000}}\n"));
    let stats = EveStats::of_text(&text);
    assert_eq!(stats.parsed, 28);
    assert_eq!(stats.malformed, 4, "the blank line is skipped, not counted");
    assert_eq!(stats.total(), 32);
    assert_eq!(stats.events("alert"), 5);
    assert_eq!(stats.events("flow"), 6);
    assert_eq!(stats.events("dns"), 3);
    assert_eq!(stats.events("ssh"), 1);
    assert_eq!(stats.events("netflow"), 1);
    assert_eq!(stats.events("smb"), 0);
    assert_eq!(stats.count(EveErrorKind::NotJson), 1);
    assert_eq!(stats.count(EveErrorKind::NoTimestamp), 1);
    assert_eq!(stats.count(EveErrorKind::NotAnObject), 1);
    assert_eq!(stats.count(EveErrorKind::BadField), 1);
    let mut counted = EveStats::default();
    let events: Vec<_> = parse_lines_counted(&text, &mut counted).collect();
    assert_eq!(events.len(), 28);
    assert_eq!(counted, stats);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["by_error"]["not_json"], 1);
    assert_eq!(json["by_event"]["alert"], 5);
}

/// Made-up event names are counted by name up to a bound, then together.
#[test]
fn other_names_are_bounded() {
    let text: String = (0..MAX_OTHER_EVENT_NAMES + 50)
        .map(|i| format!("{{{TS},\"event_type\":\"made_up_{i}\"}}\n{{{TS},\"event_type\":\"alert\",\"alert\":{{\"signature_id\":1,\"severity\":1}}}}\n"))
        .collect();
    let stats = EveStats::of_text(&text);
    assert_eq!(stats.by_event.len(), MAX_OTHER_EVENT_NAMES + 2, "64 names, `alert` and `other`");
    assert_eq!(stats.events("other"), 50);
    assert_eq!(stats.events("alert"), (MAX_OTHER_EVENT_NAMES + 50) as u64);
    assert_eq!(stats.events("made_up_0"), 1);
}

#[test]
fn events_serialise_for_tool_output() {
    let e = parse_line(nth(ALERT, 2)).unwrap();
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["kind"], "alert");
    assert_eq!(json["proto"], "IPv6-ICMP");
    assert_eq!(json["src_ip"], "2001:db8::66");
    assert_eq!(json["timestamp"], "2026-11-30T13:20:44.002311Z");
    assert_eq!(json["alert"]["action"], "blocked");
    assert_eq!(json["alert"]["signature_id"], 2_100_366);
    assert_eq!(json["flow"]["bytes_toserver"], 118);
    let e = parse_line(nth(OTHER, 3)).unwrap();
    assert_eq!(serde_json::to_value(&e).unwrap()["proto"], "253");
}
