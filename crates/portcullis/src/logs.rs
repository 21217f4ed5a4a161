//! The log tasks `serve` starts: the syslog listener, file followers, retention, and (opt-in) automated responses,
//! which are ordinary `block_ip_address` calls through the guard pipeline. Their settings are `crate::config::logs`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_logstore::LogStore;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::LogsConfig;

/// Opens one log store per target under `<data_dir>/logs/<target>`.
pub fn open_stores(
    data_dir: &Path,
    targets: &[String],
    logs: &LogsConfig,
) -> anyhow::Result<HashMap<String, Arc<LogStore>>> {
    let mut stores = HashMap::new();
    for t in targets {
        let dir: PathBuf = data_dir.join("logs").join(t);
        let store = LogStore::open(&dir, logs.retention()).map_err(|e| anyhow::anyhow!("{e}"))?;
        store.set_cache_budget(logs.cache_bytes());
        stores.insert(t.clone(), store);
    }
    Ok(stores)
}

/// Starts the syslog listeners, the retention sweep and the automated responses the config asks for.
pub async fn spawn_tasks(app: &App, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = &app.config.logs;
    let target = cfg.syslog_target.clone().unwrap_or_else(|| app.config.default_target());
    if cfg.syslog_udp.is_some() || cfg.syslog_tcp.is_some() {
        let store = app
            .service
            .log_store(&target)
            .ok_or_else(|| anyhow::anyhow!("logs.syslog_target: no target named `{target}`"))?
            .clone();
        let parse = |a: &Option<String>| a.as_deref().map(str::parse::<SocketAddr>).transpose();
        let listener = portcullis_logstore::syslog::Listener::bind(parse(&cfg.syslog_udp)?, parse(&cfg.syslog_tcp)?)
            .await
            .map_err(|e| anyhow::anyhow!("syslog listener: {e}"))?;
        tracing::info!(udp = ?listener.udp_addr(), tcp = ?listener.tcp_addr(), target, "syslog listener started");
        tokio::spawn(listener.run(store, shutdown.clone()));
    }
    if !cfg.files.is_empty() {
        let store = app
            .service
            .log_store(&target)
            .ok_or_else(|| anyhow::anyhow!("logs.syslog_target: no target named `{target}`"))?
            .clone();
        spawn_file_followers(store, cfg.files.clone(), shutdown.clone());
    }
    let stores: Vec<Arc<LogStore>> =
        app.service.target_names().iter().filter_map(|t| app.service.log_store(t).cloned()).collect();
    let retention_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = retention_shutdown.cancelled() => return,
            }
            let stores = stores.clone();
            let swept = tokio::task::spawn_blocking(move || stores.iter().for_each(|s| maintain(s))).await;
            if let Err(e) = swept {
                tracing::warn!("log store maintenance stopped: {e}");
            }
        }
    });
    if cfg.auto_response.enabled {
        spawn_auto_response(app, shutdown);
    }
    Ok(())
}

/// Retention, then the rollup files of the hours and days that ended, so that long spans stay quick after a restart.
fn maintain(store: &LogStore) {
    match store.enforce_retention(Utc::now()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(store = %store.dir().display(), "retention removed {n} hour segments"),
        Err(e) => tracing::warn!("log retention: {e}"),
    }
    match store.settle(Utc::now()) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(store = %store.dir().display(), "wrote {n} block rollups"),
        Err(e) => tracing::warn!("day rollups: {e}"),
    }
}

/// Polls each followed file once a second.
fn spawn_file_followers(store: Arc<LogStore>, files: Vec<PathBuf>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut followers: Vec<portcullis_logstore::files::Follower> =
            files.iter().map(|f| portcullis_logstore::files::Follower::new(&store, f)).collect();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            for (f, path) in followers.iter_mut().zip(&files) {
                if let Err(e) = f.poll(&store, Utc::now()) {
                    tracing::warn!(file = %path.display(), "log file not read: {e}");
                }
            }
            if let Err(e) = store.flush() {
                tracing::warn!("log rollups not written: {e}");
            }
        }
    });
}

/// Every `every_seconds`: analyse each target's last `timeframe` and block sources at or above `min_score` for
/// the duration their score calls for, through `ToolService::call` as the configured principal (so policy, caps,
/// protected ranges, rate limits, risk, approval and audit all apply).
fn spawn_auto_response(app: &App, shutdown: CancellationToken) {
    let cfg = app.config.logs.auto_response.clone();
    let service = app.service.clone();
    let principal = Principal {
        name: cfg.principal.clone(),
        role: app.config.security.role_of(&cfg.principal).unwrap_or_else(|| "operator".into()),
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(cfg.every_seconds));
        let mut blocked: HashSet<(String, String)> = HashSet::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            for target in service.target_names() {
                let ctx = CallContext::new(principal.clone(), Transport::System, Some("auto_response".into()));
                let args = serde_json::json!({"timeframe": cfg.timeframe, "target": target});
                let Ok(found) = service.call(&ctx, "analyze_threats", args).await else { continue };
                let Ok(threats) = serde_json::from_value::<Vec<serde_json::Value>>(found["data"].clone()) else {
                    continue;
                };
                for t in threats {
                    let score = t["threat_score"].as_u64().unwrap_or(0);
                    let (Some(ip), Some(duration)) =
                        (t["source_ip"].as_str(), t["recommended_block_duration"].as_str())
                    else {
                        continue;
                    };
                    if score < u64::from(cfg.min_score) || !blocked.insert((target.clone(), ip.to_string())) {
                        continue;
                    }
                    let reason = format!(
                        "auto: {} (threat score {score})",
                        t["type"].as_str().unwrap_or("threat").replace('_', " ")
                    );
                    let args =
                        serde_json::json!({"ip_address": ip, "duration": duration, "reason": reason, "target": target});
                    match service.call(&ctx, "block_ip_address", args).await {
                        Ok(_) => tracing::warn!(target, ip, duration, score, "automated response: blocked"),
                        Err(e) => {
                            tracing::warn!(target, ip, "automated response refused: {}: {}", e.code.as_str(), e.message)
                        }
                    }
                }
            }
            // Bounded memory; a source blocked again only gets its block renewed.
            if blocked.len() > 10_000 {
                blocked.clear();
            }
        }
    });
}
