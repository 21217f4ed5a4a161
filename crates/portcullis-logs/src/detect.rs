//! Detections over rollups, and the adaptive threat score that maps to a block duration. Pure functions: the
//! store supplies the rollups, the tools turn findings into answers and (opt-in) blocks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::ids::{IdsEvidence, alert_strength};
use crate::rollup::{HOUR_MS, Rollup, SourceStat};

/// Thresholds of the detections (per analysed window).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Distinct blocked destination ports from one source that make a port scan.
    pub scan_ports: usize,
    /// Lines to sensitive ports (22, 3389, 445, ...) from one source that make brute force.
    pub brute_force_attempts: u64,
    /// Blocked lines from one source, seen in at least `repeated_hours` hours, that make a repeated attack.
    pub repeated_blocks: u64,
    /// See `repeated_blocks`.
    pub repeated_hours: u32,
    /// An hour is unusual when its lines exceed the same hour-of-day's mean by this many standard deviations...
    pub volume_sigmas: f64,
    /// ...and this factor of the mean...
    pub volume_factor: f64,
    /// ...and this many lines.
    pub volume_min_lines: u64,
    /// Days of history needed before volume is judged.
    pub baseline_min_days: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            scan_ports: 20,
            brute_force_attempts: 20,
            repeated_blocks: 50,
            repeated_hours: 3,
            volume_sigmas: 3.0,
            volume_factor: 2.0,
            volume_min_lines: 200,
            baseline_min_days: 2,
        }
    }
}

/// The kinds of threat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreatKind {
    /// Many distinct ports probed.
    PortScan,
    /// Many attempts on login/file-sharing/database ports.
    BruteForce,
    /// Blocked again and again, over hours.
    RepeatedAttack,
    /// More lines in an hour than that hour of day usually has.
    UnusualTrafficVolume,
    /// Suricata alerts of one signature from the source ([`crate::ids`]).
    IdsAlert,
}

impl ThreatKind {
    /// The name used in tool output.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreatKind::PortScan => "port_scan",
            ThreatKind::BruteForce => "brute_force",
            ThreatKind::RepeatedAttack => "repeated_attack",
            ThreatKind::UnusualTrafficVolume => "unusual_traffic_volume",
            ThreatKind::IdsAlert => "ids_alert",
        }
    }
}

/// One finding about one source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: ThreatKind,
    /// The source address.
    pub source: IpAddr,
    /// The lines that make the finding (attempts, blocked lines, the hour's lines).
    pub attempt_count: u64,
    /// Ports involved, most relevant first (at most 10).
    pub ports: Vec<u16>,
    /// The evidence in words.
    pub detail: String,
    /// First and last line of the source in the window (ms).
    pub first_ms: i64,
    /// Last line (ms).
    pub last_ms: i64,
    /// For [`ThreatKind::IdsAlert`]: the signature, its severity and where it was seen.
    pub ids: Option<IdsEvidence>,
}

/// Source findings (scans, brute force, repeated attacks) in a window's rollup.
pub fn source_findings(window: &Rollup, t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut sources: Vec<(&IpAddr, &SourceStat)> = window.sources.iter().collect();
    sources.sort_by_key(|(ip, _)| **ip);
    for (ip, s) in sources {
        let finding = |kind, attempt_count, ports: Vec<u16>, detail: String| Finding {
            kind,
            source: *ip,
            attempt_count,
            ports,
            detail,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            ids: None,
        };
        if s.blocked_ports.len() >= t.scan_ports {
            let ports: Vec<u16> = s.blocked_ports.iter().take(10).collect();
            let detail = if s.blocked_ports.is_full() {
                format!("{} or more distinct ports probed and blocked", s.blocked_ports.len())
            } else {
                format!("{} distinct ports probed and blocked", s.blocked_ports.len())
            };
            out.push(finding(ThreatKind::PortScan, s.denied(), ports, detail));
        }
        let sensitive = s.sensitive_total();
        if sensitive >= t.brute_force_attempts {
            let mut ports: Vec<(u16, u64)> = s.sensitive_ports().collect();
            ports.sort_by_key(|p| std::cmp::Reverse(p.1));
            let detail = ports.iter().map(|(p, n)| format!("{n} attempts on port {p}")).collect::<Vec<_>>().join(", ");
            out.push(finding(ThreatKind::BruteForce, sensitive, ports.iter().map(|p| p.0).collect(), detail));
        }
        if s.denied() >= t.repeated_blocks && s.hours_active >= t.repeated_hours {
            let detail = format!("{} blocked lines over {} hours", s.denied(), s.hours_active);
            out.push(finding(ThreatKind::RepeatedAttack, s.denied(), Vec::new(), detail));
        }
    }
    out
}

/// An hour with more lines than its hour-of-day baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeAnomaly {
    /// Hour start (ms).
    pub hour_ms: i64,
    /// Lines in the hour.
    pub lines: u64,
    /// Mean lines of the same hour of day in the history.
    pub baseline_mean: f64,
    /// Their standard deviation.
    pub baseline_stddev: f64,
}

/// Hours of `[from_ms, to_ms)` whose line count is far above the same hour of day in the earlier days of
/// `hours` (line counts per hour start). `now_ms` marks the current hour, whose count is scaled to a full hour
/// once a quarter of it has passed (a partial hour is not compared).
pub fn volume_anomalies(
    hours: &BTreeMap<i64, u64>,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
    t: &Thresholds,
) -> Vec<VolumeAnomaly> {
    let first_hour = from_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let mut out = Vec::new();
    let mut hour = first_hour;
    while hour < to_ms {
        let lines = hours.get(&hour).copied().unwrap_or(0);
        let elapsed = (now_ms - hour).clamp(0, HOUR_MS);
        let judged = if elapsed >= HOUR_MS {
            Some(lines as f64)
        } else if elapsed >= HOUR_MS / 4 {
            Some(lines as f64 * HOUR_MS as f64 / elapsed as f64)
        } else {
            None
        };
        let history: Vec<f64> =
            (1..=7).filter_map(|d| hours.get(&(hour - d * 24 * HOUR_MS)).map(|n| *n as f64)).collect();
        if let Some(rate) = judged
            && history.len() >= t.baseline_min_days
            && lines >= t.volume_min_lines
        {
            let mean = history.iter().sum::<f64>() / history.len() as f64;
            let var = history.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / history.len() as f64;
            let sd = var.sqrt();
            if rate > mean + t.volume_sigmas * sd && rate > mean * t.volume_factor {
                out.push(VolumeAnomaly { hour_ms: hour, lines, baseline_mean: mean, baseline_stddev: sd });
            }
        }
        hour += HOUR_MS;
    }
    out
}

/// The adaptive threat score of a source, 0–100: the strongest finding by its evidence, more for several kinds at
/// once, more again for a source that was already denied before the window (`prior_denied`).
pub fn threat_score(findings: &[&Finding], prior_denied: u64) -> u8 {
    let strength = |f: &Finding| -> f64 {
        let n = (f.attempt_count.max(1)) as f64;
        match f.kind {
            ThreatKind::BruteForce => 30.0 + 10.0 * n.log10(),
            ThreatKind::PortScan => 25.0 + 10.0 * (f.ports.len().max(1) as f64).log10() + 5.0 * n.log10(),
            ThreatKind::RepeatedAttack => 20.0 + 8.0 * n.log10(),
            ThreatKind::UnusualTrafficVolume => 25.0 + 6.0 * n.log10(),
            // Suricata's severity decides; a finding without one counts as severity 3.
            ThreatKind::IdsAlert => alert_strength(f.ids.as_ref().map_or(3, |e| e.severity), f.attempt_count),
        }
    };
    let best = findings.iter().map(|f| strength(f)).fold(0.0, f64::max);
    let mut kinds: Vec<ThreatKind> = findings.iter().map(|f| f.kind).collect();
    kinds.sort();
    kinds.dedup();
    let several = 10.0 * kinds.len().saturating_sub(1) as f64;
    let history = if prior_denied == 0 { 0.0 } else { (5.0 * (1.0 + prior_denied as f64).log2()).min(25.0) };
    (best + several + history).round().clamp(0.0, 100.0) as u8
}

/// The block a score calls for: ≥80 → 7d, ≥50 → 24h, ≥20 → 1h, else none.
pub fn block_duration(score: u8) -> Option<&'static str> {
    match score {
        80.. => Some("7d"),
        50.. => Some("24h"),
        20.. => Some("1h"),
        _ => None,
    }
}

/// critical ≥80, high ≥50, medium ≥20, low below.
pub fn severity(score: u8) -> &'static str {
    match score {
        80.. => "critical",
        50.. => "high",
        20.. => "medium",
        _ => "low",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::test_record as rec;
    use crate::entry::Action;

    #[test]
    fn finds_scanner_and_brute_forcer_and_not_normal_hosts() {
        let mut recs = Vec::new();
        for i in 0..200 {
            recs.push(rec(i, "203.0.113.50", 22, Action::Block));
            recs.push(rec(i, "203.0.113.77", 1 + i as u16, Action::Block));
            recs.push(rec(i, "192.168.1.10", 443, Action::Pass));
        }
        for i in 0..5 {
            recs.push(rec(i, "192.168.1.11", 22, Action::Pass));
        }
        let mut r = Rollup::default();
        recs.iter().for_each(|x| r.fold(x));
        let f = source_findings(&r, &Thresholds::default());
        let kinds: Vec<(String, ThreatKind)> = f.iter().map(|f| (f.source.to_string(), f.kind)).collect();
        assert_eq!(
            kinds,
            vec![("203.0.113.50".into(), ThreatKind::BruteForce), ("203.0.113.77".into(), ThreatKind::PortScan)]
        );
        assert_eq!(f[0].attempt_count, 200);
        assert_eq!(f[0].ports, vec![22]);
    }

    #[test]
    fn volume_against_hour_of_day_baseline() {
        let day = 24 * HOUR_MS;
        let mut hours = BTreeMap::new();
        for d in 1..=3 {
            hours.insert(10 * HOUR_MS + d * day, 1000 + d as u64 * 10);
            hours.insert(11 * HOUR_MS + d * day, 5000);
        }
        hours.insert(10 * HOUR_MS + 4 * day, 6000);
        hours.insert(11 * HOUR_MS + 4 * day, 5100);
        let t = Thresholds::default();
        let now = 12 * HOUR_MS + 4 * day;
        let found = volume_anomalies(&hours, 10 * HOUR_MS + 4 * day, now, now, &t);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].hour_ms, 10 * HOUR_MS + 4 * day);
        // Without two days of history nothing is judged.
        let short: BTreeMap<i64, u64> = hours.iter().filter(|(h, _)| **h > 3 * day).map(|(h, n)| (*h, *n)).collect();
        assert!(volume_anomalies(&short, 10 * HOUR_MS + 4 * day, now, now, &t).is_empty());
    }

    #[test]
    fn score_rises_with_evidence_kinds_and_history_and_maps_to_durations() {
        let f = |kind, n| Finding {
            kind,
            source: "203.0.113.1".parse().unwrap(),
            attempt_count: n,
            ports: vec![22],
            detail: String::new(),
            first_ms: 0,
            last_ms: 0,
            ids: None,
        };
        let (small, big) = (f(ThreatKind::BruteForce, 20), f(ThreatKind::BruteForce, 2000));
        let repeated = f(ThreatKind::RepeatedAttack, 2000);
        let s_small = threat_score(&[&small], 0);
        let s_big = threat_score(&[&big], 0);
        let s_two = threat_score(&[&big, &repeated], 0);
        let s_hist = threat_score(&[&big, &repeated], 500);
        assert!(s_small < s_big && s_big < s_two && s_two < s_hist, "{s_small} {s_big} {s_two} {s_hist}");
        assert_eq!(block_duration(s_small), Some("1h"));
        assert_eq!(block_duration(s_big), Some("24h"));
        assert_eq!(block_duration(s_hist), Some("7d"));
        assert_eq!(block_duration(19), None);
        assert_eq!((severity(80), severity(50), severity(20), severity(0)), ("critical", "high", "medium", "low"));
    }
}
