//! The parser against the real sample lines of `fixtures/filterlog-samples.txt` (a copy of
//! `shared/pfrest/filterlog-samples.txt`): every line parses, and for each prefix form and protocol variant one line
//! is checked field by field, with the values read off the line by hand.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::net::IpAddr;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use portcullis_logs::{
    Action, CarpInfo, Direction, Field, FilterLogEntry, IcmpDetail, IcmpInfo, IpHeader, Ipv4Header, Ipv6Header,
    OtherInfo, ParseError, ParseErrorKind, ParseStats, ProtocolInfo, SeqRange, SyslogFormat, TcpInfo, UdpInfo,
    parse_line, parse_lines, parse_lines_counted,
};

const FIXTURE: &str = include_str!("fixtures/filterlog-samples.txt");

fn samples() -> Vec<&'static str> {
    FIXTURE.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// The sample line that is exactly `prefix` + `body`: proves the test reads a real line, and gives it.
fn sample(prefix: &str, body: &str) -> &'static str {
    let line = format!("{prefix}{body}");
    samples().into_iter().find(|l| *l == line).unwrap_or_else(|| panic!("not a sample line: {line}"))
}

fn parse(line: &str) -> FilterLogEntry<'_> {
    parse_line(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4(tos: u8, ecn: &'static str, ttl: u8, id: u16, flags: &'static str) -> IpHeader<'static> {
    IpHeader::V4(Ipv4Header { tos, ecn, ttl, id, offset: 0, flags })
}

fn tcp(src_port: u16, dst_port: u16, data_length: i32, flags: &'static str) -> TcpInfo<'static> {
    TcpInfo { src_port, dst_port, data_length: Some(data_length), flags, ..TcpInfo::default() }
}

fn other(data_length: Option<u32>, text: &'static str) -> ProtocolInfo<'static> {
    ProtocolInfo::Other(OtherInfo { data_length, text })
}

// ---------------------------------------------------------------------------------------------------------------
// Every line.

#[test]
fn every_sample_line_parses() {
    let lines = samples();
    assert_eq!(lines.len(), 63, "the fixture has 63 filterlog lines");
    for line in &lines {
        let entry = parse(line);
        // Consistency that holds for every line.
        assert!(line.ends_with(entry.body), "{line}");
        assert_eq!(entry.ip_version == 4, entry.src.is_ipv4(), "{line}");
        assert_eq!(entry.ip_version == 4, entry.dst.is_ipv4(), "{line}");
        assert_eq!(entry.tracker.map(|t| t.to_string()).as_deref(), entry.rule_id());
        let record = entry.to_record();
        assert_eq!(record.rule_id, entry.tracker.map(|t| t.to_string()));
        assert_eq!(record.dst_port, entry.dst_port().map(|p| p.to_string()));
        // Trailing `\r\n` (a file written on Windows, a TCP syslog frame) changes nothing.
        assert_eq!(parse(&format!("{line}\r\n")), entry);
    }
}

#[test]
fn the_fixture_is_the_shared_copy() {
    // In the workspace checkout the shared file sits beside the repository; in CI it may not. Compare when present.
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/pfrest/filterlog-samples.txt");
    if let Ok(text) = std::fs::read_to_string(shared) {
        assert_eq!(text, FIXTURE, "tests/fixtures/filterlog-samples.txt differs from shared/pfrest/");
    }
}

#[test]
fn every_variant_of_the_fixture_is_recognised() {
    let entries: Vec<_> = samples().into_iter().map(parse).collect();
    let count = |f: &dyn Fn(&FilterLogEntry<'_>) -> bool| entries.iter().filter(|e| f(e)).count();
    assert_eq!(count(&|e| e.format == SyslogFormat::Bsd), 25);
    assert_eq!(count(&|e| e.format == SyslogFormat::Rfc5424), 15);
    assert_eq!(count(&|e| e.format == SyslogFormat::Rfc3339), 21);
    assert_eq!(count(&|e| e.format == SyslogFormat::Bare), 2);
    assert_eq!(count(&|e| e.format == SyslogFormat::Bsd && e.host.is_none()), 21, "remote (and clog-era) form");
    assert_eq!(count(&|e| e.format == SyslogFormat::Bsd && e.host.is_some()), 4, "local form");
    assert_eq!(count(&|e| e.ip_version == 6), 5);
    assert_eq!(count(&|e| matches!(e.proto, ProtocolInfo::Tcp(_))), 29);
    assert_eq!(count(&|e| matches!(e.proto, ProtocolInfo::Udp(_))), 13);
    assert_eq!(count(&|e| matches!(e.proto, ProtocolInfo::Icmp(_))), 11);
    assert_eq!(count(&|e| matches!(e.proto, ProtocolInfo::Carp(_))), 1);
    assert_eq!(count(&|e| matches!(e.proto, ProtocolInfo::Other(_))), 9);
    assert_eq!(count(&|e| e.protocol_id == 58), 2, "ICMPv6");
    assert_eq!(count(&|e| matches!(e.proto, ProtocolInfo::Tcp(t) if t.error_message.is_some())), 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Prefix forms.

/// (a) BSD as received by a remote collector: `<PRI>`, no host, `filterlog[pid]:`. IPv4 TCP SYN.
#[test]
fn bsd_remote_ipv4_tcp() {
    let body = "146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,10.170.12.50,1.1.1.1,49724,853,0,S,\
                1891286705,,64240,,mss;sackOK;TS;nop;wscale";
    let line = sample("<134>Jul  3 19:10:30 filterlog[72237]: ", body);
    let expected = FilterLogEntry {
        format: SyslogFormat::Bsd,
        priority: Some(134),
        timestamp: Some("Jul  3 19:10:30"),
        host: None,
        pid: Some(72237),
        body,
        rule_number: Some(146),
        sub_rule: None,
        anchor: "",
        tracker: Some(1535324496),
        rule_label: Some("1535324496"),
        interface: "igb1.12",
        reason: "match",
        action: Action::Block,
        direction: Direction::In,
        ip_version: 4,
        error: None,
        ip: v4(0, "", 63, 12617, "DF"),
        protocol_name: "tcp",
        protocol_id: 6,
        length: 60,
        src: ip("10.170.12.50"),
        dst: ip("1.1.1.1"),
        proto: ProtocolInfo::Tcp(TcpInfo {
            seq: Some(SeqRange { start: 1891286705, end: None }),
            window: Some(64240),
            options: "mss;sackOK;TS;nop;wscale",
            ..tcp(49724, 853, 0, "S")
        }),
    };
    let entry = parse(line);
    assert_eq!(entry, expected);
    assert_eq!(entry.src_port(), Some(49724));
    assert_eq!(entry.dst_port(), Some(853));
    assert_eq!(entry.tcp_flags(), Some("S"));
    assert_eq!(entry.icmp_type(), None);
    assert_eq!(entry.rule_id(), Some("1535324496"));
}

/// (b) RFC 5424 with `<PRI>`: IPv4 UDP (DNS).
#[test]
fn rfc5424_ipv4_udp() {
    let body =
        "115,,,1534283903,igb1.27,match,pass,in,4,0x0,,63,29559,0,DF,17,udp,69,10.170.27.50,10.170.27.1,52797,53,49";
    let line = sample("<134>1 2021-07-03T19:10:14.578333-05:00 pfSense.example.com filterlog 72237 - - ", body);
    let expected = FilterLogEntry {
        format: SyslogFormat::Rfc5424,
        priority: Some(134),
        timestamp: Some("2021-07-03T19:10:14.578333-05:00"),
        host: Some("pfSense.example.com"),
        pid: Some(72237),
        body,
        rule_number: Some(115),
        sub_rule: None,
        anchor: "",
        tracker: Some(1534283903),
        rule_label: Some("1534283903"),
        interface: "igb1.27",
        reason: "match",
        action: Action::Pass,
        direction: Direction::In,
        ip_version: 4,
        error: None,
        ip: v4(0, "", 63, 29559, "DF"),
        protocol_name: "udp",
        protocol_id: 17,
        length: 69,
        src: ip("10.170.27.50"),
        dst: ip("10.170.27.1"),
        proto: ProtocolInfo::Udp(UdpInfo { src_port: 52797, dst_port: 53, data_length: Some(49) }),
    };
    let entry = parse(line);
    assert_eq!(entry, expected);
    assert_eq!(entry.tcp_flags(), None);
    // The zone is in the timestamp: year hint and clock are not used.
    let t = Utc.with_ymd_and_hms(2021, 7, 4, 0, 10, 14).unwrap() + chrono::TimeDelta::microseconds(578333);
    assert_eq!(entry.timestamp(1999, Utc::now()), Some(t));
}

/// RFC 5424 whose `<PRI>` the source already stripped; IPv4 TCP with `ecn` 0, `tos` 0x2 and flags `SEC`.
#[test]
fn rfc5424_without_priority_ipv4_tcp_ecn() {
    let body = "98,,,1627710987,vmx1,match,pass,in,4,0x2,0,128,848,0,DF,6,tcp,52,10.10.10.100,13.235.226.255,1029,443,0,\
                SEC,3291118522,,8192,,mss;nop;wscale;nop;nop;sackOK";
    let line = sample("1 2021-08-04T06:59:07.691848+04:00 BBFW01.posoiden.local filterlog 48906 - - ", body);
    let entry = parse(line);
    assert_eq!(entry.format, SyslogFormat::Rfc5424);
    assert_eq!(entry.priority, None);
    assert_eq!(entry.timestamp, Some("2021-08-04T06:59:07.691848+04:00"));
    assert_eq!(entry.host, Some("BBFW01.posoiden.local"));
    assert_eq!(entry.pid, Some(48906));
    assert_eq!(entry.body, body);
    assert_eq!(entry.rule_number, Some(98));
    assert_eq!(entry.tracker, Some(1627710987));
    assert_eq!(entry.interface, "vmx1");
    assert_eq!((entry.action, entry.direction), (Action::Pass, Direction::In));
    assert_eq!(entry.ip, v4(2, "0", 128, 848, "DF"));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("tcp", 6, 52));
    assert_eq!((entry.src, entry.dst), (ip("10.10.10.100"), ip("13.235.226.255")));
    assert_eq!(
        entry.proto,
        ProtocolInfo::Tcp(TcpInfo {
            seq: Some(SeqRange { start: 3291118522, end: None }),
            window: Some(8192),
            options: "mss;nop;wscale;nop;nop;sackOK",
            ..tcp(1029, 443, 0, "SEC")
        })
    );
    let t = Utc.with_ymd_and_hms(2021, 8, 4, 2, 59, 7).unwrap() + chrono::TimeDelta::microseconds(691848);
    assert_eq!(entry.timestamp(2021, Utc::now()), Some(t));
}

/// (c) The local file: host, no `<PRI>`, `filterlog:` without a pid. IPv4 UDP broadcast.
#[test]
fn bsd_local_with_host_ipv4_udp() {
    let body =
        "5,,,1000102433,em0,match,block,in,4,0x0,,128,24677,0,none,17,udp,186,10.9.0.119,10.9.0.255,17500,17600,166";
    let line = sample("Nov  8 12:37:34 pfSense filterlog: ", body);
    let expected = FilterLogEntry {
        format: SyslogFormat::Bsd,
        priority: None,
        timestamp: Some("Nov  8 12:37:34"),
        host: Some("pfSense"),
        pid: None,
        body,
        rule_number: Some(5),
        sub_rule: None,
        anchor: "",
        tracker: Some(1000102433),
        rule_label: Some("1000102433"),
        interface: "em0",
        reason: "match",
        action: Action::Block,
        direction: Direction::In,
        ip_version: 4,
        error: None,
        ip: v4(0, "", 128, 24677, "none"),
        protocol_name: "udp",
        protocol_id: 17,
        length: 186,
        src: ip("10.9.0.119"),
        dst: ip("10.9.0.255"),
        proto: ProtocolInfo::Udp(UdpInfo { src_port: 17500, dst_port: 17600, data_length: Some(166) }),
    };
    assert_eq!(parse(line), expected);
}

/// pfSense ≤ 2.4 (clog): neither host nor pid. ICMP whose header was not captured: `datalength=36` in place of the
/// type; tracker 0.
#[test]
fn bsd_clog_era_icmp_datalength() {
    let body = "65,,,0,vmx1,match,pass,out,4,0x0,,63,21011,0,none,1,icmp,56,192.168.105.11,192.168.105.1,datalength=36";
    let line = sample("Jan 22 18:34:00 filterlog: ", body);
    let entry = parse(line);
    assert_eq!(entry.format, SyslogFormat::Bsd);
    assert_eq!((entry.priority, entry.host, entry.pid), (None, None, None));
    assert_eq!(entry.timestamp, Some("Jan 22 18:34:00"));
    assert_eq!(entry.rule_number, Some(65));
    assert_eq!(entry.tracker, Some(0));
    assert_eq!(entry.interface, "vmx1");
    assert_eq!((entry.action, entry.direction), (Action::Pass, Direction::Out));
    assert_eq!(entry.ip, v4(0, "", 63, 21011, "none"));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("icmp", 1, 56));
    assert_eq!((entry.src, entry.dst), (ip("192.168.105.11"), ip("192.168.105.1")));
    assert_eq!(
        entry.proto,
        ProtocolInfo::Icmp(IcmpInfo { icmp_type: None, detail: IcmpDetail::DataLength(36), data_length: Some(36) })
    );
    assert_eq!(entry.icmp_type(), None);
    assert_eq!((entry.src_port(), entry.dst_port()), (None, None));
}

/// (d) A collector's RFC 3339 re-format with `filterlog:`; IPv6 UDP (DHCPv6) with sub-rule 16777216.
#[test]
fn rfc3339_host_colon_tag_ipv6_udp() {
    let body = "57,16777216,,11000,igb0,match,block,in,6,0x00,0x00000,64,UDP,17,158,fe80::de7f:a4ff:fe04:bac9,\
                fe80::208:a2ff:fe0b:76ac,41442,546,158";
    let line = sample("2017-07-05T03:40:38+02:00 pfsense.home.db0.us filterlog: ", body);
    let expected = FilterLogEntry {
        format: SyslogFormat::Rfc3339,
        priority: None,
        timestamp: Some("2017-07-05T03:40:38+02:00"),
        host: Some("pfsense.home.db0.us"),
        pid: None,
        body,
        rule_number: Some(57),
        sub_rule: Some(16777216),
        anchor: "",
        tracker: Some(11000),
        rule_label: Some("11000"),
        interface: "igb0",
        reason: "match",
        action: Action::Block,
        direction: Direction::In,
        ip_version: 6,
        error: None,
        ip: IpHeader::V6(Ipv6Header { class: 0, flow_label: 0, hop_limit: 64 }),
        protocol_name: "UDP",
        protocol_id: 17,
        length: 158,
        src: ip("fe80::de7f:a4ff:fe04:bac9"),
        dst: ip("fe80::208:a2ff:fe0b:76ac"),
        proto: ProtocolInfo::Udp(UdpInfo { src_port: 41442, dst_port: 546, data_length: Some(158) }),
    };
    let entry = parse(line);
    assert_eq!(entry, expected);
    assert!(entry.is_protocol("udp"));
    assert_eq!(entry.to_record().protocol, "udp");
    assert_eq!(entry.timestamp(0, Utc::now()), Some(Utc.with_ymd_and_hms(2017, 7, 5, 1, 40, 38).unwrap()));
}

/// IPv6 UDP from the remote BSD form, with a non-zero flow label and hop limit 1.
#[test]
fn bsd_remote_ipv6_udp_flow_label() {
    let body = "6,,,1000000105,igb1.27,match,block,in,6,0x00,0xf6279,1,UDP,17,32,fe80::208:9bff:fef3:652b,ff02::1:2,546,547,32";
    let entry = parse(sample("<134>Jul  3 19:10:31 filterlog[72237]: ", body));
    assert_eq!(entry.ip, IpHeader::V6(Ipv6Header { class: 0, flow_label: 0xf6279, hop_limit: 1 }));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("UDP", 17, 32));
    assert_eq!((entry.src, entry.dst), (ip("fe80::208:9bff:fef3:652b"), ip("ff02::1:2")));
    assert_eq!(entry.proto, ProtocolInfo::Udp(UdpInfo { src_port: 546, dst_port: 547, data_length: Some(32) }));
    assert_eq!((entry.tracker, entry.rule_number, entry.action), (Some(1000000105), Some(6), Action::Block));
}

/// (d) RFC 3339 with `filterlog[pid]` and no colon; IPv4 TCP with a sequence range and an ack (PA).
#[test]
fn rfc3339_pid_no_colon_tcp_seq_range() {
    let body = "4,,,1000000103,igc1,match,block,in,4,0x0,,63,44276,0,DF,6,tcp,1239,10.123.25.2,132.82.169.130,33722,443,\
                1187,PA,196384251:196385438,6903405,1595,,nop;nop;TS";
    let line = sample("2024-12-29T10:40:41.839934+01:00 generic_firewall filterlog[61076] ", body);
    let entry = parse(line);
    assert_eq!(entry.format, SyslogFormat::Rfc3339);
    assert_eq!(entry.timestamp, Some("2024-12-29T10:40:41.839934+01:00"));
    assert_eq!(entry.host, Some("generic_firewall"));
    assert_eq!(entry.pid, Some(61076));
    assert_eq!(entry.priority, None);
    assert_eq!(entry.rule_number, Some(4));
    assert_eq!(entry.tracker, Some(1000000103));
    assert_eq!(entry.interface, "igc1");
    assert_eq!(entry.ip, v4(0, "", 63, 44276, "DF"));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("tcp", 6, 1239));
    assert_eq!((entry.src, entry.dst), (ip("10.123.25.2"), ip("132.82.169.130")));
    assert_eq!(
        entry.proto,
        ProtocolInfo::Tcp(TcpInfo {
            seq: Some(SeqRange { start: 196384251, end: Some(196385438) }),
            ack: Some(6903405),
            window: Some(1595),
            options: "nop;nop;TS",
            ..tcp(33722, 443, 1187, "PA")
        })
    );
    let t = Utc.with_ymd_and_hms(2024, 12, 29, 9, 40, 41).unwrap() + chrono::TimeDelta::microseconds(839934);
    assert_eq!(entry.timestamp(2024, Utc::now()), Some(t));
}

/// BSD local form, TCP with a range, an ack, empty urg and options (line ends with `,,`).
#[test]
fn bsd_local_tcp_push_ack_empty_options() {
    let body = "53,,,1000000301,em0,match,block,in,4,0x0,,64,420,0,none,6,tcp,460,10.0.2.2,10.0.2.15,53742,22,420,PA,\
                29633380:29633800,3617062173,65535,,";
    let entry = parse(sample("Sep 28 10:38:09 pfSense filterlog: ", body));
    assert_eq!((entry.host, entry.pid, entry.priority), (Some("pfSense"), None, None));
    assert_eq!(
        entry.proto,
        ProtocolInfo::Tcp(TcpInfo {
            seq: Some(SeqRange { start: 29633380, end: Some(29633800) }),
            ack: Some(3617062173),
            window: Some(65535),
            ..tcp(53742, 22, 420, "PA")
        })
    );
    let fin = "6,,,1000102434,em0,match,block,out,4,0x0,,64,0,0,DF,6,tcp,40,10.0.2.15,10.0.2.2,22,53742,0,FA,3617062173,\
               29633380,65535,,";
    let entry = parse(sample("Sep 28 10:38:41 pfSense filterlog: ", fin));
    assert_eq!(entry.direction, Direction::Out);
    assert_eq!(entry.tcp_flags(), Some("FA"));
    assert_eq!(
        entry.proto,
        ProtocolInfo::Tcp(TcpInfo {
            seq: Some(SeqRange { start: 3617062173, end: None }),
            ack: Some(29633380),
            window: Some(65535),
            ..tcp(22, 53742, 0, "FA")
        })
    );
}

/// TCP options with junk (`[bad opt]`) and extra trailing fields (`>,`).
#[test]
fn tcp_bad_options_and_extra_fields() {
    let body = "4,,,1000000103,igc0,match,block,in,4,0x0,,56,35722,0,DF,6,tcp,64,6.1.2.8,4.3.2.8,3389,1367,0,SA,588570493,\
                277071317,28340,,wscale;mss;nop;nop;nop;nop;mss;wscale;[bad opt],>,";
    let entry = parse(sample("2025-01-14T23:42:06.244222+01:00 generic_firewall filterlog[61076] ", body));
    assert_eq!(
        entry.proto,
        ProtocolInfo::Tcp(TcpInfo {
            seq: Some(SeqRange { start: 588570493, end: None }),
            ack: Some(277071317),
            window: Some(28340),
            options: "wscale;mss;nop;nop;nop;nop;mss;wscale;[bad opt]",
            extra: ">,",
            ..tcp(3389, 1367, 0, "SA")
        })
    );
}

/// TCP with a negative data length and `errormsg='...'` (containing a comma) in place of the sequence number.
#[test]
fn tcp_errormsg() {
    let body = "4,,,1000000103,igc0,match,block,in,4,0x0,,110,10308,0,DF,6,tcp,40,90.98.32.29,12.46.3.99,22,43932,-12,R,\
                errormsg='[bad hdr length 32 - too long, > 20]',";
    let entry = parse(sample("2025-01-04T08:35:42.436521+01:00 generic_firewall filterlog[61076] ", body));
    assert_eq!(entry.ip, v4(0, "", 110, 10308, "DF"));
    assert_eq!((entry.src, entry.dst), (ip("90.98.32.29"), ip("12.46.3.99")));
    assert_eq!(
        entry.proto,
        ProtocolInfo::Tcp(TcpInfo {
            error_message: Some("[bad hdr length 32 - too long, > 20]"),
            ..tcp(22, 43932, -12, "R")
        })
    );
}

// ---------------------------------------------------------------------------------------------------------------
// ICMP, ICMPv6, CARP, other protocols.

#[test]
fn icmp_echo_request() {
    let body = "176,,,1520797901,igb1.10,match,pass,in,4,0x0,,64,62096,0,DF,1,icmp,84,10.100.10.30,142.250.114.105,request,\
                37728,164";
    let entry = parse(sample("<134>Jul  4 11:10:45 filterlog[72237]: ", body));
    assert_eq!(entry.timestamp, Some("Jul  4 11:10:45"));
    assert_eq!((entry.rule_number, entry.tracker, entry.interface), (Some(176), Some(1520797901), "igb1.10"));
    assert_eq!((entry.action, entry.direction), (Action::Pass, Direction::In));
    assert_eq!(entry.ip, v4(0, "", 64, 62096, "DF"));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("icmp", 1, 84));
    assert_eq!((entry.src, entry.dst), (ip("10.100.10.30"), ip("142.250.114.105")));
    assert_eq!(
        entry.proto,
        // pfSense glues the ICMP length (84 - 20 = 64) onto the sequence number: seq 1.
        ProtocolInfo::Icmp(IcmpInfo {
            icmp_type: Some("request"),
            detail: IcmpDetail::Echo { id: 37728, seq: 1 },
            data_length: Some(64)
        })
    );
    assert_eq!(entry.icmp_type(), Some("request"));
    assert_eq!(entry.to_record().icmp_type.as_deref(), Some("request"));
}

#[test]
fn icmp_type_specific_fields() {
    let prefix = "generic_firewall filterlog[61076] ";
    let icmp = |ts: &str, body: &str| parse(sample(&format!("{ts} {prefix}"), body)).proto;
    let info =
        |t: &'static str, detail, data_length| ProtocolInfo::Icmp(IcmpInfo { icmp_type: Some(t), detail, data_length });
    // The last field carries the ICMP length (IP length - 20) glued on by pfSense (`print-icmp.c`): `014` is seq 0
    // and 14 bytes of a 34-byte packet.
    assert_eq!(
        icmp(
            "2024-12-29T11:14:56.503841+01:00",
            "4,,,1000000103,igc0,match,block,in,4,0x0,,48,32515,0,none,1,icmp,34,114.32.68.247,83.54.13.48,request,32515,014"
        ),
        info("request", IcmpDetail::Echo { id: 32515, seq: 0 }, Some(14))
    );
    assert_eq!(
        icmp(
            "2024-12-31T00:10:01.413620+01:00",
            "4,,,1000000103,igc0,match,block,in,4,0x0,,48,62510,0,none,1,icmp,153,43.19.122.1,22.199.41.98,reply,10613,\
             15648133"
        ),
        info("reply", IcmpDetail::Echo { id: 10613, seq: 15648 }, Some(133))
    );
    assert_eq!(
        icmp(
            "2024-12-30T18:21:35.031883+01:00",
            "4,,,1000000103,igc0,match,block,in,4,0x0,,52,38570,0,none,1,icmp,81,16.13.9.26,87.76.32.89,unreachport,\
             16.13.9.26,UDP,844761"
        ),
        info("unreachport", IcmpDetail::UnreachPort { dst: ip("16.13.9.26"), proto: "UDP", port: 8447 }, Some(61))
    );
    assert_eq!(
        icmp(
            "2024-12-31T22:00:56.734025+01:00",
            "4,,,1000000103,igc0,match,block,in,4,0x0,,50,8620,0,none,1,icmp,91,86.11.7.34,90.4.43.62,unreachproto,\
             18.3.76.124,4758"
        ),
        // `4758` ends in no length an 91-byte packet can have (71, 67, ... 31): the sample was rewritten upstream
        // (its addresses are anonymised). The field is kept whole rather than the line refused.
        info("unreachproto", IcmpDetail::UnreachProto { dst: ip("18.3.76.124"), proto: 4758 }, None)
    );
    // The id is printed with a leading space.
    assert_eq!(
        icmp(
            "2025-01-08T13:12:11.809847+01:00",
            "4,,,1000000103,igc0,match,block,in,4,0x0,,53,0,0,DF,1,icmp,40,2.2.0.7,9.4.1.8,tstampreply, 17664,83,\
             00:00:00.000,372:53:59.424,1045:02:39.61620"
        ),
        info(
            "tstampreply",
            IcmpDetail::TimestampReply {
                id: 17664,
                seq: 83,
                otime: "00:00:00.000",
                rtime: "372:53:59.424",
                ttime: "1045:02:39.616"
            },
            Some(20)
        )
    );
    // Free-text types keep the rest of the line.
    assert_eq!(
        icmp(
            "2025-01-07T14:31:01.182189+01:00",
            "2,,,1000000101,igc1,match,block,in,4,0xc0,,63,64308,0,none,1,icmp,68,19.4.1.2,7.2.3.2,unreach,host 1.8.0.3 \
             unreachable48"
        ),
        info("unreach", IcmpDetail::Text("host 1.8.0.3 unreachable"), Some(48))
    );
    assert_eq!(
        icmp(
            "2025-01-31T16:09:05.131161+01:00",
            "4,,,1000000103,igc0,match,block,in,4,0x0,,52,4408,0,none,1,icmp,87,1.2.1.9,8.4.3.8,redirect,redirect \
             1.4.0.1 to host 1.4.0.7"
        ),
        // Anonymised upstream: the gateway address swallowed the glued length, so none is split off.
        info("redirect", IcmpDetail::Text("redirect 1.4.0.1 to host 1.4.0.7"), None)
    );
    // An unknown type, with nothing after it but the length (`type-??` then `%u`; 20 rather than 41 - 20 = 21,
    // so this sample too was rewritten upstream: the digits after `type-??` can only be the length).
    assert_eq!(
        icmp(
            "2024-12-30T06:29:58.677830+01:00",
            "4,,,1000000103,igc0,match,block,in,4,0x0,,55,0,0,DF,1,icmp,41,23.4.32.32,74.252.13.17,type-??20"
        ),
        info("type-??", IcmpDetail::Text(""), Some(20))
    );
}

/// ICMPv6 from the BSD remote form with a `<PRI>` of 27 and no pid: one empty trailing field.
#[test]
fn icmpv6_bsd_priority_without_pid() {
    let body = "82,,,1000002666,mvneta2,match,pass,out,6,0x00,0x00000,64,ICMPv6,58,8,fe80::208:a2ff:fe0f:cb66,\
                fe80::56a6:5cff:fe7d:1d43,";
    let line = sample("<27>Jan 25 01:58:06 filterlog: ", body);
    let expected = FilterLogEntry {
        format: SyslogFormat::Bsd,
        priority: Some(27),
        timestamp: Some("Jan 25 01:58:06"),
        host: None,
        pid: None,
        body,
        rule_number: Some(82),
        sub_rule: None,
        anchor: "",
        tracker: Some(1000002666),
        rule_label: Some("1000002666"),
        interface: "mvneta2",
        reason: "match",
        action: Action::Pass,
        direction: Direction::Out,
        ip_version: 6,
        error: None,
        ip: IpHeader::V6(Ipv6Header { class: 0, flow_label: 0, hop_limit: 64 }),
        protocol_name: "ICMPv6",
        protocol_id: 58,
        length: 8,
        src: ip("fe80::208:a2ff:fe0f:cb66"),
        dst: ip("fe80::56a6:5cff:fe7d:1d43"),
        proto: other(None, ""),
    };
    assert_eq!(parse(line), expected);
}

#[test]
fn icmpv6_with_traffic_class() {
    let body =
        "6,,,1000000105,igc0,match,block,in,6,0x20,0x4c4b0,1,ICMPv6,58,64,2321:5e8:6134:c:ede0:df3:5972:e285,aa02::2,";
    let entry = parse(sample("2024-12-29T08:22:58.036185+01:00 generic_firewall filterlog[61076] ", body));
    assert_eq!(entry.ip, IpHeader::V6(Ipv6Header { class: 0x20, flow_label: 0x4c4b0, hop_limit: 1 }));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("ICMPv6", 58, 64));
    assert_eq!((entry.src, entry.dst), (ip("2321:5e8:6134:c:ede0:df3:5972:e285"), ip("aa02::2")));
    assert_eq!(entry.proto, other(None, ""));
    assert_eq!(entry.icmp_type(), None);
}

/// (e) Bare CSV: CARP over IPv4 with its six fields, and CARP/VRRP over IPv6 with one empty field.
#[test]
fn bare_csv_carp_ipv4_and_vrrp_ipv6() {
    let body = "48,16777216,,1000000201,em0,match,block,in,4,0x10,,255,53650,0,DF,112,carp,56,192.168.11.1,224.0.0.18,\
                advertise,255,1,2,0,1";
    let line = sample("", body);
    let expected = FilterLogEntry {
        format: SyslogFormat::Bare,
        priority: None,
        timestamp: None,
        host: None,
        pid: None,
        body,
        rule_number: Some(48),
        sub_rule: Some(16777216),
        anchor: "",
        tracker: Some(1000000201),
        rule_label: Some("1000000201"),
        interface: "em0",
        reason: "match",
        action: Action::Block,
        direction: Direction::In,
        ip_version: 4,
        error: None,
        ip: v4(0x10, "", 255, 53650, "DF"),
        protocol_name: "carp",
        protocol_id: 112,
        length: 56,
        src: ip("192.168.11.1"),
        dst: ip("224.0.0.18"),
        proto: ProtocolInfo::Carp(CarpInfo {
            carp_type: "advertise",
            ttl: 255,
            vhid: 1,
            version: 2,
            advskew: 0,
            advbase: 1,
        }),
    };
    let entry = parse(line);
    assert_eq!(entry, expected);
    assert_eq!(entry.timestamp(2026, Utc::now()), None);

    let body =
        "48,16777216,,1000000201,em0,match,block,in,6,0x00,0x00000,255,VRRP,112,36,fe80::100:1000:1001:1011,ff02::12,";
    let entry = parse(sample("", body));
    assert_eq!(entry.format, SyslogFormat::Bare);
    assert_eq!(entry.ip, IpHeader::V6(Ipv6Header { class: 0, flow_label: 0, hop_limit: 255 }));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("VRRP", 112, 36));
    assert_eq!((entry.src, entry.dst), (ip("fe80::100:1000:1001:1011"), ip("ff02::12")));
    assert_eq!(entry.proto, other(None, ""));
}

/// IGMP, GRE and ESP print `datalength=<n>`; IP-in-IP prints a label and an empty field.
#[test]
fn other_protocols() {
    let igmp =
        "199,,,1557957510,igb1.12,match,pass,in,4,0xc0,,1,0,0,DF,2,igmp,32,10.170.12.17,239.255.255.250,datalength=8";
    let entry = parse(sample("<134>Jul  3 19:10:33 filterlog[72237]: ", igmp));
    assert_eq!(entry.ip, v4(0xc0, "", 1, 0, "DF"));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("igmp", 2, 32));
    assert_eq!((entry.src, entry.dst), (ip("10.170.12.17"), ip("239.255.255.250")));
    assert_eq!(entry.proto, other(Some(8), "datalength=8"));

    let rfc3339 = |ts: &str, body: &str| parse(sample(&format!("{ts} generic_firewall filterlog[61076] "), body));
    let gre = rfc3339(
        "2024-12-31T16:19:15.492770+01:00",
        "4,,,1000000103,igc0,match,block,in,4,0x0,,47,19129,0,DF,47,gre,564,1.4.8.7,91.4.31.83,datalength=544",
    );
    assert_eq!((gre.protocol_name, gre.protocol_id, gre.length), ("gre", 47, 564));
    assert_eq!((gre.src, gre.dst), (ip("1.4.8.7"), ip("91.4.31.83")));
    assert_eq!(gre.proto, other(Some(544), "datalength=544"));

    let esp = rfc3339(
        "2025-02-05T06:42:50.910020+01:00",
        "4,,,1000000103,igc0,match,block,in,4,0x2,0,51,17468,0,none,50,esp,96,1.2.3.4,9.8.7.6,datalength=76",
    );
    assert_eq!(esp.ip, v4(2, "0", 51, 17468, "none"));
    assert_eq!((esp.protocol_name, esp.protocol_id, esp.length), ("esp", 50, 96));
    assert_eq!(esp.proto, other(Some(76), "datalength=76"));

    let ip6in4 = rfc3339(
        "2025-01-05T14:09:05.491269+01:00",
        "4,,,1000000103,igc0,match,block,in,4,0x0,,243,54321,0,none,41,ipv6,84,52.12.5.75,91.42.34.85,IPV6-IN-IPV4,",
    );
    assert_eq!((ip6in4.protocol_name, ip6in4.protocol_id, ip6in4.length), ("ipv6", 41, 84));
    assert_eq!(ip6in4.proto, other(None, "IPV6-IN-IPV4,"));

    let ip4in4 = rfc3339(
        "2025-01-13T07:27:33.986226+01:00",
        "4,,,1000000103,igc0,match,block,in,4,0x0,,244,54321,0,none,4,ipencap,68,6.2.7.3,9.4.1.8,IPV4-IN-IPV4,",
    );
    assert_eq!((ip4in4.protocol_name, ip4in4.protocol_id), ("ipencap", 4));
    assert_eq!(ip4in4.proto, other(None, "IPV4-IN-IPV4,"));
    assert_eq!((ip4in4.src_port(), ip4in4.dst_port(), ip4in4.tcp_flags()), (None, None, None));
}

// ---------------------------------------------------------------------------------------------------------------
// Layouts the samples do not carry, built from the contract (§8.2).

/// IPv6 TCP (no sample has one): class, flow label, hop limit, protocol text, protocol id, then the TCP fields.
#[test]
fn ipv6_tcp_synthetic() {
    let line = "<134>Jul  3 19:10:30 fw filterlog[72237]: 7,,,1700000001,igb0,match,block,in,6,0x00,0x12345,57,TCP,6,80,\
                2001:db8::1,2001:db8:1::53,51000,22,0,S,123456,,64800,,mss;sackOK;TS;nop;wscale";
    let entry = parse(line);
    assert_eq!(entry.host, Some("fw"));
    assert_eq!(entry.ip, IpHeader::V6(Ipv6Header { class: 0, flow_label: 0x12345, hop_limit: 57 }));
    assert_eq!((entry.protocol_name, entry.protocol_id, entry.length), ("TCP", 6, 80));
    assert_eq!((entry.src, entry.dst), (ip("2001:db8::1"), ip("2001:db8:1::53")));
    assert_eq!(
        entry.proto,
        ProtocolInfo::Tcp(TcpInfo {
            seq: Some(SeqRange { start: 123456, end: None }),
            window: Some(64800),
            options: "mss;sackOK;TS;nop;wscale",
            ..tcp(51000, 22, 0, "S")
        })
    );
    assert_eq!(entry.to_record().protocol, "tcp");
}

/// `error=` after the IP version (a truncated packet): kept, and the following fields are read one further on.
#[test]
fn error_field_after_ip_version() {
    let line = "5,,,1000000103,igb0,match,block,in,4,error=truncated-ip,0x0,,64,0,0,none,17,udp,28,192.0.2.1,198.51.100.7,\
                5353,5353,8";
    let entry = parse(line);
    assert_eq!(entry.error, Some("truncated-ip"));
    assert_eq!(entry.ip, v4(0, "", 64, 0, "none"));
    assert_eq!((entry.src, entry.dst), (ip("192.0.2.1"), ip("198.51.100.7")));
    assert_eq!(entry.proto, ProtocolInfo::Udp(UdpInfo { src_port: 5353, dst_port: 5353, data_length: Some(8) }));
    // Truncated after it: the error names the field by its position on the line.
    assert_eq!(
        parse_line("5,,,1000000103,igb0,match,block,in,4,error=short,0x0,,64,0,0,none,17,udp,28"),
        Err(ParseError::MissingField { index: 19, field: Field::SourceAddress })
    );
}

#[test]
fn pf_reason_other_than_match_and_reject() {
    let entry = parse(
        "<134>Jul  3 19:10:30 filterlog[1]: 9,,,1000000104,em0,state-mismatch,reject,out,4,0x0,,64,1,0,DF,6,tcp,40,\
         10.0.0.1,10.0.0.2,1,2,0,R,1,,0,,",
    );
    assert_eq!((entry.reason, entry.action, entry.direction), ("state-mismatch", Action::Reject, Direction::Out));
}

#[test]
fn rfc5424_with_structured_data_and_bom() {
    let line = "<134>1 2026-11-21T13:04:05.123456+00:00 fw.example filterlog 1234 - [meta seq=\"1\" note=\"a] b\"][x@1 y=\"\\\"\"] \u{feff}\
                5,,,1000000103,em0,match,block,in,4,0x0,,64,1,0,DF,17,udp,40,10.0.0.1,10.0.0.2,1,2,20";
    let entry = parse(line);
    assert_eq!(entry.format, SyslogFormat::Rfc5424);
    assert_eq!(entry.host, Some("fw.example"));
    assert_eq!(entry.pid, Some(1234));
    assert!(entry.body.starts_with("5,,,1000000103,"));
    assert_eq!(entry.dst_port(), Some(2));
    // NILVALUE timestamp and host.
    let entry =
        parse("<134>1 - - filterlog - - - 5,,,7,em0,match,pass,in,4,0x0,,64,1,0,DF,17,udp,40,10.0.0.1,10.0.0.2,1,2,20");
    assert_eq!((entry.timestamp, entry.host, entry.pid), (None, None, None));
    assert_eq!(entry.tracker, Some(7));
}

// ---------------------------------------------------------------------------------------------------------------
// Timestamps.

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

#[test]
fn bsd_timestamps_resolve_to_the_most_recent_past_date() {
    let body = "146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,10.170.12.50,1.1.1.1,49724,853,0,S,\
                1891286705,,64240,,mss;sackOK;TS;nop;wscale";
    let entry = parse(sample("<134>Jul  3 19:10:30 filterlog[72237]: ", body));
    // Later in the same year: this year.
    assert_eq!(entry.timestamp(2026, utc(2026, 11, 21, 13, 0, 0)), Some(utc(2026, 7, 3, 19, 10, 30)));
    // Earlier in the year: the date would be in the future, so last year.
    assert_eq!(entry.timestamp(2026, utc(2026, 3, 1, 0, 0, 0)), Some(utc(2025, 7, 3, 19, 10, 30)));
    // An archive read years later, with the file's year as the hint.
    assert_eq!(entry.timestamp(2021, utc(2026, 3, 1, 0, 0, 0)), Some(utc(2021, 7, 3, 19, 10, 30)));
    // In the firewall's zone (UTC-5).
    let est = FixedOffset::west_opt(5 * 3600).unwrap();
    assert_eq!(entry.timestamp_in(2026, utc(2026, 11, 21, 13, 0, 0), est), Some(utc(2026, 7, 4, 0, 10, 30)));
    // The record: not resolved without a year, resolved with one.
    assert_eq!(entry.to_record().timestamp, None);
    assert_eq!(entry.to_record().raw_timestamp.as_deref(), Some("Jul  3 19:10:30"));
    assert_eq!(
        entry.to_record_at(2026, utc(2026, 11, 21, 13, 0, 0)).timestamp.as_deref(),
        Some("2026-07-03T19:10:30Z")
    );

    let at = |ts: &str, now: DateTime<Utc>| {
        let line =
            format!("{ts} fw filterlog: 1,,,2,em0,match,pass,in,4,0x0,,64,1,0,DF,17,udp,40,10.0.0.1,10.0.0.2,1,2,20");
        parse(&line).timestamp(now.format("%Y").to_string().parse().unwrap(), now)
    };
    // New Year: a December line read on January 1st is last year's.
    assert_eq!(at("Dec 31 23:59:59", utc(2027, 1, 1, 0, 0, 5)), Some(utc(2026, 12, 31, 23, 59, 59)));
    // A firewall clock a little ahead of ours stays in this year.
    assert_eq!(at("Jan  1 00:00:05", utc(2026, 12, 31, 23, 59, 59)), Some(utc(2027, 1, 1, 0, 0, 5)));
    // ... but a date far in the hint's next year is not taken: that is last year's.
    assert_eq!(at("Nov 30 00:00:00", utc(2026, 11, 21, 0, 0, 0)), Some(utc(2025, 11, 30, 0, 0, 0)));
    // Feb 29 goes back to the last leap year.
    assert_eq!(at("Feb 29 12:00:00", utc(2027, 3, 1, 0, 0, 0)), Some(utc(2024, 2, 29, 12, 0, 0)));
    // Impossible dates and fractional seconds.
    assert_eq!(at("Feb 30 12:00:00", utc(2027, 3, 1, 0, 0, 0)), None);
    assert_eq!(
        at("Mar  1 12:00:00.250", utc(2027, 3, 2, 0, 0, 0)),
        Some(utc(2027, 3, 1, 12, 0, 0) + chrono::TimeDelta::milliseconds(250))
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The owned record and the tool output names.

#[test]
fn record_has_the_tool_output_fields() {
    let body = "146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,32989,0,DF,6,tcp,60,10.170.12.50,1.1.1.1,49652,853,0,S,\
                1818117648,,64240,,mss;sackOK;TS;nop;wscale";
    let entry = parse(sample("<134>1 2021-07-03T19:10:14.578288-05:00 pfSense.example.com filterlog 72237 - - ", body));
    let json = serde_json::to_value(entry.to_record()).unwrap();
    assert_eq!(json["timestamp"], "2021-07-04T00:10:14.578288Z");
    assert_eq!(json["interface"], "igb1.12");
    assert_eq!(json["action"], "block");
    assert_eq!(json["direction"], "in");
    assert_eq!(json["protocol"], "tcp");
    assert_eq!(json["src_ip"], "10.170.12.50");
    assert_eq!(json["src_port"], 49652);
    assert_eq!(json["dst_ip"], "1.1.1.1");
    assert_eq!(json["dst_port"], "853");
    assert_eq!(json["rule_id"], "1535324496");
    assert_eq!(json["length"], 60);
    assert_eq!(json["tcp_flags"], "S");
    assert_eq!(json["host"], "pfSense.example.com");
    // No port for ICMP.
    let icmp = parse(sample(
        "<134>Jul  4 11:10:45 filterlog[72237]: ",
        "176,,,1520797901,igb1.10,match,pass,in,4,0x0,,64,62096,0,DF,1,icmp,84,10.100.10.30,142.250.114.105,request,37728,164",
    ));
    let json = serde_json::to_value(icmp.to_record()).unwrap();
    assert!(json["dst_port"].is_null() && json["src_port"].is_null());
    assert_eq!(json["icmp_type"], "request");
}

// ---------------------------------------------------------------------------------------------------------------
// Many lines.

#[test]
fn parse_lines_and_stats_over_the_fixture() {
    // The fixture's comment lines are not filterlog lines; blank lines are skipped.
    let comments = FIXTURE.lines().filter(|l| l.starts_with('#')).count() as u64;
    let stats = ParseStats::of_text(FIXTURE);
    assert_eq!(stats.parsed, 63);
    assert_eq!(stats.malformed, comments);
    assert_eq!(stats.count(ParseErrorKind::NotFilterlog), comments);
    assert_eq!(stats.by_error.len(), 1);
    assert_eq!(stats.total(), 63 + comments);
    assert_eq!(parse_lines(FIXTURE).filter(Result::is_ok).count(), 63);

    let text = "garbage\r\n\n   \n5,,,7,em0,match,pass,in,4,0x0,,64,1,0,DF,17,udp,40,10.0.0.1,10.0.0.2,1,2,20\r\n\
                5,,,7,em0,match,pass,in,4,0x0,,64,1,0,DF,17,udp,40,10.0.0.1,10.0.0.999,1,2,20";
    let mut stats = ParseStats::default();
    let entries: Vec<_> = parse_lines_counted(text, &mut stats).collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].dst_port(), Some(2));
    assert_eq!((stats.parsed, stats.malformed), (1, 2));
    assert_eq!(stats.count(ParseErrorKind::NotFilterlog), 1);
    assert_eq!(stats.count(ParseErrorKind::BadIp), 1);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["by_error"]["bad_ip"], 1);
}

/// A log line is data, not a request: an IPv4-mapped address in an IPv6 line is the IPv4 host it spells, so that
/// rollups, detections and the blocks they suggest name the one form a block enforces. Other IPv6 addresses, and
/// IPv4-compatible ones (deprecated, and no alias of the host), stay as they are.
#[test]
fn ipv4_mapped_addresses_in_a_line_are_the_ipv4_hosts() {
    let line = |src: &str, dst: &str| {
        format!("57,16777216,,11000,igb0,match,block,in,6,0x00,0x00000,64,UDP,17,158,{src},{dst},41442,546,158")
    };
    let cases = [
        ("::ffff:192.0.2.50", "::ffff:198.51.100.2", "192.0.2.50", "198.51.100.2"),
        ("::FFFF:c000:232", "2001:db8::1", "192.0.2.50", "2001:db8::1"),
        ("0:0:0:0:0:ffff:192.0.2.50", "fe80::1", "192.0.2.50", "fe80::1"),
        ("::192.0.2.50", "fe80::1", "::192.0.2.50", "fe80::1"),
        ("2001:db8::ffff:c000:232", "fe80::1", "2001:db8::ffff:c000:232", "fe80::1"),
    ];
    for (src, dst, want_src, want_dst) in cases {
        let text = line(src, dst);
        let entry = parse_line(&text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        assert_eq!(entry.src, want_src.parse::<IpAddr>().unwrap(), "{src}");
        assert_eq!(entry.dst, want_dst.parse::<IpAddr>().unwrap(), "{dst}");
    }
}
