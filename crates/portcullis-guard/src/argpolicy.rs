//! Argument policy: what no role may do (block a protected address, pass any → any on a restricted interface)
//! and what a role's caps forbid (too broad, too long). Checked on the plan, after validation, before risk.

use ipnet::IpNet;
use portcullis_core::address;
use portcullis_core::eval::Resolver;
use portcullis_core::model::{Action, Rule, RuleSet, Timestamp};
use portcullis_core::plan::{Addresses, ChangePlan, Intent, Operation};

use crate::CallError;
use crate::roles::Caps;

/// Addresses that must never be blocked: loopback, the firewall's own addresses, management hosts and the
/// configured never-block list.
pub fn protected_nets(state: &RuleSet, configured: &[IpNet]) -> Vec<(IpNet, String)> {
    let mut nets: Vec<(IpNet, String)> = vec![
        ("127.0.0.0/8".parse().map(|n| (n, "loopback".to_string()))),
        ("::1/128".parse().map(|n| (n, "loopback".to_string()))),
    ]
    .into_iter()
    .flatten()
    .collect();
    for iface in &state.interfaces {
        for addr in [iface.ipv4, iface.ipv6].into_iter().flatten() {
            nets.push((IpNet::from(addr.addr()), format!("the firewall's own address on {}", iface.name)));
        }
    }
    nets.extend(configured.iter().map(|n| (*n, "security.protected_addresses".to_string())));
    nets
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn denied(field: &str, message: String) -> CallError {
    let mut e = CallError::policy(format!("{field}: {message}"));
    e.field = Some(field.to_string());
    e
}

pub struct PolicyInput<'a> {
    pub intent: &'a Intent,
    pub plan: &'a ChangePlan,
    pub state: &'a RuleSet,
    /// The rule set as the plan leaves it (`None` when the plan does not fit the state): an alias a change fills
    /// can open a rule that refers to it.
    pub after: Option<&'a RuleSet>,
    pub now: Timestamp,
    pub caps: &'a Caps,
    pub role: &'a str,
    pub protected: &'a [IpNet],
    pub restricted_interfaces: &'a [String],
}

pub fn check(input: &PolicyInput<'_>) -> Result<(), CallError> {
    match input.intent {
        Intent::Block { addresses, expires_at, .. } => {
            check_list_length(input, addresses)?;
            let protected = protected_nets(input.state, input.protected);
            for (field, net) in addresses.with_fields() {
                check_block_target(input, &protected, &field, net)?;
            }
            check_duration(input, *expires_at)?;
        }
        Intent::Grant { addresses, expires_at, .. } => {
            check_list_length(input, addresses)?;
            for (field, net) in addresses.with_fields() {
                check_breadth(input, &field, net, "let in")?;
            }
            check_duration(input, *expires_at)?;
        }
        Intent::BlockDomain(ask) => {
            let protected = protected_nets(input.state, input.protected);
            for addr in &ask.addresses {
                let net = IpNet::from(*addr);
                if let Some((p, why)) = protected.iter().find(|(p, _)| overlaps(p, &net)) {
                    return Err(denied(
                        "domain",
                        format!(
                            "{} resolves to {addr}, inside {p}, which is protected ({why}) and is never blocked",
                            ask.domain
                        ),
                    ));
                }
            }
            check_duration(input, ask.expires_at)?;
        }
        Intent::Unblock { addresses, .. } | Intent::Revoke { addresses, .. } => check_list_length(input, addresses)?,
        _ => {}
    }
    check_exposure(input)
}

/// A role's cap on the addresses one call may name (`caps.max_bulk`).
fn check_list_length(input: &PolicyInput<'_>, addresses: &Addresses) -> Result<(), CallError> {
    let max = input.caps.max_bulk;
    if addresses.len() > max {
        return Err(denied(
            addresses.field(),
            format!("{} addresses in one call; role {} may name at most {max}", addresses.len(), input.role),
        ));
    }
    Ok(())
}

fn check_block_target(
    input: &PolicyInput<'_>,
    protected: &[(IpNet, String)],
    field: &str,
    net: &IpNet,
) -> Result<(), CallError> {
    if let Some((p, why)) = protected.iter().find(|(p, _)| overlaps(p, net)) {
        return Err(denied(field, format!("{net} covers {p}, which is protected ({why}) and is never blocked")));
    }
    check_breadth(input, field, net, "block")
}

fn check_breadth(input: &PolicyInput<'_>, field: &str, net: &IpNet, verb: &str) -> Result<(), CallError> {
    let min_prefix = if net.addr().is_ipv4() { input.caps.min_block_prefix_v4 } else { input.caps.min_block_prefix_v6 };
    if net.prefix_len() < min_prefix {
        return Err(denied(
            field,
            format!("{net} is wider than role {} may {verb} (at most a /{min_prefix})", input.role),
        ));
    }
    Ok(())
}

fn check_duration(input: &PolicyInput<'_>, expires_at: Option<Timestamp>) -> Result<(), CallError> {
    let Some(max) = input.caps.max_duration_seconds else { return Ok(()) };
    let too_long = match expires_at {
        None => true,
        Some(t) => (t - input.now).num_seconds() > max,
    };
    if too_long {
        let span = portcullis_core::duration::format_span(chrono::TimeDelta::seconds(max));
        return Err(denied(
            "duration",
            format!("role {} may block or grant for at most {span}, not permanently", input.role),
        ));
    }
    Ok(())
}

/// No pass rule from any to any on a restricted interface, whoever asks. "Any" is what the addresses cover in a
/// family the rule applies to, resolved against the state (aliases, interface nets, negation), never how they are
/// written: `0.0.0.0/0`, `::/0`, an alias of `0.0.0.0/1` and `128.0.0.0/1` are `any`.
fn check_exposure(input: &PolicyInput<'_>) -> Result<(), CallError> {
    let mut after = Resolver::new(input.after.unwrap_or(input.state), input.now);
    for op in &input.plan.operations {
        let rule = match op {
            Operation::CreateRule { after, .. } | Operation::UpdateRule { after, .. } => after,
            _ => continue,
        };
        if exposes(input, rule) && passes_any_to_any(&mut after, rule) {
            return Err(any_to_any_denied(rule));
        }
    }
    // A rule the plan leaves alone opens too when an alias it refers to grows to cover everything.
    let Some(state_after) = input.after else { return Ok(()) };
    let mut before = Resolver::new(input.state, input.now);
    for rule in state_after.rules.iter().filter(|r| exposes(input, r)) {
        let was_open = input.state.rule(&rule.rule_id).is_some_and(|old| passes_any_to_any(&mut before, old));
        if !was_open && passes_any_to_any(&mut after, rule) {
            return Err(any_to_any_denied(rule));
        }
    }
    Ok(())
}

/// An enabled pass rule on a restricted interface.
fn exposes(input: &PolicyInput<'_>, rule: &Rule) -> bool {
    rule.enabled
        && rule.action == Action::Pass
        && input.restricted_interfaces.iter().any(|r| r.eq_ignore_ascii_case(&rule.interface))
}

fn any_to_any_denied(rule: &Rule) -> CallError {
    denied(
        "source",
        format!(
            "a pass rule from any to any on restricted interface {} is never allowed ({} → {} covers every \
             address)",
            rule.interface, rule.source, rule.destination
        ),
    )
}

fn passes_any_to_any(resolver: &mut Resolver<'_>, rule: &Rule) -> bool {
    let source = resolver.address_set(&rule.source);
    let destination = resolver.address_set(&rule.destination);
    address::any_to_any((&source, rule.source.negate), (&destination, rule.destination.negate), rule.ip_version)
}
