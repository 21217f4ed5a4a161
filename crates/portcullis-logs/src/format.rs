//! Writing filterlog lines: the lab firewall logs its verdicts in the exact format pfSense does (RFC 5424 syslog
//! prefix, the filterlog CSV body), so that everything downstream reads lab and real logs with one parser.

use std::fmt::Write;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::entry::{Action, Direction};

/// One packet as the firewall logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedPacket<'a> {
    /// When it was seen.
    pub time: DateTime<Utc>,
    /// The host name in the syslog prefix.
    pub host: &'a str,
    /// pf rule number.
    pub rule_number: u32,
    /// The rule's tracker.
    pub tracker: u64,
    /// The interface device (`em0`).
    pub device: &'a str,
    /// The verdict.
    pub action: Action,
    /// in or out.
    pub direction: Direction,
    /// IANA protocol: 6, 17, 1 (ICMP) and 58 (ICMPv6) get their specific fields.
    pub protocol: u8,
    /// Source.
    pub src: IpAddr,
    /// Destination.
    pub dst: IpAddr,
    /// Source port (TCP/UDP).
    pub src_port: u16,
    /// Destination port (TCP/UDP).
    pub dst_port: u16,
    /// IP length.
    pub length: u32,
    /// IP id / TCP sequence material.
    pub id: u32,
}

/// The RFC 5424 filterlog line of a packet (no trailing newline).
pub fn filterlog_line(p: &LoggedPacket<'_>) -> String {
    let mut s = String::with_capacity(200);
    let time = p.time.to_rfc3339_opts(SecondsFormat::Micros, false);
    let _ = write!(s, "<134>1 {time} {} filterlog {} - - ", p.host, 40000 + p.id % 20000);
    let _ = write!(s, "{},,,{},{},match,{},{},", p.rule_number, p.tracker, p.device, p.action, p.direction);
    let v6 = p.src.is_ipv6();
    let name = match (p.protocol, v6) {
        (6, false) => "tcp",
        (6, true) => "TCP",
        (17, false) => "udp",
        (17, true) => "UDP",
        (1, _) => "icmp",
        (58, _) => "ICMPv6",
        _ => "unknown",
    };
    if v6 {
        let _ = write!(s, "6,0x00,0x00000,64,{name},{},{},{},{},", p.protocol, p.length, p.src, p.dst);
    } else {
        let flags = if p.protocol == 6 { "DF" } else { "none" };
        let _ =
            write!(s, "4,0x0,,64,{},0,{flags},{},{name},{},{},{},", p.id % 65536, p.protocol, p.length, p.src, p.dst);
    }
    match p.protocol {
        6 => {
            let _ = write!(s, "{},{},0,S,{},,64240,,mss;sackOK;TS;nop;wscale", p.src_port, p.dst_port, p.id);
        }
        17 => {
            let _ = write!(s, "{},{},{}", p.src_port, p.dst_port, p.length.saturating_sub(if v6 { 0 } else { 20 }));
        }
        1 => {
            let _ = write!(s, "request,{},{}", p.id % 65536, p.id % 1000);
        }
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProtocolInfo, parse_line};

    fn packet(protocol: u8, src: &str, dst: &str) -> LoggedPacket<'static> {
        LoggedPacket {
            time: DateTime::parse_from_rfc3339("2026-11-21T10:00:00.5Z").unwrap().with_timezone(&Utc),
            host: "lab",
            rule_number: 5,
            tracker: 1_000_000_103,
            device: "em0",
            action: Action::Block,
            direction: Direction::In,
            protocol,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: 51000,
            dst_port: 22,
            length: 60,
            id: 4242,
        }
    }

    #[test]
    fn written_lines_parse_back_to_the_same_fields() {
        for (proto, src, dst) in [
            (6, "203.0.113.5", "198.51.100.2"),
            (17, "203.0.113.5", "198.51.100.2"),
            (1, "203.0.113.5", "198.51.100.2"),
            (6, "2001:db8::5", "2001:db8:ffff::2"),
            (17, "2001:db8::5", "2001:db8:ffff::2"),
            (58, "2001:db8::5", "2001:db8:ffff::2"),
        ] {
            let p = packet(proto, src, dst);
            let line = filterlog_line(&p);
            let e = parse_line(&line).unwrap_or_else(|err| panic!("{line}: {err}"));
            assert_eq!(
                (e.protocol_id, e.src, e.dst, e.action, e.direction),
                (proto, p.src, p.dst, p.action, p.direction)
            );
            assert_eq!(e.tracker, Some(p.tracker), "{line}");
            assert_eq!(e.interface, "em0");
            assert_eq!(e.length, 60);
            assert_eq!(e.timestamp(2026, p.time).unwrap(), p.time);
            if matches!(e.proto, ProtocolInfo::Tcp(_) | ProtocolInfo::Udp(_)) {
                assert_eq!((e.src_port(), e.dst_port()), (Some(51000), Some(22)), "{line}");
            }
        }
    }
}
