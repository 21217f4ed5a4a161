//! `query_firewall_logs`: the target's filterlog lines from its log store (fed by syslog, files, the lab traffic
//! generator, and for pfSense targets the pfRest log endpoint, pulled before each question), filtered and
//! returned newest first, a page at a time.

use async_trait::async_trait;
use ipnet::IpNet;
use portcullis_core::geo::CountryCode;
use portcullis_core::model::{Action, Protocol, RuleSet, Timestamp, parse_net};
use portcullis_core::{FieldError, FieldResult};
use portcullis_geo::CountryDb;
use portcullis_logs::compact::{Record, protocol_name};
use portcullis_logstore::LogStore;

use crate::CallError;
use crate::analytics::{self, Dashboard, DashboardResult, ReportResult, ThreatsResult, TrafficStatsResult};
use crate::args::{AnalyzeThreatsArgs, QueryLogsArgs, ReportArgs, TrafficStatsArgs, simulate_port};
use crate::views::{LogEntryView, LogGap, LogsResult};
use crate::work::{LogAnswer, LogJob, LogScope};

/// Lines read from a firewall's own log endpoint per pull: enough for a page after filtering on a busy firewall.
pub const LINES_PER_QUERY: usize = 5000;
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The filters of a query, validated.
pub struct LogQuery {
    since: Timestamp,
    action: Option<Action>,
    source: Option<IpNet>,
    destination: Option<IpNet>,
    destination_port: Option<u16>,
    protocol: Option<Protocol>,
    interface: Option<String>,
    /// Entries whose source or destination is in this country.
    country: Option<CountryCode>,
    limit: usize,
    offset: usize,
}

impl LogQuery {
    pub fn parse(a: &QueryLogsArgs, state: &RuleSet, now: Timestamp) -> FieldResult<Self> {
        let limit = a.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(FieldError::new("limit", format!("must be 1-{MAX_LIMIT}")));
        }
        let offset = match &a.cursor {
            Some(c) => c.parse().map_err(|_| FieldError::new("cursor", "not a cursor from a previous answer"))?,
            None => 0,
        };
        Ok(Self {
            since: now - portcullis_core::duration::parse_span("timeframe", &a.timeframe)?,
            action: a.action.as_deref().map(|v| Action::parse("action", v)).transpose()?,
            source: a.source_ip.as_deref().map(|v| parse_net("source_ip", v)).transpose()?,
            destination: a.destination_ip.as_deref().map(|v| parse_net("destination_ip", v)).transpose()?,
            destination_port: simulate_port("destination_port", &a.destination_port)?,
            protocol: a.protocol.as_deref().map(|v| Protocol::parse("protocol", v)).transpose()?,
            interface: a
                .interface
                .as_deref()
                .map(|i| state.resolve_interface("interface", i).map(|x| x.device.clone()))
                .transpose()?,
            country: a.country.as_deref().map(|c| CountryCode::parse("country", c)).transpose()?,
            limit: limit as usize,
            offset,
        })
    }
}

/// A page of the store's entries that match, newest first.
pub fn query(
    target: &str,
    store: &LogStore,
    state: &RuleSet,
    q: &LogQuery,
    countries: Option<&CountryDb>,
    now: Timestamp,
) -> Result<LogsResult, CallError> {
    let country_of = |ip: std::net::IpAddr| countries.and_then(|db| db.lookup(ip).ok().flatten());
    // A device the store never saw has no lines.
    let interface = q.interface.as_ref().map(|device| store.known_interface_id(device).unwrap_or(u16::MAX));
    let keep = |r: &Record| {
        q.action.is_none_or(|a| a.as_str() == r.action.as_str())
            && q.source.is_none_or(|n| n.contains(&r.src))
            && q.destination.is_none_or(|n| n.contains(&r.dst))
            && q.destination_port.is_none_or(|p| r.dst_port == Some(p))
            && q.protocol.is_none_or(|p| p.matches(r.protocol, r.src.is_ipv6()))
            && interface.is_none_or(|i| r.interface == i)
            && q.country.is_none_or(|c| country_of(r.src) == Some(c) || country_of(r.dst) == Some(c))
    };
    let page = store
        .query(q.since.timestamp_millis(), now.timestamp_millis() + 1, q.offset, q.limit, keep)
        .map_err(|e| CallError::internal(e.to_string()))?;
    let data: Vec<LogEntryView> = page
        .records
        .iter()
        .map(|r| LogEntryView {
            src_country: country_of(r.src).map(|c| c.to_string()),
            dst_country: country_of(r.dst).map(|c| c.to_string()),
            ..to_view(r, store, state)
        })
        .collect();
    let next = q.offset + data.len();
    Ok(LogsResult {
        target: target.to_string(),
        count: data.len(),
        data,
        next_cursor: page.more.then(|| next.to_string()),
        lines_read: page.scanned as usize,
        lines_malformed: 0,
        log_gap: None,
        countries: countries.map(crate::geo::source_of),
    })
}

fn to_view(r: &Record, store: &LogStore, state: &RuleSet) -> LogEntryView {
    let device = store.device(r.interface);
    let interface = state.interfaces.iter().find(|i| i.device == device).map_or(device, |i| i.name.clone());
    LogEntryView {
        timestamp: Some(r.time()),
        interface,
        action: r.action.as_str().to_string(),
        direction: r.direction.as_str().to_string(),
        protocol: protocol_name(r.protocol, r.src.is_ipv6()),
        src_ip: r.src.to_string(),
        src_port: r.src_port,
        dst_ip: r.dst.to_string(),
        dst_port: r.dst_port.map(|p| p.to_string()),
        rule_id: r.tracker.map(|t| t.to_string()),
        length: r.length,
        src_country: None,
        dst_country: None,
    }
}

/// `query_firewall_logs`: its filters are checked against the firewall's interfaces before the pull.
pub(crate) struct LogsJob {
    args: QueryLogsArgs,
    query: Option<LogQuery>,
}

impl LogsJob {
    pub(crate) fn new(args: QueryLogsArgs) -> Self {
        Self { args, query: None }
    }
}

#[async_trait]
impl LogJob for LogsJob {
    type Output = LogsResult;
    fn prepare(&mut self, state: &RuleSet, now: Timestamp) -> Result<(), CallError> {
        self.query = Some(LogQuery::parse(&self.args, state, now)?);
        Ok(())
    }
    async fn answer(self, at: &LogScope<'_>) -> Result<LogsResult, CallError> {
        let prepared = self.query.ok_or_else(|| CallError::internal("log query not prepared"))?;
        let countries = match prepared.country {
            // A country filter needs the database; countries in the entries are only shown where there is one.
            Some(_) => Some(at.svc.country_db()?),
            None => at.svc.geo.get(),
        };
        query(&at.target.name, at.svc.store_of(at.target)?, at.state, &prepared, countries.as_deref(), at.now)
    }
}

/// `get_traffic_stats`: the log's figures, and the firewall's own interface counters over the same timeframe.
#[async_trait]
impl LogJob for TrafficStatsArgs {
    type Output = TrafficStatsResult;
    async fn answer(self, at: &LogScope<'_>) -> Result<TrafficStatsResult, CallError> {
        let mut r = at.svc.traffic_stats(at.target, at.state, &self, at.now)?;
        let from = (at.now - analytics::span("timeframe", &self.timeframe)?).timestamp_millis();
        r.interfaces = at.svc.link_traffic(at.target, from).await.map(|mut links| {
            links.retain(|l| r.interface.as_ref().is_none_or(|i| &l.counters.interface == i));
            links
        });
        Ok(r)
    }
}

#[async_trait]
impl LogJob for AnalyzeThreatsArgs {
    type Output = ThreatsResult;
    async fn answer(self, at: &LogScope<'_>) -> Result<ThreatsResult, CallError> {
        let mut result = at.svc.analyze_threats(at.target, &self, at.now)?;
        let limited = crate::ddos::overloaded_sources(at.target, at.state).await;
        crate::ddos::add_rate_limited(&mut result, limited, at.now);
        Ok(result)
    }
}

#[async_trait]
impl LogJob for ReportArgs {
    type Output = ReportResult;
    async fn answer(self, at: &LogScope<'_>) -> Result<ReportResult, CallError> {
        at.svc.security_report(at.target, at.state, &self, at.now)
    }
}

#[async_trait]
impl LogJob for Dashboard {
    type Output = DashboardResult;
    async fn answer(self, at: &LogScope<'_>) -> Result<DashboardResult, CallError> {
        at.svc.dashboard(at.target, at.state, at.now).await
    }
}

macro_rules! log_answers {
    ($($answer:ty),*) => {$(
        impl LogAnswer for $answer {
            fn set_log_gap(&mut self, gap: Option<LogGap>) {
                self.log_gap = gap;
            }
        }
    )*};
}

log_answers!(LogsResult, TrafficStatsResult, ThreatsResult, ReportResult, DashboardResult);
