//! The log tasks `serve` starts: the syslog listener, file followers, the Suricata eve.json followers (the service
//! holds them, from `logs.eve_files`; this polls them), retention, and (opt-in) automated responses, which are
//! ordinary `analyze_threats` and `block_ip_address` calls through the guard pipeline
//! (`ToolService::auto_response_round`). Their settings are `crate::config::logs`.

use std::collections::HashMap;
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
    if !cfg.eve_files.is_empty() {
        spawn_eve_followers(app.service.clone(), shutdown.clone());
        for s in app.service.eve_sources() {
            tracing::info!(path = s.path, target = s.target, interface = ?s.interface, sensor = ?s.sensor, "following eve.json");
        }
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

/// Polls the service's eve.json sources once a second (blocking file reads, off the async threads).
fn spawn_eve_followers(service: Arc<portcullis_tools::ToolService>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let service = service.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || service.poll_eve_sources()).await {
                tracing::warn!("eve.json followers stopped: {e}");
                return;
            }
        }
    });
}

/// Every `every_seconds`: analyse each target's last `timeframe` and block sources at or above `min_score` for
/// the duration their score calls for, through `ToolService::call` as the configured principal (so policy, caps,
/// protected ranges, rate limits, risk, approval and audit all apply). Every kind of threat takes this path,
/// Suricata's `ids_alert` groups included.
fn spawn_auto_response(app: &App, shutdown: CancellationToken) {
    let cfg = app.config.logs.auto_response.clone();
    let service = app.service.clone();
    let principal = Principal {
        name: cfg.principal.clone(),
        role: app.config.security.role_of(&cfg.principal).unwrap_or_else(|| "operator".into()),
    };
    let round = portcullis_tools::AutoResponse { timeframe: cfg.timeframe.clone(), min_score: cfg.min_score };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(cfg.every_seconds));
        let mut memory = portcullis_tools::AutoResponseMemory::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let ctx = CallContext::new(principal.clone(), Transport::System, Some("auto_response".into()));
            service.auto_response_round(&ctx, &round, &mut memory).await;
        }
    });
}
