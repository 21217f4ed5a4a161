//! The log tools: answers from a target's log store, pulled up to date from the firewall first.

use portcullis_core::model::Timestamp;
use portcullis_guard::{Category, Level};

use async_trait::async_trait;
use portcullis_core::model::RuleSet;

use crate::analytics::{DashboardResult, ReportResult, ThreatsResult, TrafficStatsResult};
use crate::args::*;
use crate::catalogue::{Decl, Tool, ToolKind::*};
use crate::logs::LogQuery;
use crate::views::*;
use crate::work::{LogAnswer, LogJob, LogScope, Work};
use crate::{CallError, analytics, logs};

pub(crate) struct QueryFirewallLogs;

impl Tool for QueryFirewallLogs {
    type Args = QueryLogsArgs;
    type Output = LogsResult;
    const DECL: Decl = Decl {
        name: "query_firewall_logs",
        title: "Firewall logs",
        operation: "read_logs",
        kind: Read,
        category: Category::Analytics,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Firewall log entries, newest first: timestamp, interface, action, direction, protocol, source and \
         destination with ports, the rule_id (tracker) that logged them, length. Filters: timeframe (15m, 1h, \
         24h, 7d), action, source_ip (address or CIDR), destination_ip, destination_port, protocol, interface.",
    };

    fn route(a: QueryLogsArgs, _now: Timestamp) -> Result<Work<LogsResult>, CallError> {
        Ok(Work::log_read(a.target.clone(), LogsJob::new(a)))
    }
}

pub(crate) struct GetTrafficStats;

impl Tool for GetTrafficStats {
    type Args = TrafficStatsArgs;
    type Output = TrafficStatsResult;
    const DECL: Decl = Decl {
        name: "get_traffic_stats",
        title: "Traffic statistics",
        operation: "read_logs",
        kind: Read,
        category: Category::Analytics,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Traffic from the firewall log: total_bytes, total_packets, bytes_in/out, packets_in/out, bandwidth_util \
         (average bits/s) and data: [{timestamp, bytes, packets, connections, blocked}] per granularity bucket. \
         Filters: timeframe (1h, 24h, 7d), interface.",
    };

    fn route(a: TrafficStatsArgs, _now: Timestamp) -> Result<Work<TrafficStatsResult>, CallError> {
        Ok(Work::log_read(a.target.clone(), a))
    }
}

pub(crate) struct AnalyzeThreats;

impl Tool for AnalyzeThreats {
    type Args = AnalyzeThreatsArgs;
    type Output = ThreatsResult;
    const DECL: Decl = Decl {
        name: "analyze_threats",
        title: "Analyze threats",
        operation: "read_logs",
        kind: Read,
        category: Category::Analytics,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "Detect threats in the firewall log of a timeframe: port scans, brute force on sensitive ports (22, \
         3389, 445, ...), repeated attacks, traffic volume above the hour-of-day baseline. Each has type, \
         severity, source_ip, attempt_count, an adaptive threat_score (0-100) with the block duration it calls \
         for (>=80 7d, >=50 24h, >=20 1h) and a recommendation.",
    };

    fn route(a: AnalyzeThreatsArgs, _now: Timestamp) -> Result<Work<ThreatsResult>, CallError> {
        Ok(Work::log_read(a.target.clone(), a))
    }
}

pub(crate) struct GenerateSecurityReport;

impl Tool for GenerateSecurityReport {
    type Args = ReportArgs;
    type Output = ReportResult;
    const DECL: Decl = Decl {
        name: "generate_security_report",
        title: "Security report",
        operation: "read_logs",
        kind: Read,
        category: Category::Analytics,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "A security report for a timeframe: summary (rules, log lines, blocked, allowed, traffic), security \
         events by protocol:port, top blocked IPs, threats and recommendations. format: json (default), \
         markdown, or html (standalone page with charts: blocked over time, top sources, top ports, actions by \
         interface).",
    };

    fn route(a: ReportArgs, _now: Timestamp) -> Result<Work<ReportResult>, CallError> {
        Ok(Work::log_read(a.target.clone(), a))
    }
}

pub(crate) struct GetDashboardData;

impl Tool for GetDashboardData {
    type Args = TargetArg;
    type Output = DashboardResult;
    const DECL: Decl = Decl {
        name: "get_dashboard_data",
        title: "Dashboard",
        operation: "read_logs",
        kind: Read,
        category: Category::Analytics,
        level: Level::Read,
        destructive: false,
        idempotent: true,
        description: "One-call overview: system health, firewall status (rules, interfaces), the last hour's traffic, VPN, \
         active blocks and recent threats.",
    };

    fn route(a: TargetArg, _now: Timestamp) -> Result<Work<DashboardResult>, CallError> {
        Ok(Work::log_read(a.target, analytics::Dashboard))
    }
}

/// `query_firewall_logs`: its filters are checked against the firewall's interfaces before the pull.
pub(crate) struct LogsJob {
    args: QueryLogsArgs,
    query: Option<LogQuery>,
}

impl LogsJob {
    fn new(args: QueryLogsArgs) -> Self {
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
        let query = self.query.ok_or_else(|| CallError::internal("log query not prepared"))?;
        logs::query(&at.target.name, at.svc.store_of(at.target)?, at.state, &query, at.now)
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
        at.svc.analyze_threats(at.target, &self, at.now)
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
impl LogJob for analytics::Dashboard {
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
