//! The firewall's own traffic counters, beside what the logs say: interface counters see every packet, the logs
//! only the logged ones. Counters are cumulative, so a rate over a timeframe needs a reading from its start:
//! `serve` samples every target each minute ([`ToolService::sample_counters`]) and every traffic question adds
//! one; the history is kept in memory, bounded, and a restart starts it again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use portcullis_core::firewall::{InterfaceCounters, RuleHits};
use portcullis_core::model::RuleId;
use schemars::JsonSchema;
use serde::Serialize;

use crate::{Target, ToolService};

/// Readings closer together than this are not kept (a busy caller does not grow the history).
const MIN_SPACING_MS: i64 = 30_000;
/// Readings older than this are dropped: the longest timeframe a rate is given for, plus a day.
const KEPT_MS: i64 = 8 * 24 * 3_600_000;

/// What one rule has matched, as the firewall counts it.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct HitsView {
    pub packets: u64,
    pub bytes: u64,
}

/// One interface's traffic from the firewall's counters.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InterfaceTraffic {
    /// Cumulative since the interface came up, read now.
    #[serde(flatten)]
    pub counters: InterfaceCounters,
    /// Average bits per second over `measured_seconds`, the part of the timeframe Portcullis holds a reading
    /// from; absent until there are two readings (or after the counters restarted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_in_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_out_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_seconds: Option<u64>,
}

/// What one interface carried over a measured stretch of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowTotal {
    pub interface: String,
    pub bytes: u64,
    pub packets: u64,
    pub seconds: u64,
}

/// One reading of a target's interface counters, with its time in ms.
type Reading = (i64, Vec<InterfaceCounters>);

/// Interface counter readings per target, oldest first.
#[derive(Default)]
pub(crate) struct CounterHistory {
    readings: Mutex<HashMap<String, VecDeque<Reading>>>,
}

impl CounterHistory {
    fn record(&self, target: &str, at_ms: i64, counters: &[InterfaceCounters]) {
        let mut all = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        let history = all.entry(target.to_string()).or_default();
        if history.back().is_some_and(|(t, _)| at_ms - t < MIN_SPACING_MS) {
            return;
        }
        history.push_back((at_ms, counters.to_vec()));
        while history.front().is_some_and(|(t, _)| at_ms - t > KEPT_MS) {
            history.pop_front();
        }
    }

    /// The oldest reading at or after `from_ms`.
    fn first_since(&self, target: &str, from_ms: i64) -> Option<Reading> {
        let all = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        all.get(target)?.iter().find(|(t, _)| *t >= from_ms).cloned()
    }
}

/// Each interface's counters now, with rates against the reading taken at `then_ms`.
pub(crate) fn traffic_between(now: &[InterfaceCounters], now_ms: i64, then: Option<Reading>) -> Vec<InterfaceTraffic> {
    now.iter()
        .map(|c| {
            let seconds = then.as_ref().map(|(t, _)| (now_ms - t) / 1000).filter(|s| *s > 0);
            let before = then.as_ref().and_then(|(_, all)| all.iter().find(|b| b.device == c.device));
            // A counter that went down was reset (reboot, link re-created): no rate rather than a wrong one.
            let rate = |now: u64, before: Option<u64>| match (before, seconds) {
                (Some(b), Some(s)) if now >= b => Some((now - b) as f64 * 8.0 / s as f64),
                _ => None,
            };
            let rate_in_bps = rate(c.bytes_in, before.map(|b| b.bytes_in));
            let rate_out_bps = rate(c.bytes_out, before.map(|b| b.bytes_out));
            InterfaceTraffic {
                counters: c.clone(),
                measured_seconds: seconds.filter(|_| rate_in_bps.is_some()).map(|s| s as u64),
                rate_in_bps,
                rate_out_bps,
            }
        })
        .collect()
}

impl ToolService {
    /// Reads every target's interface counters into the history (what `serve` does each minute). A target that
    /// keeps no counters is skipped; one that fails to answer is logged and skipped.
    pub async fn sample_counters(&self) {
        for target in &self.targets {
            if let Err(e) = self.read_counters(target).await {
                tracing::debug!(target = %target.name, "interface counters not read: {e}");
            }
            self.sample_bandwidth(target).await;
        }
    }

    async fn read_counters(&self, target: &Target) -> Result<Option<Vec<InterfaceCounters>>, crate::CallError> {
        let Some(counters) = target.firewall.interface_counters().await? else {
            return Ok(None);
        };
        self.counter_history.record(&target.name, chrono::Utc::now().timestamp_millis(), &counters);
        Ok(Some(counters))
    }

    /// The target's interface traffic now and over the timeframe from `from_ms`, or `None` when it keeps no
    /// counters or cannot be read (the log figures still answer).
    pub(crate) async fn link_traffic(&self, target: &Target, from_ms: i64) -> Option<Vec<InterfaceTraffic>> {
        let then = self.counter_history.first_since(&target.name, from_ms);
        let now_ms = chrono::Utc::now().timestamp_millis();
        match self.read_counters(target).await {
            Ok(counters) => counters.map(|c| traffic_between(&c, now_ms, then)),
            Err(e) => {
                tracing::warn!(target = %target.name, "interface counters not read: {e}");
                None
            }
        }
    }

    /// Each interface's bytes and packets (both directions) since the oldest reading within the last `window_ms`,
    /// with the seconds they were counted over; `None` when the target keeps no counters or no reading is old
    /// enough yet. A counter that went down (reset) gives no figure for its interface.
    pub(crate) async fn window_totals(&self, target: &Target, window_ms: i64) -> Option<Vec<WindowTotal>> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let (then_ms, then) = self.counter_history.first_since(&target.name, now_ms - window_ms)?;
        let now = self.read_counters(target).await.ok().flatten()?;
        let seconds = (now_ms - then_ms) / 1000;
        (seconds > 0).then(|| {
            now.iter()
                .filter_map(|c| {
                    let b = then.iter().find(|b| b.device == c.device)?;
                    Some(WindowTotal {
                        interface: c.interface.clone(),
                        bytes: (c.bytes_in + c.bytes_out).checked_sub(b.bytes_in + b.bytes_out)?,
                        packets: (c.packets_in + c.packets_out).checked_sub(b.packets_in + b.packets_out)?,
                        seconds: seconds as u64,
                    })
                })
                .collect()
        })
    }

    /// The target's rule counters by rule id, or `None` when it reports none or cannot be read.
    pub(crate) async fn rule_hits(&self, target: &Target) -> Option<HashMap<RuleId, HitsView>> {
        match target.firewall.rule_hits().await {
            Ok(hits) => hits.map(|h| {
                h.into_iter()
                    .map(|RuleHits { rule_id, packets, bytes }| (rule_id, HitsView { packets, bytes }))
                    .collect()
            }),
            Err(e) => {
                tracing::warn!(target = %target.name, "rule counters not read: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(device: &str, bytes_in: u64, bytes_out: u64) -> InterfaceCounters {
        InterfaceCounters { interface: "lan".into(), device: device.into(), bytes_in, bytes_out, ..Default::default() }
    }

    #[test]
    fn rates_come_from_the_first_reading_of_the_timeframe_and_never_from_a_reset_counter() {
        let history = CounterHistory::default();
        history.record("fw", 0, &[link("eth0", 1_000, 500)]);
        history.record("fw", 10_000, &[link("eth0", 9_999, 9_999)]);
        history.record("fw", 60_000, &[link("eth0", 61_000, 2_000)]);
        let then = history.first_since("fw", 1);
        assert_eq!(then.as_ref().map(|t| t.0), Some(60_000), "the reading 10 s after the first was not kept");
        let now = [link("eth0", 181_000, 1_000)];
        let t = &traffic_between(&now, 120_000, then)[0];
        assert_eq!(t.measured_seconds, Some(60));
        assert_eq!(t.rate_in_bps, Some(120_000.0 * 8.0 / 60.0));
        assert_eq!(t.rate_out_bps, None, "bytes out went down: the counter restarted");
        let first = &traffic_between(&now, 120_000, None)[0];
        assert_eq!((first.counters.bytes_in, first.rate_in_bps, first.measured_seconds), (181_000, None, None));
    }

    #[test]
    fn old_readings_are_dropped() {
        let history = CounterHistory::default();
        history.record("fw", 0, &[link("eth0", 1, 1)]);
        history.record("fw", KEPT_MS + 1, &[link("eth0", 2, 2)]);
        assert_eq!(history.first_since("fw", 0).map(|t| t.0), Some(KEPT_MS + 1));
    }
}
