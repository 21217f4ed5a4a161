//! The sinks: where alarms go, which of them, how many, and how one batch is delivered.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use crate::{Alarm, NotifyError, Severity};

/// How long one delivery may take before it counts as failed (and is tried again later).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One configured sink.
#[derive(Debug, Clone)]
pub struct Sink {
    /// Its name in the configuration; its place in the outbox is kept under it.
    pub name: String,
    pub kind: SinkKind,
    /// The alarm kinds it takes (`denial_burst`, `drift`, ...); empty: every kind.
    pub kinds: Vec<String>,
    pub min_severity: Severity,
    /// The most messages a minute; alarms beyond wait and go together in the next message.
    pub max_per_minute: u32,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    Webhook(WebhookSink),
    Email(EmailSink),
    Syslog(SyslogSink),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// `{"source": "portcullis", "alarms": [...]}`.
    Json,
    /// Slack's (and Mattermost's, Rocket.Chat's) incoming webhooks: `{"text": "..."}`.
    Slack,
}

#[derive(Debug, Clone)]
pub struct WebhookSink {
    pub url: String,
    pub format: WebhookFormat,
}

#[derive(Clone)]
pub struct EmailSink {
    pub host: String,
    pub port: u16,
    /// Upgrade the connection with STARTTLS (required unless turned off for a relay on this host).
    pub starttls: bool,
    pub from: String,
    pub to: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSink")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("starttls", &self.starttls)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct SyslogSink {
    /// `host:port` (UDP) or a Unix datagram socket's path (`/dev/log`).
    pub address: String,
}

impl Sink {
    /// Whether the sink takes this alarm.
    pub fn wants(&self, alarm: &Alarm) -> bool {
        alarm.severity >= self.min_severity && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == &alarm.kind))
    }

    /// Delivers `alarms` as one message.
    pub async fn deliver(&self, http: &reqwest::Client, alarms: &[Alarm]) -> Result<(), NotifyError> {
        match &self.kind {
            SinkKind::Webhook(w) => webhook(http, w, alarms).await,
            SinkKind::Email(e) => email(e, alarms).await,
            SinkKind::Syslog(s) => syslog(s, alarms).await,
        }
    }

    /// Delivers a scheduled report: email gets it attached, a JSON webhook gets it whole, Slack and syslog (which
    /// cannot show it) get its summary line.
    pub async fn deliver_report(&self, http: &reqwest::Client, report: &Report) -> Result<(), NotifyError> {
        match &self.kind {
            SinkKind::Email(e) => email_report(e, report).await,
            SinkKind::Webhook(w) if w.format == WebhookFormat::Json => {
                let body = json!({"source": "portcullis", "report": report});
                post(http, w, &body).await
            }
            SinkKind::Webhook(w) => post(http, w, &json!({"text": report.summary})).await,
            SinkKind::Syslog(s) => {
                let line = Alarm {
                    id: 0,
                    time: report.generated_at,
                    kind: "report".into(),
                    severity: Severity::Info,
                    principal: "portcullis".into(),
                    message: report.summary.clone(),
                };
                syslog(s, std::slice::from_ref(&line)).await
            }
        }
    }
}

/// A security report on its way to the sinks of a schedule (`alerts.reports`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub title: String,
    pub timeframe: String,
    /// `html` or `markdown`.
    pub format: String,
    pub generated_at: chrono::DateTime<chrono::Utc>,
    /// One line: what the period held.
    pub summary: String,
    /// The rendered report.
    pub content: String,
}

impl Report {
    fn file_name(&self) -> String {
        let extension = if self.format == "html" { "html" } else { "md" };
        format!("security-report-{}.{extension}", self.generated_at.format("%Y-%m-%d"))
    }
}

fn summary(alarms: &[Alarm]) -> String {
    let highest = alarms.iter().map(|a| a.severity).max().unwrap_or(Severity::Info);
    match alarms {
        [one] => format!("Portcullis: {} {}", one.severity.as_str(), one.kind),
        many => format!("Portcullis: {} alarms, the highest {}", many.len(), highest.as_str()),
    }
}

async fn webhook(http: &reqwest::Client, w: &WebhookSink, alarms: &[Alarm]) -> Result<(), NotifyError> {
    let body = match w.format {
        WebhookFormat::Json => json!({"source": "portcullis", "alarms": alarms}),
        WebhookFormat::Slack => {
            let lines: Vec<String> = alarms.iter().map(Alarm::line).collect();
            json!({"text": format!("{}\n{}", summary(alarms), lines.join("\n"))})
        }
    };
    post(http, w, &body).await
}

async fn post(http: &reqwest::Client, w: &WebhookSink, body: &serde_json::Value) -> Result<(), NotifyError> {
    let failed = |message: String| NotifyError::Webhook { url: redact_url(&w.url), message };
    let response = http
        .post(&w.url)
        .timeout(DELIVERY_TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| failed(e.without_url().to_string()))?;
    if response.status().is_success() { Ok(()) } else { Err(failed(format!("answered {}", response.status()))) }
}

/// A webhook URL as it may be logged: Slack's carry their secret in the path, so only scheme and host are shown.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}/…", rest.split('/').next().unwrap_or_default()),
        None => "(not a URL)".into(),
    }
}

fn email_failure(e: &EmailSink) -> impl Fn(String) -> NotifyError + '_ {
    move |message| NotifyError::Email { server: format!("{}:{}", e.host, e.port), message }
}

/// A message from and to the sink's addresses.
fn envelope(e: &EmailSink, subject: String) -> Result<lettre::message::MessageBuilder, NotifyError> {
    let failed = email_failure(e);
    let from: Mailbox = e.from.parse().map_err(|err| failed(format!("from {:?}: {err}", e.from)))?;
    let mut builder = Message::builder().from(from).subject(subject);
    for to in &e.to {
        builder = builder.to(to.parse().map_err(|err| failed(format!("to {to:?}: {err}")))?);
    }
    Ok(builder)
}

async fn email(e: &EmailSink, alarms: &[Alarm]) -> Result<(), NotifyError> {
    let lines: Vec<String> = alarms.iter().map(|a| format!("{}  {}", a.time.to_rfc3339(), a.line())).collect();
    let message = envelope(e, summary(alarms))?
        .header(ContentType::TEXT_PLAIN)
        .body(format!("{}\n", lines.join("\n")))
        .map_err(|err| email_failure(e)(err.to_string()))?;
    send(e, message).await
}

async fn email_report(e: &EmailSink, report: &Report) -> Result<(), NotifyError> {
    use lettre::message::{Attachment, MultiPart, SinglePart};
    let kind = if report.format == "html" { "text/html; charset=utf-8" } else { "text/markdown; charset=utf-8" };
    let content_type = ContentType::parse(kind).map_err(|err| email_failure(e)(err.to_string()))?;
    let body = MultiPart::mixed()
        .singlepart(SinglePart::plain(format!(
            "{}\n\nThe report is attached ({}).\n",
            report.summary,
            report.file_name()
        )))
        .singlepart(Attachment::new(report.file_name()).body(report.content.clone(), content_type));
    let message =
        envelope(e, report.title.clone())?.multipart(body).map_err(|err| email_failure(e)(err.to_string()))?;
    send(e, message).await
}

async fn send(e: &EmailSink, message: Message) -> Result<(), NotifyError> {
    let failed = email_failure(e);
    let mut transport = if e.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host).map_err(|err| failed(err.to_string()))?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host)
    }
    .port(e.port)
    .timeout(Some(DELIVERY_TIMEOUT));
    if let (Some(user), Some(password)) = (&e.username, &e.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    transport.build().send(message).await.map(|_| ()).map_err(|err| failed(err.to_string()))
}

/// RFC 5424 lines, one datagram per alarm (facility local0; high → err, medium → warning, info → info).
async fn syslog(s: &SyslogSink, alarms: &[Alarm]) -> Result<(), NotifyError> {
    let failed = |message: String| NotifyError::Syslog { address: s.address.clone(), message };
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "-".into());
    let datagrams: Vec<String> = alarms
        .iter()
        .map(|a| {
            let level = match a.severity {
                Severity::High => 3,
                Severity::Medium => 4,
                Severity::Info => 6,
            };
            let text: String = a.line().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            format!("<{}>1 {} {host} portcullis - {} - {text}", 16 * 8 + level, a.time.to_rfc3339(), a.kind)
        })
        .collect();
    if s.address.starts_with('/') {
        #[cfg(unix)]
        {
            let socket = tokio::net::UnixDatagram::unbound().map_err(|e| failed(e.to_string()))?;
            for d in &datagrams {
                socket.send_to(d.as_bytes(), &s.address).await.map_err(|e| failed(e.to_string()))?;
            }
            return Ok(());
        }
        #[cfg(not(unix))]
        return Err(failed("Unix sockets need a Unix system".into()));
    }
    let socket = tokio::net::UdpSocket::bind(if s.address.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" })
        .await
        .map_err(|e| failed(e.to_string()))?;
    for d in &datagrams {
        socket.send_to(d.as_bytes(), &s.address).await.map_err(|e| failed(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(kind: &str, severity: Severity) -> Alarm {
        Alarm {
            id: 1,
            time: chrono::Utc::now(),
            kind: kind.into(),
            severity,
            principal: "p".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn a_sink_takes_its_kinds_at_its_severity() {
        let sink = Sink {
            name: "s".into(),
            kind: SinkKind::Syslog(SyslogSink { address: "127.0.0.1:1".into() }),
            kinds: vec!["drift".into()],
            min_severity: Severity::Medium,
            max_per_minute: 10,
        };
        assert!(sink.wants(&alarm("drift", Severity::Medium)));
        assert!(!sink.wants(&alarm("drift", Severity::Info)));
        assert!(!sink.wants(&alarm("denial_burst", Severity::High)));
    }

    #[test]
    fn webhook_urls_are_logged_without_their_path() {
        assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com/…");
    }
}
