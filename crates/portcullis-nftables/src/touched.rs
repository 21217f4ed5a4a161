//! Changes and reads that cost what they touch, not what the table holds.
//!
//! A block, an unblock, a grant's entry or an expiry puts or removes single addresses in existing lists. For such
//! a plan nothing of the table is listed with `nft` (whose every listing of rules or elements first fetches every
//! element of every set: seconds at 100,000 entries, minutes at a million). Instead, over [`crate::netlink`]:
//!
//! - the aliases' definitions come from the comments of the `aliases` chain's rules;
//! - the entries the plan names are looked up one by one in their sets;
//! - the write generation is the one element of the `generation` set;
//! - the batch (the generation swapped, the elements deleted and added) is one nfnetlink transaction.
//!
//! The plan is carried out on that state exactly as on a whole listing ([`crate::apply::simulate`]: every
//! `before` checked), and the same [`crate::apply::BatchBuilder`] decides the element commands, so both paths
//! write the same elements with the same comments. Networks (interval sets) and plans that change rules or sets
//! take the `nft -j -f` path, as does the first change a process makes (which writes the table's skeleton for the
//! configured interfaces).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::Utc;
use ipnet::IpNet;
use portcullis_core::firewall::{Applied, BackendError, ErrorCode};
use portcullis_core::freshness::StateRead;
use portcullis_core::model::{Alias, RuleSet, Timestamp};
use portcullis_core::plan::{ChangePlan, Operation};

use crate::apply::{BatchBuilder, simulate};
use crate::comment::SetMeta;
use crate::netlink::{
    ElementChange, KernelElement, Netlink, NetlinkError, NewElement, address_key, key_address, mark_key,
};
use crate::read::{KernelTable, ListedElement, entry};
use crate::translate::{ALIASES_CHAIN, GENERATION_SET, SetPart, set_name};
use crate::{NftablesFirewall, next_generation};

/// What the kernel holds of a plan's entries, read without listing the table.
pub(crate) struct TouchedState {
    /// Every alias with its definition; of the asked aliases, only the asked entries.
    pub state: RuleSet,
    pub generation: Option<u32>,
}

/// Whether a batch is committed or only checked by the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    Yes,
    No,
}

/// Which entries a read looks up.
#[derive(Clone)]
pub(crate) enum Wanted {
    /// These values of these aliases (a change's read-back, an expiry check).
    ByAlias(BTreeMap<String, BTreeSet<String>>),
    /// These values, in every alias (what a change of those addresses is planned against).
    Everywhere(BTreeSet<String>),
}

impl Wanted {
    /// The values wanted of each alias, given the names of every alias.
    fn by_alias(&self, names: &[String]) -> BTreeMap<String, BTreeSet<String>> {
        match self {
            Wanted::ByAlias(map) => map.clone(),
            Wanted::Everywhere(values) => names.iter().map(|n| (n.clone(), values.clone())).collect(),
        }
    }
}

/// The rules of the last whole read, with the kernel's ruleset generation they were read at. Every committed
/// transaction in the namespace advances that generation by one, so while it is unchanged (or advanced only by
/// this backend's own element batches) the rules are still what the kernel holds: a change of entries is planned
/// against them without listing the table.
///
/// A transaction of anyone else (another table's, a hand edit) moves the generation on; then a digest of the
/// table's chains and rules ([`Netlink::rules_digest`], one dump of the rules, not of the elements) tells whether
/// they are still those remembered.
pub(crate) struct RecentRules {
    pub generation: u32,
    pub digest: [u8; 32],
    pub rules: Vec<portcullis_core::model::Rule>,
}

/// The raw answers of the netlink reads, before comments are resolved.
struct RawRead {
    alias_comments: Vec<Option<String>>,
    generation: Option<u32>,
    hosts: Vec<(String, KernelElement)>,
}

/// Whether every operation puts or removes single addresses (the hash sets' elements).
pub(crate) fn host_entries_only(plan: &ChangePlan) -> bool {
    !plan.operations.is_empty()
        && plan.operations.iter().all(|op| match op {
            Operation::PutAliasEntries { before, after, .. } => {
                before.iter().chain(after).all(|e| host_address(&e.value).is_some())
            }
            Operation::RemoveAliasEntries { before, .. } => before.iter().all(|e| host_address(&e.value).is_some()),
            _ => false,
        })
}

/// The address of an entry value that is one address (`192.0.2.7`, `192.0.2.7/32`).
fn host_address(value: &str) -> Option<IpAddr> {
    let net: IpNet = value.parse().or_else(|_| value.parse::<IpAddr>().map(IpNet::from)).ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

pub(crate) fn netlink_failure(doing: &str, e: NetlinkError) -> BackendError {
    let code = match &e {
        NetlinkError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => ErrorCode::AuthorizationFailed,
        NetlinkError::Garbled(_) => ErrorCode::UnexpectedResponse,
        _ => ErrorCode::Unavailable,
    };
    BackendError::new(code, format!("{doing}: {e}"))
        .with_hint("talking nf_tables netlink needs root or CAP_NET_ADMIN in the firewall's network namespace")
}

impl NftablesFirewall {
    pub(crate) fn netlink(&self) -> Netlink {
        Netlink::new(self.settings.runner.netns.clone())
    }

    /// The kernel's ruleset generation in the target's namespace.
    pub(crate) async fn kernel_generation(&self) -> Result<u32, BackendError> {
        let netlink = self.netlink();
        tokio::task::spawn_blocking(move || netlink.generation())
            .await
            .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("the netlink read failed: {e}")))?
            .map_err(|e| netlink_failure("reading the ruleset generation", e))
    }

    fn recent_rules(&self) -> std::sync::MutexGuard<'_, Option<RecentRules>> {
        self.recent_rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The digest of the table's chains and rules now.
    pub(crate) async fn rules_digest(&self) -> Option<[u8; 32]> {
        let netlink = self.netlink();
        let table = self.settings.table.clone();
        tokio::task::spawn_blocking(move || netlink.rules_digest(&table)).await.ok()?.ok()
    }

    /// Keeps the rules of a whole read that no transaction overlapped (the generation the same before the listing,
    /// after it and after the digest).
    pub(crate) async fn remember_rules(
        &self,
        before: Option<u32>,
        after: Option<u32>,
        rules: &[portcullis_core::model::Rule],
    ) {
        let settled = match (before, after) {
            (Some(b), Some(a)) if a == b => Some(a),
            _ => None,
        };
        let remembered = match settled {
            Some(generation) => match self.rules_digest().await {
                Some(digest) if self.kernel_generation().await.ok() == Some(generation) => {
                    Some(RecentRules { generation, digest, rules: rules.to_vec() })
                }
                _ => None,
            },
            None => None,
        };
        *self.recent_rules() = remembered;
    }

    /// The remembered rules if the kernel still holds them: at the remembered generation, or (after others'
    /// transactions) with the remembered digest.
    async fn still_remembered(&self, generation: Option<u32>) -> Option<Vec<portcullis_core::model::Rule>> {
        let (remembered_generation, digest) = {
            let recent = self.recent_rules();
            let r = recent.as_ref()?;
            if Some(r.generation) == generation {
                return Some(r.rules.clone());
            }
            (r.generation, r.digest)
        };
        let now = self.rules_digest().await?;
        let mut recent = self.recent_rules();
        let r = recent.as_mut().filter(|r| r.generation == remembered_generation && now == digest)?;
        if let Some(g) = generation {
            r.generation = g;
        }
        Some(r.rules.clone())
    }

    /// After a batch of elements alone: if it was the only transaction since the remembered generation (`after` is
    /// `before` + 1), the remembered rules are those of the new generation. Otherwise they stay at the old one, and
    /// the next use compares digests.
    fn advance_rules(&self, before: Option<u32>, after: Option<u32>) {
        let ours = matches!((before, after), (Some(b), Some(a)) if a == b.wrapping_add(1));
        if let (true, Some(r), Some(after)) = (ours, self.recent_rules().as_mut(), after)
            && Some(r.generation) == before
        {
            r.generation = after;
        }
    }

    /// Forgets the remembered rules (after a batch through `nft`, which may change them).
    pub(crate) fn forget_rules(&self) {
        *self.recent_rules() = None;
    }

    /// What a change of single entries is planned against: every rule (remembered while the kernel's generation
    /// says nothing else committed, or read whole), the interfaces, every alias' definition, and of the entries
    /// only those with `values`. `None` when the table does not exist yet (the first change reads it whole).
    pub(crate) async fn planning_state(&self, values: &BTreeSet<String>) -> Result<Option<RuleSet>, BackendError> {
        let generation = self.kernel_generation().await.ok();
        let rules = match self.still_remembered(generation).await {
            Some(rules) => rules,
            None => self.read_table().await?.state.rules,
        };
        // Where netlink cannot be reached, the caller reads the table whole.
        let Ok(Some(touched)) = self.read_touched(Wanted::Everywhere(values.clone())).await else { return Ok(None) };
        let interfaces = self.interfaces().await?;
        Ok(Some(RuleSet {
            interfaces,
            rules,
            aliases: touched.state.aliases,
            protections: Vec::new(),
            mirrors: Vec::new(),
            vpn_accounts: Vec::new(),
        }))
    }

    /// The aliases' definitions and, of the aliases in `entries`, the entries with those values; `None` when the
    /// table (or its `aliases` chain) does not exist.
    pub(crate) async fn read_touched(&self, wanted: Wanted) -> Result<Option<TouchedState>, BackendError> {
        let now = Utc::now();
        let netlink = self.netlink();
        let table = self.settings.table.clone();
        let asked = wanted.clone();
        let raw = tokio::task::spawn_blocking(move || read_raw(&netlink, &table, &asked))
            .await
            .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("the netlink read failed: {e}")))?;
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) if e.is_missing() => return Ok(None),
            Err(e) => return Err(netlink_failure("reading the touched entries", e)),
        };
        let mut aliases: BTreeMap<String, Alias> = BTreeMap::new();
        for comment in &raw.alias_comments {
            let (head, description) = self.texts.split(comment.as_deref().unwrap_or(""))?;
            let Some(meta) = SetMeta::parse(head) else { continue };
            aliases.insert(
                meta.name.clone(),
                Alias { name: meta.name, kind: meta.kind, description, entries: Vec::new(), managed: meta.managed },
            );
        }
        for (alias, element) in &raw.hosts {
            let Some(addr) = key_address(&element.key) else { continue };
            let listed = ListedElement {
                net: IpNet::from(addr),
                expires: element.expires_ms.map(|ms| ms.div_ceil(1000)),
                comment: element.comment.clone(),
            };
            if let Some(a) = aliases.get_mut(alias) {
                a.entries.push(entry(&listed, &self.texts, now)?);
            }
        }
        let names: Vec<String> = aliases.keys().cloned().collect();
        self.add_touched_networks(&mut aliases, &wanted.by_alias(&names), now).await?;
        let state = RuleSet {
            interfaces: Vec::new(),
            rules: Vec::new(),
            aliases: aliases.into_values().collect(),
            protections: Vec::new(),
            mirrors: Vec::new(),
            vpn_accounts: Vec::new(),
        };
        Ok(Some(TouchedState { state, generation: raw.generation }))
    }

    /// Networks live in interval sets, whose elements are the ends of ranges: those few sets are listed whole
    /// (`nft list set` fetches that one set only).
    async fn add_touched_networks(
        &self,
        aliases: &mut BTreeMap<String, Alias>,
        entries: &BTreeMap<String, BTreeSet<String>>,
        now: Timestamp,
    ) -> Result<(), BackendError> {
        for (alias_name, values) in entries {
            let Some(alias) = aliases.get_mut(alias_name) else { continue };
            let networks: Vec<&String> = values.iter().filter(|v| host_address(v).is_none()).collect();
            for part in [SetPart::Nets4, SetPart::Nets6] {
                let wanted: Vec<&&String> =
                    networks.iter().filter(|v| v.parse::<IpNet>().is_ok_and(|n| SetPart::of(&n) == part)).collect();
                if wanted.is_empty() {
                    continue;
                }
                let set = set_name(alias_name, part);
                let args = ["-j", "list", "set", "inet", self.settings.table.as_str(), set.as_str()];
                let json = self.settings.runner.nft(&args).await.map_err(|e| e.into_backend("nft list set"))?;
                let listed = KernelTable::parse(&json)?;
                for element in listed.sets.get(&set).map(|s| s.elements.as_slice()).unwrap_or_default() {
                    let value = portcullis_core::model::net_to_string(&element.net);
                    if wanted.iter().any(|w| ***w == value) {
                        alias.entries.push(entry(element, &self.texts, now)?);
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies (or with [`Commit::No`] has the kernel check) a plan of single-address entries as one netlink
    /// transaction; `None` when the plan needs the `nft` path (the table or its write generation is missing, or the
    /// plan turned out to change more than elements).
    pub(crate) async fn apply_touched(
        &self,
        plan: &ChangePlan,
        commit: Commit,
    ) -> Result<Option<Applied>, BackendError> {
        let read = StateRead::touched_by(plan);
        let generation_before = self.kernel_generation().await.ok();
        // Nothing is written before the batch: where netlink cannot be reached the `nft` path does the change.
        let touched = match self.read_touched(Wanted::ByAlias(read.entries.clone())).await {
            Ok(touched) => touched,
            Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::AuthorizationFailed) => {
                tracing::warn!(target = %self.name, "netlink unavailable, using nft: {}", e.message);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let Some(TouchedState { state: current, generation: Some(generation) }) = touched else {
            return Ok(None);
        };
        let now = Utc::now();
        let outcome = simulate(&current, plan, now)?;
        if !outcome.new_aliases.is_empty() || !outcome.deleted_aliases.is_empty() || !outcome.interfaces.is_empty() {
            return Ok(None);
        }
        let layout = self.layout();
        let mut builder = BatchBuilder::new(&layout, &self.texts);
        builder.elements(&current, &outcome.put, &outcome.removed, now)?;
        let Some(elements) = builder.finish().host_element_changes() else { return Ok(None) };
        let next = next_generation(Some(generation));
        let swap = |delete: bool, mark: u32| ElementChange {
            set: GENERATION_SET.to_string(),
            delete,
            elements: vec![NewElement::key(mark_key(mark), None, None)],
        };
        let mut changes = vec![swap(true, generation), swap(false, next)];
        changes.extend(elements);
        let netlink = self.netlink();
        let table = self.settings.table.clone();
        let committed = tokio::task::spawn_blocking(move || match commit {
            Commit::Yes => netlink.commit(&table, &changes),
            Commit::No => netlink.check(&table, &changes),
        })
        .await
        .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("the netlink write failed: {e}")))?;
        if committed.is_ok() && commit == Commit::Yes {
            self.advance_rules(generation_before, self.kernel_generation().await.ok());
        }
        match committed {
            Ok(()) => Ok(Some(outcome.applied)),
            // The generation read a moment ago is gone: another writer committed in between.
            Err(e @ NetlinkError::Refused { index: 0, .. }) if e.is_missing() => {
                Err(BackendError::new(ErrorCode::Conflict, format!("the table changed during the write ({e})"))
                    .with_hint("another Portcullis process wrote to this firewall at the same time; plan again"))
            }
            Err(e @ NetlinkError::Refused { .. }) => {
                Err(BackendError::new(ErrorCode::ApplyFailed, format!("netlink batch (apply): {e}")))
            }
            Err(e) => Err(netlink_failure("netlink batch (apply)", e)),
        }
    }
}

impl NftablesFirewall {
    /// The interfaces and the aliases' definitions, without listing the table; `None` where netlink cannot answer
    /// or the table does not exist yet.
    pub(crate) async fn outline_by_netlink(&self) -> Option<RuleSet> {
        let touched = self.read_touched(Wanted::ByAlias(BTreeMap::new())).await.ok()??;
        let interfaces = self.interfaces().await.ok()?;
        Some(RuleSet {
            interfaces,
            rules: Vec::new(),
            aliases: touched.state.aliases,
            protections: Vec::new(),
            mirrors: Vec::new(),
            vpn_accounts: Vec::new(),
        })
    }

    /// Entries `skip..skip + limit` of `alias`: its networks (listed set by set, `nft list set` of one set), then
    /// its single addresses, dumped only as far as the page reaches. `Err` where netlink cannot answer.
    pub(crate) async fn page_by_netlink(
        &self,
        alias: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Option<(Vec<portcullis_core::model::AliasEntry>, bool)>, BackendError> {
        let Some(outline) = self.read_touched(Wanted::ByAlias(BTreeMap::new())).await? else { return Ok(None) };
        if outline.state.alias(alias).is_none() {
            return Ok(None);
        }
        let now = Utc::now();
        let want = skip.saturating_add(limit).saturating_add(1);
        let mut gathered = Vec::new();
        for part in [SetPart::Nets4, SetPart::Nets6] {
            let set = set_name(alias, part);
            let args = ["-j", "list", "set", "inet", self.settings.table.as_str(), set.as_str()];
            let json = self.settings.runner.nft(&args).await.map_err(|e| e.into_backend("nft list set"))?;
            for element in KernelTable::parse(&json)?.sets.get(&set).map(|s| s.elements.as_slice()).unwrap_or_default()
            {
                gathered.push(entry(element, &self.texts, now)?);
            }
        }
        for part in [SetPart::Hosts4, SetPart::Hosts6] {
            let needed = want.saturating_sub(gathered.len());
            if needed == 0 {
                break;
            }
            let (netlink, table, set) = (self.netlink(), self.settings.table.clone(), set_name(alias, part));
            let (found, _) = tokio::task::spawn_blocking(move || netlink.first_elements(&table, &set, needed))
                .await
                .map_err(|e| BackendError::new(ErrorCode::InternalError, format!("the netlink read failed: {e}")))?
                .map_err(|e| netlink_failure("reading a page of entries", e))?;
            for element in found {
                let Some(addr) = key_address(&element.key) else { continue };
                let listed = ListedElement {
                    net: IpNet::from(addr),
                    expires: element.expires_ms.map(|ms| ms.div_ceil(1000)),
                    comment: element.comment,
                };
                gathered.push(entry(&listed, &self.texts, now)?);
            }
        }
        let more = gathered.len() > skip.saturating_add(limit);
        let page = gathered.into_iter().skip(skip).take(limit).collect();
        Ok(Some((page, more)))
    }
}

fn read_raw(netlink: &Netlink, table: &str, wanted: &Wanted) -> Result<RawRead, NetlinkError> {
    let alias_comments: Vec<Option<String>> =
        netlink.rule_comments(table, ALIASES_CHAIN)?.into_iter().map(|(_, c)| c).collect();
    // The head of a comment (before `|`) is always inline; the description may be in the store.
    let names: Vec<String> = alias_comments
        .iter()
        .flatten()
        .filter_map(|c| SetMeta::parse(c.split_once('|').map_or(c.as_str(), |(head, _)| head.trim_end())))
        .map(|meta| meta.name)
        .collect();
    let wanted = wanted.by_alias(&names);
    let generation = netlink
        .dump_elements(table, GENERATION_SET)?
        .first()
        .and_then(|e| <[u8; 4]>::try_from(e.key.as_slice()).ok())
        .map(u32::from_ne_bytes);
    let mut hosts = Vec::new();
    for (alias, values) in &wanted {
        for part in [SetPart::Hosts4, SetPart::Hosts6] {
            let keys: Vec<Vec<u8>> = values
                .iter()
                .filter_map(|v| host_address(v))
                .filter(|a| SetPart::of(&IpNet::from(*a)) == part)
                .map(address_key)
                .collect();
            if keys.is_empty() {
                continue;
            }
            match netlink.lookup(table, &set_name(alias, part), &keys) {
                Ok(found) => hosts.extend(found.into_iter().flatten().map(|e| (alias.clone(), e))),
                // An alias the plan names may not exist (the plan then fails its check, as on a listing).
                Err(e) if e.is_missing() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(RawRead { alias_comments, generation, hosts })
}
