//! A change's effect on traffic: which flows change verdict, found with the evaluator on the rule set before and
//! after the plan, like a differential reachability query. Only packets a changed rule matches (before or after)
//! or a changed alias entry stands for can change verdict; each such region is cut along the boundaries of every
//! rule on its interface (`eval::region`), so every cell is decided alike throughout, and one witness packet per
//! cell is evaluated on both rule sets. A region cut too finely (a long block list across it) is sampled, and the
//! answer says it is not complete.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::Serialize;

use crate::compare::{Compared, Side};
use crate::eval::region::{Family, MAX_CELLS, Region, admits, complement, families, intersect, universe, within};
use crate::eval::{Decision, PacketKey, ResolvedRule};
use crate::model::{
    Action, AddressTarget, Direction, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Protocol, RuleSet, Timestamp,
};
use crate::plan::{ChangeFacts, ChangePlan, Operation};

/// What a change does to traffic, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EffectVerdict {
    /// No flow changes verdict.
    NoEffect,
    /// Only blocks more.
    Narrows,
    /// Only lets more through.
    Widens,
    /// Both.
    Mixed,
}

/// One class of flows whose verdict changes, with a packet of it (whose interface, direction and protocol are
/// the class's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FlowChange {
    /// The class's source addresses, as a range.
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<String>,
    /// pass, block or reject.
    pub before: String,
    pub after: String,
    /// One packet of the class, as `simulate_packet` takes it.
    pub witness: Witness,
}

/// A packet, in `simulate_packet`'s terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Witness {
    pub interface: String,
    pub direction: String,
    pub protocol: String,
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
}

/// A change's effect on traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Effect {
    pub verdict: EffectVerdict,
    /// The classes of flows that change verdict (at most [`MAX_REPORTED`] listed; `changed_classes` counts all).
    pub changes: Vec<FlowChange>,
    pub changed_classes: usize,
    /// Classes of flows examined.
    pub examined_classes: usize,
    /// False when a region was cut too finely to examine every class, and a sample of them was examined.
    pub complete: bool,
    /// The rules that decide the examined flows after the change, where they are not the changed rules: for a
    /// change without effect, the rules that shadow it.
    pub decided_by: Vec<String>,
}

/// The most pieces one axis of a region is cut into before it is sampled.
const MAX_AXIS_CELLS: usize = 4_096;

/// The most classes an answer lists.
pub const MAX_REPORTED: usize = 20;

/// The effect of carrying `plan` out on `before` at `now`. `None` when the plan does not fit the state (the
/// backends refuse such a plan as a conflict anyway).
pub fn of(before: &RuleSet, plan: &ChangePlan, now: Timestamp) -> Option<Effect> {
    Some(of_compared(&Compared::of(before, plan, now)?, plan))
}

/// A plan's risk facts, with what it does to traffic in place of the planner's guess where the effect knows: a
/// complete report decides whether the change opens flows (a pass rule under a block, or an unblock of an address
/// a wider block still covers, opens nothing); a sampled one can only add an opening it found.
pub fn weigh(facts: &ChangeFacts, effect: Option<&Effect>) -> ChangeFacts {
    let Some(effect) = effect else { return facts.clone() };
    let opens = matches!(effect.verdict, EffectVerdict::Widens | EffectVerdict::Mixed);
    let widens_exposure = if effect.complete { opens } else { opens || facts.widens_exposure };
    ChangeFacts { widens_exposure, ..facts.clone() }
}

/// The effect of `plan` on the rule sets `compared` holds for it.
pub fn of_compared(compared: &Compared<'_>, plan: &ChangePlan) -> Effect {
    let (old, new) = (&compared.old, &compared.new);
    let mut study = Study { changed_by_plan: Changed::of(plan), complete: true, ..Study::default() };
    for base in bases(plan, old, new) {
        study.examine(&base, old, new);
    }
    study.finish()
}

/// A region where verdicts may change: a changed rule's match, or the match of a rule referencing a changed
/// alias, narrowed on that side to the changed entries' addresses.
struct Base {
    rule: ResolvedRule,
    /// Whether `rule` is of the rule set after the change (else before).
    from_new: bool,
    /// The ids the changed rules have, to leave out of `decided_by`.
    changed_ids: Vec<String>,
}

/// What a plan changes: rules by id (`planned-N` for those it creates) and aliases by name.
#[derive(Default)]
struct Changed {
    rules: Vec<String>,
    aliases: Vec<String>,
}

impl Changed {
    fn of(plan: &ChangePlan) -> Self {
        let mut changed = Self { rules: Vec::new(), aliases: Vec::new() };
        for (n, op) in plan.operations.iter().enumerate() {
            match op {
                Operation::CreateRule { .. } => changed.rules.push(format!("planned-{n}")),
                Operation::UpdateRule { before, .. } | Operation::DeleteRule { before } => {
                    changed.rules.push(before.rule_id.to_string());
                }
                Operation::PutAliasEntries { alias, .. } | Operation::RemoveAliasEntries { alias, .. } => {
                    changed.aliases.push(alias.clone());
                }
                Operation::DeleteAlias { before } => changed.aliases.push(before.name.clone()),
                // A protection limits how often and how much, and a mirror copies; neither decides which packet
                // passes, so no verdict changes.
                Operation::CreateAlias { .. }
                | Operation::CreateProtection { .. }
                | Operation::UpdateProtection { .. }
                | Operation::DeleteProtection { .. }
                | Operation::CreateMirror { .. }
                | Operation::DeleteMirror { .. }
                | Operation::CreateVpnAccount { .. }
                | Operation::DeleteVpnAccount { .. } => {}
            }
        }
        changed
    }

    /// Whether a rule decides differently after the plan: changed itself, or referencing a changed alias.
    fn touches(&self, rule: &crate::model::Rule) -> bool {
        let refers = |t: &AddressTarget| matches!(t, AddressTarget::Alias(a) if self.aliases.contains(a));
        self.rules.iter().any(|id| id == rule.rule_id.as_str())
            || refers(&rule.source.target)
            || refers(&rule.destination.target)
    }
}

fn bases(plan: &ChangePlan, old: &Side<'_>, new: &Side<'_>) -> Vec<Base> {
    let mut out = Vec::new();
    let by_id = |side: &Side<'_>, id: &str| {
        side.resolved.iter().find(|r| side.state.rules.get(r.index).is_some_and(|x| x.rule_id.as_str() == id)).cloned()
    };
    for (n, op) in plan.operations.iter().enumerate() {
        let ids_and_rules: Vec<(String, Option<ResolvedRule>, bool)> = match op {
            Operation::CreateRule { .. } => {
                let id = format!("planned-{n}");
                vec![(id.clone(), by_id(new, &id), true)]
            }
            Operation::UpdateRule { before, after, .. } => vec![
                (before.rule_id.to_string(), by_id(old, before.rule_id.as_str()), false),
                (after.rule_id.to_string(), by_id(new, after.rule_id.as_str()), true),
            ],
            Operation::DeleteRule { before } => {
                vec![(before.rule_id.to_string(), by_id(old, before.rule_id.as_str()), false)]
            }
            Operation::PutAliasEntries { alias, before, after } => {
                let values = before.iter().chain(after).map(|e| e.value.as_str());
                out.extend(alias_bases(alias, values, old, new));
                continue;
            }
            Operation::RemoveAliasEntries { alias, before } => {
                out.extend(alias_bases(alias, before.iter().map(|e| e.value.as_str()), old, new));
                continue;
            }
            // The rules that use a deleted alias are deleted by the same plan, and they are the bases.
            Operation::CreateAlias { .. }
            | Operation::DeleteAlias { .. }
            | Operation::CreateProtection { .. }
            | Operation::UpdateProtection { .. }
            | Operation::DeleteProtection { .. }
            | Operation::CreateMirror { .. }
            | Operation::DeleteMirror { .. }
            | Operation::CreateVpnAccount { .. }
            | Operation::DeleteVpnAccount { .. } => continue,
        };
        let changed_ids: Vec<String> = ids_and_rules.iter().map(|(id, _, _)| id.clone()).collect();
        for (_, rule, from_new) in ids_and_rules {
            if let Some(rule) = rule {
                out.push(Base { rule, from_new, changed_ids: changed_ids.clone() });
            }
        }
    }
    out
}

/// The regions of every rule referencing `alias`, narrowed to the changed entries on the referencing side.
fn alias_bases<'v>(alias: &str, values: impl Iterator<Item = &'v str>, old: &Side<'_>, new: &Side<'_>) -> Vec<Base> {
    let nets: Vec<ipnet::IpNet> = values
        .filter_map(|v| v.parse::<ipnet::IpNet>().or_else(|_| v.parse::<IpAddr>().map(ipnet::IpNet::from)).ok())
        .collect();
    let changed = std::sync::Arc::new(crate::eval::AddrSet::from_nets(&nets));
    let mut out = Vec::new();
    for (side, from_new) in [(old, false), (new, true)] {
        for resolved in &side.resolved {
            let Some(rule) = side.state.rules.get(resolved.index) else { continue };
            let refers = |target: &AddressTarget| matches!(target, AddressTarget::Alias(a) if a == alias);
            if refers(&rule.source.target) {
                let rule = ResolvedRule { source: changed.clone(), source_negate: false, ..resolved.clone() };
                out.push(Base { rule, from_new, changed_ids: Vec::new() });
            }
            if refers(&rule.destination.target) {
                let rule = ResolvedRule { destination: changed.clone(), destination_negate: false, ..resolved.clone() };
                out.push(Base { rule, from_new, changed_ids: Vec::new() });
            }
        }
    }
    out
}

#[derive(Default)]
struct Study {
    changed_by_plan: Changed,
    changes: Vec<FlowChange>,
    changed: usize,
    examined: usize,
    /// Until a region has to be sampled.
    complete: bool,
    narrows: bool,
    widens: bool,
    decided_by: Vec<String>,
}

impl Study {
    fn examine(&mut self, base: &Base, old: &Side<'_>, new: &Side<'_>) {
        let rule = &base.rule;
        for &family in families(rule.ip_version) {
            for (protocol, number) in protocol_atoms(rule.protocol, family, old, new) {
                let ports = matches!(number, PROTO_TCP | PROTO_UDP);
                let region = within(rule, family, ports, &universe(family, ports));
                if region.is_empty() {
                    continue;
                }
                for direction in directions(rule.direction) {
                    let cut = Cut { family, protocol, number, ports, direction, interface: rule.interface };
                    self.examine_cells(&region, &cut, base, old, new);
                }
            }
        }
    }

    fn examine_cells(&mut self, region: &Region, cut: &Cut, base: &Base, old: &Side<'_>, new: &Side<'_>) {
        let Some((region, absorbed)) =
            self.without_decided_above(region, cut, base, if base.from_new { new } else { old })
        else {
            return;
        };
        let id_of = |side: &Side<'_>, r: &ResolvedRule| side.rule_id(r.index);
        let cutters: Vec<Region> = [old, new]
            .into_iter()
            .flat_map(|side| side.resolved.iter().map(move |r| (side, r)))
            .filter(|(_, r)| r.interface == cut.interface && admits(r.ip_version, cut.family))
            .filter(|(side, r)| !absorbed.contains(&id_of(side, r)))
            // Cut along what they match within the region's span: a cut through a gap only adds a cell.
            .map(|(_, r)| within(r, cut.family, cut.ports, &hull(&region)))
            .filter(|r| !r.is_empty())
            .collect();
        let mut axes: Vec<Vec<Cell>> = Vec::with_capacity(4);
        for dim in 0..4 {
            let (cells, whole) = cells_of(&region.0[dim], cutters.iter().map(|r| r.0[dim].as_slice()));
            self.complete &= whole;
            axes.push(cells);
        }
        let mut budget = MAX_CELLS;
        for s in &axes[0] {
            for d in &axes[1] {
                for sp in &axes[2] {
                    for dp in &axes[3] {
                        if budget == 0 {
                            self.complete = false;
                            return;
                        }
                        budget -= 1;
                        self.examine_cell([*s, *d, *sp, *dp], cut, base, old, new);
                    }
                }
            }
        }
    }

    /// Takes out of `region` what unchanged rules above the changed one decide alike before and after: a rule
    /// that covers the region in all but one dimension removes its part of that one (a block list above the change
    /// takes its addresses out, so its 100,000 entries never cut the region), one that covers it whole decides all
    /// of it. Returns the rest and the ids of the rules taken out; `None` when nothing is left.
    fn without_decided_above(
        &mut self,
        region: &Region,
        cut: &Cut,
        base: &Base,
        side: &Side<'_>,
    ) -> Option<(Region, Vec<String>)> {
        let mut rest = region.clone();
        let mut holes: [Vec<(u128, u128)>; 4] = Default::default();
        let mut absorbed = Vec::new();
        let v6 = cut.family == Family::V6;
        // Tested against the region's span: whatever covers the span in a dimension covers the region there.
        let span = hull(region);
        for above in side.resolved.iter().take_while(|r| r.index < base.rule.index) {
            let Some(rule) = side.state.rules.get(above.index) else { continue };
            let alike = above.interface == cut.interface
                && admits(above.ip_version, cut.family)
                && (above.direction == Direction::Any || above.direction == cut.direction)
                && above.protocol.matches(cut.number, v6)
                && !self.changed_by_plan.touches(rule);
            if !alike {
                continue;
            }
            let part = within(above, cut.family, cut.ports, &span);
            if part.is_empty() {
                continue;
            }
            let partial: Vec<usize> = (0..4).filter(|d| part.0[*d] != span.0[*d]).collect();
            match partial.as_slice() {
                [] => {
                    self.note_decider(rule.rule_id.to_string());
                    return None;
                }
                [dim] => {
                    holes[*dim].extend_from_slice(&part.0[*dim]);
                    absorbed.push(rule.rule_id.to_string());
                }
                _ => {}
            }
        }
        for (dim, mut hole) in holes.into_iter().enumerate() {
            if hole.is_empty() {
                continue;
            }
            hole.sort_unstable();
            rest.0[dim] = subtract(&rest.0[dim], &merge(hole), cut.family);
        }
        // The rules taken out decide their part alike before and after: for a change without effect they are
        // the rules that shadow it (the default allow rules from LAN net over a block from anywhere).
        for id in &absorbed {
            self.note_decider(id.clone());
        }
        if rest.0.iter().any(Vec::is_empty) {
            return None;
        }
        Some((rest, absorbed))
    }

    fn note_decider(&mut self, id: String) {
        self.examined += 1;
        if !self.decided_by.contains(&id) {
            self.decided_by.push(id);
        }
    }

    fn examine_cell(&mut self, cell: [Cell; 4], cut: &Cut, base: &Base, old: &Side<'_>, new: &Side<'_>) {
        self.examined += 1;
        let key = cut.witness(&cell);
        let (was, will) = (old.compiled.evaluate_key(&key), new.compiled.evaluate_key(&key));
        if let Decision::Rule(i) = will.decision {
            let id = new.rule_id(i);
            if !base.changed_ids.contains(&id) && !id.starts_with("planned-") && !self.decided_by.contains(&id) {
                self.decided_by.push(id);
            }
        }
        if was.action == will.action {
            return;
        }
        self.changed += 1;
        let blocks = |a: Action| a != Action::Pass;
        self.narrows |= !blocks(was.action) && blocks(will.action);
        self.widens |= blocks(was.action) && !blocks(will.action);
        if self.changes.len() < MAX_REPORTED {
            let interface = new.state.interfaces.get(usize::from(cut.interface)).map(|i| i.name.clone());
            self.changes.push(cut.describe(&cell, &key, interface.unwrap_or_default(), was.action, will.action));
        }
    }

    fn finish(self) -> Effect {
        let verdict = match (self.changed, self.narrows, self.widens) {
            (0, _, _) => EffectVerdict::NoEffect,
            (_, true, false) => EffectVerdict::Narrows,
            (_, false, true) => EffectVerdict::Widens,
            _ => EffectVerdict::Mixed,
        };
        Effect {
            verdict,
            changes: self.changes,
            changed_classes: self.changed,
            examined_classes: self.examined,
            complete: self.complete,
            decided_by: self.decided_by,
        }
    }
}

/// The fixed parts of the cells of one region.
struct Cut {
    family: Family,
    protocol: Protocol,
    number: u8,
    ports: bool,
    direction: Direction,
    interface: u16,
}

impl Cut {
    /// A packet of the cell: its lowest addresses but one (a network address makes a poor example) and, for a
    /// source port, 49152 where the cell has it.
    fn witness(&self, cell: &[Cell; 4]) -> PacketKey {
        let port = |c: &Cell| u16::try_from(c.point).ok();
        PacketKey {
            interface: self.interface,
            direction: self.direction,
            protocol: self.number,
            source: address(self.family, cell[0].point),
            destination: address(self.family, cell[1].point),
            source_port: if self.ports { port(&cell[2]) } else { None },
            destination_port: if self.ports { port(&cell[3]) } else { None },
        }
    }

    fn describe(&self, cell: &[Cell; 4], key: &PacketKey, interface: String, was: Action, will: Action) -> FlowChange {
        let range = |(lo, hi): (u128, u128)| {
            let (a, b) = (address(self.family, lo), address(self.family, hi));
            if a == b { a.to_string() } else { format!("{a}-{b}") }
        };
        let direction = if self.direction == Direction::Out { "out" } else { "in" }.to_string();
        let protocol = protocol_name(self.protocol, self.number);
        FlowChange {
            source: range((cell[0].lo, cell[0].hi)),
            destination: range((cell[1].lo, cell[1].hi)),
            destination_port: self.ports.then(|| {
                let (lo, hi) = (cell[3].lo, cell[3].hi);
                if lo == hi { lo.to_string() } else { format!("{lo}:{hi}") }
            }),
            before: was.as_str().to_string(),
            after: will.as_str().to_string(),
            witness: Witness {
                interface,
                direction,
                protocol,
                source: key.source.to_string(),
                destination: key.destination.to_string(),
                source_port: key.source_port,
                destination_port: key.destination_port,
            },
        }
    }
}

fn address(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

fn protocol_name(protocol: Protocol, number: u8) -> String {
    match number {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMP => "icmp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        n if protocol == Protocol::Any => n.to_string(),
        _ => protocol.to_string(),
    }
}

/// The packet protocols a rule's `protocol` stands for on this interface: each protocol the rules there name
/// separately (so cells never straddle a rule's protocol), and one that none names.
fn protocol_atoms(protocol: Protocol, family: Family, old: &Side<'_>, new: &Side<'_>) -> Vec<(Protocol, u8)> {
    let v6 = family == Family::V6;
    let single = |p: Protocol| p.packet_number(v6).map(|n| vec![(p, n)]).unwrap_or_default();
    match protocol {
        Protocol::TcpUdp => vec![(Protocol::Tcp, PROTO_TCP), (Protocol::Udp, PROTO_UDP)],
        Protocol::Any => {
            let mut numbers: Vec<u8> = vec![PROTO_TCP, PROTO_UDP, if v6 { PROTO_ICMPV6 } else { PROTO_ICMP }];
            for r in old.resolved.iter().chain(&new.resolved) {
                if let Some(n) = r.protocol.packet_number(v6)
                    && !numbers.contains(&n)
                {
                    numbers.push(n);
                }
            }
            // A protocol no rule names, decided only by rules for any protocol.
            let unnamed = (0..=255u8).rev().find(|n| !numbers.contains(n));
            numbers.extend(unnamed);
            numbers.into_iter().map(|n| (Protocol::Any, n)).collect()
        }
        other => single(other),
    }
}

fn directions(direction: Direction) -> Vec<Direction> {
    match direction {
        Direction::Any => vec![Direction::In, Direction::Out],
        d => vec![d],
    }
}

/// One piece of an axis: the range between two cuts, and a point of the region inside it.
#[derive(Debug, Clone, Copy)]
struct Cell {
    lo: u128,
    hi: u128,
    point: u128,
}

/// The smallest box holding the region: each dimension's first to last value.
fn hull(region: &Region) -> Region {
    let span = |ranges: &Vec<(u128, u128)>| match (ranges.first(), ranges.last()) {
        (Some(a), Some(b)) => vec![(a.0, b.1)],
        _ => Vec::new(),
    };
    Region([span(&region.0[0]), span(&region.0[1]), span(&region.0[2]), span(&region.0[3])])
}

/// Sorted ranges with the overlapping and adjacent ones joined.
fn merge(sorted: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1).is_none_or(|next| next >= lo) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// `a` without `b`.
fn subtract(a: &[(u128, u128)], b: &[(u128, u128)], family: Family) -> Vec<(u128, u128)> {
    intersect(a, &complement(b, family.top()))
}

/// The pieces of `own` once the ranges of `others` cut its span (its own gaps do not cut it: a cell may hold
/// several of its ranges, and its point is the first of them). More than [`MAX_AXIS_CELLS`] are thinned to an even
/// sample (`false`: not every cell is there).
fn cells_of<'a>(own: &[(u128, u128)], others: impl Iterator<Item = &'a [(u128, u128)]>) -> (Vec<Cell>, bool) {
    let (Some(first), Some(last)) = (own.first(), own.last()) else { return (Vec::new(), true) };
    let (start, end) = (first.0, last.1);
    let mut cuts: Vec<u128> = vec![start];
    for ranges in others {
        for (lo, hi) in ranges {
            cuts.extend([Some(*lo), hi.checked_add(1)].into_iter().flatten().filter(|x| start <= *x && *x <= end));
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut cells = Vec::new();
    for (i, lo) in cuts.iter().enumerate() {
        let hi = cuts.get(i + 1).map_or(end, |next| next - 1);
        let at = own.partition_point(|(_, h)| h < lo);
        if let Some((a, _)) = own.get(at).filter(|(a, _)| *a <= hi) {
            let point = (*a).max(*lo);
            // A network's first address makes a poor example; the next one does as well if it is there.
            let point = if point == *lo && own.get(at).is_some_and(|(_, h)| *h > point) && hi > point {
                point + 1
            } else {
                point
            };
            cells.push(Cell { lo: *lo, hi, point });
        }
    }
    if cells.len() <= MAX_AXIS_CELLS {
        return (cells, true);
    }
    let step = cells.len().div_ceil(MAX_AXIS_CELLS);
    (cells.into_iter().step_by(step).collect(), false)
}

#[cfg(test)]
mod tests {
    use chrono::{SubsecRound, TimeDelta, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::eval::CompiledRuleSet;
    use crate::model::{Interface, IpVersion, Packet, PortMatch, Rule};
    use crate::plan::{Entries, Ids, carry_out};
    use crate::plan::{Intent, RuleDraft, plan};

    fn now() -> Timestamp {
        Utc::now().trunc_subsecs(3)
    }

    /// pfSense after install: LAN passes everything out over IPv4 and IPv6, WAN passes nothing.
    fn fresh() -> RuleSet {
        let rules = vec![
            Rule {
                ip_version: IpVersion::Inet,
                description: "Default allow LAN to any rule".into(),
                ..Rule::new("lan", Action::Pass).with_id("100")
            },
            Rule {
                ip_version: IpVersion::Inet6,
                description: "Default allow LAN IPv6 to any rule".into(),
                ..Rule::new("lan", Action::Pass).with_id("101")
            },
        ];
        let interfaces = vec![
            Interface::up("wan", "em0", "198.51.100.2/24".parse().ok()),
            Interface::up("lan", "em1", "192.168.1.1/24".parse().ok()),
        ];
        RuleSet { interfaces, rules, aliases: Vec::new(), ..RuleSet::default() }
    }

    fn draft(interface: &str, action: Action, port: u16, position: Option<usize>) -> Intent {
        Intent::CreateRule(RuleDraft {
            interface: interface.into(),
            direction: Direction::In,
            action,
            ip_version: None,
            protocol: Protocol::Tcp,
            source: crate::model::AddressMatch::ANY,
            source_port: PortMatch::Any,
            destination: crate::model::AddressMatch::ANY,
            destination_port: PortMatch::parse("port", &port.to_string()).unwrap(),
            description: "test".into(),
            log: false,
            enabled: true,
            position,
        })
    }

    fn effect_of(state: &RuleSet, intent: &Intent) -> (Effect, RuleSet) {
        let t = now();
        let p = plan(state, intent, t).unwrap();
        let effect = of(state, &p, t).unwrap();
        let after = carry_out(state, &p, Ids::Placeholders, Entries::Apply).unwrap().state;
        (effect, after)
    }

    /// Every reported witness changes verdict as reported, on the rule sets themselves.
    fn assert_witnesses_hold(effect: &Effect, before: &RuleSet, after: &RuleSet) {
        let t = now();
        let (old, new) = (CompiledRuleSet::compile(before, t), CompiledRuleSet::compile(after, t));
        for change in &effect.changes {
            let w = &change.witness;
            let packet = Packet {
                interface: w.interface.clone(),
                direction: if w.direction == "out" { Direction::Out } else { Direction::In },
                protocol: Protocol::parse("p", &w.protocol)
                    .ok()
                    .and_then(|p| p.packet_number(w.source.contains(':')))
                    .unwrap_or_else(|| w.protocol.parse().unwrap()),
                source: w.source.parse().unwrap(),
                destination: w.destination.parse().unwrap(),
                source_port: w.source_port,
                destination_port: w.destination_port,
            };
            assert_eq!(old.evaluate(&packet).unwrap().action.as_str(), change.before, "{change:?}");
            assert_eq!(new.evaluate(&packet).unwrap().action.as_str(), change.after, "{change:?}");
        }
    }

    #[test]
    fn the_readme_smtp_rule_under_the_allow_rules_has_no_effect_and_names_them() {
        let state = fresh();
        let (effect, _) = effect_of(&state, &draft("lan", Action::Block, 25, None));
        assert_eq!(effect.verdict, EffectVerdict::NoEffect, "{effect:?}");
        assert!(effect.complete);
        assert_eq!(effect.decided_by, vec!["100".to_string(), "101".to_string()], "{effect:?}");
    }

    #[test]
    fn moved_above_the_allow_rules_it_narrows_with_a_witness_that_holds() {
        let state = fresh();
        let (effect, after) = effect_of(&state, &draft("lan", Action::Block, 25, Some(0)));
        assert_eq!(effect.verdict, EffectVerdict::Narrows, "{effect:?}");
        assert!(
            effect
                .changes
                .iter()
                .all(|c| c.before == "pass" && c.after == "block" && c.destination_port.as_deref() == Some("25"))
        );
        assert!(effect.changes.iter().any(|c| c.witness.source.contains(':')), "IPv6 too: {effect:?}");
        assert_witnesses_hold(&effect, &state, &after);
    }

    #[test]
    fn a_pass_rule_on_wan_widens_and_a_block_there_has_no_effect() {
        let state = fresh();
        let (widens, after) = effect_of(&state, &draft("wan", Action::Pass, 443, None));
        assert_eq!(widens.verdict, EffectVerdict::Widens, "{widens:?}");
        assert_witnesses_hold(&widens, &state, &after);
        let (nothing, _) = effect_of(&state, &draft("wan", Action::Block, 443, None));
        assert_eq!(nothing.verdict, EffectVerdict::NoEffect, "the default deny blocks it already");
    }

    #[test]
    fn a_block_narrows_and_the_same_block_again_has_no_effect() {
        let state = fresh();
        let block = Intent::Block {
            addresses: "203.0.113.7/32".parse::<ipnet::IpNet>().unwrap().into(),
            interface: Some("lan".into()),
            expires_at: Some(now() + TimeDelta::hours(1)),
            reason: "t".into(),
            replace: false,
        };
        let (first, after) = effect_of(&state, &block);
        assert_eq!(first.verdict, EffectVerdict::Narrows, "{first:?}");
        assert!(first.changes.iter().all(|c| c.source == "203.0.113.7"), "{first:?}");
        assert_witnesses_hold(&first, &state, &after);
        let (again, _) = effect_of(&after, &block);
        assert_eq!(again.verdict, EffectVerdict::NoEffect, "{again:?}");
    }

    #[test]
    fn a_complete_report_decides_whether_a_change_opens_flows() {
        let state = fresh();
        let t = now();
        let weighed = |intent: &Intent| {
            let p = plan(&state, intent, t).unwrap();
            (p.facts.widens_exposure, weigh(&p.facts, of(&state, &p, t).as_ref()).widens_exposure)
        };
        // The planner guesses a pass rule opens flows; under the default deny on WAN it does, on LAN it does not.
        assert_eq!(weighed(&draft("wan", Action::Pass, 443, None)), (true, true));
        assert_eq!(weighed(&draft("lan", Action::Pass, 443, None)), (true, false));
        let sampled = Effect {
            verdict: EffectVerdict::NoEffect,
            changes: Vec::new(),
            changed_classes: 0,
            examined_classes: 1,
            complete: false,
            decided_by: Vec::new(),
        };
        let guessed = ChangeFacts { widens_exposure: true, ..ChangeFacts::default() };
        assert!(weigh(&guessed, Some(&sampled)).widens_exposure, "a sample cannot prove nothing opens");
        assert!(weigh(&guessed, None).widens_exposure);
    }

    fn arbitrary_rule() -> impl Strategy<Value = Rule> {
        let action = prop_oneof![Just(Action::Pass), Just(Action::Block)];
        let version = prop_oneof![Just(IpVersion::Inet), Just(IpVersion::Inet6), Just(IpVersion::Inet46)];
        let protocol =
            prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp), Just(Protocol::Any), Just(Protocol::TcpUdp)];
        let net = prop_oneof![Just("any"), Just("10.0.0.0/8"), Just("10.1.0.0/16"), Just("2001:db8::/32")];
        let port = prop_oneof![Just(""), Just("22"), Just("20:30"), Just("443")];
        (action, version, protocol, net, port, any::<bool>()).prop_map(
            |(action, ip_version, protocol, net, port, lan)| {
                let ports = matches!(protocol, Protocol::Tcp | Protocol::Udp | Protocol::TcpUdp) && !port.is_empty();
                Rule {
                    ip_version,
                    protocol,
                    source: crate::model::AddressMatch::parse("s", net).unwrap(),
                    destination_port: if ports { PortMatch::parse("p", port).unwrap() } else { PortMatch::Any },
                    ..Rule::new(if lan { "lan" } else { "wan" }, action)
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Every flow the report says changes does change, and a flow that changes is never missed by a
        /// complete report: checked on random packets against the rule sets themselves.
        #[test]
        fn the_effect_report_agrees_with_the_evaluator(
            rules in proptest::collection::vec(arbitrary_rule(), 0..8),
            new_rule in arbitrary_rule(),
            position in proptest::option::of(0usize..4),
            packets in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u8..3, 0u32..4, 0u16..4), 32),
        ) {
            let mut state = fresh();
            state.rules.extend(rules.into_iter().enumerate().map(|(i, r)| r.with_id((200 + i).to_string())));
            let intent = Intent::CreateRule(RuleDraft {
                interface: new_rule.interface.clone(),
                direction: Direction::In,
                action: new_rule.action,
                ip_version: Some(new_rule.ip_version),
                protocol: new_rule.protocol,
                source: new_rule.source.clone(),
                source_port: PortMatch::Any,
                destination: crate::model::AddressMatch::ANY,
                destination_port: new_rule.destination_port.clone(),
                description: "new".into(),
                log: false,
                enabled: true,
                position,
            });
            let t = now();
            let Ok(p) = plan(&state, &intent, t) else { return Ok(()) };
            let effect = of(&state, &p, t).unwrap();
            let after = carry_out(&state, &p, Ids::Placeholders, Entries::Apply).unwrap().state;
            assert_witnesses_hold(&effect, &state, &after);
            let (old, new) = (CompiledRuleSet::compile(&state, t), CompiledRuleSet::compile(&after, t));
            for (lan, v6, proto, host, port) in packets {
                let source: IpAddr = match (v6, host) {
                    (false, 0) => "10.1.2.3".parse().unwrap(),
                    (false, 1) => "10.9.9.9".parse().unwrap(),
                    (false, _) => "192.0.2.1".parse().unwrap(),
                    (true, 0) => "2001:db8::1".parse().unwrap(),
                    (true, _) => "2001:db9::1".parse().unwrap(),
                };
                let destination: IpAddr = if v6 { "2001:db8:ffff::2".parse().unwrap() } else { "172.16.0.2".parse().unwrap() };
                let number = [PROTO_TCP, PROTO_UDP, if v6 { PROTO_ICMPV6 } else { PROTO_ICMP }][usize::from(proto)];
                let ports = number == PROTO_TCP || number == PROTO_UDP;
                let packet = Packet {
                    interface: if lan { "lan".into() } else { "wan".into() },
                    direction: Direction::In,
                    protocol: number,
                    source,
                    destination,
                    source_port: ports.then_some(49_152),
                    destination_port: ports.then_some([22, 25, 443, 8080][usize::from(port)]),
                };
                let changed = old.evaluate(&packet).unwrap().action != new.evaluate(&packet).unwrap().action;
                if changed && effect.complete {
                    prop_assert!(effect.verdict != EffectVerdict::NoEffect, "{packet:?} changes but the report says no effect: {effect:?}");
                }
            }
        }
    }
}
