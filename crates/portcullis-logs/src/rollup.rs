//! Aggregates of stored records that merge: the store keeps one [`Rollup`] per hour segment, and a question over
//! any span is answered by merging the rollups of the whole hours inside it plus a rollup of the records at the
//! partial edges.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::compact::Record;
use crate::entry::{Action, Direction};

/// Ports whose attempts count as brute force (remote logins, file sharing, databases).
pub const SENSITIVE_PORTS: [u16; 12] = [21, 22, 23, 25, 445, 1433, 3306, 3389, 5432, 5900, 6379, 27017];

/// At most this many distinct destination ports are kept per source: a scan is evident long before.
pub const PORTS_KEPT_PER_SOURCE: usize = 1024;

/// Counts by action: pass, block, reject.
pub type ActionCounts = [u64; 3];

fn bump(counts: &mut ActionCounts, a: Action) {
    let [pass, block, reject] = counts;
    match a {
        Action::Pass => *pass += 1,
        Action::Block => *block += 1,
        Action::Reject => *reject += 1,
    }
}

/// Traffic of one minute (one interface).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficBucket {
    /// Lines by action.
    pub actions: ActionCounts,
    /// Bytes of inbound lines.
    pub bytes_in: u64,
    /// Bytes of outbound lines.
    pub bytes_out: u64,
    /// Inbound lines.
    pub packets_in: u64,
    /// Outbound lines.
    pub packets_out: u64,
}

impl TrafficBucket {
    /// Adds another bucket.
    pub fn add(&mut self, o: &TrafficBucket) {
        for (a, b) in self.actions.iter_mut().zip(o.actions) {
            *a += b;
        }
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
    }

    /// Every line.
    pub fn packets(&self) -> u64 {
        self.packets_in + self.packets_out
    }

    /// Every byte.
    pub fn bytes(&self) -> u64 {
        self.bytes_in + self.bytes_out
    }
}

/// What one source address did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStat {
    /// Lines by action.
    pub actions: ActionCounts,
    /// Bytes sent.
    pub bytes: u64,
    /// Lines to a sensitive port, by port.
    pub sensitive: BTreeMap<u16, u64>,
    /// Distinct destination ports of blocked lines (at most [`PORTS_KEPT_PER_SOURCE`]).
    pub blocked_ports: BTreeSet<u16>,
    /// Hours in which the source was seen (1 per hour segment, summed by merging).
    pub hours_active: u32,
    /// First and last time seen (ms).
    pub first_ms: i64,
    /// Last time seen (ms).
    pub last_ms: i64,
}

impl SourceStat {
    /// Every line from the source.
    pub fn total(&self) -> u64 {
        self.actions.iter().sum()
    }

    /// Blocked and rejected lines.
    pub fn denied(&self) -> u64 {
        self.actions[1] + self.actions[2]
    }

    /// Lines to sensitive ports.
    pub fn sensitive_total(&self) -> u64 {
        self.sensitive.values().sum()
    }

    fn merge(&mut self, o: &SourceStat) {
        let fresh = self.total() == 0;
        for (a, b) in self.actions.iter_mut().zip(o.actions) {
            *a += b;
        }
        self.bytes += o.bytes;
        for (p, n) in &o.sensitive {
            *self.sensitive.entry(*p).or_insert(0) += n;
        }
        for p in &o.blocked_ports {
            if self.blocked_ports.len() >= PORTS_KEPT_PER_SOURCE {
                break;
            }
            self.blocked_ports.insert(*p);
        }
        self.hours_active += o.hours_active;
        self.first_ms = if fresh { o.first_ms } else { self.first_ms.min(o.first_ms) };
        self.last_ms = self.last_ms.max(o.last_ms);
    }
}

/// A `protocol:port` destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortKey {
    /// IANA protocol number.
    pub protocol: u8,
    /// Destination port.
    pub port: u16,
}

/// Mergeable aggregates of a set of records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// Records folded in.
    pub records: u64,
    /// Lines by action.
    pub actions: ActionCounts,
    /// Traffic per (minute start in ms, interface id).
    pub minutes: BTreeMap<(i64, u16), TrafficBucket>,
    /// Lines per hour start (ms): the hour-of-day baseline is made of these.
    pub hours: BTreeMap<i64, u64>,
    /// Lines by destination `protocol:port`, by action.
    pub ports: HashMap<PortKey, ActionCounts>,
    /// Per source address.
    pub sources: HashMap<IpAddr, SourceStat>,
    /// Lines per rule tracker.
    pub rules: HashMap<u64, u64>,
}

const MINUTE_MS: i64 = 60_000;
/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

impl Rollup {
    /// Folds in one record. Fold records of one hour into one rollup and merge hours: a source's
    /// `hours_active` is then the number of hours it was seen in.
    pub fn fold(&mut self, r: &Record) {
        let a = r.action;
        self.records += 1;
        bump(&mut self.actions, a);
        let bucket = self.minutes.entry((r.ts_ms.div_euclid(MINUTE_MS) * MINUTE_MS, r.interface)).or_default();
        bump(&mut bucket.actions, a);
        let len = u64::from(r.length);
        match r.direction {
            Direction::In => {
                bucket.bytes_in += len;
                bucket.packets_in += 1;
            }
            Direction::Out => {
                bucket.bytes_out += len;
                bucket.packets_out += 1;
            }
        }
        *self.hours.entry(r.ts_ms.div_euclid(HOUR_MS) * HOUR_MS).or_insert(0) += 1;
        if let Some(port) = r.dst_port {
            bump(self.ports.entry(PortKey { protocol: r.protocol, port }).or_default(), a);
        }
        if let Some(t) = r.tracker {
            *self.rules.entry(t).or_insert(0) += 1;
        }
        let s = self.sources.entry(r.src).or_insert_with(|| SourceStat {
            first_ms: r.ts_ms,
            last_ms: r.ts_ms,
            hours_active: 1,
            ..Default::default()
        });
        bump(&mut s.actions, a);
        s.bytes += len;
        s.first_ms = s.first_ms.min(r.ts_ms);
        s.last_ms = s.last_ms.max(r.ts_ms);
        if let Some(port) = r.dst_port {
            if SENSITIVE_PORTS.contains(&port) {
                *s.sensitive.entry(port).or_insert(0) += 1;
            }
            if a != Action::Pass && s.blocked_ports.len() < PORTS_KEPT_PER_SOURCE {
                s.blocked_ports.insert(port);
            }
        }
    }

    /// Adds another rollup (of records disjoint from this one's).
    pub fn merge(&mut self, o: &Rollup) {
        self.records += o.records;
        for (a, b) in self.actions.iter_mut().zip(o.actions) {
            *a += b;
        }
        for (k, v) in &o.minutes {
            self.minutes.entry(*k).or_default().add(v);
        }
        for (k, v) in &o.hours {
            *self.hours.entry(*k).or_insert(0) += v;
        }
        for (k, v) in &o.ports {
            let e = self.ports.entry(*k).or_default();
            for (a, b) in e.iter_mut().zip(v) {
                *a += b;
            }
        }
        for (k, v) in &o.rules {
            *self.rules.entry(*k).or_insert(0) += v;
        }
        for (ip, s) in &o.sources {
            self.sources.entry(*ip).or_default().merge(s);
        }
    }

    /// Blocked and rejected lines.
    pub fn denied(&self) -> u64 {
        self.actions[1] + self.actions[2]
    }

    /// Traffic summed over interfaces (or of one interface id), per bucket of `granularity_ms`, oldest first.
    pub fn series(&self, granularity_ms: i64, interface: Option<u16>) -> BTreeMap<i64, TrafficBucket> {
        let step = granularity_ms.max(MINUTE_MS);
        let mut out: BTreeMap<i64, TrafficBucket> = BTreeMap::new();
        for ((minute, iface), b) in &self.minutes {
            if interface.is_none_or(|i| i == *iface) {
                out.entry(minute.div_euclid(step) * step).or_default().add(b);
            }
        }
        out
    }

    /// Traffic of every interface (or of one) over the whole rollup.
    pub fn traffic(&self, interface: Option<u16>) -> TrafficBucket {
        let mut t = TrafficBucket::default();
        for ((_, iface), b) in &self.minutes {
            if interface.is_none_or(|i| i == *iface) {
                t.add(b);
            }
        }
        t
    }

    /// Lines by action per interface id.
    pub fn actions_by_interface(&self) -> BTreeMap<u16, ActionCounts> {
        let mut out: BTreeMap<u16, ActionCounts> = BTreeMap::new();
        for ((_, iface), b) in &self.minutes {
            let e = out.entry(*iface).or_default();
            for (a, n) in e.iter_mut().zip(b.actions) {
                *a += n;
            }
        }
        out
    }

    /// The `n` sources with most blocked/rejected lines, most first (ties by address).
    pub fn top_denied_sources(&self, n: usize) -> Vec<(IpAddr, &SourceStat)> {
        let mut v: Vec<_> = self.sources.iter().filter(|(_, s)| s.denied() > 0).map(|(ip, s)| (*ip, s)).collect();
        v.sort_by(|a, b| b.1.denied().cmp(&a.1.denied()).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// The `n` destination ports with most blocked/rejected lines, most first.
    pub fn top_denied_ports(&self, n: usize) -> Vec<(PortKey, u64)> {
        let mut v: Vec<_> =
            self.ports.iter().map(|(k, c)| (*k, c[1] + c[2])).filter(|(_, denied)| *denied > 0).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            tracker: Some(7),
            length: 60,
        }
    }

    #[test]
    fn merging_hour_rollups_equals_one_rollup_of_everything() {
        let a: Vec<Record> = (0..50).map(|i| rec(i * 1000, "203.0.113.1", 22, Action::Block)).collect();
        let b: Vec<Record> =
            (0..30).map(|i| rec(HOUR_MS + i * 1000, "203.0.113.1", 1000 + i as u16, Action::Block)).collect();
        let (mut ra, mut rb) = (Rollup::default(), Rollup::default());
        a.iter().for_each(|r| ra.fold(r));
        b.iter().for_each(|r| rb.fold(r));
        let mut merged = ra.clone();
        merged.merge(&rb);
        let mut whole = Rollup::default();
        a.iter().chain(&b).for_each(|r| whole.fold(r));
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        whole.sources.get_mut(&ip).unwrap().hours_active = 2;
        assert_eq!(merged, whole);
        let s = &merged.sources[&"203.0.113.1".parse::<IpAddr>().unwrap()];
        assert_eq!((s.denied(), s.sensitive_total(), s.hours_active), (80, 50, 2));
        assert_eq!(s.blocked_ports.len(), 31);
        assert_eq!(merged.hours.len(), 2);
        assert_eq!(merged.series(HOUR_MS, None).values().map(|b| b.packets()).collect::<Vec<_>>(), vec![50, 30]);
        assert_eq!(merged.top_denied_ports(1), vec![(PortKey { protocol: 6, port: 22 }, 50)]);
    }
}
