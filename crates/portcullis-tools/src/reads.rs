//! The read tools: answers computed from freshly read firewall state.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::TimeDelta;
use portcullis_core::domain::{DOMAIN_ALIAS, MANAGED_DOMAIN_BLOCK};
use portcullis_core::eval::{CompiledRuleSet, Decision};
use portcullis_core::firewall::VpnKind;
use portcullis_core::lint::{LintOptions, lint};
use portcullis_core::model::{Action, AddressTarget};
use portcullis_core::model::{Direction, Packet, Protocol, RuleId, RuleSet, Timestamp};
use portcullis_core::plan::{BLOCK_ALIAS, MANAGED_BLOCK, MANAGED_GRANT};
use portcullis_core::{FieldError, FieldResult};

use crate::args::{self, GetFirewallRulesArgs, SimulatePacketArgs};
use crate::views::*;
use crate::work::{ReadJob, ReadScope};
use crate::{CallError, HitsView};

/// The rules, with what each matched where the firewall counts it (`hits`).
pub fn firewall_rules(
    target: &str,
    state: &RuleSet,
    a: &GetFirewallRulesArgs,
    hits: Option<&HashMap<RuleId, HitsView>>,
) -> FieldResult<RulesResult> {
    let interface = match &a.interface {
        Some(name) => Some(state.resolve_interface("interface", name)?.name.clone()),
        None => None,
    };
    let wanted = a.rule_id.as_ref().map(crate::args::rule_id).transpose()?;
    let data: Vec<RuleView> = state
        .rules
        .iter()
        .filter(|r| wanted.as_ref().is_none_or(|id| &r.rule_id == id))
        .filter(|r| interface.as_ref().is_none_or(|i| &r.interface == i))
        .filter(|r| !a.enabled_only.unwrap_or(false) || r.enabled)
        .map(|r| RuleView { hits: hits.and_then(|h| h.get(&r.rule_id)).copied(), ..RuleView::of(state, r) })
        .collect();
    let summary = a.summary.unwrap_or(false).then(|| summarise(&data));
    Ok(RulesResult {
        target: target.to_string(),
        count: data.len(),
        data,
        summary,
        interfaces: state.interfaces.clone(),
        default_policy: DefaultPolicy {
            inbound: "block (implicit default deny after the last rule)".into(),
            outbound: "pass (implicit)".into(),
        },
    })
}

fn summarise(rows: &[RuleView]) -> RulesSummary {
    let mut by_interface = BTreeMap::new();
    let mut by_action = BTreeMap::new();
    for r in rows {
        *by_interface.entry(r.rule.interface.clone()).or_default() += 1;
        *by_action.entry(r.rule.action.as_str().to_string()).or_default() += 1;
    }
    RulesSummary {
        total: rows.len(),
        enabled: rows.iter().filter(|r| r.status == "enabled").count(),
        disabled: rows.iter().filter(|r| r.status == "disabled").count(),
        paused: rows.iter().filter(|r| r.status == "paused").count(),
        by_interface,
        by_action,
    }
}

/// Aliases of a target: every alias with its entry count, or one alias with its entries.
pub fn aliases(target: &str, state: &RuleSet, name: Option<&str>, now: Timestamp) -> FieldResult<AliasesResult> {
    if let Some(n) = name
        && !state.aliases.iter().any(|a| a.name == n)
    {
        return Err(FieldError::new("name", format!("there is no alias named {n:?} on target {target}")));
    }
    let data: Vec<AliasView> = state
        .aliases
        .iter()
        .filter(|a| name.is_none_or(|n| a.name == n))
        .map(|a| AliasView {
            name: a.name.clone(),
            kind: a.kind,
            description: a.description.clone(),
            managed: a.managed.clone(),
            entry_count: a.entries.iter().filter(|e| e.is_live(now)).count(),
            entries: name.map(|_| a.entries.iter().filter(|e| e.is_live(now)).cloned().collect()),
        })
        .collect();
    Ok(AliasesResult { target: target.to_string(), count: data.len(), data })
}

pub fn blocks(target: &str, state: &RuleSet, interface: Option<&str>, now: Timestamp) -> FieldResult<BlocksResult> {
    let interface = match interface {
        Some(name) => Some(state.resolve_interface("interface", name)?.name.clone()),
        None => None,
    };
    let data: Vec<BlockView> = live_entries(state, MANAGED_BLOCK, now)
        .chain(live_entries(state, MANAGED_DOMAIN_BLOCK, now))
        .map(|(alias, e)| block_view(alias, e, now))
        .filter(|b| interface.as_ref().is_none_or(|i| &b.interface == i || b.interface == "all"))
        .collect();
    Ok(BlocksResult { target: target.to_string(), count: data.len(), data, next_cursor: None })
}

fn block_view(
    alias: &portcullis_core::model::Alias,
    e: &portcullis_core::model::AliasEntry,
    now: Timestamp,
) -> BlockView {
    let by_name = alias.managed.as_deref() == Some(MANAGED_DOMAIN_BLOCK);
    let (domain, reason) = match e.detail.split_once(": ") {
        _ if !by_name => (None, e.detail.clone()),
        Some((d, r)) => (Some(d.to_string()), r.to_string()),
        None => (Some(e.detail.clone()), String::new()),
    };
    BlockView {
        ip_address: e.value.clone(),
        interface: interface_of_block_list(&alias.name),
        domain,
        reason,
        created_at: e.created_at,
        expires_at: e.expires_at,
        remaining_seconds: remaining_seconds(e, now),
        permanent: e.expires_at.is_none(),
        alias: alias.name.clone(),
        kind: if by_name { "domain" } else { "block" }.into(),
    }
}

/// The interface a block list applies on (`PORTCULLIS_BLOCK_WAN`: `wan`), or `all`.
fn interface_of_block_list(alias: &str) -> String {
    alias
        .strip_prefix(&format!("{DOMAIN_ALIAS}_"))
        .or_else(|| alias.strip_prefix(&format!("{BLOCK_ALIAS}_")).filter(|_| !alias.starts_with(DOMAIN_ALIAS)))
        .map_or("all".to_string(), str::to_ascii_lowercase)
}

/// `list_blocks` without `limit`: every block list's live entries, and the sources DDoS protections hold blocked
/// for overload (kind `overload`).
pub(crate) struct AllBlocks {
    pub interface: Option<String>,
}

#[async_trait]
impl ReadJob for AllBlocks {
    type Output = BlocksResult;

    async fn read(self, at: &ReadScope<'_>) -> Result<BlocksResult, CallError> {
        let state = at.state().await?;
        let now = chrono::Utc::now();
        let mut result = blocks(&at.target.name, &state, self.interface.as_deref(), now)?;
        let limited = crate::ddos::overloaded_sources(at.target, &state).await;
        let wanted = self
            .interface
            .as_deref()
            .and_then(|i| state.resolve_interface("interface", i).ok())
            .map(|i| i.name.clone());
        result.data.extend(
            crate::ddos::overload_blocks(limited, now)
                .into_iter()
                .filter(|b| wanted.as_ref().is_none_or(|i| &b.interface == i)),
        );
        result.count = result.data.len();
        Ok(result)
    }
}

/// The most blocks one page of `list_blocks` holds.
pub const MAX_BLOCKS_PAGE: u32 = 10_000;

/// `list_blocks` with `limit`: one page, read only as far as it reaches (a block list may hold a million
/// entries). The cursor is `ALIAS:OFFSET`, the block list and the position in it where the next page starts.
pub(crate) struct BlocksPage {
    pub interface: Option<String>,
    pub limit: u32,
    pub cursor: Option<String>,
}

impl BlocksPage {
    pub(crate) fn new(a: args::ListBlocksArgs) -> FieldResult<Self> {
        let limit = a.limit.unwrap_or(1000);
        if limit == 0 || limit > MAX_BLOCKS_PAGE {
            return Err(FieldError::new("limit", format!("must be 1-{MAX_BLOCKS_PAGE}")));
        }
        if let Some(c) = &a.cursor
            && cursor_parts(c).is_none()
        {
            return Err(FieldError::new("cursor", "is not a next_cursor list_blocks gave"));
        }
        Ok(BlocksPage { interface: a.interface, limit, cursor: a.cursor })
    }
}

fn cursor_parts(cursor: &str) -> Option<(&str, usize)> {
    let (alias, offset) = cursor.rsplit_once(':')?;
    Some((alias, offset.parse().ok()?))
}

#[async_trait]
impl ReadJob for BlocksPage {
    type Output = BlocksResult;
    async fn read(self, at: &ReadScope<'_>) -> Result<BlocksResult, CallError> {
        let firewall = at.target.firewall.as_ref();
        let outline = firewall.outline().await?;
        let interface = match &self.interface {
            Some(name) => Some(outline.resolve_interface("interface", name)?.name.clone()),
            None => None,
        };
        let mut lists: Vec<&portcullis_core::model::Alias> = outline
            .aliases
            .iter()
            .filter(|a| matches!(a.managed.as_deref(), Some(MANAGED_BLOCK | MANAGED_DOMAIN_BLOCK)))
            .filter(|a| {
                let on = interface_of_block_list(&a.name);
                interface.as_ref().is_none_or(|i| &on == i || on == "all")
            })
            .collect();
        lists.sort_by(|a, b| a.name.cmp(&b.name));
        let (start_list, mut offset) = match self.cursor.as_deref().and_then(cursor_parts) {
            Some((alias, offset)) => {
                let index = lists.iter().position(|a| a.name == alias).ok_or_else(|| {
                    CallError::from(FieldError::new("cursor", format!("names no block list of this target ({alias})")))
                })?;
                (index, offset)
            }
            None => (0, 0),
        };
        let now = crate::now();
        let limit = self.limit as usize;
        let mut data = Vec::new();
        let mut next_cursor = None;
        for alias in lists.iter().skip(start_list) {
            let wanted = limit - data.len();
            let (page, more) = firewall.alias_entries_page(&alias.name, offset, wanted).await?.unwrap_or_default();
            let read = page.len();
            data.extend(page.iter().filter(|e| e.is_live(now)).map(|e| block_view(alias, e, now)));
            if more {
                next_cursor = Some(format!("{}:{}", alias.name, offset + read));
                break;
            }
            offset = 0;
            if data.len() >= limit {
                break;
            }
        }
        if next_cursor.is_none() && data.len() >= limit {
            // The page ended exactly at a list's end: the next list, if any, starts the next page.
            let done = lists.iter().position(|a| data.last().is_some_and(|b| b.alias == a.name));
            if let Some(next) = done.and_then(|i| lists.get(i + 1)) {
                next_cursor = Some(format!("{}:0", next.name));
            }
        }
        Ok(BlocksResult { target: at.target.name.clone(), count: data.len(), data, next_cursor })
    }
}

pub fn simulate(target: &str, state: &RuleSet, a: &SimulatePacketArgs, now: Timestamp) -> FieldResult<SimulateResult> {
    let interface = state.resolve_interface("interface", &a.interface)?.name.clone();
    let direction = match &a.direction {
        Some(d) => Direction::parse("direction", d)?,
        None => Direction::In,
    };
    if direction == Direction::Any {
        return Err(FieldError::new("direction", "a packet travels in or out, not both"));
    }
    let source = host_address("source", &a.source)?;
    let destination = host_address("destination", &a.destination)?;
    let protocol = Protocol::parse("protocol", &a.protocol)?;
    let number = protocol.packet_number(source.is_ipv6()).ok_or_else(|| {
        FieldError::new("protocol", "a packet has one protocol: tcp, udp, icmp, icmpv6, or another single protocol")
    })?;
    let destination_port = args::simulate_port("destination_port", &a.destination_port)?;
    let source_port = args::simulate_port("source_port", &a.source_port)?;
    if protocol.has_ports() && destination_port.is_none() {
        return Err(FieldError::new("destination_port", format!("a {protocol} packet needs a destination_port")));
    }
    let packet = Packet {
        interface: interface.clone(),
        direction,
        protocol: number,
        source,
        destination,
        source_port: if protocol.has_ports() { source_port.or(Some(49152)) } else { None },
        destination_port: if protocol.has_ports() { destination_port } else { None },
    };
    let verdict = CompiledRuleSet::compile(state, now).evaluate(&packet)?;
    let rule = deciding_rule(state, &interface, verdict.decision);
    let explanation = match verdict.decision {
        Decision::Rule(_) => format!(
            "first matching rule on {interface} is #{} {:?}: {}",
            rule.position.unwrap_or_default(),
            rule.description,
            verdict.action.as_str()
        ),
        Decision::DefaultDeny => format!("no rule on {interface} matches; the implicit default deny blocks it"),
        Decision::DefaultPassOut => "outbound traffic passes unless a rule blocks it".into(),
    };
    // Rate limits hold for a flow of connections, not one packet: the verdict stays the rules', and the answer
    // says which limits a new connection like this one counts against.
    let passes = verdict.action == portcullis_core::model::Action::Pass;
    let rate_limited_by = state
        .protections
        .iter()
        .filter(|p| passes && p.selects(&packet))
        .map(|p| ProtectionMatch {
            protection_id: p.protection_id.clone(),
            summary: p.describe(),
            exempt: p.exempts(&packet),
        })
        .collect();
    // A copy is made whatever the verdict: a mirror sees what crosses the interface, blocked packets included
    // (they arrive before the filter decides), except on egress where only what passed leaves.
    let mirrored_to = state
        .mirrors
        .iter()
        .filter(|m| m.copies(&packet) && (direction != Direction::Out || passes))
        .map(|m| MirrorMatch {
            mirror_id: m.mirror_id.to_string(),
            sensor: m.sensor.name.clone(),
            summary: m.describe(),
        })
        .collect();
    Ok(SimulateResult {
        target: target.to_string(),
        verdict: verdict.action.as_str().into(),
        rule,
        packet: SimulatedPacket {
            interface,
            direction: format!("{direction:?}").to_ascii_lowercase(),
            protocol: protocol.to_string(),
            source: source.to_string(),
            destination: destination.to_string(),
            source_port: packet.source_port,
            destination_port: packet.destination_port,
        },
        explanation,
        rate_limited_by,
        mirrored_to,
        evaluated_at: now,
    })
}

/// One address of a packet, spelled as every other address argument is (`address::parse_host`): a packet to the
/// IPv4-mapped form of a host is no packet IPv4 traffic ever is.
fn host_address(field: &str, v: &str) -> FieldResult<std::net::IpAddr> {
    portcullis_core::address::parse_host(field, v)
}

fn deciding_rule(state: &RuleSet, interface: &str, decision: Decision) -> DecidingRule {
    match decision {
        Decision::Rule(idx) => {
            let r = &state.rules[idx];
            DecidingRule {
                kind: "rule".into(),
                rule_id: Some(r.rule_id.to_string()),
                position: state.position_of(&r.rule_id),
                interface: r.interface.clone(),
                description: r.description.clone(),
                managed: r.managed.clone(),
            }
        }
        Decision::DefaultDeny => DecidingRule {
            kind: "default_deny".into(),
            rule_id: None,
            position: None,
            interface: interface.to_string(),
            description: "Default deny rule (implicit)".into(),
            managed: None,
        },
        Decision::DefaultPassOut => DecidingRule {
            kind: "default_pass_out".into(),
            rule_id: None,
            position: None,
            interface: interface.to_string(),
            description: "Default pass out (implicit)".into(),
            managed: None,
        },
    }
}

pub fn lint_rules(
    target: &str,
    state: &RuleSet,
    interface: Option<&str>,
    exposed: &[String],
    now: Timestamp,
) -> FieldResult<LintResult> {
    let interface = match interface {
        Some(name) => Some(state.resolve_interface("interface", name)?.name.clone()),
        None => None,
    };
    let options = LintOptions { exposed_interfaces: exposed, stale_after: TimeDelta::days(30) };
    let data: Vec<_> = lint(state, now, &options)
        .into_iter()
        .filter(|f| interface.as_ref().is_none_or(|i| &f.interface == i))
        .collect();
    let mut by_kind = BTreeMap::new();
    for f in &data {
        let kind = serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        *by_kind.entry(kind).or_default() += 1;
    }
    Ok(LintResult { target: target.to_string(), count: data.len(), data, by_kind })
}

pub fn grants(target: &str, state: &RuleSet, alias: Option<&str>, now: Timestamp) -> GrantsResult {
    let passing = |name: &str| -> Vec<String> {
        let source = AddressTarget::Alias(name.to_string());
        state
            .rules
            .iter()
            .filter(|r| r.action == Action::Pass && r.source.target == source)
            .map(|r| r.rule_id.to_string())
            .collect()
    };
    let mut rules_of: std::collections::HashMap<&str, Vec<String>> = std::collections::HashMap::new();
    let data: Vec<GrantView> = live_entries(state, MANAGED_GRANT, now)
        .filter(|(a, _)| alias.is_none_or(|w| w == a.name))
        .map(|(a, e)| GrantView {
            ip_address: e.value.clone(),
            alias: a.name.clone(),
            reason: e.detail.clone(),
            created_at: e.created_at,
            expires_at: e.expires_at,
            remaining_seconds: remaining_seconds(e, now),
            permanent: e.expires_at.is_none(),
            rules: rules_of.entry(a.name.as_str()).or_insert_with(|| passing(&a.name)).clone(),
        })
        .collect();
    GrantsResult { target: target.to_string(), count: data.len(), data }
}

/// The live entries of every managed alias with this tag, with their alias.
fn live_entries<'a>(
    state: &'a RuleSet,
    tag: &'a str,
    now: Timestamp,
) -> impl Iterator<Item = (&'a portcullis_core::model::Alias, &'a portcullis_core::model::AliasEntry)> + 'a {
    state
        .aliases
        .iter()
        .filter(move |a| a.managed.as_deref() == Some(tag))
        .flat_map(move |a| a.entries.iter().filter(move |e| e.is_live(now)).map(move |e| (a, e)))
}

fn remaining_seconds(e: &portcullis_core::model::AliasEntry, now: Timestamp) -> Option<i64> {
    e.expires_at.map(|t| (t - now).num_seconds().max(0))
}

/// The rules, each with what the firewall counted for it.
#[async_trait]
impl ReadJob for GetFirewallRulesArgs {
    type Output = RulesResult;
    async fn read(self, at: &ReadScope<'_>) -> Result<RulesResult, CallError> {
        // The rules now; the interfaces and aliases they name from a recent read.
        let state = at.state_with(&portcullis_core::freshness::StateRead::rules()).await?;
        let hits = at.svc.rule_hits(at.target).await;
        Ok(firewall_rules(&at.target.name, &state, &self, hits.as_ref())?)
    }
}

/// `get_system_status`: the backend's own report of its health.
pub(crate) struct Status;

#[async_trait]
impl ReadJob for Status {
    type Output = SystemStatusResult;
    async fn read(self, at: &ReadScope<'_>) -> Result<SystemStatusResult, CallError> {
        let status = at.target.firewall.system_status().await?;
        let backend = format!("{:?}", at.target.firewall.info().kind).to_ascii_lowercase();
        let principal = CallerView { name: at.ctx.principal.name.clone(), role: at.ctx.principal.role.clone() };
        Ok(SystemStatusResult { target: at.target.name.clone(), backend, principal, status })
    }
}

/// `get_vpn_status`, of one kind of VPN or all.
pub(crate) struct Vpn(pub Option<VpnKind>);

#[async_trait]
impl ReadJob for Vpn {
    type Output = VpnStatusResult;
    async fn read(self, at: &ReadScope<'_>) -> Result<VpnStatusResult, CallError> {
        let status = at.target.firewall.vpn_status(self.0).await?;
        let connections_up = status.connections.iter().filter(|c| c.status.eq_ignore_ascii_case("up")).count();
        Ok(VpnStatusResult {
            target: at.target.name.clone(),
            connections: status.connections,
            users: status.users,
            connections_up,
        })
    }
}
