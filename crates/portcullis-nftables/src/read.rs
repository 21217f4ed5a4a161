//! The kernel's table back in the model: rules from their nft expressions (so the verifier checks what the
//! kernel enforces), identity and bookkeeping from their comments, aliases from their sets.

use std::collections::{BTreeMap, HashMap};

use chrono::TimeDelta;
use ipnet::IpNet;
use nftables::expr::{Expression as E, NamedExpression as NE, Payload, SetItem};
use nftables::schema::{NfListObject, NfObject};
use nftables::stmt::{Counter, Operator, Statement as S};
use portcullis_core::firewall::{BackendError, ErrorCode};
use portcullis_core::model::{
    Action, AddressMatch, AddressTarget, Alias, AliasEntry, Direction, IpVersion, PortMatch, PortRange, Protocol, Rule,
    RuleId, Timestamp,
};

use crate::comment::{EntryMeta, RuleMeta, SYSTEM_MARK, SetMeta, TextStore};
use crate::translate::{ALIASES_CHAIN, GENERATION_SET, Hits, PROTOCOL_NAMES, SetPart};

/// One rule of Portcullis' table as listed.
#[derive(Debug, Clone)]
pub struct ListedRule {
    pub handle: u32,
    pub comment: Option<String>,
    pub statements: Vec<S<'static>>,
}

/// One set as listed.
#[derive(Debug, Clone, Default)]
pub struct ListedSet {
    /// nft's element type (`ipv4_addr`, `ipv6_addr`).
    pub element_type: String,
    /// Whether the set has `flags interval` (it can hold networks).
    pub interval: bool,
    pub elements: Vec<ListedElement>,
    /// Whether the set was made over netlink ahead of the batch that uses it (`crate::apply::STAGED_SET_COMMENT`).
    pub staged: bool,
}

/// One set element as listed: its address, the seconds the kernel still keeps it, its comment.
#[derive(Debug, Clone)]
pub struct ListedElement {
    pub net: IpNet,
    pub expires: Option<u64>,
    pub comment: Option<String>,
}

/// Portcullis' table as the kernel holds it.
#[derive(Debug, Clone, Default)]
pub struct KernelTable {
    pub chains: BTreeMap<String, Vec<ListedRule>>,
    pub sets: BTreeMap<String, ListedSet>,
    /// The table's write generation (see [`crate::translate::GENERATION_SET`]).
    pub generation: Option<u32>,
    /// The DDoS protections' chains and sets, as listed (`crate::protect`).
    pub protections: crate::protect::ListedProtections,
}

fn unexpected(message: String) -> BackendError {
    BackendError::new(ErrorCode::UnexpectedResponse, message)
        .with_hint("Portcullis' nftables table holds something it did not write; remove it or the whole table")
}

impl KernelTable {
    /// Parses `nft -j list table inet NAME`. Rules and chains go through the `nftables` crate's types; set
    /// elements (100,000 and more in a block list) are read directly from the JSON, which is several times faster
    /// than the crate's untagged expression types.
    pub fn parse(json: &str) -> Result<Self, BackendError> {
        let cannot =
            |e: serde_json::Error| unexpected(format!("nft -j list table printed JSON Portcullis cannot read: {e}"));
        let mut listing: serde_json::Value = serde_json::from_str(json).map_err(cannot)?;
        let objects = match listing.get_mut("nftables").map(serde_json::Value::take) {
            Some(serde_json::Value::Array(objects)) => objects,
            _ => return Err(unexpected("nft -j list table printed no \"nftables\" array".into())),
        };
        let mut table = KernelTable::default();
        for mut object in objects {
            if let Some(set) = object.get_mut("set") {
                let name = set["name"].as_str().unwrap_or_default().to_string();
                if name.starts_with(crate::protect::PREFIX) {
                    table.protections.sets.insert(name, set.take());
                    continue;
                }
                if name == GENERATION_SET {
                    table.generation = set["elem"].get(0).and_then(|e| e.as_u64()).and_then(|g| u32::try_from(g).ok());
                    continue;
                }
                let elements = match set.get_mut("elem").map(serde_json::Value::take) {
                    Some(serde_json::Value::Array(items)) => items
                        .into_iter()
                        .map(|item| {
                            listed_element(item).ok_or_else(|| {
                                unexpected(format!("set {name} holds an element that is not an address"))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    _ => Vec::new(),
                };
                let element_type = set["type"].as_str().unwrap_or_default().to_string();
                let interval = set["flags"].as_array().is_some_and(|flags| flags.iter().any(|f| f == "interval"));
                let staged = set["comment"].as_str() == Some(crate::apply::STAGED_SET_COMMENT);
                table.sets.insert(name, ListedSet { element_type, interval, elements, staged });
                continue;
            }
            if object.get("rule").is_none() && object.get("chain").is_none() {
                continue;
            }
            // Protections' rules hold statements (synproxy, ct count in a set update) the crate's types do not
            // all read; they are read from the JSON (`crate::protect::read`).
            let owner = object.get("rule").map(|r| &r["chain"]).or_else(|| object.get("chain").map(|c| &c["name"]));
            if let Some(chain) =
                owner.and_then(serde_json::Value::as_str).filter(|c| c.starts_with(crate::protect::PREFIX))
            {
                let rules = table.protections.chains.entry(chain.to_string()).or_default();
                if let Some(rule) = object.get_mut("rule") {
                    rules.push(rule.take());
                }
                continue;
            }
            match serde_json::from_value::<NfObject<'static>>(object).map_err(cannot)? {
                NfObject::ListObject(NfListObject::Chain(c)) => {
                    table.chains.entry(c.name.to_string()).or_default();
                }
                NfObject::ListObject(NfListObject::Rule(r)) => {
                    table.chains.entry(r.chain.to_string()).or_default().push(ListedRule {
                        handle: r.handle.unwrap_or_default(),
                        comment: r.comment.as_ref().map(|c| c.to_string()),
                        statements: r.expr.to_vec(),
                    });
                }
                _ => {}
            }
        }
        Ok(table)
    }
}

/// `"10.0.0.7"`, `{"prefix": {"addr": "10.0.0.0", "len": 8}}`, or either inside `{"elem": {"val": …, "expires": …,
/// "comment": …}}`.
fn listed_element(mut item: serde_json::Value) -> Option<ListedElement> {
    fn net(v: &serde_json::Value) -> Option<IpNet> {
        match v {
            serde_json::Value::String(s) => s.parse::<std::net::IpAddr>().ok().map(IpNet::from),
            other => {
                let p = other.get("prefix")?;
                let addr: std::net::IpAddr = p["addr"].as_str()?.parse().ok()?;
                IpNet::new(addr, u8::try_from(p["len"].as_u64()?).ok()?).ok()
            }
        }
    }
    match item.get_mut("elem").map(serde_json::Value::take) {
        Some(mut e) => Some(ListedElement {
            net: net(&e["val"])?,
            expires: e["expires"].as_u64(),
            comment: match e.get_mut("comment").map(serde_json::Value::take) {
                Some(serde_json::Value::String(c)) => Some(c),
                _ => None,
            },
        }),
        None => Some(ListedElement { net: net(&item)?, expires: None, comment: None }),
    }
}

/// An address field as one nft rule matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AddrPart {
    Any,
    Net(IpNet, bool),
    Alias(String, bool),
    ThisFirewall(bool),
}

/// One nft rule read into model terms.
#[derive(Debug, Clone)]
struct ParsedRule {
    v6: Option<bool>,
    protocol: Option<Protocol>,
    source_port: PortMatch,
    destination_port: PortMatch,
    source: AddrPart,
    destination: AddrPart,
    verdict: Option<Action>,
    log: bool,
    hits: Hits,
}

fn text_of<'a>(e: &'a E<'_>) -> Option<&'a str> {
    match e {
        E::String(s) => Some(s),
        _ => None,
    }
}

fn protocol_number(e: &E<'_>) -> Option<u8> {
    match e {
        E::Number(n) => u8::try_from(*n).ok(),
        E::String(s) => PROTOCOL_NAMES.iter().find(|(name, _)| *name == s.as_ref()).map(|(_, n)| *n),
        _ => None,
    }
}

fn protocol_of(e: &E<'_>) -> Option<Protocol> {
    let mut numbers: Vec<u8> = match e {
        E::Named(NE::Set(items)) => items
            .iter()
            .map(|i| match i {
                SetItem::Element(e) => protocol_number(e),
                _ => None,
            })
            .collect::<Option<_>>()?,
        other => vec![protocol_number(other)?],
    };
    numbers.sort_unstable();
    match numbers.as_slice() {
        [6, 17] => Some(Protocol::TcpUdp),
        [1, 58] => Some(Protocol::Icmp),
        [n] => Protocol::parse("protocol", &n.to_string()).ok(),
        _ => None,
    }
}

fn port_of(e: &E<'_>) -> Option<PortMatch> {
    let number = |e: &E<'_>| match e {
        E::Number(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    match e {
        E::Number(_) => Some(PortMatch::Range(PortRange::single(number(e)?))),
        E::Range(r) => Some(PortMatch::Range(PortRange { first: number(&r.range[0])?, last: number(&r.range[1])? })),
        _ => None,
    }
}

/// An address or network as listed: `10.0.0.7` or `{"prefix": {"addr": "10.0.0.0", "len": 8}}`.
pub fn net_of(e: &E<'_>) -> Option<IpNet> {
    match e {
        E::String(s) => s.parse::<std::net::IpAddr>().ok().map(IpNet::from),
        E::Named(NE::Prefix(p)) => {
            let addr: std::net::IpAddr = text_of(&p.addr)?.parse().ok()?;
            IpNet::new(addr, u8::try_from(p.len).ok()?).ok()
        }
        _ => None,
    }
}

fn address_part(right: &E<'_>, negate: bool) -> Option<AddrPart> {
    if let Some(set) = text_of(right).and_then(|s| s.strip_prefix('@')) {
        let (alias, _) = SetPart::split(set)?;
        return Some(AddrPart::Alias(alias.to_string(), negate));
    }
    net_of(right).map(|n| AddrPart::Net(n, negate))
}

fn parse_rule(rule: &ListedRule) -> Result<ParsedRule, String> {
    let mut p = ParsedRule {
        v6: None,
        protocol: None,
        source_port: PortMatch::Any,
        destination_port: PortMatch::Any,
        source: AddrPart::Any,
        destination: AddrPart::Any,
        verdict: None,
        log: false,
        hits: Hits::default(),
    };
    for statement in &rule.statements {
        match statement {
            S::Match(m) => parse_match(&mut p, &m.left, &m.right, m.op)?,
            S::Counter(Counter::Anonymous(c)) => {
                let c = c.clone().unwrap_or_default();
                p.hits = Hits { packets: c.packets.unwrap_or(0) as u64, bytes: c.bytes.unwrap_or(0) as u64 };
            }
            S::Log(_) => p.log = true,
            S::Accept(_) => p.verdict = Some(Action::Pass),
            S::Drop(_) => p.verdict = Some(Action::Block),
            S::Reject(_) => p.verdict = Some(Action::Reject),
            other => return Err(format!("a statement Portcullis does not write: {other:?}")),
        }
    }
    Ok(p)
}

fn parse_match(p: &mut ParsedRule, left: &E<'_>, right: &E<'_>, op: Operator) -> Result<(), String> {
    let negate = match op {
        Operator::EQ | Operator::IN => false,
        Operator::NEQ => true,
        other => return Err(format!("a comparison Portcullis does not write: {other:?}")),
    };
    let bad = || format!("a match Portcullis does not write: {left:?} {right:?}");
    match left {
        E::Named(NE::Meta(m)) => match serde_json::to_value(m.key).ok().and_then(|v| v.as_str().map(str::to_string)) {
            Some(k) if k == "l4proto" => p.protocol = Some(protocol_of(right).ok_or_else(bad)?),
            Some(k) if k == "nfproto" => p.v6 = Some(text_of(right) == Some("ipv6")),
            _ => return Err(bad()),
        },
        E::Named(NE::Payload(Payload::PayloadField(f))) => match (f.protocol.as_ref(), f.field.as_ref()) {
            (proto @ ("ip" | "ip6"), field @ ("saddr" | "daddr")) => {
                p.v6 = Some(proto == "ip6");
                let part = address_part(right, negate).ok_or_else(bad)?;
                let slot = if field == "saddr" { &mut p.source } else { &mut p.destination };
                // A negated alias is two matches (outside the hosts set and outside the networks set).
                if !matches!((&*slot, &part), (AddrPart::Alias(a, true), AddrPart::Alias(b, true)) if a == b) {
                    if *slot != AddrPart::Any {
                        return Err(bad());
                    }
                    *slot = part;
                }
            }
            (proto @ ("th" | "tcp" | "udp"), field @ ("sport" | "dport")) => {
                match proto {
                    "tcp" => p.protocol = Some(Protocol::Tcp),
                    "udp" => p.protocol = Some(Protocol::Udp),
                    _ => {}
                }
                let port = port_of(right).ok_or_else(bad)?;
                if field == "sport" {
                    p.source_port = port;
                } else {
                    p.destination_port = port;
                }
            }
            _ => return Err(bad()),
        },
        E::Named(NE::Fib(f)) => {
            let is_source = f.flags.iter().any(|fl| {
                serde_json::to_value(fl).ok().and_then(|v| v.as_str().map(str::to_string)).as_deref() == Some("saddr")
            });
            let slot = if is_source { &mut p.source } else { &mut p.destination };
            *slot = AddrPart::ThisFirewall(negate);
        }
        _ => return Err(bad()),
    }
    Ok(())
}

fn address_match(part: &AddrPart) -> AddressMatch {
    let (target, negate) = match part {
        AddrPart::Any => (AddressTarget::Any, false),
        AddrPart::Net(n, neg) => (AddressTarget::Net(*n), *neg),
        AddrPart::Alias(a, neg) => (AddressTarget::Alias(a.clone()), *neg),
        AddrPart::ThisFirewall(neg) => (AddressTarget::ThisFirewall, *neg),
    };
    AddressMatch { target, negate }
}

/// A model rule read from the nft rules that carry its id, and the hits they counted.
fn model_rule(
    interface: &str,
    direction: Direction,
    meta: &RuleMeta,
    description: String,
    group: &[ParsedRule],
) -> Result<(Rule, Hits), String> {
    let first = group.first().ok_or("no nft rule")?;
    let families: Vec<Option<bool>> = group.iter().map(|p| p.v6).collect();
    let enforced = if families.iter().all(|f| *f == Some(false)) {
        IpVersion::Inet
    } else if families.iter().all(|f| *f == Some(true)) {
        IpVersion::Inet6
    } else {
        IpVersion::Inet46
    };
    // What was written wins where the kernel cannot tell the two apart (see `RuleMeta::ip_version`); a rule
    // that matches both families is read as such whatever its comment says.
    let ip_version = if enforced == IpVersion::Inet46 || meta.ip_version == IpVersion::Inet46 {
        IpVersion::Inet46
    } else {
        enforced
    };
    let hits = group.iter().fold(Hits::default(), |acc, p| Hits {
        packets: acc.packets + p.hits.packets,
        bytes: acc.bytes + p.hits.bytes,
    });
    let action = first.verdict.unwrap_or(meta.action);
    let enabled = first.verdict.is_some();
    let rule = Rule {
        rule_id: RuleId(meta.rule_id.clone()),
        interface: interface.to_string(),
        direction,
        action,
        ip_version,
        protocol: first.protocol.unwrap_or(Protocol::Any),
        source: address_match(&first.source),
        source_port: first.source_port.clone(),
        destination: address_match(&first.destination),
        destination_port: first.destination_port.clone(),
        description,
        enabled,
        log: if enabled { first.log } else { meta.log },
        managed: meta.managed.clone(),
        paused_until: if enabled { None } else { meta.paused_until },
        created_at: meta.created_at,
        updated_at: meta.updated_at,
    };
    Ok((rule, hits))
}

/// The rules of one chain, grouped by id, in chain order.
pub fn chain_rules(
    table: &KernelTable,
    chain: &str,
    interface: &str,
    direction: Direction,
    texts: &TextStore,
) -> Result<Vec<(Rule, Hits)>, BackendError> {
    let Some(listed) = table.chains.get(chain) else { return Ok(Vec::new()) };
    let mut groups: Vec<(RuleMeta, String, Vec<ParsedRule>)> = Vec::new();
    for rule in listed {
        let comment = rule.comment.as_deref().unwrap_or("");
        if comment.starts_with(SYSTEM_MARK) {
            continue;
        }
        let (head, text) = texts.split(comment)?;
        let meta = RuleMeta::parse(head).ok_or_else(|| {
            unexpected(format!("rule handle {} in chain {chain} carries no Portcullis rule id", rule.handle))
        })?;
        let parsed = parse_rule(rule).map_err(|why| {
            unexpected(format!("rule {} (handle {}) in chain {chain}: {why}", meta.rule_id, rule.handle))
        })?;
        match groups.last_mut() {
            Some((m, _, group)) if m.rule_id == meta.rule_id => group.push(parsed),
            _ => groups.push((meta, text, vec![parsed])),
        }
    }
    groups
        .into_iter()
        .map(|(meta, text, group)| {
            model_rule(interface, direction, &meta, text, &group)
                .map_err(|why| unexpected(format!("rule {}: {why}", meta.rule_id)))
        })
        .collect()
}

/// Aliases from their sets (four per alias) and their descriptions (rules of the `aliases` chain), entries with
/// their exact expiry from the element comments.
pub fn aliases(table: &KernelTable, texts: &TextStore, now: Timestamp) -> Result<Vec<Alias>, BackendError> {
    let mut by_name = described_aliases(table, texts)?;
    for (set_name, set) in &table.sets {
        let Some((alias_name, part)) = SetPart::split(set_name) else { continue };
        check_layout(alias_name, part, set)?;
        let Some(alias) = by_name.get_mut(alias_name) else {
            if set.staged {
                continue; // left by an interrupted apply: see `leftover_sets`
            }
            return Err(unexpected(format!("set {set_name} belongs to no alias Portcullis described")));
        };
        for element in &set.elements {
            alias.entries.push(entry(element, texts, now)?);
        }
    }
    Ok(by_name.into_values().collect())
}

/// The aliases the `aliases` chain describes, without their entries.
fn described_aliases(table: &KernelTable, texts: &TextStore) -> Result<BTreeMap<String, Alias>, BackendError> {
    let mut by_name: BTreeMap<String, Alias> = BTreeMap::new();
    for rule in table.chains.get(ALIASES_CHAIN).into_iter().flatten() {
        let (head, description) = texts.split(rule.comment.as_deref().unwrap_or(""))?;
        let meta = SetMeta::parse(head).ok_or_else(|| {
            unexpected(format!("rule handle {} of chain {ALIASES_CHAIN} describes no alias", rule.handle))
        })?;
        by_name.insert(
            meta.name.clone(),
            Alias { name: meta.name, kind: meta.kind, description, entries: Vec::new(), managed: meta.managed },
        );
    }
    Ok(by_name)
}

/// Sets made ahead of a batch that never committed (the process stopped between the two, or the batch failed and
/// so did the clean-up): staged sets whose alias no rule describes. No rule refers to them.
pub fn leftover_sets(table: &KernelTable, texts: &TextStore) -> Result<Vec<String>, BackendError> {
    let described = described_aliases(table, texts)?;
    Ok(table
        .sets
        .iter()
        .filter(|(name, set)| {
            set.staged && SetPart::split(name).is_some_and(|(alias, _)| !described.contains_key(alias))
        })
        .map(|(name, _)| name.clone())
        .collect())
}

/// Refuses a set that is not what Portcullis writes for its part (single addresses in a timed hash set, networks
/// in a timed interval set, per family), or an element in the wrong one: removals go to the set an entry belongs
/// in, so a table laid out otherwise (by hand, or by a build that kept everything in interval sets) would keep
/// entries Portcullis believes removed.
fn check_layout(alias_name: &str, part: SetPart, set: &ListedSet) -> Result<(), BackendError> {
    let set_name = crate::translate::set_name(alias_name, part);
    let wanted_type = if part.is_v6() { "ipv6_addr" } else { "ipv4_addr" };
    let wanted_kind = if part.is_interval() { "an interval set of networks" } else { "a hash set of single addresses" };
    let relayout = |what: String| {
        BackendError::new(ErrorCode::UnexpectedResponse, what).with_hint(
            "the table was not written by this Portcullis version: delete it (nft delete table inet <table>) and \
             let Portcullis write it again; the blocks and grants it held must then be given again",
        )
    };
    if set.element_type != wanted_type || set.interval != part.is_interval() {
        return Err(relayout(format!(
            "set {set_name} is {} of {}; Portcullis keeps {wanted_kind} of {wanted_type} there",
            if set.interval { "an interval set" } else { "a hash set" },
            set.element_type
        )));
    }
    if let Some(stray) = set.elements.iter().find(|e| SetPart::of(&e.net) != part) {
        return Err(relayout(format!(
            "set {set_name} holds {}, which Portcullis keeps in set {}",
            stray.net,
            crate::translate::set_name(alias_name, SetPart::of(&stray.net))
        )));
    }
    Ok(())
}

pub(crate) fn entry(element: &ListedElement, texts: &TextStore, now: Timestamp) -> Result<AliasEntry, BackendError> {
    let (head, detail) = texts.split(element.comment.as_deref().unwrap_or(""))?;
    let meta = EntryMeta::parse(head);
    let kernel_expiry = element.expires.map(|s| now + TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000)));
    Ok(AliasEntry {
        value: portcullis_core::model::net_to_string(&element.net),
        detail,
        expires_at: meta.expires_at.or(kernel_expiry),
        created_at: meta.created_at,
    })
}

/// Rule hit counts by rule id.
pub type HitMap = HashMap<RuleId, Hits>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;
    use portcullis_core::model::AliasKind;
    use portcullis_store::Store;

    use super::*;

    /// `nft -j list table inet portcullis` as nft 1.0.6 printed it for an alias with one entry in each of its four
    /// sets (the table loaded with `nft -f` in a network namespace).
    const LISTING: &str = r#"{"nftables":[{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},{"table":{"family":"inet","name":"portcullis","handle":1}},{"set":{"family":"inet","name":"B_h4","table":"portcullis","type":"ipv4_addr","handle":2,"flags":["timeout"],"elem":[{"elem":{"val":"192.0.2.7","timeout":3600,"expires":3599,"comment":"x=1763922000000 c=1763918400000 |ssh brute force"}}]}},{"set":{"family":"inet","name":"B_n4","table":"portcullis","type":"ipv4_addr","handle":3,"flags":["interval","timeout"],"elem":[{"elem":{"val":{"prefix":{"addr":"192.0.2.0","len":24}},"timeout":7200,"expires":7199,"comment":"x=1763925600000 c=1763918400000 |scanner net"}}]}},{"set":{"family":"inet","name":"B_h6","table":"portcullis","type":"ipv6_addr","handle":4,"flags":["timeout"],"elem":[{"elem":{"val":"2001:db8::7","comment":"c=1763918400000 |permanent"}}]}},{"set":{"family":"inet","name":"B_n6","table":"portcullis","type":"ipv6_addr","handle":5,"flags":["interval","timeout"],"elem":[{"elem":{"val":{"prefix":{"addr":"2001:db8:1::","len":64}},"timeout":3600,"expires":3599,"comment":"x=1763922000000 c=1763918400000 |v6 net"}}]}},{"chain":{"family":"inet","table":"portcullis","name":"aliases","handle":1}},{"rule":{"family":"inet","table":"portcullis","chain":"aliases","handle":6,"comment":"pc1 n=B k=network m=block_list |blocks","expr":[{"counter":{"packets":0,"bytes":0}}]}}]}"#;

    fn millis(ms: i64) -> Option<Timestamp> {
        chrono::Utc.timestamp_millis_opt(ms).single()
    }

    fn read(listing: &str) -> Result<Vec<Alias>, BackendError> {
        let texts = TextStore::new(Arc::new(Store::open_in_memory().expect("store")));
        aliases(&KernelTable::parse(listing)?, &texts, chrono::Utc::now())
    }

    #[test]
    fn the_four_sets_of_an_alias_read_back_as_one_list_with_exact_times() {
        let aliases = read(LISTING).expect("read");
        assert_eq!(aliases.len(), 1);
        let alias = &aliases[0];
        assert_eq!(
            (alias.name.as_str(), alias.kind, alias.managed.as_deref()),
            ("B", AliasKind::Network, Some("block_list"))
        );
        let mut entries: Vec<(String, String, Option<Timestamp>)> =
            alias.entries.iter().map(|e| (e.value.clone(), e.detail.clone(), e.expires_at)).collect();
        entries.sort();
        assert_eq!(
            entries,
            vec![
                ("192.0.2.0/24".into(), "scanner net".into(), millis(1_763_925_600_000)),
                ("192.0.2.7".into(), "ssh brute force".into(), millis(1_763_922_000_000)),
                ("2001:db8:1::/64".into(), "v6 net".into(), millis(1_763_922_000_000)),
                ("2001:db8::7".into(), "permanent".into(), None),
            ]
        );
        assert!(alias.entries.iter().all(|e| e.created_at == millis(1_763_918_400_000)));
    }

    #[test]
    fn hosts_kept_in_an_interval_set_are_refused_as_another_layout() {
        let interval_hosts = LISTING.replace(
            r#""name":"B_h4","table":"portcullis","type":"ipv4_addr","handle":2,"flags":["timeout"]"#,
            r#""name":"B_h4","table":"portcullis","type":"ipv4_addr","handle":2,"flags":["interval","timeout"]"#,
        );
        assert_ne!(interval_hosts, LISTING);
        let err = read(&interval_hosts).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnexpectedResponse);
        assert!(err.message.contains("set B_h4 is an interval set of ipv4_addr"), "{}", err.message);
        assert!(err.hint.as_deref().is_some_and(|h| h.contains("nft delete table")), "{:?}", err.hint);
    }

    #[test]
    fn a_host_in_a_network_set_is_refused() {
        let stray = LISTING.replace(r#"{"prefix":{"addr":"192.0.2.0","len":24}}"#, r#""192.0.2.9""#);
        assert_ne!(stray, LISTING);
        let err = read(&stray).unwrap_err();
        assert!(
            err.message.contains("set B_n4 holds 192.0.2.9/32, which Portcullis keeps in set B_h4"),
            "{}",
            err.message
        );
    }
}
