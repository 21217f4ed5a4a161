//! The `logs:` section: where log lines come from, how long they are kept, and the opt-in automated responses.
//! The tasks that act on it are in `crate::logs`.

use std::path::PathBuf;

use portcullis_logstore::Retention;
use serde::{Deserialize, Serialize};

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
    /// Suricata eve.json files to follow the same way: alerts are stored in the target's log store, other events
    /// counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub eve_files: Vec<EveFileConfig>,
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

/// `logs.eve_files[]`: one Suricata eve.json file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EveFileConfig {
    /// The file Suricata writes (its `eve-log` output), e.g. `/var/log/suricata/eve.json`.
    pub path: PathBuf,
    /// The target whose store keeps the alerts (default: the default target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The logical interface the sensor watches (`wan`): alerts are counted on it, and thresholds are per interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The sensor's name, shown with its alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
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
    /// The eve.json sources with their targets resolved (`default_target` where none is named).
    pub fn eve_sources(&self, default_target: &str) -> Vec<portcullis_tools::EveSourceSpec> {
        self.eve_files
            .iter()
            .map(|e| portcullis_tools::EveSourceSpec {
                path: e.path.clone(),
                target: e.target.clone().unwrap_or_else(|| default_target.to_string()),
                interface: e.interface.clone(),
                sensor: e.sensor.clone(),
            })
            .collect()
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

    #[test]
    fn eve_files_load_with_relative_paths_and_bad_ones_name_their_field() {
        let c = load("logs:\n  eve_files:\n    - {path: eve.json, interface: wan, sensor: ids1}\n    - path: /var/log/suricata/lan.json\n      target: lab\n")
            .unwrap();
        assert_eq!(c.logs.eve_files[0].path, Path::new("/etc/portcullis/eve.json"));
        let sources = c.logs.eve_sources("lab");
        assert_eq!((sources[0].target.as_str(), sources[0].interface.as_deref()), ("lab", Some("wan")));
        assert_eq!((sources[1].target.as_str(), sources[1].sensor.as_deref()), ("lab", None));
        for (text, key) in [
            ("logs: {eve_files: [{path: ''}]}", "logs.eve_files[0].path"),
            ("logs: {eve_files: [{path: a.json, target: nowhere}]}", "logs.eve_files[0].target"),
            ("logs: {eve_files: [{path: a.json, interface: 'wan lan'}]}", "logs.eve_files[0].interface"),
            ("logs: {eve_files: [{path: a.json, sensor: \"ids\\u202e1\"}]}", "logs.eve_files[0].sensor"),
            ("logs: {eve_files: [{path: a.json}, {path: a.json}]}", "logs.eve_files[1].path"),
        ] {
            match load(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(
            matches!(load("logs: {eve_files: [{path: a.json, iface: wan}]}"), Err(ConfigError::Parse { .. })),
            "unknown keys are errors"
        );
    }
}
