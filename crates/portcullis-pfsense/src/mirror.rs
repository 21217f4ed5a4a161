//! Traffic mirrors on pfSense. pf can copy packets (`dup-to`), but pfSense never writes it and pfRest has no
//! field for it, so by default a mirror is `unsupported`, with the alternatives.
//!
//! With `allow_shell: true` on the target (admin only; root-equivalent) mirrors are pf rules in the anchor
//! [`ANCHOR`], which pfSense evaluates right before the user rules (WAVE2-FACTS §3b), written through pfRest's
//! `diagnostics/command_prompt`:
//!
//! - The whole anchor is written at once from Portcullis' records: the rules file is written with `printf`
//!   (in pieces, as pfRest takes at most 1024 characters a command) and loaded with `pfctl -a ANCHOR -f FILE`,
//!   which replaces the anchor's rules atomically or, on any error, leaves them. No mirror left: `-F rules`.
//! - Every word of a rule comes from a typed, validated value (addresses, prefix lengths, port numbers, a
//!   protocol keyword, device names that pass [`device_name`], a hex id); a rule that would hold anything else is
//!   refused before a command is sent.
//! - A `pass quick` there would let copied flows skip the user rules, so: Portcullis' own block rules (block
//!   lists, geo and domain blocks) are copied ahead of the mirrors as `block quick` on their pf tables, the
//!   change is refused when the rule set blocks any flow the mirror would copy ([`bypassed_flow`], with the
//!   evaluator), and when a pass rule of the interface routes through a gateway, a limiter or the SYN proxy
//!   ([`skipped_options`]), which the anchor rule would skip.
//! - Each rule carries the label `pcm:<id>:<n>`: the state lists a recorded mirror only while `pfctl -sr` shows
//!   all of its labels, and `-vsr`'s counters are its packets and bytes.
//! - The records live in the store ([`mirrors_key`]): a reboot empties the anchor, and the reconciler's
//!   [`crate::PfSenseFirewall`] `restore_lost` loads it again from them.
//!
//! What pf cannot do is refused with why: VXLAN sensors (pf has no tunnel of its own to copy into), `both`
//! directions (pf copies only the packets in the direction of the rule that made the flow's state; replies match
//! the state and are not copied), and an excluded address inside a selected network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use portcullis_core::firewall::{BackendError, ErrorCode, UnsupportedField};
use portcullis_core::mirror::{Clause, Family, Mirror, MirrorAsk, MirrorDirection, SensorKind};
use portcullis_core::model::{
    Action, AddressMatch, AddressTarget, Direction, Interface, IpVersion, PortMatch, PortRange, Protocol, Rule,
    RuleSet, Timestamp,
};
use portcullis_core::plan::{ChangePlan, MANAGED_BLOCK, Operation};
use portcullis_pfrest::types::{COMMAND_MAX_LEN, FirewallRule};
use portcullis_store::Store;

use crate::mapping::InterfaceMap;
use crate::store_error;

/// The anchor Portcullis' mirror rules live in: a child of `userrules/*`, which pfSense's ruleset evaluates
/// right before the user rules.
pub const ANCHOR: &str = "userrules/portcullis_mirror";
/// The file the anchor's rules are written to before `pfctl` loads them (pfSense's `/tmp` is memory).
pub const RULES_FILE: &str = "/tmp/portcullis_mirror.rules";
/// The prefix of a mirror rule's label: `pcm:<id>:<n>`.
const LABEL_PREFIX: &str = "pcm:";

/// Why pfRest cannot mirror, and what to do instead.
pub fn unsupported() -> UnsupportedField {
    UnsupportedField {
        field: "interface".into(),
        why: "pfRest has no field for pf's dup-to, and pfSense never writes one".into(),
        instead: "copy the traffic with a switch SPAN port, or opt in per target with allow_shell: true (admin \
                  only, root-equivalent: rules loaded into the anchor userrules/portcullis_mirror through pfRest's \
                  command prompt)"
            .into(),
    }
}

/// The error a plan that starts a mirror gets on a target that cannot carry one out.
pub fn unsupported_error(mirror: &Mirror) -> BackendError {
    let u = unsupported();
    BackendError::new(ErrorCode::Unsupported, format!("cannot start mirror {}: {}", mirror.mirror_id, u.why))
        .with_hint(u.instead)
}

/// What pf cannot copy even with the shell, field by field; `None` when it can.
pub fn unsupported_with_shell(ask: &MirrorAsk) -> Option<UnsupportedField> {
    if matches!(ask.sensor.kind, SensorKind::Vxlan { .. }) {
        return Some(UnsupportedField {
            field: "sensor".into(),
            why: format!(
                "sensor {} is a VXLAN tunnel, and pf's dup-to copies only to an interface or a next hop",
                ask.sensor.name
            ),
            instead: "put the sensor on a network of its own behind an interface of this firewall (kind interface \
                      or address), or mirror through VXLAN on an nftables target"
                .into(),
        });
    }
    if ask.direction == MirrorDirection::Both {
        return Some(UnsupportedField {
            field: "direction".into(),
            why: "pf copies only the packets going the way of the rule that made the flow's state; the replies \
                  match that state and are never copied"
                .into(),
            instead: "mirror direction in (what arrives) or out (what leaves), or both directions on an nftables \
                      target"
                .into(),
        });
    }
    for (field, net) in [("source", ask.selector.source), ("destination", ask.selector.destination)] {
        if let Some(net) = net
            && let Some(x) = ask.sensor.excluded().into_iter().find(|x| net.contains(x))
        {
            return Some(UnsupportedField {
                field: field.into(),
                why: format!(
                    "{net} holds the sensor's own address {x}, which a mirror never copies, and pf cannot leave one address out of a network in a rule"
                ),
                instead: format!("name a {field} that does not hold {x}"),
            });
        }
    }
    None
}

/// Where a target's mirror records are kept: one small JSON list.
pub fn mirrors_key(target: &str) -> String {
    format!("pfsense:{target}:mirrors")
}

pub fn load(store: &Store, target: &str) -> Result<Vec<Mirror>, BackendError> {
    let Some(text) = store.meta_get(&mirrors_key(target)).map_err(store_error)? else { return Ok(Vec::new()) };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|e| {
        BackendError::new(ErrorCode::InternalError, format!("the store's mirror records do not read: {e}"))
            .with_hint("the records were written by another version; stop the mirrors on the firewall by hand")
    })
}

pub fn encode(mirrors: &[Mirror]) -> String {
    if mirrors.is_empty() { String::new() } else { serde_json::to_string(mirrors).unwrap_or_default() }
}

/// The label of a mirror's `n`-th rule.
fn label(mirror: &Mirror, n: usize) -> String {
    format!("{LABEL_PREFIX}{}:{n}", mirror.mirror_id.hex())
}

fn internal(message: impl Into<String>) -> BackendError {
    BackendError::new(ErrorCode::InternalError, message)
}

/// A device name as pf takes it after `on` (`igb0`, `vtnet1.100`): it goes into a root shell command, so
/// nothing else is let through.
pub fn device_name(name: &str) -> Result<&str, BackendError> {
    let ok = !name.is_empty() && name.len() <= 15 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    if ok { Ok(name) } else { Err(internal(format!("{name:?} is not a device name pf takes"))) }
}

/// A pf table name as Portcullis' aliases have it.
fn table_name(name: &str) -> Result<&str, BackendError> {
    let ok = !name.is_empty() && name.len() <= 31 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(name) } else { Err(internal(format!("{name:?} is not a pf table name"))) }
}

/// The device of an interface named by its logical name or its device.
fn device_of<'a>(interfaces: &'a [Interface], name: &str) -> Result<&'a str, BackendError> {
    let found = interfaces
        .iter()
        .find(|i| i.name.eq_ignore_ascii_case(name) || i.device.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            BackendError::new(ErrorCode::ValidationError, format!("interface {name} is not on this firewall"))
                .with_hint("name the interface as get_system_status lists it")
        })?;
    device_name(&found.device)
}

fn hook_word(hook: Direction) -> &'static str {
    if hook == Direction::Out { "out" } else { "in" }
}

fn host(net: Option<IpNet>, excluded: &[IpAddr]) -> Result<String, BackendError> {
    match (net, excluded) {
        (Some(net), _) => Ok(net.trunc().to_string()),
        (None, []) => Ok("any".into()),
        (None, [one]) => Ok(format!("! {one}")),
        (None, _) => Err(internal("pf cannot leave more than one address out of a rule")),
    }
}

fn ports(range: Option<PortRange>, not: Option<PortRange>) -> String {
    match (range, not) {
        (Some(r), _) => format!(" port {r}"),
        (None, Some(r)) if r.first == r.last => format!(" port != {}", r.first),
        (None, Some(r)) => format!(" port {} <> {}", r.first, r.last),
        (None, None) => String::new(),
    }
}

/// The `proto` words for a clause's protocol in its family; empty when the protocol never occurs there.
fn protocols(protocol: Protocol, family: Family) -> Vec<Option<String>> {
    match (protocol, family) {
        (Protocol::Any, _) => vec![None],
        (Protocol::Tcp, _) => vec![Some("tcp".into())],
        (Protocol::Udp, _) => vec![Some("udp".into())],
        (Protocol::TcpUdp, _) => vec![Some("tcp".into()), Some("udp".into())],
        (Protocol::Icmp, Family::V4) => vec![Some("icmp".into())],
        (Protocol::Icmp | Protocol::Icmpv6, Family::V6) => vec![Some("icmp6".into())],
        (Protocol::Icmpv6, Family::V4) => Vec::new(),
        (Protocol::Number(n), _) => vec![Some(n.to_string())],
    }
}

/// The pf rules one mirror is written as, in order: one per clause and protocol.
pub fn mirror_rules(mirror: &Mirror, interfaces: &[Interface]) -> Result<Vec<String>, BackendError> {
    let on = device_of(interfaces, &mirror.interface)?;
    let target = match &mirror.sensor.kind {
        SensorKind::Interface { interface } => device_of(interfaces, interface)?.to_string(),
        SensorKind::Address { address, interface } => format!("({} {address})", device_of(interfaces, interface)?),
        SensorKind::Vxlan { .. } => {
            return Err(BackendError::new(ErrorCode::Unsupported, "pf cannot copy into a VXLAN tunnel"));
        }
    };
    let mut out = Vec::new();
    for clause in mirror.clauses() {
        for proto in protocols(clause.protocol, clause.family) {
            out.push(clause_rule(mirror, &clause, on, &target, proto.as_deref(), out.len())?);
        }
    }
    Ok(out)
}

fn clause_rule(
    mirror: &Mirror,
    clause: &Clause,
    on: &str,
    target: &str,
    proto: Option<&str>,
    n: usize,
) -> Result<String, BackendError> {
    let family = if clause.family == Family::V4 { "inet" } else { "inet6" };
    let proto = proto.map(|p| format!(" proto {p}")).unwrap_or_default();
    let from = host(clause.source, &clause.excluded)?;
    let to = host(clause.destination, &clause.excluded)?;
    let sport = ports(clause.source_port, None);
    let dport = ports(clause.destination_port, clause.destination_port_not);
    let rule = format!(
        "pass {} quick on {on} dup-to {target} {family}{proto} from {from}{sport} to {to}{dport} keep state \
         max-pkt-rate {}/1 label \"{}\"",
        hook_word(clause.hook),
        mirror.rate_limit.max(1),
        label(mirror, n)
    );
    Ok(rule)
}

/// Whether a rule is one of Portcullis' own blocks (lists, geo, domains), which the anchor copies ahead of the
/// mirrors so that a copied flow is still blocked.
fn is_own_block(rule: &Rule) -> bool {
    let own = [MANAGED_BLOCK, portcullis_core::geo::MANAGED_GEO, portcullis_core::domain::MANAGED_DOMAIN_BLOCK];
    rule.enabled
        && matches!(rule.action, Action::Block | Action::Reject)
        && rule.managed.as_deref().is_some_and(|m| own.contains(&m))
}

/// `block quick` copies of Portcullis' own block rules on the mirrored interfaces, on the same pf tables.
pub fn block_copies(mirrors: &[Mirror], state: &RuleSet) -> Result<Vec<String>, BackendError> {
    let mirrored: BTreeSet<&str> = mirrors.iter().map(|m| m.interface.as_str()).collect();
    let mut out = Vec::new();
    for rule in state.rules.iter().filter(|r| is_own_block(r) && mirrored.contains(r.interface.as_str())) {
        let on = device_of(&state.interfaces, &rule.interface)?;
        let side = |m: &AddressMatch| -> Result<String, BackendError> {
            match &m.target {
                AddressTarget::Alias(name) if !m.negate => Ok(format!("<{}>", table_name(name)?)),
                AddressTarget::Any if !m.negate => Ok("any".into()),
                _ => Err(internal(format!("block rule {} matches something other than a table", rule.rule_id))),
            }
        };
        let (from, to) = (side(&rule.source)?, side(&rule.destination)?);
        let hooks: &[&str] = match rule.direction {
            Direction::In => &["in"],
            Direction::Out => &["out"],
            Direction::Any => &["in", "out"],
        };
        for hook in hooks {
            out.push(format!("block {hook} quick on {on} from {from} to {to}"));
        }
    }
    out.dedup();
    Ok(out)
}

/// The anchor's whole rule set for `mirrors`: the block copies, then every mirror's rules.
pub fn anchor_rules(mirrors: &[Mirror], state: &RuleSet) -> Result<Vec<String>, BackendError> {
    if mirrors.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = block_copies(mirrors, state)?;
    for m in mirrors {
        out.extend(mirror_rules(m, &state.interfaces)?);
    }
    for rule in &out {
        if rule.contains('\'') || rule.contains('\n') {
            return Err(internal(format!("a mirror rule holds a character a shell command cannot carry: {rule}")));
        }
    }
    Ok(out)
}

/// The commands that make the anchor hold exactly `rules`: the file written in pieces that fit pfRest's command
/// length, then one atomic load; or a flush when no rule is left.
pub fn load_commands(rules: &[String]) -> Result<Vec<String>, BackendError> {
    if rules.is_empty() {
        return Ok(vec![format!("/sbin/pfctl -a {ANCHOR} -F rules")]);
    }
    let mut commands = Vec::new();
    let mut current = String::new();
    for rule in rules {
        let word = format!(" '{rule}'");
        let tail = format!(" >> {RULES_FILE}");
        if !current.is_empty() && current.len() + word.len() + tail.len() > COMMAND_MAX_LEN {
            commands.push(finish_printf(&current, commands.is_empty()));
            current.clear();
        }
        if current.is_empty() {
            current.push_str("printf '%s\\n'");
        }
        current.push_str(&word);
        if current.len() + tail.len() > COMMAND_MAX_LEN {
            return Err(internal(format!("a mirror rule is too long for one command: {rule}")));
        }
    }
    commands.push(finish_printf(&current, commands.is_empty()));
    commands.push(format!("/sbin/pfctl -a {ANCHOR} -f {RULES_FILE}"));
    Ok(commands)
}

fn finish_printf(printf: &str, first: bool) -> String {
    format!("{printf} {} {RULES_FILE}", if first { ">" } else { ">>" })
}

/// The commands that list the anchor, plain and with counters.
pub fn list_command(verbose: bool) -> String {
    format!("/sbin/pfctl -a {ANCHOR} {}", if verbose { "-vsr" } else { "-sr" })
}

/// The labels of `pfctl -sr`'s rules that are Portcullis mirror rules.
pub fn labels_in(listing: &str) -> BTreeSet<String> {
    listing.lines().filter_map(label_of).map(str::to_string).collect()
}

fn label_of(line: &str) -> Option<&str> {
    let at = line.find(&format!("label \"{LABEL_PREFIX}"))?;
    let rest = &line[at + "label \"".len()..];
    rest.split('"').next()
}

/// Whether the anchor listing holds every rule of `mirror`.
pub fn held(mirror: &Mirror, labels: &BTreeSet<String>, interfaces: &[Interface]) -> bool {
    match mirror_rules(mirror, interfaces) {
        Ok(rules) => !rules.is_empty() && (0..rules.len()).all(|n| labels.contains(&label(mirror, n))),
        Err(_) => false,
    }
}

/// Packets and bytes per mirror id (hex), summed over its rules from `pfctl -vsr`'s counter lines.
pub fn counters_in(verbose: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in verbose.lines() {
        if let Some(label) = label_of(line) {
            current = label.strip_prefix(LABEL_PREFIX).and_then(|l| l.split(':').next()).map(str::to_string);
            continue;
        }
        if !line.trim_start().starts_with("[ Evaluations:") {
            if !line.trim_start().starts_with('[') {
                current = None;
            }
            continue;
        }
        if let Some(id) = &current {
            let entry = out.entry(id.clone()).or_default();
            entry.0 += number_after(line, "Packets:");
            entry.1 += number_after(line, "Bytes:");
        }
    }
    out
}

fn number_after(line: &str, key: &str) -> u64 {
    line.split(key).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A flow the mirror would copy that the rule set blocks now (the anchor's `pass quick` would let it through),
/// found with the evaluator: the mirror's matches are put first on the interface behind copies of Portcullis' own
/// blocks, and any flow that changes verdict is one the anchor would open. `None` when nothing opens.
pub fn bypassed_flow(state: &RuleSet, mirror: &Mirror, now: Timestamp) -> Option<String> {
    let iface = state.interface(&mirror.interface)?.name.clone();
    let mut operations: Vec<Operation> = state
        .rules
        .iter()
        .filter(|r| is_own_block(r) && r.interface == iface)
        .enumerate()
        .map(|(i, r)| Operation::CreateRule { position: i, after: r.clone().with_id(format!("copy-{}", r.rule_id)) })
        .collect();
    let copies = operations.len();
    for (n, clause) in mirror.clauses().into_iter().enumerate() {
        let net = |n: Option<IpNet>| {
            n.map_or(AddressMatch::ANY, |n| AddressMatch { target: AddressTarget::Net(n), negate: false })
        };
        let rule = Rule {
            direction: clause.hook,
            ip_version: if clause.family == Family::V4 { IpVersion::Inet } else { IpVersion::Inet6 },
            protocol: clause.protocol,
            source: net(clause.source),
            destination: net(clause.destination),
            source_port: clause.source_port.map_or(PortMatch::Any, PortMatch::Range),
            destination_port: clause.destination_port.map_or(PortMatch::Any, PortMatch::Range),
            ..Rule::new(iface.clone(), Action::Pass).with_id(format!("mirror-{n}"))
        };
        operations.push(Operation::CreateRule { position: copies + n, after: rule });
    }
    let plan = ChangePlan { summary: String::new(), operations, warnings: Vec::new(), facts: Default::default() };
    let effect = portcullis_core::effect::of(state, &plan, now)?;
    let opened = effect.changes.iter().find(|c| c.before != "pass" && c.after == "pass")?;
    let w = &opened.witness;
    Some(format!(
        "{} {} {} → {}{} (now {})",
        w.protocol,
        w.direction,
        w.source,
        w.destination,
        w.destination_port.map(|p| format!(":{p}")).unwrap_or_default(),
        opened.before
    ))
}

/// Pass rules of the interface whose traffic pf handles on a way the anchor's rule would skip: a gateway
/// (policy routing), a limiter, or the SYN proxy. Described, one per rule.
pub fn skipped_options(rules: &[FirewallRule], ifaces: &InterfaceMap, interface: &str) -> Vec<String> {
    let set = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    rules
        .iter()
        .filter(|r| !r.disabled && r.type_ == "pass")
        .filter(|r| r.interface.iter().any(|i| ifaces.normalize(i) == interface))
        .filter_map(|r| {
            let mut what = Vec::new();
            if let Some(g) = set(&r.gateway) {
                what.push(format!("gateway {g}"));
            }
            if let Some(p) = set(&r.dnpipe).or(set(&r.pdnpipe)) {
                what.push(format!("limiter {p}"));
            }
            if set(&r.statetype).is_some_and(|s| s == crate::protection::SYNPROXY) {
                what.push("the SYN proxy".into());
            }
            (!what.is_empty())
                .then(|| format!("rule {} ({})", r.tracker.map(|t| t.to_string()).unwrap_or_default(), what.join(", ")))
        })
        .collect()
}

#[cfg(test)]
mod tests;
