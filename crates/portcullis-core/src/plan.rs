//! Change planning: an intent plus freshly read state gives a plan — the before and after of every object the
//! change touches — or a field error, with nothing changed. Backends apply plans; `verify` checks that the
//! firewall, read back afterwards, holds exactly what the plan said.

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldResult};
use crate::firewall::Applied;
use crate::model::{
    Action, AddressMatch, AddressTarget, Alias, AliasEntry, AliasKind, Direction, IpVersion, PortMatch, Protocol, Rule,
    RuleId, RuleSet, Timestamp, net_to_string,
};

/// The managed alias behind blocks that apply to every interface.
pub const BLOCK_ALIAS: &str = "PORTCULLIS_BLOCK";
/// The `managed` tag of block-list aliases and of the rules that enforce them.
pub const MANAGED_BLOCK: &str = "block_list";
/// The `managed` tag of the pfSense anti-lockout rule.
pub const MANAGED_ANTI_LOCKOUT: &str = "anti_lockout";

/// The block alias for one interface, or for all of them.
pub fn block_alias_name(interface: Option<&str>) -> String {
    match interface {
        None => BLOCK_ALIAS.to_string(),
        Some(i) => format!("{BLOCK_ALIAS}_{}", i.to_ascii_uppercase()),
    }
}

/// A new rule as asked for, already parsed but not yet checked against the firewall's state.
#[derive(Debug, Clone)]
pub struct RuleDraft {
    pub interface: String,
    pub direction: Direction,
    pub action: Action,
    pub ip_version: Option<IpVersion>,
    pub protocol: Protocol,
    pub source: AddressMatch,
    pub source_port: PortMatch,
    pub destination: AddressMatch,
    pub destination_port: PortMatch,
    pub description: String,
    pub log: bool,
    pub enabled: bool,
    pub position: Option<usize>,
}

/// Fields to change on an existing rule; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct RulePatch {
    pub action: Option<Action>,
    pub ip_version: Option<IpVersion>,
    pub protocol: Option<Protocol>,
    pub source: Option<AddressMatch>,
    pub source_port: Option<PortMatch>,
    pub destination: Option<AddressMatch>,
    pub destination_port: Option<PortMatch>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub log: Option<bool>,
    pub position: Option<usize>,
}

/// What a change tool asks for.
#[derive(Debug, Clone)]
pub enum Intent {
    CreateRule(RuleDraft),
    ModifyRule {
        rule_id: RuleId,
        patch: RulePatch,
    },
    DeleteRule {
        rule_id: RuleId,
    },
    PauseRule {
        rule_id: RuleId,
        until: Timestamp,
    },
    ResumeRule {
        rule_id: RuleId,
    },
    Block {
        net: IpNet,
        interface: Option<String>,
        expires_at: Option<Timestamp>,
        reason: String,
    },
    Unblock {
        net: IpNet,
        interface: Option<String>,
    },
    Grant {
        net: IpNet,
        alias: Option<String>,
        expires_at: Option<Timestamp>,
        reason: String,
        rule: Option<GrantRule>,
    },
    Revoke {
        net: IpNet,
        alias: Option<String>,
    },
    /// The host's own egress policy on one interface, replacing one already there (`crate::egress`).
    SetEgressPolicy(crate::egress::EgressPolicy),
    RemoveEgressPolicy {
        interface: String,
    },
}

/// The pass rule a grant list needs, created with the first grant when asked for.
#[derive(Debug, Clone)]
pub struct GrantRule {
    pub interface: String,
    pub protocol: Protocol,
    pub destination: AddressMatch,
    pub destination_port: PortMatch,
}

/// Descriptions Portcullis gives its managed aliases and rules; backends that cannot store a `managed` tag (pfSense)
/// recognise them by these.
pub const BLOCK_ALIAS_DESCR: &str = "Addresses blocked by Portcullis (entries expire on their own)";
pub const GRANT_ALIAS_DESCR: &str = "Access granted by Portcullis (entries expire on their own)";
pub const BLOCK_RULE_DESCR: &str = "Portcullis managed block list";
pub const GRANT_RULE_DESCR: &str = "Portcullis grant list";

/// The managed alias behind grants unless a call names another.
pub const GRANT_ALIAS: &str = "PORTCULLIS_GRANT";
/// The `managed` tag of grant-list aliases and of the pass rules created for them.
pub const MANAGED_GRANT: &str = "grant_list";

/// One object-level step of a plan, with its before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
// A plan holds a handful of operations built once per change; boxing the rules would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Operation {
    /// `position` is the index among the rules of the rule's interface; the id is assigned on apply.
    CreateRule {
        position: usize,
        after: Rule,
    },
    UpdateRule {
        before: Rule,
        after: Rule,
        position: Option<usize>,
    },
    DeleteRule {
        before: Rule,
    },
    CreateAlias {
        after: Alias,
    },
    /// Adds entries to an alias, replacing entries with the same value (listed in `before`).
    PutAliasEntries {
        alias: String,
        before: Vec<AliasEntry>,
        after: Vec<AliasEntry>,
    },
    RemoveAliasEntries {
        alias: String,
        before: Vec<AliasEntry>,
    },
}

/// Facts about a change that risk scoring and policy need, computed once by the planner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeFacts {
    /// Host bits of the widest source the change admits or stops: 0 for one host, 8 for a /24, 127 for `any`.
    pub host_bits: u8,
    /// Whether the change lets more traffic through (a pass rule added or widened, a block removed or paused).
    pub widens_exposure: bool,
    /// Seconds until the change undoes itself; `None` when it is permanent or has no expiry.
    pub lifetime_seconds: Option<i64>,
    pub permanent: bool,
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangePlan {
    pub summary: String,
    pub operations: Vec<Operation>,
    pub warnings: Vec<String>,
    pub facts: ChangeFacts,
}

/// Plans `intent` against `state` at `now`.
pub fn plan(state: &RuleSet, intent: &Intent, now: Timestamp) -> FieldResult<ChangePlan> {
    match intent {
        Intent::CreateRule(draft) => plan_create(state, draft, now),
        Intent::ModifyRule { rule_id, patch } => plan_modify(state, rule_id, patch, now),
        Intent::DeleteRule { rule_id } => plan_delete(state, rule_id),
        Intent::PauseRule { rule_id, until } => plan_pause(state, rule_id, *until, now),
        Intent::ResumeRule { rule_id } => plan_resume(state, rule_id, now),
        Intent::Block { net, interface, expires_at, reason } => {
            plan_block(state, *net, interface.as_deref(), *expires_at, reason, now)
        }
        Intent::Unblock { net, interface } => plan_unblock(state, *net, interface.as_deref()),
        Intent::Grant { net, alias, expires_at, reason, rule } => {
            plan_grant(state, *net, alias.as_deref(), *expires_at, reason, rule.as_ref(), now)
        }
        Intent::Revoke { net, alias } => plan_revoke(state, *net, alias.as_deref()),
        Intent::SetEgressPolicy(policy) => crate::egress::plan_set(state, policy, now),
        Intent::RemoveEgressPolicy { interface } => crate::egress::plan_remove(state, interface),
    }
}

fn plan_create(state: &RuleSet, draft: &RuleDraft, now: Timestamp) -> FieldResult<ChangePlan> {
    let interface = state.resolve_interface("interface", &draft.interface)?.name.clone();
    let mut rule = Rule {
        rule_id: RuleId(String::new()),
        interface: interface.clone(),
        direction: draft.direction,
        action: draft.action,
        ip_version: IpVersion::Inet46,
        protocol: draft.protocol,
        source: canonical_address(state, &draft.source),
        source_port: draft.source_port.clone(),
        destination: canonical_address(state, &draft.destination),
        destination_port: draft.destination_port.clone(),
        description: draft.description.clone(),
        enabled: draft.enabled,
        log: draft.log,
        managed: None,
        paused_until: None,
        created_at: Some(now),
        updated_at: Some(now),
    };
    rule.ip_version = settle_ip_version(&rule, draft.ip_version)?;
    check_rule(state, &rule)?;
    let position = insertion_position(state, &interface, draft.position, None)?;
    let mut warnings = breadth_warnings(&rule);
    if draft.position.is_some_and(|p| p < position) {
        warnings.push(format!(
            "position {} is above the system rules of {interface}; the rule goes at position {position}",
            draft.position.unwrap_or_default()
        ));
    }
    let facts = ChangeFacts {
        host_bits: rule_host_bits(state, &rule, now),
        widens_exposure: rule.action == Action::Pass && rule.enabled,
        lifetime_seconds: None,
        permanent: true,
        interfaces: vec![interface.clone()],
    };
    Ok(ChangePlan {
        summary: format!(
            "create {} rule on {interface} at position {position}: {}",
            rule.action.as_str(),
            describe_match(&rule)
        ),
        operations: vec![Operation::CreateRule { position, after: rule }],
        warnings,
        facts,
    })
}

fn plan_modify(state: &RuleSet, id: &RuleId, patch: &RulePatch, now: Timestamp) -> FieldResult<ChangePlan> {
    let before = editable_rule(state, id)?;
    let mut after = before.clone();
    apply_patch(state, &mut after, patch);
    if patch.enabled.is_some() {
        // An explicit enable or disable ends any pause.
        after.paused_until = None;
    }
    after.ip_version = settle_ip_version(&after, patch.ip_version.or(Some(before.ip_version)))?;
    check_rule(state, &after)?;
    let current = state.position_of(id).unwrap_or_default();
    let position = match patch.position {
        Some(p) => Some(insertion_position(state, &before.interface, Some(p), Some(id))?),
        None => None,
    }
    .filter(|p| *p != current);
    if &after == before && position.is_none() {
        return Err(FieldError::new("rule_id", format!("rule {id} already has these values; nothing to change")));
    }
    after.updated_at = Some(now);
    let facts = ChangeFacts {
        host_bits: rule_host_bits(state, &after, now).max(rule_host_bits(state, before, now)),
        widens_exposure: widens(before, &after) || position.is_some(),
        lifetime_seconds: None,
        permanent: true,
        interfaces: vec![after.interface.clone()],
    };
    let mut warnings = breadth_warnings(&after);
    if position.is_some() {
        warnings.push("moving a rule changes which rule matches first for overlapping traffic".into());
    }
    Ok(ChangePlan {
        summary: format!("modify rule {id} on {}: {}", after.interface, describe_match(&after)),
        operations: vec![Operation::UpdateRule { before: before.clone(), after, position }],
        warnings,
        facts,
    })
}

fn apply_patch(state: &RuleSet, rule: &mut Rule, patch: &RulePatch) {
    let RulePatch {
        action,
        ip_version: _,
        protocol,
        source,
        source_port,
        destination,
        destination_port,
        description,
        enabled,
        log,
        position: _,
    } = patch;
    set(&mut rule.action, action);
    set(&mut rule.protocol, protocol);
    set(&mut rule.source_port, source_port);
    set(&mut rule.destination_port, destination_port);
    set(&mut rule.description, description);
    set(&mut rule.enabled, enabled);
    set(&mut rule.log, log);
    if let Some(s) = source {
        rule.source = canonical_address(state, s);
    }
    if let Some(d) = destination {
        rule.destination = canonical_address(state, d);
    }
}

fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *slot = v.clone();
    }
}

/// Whether a rule edit may let more traffic through than before: a pass rule that appears, or changes what it
/// matches; a block that goes away, or changes what it matches. Descriptions and logging widen nothing.
fn widens(before: &Rule, after: &Rule) -> bool {
    let matching_changed = before.direction != after.direction
        || before.ip_version != after.ip_version
        || before.protocol != after.protocol
        || before.source != after.source
        || before.source_port != after.source_port
        || before.destination != after.destination
        || before.destination_port != after.destination_port
        || before.interface != after.interface;
    let passing = |r: &Rule| r.action == Action::Pass && r.enabled;
    let blocking = |r: &Rule| r.action != Action::Pass && r.enabled;
    (passing(after) && (!passing(before) || matching_changed))
        || (blocking(before) && (!blocking(after) || matching_changed))
}

fn plan_delete(state: &RuleSet, id: &RuleId) -> FieldResult<ChangePlan> {
    let before = editable_rule(state, id)?;
    Ok(ChangePlan {
        summary: format!("delete rule {id} on {}: {}", before.interface, describe_match(before)),
        facts: ChangeFacts {
            widens_exposure: before.action != Action::Pass && before.enabled,
            permanent: true,
            interfaces: vec![before.interface.clone()],
            ..ChangeFacts::default()
        },
        operations: vec![Operation::DeleteRule { before: before.clone() }],
        warnings: Vec::new(),
    })
}

fn plan_pause(state: &RuleSet, id: &RuleId, until: Timestamp, now: Timestamp) -> FieldResult<ChangePlan> {
    let before = editable_rule(state, id)?;
    if !before.enabled && before.paused_until.is_none() {
        return Err(FieldError::new("rule_id", format!("rule {id} is disabled, so there is nothing to pause")));
    }
    let mut after = before.clone();
    after.enabled = false;
    after.paused_until = Some(until);
    after.updated_at = Some(now);
    Ok(ChangePlan {
        summary: format!("pause rule {id} on {} until {}", before.interface, until.to_rfc3339()),
        facts: ChangeFacts {
            widens_exposure: before.action != Action::Pass,
            lifetime_seconds: Some((until - now).num_seconds()),
            interfaces: vec![before.interface.clone()],
            ..ChangeFacts::default()
        },
        operations: vec![Operation::UpdateRule { before: before.clone(), after, position: None }],
        warnings: Vec::new(),
    })
}

fn plan_resume(state: &RuleSet, id: &RuleId, now: Timestamp) -> FieldResult<ChangePlan> {
    let before = editable_rule(state, id)?;
    if before.paused_until.is_none() {
        return Err(FieldError::new("rule_id", format!("rule {id} is not paused")));
    }
    let mut after = before.clone();
    after.enabled = true;
    after.paused_until = None;
    after.updated_at = Some(now);
    Ok(ChangePlan {
        summary: format!("resume rule {id} on {}", before.interface),
        facts: ChangeFacts {
            widens_exposure: before.action == Action::Pass,
            interfaces: vec![before.interface.clone()],
            ..ChangeFacts::default()
        },
        operations: vec![Operation::UpdateRule { before: before.clone(), after, position: None }],
        warnings: Vec::new(),
    })
}

fn plan_grant(
    state: &RuleSet,
    net: IpNet,
    alias: Option<&str>,
    expires_at: Option<Timestamp>,
    reason: &str,
    rule: Option<&GrantRule>,
    now: Timestamp,
) -> FieldResult<ChangePlan> {
    let alias_name = alias.unwrap_or(GRANT_ALIAS).to_string();
    let mut operations = Vec::new();
    let mut warnings = Vec::new();
    match state.alias(&alias_name) {
        Some(a) if a.managed.as_deref() != Some(MANAGED_GRANT) => {
            return Err(FieldError::new("alias", format!("alias {alias_name} is not a Portcullis grant list")));
        }
        Some(_) => {}
        None => operations.push(Operation::CreateAlias {
            after: Alias {
                name: alias_name.clone(),
                kind: AliasKind::Network,
                description: GRANT_ALIAS_DESCR.into(),
                entries: Vec::new(),
                managed: Some(MANAGED_GRANT.into()),
            },
        }),
    }
    let referenced = |iface: Option<&str>| {
        state.rules.iter().any(|r| {
            r.action == Action::Pass
                && iface.is_none_or(|i| r.interface == i)
                && r.source.target == AddressTarget::Alias(alias_name.clone())
        })
    };
    let mut interfaces = Vec::new();
    match rule {
        Some(g) => {
            let iface = state.resolve_interface("interface", &g.interface)?.name.clone();
            if !referenced(Some(&iface)) {
                let pass = grant_rule(&iface, &alias_name, g, now);
                // The alias the rule's source names may be created by this same plan: check the rest.
                check_rule(state, &Rule { source: AddressMatch::ANY, ..pass.clone() })?;
                operations.push(Operation::CreateRule { position: leading_system_rules(state, &iface), after: pass });
            }
            interfaces.push(iface);
        }
        None if !referenced(None) => warnings.push(format!(
            "no pass rule references {alias_name} yet, so the grant has no effect until one does \
             (give interface and port to create it)"
        )),
        None => {}
    }
    let value = net_to_string(&net);
    let replaced: Vec<AliasEntry> = state
        .alias(&alias_name)
        .map(|a| a.entries.iter().filter(|e| e.value == value).cloned().collect())
        .unwrap_or_default();
    let entry = AliasEntry { value: value.clone(), detail: reason.to_string(), expires_at, created_at: Some(now) };
    operations.push(Operation::PutAliasEntries { alias: alias_name.clone(), before: replaced, after: vec![entry] });
    Ok(ChangePlan {
        summary: format!(
            "grant {value} access through {alias_name} {}",
            expires_at.map_or("permanently".to_string(), |t| format!("until {}", t.to_rfc3339()))
        ),
        operations,
        warnings,
        facts: ChangeFacts {
            host_bits: net.max_prefix_len() - net.prefix_len(),
            widens_exposure: true,
            lifetime_seconds: expires_at.map(|t| (t - now).num_seconds()),
            permanent: expires_at.is_none(),
            interfaces,
        },
    })
}

fn grant_rule(interface: &str, alias_name: &str, g: &GrantRule, now: Timestamp) -> Rule {
    Rule {
        rule_id: RuleId(String::new()),
        interface: interface.to_string(),
        direction: Direction::In,
        action: Action::Pass,
        ip_version: IpVersion::Inet46,
        protocol: g.protocol,
        source: AddressMatch { target: AddressTarget::Alias(alias_name.to_string()), negate: false },
        source_port: PortMatch::Any,
        destination: g.destination.clone(),
        destination_port: g.destination_port.clone(),
        description: format!("{GRANT_RULE_DESCR} {alias_name}"),
        enabled: true,
        log: true,
        managed: Some(MANAGED_GRANT.into()),
        paused_until: None,
        created_at: Some(now),
        updated_at: Some(now),
    }
}

fn plan_revoke(state: &RuleSet, net: IpNet, alias: Option<&str>) -> FieldResult<ChangePlan> {
    let value = net_to_string(&net);
    let operations: Vec<Operation> = state
        .aliases
        .iter()
        .filter(|a| a.managed.as_deref() == Some(MANAGED_GRANT))
        .filter(|a| alias.is_none_or(|w| w == a.name))
        .filter_map(|a| {
            let before: Vec<AliasEntry> = a.entries.iter().filter(|e| e.value == value).cloned().collect();
            (!before.is_empty()).then(|| Operation::RemoveAliasEntries { alias: a.name.clone(), before })
        })
        .collect();
    if operations.is_empty() {
        return Err(FieldError::new("ip_address", format!("{value} has no grant (see list_grants)")));
    }
    Ok(ChangePlan {
        summary: format!("revoke the access of {value}"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts { host_bits: net.max_prefix_len() - net.prefix_len(), ..ChangeFacts::default() },
    })
}

fn plan_block(
    state: &RuleSet,
    net: IpNet,
    interface: Option<&str>,
    expires_at: Option<Timestamp>,
    reason: &str,
    now: Timestamp,
) -> FieldResult<ChangePlan> {
    let interface = match interface {
        Some(name) => Some(state.resolve_interface("interface", name)?.name.clone()),
        None => None,
    };
    let alias_name = block_alias_name(interface.as_deref());
    let value = net_to_string(&net);
    let targets: Vec<String> = match &interface {
        Some(i) => vec![i.clone()],
        None => state.interfaces.iter().map(|i| i.name.clone()).collect(),
    };
    let mut operations = ensure_block_list(state, &alias_name, &targets, now);
    let replaced: Vec<AliasEntry> = state
        .alias(&alias_name)
        .map(|a| a.entries.iter().filter(|e| e.value == value).cloned().collect())
        .unwrap_or_default();
    let mut warnings = Vec::new();
    if let Some(old) = replaced.first() {
        warnings.push(format!(
            "{value} was already blocked (until {}); the new duration replaces it",
            old.expires_at.map_or("removed by hand".into(), |t| t.to_rfc3339())
        ));
    }
    if interface.is_none() {
        warnings.push(format!("the block applies on every interface ({})", targets.join(", ")));
    }
    if net.prefix_len() == 0 {
        warnings.push("this block covers every address of its family".into());
    }
    let entry = AliasEntry { value: value.clone(), detail: reason.to_string(), expires_at, created_at: Some(now) };
    operations.push(Operation::PutAliasEntries { alias: alias_name.clone(), before: replaced, after: vec![entry] });
    let scope = interface.as_deref().unwrap_or("all interfaces");
    Ok(ChangePlan {
        summary: format!(
            "block {value} on {scope} {}",
            expires_at.map_or("permanently".to_string(), |t| format!("until {}", t.to_rfc3339()))
        ),
        operations,
        warnings,
        facts: ChangeFacts {
            host_bits: net.max_prefix_len() - net.prefix_len(),
            widens_exposure: false,
            lifetime_seconds: expires_at.map(|t| (t - now).num_seconds()),
            permanent: expires_at.is_none(),
            interfaces: targets,
        },
    })
}

/// Creates the block alias and its enforcing rules where they are missing.
fn ensure_block_list(state: &RuleSet, alias_name: &str, interfaces: &[String], now: Timestamp) -> Vec<Operation> {
    let mut ops = Vec::new();
    if state.alias(alias_name).is_none() {
        ops.push(Operation::CreateAlias {
            after: Alias {
                name: alias_name.to_string(),
                kind: AliasKind::Network,
                description: BLOCK_ALIAS_DESCR.into(),
                entries: Vec::new(),
                managed: Some(MANAGED_BLOCK.into()),
            },
        });
    }
    for iface in interfaces {
        let enforced = state.rules_on(iface).any(|r| {
            r.managed.as_deref() == Some(MANAGED_BLOCK)
                && r.source.target == AddressTarget::Alias(alias_name.to_string())
        });
        if !enforced {
            ops.push(Operation::CreateRule {
                position: leading_system_rules(state, iface),
                after: block_rule(iface, alias_name, now),
            });
        }
    }
    ops
}

fn block_rule(interface: &str, alias_name: &str, now: Timestamp) -> Rule {
    Rule {
        rule_id: RuleId(String::new()),
        interface: interface.to_string(),
        direction: Direction::In,
        action: Action::Block,
        ip_version: IpVersion::Inet46,
        protocol: Protocol::Any,
        source: AddressMatch { target: AddressTarget::Alias(alias_name.to_string()), negate: false },
        source_port: PortMatch::Any,
        destination: AddressMatch::ANY,
        destination_port: PortMatch::Any,
        description: format!("{BLOCK_RULE_DESCR} {alias_name}"),
        enabled: true,
        log: true,
        managed: Some(MANAGED_BLOCK.into()),
        paused_until: None,
        created_at: Some(now),
        updated_at: Some(now),
    }
}

fn plan_unblock(state: &RuleSet, net: IpNet, interface: Option<&str>) -> FieldResult<ChangePlan> {
    let value = net_to_string(&net);
    let wanted_alias = match interface {
        Some(name) => Some(block_alias_name(Some(&state.resolve_interface("interface", name)?.name))),
        None => None,
    };
    let operations: Vec<Operation> = state
        .aliases
        .iter()
        .filter(|a| a.managed.as_deref() == Some(MANAGED_BLOCK))
        .filter(|a| wanted_alias.as_ref().is_none_or(|w| w == &a.name))
        .filter_map(|a| {
            let before: Vec<AliasEntry> = a.entries.iter().filter(|e| e.value == value).cloned().collect();
            (!before.is_empty()).then(|| Operation::RemoveAliasEntries { alias: a.name.clone(), before })
        })
        .collect();
    if operations.is_empty() {
        return Err(FieldError::new("ip_address", format!("{value} is not blocked (see list_blocks)")));
    }
    Ok(ChangePlan {
        summary: format!("unblock {value}"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts {
            host_bits: net.max_prefix_len() - net.prefix_len(),
            widens_exposure: true,
            permanent: true,
            ..ChangeFacts::default()
        },
    })
}

/// A rule the rule tools may change: it exists and is not owned by the system or by Portcullis.
fn editable_rule<'a>(state: &'a RuleSet, id: &RuleId) -> FieldResult<&'a Rule> {
    let rule = state.find_rule("rule_id", id)?;
    if let Some(owner) = &rule.managed {
        let how = if owner == MANAGED_BLOCK {
            "use block_ip_address / unblock_ip_address"
        } else if owner == crate::egress::MANAGED_EGRESS {
            "use set_egress_policy"
        } else {
            "it is part of the firewall's own configuration"
        };
        return Err(FieldError::new("rule_id", format!("rule {id} is managed ({owner}); {how}")));
    }
    Ok(rule)
}

/// Interface names given as addresses are interface nets; keep them in pfRest's lower-case form.
fn canonical_address(state: &RuleSet, m: &AddressMatch) -> AddressMatch {
    match &m.target {
        AddressTarget::Alias(name) if state.alias(name).is_none() => {
            match state.interfaces.iter().find(|i| i.name.eq_ignore_ascii_case(name)) {
                Some(iface) => AddressMatch { target: AddressTarget::Alias(iface.name.clone()), negate: m.negate },
                None => m.clone(),
            }
        }
        _ => m.clone(),
    }
}

/// The IP version follows literal addresses when not given; a contradiction is an error.
fn settle_ip_version(rule: &Rule, asked: Option<IpVersion>) -> FieldResult<IpVersion> {
    let families: Vec<(&str, bool)> = [("source", &rule.source), ("destination", &rule.destination)]
        .into_iter()
        .filter_map(|(field, m)| match &m.target {
            AddressTarget::Net(net) => Some((field, net.addr().is_ipv6())),
            _ => None,
        })
        .collect();
    if let [(_, a), (field, b)] = families.as_slice()
        && a != b
    {
        return Err(FieldError::new(*field, "source and destination are of different IP families"));
    }
    let literal = families.first().map(|(f, v6)| (*f, if *v6 { IpVersion::Inet6 } else { IpVersion::Inet }));
    match (asked, literal) {
        (None, Some((_, v))) => Ok(v),
        (None, None) => Ok(IpVersion::Inet46),
        (Some(asked), Some((field, v))) if asked != v => {
            if asked == IpVersion::Inet46 {
                Ok(v)
            } else {
                Err(FieldError::new(field, format!("address family does not match ip_version {asked:?}")))
            }
        }
        (Some(asked), _) => Ok(asked),
    }
}

/// Checks references and field combinations of a complete rule against the firewall's state.
fn check_rule(state: &RuleSet, rule: &Rule) -> FieldResult<()> {
    check_address(state, "source", &rule.source)?;
    check_address(state, "destination", &rule.destination)?;
    for (field, port) in [("source_port", &rule.source_port), ("destination_port", &rule.destination_port)] {
        if port.is_any() {
            continue;
        }
        if !rule.protocol.has_ports() {
            return Err(FieldError::new(
                field,
                format!("ports apply only to tcp, udp or tcp/udp rules, not to protocol {}", rule.protocol),
            ));
        }
        if let PortMatch::Alias(name) = port {
            match state.alias(name) {
                Some(a) if a.kind == AliasKind::Port => {}
                Some(_) => return Err(FieldError::new(field, format!("alias {name} is not a port alias"))),
                None => return Err(FieldError::new(field, format!("no port alias named {name}"))),
            }
        }
    }
    Ok(())
}

fn check_address(state: &RuleSet, field: &str, m: &AddressMatch) -> FieldResult<()> {
    match &m.target {
        AddressTarget::Alias(name) => {
            let is_interface = state.interface(name).is_some();
            match state.alias(name) {
                Some(a) if a.kind == AliasKind::Port => {
                    Err(FieldError::new(field, format!("alias {name} is a port alias, not an address alias")))
                }
                Some(_) => Ok(()),
                None if is_interface => Ok(()),
                None => Err(FieldError::new(
                    field,
                    format!("{name:?} is neither an alias nor an interface of this firewall"),
                )),
            }
        }
        AddressTarget::InterfaceNet(name) | AddressTarget::InterfaceAddress(name) => state
            .interface(name)
            .map(|_| ())
            .ok_or_else(|| FieldError::new(field, format!("unknown interface {name:?}"))),
        _ => Ok(()),
    }
}

/// Rules owned by the system (anti-lockout) and Portcullis' block lists stay at the top of an interface.
fn leading_system_rules(state: &RuleSet, interface: &str) -> usize {
    state.rules_on(interface).take_while(|r| r.managed.is_some()).count()
}

fn insertion_position(
    state: &RuleSet,
    interface: &str,
    asked: Option<usize>,
    moving: Option<&RuleId>,
) -> FieldResult<usize> {
    let count = state.rules_on(interface).filter(|r| Some(&r.rule_id) != moving).count();
    let floor = leading_system_rules(state, interface);
    match asked {
        None => Ok(count),
        Some(p) if p > count => {
            Err(FieldError::new("position", format!("position {p} is past the end of {interface}'s {count} rules")))
        }
        Some(p) => Ok(p.max(floor)),
    }
}

/// Breadth of a rule is the breadth of its source: who the rule admits (or stops). A pass from one subnet to any
/// destination is an everyday outbound rule; a pass from any source is exposure.
fn rule_host_bits(state: &RuleSet, rule: &Rule, now: Timestamp) -> u8 {
    if rule.source.negate {
        return 128;
    }
    crate::eval::Resolver::new(state, now).address_set(&rule.source).breadth_bits()
}

fn breadth_warnings(rule: &Rule) -> Vec<String> {
    let mut warnings = Vec::new();
    if rule.action == Action::Pass && rule.source.is_any() {
        warnings.push(format!("the rule passes traffic from every device on {}", rule.interface));
    }
    if rule.action == Action::Pass
        && rule.source.is_any()
        && rule.destination.is_any()
        && rule.destination_port.is_any()
    {
        warnings.push("the rule passes any traffic to any destination (any → any)".into());
    }
    warnings
}

fn describe_match(rule: &Rule) -> String {
    let mut s = format!("{} from {}", rule.protocol, rule.source);
    if !rule.source_port.is_any() {
        s.push_str(&format!(" port {}", rule.source_port));
    }
    s.push_str(&format!(" to {}", rule.destination));
    if !rule.destination_port.is_any() {
        s.push_str(&format!(" port {}", rule.destination_port));
    }
    s
}

/// Compares two rules as the firewall would enforce them, ignoring identity and bookkeeping timestamps.
pub fn same_enforcement(a: &Rule, b: &Rule) -> bool {
    let strip = |r: &Rule| Rule { rule_id: RuleId(String::new()), created_at: None, updated_at: None, ..r.clone() };
    strip(a) == strip(b)
}

/// Checks, on state read back after applying, that every operation of the plan took effect.
pub fn verify(plan: &ChangePlan, applied: &Applied, after: &RuleSet) -> Result<(), String> {
    let mut created = applied.created_rules.iter();
    for op in &plan.operations {
        match op {
            Operation::CreateRule { after: wanted, .. } => {
                let id = created.next().ok_or("the firewall reported fewer created rules than planned")?;
                let found = after.rule(id).ok_or_else(|| format!("created rule {id} is missing on read-back"))?;
                if !same_enforcement(found, wanted) {
                    return Err(format!("rule {id} was created but differs from the plan"));
                }
            }
            Operation::UpdateRule { after: wanted, .. } => {
                let found = after
                    .rule(&wanted.rule_id)
                    .ok_or_else(|| format!("rule {} vanished during the change", wanted.rule_id))?;
                if !same_enforcement(found, wanted) {
                    return Err(format!("rule {} does not hold the planned values", wanted.rule_id));
                }
            }
            Operation::DeleteRule { before } => {
                if after.rule(&before.rule_id).is_some() {
                    return Err(format!("rule {} is still present", before.rule_id));
                }
            }
            Operation::CreateAlias { after: alias } => {
                if after.alias(&alias.name).is_none() {
                    return Err(format!("alias {} is missing on read-back", alias.name));
                }
            }
            Operation::PutAliasEntries { alias, after: entries, .. } => {
                let found = after.alias(alias).ok_or_else(|| format!("alias {alias} is missing"))?.entries_by_value();
                for e in entries {
                    let ok = found.get(e.value.as_str()).is_some_and(|f| f.expires_at == e.expires_at);
                    if !ok {
                        return Err(format!("{} is not in alias {alias} as planned", e.value));
                    }
                }
            }
            Operation::RemoveAliasEntries { alias, before } => {
                if let Some(found) = after.alias(alias).map(Alias::entries_by_value)
                    && let Some(e) = before.iter().find(|e| found.contains_key(e.value.as_str()))
                {
                    return Err(format!("{} is still in alias {alias}", e.value));
                }
            }
        }
    }
    Ok(())
}

/// The plan that carries out every expiry due at `now`: managed alias entries past their time are removed and
/// paused rules whose pause is over are resumed. `None` when nothing is due.
pub fn plan_expiry(state: &RuleSet, now: Timestamp) -> Option<ChangePlan> {
    let mut operations: Vec<Operation> = state
        .aliases
        .iter()
        .filter(|a| a.managed.is_some())
        .filter_map(|a| {
            let before: Vec<AliasEntry> = a.entries.iter().filter(|e| !e.is_live(now)).cloned().collect();
            (!before.is_empty()).then(|| Operation::RemoveAliasEntries { alias: a.name.clone(), before })
        })
        .collect();
    for rule in state.rules.iter().filter(|r| r.paused_until.is_some_and(|t| t <= now)) {
        let after = Rule { enabled: true, paused_until: None, updated_at: Some(now), ..rule.clone() };
        operations.push(Operation::UpdateRule { before: rule.clone(), after, position: None });
    }
    if operations.is_empty() {
        return None;
    }
    let (entries, resumed) = expiry_counts(&operations);
    Some(ChangePlan {
        summary: format!("expire {entries} entries and resume {resumed} paused rules that are due"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts::default(),
    })
}

/// What an expiry plan settles: the alias entries it removes, and the paused rules it resumes.
pub fn expiry_counts(operations: &[Operation]) -> (usize, usize) {
    operations.iter().fold((0, 0), |(entries, resumed), op| match op {
        Operation::RemoveAliasEntries { before, .. } => (entries + before.len(), resumed),
        _ => (entries, resumed + 1),
    })
}

/// The plan that removes, from each alias, those of the given entries that are no longer live at `now`; `None`
/// when none is due. The reconciler's plan for entries read by value instead of from a full snapshot.
pub fn plan_entry_expiry(entries: Vec<(String, Vec<AliasEntry>)>, now: Timestamp) -> Option<ChangePlan> {
    let operations: Vec<Operation> = entries
        .into_iter()
        .filter_map(|(alias, entries)| {
            let before: Vec<AliasEntry> = entries.into_iter().filter(|e| !e.is_live(now)).collect();
            (!before.is_empty()).then_some(Operation::RemoveAliasEntries { alias, before })
        })
        .collect();
    let (count, _) = expiry_counts(&operations);
    (!operations.is_empty()).then(|| ChangePlan {
        summary: format!("expire {count} entries that are due"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts::default(),
    })
}

/// When the earliest pause in `state` ends (overdue ones included), for the reconciler's schedule. Entry expiries
/// are scheduled from the store's time index instead, so this looks at rules only and stays cheap however long
/// the managed lists are.
pub fn next_pause_end(state: &RuleSet) -> Option<Timestamp> {
    state.rules.iter().filter_map(|r| r.paused_until).min()
}

/// Where the `position`-th rule of `interface` goes in the global, ordered rule list: before the rule now at
/// that position, or after the interface's last rule.
pub fn global_index(rules: &[Rule], interface: &str, position: usize) -> usize {
    global_index_by(rules, |r| r.interface == interface, position)
}

/// `global_index` over any ordered list whose items belong to interfaces (e.g. a device's own rule records).
pub fn global_index_by<T>(items: &[T], on_interface: impl Fn(&T) -> bool, position: usize) -> usize {
    let mut seen = 0;
    let mut after_last = None;
    for (i, item) in items.iter().enumerate() {
        if on_interface(item) {
            if seen == position {
                return i;
            }
            seen += 1;
            after_last = Some(i + 1);
        }
    }
    after_last.unwrap_or(items.len())
}

/// Deleted rules come back in the order of their old positions: each is then inserted where it was, counting the
/// ones before it that are already back (restoring the last one first would put it above the others).
fn restore_deleted_in_order(undo: &mut [Operation]) {
    let is_create = |op: &Operation| matches!(op, Operation::CreateRule { .. });
    let position = |op: &Operation| match op {
        Operation::CreateRule { position, after } => (after.interface.clone(), *position),
        _ => (String::new(), 0),
    };
    let mut start = 0;
    while start < undo.len() {
        let len = undo[start..].iter().take_while(|op| is_create(op)).count();
        undo[start..start + len].sort_by_key(position);
        start += len.max(1);
    }
}

/// The plan that undoes `plan`, given what applying it produced and the state before it. Applied against the
/// state right after the change it restores the rules and entries as they were; if the firewall has drifted
/// since, its `before` values no longer match and the backend refuses it as a conflict. Aliases the change
/// created are left in place, empty.
pub fn invert(plan: &ChangePlan, applied: &Applied, before_state: &RuleSet, after_state: &RuleSet) -> ChangePlan {
    let mut created = applied.created_rules.iter();
    let mut undo: Vec<Operation> = Vec::new();
    for op in &plan.operations {
        match op {
            Operation::CreateRule { .. } => {
                if let Some(rule) = created.next().and_then(|id| after_state.rule(id)) {
                    undo.push(Operation::DeleteRule { before: rule.clone() });
                }
            }
            Operation::UpdateRule { before, after, position } => {
                let now = after_state.rule(&after.rule_id).cloned().unwrap_or_else(|| after.clone());
                let back = position.and_then(|_| before_state.position_of(&before.rule_id));
                undo.push(Operation::UpdateRule { before: now, after: before.clone(), position: back });
            }
            Operation::DeleteRule { before } => {
                let position = before_state.position_of(&before.rule_id).unwrap_or_default();
                undo.push(Operation::CreateRule { position, after: before.clone() });
            }
            Operation::CreateAlias { .. } => {}
            Operation::PutAliasEntries { alias, before, after } => {
                undo.push(Operation::RemoveAliasEntries { alias: alias.clone(), before: after.clone() });
                if !before.is_empty() {
                    undo.push(Operation::PutAliasEntries {
                        alias: alias.clone(),
                        before: Vec::new(),
                        after: before.clone(),
                    });
                }
            }
            Operation::RemoveAliasEntries { alias, before } => {
                undo.push(Operation::PutAliasEntries {
                    alias: alias.clone(),
                    before: Vec::new(),
                    after: before.clone(),
                });
            }
        }
    }
    undo.reverse();
    restore_deleted_in_order(&mut undo);
    ChangePlan {
        summary: format!("undo: {}", plan.summary),
        operations: undo,
        warnings: Vec::new(),
        facts: ChangeFacts { widens_exposure: !plan.facts.widens_exposure, ..plan.facts.clone() },
    }
}
