//! Rates and bursts as people write them: `1000/s`, `20/second`, `600/minute`, and a burst of `5000`.
//!
//! Only whole numbers of events per second, minute, hour or day are accepted: that is what both nftables
//! (`limit rate 20/second burst 40 packets`) and pf (`max-src-conn-rate 20/1`) can hold, so a rate that is
//! accepted is one every backend enforces as written, never rounded into something else.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldResult};

/// The largest count a rate or burst may have. nftables keeps rates in 64 bits, but a limit above ten million
/// new connections per second is no limit on any machine this runs on, and is far more likely a typo.
pub const MAX_COUNT: u32 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    pub fn seconds(self) -> u32 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }

    /// nftables' spelling (`limit rate 20/second`), which is also this type's serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    fn parse(unit: &str) -> Option<Self> {
        Some(match unit {
            "s" | "sec" | "second" | "seconds" => Self::Second,
            "m" | "min" | "minute" | "minutes" => Self::Minute,
            "h" | "hour" | "hours" => Self::Hour,
            "d" | "day" | "days" => Self::Day,
            _ => return None,
        })
    }
}

/// Events (new connections) per unit of time, with the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Rate {
    pub count: u32,
    pub unit: RateUnit,
    /// How many events may arrive at once before the rate holds (the token bucket's size).
    pub burst: u32,
}

impl Rate {
    /// Parses `count/unit` for `field`; `burst` defaults to one unit's worth of events.
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        let bad = |why: String| {
            FieldError::new(
                field,
                format!("{text:?} is not a rate: {why}; write it like 1000/s, 20/second or 600/minute"),
            )
        };
        let t = text.trim().to_ascii_lowercase();
        let Some((count, unit)) = t.split_once('/') else {
            return Err(bad("it needs a count and a unit separated by /".into()));
        };
        let count = parse_count(count.trim()).map_err(bad)?;
        if count == 0 {
            return Err(bad("a rate of 0 would refuse every connection; remove the protection instead".into()));
        }
        let unit = RateUnit::parse(unit.trim())
            .ok_or_else(|| bad(format!("{:?} is not a unit (second, minute, hour or day)", unit.trim())))?;
        Ok(Self { count, unit, burst: count })
    }

    /// The same rate with the burst given in `field` (a whole number, or a string of one, at least 1).
    pub fn with_burst(self, field: &str, burst: &str) -> FieldResult<Self> {
        let burst = parse_count(burst.trim()).map_err(|why| {
            FieldError::new(field, format!("{burst:?} is not a burst: {why}; give a whole number like 5000"))
        })?;
        if burst == 0 {
            return Err(FieldError::new(field, "a burst of 0 would refuse every connection; give at least 1"));
        }
        Ok(Self { burst, ..self })
    }

    /// Events per second, for comparing rates of different units.
    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / f64::from(self.unit.seconds())
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} burst {}", self.count, self.unit.as_str(), self.burst)
    }
}

/// A whole number written in plain decimal digits: no sign, exponent, fraction or separators, at most
/// [`MAX_COUNT`].
pub fn parse_count(text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err("the count is missing".into());
    }
    if text.starts_with('-') {
        return Err("it cannot be negative".into());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number written in digits"));
    }
    match text.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_COUNT) => Ok(n as u32),
        _ => Err(format!("{text} is above the largest accepted count, {MAX_COUNT}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customers_rate_and_burst_parse() {
        let rate = Rate::parse("rate_limit", "1000/s").unwrap().with_burst("burst_limit", "5000").unwrap();
        assert_eq!(rate, Rate { count: 1000, unit: RateUnit::Second, burst: 5000 });
        assert_eq!(Rate::parse("r", "20/second").unwrap().burst, 20);
        assert_eq!(Rate::parse("r", " 600 / Minute ").unwrap().unit, RateUnit::Minute);
    }

    #[test]
    fn hostile_rates_are_refused_naming_the_field() {
        for bad in ["0/s", "-5/s", "1e99/s", "1000/fortnight", "1.5/s", "/s", "20", "20/", "+3/s", "99999999999/s"] {
            let err = Rate::parse("rate_limit", bad).expect_err(bad);
            assert_eq!(err.field, "rate_limit", "{bad}");
            assert!(err.message.contains(&format!("{bad:?}")), "{bad}: {}", err.message);
        }
        for bad in ["-1", "0", "1e3", "", "5000.0"] {
            let err = Rate::parse("r", "1/s").unwrap().with_burst("burst_limit", bad).expect_err(bad);
            assert_eq!(err.field, "burst_limit", "{bad}");
        }
    }
}

/// A bandwidth as people write it: `10Mbit/s`, `500kbit/s`, `1Gbit/s` (also `mbps`, `kbps`, `gbps`), in bits per
/// second with decimal prefixes, as pfSense's limiters and `tc` count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Bandwidth {
    pub bits_per_second: u64,
}

/// The widest bandwidth accepted: 100 Gbit/s.
pub const MAX_BITS_PER_SECOND: u64 = 100_000_000_000;

impl Bandwidth {
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        let bad = |why: String| {
            FieldError::new(
                field,
                format!("{text:?} is not a bandwidth: {why}; write it like 10Mbit/s, 500kbit/s or 1Gbit/s"),
            )
        };
        let t = text.trim().to_ascii_lowercase().replace(' ', "");
        let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
        let unit = &t[digits.len()..];
        if digits.is_empty() {
            return Err(bad(if t.starts_with('-') {
                "it cannot be negative".into()
            } else {
                "it needs a whole number first".into()
            }));
        }
        let scale: u64 = match unit {
            "bit/s" | "bps" | "b/s" => 1,
            "kbit/s" | "kbps" | "kb/s" => 1_000,
            "mbit/s" | "mbps" | "mb/s" => 1_000_000,
            "gbit/s" | "gbps" | "gb/s" => 1_000_000_000,
            other => return Err(bad(format!("{other:?} is not a unit (bit/s, kbit/s, Mbit/s, Gbit/s)"))),
        };
        let n: u64 = digits.parse().map_err(|_| bad("the number is too large".into()))?;
        let bits = n
            .checked_mul(scale)
            .filter(|b| *b <= MAX_BITS_PER_SECOND)
            .ok_or_else(|| bad("it is above 100 Gbit/s".into()))?;
        if bits < 8_000 {
            return Err(bad("below 8 kbit/s a source could not finish a TCP handshake; remove the cap instead".into()));
        }
        if bits % 8 != 0 {
            return Err(bad("it must be a whole number of bytes per second".into()));
        }
        Ok(Self { bits_per_second: bits })
    }

    pub fn bytes_per_second(&self) -> u64 {
        self.bits_per_second / 8
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bits_per_second;
        match b {
            b if b % 1_000_000_000 == 0 => write!(f, "{}Gbit/s", b / 1_000_000_000),
            b if b % 1_000_000 == 0 => write!(f, "{}Mbit/s", b / 1_000_000),
            b if b % 1_000 == 0 => write!(f, "{}kbit/s", b / 1_000),
            b => write!(f, "{b}bit/s"),
        }
    }
}

#[cfg(test)]
mod bandwidth_tests {
    use super::*;

    #[test]
    fn bandwidths_parse_in_decimal_bits_and_hostile_ones_are_refused() {
        assert_eq!(Bandwidth::parse("b", "10Mbit/s").unwrap().bits_per_second, 10_000_000);
        assert_eq!(Bandwidth::parse("b", "500 kbps").unwrap().to_string(), "500kbit/s");
        assert_eq!(Bandwidth::parse("b", "1Gbit/s").unwrap().bytes_per_second(), 125_000_000);
        for bad in ["0Mbit/s", "-5Mbit/s", "1e9bit/s", "10 furlongs", "", "1000Gbit/s", "4000bit/s", "8001bit/s"] {
            assert_eq!(Bandwidth::parse("per_source_bandwidth", bad).expect_err(bad).field, "per_source_bandwidth");
        }
    }
}
