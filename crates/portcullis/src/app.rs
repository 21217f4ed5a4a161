//! Wiring: from a loaded config to the one `ToolService` that MCP and the CLI share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_guard::{Auditor, Guard, GuardSettings, OperationPolicy, Principal, Roles};
use portcullis_lab::{LabFirewall, default_interfaces, lab_interfaces};
use portcullis_nftables::{NftRunner, NftablesFirewall, NftablesSettings};
use portcullis_pfrest::{Auth, ClientConfig};
use portcullis_pfsense::{CacheAges, PfSenseFirewall, PfSenseOptions};
use portcullis_store::Store;
use portcullis_tools::{EgressSources, FirewallApi, Target, ToolService};

use crate::config::Config;

use crate::config::LAB_TARGET;

pub struct App {
    pub service: Arc<ToolService>,
    pub store: Arc<Store>,
    pub config: Config,
    pub store_path: PathBuf,
}

/// The country database, checked whole: a configured file that does not open stops the start (a geo block must
/// never be planned from a half-read file); no file at all only leaves the geo tools answering `unsupported`.
fn open_country_db(config: &Config) -> anyhow::Result<Option<Arc<portcullis_geo::CountryDb>>> {
    let Some((path, configured)) = config.geoip_database() else { return Ok(None) };
    let key = if configured { "geoip.database" } else { "the installed country database" };
    let db = portcullis_geo::CountryDb::open(&path).with_context(|| format!("{key}: {}", path.display()))?;
    Ok(Some(Arc::new(db)))
}

impl App {
    pub fn open(config: Config) -> anyhow::Result<Self> {
        crate::secrets::add_config(crate::secrets::global(), &config);
        let store_path = config.data_dir().join("portcullis.sqlite");
        let store = Arc::new(
            Store::open(&store_path).with_context(|| format!("opening the store at {}", store_path.display()))?,
        );
        let mapping: Vec<(String, String)> = if config.interfaces.is_empty() {
            default_interfaces()
        } else {
            config.interfaces.iter().map(|(n, d)| (n.to_ascii_lowercase(), d.clone())).collect()
        };
        let lab = LabFirewall::open(LAB_TARGET, store.clone(), lab_interfaces(&mapping))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let targets = targets(&config, &store, lab)?;
        // The witness of the chain's head is on by default, beside the store.
        let witness = config.logging.audit_file.clone().unwrap_or_else(|| config.data_dir().join("audit.jsonl"));
        let auditor = Auditor::new(store.clone(), Some(&witness)).map_err(|e| anyhow::anyhow!("{}", e.message))?;
        auditor.reconcile().map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let guard = Guard::new(guard_settings(&config)?, auditor).map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let log_stores = crate::logs::open_stores(&config.data_dir(), &names, &config.logs)?;
        let service = ToolService::new(guard, targets)
            .map_err(|e| anyhow::anyhow!("{}", e.message))?
            .with_log_stores(log_stores)
            .with_log_pull_cap(config.logs.pull_max_lines.unwrap_or(portcullis_tools::DEFAULT_LOG_PULL_CAP))
            .with_egress_sources(egress_sources(&config))
            .with_country_db(open_country_db(&config)?)
            .with_mirroring(config.mirroring.settings().map_err(|(key, m)| anyhow::anyhow!("{key}: {m}"))?)
            .with_domains(config.domains.settings().map_err(|(key, m)| anyhow::anyhow!("{key}: {m}"))?)
            .with_devices(config.devices.settings().map_err(|(key, m)| anyhow::anyhow!("{key}: {m}"))?)
            .with_eve_sources(eve_sources(&config))
            .map_err(|e| anyhow::anyhow!("logs.eve_files: {}", e.message))?;
        Ok(Self { service: Arc::new(service), store, config, store_path })
    }

    /// The principal local transports (stdio, CLI) run as: `security.principal`, by default `operator`. Never
    /// admin unless the config says so.
    pub fn local_principal(&self) -> Principal {
        self.principal(&self.config.security.principal)
    }

    /// A named principal with its role from config (validated at load; an unknown one gets no role at all).
    pub fn principal(&self, name: &str) -> Principal {
        let role = self.config.security.role_of(name).unwrap_or_else(|| "none".into());
        Principal { name: name.to_string(), role }
    }
}

/// Every configured firewall, the default target first (the service treats the first as the default).
fn targets(config: &Config, store: &Arc<Store>, lab: LabFirewall) -> anyhow::Result<Vec<Target>> {
    let mut targets = vec![Target::new(LAB_TARGET, Arc::new(lab))];
    if let Some(key) = crate::secrets::short_secrets(config).first() {
        anyhow::bail!("{}", crate::secrets::short_secret_message(key));
    }
    for (name, pf) in config.pfsense_targets() {
        let client = client_config(pf).with_context(|| format!("target {name}"))?;
        let firewall =
            PfSenseFirewall::new(&name, client, store.clone()).map_err(|e| anyhow::anyhow!("target {name}: {e}"))?;
        let firewall = firewall.with_options(pfsense_options(pf));
        targets.push(Target::new(name, Arc::new(firewall)));
    }
    for (name, nft) in config.nftables_targets() {
        let runner = NftRunner {
            nft: nft.nft_path.clone().unwrap_or_else(|| "nft".into()),
            netns: nft.netns.clone(),
            ..NftRunner::default()
        };
        let settings = NftablesSettings {
            table: nft.table.clone(),
            interfaces: nft.interfaces.iter().map(|(l, d)| (l.clone(), d.clone())).collect(),
            runner,
            default_allow: nft.default_allow,
            wireguard: nft.wireguard.as_ref().map(|wg| portcullis_nftables::wireguard::WireguardSettings {
                device: wg.interface.clone(),
                address: wg.address,
                endpoint: wg.endpoint.clone(),
                client_allowed_ips: wg.client_allowed_ips.clone(),
                client_dns: wg.client_dns.clone(),
            }),
        };
        let firewall = NftablesFirewall::new(&name, settings, store.clone()).with_accounting(nft.accounting);
        targets.push(Target::new(name.clone(), Arc::new(firewall)));
    }
    let default = config.default_target();
    targets.sort_by_key(|t| t.name != default);
    Ok(targets)
}

fn pfsense_options(pf: &crate::config::PfSenseConfig) -> PfSenseOptions {
    let cache = CacheAges {
        interfaces: Duration::from_secs(pf.cache.interfaces_max_age),
        state: Duration::from_secs(pf.cache.state_max_age),
    };
    PfSenseOptions {
        cache,
        geo_alias_max_entries: pf.geo_alias_max_entries,
        allow_shell: pf.allow_shell,
        vpn_endpoint_host: pf.vpn_endpoint_host.clone(),
        ..PfSenseOptions::default()
    }
}

/// The pfRest client settings of a pfSense target; an API key wins over a username and password.
fn client_config(pf: &crate::config::PfSenseConfig) -> anyhow::Result<ClientConfig> {
    let url = format!("{}://{}:{}", pf.protocol, pf.host, pf.port);
    let auth = match (&pf.api_key, &pf.username, &pf.password) {
        (Some(key), _, _) => Auth::ApiKey(key.expose().to_string()),
        (None, Some(user), Some(password)) => {
            Auth::Basic { username: user.clone(), password: password.expose().to_string() }
        }
        _ => anyhow::bail!("no credentials: set api_key, or username and password"),
    };
    let timeout = pf.timeout.unwrap_or(30);
    let mut client = ClientConfig::new(url, auth).with_timeouts_secs(timeout.min(10), timeout);
    // The process' scrubber: it knows every configured secret (not only this target's) and is the log writer's.
    client.scrubber = crate::secrets::global().clone();
    client.verify_ssl = pf.verify_ssl;
    client.ca_bundle = pf.ca_file.clone();
    Ok(client)
}

/// The eve.json files followed for Suricata alerts: `logs.eve_files`, then each sensor's `eve` (a file named in
/// both is followed once, as `logs.eve_files` says).
fn eve_sources(config: &Config) -> Vec<portcullis_tools::EveSourceSpec> {
    let default = config.default_target();
    let mut sources = config.logs.eve_sources(&default);
    for s in config.mirroring.eve_sources(&default) {
        if !sources.iter().any(|known| known.path == s.path) {
            sources.push(s);
        }
    }
    sources
}

/// What `set_egress_policy` allows beside the flows a call gives: the API of every pfSense target (resolved when
/// the policy is set, so a changed address is picked up), the MCP client networks and the resolver list.
fn egress_sources(config: &Config) -> EgressSources {
    let firewall_apis = config
        .pfsense_targets()
        .into_iter()
        .map(|(target, pf)| FirewallApi {
            target,
            host: pf.host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port: pf.port,
        })
        .collect();
    EgressSources {
        firewall_apis,
        mcp_clients: config.egress.mcp_client_nets(),
        resolv_conf: config.egress.resolv_conf.clone(),
    }
}

fn guard_settings(config: &Config) -> anyhow::Result<GuardSettings> {
    let security = &config.security;
    Ok(GuardSettings {
        policy: OperationPolicy::new(security.allowed_operations.clone(), security.denied_operations.clone()),
        roles: Roles::with_custom(security.roles.clone()).map_err(anyhow::Error::msg)?,
        rates: security.rate_quotas(),
        max_risk_score: security.max_risk_score,
        restricted_interfaces: security.restricted_interfaces.clone(),
        protected_addresses: security.protected_nets(),
        management_hosts: security.management_nets(),
        management_flows: security.management_flows.clone(),
        weights: security.risk_weights.clone().unwrap_or_default(),
        approval_ttl: security.approval_ttl(),
        confirm_restricted: security.confirm_restricted(),
        distinct_approver: config.approvals.distinct_approver,
    })
}
