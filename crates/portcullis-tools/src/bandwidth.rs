//! `get_bandwidth_usage {timeframe, interface?, limit?}`: the devices that sent and received the most.
//!
//! The figures come from what the target counts (`Firewall::address_counters`), and the answer says which:
//! - counters that only grow (nftables' accounting table): the traffic of the timeframe is the reading now minus
//!   the last reading at or before its start; readings are kept in memory (each call and `serve`'s minute sampler
//!   add one), and a table made within the timeframe counts from zero (`bandwidth_since:<target>` in the store).
//!   Without such a reading the figure covers less (or more) than the timeframe, and `complete` says so;
//! - pf's current states (pfSense): what open connections carried, whatever the timeframe;
//! - the firewall log (the lab's generated traffic, or a target that counts nothing): the logged packets' lengths.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::TimeDelta;
use portcullis_core::device::{inside_networks, is_inside};
use portcullis_core::firewall::{AddressCounters, AddressTraffic, TrafficTally};
use portcullis_core::model::Timestamp;
use schemars::JsonSchema;
use serde::Serialize;

use crate::work::{ReadJob, ReadScope};
use crate::{CallError, Target, ToolService, now};

/// The most readings kept per target.
const MAX_READINGS: usize = 600;

/// One reading of a target's counters.
type Reading = (Timestamp, Vec<AddressTraffic>);

/// Readings of cumulative counters, per target, oldest first.
#[derive(Default)]
pub(crate) struct BandwidthHistory(Mutex<HashMap<String, VecDeque<Reading>>>);

impl BandwidthHistory {
    fn record(&self, target: &str, at: Timestamp, rows: &[AddressTraffic]) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let readings = all.entry(target.to_string()).or_default();
        readings.push_back((at, rows.to_vec()));
        while readings.len() > MAX_READINGS {
            readings.pop_front();
        }
    }

    /// The last reading at or before `start`, else the first after it.
    fn baseline(&self, target: &str, start: Timestamp) -> Option<(Timestamp, Vec<AddressTraffic>, bool)> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let readings = all.get(target)?;
        if let Some((at, rows)) = readings.iter().rev().find(|(at, _)| *at <= start) {
            return Some((*at, rows.clone(), true));
        }
        readings.front().map(|(at, rows)| (*at, rows.clone(), false))
    }
}

/// One device's traffic in the answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BandwidthRow {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Bytes the device received (downloaded).
    pub bytes_in: u64,
    /// Bytes it sent (uploaded).
    pub bytes_out: u64,
    pub total_bytes: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// `get_bandwidth_usage`'s answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BandwidthResult {
    pub target: String,
    pub timeframe: String,
    pub data: Vec<BandwidthRow>,
    pub count: usize,
    /// Where the figures come from.
    pub source: String,
    /// What they miss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misses: Option<String>,
    /// From when the figures count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_from: Option<Timestamp>,
    /// Whether they cover exactly the timeframe.
    pub complete: bool,
}

/// The read behind `get_bandwidth_usage`.
pub(crate) struct BandwidthRead {
    pub timeframe: String,
    pub span: TimeDelta,
    pub interface: Option<String>,
    pub limit: usize,
}

fn since_key(target: &str) -> String {
    format!("bandwidth_since:{target}")
}

/// `now - then` per address (an address whose counter fell was counted again from zero: its reading stands).
fn difference(now: &[AddressTraffic], then: &[AddressTraffic]) -> Vec<AddressTraffic> {
    let before: HashMap<IpAddr, &AddressTraffic> = then.iter().map(|r| (r.address, r)).collect();
    now.iter()
        .map(|r| match before.get(&r.address) {
            Some(b) if b.bytes_sent <= r.bytes_sent && b.bytes_received <= r.bytes_received => AddressTraffic {
                address: r.address,
                bytes_sent: r.bytes_sent - b.bytes_sent,
                bytes_received: r.bytes_received - b.bytes_received,
                packets_sent: r.packets_sent.saturating_sub(b.packets_sent),
                packets_received: r.packets_received.saturating_sub(b.packets_received),
            },
            _ => r.clone(),
        })
        .collect()
}

impl ToolService {
    /// Takes a reading of every target with cumulative counters (for `serve`'s minute sampler).
    pub(crate) async fn sample_bandwidth(&self, target: &Target) {
        if let Ok(Some(c)) = target.firewall.address_counters().await
            && c.cumulative
        {
            self.note_counting(&target.name, &c);
            self.bandwidth.record(&target.name, now(), &c.rows);
        }
    }

    fn note_counting(&self, target: &str, c: &AddressCounters) {
        if c.started_now {
            let store = self.guard.auditor.store();
            if let Err(e) = store.meta_set(&since_key(target), &now().to_rfc3339()) {
                tracing::warn!(target, "bandwidth accounting start not recorded: {e}");
            }
        }
    }

    fn counting_since(&self, target: &str) -> Option<Timestamp> {
        let text = self.guard.auditor.store().meta_get(&since_key(target)).ok()??;
        chrono::DateTime::parse_from_rfc3339(&text).ok().map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The timeframe's traffic per address from the log: the logged packets' lengths.
    fn logged_traffic(
        &self,
        target: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<Vec<AddressTraffic>>, CallError> {
        let Some(logs) = self.log_store(target) else { return Ok(None) };
        let mut tally = TrafficTally::default();
        logs.query(from.timestamp_millis(), to.timestamp_millis() + 1, 0, 0, |r| {
            tally.sent(r.src, u64::from(r.length), 1);
            tally.received(r.dst, u64::from(r.length), 1);
            false
        })
        .map_err(|e| CallError::internal(format!("the log store does not read: {e}")))?;
        Ok(Some(tally.into_rows()))
    }
}

#[async_trait]
impl ReadJob for BandwidthRead {
    type Output = BandwidthResult;

    async fn read(self, at: &ReadScope<'_>) -> Result<BandwidthResult, CallError> {
        let svc = at.svc;
        let target = &at.target.name;
        let now = now();
        let start = now - self.span;
        let outline = at.target.firewall.outline().await?;
        let interface = match &self.interface {
            Some(name) => Some(outline.resolve_interface("interface", name)?.name.clone()),
            None => None,
        };
        let (rows, source, misses, measured_from, complete) = match at.target.firewall.address_counters().await? {
            Some(c) if c.cumulative => {
                svc.note_counting(target, &c);
                let since = svc.counting_since(target);
                let baseline = svc.bandwidth.baseline(target, start);
                svc.bandwidth.record(target, now, &c.rows);
                match (baseline, since) {
                    (Some((_, rows, true)), _) => (difference(&c.rows, &rows), c.source, c.misses, Some(start), true),
                    (_, Some(since)) if since >= start => (c.rows, c.source, c.misses, Some(since), true),
                    (Some((at, rows, false)), _) => (difference(&c.rows, &rows), c.source, c.misses, Some(at), false),
                    (None, since) => (c.rows, c.source, c.misses, since, false),
                }
            }
            Some(c) => (c.rows, c.source, c.misses, None, false),
            None => match svc.logged_traffic(target, start, now)? {
                Some(rows) => (
                    rows,
                    "the firewall log (the lengths of the logged packets)".to_string(),
                    Some("packets the firewall did not log".to_string()),
                    Some(start),
                    false,
                ),
                None => {
                    return Err(CallError::new(
                        portcullis_core::firewall::ErrorCode::Unsupported,
                        format!("target {target} counts no traffic per device and has no log store"),
                    ));
                }
            },
        };
        let devices = crate::devices::load_records(svc, target)?;
        let inside = inside_networks(&outline.interfaces);
        let network_of =
            |a: &IpAddr| inside.iter().find(|(_, net)| net.contains(a)).map(|(interface, _)| interface.clone());
        let mut data: Vec<BandwidthRow> = rows
            .into_iter()
            .filter(|r| r.bytes_sent + r.bytes_received > 0)
            .map(|r| {
                let device = devices.iter().find(|d| d.addresses.contains(&r.address));
                BandwidthRow {
                    address: r.address.to_string(),
                    hostname: device.and_then(|d| d.hostname.clone()),
                    mac: device.and_then(|d| d.mac).map(|m| m.to_string()),
                    interface: device.and_then(|d| d.interface.clone()).or_else(|| network_of(&r.address)),
                    bytes_in: r.bytes_received,
                    bytes_out: r.bytes_sent,
                    total_bytes: r.bytes_received + r.bytes_sent,
                    packets_in: r.packets_received,
                    packets_out: r.packets_sent,
                }
            })
            .filter(|r| r.interface.as_deref().is_some_and(is_inside))
            .filter(|r| interface.is_none() || r.interface == interface)
            .collect();
        data.sort_by(|a, b| b.total_bytes.cmp(&a.total_bytes).then_with(|| a.address.cmp(&b.address)));
        data.truncate(self.limit);
        Ok(BandwidthResult {
            target: target.clone(),
            timeframe: self.timeframe,
            count: data.len(),
            data,
            source,
            misses,
            measured_from,
            complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_minus_the_baseline_and_a_counter_that_restarted_stands() {
        let row = |a: &str, sent, recv| AddressTraffic {
            address: a.parse().unwrap(),
            bytes_sent: sent,
            bytes_received: recv,
            packets_sent: 1,
            packets_received: 1,
        };
        let then = vec![row("10.0.0.1", 100, 1000), row("10.0.0.2", 500, 500)];
        let now = vec![row("10.0.0.1", 150, 3000), row("10.0.0.2", 10, 20), row("10.0.0.3", 7, 7)];
        let d = difference(&now, &then);
        assert_eq!((d[0].bytes_sent, d[0].bytes_received), (50, 2000));
        assert_eq!((d[1].bytes_sent, d[1].bytes_received), (10, 20), "counted again from zero");
        assert_eq!((d[2].bytes_sent, d[2].bytes_received), (7, 7));
    }
}
