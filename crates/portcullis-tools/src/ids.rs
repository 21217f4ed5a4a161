//! Suricata sources and alert thresholds: the eve.json files the service follows (handed over by the binary from
//! `logs.eve_files`, polled by its task through [`ToolService::poll_eve_sources`]) and what each has ingested, which
//! other code asks through [`ToolService::eve_sources`] / [`ToolService::eve_sources_for`]; and the per-interface
//! alert thresholds ("N alerts per window", [`ToolService::set_alert_threshold`]), kept in the store's meta table so
//! they survive restarts, which `get_active_alarms` checks against the stored alerts.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{TimeDelta, Utc};
use portcullis_core::FieldError;
use portcullis_core::model::Timestamp;
use portcullis_core::text::show_invisible;
use portcullis_logs::ids::{threshold_crossing, us_time};
use portcullis_logstore::EveOrigin;
use portcullis_logstore::files::Follower;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::views::Alarm;
use crate::{CallError, ToolService};

/// One configured eve.json source, as the binary hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EveSourceSpec {
    /// The file Suricata writes (`eve.json`), followed across rotation and truncation.
    pub path: PathBuf,
    /// The target whose store keeps its alerts.
    pub target: String,
    /// The logical interface the sensor watches (alerts are counted on it).
    pub interface: Option<String>,
    /// The sensor's name.
    pub sensor: Option<String>,
}

/// A followed eve.json source and what it has ingested since the service started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EveSourceStatus {
    pub path: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// Whether the last poll read the file without an error.
    pub ok: bool,
    /// Lines read since the service started (blank lines aside).
    pub lines_ingested: u64,
    /// Alerts stored since the service started.
    pub alerts_stored: u64,
    /// Lines skipped (not events, too long, ...) since the service started.
    pub lines_skipped: u64,
    /// Events read by event_type (alerts included; only alerts are stored).
    pub events: BTreeMap<String, u64>,
    /// The newest alert stored from this source (at start: the newest of its sensor in the last 24 h of the store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<Timestamp>,
    /// The newest event read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event: Option<Timestamp>,
    /// The newest `stats` event read: the engine's heartbeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_stats: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<Timestamp>,
    /// The last error, kept until a later one replaces it (`ok` says whether it is current).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<Timestamp>,
}

/// An alert threshold of one interface of one target: `count` alerts within `window_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IdsAlertThreshold {
    pub target: String,
    pub interface: String,
    pub count: u64,
    pub window_seconds: u64,
}

/// The store meta key holding every threshold, as a JSON list.
const THRESHOLDS_KEY: &str = "ids_alert_thresholds";
/// The longest threshold window: alarms look at most a day back.
const MAX_WINDOW: TimeDelta = TimeDelta::hours(24);
pub(crate) const MAX_ALERT_COUNT: u64 = 1_000_000;

/// The eve sources and the writer of thresholds.
#[derive(Default)]
pub(crate) struct IdsState {
    specs: Vec<EveSourceSpec>,
    /// The followers, used by one poll at a time.
    followers: Mutex<Vec<Follower>>,
    /// What each has done, readable while a poll runs.
    status: Mutex<Vec<EveSourceStatus>>,
    /// Serialises read-modify-write of the thresholds in this process.
    thresholds: Mutex<()>,
}

/// Whether an interface name is one a threshold may be kept for: 1 to 64 letters, digits and `_ . : -`.
fn check_interface(interface: &str) -> Result<(), FieldError> {
    let ok = !interface.is_empty()
        && interface.len() <= 64
        && interface.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok { Ok(()) } else { Err(FieldError::new("interface", "1-64 letters, digits, `_`, `.`, `:` or `-`")) }
}

impl ToolService {
    /// Hands the service the eve.json files to follow (`logs.eve_files`, targets resolved); each target must have a
    /// log store. Followers resume where earlier ones stopped.
    pub fn with_eve_sources(mut self, sources: Vec<EveSourceSpec>) -> Result<Self, CallError> {
        let mut followers = Vec::new();
        let mut status = Vec::new();
        let now = Utc::now();
        for spec in &sources {
            let store = self.logs_store_named(&spec.target)?;
            followers.push(Follower::eve(store, &spec.path));
            let last_alert = store.alerts().latest_alert(spec.sensor.as_deref(), now, 24).unwrap_or_else(|e| {
                tracing::warn!(path = %spec.path.display(), "eve source: newest alert not read: {e}");
                None
            });
            status.push(EveSourceStatus {
                path: spec.path.display().to_string(),
                target: spec.target.clone(),
                interface: spec.interface.clone(),
                sensor: spec.sensor.clone(),
                ok: true,
                lines_ingested: 0,
                alerts_stored: 0,
                lines_skipped: 0,
                events: BTreeMap::new(),
                last_alert,
                last_event: None,
                last_stats: None,
                last_poll: None,
                last_error: None,
                last_error_at: None,
            });
        }
        self.ids = IdsState {
            specs: sources,
            followers: Mutex::new(followers),
            status: Mutex::new(status),
            ..Default::default()
        };
        Ok(self)
    }

    fn logs_store_named(&self, target: &str) -> Result<&std::sync::Arc<portcullis_logstore::LogStore>, CallError> {
        self.log_store(target).ok_or_else(|| {
            CallError::from(FieldError::new(
                "target",
                format!("eve source for target {target:?}, which has no log store"),
            ))
        })
    }

    /// Every eve.json source the service follows, with what it has ingested.
    pub fn eve_sources(&self) -> Vec<EveSourceStatus> {
        self.ids.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The eve.json sources of `target`, and with `interface` only those whose configured interface it is (names
    /// compared without regard to case): whether ingestion for an interface's sensor is on.
    pub fn eve_sources_for(&self, target: &str, interface: Option<&str>) -> Vec<EveSourceStatus> {
        self.eve_sources()
            .into_iter()
            .filter(|s| s.target == target)
            .filter(|s| interface.is_none_or(|i| s.interface.as_deref().is_some_and(|own| own.eq_ignore_ascii_case(i))))
            .collect()
    }

    /// Reads what each eve.json source appended since the last poll into its target's alerts (blocking file I/O:
    /// the binary calls it from a blocking task once a second). Returns the alerts stored.
    pub fn poll_eve_sources(&self) -> u64 {
        let mut followers = self.ids.followers.lock().unwrap_or_else(|p| p.into_inner());
        let mut stored = 0;
        for (i, (follower, spec)) in followers.iter_mut().zip(&self.ids.specs).enumerate() {
            let now = Utc::now();
            let Some(store) = self.log_store(&spec.target) else { continue };
            let origin = EveOrigin { interface: spec.interface.as_deref(), sensor: spec.sensor.as_deref() };
            let polled = if spec.path.exists() {
                follower.poll_eve(store, &origin, now).map_err(|e| e.to_string())
            } else {
                Err(format!("{} does not exist (yet)", spec.path.display()))
            };
            let mut status = self.ids.status.lock().unwrap_or_else(|p| p.into_inner());
            let Some(s) = status.get_mut(i) else { continue };
            s.last_poll = Some(now);
            match polled {
                Ok(got) => {
                    s.ok = true;
                    s.lines_ingested += got.lines;
                    s.alerts_stored += got.alerts;
                    s.lines_skipped += got.skipped;
                    for (k, n) in &got.events {
                        *s.events.entry(k.clone()).or_insert(0) += n;
                    }
                    s.last_alert = s.last_alert.max(got.last_alert);
                    s.last_event = s.last_event.max(got.last_event);
                    s.last_stats = s.last_stats.max(got.last_stats);
                    stored += got.alerts;
                    if got.skipped > 0 {
                        tracing::debug!(path = %spec.path.display(), "eve.json: {}", got.skipped_summary());
                    }
                }
                Err(e) => {
                    if s.ok || s.last_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(path = %spec.path.display(), "eve.json not read: {e}");
                    }
                    s.ok = false;
                    s.last_error = Some(e);
                    s.last_error_at = Some(now);
                }
            }
        }
        stored
    }

    /// Every alert threshold, by target and interface.
    pub fn alert_thresholds(&self) -> Result<Vec<IdsAlertThreshold>, CallError> {
        let store = self.guard.auditor.store();
        let text = store.meta_get(THRESHOLDS_KEY).map_err(|e| CallError::internal(e.to_string()))?;
        let Some(text) = text else { return Ok(Vec::new()) };
        serde_json::from_str(&text)
            .map_err(|e| CallError::internal(format!("the stored alert thresholds cannot be read: {e}")))
    }

    /// The threshold of one interface of one target (the interface named without regard to case).
    pub fn alert_threshold(&self, target: &str, interface: &str) -> Result<Option<IdsAlertThreshold>, CallError> {
        Ok(self
            .alert_thresholds()?
            .into_iter()
            .find(|t| t.target == target && t.interface.eq_ignore_ascii_case(interface)))
    }

    /// Sets the alert threshold of an interface of a target: an alarm when `count` Suricata alerts on it come
    /// within `window` (1 s to 24 h). Replaces an earlier one; kept in the store, so it survives restarts.
    pub fn set_alert_threshold(
        &self,
        target: &str,
        interface: &str,
        count: u64,
        window: TimeDelta,
    ) -> Result<IdsAlertThreshold, CallError> {
        let target = self.target(Some(target))?.name.clone();
        check_interface(interface)?;
        if !(1..=MAX_ALERT_COUNT).contains(&count) {
            return Err(FieldError::new("count", format!("must be 1-{MAX_ALERT_COUNT}")).into());
        }
        if window < TimeDelta::seconds(1) || window > MAX_WINDOW {
            return Err(FieldError::new("window", "must be 1s-24h").into());
        }
        let threshold = IdsAlertThreshold {
            target,
            interface: interface.to_string(),
            count,
            window_seconds: window.num_seconds() as u64,
        };
        let _writing = self.ids.thresholds.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.alert_thresholds()?;
        all.retain(|t| !(t.target == threshold.target && t.interface.eq_ignore_ascii_case(interface)));
        all.push(threshold.clone());
        self.write_thresholds(&all)?;
        Ok(threshold)
    }

    /// Removes the alert threshold of an interface of a target; whether there was one.
    pub fn clear_alert_threshold(&self, target: &str, interface: &str) -> Result<bool, CallError> {
        let _writing = self.ids.thresholds.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.alert_thresholds()?;
        let before = all.len();
        all.retain(|t| !(t.target == target && t.interface.eq_ignore_ascii_case(interface)));
        if all.len() == before {
            return Ok(false);
        }
        self.write_thresholds(&all)?;
        Ok(true)
    }

    fn write_thresholds(&self, all: &[IdsAlertThreshold]) -> Result<(), CallError> {
        let mut all = all.to_vec();
        all.sort_by(|a, b| (&a.target, &a.interface).cmp(&(&b.target, &b.interface)));
        let text = serde_json::to_string(&all).map_err(|e| CallError::internal(e.to_string()))?;
        self.guard.auditor.store().meta_set(THRESHOLDS_KEY, &text).map_err(|e| CallError::internal(e.to_string()))
    }

    /// An alarm for each interface whose alerts crossed its threshold within `span` before `now` (at most a day).
    pub(crate) fn threshold_alarms(&self, span: TimeDelta, now: Timestamp) -> Vec<Alarm> {
        let thresholds = match self.alert_thresholds() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("alert thresholds: {}", e.message);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for t in thresholds {
            let Some(store) = self.log_store(&t.target) else { continue };
            let (from, to) = ((now - span.min(MAX_WINDOW)).timestamp_millis(), now.timestamp_millis() + 1);
            let mut alerts: Vec<(i64, Option<std::net::IpAddr>)> = Vec::new();
            let visited = store.alerts().visit_alerts(from, to, |a| {
                if a.interface().is_some_and(|i| i.eq_ignore_ascii_case(&t.interface)) {
                    alerts.push((a.ts_us, a.src_ip));
                }
            });
            if let Err(e) = visited {
                tracing::warn!(target = t.target, "alert threshold: {e}");
                continue;
            }
            let window_us = i64::try_from(t.window_seconds).unwrap_or(i64::MAX / 2_000_000).saturating_mul(1_000_000);
            let Some(crossing) = threshold_crossing(alerts.iter().map(|a| a.0), t.count, window_us) else { continue };
            let mut sources: HashMap<std::net::IpAddr, u64> = HashMap::new();
            let peak = crossing.peak_from_us..=crossing.peak_to_us;
            for ip in alerts.iter().filter(|a| peak.contains(&a.0)).filter_map(|a| a.1) {
                *sources.entry(ip).or_insert(0) += 1;
            }
            let top = sources.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
            let window = crate::analytics::human_span(TimeDelta::seconds(t.window_seconds as i64));
            out.push(Alarm {
                kind: "ids_alert_rate".into(),
                severity: "high".into(),
                time: us_time(crossing.peak_to_us),
                message: format!(
                    "{} Suricata alerts on {} within {window} (threshold: {} per {window}), first reached at {}{}",
                    crossing.peak,
                    show_invisible(&t.interface),
                    t.count,
                    us_time(crossing.first_us).to_rfc3339(),
                    top.map(|(ip, n)| format!("; most from {ip} ({n})")).unwrap_or_default()
                ),
                principal: None,
                target: Some(t.target.clone()),
                source_ip: top.map(|(ip, _)| ip.to_string()),
                threat_score: None,
                recommendation: format!(
                    "analyze_threats on {} shows the ids_alert sources and signatures; block the worst with \
                     block_ip_address",
                    t.target
                ),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_short_words() {
        for ok in ["wan", "lan2", "igb1.27", "opt_1", "em0:1", "dmz-a"] {
            assert!(check_interface(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "wan\u{202e}", &"x".repeat(65), "lan;drop"] {
            assert!(check_interface(bad).is_err(), "{bad:?}");
        }
    }
}
