//! Human durations (`15m`, `1h`, `24h`, `7d`, `1h30m`, `permanent`) for blocks, grants, pauses and timeframes.

use std::fmt;

use chrono::TimeDelta;

use crate::error::{FieldError, FieldResult};
use crate::model::Timestamp;

/// The longest finite duration accepted: anything longer is, in practice, permanent and should say so.
pub const MAX_FINITE: TimeDelta = TimeDelta::days(3650);

/// How long something lasts: a finite span or until removed by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    For(TimeDelta),
    Permanent,
}

impl Lifetime {
    pub fn parse(field: &str, value: &str) -> FieldResult<Self> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("permanent") || v.eq_ignore_ascii_case("forever") {
            return Ok(Self::Permanent);
        }
        parse_span(field, v).map(Self::For)
    }

    pub fn expires_at(self, now: Timestamp) -> Option<Timestamp> {
        match self {
            Self::For(d) => Some(now + d),
            Self::Permanent => None,
        }
    }

    pub fn seconds(self) -> Option<i64> {
        match self {
            Self::For(d) => Some(d.num_seconds()),
            Self::Permanent => None,
        }
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Permanent => f.write_str("permanent"),
            Self::For(d) => f.write_str(&format_span(*d)),
        }
    }
}

/// Parses a positive span: one or more `<number><unit>` groups with units s, m, h, d, w.
pub fn parse_span(field: &str, value: &str) -> FieldResult<TimeDelta> {
    let v = value.trim().to_ascii_lowercase();
    let bad = |why: &str| {
        FieldError::new(field, format!("{value:?} is not a duration: {why}; use forms like 30m, 1h, 24h, 7d or 1h30m"))
    };
    if v.is_empty() {
        return Err(bad("it is empty"));
    }
    if v.starts_with('-') {
        return Err(bad("durations cannot be negative"));
    }
    let mut total = TimeDelta::zero();
    let mut digits = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let seconds_per_unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad(&format!("unexpected {c:?}"))),
        };
        let n: i64 = digits.parse().map_err(|_| bad("a number must come before each unit"))?;
        digits.clear();
        let part =
            n.checked_mul(seconds_per_unit).and_then(TimeDelta::try_seconds).ok_or_else(|| bad("it is too long"))?;
        total = total.checked_add(&part).ok_or_else(|| bad("it is too long"))?;
    }
    if !digits.is_empty() {
        return Err(bad("the last number has no unit"));
    }
    if total <= TimeDelta::zero() {
        return Err(bad("it must be longer than zero"));
    }
    if total > MAX_FINITE {
        return Err(bad("it is longer than 10 years; say \"permanent\" if that is meant"));
    }
    Ok(total)
}

/// Formats a span in the largest whole units, e.g. `1d2h`, `90s` → `1m30s`.
pub fn format_span(d: TimeDelta) -> String {
    let mut secs = d.num_seconds();
    if secs <= 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_span("d", "15m").unwrap(), TimeDelta::minutes(15));
        assert_eq!(parse_span("d", "24h").unwrap(), TimeDelta::hours(24));
        assert_eq!(parse_span("d", "7d").unwrap(), TimeDelta::days(7));
        assert_eq!(parse_span("d", "1h30m").unwrap(), TimeDelta::minutes(90));
        assert_eq!(Lifetime::parse("d", "permanent").unwrap(), Lifetime::Permanent);
    }

    #[test]
    fn rejects_nonsense_and_names_the_field() {
        for bad in ["-1h", "0h", "h", "1", "1x", "", "99999999999999999d", "11000d"] {
            let err = Lifetime::parse("duration", bad).unwrap_err();
            assert_eq!(err.field, "duration", "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["15m", "1h", "1d", "1h30m", "2d3h4m5s"] {
            assert_eq!(format_span(parse_span("d", s).unwrap()), s);
        }
    }
}
