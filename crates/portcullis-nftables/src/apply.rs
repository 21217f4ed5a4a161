//! A plan as ONE nft batch. The plan is first carried out on the model read from the kernel (each `before`
//! checked, a difference is a `conflict`); then the batch rebuilds the chains whose rules changed (counters carried
//! over), adds the sets of new aliases, and adds and deletes set elements. `nft -f` hands the batch to the kernel
//! as one transaction: all of it takes effect, or none.
//!
//! Into a table that exists, the sets of new aliases are taken out of the batch and made and filled over netlink
//! just before it ([`Batch::take_new_sets`]): a set no rule uses yet changes no verdict, so traffic still sees the
//! change whole, and a geo list's tens of thousands of networks skip nft's per-element parse and evaluation.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ipnet::IpNet;
use nftables::expr::{Expression as E, Meta, MetaKey, NamedExpression as NE, SetItem, Verdict};
use nftables::schema::{Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Rule as NftRule, Table};
use nftables::stmt::{JumpTarget, Operator, Statement as S, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfHook};
use portcullis_core::firewall::{BackendError, ErrorCode};
use portcullis_core::geo::is_geo_list;
use portcullis_core::model::{AliasEntry, Direction, Rule, RuleSet, Timestamp};
use portcullis_core::plan::{Carried, ChangePlan, Entries, Ids, carry_out};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::comment::{EntryMeta, RuleMeta, SYSTEM_MARK, SetMeta, TextStore};
use crate::mirror::{Devices, MirrorTable, TunnelChanges};
use crate::netlink::{BatchStep, ElementChange, NewElement, NewSet, address_key, network_elements};
use crate::read::HitMap;
use crate::translate::{
    ALIASES_CHAIN, FAMILY, GENERATION_SET, Hits, SetPart, matches, rule_chain, rule_statements, set_def, set_name,
};

/// Carries the plan out on the model read from the kernel, checking every `before` against it
/// (`portcullis_core::plan::carry_out`). Entries are only recorded, by reference into the plan: a bulk block
/// carries 100,000 of them, and the batch needs the aliases' names, kinds and descriptions, not their lists.
pub fn simulate<'p>(current: &RuleSet, plan: &'p ChangePlan, now: Timestamp) -> Result<Carried<'p>, BackendError> {
    Ok(carry_out(current, plan, Ids::Tracker(now), Entries::Record)?)
}

/// Names and settings the batch is built with.
pub struct Layout<'a> {
    pub table: &'a str,
    /// (logical name, kernel device) of every interface Portcullis manages.
    pub interfaces: &'a [(String, String)],
}

/// Builds the batch for `outcome` against the kernel's current table.
pub struct BatchBuilder<'a> {
    layout: &'a Layout<'a>,
    texts: &'a TextStore,
    commands: Vec<Command>,
    tunnels: TunnelChanges,
}

/// One `nft -j -f -` batch, serialised as nft's JSON input (`{"nftables": [...]}`).
pub struct Batch {
    commands: Vec<Command>,
    /// The mirrors' VXLAN tunnel devices the batch needs made first and leaves unused (`crate::mirror`): devices
    /// are not nftables objects, so they are made before the batch and deleted after it.
    pub tunnels: TunnelChanges,
}

enum Command {
    Object(NfObject<'static>),
    /// Set elements are written straight to JSON: as the crate's expression trees, each of a block list's 100,000
    /// elements cost several allocations (boxed value, owned strings, its own comment).
    Elements(ElementCommand),
    /// A command written as nft JSON directly (DDoS protections, `crate::protect`; mirrors, `crate::mirror`).
    Raw(serde_json::Value),
}

struct ElementCommand {
    delete: bool,
    table: String,
    set: String,
    elements: Vec<SetElement>,
}

/// One element as nft reads it: `"192.0.2.7"`, `{"prefix": …}`, or either inside `{"elem": {"val": …, "timeout":
/// …, "comment": …}}`.
#[derive(Debug, Clone)]
struct SetElement {
    net: IpNet,
    timeout: Option<u32>,
    /// Shared: the entries of one bulk change mostly carry the same comment.
    comment: Option<Arc<str>>,
}

/// The comment of a set made over netlink ahead of the batch that uses it ([`Batch::take_new_sets`]). Such a set
/// whose alias no rule describes is what an apply interrupted between the two transactions left: no rule refers
/// to it, reads leave it out, and the next change deletes it.
pub const STAGED_SET_COMMENT: &str = "pc-staged";

impl Batch {
    /// Takes the alias sets the batch makes (those not in `existing`) out of it, with the elements it adds to
    /// them, as netlink steps that make and fill them, after deleting `leftovers` (sets an interrupted apply
    /// staged). nft parses and evaluates every element it is given, the kernel takes them as they are: 37,383 geo
    /// networks cost nft 360 ms and the kernel 111 ms. The steps are committed first, as a transaction of their
    /// own, and no rule refers to the sets until the rest of the batch commits: traffic sees the whole change at
    /// once or nothing of it.
    pub fn take_new_sets(
        &mut self,
        existing: &BTreeMap<String, crate::read::ListedSet>,
        leftovers: &[String],
    ) -> Vec<BatchStep> {
        let mut steps: Vec<BatchStep> = leftovers.iter().cloned().map(BatchStep::DeleteSet).collect();
        let mut staged = HashSet::new();
        let mut rest = Vec::with_capacity(self.commands.len());
        for command in std::mem::take(&mut self.commands) {
            match command {
                Command::Object(NfObject::CmdObject(NfCmd::Add(NfListObject::Set(set))))
                    if SetPart::split(&set.name).is_some() && !existing.contains_key(set.name.as_ref()) =>
                {
                    let Some((_, part)) = SetPart::split(&set.name) else { continue };
                    staged.insert(set.name.to_string());
                    steps.push(BatchStep::MakeSet(NewSet {
                        name: set.name.to_string(),
                        ipv6: part.is_v6(),
                        interval: part.is_interval(),
                        timeout: true,
                        comment: Some(STAGED_SET_COMMENT.into()),
                    }));
                }
                Command::Elements(c) if !c.delete && staged.contains(&c.set) => {
                    let elements = c.elements.into_iter().flat_map(netlink_elements).collect();
                    steps.push(BatchStep::Elements(ElementChange { set: c.set, delete: false, elements }));
                }
                other => rest.push(other),
            }
        }
        self.commands = rest;
        steps
    }

    /// The batch as netlink element changes, when it holds nothing but additions and deletions of single
    /// addresses (the commands [`BatchBuilder::elements`] makes for hash sets); `None` otherwise.
    pub fn host_element_changes(self) -> Option<Vec<ElementChange>> {
        self.commands
            .into_iter()
            .map(|command| match command {
                Command::Object(_) | Command::Raw(_) => None,
                Command::Elements(c) => {
                    let mut elements = Vec::with_capacity(c.elements.len());
                    for e in c.elements {
                        if SetPart::of(&e.net).is_interval() {
                            return None;
                        }
                        elements.extend(netlink_elements(e));
                    }
                    Some(ElementChange { set: c.set, delete: c.delete, elements })
                }
            })
            .collect()
    }

    pub fn to_json(&self) -> Result<Vec<u8>, BackendError> {
        serde_json::to_vec(self)
            .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("cannot encode the nft batch: {e}")))
    }
}

impl Serialize for Batch {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("nftables", &self.commands)?;
        map.end()
    }
}

impl Serialize for Command {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        match self {
            Command::Object(object) => object.serialize(serializer),
            Command::Raw(value) => value.serialize(serializer),
            Command::Elements(command) => {
                let verb = if command.delete { "delete" } else { "add" };
                let mut outer = serializer.serialize_map(Some(1))?;
                outer.serialize_entry(verb, &ElementObject(command))?;
                outer.end()
            }
        }
    }
}

struct ElementObject<'c>(&'c ElementCommand);

impl Serialize for ElementObject<'_> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        struct Body<'c>(&'c ElementCommand);
        impl Serialize for Body<'_> {
            fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("family", &FAMILY)?;
                map.serialize_entry("table", &self.0.table)?;
                map.serialize_entry("name", &self.0.set)?;
                map.serialize_entry("elem", &self.0.elements)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("element", &Body(self.0))?;
        map.end()
    }
}

impl Serialize for SetElement {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        if self.timeout.is_none() && self.comment.is_none() {
            return NetValue(&self.net).serialize(serializer);
        }
        struct Fields<'e>(&'e SetElement);
        impl Serialize for Fields<'_> {
            fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("val", &NetValue(&self.0.net))?;
                if let Some(timeout) = self.0.timeout {
                    map.serialize_entry("timeout", &timeout)?;
                }
                if let Some(comment) = &self.0.comment {
                    map.serialize_entry("comment", comment.as_ref())?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("elem", &Fields(self))?;
        map.end()
    }
}

/// An element as netlink writes it: a key for a single address, a start and an end for a network.
fn netlink_elements(e: SetElement) -> Vec<NewElement> {
    let timeout_ms = e.timeout.map(|s| u64::from(s) * 1000);
    let comment = e.comment.map(|c| c.to_string());
    if SetPart::of(&e.net).is_interval() {
        network_elements(e.net, timeout_ms, comment)
    } else {
        vec![NewElement::key(address_key(e.net.addr()), timeout_ms, comment)]
    }
}

/// An address or network in nft's JSON, as [`crate::translate::net_expr`] writes it.
struct NetValue<'n>(&'n IpNet);

impl Serialize for NetValue<'_> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let net = self.0;
        if net.prefix_len() == net.max_prefix_len() {
            return serializer.collect_str(&net.addr());
        }
        struct Prefix<'n>(&'n IpNet);
        impl Serialize for Prefix<'_> {
            fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("addr", &DisplayStr(self.0.network()))?;
                map.serialize_entry("len", &self.0.prefix_len())?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("prefix", &Prefix(net))?;
        map.end()
    }
}

struct DisplayStr<T>(T);

impl<T: std::fmt::Display> Serialize for DisplayStr<T> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serializer.collect_str(&self.0)
    }
}

fn add(object: NfListObject<'static>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(object))
}

impl<'a> BatchBuilder<'a> {
    pub fn new(layout: &'a Layout<'a>, texts: &'a TextStore) -> Self {
        Self { layout, texts, commands: Vec::new(), tunnels: TunnelChanges::default() }
    }

    fn push(&mut self, object: NfObject<'static>) {
        self.commands.push(Command::Object(object));
    }

    fn push_elements(&mut self, delete: bool, set: &str, elements: Vec<SetElement>) {
        let table = self.layout.table.to_string();
        self.commands.push(Command::Elements(ElementCommand { delete, table, set: set.to_string(), elements }));
    }

    fn table(&self) -> Cow<'static, str> {
        Cow::Owned(self.layout.table.to_string())
    }

    fn chain(&self, name: &str) -> Chain<'static> {
        Chain { family: FAMILY, table: self.table(), name: Cow::Owned(name.to_string()), ..Chain::default() }
    }

    fn rule(&self, chain: &str, statements: Vec<S<'static>>, comment: String) -> NfObject<'static> {
        add(NfListObject::Rule(NftRule {
            family: FAMILY,
            table: self.table(),
            chain: Cow::Owned(chain.to_string()),
            expr: Cow::Owned(statements),
            comment: Some(Cow::Owned(comment)),
            ..NftRule::default()
        }))
    }

    /// The table, its base chains (state tracking and the dispatch of each device to its interface's chain),
    /// rebuilt in every batch so that the interface mapping always follows the configuration.
    /// `exists` says whether the table was there when it was read: if not, it is created with `create` (which
    /// fails if another process created it meanwhile) rather than `add`.
    pub fn skeleton(&mut self, exists: bool) {
        let table = NfListObject::Table(Table { family: FAMILY, name: self.table(), handle: None });
        self.push(if exists { add(table) } else { NfObject::CmdObject(NfCmd::Create(table)) });
        self.push(add(NfListObject::Chain(self.chain(ALIASES_CHAIN))));
        for (name, _) in self.layout.interfaces {
            for direction in [Direction::In, Direction::Out] {
                self.push(add(NfListObject::Chain(self.chain(&rule_chain(name, direction)))));
            }
        }
        let base = [
            ("input", NfHook::Input, 0, Direction::In),
            ("forward", NfHook::Forward, 0, Direction::In),
            ("forward_out", NfHook::Forward, 10, Direction::Out),
            ("output", NfHook::Output, 0, Direction::Out),
        ];
        for (name, hook, prio, direction) in base {
            let chain = Chain {
                _type: Some(NfChainType::Filter),
                hook: Some(hook),
                prio: Some(prio),
                policy: Some(NfChainPolicy::Accept),
                ..self.chain(name)
            };
            self.push(add(NfListObject::Chain(chain.clone())));
            self.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(chain))));
            let established = matches(
                E::Named(NE::CT(nftables::expr::CT { key: "state".into(), family: None, dir: None })),
                Operator::IN,
                E::List(vec![E::String("established".into()), E::String("related".into())]),
            );
            self.push(self.rule(name, vec![established, S::Accept(None)], format!("{SYSTEM_MARK} state")));
            if name == "input" {
                // IPv6 neighbour discovery must reach the host whatever the rules say, as on pfSense.
                let nd = matches(
                    E::Named(NE::Payload(nftables::expr::Payload::PayloadField(nftables::expr::PayloadField {
                        protocol: "icmpv6".into(),
                        field: "type".into(),
                    }))),
                    Operator::EQ,
                    E::Named(NE::Set(
                        ["nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-solicit", "nd-router-advert"]
                            .into_iter()
                            .map(|t| SetItem::Element(E::String(t.into())))
                            .collect(),
                    )),
                );
                self.push(self.rule(name, vec![nd, S::Accept(None)], format!("{SYSTEM_MARK} nd")));
            }
            if self.layout.interfaces.is_empty() {
                continue;
            }
            let key = if direction == Direction::In { MetaKey::Iifname } else { MetaKey::Oifname };
            let pairs = self
                .layout
                .interfaces
                .iter()
                .map(|(logical, device)| {
                    SetItem::Mapping(
                        E::String(Cow::Owned(device.clone())),
                        E::Verdict(Verdict::Jump(JumpTarget { target: Cow::Owned(rule_chain(logical, direction)) })),
                    )
                })
                .collect();
            let dispatch =
                S::VerdictMap(VerdictMap { key: E::Named(NE::Meta(Meta { key })), data: E::Named(NE::Set(pairs)) });
            self.push(self.rule(name, vec![dispatch], format!("{SYSTEM_MARK} dispatch")));
        }
    }

    /// Swaps the table's generation number: first in the batch, so a stale batch fails before anything else.
    pub fn generation(&mut self, read: Option<u32>, next: u32) {
        let set = nftables::schema::Set {
            family: FAMILY,
            table: self.table(),
            name: Cow::Borrowed(GENERATION_SET),
            set_type: nftables::schema::SetTypeValue::Single(nftables::schema::SetType::Mark),
            ..nftables::schema::Set::default()
        };
        self.push(add(NfListObject::Set(Box::new(set))));
        let table = self.table();
        let element = |n: u32| Element {
            family: FAMILY,
            table: table.clone(),
            name: Cow::Borrowed(GENERATION_SET),
            elem: Cow::Owned(vec![E::Number(n)]),
        };
        if let Some(old) = read {
            self.push(NfObject::CmdObject(NfCmd::Delete(NfListObject::Element(element(old)))));
        }
        self.push(add(NfListObject::Element(element(next))));
    }

    /// Empties an interface's chains and writes its rules again in order, each with its counter carried over.
    pub fn rebuild_interface(&mut self, next: &RuleSet, interface: &str, hits: &HitMap) -> Result<(), BackendError> {
        for direction in [Direction::In, Direction::Out] {
            let chain = rule_chain(interface, direction);
            self.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(self.chain(&chain)))));
            let rules = next.rules_on(interface).filter(|r| r.direction == direction || r.direction == Direction::Any);
            for rule in rules {
                let comment = self.texts.compose(&rule_meta(rule).head(), &rule.description)?;
                // A rule for both directions keeps its (summed) count in its inbound chain only.
                let counted = match (rule.direction, direction) {
                    (Direction::Any, Direction::Out) => Hits::default(),
                    _ => hits.get(&rule.rule_id).copied().unwrap_or_default(),
                };
                for statements in rule_statements(next, rule, direction == Direction::In, counted)? {
                    self.push(self.rule(&chain, statements, comment.clone()));
                }
            }
            if direction == Direction::In {
                let counter = S::Counter(nftables::stmt::Counter::Anonymous(None));
                self.push(self.rule(&chain, vec![counter, S::Drop(None)], format!("{SYSTEM_MARK} default deny")));
            }
        }
        Ok(())
    }

    pub fn create_alias_sets(&mut self, next: &RuleSet, alias: &str) -> Result<(), BackendError> {
        let Some(a) = next.alias(alias) else { return Ok(()) };
        for part in SetPart::ALL {
            let set = set_def(self.layout.table, alias, part);
            self.push(add(NfListObject::Set(Box::new(set))));
        }
        self.describe_alias(a)
    }

    /// The alias' entry in the aliases chain: a rule whose comment holds its name, kind, tag and description.
    fn describe_alias(&mut self, a: &portcullis_core::model::Alias) -> Result<(), BackendError> {
        let meta = SetMeta { name: a.name.clone(), kind: a.kind, managed: a.managed.clone() };
        let comment = self.texts.compose(&meta.head(), &a.description)?;
        let counter = S::Counter(nftables::stmt::Counter::Anonymous(None));
        self.push(self.rule(ALIASES_CHAIN, vec![counter], comment));
        Ok(())
    }

    /// Deletes the sets of `deleted` (elements and all, in one command each, however long the list) and writes the
    /// aliases chain again with the aliases that remain. Goes after the chains that used the sets are rebuilt:
    /// inside the one batch, a set is free to delete once no rule refers to it.
    pub fn delete_alias_sets(&mut self, next: &RuleSet, deleted: &[String]) -> Result<(), BackendError> {
        if deleted.is_empty() {
            return Ok(());
        }
        self.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(self.chain(ALIASES_CHAIN)))));
        for alias in &next.aliases {
            self.describe_alias(alias)?;
        }
        for alias in deleted {
            for part in SetPart::ALL {
                let set = set_def(self.layout.table, alias, part);
                self.push(NfObject::CmdObject(NfCmd::Delete(NfListObject::Set(Box::new(set)))));
            }
        }
        Ok(())
    }

    /// Element commands, per set (a single address goes to its family's hash set, a network to its family's
    /// interval set): removals (made safe against entries the kernel already expired by adding them first), then
    /// puts (an entry being replaced is deleted first, so its timeout and comment are new).
    pub fn elements(
        &mut self,
        current: &RuleSet,
        put: &[(&str, &AliasEntry)],
        remove: &[(&str, &AliasEntry)],
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let mut by_set: BTreeMap<(&str, SetPart), ElementOps> = BTreeMap::new();
        let existing: HashSet<(&str, &str)> = current
            .aliases
            .iter()
            .flat_map(|a| a.entries.iter().map(move |e| (a.name.as_str(), e.value.as_str())))
            .collect();
        for (alias, entry) in remove {
            let net = entry_net(alias, entry)?;
            let ops = by_set.entry((alias, SetPart::of(&net))).or_default();
            ops.ensure.push(SetElement { net, timeout: Some(1), comment: None });
            ops.delete.push(SetElement { net, timeout: None, comment: None });
        }
        let mut comments: HashMap<CommentKey, Arc<str>> = HashMap::new();
        for (alias, entry) in put {
            let net = entry_net(alias, entry)?;
            let ops = by_set.entry((alias, SetPart::of(&net))).or_default();
            if existing.contains(&(*alias, entry.value.as_str())) {
                ops.ensure.push(SetElement { net, timeout: Some(1), comment: None });
                ops.delete.push(SetElement { net, timeout: None, comment: None });
            }
            // A permanent geo list's 10,000s of elements carry nothing a comment would add: the list's name says
            // the country, its description the data date; nft's JSON path costs per comment.
            if is_geo_list(alias) && entry.expires_at.is_none() {
                ops.add.push(SetElement { net, timeout: None, comment: None });
                continue;
            }
            let comment = match comments.entry((entry.expires_at, entry.created_at, entry.detail.as_str())) {
                std::collections::hash_map::Entry::Occupied(known) => known.get().clone(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let meta = EntryMeta { expires_at: entry.expires_at, created_at: entry.created_at };
                    slot.insert(Arc::from(self.texts.compose(&meta.head(), &entry.detail)?)).clone()
                }
            };
            let timeout = entry.expires_at.map(|t| {
                let ms = (t - now).num_milliseconds().max(1);
                u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX)
            });
            ops.add.push(SetElement { net, timeout, comment: Some(comment) });
        }
        for ((alias, part), ops) in by_set {
            let set = set_name(alias, part);
            if !ops.delete.is_empty() {
                self.push_elements(false, &set, ops.ensure);
                self.push_elements(true, &set, ops.delete);
            }
            if !ops.add.is_empty() {
                self.push_elements(false, &set, ops.add);
            }
        }
        Ok(())
    }

    /// The commands that take the table's protections from `before` to `after`.
    pub fn protections(
        &mut self,
        before: &[portcullis_core::protection::Protection],
        after: &[portcullis_core::protection::Protection],
    ) -> Result<(), BackendError> {
        let devices = self.layout.interfaces.iter().cloned().collect();
        let commands = crate::protect::commands(self.layout.table, &devices, before, after)?;
        self.commands.extend(commands.into_iter().map(Command::Raw));
        Ok(())
    }

    /// The commands that take the mirror tables from `before`'s mirrors to `after`'s (`existing`: the tables the
    /// kernel holds), and the tunnel devices that needs.
    pub fn mirrors(
        &mut self,
        existing: &std::collections::BTreeSet<MirrorTable>,
        before: &[portcullis_core::mirror::Mirror],
        after: &[portcullis_core::mirror::Mirror],
    ) -> Result<(), BackendError> {
        let writer = crate::mirror::Writer {
            base: self.layout.table,
            devices: Devices(self.layout.interfaces),
            texts: self.texts,
        };
        let commands = writer.commands(existing, before, after)?;
        self.commands.extend(commands.into_iter().map(Command::Raw));
        self.tunnels = TunnelChanges::between(before, after);
        Ok(())
    }

    pub fn finish(self) -> Batch {
        Batch { commands: self.commands, tunnels: self.tunnels }
    }
}

/// What an element comment says (expiry, creation, reason): the entries of one bulk change mostly say the same.
type CommentKey<'e> = (Option<Timestamp>, Option<Timestamp>, &'e str);

fn entry_net(alias: &str, entry: &AliasEntry) -> Result<IpNet, BackendError> {
    portcullis_core::address::parse_held_net("ip_address", &entry.value)
        .map_err(|e| BackendError::new(ErrorCode::ValidationError, format!("alias {alias}: {}", e.message)))
}

#[derive(Default)]
struct ElementOps {
    ensure: Vec<SetElement>,
    delete: Vec<SetElement>,
    add: Vec<SetElement>,
}

pub fn rule_meta(rule: &Rule) -> RuleMeta {
    RuleMeta {
        rule_id: rule.rule_id.0.clone(),
        action: rule.action,
        enabled: rule.enabled,
        log: rule.log,
        ip_version: rule.ip_version,
        managed: rule.managed.clone(),
        paused_until: rule.paused_until,
        created_at: rule.created_at,
        updated_at: rule.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};
    use nftables::expr::Elem;
    use portcullis_core::model::{Alias, AliasKind};
    use portcullis_store::Store;
    use serde_json::{Value, json};

    use super::*;
    use crate::translate::net_expr;

    fn now() -> Timestamp {
        Utc.timestamp_millis_opt(1_763_918_400_000).single().expect("time")
    }

    fn entry(value: &str, detail: &str) -> AliasEntry {
        AliasEntry {
            value: value.into(),
            detail: detail.into(),
            expires_at: Some(now() + TimeDelta::hours(1)),
            created_at: Some(now()),
        }
    }

    fn state_with(entries: Vec<AliasEntry>) -> RuleSet {
        RuleSet {
            interfaces: Vec::new(),
            rules: Vec::new(),
            protections: Vec::new(),
            mirrors: Vec::new(),
            aliases: vec![Alias {
                name: "B".into(),
                kind: AliasKind::Network,
                description: String::new(),
                entries,
                managed: None,
            }],
            vpn_accounts: Vec::new(),
        }
    }

    /// The element commands of the batch for these puts and removals: (verb, set, elements).
    fn element_commands(current: &RuleSet, put: &[AliasEntry], remove: &[AliasEntry]) -> Vec<(String, String, Value)> {
        let layout = Layout { table: "portcullis", interfaces: &[] };
        let texts = TextStore::new(Arc::new(Store::open_in_memory().expect("store")));
        let mut builder = BatchBuilder::new(&layout, &texts);
        let put: Vec<(&str, &AliasEntry)> = put.iter().map(|e| ("B", e)).collect();
        let remove: Vec<(&str, &AliasEntry)> = remove.iter().map(|e| ("B", e)).collect();
        builder.elements(current, &put, &remove, now()).expect("elements");
        let batch = serde_json::to_value(builder.finish()).expect("json");
        batch["nftables"]
            .as_array()
            .expect("commands")
            .iter()
            .map(|command| {
                let (verb, body) = command.as_object().and_then(|o| o.iter().next()).expect("one verb");
                let element = &body["element"];
                assert_eq!((element["family"].as_str(), element["table"].as_str()), (Some("inet"), Some("portcullis")));
                (verb.clone(), element["name"].as_str().expect("set").to_string(), element["elem"].clone())
            })
            .collect()
    }

    fn timed(val: Value, detail: &str) -> Value {
        json!({"elem": {"val": val, "timeout": 3600, "comment": format!("x=1763922000000 c=1763918400000 |{detail}")}})
    }

    #[test]
    fn a_host_and_a_network_containing_it_go_to_separate_sets_per_family() {
        let put = [
            entry("192.0.2.7", "host"),
            entry("192.0.2.0/24", "net"),
            entry("2001:db8::7", "host6"),
            entry("2001:db8:1::/64", "net6"),
        ];
        let commands = element_commands(&state_with(Vec::new()), &put, &[]);
        let prefix = |addr: &str, len: u8| json!({"prefix": {"addr": addr, "len": len}});
        let add = |set: &str, elem: Value| ("add".to_string(), set.to_string(), json!([elem]));
        assert_eq!(
            commands,
            vec![
                add("B_h4", timed(json!("192.0.2.7"), "host")),
                add("B_n4", timed(prefix("192.0.2.0", 24), "net")),
                add("B_h6", timed(json!("2001:db8::7"), "host6")),
                add("B_n6", timed(prefix("2001:db8:1::", 64), "net6")),
            ]
        );
    }

    #[test]
    fn removing_a_host_touches_only_its_hash_set_and_survives_a_kernel_expiry() {
        let current = state_with(vec![entry("192.0.2.7", "host"), entry("192.0.2.0/24", "net")]);
        let commands = element_commands(&current, &[], &[entry("192.0.2.7", "host")]);
        assert_eq!(
            commands,
            vec![
                ("add".into(), "B_h4".into(), json!([{"elem": {"val": "192.0.2.7", "timeout": 1}}])),
                ("delete".into(), "B_h4".into(), json!(["192.0.2.7"])),
            ],
            "the network containing the host stays"
        );
        let commands = element_commands(&current, &[], &[entry("192.0.2.0/24", "net")]);
        let net = json!({"prefix": {"addr": "192.0.2.0", "len": 24}});
        assert_eq!(
            commands,
            vec![
                ("add".into(), "B_n4".into(), json!([{"elem": {"val": net, "timeout": 1}}])),
                ("delete".into(), "B_n4".into(), json!([net])),
            ]
        );
    }

    #[test]
    fn a_replaced_entry_is_deleted_and_added_again_with_its_new_timeout_and_comment() {
        let current = state_with(vec![entry("2001:db8::7", "old reason")]);
        let commands = element_commands(&current, &[entry("2001:db8::7", "new reason")], &[]);
        assert_eq!(
            commands,
            vec![
                ("add".into(), "B_h6".into(), json!([{"elem": {"val": "2001:db8::7", "timeout": 1}}])),
                ("delete".into(), "B_h6".into(), json!(["2001:db8::7"])),
                ("add".into(), "B_h6".into(), json!([timed(json!("2001:db8::7"), "new reason")])),
            ]
        );
    }

    #[test]
    fn entries_of_one_bulk_change_share_one_comment_and_differ_where_their_times_differ() {
        let mut later = entry("192.0.2.9", "feed");
        later.expires_at = Some(now() + TimeDelta::hours(2));
        let commands = element_commands(&state_with(Vec::new()), &[entry("192.0.2.8", "feed"), later], &[]);
        assert_eq!(commands.len(), 1);
        let comments: Vec<&str> =
            commands[0].2.as_array().expect("elements").iter().filter_map(|e| e["elem"]["comment"].as_str()).collect();
        assert_eq!(comments, ["x=1763922000000 c=1763918400000 |feed", "x=1763925600000 c=1763918400000 |feed"]);
        assert_eq!(commands[0].2[1]["elem"]["timeout"], 7200);
    }

    /// The crate writes absent fields as `null`, which nft reads as absent.
    fn without_nulls(mut value: Value) -> Value {
        if let Some(map) = value.as_object_mut() {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(|v| *v = without_nulls(v.take()));
        }
        value
    }

    #[test]
    fn elements_are_the_json_the_nftables_crate_writes_without_its_nulls() {
        for value in ["192.0.2.7/32", "192.0.2.0/24", "2001:db8::7/128", "2001:db8::/48"] {
            let net: IpNet = value.parse().expect("net");
            for (timeout, comment) in
                [(None, None), (Some(1), None), (Some(86400), Some("x=1 c=2 |a \"quoted\" reason"))]
            {
                let ours = SetElement { net, timeout, comment: comment.map(Arc::from) };
                let crate_expr = if timeout.is_none() && comment.is_none() {
                    net_expr(&net)
                } else {
                    E::Named(NE::Elem(Elem {
                        val: Box::new(net_expr(&net)),
                        timeout,
                        expires: None,
                        comment: comment.map(|c| Cow::Owned(c.to_string())),
                        counter: None,
                    }))
                };
                assert_eq!(
                    serde_json::to_value(&ours).expect("ours"),
                    without_nulls(serde_json::to_value(&crate_expr).expect("crate")),
                    "{value} {timeout:?} {comment:?}"
                );
            }
        }
    }
}
