//! Finding the file, reading it, and turning serde's messages into ones that name the key at fault. Relative
//! paths are resolved against the file's directory, so that a configuration works wherever it is started from.

use std::fmt;
use std::path::{Path, PathBuf};

use super::env::{ENV_CONFIG, apply_env_overrides, env_value, resolve_secrets};
use super::schema::{Config, TargetConfig};
use super::validate::validate;
use super::{ConfigError, env_error};

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Defaults,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Defaults => f.write_str("built-in defaults"),
        }
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub source: ConfigSource,
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "portcullis")
}

/// The platform's data directory for portcullis (e.g.
/// `~/.local/share/portcullis`), or `.portcullis` if there is no home.
pub fn default_data_dir() -> PathBuf {
    project_dirs().map(|d| d.data_dir().to_path_buf()).unwrap_or_else(|| PathBuf::from(".portcullis"))
}

/// The platform's default configuration file (e.g.
/// `~/.config/portcullis/config.yaml`), if there is a home directory.
pub fn default_config_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.yaml"))
}

/// Loads the configuration.
///
/// The file is, in order: `explicit_path` (must exist), the file named by
/// `PORTCULLIS_CONFIG` (must exist), the platform configuration directory's
/// `config.yaml` (if it exists), else built-in defaults. Environment
/// overrides are applied in every case. `env` looks up environment variables.
pub fn load(explicit_path: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<LoadedConfig, ConfigError> {
    load_with_default(explicit_path, env, default_config_path().as_deref())
}

pub(super) fn load_with_default(
    explicit_path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    default_path: Option<&Path>,
) -> Result<LoadedConfig, ConfigError> {
    let path = if let Some(path) = explicit_path {
        Some(path.to_path_buf())
    } else if let Some(value) = env_value(env, ENV_CONFIG) {
        let path = PathBuf::from(value);
        if !path.exists() {
            return Err(env_error(ENV_CONFIG, format!("configuration file `{}` does not exist", path.display())));
        }
        Some(path)
    } else {
        default_path.filter(|p| p.exists()).map(Path::to_path_buf)
    };

    match path {
        Some(path) => {
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            let config = parse(&text, &path, env)?;
            Ok(LoadedConfig { config, source: ConfigSource::File(path) })
        }
        None => {
            let mut config = Config::default();
            apply_env_overrides(&mut config, env)?;
            Ok(LoadedConfig { config, source: ConfigSource::Defaults })
        }
    }
}

/// Parses configuration text that came from `origin` (used in messages and
/// to resolve relative paths), resolves secrets, validates, and applies the
/// environment overrides.
pub fn parse(text: &str, origin: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let parsed: Option<Config> = serde_norway::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_path_buf(),
        message: describe_yaml_error(&e.to_string(), text),
    })?;
    let mut config = parsed.unwrap_or_default();
    let base = origin.parent().unwrap_or(Path::new(""));
    resolve_relative_paths(&mut config, base);
    resolve_secrets(&mut config, base, origin, env)?;
    validate(&mut config, origin)?;
    apply_env_overrides(&mut config, env)?;
    Ok(config)
}

/// Rewrites serde_norway's "`path`: unknown field `x`, expected ..." into
/// "unknown key `path.x`, expected ...", and adds the line of an unknown
/// top-level key (serde_norway does not report one).
fn describe_yaml_error(message: &str, text: &str) -> String {
    const UNKNOWN: &str = "unknown field `";
    let Some(start) = message.find(UNKNOWN) else {
        return message.to_owned();
    };
    let prefix = &message[..start];
    let path = match prefix.strip_suffix(": ") {
        Some(path) => path,
        None if prefix.is_empty() => "",
        None => return message.to_owned(),
    };
    let after = &message[start + UNKNOWN.len()..];
    let Some(end) = after.find('`') else {
        return message.to_owned();
    };
    let field = &after[..end];
    let rest = &after[end + 1..];
    let key = if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") };
    let mut out = format!("unknown key `{key}`{rest}");
    if path.is_empty() && !rest.contains(" at line ") {
        let spellings = [field.to_owned(), format!("\"{field}\""), format!("'{field}'")];
        let line = text.lines().position(|l| {
            spellings.iter().any(|k| l.strip_prefix(k.as_str()).is_some_and(|r| r.trim_start().starts_with(':')))
        });
        if let Some(line) = line {
            out.push_str(&format!(" at line {}", line + 1));
        }
    }
    out
}

pub(super) fn resolve_relative(base: &Path, path: &mut PathBuf) {
    if path.is_relative() && !base.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}

fn resolve_relative_paths(config: &mut Config, base: &Path) {
    if let Some(p) = config.data_dir.as_mut() {
        resolve_relative(base, p);
    }
    if let Some(p) = config.logging.file.as_mut() {
        resolve_relative(base, p);
    }
    if let Some(p) = config.logging.audit_file.as_mut() {
        resolve_relative(base, p);
    }
    if let Some(p) = config.pfsense.as_mut().and_then(|p| p.ca_file.as_mut()) {
        resolve_relative(base, p);
    }
    for p in &mut config.logs.files {
        resolve_relative(base, p);
    }
    for e in &mut config.logs.eve_files {
        if !e.path.as_os_str().is_empty() {
            resolve_relative(base, &mut e.path);
        }
    }
    if let Some(p) = config.geoip.database.as_mut() {
        resolve_relative(base, p);
    }
    for target in config.targets.values_mut() {
        match target {
            TargetConfig::Pfsense(pf) => {
                if let Some(p) = pf.ca_file.as_mut() {
                    resolve_relative(base, p);
                }
            }
            TargetConfig::Nftables(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    #[test]
    fn customer_file_loads_unchanged() {
        let c = parse(CUSTOMER_YAML, origin(), &no_env).unwrap();
        let pf = c.pfsense.as_ref().unwrap();
        assert_eq!(pf.host, "192.168.1.1");
        assert_eq!(pf.port, 443);
        assert_eq!(pf.protocol, "https");
        assert_eq!(pf.username.as_deref(), Some("admin"));
        assert_eq!(pf.password.as_ref().unwrap().expose(), "...");
        assert_eq!(pf.api_key.as_ref().unwrap().expose(), "...");
        assert!(pf.verify_ssl);
        assert_eq!(pf.ca_file, None);
        assert_eq!(pf.timeout, None);
        assert_eq!(c.mcp.server_name, "pfsense-network-security");
        assert_eq!(c.mcp.version, "1.0.0");
        assert_eq!(c.security.rate_limit, 50);
        assert_eq!(c.security.timeout, 30);
        assert_eq!(
            c.security.allowed_operations.as_deref().unwrap(),
            ["read_rules", "create_rule", "modify_rule", "delete_rule", "read_logs", "block_ip"]
        );
        assert!(c.security.denied_operations.is_empty());
        assert_eq!(c.security.restricted_interfaces, ["wan"]);
        assert_eq!(c.security.max_risk_score, 80);
        assert_eq!(c.security.principal, "operator");
        assert_eq!(c.logging.level, "info");
        assert_eq!(c.logging.tracing_level(), tracing::Level::INFO);
        assert_eq!(c.logging.file.as_deref(), Some(Path::new("/var/log/pfsense-mcp.log")));
        assert_eq!(c.logging.audit_file.as_deref(), Some(Path::new("/var/log/pfsense-mcp-audit.log")));
        let interfaces: Vec<(&str, &str)> = c.interfaces.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(interfaces, [("dmz", "em2"), ("lan", "em1"), ("wan", "em0")]);
        assert_eq!(c.data_dir, None);
        assert_eq!(c.http.bind, "127.0.0.1:8787");
        assert!(c.http.tokens.is_empty());
    }

    #[test]
    fn customer_file_loads_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pfsense-mcp.yaml");
        std::fs::write(&path, CUSTOMER_YAML).unwrap();
        let loaded = load(Some(&path), &no_env).unwrap();
        assert_eq!(loaded.source, ConfigSource::File(path));
        assert_eq!(loaded.config.security.rate_limit, 50);
        assert_eq!(loaded.config.interfaces.len(), 3);
    }

    #[test]
    fn empty_file_gives_defaults() {
        for text in ["", "# only a comment\n", "~\n", "{}\n"] {
            let c = parse(text, origin(), &no_env).unwrap();
            assert!(c.pfsense.is_none(), "{text:?}");
            assert_eq!(c.security.rate_limit, 100);
        }
    }

    #[test]
    fn four_eyes_approvals_are_off_by_default_and_switched_on_by_name() {
        assert!(!parse("{}\n", origin(), &no_env).unwrap().approvals.distinct_approver);
        let on = parse("approvals: {distinct_approver: true}\n", origin(), &no_env).unwrap();
        assert!(on.approvals.distinct_approver);
        unknown_key_error("approvals: {distinct_approvers: true}\n", "approvals.distinct_approvers");
    }

    /// The message of a parse error that names `key` as unknown.
    fn unknown_key_error(yaml: &str, key: &str) -> String {
        let err = parse_err(yaml);
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
        assert!(msg.contains(&format!("unknown key `{key}`")), "{msg}");
        msg
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let msg = unknown_key_error("securty: {rate_limit: 5}\n", "securty");
        assert!(msg.contains("expected one of"), "{msg}");
        let msg = parse_err("mcp: {}\n\"securty\": 1\n").to_string();
        assert!(msg.contains("unknown key `securty`"), "{msg}");
        assert!(msg.contains("at line 2"), "{msg}");
        assert!(msg.contains("/etc/portcullis/config.yaml"), "{msg}");
    }

    #[test]
    fn unknown_nested_key_is_named_with_path() {
        let msg = unknown_key_error("security: {rate_limt: 5}\n", "security.rate_limt");
        assert!(msg.contains("line 1"), "{msg}");

        let err = parse_err("http:\n  tokens:\n    - principal: bot\n      sha256: abc\n      token: plain\n");
        let msg = err.to_string();
        assert!(msg.contains("`http.tokens[0].token`"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");

        let msg = parse_err("pfsense: {host: fw, apikey: x}\n").to_string();
        assert!(msg.contains("`pfsense.apikey`"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key() {
        let msg = parse_err("security: {rate_limit: lots}\n").to_string();
        assert!(msg.contains("security.rate_limit"), "{msg}");
    }

    #[test]
    fn missing_fallback_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("config.yaml");
        let loaded = load_with_default(None, &no_env, Some(&absent)).unwrap();
        assert_eq!(loaded.source, ConfigSource::Defaults);
        assert_eq!(loaded.config.security.rate_limit, 100);
        let loaded = load_with_default(None, &no_env, None).unwrap();
        assert_eq!(loaded.source, ConfigSource::Defaults);
    }

    #[test]
    fn existing_fallback_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "security: {rate_limit: 9}\n").unwrap();
        let loaded = load_with_default(None, &no_env, Some(&path)).unwrap();
        assert_eq!(loaded.source, ConfigSource::File(path));
        assert_eq!(loaded.config.security.rate_limit, 9);
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("nope.yaml");
        let err = load(Some(&absent), &no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("nope.yaml"), "{err}");
    }

    #[test]
    fn env_config_path_is_used_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("from-env.yaml");
        let fallback = dir.path().join("fallback.yaml");
        std::fs::write(&fallback, "security: {rate_limit: 1}\n").unwrap();

        let path_str = path.to_str().unwrap().to_owned();
        let env = env_from(&[(ENV_CONFIG, &path_str)]);
        let err = load_with_default(None, &env, Some(&fallback)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(ENV_CONFIG) && msg.contains("from-env.yaml"), "{msg}");

        std::fs::write(&path, "security: {rate_limit: 3}\n").unwrap();
        let loaded = load_with_default(None, &env, Some(&fallback)).unwrap();
        assert_eq!(loaded.source, ConfigSource::File(path.clone()));
        assert_eq!(loaded.config.security.rate_limit, 3);

        // An explicit path beats the environment variable.
        let loaded = load_with_default(Some(&fallback), &env, None).unwrap();
        assert_eq!(loaded.config.security.rate_limit, 1);
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let c = parse("data_dir: state\nlogging: {file: log/p.log, audit_file: /abs/audit.log}\n", origin(), &no_env)
            .unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("/etc/portcullis/state"));
        assert_eq!(c.logging.file.as_deref(), Some(Path::new("/etc/portcullis/log/p.log")));
        assert_eq!(c.logging.audit_file.as_deref(), Some(Path::new("/abs/audit.log")));
    }
}
