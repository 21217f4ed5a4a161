//! pfRest versions (`GET /api/v2/system/restapi/version` → `current_version`, e.g. `v2.10.0`).

use std::fmt;

/// A pfRest release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PfRestVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl PfRestVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        PfRestVersion { major, minor, patch }
    }

    /// The first release with the `dry_run` control parameter and the pushed-down log paging.
    pub const DRY_RUN: PfRestVersion = PfRestVersion::new(2, 8, 0);

    /// The first release with `/api/v2/diagnostics/table(s)` (pf tables such as `virusprot`).
    pub const TABLES: PfRestVersion = PfRestVersion::new(2, 6, 0);

    /// Parses `v2.10.0`, `2.8`, `v2.3.3-beta` (pre-release suffixes are ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches(['v', 'V']);
        let core = s.split(['-', '+', ' ', '_']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        Some(PfRestVersion { major, minor, patch })
    }

    pub fn at_least(&self, other: PfRestVersion) -> bool {
        *self >= other
    }

    pub fn supports_dry_run(&self) -> bool {
        self.at_least(Self::DRY_RUN)
    }
}

impl fmt::Display for PfRestVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares() {
        assert_eq!(PfRestVersion::parse("v2.10.0"), Some(PfRestVersion::new(2, 10, 0)));
        assert_eq!(PfRestVersion::parse("2.8"), Some(PfRestVersion::new(2, 8, 0)));
        assert_eq!(PfRestVersion::parse("v2.3.3-beta1"), Some(PfRestVersion::new(2, 3, 3)));
        assert_eq!(PfRestVersion::parse("garbage"), None);
        assert!(PfRestVersion::new(2, 10, 0).supports_dry_run(), "2.10 > 2.8 numerically, not as text");
        assert!(!PfRestVersion::new(2, 7, 9).supports_dry_run());
        assert_eq!(PfRestVersion::new(2, 10, 0).to_string(), "v2.10.0");
    }
}
