//! The producer variants beyond the sample fixture, each line built from the published format descriptions and
//! checked field by field:
//!
//! - OPNsense: `opnsense/ports` `opnsense/filterlog/files/filterlog.c` (rule number or empty, sub-rule and anchor
//!   or empty, the rule's label or `0`, interface, reason, action, direction), `description.txt` (the rest is
//!   pfSense's layout; ICMP as `datalength=N,type,code,id,seq,mtu`), `print-icmp.c`; labels as the GUI makes them
//!   (32 hex digits, `opnsense/core` `src/opnsense/scripts/filter/read_log.py`). Two lines are from
//!   allddd/opnsense-filterlog's test data (`internal/stream/testdata/valid.log`).
//! - pfSense: `pfsense/FreeBSD-ports` `sysutils/filterlog/files/filterlog.c` (the literal `unkn(%u)`
//!   placeholder, `%u` rule numbers) and `print-icmp.c`/`print-ip.c` (the ICMP length glued to the last field).

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::net::IpAddr;

use portcullis_logs::{
    Action, Direction, FilterLogEntry, IcmpDetail, IcmpInfo, ProtocolInfo, SyslogFormat, TcpInfo, UdpInfo, parse_line,
};

fn parse(line: &str) -> FilterLogEntry<'_> {
    parse_line(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An IPv4 TCP SYN after `head` (fields 0–7), leaked so that the entry can borrow it for the rest of the test.
fn tcp_line(head: &str) -> &'static str {
    let line =
        format!("{head},4,0x0,,64,0,0,DF,6,tcp,60,192.0.2.10,198.51.100.20,51000,443,0,S,2145306578,,65228,,mss");
    Box::leak(line.into_boxed_str())
}

// ---------------------------------------------------------------------------------------------------------------
// 1. OPNsense: the rule label in field 3.

#[test]
fn opnsense_md5_label_is_the_rule_id() {
    let line = "<134>1 2025-10-10T00:00:00+02:00 opnsense.filter.log filterlog 86605 - [meta sequenceId=\"4\"] \
                68,,,4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a,eth1,match,pass,out,4,0x0,,127,17785,0,DF,6,tcp,52,192.168.1.100,\
                10.0.0.5,46376,80,0,S,1356197145,,64480,,mss;nop;wscale;nop;nop;sackOK";
    let e = parse(line);
    assert_eq!(e.format, SyslogFormat::Rfc5424);
    assert_eq!((e.rule_number, e.sub_rule, e.anchor), (Some(68), None, ""));
    assert_eq!(e.tracker, None);
    assert_eq!(e.rule_label, Some("4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"));
    assert_eq!(e.rule_id(), Some("4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"));
    assert_eq!(e.to_record().rule_id.as_deref(), Some("4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"));
    assert_eq!((e.interface, e.reason, e.action, e.direction), ("eth1", "match", Action::Pass, Direction::Out));
    assert_eq!((e.src, e.dst, e.length), (ip("192.168.1.100"), ip("10.0.0.5"), 52));
    assert_eq!(
        e.proto,
        ProtocolInfo::Tcp(TcpInfo {
            src_port: 46376,
            dst_port: 80,
            data_length: Some(0),
            flags: "S",
            seq: Some(portcullis_logs::SeqRange { start: 1356197145, end: None }),
            window: Some(64480),
            options: "mss;nop;wscale;nop;nop;sackOK",
            ..TcpInfo::default()
        })
    );
}

#[test]
fn opnsense_ipv6_prints_the_protocol_name_in_lower_case() {
    let line = "<134>1 2025-10-10T00:00:00+02:00 opnsense.filter.log filterlog 86605 - [meta sequenceId=\"1\"] \
                61,,,1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d,eth0,match,pass,in,6,0x00,0xfd492,128,udp,17,60,\
                fd00:1234:5678:9abc::1,fd00:1234:5678:9abc::2,63511,53,60";
    let e = parse(line);
    assert_eq!((e.rule_label, e.tracker), (Some("1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"), None));
    assert_eq!((e.protocol_name, e.protocol_id, e.length), ("udp", 17, 60));
    assert!(e.is_protocol("UDP"));
    assert_eq!(e.proto, ProtocolInfo::Udp(UdpInfo { src_port: 63511, dst_port: 53, data_length: Some(60) }));
}

#[test]
fn opnsense_uuid_and_free_text_labels() {
    let uuid = "8f3a1f8e-7b1c-4a51-9d1e-2b4c6d8e0f12";
    let e = parse(tcp_line(&format!("77,,,{uuid},vtnet0,match,block,in")));
    assert_eq!((e.rule_number, e.tracker, e.rule_id()), (Some(77), None, Some(uuid)));
    assert_eq!((e.interface, e.action, e.direction), ("vtnet0", Action::Block, Direction::In));
    // A UUID of digits only is still a label, not a bad number.
    let digits = "12345678-1234-1234-1234-123456789012";
    assert_eq!(parse(tcp_line(&format!("77,,,{digits},vtnet0,match,block,in"))).rule_id(), Some(digits));
    // So is an MD5 label that happens to have no letter.
    let md5 = "12345678901234567890123456789012";
    assert_eq!(parse(tcp_line(&format!("77,,,{md5},vtnet0,match,block,in"))).rule_id(), Some(md5));
    let text = "Default deny / state violation rule";
    let e = parse(tcp_line(&format!("3,,,{text},igb0,match,block,in")));
    assert_eq!((e.tracker, e.rule_label), (None, Some(text)));
    assert_eq!(e.dst_port(), Some(443));
}

#[test]
fn opnsense_without_label_or_rule() {
    // `0` when the label could not be read: numerically a tracker of 0, as on pfSense.
    let e = parse(tcp_line("5,,,0,em0,match,block,in"));
    assert_eq!((e.tracker, e.rule_label), (Some(0), Some("0")));
    // No rule at all (`(u_int32_t)-1`): OPNsense prints empty rule and sub-rule fields.
    let e = parse(tcp_line(",,,0,em0,match,block,in"));
    assert_eq!((e.rule_number, e.sub_rule, e.anchor), (None, None, ""));
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Placeholders for an action, reason or direction filterlog has no word for.

#[test]
fn pfsense_unkn_placeholder_is_unknown_not_refused() {
    // pfSense prints `code2str(..., "unkn(%u)", ...)` unformatted: the `%u` is literal (match rules log so).
    let e = parse(tcp_line("5,,,1000000103,igb0,match,unkn(%u),in"));
    assert_eq!((e.action, e.direction, e.reason), (Action::Unknown, Direction::In, "match"));
    assert_eq!(e.to_record().action, "unknown");
    let e = parse(tcp_line("5,,,1000000103,igb0,unkn(%u),block,unkn(%u)"));
    assert_eq!((e.reason, e.action, e.direction), ("unkn(%u)", Action::Block, Direction::Unknown));
    // The formatted form (tcpdump's pflog printer) and a value past the tables.
    let e = parse(tcp_line("5,,,1000000103,igb0,unkn(255),unkn(255),unkn(255)"));
    assert_eq!((e.reason, e.action, e.direction), ("unkn(255)", Action::Unknown, Direction::Unknown));
    assert_eq!(e.src_port(), Some(51000));
}

#[test]
fn opnsense_unknown_placeholder_and_the_rest_of_pfs_action_table() {
    let e = parse(tcp_line("5,,,0,em0,unknown(15),unknown(11),unknown(3)"));
    assert_eq!((e.reason, e.action, e.direction), ("unknown(15)", Action::Unknown, Direction::Unknown));
    for word in ["scrub", "nat", "binat", "rdr", "synproxy-drop"] {
        assert_eq!(parse(tcp_line(&format!("5,,,0,em0,match,{word},in"))).action, Action::Unknown, "{word}");
    }
    assert_eq!(parse(tcp_line("5,,,0,em0,match,block,in/out")).direction, Direction::Unknown);
    // Not every parenthesised word is a placeholder.
    for bad in ["unkn()", "unkn(x)", "unknown(%d)", "unkn(1", "allow"] {
        assert!(parse_line(tcp_line(&format!("5,,,0,em0,match,{bad},in"))).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Rule numbers, sub-rules and anchors.

#[test]
fn no_rule_number_and_anchors() {
    // pfSense prints pf's "no rule" (u32::MAX) as a number.
    let e = parse(tcp_line("4294967295,,,1000000103,igb0,match,block,in"));
    assert_eq!((e.rule_number, e.tracker), (None, Some(1000000103)));
    // A sub-rule inside an anchor: `subrulenr,ruleset`.
    let e = parse(tcp_line("12,0,userrules,1770001234,igb0,match,pass,in"));
    assert_eq!((e.rule_number, e.sub_rule, e.anchor), (Some(12), Some(0), "userrules"));
    let e = parse(tcp_line("12,1,pfB_PRI1_v4/sub,1770001234,igb0,match,pass,in"));
    assert_eq!((e.sub_rule, e.anchor, e.tracker), (Some(1), "pfB_PRI1_v4/sub", Some(1770001234)));
    let e = parse(tcp_line("48,16777216,,1000000201,em0,match,block,in"));
    assert_eq!((e.sub_rule, e.anchor), (Some(16777216), ""));
    let e = parse(tcp_line("4294967294,4294967294,a,1,em0,match,block,in"));
    assert_eq!((e.rule_number, e.sub_rule), (Some(4294967294), Some(4294967294)));
}

// ---------------------------------------------------------------------------------------------------------------
// 5. ICMP: pfSense glues the message length (IP length minus the IP header) onto the last field.

/// An IPv4 ICMP line of IP length `length` with `tail` after the addresses.
fn icmp(length: u32, tail: &str) -> IcmpInfo<'static> {
    let line =
        format!("5,,,1000000103,igb0,match,block,in,4,0x0,,64,0,0,none,1,icmp,{length},203.0.113.9,192.0.2.1,{tail}");
    let line: &'static str = Box::leak(line.into_boxed_str());
    match parse_line(line).unwrap_or_else(|e| panic!("{e}: {line}")).proto {
        ProtocolInfo::Icmp(i) => i,
        other => panic!("not ICMP: {other:?}"),
    }
}

fn info(icmp_type: &'static str, detail: IcmpDetail<'static>, data_length: Option<u32>) -> IcmpInfo<'static> {
    IcmpInfo { icmp_type: Some(icmp_type), detail, data_length }
}

#[test]
fn pfsense_icmp_length_is_split_off_the_last_field() {
    // `"%s,%u,%u"` then `"%u"`: seq 3, 84 - 20 = 64 bytes.
    assert_eq!(icmp(84, "request,4660,364"), info("request", IcmpDetail::Echo { id: 4660, seq: 3 }, Some(64)));
    assert_eq!(icmp(84, "reply,4660,6553564"), info("reply", IcmpDetail::Echo { id: 4660, seq: 65535 }, Some(64)));
    assert_eq!(icmp(40, "tstamp,4660,720"), info("tstamp", IcmpDetail::Echo { id: 4660, seq: 7 }, Some(20)));
    // A 24-byte header (IP options): 88 - 24 = 64.
    assert_eq!(icmp(88, "request,1,564"), info("request", IcmpDetail::Echo { id: 1, seq: 5 }, Some(64)));
    let dst = ip("198.51.100.7");
    assert_eq!(
        icmp(56, "unreachport,198.51.100.7,TCP,44336"),
        info("unreachport", IcmpDetail::UnreachPort { dst, proto: "TCP", port: 443 }, Some(36))
    );
    assert_eq!(
        icmp(56, "unreachport,198.51.100.7,47,036"),
        info("unreachport", IcmpDetail::UnreachPort { dst, proto: "47", port: 0 }, Some(36))
    );
    assert_eq!(
        icmp(56, "unreachproto,198.51.100.7,4736"),
        info("unreachproto", IcmpDetail::UnreachProto { dst, proto: 47 }, Some(36))
    );
    assert_eq!(
        icmp(576, "needfrag,198.51.100.7,1400556"),
        info("needfrag", IcmpDetail::NeedFrag { dst, mtu: 1400 }, Some(556))
    );
    // `tstampreply, %u,%u,%s,%s,%s`: the times are `%02u:%02u:%02u.%03u`, the length follows the milliseconds.
    assert_eq!(
        icmp(40, "tstampreply, 17664,83,00:00:00.000,372:53:59.424,1045:02:39.61620"),
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
}

#[test]
fn pfsense_icmp_text_types_lose_the_glued_length() {
    let text =
        |length, tail, icmp_type, text, n| assert_eq!(icmp(length, tail), info(icmp_type, IcmpDetail::Text(text), n));
    text(56, "needfrag,198.51.100.7 need to frag36", "needfrag", "198.51.100.7 need to frag", Some(36));
    text(
        68,
        "unreach,host 192.0.2.9 unreachable - admin prohibited filter48",
        "unreach",
        "host 192.0.2.9 unreachable - admin prohibited filter",
        Some(48),
    );
    text(56, "timexceed,time exceeded in-transit36", "timexceed", "time exceeded in-transit", Some(36));
    text(56, "timexceed,time exceeded-#736", "timexceed", "time exceeded-#7", Some(36));
    text(56, "paramprob, parameter problem - octet 2036", "paramprob", " parameter problem - octet 20", Some(36));
    text(40, "maskreply, address mask is 0xffffff0020", "maskreply", " address mask is 0xffffff00", Some(20));
    text(
        56,
        "redirect,redirect 192.0.2.1 to host 192.0.2.7736",
        "redirect",
        "redirect 192.0.2.1 to host 192.0.2.77",
        Some(36),
    );
    // The default case prints the type and the length only: `type-??` or a name from `icmp2str`.
    assert_eq!(icmp(48, "type-??28"), info("type-??", IcmpDetail::Text(""), Some(28)));
    assert_eq!(icmp(56, "source quench36"), info("source quench", IcmpDetail::Text(""), Some(36)));
}

#[test]
fn opnsense_icmp_layout() {
    let coded = |code, id, seq, mtu| IcmpDetail::Coded { code, id, seq, mtu };
    assert_eq!(
        icmp(84, "datalength=64,echoreq,0,4660,1,"),
        info("echoreq", coded("0", Some(4660), Some(1), None), Some(64))
    );
    assert_eq!(
        icmp(576, "datalength=556,unreach,needfrag,,,1400"),
        info("unreach", coded("needfrag", None, None, Some(1400)), Some(556))
    );
    assert_eq!(
        icmp(56, "datalength=36,unreach,port-unr,,,"),
        info("unreach", coded("port-unr", None, None, None), Some(36))
    );
    assert_eq!(
        icmp(21, "datalength=1,truncated-icmp=1,,,,"),
        info("truncated-icmp=1", coded("", None, None, None), Some(1))
    );
    // The older OPNsense and pfSense form: the length alone.
    assert_eq!(
        icmp(56, "datalength=36"),
        IcmpInfo { icmp_type: None, detail: IcmpDetail::DataLength(36), data_length: Some(36) }
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Prefixes: tab-separated exports, and a timestamp alone in front of the body.

const BODY: &str = "176,,,1520797901,igb1.27,match,pass,in,4,0xb8,,64,58355,0,none,17,udp,76,10.170.27.27,216.229.4.66,123,\
                    123,56";

fn udp_of(e: &FilterLogEntry<'_>) -> UdpInfo {
    match e.proto {
        ProtocolInfo::Udp(u) => u,
        other => panic!("not UDP: {other:?}"),
    }
}

#[test]
fn tab_separated_bsd_prefixes() {
    let expected = UdpInfo { src_port: 123, dst_port: 123, data_length: Some(56) };
    for (line, host, pid) in [
        (format!("Jul  3 19:10:30\tfw\tfilterlog[1]:\t{BODY}"), Some("fw"), Some(1)),
        (format!("Jul  3 19:10:30\tfw filterlog[1]: {BODY}"), Some("fw"), Some(1)),
        (format!("<134>Jul  3 19:10:30\tfilterlog[72237]:\t{BODY}"), None, Some(72237)),
        (format!("Jul  3 19:10:30 \t fw\t\tfilterlog:\t{BODY}"), Some("fw"), None),
        // A tab between the timestamp and the body, nothing else.
        (format!("Jul  3 19:10:30\t{BODY}"), None, None),
    ] {
        let e = parse(&line);
        assert_eq!(
            (e.format, e.timestamp, e.host, e.pid),
            (SyslogFormat::Bsd, Some("Jul  3 19:10:30"), host, pid),
            "{line}"
        );
        assert_eq!((e.body, e.tracker, e.interface), (BODY, Some(1520797901), "igb1.27"), "{line}");
        assert_eq!(udp_of(&e), expected, "{line}");
    }
}

#[test]
fn rfc3339_timestamp_alone_or_with_tag() {
    let now = chrono::Utc::now();
    for (line, host, pid, at) in [
        (format!("2026-07-03T19:10:30.123456+02:00 {BODY}"), None, None, "2026-07-03T17:10:30.123456Z"),
        (format!("2026-07-03T19:10:30.123456+02:00\t{BODY}"), None, None, "2026-07-03T17:10:30.123456Z"),
        (format!("2026-07-03T19:10:30Z filterlog[123]: {BODY}"), None, Some(123), "2026-07-03T19:10:30Z"),
        (
            format!("2026-07-03T19:10:30Z fw.example.org filterlog[123]: {BODY}"),
            Some("fw.example.org"),
            Some(123),
            "2026-07-03T19:10:30Z",
        ),
        (format!("2026-07-03T19:10:30Z\tfw\tfilterlog:\t{BODY}"), Some("fw"), None, "2026-07-03T19:10:30Z"),
    ] {
        let e = parse(&line);
        assert_eq!((e.format, e.host, e.pid, e.body), (SyslogFormat::Rfc3339, host, pid, BODY), "{line}");
        let expected: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
        assert_eq!(e.timestamp(2000, now), Some(expected), "{line}");
        assert_eq!(udp_of(&e).dst_port, 123);
    }
    // A timestamp in front of something that is neither a prefix nor a body is still not filterlog.
    assert_eq!(parse_line("2026-07-03T19:10:30Z hello world"), Err(portcullis_logs::ParseError::NotFilterlog));
    assert_eq!(parse_line("Jul  3 19:10:30\tfw\tsshd[1]:\tAccepted"), Err(portcullis_logs::ParseError::NotFilterlog));
}
