//! Alarms to people while serving (`alerts:`): the outbox that delivers the store's alarms to the configured sinks,
//! with `alerts.threats` the round that raises an alarm for each new threat found in the logs, and the report
//! schedules of `alerts.reports`.

use std::time::Duration;

use portcullis_guard::{CallContext, Principal, Transport};
use tokio_util::sync::CancellationToken;

use crate::app::App;

pub fn spawn(app: &App, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sinks = app.config.alerts.sinks().map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
    if !sinks.is_empty() {
        tracing::info!(sinks = sinks.len(), "alarms go to the configured sinks");
        // Dropped handle: the tasks end with `shutdown`.
        let _ = portcullis_notify::Outbox::new(app.store.clone(), sinks.clone()).spawn(shutdown.clone());
    }
    let schedules =
        app.config.alerts.report_schedules().map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
    for schedule in schedules {
        let to: Vec<portcullis_notify::Sink> =
            sinks.iter().filter(|s| schedule.to.contains(&s.name)).cloned().collect();
        let principal = Principal {
            name: schedule.principal.clone(),
            role: app.config.security.role_of(&schedule.principal).unwrap_or_else(|| "viewer".into()),
        };
        let job = ReportJob { schedule, to, principal, app: app.service.clone(), store: app.store.clone() };
        tokio::spawn(job.run(shutdown.clone()));
    }
    if let Some(cfg) = app.config.alerts.threats.clone() {
        let service = app.service.clone();
        let principal = Principal {
            name: cfg.principal.clone(),
            role: app.config.security.role_of(&cfg.principal).unwrap_or_else(|| "viewer".into()),
        };
        let round = portcullis_tools::ThreatAlarms { timeframe: cfg.timeframe.clone(), min_score: cfg.min_score };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(cfg.every_seconds.max(1)));
            let mut memory = portcullis_tools::ThreatAlarmMemory::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                let ctx = CallContext::new(principal.clone(), Transport::System, Some("threat_alarms".into()));
                service.threat_alarm_round(&ctx, &round, &mut memory).await;
            }
        });
    }
    Ok(())
}

/// One report schedule: its last run is kept in the store (`notify:report:<index>:last`), so a restart neither
/// sends a report early nor skips one; the first one goes a whole period after the schedule first runs.
struct ReportJob {
    schedule: crate::config::ReportSchedule,
    to: Vec<portcullis_notify::Sink>,
    principal: Principal,
    app: std::sync::Arc<portcullis_tools::ToolService>,
    store: std::sync::Arc<portcullis_store::Store>,
}

/// Tries per sink before a report is given up for this period.
const REPORT_TRIES: u32 = 3;

impl ReportJob {
    fn key(&self) -> String {
        format!("notify:report:{}:last", self.schedule.index)
    }

    fn last(&self) -> chrono::DateTime<chrono::Utc> {
        let kept = self.store.meta_get(&self.key()).ok().flatten();
        match kept.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()) {
            Some(t) => t.with_timezone(&chrono::Utc),
            None => {
                let now = chrono::Utc::now();
                self.keep(now);
                now
            }
        }
    }

    fn keep(&self, t: chrono::DateTime<chrono::Utc>) {
        if let Err(e) = self.store.meta_set(&self.key(), &t.to_rfc3339()) {
            tracing::warn!("report schedule {}: its last run could not be kept: {e}", self.schedule.index);
        }
    }

    async fn run(self, shutdown: CancellationToken) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        loop {
            let due = self.last() + self.schedule.every;
            let wait = (due - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
            self.keep(chrono::Utc::now());
            match self.report().await {
                Ok(report) => self.send(&http, &report).await,
                Err(e) => tracing::warn!("report schedule {}: no report: {e}", self.schedule.index),
            }
        }
    }

    async fn report(&self) -> anyhow::Result<portcullis_notify::Report> {
        let mut args = serde_json::json!({"timeframe": self.schedule.timeframe, "format": self.schedule.format});
        if let Some(target) = &self.schedule.target {
            args["target"] = target.clone().into();
        }
        let ctx = CallContext::new(self.principal.clone(), Transport::System, Some("report_schedule".into()));
        let answer = self
            .app
            .call(&ctx, "generate_security_report", args)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message))?;
        let content = answer["content"].as_str().unwrap_or_default().to_string();
        let target = answer["target"].as_str().unwrap_or("?");
        let summary = format!(
            "Portcullis security report for {target}, last {}: {} log lines, {} blocked, {} threats",
            self.schedule.timeframe,
            answer["summary"]["log_lines"].as_u64().unwrap_or(0),
            answer["summary"]["blocked"].as_u64().unwrap_or(0),
            answer["threats"].as_array().map_or(0, Vec::len)
        );
        Ok(portcullis_notify::Report {
            title: format!("Portcullis security report: {target}, last {}", self.schedule.timeframe),
            timeframe: self.schedule.timeframe.clone(),
            format: self.schedule.format.clone(),
            generated_at: chrono::Utc::now(),
            summary,
            content,
        })
    }

    /// To every sink of the schedule, each tried up to [`REPORT_TRIES`] times.
    async fn send(&self, http: &reqwest::Client, report: &portcullis_notify::Report) {
        for sink in &self.to {
            for attempt in 1..=REPORT_TRIES {
                match sink.deliver_report(http, report).await {
                    Ok(()) => break,
                    Err(e) if attempt < REPORT_TRIES => {
                        tracing::warn!(sink = %sink.name, attempt, "report not delivered, trying again: {e}");
                        tokio::time::sleep(Duration::from_secs(u64::from(attempt) * 2)).await;
                    }
                    Err(e) => tracing::warn!(sink = %sink.name, "report not delivered this period: {e}"),
                }
            }
        }
    }
}
