//! The compact, fixed-width form of a log line for the store: 64 bytes, every field at a fixed offset, so that a
//! segment file is an array of records that can be scanned without parsing text.

use std::net::{IpAddr, Ipv6Addr};

use chrono::{DateTime, Utc};

use crate::entry::{Action, Direction, FilterLogEntry};

/// Bytes per stored record.
pub const RECORD_SIZE: usize = 64;
/// The last byte of every record: a record that does not end with it (a torn write, a foreign file) is rejected.
const MARKER: u8 = 0xA5;
const NO_TRACKER: u64 = u64::MAX;

const FLAG_OUT: u8 = 0b0000_0100;
const FLAG_V6: u8 = 0b0000_1000;
const FLAG_PORTS: u8 = 0b0001_0000;
/// [`Action::Unknown`] and [`Direction::Unknown`] take bits of their own (their action bits stay 0, their
/// direction bit "in") rather than the free action value 3, which older builds reject as a foreign record: an older
/// build reads such a record as a pass, inbound.
const FLAG_ACTION_UNKNOWN: u8 = 0b0010_0000;
const FLAG_DIRECTION_UNKNOWN: u8 = 0b0100_0000;

/// One stored line. The interface is an id the store interns (a handful of devices per firewall).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Milliseconds since the Unix epoch, UTC.
    pub ts_ms: i64,
    /// Interned interface device.
    pub interface: u16,
    /// pass, block or reject.
    pub action: Action,
    /// in or out.
    pub direction: Direction,
    /// IANA protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (TCP, UDP, SCTP).
    pub src_port: Option<u16>,
    /// Destination port (TCP, UDP, SCTP).
    pub dst_port: Option<u16>,
    /// The tracker of the rule that logged the line. An OPNsense rule label (text) is not kept: the record has
    /// room for a number only, so such lines are stored without a rule.
    pub tracker: Option<u64>,
    /// IP length as logged.
    pub length: u32,
}

impl Record {
    /// The compact form of a parsed line at its resolved time.
    pub fn from_entry(entry: &FilterLogEntry<'_>, at: DateTime<Utc>, interface: u16) -> Self {
        Record {
            ts_ms: at.timestamp_millis(),
            interface,
            action: entry.action,
            direction: entry.direction,
            protocol: entry.protocol_id,
            src: entry.src,
            dst: entry.dst,
            src_port: entry.src_port(),
            dst_port: entry.dst_port(),
            tracker: entry.tracker,
            length: entry.length,
        }
    }

    /// The time as a UTC date.
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.ts_ms).unwrap_or_default()
    }

    /// The 64 bytes of the record.
    pub fn encode(&self) -> [u8; RECORD_SIZE] {
        let mut b = [0u8; RECORD_SIZE];
        put(&mut b, 0, &self.ts_ms.to_le_bytes());
        put(&mut b, 8, &self.tracker.unwrap_or(NO_TRACKER).to_le_bytes());
        put(&mut b, 16, &v6_bytes(self.src));
        put(&mut b, 32, &v6_bytes(self.dst));
        put(&mut b, 48, &self.length.to_le_bytes());
        put(&mut b, 52, &self.src_port.unwrap_or(0).to_le_bytes());
        put(&mut b, 54, &self.dst_port.unwrap_or(0).to_le_bytes());
        put(&mut b, 56, &self.interface.to_le_bytes());
        let mut flags = match self.action {
            Action::Pass => 0,
            Action::Block => 1,
            Action::Reject => 2,
            Action::Unknown => FLAG_ACTION_UNKNOWN,
        };
        match self.direction {
            Direction::In => {}
            Direction::Out => flags |= FLAG_OUT,
            Direction::Unknown => flags |= FLAG_DIRECTION_UNKNOWN,
        }
        if self.src.is_ipv6() {
            flags |= FLAG_V6;
        }
        if self.src_port.is_some() || self.dst_port.is_some() {
            flags |= FLAG_PORTS;
        }
        put(&mut b, 58, &[self.protocol, flags]);
        put(&mut b, 63, &[MARKER]);
        b
    }

    /// Reads a record; `None` when the bytes are not one (short, or without the end marker).
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < RECORD_SIZE || b.get(63) != Some(&MARKER) {
            return None;
        }
        let flags = *b.get(59)?;
        let v6 = flags & FLAG_V6 != 0;
        let ports = flags & FLAG_PORTS != 0;
        let tracker = u64::from_le_bytes(arr(b, 8)?);
        Some(Record {
            ts_ms: i64::from_le_bytes(arr(b, 0)?),
            tracker: (tracker != NO_TRACKER).then_some(tracker),
            src: addr(arr(b, 16)?, v6),
            dst: addr(arr(b, 32)?, v6),
            length: u32::from_le_bytes(arr(b, 48)?),
            src_port: ports.then(|| u16::from_le_bytes(arr(b, 52).unwrap_or_default())),
            dst_port: ports.then(|| u16::from_le_bytes(arr(b, 54).unwrap_or_default())),
            interface: u16::from_le_bytes(arr(b, 56)?),
            protocol: *b.get(58)?,
            action: match (flags & 0b11, flags & FLAG_ACTION_UNKNOWN != 0) {
                (0, false) => Action::Pass,
                (1, false) => Action::Block,
                (2, false) => Action::Reject,
                (0, true) => Action::Unknown,
                _ => return None,
            },
            direction: match (flags & FLAG_OUT != 0, flags & FLAG_DIRECTION_UNKNOWN != 0) {
                (false, false) => Direction::In,
                (true, false) => Direction::Out,
                (false, true) => Direction::Unknown,
                (true, true) => return None,
            },
        })
    }
}

fn put(b: &mut [u8; RECORD_SIZE], at: usize, bytes: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

fn v6_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn addr(bytes: [u8; 16], v6: bool) -> IpAddr {
    let ip = Ipv6Addr::from(bytes);
    match ip.to_ipv4_mapped() {
        Some(v4) if !v6 => IpAddr::V4(v4),
        _ => IpAddr::V6(ip),
    }
}

/// The lower-case name of a protocol number, as tool output shows it.
pub fn protocol_name(protocol: u8, v6: bool) -> String {
    match (protocol, v6) {
        (1, _) => "icmp".into(),
        (2, _) => "igmp".into(),
        (6, _) => "tcp".into(),
        (17, _) => "udp".into(),
        (47, _) => "gre".into(),
        (50, _) => "esp".into(),
        (51, _) => "ah".into(),
        (58, _) => "icmpv6".into(),
        (103, _) => "pim".into(),
        (112, _) => "carp".into(),
        (132, _) => "sctp".into(),
        (n, _) => format!("proto-{n}"),
    }
}

/// A blocked-or-passed inbound TCP record from `src` to one port, for the crate's tests.
#[cfg(test)]
pub(crate) fn test_record(ts_ms: i64, src: &str, port: u16, action: crate::entry::Action) -> Record {
    Record {
        ts_ms,
        interface: 0,
        action,
        direction: crate::entry::Direction::In,
        protocol: 6,
        src: src.parse().unwrap(),
        dst: "198.51.100.2".parse().unwrap(),
        src_port: Some(40000),
        dst_port: Some(port),
        tracker: Some(7),
        length: 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            ts_ms: 1_700_000_000_123,
            interface: 3,
            action: Action::Block,
            direction: Direction::In,
            protocol: 6,
            src: "203.0.113.5".parse().unwrap(),
            dst: "198.51.100.2".parse().unwrap(),
            src_port: Some(51234),
            dst_port: Some(22),
            tracker: Some(1_000_000_103),
            length: 60,
        }
    }

    #[test]
    fn round_trips_v4_v6_and_absent_fields() {
        let r = sample();
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let v6 = Record {
            src: "2001:db8::1".parse().unwrap(),
            dst: "::ffff:1.2.3.4".parse().unwrap(),
            src_port: None,
            dst_port: None,
            tracker: None,
            action: Action::Reject,
            direction: Direction::Out,
            ..r
        };
        assert_eq!(Record::decode(&v6.encode()), Some(v6));
        let unknown = Record { action: Action::Unknown, direction: Direction::Unknown, ..r };
        assert_eq!(Record::decode(&unknown.encode()), Some(unknown));
    }

    #[test]
    fn rejects_torn_or_foreign_bytes() {
        let mut b = sample().encode();
        assert_eq!(Record::decode(&b[..40]), None);
        b[63] = 0;
        assert_eq!(Record::decode(&b), None);
        let mut bad_action = sample().encode();
        bad_action[59] |= 0b11;
        assert_eq!(Record::decode(&bad_action), None);
    }
}
