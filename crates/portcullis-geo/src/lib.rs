//! The offline country database: a MaxMind DB (`.mmdb`) file read with the `maxminddb` crate, in either layout
//! Portcullis knows — DB-IP Lite's (`{"country_code": "CN"}`, the default dataset) and GeoLite2's
//! (`{"country": {"iso_code": "CN"}}`). It answers which country an address is in, and every network of a
//! country, aggregated with `ipnet`, for geo blocks.
//!
//! A file is checked whole when it is opened (every node of the search tree walked, every record decoded), so a
//! corrupt or truncated file is refused at install and at start, never half used.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use maxminddb::{PathElement, Reader, WithinOptions};
use portcullis_core::geo::{CountryCode, CountryNetworks};
use portcullis_core::model::Timestamp;
use serde::Serialize;

/// What DB-IP's licence (CC BY 4.0) asks every answer that uses its data to carry.
pub const DBIP_ATTRIBUTION: &str = "IP Geolocation by DB-IP (https://db-ip.com), licensed CC BY 4.0";
/// What MaxMind's GeoLite2 licence asks for.
pub const GEOLITE2_ATTRIBUTION: &str =
    "This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com";

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot read the country database {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable country database: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("the country database cannot answer: {0}")]
    Lookup(String),
}

/// Where a record keeps its country code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `country_code` at the top (DB-IP Lite, the ip-location-db packages).
    DbIp,
    /// `country.iso_code` (MaxMind GeoLite2 and GeoIP2 Country).
    GeoLite2,
}

impl Layout {
    fn path(self) -> &'static [PathElement<'static>] {
        const DBIP: &[PathElement<'static>] = &[PathElement::Key("country_code")];
        const GEOLITE2: &[PathElement<'static>] = &[PathElement::Key("country"), PathElement::Key("iso_code")];
        match self {
            Self::DbIp => DBIP,
            Self::GeoLite2 => GEOLITE2,
        }
    }
}

/// The facts `portcullis geoip info` prints and answers carry.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseInfo {
    pub path: PathBuf,
    /// The file's own `database_type` (`country ipvAll`, `GeoLite2-Country`).
    pub database_type: String,
    pub layout: Layout,
    /// When the data was built (metadata `build_epoch`).
    pub build_time: Timestamp,
    /// `build_time` as a date, the data date answers show.
    pub data_date: String,
    /// 4 (IPv4 only) or 6 (both families).
    pub ip_version: u16,
    pub node_count: u32,
    pub size_bytes: u64,
    pub attribution: String,
}

/// An opened, verified country database.
pub struct CountryDb {
    reader: Reader<Vec<u8>>,
    info: DatabaseInfo,
    /// The country of every record, by data offset, sorted: made while the file is checked, so a lookup is a walk
    /// of the search tree and a binary search over a few hundred records, no decoding.
    countries: Vec<(usize, Option<CountryCode>)>,
}

impl std::fmt::Debug for CountryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountryDb").field("info", &self.info).finish()
    }
}

impl CountryDb {
    /// Opens and verifies `path`, and finds its layout from its records.
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        let bytes = std::fs::read(path).map_err(|source| GeoError::Read { path: path.to_path_buf(), source })?;
        Self::from_bytes(path, bytes)
    }

    /// Verifies a database held in memory; `path` names it in errors and in its info.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, GeoError> {
        let invalid = |reason: String| GeoError::Invalid { path: path.to_path_buf(), reason };
        let size_bytes = bytes.len() as u64;
        let reader = Reader::from_source(bytes).map_err(|e| invalid(e.to_string()))?;
        let layout = detect_layout(&reader).map_err(invalid)?;
        let countries = check_whole(&reader, layout).map_err(invalid)?;
        let meta = reader.metadata();
        let build_time = i64::try_from(meta.build_epoch)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .ok_or_else(|| invalid(format!("build_epoch {} is not a time", meta.build_epoch)))?;
        let attribution = match layout {
            Layout::GeoLite2 => GEOLITE2_ATTRIBUTION,
            Layout::DbIp => DBIP_ATTRIBUTION,
        };
        let info = DatabaseInfo {
            path: path.to_path_buf(),
            database_type: meta.database_type.clone(),
            layout,
            build_time,
            data_date: build_time.format("%Y-%m-%d").to_string(),
            ip_version: meta.ip_version,
            node_count: meta.node_count,
            size_bytes,
            attribution: attribution.to_string(),
        };
        Ok(Self { reader, info, countries })
    }

    pub fn info(&self) -> &DatabaseInfo {
        &self.info
    }

    /// The country of `ip`, `None` where the database has none (private and reserved ranges, unassigned space).
    pub fn lookup(&self, ip: IpAddr) -> Result<Option<CountryCode>, GeoError> {
        if ip.is_ipv6() && self.info.ip_version == 4 {
            return Ok(None);
        }
        let found = self.reader.lookup(ip).map_err(|e| GeoError::Lookup(e.to_string()))?;
        let Some(offset) = found.offset() else { return Ok(None) };
        match self.countries.binary_search_by_key(&offset, |(o, _)| *o) {
            Ok(i) => Ok(self.countries[i].1),
            // Every offset the tree points to was seen when the file was checked; decode should one not be.
            Err(_) => {
                let code: Option<&str> =
                    found.decode_path(self.info.layout.path()).map_err(|e| GeoError::Lookup(e.to_string()))?;
                Ok(code.and_then(CountryCode::from_database))
            }
        }
    }

    /// Every network of each country, aggregated, in the order asked: one pass over the database (records are
    /// decoded once per data offset, and most networks share a handful of records).
    pub fn networks(&self, countries: &[CountryCode]) -> Result<Vec<CountryNetworks>, GeoError> {
        let lookup_err = |e: maxminddb::MaxMindDbError| GeoError::Lookup(e.to_string());
        let mut v4: HashMap<CountryCode, Vec<Ipv4Net>> = HashMap::new();
        let mut v6: HashMap<CountryCode, Vec<Ipv6Net>> = HashMap::new();
        for item in self.reader.networks(WithinOptions::default()).map_err(lookup_err)? {
            let item = item.map_err(lookup_err)?;
            let Some(offset) = item.offset() else { continue };
            let country = match self.countries.binary_search_by_key(&offset, |(o, _)| *o) {
                Ok(i) => self.countries[i].1,
                Err(_) => {
                    let code: Option<&str> = item.decode_path(self.info.layout.path()).map_err(lookup_err)?;
                    code.and_then(CountryCode::from_database)
                }
            };
            let Some(country) = country.filter(|c| countries.contains(c)) else { continue };
            let network = item.network().map_err(lookup_err)?;
            match IpNet::new(network.network(), network.prefix()).map_err(|e| GeoError::Lookup(e.to_string()))? {
                IpNet::V4(net) => v4.entry(country).or_default().push(net),
                IpNet::V6(net) => v6.entry(country).or_default().push(net),
            }
        }
        Ok(countries
            .iter()
            .map(|c| CountryNetworks {
                country: *c,
                v4: v4.get(c).map(Ipv4Net::aggregate).unwrap_or_default(),
                v6: v6.get(c).map(Ipv6Net::aggregate).unwrap_or_default(),
            })
            .collect())
    }
}

/// Walks the whole search tree and decodes every record it points to. (`Reader::verify` would do more, but it
/// refuses DB-IP's own files, whose metadata description is empty.) A corrupt tree or record fails here.
/// Returns the country of every record, by data offset.
fn check_whole(reader: &Reader<Vec<u8>>, layout: Layout) -> Result<Vec<(usize, Option<CountryCode>)>, String> {
    let mut countries: HashMap<usize, Option<CountryCode>> = HashMap::new();
    let mut networks = 0usize;
    for item in reader.networks(WithinOptions::default()).map_err(|e| e.to_string())? {
        let item = item.map_err(|e| e.to_string())?;
        networks += 1;
        if let Some(offset) = item.offset()
            && !countries.contains_key(&offset)
        {
            let code: Option<&str> = item.decode_path(layout.path()).map_err(|e| e.to_string())?;
            countries.insert(offset, code.and_then(CountryCode::from_database));
        }
    }
    if networks == 0 {
        return Err("it holds no networks".into());
    }
    let mut sorted: Vec<_> = countries.into_iter().collect();
    sorted.sort_unstable_by_key(|(o, _)| *o);
    Ok(sorted)
}

/// The layout of the first records that carry a country code in either place.
fn detect_layout(reader: &Reader<Vec<u8>>) -> Result<Layout, String> {
    let networks = reader.networks(WithinOptions::default()).map_err(|e| e.to_string())?;
    for item in networks.take(10_000) {
        let item = item.map_err(|e| e.to_string())?;
        for layout in [Layout::DbIp, Layout::GeoLite2] {
            let code: Option<&str> = item.decode_path(layout.path()).map_err(|e| e.to_string())?;
            if code.and_then(CountryCode::from_database).is_some() {
                return Ok(layout);
            }
        }
    }
    Err("its records hold no country codes (neither country_code nor country.iso_code)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/geoip").join(name)
    }

    fn code(c: &str) -> CountryCode {
        CountryCode::parse("c", c).expect("code")
    }

    #[test]
    fn both_layouts_answer_the_same() {
        for (file, layout) in [("dbip-layout.mmdb", Layout::DbIp), ("geolite2-layout.mmdb", Layout::GeoLite2)] {
            let db = CountryDb::open(&fixture(file)).expect("opens");
            assert_eq!(db.info().layout, layout, "{file}");
            assert_eq!(db.info().data_date, "2026-05-28");
            let at = |ip: &str| db.lookup(ip.parse().expect("ip")).expect("lookup");
            assert_eq!(at("10.77.1.2"), Some(code("CN")), "{file}");
            assert_eq!(at("10.77.1.3"), Some(code("US")), "{file}");
            assert_eq!(at("fd77:1::2"), Some(code("CN")), "{file}");
            assert_eq!(at("198.51.100.77"), Some(code("RU")), "{file}");
            assert_eq!(at("10.77.1.4"), None, "{file}");
            assert_eq!(at("2001:db8:ffff::1"), None, "{file}");
        }
    }

    #[test]
    fn country_networks_come_aggregated_per_family() {
        let db = CountryDb::open(&fixture("dbip-layout.mmdb")).expect("opens");
        let got = db.networks(&[code("CN"), code("DE"), code("FR")]).expect("networks");
        let show = |v: &[Ipv4Net]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(show(&got[0].v4), ["10.77.1.2/32", "203.0.113.0/25"]);
        assert_eq!(
            got[0].v6.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["2001:db8:c0::/48", "fd77:1::2/128"]
        );
        assert_eq!(show(&got[1].v4), ["192.0.2.0/25"], "two adjacent /26 become one /25");
        assert!(got[2].v4.is_empty() && got[2].v6.is_empty());
    }

    #[test]
    fn corrupt_and_truncated_files_are_refused_with_the_path() {
        let good = std::fs::read(fixture("dbip-layout.mmdb")).expect("fixture");
        let truncated = good[..good.len() / 2].to_vec();
        let mut corrupt = good.clone();
        for b in corrupt.iter_mut().take(600).skip(40) {
            *b ^= 0x5a;
        }
        for (name, bytes) in [("truncated", truncated), ("corrupt", corrupt), ("empty", Vec::new())] {
            let e = CountryDb::from_bytes(Path::new(name), bytes).expect_err(name);
            assert!(matches!(e, GeoError::Invalid { .. }), "{name}: {e}");
            assert!(e.to_string().starts_with(name), "{e}");
        }
        let missing = CountryDb::open(Path::new("/nonexistent/x.mmdb")).expect_err("missing");
        assert!(missing.to_string().contains("/nonexistent/x.mmdb"), "{missing}");
    }
}
