//! Generated traffic for the lab: packets decided by the lab's own rule set with the core evaluator, logged as
//! real filterlog lines, so that a newcomer sees log analytics and detections without a pfSense.
//!
//! The `default` scenario is three days of ordinary use (LAN clients browsing and resolving names, with a day's
//! rhythm, and scattered internet background noise on the WAN), a host that tries RDP a few times every hour,
//! and, in the last hour before `now`, an SSH brute force, a port scan and a volume spike.

use std::net::{IpAddr, Ipv4Addr};

use chrono::{TimeDelta, Timelike};
use portcullis_core::eval::{CompiledRuleSet, Decision};
use portcullis_core::model::{Direction, Packet, RuleSet, Timestamp};
use portcullis_logs::format::{LoggedPacket, filterlog_line};
use portcullis_logs::{Action as LogAction, Direction as LogDirection};

/// pfSense's trackers for its implicit rules.
const DEFAULT_DENY_TRACKER: u64 = 1_000_000_103;
const DEFAULT_PASS_OUT_TRACKER: u64 = 1_000_000_105;

/// The attackers of the default scenario (documentation addresses).
pub const BRUTE_FORCER: &str = "203.0.113.50";
/// See [`BRUTE_FORCER`].
pub const SCANNER: &str = "203.0.113.77";
/// See [`BRUTE_FORCER`].
pub const FLOODER: &str = "192.0.2.200";
/// See [`BRUTE_FORCER`].
pub const PERSISTENT_RDP: &str = "203.0.113.9";
/// The LAN clients of the default scenario: 192.168.1.10 to 192.168.1.39.
pub const LAN_CLIENTS: std::ops::Range<u8> = 10..40;

/// A traffic scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// History, background noise and the three attacks in the last hour.
    Default,
    /// Only ordinary use and noise (no attacks), for comparisons.
    Normal,
}

impl Scenario {
    /// `default` or `normal`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "default" => Some(Scenario::Default),
            "normal" => Some(Scenario::Normal),
            _ => None,
        }
    }
}

/// Options of a run.
#[derive(Debug, Clone, Copy)]
pub struct TrafficOptions {
    /// Which scenario.
    pub scenario: Scenario,
    /// The random seed (same seed, same packets).
    pub seed: u64,
    /// The last line is just before this.
    pub end: Timestamp,
    /// Days of history before the last hour.
    pub days: u32,
    /// Ordinary lines per hour at the busiest time of day.
    pub peak_per_hour: u32,
}

/// Deterministic pseudo-random numbers (SplitMix64) from a seed: reproducible runs without a dependency.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

struct Flow {
    at: Timestamp,
    interface: &'static str,
    protocol: u8,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    length: u32,
}

const WEB: [Ipv4Addr; 6] = [
    Ipv4Addr::new(93, 184, 216, 34),
    Ipv4Addr::new(142, 250, 74, 46),
    Ipv4Addr::new(151, 101, 1, 69),
    Ipv4Addr::new(140, 82, 121, 4),
    Ipv4Addr::new(104, 16, 132, 229),
    Ipv4Addr::new(13, 107, 42, 14),
];

/// How busy an hour of the day is, 0.2 at night to 1.0 in the afternoon.
fn day_rhythm(hour: u32) -> f64 {
    match hour {
        0..=5 => 0.2,
        6..=7 => 0.4,
        8..=11 => 0.9,
        12..=17 => 1.0,
        18..=21 => 0.6,
        _ => 0.3,
    }
}

fn at(start: Timestamp, rng: &mut Rng, span_ms: i64) -> Timestamp {
    start + TimeDelta::milliseconds(rng.below(span_ms.max(1) as u64) as i64)
}

fn generate_flows(o: &TrafficOptions, wan: IpAddr) -> Vec<Flow> {
    let mut rng = Rng(o.seed);
    let mut flows = Vec::new();
    let hours = i64::from(o.days) * 24 + 1;
    let first_hour = o.end - TimeDelta::hours(hours);
    for h in 0..hours {
        let start = first_hour + TimeDelta::hours(h);
        let busy = day_rhythm(start.hour());
        let ordinary = (f64::from(o.peak_per_hour) * busy * (0.9 + 0.2 * (rng.below(100) as f64 / 100.0))) as u64;
        for _ in 0..ordinary {
            let client = IpAddr::V4(Ipv4Addr::new(192, 168, 1, LAN_CLIENTS.start + rng.below(30) as u8));
            let (protocol, dst, dst_port, length) = match rng.below(10) {
                0..=5 => (6, IpAddr::V4(WEB[rng.below(6) as usize]), 443, 60),
                6 => (6, IpAddr::V4(WEB[rng.below(6) as usize]), 80, 60),
                7 => (17, IpAddr::V4(WEB[rng.below(6) as usize]), 443, 1250),
                _ => (17, IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)), 53, 72),
            };
            let src_port = 32768 + rng.below(28000) as u16;
            flows.push(Flow {
                at: at(start, &mut rng, 3_600_000),
                interface: "lan",
                protocol,
                src: client,
                dst,
                src_port,
                dst_port,
                length,
            });
        }
        // Internet background noise: many sources, each seen once or twice, on common ports.
        for _ in 0..(20 + rng.below(20)) {
            let src = IpAddr::V4(Ipv4Addr::new(198, 18, rng.below(256) as u8, rng.below(256) as u8));
            let dst_port = [23u16, 80, 443, 8080, 123, 1900, 5060, 8443][rng.below(8) as usize];
            let protocol = if dst_port == 123 || dst_port == 1900 || dst_port == 5060 { 17 } else { 6 };
            flows.push(Flow {
                at: at(start, &mut rng, 3_600_000),
                interface: "wan",
                protocol,
                src,
                dst: wan,
                src_port: 1024 + rng.below(60000) as u16,
                dst_port,
                length: 60,
            });
        }
        if o.scenario == Scenario::Default {
            for _ in 0..(3 + rng.below(4)) {
                let src = PERSISTENT_RDP.parse().unwrap_or(wan);
                flows.push(Flow {
                    at: at(start, &mut rng, 3_600_000),
                    interface: "wan",
                    protocol: 6,
                    src,
                    dst: wan,
                    src_port: 1024 + rng.below(60000) as u16,
                    dst_port: 3389,
                    length: 52,
                });
            }
        }
    }
    if o.scenario == Scenario::Default {
        let last_hour = o.end - TimeDelta::hours(1);
        let tcp = |flows: &mut Vec<Flow>, rng: &mut Rng, src: &str, dst_port: u16, window_ms: i64| {
            let src = src.parse().unwrap_or(wan);
            flows.push(Flow {
                at: at(last_hour, rng, window_ms),
                interface: "wan",
                protocol: 6,
                src,
                dst: wan,
                src_port: 1024 + rng.below(60000) as u16,
                dst_port,
                length: 60,
            });
        };
        for _ in 0..300 {
            tcp(&mut flows, &mut rng, BRUTE_FORCER, 22, 3_500_000);
        }
        for port in 1..=250u16 {
            tcp(&mut flows, &mut rng, SCANNER, port * 4 - 3, 3_500_000);
        }
        let flooder: IpAddr = FLOODER.parse().unwrap_or(wan);
        for _ in 0..6000 {
            flows.push(Flow {
                at: at(last_hour, &mut rng, 3_500_000),
                interface: "wan",
                protocol: 17,
                src: flooder,
                dst: wan,
                src_port: 1024 + rng.below(60000) as u16,
                dst_port: 123,
                length: 468,
            });
        }
    }
    flows.retain(|f| f.at < o.end);
    flows.sort_by_key(|f| f.at);
    flows
}

/// The filterlog lines of a scenario against `rules`, oldest first. `host` is the syslog host name.
pub fn generate(rules: &RuleSet, o: &TrafficOptions, host: &str) -> Vec<String> {
    let compiled = CompiledRuleSet::compile(rules, o.end);
    let wan = rules
        .interfaces
        .iter()
        .find(|i| i.name == "wan")
        .and_then(|i| i.ipv4)
        .map_or(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)), |n| n.addr());
    let mut lines = Vec::new();
    for (n, f) in generate_flows(o, wan).into_iter().enumerate() {
        let Some(iface) = rules.interfaces.iter().find(|i| i.name == f.interface) else { continue };
        let packet = Packet {
            interface: f.interface.to_string(),
            direction: Direction::In,
            protocol: f.protocol,
            source: f.src,
            destination: f.dst,
            source_port: Some(f.src_port),
            destination_port: Some(f.dst_port),
        };
        let Ok(verdict) = compiled.evaluate(&packet) else { continue };
        let (rule_number, tracker) = match verdict.decision {
            Decision::Rule(i) => {
                (i as u32 + 10, rules.rules.get(i).and_then(|r| r.rule_id.0.parse().ok()).unwrap_or(0))
            }
            Decision::DefaultDeny => (5, DEFAULT_DENY_TRACKER),
            Decision::DefaultPassOut => (6, DEFAULT_PASS_OUT_TRACKER),
        };
        let action = match verdict.action {
            portcullis_core::model::Action::Pass => LogAction::Pass,
            portcullis_core::model::Action::Block => LogAction::Block,
            portcullis_core::model::Action::Reject => LogAction::Reject,
        };
        lines.push(filterlog_line(&LoggedPacket {
            time: f.at,
            host,
            rule_number,
            tracker,
            device: &iface.device,
            action,
            direction: LogDirection::In,
            protocol: f.protocol,
            src: f.src,
            dst: f.dst,
            src_port: f.src_port,
            dst_port: f.dst_port,
            length: f.length,
            id: n as u32,
        }));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{default_interfaces, fresh_install, lab_interfaces};

    #[test]
    fn lines_are_real_filterlog_decided_by_the_lab_rules() {
        let now = chrono::Utc::now();
        let interfaces = lab_interfaces(&default_interfaces());
        let state = fresh_install(&interfaces, now);
        let rules = RuleSet {
            interfaces,
            rules: state.rules,
            aliases: state.aliases,
            protections: state.protections,
            mirrors: state.mirrors,
            vpn_accounts: Vec::new(),
        };
        let o = TrafficOptions { scenario: Scenario::Default, seed: 7, end: now, days: 1, peak_per_hour: 100 };
        let lines = generate(&rules, &o, "lab");
        assert_eq!(lines, generate(&rules, &o, "lab"), "same seed, same lines");
        let entries: Vec<_> = lines.iter().map(|l| portcullis_logs::parse_line(l).unwrap()).collect();
        let ssh: Vec<_> = entries.iter().filter(|e| e.src.to_string() == BRUTE_FORCER).collect();
        assert_eq!(ssh.len(), 300);
        assert!(ssh.iter().all(|e| e.action == LogAction::Block && e.tracker == Some(DEFAULT_DENY_TRACKER)));
        assert!(ssh.iter().all(|e| e.interface == "em0"));
        let lan: Vec<_> = entries.iter().filter(|e| e.interface == "em1").collect();
        assert!(!lan.is_empty() && lan.iter().all(|e| e.action == LogAction::Pass), "default allow LAN passes");
        let allow_lan = rules.rules.iter().find(|r| r.description.starts_with("Default allow LAN to")).unwrap();
        assert!(lan.iter().all(|e| e.tracker.map(|t| t.to_string()) == Some(allow_lan.rule_id.0.clone())));
        let last = entries.iter().filter_map(|e| e.timestamp(2026, now)).max().unwrap();
        assert!(last <= now && last > now - TimeDelta::minutes(5));
    }
}
