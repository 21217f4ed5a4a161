//! The YAML configuration file.
//!
//! Portcullis reads one YAML file (see [`load`] for where it is looked for),
//! applies `PORTCULLIS_*` environment overrides on top of it, resolves secret
//! references, and validates every value. Every error names the file, the key
//! path (for example `security.rate_limit`) or the environment variable at
//! fault, and never a secret value.
//!
//! Secrets (`pfsense.password`, `pfsense.api_key`) may be written literally,
//! as `"env:VARNAME"` (read from the environment at load time) or as
//! `"file:/path/to/secret"` (read from a file, trailing newline removed).
//! Relative paths in the file (`file:` secrets, `pfsense.ca_file`, `data_dir`,
//! `logging.file`, `logging.audit_file`) are relative to the directory of the
//! configuration file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "warning", "error"];

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why the configuration could not be loaded. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid YAML or does not match the schema
    /// (unknown key, wrong type, ...). The message carries the key path and
    /// the line/column.
    #[error("invalid configuration file `{}`: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A value in the configuration is out of range or malformed.
    #[error("invalid configuration value `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// An environment override is malformed or cannot be applied.
    #[error("invalid environment variable `{variable}`: {message}")]
    Env { variable: String, message: String },
    /// A secret reference (`env:` / `file:`) could not be resolved.
    #[error("cannot resolve secret `{key}`: {message}")]
    Secret { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>, origin: Option<&Path>) -> ConfigError {
    let mut message = message.into();
    if let Some(origin) = origin {
        message.push_str(&format!(" (in `{}`)", origin.display()));
    }
    ConfigError::Invalid { key: key.into(), message }
}

fn env_error(variable: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Env { variable: variable.to_owned(), message: message.into() }
}

// ---------------------------------------------------------------------------
// Secret
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

/// The whole configuration file. `Config::default()` is the lab setup: no
/// firewall, built-in guardrails.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The pfSense firewall to manage; `None` = lab mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pfsense: Option<PfSenseConfig>,
    pub mcp: McpConfig,
    pub security: SecurityConfig,
    pub logging: LoggingConfig,
    /// Logical interface name -> device name; empty = lab defaults.
    pub interfaces: BTreeMap<String, String>,
    /// Where state (audit store, lab) lives; `None` = [`default_data_dir`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    pub http: HttpConfig,
    /// More firewalls by name (an MSP runs many); `pfsense:` above is the target named `pfsense`.
    pub targets: BTreeMap<String, TargetConfig>,
    /// The target used when a call names none: this, else the first pfSense target, else `lab`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_target: Option<String>,
    /// Log ingestion, retention and automated responses.
    pub logs: crate::logs::LogsConfig,
    /// Where the flows of `set_egress_policy` come from, beside the configured targets' APIs.
    pub egress: EgressConfig,
}

/// The egress policy's sources (`egress:`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Networks (CIDRs or addresses) MCP clients connect from; allowed with `include_mcp_clients`.
    pub mcp_clients: Vec<String>,
    /// The resolver list DNS flows are read from, at call time.
    pub resolv_conf: PathBuf,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig { mcp_clients: Vec::new(), resolv_conf: PathBuf::from("/etc/resolv.conf") }
    }
}

impl EgressConfig {
    /// MCP client networks (validated at load).
    pub fn mcp_client_nets(&self) -> Vec<ipnet::IpNet> {
        self.mcp_clients
            .iter()
            .filter_map(|s| portcullis_core::model::parse_net("egress.mcp_clients", s).ok())
            .collect()
    }
}

/// One named firewall of `targets:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetConfig {
    Pfsense(PfSenseConfig),
    Nftables(NftablesConfig),
}

/// A Linux host or router filtered by nftables (`kind: nftables`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NftablesConfig {
    /// The `inet` table Portcullis owns; nothing outside it is touched.
    #[serde(default = "default_nft_table")]
    pub table: String,
    /// Logical interface name -> kernel device, e.g. `{lan: eth1, wan: eth0}`.
    pub interfaces: BTreeMap<String, String>,
    /// A network namespace to run `nft` in (`ip netns exec NAME nft`); unset = Portcullis' own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// The `nft` binary; unset = `nft` from `PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nft_path: Option<PathBuf>,
    /// Whether a new interface chain starts with a "default allow" rule (`false`: inbound traffic is denied
    /// until rules pass it).
    #[serde(default = "default_true")]
    pub default_allow: bool,
}

fn default_nft_table() -> String {
    "portcullis".to_owned()
}

/// The name of the embedded lab target, always present.
pub const LAB_TARGET: &str = "lab";
/// The name the legacy `pfsense:` section gets as a target.
pub const LEGACY_PFSENSE_TARGET: &str = "pfsense";

/// Connection to a pfSense firewall.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PfSenseConfig {
    pub host: String,
    #[serde(default = "default_pfsense_port")]
    pub port: u16,
    /// `http` or `https`.
    #[serde(default = "default_pfsense_protocol")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default = "default_true")]
    pub verify_ssl: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Request timeout in seconds; `None` = `security.timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

impl PfSenseConfig {
    /// A pfSense section with only `host` set and every other key defaulted.
    pub fn new(host: impl Into<String>) -> Self {
        PfSenseConfig {
            host: host.into(),
            port: default_pfsense_port(),
            protocol: default_pfsense_protocol(),
            username: None,
            password: None,
            api_key: None,
            verify_ssl: true,
            ca_file: None,
            timeout: None,
        }
    }

    /// `protocol://host:port`.
    #[allow(dead_code)] // helper for callers; not every caller needs it
    pub fn base_url(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("{}://[{}]:{}", self.protocol, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.protocol, self.host, self.port)
        }
    }
}

fn default_pfsense_port() -> u16 {
    443
}

fn default_pfsense_protocol() -> String {
    "https".to_owned()
}

fn default_true() -> bool {
    true
}

/// How the MCP server introduces itself.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    pub server_name: String,
    pub version: String,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig { server_name: "portcullis".to_owned(), version: env!("CARGO_PKG_VERSION").to_owned() }
    }
}

/// Guardrails.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Calls per minute per principal (>= 1).
    pub rate_limit: u32,
    /// Operation timeout in seconds (>= 1).
    pub timeout: u64,
    /// `None` = every operation allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_operations: Option<Vec<String>>,
    pub denied_operations: Vec<String>,
    pub restricted_interfaces: Vec<String>,
    /// Changes scoring above this (0..=100) are refused.
    pub max_risk_score: u8,
    /// Name of the principal using the stdio transport.
    pub principal: String,
    /// Principals and their roles. Built-in role names (viewer, operator, admin) are principals of that role
    /// without an entry here.
    pub principals: BTreeMap<String, PrincipalConfig>,
    /// Custom roles: permission level per category and caps.
    pub roles: BTreeMap<String, portcullis_guard::Role>,
    /// Calls per minute per principal and class; `rate_limit` above is the default class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimitsConfig>,
    /// Addresses and networks that are never blocked (management hosts, a never-block list).
    pub protected_addresses: Vec<String>,
    pub management_hosts: Vec<String>,
    /// Flows no change may cut, beyond those of `management_hosts` (which keep 443 and 22 to the firewall).
    pub management_flows: Vec<portcullis_core::lockout::ManagementFlow>,
    /// How long a pending human approval stays valid (e.g. 15m).
    pub approval_ttl: String,
    /// Changes on restricted interfaces are applied with this confirmation window (e.g. 5m) unless the call
    /// sets `confirm_within`; unconfirmed, they are undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_within: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_weights: Option<portcullis_guard::RiskWeights>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    pub role: String,
}

/// Per-class rate limits (calls per minute per principal).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<u32>,
    pub sensitive: u32,
    pub admin: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self { default: None, sensitive: 10, admin: 5 }
    }
}

impl SecurityConfig {
    /// The role of a principal: its entry in `principals`, or the role of the same name.
    pub fn role_of(&self, principal: &str) -> Option<String> {
        if let Some(p) = self.principals.get(principal) {
            return Some(p.role.clone());
        }
        let builtin = portcullis_guard::roles::BUILTIN_ROLES.contains(&principal);
        (builtin || self.roles.contains_key(principal)).then(|| principal.to_string())
    }

    pub fn rate_quotas(&self) -> portcullis_guard::RateQuotas {
        let classes = self.rate_limits.clone().unwrap_or_default();
        portcullis_guard::RateQuotas {
            default: classes.default.unwrap_or(self.rate_limit),
            sensitive: classes.sensitive,
            admin: classes.admin,
        }
    }

    /// Management hosts as networks (validated at load).
    pub fn management_nets(&self) -> Vec<ipnet::IpNet> {
        self.management_hosts
            .iter()
            .filter_map(|s| portcullis_core::model::parse_net("security.management_hosts", s).ok())
            .collect()
    }

    /// Management hosts and protected addresses as networks (validated at load).
    pub fn protected_nets(&self) -> Vec<ipnet::IpNet> {
        self.protected_addresses
            .iter()
            .chain(&self.management_hosts)
            .filter_map(|s| portcullis_core::model::parse_net("security.protected_addresses", s).ok())
            .collect()
    }

    pub fn confirm_restricted(&self) -> Option<chrono::TimeDelta> {
        self.confirm_within.as_deref().and_then(|w| portcullis_core::duration::parse_span("confirm_within", w).ok())
    }

    pub fn approval_ttl(&self) -> chrono::TimeDelta {
        portcullis_core::duration::parse_span("security.approval_ttl", &self.approval_ttl)
            .unwrap_or(chrono::TimeDelta::minutes(15))
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            rate_limit: 100,
            timeout: 30,
            allowed_operations: None,
            denied_operations: Vec::new(),
            restricted_interfaces: Vec::new(),
            max_risk_score: 80,
            principal: "operator".to_owned(),
            principals: BTreeMap::new(),
            roles: BTreeMap::new(),
            rate_limits: None,
            protected_addresses: Vec::new(),
            management_hosts: Vec::new(),
            management_flows: Vec::new(),
            approval_ttl: "15m".to_owned(),
            confirm_within: None,
            risk_weights: None,
        }
    }
}

/// Logging. `level` is normalised to lower case, `warning` to `warn`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub level: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_file: Option<PathBuf>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig { level: "info".to_owned(), file: None, audit_file: None }
    }
}

impl LoggingConfig {
    /// The level as a `tracing` level (unknown values fall back to INFO;
    /// they cannot occur after validation).
    #[allow(dead_code)] // helper for callers; not every caller needs it
    pub fn tracing_level(&self) -> tracing::Level {
        normalize_level(&self.level).and_then(|l| l.parse().ok()).unwrap_or(tracing::Level::INFO)
    }
}

/// The streamable-HTTP MCP transport.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Socket address to listen on.
    pub bind: String,
    /// Bearer tokens, by SHA-256 hash.
    pub tokens: Vec<TokenConfig>,
    /// Allowed `Origin` header values.
    pub allowed_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { bind: "127.0.0.1:8787".to_owned(), tokens: Vec::new(), allowed_origins: Vec::new() }
    }
}

impl HttpConfig {
    /// The principal whose token hashes to the same SHA-256 as `token`.
    #[allow(dead_code)] // helper for callers; not every caller needs it
    pub fn principal_for_token(&self, token: &str) -> Option<&str> {
        let digest = hash_token(token);
        self.tokens
            .iter()
            .find(|t| constant_time_eq(t.sha256.as_bytes(), digest.as_bytes()))
            .map(|t| t.principal.as_str())
    }
}

/// A bearer token for the HTTP transport: the plain token never appears in
/// the configuration, only its SHA-256 (lower-case hex after loading).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub principal: String,
    pub sha256: String,
}

/// Lower-case hex SHA-256 of a bearer token, as stored in `http.tokens`.
#[allow(dead_code)] // helper for callers; not every caller needs it
pub fn hash_token(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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

impl Config {
    /// `data_dir`, or [`default_data_dir`] when unset.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// Every configured pfSense firewall by target name, the legacy section first.
    pub fn pfsense_targets(&self) -> Vec<(String, &PfSenseConfig)> {
        let legacy = self.pfsense.iter().map(|pf| (LEGACY_PFSENSE_TARGET.to_string(), pf));
        let named = self.targets.iter().filter_map(|(name, t)| match t {
            TargetConfig::Pfsense(pf) => Some((name.clone(), pf)),
            TargetConfig::Nftables(_) => None,
        });
        legacy.chain(named).collect()
    }

    /// Every configured nftables target by name.
    pub fn nftables_targets(&self) -> Vec<(String, &NftablesConfig)> {
        self.targets
            .iter()
            .filter_map(|(name, t)| match t {
                TargetConfig::Nftables(nft) => Some((name.clone(), nft)),
                TargetConfig::Pfsense(_) => None,
            })
            .collect()
    }

    /// The target used when a call names none.
    pub fn default_target(&self) -> String {
        self.default_target
            .clone()
            .or_else(|| self.pfsense_targets().first().map(|(name, _)| name.clone()))
            .unwrap_or_else(|| LAB_TARGET.to_string())
    }

    /// The effective configuration as YAML, secrets shown as `***`.
    pub fn redacted_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }
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

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Loads the configuration.
///
/// The file is, in order: `explicit_path` (must exist), the file named by
/// `PORTCULLIS_CONFIG` (must exist), the platform configuration directory's
/// `config.yaml` (if it exists), else built-in defaults. Environment
/// overrides are applied in every case. `env` looks up environment variables.
pub fn load(explicit_path: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<LoadedConfig, ConfigError> {
    load_with_default(explicit_path, env, default_config_path().as_deref())
}

fn load_with_default(
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

fn env_value(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

fn resolve_relative(base: &Path, path: &mut PathBuf) {
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

fn resolve_secrets(
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
    Ok(())
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

fn normalize_level(level: &str) -> Option<&'static str> {
    let lower = level.trim().to_ascii_lowercase();
    match lower.as_str() {
        "trace" => Some("trace"),
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" => Some("error"),
        _ => None,
    }
}

fn check_host(host: &str) -> Result<(), String> {
    let host = host.trim();
    if host.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if host.contains("://") {
        return Err(format!(
            "must be a host name or IP address without a scheme, got `{host}` \
             (set `pfsense.protocol` for http/https)"
        ));
    }
    if host.contains('/') || host.chars().any(char::is_whitespace) {
        return Err(format!("must be a host name or IP address, got `{host}`"));
    }
    Ok(())
}

fn check_bind(bind: &str) -> Result<(), String> {
    bind.trim()
        .parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|_| format!("must be a socket address such as `127.0.0.1:8787`, got `{bind}`"))
}

fn check_rate_limit(value: u32) -> Result<(), String> {
    if value == 0 { Err("must be at least 1 call per minute, got 0".to_owned()) } else { Ok(()) }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_pfsense(pf: &mut PfSenseConfig, key: &str, o: Option<&Path>) -> Result<(), ConfigError> {
    check_host(&pf.host).map_err(|m| invalid(format!("{key}.host"), m, o))?;
    pf.host = pf.host.trim().to_owned();
    if pf.port == 0 {
        return Err(invalid(format!("{key}.port"), "must be between 1 and 65535, got 0", o));
    }
    let protocol = pf.protocol.trim().to_ascii_lowercase();
    if protocol != "http" && protocol != "https" {
        return Err(invalid(format!("{key}.protocol"), format!("must be `http` or `https`, got `{}`", pf.protocol), o));
    }
    pf.protocol = protocol;
    if pf.timeout == Some(0) {
        return Err(invalid(format!("{key}.timeout"), "must be at least 1 second, got 0", o));
    }
    Ok(())
}

/// Names that reach `nft` and `ip` as arguments: letters, digits, `_`, `-` and `.`, nothing a shell or nft
/// would read differently.
fn is_plain_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn validate_nftables(nft: &mut NftablesConfig, key: &str, o: Option<&Path>) -> Result<(), ConfigError> {
    if !is_identifier(&nft.table) || nft.table.len() > 64 {
        return Err(invalid(
            format!("{key}.table"),
            format!("`{}` is not a table name (letters, digits, _)", nft.table),
            o,
        ));
    }
    if nft.interfaces.is_empty() {
        return Err(invalid(format!("{key}.interfaces"), "name at least one interface, e.g. {lan: eth1}", o));
    }
    let mut devices = std::collections::HashSet::new();
    for (logical, device) in &nft.interfaces {
        if !is_identifier(logical) || logical.len() > 32 {
            return Err(invalid(
                format!("{key}.interfaces.{logical}"),
                "logical interface names are identifiers (letters, digits, _) of at most 32 characters",
                o,
            ));
        }
        // IFNAMSIZ: kernel device names have at most 15 characters.
        if !is_plain_name(device, 15) {
            return Err(invalid(
                format!("{key}.interfaces.{logical}"),
                format!("`{device}` is not a kernel device name (at most 15 letters, digits, _ - .)"),
                o,
            ));
        }
        if !devices.insert(device.as_str()) {
            return Err(invalid(
                format!("{key}.interfaces.{logical}"),
                format!("device `{device}` is mapped twice"),
                o,
            ));
        }
    }
    nft.interfaces =
        std::mem::take(&mut nft.interfaces).into_iter().map(|(l, d)| (l.to_ascii_lowercase(), d)).collect();
    if let Some(ns) = &nft.netns
        && !is_plain_name(ns, 64)
    {
        return Err(invalid(format!("{key}.netns"), format!("`{ns}` is not a network namespace name"), o));
    }
    Ok(())
}

fn validate(config: &mut Config, origin: &Path) -> Result<(), ConfigError> {
    let o = Some(origin);

    if let Some(pf) = config.pfsense.as_mut() {
        validate_pfsense(pf, "pfsense", o)?;
    }
    for (name, target) in config.targets.iter_mut() {
        if !is_identifier(name) || name == LAB_TARGET || name == LEGACY_PFSENSE_TARGET && config.pfsense.is_some() {
            return Err(invalid(
                format!("targets.{name}"),
                "target names are identifiers, and `lab` (and `pfsense` when the pfsense section is used) are taken",
                o,
            ));
        }
        match target {
            TargetConfig::Pfsense(pf) => validate_pfsense(pf, &format!("targets.{name}"), o)?,
            TargetConfig::Nftables(nft) => validate_nftables(nft, &format!("targets.{name}"), o)?,
        }
    }
    if let Some(default) = &config.default_target {
        let known = default == LAB_TARGET
            || config.pfsense_targets().iter().any(|(n, _)| n == default)
            || config.targets.contains_key(default);
        if !known {
            return Err(invalid("default_target", format!("no target named `{default}`"), o));
        }
    }

    config.logs.validate().map_err(|(key, message)| invalid(key, message, o))?;

    if config.mcp.server_name.trim().is_empty() {
        return Err(invalid("mcp.server_name", "must not be empty", o));
    }

    let sec = &config.security;
    check_rate_limit(sec.rate_limit).map_err(|m| invalid("security.rate_limit", m, o))?;
    if sec.timeout == 0 {
        return Err(invalid("security.timeout", "must be at least 1 second, got 0", o));
    }
    if sec.max_risk_score > 100 {
        return Err(invalid(
            "security.max_risk_score",
            format!("must be between 0 and 100, got {}", sec.max_risk_score),
            o,
        ));
    }
    if sec.principal.trim().is_empty() {
        return Err(invalid("security.principal", "must not be empty", o));
    }
    let lists = [
        ("security.allowed_operations", sec.allowed_operations.as_deref().unwrap_or(&[])),
        ("security.denied_operations", &sec.denied_operations[..]),
        ("security.restricted_interfaces", &sec.restricted_interfaces[..]),
    ];
    for (key, list) in lists {
        if let Some(i) = list.iter().position(|s| s.trim().is_empty()) {
            return Err(invalid(format!("{key}[{i}]"), "must not be empty", o));
        }
    }

    match normalize_level(&config.logging.level) {
        Some(level) => config.logging.level = level.to_owned(),
        None => {
            return Err(invalid(
                "logging.level",
                format!("must be one of {}, got `{}`", LOG_LEVELS.join(", "), config.logging.level),
                o,
            ));
        }
    }

    for (name, device) in &config.interfaces {
        if !is_identifier(name) {
            return Err(invalid(
                format!("interfaces.{name}"),
                "interface names must start with a letter and contain only letters, digits and `_`",
                o,
            ));
        }
        if device.trim().is_empty() {
            return Err(invalid(format!("interfaces.{name}"), "the device name must not be empty", o));
        }
    }

    check_bind(&config.http.bind).map_err(|m| invalid("http.bind", m, o))?;
    let mut seen = BTreeSet::new();
    for (i, token) in config.http.tokens.iter_mut().enumerate() {
        if token.principal.trim().is_empty() {
            return Err(invalid(format!("http.tokens[{i}].principal"), "must not be empty", o));
        }
        let hash = token.sha256.trim();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                format!("http.tokens[{i}].sha256"),
                "must be the SHA-256 of the token as 64 hexadecimal characters \
                 (the plain token never goes in the configuration)",
                o,
            ));
        }
        token.sha256 = hash.to_ascii_lowercase();
        if !seen.insert(token.sha256.clone()) {
            return Err(invalid(format!("http.tokens[{i}].sha256"), "the same token hash is listed more than once", o));
        }
    }
    if let Some(i) = config.http.allowed_origins.iter().position(|s| s.trim().is_empty()) {
        return Err(invalid(format!("http.allowed_origins[{i}]"), "must not be empty", o));
    }

    validate_access(config, o)
}

/// Principals, roles, tokens, rate classes, protected addresses and the approval TTL.
fn validate_access(config: &Config, o: Option<&Path>) -> Result<(), ConfigError> {
    let sec = &config.security;
    for name in sec.roles.keys() {
        if portcullis_guard::roles::BUILTIN_ROLES.contains(&name.as_str()) {
            return Err(invalid(format!("security.roles.{name}"), "built-in roles cannot be redefined", o));
        }
    }
    for (name, p) in &sec.principals {
        let known =
            portcullis_guard::roles::BUILTIN_ROLES.contains(&p.role.as_str()) || sec.roles.contains_key(&p.role);
        if !known {
            return Err(invalid(format!("security.principals.{name}.role"), format!("no role named `{}`", p.role), o));
        }
    }
    if sec.role_of(&sec.principal).is_none() {
        return Err(invalid(
            "security.principal",
            format!("`{}` has no role: add security.principals.{}.role", sec.principal, sec.principal),
            o,
        ));
    }
    for (i, token) in config.http.tokens.iter().enumerate() {
        if sec.role_of(&token.principal).is_none() {
            return Err(invalid(
                format!("http.tokens[{i}].principal"),
                format!("`{}` has no role: add security.principals.{}.role", token.principal, token.principal),
                o,
            ));
        }
    }
    if let Some(limits) = &sec.rate_limits {
        let classes =
            [("default", limits.default.unwrap_or(1)), ("sensitive", limits.sensitive), ("admin", limits.admin)];
        for (class, n) in classes {
            check_rate_limit(n).map_err(|m| invalid(format!("security.rate_limits.{class}"), m, o))?;
        }
    }
    for (key, list) in [
        ("security.protected_addresses", &sec.protected_addresses),
        ("security.management_hosts", &sec.management_hosts),
        ("egress.mcp_clients", &config.egress.mcp_clients),
    ] {
        for (i, s) in list.iter().enumerate() {
            portcullis_core::model::parse_net("address", s)
                .map_err(|e| invalid(format!("{key}[{i}]"), e.message, o))?;
        }
    }
    portcullis_core::duration::parse_span("approval_ttl", &sec.approval_ttl)
        .map_err(|e| invalid("security.approval_ttl", e.message, o))?;
    if let Some(w) = &sec.confirm_within {
        portcullis_core::duration::parse_span("confirm_within", w)
            .map_err(|e| invalid("security.confirm_within", e.message, o))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Environment overrides
// ---------------------------------------------------------------------------

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

fn apply_env_overrides(config: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
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

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const CUSTOMER_YAML: &str = r#"pfsense: {host: "192.168.1.1", port: 443, protocol: "https", username: "admin", password: "...",
          api_key: "...", verify_ssl: true}
mcp: {server_name: "pfsense-network-security", version: "1.0.0"}
security: {rate_limit: 50, timeout: 30,
           allowed_operations: [read_rules, create_rule, modify_rule, delete_rule, read_logs, block_ip],
           restricted_interfaces: [wan]}
logging: {level: INFO, file: /var/log/pfsense-mcp.log, audit_file: /var/log/pfsense-mcp-audit.log}
interfaces: {wan: em0, lan: em1, dmz: em2}
"#;

    const SECRET: &str = "hunter2-very-secret-value";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k: &str| map.get(k).cloned()
    }

    fn origin() -> &'static Path {
        Path::new("/etc/portcullis/config.yaml")
    }

    fn parse_err(text: &str) -> ConfigError {
        parse(text, origin(), &no_env).expect_err("expected an error")
    }

    fn assert_invalid_key(text: &str, expected_key: &str) {
        match parse_err(text) {
            ConfigError::Invalid { key, message } => {
                assert_eq!(key, expected_key, "message: {message}");
                assert!(message.contains("/etc/portcullis/config.yaml"), "{message}");
            }
            other => panic!("expected Invalid for {expected_key}, got {other}"),
        }
    }

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
    fn defaults_are_the_lab_defaults() {
        let c = Config::default();
        assert!(c.pfsense.is_none());
        assert_eq!(c.mcp.server_name, "portcullis");
        assert_eq!(c.mcp.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(c.security.rate_limit, 100);
        assert_eq!(c.security.timeout, 30);
        assert!(c.security.allowed_operations.is_none());
        assert_eq!(c.security.max_risk_score, 80);
        assert_eq!(c.security.principal, "operator");
        assert_eq!(c.logging.level, "info");
        assert!(c.interfaces.is_empty());
        assert_eq!(c.http.bind, "127.0.0.1:8787");
        assert_eq!(c.data_dir(), default_data_dir());
        // The defaults pass validation.
        let mut d = Config::default();
        validate(&mut d, origin()).unwrap();
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
    fn partial_sections_keep_defaults() {
        let c = parse("pfsense: {host: fw.example}\nsecurity: {rate_limit: 7}\n", origin(), &no_env).unwrap();
        let pf = c.pfsense.unwrap();
        assert_eq!((pf.port, pf.protocol.as_str(), pf.verify_ssl), (443, "https", true));
        assert_eq!(pf.base_url(), "https://fw.example:443");
        assert_eq!(c.security.rate_limit, 7);
        assert_eq!(c.security.timeout, 30);
        assert_eq!(c.security.max_risk_score, 80);
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let err = parse_err("securty: {rate_limit: 5}\n");
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
        assert!(msg.contains("unknown key `securty`"), "{msg}");
        assert!(msg.contains("expected one of"), "{msg}");
        let msg = parse_err("mcp: {}\n\"securty\": 1\n").to_string();
        assert!(msg.contains("unknown key `securty`"), "{msg}");
        assert!(msg.contains("at line 2"), "{msg}");
        assert!(msg.contains("/etc/portcullis/config.yaml"), "{msg}");
    }

    #[test]
    fn unknown_nested_key_is_named_with_path() {
        let err = parse_err("security: {rate_limt: 5}\n");
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
        assert!(msg.contains("unknown key `security.rate_limt`"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");

        let err = parse_err("http:\n  tokens:\n    - principal: bot\n      sha256: abc\n      token: plain\n");
        let msg = err.to_string();
        assert!(msg.contains("`http.tokens[0].token`"), "{msg}");
        assert!(msg.contains("line 5"), "{msg}");

        let msg = parse_err("pfsense: {host: fw, apikey: x}\n").to_string();
        assert!(msg.contains("`pfsense.apikey`"), "{msg}");
    }

    #[test]
    fn missing_pfsense_host_is_an_error() {
        let msg = parse_err("pfsense: {port: 443}\n").to_string();
        assert!(msg.contains("host"), "{msg}");
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
        let err = parse_err("pfsense: {host: fw, password: \"env:MISSING_PW\"}\n");
        match &err {
            ConfigError::Secret { key, message } => {
                assert_eq!(key, "pfsense.password");
                assert!(message.contains("MISSING_PW"), "{message}");
            }
            other => panic!("{other}"),
        }
        let err = parse_err("pfsense: {host: fw, api_key: \"file:/nonexistent/secret\"}\n");
        match &err {
            ConfigError::Secret { key, message } => {
                assert_eq!(key, "pfsense.api_key");
                assert!(message.contains("/nonexistent/secret"), "{message}");
            }
            other => panic!("{other}"),
        }
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

    #[test]
    fn invalid_values_name_their_keys() {
        assert_invalid_key("pfsense: {host: fw, protocol: ftp}\n", "pfsense.protocol");
        assert_invalid_key("pfsense: {host: fw, port: 0}\n", "pfsense.port");
        assert_invalid_key("pfsense: {host: \"https://fw\"}\n", "pfsense.host");
        assert_invalid_key("pfsense: {host: fw, timeout: 0}\n", "pfsense.timeout");
        assert_invalid_key("security: {rate_limit: 0}\n", "security.rate_limit");
        assert_invalid_key("security: {timeout: 0}\n", "security.timeout");
        assert_invalid_key("security: {max_risk_score: 101}\n", "security.max_risk_score");
        assert_invalid_key("security: {principal: \"\"}\n", "security.principal");
        assert_invalid_key("logging: {level: verbose}\n", "logging.level");
        assert_invalid_key("http: {bind: \"localhost\"}\n", "http.bind");
        assert_invalid_key("http: {tokens: [{principal: bot, sha256: abc123}]}\n", "http.tokens[0].sha256");
        assert_invalid_key(
            &format!("http: {{tokens: [{{principal: bot, sha256: {}}}]}}\n", "g".repeat(64)),
            "http.tokens[0].sha256",
        );
        assert_invalid_key("interfaces: {1wan: em0}\n", "interfaces.1wan");
        assert_invalid_key("interfaces: {\"w-an\": em0}\n", "interfaces.w-an");
        assert_invalid_key("interfaces: {wan: \"\"}\n", "interfaces.wan");
    }

    #[test]
    fn principals_roles_and_guard_settings_load_and_are_checked() {
        let text = "security:\n  principal: alice\n  principals: {alice: {role: auditor}, bob: {role: admin}}\n  \
                    roles: {auditor: {permissions: {analytics: read, system: read}}}\n  \
                    rate_limits: {sensitive: 4, admin: 2}\n  protected_addresses: [10.0.0.0/24, 192.0.2.10]\n  \
                    approval_ttl: 5m\n  risk_weights: {permanent: 30}\n";
        let c = parse(text, origin(), &no_env).unwrap();
        assert_eq!(c.security.role_of("alice").as_deref(), Some("auditor"));
        assert_eq!(c.security.role_of("operator").as_deref(), Some("operator"));
        assert_eq!(c.security.role_of("mallory"), None);
        let q = c.security.rate_quotas();
        assert_eq!((q.default, q.sensitive, q.admin), (100, 4, 2));
        assert_eq!(c.security.protected_nets().len(), 2);
        assert_eq!(c.security.approval_ttl(), chrono::TimeDelta::minutes(5));
        assert_eq!(c.security.risk_weights.unwrap().permanent, 30);

        assert_invalid_key("security: {principal: mallory}\n", "security.principal");
        assert_invalid_key("security: {principals: {a: {role: root}}}\n", "security.principals.a.role");
        assert_invalid_key("security: {roles: {admin: {}}}\n", "security.roles.admin");
        assert_invalid_key("security: {protected_addresses: [10.0.0.0/33]}\n", "security.protected_addresses[0]");
        assert_invalid_key("egress: {mcp_clients: [192.0.2.0/24, nope]}\n", "egress.mcp_clients[1]");
        assert_invalid_key("security: {approval_ttl: -5m}\n", "security.approval_ttl");
        assert_invalid_key("security: {rate_limits: {sensitive: 0}}\n", "security.rate_limits.sensitive");
    }

    #[test]
    fn several_targets_and_the_default() {
        let env = |name: &str| (name == "HQ_KEY").then(|| "hq-secret".to_string());
        let text = "pfsense: {host: 192.0.2.1, api_key: k}\n\
                    targets:\n  branch: {kind: pfsense, host: 192.0.2.2, api_key: \"env:HQ_KEY\", verify_ssl: false}\n\
                    default_target: branch\n";
        let c = parse(text, origin(), &env).unwrap();
        let names: Vec<String> = c.pfsense_targets().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["pfsense", "branch"]);
        assert_eq!(c.default_target(), "branch");
        assert_eq!(c.pfsense_targets()[1].1.api_key.as_ref().unwrap().expose(), "hq-secret");
        assert_eq!(parse("pfsense: {host: fw}\n", origin(), &no_env).unwrap().default_target(), "pfsense");
        assert_eq!(Config::default().default_target(), "lab");
        assert_invalid_key("default_target: nowhere\n", "default_target");
        assert_invalid_key("targets: {lab: {kind: pfsense, host: fw}}\n", "targets.lab");
        assert_invalid_key("targets: {b: {kind: pfsense, host: fw, port: 0}}\n", "targets.b.port");
        assert!(parse("targets: {b: {kind: pfsense, host: fw, colour: red}}\n", origin(), &no_env).is_err());
    }

    #[test]
    fn nftables_targets_load_and_name_their_bad_fields() {
        let text = "targets:\n  router: {kind: nftables, interfaces: {LAN: eth1, wan: eth0}, netns: edge}\n\
                    default_target: router\n";
        let c = parse(text, origin(), &no_env).unwrap();
        let (name, nft) = &c.nftables_targets()[0];
        assert_eq!((name.as_str(), nft.table.as_str(), nft.netns.as_deref()), ("router", "portcullis", Some("edge")));
        assert_eq!(nft.interfaces.get("lan").map(String::as_str), Some("eth1"));
        assert!(nft.default_allow);
        assert_eq!(c.default_target(), "router");
        assert!(c.pfsense_targets().is_empty());
        assert_invalid_key("targets: {r: {kind: nftables, interfaces: {}}}\n", "targets.r.interfaces");
        assert_invalid_key(
            "targets: {r: {kind: nftables, interfaces: {lan: \"eth0;rm\"}}}\n",
            "targets.r.interfaces.lan",
        );
        assert_invalid_key(
            "targets: {r: {kind: nftables, interfaces: {lan: e0}, table: \"x y\"}}\n",
            "targets.r.table",
        );
        assert_invalid_key(
            "targets: {r: {kind: nftables, interfaces: {lan: e0}, netns: \"a/b\"}}\n",
            "targets.r.netns",
        );
        assert_invalid_key(
            "targets: {r: {kind: nftables, interfaces: {lan: e0, wan: e0}}}\n",
            "targets.r.interfaces.wan",
        );
        let err = parse("targets: {r: {kind: nftables, interfaces: {lan: e0}, colour: red}}\n", origin(), &no_env);
        assert!(err.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn normalisations() {
        let hash = hash_token("s3cret-token").to_ascii_uppercase();
        let text = format!(
            "pfsense: {{host: fw, protocol: HTTP}}\nlogging: {{level: Warning}}\n\
             security: {{principals: {{bot: {{role: operator}}}}}}\n\
             http: {{tokens: [{{principal: bot, sha256: {hash}}}]}}\n"
        );
        let c = parse(&text, origin(), &no_env).unwrap();
        assert_eq!(c.pfsense.unwrap().protocol, "http");
        assert_eq!(c.logging.level, "warn");
        assert_eq!(c.logging.tracing_level(), tracing::Level::WARN);
        assert_eq!(c.http.tokens[0].sha256, hash.to_ascii_lowercase());
        assert_eq!(c.http.principal_for_token("s3cret-token"), Some("bot"));
        assert_eq!(c.http.principal_for_token("wrong"), None);
        for level in ["trace", "DEBUG", "Info", "warn", "ERROR"] {
            let text = format!("logging: {{level: {level}}}\n");
            assert!(parse(&text, origin(), &no_env).is_ok(), "{level}");
        }
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let c = parse("data_dir: state\nlogging: {file: log/p.log, audit_file: /abs/audit.log}\n", origin(), &no_env)
            .unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("/etc/portcullis/state"));
        assert_eq!(c.logging.file.as_deref(), Some(Path::new("/etc/portcullis/log/p.log")));
        assert_eq!(c.logging.audit_file.as_deref(), Some(Path::new("/abs/audit.log")));
    }

    #[test]
    fn duplicate_token_hashes_are_rejected() {
        let h = hash_token("t");
        let text = format!("http: {{tokens: [{{principal: a, sha256: {h}}}, {{principal: b, sha256: {h}}}]}}\n");
        assert_invalid_key(&text, "http.tokens[1].sha256");
    }

    #[test]
    fn hash_token_is_sha256_hex() {
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
