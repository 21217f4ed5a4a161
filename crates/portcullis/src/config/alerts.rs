//! The `alerts:` section: where alarms go to reach people (`portcullis_notify`), and which threats raise one.
//!
//! ```yaml
//! alerts:
//!   sinks:
//!     - name: soc-chat
//!       webhook: {url: "https://hooks.slack.com/services/…", format: slack}
//!       min_severity: medium
//!     - name: on-call
//!       email: {host: smtp.example.com, port: 587, from: portcullis@example.com, to: [soc@example.com],
//!               username: portcullis, password: "env:SMTP_PASSWORD"}
//!     - name: siem
//!       syslog: {address: "127.0.0.1:514"}
//!       kinds: [drift, change_applied, rollback]
//!   threats: {min_score: 70, every_seconds: 60, timeframe: 1h}
//! ```

use portcullis_notify::{EmailSink, Severity, Sink, SinkKind, SyslogSink, WebhookFormat, WebhookSink};
use serde::{Deserialize, Serialize};

use super::env::Secret;

/// The alarm kinds there are (a sink's `kinds` must name these).
pub const ALARM_KINDS: [&str; 7] =
    ["denial_burst", "high_risk_refused", "drift", "change_applied", "rollback", "threat", "audit_witness_reconciled"];

/// `alerts:` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub sinks: Vec<SinkConfig>,
    /// Threats found in the logs raise a `threat` alarm (whether or not anything blocks them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threats: Option<ThreatAlarmsConfig>,
    /// Security reports sent on a schedule to sinks.
    pub reports: Vec<ReportScheduleConfig>,
}

/// `alerts.reports[]`: `generate_security_report` every `every`, sent to the sinks named in `to`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportScheduleConfig {
    /// `daily`, `weekly`, or a duration (`12h`).
    pub every: String,
    /// The period the report covers (default: `every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeframe: Option<String>,
    /// `html` (default) or `markdown`.
    #[serde(default = "default_report_format")]
    pub format: String,
    /// Sink names.
    pub to: Vec<String>,
    /// The target reported on (default: the default target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The principal the report is generated as (read access is enough).
    #[serde(default = "default_report_principal")]
    pub principal: String,
}

fn default_report_format() -> String {
    "html".into()
}

fn default_report_principal() -> String {
    "portcullis-reports".into()
}

/// One report schedule, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSchedule {
    /// Its place in `alerts.reports` (its last run is kept under it).
    pub index: usize,
    pub every: chrono::TimeDelta,
    pub timeframe: String,
    pub format: String,
    pub to: Vec<String>,
    pub target: Option<String>,
    pub principal: String,
}

/// One sink: a `name` and exactly one of `webhook`, `email`, `syslog`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SyslogConfig>,
    /// The alarm kinds this sink takes; empty: all.
    pub kinds: Vec<String>,
    /// `info`, `medium` (default) or `high`.
    pub min_severity: String,
    /// The most messages a minute (default 10); alarms beyond wait and go together.
    pub max_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: Secret,
    /// `json` (default) or `slack`.
    #[serde(default)]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// STARTTLS (default true); false only for a relay on this host.
    #[serde(default = "default_true")]
    pub starttls: bool,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` for UDP, or a Unix datagram socket's path (`/dev/log`).
    pub address: String,
}

/// `alerts.threats`: a look at every target's recent logs every `every_seconds`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThreatAlarmsConfig {
    pub min_score: u8,
    pub every_seconds: u64,
    pub timeframe: String,
    /// The principal the analysis runs as (read access is enough).
    pub principal: String,
}

impl Default for ThreatAlarmsConfig {
    fn default() -> Self {
        Self { min_score: 70, every_seconds: 60, timeframe: "1h".into(), principal: "portcullis-alerts".into() }
    }
}

fn default_smtp_port() -> u16 {
    587
}

fn default_true() -> bool {
    true
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

impl AlertsConfig {
    /// The sinks as the outbox takes them; an error names the key at fault.
    pub fn sinks(&self) -> Result<Vec<Sink>, (String, String)> {
        let mut names = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(self.sinks.len());
        for (i, s) in self.sinks.iter().enumerate() {
            let key = |field: &str| format!("alerts.sinks[{i}].{field}");
            let ok_name = !s.name.is_empty()
                && s.name.len() <= 64
                && s.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok_name {
                return Err((key("name"), "1 to 64 letters, digits, '-', '_' or '.'".into()));
            }
            if !names.insert(s.name.clone()) {
                return Err((key("name"), format!("another sink is named {:?}", s.name)));
            }
            let kind = match (&s.webhook, &s.email, &s.syslog) {
                (Some(w), None, None) => SinkKind::Webhook(webhook(w).map_err(|m| (key("webhook"), m))?),
                (None, Some(e), None) => SinkKind::Email(email(e).map_err(|m| (key("email"), m))?),
                (None, None, Some(l)) => {
                    if l.address.trim().is_empty() {
                        return Err((key("syslog.address"), "host:port or a socket path".into()));
                    }
                    SinkKind::Syslog(SyslogSink { address: l.address.trim().to_string() })
                }
                _ => return Err((key("name"), "give exactly one of webhook, email or syslog".into())),
            };
            if let Some(unknown) = s.kinds.iter().find(|k| !ALARM_KINDS.contains(&k.as_str())) {
                return Err((
                    key("kinds"),
                    format!("{unknown:?} is not an alarm kind; there are: {}", ALARM_KINDS.join(", ")),
                ));
            }
            let severity = if s.min_severity.is_empty() { "medium" } else { s.min_severity.as_str() };
            let min_severity = Severity::parse(severity)
                .ok_or_else(|| (key("min_severity"), format!("{severity:?} is not info, medium or high")))?;
            out.push(Sink {
                name: s.name.clone(),
                kind,
                kinds: s.kinds.clone(),
                min_severity,
                max_per_minute: if s.max_per_minute == 0 { 10 } else { s.max_per_minute },
            });
        }
        Ok(out)
    }

    /// The report schedules, their sinks checked against `sinks`.
    pub fn report_schedules(&self) -> Result<Vec<ReportSchedule>, (String, String)> {
        let names: Vec<&str> = self.sinks.iter().map(|s| s.name.as_str()).collect();
        let mut out = Vec::with_capacity(self.reports.len());
        for (i, r) in self.reports.iter().enumerate() {
            let key = |field: &str| format!("alerts.reports[{i}].{field}");
            let every_text = match r.every.trim() {
                "daily" => "24h",
                "weekly" => "7d",
                other => other,
            };
            let every =
                portcullis_core::duration::parse_span("every", every_text).map_err(|e| (key("every"), e.message))?;
            if every < chrono::TimeDelta::seconds(1) {
                return Err((key("every"), "at least 1s".into()));
            }
            let timeframe = r.timeframe.clone().unwrap_or_else(|| every_text.to_string());
            portcullis_core::duration::parse_span("timeframe", &timeframe)
                .map_err(|e| (key("timeframe"), e.message))?;
            if !matches!(r.format.as_str(), "html" | "markdown") {
                return Err((key("format"), format!("{:?} is not html or markdown", r.format)));
            }
            if r.to.is_empty() {
                return Err((key("to"), "name at least one sink".into()));
            }
            if let Some(unknown) = r.to.iter().find(|t| !names.contains(&t.as_str())) {
                return Err((key("to"), format!("no sink named {unknown:?}; there are: {}", names.join(", "))));
            }
            out.push(ReportSchedule {
                index: i,
                every,
                timeframe,
                format: r.format.clone(),
                to: r.to.clone(),
                target: r.target.clone(),
                principal: r.principal.clone(),
            });
        }
        Ok(out)
    }

    /// Every secret of the section (for the scrubber).
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.sinks
            .iter()
            .flat_map(|s| s.webhook.iter().map(|w| &w.url).chain(s.email.iter().filter_map(|e| e.password.as_ref())))
    }

    /// Every secret of the section, to resolve `env:` and `file:` forms, by key path.
    pub(super) fn secrets_mut(&mut self) -> impl Iterator<Item = (String, &mut Secret)> {
        self.sinks.iter_mut().enumerate().flat_map(|(i, s)| {
            let url = s.webhook.as_mut().map(|w| (format!("alerts.sinks[{i}].webhook.url"), &mut w.url));
            let password = s
                .email
                .as_mut()
                .and_then(|e| e.password.as_mut())
                .map(|p| (format!("alerts.sinks[{i}].email.password"), p));
            url.into_iter().chain(password)
        })
    }
}

fn webhook(w: &WebhookConfig) -> Result<WebhookSink, String> {
    let url = w.url.expose().trim().to_string();
    let https = url.starts_with("https://");
    let local_http = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split(['/', '?']).next())
        .is_some_and(|authority| is_loopback_host(authority.rsplit_once(':').map_or(authority, |(h, _)| h)));
    if !(https || local_http) {
        return Err("url must be https:// (plain http only to this host)".into());
    }
    let format = match w.format.as_deref().unwrap_or("json") {
        "json" => WebhookFormat::Json,
        "slack" => WebhookFormat::Slack,
        other => return Err(format!("format {other:?} is not json or slack")),
    };
    Ok(WebhookSink { url, format })
}

fn email(e: &EmailConfig) -> Result<EmailSink, String> {
    if e.host.trim().is_empty() || e.from.trim().is_empty() || e.to.is_empty() {
        return Err("host, from and at least one address in to are needed".into());
    }
    if !e.starttls && !is_loopback_host(e.host.trim()) {
        return Err("starttls: false is only for a relay on this host (the password and alarms would cross the network in clear)".into());
    }
    for address in std::iter::once(&e.from).chain(&e.to) {
        if !portcullis_notify::is_email_address(address) {
            return Err(format!("{address:?} is not an email address"));
        }
    }
    if e.password.is_some() != e.username.is_some() {
        return Err("give username and password together".into());
    }
    Ok(EmailSink {
        host: e.host.trim().to_string(),
        port: e.port,
        starttls: e.starttls,
        from: e.from.clone(),
        to: e.to.clone(),
        username: e.username.clone(),
        password: e.password.as_ref().map(|p| p.expose().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> AlertsConfig {
        serde_norway::from_str(yaml).expect("yaml")
    }

    #[test]
    fn sinks_are_checked_by_key() {
        let ok = parse(
            "sinks:\n- {name: chat, webhook: {url: 'https://hooks.example.com/x', format: slack}}\n\
             - {name: mail, email: {host: 127.0.0.1, port: 2525, starttls: false, from: a@example.com, to: [b@example.com]}, min_severity: high}\n\
             - {name: siem, syslog: {address: '127.0.0.1:514'}, kinds: [drift]}\n",
        );
        let sinks = ok.sinks().expect("valid");
        assert_eq!(sinks.len(), 3);
        assert_eq!(sinks[1].min_severity, Severity::High);
        let bad = |yaml: &str| parse(yaml).sinks().expect_err("invalid").0;
        assert_eq!(bad("sinks:\n- {name: x, webhook: {url: 'http://example.com/x'}}\n"), "alerts.sinks[0].webhook");
        assert_eq!(
            bad(
                "sinks:\n- {name: x, email: {host: smtp.example.com, starttls: false, from: a@example.com, to: [b@example.com]}}\n"
            ),
            "alerts.sinks[0].email"
        );
        assert_eq!(bad("sinks:\n- {name: x, syslog: {address: 'h:1'}, kinds: [nope]}\n"), "alerts.sinks[0].kinds");
        assert_eq!(bad("sinks:\n- {name: x}\n"), "alerts.sinks[0].name");
        assert_eq!(
            bad("sinks:\n- {name: x, syslog: {address: 'h:1'}}\n- {name: x, syslog: {address: 'h:2'}}\n"),
            "alerts.sinks[1].name"
        );
        assert_eq!(
            bad("sinks:\n- {name: x, syslog: {address: 'h:1'}, min_severity: loud}\n"),
            "alerts.sinks[0].min_severity"
        );
    }

    #[test]
    fn report_schedules_name_their_sinks_and_a_period() {
        let sinks = "sinks:\n- {name: mail, syslog: {address: 'h:1'}}\n";
        let reports =
            "reports:\n- {every: weekly, to: [mail]}\n- {every: 12h, timeframe: 24h, format: markdown, to: [mail]}\n";
        let schedules = parse(&format!("{sinks}{reports}")).report_schedules().expect("valid");
        assert_eq!(schedules[0].every, chrono::TimeDelta::days(7));
        assert_eq!(schedules[0].timeframe, "7d", "the period by default");
        assert_eq!((schedules[1].timeframe.as_str(), schedules[1].format.as_str()), ("24h", "markdown"));
        let bad =
            |reports: &str| parse(&format!("{sinks}reports:\n{reports}")).report_schedules().expect_err("invalid").0;
        assert_eq!(bad("- {every: weekly, to: [pager]}\n"), "alerts.reports[0].to");
        assert_eq!(bad("- {every: sometimes, to: [mail]}\n"), "alerts.reports[0].every");
        assert_eq!(bad("- {every: daily, to: []}\n"), "alerts.reports[0].to");
        assert_eq!(bad("- {every: daily, to: [mail], format: pdf}\n"), "alerts.reports[0].format");
    }
}
