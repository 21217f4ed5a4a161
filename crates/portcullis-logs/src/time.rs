//! Resolving the prefix's timestamp to a point in time.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, TimeZone, Utc};

use crate::entry::{FilterLogEntry, SyslogFormat};

/// How far in the future a BSD timestamp may be (against `now`) and still count as this year: clocks of the
/// firewall and of the collector differ a little, and a line from `Dec 31 23:59:59` read at `Jan 1 00:00:01`
/// must not become a date 364 days in the future.
const FUTURE_TOLERANCE: TimeDelta = TimeDelta::days(1);

impl FilterLogEntry<'_> {
    /// The time of the line in UTC.
    ///
    /// RFC 3339 timestamps (RFC 5424 lines, collector re-formats) carry their zone and year: `year_hint` and `now`
    /// are not used. BSD timestamps (`Jul  3 19:10:30`) have neither: they are read as UTC (see
    /// [`FilterLogEntry::timestamp_in`] for the firewall's zone) and given the most recent past date for that
    /// month/day: in `year_hint`, or in the latest earlier year in which the date exists and is not more than a day
    /// after `now`. One exception for clocks that disagree at New Year: a date in `year_hint + 1` within a day of
    /// `now` is taken (`Jan  1 00:00:05` read at `Dec 31 23:59:59`). Pass `now.year()` as `year_hint` for live
    /// logs, or the file's year for an archive.
    ///
    /// `None` without a timestamp (bare CSV, RFC 5424 `-`) or for an impossible date (`Feb 30`).
    pub fn timestamp(&self, year_hint: i32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.timestamp_in(year_hint, now, FixedOffset::east_opt(0)?)
    }

    /// As [`FilterLogEntry::timestamp`], with BSD timestamps read in the firewall's zone `local` (its offset from
    /// UTC).
    pub fn timestamp_in(&self, year_hint: i32, now: DateTime<Utc>, local: FixedOffset) -> Option<DateTime<Utc>> {
        match self.format {
            SyslogFormat::Bsd => resolve_bsd(self.timestamp?, year_hint, now, local),
            _ => self.absolute_timestamp(),
        }
    }

    /// The timestamp when it carries its year and zone (RFC 3339); `None` for BSD timestamps and without one.
    pub(crate) fn absolute_timestamp(&self) -> Option<DateTime<Utc>> {
        match self.format {
            SyslogFormat::Bsd => None,
            _ => DateTime::parse_from_rfc3339(self.timestamp?).ok().map(|t| t.with_timezone(&Utc)),
        }
    }
}

const MONTHS: [&[u8; 3]; 12] =
    [b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"];

/// `Mmm dd hh:mm:ss[.fraction]` → month, day, hour, minute, second, nanosecond.
fn parse_bsd(raw: &str) -> Option<(u32, u32, u32, u32, u32, u32)> {
    let b = raw.as_bytes();
    let mon = b.get(..3)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as u32 + 1;
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let s = raw.get(range)?.trim_start_matches(' ');
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let day = num(4..6)?;
    let (hour, minute, second) = (num(7..9)?, num(10..12)?, num(13..15)?);
    let mut nanos = 0u32;
    if let Some(frac) = raw.get(16..).filter(|_| b.get(15) == Some(&b'.')) {
        let mut scale = 100_000_000u32;
        for c in frac.bytes().take(9) {
            if !c.is_ascii_digit() {
                return None;
            }
            nanos += u32::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    Some((month, day, hour, minute, second, nanos))
}

fn resolve_bsd(raw: &str, year_hint: i32, now: DateTime<Utc>, local: FixedOffset) -> Option<DateTime<Utc>> {
    let (month, day, hour, minute, second, nanos) = parse_bsd(raw)?;
    let at = |year: i32| -> Option<DateTime<Utc>> {
        let naive = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, minute, second, nanos)?;
        Some(local.from_local_datetime(&naive).single()?.with_timezone(&Utc))
    };
    let latest = now.checked_add_signed(FUTURE_TOLERANCE).unwrap_or(now);
    let earliest_next = now.checked_sub_signed(FUTURE_TOLERANCE).unwrap_or(now);
    // New Year with a firewall clock slightly ahead: `Jan  1 00:00:05` read at `Dec 31 23:59:59` of the hint year.
    if let Some(t) = year_hint.checked_add(1).and_then(at).filter(|t| *t >= earliest_next && *t <= latest) {
        return Some(t);
    }
    // Otherwise the hint year or the latest earlier one in which the date exists and is not in the future; ten years
    // back is enough to find a leap year for `Feb 29`.
    let mut year = year_hint;
    for _ in 0..10 {
        match at(year) {
            Some(t) if t <= latest => return Some(t),
            Some(_) => {}
            // Not a leap-day problem: the date never exists (`Feb 30`, `Apr 31`, hour 25...).
            None if month != 2 || day != 29 => return None,
            None => {}
        }
        year = year.checked_sub(1)?;
    }
    None
}
