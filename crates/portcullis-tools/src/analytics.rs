//! Log analytics tools over each target's log store: `get_traffic_stats`, `analyze_threats`,
//! `generate_security_report`, `get_dashboard_data`, the log-derived alarms, and the lab traffic generator.
//! The numbers come from `portcullis_logs` (rollups, detections, report rendering); this module picks the spans,
//! maps interface devices to names, and shapes the answers. Suricata alerts stored beside each target's log store
//! (`portcullis_logstore::alerts`) are part of the same picture: grouped per source and signature they are
//! `ids_alert` threats, scored on the same scale, and the report and dashboard have an `ids_alerts` section.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use portcullis_core::firewall::{BackendKind, ErrorCode};
use portcullis_core::model::{RuleSet, Timestamp};
use portcullis_core::text::show_invisible;
use portcullis_core::{FieldError, FieldResult};
use portcullis_logs::detect::{self, Finding, ThreatKind, Thresholds};
use portcullis_logs::ids::{self, AlertGroups, IdsSummary};
use portcullis_logs::report::{self, Report};
use portcullis_logs::rollup::{HOUR_MS, Rollup};
use portcullis_logstore::alerts::Stored;
use portcullis_logstore::{IngestStats, LogStore, PullDedup};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::args::{AnalyzeThreatsArgs, ReportArgs, TrafficStatsArgs};
use crate::views::LogGap;
use crate::{CallError, Target, ToolService};

/// Days of history before a window that count for a source's earlier behaviour and the volume baseline.
const HISTORY_DAYS: i64 = 7;
/// Hours over which a source blocked in a shorter window is judged for repeated attacks.
const REPEATED_LOOKBACK_HOURS: i64 = 24;
/// Most buckets a traffic series may have.
const MAX_BUCKETS: i64 = 2000;

fn store_error(e: portcullis_logstore::StoreError) -> CallError {
    CallError::internal(e.to_string())
}

pub(crate) fn span(field: &str, value: &str) -> FieldResult<TimeDelta> {
    let span = portcullis_core::duration::parse_span(field, value)?;
    if span > TimeDelta::days(366) {
        return Err(FieldError::new(field, "at most 366d"));
    }
    Ok(span)
}

fn ms_time(ms: i64) -> Timestamp {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// One bucket of `get_traffic_stats`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TrafficPoint {
    pub timestamp: Timestamp,
    pub bytes: u64,
    pub packets: u64,
    /// Passed lines: pfSense logs the first packet of each connection a logging pass rule lets through.
    pub connections: u64,
    pub blocked: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TrafficStatsResult {
    pub target: String,
    pub timeframe: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Bucket length, e.g. `5m`, `1h`.
    pub granularity: String,
    pub total_bytes: u64,
    pub total_packets: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Average bits per second of the logged traffic over the timeframe (filterlog sees logged packets, not
    /// interface counters).
    pub bandwidth_util: f64,
    /// The busiest bucket, in bits per second.
    pub peak_bps: f64,
    pub blocked: u64,
    pub passed: u64,
    pub data: Vec<TrafficPoint>,
    /// The firewall's own interface counters (every packet, where the figures above count logged lines), with
    /// rates over the timeframe once Portcullis holds a reading from it; absent for a firewall without counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<crate::InterfaceTraffic>>,
    /// Present when the pull of the firewall's own log before this answer could not reach back to the previous
    /// pull: lines logged in between may be missing from the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_gap: Option<LogGap>,
}

/// One detected threat.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ThreatView {
    /// repeated_attack, port_scan, brute_force, unusual_traffic_volume, ids_alert, rate_limited.
    #[serde(rename = "type")]
    pub kind: String,
    /// low, medium, high, critical: from the threat score, and for ids_alert from Suricata's highest severity of
    /// the group (1 critical, 2 high, 3 medium, lower low).
    pub severity: String,
    pub source_ip: String,
    pub attempt_count: u64,
    pub recommendation: String,
    /// The source's adaptive threat score, 0-100 (all its findings, and its history before the window).
    pub threat_score: u8,
    /// ≥80 → 7d, ≥50 → 24h, ≥20 → 1h.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended_block_duration: Option<String>,
    pub ports: Vec<u16>,
    pub detail: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// For ids_alert: the Suricata signature and where it was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<IdsThreat>,
}

/// The Suricata side of an `ids_alert` threat: alerts of one signature from one source.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct IdsThreat {
    pub gid: u32,
    pub signature_id: u32,
    pub signature: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Suricata's highest severity of the group: 1 is the highest.
    pub alert_severity: u8,
    /// Alerts the sensor itself blocked (IPS mode).
    pub blocked_by_sensor: u64,
    /// Distinct destination addresses.
    pub destinations: usize,
    /// The interface with most of the alerts (the source's configured interface, else the sensor's in_iface).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
}

impl ThreatView {
    /// The type in words (`brute force`).
    pub fn kind_label(&self) -> String {
        self.kind.replace('_', " ")
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ThreatsResult {
    pub target: String,
    pub timeframe: String,
    pub data: Vec<ThreatView>,
    /// Threats found (data holds the `limit` highest-scoring).
    pub count: usize,
    /// Lines in the timeframe.
    pub lines_analyzed: u64,
    /// Suricata alerts in the timeframe (grouped per source and signature into ids_alert threats).
    pub ids_alerts_analyzed: u64,
    /// Threats by type.
    pub by_type: BTreeMap<String, usize>,
    /// The countries blocked traffic came from, most first (with a country database installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_blocked_countries: Option<Vec<crate::geo::CountryTraffic>>,
    /// The country database behind `top_blocked_countries`, with its attribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countries: Option<crate::views::CountrySource>,
    /// Present when the pull of the firewall's own log before this answer could not reach back to the previous
    /// pull: lines logged in between may be missing from the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_gap: Option<LogGap>,
}

/// The report's parts at the top level, as BRIEF §2 names them.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReportResult {
    pub target: String,
    pub timeframe: String,
    /// json, markdown or html.
    pub format: String,
    /// Start of the period.
    pub from: Timestamp,
    pub generated_at: Timestamp,
    /// Totals: rules (total, enabled, disabled), log lines, blocked, allowed, traffic.
    pub summary: Value,
    /// Lines per destination `protocol:port`, most blocked first.
    pub security_events: Value,
    /// Sources with most blocked lines.
    pub top_blocked_ips: Value,
    /// Blocked and allowed lines over time.
    pub blocked_over_time: Value,
    /// Lines by action per interface.
    pub actions_by_interface: Value,
    /// Detected threats, highest score first.
    pub threats: Value,
    /// Source countries of blocked lines, most first (empty without a country database).
    pub top_blocked_countries: Value,
    /// The attribution the country data's licence asks for, when countries are shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countries_attribution: Option<String>,
    /// What to do, in sentences.
    pub recommendations: Vec<String>,
    /// The DDoS protections in force, one line each.
    pub ddos_protections: Vec<String>,
    /// Suricata alerts of the period: alerts, by_severity, top_signatures, top_sources, by_interface, events
    /// (eve.json events counted by type), sensors (when each was last heard from).
    pub ids_alerts: Value,
    /// The rendered report for markdown and html.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Present when the pull of the firewall's own log before this answer could not reach back to the previous
    /// pull: lines logged in between may be missing from the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_gap: Option<LogGap>,
}

impl ReportResult {
    fn new(format: &str, report: &Report, content: Option<String>) -> Result<Self, CallError> {
        let mut parts = serde_json::to_value(report).map_err(|e| CallError::internal(e.to_string()))?;
        let mut take = |key: &str| parts.get_mut(key).map(Value::take).unwrap_or(Value::Null);
        Ok(Self {
            target: report.target.clone(),
            timeframe: report.timeframe.clone(),
            format: format.to_string(),
            from: report.from,
            generated_at: report.generated_at,
            summary: take("summary"),
            security_events: take("security_events"),
            top_blocked_ips: take("top_blocked_ips"),
            blocked_over_time: take("blocked_over_time"),
            actions_by_interface: take("actions_by_interface"),
            threats: take("threats"),
            top_blocked_countries: take("top_blocked_countries"),
            countries_attribution: report.countries_attribution.clone(),
            recommendations: report.recommendations.clone(),
            ddos_protections: report.ddos_protections.clone(),
            ids_alerts: take("ids_alerts"),
            content,
            log_gap: None,
        })
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DashboardResult {
    pub target: String,
    pub backend: String,
    /// cpu_usage, memory_usage, uptime, version, health.
    pub system_health: Value,
    /// Rule counts and active blocks.
    pub firewall_status: Value,
    /// The last hour's traffic.
    pub traffic: Value,
    pub vpn: Value,
    pub active_blocks: usize,
    /// Threats of the last hour, highest score first (at most 5).
    pub recent_threats: Vec<ThreatView>,
    /// The last hour's top source countries of blocked traffic (with a country database installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_blocked_countries: Option<Vec<crate::geo::CountryTraffic>>,
    /// The last hour's Suricata alerts: alerts, by_severity, top_signatures, top_sources (at most 5 each),
    /// by_interface, events, sensors.
    pub ids_alerts: Value,
    /// Present when the pull of the firewall's own log before this answer could not reach back to the previous
    /// pull: lines logged in between may be missing from the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_gap: Option<LogGap>,
}

/// Each target's log store, by target name, and how much one pull of a firewall's own log reads.
pub(crate) struct LogStores {
    stores: HashMap<String, Arc<LogStore>>,
    pull_cap: usize,
}

impl Default for LogStores {
    fn default() -> Self {
        Self { stores: HashMap::new(), pull_cap: DEFAULT_LOG_PULL_CAP }
    }
}

/// The addresses a target's managed block lists hold now, to tell whether a source is blocked already.
struct BlockedAddresses {
    hosts: std::collections::HashSet<std::net::IpAddr>,
    networks: Vec<ipnet::IpNet>,
}

impl BlockedAddresses {
    fn of(state: &RuleSet, now: Timestamp) -> Self {
        let mut blocked = Self { hosts: Default::default(), networks: Vec::new() };
        let lists = state.aliases.iter().filter(|a| a.managed.as_deref() == Some(portcullis_core::plan::MANAGED_BLOCK));
        for entry in lists.flat_map(|a| a.entries.iter().filter(|e| e.is_live(now))) {
            match entry.value.parse::<ipnet::IpNet>() {
                Ok(net) if net.prefix_len() == net.max_prefix_len() => {
                    blocked.hosts.insert(net.addr());
                }
                Ok(net) => blocked.networks.push(net),
                Err(_) => {
                    if let Ok(ip) = entry.value.parse() {
                        blocked.hosts.insert(ip);
                    }
                }
            }
        }
        blocked
    }

    fn holds(&self, source: &str) -> bool {
        source.parse().is_ok_and(|ip| self.hosts.contains(&ip) || self.networks.iter().any(|n| n.contains(&ip)))
    }
}

/// `get_dashboard_data`: one call's overview of a target.
pub(crate) struct Dashboard;

impl ToolService {
    /// Gives each target its log store (targets without one answer log tools with an error).
    pub fn with_log_stores(mut self, stores: HashMap<String, Arc<LogStore>>) -> Self {
        self.logs.stores = stores;
        self
    }

    pub fn log_store(&self, target: &str) -> Option<&Arc<LogStore>> {
        self.logs.stores.get(target)
    }

    pub(crate) fn store_of(&self, target: &Target) -> Result<&Arc<LogStore>, CallError> {
        self.logs.stores.get(&target.name).ok_or_else(|| {
            CallError::new(ErrorCode::NotFound, format!("target {} has no log store", target.name))
                .with_hint("log tools need the data directory's log store; check the configuration")
        })
    }

    /// The most lines one pull of a firewall's own log reads (default [`DEFAULT_LOG_PULL_CAP`]).
    pub fn with_log_pull_cap(mut self, lines: usize) -> Self {
        self.logs.pull_cap = lines.max(1);
        self
    }

    /// Brings the store up to date with what the firewall itself reports (pfSense: its log endpoint), before a
    /// question is answered: pages back from the newest line until the lines of the previous pull, so a burst
    /// between two questions is stored whole up to the cap, and a pull that hits the cap says so. The lab's
    /// lines arrive by `lab traffic` and syslog only.
    pub(crate) async fn sync_logs(&self, target: &Target) -> Result<Option<LogGap>, CallError> {
        let store = self.store_of(target)?;
        if target.firewall.info().kind == BackendKind::Lab {
            return Ok(None);
        }
        // Two pulls of one target at once would both store what is new since the same previous pull.
        let _pulling = target.log_pull.lock().await;
        let page = crate::logs::LINES_PER_QUERY;
        let cap = if target.firewall.pages_firewall_log() { self.logs.pull_cap } else { page };
        let mut dedup = PullDedup::load(store, "firewall").map_err(store_error)?;
        let mut pull = dedup.start(page, cap);
        while let Some(skip) = pull.next_skip() {
            let lines = target.firewall.firewall_log_page(skip, pull.page_size()).await?;
            pull.add_older_page(lines);
        }
        let stats = dedup.ingest(store, pull, Utc::now()).map_err(store_error)?;
        store.flush().map_err(store_error)?;
        Ok(log_gap(&target.name, &stats, cap))
    }

    /// `portcullis lab traffic`: generated traffic through the lab target's rule set, stored as filterlog lines.
    pub async fn generate_lab_traffic(
        &self,
        options: &portcullis_lab::traffic::TrafficOptions,
    ) -> Result<IngestStats, CallError> {
        let target = self
            .targets
            .iter()
            .find(|t| t.firewall.info().kind == BackendKind::Lab)
            .ok_or_else(|| CallError::internal("no lab target"))?;
        let state = target.firewall.snapshot().await?;
        let lines = portcullis_lab::traffic::generate(&state, options, "pfsense.lab");
        let store = self.store_of(target)?;
        let stats = store.ingest_lines(lines.iter().map(String::as_str), options.end).map_err(store_error)?;
        store.flush().map_err(store_error)?;
        Ok(stats)
    }

    pub(crate) fn traffic_stats(
        &self,
        target: &Target,
        state: &RuleSet,
        a: &TrafficStatsArgs,
        now: Timestamp,
    ) -> Result<TrafficStatsResult, CallError> {
        let store = self.store_of(target)?;
        let window = span("timeframe", &a.timeframe)?;
        let granularity = match &a.granularity {
            Some(g) => span("granularity", g)?,
            None => default_granularity(window),
        };
        if granularity < TimeDelta::minutes(1) {
            return Err(FieldError::new("granularity", "at least 1m").into());
        }
        if window.num_milliseconds() / granularity.num_milliseconds() > MAX_BUCKETS {
            return Err(FieldError::new("granularity", format!("too fine: more than {MAX_BUCKETS} buckets")).into());
        }
        for m in a.metrics.iter().flatten() {
            if !["bytes", "packets", "connections", "blocked", "bandwidth"].contains(&m.as_str()) {
                return Err(FieldError::new(
                    "metrics",
                    format!("unknown metric {m:?}; use bytes, packets, connections, blocked, bandwidth"),
                )
                .into());
            }
        }
        let interface = a.interface.as_deref().map(|i| state.resolve_interface("interface", i)).transpose()?;
        // A device the store never saw has no lines.
        let iface_id = interface.map(|i| store.known_interface_id(&i.device).unwrap_or(u16::MAX));
        let (from, to) = ((now - window).timestamp_millis(), now.timestamp_millis() + 1);
        let rollup = store.traffic_rollup(from, to).map_err(store_error)?;
        let step = granularity.num_milliseconds();
        let series = rollup.series(step, iface_id);
        let mut data = Vec::new();
        let mut bucket = from.div_euclid(step) * step;
        let mut peak: u64 = 0;
        while bucket < to {
            let b = series.get(&bucket).copied().unwrap_or_default();
            peak = peak.max(b.bytes());
            data.push(TrafficPoint {
                timestamp: ms_time(bucket),
                bytes: b.bytes(),
                packets: b.packets(),
                connections: b.actions[0],
                blocked: b.actions[1] + b.actions[2],
            });
            bucket += step;
        }
        let t = rollup.traffic(iface_id);
        let seconds = window.num_seconds().max(1) as f64;
        Ok(TrafficStatsResult {
            target: target.name.clone(),
            timeframe: a.timeframe.clone(),
            interface: interface.map(|i| i.name.clone()),
            granularity: human_span(granularity),
            total_bytes: t.bytes(),
            total_packets: t.packets(),
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            packets_in: t.packets_in,
            packets_out: t.packets_out,
            bandwidth_util: round2(t.bytes() as f64 * 8.0 / seconds),
            peak_bps: round2(peak as f64 * 8.0 / (step as f64 / 1000.0)),
            blocked: t.actions[1] + t.actions[2],
            passed: t.actions[0],
            data,
            interfaces: None,
            log_gap: None,
        })
    }

    /// The `limit` highest-scoring threats of `[now - window, now]` on one target, and what was analysed.
    pub(crate) fn threats(
        &self,
        target: &Target,
        window: TimeDelta,
        now: Timestamp,
        limit: usize,
    ) -> Result<(Vec<ThreatView>, ThreatTotals), CallError> {
        let store = self.store_of(target)?;
        let rollup =
            store.rollup((now - window).timestamp_millis(), now.timestamp_millis() + 1).map_err(store_error)?;
        let (views, mut totals) = threats_in(store, &rollup, window, now, limit)?;
        totals.lines = rollup.records;
        totals.countries = self.geo.get().map(|db| crate::geo::top_blocked_countries(&rollup, &db, TOP_COUNTRIES));
        Ok((views, totals))
    }

    pub(crate) fn analyze_threats(
        &self,
        target: &Target,
        a: &AnalyzeThreatsArgs,
        now: Timestamp,
    ) -> Result<ThreatsResult, CallError> {
        let window = span("timeframe", &a.timeframe)?;
        let limit = a.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(FieldError::new("limit", "must be 1-1000").into());
        }
        let (data, totals) = self.threats(target, window, now, limit as usize)?;
        Ok(ThreatsResult {
            target: target.name.clone(),
            timeframe: a.timeframe.clone(),
            count: totals.findings,
            data,
            lines_analyzed: totals.lines,
            ids_alerts_analyzed: totals.ids.alerts,
            by_type: totals.by_type,
            top_blocked_countries: totals.countries,
            countries: self.geo.get().map(|db| crate::geo::source_of(&db)),
            log_gap: None,
        })
    }

    pub(crate) fn security_report(
        &self,
        target: &Target,
        state: &RuleSet,
        a: &ReportArgs,
        now: Timestamp,
    ) -> Result<ReportResult, CallError> {
        let format = a.format.as_deref().unwrap_or("json");
        if !["json", "markdown", "html"].contains(&format) {
            return Err(FieldError::new("format", "must be json, markdown or html").into());
        }
        let window = span("timeframe", &a.timeframe)?;
        let store = self.store_of(target)?;
        let (from, to) = ((now - window).timestamp_millis(), now.timestamp_millis() + 1);
        let rollup = store.rollup(from, to).map_err(store_error)?;
        let (threats, totals) = threats_in(store, &rollup, window, now, REPORT_THREATS)?;
        let disabled: Vec<String> = state
            .rules
            .iter()
            .filter(|r| !r.enabled || r.paused_until.is_some_and(|p| p > now))
            .map(|r| if r.description.is_empty() { r.rule_id.0.clone() } else { r.description.clone() })
            .collect();
        let mut report = build_report(&target.name, &a.timeframe, now, window, &rollup, state, store, &threats);
        report.ids_alerts = totals.ids;
        if let Some(db) = self.geo.get() {
            report.top_blocked_countries = crate::geo::top_blocked_countries(&rollup, &db, TOP_COUNTRIES)
                .into_iter()
                .map(|c| report::CountryBlocked { country: c.country, blocked: c.blocked })
                .collect();
            report.countries_attribution = Some(db.info().attribution.clone());
        }
        report.summary.rules_total = state.rules.len();
        report.summary.rules_disabled = disabled.len();
        report.summary.rules_enabled = state.rules.len() - disabled.len();
        let blocked = BlockedAddresses::of(state, now);
        report.recommendations = report::recommendations(&report, &disabled, |ip| blocked.holds(ip));
        let content = match format {
            "markdown" => Some(report::markdown(&report)),
            "html" => Some(report::html(&report)),
            _ => None,
        };
        ReportResult::new(format, &report, content)
    }

    pub(crate) async fn dashboard(
        &self,
        target: &Target,
        state: &RuleSet,
        now: Timestamp,
    ) -> Result<DashboardResult, CallError> {
        let status = target.firewall.system_status().await?;
        let vpn = match target.firewall.vpn_status(None).await {
            Ok(v) => serde_json::json!({
                "connections": v.connections.len(),
                "connections_up": v.connections.iter().filter(|c| c.status.eq_ignore_ascii_case("up")).count(),
                "users": v.users.len(),
            }),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
        let blocks = crate::reads::blocks(&target.name, state, None, now)?;
        let stats_args = TrafficStatsArgs {
            interface: None,
            timeframe: "1h".into(),
            metrics: None,
            granularity: Some("5m".into()),
            target: None,
        };
        let traffic = self.traffic_stats(target, state, &stats_args, now)?;
        let (threats, mut totals) = self.threats(target, TimeDelta::hours(1), now, 5)?;
        shorten(&mut totals.ids, DASHBOARD_TOP);
        let enabled = state.rules.iter().filter(|r| r.enabled && r.paused_until.is_none_or(|p| p <= now)).count();
        Ok(DashboardResult {
            target: target.name.clone(),
            backend: format!("{:?}", target.firewall.info().kind).to_ascii_lowercase(),
            system_health: serde_json::to_value(&status).map_err(|e| CallError::internal(e.to_string()))?,
            firewall_status: serde_json::json!({
                "rules_total": state.rules.len(),
                "rules_enabled": enabled,
                "interfaces": state.interfaces.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
                "active_blocks": blocks.count,
            }),
            traffic: serde_json::json!({
                "timeframe": "1h",
                "total_packets": traffic.total_packets,
                "total_bytes": traffic.total_bytes,
                "blocked": traffic.blocked,
                "passed": traffic.passed,
                "bandwidth_util": traffic.bandwidth_util,
                "data": traffic.data,
            }),
            vpn,
            active_blocks: blocks.count,
            recent_threats: threats,
            top_blocked_countries: totals.countries,
            ids_alerts: serde_json::to_value(&totals.ids).map_err(|e| CallError::internal(e.to_string()))?,
            log_gap: None,
        })
    }
}

/// How many countries answers list.
const TOP_COUNTRIES: usize = 10;

/// The most lines one pull of a firewall's log reads by default: 20 pages of 5,000.
pub const DEFAULT_LOG_PULL_CAP: usize = 100_000;

/// A pull that did not meet the previous one, logged and described for the answer.
fn log_gap(target: &str, stats: &IngestStats, cap: usize) -> Option<LogGap> {
    if stats.gaps == 0 {
        return None;
    }
    tracing::warn!(
        target_name = target,
        lines_read = stats.lines,
        stored = stats.stored,
        cap,
        "the firewall log pull did not reach the previous pull: lines logged in between may be missing"
    );
    Some(LogGap {
        lines_read: stats.lines,
        cap: cap as u64,
        warning: format!(
            "read {} lines back from the newest without meeting the lines the previous pull read (at most {cap} \
             are read per pull, and the firewall may have rotated or cleared its log): lines logged between the \
             two pulls may be missing",
            stats.lines
        ),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn default_granularity(window: TimeDelta) -> TimeDelta {
    if window <= TimeDelta::hours(1) {
        TimeDelta::minutes(5)
    } else if window <= TimeDelta::hours(6) {
        TimeDelta::minutes(15)
    } else if window <= TimeDelta::days(2) {
        TimeDelta::hours(1)
    } else if window <= TimeDelta::days(14) {
        TimeDelta::hours(6)
    } else {
        TimeDelta::days(1)
    }
}

pub(crate) fn human_span(d: TimeDelta) -> String {
    let m = d.num_minutes();
    if m % 1440 == 0 {
        format!("{}d", m / 1440)
    } else if m % 60 == 0 {
        format!("{}h", m / 60)
    } else {
        format!("{m}m")
    }
}

/// A repeated attack is blocked again and again over hours, so a window shorter than that sees only its latest
/// hour: the sources blocked in the window are judged on the last [`REPEATED_LOOKBACK_HOURS`] instead.
fn repeated_over_lookback(
    store: &LogStore,
    rollup: &Rollup,
    findings: &[Finding],
    to: i64,
    t: &Thresholds,
) -> Result<Vec<Finding>, CallError> {
    let known = |ip: &IpAddr| findings.iter().any(|f| f.kind == ThreatKind::RepeatedAttack && f.source == *ip);
    let blocked: Vec<IpAddr> =
        rollup.sources.iter().filter(|(ip, s)| s.denied() > 0 && !known(ip)).map(|(ip, _)| *ip).collect();
    if blocked.is_empty() {
        return Ok(Vec::new());
    }
    let lookback = store.sources_rollup(to - REPEATED_LOOKBACK_HOURS * HOUR_MS, to, &blocked).map_err(store_error)?;
    let mut found: Vec<Finding> = lookback
        .into_iter()
        .filter(|(_, s)| s.denied() >= t.repeated_blocks && s.hours_active >= t.repeated_hours)
        .map(|(ip, s)| Finding {
            kind: ThreatKind::RepeatedAttack,
            source: ip,
            attempt_count: s.denied(),
            ports: Vec::new(),
            detail: format!(
                "{} blocked lines over {} hours of the last {REPEATED_LOOKBACK_HOURS} h, still active in this window",
                s.denied(),
                s.hours_active
            ),
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            ids: None,
        })
        .collect();
    found.sort_by_key(|f| f.source);
    Ok(found)
}

/// Detections over a window's rollup, plus volume against the hour-of-day baseline, scored with each flagged
/// source's history in the week before the window.
pub(crate) fn threats_in(
    store: &LogStore,
    rollup: &Rollup,
    window: TimeDelta,
    now: Timestamp,
    limit: usize,
) -> Result<(Vec<ThreatView>, ThreatTotals), CallError> {
    let (from, to) = ((now - window).timestamp_millis(), now.timestamp_millis() + 1);
    let t = Thresholds::default();
    let mut findings = detect::source_findings(rollup, &t);
    if window < TimeDelta::hours(REPEATED_LOOKBACK_HOURS) {
        let repeated = repeated_over_lookback(store, rollup, &findings, to, &t)?;
        findings.extend(repeated);
    }
    let history_from = from - HISTORY_DAYS * 24 * HOUR_MS;
    let hours = store.hourly_counts(history_from, to).map_err(store_error)?;
    for anomaly in detect::volume_anomalies(&hours, from, to, now.timestamp_millis(), &t) {
        let hour = store.rollup(anomaly.hour_ms, anomaly.hour_ms + HOUR_MS).map_err(store_error)?;
        let Some((ip, s)) = hour.sources.iter().max_by_key(|(ip, s)| (s.total(), std::cmp::Reverse(**ip))) else {
            continue;
        };
        let detail = format!(
            "{} lines in the hour from {} against a baseline of {:.0} ± {:.0} for that hour of day; {} of them from this source",
            anomaly.lines,
            ms_time(anomaly.hour_ms).format("%Y-%m-%d %H:00"),
            anomaly.baseline_mean,
            anomaly.baseline_stddev,
            s.total()
        );
        // A spike across an hour boundary is one finding.
        if let Some(f) = findings.iter_mut().find(|f| f.kind == ThreatKind::UnusualTrafficVolume && f.source == *ip) {
            f.attempt_count += s.total();
            f.detail = format!("{}; {detail}", f.detail);
            f.first_ms = f.first_ms.min(s.first_ms);
            f.last_ms = f.last_ms.max(s.last_ms);
            continue;
        }
        findings.push(Finding {
            kind: ThreatKind::UnusualTrafficVolume,
            source: *ip,
            attempt_count: s.total(),
            ports: Vec::new(),
            detail,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            ids: None,
        });
    }
    let (ids_findings, ids) = ids_findings(store, from, to)?;
    findings.extend(ids_findings);
    let mut totals = ThreatTotals { findings: findings.len(), ids, ..Default::default() };
    for f in &findings {
        *totals.by_type.entry(f.kind.as_str().to_string()).or_insert(0) += 1;
    }
    // Score every flagged source on the window alone, then look up the week before only for the strongest
    // candidates: history adds at most 25 points, and on a busy firewall thousands of sources are flagged.
    let mut by_source: BTreeMap<IpAddr, Vec<&Finding>> = BTreeMap::new();
    for f in &findings {
        by_source.entry(f.source).or_default().push(f);
    }
    let mut ranked: Vec<(IpAddr, Vec<&Finding>, u8)> = by_source
        .into_iter()
        .map(|(ip, fs)| {
            let s = detect::threat_score(&fs, 0);
            (ip, fs, s)
        })
        .collect();
    ranked.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    ranked.truncate(limit.saturating_mul(2) + 50);
    let candidates: Vec<IpAddr> = ranked.iter().map(|r| r.0).collect();
    let earlier = store.sources_rollup(history_from, from, &candidates).map_err(store_error)?;
    let mut views = score(ranked, &earlier);
    views.truncate(limit);
    Ok((views, totals))
}

/// Threats kept in a report.
const REPORT_THREATS: usize = 25;
/// Signatures and sources the report's `ids_alerts` lists.
const REPORT_IDS_TOP: usize = 10;
/// ... and the dashboard's.
const DASHBOARD_TOP: usize = 5;

/// Keeps the `top` first signatures and sources of a summary.
fn shorten(ids: &mut IdsSummary, top: usize) {
    ids.top_signatures.truncate(top);
    ids.top_sources.truncate(top);
}

/// The Suricata alerts of `[from, to)` grouped per source and signature, as findings of type `ids_alert` (alerts
/// without a source address are counted in the summary only), and the summary of the period.
fn ids_findings(store: &LogStore, from: i64, to: i64) -> Result<(Vec<Finding>, IdsSummary), CallError> {
    let mut groups = AlertGroups::default();
    let mut events = ids::EventTotals::default();
    store
        .alerts()
        .visit(from, to, |s| match s {
            Stored::Alert(a) => groups.add(a),
            Stored::Counts(c) => events.add(c),
        })
        .map_err(store_error)?;
    let summary = IdsSummary::new(&groups, &events, REPORT_IDS_TOP);
    let findings = groups
        .groups()
        .into_iter()
        .filter_map(|g| {
            let source = g.source?;
            let e = &g.evidence;
            let ports = if g.ports.is_empty() { String::new() } else { format!(" on ports {:?}", g.ports) };
            let detail = format!(
                "{} Suricata alert(s) of \"{}\" (sid {}:{}{}, severity {}) to {} destination(s){ports}{}{}",
                g.count,
                show_invisible(&e.signature),
                e.gid,
                e.signature_id,
                e.category.as_deref().map(|c| format!(", {}", show_invisible(c))).unwrap_or_default(),
                e.severity,
                e.destinations,
                e.interface.as_deref().map(|i| format!(" on {}", show_invisible(i))).unwrap_or_default(),
                if e.blocked > 0 { format!("; {} blocked by the sensor", e.blocked) } else { String::new() },
            );
            Some(Finding {
                kind: ThreatKind::IdsAlert,
                source,
                attempt_count: g.count,
                ports: g.ports,
                detail,
                first_ms: g.first_us.div_euclid(1000),
                last_ms: g.last_us.div_euclid(1000),
                ids: Some(g.evidence),
            })
        })
        .collect();
    Ok((findings, summary))
}

/// What a threat analysis looked at and found in all (the views are the strongest `limit`).
#[derive(Debug, Default)]
pub(crate) struct ThreatTotals {
    pub lines: u64,
    pub findings: usize,
    pub by_type: BTreeMap<String, usize>,
    /// Top source countries of blocked lines, where a country database is installed.
    pub countries: Option<Vec<crate::geo::CountryTraffic>>,
    /// The Suricata alerts of the window.
    pub ids: IdsSummary,
}

/// Scores each source with its history and makes one view per finding, highest score first.
fn score(
    sources: Vec<(IpAddr, Vec<&Finding>, u8)>,
    earlier: &HashMap<IpAddr, portcullis_logs::rollup::SourceStat>,
) -> Vec<ThreatView> {
    let mut out = Vec::new();
    for (ip, fs, _) in sources {
        let prior = earlier.get(&ip).map_or(0, |s| s.denied());
        let score = detect::threat_score(&fs, prior);
        let duration = detect::block_duration(score);
        for f in fs {
            let reason = match &f.ids {
                Some(e) => format!("ids alert sid {}", e.signature_id),
                None => f.kind.as_str().replace('_', " "),
            };
            let recommendation = match duration {
                Some(d) => format!(
                    "block_ip_address ip_address={ip} duration={d} reason=\"{reason}\"{}",
                    if prior > 0 { format!(" (seen denied {prior} times in the week before)") } else { String::new() }
                ),
                None => "watch: below the score that calls for a block".into(),
            };
            let severity = match &f.ids {
                Some(e) => ids::severity_label(e.severity),
                None => detect::severity(score),
            };
            out.push(ThreatView {
                kind: f.kind.as_str().to_string(),
                severity: severity.to_string(),
                source_ip: ip.to_string(),
                attempt_count: f.attempt_count,
                recommendation,
                threat_score: score,
                recommended_block_duration: duration.map(str::to_string),
                ports: f.ports.clone(),
                detail: f.detail.clone(),
                first_seen: ms_time(f.first_ms),
                last_seen: ms_time(f.last_ms),
                ids: f.ids.as_ref().map(|e| IdsThreat {
                    gid: e.gid,
                    signature_id: e.signature_id,
                    signature: show_invisible(&e.signature).into_owned(),
                    category: e.category.as_deref().map(|c| show_invisible(c).into_owned()),
                    alert_severity: e.severity,
                    blocked_by_sensor: e.blocked,
                    destinations: e.destinations,
                    interface: e.interface.as_deref().map(|i| show_invisible(i).into_owned()),
                    sensor: e.sensor.as_deref().map(|i| show_invisible(i).into_owned()),
                }),
            });
        }
    }
    out.sort_by(|a, b| {
        let sid = |t: &ThreatView| t.ids.as_ref().map(|i| (i.alert_severity, i.gid, i.signature_id));
        b.threat_score
            .cmp(&a.threat_score)
            .then(a.source_ip.cmp(&b.source_ip))
            .then(a.kind.cmp(&b.kind))
            .then(sid(a).cmp(&sid(b)))
    });
    out
}

fn interface_name(state: &RuleSet, device: &str) -> String {
    state.interfaces.iter().find(|i| i.device == device).map_or_else(|| device.to_string(), |i| i.name.clone())
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    target: &str,
    timeframe: &str,
    now: Timestamp,
    window: TimeDelta,
    rollup: &Rollup,
    state: &RuleSet,
    store: &LogStore,
    threats: &[ThreatView],
) -> Report {
    let traffic = rollup.traffic(None);
    let step = default_granularity(window).num_milliseconds();
    let from = (now - window).timestamp_millis();
    let series = rollup.series(step, None);
    let mut blocked_over_time = Vec::new();
    let mut bucket = from.div_euclid(step) * step;
    while bucket <= now.timestamp_millis() {
        let b = series.get(&bucket).copied().unwrap_or_default();
        blocked_over_time.push(report::TimePoint {
            timestamp: ms_time(bucket),
            blocked: b.actions[1] + b.actions[2],
            allowed: b.actions[0],
        });
        bucket += step;
    }
    let mut events: Vec<report::PortEvents> = rollup
        .ports
        .iter()
        .map(|(k, c)| report::PortEvents {
            port: format!("{}:{}", portcullis_logs::compact::protocol_name(k.protocol, false), k.port),
            blocked: c[1] + c[2],
            allowed: c[0],
        })
        .collect();
    events.sort_by(|a, b| b.blocked.cmp(&a.blocked).then(b.allowed.cmp(&a.allowed)).then(a.port.cmp(&b.port)));
    events.truncate(25);
    let mut seen = std::collections::HashSet::new();
    Report {
        target: target.to_string(),
        timeframe: timeframe.to_string(),
        from: now - window,
        generated_at: now,
        summary: report::Summary {
            log_lines: rollup.records,
            blocked: rollup.denied(),
            allowed: rollup.actions[0],
            total_bytes: traffic.bytes(),
            bytes_in: traffic.bytes_in,
            bytes_out: traffic.bytes_out,
            ..Default::default()
        },
        security_events: events,
        top_blocked_ips: rollup
            .top_denied_sources(10)
            .into_iter()
            .map(|(ip, s)| report::BlockedSource {
                ip: ip.to_string(),
                blocked: s.denied(),
                distinct_ports: s.blocked_ports.len(),
            })
            .collect(),
        blocked_over_time,
        actions_by_interface: rollup
            .actions_by_interface()
            .into_iter()
            .map(|(id, c)| report::InterfaceActions {
                interface: interface_name(state, &store.device(id)),
                pass: c[0],
                block: c[1],
                reject: c[2],
            })
            .collect(),
        threats: threats
            .iter()
            .filter(|t| seen.insert((t.source_ip.clone(), t.kind.clone(), t.ids.as_ref().map(|i| i.signature_id))))
            .take(25)
            .map(|t| report::ReportThreat {
                kind: t.kind.clone(),
                severity: t.severity.clone(),
                source_ip: t.source_ip.clone(),
                attempt_count: t.attempt_count,
                threat_score: t.threat_score,
                recommended_block: t.recommended_block_duration.clone(),
            })
            .collect(),
        top_blocked_countries: Vec::new(),
        countries_attribution: None,
        recommendations: Vec::new(),
        ddos_protections: state.protections.iter().map(|p| p.describe()).collect(),
        ids_alerts: IdsSummary::default(),
    }
}
