//! Domain blocks (`block_domain`): traffic to the addresses a name currently resolves to, dropped where it enters
//! the firewall. The name is validated here (RFC 1035 hostname rules after IDNA, so `bücher.example` is
//! `xn--bcher-kva.example`); resolving it is I/O and happens outside the core, which plans with the answer.
//!
//! A domain block is entries of its own managed lists, beside the address block lists: `PORTCULLIS_BLOCKDNS` (every
//! interface) or `PORTCULLIS_BLOCKDNS_<IFACE>`, each enforced by a block rule on the *destination* (an address
//! block list matches the source). Each entry is one address of the answer, its detail `<domain>: <reason>`, so
//! the firewall itself says which name an address stands for. Re-resolving plans the same way: the entries of the
//! name become exactly the new answer (addresses that left it leave the list), keeping the block's expiry.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldResult};
use crate::model::{
    Action, AddressMatch, AddressTarget, Alias, AliasEntry, AliasKind, Rule, RuleSet, Timestamp, net_to_string,
};
use crate::plan::{ChangeFacts, ChangePlan, Operation, leading_managed_rules};

/// The managed tag of domain block lists and of the rules that enforce them.
pub const MANAGED_DOMAIN_BLOCK: &str = "domain_block";
/// The domain block list of every interface; an interface's is `PORTCULLIS_BLOCKDNS_<IFACE>`. Never the name of an
/// address block list, which is `PORTCULLIS_BLOCK` or `PORTCULLIS_BLOCK_<IFACE>`.
pub const DOMAIN_ALIAS: &str = "PORTCULLIS_BLOCKDNS";
pub const DOMAIN_ALIAS_DESCR: &str = "Addresses of names blocked by Portcullis (re-resolved at their TTL)";
pub const DOMAIN_RULE_DESCR: &str = "Portcullis managed domain block list";
/// The most addresses one name may stand for in a block: an answer larger than this is not a name to block by
/// address (a CDN), and is refused.
pub const MAX_ADDRESSES: usize = 64;

/// A hostname, lower case and in ASCII (IDNA applied), checked by RFC 1035's rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        let bad = |why: String| FieldError::new(field, format!("{:?} is not a domain name: {why}", text));
        let trimmed = text.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if trimmed.contains('*') {
            return Err(FieldError::new(
                field,
                format!(
                    "{text:?} is a wildcard: a block holds the addresses one name resolves to, and a wildcard \
                     names no address; block each name (e.g. {})",
                    trimmed.trim_start_matches("*.")
                ),
            ));
        }
        if trimmed.parse::<IpAddr>().is_ok() || trimmed.parse::<IpNet>().is_ok() {
            return Err(bad("it is an address; block it with block_ip_address".into()));
        }
        // An ASCII name is checked label by label below, which says what is wrong; IDNA only for other letters.
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(trimmed).map_err(|_| {
                bad("a name is labels of letters, digits and hyphens separated by dots (IDNA for other letters)".into())
            })?
        };
        if ascii.len() > 253 {
            return Err(bad(format!("{} characters, more than the 253 a name may have", ascii.len())));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("a single label names no host on the internet; give the full name".into()));
        }
        for label in &labels {
            if label.is_empty() {
                return Err(bad("it has an empty label (two dots in a row)".into()));
            }
            if label.len() > 63 {
                return Err(bad(format!("label {label:?} is longer than 63 characters")));
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(bad(format!("label {label:?} holds other characters than letters, digits and hyphens")));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad(format!("label {label:?} starts or ends with a hyphen")));
            }
        }
        let tld = labels[labels.len() - 1];
        if tld.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("its last label is all digits".into()));
        }
        if tld == "localhost" || tld == "arpa" {
            return Err(bad(format!("`.{tld}` names are this host's or reverse lookups, not a domain to block")));
        }
        Ok(Self(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DomainName {
    type Error = FieldError;
    fn try_from(s: String) -> FieldResult<Self> {
        Self::parse("domain", &s)
    }
}

impl From<DomainName> for String {
    fn from(d: DomainName) -> String {
        d.0
    }
}

/// The domain block list of one interface, or of every interface.
pub fn domain_alias_name(interface: Option<&str>) -> String {
    match interface {
        None => DOMAIN_ALIAS.to_string(),
        Some(i) => format!("{DOMAIN_ALIAS}_{}", i.to_ascii_uppercase()),
    }
}

/// An entry's detail for an address of `domain`.
pub fn entry_detail(domain: &DomainName, reason: &str) -> String {
    if reason.is_empty() { domain.to_string() } else { format!("{domain}: {reason}") }
}

/// The name an entry of a domain block list stands for (its detail up to `: `).
pub fn domain_of(detail: &str) -> &str {
    detail.split_once(": ").map_or(detail, |(d, _)| d)
}

/// What a domain block asks for: the name, the answer it resolved to, and the block's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainBlockAsk {
    pub domain: DomainName,
    pub interface: Option<String>,
    /// The addresses the name resolves to now (A and AAAA).
    pub addresses: BTreeSet<IpAddr>,
    pub expires_at: Option<Timestamp>,
    pub reason: String,
    /// Addresses other live domain blocks of the same list stand for, by name: an address that leaves this
    /// answer but is in another's stays, as that name's.
    pub others: BTreeMap<IpAddr, DomainName>,
    /// The firewall resolves names itself (pfSense keeps FQDN entries of host aliases resolved): the one entry is
    /// the name, in a host alias; `addresses` is then only the answer the block was judged on.
    pub by_name: bool,
}

/// The entries of `domain` in a domain block list.
pub fn entries_of<'s>(state: &'s RuleSet, alias: &str, domain: &DomainName) -> Vec<&'s AliasEntry> {
    state
        .alias(alias)
        .map(|a| a.entries.iter().filter(|e| domain_of(&e.detail) == domain.as_str()).collect())
        .unwrap_or_default()
}

/// Plans a domain block, or its refresh with a new answer: the name's entries become exactly `ask.addresses`.
pub fn plan_domain_block(state: &RuleSet, ask: &DomainBlockAsk, now: Timestamp) -> FieldResult<ChangePlan> {
    if ask.addresses.is_empty() {
        return Err(FieldError::new("domain", format!("{} resolves to no address (A or AAAA)", ask.domain)));
    }
    if ask.addresses.len() > MAX_ADDRESSES {
        return Err(FieldError::new(
            "domain",
            format!(
                "{} resolves to {} addresses, more than the {MAX_ADDRESSES} a domain block holds: a name served \
                 from that many places (a CDN) cannot be blocked by address without blocking others",
                ask.domain,
                ask.addresses.len()
            ),
        ));
    }
    let interface = match &ask.interface {
        Some(name) => Some(state.resolve_interface("interface", name)?.name.clone()),
        None => None,
    };
    let alias_name = domain_alias_name(interface.as_deref());
    if let Some(other) = state.alias(&alias_name).filter(|a| a.managed.as_deref() != Some(MANAGED_DOMAIN_BLOCK)) {
        let what = other.managed.as_deref().unwrap_or("not managed by Portcullis");
        return Err(FieldError::new(
            "domain",
            format!("alias {alias_name} exists but is not a Portcullis domain block list ({what}); remove it first"),
        ));
    }
    let targets: Vec<String> = match &interface {
        Some(i) => vec![i.clone()],
        None => state.interfaces.iter().map(|i| i.name.clone()).collect(),
    };
    let kind = if ask.by_name { AliasKind::Host } else { AliasKind::Network };
    let mut operations = ensure_list(state, &alias_name, kind, &targets, now);
    let held: BTreeMap<&str, &AliasEntry> =
        state.alias(&alias_name).map(|a| a.entries.iter().map(|e| (e.value.as_str(), e)).collect()).unwrap_or_default();
    let detail = entry_detail(&ask.domain, &ask.reason);
    let wanted: BTreeSet<String> = if ask.by_name {
        BTreeSet::from([ask.domain.to_string()])
    } else {
        ask.addresses.iter().map(|a| net_to_string(&IpNet::from(*a))).collect()
    };
    let (mut put, mut replaced, mut removed, mut warnings) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for value in wanted.iter().cloned() {
        match held.get(value.as_str()) {
            Some(old) if domain_of(&old.detail) != ask.domain.as_str() && old.is_live(now) => {
                warnings.push(format!("{value} is already blocked as an address of {}", domain_of(&old.detail)));
            }
            Some(old) if old.detail == detail && old.expires_at == ask.expires_at => {}
            Some(old) => {
                replaced.push((*old).clone());
                put.push(AliasEntry {
                    value,
                    detail: detail.clone(),
                    expires_at: ask.expires_at,
                    created_at: Some(now),
                });
            }
            None => put.push(AliasEntry {
                value,
                detail: detail.clone(),
                expires_at: ask.expires_at,
                created_at: Some(now),
            }),
        }
    }
    for old in entries_of(state, &alias_name, &ask.domain) {
        if wanted.contains(&old.value) {
            continue;
        }
        match old.value.parse::<IpAddr>().ok().and_then(|a| ask.others.get(&a)) {
            // Another name still stands for the address: it stays, as that name's.
            Some(other) => {
                replaced.push(old.clone());
                put.push(AliasEntry { detail: other.to_string(), ..old.clone() });
            }
            None => removed.push(old.clone()),
        }
    }
    if !put.is_empty() {
        operations.push(Operation::PutAliasEntries { alias: alias_name.clone(), before: replaced, after: put });
    }
    if !removed.is_empty() {
        operations.push(Operation::RemoveAliasEntries { alias: alias_name.clone(), before: removed });
    }
    let answer: Vec<String> = ask.addresses.iter().map(IpAddr::to_string).collect();
    let scope = interface.as_deref().unwrap_or("all interfaces");
    Ok(ChangePlan {
        summary: format!("block traffic to {} ({}) on {scope}", ask.domain, answer.join(", ")),
        operations,
        warnings,
        facts: ChangeFacts {
            // Single hosts, however many.
            host_bits: 0,
            widens_exposure: false,
            lifetime_seconds: ask.expires_at.map(|t| (t - now).num_seconds()),
            permanent: ask.expires_at.is_none(),
            interfaces: targets,
        },
    })
}

/// Plans the removal of a domain block: every entry of the name, except addresses another name stands for.
pub fn plan_domain_unblock(
    state: &RuleSet,
    domain: &DomainName,
    interface: Option<&str>,
    others: &BTreeMap<IpAddr, DomainName>,
) -> FieldResult<ChangePlan> {
    let interface = match interface {
        Some(name) => Some(state.resolve_interface("interface", name)?.name.clone()),
        None => None,
    };
    let lists: Vec<&Alias> = state
        .aliases
        .iter()
        .filter(|a| a.managed.as_deref() == Some(MANAGED_DOMAIN_BLOCK))
        .filter(|a| interface.is_none() || a.name == domain_alias_name(interface.as_deref()))
        .collect();
    let mut operations = Vec::new();
    for list in lists {
        let (mut removed, mut kept, mut retagged) = (Vec::new(), Vec::new(), Vec::new());
        for old in entries_of(state, &list.name, domain) {
            match old.value.parse::<IpAddr>().ok().and_then(|a| others.get(&a)) {
                Some(other) => {
                    kept.push(old.clone());
                    retagged.push(AliasEntry { detail: other.to_string(), ..old.clone() });
                }
                None => removed.push(old.clone()),
            }
        }
        if !retagged.is_empty() {
            operations.push(Operation::PutAliasEntries { alias: list.name.clone(), before: kept, after: retagged });
        }
        if !removed.is_empty() {
            operations.push(Operation::RemoveAliasEntries { alias: list.name.clone(), before: removed });
        }
    }
    if operations.is_empty() {
        return Err(FieldError::new("domain", format!("{domain} is not blocked (see list_blocks)")));
    }
    Ok(ChangePlan {
        summary: format!("unblock traffic to {domain}"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts { widens_exposure: true, permanent: true, ..ChangeFacts::default() },
    })
}

/// Creates the domain block list and its enforcing rules where they are missing.
fn ensure_list(
    state: &RuleSet,
    alias_name: &str,
    kind: AliasKind,
    interfaces: &[String],
    now: Timestamp,
) -> Vec<Operation> {
    let mut ops = Vec::new();
    if state.alias(alias_name).is_none() {
        ops.push(Operation::CreateAlias {
            after: Alias {
                name: alias_name.to_string(),
                kind,
                description: DOMAIN_ALIAS_DESCR.into(),
                entries: Vec::new(),
                managed: Some(MANAGED_DOMAIN_BLOCK.into()),
            },
        });
    }
    let target = AddressTarget::Alias(alias_name.to_string());
    for iface in interfaces {
        let enforced = state
            .rules_on(iface)
            .any(|r| r.managed.as_deref() == Some(MANAGED_DOMAIN_BLOCK) && r.destination.target == target);
        if !enforced {
            ops.push(Operation::CreateRule {
                position: leading_managed_rules(state, iface),
                after: Rule {
                    destination: AddressMatch { target: target.clone(), negate: false },
                    description: format!("{DOMAIN_RULE_DESCR} {alias_name}"),
                    log: true,
                    managed: Some(MANAGED_DOMAIN_BLOCK.into()),
                    ..Rule::new(iface, Action::Block).stamped(now)
                },
            });
        }
    }
    ops
}

#[cfg(test)]
mod tests;
