//! Traffic mirroring tools: `mirror_traffic` (copy chosen traffic of an interface to a configured sensor for a
//! limited time), `stop_mirror` and `list_mirrors`. The mirror itself is the core's (`portcullis_core::mirror`);
//! this module adds what only the service knows: the sensors configuration names, the default and longest
//! duration and cap, who may copy everything, and what the target cannot do.

use async_trait::async_trait;
use chrono::TimeDelta;
use portcullis_core::firewall::{ErrorCode, MirrorCounter};
use portcullis_core::mirror::{Mirror, MirrorAsk, MirrorId, Sensor};
use portcullis_core::plan::Intent;
use portcullis_core::{FieldError, FieldResult};
use schemars::JsonSchema;
use serde::Serialize;

use crate::CallError;
use crate::args::{self, MirrorTrafficArgs};
use crate::work::{IntentJob, IntentScope, PlannedIntent, ReadJob, ReadScope};

/// `mirroring:` of the configuration, as the service uses it.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    pub default_duration: TimeDelta,
    pub max_duration: TimeDelta,
    /// Packets per second copied when a call gives no `rate_limit`.
    pub default_rate_limit: u32,
    pub max_rate_limit: u32,
    pub sensors: Vec<SensorSetting>,
}

impl Default for MirrorSettings {
    fn default() -> Self {
        Self {
            default_duration: TimeDelta::hours(1),
            max_duration: TimeDelta::hours(24),
            default_rate_limit: 1000,
            max_rate_limit: 100_000,
            sensors: Vec::new(),
        }
    }
}

/// One configured sensor: where copies go, on which target, and what it analyses.
#[derive(Debug, Clone)]
pub struct SensorSetting {
    /// The target it hangs off; `None`: the default target.
    pub target: Option<String>,
    pub sensor: Sensor,
    /// The interfaces whose traffic analysis (`enable_traffic_analysis`) uses this sensor.
    pub serves: Vec<String>,
    /// The IDS that reads the copies (`suricata`, `zeek`, …), as configuration says; `None`: a capture only.
    pub engine: Option<String>,
}

impl MirrorSettings {
    /// The sensors of `target` (`default` is the default target's name).
    pub(crate) fn sensors_of<'a>(
        &'a self,
        target: &'a str,
        default: &'a str,
    ) -> impl Iterator<Item = &'a SensorSetting> + 'a {
        self.sensors.iter().filter(move |s| s.target.as_deref().unwrap_or(default) == target)
    }

    /// The sensor named `name` on `target`, or a field error naming the sensors there are.
    pub(crate) fn sensor<'a>(
        &'a self,
        target: &'a str,
        default: &'a str,
        name: &str,
    ) -> FieldResult<&'a SensorSetting> {
        portcullis_core::mirror::check_name("sensor", name.trim())?;
        let mut on_target = self.sensors_of(target, default);
        if let Some(found) = on_target.find(|s| s.sensor.name.eq_ignore_ascii_case(name.trim())) {
            return Ok(found);
        }
        let known: Vec<&str> = self.sensors_of(target, default).map(|s| s.sensor.name.as_str()).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        Err(FieldError::new(
            "sensor",
            format!(
                "no sensor {name:?} is configured for target {target} (configured: {known}); sensors are named in \
                 mirroring.sensors, never given as addresses"
            ),
        ))
    }

    /// The mirror's expiry: the duration asked for (or the default), at most the configured longest.
    fn expiry(
        &self,
        duration: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> FieldResult<chrono::DateTime<chrono::Utc>> {
        let span = match duration {
            None => self.default_duration,
            Some(text) if text.trim().eq_ignore_ascii_case("permanent") => {
                return Err(FieldError::new("duration", "a mirror always ends; give a duration such as 2h"));
            }
            Some(text) => portcullis_core::duration::parse_span("duration", text)?,
        };
        if span > self.max_duration {
            return Err(FieldError::new(
                "duration",
                format!(
                    "{} is longer than mirroring.max_duration {}",
                    portcullis_core::duration::format_span(span),
                    portcullis_core::duration::format_span(self.max_duration)
                ),
            ));
        }
        Ok(now + span)
    }

    /// The cap asked for (or the default), at most the configured maximum, with its burst.
    fn cap(&self, asked: Option<u32>) -> FieldResult<(u32, u32)> {
        let rate = asked.unwrap_or(self.default_rate_limit);
        if rate == 0 {
            return Err(FieldError::new("rate_limit", "a cap of 0 packets per second copies nothing"));
        }
        if rate > self.max_rate_limit {
            return Err(FieldError::new(
                "rate_limit",
                format!("{rate} packets/s is above mirroring.max_rate_limit {}", self.max_rate_limit),
            ));
        }
        // A tenth of a second's worth at once, and at least a handful so a short burst is seen whole.
        Ok((rate, (rate / 10).max(rate.min(5))))
    }
}

/// A `mirror_traffic` call with its arguments checked.
pub(crate) struct MirrorRequest {
    interface: String,
    sensor: String,
    duration: Option<String>,
    reason: String,
    direction: portcullis_core::mirror::MirrorDirection,
    selector: portcullis_core::mirror::Selector,
    rate_limit: Option<u32>,
}

impl MirrorRequest {
    pub(crate) fn parse(a: &MirrorTrafficArgs) -> Result<Self, CallError> {
        let interface = args::interface_name("interface", &a.interface)?;
        portcullis_core::mirror::check_name("sensor", a.sensor.trim())?;
        Ok(Self {
            interface,
            sensor: a.sensor.trim().to_string(),
            duration: a.duration.clone(),
            reason: args::reason(&a.reason)?,
            direction: a.direction()?,
            selector: a.selector()?,
            rate_limit: a.rate_limit()?,
        })
    }
}

#[async_trait]
impl IntentJob for MirrorRequest {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        let settings = &at.svc.mirroring;
        let default = at.svc.default_target_name();
        let sensor = settings.sensor(&at.target.name, default, &self.sensor)?.sensor.clone();
        let (rate_limit, burst) = settings.cap(self.rate_limit)?;
        let expires_at = settings.expiry(self.duration.as_deref(), crate::now())?;
        let copies_all = self.selector.all;
        if copies_all && at.ctx.principal.role != "admin" {
            let mut e = CallError::new(
                ErrorCode::AuthorizationFailed,
                format!(
                    "{} may not copy all traffic of an interface: only an admin may, with a person's approval",
                    at.ctx.principal.name
                ),
            )
            .with_hint("name what to copy (protocol, source, destination, port), or ask an admin");
            e.field = Some("all".into());
            return Err(e);
        }
        if let Some(why) = at.target.firewall.mirror_needs_admin()
            && at.ctx.principal.role != "admin"
        {
            let mut e = CallError::new(
                ErrorCode::AuthorizationFailed,
                format!(
                    "{} may not mirror on target {}: {why}, so only an admin may",
                    at.ctx.principal.name, at.target.name
                ),
            )
            .with_hint("ask an admin, or mirror on a target whose firewall copies without a shell (nftables)");
            e.field = Some("interface".into());
            return Err(e);
        }
        let ask = MirrorAsk {
            mirror_id: MirrorId::from_seed(uuid::Uuid::new_v4().as_u128() as u32),
            interface: self.interface,
            sensor,
            direction: self.direction,
            selector: self.selector,
            rate_limit,
            burst,
            reason: self.reason,
            expires_at,
        };
        if let Some(u) = at.target.firewall.unsupported_mirror(&ask) {
            let mut e = CallError::new(
                ErrorCode::Unsupported,
                format!(
                    "target {} cannot mirror this, so nothing was changed — {}: {}",
                    at.target.name, u.field, u.why
                ),
            )
            .with_hint(u.instead);
            e.field = Some(u.field);
            return Err(e);
        }
        Ok(PlannedIntent {
            intent: Intent::StartMirror(Box::new(ask)),
            must_reach: Vec::new(),
            person_must_approve: copies_all
                .then(|| "a copy of everything on an interface needs a person's approval".to_string()),
            after_apply: None,
            reveal: None,
        })
    }
}

/// `stop_mirror`'s intent.
pub(crate) fn stop_intent(mirror_id: &str) -> FieldResult<Intent> {
    Ok(Intent::StopMirror { mirror_id: MirrorId::parse("mirror_id", mirror_id)? })
}

/// `list_mirrors`' answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MirrorsResult {
    pub target: String,
    pub data: Vec<MirrorView>,
    pub count: usize,
    /// Why the counters are missing, when the target does not count copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One running mirror with what it has copied.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MirrorView {
    #[serde(flatten)]
    pub mirror: Mirror,
    /// What it copies, in one line.
    pub summary: String,
    pub remaining_seconds: i64,
    /// Packets and bytes copied to the sensor, from the firewall's counters; absent when it does not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// The read behind `list_mirrors`.
pub(crate) struct MirrorRead {
    pub interface: Option<String>,
}

#[async_trait]
impl ReadJob for MirrorRead {
    type Output = MirrorsResult;

    async fn read(self, at: &ReadScope<'_>) -> Result<MirrorsResult, CallError> {
        let mut state = at.state().await?;
        if let Some(name) = &self.interface {
            let iface = state.resolve_interface("interface", name)?.name.clone();
            state.mirrors.retain(|m| m.interface == iface);
        }
        let counters =
            if state.mirrors.is_empty() { Vec::new() } else { at.target.firewall.mirror_counters(&state).await? };
        let now = crate::now();
        let counted =
            |m: &Mirror| -> Option<&MirrorCounter> { counters.iter().find(|c| c.mirror_id == m.mirror_id.to_string()) };
        let note = (!state.mirrors.is_empty() && counters.is_empty())
            .then(|| format!("target {} does not count copied packets", at.target.name));
        let data: Vec<MirrorView> = state
            .mirrors
            .iter()
            .map(|m| MirrorView {
                summary: m.describe(),
                remaining_seconds: (m.expires_at - now).num_seconds().max(0),
                packets: counted(m).map(|c| c.packets),
                bytes: counted(m).map(|c| c.bytes),
                mirror: m.clone(),
            })
            .collect();
        Ok(MirrorsResult { target: at.target.name.clone(), count: data.len(), data, note })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::mirror::SensorKind;

    fn settings() -> MirrorSettings {
        MirrorSettings {
            sensors: vec![SensorSetting {
                target: None,
                sensor: Sensor { name: "zeek".into(), kind: SensorKind::Interface { interface: "eth9".into() } },
                serves: vec!["wan".into()],
                engine: Some("zeek".into()),
            }],
            ..MirrorSettings::default()
        }
    }

    #[test]
    fn sensors_are_found_by_name_on_their_target_only() {
        let s = settings();
        assert_eq!(s.sensor("lab", "lab", "ZEEK").unwrap().sensor.name, "zeek");
        let e = s.sensor("edge", "lab", "zeek").unwrap_err();
        assert_eq!(e.field, "sensor");
        assert!(e.message.contains("configured: none"), "{}", e.message);
        assert_eq!(s.sensor("lab", "lab", "10.0.0.9;id").unwrap_err().field, "sensor");
    }

    #[test]
    fn duration_and_cap_keep_to_the_configured_bounds() {
        let s = settings();
        let now = chrono::Utc::now();
        assert_eq!(s.expiry(None, now).unwrap(), now + TimeDelta::hours(1));
        assert_eq!(s.expiry(Some("30d"), now).unwrap_err().field, "duration");
        assert_eq!(s.expiry(Some("permanent"), now).unwrap_err().field, "duration");
        assert_eq!(s.cap(None).unwrap(), (1000, 100));
        assert_eq!(s.cap(Some(3)).unwrap(), (3, 3));
        assert_eq!(s.cap(Some(200_000)).unwrap_err().field, "rate_limit");
    }
}
