//! Geo blocks: every network of the named countries blocked on the named interfaces, as one change.
//!
//! A geo block is ordinary objects of the model, owned by Portcullis (`managed: geo_block`): one network alias per
//! country and address family (`PORTCULLIS_GEO_3F9A1C_CN_V4`), each entry a prefix with the country and the data
//! date as its detail, and one block rule per alias, interface and direction. The block's identity is in the
//! names (`geo-3f9a1c`), so every backend can list it back from what it holds. Creating, refreshing and deleting
//! one are plans like any other; deleting it deletes its aliases too, so the firewall is left as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::country::{CountryCode, CountryNetworks};
use crate::error::{FieldError, FieldResult};
use crate::model::{
    Action, AddressMatch, AddressTarget, Alias, AliasEntry, AliasKind, Direction, IpVersion, Rule, RuleSet, Timestamp,
    net_to_string,
};
use crate::plan::{ChangeFacts, ChangePlan, Operation};

/// The `managed` tag of geo lists and of the rules that enforce them.
pub const MANAGED_GEO: &str = "geo_block";
/// Every geo list's name starts with this (a reserved name: `plan::Purpose::Geo`).
pub const GEO_ALIAS_PREFIX: &str = "PORTCULLIS_GEO_";
/// The start of every geo rule's description; backends that cannot store a `managed` tag recognise rules by it.
pub const GEO_RULE_DESCR: &str = "Portcullis geo block";

/// Where a geo list's description gives the data date of its entries.
const DATA_DATE: &str = "data of ";

/// A geo block's id: `geo-` and six hex digits, as a call names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct GeoBlockId(String);

impl GeoBlockId {
    /// The id made of the first six hex digits of `seed` (a random value the caller supplies: the core has none).
    pub fn from_seed(seed: u32) -> Self {
        Self(format!("{:06x}", seed & 0xff_ffff))
    }

    /// Parses `geo-3f9a1c` (or the bare `3f9a1c`), naming `field` otherwise.
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        crate::model::short_hex_id(text, "geo-").map(Self).ok_or_else(|| {
            FieldError::new(field, format!("{text:?} is not a geo block id (like geo-3f9a1c; see list_geo_blocks)"))
        })
    }

    /// The part of alias names that carries the id.
    fn alias_part(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

impl fmt::Display for GeoBlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "geo-{}", self.0)
    }
}

impl TryFrom<String> for GeoBlockId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse("geo_block_id", &s).map_err(|e| e.message)
    }
}

impl From<GeoBlockId> for String {
    fn from(id: GeoBlockId) -> String {
        id.to_string()
    }
}

/// Which traffic of the countries a geo block stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GeoDirection {
    /// Traffic from the countries arriving on the interfaces.
    #[default]
    In,
    /// Traffic to the countries leaving through the interfaces.
    Out,
    Both,
}

impl GeoDirection {
    pub fn parse(field: &str, text: &str) -> FieldResult<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "in" | "inbound" => Ok(Self::In),
            "out" | "outbound" => Ok(Self::Out),
            "both" => Ok(Self::Both),
            other => Err(FieldError::new(field, format!("{other:?} is not a direction: use in, out or both"))),
        }
    }

    fn directions(self) -> &'static [Direction] {
        match self {
            Self::In => &[Direction::In],
            Self::Out => &[Direction::Out],
            Self::Both => &[Direction::In, Direction::Out],
        }
    }
}

/// What `create_geo_block` asks for, with the country networks already looked up.
#[derive(Debug, Clone)]
pub struct GeoBlock {
    pub id: GeoBlockId,
    pub countries: Vec<CountryNetworks>,
    pub interfaces: Vec<String>,
    pub direction: GeoDirection,
    pub expires_at: Option<Timestamp>,
    pub description: String,
    /// The country database's build date (`2026-06-01`), kept with every entry.
    pub data_date: String,
}

/// Whether an alias is a geo list, by its reserved name: backends that keep no `managed` tag (pfSense) and the
/// writers that treat geo lists apart (short details, no element comments, the pfSense cap) all ask this.
pub fn is_geo_list(name: &str) -> bool {
    name.starts_with(GEO_ALIAS_PREFIX)
}

/// The name of a geo list: block, country and family.
pub fn geo_alias_name(id: &GeoBlockId, country: CountryCode, v6: bool) -> String {
    format!("{GEO_ALIAS_PREFIX}{}_{country}_{}", id.alias_part(), if v6 { "V6" } else { "V4" })
}

/// The block, country and family a geo list's name stands for.
fn parse_alias_name(name: &str) -> Option<(GeoBlockId, CountryCode, bool)> {
    let rest = name.strip_prefix(GEO_ALIAS_PREFIX)?;
    let mut parts = rest.split('_');
    let id = GeoBlockId::parse("", parts.next()?).ok()?;
    let country = CountryCode::from_database(parts.next()?)?;
    let v6 = match parts.next()? {
        "V4" => false,
        "V6" => true,
        _ => return None,
    };
    parts.next().is_none().then_some((id, country, v6))
}

/// The entries of one geo list: its prefixes, each with the country and data date as detail.
fn entries_of(
    networks: &CountryNetworks,
    v6: bool,
    data_date: &str,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Vec<AliasEntry> {
    let detail = format!("{} {data_date}", networks.country);
    let entry = |value: String| AliasEntry { value, detail: detail.clone(), expires_at, created_at: Some(now) };
    if v6 {
        networks.v6.iter().map(|n| entry(net_to_string(&(*n).into()))).collect()
    } else {
        networks.v4.iter().map(|n| entry(net_to_string(&(*n).into()))).collect()
    }
}

fn geo_rule(interface: &str, direction: Direction, alias: &str, v6: bool, description: &str, now: Timestamp) -> Rule {
    let list = AddressMatch { target: AddressTarget::Alias(alias.to_string()), negate: false };
    let (source, destination) =
        if direction == Direction::Out { (AddressMatch::ANY, list) } else { (list, AddressMatch::ANY) };
    Rule {
        direction,
        ip_version: if v6 { IpVersion::Inet6 } else { IpVersion::Inet },
        source,
        destination,
        description: description.to_string(),
        log: true,
        managed: Some(MANAGED_GEO.into()),
        ..Rule::new(interface, Action::Block).stamped(now)
    }
}

/// Host bits of what the networks cover, the breadth risk weighs: an IPv4 /8's worth is 24, and IPv6 counts in
/// /64 networks above 64 bits.
fn covered_host_bits(countries: &[CountryNetworks]) -> u8 {
    let bits = |count: u128| if count <= 1 { 0 } else { (128 - (count - 1).leading_zeros()) as u8 };
    let (v4, v6) = countries
        .iter()
        .map(CountryNetworks::coverage)
        .fold((0u128, 0u128), |(a, b), (x, y)| (a + u128::from(x), b.saturating_add(y)));
    let v6_bits = if v6 == 0 { 0 } else { 64 + bits(v6) };
    bits(v4).max(v6_bits).min(128)
}

/// The plan that creates `block`: its lists, then its rules, after the interfaces' leading managed rules.
pub(crate) fn plan_create(state: &RuleSet, block: &GeoBlock, now: Timestamp) -> FieldResult<ChangePlan> {
    if block.interfaces.is_empty() {
        return Err(FieldError::new("interfaces", "name at least one interface (e.g. wan)"));
    }
    let mut interfaces: Vec<String> = Vec::new();
    for (i, name) in block.interfaces.iter().enumerate() {
        let iface = state.resolve_interface(&format!("interfaces[{i}]"), name)?.name.clone();
        if !interfaces.contains(&iface) {
            interfaces.push(iface);
        }
    }
    if state.aliases.iter().any(|a| parse_alias_name(&a.name).is_some_and(|(id, _, _)| id == block.id)) {
        return Err(FieldError::new("geo_block_id", format!("{} exists already", block.id)));
    }
    let mut operations = Vec::new();
    let mut lists: Vec<(String, bool)> = Vec::new();
    let mut warnings = Vec::new();
    for (i, networks) in block.countries.iter().enumerate() {
        if networks.v4.is_empty() && networks.v6.is_empty() {
            return Err(FieldError::new(
                format!("countries[{i}]"),
                format!("the country database holds no networks for {}", networks.country),
            ));
        }
        for v6 in [false, true] {
            let entries = entries_of(networks, v6, &block.data_date, block.expires_at, now);
            if entries.is_empty() {
                warnings.push(format!(
                    "the country database holds no IPv{} networks for {}",
                    if v6 { 6 } else { 4 },
                    networks.country
                ));
                continue;
            }
            let name = geo_alias_name(&block.id, networks.country, v6);
            operations.push(Operation::CreateAlias {
                after: Alias {
                    name: name.clone(),
                    kind: AliasKind::Network,
                    description: format!(
                        "{GEO_RULE_DESCR} {}: {} IPv{}, {DATA_DATE}{}",
                        block.id,
                        networks.country,
                        if v6 { 6 } else { 4 },
                        block.data_date
                    ),
                    entries: Vec::new(),
                    managed: Some(MANAGED_GEO.into()),
                },
            });
            operations.push(Operation::PutAliasEntries { alias: name.clone(), before: Vec::new(), after: entries });
            lists.push((name, v6));
        }
    }
    let description = format!("{GEO_RULE_DESCR} {}: {}", block.id, block.description);
    for iface in &interfaces {
        let mut position = crate::plan::leading_managed_rules(state, iface);
        for direction in block.direction.directions() {
            for (alias, v6) in &lists {
                let rule = geo_rule(iface, *direction, alias, *v6, &description, now);
                operations.push(Operation::CreateRule { position, after: rule });
                position += 1;
            }
        }
    }
    let (v4, v6): (usize, usize) = block.countries.iter().fold((0, 0), |(a, b), c| (a + c.v4.len(), b + c.v6.len()));
    let codes: Vec<String> = block.countries.iter().map(|c| c.country.to_string()).collect();
    warnings.push(format!(
        "blocks {v4} IPv4 and {v6} IPv6 prefixes of {} (country data of {}), {} on {}",
        codes.join(", "),
        block.data_date,
        match block.direction {
            GeoDirection::In => "inbound",
            GeoDirection::Out => "outbound",
            GeoDirection::Both => "both ways",
        },
        interfaces.join(", ")
    ));
    Ok(ChangePlan {
        summary: format!(
            "geo block {} of {} on {} {}",
            block.id,
            codes.join(", "),
            interfaces.join(", "),
            block.expires_at.map_or("permanently".to_string(), |t| format!("until {}", t.to_rfc3339()))
        ),
        operations,
        warnings,
        facts: ChangeFacts {
            host_bits: covered_host_bits(&block.countries),
            widens_exposure: false,
            lifetime_seconds: block.expires_at.map(|t| (t - now).num_seconds()),
            permanent: block.expires_at.is_none(),
            interfaces,
        },
    })
}

/// The plan that deletes geo block `id`: its rules, then its lists with their entries.
pub(crate) fn plan_delete(state: &RuleSet, id: &GeoBlockId) -> FieldResult<ChangePlan> {
    let operations = delete_operations(state, id);
    if operations.is_empty() {
        return Err(FieldError::new("geo_block_id", format!("there is no geo block {id} (see list_geo_blocks)")));
    }
    let interfaces: BTreeSet<String> = operations
        .iter()
        .filter_map(|op| match op {
            Operation::DeleteRule { before } => Some(before.interface.clone()),
            _ => None,
        })
        .collect();
    Ok(ChangePlan {
        summary: format!("delete geo block {id}"),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts {
            widens_exposure: true,
            permanent: true,
            interfaces: interfaces.into_iter().collect(),
            ..ChangeFacts::default()
        },
    })
}

fn delete_operations(state: &RuleSet, id: &GeoBlockId) -> Vec<Operation> {
    let lists: Vec<&Alias> =
        state.aliases.iter().filter(|a| parse_alias_name(&a.name).is_some_and(|(of, _, _)| &of == id)).collect();
    let mut operations: Vec<Operation> = state
        .rules
        .iter()
        .filter(|r| lists.iter().any(|a| r.references_alias(&a.name)))
        .map(|r| Operation::DeleteRule { before: r.clone() })
        .collect();
    operations.extend(lists.into_iter().map(|a| Operation::DeleteAlias { before: a.clone() }));
    operations
}

/// The new country data for one live geo block.
#[derive(Debug, Clone)]
pub struct GeoRefresh {
    pub id: GeoBlockId,
    pub countries: Vec<CountryNetworks>,
    pub data_date: String,
}

/// The plan that brings live geo blocks to new country data: per list, the prefixes that left are removed and
/// the new ones put, with the block's expiry; lists a country gained or lost in a family are not made or
/// dropped (the block is deleted and created again for that). `None` when nothing differs.
pub(crate) fn plan_refresh(state: &RuleSet, refreshes: &[GeoRefresh], now: Timestamp) -> FieldResult<ChangePlan> {
    let mut operations = Vec::new();
    let mut changed = 0usize;
    for refresh in refreshes {
        for networks in &refresh.countries {
            for v6 in [false, true] {
                let name = geo_alias_name(&refresh.id, networks.country, v6);
                let Some(alias) = state.alias(&name) else { continue };
                let expires_at = alias.entries.iter().find_map(|e| e.expires_at);
                let wanted = entries_of(networks, v6, &refresh.data_date, expires_at, now);
                let held = alias.entries_by_value();
                let wanted_values: BTreeSet<&str> = wanted.iter().map(|e| e.value.as_str()).collect();
                let gone: Vec<AliasEntry> =
                    alias.entries.iter().filter(|e| !wanted_values.contains(e.value.as_str())).cloned().collect();
                let new: Vec<AliasEntry> = wanted
                    .into_iter()
                    .filter(|e| held.get(e.value.as_str()).is_none_or(|h| h.detail != e.detail))
                    .collect();
                changed += gone.len() + new.len();
                if !gone.is_empty() {
                    operations.push(Operation::RemoveAliasEntries { alias: name.clone(), before: gone });
                }
                if !new.is_empty() {
                    let replaced = alias.entries_among(&new.iter().map(|e| e.value.clone()).collect::<Vec<_>>());
                    operations.push(Operation::PutAliasEntries { alias: name, before: replaced, after: new });
                }
            }
        }
    }
    if operations.is_empty() {
        return Err(FieldError::new("geoip", "the live geo blocks already hold this country data"));
    }
    let ids: Vec<String> = refreshes.iter().map(|r| r.id.to_string()).collect();
    Ok(ChangePlan {
        summary: format!("refresh geo blocks {} with new country data ({changed} prefixes change)", ids.join(", ")),
        operations,
        warnings: Vec::new(),
        facts: ChangeFacts { permanent: true, ..ChangeFacts::default() },
    })
}

/// The deletes of geo blocks whose every entry has expired at `now` (or that hold none): the reconciler's part
/// of a geo block's expiry, after the evaluator has already stopped enforcing it.
pub fn expired_geo_blocks(state: &RuleSet, now: Timestamp) -> Vec<Operation> {
    geo_blocks(state, now)
        .into_iter()
        .filter(|b| b.lists.iter().all(|l| l.live_prefixes == 0))
        .flat_map(|b| delete_operations(state, &b.geo_block_id))
        .collect()
}

/// One list of a geo block as listed.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GeoListView {
    pub alias: String,
    pub country: CountryCode,
    pub family: String,
    pub prefixes: usize,
    /// Prefixes not yet expired.
    pub live_prefixes: usize,
}

/// A geo block as `list_geo_blocks` shows it, read back from the lists and rules the firewall holds.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GeoBlockView {
    pub geo_block_id: GeoBlockId,
    pub countries: Vec<CountryCode>,
    pub interfaces: Vec<String>,
    pub direction: GeoDirection,
    pub description: String,
    /// IPv4 and IPv6 prefix counts per country.
    pub prefixes: BTreeMap<String, PrefixCounts>,
    /// The country database's build date the entries were made from.
    pub data_date: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// The block rules that enforce it.
    pub rule_ids: Vec<String>,
    #[serde(skip)]
    pub lists: Vec<GeoListView>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PrefixCounts {
    pub ipv4: usize,
    pub ipv6: usize,
}

/// The geo blocks `state` holds, by id.
pub fn geo_blocks(state: &RuleSet, now: Timestamp) -> Vec<GeoBlockView> {
    let mut blocks: BTreeMap<GeoBlockId, GeoBlockView> = BTreeMap::new();
    for alias in &state.aliases {
        let Some((id, country, v6)) = parse_alias_name(&alias.name) else { continue };
        let view = blocks.entry(id.clone()).or_insert_with(|| GeoBlockView {
            geo_block_id: id,
            countries: Vec::new(),
            interfaces: Vec::new(),
            direction: GeoDirection::In,
            description: String::new(),
            prefixes: BTreeMap::new(),
            data_date: None,
            expires_at: None,
            rule_ids: Vec::new(),
            lists: Vec::new(),
        });
        if !view.countries.contains(&country) {
            view.countries.push(country);
        }
        let counts = view.prefixes.entry(country.to_string()).or_default();
        if v6 {
            counts.ipv6 = alias.entries.len();
        } else {
            counts.ipv4 = alias.entries.len();
        }
        // Entry details say the date where the backend keeps them (a refresh renews them); else the description.
        let described = alias.description.rsplit_once(DATA_DATE).map(|(_, date)| date.trim().to_string());
        let detailed = alias.entries.first().and_then(|e| e.detail.split_whitespace().nth(1).map(str::to_string));
        if let Some(date) = detailed.or(described) {
            view.data_date = Some(date);
        }
        if let Some(first) = alias.entries.first() {
            view.expires_at = first.expires_at;
        }
        view.lists.push(GeoListView {
            alias: alias.name.clone(),
            country,
            family: if v6 { "ipv6" } else { "ipv4" }.into(),
            prefixes: alias.entries.len(),
            live_prefixes: alias.entries.iter().filter(|e| e.is_live(now)).count(),
        });
    }
    for view in blocks.values_mut() {
        let (mut inbound, mut outbound) = (false, false);
        for rule in state.rules.iter().filter(|r| view.lists.iter().any(|l| r.references_alias(&l.alias))) {
            if !view.interfaces.contains(&rule.interface) {
                view.interfaces.push(rule.interface.clone());
            }
            if !view.rule_ids.contains(&rule.rule_id.to_string()) {
                view.rule_ids.push(rule.rule_id.to_string());
            }
            match rule.direction {
                Direction::Out => outbound = true,
                _ => inbound = true,
            }
            let head = format!("{GEO_RULE_DESCR} {}: ", view.geo_block_id);
            if let Some(text) = rule.description.strip_prefix(&head) {
                view.description = text.to_string();
            }
        }
        view.direction = match (inbound, outbound) {
            (true, true) => GeoDirection::Both,
            (false, true) => GeoDirection::Out,
            _ => GeoDirection::In,
        };
    }
    blocks.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Applied;
    use crate::model::{Interface, Packet};
    use crate::plan::{Entries, Ids, Intent, carry_out, invert, plan, verify};

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").map(|t| t.to_utc()).unwrap_or_default()
    }

    fn state() -> RuleSet {
        let wan = Interface::up("wan", "eth0", "198.51.100.2/24".parse().ok());
        let lan = Interface::up("lan", "eth1", "10.0.0.1/24".parse().ok());
        let pass = Rule { description: "allow all in".into(), ..Rule::new("wan", Action::Pass).with_id("1") };
        RuleSet { interfaces: vec![wan, lan], rules: vec![pass], aliases: Vec::new(), ..RuleSet::default() }
    }

    fn code(c: &str) -> CountryCode {
        CountryCode::parse("c", c).expect("code")
    }

    fn cn() -> CountryNetworks {
        CountryNetworks {
            country: code("CN"),
            v4: vec!["203.0.113.0/25".parse().expect("net")],
            v6: vec!["2001:db8:c0::/48".parse().expect("net")],
        }
    }

    fn block(expires_at: Option<Timestamp>) -> GeoBlock {
        GeoBlock {
            id: GeoBlockId::from_seed(0x3f9a1c),
            countries: vec![
                cn(),
                CountryNetworks { country: code("RU"), v4: vec!["192.0.2.0/24".parse().expect("n")], v6: vec![] },
            ],
            interfaces: vec!["WAN".into()],
            direction: GeoDirection::In,
            expires_at,
            description: "high-risk countries".into(),
            data_date: "2026-06-01".into(),
        }
    }

    fn apply(state: &RuleSet, p: &ChangePlan, seed: i64) -> (RuleSet, Applied) {
        let at = chrono::DateTime::from_timestamp(seed, 0).expect("time");
        let carried = carry_out(state, p, Ids::Tracker(at), Entries::Apply).expect("the plan fits");
        (carried.state, carried.applied)
    }

    fn verdict(state: &RuleSet, source: &str, at: Timestamp) -> Action {
        let source: std::net::IpAddr = source.parse().expect("ip");
        let destination = if source.is_ipv4() { "198.51.100.2" } else { "2001:db8:ffff::2" };
        let packet = Packet {
            interface: "wan".into(),
            direction: Direction::In,
            protocol: crate::model::PROTO_TCP,
            source,
            destination: destination.parse().expect("ip"),
            source_port: Some(40000),
            destination_port: Some(443),
        };
        crate::eval::CompiledRuleSet::compile(state, at).evaluate(&packet).expect("verdict").action
    }

    #[test]
    fn ids_and_alias_names_round_trip() {
        let id = GeoBlockId::parse("geo_block_id", "GEO-3F9A1C").expect("id");
        assert_eq!(id.to_string(), "geo-3f9a1c");
        assert_eq!(geo_alias_name(&id, code("CN"), true), "PORTCULLIS_GEO_3F9A1C_CN_V6");
        assert!(geo_alias_name(&id, code("CN"), true).len() <= 31, "pfSense alias names are at most 31 long");
        assert_eq!(parse_alias_name("PORTCULLIS_GEO_3F9A1C_CN_V6"), Some((id, code("CN"), true)));
        assert_eq!(parse_alias_name("PORTCULLIS_GEO_3F9A1C_CN_V6_X"), None);
        assert_eq!(GeoBlockId::parse("geo_block_id", "geo-xyz").expect_err("bad").field, "geo_block_id");
    }

    #[test]
    fn a_geo_block_drops_the_countries_networks_and_nothing_else_until_it_expires() {
        let s = state();
        let until = now() + chrono::TimeDelta::hours(2);
        let p = plan(&s, &Intent::CreateGeoBlock(Box::new(block(Some(until)))), now()).expect("plan");
        assert_eq!(p.operations.iter().filter(|o| matches!(o, Operation::CreateAlias { .. })).count(), 3);
        assert_eq!(p.operations.iter().filter(|o| matches!(o, Operation::CreateRule { .. })).count(), 3);
        assert!(p.facts.host_bits >= 64, "an IPv6 /48 is a wide block: {}", p.facts.host_bits);
        let (after, applied) = apply(&s, &p, 1_800_000_000);
        assert!(verify(&p, &applied, &after).is_ok());
        assert_eq!(verdict(&after, "203.0.113.7", now()), Action::Block);
        assert_eq!(verdict(&after, "2001:db8:c0::9", now()), Action::Block);
        assert_eq!(verdict(&after, "192.0.2.200", now()), Action::Block);
        assert_eq!(verdict(&after, "203.0.113.200", now()), Action::Pass, "another country's half of the /24");
        assert_eq!(verdict(&after, "203.0.113.7", until), Action::Pass, "expired entries no longer decide");

        let listed = geo_blocks(&after, now());
        assert_eq!(listed.len(), 1);
        let view = &listed[0];
        assert_eq!(view.geo_block_id.to_string(), "geo-3f9a1c");
        assert_eq!(view.countries, [code("CN"), code("RU")]);
        assert_eq!((view.interfaces.as_slice(), view.direction), (&["wan".to_string()][..], GeoDirection::In));
        assert_eq!(view.prefixes["CN"], PrefixCounts { ipv4: 1, ipv6: 1 });
        assert_eq!(view.prefixes["RU"], PrefixCounts { ipv4: 1, ipv6: 0 });
        assert_eq!((view.data_date.as_deref(), view.expires_at), (Some("2026-06-01"), Some(until)));
        assert_eq!(view.description, "high-risk countries");
        assert!(expired_geo_blocks(&after, now()).is_empty());
        assert_eq!(expired_geo_blocks(&after, until).len(), 6, "three rules and three lists go when it expires");
    }

    #[test]
    fn deleting_restores_the_exact_previous_state_and_undoing_either_way_round_trips() {
        let s = state();
        let create = plan(&s, &Intent::CreateGeoBlock(Box::new(block(None))), now()).expect("plan");
        let (with, applied) = apply(&s, &create, 1_800_000_000);
        let id = GeoBlockId::from_seed(0x3f9a1c);
        let delete = plan(&with, &Intent::DeleteGeoBlock { id: id.clone() }, now()).expect("plan");
        let (without, deleted) = apply(&with, &delete, 1_800_000_100);
        assert!(verify(&delete, &deleted, &without).is_ok());
        assert_eq!(without, s, "rules and aliases exactly as before");
        let undo_create = invert(&create, &applied, &s, &with);
        assert_eq!(apply(&with, &undo_create, 1_800_000_200).0, s, "rolling the creation back deletes the lists too");
        let undo_delete = invert(&delete, &deleted, &with, &without);
        let (back, _) = apply(&without, &undo_delete, 1_800_000_300);
        let shown = |s: &RuleSet| {
            geo_blocks(s, now()).into_iter().map(|b| GeoBlockView { rule_ids: Vec::new(), ..b }).collect::<Vec<_>>()
        };
        assert_eq!(shown(&back), shown(&with), "rolling the deletion back restores it whole");
        assert_eq!(back.aliases, with.aliases);
        let e = plan(&without, &Intent::DeleteGeoBlock { id }, now()).expect_err("gone");
        assert_eq!(e.field, "geo_block_id");
    }

    #[test]
    fn bad_interfaces_and_empty_countries_name_the_field() {
        let s = state();
        let mut b = block(None);
        b.interfaces = vec!["wan".into(), "dmz".into()];
        assert_eq!(plan(&s, &Intent::CreateGeoBlock(Box::new(b)), now()).expect_err("dmz").field, "interfaces[1]");
        let mut b = block(None);
        b.interfaces.clear();
        assert_eq!(plan(&s, &Intent::CreateGeoBlock(Box::new(b)), now()).expect_err("none").field, "interfaces");
        let mut b = block(None);
        b.countries[1].v4.clear();
        assert_eq!(plan(&s, &Intent::CreateGeoBlock(Box::new(b)), now()).expect_err("empty").field, "countries[1]");
    }

    #[test]
    fn outbound_blocks_match_the_destination_and_both_makes_two_rules_per_list() {
        let mut b = block(None);
        b.direction = GeoDirection::Both;
        b.countries.truncate(1);
        let p = plan(&state(), &Intent::CreateGeoBlock(Box::new(b)), now()).expect("plan");
        let rules: Vec<&Rule> = p
            .operations
            .iter()
            .filter_map(|o| match o {
                Operation::CreateRule { after, .. } => Some(after),
                _ => None,
            })
            .collect();
        assert_eq!(rules.len(), 4);
        let out = rules.iter().find(|r| r.direction == Direction::Out).expect("outbound rule");
        assert!(out.source.is_any() && matches!(out.destination.target, AddressTarget::Alias(_)));
    }

    #[test]
    fn a_refresh_swaps_only_the_prefixes_that_changed() {
        let s = state();
        let create = plan(&s, &Intent::CreateGeoBlock(Box::new(block(None))), now()).expect("plan");
        let (with, _) = apply(&s, &create, 1_800_000_000);
        let mut moved = cn();
        moved.v4 = vec!["203.0.113.0/26".parse().expect("net"), "198.18.0.0/15".parse().expect("net")];
        let refresh =
            GeoRefresh { id: GeoBlockId::from_seed(0x3f9a1c), countries: vec![moved], data_date: "2026-07-01".into() };
        let p = plan(&with, &Intent::RefreshGeoBlocks(vec![refresh.clone()]), now()).expect("plan");
        let (after, _) = apply(&with, &p, 1_800_000_100);
        assert_eq!(verdict(&after, "203.0.113.100", now()), Action::Pass, "left the country");
        assert_eq!(verdict(&after, "198.19.0.1", now()), Action::Block, "joined it");
        assert_eq!(verdict(&after, "192.0.2.1", now()), Action::Block, "RU untouched");
        assert!(plan(&after, &Intent::RefreshGeoBlocks(vec![refresh]), now()).is_err(), "nothing left to change");
    }
}
