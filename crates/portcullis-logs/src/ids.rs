//! Suricata alerts as Portcullis keeps and judges them: [`IdsAlert`] is one stored alert (made from an eve.json
//! `alert` event by [`IdsAlert::from_event`]); [`AlertGroups`] folds alerts into groups per source address and
//! signature, the `ids_alert` threats; [`alert_strength`] is their part in the threat score
//! ([`crate::detect::threat_score`]); [`IdsSummary`] is the security report's and the dashboard's section; and
//! [`threshold_crossing`] says whether alerts reached "N alerts per window". Pure: the store supplies the alerts.
//!
//! ```
//! use portcullis_logs::ids::threshold_crossing;
//!
//! // Three alerts within 10 s reach "3 per 10 s"; the same three spread over a minute do not.
//! let s = 1_000_000; // a second in microseconds
//! let crossing = threshold_crossing([0, 4 * s, 9 * s], 3, 10 * s).unwrap();
//! assert_eq!((crossing.first_us, crossing.peak), (9 * s, 3));
//! assert!(threshold_crossing([0, 30 * s, 60 * s], 3, 10 * s).is_none());
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::eve::{AlertAction, EveEvent, EventKind};

/// One Suricata alert as stored: every field of the eve.json `alert` event Portcullis uses, borrowing its text
/// (from the parsed event when it is made, from the stored record when it is read back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsAlert<'a> {
    /// When Suricata saw the packet, in microseconds since the epoch (UTC).
    pub ts_us: i64,
    /// `alert.gid`.
    pub gid: u32,
    /// `alert.signature_id`.
    pub signature_id: u32,
    /// `alert.rev`.
    pub rev: u32,
    /// `alert.signature`.
    pub signature: &'a str,
    /// `alert.category`.
    pub category: Option<&'a str>,
    /// `alert.severity`: 1 is the highest.
    pub severity: u8,
    /// `alert.action`.
    pub action: AlertAction,
    /// `src_ip`.
    pub src_ip: Option<IpAddr>,
    /// `src_port`.
    pub src_port: Option<u16>,
    /// `dest_ip`.
    pub dest_ip: Option<IpAddr>,
    /// `dest_port`.
    pub dest_port: Option<u16>,
    /// `proto`, as the IP protocol number.
    pub proto: Option<u8>,
    /// `in_iface`: the device the sensor captured on.
    pub in_iface: Option<&'a str>,
    /// The logical interface the configured source says its sensor watches (`logs.eve_files[].interface`).
    pub interface: Option<&'a str>,
    /// The configured source's sensor name (`logs.eve_files[].sensor`).
    pub sensor: Option<&'a str>,
    /// `flow_id`.
    pub flow_id: Option<u64>,
    /// `community_id`.
    pub community_id: Option<&'a str>,
    /// `app_proto`.
    pub app_proto: Option<&'a str>,
}

impl<'a> IdsAlert<'a> {
    /// The alert of an `alert` event (`None` for other events, including `drop` events that carry an `alert{}`:
    /// those are counted, the alert of the same packet is stored once). `interface` and `sensor` are the
    /// configured source's.
    pub fn from_event(event: &'a EveEvent, interface: Option<&'a str>, sensor: Option<&'a str>) -> Option<Self> {
        if event.kind != EventKind::Alert {
            return None;
        }
        let alert = event.alert.as_ref()?;
        Some(IdsAlert {
            ts_us: event.timestamp.timestamp_micros(),
            gid: alert.gid,
            signature_id: alert.signature_id,
            rev: alert.rev,
            signature: &alert.signature,
            category: alert.category.as_deref(),
            severity: alert.severity,
            action: alert.action,
            src_ip: event.src_ip,
            src_port: event.src_port,
            dest_ip: event.dest_ip,
            dest_port: event.dest_port,
            proto: event.proto.map(|p| p.0),
            in_iface: event.in_iface.as_deref(),
            interface,
            sensor,
            flow_id: event.flow_id,
            community_id: event.community_id.as_deref(),
            app_proto: event.app_proto.as_deref(),
        })
    }

    /// The interface the alert is counted on: the configured source's logical interface when it names one (the
    /// sensor's own `in_iface` is the device it captures on, often a mirror port on another machine), else
    /// `in_iface`.
    pub fn interface(&self) -> Option<&'a str> {
        self.interface.or(self.in_iface)
    }

    /// When Suricata saw the packet.
    pub fn time(&self) -> DateTime<Utc> {
        us_time(self.ts_us)
    }
}

/// Microseconds since the epoch as a time (the epoch itself when out of range, which stored alerts never are).
pub fn us_time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Suricata's severity in the words threats use: 1 critical, 2 high, 3 medium, 4 and below low.
pub fn severity_label(severity: u8) -> &'static str {
    match severity {
        1 => "critical",
        2 => "high",
        3 => "medium",
        _ => "low",
    }
}

/// The strength of a group of alerts in the adaptive threat score, on the scale of the other findings
/// ([`crate::detect::threat_score`]): by Suricata's severity, growing with the logarithm of the count.
///
/// - severity 1: 65 + 8·log10(n): one alert calls for a 24 h block, about a hundred for 7 d;
/// - severity 2: 45 + 8·log10(n): one alert a 1 h block, from about ten a 24 h block;
/// - severity 3: 15 + 6·log10(n): a 1 h block from about ten alerts;
/// - lower: 5 + 4·log10(n): never a block alone.
pub fn alert_strength(severity: u8, count: u64) -> f64 {
    let n = count.max(1) as f64;
    match severity {
        1 => 65.0 + 8.0 * n.log10(),
        2 => 45.0 + 8.0 * n.log10(),
        3 => 15.0 + 6.0 * n.log10(),
        _ => 5.0 + 4.0 * n.log10(),
    }
}

/// What an `ids_alert` finding carries beyond the other findings' fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdsEvidence {
    /// `alert.gid`.
    pub gid: u32,
    /// `alert.signature_id`.
    pub signature_id: u32,
    /// The signature's text (of the latest alert).
    pub signature: String,
    /// Its category.
    pub category: Option<String>,
    /// The highest severity of the group (the lowest number).
    pub severity: u8,
    /// Alerts of the group the sensor blocked (`action: blocked`, IPS mode).
    pub blocked: u64,
    /// The interface with the most alerts of the group.
    pub interface: Option<String>,
    /// The sensor with the most alerts of the group.
    pub sensor: Option<String>,
    /// Distinct destination addresses (counted up to [`MAX_TRACKED`]).
    pub destinations: usize,
}

/// Alerts of one source address and one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertGroup {
    /// `src_ip` (`None` for alerts without one).
    pub source: Option<IpAddr>,
    /// The signature and the rest of the evidence.
    pub evidence: IdsEvidence,
    /// Alerts in the group.
    pub count: u64,
    /// Destination ports, most alerts first (at most 10).
    pub ports: Vec<u16>,
    /// The first alert, in microseconds.
    pub first_us: i64,
    /// The last alert, in microseconds.
    pub last_us: i64,
}

/// Most distinct values (ports, destinations, interfaces, sensors) one group tracks; more are not told apart.
pub const MAX_TRACKED: usize = 256;

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct GroupKey {
    source: Option<IpAddr>,
    gid: u32,
    signature_id: u32,
}

struct GroupAcc {
    signature: String,
    category: Option<String>,
    /// When `signature` was seen: the text of the latest alert is kept (a new revision may reword it).
    signature_us: i64,
    severity: u8,
    count: u64,
    blocked: u64,
    ports: HashMap<u16, u64>,
    destinations: HashSet<IpAddr>,
    interfaces: Tally,
    sensors: Tally,
    first_us: i64,
    last_us: i64,
}

/// Counts per name, bounded to [`MAX_TRACKED`] names.
#[derive(Default)]
struct Tally(HashMap<String, u64>);

impl Tally {
    fn add(&mut self, name: Option<&str>) {
        let Some(name) = name else { return };
        if let Some(n) = self.0.get_mut(name) {
            *n += 1;
        } else if self.0.len() < MAX_TRACKED {
            self.0.insert(name.to_string(), 1);
        }
    }

    /// The name counted most (the smallest name among equals).
    fn top(&self) -> Option<String> {
        self.0.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(k, _)| k.clone())
    }
}

/// Folds alerts into groups per source address and signature (`gid`, `signature_id`), and counts them per
/// interface.
#[derive(Default)]
pub struct AlertGroups {
    groups: HashMap<GroupKey, GroupAcc>,
    by_interface: Tally,
    alerts: u64,
}

impl AlertGroups {
    /// Adds one alert.
    pub fn add(&mut self, a: &IdsAlert<'_>) {
        self.alerts += 1;
        self.by_interface.add(a.interface());
        let key = GroupKey { source: a.src_ip, gid: a.gid, signature_id: a.signature_id };
        let g = self.groups.entry(key).or_insert_with(|| GroupAcc {
            signature: a.signature.to_string(),
            category: a.category.map(str::to_string),
            signature_us: a.ts_us,
            severity: a.severity,
            count: 0,
            blocked: 0,
            ports: HashMap::new(),
            destinations: HashSet::new(),
            interfaces: Tally::default(),
            sensors: Tally::default(),
            first_us: a.ts_us,
            last_us: a.ts_us,
        });
        g.count += 1;
        g.blocked += u64::from(a.action == AlertAction::Blocked);
        g.severity = g.severity.min(a.severity);
        if a.ts_us > g.signature_us && (g.signature != a.signature || g.category.as_deref() != a.category) {
            g.signature = a.signature.to_string();
            g.category = a.category.map(str::to_string);
            g.signature_us = a.ts_us;
        }
        if let Some(port) = a.dest_port {
            if let Some(n) = g.ports.get_mut(&port) {
                *n += 1;
            } else if g.ports.len() < MAX_TRACKED {
                g.ports.insert(port, 1);
            }
        }
        if let Some(ip) = a.dest_ip
            && g.destinations.len() < MAX_TRACKED
        {
            g.destinations.insert(ip);
        }
        g.interfaces.add(a.interface());
        g.sensors.add(a.sensor);
        g.first_us = g.first_us.min(a.ts_us);
        g.last_us = g.last_us.max(a.ts_us);
    }

    /// Alerts added.
    pub fn alerts(&self) -> u64 {
        self.alerts
    }

    /// Alerts per interface, most first.
    pub fn by_interface(&self) -> Vec<InterfaceCount> {
        let mut out: Vec<InterfaceCount> =
            self.by_interface.0.iter().map(|(i, n)| InterfaceCount { interface: i.clone(), alerts: *n }).collect();
        out.sort_by(|a, b| b.alerts.cmp(&a.alerts).then(a.interface.cmp(&b.interface)));
        out
    }

    /// The groups, highest severity first, then most alerts, then by source and signature.
    pub fn groups(&self) -> Vec<AlertGroup> {
        let mut out: Vec<AlertGroup> = self
            .groups
            .iter()
            .map(|(k, g)| {
                let mut ports: Vec<(u16, u64)> = g.ports.iter().map(|(p, n)| (*p, *n)).collect();
                ports.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                AlertGroup {
                    source: k.source,
                    evidence: IdsEvidence {
                        gid: k.gid,
                        signature_id: k.signature_id,
                        signature: g.signature.clone(),
                        category: g.category.clone(),
                        severity: g.severity,
                        blocked: g.blocked,
                        interface: g.interfaces.top(),
                        sensor: g.sensors.top(),
                        destinations: g.destinations.len(),
                    },
                    count: g.count,
                    ports: ports.into_iter().take(10).map(|p| p.0).collect(),
                    first_us: g.first_us,
                    last_us: g.last_us,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (a.evidence.severity, std::cmp::Reverse(a.count), a.source, a.evidence.gid, a.evidence.signature_id).cmp(&(
                b.evidence.severity,
                std::cmp::Reverse(b.count),
                b.source,
                b.evidence.gid,
                b.evidence.signature_id,
            ))
        });
        out
    }
}

/// The events of one ingestion batch in one hour from one configured source, as stored beside the alerts: eve.json
/// lines other than alerts are counted, not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts<'a> {
    /// The configured source's sensor name.
    pub sensor: Option<&'a str>,
    /// The configured source's logical interface.
    pub interface: Option<&'a str>,
    /// The first event of the batch in this hour, in microseconds.
    pub first_us: i64,
    /// The last event.
    pub last_us: i64,
    /// The last `stats` event: the engine's own heartbeat.
    pub last_stats_us: Option<i64>,
    /// Events by `event_type` (alerts included).
    pub events: Vec<(&'a str, u64)>,
}

/// When a sensor was last heard from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SensorSeen {
    /// The configured sensor name (absent when the source names none).
    pub sensor: Option<String>,
    /// The configured logical interface.
    pub interface: Option<String>,
    /// Its last event of any kind.
    pub last_event: DateTime<Utc>,
    /// Its last `stats` event.
    pub last_stats: Option<DateTime<Utc>>,
    /// Events counted in the period.
    pub events: u64,
}

/// Counts frames summed over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTotals {
    /// Events by `event_type`.
    pub by_event: BTreeMap<String, u64>,
    /// Per (sensor, interface).
    sensors: BTreeMap<(Option<String>, Option<String>), Heard>,
}

/// A sensor's last event and last stats event (µs), and its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Heard {
    last_us: i64,
    last_stats_us: Option<i64>,
    events: u64,
}

impl EventTotals {
    /// Adds one counts frame.
    pub fn add(&mut self, c: &EventCounts<'_>) {
        let mut total = 0;
        for (kind, n) in &c.events {
            total += n;
            if let Some(v) = self.by_event.get_mut(*kind) {
                *v += n;
            } else if self.by_event.len() < MAX_TRACKED {
                self.by_event.insert(kind.to_string(), *n);
            }
        }
        let key = (c.sensor.map(str::to_string), c.interface.map(str::to_string));
        if !self.sensors.contains_key(&key) && self.sensors.len() >= MAX_TRACKED {
            return;
        }
        let seen = self.sensors.entry(key).or_insert(Heard { last_us: c.last_us, last_stats_us: None, events: 0 });
        seen.last_us = seen.last_us.max(c.last_us);
        seen.last_stats_us = seen.last_stats_us.max(c.last_stats_us);
        seen.events += total;
    }

    /// When each sensor was last heard from, most recent first.
    pub fn sensors(&self) -> Vec<SensorSeen> {
        let mut out: Vec<SensorSeen> = self
            .sensors
            .iter()
            .map(|((sensor, interface), heard)| SensorSeen {
                sensor: sensor.clone(),
                interface: interface.clone(),
                last_event: us_time(heard.last_us),
                last_stats: heard.last_stats_us.map(us_time),
                events: heard.events,
            })
            .collect();
        out.sort_by(|a, b| b.last_event.cmp(&a.last_event).then(a.sensor.cmp(&b.sensor)));
        out
    }
}

/// Alerts of one severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeverityCount {
    /// Suricata's severity (1 highest).
    pub severity: u8,
    /// critical, high, medium, low.
    pub label: String,
    /// Alerts.
    pub alerts: u64,
}

/// Alerts of one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCount {
    /// `alert.gid`.
    pub gid: u32,
    /// `alert.signature_id`.
    pub signature_id: u32,
    /// The signature's text.
    pub signature: String,
    /// Its category.
    pub category: Option<String>,
    /// Its highest severity.
    pub severity: u8,
    /// Alerts.
    pub alerts: u64,
    /// Distinct source addresses.
    pub sources: usize,
}

/// Alerts from one source address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceCount {
    /// The address.
    pub ip: String,
    /// Alerts.
    pub alerts: u64,
    /// The highest severity of its alerts.
    pub highest_severity: u8,
    /// Distinct signatures.
    pub signatures: usize,
}

/// Alerts on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceCount {
    /// The interface (the source's logical interface, else the sensor's `in_iface`).
    pub interface: String,
    /// Alerts.
    pub alerts: u64,
}

/// The `ids_alerts` section of the security report and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdsSummary {
    /// Alerts in the period.
    pub alerts: u64,
    /// Alerts by severity, 1 to 3 always, others when seen.
    pub by_severity: Vec<SeverityCount>,
    /// Signatures with most alerts (highest severity first among equals).
    pub top_signatures: Vec<SignatureCount>,
    /// Sources with most alerts.
    pub top_sources: Vec<SourceCount>,
    /// Alerts per interface, most first.
    pub by_interface: Vec<InterfaceCount>,
    /// eve.json events counted in the period by `event_type` (alerts included; other events are counted, not
    /// stored).
    pub events: BTreeMap<String, u64>,
    /// When each sensor was last heard from.
    pub sensors: Vec<SensorSeen>,
}

impl IdsSummary {
    /// The summary of `groups` (from [`AlertGroups`]) and the counted events, with the `top` signatures and
    /// sources.
    pub fn new(groups: &AlertGroups, events: &EventTotals, top: usize) -> Self {
        let all = groups.groups();
        let mut severities: BTreeMap<u8, u64> = [(1, 0), (2, 0), (3, 0)].into_iter().collect();
        let mut signatures: HashMap<(u32, u32), SignatureCount> = HashMap::new();
        let mut sources: HashMap<IpAddr, SourceCount> = HashMap::new();
        for g in &all {
            let e = &g.evidence;
            *severities.entry(e.severity).or_insert(0) += g.count;
            let s = signatures.entry((e.gid, e.signature_id)).or_insert_with(|| SignatureCount {
                gid: e.gid,
                signature_id: e.signature_id,
                signature: e.signature.clone(),
                category: e.category.clone(),
                severity: e.severity,
                alerts: 0,
                sources: 0,
            });
            s.alerts += g.count;
            s.sources += 1;
            s.severity = s.severity.min(e.severity);
            if let Some(ip) = g.source {
                let src = sources.entry(ip).or_insert_with(|| SourceCount {
                    ip: ip.to_string(),
                    alerts: 0,
                    highest_severity: e.severity,
                    signatures: 0,
                });
                src.alerts += g.count;
                src.signatures += 1;
                src.highest_severity = src.highest_severity.min(e.severity);
            }
        }
        let mut top_signatures: Vec<SignatureCount> = signatures.into_values().collect();
        top_signatures.sort_by(|a, b| {
            b.alerts
                .cmp(&a.alerts)
                .then(a.severity.cmp(&b.severity))
                .then((a.gid, a.signature_id).cmp(&(b.gid, b.signature_id)))
        });
        top_signatures.truncate(top);
        let mut top_sources: Vec<(IpAddr, SourceCount)> = sources.into_iter().collect();
        top_sources.sort_by(|a, b| {
            b.1.alerts.cmp(&a.1.alerts).then(a.1.highest_severity.cmp(&b.1.highest_severity)).then(a.0.cmp(&b.0))
        });
        top_sources.truncate(top);
        IdsSummary {
            alerts: groups.alerts(),
            by_severity: severities
                .into_iter()
                .map(|(severity, alerts)| SeverityCount {
                    severity,
                    label: severity_label(severity).to_string(),
                    alerts,
                })
                .collect(),
            top_signatures,
            top_sources: top_sources.into_iter().map(|s| s.1).collect(),
            by_interface: groups.by_interface(),
            events: events.by_event.clone(),
            sensors: events.sensors(),
        }
    }

    /// Alerts of severity `severity`.
    pub fn with_severity(&self, severity: u8) -> u64 {
        self.by_severity.iter().filter(|s| s.severity == severity).map(|s| s.alerts).sum()
    }
}

/// Where a series of alerts reached a threshold of `count` alerts within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Crossing {
    /// The alert that first made `count` within one window (µs).
    pub first_us: i64,
    /// The most alerts within any one window.
    pub peak: u64,
    /// The first and last alert of that busiest window (µs).
    pub peak_from_us: i64,
    /// See `peak_from_us`.
    pub peak_to_us: i64,
}

/// Whether alerts at `times_us` (microseconds, any order) reach `count` alerts within `window_us`: some `count`
/// alerts whose first and last are less than `window_us` apart. `None` when they never do (and for a `count` of 0
/// or a window that is not positive, which no threshold is).
pub fn threshold_crossing(times_us: impl IntoIterator<Item = i64>, count: u64, window_us: i64) -> Option<Crossing> {
    if count == 0 || window_us <= 0 {
        return None;
    }
    let mut times: Vec<i64> = times_us.into_iter().collect();
    times.sort_unstable();
    let mut first = None;
    let mut peak = (0u64, 0i64, 0i64);
    let mut start = 0usize;
    for (end, &t) in times.iter().enumerate() {
        while let Some(&s) = times.get(start)
            && t.saturating_sub(s) >= window_us
        {
            start += 1;
        }
        let within = (end + 1 - start) as u64;
        if within >= count && first.is_none() {
            first = Some(t);
        }
        if within > peak.0 {
            peak = (within, times.get(start).copied().unwrap_or(t), t);
        }
    }
    first.map(|first_us| Crossing { first_us, peak: peak.0, peak_from_us: peak.1, peak_to_us: peak.2 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eve::parse_line;

    fn alert(ts_s: i64, src: &str, sid: u32, severity: u8, port: u16) -> IdsAlert<'static> {
        IdsAlert {
            ts_us: ts_s * 1_000_000,
            gid: 1,
            signature_id: sid,
            rev: 1,
            signature: if sid == 1 { "ET SCAN one" } else { "ET EXPLOIT two" },
            category: Some("Attempted Information Leak"),
            severity,
            action: if port == 3389 { AlertAction::Blocked } else { AlertAction::Allowed },
            src_ip: src.parse().ok(),
            src_port: Some(40000),
            dest_ip: "198.51.100.10".parse().ok(),
            dest_port: Some(port),
            proto: Some(6),
            in_iface: Some("eth1"),
            interface: None,
            sensor: Some("ids1"),
            flow_id: Some(7),
            community_id: None,
            app_proto: None,
        }
    }

    #[test]
    fn from_event_takes_alert_events_only_and_prefers_the_configured_interface() {
        let line = r#"{"timestamp":"2026-11-30T08:15:02.417003-0500","flow_id":12,"in_iface":"enp3s0","event_type":"alert","src_ip":"203.0.113.77","src_port":41522,"dest_ip":"198.51.100.10","dest_port":22,"proto":"TCP","community_id":"1:abc=","alert":{"action":"blocked","gid":1,"signature_id":2001219,"rev":20,"signature":"ET SCAN Potential SSH Scan","category":"Attempted Information Leak","severity":2}}"#;
        let e = parse_line(line).unwrap();
        let a = IdsAlert::from_event(&e, Some("wan"), Some("ids1")).unwrap();
        assert_eq!(a.time().to_rfc3339(), "2026-11-30T13:15:02.417003+00:00");
        assert_eq!((a.signature_id, a.severity, a.action), (2001219, 2, AlertAction::Blocked));
        assert_eq!((a.interface(), a.in_iface, a.sensor), (Some("wan"), Some("enp3s0"), Some("ids1")));
        assert_eq!((a.community_id, a.proto, a.flow_id), (Some("1:abc="), Some(6), Some(12)));
        assert_eq!(IdsAlert::from_event(&e, None, None).unwrap().interface(), Some("enp3s0"));
        let drop = line.replace(r#""event_type":"alert""#, r#""event_type":"drop""#);
        assert!(IdsAlert::from_event(&parse_line(&drop).unwrap(), None, None).is_none());
    }

    #[test]
    fn groups_per_source_and_signature_with_highest_severity_ports_and_times() {
        let mut g = AlertGroups::default();
        for i in 0..5 {
            g.add(&alert(100 + i, "203.0.113.5", 1, 3, 22));
        }
        g.add(&alert(90, "203.0.113.5", 1, 2, 2222));
        g.add(&alert(200, "203.0.113.5", 2, 1, 3389));
        g.add(&alert(150, "198.51.100.7", 1, 3, 22));
        let groups = g.groups();
        assert_eq!(g.alerts(), 8);
        let summary: Vec<(String, u32, u64, u8)> = groups
            .iter()
            .map(|x| (x.source.unwrap().to_string(), x.evidence.signature_id, x.count, x.evidence.severity))
            .collect();
        assert_eq!(
            summary,
            vec![("203.0.113.5".into(), 2, 1, 1), ("203.0.113.5".into(), 1, 6, 2), ("198.51.100.7".into(), 1, 1, 3),]
        );
        let scan = &groups[1];
        assert_eq!(scan.ports, vec![22, 2222]);
        assert_eq!((scan.first_us, scan.last_us), (90_000_000, 104_000_000));
        assert_eq!((scan.evidence.interface.as_deref(), scan.evidence.sensor.as_deref()), (Some("eth1"), Some("ids1")));
        assert_eq!(groups[0].evidence.blocked, 1);
        assert_eq!(g.by_interface(), vec![InterfaceCount { interface: "eth1".into(), alerts: 8 }]);
    }

    #[test]
    fn strength_orders_by_severity_then_count_on_the_threat_score_scale() {
        use crate::detect::block_duration;
        let score = |sev, n| alert_strength(sev, n).round() as u8;
        assert_eq!(block_duration(score(1, 1)), Some("24h"));
        assert_eq!(block_duration(score(1, 100)), Some("7d"));
        assert_eq!(block_duration(score(2, 1)), Some("1h"));
        assert_eq!(block_duration(score(2, 10)), Some("24h"));
        assert_eq!(block_duration(score(3, 1)), None);
        assert_eq!(block_duration(score(3, 10)), Some("1h"));
        assert_eq!(block_duration(score(4, 1_000_000)), Some("1h"));
        assert!(score(1, 1) > score(2, 100) && score(2, 1) > score(3, 1000));
        assert_eq!(
            (severity_label(1), severity_label(2), severity_label(3), severity_label(4)),
            ("critical", "high", "medium", "low")
        );
    }

    #[test]
    fn threshold_is_count_alerts_less_than_a_window_apart() {
        let s = 1_000_000;
        // Exactly a window apart is not within it.
        assert!(threshold_crossing([0, 10 * s], 2, 10 * s).is_none());
        assert_eq!(threshold_crossing([10 * s - 1, 0], 2, 10 * s).unwrap().first_us, 10 * s - 1);
        let times: Vec<i64> = (0..10).map(|i| i * 60 * s).chain((0..6).map(|i| 3600 * s + i * s)).collect();
        let c = threshold_crossing(times.iter().rev().copied(), 5, 60 * s).unwrap();
        assert_eq!(c, Crossing { first_us: 3604 * s, peak: 6, peak_from_us: 3600 * s, peak_to_us: 3605 * s });
        assert!(threshold_crossing(times.clone(), 7, 60 * s).is_none());
        assert!(threshold_crossing(times.clone(), 0, 60 * s).is_none());
        assert!(threshold_crossing(times, 1, 0).is_none());
        assert!(threshold_crossing([], 1, s).is_none());
    }

    #[test]
    fn summary_counts_severities_signatures_sources_and_sensors() {
        let mut g = AlertGroups::default();
        for i in 0..4 {
            g.add(&alert(i, "203.0.113.5", 1, 3, 22));
        }
        g.add(&alert(9, "203.0.113.6", 1, 3, 22));
        g.add(&alert(9, "203.0.113.6", 2, 1, 445));
        let mut events = EventTotals::default();
        events.add(&EventCounts {
            sensor: Some("ids1"),
            interface: Some("wan"),
            first_us: 0,
            last_us: 9_000_000,
            last_stats_us: Some(8_000_000),
            events: vec![("alert", 6), ("flow", 40)],
        });
        let s = IdsSummary::new(&g, &events, 10);
        assert_eq!(s.alerts, 6);
        assert_eq!((s.with_severity(1), s.with_severity(2), s.with_severity(3)), (1, 0, 5));
        assert_eq!(s.by_severity.len(), 3);
        assert_eq!(
            (s.top_signatures[0].signature_id, s.top_signatures[0].alerts, s.top_signatures[0].sources),
            (1, 5, 2)
        );
        assert_eq!((s.top_sources[0].ip.as_str(), s.top_sources[0].alerts), ("203.0.113.5", 4));
        assert_eq!((s.top_sources[1].highest_severity, s.top_sources[1].signatures), (1, 2));
        assert_eq!(s.events["flow"], 40);
        assert_eq!(s.sensors[0].sensor.as_deref(), Some("ids1"));
        assert_eq!(s.sensors[0].last_stats, Some(us_time(8_000_000)));
        assert_eq!(s.sensors[0].events, 46);
    }
}
