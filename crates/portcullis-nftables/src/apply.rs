//! A plan as ONE nft batch. The plan is first carried out on the model read from the kernel (each `before`
//! checked, a difference is a `conflict`); then the batch rebuilds the chains whose rules changed (counters carried
//! over), adds the sets of new aliases, and adds and deletes set elements. `nft -f` hands the batch to the kernel
//! as one transaction: all of it takes effect, or none.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use nftables::expr::{Elem, Expression as E, Meta, MetaKey, NamedExpression as NE, SetItem, Verdict};
use nftables::schema::{Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Nftables, Rule as NftRule, Table};
use nftables::stmt::{JumpTarget, Operator, Statement as S, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfHook};
use portcullis_core::firewall::{Applied, BackendError, ErrorCode};
use portcullis_core::model::{AliasEntry, Direction, Rule, RuleId, RuleSet, Timestamp};
use portcullis_core::plan::{ChangePlan, Operation, global_index, same_enforcement};

use crate::comment::{EntryMeta, RuleMeta, SYSTEM_MARK, SetMeta, TextStore};
use crate::read::HitMap;
use crate::translate::{
    ALIASES_CHAIN, FAMILY, GENERATION_SET, Hits, SetPart, matches, net_expr, rule_chain, rule_statements, set_def,
};

fn conflict(message: impl Into<String>) -> BackendError {
    BackendError::new(ErrorCode::Conflict, message)
        .with_hint("the firewall changed since the plan was made; plan again")
}

/// The model after the plan, and what the batch must touch.
pub struct Outcome {
    pub next: RuleSet,
    pub applied: Applied,
    /// Interfaces whose chains are rebuilt.
    pub interfaces: BTreeSet<String>,
    pub new_aliases: Vec<String>,
    pub put: Vec<(String, AliasEntry)>,
    pub remove: Vec<(String, AliasEntry)>,
}

/// Carries the plan out on the model, checking every `before` against what the kernel holds now.
pub fn simulate(current: &RuleSet, plan: &ChangePlan, now: Timestamp) -> Result<Outcome, BackendError> {
    let mut out = Outcome {
        next: current.clone(),
        applied: Applied::default(),
        interfaces: BTreeSet::new(),
        new_aliases: Vec::new(),
        put: Vec::new(),
        remove: Vec::new(),
    };
    for op in &plan.operations {
        match op {
            Operation::CreateRule { position, after } => {
                let id = next_rule_id(&out.next, now);
                let rule = Rule { rule_id: id.clone(), ..after.clone() };
                let at = global_index(&out.next.rules, &rule.interface, *position);
                out.interfaces.insert(rule.interface.clone());
                out.next.rules.insert(at, rule);
                out.applied.created_rules.push(id);
            }
            Operation::UpdateRule { before, after, position } => {
                let idx = index_matching(&out.next, before)?;
                out.interfaces.insert(before.interface.clone());
                out.interfaces.insert(after.interface.clone());
                match position {
                    None => out.next.rules[idx] = after.clone(),
                    Some(p) => {
                        out.next.rules.remove(idx);
                        let at = global_index(&out.next.rules, &after.interface, *p);
                        out.next.rules.insert(at, after.clone());
                    }
                }
            }
            Operation::DeleteRule { before } => {
                let idx = index_matching(&out.next, before)?;
                out.interfaces.insert(before.interface.clone());
                out.next.rules.remove(idx);
            }
            Operation::CreateAlias { after } => {
                if out.next.alias(&after.name).is_some() {
                    return Err(conflict(format!("alias {} already exists", after.name)));
                }
                out.next.aliases.push(portcullis_core::model::Alias { entries: Vec::new(), ..after.clone() });
                out.new_aliases.push(after.name.clone());
            }
            Operation::PutAliasEntries { alias, after, .. } => {
                let target = out
                    .next
                    .aliases
                    .iter_mut()
                    .find(|a| &a.name == alias)
                    .ok_or_else(|| conflict(format!("alias {alias} does not exist")))?;
                target.put_entries(after);
                out.put.extend(after.iter().map(|e| (alias.clone(), e.clone())));
            }
            Operation::RemoveAliasEntries { alias, before } => {
                let target = out
                    .next
                    .aliases
                    .iter_mut()
                    .find(|a| &a.name == alias)
                    .ok_or_else(|| conflict(format!("alias {alias} does not exist")))?;
                target.remove_entries(before);
                out.remove.extend(before.iter().map(|e| (alias.clone(), e.clone())));
            }
        }
    }
    Ok(out)
}

fn index_matching(state: &RuleSet, before: &Rule) -> Result<usize, BackendError> {
    let idx = state
        .rules
        .iter()
        .position(|r| r.rule_id == before.rule_id)
        .ok_or_else(|| conflict(format!("rule {} no longer exists", before.rule_id)))?;
    if !same_enforcement(&state.rules[idx], before) {
        return Err(conflict(format!("rule {} was changed by someone else", before.rule_id)));
    }
    Ok(idx)
}

/// Rule ids count up from the largest numeric id in use, like pfSense trackers.
fn next_rule_id(state: &RuleSet, now: Timestamp) -> RuleId {
    let max = state.rules.iter().filter_map(|r| r.rule_id.as_str().parse::<u64>().ok()).max();
    let base = now.timestamp().max(0) as u64 * 10;
    RuleId(max.map_or(base, |m| m.max(base) + 1).to_string())
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
    commands: Vec<NfObject<'static>>,
}

fn add(object: NfListObject<'static>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(object))
}

impl<'a> BatchBuilder<'a> {
    pub fn new(layout: &'a Layout<'a>, texts: &'a TextStore) -> Self {
        Self { layout, texts, commands: Vec::new() }
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
        self.commands.push(if exists { add(table) } else { NfObject::CmdObject(NfCmd::Create(table)) });
        self.commands.push(add(NfListObject::Chain(self.chain(ALIASES_CHAIN))));
        for (name, _) in self.layout.interfaces {
            for direction in [Direction::In, Direction::Out] {
                self.commands.push(add(NfListObject::Chain(self.chain(&rule_chain(name, direction)))));
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
            self.commands.push(add(NfListObject::Chain(chain.clone())));
            self.commands.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(chain))));
            let established = matches(
                E::Named(NE::CT(nftables::expr::CT { key: "state".into(), family: None, dir: None })),
                Operator::IN,
                E::List(vec![E::String("established".into()), E::String("related".into())]),
            );
            self.commands.push(self.rule(name, vec![established, S::Accept(None)], format!("{SYSTEM_MARK} state")));
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
                self.commands.push(self.rule(name, vec![nd, S::Accept(None)], format!("{SYSTEM_MARK} nd")));
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
            self.commands.push(self.rule(name, vec![dispatch], format!("{SYSTEM_MARK} dispatch")));
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
        self.commands.push(add(NfListObject::Set(Box::new(set))));
        let table = self.table();
        let element = |n: u32| Element {
            family: FAMILY,
            table: table.clone(),
            name: Cow::Borrowed(GENERATION_SET),
            elem: Cow::Owned(vec![E::Number(n)]),
        };
        if let Some(old) = read {
            self.commands.push(NfObject::CmdObject(NfCmd::Delete(NfListObject::Element(element(old)))));
        }
        self.commands.push(add(NfListObject::Element(element(next))));
    }

    /// Empties an interface's chains and writes its rules again in order, each with its counter carried over.
    pub fn rebuild_interface(&mut self, next: &RuleSet, interface: &str, hits: &HitMap) -> Result<(), BackendError> {
        for direction in [Direction::In, Direction::Out] {
            let chain = rule_chain(interface, direction);
            self.commands.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(self.chain(&chain)))));
            let rules = next.rules_on(interface).filter(|r| r.direction == direction || r.direction == Direction::Any);
            for rule in rules {
                let comment = self.texts.compose(&rule_meta(rule).head(), &rule.description)?;
                // A rule for both directions keeps its (summed) count in its inbound chain only.
                let counted = match (rule.direction, direction) {
                    (Direction::Any, Direction::Out) => Hits::default(),
                    _ => hits.get(&rule.rule_id).copied().unwrap_or_default(),
                };
                for statements in rule_statements(next, rule, direction == Direction::In, counted)? {
                    self.commands.push(self.rule(&chain, statements, comment.clone()));
                }
            }
            if direction == Direction::In {
                let counter = S::Counter(nftables::stmt::Counter::Anonymous(None));
                self.commands.push(self.rule(
                    &chain,
                    vec![counter, S::Drop(None)],
                    format!("{SYSTEM_MARK} default deny"),
                ));
            }
        }
        Ok(())
    }

    pub fn create_alias_sets(&mut self, next: &RuleSet, alias: &str) -> Result<(), BackendError> {
        let Some(a) = next.alias(alias) else { return Ok(()) };
        let meta = SetMeta { name: a.name.clone(), kind: a.kind, managed: a.managed.clone() };
        let comment = self.texts.compose(&meta.head(), &a.description)?;
        for part in SetPart::ALL {
            let set = set_def(self.layout.table, alias, part);
            self.commands.push(add(NfListObject::Set(Box::new(set))));
        }
        let counter = S::Counter(nftables::stmt::Counter::Anonymous(None));
        self.commands.push(self.rule(ALIASES_CHAIN, vec![counter], comment));
        Ok(())
    }

    /// Element commands: removals (made safe against entries the kernel already expired by adding them
    /// first), then puts (an entry being replaced is deleted first, so its timeout and comment are new).
    pub fn elements(
        &mut self,
        current: &RuleSet,
        put: &[(String, AliasEntry)],
        remove: &[(String, AliasEntry)],
        now: Timestamp,
    ) -> Result<(), BackendError> {
        let mut elements: std::collections::BTreeMap<(String, &'static str), ElementOps> = Default::default();
        let existing: HashSet<(&str, &str)> = current
            .aliases
            .iter()
            .flat_map(|a| a.entries.iter().map(move |e| (a.name.as_str(), e.value.as_str())))
            .collect();
        let part_of = |alias: &str, value: &str| -> Result<(String, SetPart, E<'static>), BackendError> {
            let net = portcullis_core::model::parse_net("ip_address", value)
                .map_err(|e| BackendError::new(ErrorCode::ValidationError, format!("alias {alias}: {}", e.message)))?;
            let part = SetPart::of(&net);
            Ok((crate::translate::set_name(alias, part), part, net_expr(&net)))
        };
        for (alias, entry) in remove {
            let (set, part, value) = part_of(alias, &entry.value)?;
            let ops = elements.entry((set, part.suffix())).or_default();
            ops.ensure.push(timed(value.clone(), Some(1), None));
            ops.delete.push(value);
        }
        for (alias, entry) in put {
            let (set, part, value) = part_of(alias, &entry.value)?;
            let ops = elements.entry((set, part.suffix())).or_default();
            if existing.contains(&(alias.as_str(), entry.value.as_str())) {
                ops.ensure.push(timed(value.clone(), Some(1), None));
                ops.delete.push(value.clone());
            }
            let meta = EntryMeta { expires_at: entry.expires_at, created_at: entry.created_at };
            let comment = self.texts.compose(&meta.head(), &entry.detail)?;
            let timeout = entry.expires_at.map(|t| {
                let ms = (t - now).num_milliseconds().max(1);
                u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX)
            });
            ops.add.push(timed(value, timeout, Some(comment)));
        }
        for ((set, _), ops) in elements {
            let table = self.table();
            let element = |elem: Vec<E<'static>>| Element {
                family: FAMILY,
                table: table.clone(),
                name: Cow::Owned(set.clone()),
                elem: Cow::Owned(elem),
            };
            if !ops.delete.is_empty() {
                self.commands.push(add(NfListObject::Element(element(ops.ensure))));
                self.commands.push(NfObject::CmdObject(NfCmd::Delete(NfListObject::Element(element(ops.delete)))));
            }
            if !ops.add.is_empty() {
                self.commands.push(add(NfListObject::Element(element(ops.add))));
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Nftables<'static> {
        Nftables { objects: Cow::Owned(self.commands) }
    }
}

#[derive(Default)]
struct ElementOps {
    ensure: Vec<E<'static>>,
    delete: Vec<E<'static>>,
    add: Vec<E<'static>>,
}

fn timed(value: E<'static>, timeout: Option<u32>, comment: Option<String>) -> E<'static> {
    E::Named(NE::Elem(Elem {
        val: Box::new(value),
        timeout,
        expires: None,
        comment: comment.map(Cow::Owned),
        counter: None,
    }))
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
