//! ISO 3166-1 alpha-2 country codes, and the networks a country database gives for one.

use std::fmt;

use ipnet::{Ipv4Net, Ipv6Net};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldResult};

/// More than there are: ISO 3166-1 assigns 249 alpha-2 codes, and country databases add Kosovo's `XK`.
pub const MAX_COUNTRIES: usize = 250;

/// A country by its ISO 3166-1 alpha-2 code, upper case (`CN`). Only assigned codes (and `XK`, which the standard
/// leaves to users and every country database uses for Kosovo) are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses one code, naming `field` when it is not a known ISO 3166-1 alpha-2 code.
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        let trimmed = text.trim();
        let bytes = trimmed.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(FieldError::new(
                field,
                format!("{trimmed:?} is not a country code: give ISO 3166-1 alpha-2 codes such as CN or RU"),
            ));
        }
        let code = [bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()];
        let upper = std::str::from_utf8(&code).unwrap_or_default();
        if celes::Country::from_alpha2(upper).is_err() {
            return Err(FieldError::new(field, format!("{upper} is not an assigned ISO 3166-1 alpha-2 country code")));
        }
        Ok(Self(code))
    }

    /// A code a country database gave: accepted without the field context, `None` if it is no country
    /// (`ZZ`, `EU`, `A1` and the like some databases carry).
    pub fn from_database(text: &str) -> Option<Self> {
        Self::parse("", text).ok()
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The country's English short name (`China`, `Russian Federation`).
    pub fn name(&self) -> &'static str {
        celes::Country::from_alpha2(self.as_str()).map(|c| c.long_name).unwrap_or("")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse("country", &text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl JsonSchema for CountryCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CountryCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z]{2}$",
            "description": "ISO 3166-1 alpha-2 country code, e.g. CN"
        })
    }
}

/// Parses a call's list of countries: at least one, at most [`MAX_COUNTRIES`], each a known code (the bad one named
/// by its index), duplicates dropped, in the order given.
pub fn parse_countries(field: &str, codes: &[String]) -> FieldResult<Vec<CountryCode>> {
    if codes.is_empty() {
        return Err(FieldError::new(field, "name at least one country (ISO 3166-1 alpha-2, e.g. CN)"));
    }
    if codes.len() > MAX_COUNTRIES {
        return Err(FieldError::new(
            field,
            format!("{} countries is more than there are (at most {MAX_COUNTRIES})", codes.len()),
        ));
    }
    let mut out: Vec<CountryCode> = Vec::with_capacity(codes.len());
    for (i, text) in codes.iter().enumerate() {
        let code = CountryCode::parse(&format!("{field}[{i}]"), text)?;
        if !out.contains(&code) {
            out.push(code);
        }
    }
    Ok(out)
}

/// Every network a country database gives for one country, aggregated (adjacent and nested prefixes merged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryNetworks {
    pub country: CountryCode,
    pub v4: Vec<Ipv4Net>,
    pub v6: Vec<Ipv6Net>,
}

impl CountryNetworks {
    /// How many IPv4 addresses and IPv6 /64 networks the country's prefixes cover.
    pub fn coverage(&self) -> (u64, u128) {
        let v4 = self.v4.iter().map(|n| 1u64 << (32 - n.prefix_len())).sum();
        let v6 = self.v6.iter().map(|n| 1u128 << 64u8.saturating_sub(n.prefix_len())).sum();
        (v4, v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_iso_alpha2_in_any_case() {
        assert_eq!(CountryCode::parse("c", "cn").map(|c| c.to_string()), Ok("CN".to_string()));
        assert_eq!(CountryCode::parse("c", " Ru ").map(|c| c.to_string()), Ok("RU".to_string()));
        assert!(CountryCode::parse("c", "XK").is_ok(), "Kosovo, as every country database has it");
        assert_eq!(CountryCode::parse("c", "CN").map(|c| c.name()), Ok("China"));
    }

    #[test]
    fn bad_codes_name_the_field_and_the_code() {
        let e = CountryCode::parse("countries[1]", "XX").expect_err("unassigned");
        assert_eq!(e.field, "countries[1]");
        assert!(e.message.contains("XX"), "{}", e.message);
        for bad in ["cn; drop", "CHN", "C", "", "1A", "中国"] {
            assert!(CountryCode::parse("c", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_are_bounded_deduplicated_and_name_the_bad_entry() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_countries("countries", &list(&["CN", "ru", "cn"])).map(|v| v.len()), Ok(2));
        assert_eq!(parse_countries("countries", &[]).expect_err("empty").field, "countries");
        assert_eq!(parse_countries("countries", &list(&["CN", "XX"])).expect_err("bad").field, "countries[1]");
        let many = vec!["CN".to_string(); 300];
        assert_eq!(parse_countries("countries", &many).expect_err("too many").field, "countries");
    }

    #[test]
    fn coverage_counts_addresses_and_v6_64s() {
        let n = CountryNetworks {
            country: CountryCode::parse("c", "CN").expect("code"),
            v4: vec!["10.0.0.0/24".parse().expect("net"), "10.1.0.0/32".parse().expect("net")],
            v6: vec!["2001:db8::/48".parse().expect("net"), "2001:db9::1/128".parse().expect("net")],
        };
        assert_eq!(n.coverage(), (257, 65_537));
    }
}
