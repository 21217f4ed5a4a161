//! What comes from outside the file: `PORTCULLIS_*` overrides, and secrets given as `env:NAME` or `file:PATH`
//! references so that passwords and API keys need not be written into the configuration. A [`Secret`] never
//! prints, so that no log line, error or `config check` output can show one.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::load::resolve_relative;
use super::schema::{Config, PfSenseConfig, TargetConfig};
use super::validate::{LOG_LEVELS, check_bind, check_host, check_rate_limit, normalize_level};
use super::{ConfigError, env_error};

/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "PORTCULLIS_CONFIG";
/// Overrides `data_dir`.
pub const ENV_DATA_DIR: &str = "PORTCULLIS_DATA_DIR";
/// Overrides `logging.level`.
pub const ENV_LOG_LEVEL: &str = "PORTCULLIS_LOG_LEVEL";
/// Overrides `security.rate_limit`.
pub const ENV_RATE_LIMIT: &str = "PORTCULLIS_RATE_LIMIT";
/// Overrides `security.principal`.
pub const ENV_PRINCIPAL: &str = "PORTCULLIS_PRINCIPAL";
/// Overrides `http.bind`.
pub const ENV_HTTP_BIND: &str = "PORTCULLIS_HTTP_BIND";
/// Overrides `pfsense.host` (creating the `pfsense` section if needed).
pub const ENV_PFSENSE_HOST: &str = "PORTCULLIS_PFSENSE_HOST";
/// Overrides `pfsense.api_key`.
pub const ENV_PFSENSE_API_KEY: &str = "PORTCULLIS_PFSENSE_API_KEY";
/// Overrides `pfsense.api_key` with the contents of a file.
pub const ENV_PFSENSE_API_KEY_FILE: &str = "PORTCULLIS_PFSENSE_API_KEY_FILE";
/// Overrides `pfsense.password`.
pub const ENV_PFSENSE_PASSWORD: &str = "PORTCULLIS_PFSENSE_PASSWORD";
/// Overrides `pfsense.password` with the contents of a file.
pub const ENV_PFSENSE_PASSWORD_FILE: &str = "PORTCULLIS_PFSENSE_PASSWORD_FILE";

/// A secret string (password, API key). It never prints: `Debug`, `Display`
/// and `Serialize` all render `***`. Use [`Secret::expose`] to get the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[allow(dead_code)] // helper for callers; not every caller needs it
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

pub(super) fn env_value(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read secret file `{}`: {e}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        return Err(format!("secret file `{}` is empty", path.display()));
    }
    Ok(value)
}

fn resolve_secret(
    secret: &mut Secret,
    key: &str,
    base: &Path,
    origin: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Secret {
        key: key.to_owned(),
        message: format!("{message} (in `{}`)", origin.display()),
    };
    let raw = secret.expose();
    if let Some(var) = raw.strip_prefix("env:") {
        let var = var.trim();
        if var.is_empty() {
            return Err(err("`env:` must be followed by a variable name".to_owned()));
        }
        match env(var) {
            Some(value) if !value.is_empty() => *secret = Secret(value),
            Some(_) => return Err(err(format!("environment variable `{var}` is empty"))),
            None => return Err(err(format!("environment variable `{var}` is not set"))),
        }
    } else if let Some(path) = raw.strip_prefix("file:") {
        let path = path.trim();
        if path.is_empty() {
            return Err(err("`file:` must be followed by a path".to_owned()));
        }
        let mut path = PathBuf::from(path);
        resolve_relative(base, &mut path);
        *secret = Secret(read_secret_file(&path).map_err(err)?);
    }
    Ok(())
}

pub(super) fn resolve_secrets(
    config: &mut Config,
    base: &Path,
    origin: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let legacy = config.pfsense.as_mut().map(|pf| ("pfsense".to_string(), pf));
    let named = config.targets.iter_mut().filter_map(|(name, t)| match t {
        TargetConfig::Pfsense(pf) => Some((format!("targets.{name}"), pf)),
        TargetConfig::Nftables(_) => None,
    });
    for (key, pf) in legacy.into_iter().chain(named) {
        if let Some(s) = pf.password.as_mut() {
            resolve_secret(s, &format!("{key}.password"), base, origin, env)?;
        }
        if let Some(s) = pf.api_key.as_mut() {
            resolve_secret(s, &format!("{key}.api_key"), base, origin, env)?;
        }
    }
    for (key, s) in config.alerts.secrets_mut() {
        resolve_secret(s, &key, base, origin, env)?;
    }
    Ok(())
}

fn env_secret(env: &dyn Fn(&str) -> Option<String>, direct: &str, file: &str) -> Result<Option<Secret>, ConfigError> {
    match (env_value(env, direct), env_value(env, file)) {
        (Some(_), Some(_)) => Err(env_error(direct, format!("set either `{direct}` or `{file}`, not both"))),
        (Some(value), None) => Ok(Some(Secret(value))),
        (None, Some(path)) => {
            read_secret_file(Path::new(path.trim())).map(|v| Some(Secret(v))).map_err(|m| env_error(file, m))
        }
        (None, None) => Ok(None),
    }
}

pub(super) fn apply_env_overrides(
    config: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(dir) = env_value(env, ENV_DATA_DIR) {
        config.data_dir = Some(PathBuf::from(dir));
    }

    if let Some(level) = env_value(env, ENV_LOG_LEVEL) {
        let normalized = normalize_level(&level).ok_or_else(|| {
            env_error(ENV_LOG_LEVEL, format!("must be one of {}, got `{level}`", LOG_LEVELS.join(", ")))
        })?;
        config.logging.level = normalized.to_owned();
    }

    if let Some(value) = env_value(env, ENV_RATE_LIMIT) {
        let rate: u32 = value.trim().parse().map_err(|_| {
            env_error(ENV_RATE_LIMIT, format!("must be a whole number of calls per minute (at least 1), got `{value}`"))
        })?;
        check_rate_limit(rate).map_err(|m| env_error(ENV_RATE_LIMIT, m))?;
        config.security.rate_limit = rate;
    }

    if let Some(principal) = env_value(env, ENV_PRINCIPAL) {
        config.security.principal = principal.trim().to_owned();
    }

    if let Some(bind) = env_value(env, ENV_HTTP_BIND) {
        check_bind(&bind).map_err(|m| env_error(ENV_HTTP_BIND, m))?;
        config.http.bind = bind.trim().to_owned();
    }

    if let Some(host) = env_value(env, ENV_PFSENSE_HOST) {
        check_host(&host).map_err(|m| env_error(ENV_PFSENSE_HOST, m))?;
        let host = host.trim().to_owned();
        match config.pfsense.as_mut() {
            Some(pf) => pf.host = host,
            None => config.pfsense = Some(PfSenseConfig::new(host)),
        }
    }

    let secrets = [
        (ENV_PFSENSE_API_KEY, ENV_PFSENSE_API_KEY_FILE, true),
        (ENV_PFSENSE_PASSWORD, ENV_PFSENSE_PASSWORD_FILE, false),
    ];
    for (direct, file, is_api_key) in secrets {
        let Some(secret) = env_secret(env, direct, file)? else {
            continue;
        };
        let variable = if env_value(env, direct).is_some() { direct } else { file };
        let Some(pf) = config.pfsense.as_mut() else {
            return Err(env_error(
                variable,
                format!(
                    "there is no `pfsense` section to apply it to; a `pfsense.host` is needed \
                     (set it in the configuration file or with `{ENV_PFSENSE_HOST}`)"
                ),
            ));
        };
        if is_api_key {
            pf.api_key = Some(secret);
        } else {
            pf.password = Some(secret);
        }
    }

    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::load::load_with_default;
    use crate::config::test_support::*;
    use crate::config::{ConfigSource, parse};

    #[test]
    fn env_overrides_win() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("api_key");
        std::fs::write(&key_file, "key-from-file\n").unwrap();
        let key_file = key_file.to_str().unwrap().to_owned();
        let env = env_from(&[
            (ENV_DATA_DIR, "/srv/portcullis"),
            (ENV_LOG_LEVEL, "WARNING"),
            (ENV_RATE_LIMIT, "12"),
            (ENV_PRINCIPAL, "alice"),
            (ENV_HTTP_BIND, "0.0.0.0:9000"),
            (ENV_PFSENSE_HOST, "10.0.0.1"),
            (ENV_PFSENSE_API_KEY_FILE, &key_file),
            (ENV_PFSENSE_PASSWORD, "pw-from-env"),
        ]);
        let c = parse(CUSTOMER_YAML, origin(), &env).unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("/srv/portcullis"));
        assert_eq!(c.logging.level, "warn");
        assert_eq!(c.security.rate_limit, 12);
        assert_eq!(c.security.principal, "alice");
        assert_eq!(c.http.bind, "0.0.0.0:9000");
        let pf = c.pfsense.unwrap();
        assert_eq!(pf.host, "10.0.0.1");
        assert_eq!(pf.username.as_deref(), Some("admin"));
        assert_eq!(pf.api_key.unwrap().expose(), "key-from-file");
        assert_eq!(pf.password.unwrap().expose(), "pw-from-env");
    }

    #[test]
    fn env_overrides_apply_to_defaults() {
        let env = env_from(&[(ENV_RATE_LIMIT, "5"), (ENV_PFSENSE_HOST, "fw.lan"), (ENV_PFSENSE_API_KEY, "k")]);
        let loaded = load_with_default(None, &env, None).unwrap();
        assert_eq!(loaded.source, ConfigSource::Defaults);
        assert_eq!(loaded.config.security.rate_limit, 5);
        let pf = loaded.config.pfsense.unwrap();
        assert_eq!(pf.host, "fw.lan");
        assert_eq!(pf.api_key.unwrap().expose(), "k");
    }

    #[test]
    fn empty_env_values_are_ignored() {
        let env = env_from(&[(ENV_RATE_LIMIT, ""), (ENV_CONFIG, "  ")]);
        let loaded = load_with_default(None, &env, None).unwrap();
        assert_eq!(loaded.config.security.rate_limit, 100);
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        for (var, value) in [
            (ENV_RATE_LIMIT, "0"),
            (ENV_RATE_LIMIT, "fast"),
            (ENV_RATE_LIMIT, "-3"),
            (ENV_LOG_LEVEL, "loud"),
            (ENV_HTTP_BIND, "localhost"),
            (ENV_PFSENSE_HOST, "https://fw"),
        ] {
            let env = env_from(&[(var, value)]);
            match load_with_default(None, &env, None).unwrap_err() {
                ConfigError::Env { variable, .. } => assert_eq!(variable, var),
                other => panic!("{var}={value}: {other}"),
            }
        }
    }

    #[test]
    fn env_secret_without_pfsense_section_is_an_error() {
        for var in [ENV_PFSENSE_API_KEY, ENV_PFSENSE_PASSWORD] {
            let env = env_from(&[(var, SECRET)]);
            let err = load_with_default(None, &env, None).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ConfigError::Env { .. }), "{msg}");
            assert!(msg.contains(var), "{msg}");
            assert!(msg.contains("pfsense.host"), "{msg}");
            assert!(!msg.contains(SECRET), "{msg}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, SECRET).unwrap();
        let env = env_from(&[(ENV_PFSENSE_PASSWORD_FILE, file.to_str().unwrap())]);
        let msg = load_with_default(None, &env, None).unwrap_err().to_string();
        assert!(msg.contains(ENV_PFSENSE_PASSWORD_FILE), "{msg}");
        assert!(!msg.contains(SECRET), "{msg}");
    }

    #[test]
    fn env_secret_and_file_together_is_an_error() {
        let env = env_from(&[
            (ENV_PFSENSE_HOST, "fw"),
            (ENV_PFSENSE_API_KEY, SECRET),
            (ENV_PFSENSE_API_KEY_FILE, "/nonexistent"),
        ]);
        let msg = load_with_default(None, &env, None).unwrap_err().to_string();
        assert!(msg.contains(ENV_PFSENSE_API_KEY_FILE), "{msg}");
        assert!(!msg.contains(SECRET), "{msg}");
    }

    #[test]
    fn env_and_file_secrets_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw.txt"), "pw-from-file\r\n").unwrap();
        let abs = dir.path().join("key.txt");
        std::fs::write(&abs, "key-from-abs-file\n").unwrap();
        let config_path = dir.path().join("config.yaml");
        let text =
            format!("pfsense:\n  host: fw\n  password: \"file:pw.txt\"\n  api_key: \"file:{}\"\n", abs.display());
        let c = parse(&text, &config_path, &no_env).unwrap();
        let pf = c.pfsense.unwrap();
        assert_eq!(pf.password.unwrap().expose(), "pw-from-file");
        assert_eq!(pf.api_key.unwrap().expose(), "key-from-abs-file");

        let env = env_from(&[("FW_KEY", "key-from-env")]);
        let c = parse("pfsense: {host: fw, api_key: \"env:FW_KEY\"}\n", origin(), &env).unwrap();
        assert_eq!(c.pfsense.unwrap().api_key.unwrap().expose(), "key-from-env");
    }

    #[test]
    fn unresolvable_secrets_name_key_and_source() {
        let secret_error = |yaml: &str, wanted_key: &str, names: &str| match parse_err(yaml) {
            ConfigError::Secret { key, message } => {
                assert_eq!(key, wanted_key);
                assert!(message.contains(names), "{message}");
            }
            other => panic!("{other}"),
        };
        secret_error("pfsense: {host: fw, password: \"env:MISSING_PW\"}\n", "pfsense.password", "MISSING_PW");
        secret_error(
            "pfsense: {host: fw, api_key: \"file:/nonexistent/secret\"}\n",
            "pfsense.api_key",
            "/nonexistent/secret",
        );
    }

    #[test]
    fn secrets_never_leak() {
        let env = env_from(&[("PW", SECRET)]);
        let text = format!("pfsense: {{host: fw, username: admin, password: \"env:PW\", api_key: \"{SECRET}-2\"}}\n");
        let c = parse(&text, origin(), &env).unwrap();
        let pf = c.pfsense.as_ref().unwrap();
        assert_eq!(pf.password.as_ref().unwrap().expose(), SECRET);

        let debug = format!("{c:?}");
        let pretty = format!("{c:#?}");
        let yaml = c.redacted_yaml();
        let display = format!("{}", pf.api_key.as_ref().unwrap());
        for out in [&debug, &pretty, &yaml, &display] {
            assert!(!out.contains(SECRET), "{out}");
            assert!(out.contains("***"), "{out}");
        }
        // The redacted YAML is itself a valid configuration.
        let round = parse(&yaml, origin(), &no_env).unwrap();
        assert_eq!(round.pfsense.unwrap().host, "fw");

        // Errors raised next to a secret do not show it.
        let text = format!("pfsense: {{host: fw, port: 0, password: \"{SECRET}\"}}\n");
        let err = parse_err(&text);
        assert!(!err.to_string().contains(SECRET));
        assert!(!format!("{err:?}").contains(SECRET));
        let text = format!("pfsense: {{host: fw, password: \"{SECRET}\", bogus: 1}}\n");
        let err = parse_err(&text);
        assert!(!err.to_string().contains(SECRET));
        assert!(!format!("{err:?}").contains(SECRET));
    }
}
