//! Shadowing by several earlier rules together: a rule none of the earlier rules covers alone can still never
//! match, when their union covers it — the IPv4 and IPv6 "allow LAN to any" rules over a later `inet46` rule, or
//! three rules that each take a part of its ports. The rule's region is cut along every boundary of the earlier
//! rules that meet it (`eval::region`), and each cell is decided by its first match.

use crate::eval::ResolvedRule;
use crate::eval::region::{Family, MAX_CELLS, Region, admits, cut_points, families, protocols};
use crate::model::{Direction, Protocol};

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
