//! Alarms to people while serving (`alerts:`): the outbox that delivers the store's alarms to the configured sinks,
//! and, with `alerts.threats`, the round that raises an alarm for each new threat found in the logs.

use std::time::Duration;

use portcullis_guard::{CallContext, Principal, Transport};
use tokio_util::sync::CancellationToken;

use crate::app::App;

pub fn spawn(app: &App, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sinks = app.config.alerts.sinks().map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
    if !sinks.is_empty() {
        tracing::info!(sinks = sinks.len(), "alarms go to the configured sinks");
        // Dropped handle: the tasks end with `shutdown`.
        let _ = portcullis_notify::Outbox::new(app.store.clone(), sinks).spawn(shutdown.clone());
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
