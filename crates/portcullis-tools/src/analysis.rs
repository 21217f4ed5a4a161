//! `enable_traffic_analysis {interface, deep_packet_inspection, alert_threshold}`: says honestly what analysis of
//! an interface is on. With deep packet inspection it copies the interface's traffic to the sensor configuration
//! names for it, through `mirror_traffic` itself (the same guardrails, approval and audit), and reports whether
//! that sensor's alerts are read. Without, the analysis is Portcullis' own: flows and rates from the firewall's
//! counters and logs. An `alert_threshold` is kept per interface (in the store, so it survives a restart) and
//! `get_active_alarms` raises an alarm while the interface's measured traffic crosses it.

use async_trait::async_trait;
use portcullis_core::firewall::ErrorCode;
use portcullis_core::{FieldError, FieldResult};
use portcullis_guard::CallContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::args::EnableTrafficAnalysisArgs;
use crate::views::Alarm;
use crate::work::LocalJob;
use crate::{CallError, ToolService, Trace};

/// What a threshold counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Quantity {
    Bytes,
    Packets,
    /// IDS alerts from the interface's sensor.
    Alerts,
}

/// `5GB/h`, `100000 packets/m`, `50 alerts/h`: an amount per window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlertThreshold {
    pub quantity: Quantity,
    pub amount: u64,
    pub window_seconds: u64,
    /// As the call gave it.
    pub text: String,
}

impl AlertThreshold {
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        let bad = |why: &str| {
            FieldError::new(
                field,
                format!("{text:?} is not a threshold ({why}); write e.g. 5GB/h, 100000 packets/m or 50 alerts/h"),
            )
        };
        let (amount, window) = text.trim().rsplit_once('/').ok_or_else(|| bad("no /window"))?;
        let window_seconds = match window.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(bad("the window is s, m, h or d")),
        };
        let amount = amount.trim();
        let split = amount.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(amount.len());
        let (number, unit) = amount.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad("no amount"))?;
        let (quantity, scale) = match unit.trim().to_ascii_lowercase().as_str() {
            "b" | "bytes" => (Quantity::Bytes, 1.0),
            "kb" => (Quantity::Bytes, 1e3),
            "mb" => (Quantity::Bytes, 1e6),
            "gb" => (Quantity::Bytes, 1e9),
            "tb" => (Quantity::Bytes, 1e12),
            "packets" | "pkts" | "packet" => (Quantity::Packets, 1.0),
            "alerts" | "alert" => (Quantity::Alerts, 1.0),
            _ => return Err(bad("the unit is B, KB, MB, GB, TB, packets or alerts")),
        };
        let amount = (number * scale).round();
        if !(1.0..=1e18).contains(&amount) {
            return Err(bad("the amount is out of range"));
        }
        Ok(Self { quantity, amount: amount as u64, window_seconds, text: text.trim().to_string() })
    }

    /// Whether `measured` over `seconds` crosses the threshold, scaled to its window.
    pub fn crossed_by(&self, measured: u64, seconds: u64) -> bool {
        seconds > 0 && (measured as f64) * (self.window_seconds as f64) / (seconds as f64) >= self.amount as f64
    }
}

/// What is on for one interface, as `enable_traffic_analysis` left it (kept in the store).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisRecord {
    pub target: String,
    pub interface: String,
    pub deep_packet_inspection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_threshold: Option<AlertThreshold>,
}

/// The most alerts a threshold counts (the alert store's own bound).
const MAX_ALERTS: u64 = crate::ids::MAX_ALERT_COUNT;

fn records_key(target: &str) -> String {
    format!("analysis:{target}")
}

/// `enable_traffic_analysis`' answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TrafficAnalysisResult {
    pub target: String,
    pub interface: String,
    /// Whether the analysis asked for is on.
    pub supported: bool,
    /// The IDS reading the copies (`suricata`, `zeek`, …), or `none` (Portcullis' own flow analysis).
    pub engine: String,
    /// `ids` (copies analysed by a sensor; no traffic is dropped by it) or `flow` (counters and logs).
    pub mode: String,
    /// What is on and what is not, in words.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// The mirror to the sensor, as `mirror_traffic` answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_threshold: Option<AlertThreshold>,
    /// The sensor's followed eve.json and what it has ingested; absent when its alerts are not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_source: Option<crate::EveSourceStatus>,
}

/// An `enable_traffic_analysis` call with its arguments checked.
pub(crate) struct AnalysisRequest {
    interface: String,
    dpi: bool,
    threshold: Option<AlertThreshold>,
    duration: Option<String>,
    target: Option<String>,
    dry_run: bool,
}

impl AnalysisRequest {
    pub(crate) fn parse(a: &EnableTrafficAnalysisArgs) -> Result<Self, CallError> {
        let threshold =
            a.alert_threshold.as_deref().map(|t| AlertThreshold::parse("alert_threshold", t)).transpose()?;
        if let Some(t) = threshold.as_ref().filter(|t| t.quantity == Quantity::Alerts && t.amount > MAX_ALERTS) {
            return Err(FieldError::new(
                "alert_threshold",
                format!("{} alerts is more than the {MAX_ALERTS} a threshold may count", t.amount),
            )
            .into());
        }
        if a.change.confirm_within.is_some() {
            return Err(
                FieldError::new("confirm_within", "the sensor's copy stops by itself at the end of duration").into()
            );
        }
        Ok(Self {
            interface: crate::args::interface_name("interface", &a.interface)?,
            dpi: a.deep_packet_inspection.unwrap_or(false),
            threshold,
            duration: a.duration.clone(),
            target: a.change.target.clone(),
            dry_run: a.change.dry_run.unwrap_or(false),
        })
    }
}

#[async_trait]
impl LocalJob for AnalysisRequest {
    type Output = TrafficAnalysisResult;

    async fn run(
        self,
        svc: &ToolService,
        ctx: &CallContext,
        trace: &mut Trace,
    ) -> Result<TrafficAnalysisResult, CallError> {
        let target = svc.target(self.target.as_deref())?;
        trace.target = Some(target.name.clone());
        trace.dry_run = self.dry_run;
        let state = target.firewall.snapshot().await?;
        let interface = state.resolve_interface("interface", &self.interface)?.name.clone();
        let default = svc.default_target_name();
        let sensor = svc.mirroring.sensors_of(&target.name, default).find(|s| s.serves.contains(&interface));
        let alert_source = sensor.and_then(|s| {
            svc.eve_sources_for(&target.name, None)
                .into_iter()
                .find(|e| e.sensor.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&s.sensor.name)))
        });
        if self.threshold.as_ref().is_some_and(|t| t.quantity == Quantity::Alerts) {
            check_alert_source(&interface, sensor, alert_source.as_ref())?;
        }
        let mut answer = TrafficAnalysisResult {
            target: target.name.clone(),
            interface: interface.clone(),
            supported: true,
            engine: "none".into(),
            mode: "flow".into(),
            reason: format!(
                "flow and rate analysis of {interface} from the firewall's counters and logs (get_traffic_stats, analyze_threats)"
            ),
            sensor: None,
            mirror: None,
            alert_threshold: self.threshold.clone(),
            alert_source: alert_source.clone(),
        };
        if self.dpi {
            let Some(sensor) = sensor else {
                return Err(unsupported_dpi(&target.name, &interface, "no sensor in mirroring.sensors serves it"));
            };
            let Some(engine) = sensor.engine.clone() else {
                return Err(unsupported_dpi(
                    &target.name,
                    &interface,
                    &format!(
                        "sensor {} has no engine configured (mirroring.sensors.{}.engine)",
                        sensor.sensor.name, sensor.sensor.name
                    ),
                ));
            };
            let mut args = json!({
                "interface": interface,
                "sensor": sensor.sensor.name,
                "reason": format!("traffic analysis of {interface} by {engine} (enable_traffic_analysis)"),
                "all": true,
                "target": target.name,
                "dry_run": self.dry_run,
            });
            if let Some(d) = &self.duration {
                args["duration"] = json!(d);
            }
            let mirror = svc.call(ctx, "mirror_traffic", args).await?;
            answer.engine = engine.clone();
            answer.mode = "ids".into();
            let alerts = match &alert_source {
                Some(source) => {
                    format!("its alerts are read from {} into analyze_threats and get_active_alarms", source.path)
                }
                None => format!(
                    "its alerts are not read by Portcullis: set mirroring.sensors.{}.eve to the sensor's eve.json",
                    sensor.sensor.name
                ),
            };
            answer.reason = format!(
                "{interface}'s traffic is copied to sensor {} for {engine} until {} (IDS: the copies are analysed, \
                 nothing is dropped by the sensor); {alerts}",
                sensor.sensor.name,
                mirror["expires_at"].as_str().unwrap_or("its expiry")
            );
            answer.sensor = Some(sensor.sensor.name.clone());
            answer.mirror = Some(mirror);
        }
        if !self.dry_run {
            match self.threshold.as_ref().filter(|t| t.quantity == Quantity::Alerts) {
                Some(t) => {
                    let window = chrono::TimeDelta::seconds(i64::try_from(t.window_seconds).unwrap_or(i64::MAX));
                    svc.set_alert_threshold(&target.name, &interface, t.amount, window).map_err(|mut e| {
                        e.field = Some("alert_threshold".into());
                        e
                    })?;
                }
                None => {
                    svc.clear_alert_threshold(&target.name, &interface)?;
                }
            }
            let record = AnalysisRecord {
                target: target.name.clone(),
                interface: interface.clone(),
                deep_packet_inspection: self.dpi,
                sensor: answer.sensor.clone(),
                alert_threshold: self.threshold,
            };
            svc.save_analysis(record)?;
        }
        Ok(answer)
    }
}

/// An `alerts` threshold needs alerts counted on this interface: a sensor with an engine that serves it alone and
/// whose eve.json is followed.
fn check_alert_source(
    interface: &str,
    sensor: Option<&crate::SensorSetting>,
    source: Option<&crate::EveSourceStatus>,
) -> Result<(), CallError> {
    let refuse = |why: String| -> Result<(), CallError> { Err(FieldError::new("alert_threshold", why).into()) };
    let Some(sensor) = sensor.filter(|s| s.engine.is_some()) else {
        return refuse(format!(
            "alerts come from an IDS sensor, and none with an engine serves {interface} \
             (mirroring.sensors.*.serves and .engine)"
        ));
    };
    let name = &sensor.sensor.name;
    match source {
        None => refuse(format!("sensor {name}'s alerts are not read: set mirroring.sensors.{name}.eve")),
        Some(s) if !s.interface.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(interface)) => refuse(format!(
            "sensor {name}'s alerts are not counted on {interface} alone (it serves more than {interface}); give \
             it one interface in serves, or use a bytes or packets threshold"
        )),
        Some(_) => Ok(()),
    }
}

fn unsupported_dpi(target: &str, interface: &str, why: &str) -> CallError {
    let mut e = CallError::new(
        ErrorCode::Unsupported,
        format!(
            "deep packet inspection of {interface} on target {target} is not available: {why}; nothing was changed"
        ),
    )
    .with_hint(
        "configure a sensor that serves this interface with its engine (mirroring.sensors.NAME: interface, serves, \
         engine, eve), or call with deep_packet_inspection: false for flow analysis",
    );
    e.field = Some("deep_packet_inspection".into());
    e
}

impl ToolService {
    /// Alarms for interfaces whose measured traffic crosses their `alert_threshold` now (bytes and packets, from
    /// the firewall's counters over the threshold's window, or as much of it as Portcullis has measured).
    pub(crate) async fn traffic_threshold_alarms(&self) -> Vec<Alarm> {
        let mut out = Vec::new();
        for target in &self.targets {
            for record in self.analysis_records(&target.name) {
                let interface = record.interface;
                let Some(t) = record.alert_threshold.filter(|t| t.quantity != Quantity::Alerts) else { continue };
                let window_ms = i64::try_from(t.window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
                let Some(totals) = self.window_totals(target, window_ms).await else { continue };
                let Some(total) = totals.iter().find(|w| w.interface == interface) else { continue };
                let measured = if t.quantity == Quantity::Bytes { total.bytes } else { total.packets };
                if t.crossed_by(measured, total.seconds) {
                    out.push(Alarm {
                        kind: "traffic_threshold".into(),
                        severity: "high".into(),
                        time: crate::now(),
                        message: format!(
                            "{interface} carried {measured} {} in {} s, above its alert_threshold {}",
                            if t.quantity == Quantity::Bytes { "bytes" } else { "packets" },
                            total.seconds,
                            t.text
                        ),
                        principal: None,
                        target: Some(target.name.clone()),
                        source_ip: None,
                        threat_score: None,
                        recommendation: "see get_traffic_stats and analyze_threats for who sends it; \
                                         configure_ddos_protection limits a flood"
                            .into(),
                    });
                }
            }
        }
        out
    }

    /// What `enable_traffic_analysis` left on for each interface of `target`.
    fn analysis_records(&self, target: &str) -> Vec<AnalysisRecord> {
        let raw = self.guard.auditor.store().meta_get(&records_key(target)).ok().flatten();
        raw.and_then(|r| serde_json::from_str(&r).ok()).unwrap_or_default()
    }

    /// Keeps `record` in place of the one of its interface.
    fn save_analysis(&self, record: AnalysisRecord) -> Result<(), CallError> {
        let mut all = self.analysis_records(&record.target);
        all.retain(|r| r.interface != record.interface);
        let key = records_key(&record.target);
        all.push(record);
        let body = serde_json::to_string(&all).map_err(|e| CallError::internal(e.to_string()))?;
        self.guard
            .auditor
            .store()
            .meta_set(&key, &body)
            .map_err(|e| CallError::internal(format!("analysis settings not saved: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customers_thresholds_parse_and_bad_ones_name_the_field() {
        let t = AlertThreshold::parse("alert_threshold", "5GB/h").unwrap();
        assert_eq!((t.quantity, t.amount, t.window_seconds), (Quantity::Bytes, 5_000_000_000, 3600));
        let t = AlertThreshold::parse("alert_threshold", "100000 packets/m").unwrap();
        assert_eq!((t.quantity, t.amount, t.window_seconds), (Quantity::Packets, 100_000, 60));
        let t = AlertThreshold::parse("alert_threshold", "50 alerts/h").unwrap();
        assert_eq!((t.quantity, t.amount), (Quantity::Alerts, 50));
        for bad in ["5GB", "5XB/h", "/h", "-1GB/h", "5GB/week", "0 packets/s"] {
            assert_eq!(AlertThreshold::parse("alert_threshold", bad).unwrap_err().field, "alert_threshold", "{bad}");
        }
    }

    #[test]
    fn a_threshold_is_crossed_by_the_rate_scaled_to_its_window() {
        let t = AlertThreshold::parse("alert_threshold", "5GB/h").unwrap();
        assert!(t.crossed_by(1_400_000_000, 900), "1.4 GB in 15 min is 5.6 GB/h");
        assert!(!t.crossed_by(1_000_000_000, 900), "4 GB/h");
        assert!(!t.crossed_by(u64::MAX, 0));
    }
}
