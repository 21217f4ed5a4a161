//! Parsing many lines and counting the outcome.

use std::collections::BTreeMap;

use memchr::memchr_iter;
use serde::Serialize;

use crate::entry::FilterLogEntry;
use crate::error::{ParseError, ParseErrorKind};
use crate::parse_line;

/// How many lines parsed, how many did not, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParseStats {
    /// Lines that parsed.
    pub parsed: u64,
    /// Lines that did not.
    pub malformed: u64,
    /// Malformed lines by kind of error.
    pub by_error: BTreeMap<ParseErrorKind, u64>,
}

impl ParseStats {
    /// Counts one outcome.
    pub fn record<T>(&mut self, result: &Result<T, ParseError>) {
        match result {
            Ok(_) => self.parsed += 1,
            Err(e) => {
                self.malformed += 1;
                *self.by_error.entry(e.kind()).or_insert(0) += 1;
            }
        }
    }

    /// Parses every line of `text` and counts the outcomes.
    pub fn of_text(text: &str) -> Self {
        let mut stats = ParseStats::default();
        for result in parse_lines(text) {
            stats.record(&result);
        }
        stats
    }

    /// Lines seen.
    pub fn total(&self) -> u64 {
        self.parsed + self.malformed
    }

    /// Malformed lines with errors of `kind`.
    pub fn count(&self, kind: ParseErrorKind) -> u64 {
        self.by_error.get(&kind).copied().unwrap_or(0)
    }
}

/// The lines of `text` (split on `\n`, a trailing `\r` removed; blank lines skipped), each parsed.
pub fn parse_lines<'a>(text: &'a str) -> impl Iterator<Item = Result<FilterLogEntry<'a>, ParseError>> {
    lines(text).map(parse_line)
}

/// The entries of `text` that parse, counting every outcome in `stats`.
pub fn parse_lines_counted<'a, 's>(
    text: &'a str,
    stats: &'s mut ParseStats,
) -> impl Iterator<Item = FilterLogEntry<'a>> + use<'a, 's> {
    parse_lines(text).filter_map(move |result| {
        stats.record(&result);
        result.ok()
    })
}

/// Non-blank lines, found with `memchr`.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let ends = memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    ends.filter_map(move |end| {
        let line = text.get(start..end).unwrap_or("");
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.bytes().all(|b| b == b' ' || b == b'\t') { None } else { Some(line) }
    })
}
