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
        Some(within(rule, family, ports, &universe(family, ports)))
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

/// What of `0..=top` sorted `ranges` leave out.
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

/// Everything of one family: every address, and every port or, for a protocol without ports, the point 0.
pub(crate) fn universe(family: Family, ports: bool) -> Region {
    let port = if ports { (0, 65_535) } else { (0, 0) };
    Region([vec![(0, family.top())], vec![(0, family.top())], vec![port], vec![port]])
}

/// What of `clip` a rule matches, in one family: each side's addresses within the clip's (a long list is only
/// searched, never copied whole), its ports within the clip's.
pub(crate) fn within(rule: &ResolvedRule, family: Family, ports: bool, clip: &Region) -> Region {
    let side = |set: &AddrSet, negate: bool, clip: &[(u128, u128)]| {
        let matched = if set.any {
            clip.to_vec()
        } else {
            match family {
                Family::V4 => overlap(&set.v4, clip, u128::from),
                Family::V6 => overlap(&set.v6, clip, |x| x),
            }
        };
        if negate { intersect(clip, &complement(&matched, family.top())) } else { matched }
    };
    let port = |set: &Option<PortSet>, clip: &[(u128, u128)]| match (ports, set) {
        (false, Some(_)) => Vec::new(),
        (_, None) => clip.to_vec(),
        (true, Some(ranges)) => {
            let wide: Vec<(u128, u128)> = ranges.iter().map(|(a, b)| (u128::from(*a), u128::from(*b))).collect();
            intersect(&wide, clip)
        }
    };
    Region([
        side(&rule.source, rule.source_negate, &clip.0[0]),
        side(&rule.destination, rule.destination_negate, &clip.0[1]),
        port(&rule.source_ports, &clip.0[2]),
        port(&rule.destination_ports, &clip.0[3]),
    ])
}

/// The parts of sorted `ranges` inside `clip`, found by search.
fn overlap<T: Copy + Ord>(ranges: &[(T, T)], clip: &[(u128, u128)], wide: impl Fn(T) -> u128) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for (lo, hi) in clip {
        let first = ranges.partition_point(|(_, end)| wide(*end) < *lo);
        for (a, b) in ranges[first..].iter().map(|(a, b)| (wide(*a), wide(*b))).take_while(|(a, _)| a <= hi) {
            out.push((a.max(*lo), b.min(*hi)));
        }
    }
    out
}

pub(crate) fn intersect(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    // Both sorted and disjoint: one merge pass.
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (start, end) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if start <= end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    out
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
