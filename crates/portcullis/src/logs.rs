//! The `logs:` config section and the log tasks `serve` starts: the syslog listener, retention, and (opt-in)
//! automated responses, which are ordinary `block_ip_address` calls through the guard pipeline.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use portcullis_guard::{CallContext, Principal, Transport};
use portcullis_logstore::{LogStore, Retention};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::app::App;

/// `logs:` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Listen for syslog over UDP on this address (e.g. `127.0.0.1:5514`); lines go to `syslog_target`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog_udp: Option<String>,
    /// Listen for syslog over TCP (octet counting or newline framing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog_tcp: Option<String>,
    /// The target whose store receives syslog lines and followed files (default: the default target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog_target: Option<String>,
    /// Log files to follow (appends, rotation, truncation), e.g. a collector's `/var/log/pfsense/filter.log`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// How long lines are kept: `30d` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Most disk space per target's store, in MiB (default 4096).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size_mb: Option<u64>,
    /// Most memory per target's store for aggregates kept between questions, in MiB (default 256); the least
    /// recently used are dropped and read again from disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_mb: Option<u64>,
    /// The most lines one pull of a pfSense target's log reads, paging back to the previous pull (default
    /// 100000). A burst longer than this between two log questions is reported as a gap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_max_lines: Option<usize>,
    pub auto_response: AutoResponseConfig,
}

/// `logs.auto_response`: off unless enabled.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoResponseConfig {
    pub enabled: bool,
    /// Block sources whose threat score is at least this (the score picks the duration).
    pub min_score: u8,
    /// Seconds between analyses.
    pub every_seconds: u64,
    /// The window analysed each time.
    pub timeframe: String,
    /// The principal the blocks are made as (its role's caps apply).
    pub principal: String,
}

impl Default for AutoResponseConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            min_score: 50,
            every_seconds: 60,
            timeframe: "1h".into(),
            principal: "portcullis-auto".into(),
        }
    }
}

impl LogsConfig {
    /// Checks the section; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (key, addr) in [("logs.syslog_udp", &self.syslog_udp), ("logs.syslog_tcp", &self.syslog_tcp)] {
            if let Some(a) = addr
                && a.parse::<SocketAddr>().is_err()
            {
                return Err((key.into(), format!("`{a}` is not an address:port like 127.0.0.1:5514")));
            }
        }
        if let Some(age) = &self.max_age {
            portcullis_core::duration::parse_span("logs.max_age", age)
                .map_err(|e| ("logs.max_age".into(), e.message))?;
        }
        for (key, mb) in [("logs.max_size_mb", self.max_size_mb), ("logs.cache_mb", self.cache_mb)] {
            if mb == Some(0) {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        if self.pull_max_lines.is_some_and(|n| n < portcullis_tools::LINES_PER_PULL_PAGE) {
            let least = portcullis_tools::LINES_PER_PULL_PAGE;
            return Err(("logs.pull_max_lines".into(), format!("must be at least {least} (one page)")));
        }
        let a = &self.auto_response;
        portcullis_core::duration::parse_span("logs.auto_response.timeframe", &a.timeframe)
            .map_err(|e| ("logs.auto_response.timeframe".into(), e.message))?;
        if a.every_seconds == 0 {
            return Err(("logs.auto_response.every_seconds".into(), "must be at least 1".into()));
        }
        if a.min_score > 100 {
            return Err(("logs.auto_response.min_score".into(), "must be 0-100".into()));
        }
        Ok(())
    }

    pub fn retention(&self) -> Retention {
        let default = Retention::default();
        Retention {
            max_age: self
                .max_age
                .as_deref()
                .and_then(|a| portcullis_core::duration::parse_span("logs.max_age", a).ok())
                .unwrap_or(default.max_age),
            max_bytes: self.max_size_mb.map_or(default.max_bytes, |mb| mb.saturating_mul(1 << 20)),
        }
    }

    /// The memory budget of each store's cached aggregates, in bytes.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_mb.map_or(portcullis_logstore::DEFAULT_CACHE_BUDGET, |mb| mb.saturating_mul(1 << 20))
    }
}

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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{ConfigError, parse};

    fn load(text: &str) -> Result<crate::config::Config, ConfigError> {
        parse(text, Path::new("/etc/portcullis/config.yaml"), &|_| None)
    }

    #[test]
    fn logs_section_loads_and_bad_values_name_their_key() {
        let c = load("logs:\n  syslog_udp: 127.0.0.1:5514\n  files: [filter.log]\n  max_age: 7d\n  max_size_mb: 10\n")
            .unwrap();
        assert_eq!(c.logs.files, vec![Path::new("/etc/portcullis/filter.log").to_path_buf()]);
        let r = c.logs.retention();
        assert_eq!((r.max_age, r.max_bytes), (chrono::TimeDelta::days(7), 10 << 20));
        assert!(!c.logs.auto_response.enabled, "automated responses are opt-in");
        for (text, key) in [
            ("logs: {syslog_udp: 'nonsense'}", "logs.syslog_udp"),
            ("logs: {syslog_tcp: '1.2.3.4'}", "logs.syslog_tcp"),
            ("logs: {max_age: forever}", "logs.max_age"),
            ("logs: {cache_mb: 0}", "logs.cache_mb"),
            ("logs: {max_size_mb: 0}", "logs.max_size_mb"),
            ("logs: {pull_max_lines: 10}", "logs.pull_max_lines"),
            ("logs: {auto_response: {min_score: 101}}", "logs.auto_response.min_score"),
            ("logs: {auto_response: {every_seconds: 0}}", "logs.auto_response.every_seconds"),
        ] {
            match load(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(load("logs: {sylog_udp: x}"), Err(ConfigError::Parse { .. })), "unknown keys are errors");
    }
}
