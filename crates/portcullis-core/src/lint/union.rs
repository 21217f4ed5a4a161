//! Shadowing by several earlier rules together: a rule none of the earlier rules covers alone can still never
//! match, when their union covers it — the IPv4 and IPv6 "allow LAN to any" rules over a later `inet46` rule, or
//! three rules that each take a part of its ports. The rule's region is cut along every boundary of the earlier
//! rules that meet it; each cell is then wholly inside or wholly outside each of them, so one point per cell
//! decides it.

use crate::eval::{AddrSet, PortSet, ResolvedRule};
use crate::model::{Direction, IpVersion, Protocol};

/// The most points one dimension of a rule's region is cut into before the question is given up (a long block
/// list across the rule): the answer would cost more than it tells.
const MAX_POINTS: usize = 256;
/// The most cells one rule's region is checked in.
const MAX_CELLS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn top(self) -> u128 {
        match self {
            Self::V4 => u128::from(u32::MAX),
            Self::V6 => u128::MAX,
        }
    }
}

/// A rule's match in one address family as four sets of ranges: source, destination, source port, destination
/// port (a protocol without ports has the single point 0 there).
struct Region([Vec<(u128, u128)>; 4]);

impl Region {
    /// `None` when a side is a list too long to cut along (a block list of thousands): such a rule is left out
    /// of the union, which can only make a cover harder to find, never a wrong one.
    fn of(rule: &ResolvedRule, family: Family, ports: bool) -> Option<Self> {
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

    fn is_empty(&self) -> bool {
        self.0.iter().any(Vec::is_empty)
    }

    fn meets(&self, other: &Region) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a.iter().any(|(lo, hi)| b.iter().any(|(x, y)| lo <= y && x <= hi)))
    }

    fn holds(&self, point: [u128; 4]) -> bool {
        self.0.iter().zip(point).all(|(ranges, x)| {
            let idx = ranges.partition_point(|(lo, _)| *lo <= x);
            idx > 0 && ranges[idx - 1].1 >= x
        })
    }
}

/// The addresses of one family a side matches, as sorted ranges (`!` taken as the complement).
fn addresses(set: &AddrSet, negate: bool, family: Family) -> Vec<(u128, u128)> {
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

fn complement(ranges: &[(u128, u128)], top: u128) -> Vec<(u128, u128)> {
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

fn families(version: IpVersion) -> &'static [Family] {
    match version {
        IpVersion::Inet => &[Family::V4],
        IpVersion::Inet6 => &[Family::V6],
        IpVersion::Inet46 => &[Family::V4, Family::V6],
    }
}

/// The protocols a rule's packets are split into: `tcp/udp` is the two of them.
fn protocols(protocol: Protocol) -> Vec<Protocol> {
    match protocol {
        Protocol::TcpUdp => vec![Protocol::Tcp, Protocol::Udp],
        other => vec![other],
    }
}

fn admits(version: IpVersion, family: Family) -> bool {
    match version {
        IpVersion::Inet46 => true,
        IpVersion::Inet => family == Family::V4,
        IpVersion::Inet6 => family == Family::V6,
    }
}

/// The points that start each piece of `own` once every range of `others` cuts it.
fn cut_points<'a>(own: &[(u128, u128)], others: impl Iterator<Item = &'a [(u128, u128)]>) -> Option<Vec<u128>> {
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

/// Every rule's region in each family, with ports and without, made once for a whole lint.
pub(super) struct Regions(Vec<[Option<Region>; 4]>);

impl Regions {
    pub(super) fn of(rules: &[ResolvedRule]) -> Self {
        let each = |r: &ResolvedRule| {
            [(Family::V4, false), (Family::V4, true), (Family::V6, false), (Family::V6, true)]
                .map(|(family, ports)| Region::of(r, family, ports))
        };
        Self(rules.iter().map(each).collect())
    }

    fn get(&self, position: usize, family: Family, ports: bool) -> Option<&Region> {
        let slot = usize::from(family == Family::V6) * 2 + usize::from(ports);
        self.0.get(position)?[slot].as_ref()
    }
}

/// The earlier rules (`(position, rule)` in the resolved list) that between them match every packet `later`
/// matches, each the first match for a part of it, in rule order; `None` when some packet reaches `later`, or
/// when its region is cut too finely to tell.
pub(super) fn deciders<'a>(
    earlier: &[(usize, &'a ResolvedRule)],
    (position, later): (usize, &ResolvedRule),
    regions: &Regions,
) -> Option<Vec<&'a ResolvedRule>> {
    let mut found: Vec<&ResolvedRule> = Vec::new();
    for &family in families(later.ip_version) {
        for protocol in protocols(later.protocol) {
            let ports = matches!(protocol, Protocol::Tcp | Protocol::Udp);
            let region = regions.get(position, family, ports)?;
            if region.is_empty() {
                continue;
            }
            let applies = |e: &ResolvedRule| {
                e.interface == later.interface
                    && (e.direction == Direction::Any || e.direction == later.direction)
                    && admits(e.ip_version, family)
                    && e.protocol.covers(protocol)
                    && (ports || (e.source_ports.is_none() && e.destination_ports.is_none()))
            };
            let candidates: Vec<(&ResolvedRule, &Region)> = earlier
                .iter()
                .filter(|(_, e)| applies(e))
                .filter_map(|(at, e)| Some((*e, regions.get(*at, family, ports)?)))
                .filter(|(_, r)| r.meets(region))
                .collect();
            for decider in cell_deciders(region, &candidates)? {
                if !found.iter().any(|f| std::ptr::eq(*f, decider)) {
                    found.push(decider);
                }
            }
        }
    }
    found.sort_by_key(|r| r.index);
    (!found.is_empty()).then_some(found)
}

/// The first candidate holding each cell of `region`; `None` when a cell is held by none.
fn cell_deciders<'a>(region: &Region, candidates: &[(&'a ResolvedRule, &Region)]) -> Option<Vec<&'a ResolvedRule>> {
    let mut axes: Vec<Vec<u128>> = Vec::with_capacity(4);
    for dim in 0..4 {
        axes.push(cut_points(&region.0[dim], candidates.iter().map(|(_, r)| r.0[dim].as_slice()))?);
    }
    if axes.iter().map(Vec::len).product::<usize>() > MAX_CELLS {
        return None;
    }
    let mut deciders: Vec<&ResolvedRule> = Vec::new();
    for &s in &axes[0] {
        for &d in &axes[1] {
            for &sp in &axes[2] {
                for &dp in &axes[3] {
                    let (rule, _) = candidates.iter().find(|(_, r)| r.holds([s, d, sp, dp]))?;
                    if !deciders.iter().any(|f| std::ptr::eq(*f, *rule)) {
                        deciders.push(rule);
                    }
                }
            }
        }
    }
    Some(deciders)
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
