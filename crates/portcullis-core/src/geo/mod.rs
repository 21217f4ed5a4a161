//! Countries as the firewall sees them: ISO 3166-1 alpha-2 codes, validated against the standard's list, and
//! geo blocks — a block of every network a country database gives for the named countries, on named interfaces.
//! The database itself is read by `portcullis-geo`; this module only holds what a plan needs, so it stays pure.

mod block;
mod country;

pub use block::{
    GEO_ALIAS_PREFIX, GEO_RULE_DESCR, GeoBlock, GeoBlockId, GeoBlockView, GeoDirection, GeoListView, GeoRefresh,
    MANAGED_GEO, PrefixCounts, expired_geo_blocks, geo_alias_name, geo_blocks, is_geo_list,
};
pub(crate) use block::{plan_create, plan_delete, plan_refresh};
pub use country::{CountryCode, CountryNetworks, MAX_COUNTRIES, parse_countries};
