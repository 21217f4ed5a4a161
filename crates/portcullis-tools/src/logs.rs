//! `query_firewall_logs`: the target's own filterlog lines, parsed, linked to interfaces by device, filtered
//! and returned newest first.

use chrono::Datelike;
use ipnet::IpNet;
use portcullis_core::model::{Action, Protocol, RuleSet, Timestamp, parse_net};
use portcullis_core::{FieldError, FieldResult};
use portcullis_logs::parse_line;

use crate::args::{QueryLogsArgs, simulate_port};
use crate::views::{LogEntryView, LogsResult};

/// Raw lines read from the firewall per query: enough for a page after filtering on a busy firewall.
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
                .map(|i| state.resolve_interface("interface", i).map(|x| x.name.clone()))
                .transpose()?,
            limit: limit as usize,
            offset,
        })
    }
}

/// Filters raw lines (oldest first, as firewalls write them) into a page of entries, newest first.
pub fn query(target: &str, lines: &[String], state: &RuleSet, q: &LogQuery, now: Timestamp) -> LogsResult {
    let mut malformed = 0;
    let mut matched = Vec::new();
    for line in lines.iter().rev() {
        let entry = match parse_line(line) {
            Ok(e) => e,
            Err(_) => {
                malformed += 1;
                continue;
            }
        };
        let view = to_view(&entry, state, now);
        if keep(q, &entry, &view) {
            matched.push(view);
        }
    }
    matched.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
    let total = matched.len();
    let data: Vec<LogEntryView> = matched.into_iter().skip(q.offset).take(q.limit).collect();
    let next = q.offset + data.len();
    LogsResult {
        target: target.to_string(),
        count: data.len(),
        data,
        next_cursor: (next < total).then(|| next.to_string()),
        lines_read: lines.len(),
        lines_malformed: malformed,
    }
}

fn to_view(e: &portcullis_logs::FilterLogEntry<'_>, state: &RuleSet, now: Timestamp) -> LogEntryView {
    let interface = state
        .interfaces
        .iter()
        .find(|i| i.device == e.interface)
        .map_or_else(|| e.interface.to_string(), |i| i.name.clone());
    let r = e.to_record_at(now.year(), now);
    LogEntryView {
        timestamp: e.timestamp(now.year(), now),
        interface,
        action: r.action,
        direction: r.direction,
        protocol: r.protocol,
        src_ip: r.src_ip,
        src_port: r.src_port,
        dst_ip: r.dst_ip,
        dst_port: r.dst_port,
        rule_id: r.rule_id,
        length: r.length,
    }
}

fn keep(q: &LogQuery, e: &portcullis_logs::FilterLogEntry<'_>, v: &LogEntryView) -> bool {
    let is_v6 = e.src.is_ipv6();
    v.timestamp.is_none_or(|t| t >= q.since)
        && q.action.is_none_or(|a| a.as_str() == v.action)
        && q.source.is_none_or(|n| n.contains(&e.src))
        && q.destination.is_none_or(|n| n.contains(&e.dst))
        && q.destination_port.is_none_or(|p| e.dst_port() == Some(p))
        && q.protocol.is_none_or(|p| p.matches(e.protocol_id, is_v6))
        && q.interface.as_ref().is_none_or(|i| &v.interface == i)
}
