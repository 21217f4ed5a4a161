//! Alarms delivered to people.
//!
//! Every alarm Portcullis raises (a burst of denials, a refused high-risk change, drift, a change applied, a
//! rollback, a threat above a score) is a row of the store's `alerts` table, written by the call that raised it.
//! The [`Outbox`] reads that table in the background and delivers each alarm to the configured sinks: webhooks
//! (generic JSON or Slack-compatible), email over SMTP, syslog. A call never waits for a sink: it only writes its
//! row. A sink that is down is retried, with a growing pause, from the last alarm it took; each sink keeps its
//! place in the store, so a restart neither loses nor repeats what was delivered.

mod outbox;
mod sink;

pub use outbox::{Outbox, OutboxHandle};
pub use sink::{EmailSink, Report, Sink, SinkKind, SyslogSink, WebhookFormat, WebhookSink};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Whether `text` is an address a message can be sent from or to (`soc@example.com`, `SOC <soc@example.com>`).
pub fn is_email_address(text: &str) -> bool {
    text.parse::<lettre::message::Mailbox>().is_ok()
}

/// How urgent an alarm is; a sink takes alarms of at least its `min_severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Medium,
    High,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    /// The severity of an alarm kind: someone trying what they may not, or a change refused for its risk, is high;
    /// the firewall changing behind Portcullis' back, a rollback or a threat is medium; a change applied is info.
    /// A message that starts with `[info]`, `[medium]` or `[high]` states its own ([`Alarm::from_store`]).
    pub fn of_kind(kind: &str) -> Severity {
        match kind {
            "denial_burst" | "high_risk_refused" => Severity::High,
            "change_applied" => Severity::Info,
            _ => Severity::Medium,
        }
    }
}

/// One alarm as it is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    /// The store's id: increasing, so a sink's place is the last id it took.
    pub id: i64,
    pub time: DateTime<Utc>,
    pub kind: String,
    pub severity: Severity,
    /// Whose call raised it (`portcullis` for Portcullis' own work).
    pub principal: String,
    pub message: String,
}

impl Alarm {
    pub fn from_store(a: &portcullis_store::Alert) -> Alarm {
        // A message may start with its own severity (`[high] …`: a threat by its score, a rollback that failed),
        // which wins over its kind's.
        let stated =
            a.message.strip_prefix('[').and_then(|m| m.split_once(']')).and_then(|(band, _)| Severity::parse(band));
        let severity = stated.unwrap_or_else(|| Severity::of_kind(&a.kind));
        Alarm {
            id: a.id,
            time: a.time,
            kind: a.kind.clone(),
            severity,
            principal: a.principal.clone(),
            message: a.message.clone(),
        }
    }

    /// One line a person reads: `[HIGH] denial_burst (mallory): more than 5 denied calls in 10 minutes`.
    pub fn line(&self) -> String {
        format!(
            "[{}] {} ({}): {}",
            self.severity.as_str().to_ascii_uppercase(),
            self.kind,
            self.principal,
            self.message
        )
    }
}

/// Why a delivery failed (it is tried again later).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("webhook {url}: {message}")]
    Webhook { url: String, message: String },
    #[error("email via {server}: {message}")]
    Email { server: String, message: String },
    #[error("syslog {address}: {message}")]
    Syslog { address: String, message: String },
    #[error("store: {0}")]
    Store(#[from] portcullis_store::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kind: &str, message: &str) -> portcullis_store::Alert {
        portcullis_store::Alert {
            id: 1,
            time: Utc::now(),
            kind: kind.into(),
            principal: "portcullis".into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_stated_severity_wins_over_the_kinds() {
        assert_eq!(
            Alarm::from_store(&stored("threat", "[high] brute force from 203.0.113.50")).severity,
            Severity::High
        );
        assert_eq!(
            Alarm::from_store(&stored("rollback", "[high] the rollback of change x failed")).severity,
            Severity::High
        );
        assert_eq!(Alarm::from_store(&stored("rollback", "change x was rolled back")).severity, Severity::Medium);
        assert_eq!(Alarm::from_store(&stored("denial_burst", "more than 5 denied calls")).severity, Severity::High);
        assert_eq!(Alarm::from_store(&stored("drift", "[loud] not a band")).severity, Severity::Medium);
    }
}
