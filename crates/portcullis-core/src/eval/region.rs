//! A rule's match as a box of ranges per address family (source, destination, source port, destination port),
//! and the cutting of one box along the boundaries of others: once cut, each cell lies wholly inside or wholly
//! outside every box that cut it, so one point decides a cell. Lint's union shadowing and a change's effect on
//! traffic are both answered this way.

use crate::eval::{AddrSet, PortSet, ResolvedRule};
use crate::model::{IpVersion, Protocol};

/// The most points one dimension of a rule's region is cut into before the question is given up (a long block
/// list across the rule): the answer would cost more than it tells.
pub(crate) const MAX_POINTS: usize = 256;
/// The most cells one rule's region is checked in.
pub(crate) const MAX_CELLS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn top(self) -> u128 {
        match self {
            Self::V4 => u128::from(u32::MAX),
            Self::V6 => u128::MAX,
        }
    }
}

/// A rule's match in one address family as four sets of ranges: source, destination, source port, destination
/// port (a protocol without ports has the single point 0 there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region(pub(crate) [Vec<(u128, u128)>; 4]);

impl Region {
    /// `None` when a side is a list too long to cut along (a block list of thousands): such a rule is left out
    /// of the union, which can only make a cover harder to find, never a wrong one.
    pub(crate) fn of(rule: &ResolvedRule, family: Family, ports: bool) -> Option<Self> {
        let fine = |set: &AddrSet| set.v4.len().max(set.v6.len()) > MAX_POINTS;
        if fine(&rule.source) || fine(&rule.destination) {
            return None;
        }
        let port_dim = |set: &Option<PortSet>| match (ports, set) {
            (false, _) => vec![(0, 0)],
            (true, None) => vec![(0, 65_535)],
            (true, Some(ranges)) => ranges.iter().map(|(lo, hi)| (u128::from(*lo), u128::from(*hi))).collect(),
        };
        Some(Self([
            addresses(&rule.source, rule.source_negate, family),
            addresses(&rule.destination, rule.destination_negate, family),
            port_dim(&rule.source_ports),
            port_dim(&rule.destination_ports),
        ]))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().any(Vec::is_empty)
    }

    pub(crate) fn meets(&self, other: &Region) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a.iter().any(|(lo, hi)| b.iter().any(|(x, y)| lo <= y && x <= hi)))
    }

    pub(crate) fn holds(&self, point: [u128; 4]) -> bool {
        self.0.iter().zip(point).all(|(ranges, x)| {
            let idx = ranges.partition_point(|(lo, _)| *lo <= x);
            idx > 0 && ranges[idx - 1].1 >= x
        })
    }
}

/// The addresses of one family a side matches, as sorted ranges (`!` taken as the complement).
pub(crate) fn addresses(set: &AddrSet, negate: bool, family: Family) -> Vec<(u128, u128)> {
    let ranges: Vec<(u128, u128)> = if set.any {
        vec![(0, family.top())]
    } else {
        match family {
            Family::V4 => set.v4.iter().map(|(lo, hi)| (u128::from(*lo), u128::from(*hi))).collect(),
            Family::V6 => set.v6.clone(),
        }
    };
    if negate { complement(&ranges, family.top()) } else { ranges }
}

pub(crate) fn complement(ranges: &[(u128, u128)], top: u128) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    let mut next = Some(0u128);
    for (lo, hi) in ranges {
        if let Some(start) = next
            && start < *lo
        {
            out.push((start, lo - 1));
        }
        next = hi.checked_add(1).filter(|n| *n <= top);
    }
    if let Some(start) = next {
        out.push((start, top));
    }
    out
}

pub(crate) fn families(version: IpVersion) -> &'static [Family] {
    match version {
        IpVersion::Inet => &[Family::V4],
        IpVersion::Inet6 => &[Family::V6],
        IpVersion::Inet46 => &[Family::V4, Family::V6],
    }
}

/// The protocols a rule's packets are split into: `tcp/udp` is the two of them.
pub(crate) fn protocols(protocol: Protocol) -> Vec<Protocol> {
    match protocol {
        Protocol::TcpUdp => vec![Protocol::Tcp, Protocol::Udp],
        other => vec![other],
    }
}

pub(crate) fn admits(version: IpVersion, family: Family) -> bool {
    match version {
        IpVersion::Inet46 => true,
        IpVersion::Inet => family == Family::V4,
        IpVersion::Inet6 => family == Family::V6,
    }
}

/// The points that start each piece of `own` once every range of `others` cuts it.
pub(crate) fn cut_points<'a>(
    own: &[(u128, u128)],
    others: impl Iterator<Item = &'a [(u128, u128)]>,
) -> Option<Vec<u128>> {
    let inside = |x: u128| own.iter().any(|(lo, hi)| *lo <= x && x <= *hi);
    let mut points: Vec<u128> = own.iter().map(|(lo, _)| *lo).collect();
    for ranges in others {
        for (lo, hi) in ranges {
            points.extend([Some(*lo), hi.checked_add(1)].into_iter().flatten().filter(|x| inside(*x)));
        }
        if points.len() > 4 * MAX_POINTS {
            return None;
        }
    }
    points.sort_unstable();
    points.dedup();
    (points.len() <= MAX_POINTS).then_some(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complement_of_ranges_is_what_they_leave_out() {
        assert_eq!(complement(&[(0, 9), (20, 29)], 99), vec![(10, 19), (30, 99)]);
        assert_eq!(complement(&[(0, 99)], 99), vec![]);
        assert_eq!(complement(&[], 99), vec![(0, 99)]);
        assert_eq!(complement(&[(5, u128::MAX)], u128::MAX), vec![(0, 4)]);
    }

    #[test]
    fn cut_points_start_every_piece_inside_the_own_ranges() {
        let others: Vec<Vec<(u128, u128)>> = vec![vec![(10, 19)], vec![(15, 40)]];
        let points = cut_points(&[(0, 30)], others.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(points, vec![0, 10, 15, 20]);
    }
}
