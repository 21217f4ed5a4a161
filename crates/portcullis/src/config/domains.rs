//! `domains:` in the config file: how `block_domain` resolves names and how often it asks again.

use std::net::SocketAddr;

use portcullis_tools::DomainSettings;
use serde::{Deserialize, Serialize};

/// `domains:` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsConfig {
    /// The DNS server asked (`address:port`); the system's resolver configuration when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// The shortest time between two lookups of a blocked name, whatever its TTL.
    pub min_refresh: String,
    /// The longest.
    pub max_refresh: String,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        Self { resolver: None, min_refresh: "30s".into(), max_refresh: "1h".into() }
    }
}

impl DomainsConfig {
    /// The settings, or the key that is wrong and why.
    pub fn settings(&self) -> Result<DomainSettings, (String, String)> {
        let span = |key: &str, text: &str| {
            portcullis_core::duration::parse_span(key, text)
                .map_err(|e| (format!("domains.{key}"), e.message))
                .and_then(|d| d.to_std().map_err(|_| (format!("domains.{key}"), "must not be negative".to_string())))
        };
        let min_refresh = span("min_refresh", &self.min_refresh)?;
        let max_refresh = span("max_refresh", &self.max_refresh)?;
        if min_refresh.is_zero() || min_refresh > max_refresh {
            return Err(("domains.min_refresh".into(), "must be above 0 and at most domains.max_refresh".into()));
        }
        let resolver = match self.resolver.as_deref() {
            None => None,
            Some(text) => Some(text.trim().parse::<SocketAddr>().map_err(|_| {
                ("domains.resolver".to_string(), format!("{text:?} is not address:port (e.g. 127.0.0.1:53)"))
            })?),
        };
        Ok(DomainSettings { resolver, min_refresh, max_refresh })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_the_resolver_are_checked_naming_the_key() {
        assert_eq!(DomainsConfig::default().settings().unwrap(), DomainSettings::default());
        let bad = DomainsConfig { resolver: Some("dns.example".into()), ..DomainsConfig::default() };
        assert_eq!(bad.settings().unwrap_err().0, "domains.resolver");
        let inverted = DomainsConfig { min_refresh: "2h".into(), ..DomainsConfig::default() };
        assert_eq!(inverted.settings().unwrap_err().0, "domains.min_refresh");
        let ok = DomainsConfig { resolver: Some("127.0.0.1:5353".into()), ..DomainsConfig::default() };
        assert_eq!(ok.settings().unwrap().resolver, Some("127.0.0.1:5353".parse().unwrap()));
    }
}
