//! Malformed input gives the right error, never a panic and never a wrong entry.

use portcullis_logs::{Field, HeaderPart, ParseError, ParseErrorKind, parse_line};

/// A real sample line (BSD remote form, IPv4 TCP) and its CSV body.
const PREFIX: &str = "<134>Jul  3 19:10:30 filterlog[72237]: ";
const TCP: &str = "146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,10.170.12.50,1.1.1.1,49724,853,0,S,\
                   1891286705,,64240,,mss;sackOK;TS;nop;wscale";
const UDP: &str =
    "176,,,1520797901,igb1.27,match,pass,in,4,0xb8,,64,58355,0,none,17,udp,76,10.170.27.27,216.229.4.66,123,123,56";
const UDP6: &str =
    "6,,,1000000105,igb1.27,match,block,in,6,0x00,0xf6279,1,UDP,17,32,fe80::208:9bff:fef3:652b,ff02::1:2,546,547,32";

fn err(line: &str) -> ParseError {
    match parse_line(line) {
        Ok(e) => panic!("parsed, expected an error: {line}\n{e:?}"),
        Err(e) => e,
    }
}

fn missing(index: u16, field: Field) -> ParseError {
    ParseError::MissingField { index, field }
}

fn bad_number(index: u16, field: Field) -> ParseError {
    ParseError::BadNumber { index, field }
}

/// `body` with field `index` replaced by `value`.
fn with_field(body: &str, index: usize, value: &str) -> String {
    let mut fields: Vec<&str> = body.split(',').collect();
    fields[index] = value;
    fields.join(",")
}

#[test]
fn empty_and_blank() {
    assert_eq!(err(""), ParseError::Empty);
    assert_eq!(err("\n"), ParseError::Empty);
    assert_eq!(err("\r\n"), ParseError::Empty);
    assert_eq!(err("   \t "), ParseError::Empty);
}

#[test]
fn garbage_and_other_programs() {
    for line in [
        "garbage",
        "Hello, world",
        "hello world,1,2,3",
        "#,,,",
        "\u{fffd}\u{fffd}\u{fffd}",
        "{\"json\": true}",
        "<134>garbage",
        "<38>Jul  3 19:10:30 pfSense sshd[4242]: Accepted publickey for admin from 10.0.0.9 port 50000 ssh2",
        "Jul  3 19:10:30 pfSense php-fpm[123]: /index.php: Successful login for user 'admin'",
        "<134>1 2021-07-03T19:10:14.578288-05:00 pfSense.example.com dhcpd 111 - - DHCPACK on 10.0.0.5",
        "2024-12-29T08:20:39.570483+01:00 generic_firewall unbound[61076] info: start of service",
        "Jul  3 19:10:30 pfSense filterlogger[1]: 146,,,1535324496,igb1.12,match,block,in,4",
    ] {
        assert_eq!(err(line), ParseError::NotFilterlog, "{line}");
    }
    // A CSV body that is not filterlog's: it runs out of fields before the interface.
    assert_eq!(err("1,2,3"), missing(4, Field::Interface));
}

#[test]
fn broken_prefixes() {
    let bad = |part| ParseError::BadHeader { part };
    assert_eq!(err("<999>Jul  3 19:10:30 filterlog[1]: 1,,,2"), bad(HeaderPart::Priority));
    assert_eq!(err("<1a>Jul  3 19:10:30 filterlog[1]: 1,,,2"), bad(HeaderPart::Priority));
    assert_eq!(err("<134"), bad(HeaderPart::Priority));
    assert_eq!(err("<>"), bad(HeaderPart::Priority));
    assert_eq!(err("<134>"), bad(HeaderPart::Truncated));
    assert_eq!(err("<134>Jul  3 19:1"), bad(HeaderPart::Timestamp));
    assert_eq!(err("<134>Jul  3 19:10:30"), bad(HeaderPart::Truncated));
    assert_eq!(err("<134>Jul  3 19:10:30 "), bad(HeaderPart::Truncated));
    assert_eq!(err("<134>Jul  3 19:10:30 fw"), bad(HeaderPart::Truncated));
    assert_eq!(err("<134>Jul  3 19:10:30x filterlog: 1"), bad(HeaderPart::Timestamp));
    assert_eq!(
        err("<134>1 2021-07-03T19:10:14.578288-05:00 pfSense.example.com filterlog"),
        bad(HeaderPart::Truncated)
    );
    assert_eq!(
        err("<134>1 2021-07-03T19:10:14.578288-05:00 h filterlog 1 - [unclosed 5,,,"),
        bad(HeaderPart::StructuredData)
    );
    assert_eq!(err("<134>1 2021-07-03T19:10:14.578288-05:00 h filterlog 1 - x 5,,,"), bad(HeaderPart::StructuredData));
    assert_eq!(err("<134>1 July-3rd h filterlog 1 - - 5,,,"), bad(HeaderPart::Timestamp));
    assert_eq!(err("2024-12-2 host filterlog: 1,,,"), bad(HeaderPart::Timestamp));
    // A prefix with nothing after it.
    assert_eq!(err(PREFIX), missing(0, Field::RuleNumber));
    assert_eq!(err("<134>1 2021-07-03T19:10:14.578288-05:00 h filterlog 1 - -"), missing(0, Field::RuleNumber));
}

#[test]
fn truncated_lines_name_the_missing_field() {
    let cut = |after: &str| {
        let end = TCP.find(after).unwrap() + after.len();
        err(&format!("{PREFIX}{}", &TCP[..end]))
    };
    // `146` alone: the sub-rule is optional, the anchor is the first required field.
    assert_eq!(cut("146"), missing(2, Field::Anchor));
    // `...,igb1.12,` ends with an empty reason (allowed); the action is missing.
    assert_eq!(cut("igb1.12,"), missing(6, Field::Action));
    assert_eq!(cut("match,block,in"), missing(8, Field::IpVersion));
    // `...,60,` ends with an empty source address: present, but not an address.
    assert_eq!(cut(",tcp,60,"), ParseError::BadIp { index: 18, field: Field::SourceAddress });
    assert_eq!(cut("10.170.12.50"), missing(19, Field::DestinationAddress));
    assert_eq!(cut("1.1.1.1"), missing(20, Field::SourcePort));
    assert_eq!(cut("1.1.1.1,49724"), missing(21, Field::DestinationPort));
    // IPv6 and UDP.
    let end = UDP6.find("UDP,17").unwrap() + 6;
    assert_eq!(err(&UDP6[..end]), missing(14, Field::Length));
    let end = UDP.find(",123").unwrap();
    assert_eq!(err(&UDP[..end]), missing(20, Field::SourcePort));
    // Cut inside an address: a bad address, not a wrong one.
    assert_eq!(
        err(&format!("{PREFIX}{}", &TCP[..TCP.find("10.170.12.50").unwrap() + 6])),
        ParseError::BadIp { index: 18, field: Field::SourceAddress }
    );
}

#[test]
fn huge_numbers() {
    let line = |index, value| format!("{PREFIX}{}", with_field(TCP, index, value));
    assert_eq!(err(&line(3, "99999999999999999999999")), bad_number(3, Field::Tracker));
    assert_eq!(err(&line(3, "18446744073709551616")), bad_number(3, Field::Tracker));
    assert_eq!(err(&line(0, "4294967296")), bad_number(0, Field::RuleNumber));
    assert_eq!(err(&line(11, "256")), bad_number(11, Field::Ttl));
    assert_eq!(err(&line(12, "65536")), bad_number(12, Field::Id));
    assert_eq!(err(&line(15, "300")), bad_number(15, Field::ProtocolId));
    assert_eq!(err(&line(17, "4294967296")), bad_number(17, Field::Length));
    assert_eq!(err(&line(20, "65536")), bad_number(20, Field::SourcePort));
    assert_eq!(err(&line(21, "99999999999")), bad_number(21, Field::DestinationPort));
    assert_eq!(err(&line(22, "2147483648")), bad_number(22, Field::DataLength));
    assert_eq!(err(&line(24, "4294967296")), bad_number(24, Field::Sequence));
    assert_eq!(err(&line(24, "1:4294967296")), bad_number(24, Field::Sequence));
    assert_eq!(err(&line(26, "4294967296")), bad_number(26, Field::Window));
    assert_eq!(err(&line(9, "0x100")), bad_number(9, Field::Tos));
    assert_eq!(err(&line(9, "0x11111111111111111")), bad_number(9, Field::Tos));
    // Signs, spaces and other number-like text.
    assert_eq!(err(&line(3, "-1")), bad_number(3, Field::Tracker));
    assert_eq!(err(&line(3, "+1")), bad_number(3, Field::Tracker));
    assert_eq!(err(&line(3, " 1")), bad_number(3, Field::Tracker));
    assert_eq!(err(&line(11, "")), bad_number(11, Field::Ttl));
    assert_eq!(err(&line(20, "1e3")), bad_number(20, Field::SourcePort));
    assert_eq!(err(&line(9, "0xZZ")), bad_number(9, Field::Tos));
    // The largest values that fit are fine.
    let max = line(3, "18446744073709551615");
    assert_eq!(parse_line(&max).unwrap().tracker, Some(u64::MAX));
    let max = line(20, "65535");
    assert_eq!(parse_line(&max).unwrap().src_port(), Some(65535));
}

#[test]
fn replacement_characters() {
    // What a lossy UTF-8 decode of a corrupted line gives.
    let corrupt = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut line = format!("{PREFIX}{TCP}").into_bytes();
    let at = |needle: &str| PREFIX.len() + TCP.find(needle).unwrap();
    // In the tracker, in an address, in a port, in the prefix.
    let mut l = line.clone();
    l[at("1535324496") + 3] = 0xff;
    assert_eq!(err(&corrupt(&l)), bad_number(3, Field::Tracker));
    let mut l = line.clone();
    l[at("10.170.12.50") + 3] = 0xfe;
    assert_eq!(err(&corrupt(&l)), ParseError::BadIp { index: 18, field: Field::SourceAddress });
    let mut l = line.clone();
    l[at("49724")] = 0xc3;
    assert_eq!(err(&corrupt(&l)), bad_number(20, Field::SourcePort));
    let mut l = line.clone();
    l[8] = 0xff; // inside the timestamp
    assert_eq!(err(&corrupt(&l)), ParseError::BadHeader { part: HeaderPart::Timestamp });
    // In free-text fields the replacement character is kept, not a reason to drop the line.
    line[at("igb1.12") + 3] = 0x80;
    let text = corrupt(&line);
    let entry = parse_line(&text).unwrap();
    assert_eq!(entry.interface, "igb\u{fffd}.12");
    // Multi-byte characters next to delimiters.
    assert_eq!(
        err(&format!("{PREFIX}{}", with_field(TCP, 6, "blöck"))),
        ParseError::BadValue { index: 6, field: Field::Action }
    );
    assert_eq!(
        err(&format!("{PREFIX}{}", with_field(TCP, 19, "1.1.1.\u{0661}"))),
        ParseError::BadIp { index: 19, field: Field::DestinationAddress }
    );
}

#[test]
fn extra_and_missing_commas() {
    // Extra commas early shift every field: the interface becomes empty.
    let shifted = TCP.replacen("146,", "146,,,", 1);
    assert_eq!(err(&format!("{PREFIX}{shifted}")), ParseError::BadValue { index: 4, field: Field::Interface });
    // An extra comma before the source address.
    let shifted = TCP.replacen(",10.170.12.50", ",,10.170.12.50", 1);
    assert_eq!(err(&format!("{PREFIX}{shifted}")), ParseError::BadIp { index: 18, field: Field::SourceAddress });
    // A missing comma merges two fields.
    let merged = TCP.replacen("block,in", "blockin", 1);
    assert_eq!(err(&format!("{PREFIX}{merged}")), ParseError::BadValue { index: 6, field: Field::Action });
    // Extra trailing fields are tolerated (the contract says they occur) and change nothing before them.
    let base = parse_line(UDP).unwrap();
    let extra = format!("{UDP},,,x,");
    let more = parse_line(&extra).unwrap();
    assert_eq!((more.proto, more.src, more.dst, more.length), (base.proto, base.src, base.dst, base.length));
    // Only commas.
    assert_eq!(err(",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,"), ParseError::BadValue { index: 4, field: Field::Interface });
    assert_eq!(err(&",".repeat(100_000)), ParseError::BadValue { index: 4, field: Field::Interface });
}

#[test]
fn bad_vocabulary_and_addresses() {
    let line = |index, value| format!("{PREFIX}{}", with_field(TCP, index, value));
    assert_eq!(err(&line(6, "allow")), ParseError::BadValue { index: 6, field: Field::Action });
    assert_eq!(err(&line(6, "PASS")), ParseError::BadValue { index: 6, field: Field::Action });
    assert_eq!(err(&line(7, "both")), ParseError::BadValue { index: 7, field: Field::Direction });
    assert_eq!(err(&line(8, "5")), ParseError::BadValue { index: 8, field: Field::IpVersion });
    assert_eq!(err(&line(8, "")), ParseError::BadValue { index: 8, field: Field::IpVersion });
    // Version 4 with an IPv6 address, and the other way round.
    assert_eq!(err(&line(18, "fe80::1")), ParseError::BadIp { index: 18, field: Field::SourceAddress });
    let v6 = with_field(UDP6, 16, "10.0.0.1");
    assert_eq!(err(&v6), ParseError::BadIp { index: 16, field: Field::DestinationAddress });
    for bad in [
        "1.1.1",
        "1.1.1.1.1",
        "256.1.1.1",
        "01.1.1.1",
        "1..1.1",
        "1.1.1.1 ",
        " 1.1.1.1",
        "1.1.1.1:80",
        "::ffff:1.1.1.1",
    ] {
        assert_eq!(err(&line(19, bad)), ParseError::BadIp { index: 19, field: Field::DestinationAddress }, "{bad}");
    }
    // An IPv6 line's version is 6 but its header is IPv4-shaped.
    assert_eq!(err(&with_field(UDP, 8, "6")), bad_number(10, Field::FlowLabel));
}

#[test]
fn error_kinds_are_stable() {
    assert_eq!(err("").kind(), ParseErrorKind::Empty);
    assert_eq!(err("garbage").kind(), ParseErrorKind::NotFilterlog);
    assert_eq!(err("<999>x").kind(), ParseErrorKind::BadHeader);
    let e = err("1,,,2,em0,match,pass,in");
    assert_eq!(e.kind(), ParseErrorKind::MissingField);
    assert_eq!((e.field_index(), e.field()), (Some(8), Some(Field::IpVersion)));
    assert_eq!(e.to_string(), "missing field 8 (IP version)");
    assert_eq!(err("<999>x").to_string(), "malformed syslog header: bad priority");
}

#[test]
fn reasons_are_words() {
    // What an import prints for the lines it skips.
    assert_eq!(err("garbage").to_string(), "not filterlog");
    assert_eq!(err(&format!("{PREFIX}{}", with_field(TCP, 3, "-1"))).to_string(), "bad number in field 3 (tracker)");
    let words: Vec<&str> = ParseErrorKind::ALL.iter().map(|k| k.describe()).collect();
    assert_eq!(
        words,
        [
            "empty",
            "not filterlog",
            "malformed syslog header",
            "missing field",
            "bad number",
            "bad IP address",
            "unexpected value"
        ]
    );
    assert_eq!(ParseErrorKind::BadIp.to_string(), "bad IP address");
}
