//! The file's shape: one serde struct per section, each with `deny_unknown_fields` so that a misspelt key is an
//! error rather than a silently ignored setting, and defaults that make an empty file the lab setup.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::env::Secret;
use super::load::default_data_dir;
use super::logs::LogsConfig;
use super::validate::normalize_level;

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
    pub logs: LogsConfig,
    /// Where the flows of `set_egress_policy` come from, beside the configured targets' APIs.
    pub egress: EgressConfig,
    /// Who may approve a change that waits for a person.
    pub approvals: ApprovalsConfig,
    /// The offline country database.
    pub geoip: GeoipConfig,
    /// The sensors traffic may be copied to, and the bounds of every mirror.
    pub mirroring: super::mirroring::MirroringConfig,
    /// How `block_domain` resolves names and how often it asks again.
    pub domains: super::domains::DomainsConfig,
    /// When a device counts as gone, the vendor registry, and DHCP leases files.
    pub devices: super::devices::DevicesConfig,
    /// Where alarms go to reach people, and which threats raise one.
    pub alerts: super::alerts::AlertsConfig,
}

/// The offline country database (`geoip:`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoipConfig {
    /// A MaxMind DB country file, in the DB-IP Lite layout (`country_code`) or GeoLite2's (`country.iso_code`).
    /// Default: `<data_dir>/geoip/country.mmdb`, where `portcullis geoip install FILE` puts one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<PathBuf>,
}

/// Approvals (`approvals:`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// Four eyes: the principal who asked for a change cannot approve it; another principal must, at the CLI
    /// (`PORTCULLIS_PRINCIPAL=alice portcullis approve ID`). An MCP client's own prompt is then not asked either,
    /// since the person there is the one who asked.
    pub distinct_approver: bool,
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
    /// Count traffic per device address (`get_bandwidth_usage`): Portcullis makes the table `inet <table>_acct`
    /// (counting only) on the first reading.
    #[serde(default)]
    pub accounting: bool,
    /// A WireGuard interface brought up beforehand whose peers are this target's VPN users (`create_vpn_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<WireguardConfig>,
}

/// `targets.<name>.wireguard`: the interface Portcullis adds VPN users to as peers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireguardConfig {
    /// The interface (`wg0`).
    pub interface: String,
    /// The server's own tunnel address with the tunnel network's prefix (`10.8.0.1/24`).
    pub address: ipnet::IpNet,
    /// `host:port` clients connect to (the public address and listen port).
    pub endpoint: String,
    /// What clients send through the tunnel (default: the tunnel network).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_allowed_ips: Vec<ipnet::IpNet>,
    /// DNS servers the client configuration names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_dns: Vec<std::net::IpAddr>,
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
    /// How long recent reads are used (every pfRest request runs PHP on the appliance).
    #[serde(default)]
    pub cache: PfSenseCacheConfig,
    /// The most prefixes one geo list (a country and family) may hold on this firewall: pfRest validates each
    /// entry against every alias, so a write costs the square of the list's length.
    #[serde(default = "default_geo_alias_max_entries")]
    pub geo_alias_max_entries: usize,
    /// Mirrors as pf rules loaded through pfRest's root shell (`diagnostics/command_prompt`). Root-equivalent:
    /// off by default, and with it only admins may mirror on this target.
    #[serde(default)]
    pub allow_shell: bool,
    /// The host (name or address) WireGuard clients reach this firewall at, written into the client
    /// configurations of `create_vpn_user`; default: `host`.
    #[serde(default)]
    pub vpn_endpoint_host: Option<String>,
}

fn default_geo_alias_max_entries() -> usize {
    portcullis_pfsense::DEFAULT_GEO_ALIAS_MAX_ENTRIES
}

/// `cache:` of a pfSense target, in seconds; 0 reads the part for every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PfSenseCacheConfig {
    /// Interfaces' configuration and status.
    #[serde(default = "default_interfaces_max_age")]
    pub interfaces_max_age: u64,
    /// Rules and aliases as the background a change is judged against and log entries are linked with; the
    /// objects a change touches and the rules a rules read returns are always read now.
    #[serde(default = "default_state_max_age")]
    pub state_max_age: u64,
}

impl Default for PfSenseCacheConfig {
    fn default() -> Self {
        PfSenseCacheConfig { interfaces_max_age: default_interfaces_max_age(), state_max_age: default_state_max_age() }
    }
}

fn default_interfaces_max_age() -> u64 {
    300
}

fn default_state_max_age() -> u64 {
    30
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
            cache: PfSenseCacheConfig::default(),
            geo_alias_max_entries: default_geo_alias_max_entries(),
            allow_shell: false,
            vpn_endpoint_host: None,
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
    /// Starting and stopping traffic mirrors.
    pub mirror: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self { default: None, sensitive: 10, admin: 5, mirror: 6 }
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
            mirror: classes.mirror,
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
    /// `serve`'s log, appended at `level` as well as stderr (created with mode 0600); `None`: stderr only.
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
/// A bearer token for the HTTP transport: the plain token never appears in
/// the configuration, only its SHA-256 (lower-case hex after loading).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub principal: String,
    pub sha256: String,
}

impl Config {
    /// `data_dir`, or [`default_data_dir`] when unset.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// Where `portcullis geoip install` puts the country database.
    pub fn installed_geoip_database(&self) -> PathBuf {
        self.data_dir().join("geoip").join("country.mmdb")
    }

    /// The country database to open: the configured one (which must open), else the installed one if there is
    /// one. `(path, configured)`.
    pub fn geoip_database(&self) -> Option<(PathBuf, bool)> {
        match &self.geoip.database {
            Some(p) => Some((p.clone(), true)),
            None => Some(self.installed_geoip_database()).filter(|p| p.exists()).map(|p| (p, false)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;
    use crate::config::{parse, validate::validate};

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
    fn missing_pfsense_host_is_an_error() {
        let msg = parse_err("pfsense: {port: 443}\n").to_string();
        assert!(msg.contains("host"), "{msg}");
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
}
