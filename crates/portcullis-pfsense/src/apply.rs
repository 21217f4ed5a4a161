//! Applying and checking plans on pfSense: operations in order, an undo log, reconciliation of writes whose outcome
//! is unknown, one alias PATCH per alias, one filter reload, and rollback on failure.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use portcullis_core::firewall::{Applied, BackendError, ErrorCode};
use portcullis_core::geo::is_geo_list;
use portcullis_core::mirror::Mirror;
use portcullis_core::model::{AddressTarget, PortMatch, Rule, RuleId};
use portcullis_core::plan::global_index_by;
use portcullis_core::plan::{ChangePlan, Operation, same_enforcement};
use portcullis_core::protection::{Bandwidth, Protection};
use portcullis_pfrest::types::{
    FirewallAlias, FirewallAliasRequest, FirewallRule, FirewallRuleRequest, TrafficShaperLimiter,
    TrafficShaperLimiterRequest, WriteControls,
};
use portcullis_pfrest::{PfRestClient, PfRestError};

use crate::mapping::{
    self, InterfaceMap, RuleFields, alias_create_request, canonical_value, device_value, entry_detail, pause_key,
};
use crate::protection::{self as ddos, KEEP_STATE, LimiterRecord, PipedRule, ProtectionRecord, ProxiedRule, SYNPROXY};
use crate::{PfSenseFirewall, store_error};

fn conflict(message: impl Into<String>) -> BackendError {
    BackendError::new(ErrorCode::Conflict, message)
        .with_hint("the firewall changed since the plan was made; plan again")
}

/// A limiter with the name a protection's would have, that Portcullis did not make (its description does not name
/// the protection): it is not taken over.
fn foreign_limiter(name: &str, protection_id: &str) -> BackendError {
    BackendError::new(
        ErrorCode::ValidationError,
        format!(
            "a limiter named {name} exists on the firewall and is not the one Portcullis makes for DDoS protection \
             {protection_id}; Portcullis does not take over a limiter it did not create"
        ),
    )
    .with_hint(format!("rename or delete limiter {name} (Firewall > Traffic Shaper > Limiters), then try again"))
}

/// The pfSense tracker behind a rule id.
fn tracker_of(id: &RuleId) -> Result<i64, BackendError> {
    id.as_str().parse().map_err(|_| conflict(format!("rule {id} is not a pfSense rule (its id is not a tracker)")))
}

/// Entry operations of a plan, grouped by alias: all of an alias' entry changes become one PATCH, sent at the
/// position of the alias' first entry operation.
fn alias_groups(plan: &ChangePlan) -> HashMap<&str, (usize, Vec<&Operation>)> {
    let mut groups: HashMap<&str, (usize, Vec<&Operation>)> = HashMap::new();
    for (i, op) in plan.operations.iter().enumerate() {
        let alias = match op {
            Operation::PutAliasEntries { alias, .. } | Operation::RemoveAliasEntries { alias, .. } => alias.as_str(),
            _ => continue,
        };
        groups.entry(alias).or_insert_with(|| (i, Vec::new())).1.push(op);
    }
    groups
}

/// Everything that can be refused without asking the firewall, checked before the first write. `geo_cap` is the
/// most entries a geo list may hold ([`crate::PfSenseOptions::geo_alias_max_entries`]).
fn prevalidate(plan: &ChangePlan, geo_cap: usize, shell: bool) -> Result<(), BackendError> {
    for op in &plan.operations {
        match op {
            Operation::CreateRule { after, .. } => {
                RuleFields::from_rule(after)?;
            }
            Operation::UpdateRule { before, after, .. } => {
                tracker_of(&before.rule_id)?;
                RuleFields::from_rule(before)?;
                RuleFields::from_rule(after)?;
            }
            Operation::DeleteRule { before } => {
                tracker_of(&before.rule_id)?;
            }
            Operation::CreateAlias { after } => {
                alias_create_request(after)?;
            }
            Operation::PutAliasEntries { alias, after, .. } => {
                if is_geo_list(alias) && after.len() > geo_cap {
                    return Err(geo_list_too_long(alias, after.len(), geo_cap));
                }
                for e in after {
                    entry_detail(alias, e)?;
                }
            }
            Operation::RemoveAliasEntries { .. } | Operation::DeleteAlias { .. } => {}
            Operation::CreateProtection { after } | Operation::UpdateProtection { after, .. } => {
                let unsupported = ddos::unsupported_fields(after);
                if !unsupported.is_empty() {
                    return Err(ddos::unsupported_error(after, &unsupported));
                }
                if !after.syn_proxy && after.per_source_bandwidth.is_none() {
                    // Nothing would be left to enforce; the planner refuses such a protection before this.
                    return Err(mapping::validation(format!(
                        "DDoS protection {} enforces nothing pfSense can hold: only syn_proxy and \
                         per_source_bandwidth are carried out here",
                        after.protection_id
                    )));
                }
            }
            // Removing works whatever the protection held: its record says what to put back.
            Operation::DeleteProtection { .. } => {}
            Operation::CreateMirror { after } if !shell => return Err(crate::mirror::unsupported_error(after)),
            Operation::CreateMirror { .. } | Operation::DeleteMirror { .. } => {}
            // Judged against the firewall as it is now by `crate::vpn::check` and again right before the writes.
            Operation::CreateVpnAccount { .. } | Operation::DeleteVpnAccount { .. } => {}
        }
    }
    Ok(())
}

/// A geo list longer than the cap: pfRest checks every entry of an alias against every alias on each write, so
/// the cost of one grows with the square of its length (WAVE2-FACTS §1a), and a US-sized list would not finish.
fn geo_list_too_long(alias: &str, entries: usize, cap: usize) -> BackendError {
    BackendError::new(
        ErrorCode::Unsupported,
        format!(
            "{alias} would hold {entries} prefixes, more than this pfSense target takes in one alias ({cap}): pfRest \
             validates each entry against every alias on every write, so a list this long costs minutes of the \
             firewall's time or times out"
        ),
    )
    .with_hint(
        "block fewer or smaller countries here, raise targets.<name>.geo_alias_max_entries if this firewall \
         copes, or geo-block on an nftables target in front of it",
    )
}

/// The alias a create request makes, as pfRest would answer it (no id yet): what later entry operations of the
/// same plan are merged into.
fn created_shape(req: &FirewallAliasRequest) -> FirewallAlias {
    FirewallAlias {
        name: req.name.clone().unwrap_or_default(),
        type_: req.type_.clone().unwrap_or_default(),
        descr: req.descr.clone().unwrap_or_default(),
        address: req.address.clone().unwrap_or_default(),
        detail: req.detail.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// The new `address`/`detail` arrays of `current` after the entry operations (in order). Entries are matched by
/// canonical value (`203.0.113.9` = `203.0.113.9/32`); a put replaces an entry with the same value.
fn merge_entries(current: &FirewallAlias, ops: &[&Operation]) -> Result<(Vec<String>, Vec<String>), BackendError> {
    let kind = current.type_.as_str();
    let mut slots: Vec<Option<(String, String)>> = current
        .address
        .iter()
        .enumerate()
        .map(|(i, a)| Some((a.clone(), current.detail.get(i).cloned().unwrap_or_default())))
        .collect();
    let mut index: HashMap<String, Vec<usize>> = HashMap::with_capacity(slots.len());
    for (i, a) in current.address.iter().enumerate() {
        index.entry(canonical_value(a)).or_default().push(i);
    }
    let forget = |slots: &mut Vec<Option<(String, String)>>, index: &mut HashMap<String, Vec<usize>>, value: &str| {
        if let Some(at) = index.remove(&canonical_value(value)) {
            for i in at {
                slots[i] = None;
            }
        }
    };
    for op in ops {
        match op {
            Operation::PutAliasEntries { after, .. } => {
                for e in after {
                    forget(&mut slots, &mut index, &e.value);
                    slots.push(Some((device_value(&e.value, kind), entry_detail(&current.name, e)?)));
                    index.insert(canonical_value(&e.value), vec![slots.len() - 1]);
                }
            }
            Operation::RemoveAliasEntries { before, .. } => {
                for e in before {
                    forget(&mut slots, &mut index, &e.value);
                }
            }
            _ => {}
        }
    }
    Ok(slots.into_iter().flatten().unzip())
}

/// Where a new rule goes so that it is the `position`-th rule of its interface (`None` = append at the end;
/// pfRest answers 500 for a placement at or past the end).
fn placement_for_create(
    rules: &[FirewallRule],
    ifaces: &InterfaceMap,
    interface: &str,
    position: usize,
) -> Option<u64> {
    let at = global_index_by(rules, |r| on_interface(r, ifaces, interface), position);
    (at < rules.len()).then_some(at as u64)
}

fn on_interface(rule: &FirewallRule, ifaces: &InterfaceMap, interface: &str) -> bool {
    rule.interface.first().is_some_and(|i| ifaces.normalize(i) == interface)
}

/// Where a moved rule goes (pfRest removes it from its place, then inserts it at `placement`).
fn placement_for_move(
    rules: &[FirewallRule],
    ifaces: &InterfaceMap,
    tracker: i64,
    interface: &str,
    position: usize,
) -> u64 {
    let others: Vec<&FirewallRule> = rules.iter().filter(|r| r.tracker != Some(tracker)).collect();
    global_index_by(&others, |r| on_interface(r, ifaces, interface), position) as u64
}

/// How to undo one completed step.
#[derive(Debug, Clone)]
enum Undo {
    CreatedRule {
        tracker: i64,
    },
    UpdatedRule {
        tracker: i64,
        restore: Box<FirewallRuleRequest>,
        placement: Option<u64>,
    },
    DeletedRule {
        recreate: Box<FirewallRuleRequest>,
        placement: Option<u64>,
    },
    CreatedAlias {
        name: String,
    },
    DeletedAlias {
        recreate: Box<FirewallAliasRequest>,
    },
    PatchedAlias {
        name: String,
        address: Vec<String>,
        detail: Vec<String>,
    },
    CreatedLimiter {
        name: String,
    },
    PatchedLimiter {
        name: String,
        restore: Box<TrafficShaperLimiterRequest>,
    },
    DeletedLimiter {
        recreate: Box<TrafficShaperLimiterRequest>,
    },
    StoreValue {
        key: String,
        previous: String,
    },
    /// The mirror anchor's rules before the change, loaded again.
    Anchor {
        rules: Vec<String>,
    },
}

impl Undo {
    fn on_device(&self) -> bool {
        !matches!(self, Undo::StoreValue { .. })
    }

    fn describe(&self) -> String {
        match self {
            Undo::CreatedRule { tracker } => format!("delete created rule {tracker}"),
            Undo::UpdatedRule { tracker, .. } => format!("restore rule {tracker}"),
            Undo::DeletedRule { .. } => "re-create the deleted rule".into(),
            Undo::CreatedAlias { name } => format!("delete created alias {name}"),
            Undo::DeletedAlias { recreate } => {
                format!("re-create deleted alias {}", recreate.name.as_deref().unwrap_or_default())
            }
            Undo::PatchedAlias { name, .. } => format!("restore the entries of alias {name}"),
            Undo::CreatedLimiter { name } => format!("delete created limiter {name}"),
            Undo::PatchedLimiter { name, .. } => format!("restore limiter {name}"),
            Undo::DeletedLimiter { recreate } => {
                format!("re-create deleted limiter {}", recreate.name.as_deref().unwrap_or_default())
            }
            Undo::StoreValue { key, .. } => format!("restore {key}"),
            Undo::Anchor { .. } => format!("load the anchor {} as it was", crate::mirror::ANCHOR),
        }
    }
}

fn describe_op(op: &Operation) -> String {
    match op {
        Operation::CreateRule { after, .. } => format!("create rule on {}", after.interface),
        Operation::UpdateRule { before, .. } => format!("update rule {}", before.rule_id),
        Operation::DeleteRule { before } => format!("delete rule {}", before.rule_id),
        Operation::CreateAlias { after } => format!("create alias {}", after.name),
        Operation::DeleteAlias { before } => format!("delete alias {}", before.name),
        Operation::PutAliasEntries { alias, .. } | Operation::RemoveAliasEntries { alias, .. } => {
            format!("update the entries of alias {alias}")
        }
        Operation::CreateProtection { after } | Operation::UpdateProtection { after, .. } => {
            format!("set DDoS protection {}", after.protection_id)
        }
        Operation::DeleteProtection { before } => format!("remove DDoS protection {}", before.protection_id),
        Operation::CreateMirror { after } => format!("start mirror {}", after.mirror_id),
        Operation::DeleteMirror { before } => format!("stop mirror {}", before.mirror_id),
        Operation::CreateVpnAccount { after } => format!("create VPN user {}", after.username),
        Operation::DeleteVpnAccount { before } => format!("delete VPN user {}", before.username),
    }
}

/// A pause deadline to record once the device writes succeeded: `None` clears it.
struct PauseChange {
    tracker: i64,
    until: Option<chrono::DateTime<chrono::Utc>>,
    updated_time: Option<i64>,
}

struct Engine<'a> {
    fw: &'a PfSenseFirewall,
    ifaces: InterfaceMap,
    undo: Vec<Undo>,
    applied: Applied,
    pauses: Vec<PauseChange>,
    /// When the last rule creation was answered (see [`crate::PfSenseOptions::tracker_spacing`]).
    last_rule_created: std::sync::Mutex<Option<Instant>>,
    /// The index of the operation whose alias PATCH is the plan's last write: it carries `apply`, which saves the
    /// separate reload request.
    apply_with: Option<usize>,
    /// Whether a write already reloaded the filter.
    applied_inline: bool,
    /// New aliases created with their entries in the same request, whose entry operations are then done.
    created_with_entries: HashSet<String>,
    /// The store's protection records as this plan leaves them (read at the first protection operation), and
    /// whether an operation changed them: written once after every device write succeeded.
    protections: Option<Vec<ProtectionRecord>>,
    protections_changed: bool,
    /// The store's mirror records before the plan (read at the first mirror operation) and as it leaves them.
    mirrors: Option<(Vec<Mirror>, Vec<Mirror>)>,
    /// VPN users' objects written, and the secrets made for the caller.
    vpn: crate::vpn::VpnWork,
}

impl<'a> Engine<'a> {
    fn new(fw: &'a PfSenseFirewall, ifaces: InterfaceMap) -> Self {
        Engine {
            fw,
            ifaces,
            undo: Vec::new(),
            applied: Applied::default(),
            pauses: Vec::new(),
            last_rule_created: std::sync::Mutex::new(None),
            apply_with: None,
            applied_inline: false,
            created_with_entries: HashSet::new(),
            protections: None,
            protections_changed: false,
            mirrors: None,
            vpn: crate::vpn::VpnWork::default(),
        }
    }

    fn client(&self) -> &'a PfRestClient {
        &self.fw.client
    }

    /// Creates a rule at least `tracker_spacing` after the previous creation, so pfRest gives it its own tracker.
    async fn post_rule(&self, req: &FirewallRuleRequest) -> Result<FirewallRule, PfRestError> {
        let spacing = self.fw.options.tracker_spacing;
        let last = *self.last_rule_created.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = last
            && last.elapsed() < spacing
        {
            tokio::time::sleep(spacing - last.elapsed()).await;
        }
        let result = self.client().create_rule(req).await;
        *self.last_rule_created.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        result
    }

    /// The device rule the plan saw, with its current id; `conflict` if it is gone or no longer matches.
    async fn current_rule(&self, before: &Rule, all: Option<&[FirewallRule]>) -> Result<FirewallRule, BackendError> {
        let tracker = tracker_of(&before.rule_id)?;
        let found = match all {
            Some(rules) => rules.iter().find(|r| r.tracker == Some(tracker)).cloned(),
            None => self.client().rule_by_tracker(tracker).await?,
        };
        let current = found.ok_or_else(|| conflict(format!("rule {} no longer exists", before.rule_id)))?;
        let model = self.fw.model_rule(&current, &self.ifaces)?;
        if !same_enforcement(&model, before) {
            return Err(conflict(format!(
                "rule {} was changed on the firewall since the plan was made",
                before.rule_id
            )));
        }
        Ok(current)
    }

    async fn operation(
        &mut self,
        index: usize,
        op: &Operation,
        groups: &HashMap<&str, (usize, Vec<&Operation>)>,
    ) -> Result<(), BackendError> {
        match op {
            Operation::CreateRule { position, after } => self.create_rule(*position, after).await,
            Operation::UpdateRule { before, after, position } => self.update_rule(before, after, *position).await,
            Operation::DeleteRule { before } => self.delete_rule(before).await,
            Operation::CreateAlias { after } => {
                let entries = groups.get(after.name.as_str()).map(|(_, ops)| ops.as_slice()).unwrap_or_default();
                self.create_alias(after, entries).await
            }
            Operation::DeleteAlias { before } => self.delete_alias(&before.name).await,
            Operation::PutAliasEntries { alias, .. } | Operation::RemoveAliasEntries { alias, .. }
                if self.created_with_entries.contains(alias) =>
            {
                Ok(())
            }
            Operation::PutAliasEntries { alias, .. } | Operation::RemoveAliasEntries { alias, .. } => {
                match groups.get(alias.as_str()) {
                    Some((first, ops)) if *first == index => {
                        self.patch_alias(alias, ops, self.apply_with == Some(index)).await
                    }
                    _ => Ok(()),
                }
            }
            Operation::CreateProtection { after } => self.protection(None, Some(after)).await,
            Operation::UpdateProtection { before, after } => self.protection(Some(before), Some(after)).await,
            Operation::DeleteProtection { before } => self.protection(Some(before), None).await,
            Operation::CreateMirror { after } if !self.fw.options.allow_shell => {
                Err(crate::mirror::unsupported_error(after))
            }
            // Without the shell nothing was started, so nothing is left to stop.
            Operation::DeleteMirror { .. } if !self.fw.options.allow_shell => Ok(()),
            Operation::CreateMirror { .. } | Operation::DeleteMirror { .. } => {
                let records = self.mirror_records()?;
                *records = portcullis_core::mirror::mirrors_after(records, [op]);
                Ok(())
            }
            Operation::CreateVpnAccount { .. } | Operation::DeleteVpnAccount { .. } => {
                self.vpn.operation(self.client(), op).await
            }
        }
    }

    /// The mirror records as the plan leaves them so far, read from the store the first time.
    fn mirror_records(&mut self) -> Result<&mut Vec<Mirror>, BackendError> {
        if self.mirrors.is_none() {
            let before = crate::mirror::load(&self.fw.store, &self.fw.name)?;
            self.mirrors = Some((before.clone(), before));
        }
        Ok(&mut self.mirrors.get_or_insert_with(Default::default).1)
    }

    /// Writes the mirror anchor as the plan leaves the records (Portcullis' block copies read from the rules as
    /// the plan left them), checks it, then the records; both undoable.
    async fn write_mirrors(&mut self) -> Result<(), BackendError> {
        let Some((before, after)) = self.mirrors.clone() else { return Ok(()) };
        if before == after {
            return Ok(());
        }
        let state = self.rules_now().await?;
        let previous = crate::mirror::anchor_rules(&before, &state).unwrap_or_default();
        let rules = crate::mirror::anchor_rules(&after, &state)?;
        self.undo.push(Undo::Anchor { rules: previous });
        self.fw.load_anchor(&rules, &after, &state.interfaces).await?;
        let key = crate::mirror::mirrors_key(&self.fw.name);
        let previous = self.fw.store.meta_get(&key).map_err(store_error)?.unwrap_or_default();
        self.fw.store.meta_set(&key, &crate::mirror::encode(&after)).map_err(store_error)?;
        self.undo.push(Undo::StoreValue { key, previous });
        Ok(())
    }

    /// The interfaces and rules on the firewall now (no aliases): what the anchor's block copies are made from.
    async fn rules_now(&self) -> Result<portcullis_core::model::RuleSet, BackendError> {
        let ((config, stats), raw) =
            tokio::try_join!(self.fw.interfaces(), async { self.client().rules().await.map_err(BackendError::from) })?;
        let rules = raw.iter().map(|r| self.fw.model_rule(r, &self.ifaces)).collect::<Result<Vec<_>, _>>()?;
        Ok(portcullis_core::model::RuleSet {
            interfaces: mapping::interfaces(&config, &stats),
            rules,
            ..Default::default()
        })
    }

    /// The protection records, read from the store the first time.
    fn protection_records(&mut self) -> Result<&mut Vec<ProtectionRecord>, BackendError> {
        if self.protections.is_none() {
            self.protections = Some(ddos::load(&self.fw.store, &self.fw.name)?);
        }
        Ok(self.protections.get_or_insert_with(Vec::new))
    }

    /// Carries out one protection change: `before` is what the plan saw (`None`: a creation), `after` what it
    /// wants (`None`: a removal). In this order, so that every reference is valid when it is written:
    ///
    /// 1. everything that can refuse is judged on the rules and limiters read now, before any write: the rules the
    ///    SYN proxy and the limiter go on, another limiter already on one of them, a limiter of the same name
    ///    that is not Portcullis';
    /// 2. the limiter is created, or PATCHed to the cap asked (a rule can only name an existing limiter);
    /// 3. the rules it now covers get `dnpipe`; the rules it no longer covers get their earlier `dnpipe` back;
    /// 4. the SYN proxy goes on the rules it now covers, and the rules it no longer covers get their earlier
    ///    statetype back;
    /// 5. a limiter no longer wanted is deleted once no rule names it.
    ///
    /// Every rule is read by tracker right before its PATCH, which carries only the field it changes (pfRest merges
    /// a PATCH into the stored rule, so the GUI's advanced options stay); every write is undone like any other if a
    /// later step fails. The record is only queued here and written after the device writes.
    async fn protection(
        &mut self,
        before: Option<&Protection>,
        after: Option<&Protection>,
    ) -> Result<(), BackendError> {
        let Some(id) = after.or(before).map(|p| p.protection_id.clone()) else { return Ok(()) };
        let rules = self.client().rules().await?;
        let records = self.protection_records()?.clone();
        let index = records.iter().position(|r| r.protection.protection_id == id);
        let limiter = ddos::limiter_name(&id);
        let wants_cap = after.and_then(|p| p.per_source_bandwidth);
        // Whether the limiter of this name is this protection's to delete: the plan saw it capped, or its record
        // names the limiter.
        let had_cap = before.is_some_and(|p| p.per_source_bandwidth.is_some())
            || index.is_some_and(|i| records[i].limiter.as_ref().is_some_and(|l| l.name == limiter));
        let limiters = if wants_cap.is_some()
            || had_cap
            || index.is_some_and(|i| records[i].protection.per_source_bandwidth.is_some())
        {
            self.client().limiters().await?
        } else {
            Vec::new()
        };
        let held = index.and_then(|i| records[i].held(&rules, &limiters));
        match (before, &held) {
            (None, Some(_)) => return Err(conflict(format!("DDoS protection {id} already exists"))),
            (None, None) => {}
            (Some(_), None) => return Err(conflict(format!("DDoS protection {id} is not there any more"))),
            (Some(b), Some(h)) if !portcullis_core::protection::same_enforcement(h, b) => {
                return Err(conflict(format!("DDoS protection {id} was changed meanwhile")));
            }
            (Some(_), Some(_)) => {}
        }
        // On a creation this is a record the device no longer holds whole (left out of the state): what it says
        // the rules had before Portcullis first changed them is still true, and rules it changed that the new
        // protection does not cover get that back.
        let old = index.map(|i| records[i].clone());

        // 1. Judged before any write.
        let proxy_targets = match after {
            Some(p) if p.syn_proxy => ddos::proxy_targets(self.client(), &self.ifaces, p, &rules).await?,
            _ => Vec::new(),
        };
        let pipe_targets = match (after, wants_cap) {
            (Some(p), Some(_)) => ddos::pipe_targets(self.client(), &self.ifaces, p, &rules).await?,
            _ => Vec::new(),
        };
        let device_limiter = limiters.iter().find(|l| l.name == limiter).cloned();
        if wants_cap.is_some()
            && let Some(l) = &device_limiter
            && !ddos::is_own_limiter(l, &id)
            && old.as_ref().and_then(|o| o.limiter.as_ref()).is_none_or(|r| r.name != limiter)
        {
            return Err(foreign_limiter(&limiter, &id));
        }

        // 2. The limiter.
        if let (Some(p), Some(cap)) = (after, wants_cap) {
            self.ensure_limiter(p, cap, device_limiter.as_ref()).await?;
        }

        // 3. The rules' pipes.
        let mut piped = Vec::with_capacity(pipe_targets.len());
        for target in &pipe_targets {
            let Some(tracker) = target.tracker else { continue };
            let current = self.still_the_target(target, "the limiter").await?;
            let previous = if current.dnpipe.as_deref() == Some(limiter.as_str()) {
                // Named already: by this protection's earlier record, or by hand; either way it is this
                // protection's limiter now, and a removal clears it.
                old.as_ref().and_then(|o| o.previous_dnpipe_of(tracker)).unwrap_or(None)
            } else if current.dnpipe.is_some() || current.pdnpipe.is_some() {
                return Err(conflict(format!("rule {tracker} was given another limiter while the cap was being set")));
            } else {
                self.set_dnpipe(&current, Some(&limiter), None).await?;
                None
            };
            piped.push(PipedRule { tracker, previous_dnpipe: previous });
        }
        if let Some(old_limiter) = old.as_ref().and_then(|o| o.limiter.as_ref()) {
            for rule in old_limiter.rules.iter().filter(|r| !piped.iter().any(|p| p.tracker == r.tracker)) {
                let Some(current) = self.client().rule_by_tracker(rule.tracker).await? else {
                    // Deleted since: nothing to give back.
                    continue;
                };
                if current.dnpipe.as_deref() != Some(old_limiter.name.as_str()) {
                    // Changed by someone since: theirs stands.
                    continue;
                }
                self.set_dnpipe(&current, rule.previous_dnpipe.as_deref(), Some(&old_limiter.name)).await?;
            }
        }
        let delete_limiter =
            wants_cap.is_none() && device_limiter.as_ref().is_some_and(|l| had_cap || ddos::is_own_limiter(l, &id));
        if delete_limiter {
            // Rules that name the limiter without being in the record (pointed at it by hand) would be left naming
            // a pipe that no longer exists, which fails every later PATCH of them: they lose it too.
            for stray in rules.iter().filter(|r| {
                (r.dnpipe.as_deref() == Some(limiter.as_str()) || r.pdnpipe.as_deref() == Some(limiter.as_str()))
                    && old.as_ref().is_none_or(|o| o.previous_dnpipe_of(r.tracker.unwrap_or_default()).is_none())
            }) {
                let Some(tracker) = stray.tracker else { continue };
                let Some(current) = self.client().rule_by_tracker(tracker).await? else { continue };
                tracing::warn!(tracker, %limiter, "a rule names the limiter of a protection being removed; unhooking it");
                self.unhook(&current, &limiter).await?;
            }
        }

        // 4. The SYN proxy.
        let mut proxied = Vec::with_capacity(proxy_targets.len());
        for target in &proxy_targets {
            let Some(tracker) = target.tracker else { continue };
            let current = self.still_the_target(target, "the SYN proxy").await?;
            let now = current.statetype.clone();
            let previous = if now.as_deref() == Some(SYNPROXY) {
                // Proxied already: by this protection's earlier record, or by someone else (then it keeps it).
                old.as_ref().and_then(|o| o.previous_of(tracker)).unwrap_or_else(|| Some(SYNPROXY.to_string()))
            } else {
                self.set_statetype(&current, SYNPROXY, now.as_deref().unwrap_or(KEEP_STATE)).await?;
                now
            };
            proxied.push(ProxiedRule { tracker, previous_statetype: previous });
        }
        if let Some(old) = &old {
            for rule in old.rules.iter().filter(|r| !proxied.iter().any(|p| p.tracker == r.tracker)) {
                let restore = rule.previous_statetype.as_deref().unwrap_or(KEEP_STATE);
                if restore == SYNPROXY {
                    // It had the proxy before Portcullis came; it keeps it.
                    continue;
                }
                let Some(current) = self.client().rule_by_tracker(rule.tracker).await? else {
                    // Deleted since: nothing to give back.
                    continue;
                };
                if current.statetype.as_deref() != Some(SYNPROXY) {
                    // Changed by someone since: theirs stands.
                    continue;
                }
                self.set_statetype(&current, restore, SYNPROXY).await?;
            }
        }

        // 5. A limiter no longer wanted.
        if delete_limiter {
            self.remove_limiter(&limiter).await?;
        }

        let records = self.protection_records()?;
        records.retain(|r| r.protection.protection_id != id);
        if let Some(p) = after {
            let limiter = wants_cap.map(|_| LimiterRecord { name: limiter.clone(), rules: piped });
            records.push(ProtectionRecord { protection: p.clone(), rules: proxied, limiter });
        }
        self.protections_changed = true;
        Ok(())
    }

    /// The rule judged a target a moment ago, read again by tracker right before its PATCH; `conflict` if it is
    /// gone or no longer the same (what decides that: its model values and its gateway).
    async fn still_the_target(&self, target: &FirewallRule, what: &str) -> Result<FirewallRule, BackendError> {
        let tracker = target
            .tracker
            .ok_or_else(|| mapping::unexpected("GET /api/v2/firewall/rules: a rule without a tracker"))?;
        let current = self
            .client()
            .rule_by_tracker(tracker)
            .await?
            .ok_or_else(|| conflict(format!("rule {tracker} vanished while {what} was being set")))?;
        let model = |r: &FirewallRule| mapping::rule_from_device(r, &self.ifaces, None).ok();
        let unchanged = matches!((model(&current), model(target)), (Some(a), Some(b)) if same_enforcement(&a, &b))
            && current.gateway == target.gateway;
        if !unchanged {
            return Err(conflict(format!("rule {tracker} changed while {what} was being set")));
        }
        Ok(current)
    }

    /// PATCHes only the `statetype` of `rule` (read by tracker right before) to `to`; the undo PATCHes `back`.
    async fn set_statetype(&mut self, rule: &FirewallRule, to: &str, back: &str) -> Result<(), BackendError> {
        let change = FirewallRuleRequest { statetype: Some(to.to_string()), ..Default::default() };
        let undo = FirewallRuleRequest { statetype: Some(back.to_string()), ..Default::default() };
        self.patch_rule(rule, change, undo, |now| now.statetype.as_deref() == Some(to)).await
    }

    /// PATCHes only the `dnpipe` of `rule` (read by tracker right before) to `to` (`None`: an explicit `null`,
    /// which is how pfRest clears it: the field allows null, not the empty string); the undo PATCHes `back`.
    async fn set_dnpipe(
        &mut self,
        rule: &FirewallRule,
        to: Option<&str>,
        back: Option<&str>,
    ) -> Result<(), BackendError> {
        let change = FirewallRuleRequest { dnpipe: Some(to.map(str::to_string)), ..Default::default() };
        let undo = FirewallRuleRequest { dnpipe: Some(back.map(str::to_string)), ..Default::default() };
        self.patch_rule(rule, change, undo, |now| now.dnpipe.as_deref() == to).await
    }

    /// Clears every pipe of `rule` that names `limiter` (the undo names it again).
    async fn unhook(&mut self, rule: &FirewallRule, limiter: &str) -> Result<(), BackendError> {
        let ours = |pipe: &Option<String>| pipe.as_deref() == Some(limiter);
        let mut change = FirewallRuleRequest::default();
        let mut undo = FirewallRuleRequest::default();
        if ours(&rule.pdnpipe) {
            change.pdnpipe = Some(None);
            undo.pdnpipe = Some(rule.pdnpipe.clone());
        }
        if ours(&rule.dnpipe) {
            // pfRest refuses a pdnpipe without a dnpipe: a rule whose Out pipe is another limiter keeps both.
            if rule.pdnpipe.is_none() || ours(&rule.pdnpipe) {
                change.dnpipe = Some(None);
                undo.dnpipe = Some(rule.dnpipe.clone());
            }
        }
        if !change.has_changes() {
            return Ok(());
        }
        let cleared = |now: &FirewallRule| !ours(&now.dnpipe) && !ours(&now.pdnpipe);
        self.patch_rule(rule, change, undo, cleared).await
    }

    /// PATCHes the fields of `change` onto `rule` (read by tracker right before) and queues `undo`. When the answer
    /// is lost, the rule is read again and the undo queued if `landed` says the PATCH took effect.
    async fn patch_rule(
        &mut self,
        rule: &FirewallRule,
        change: FirewallRuleRequest,
        undo: FirewallRuleRequest,
        landed: impl Fn(&FirewallRule) -> bool,
    ) -> Result<(), BackendError> {
        let tracker =
            rule.tracker.ok_or_else(|| mapping::unexpected("GET /api/v2/firewall/rules: a rule without a tracker"))?;
        let id = rule.id.ok_or_else(|| mapping::unexpected("GET /api/v2/firewall/rules: a rule without an id"))?;
        let req = FirewallRuleRequest { id: Some(id), ..change };
        let undo = Undo::UpdatedRule { tracker, restore: Box::new(undo), placement: None };
        // A paused rule's pause is tied to its `updated_time`, which this PATCH moves: tie it to the new one, or
        // the pause would read as an edit by hand and never end.
        let paused = self.fw.paused_until(rule)?;
        match self.client().update_rule(&req).await {
            Ok(updated) => {
                self.undo.push(undo);
                if paused.is_some() {
                    self.pauses.push(PauseChange { tracker, until: paused, updated_time: updated.updated_time });
                }
                Ok(())
            }
            Err(e) => {
                if e.outcome_unknown
                    && let Ok(Some(now)) = self.client().rule_by_tracker(tracker).await
                    && landed(&now)
                {
                    tracing::warn!(tracker, "a rule update reported an error but landed; it will be undone");
                    self.undo.push(undo);
                }
                Err(e.into())
            }
        }
    }

    /// Creates `p`'s limiter with cap `cap`, or PATCHes the one there (Portcullis') to it; the undo deletes what
    /// was created or PATCHes back what was there.
    async fn ensure_limiter(
        &mut self,
        p: &Protection,
        cap: Bandwidth,
        existing: Option<&TrafficShaperLimiter>,
    ) -> Result<(), BackendError> {
        let wanted = ddos::limiter_request(p, cap);
        let name = ddos::limiter_name(&p.protection_id);
        let Some(existing) = existing else {
            return match self.client().create_limiter(&wanted).await {
                Ok(_) => {
                    self.undo.push(Undo::CreatedLimiter { name });
                    Ok(())
                }
                Err(e) => {
                    if e.outcome_unknown && matches!(self.client().limiter_by_name(&name).await, Ok(Some(_))) {
                        tracing::warn!(limiter = %name, "a limiter creation reported an error but landed; it will be undone");
                        self.undo.push(Undo::CreatedLimiter { name });
                    }
                    Err(e.into())
                }
            };
        };
        let Some(mut req) = ddos::limiter_patch(existing, &wanted) else { return Ok(()) };
        req.id = existing.id;
        let undo = Undo::PatchedLimiter { name: name.clone(), restore: Box::new(ddos::limiter_settings(existing)) };
        match self.client().update_limiter(&req).await {
            Ok(_) => {
                self.undo.push(undo);
                Ok(())
            }
            Err(e) => {
                if e.outcome_unknown
                    && let Ok(Some(now)) = self.client().limiter_by_name(&name).await
                    && ddos::limiter_patch(&now, &wanted).is_none()
                {
                    tracing::warn!(limiter = %name, "a limiter update reported an error but landed; it will be undone");
                    self.undo.push(undo);
                }
                Err(e.into())
            }
        }
    }

    /// Deletes the limiter `name` (read by name right before: its id shifts); the undo creates it again as it was.
    async fn remove_limiter(&mut self, name: &str) -> Result<(), BackendError> {
        let Some(current) = self.client().limiter_by_name(name).await? else { return Ok(()) };
        let id = current.id.ok_or_else(|| {
            mapping::unexpected("GET /api/v2/firewall/traffic_shaper/limiters: a limiter without an id")
        })?;
        let recreate = TrafficShaperLimiterRequest { name: Some(name.to_string()), ..ddos::limiter_settings(&current) };
        let undo = Undo::DeletedLimiter { recreate: Box::new(recreate) };
        match self.client().delete_limiter(id, false).await {
            Ok(_) => {
                self.undo.push(undo);
                Ok(())
            }
            Err(e) => {
                if e.outcome_unknown && matches!(self.client().limiter_by_name(name).await, Ok(None)) {
                    tracing::warn!(limiter = %name, "a limiter deletion reported an error but landed; it will be undone");
                    self.undo.push(undo);
                }
                Err(e.into())
            }
        }
    }

    async fn create_rule(&mut self, position: usize, after: &Rule) -> Result<(), BackendError> {
        let fields = RuleFields::from_rule(after)?;
        for attempt in 1..=3 {
            let rules = self.client().rules().await?;
            let mut req = fields.create_request();
            req.controls.placement = placement_for_create(&rules, &self.ifaces, &fields.interface, position);
            let created = self.post_rule(&req).await;
            let rule = match created {
                Ok(rule) => rule,
                Err(e) => {
                    if e.outcome_unknown {
                        self.reconcile_create(&rules, after).await;
                    }
                    return Err(e.into());
                }
            };
            let Some(tracker) = rule.tracker else {
                self.reconcile_create(&rules, after).await;
                return Err(mapping::unexpected("POST /api/v2/firewall/rule: the created rule has no tracker"));
            };
            let taken = rules.iter().any(|r| r.tracker == Some(tracker))
                || self.applied.created_rules.iter().any(|id| id.as_str() == tracker.to_string());
            if taken {
                // Another rule was created in the same second and has this tracker: remove ours (by the id the
                // answer gave it) and create it again a second later.
                let id =
                    rule.id.ok_or_else(|| mapping::unexpected("POST /api/v2/firewall/rule: no id in the answer"))?;
                tracing::warn!(tracker, attempt, "a new rule got a tracker that is already in use; creating it again");
                self.client().delete_rule(id, false).await?;
                tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
                continue;
            }
            self.undo.push(Undo::CreatedRule { tracker });
            self.applied.created_rules.push(RuleId(tracker.to_string()));
            if after.paused_until.is_some() && !after.enabled {
                self.pauses.push(PauseChange { tracker, until: after.paused_until, updated_time: rule.updated_time });
            }
            return Ok(());
        }
        Err(BackendError::new(
            ErrorCode::ApplyFailed,
            "POST /api/v2/firewall/rule: pfSense kept giving the new rule a tracker that another rule already has",
        )
        .with_hint("retry in a few seconds"))
    }

    /// After a creation whose outcome is unknown: a new rule that matches `after` is the one we made; undo it too.
    async fn reconcile_create(&mut self, before: &[FirewallRule], after: &Rule) {
        let known: HashSet<i64> = before.iter().filter_map(|r| r.tracker).collect();
        let Ok(now) = self.client().rules().await else { return };
        let wanted = Rule { paused_until: None, ..after.clone() };
        for r in now.iter().filter(|r| r.tracker.is_some_and(|t| !known.contains(&t))) {
            let Ok(model) = mapping::rule_from_device(r, &self.ifaces, None) else { continue };
            if same_enforcement(&model, &wanted) {
                tracing::warn!(tracker = ?r.tracker, "a rule creation reported an error but landed; it will be undone");
                self.undo.push(Undo::CreatedRule { tracker: r.tracker.unwrap_or_default() });
                return;
            }
        }
    }

    async fn update_rule(&mut self, before: &Rule, after: &Rule, position: Option<usize>) -> Result<(), BackendError> {
        let tracker = tracker_of(&before.rule_id)?;
        let all = match position {
            Some(_) => Some(self.client().rules().await?),
            None => None,
        };
        let current = self.current_rule(before, all.as_deref()).await?;
        let bf = RuleFields::from_rule(before)?;
        let af = RuleFields::from_rule(after)?;
        let mut req = bf.patch_to(&af);
        let mut restore_at = None;
        if let (Some(p), Some(all)) = (position, all.as_deref()) {
            req.controls.placement = Some(placement_for_move(all, &self.ifaces, tracker, &af.interface, p));
            restore_at = current.id;
        }
        let pause_until = if after.enabled { None } else { after.paused_until };
        if !req.has_changes() && req.controls.placement.is_none() {
            self.pauses.push(PauseChange { tracker, until: pause_until, updated_time: current.updated_time });
            return Ok(());
        }
        req.id = current.id;
        match self.client().update_rule(&req).await {
            Ok(updated) => {
                self.undo.push(Undo::UpdatedRule {
                    tracker,
                    restore: Box::new(af.patch_to(&bf)),
                    placement: restore_at,
                });
                self.pauses.push(PauseChange { tracker, until: pause_until, updated_time: updated.updated_time });
                Ok(())
            }
            Err(e) => {
                if e.outcome_unknown
                    && let Ok(Some(now)) = self.client().rule_by_tracker(tracker).await
                    && (now != current)
                {
                    tracing::warn!(tracker, "a rule update reported an error but landed; it will be undone");
                    self.undo.push(Undo::UpdatedRule {
                        tracker,
                        restore: Box::new(af.patch_to(&bf)),
                        placement: restore_at,
                    });
                }
                Err(e.into())
            }
        }
    }

    async fn delete_rule(&mut self, before: &Rule) -> Result<(), BackendError> {
        let tracker = tracker_of(&before.rule_id)?;
        let current = self.current_rule(before, None).await?;
        let id = current.id.ok_or_else(|| mapping::unexpected("GET /api/v2/firewall/rules: a rule without an id"))?;
        let undo =
            Undo::DeletedRule { recreate: Box::new(FirewallRuleRequest::recreate(&current)), placement: Some(id) };
        match self.client().delete_rule(id, false).await {
            Ok(_) => {
                self.undo.push(undo);
                self.pauses.push(PauseChange { tracker, until: None, updated_time: None });
                Ok(())
            }
            Err(e) => {
                if e.outcome_unknown && matches!(self.client().rule_by_tracker(tracker).await, Ok(None)) {
                    tracing::warn!(tracker, "a rule deletion reported an error but landed; it will be undone");
                    self.undo.push(undo);
                }
                Err(e.into())
            }
        }
    }

    /// Creates an alias; a geo list's entries go in the same POST: one request instead of two, and pfRest
    /// validates the long list once. (A block list is created empty and filled by the plan's PATCH, which carries
    /// the filter reload.)
    async fn create_alias(
        &mut self,
        after: &portcullis_core::model::Alias,
        entry_ops: &[&Operation],
    ) -> Result<(), BackendError> {
        if self.client().alias_by_name(&after.name).await?.is_some() {
            return Err(conflict(format!("alias {} already exists", after.name)));
        }
        let mut req = alias_create_request(after)?;
        let only_puts = is_geo_list(&after.name)
            && !entry_ops.is_empty()
            && entry_ops.iter().all(|op| matches!(op, Operation::PutAliasEntries { .. }));
        if only_puts {
            let (address, detail) = merge_entries(&created_shape(&req), entry_ops)?;
            req.address = Some(address);
            req.detail = Some(detail);
        }
        match self.client().create_alias(&req).await {
            Ok(_) => {
                self.undo.push(Undo::CreatedAlias { name: after.name.clone() });
                if only_puts {
                    self.created_with_entries.insert(after.name.clone());
                }
                Ok(())
            }
            Err(e) => {
                if e.outcome_unknown && matches!(self.client().alias_by_name(&after.name).await, Ok(Some(_))) {
                    tracing::warn!(alias = %after.name, "an alias creation reported an error but landed; it will be undone");
                    self.undo.push(Undo::CreatedAlias { name: after.name.clone() });
                }
                Err(e.into())
            }
        }
    }

    /// Deletes an alias the plan's earlier operations stopped using; the undo creates it again as it was.
    async fn delete_alias(&mut self, name: &str) -> Result<(), BackendError> {
        let current =
            self.client().alias_by_name(name).await?.ok_or_else(|| conflict(format!("alias {name} does not exist")))?;
        let id = current.id.ok_or_else(|| mapping::unexpected("GET /api/v2/firewall/alias: no id in the answer"))?;
        let recreate = FirewallAliasRequest {
            name: Some(current.name.clone()),
            type_: Some(current.type_.clone()),
            descr: Some(current.descr.clone()),
            address: Some(current.address.clone()),
            detail: Some(current.detail.clone()),
            ..Default::default()
        };
        match self.client().delete_alias(id, false).await {
            Ok(_) => {
                self.undo.push(Undo::DeletedAlias { recreate: Box::new(recreate) });
                Ok(())
            }
            Err(e) => {
                if e.outcome_unknown && matches!(self.client().alias_by_name(name).await, Ok(None)) {
                    tracing::warn!(alias = %name, "an alias deletion reported an error but landed; it will be undone");
                    self.undo.push(Undo::DeletedAlias { recreate: Box::new(recreate) });
                }
                Err(e.into())
            }
        }
    }

    /// Every entry change of one alias in a single PATCH of its `address`/`detail` arrays; `apply_now` makes the
    /// PATCH reload the filter too (the plan's last write).
    async fn patch_alias(&mut self, name: &str, ops: &[&Operation], apply_now: bool) -> Result<(), BackendError> {
        let current =
            self.client().alias_by_name(name).await?.ok_or_else(|| conflict(format!("alias {name} does not exist")))?;
        let (address, detail) = merge_entries(&current, ops)?;
        if address == current.address && detail == current.detail {
            return Ok(());
        }
        let req = FirewallAliasRequest {
            id: current.id,
            address: Some(address.clone()),
            detail: Some(detail),
            controls: if apply_now { WriteControls::apply_now() } else { WriteControls::default() },
            ..Default::default()
        };
        let undo = Undo::PatchedAlias {
            name: name.to_string(),
            address: current.address.clone(),
            detail: current.detail.clone(),
        };
        match self.client().update_alias(&req).await {
            Ok(_) => {
                self.undo.push(undo);
                self.applied_inline |= apply_now;
                Ok(())
            }
            Err(e) => {
                if e.outcome_unknown
                    && let Ok(Some(now)) = self.client().alias_by_name(name).await
                    && now.address == address
                {
                    tracing::warn!(alias = %name, "an alias update reported an error but landed; it will be undone");
                    self.undo.push(undo);
                }
                Err(e.into())
            }
        }
    }

    /// Writes the pause deadlines of the plan (after every device write succeeded), undoable like the rest.
    fn record_pauses(&mut self) -> Result<(), BackendError> {
        for change in std::mem::take(&mut self.pauses) {
            let key = pause_key(&self.fw.name, &change.tracker.to_string());
            let previous = self.fw.store.meta_get(&key).map_err(store_error)?.unwrap_or_default();
            let value = change.until.map(|t| PfSenseFirewall::pause_record(t, change.updated_time)).unwrap_or_default();
            if value == previous {
                continue;
            }
            self.fw.store.meta_set(&key, &value).map_err(store_error)?;
            self.undo.push(Undo::StoreValue { key, previous });
        }
        Ok(())
    }

    /// Writes the protection records the plan's operations left (after every device write succeeded), undoable
    /// like the rest: a failure after it (the filter reload) puts the old value back.
    fn record_protections(&mut self) -> Result<(), BackendError> {
        if !self.protections_changed {
            return Ok(());
        }
        let key = ddos::protections_key(&self.fw.name);
        let value = ddos::encode(self.protections.as_deref().unwrap_or_default());
        let previous = self.fw.store.meta_get(&key).map_err(store_error)?.unwrap_or_default();
        if value == previous {
            return Ok(());
        }
        self.fw.store.meta_set(&key, &value).map_err(store_error)?;
        self.undo.push(Undo::StoreValue { key, previous });
        Ok(())
    }

    /// Reloads the filter and waits until pfSense reports no pending change. When the last write carried a
    /// synchronous reload (`apply`, `async: false`), pfRest answered it after the reload ran, so nothing is left
    /// to ask; the read-back that follows checks what the firewall holds.
    async fn commit(&self) -> Result<(), BackendError> {
        if self.applied_inline {
            return Ok(());
        }
        self.client().apply_firewall().await?;
        let opts = &self.fw.options;
        let mut pending = Vec::new();
        for attempt in 0..opts.apply_poll_attempts.max(1) {
            let status = self.client().apply_status().await?;
            if status.applied == Some(true) {
                return Ok(());
            }
            pending = status.pending_subsystems;
            if attempt + 1 < opts.apply_poll_attempts {
                tokio::time::sleep(opts.apply_poll_interval).await;
            }
        }
        Err(BackendError::new(
            ErrorCode::ApplyFailed,
            format!(
                "POST /api/v2/firewall/apply: pfSense still reports pending changes ({}) after the filter reload",
                if pending.is_empty() { "none named".to_string() } else { pending.join(", ") }
            ),
        )
        .with_hint("check Status > Filter Reload and the system log on the firewall"))
    }

    async fn undo_one(&self, undo: &Undo) -> Result<(), BackendError> {
        let c = self.client();
        match undo {
            Undo::CreatedRule { tracker } => {
                if let Some(rule) = c.rule_by_tracker(*tracker).await?
                    && let Some(id) = rule.id
                {
                    c.delete_rule(id, false).await?;
                }
            }
            Undo::UpdatedRule { tracker, restore, placement } => {
                let rule = c
                    .rule_by_tracker(*tracker)
                    .await?
                    .ok_or_else(|| conflict(format!("rule {tracker} vanished before it could be restored")))?;
                let mut req = (**restore).clone();
                req.id = rule.id;
                req.controls.placement = *placement;
                if req.has_changes() || placement.is_some() {
                    c.update_rule(&req).await?;
                }
            }
            Undo::DeletedRule { recreate, placement } => {
                let count = c.rules().await?.len() as u64;
                let mut req = (**recreate).clone();
                req.controls.placement = placement.filter(|p| *p < count);
                let rule = self.post_rule(&req).await?;
                tracing::warn!(
                    tracker = ?rule.tracker,
                    "a deleted rule was re-created by a rollback; pfSense gave it a new tracker (rule id)"
                );
            }
            Undo::CreatedAlias { name } => {
                if let Some(alias) = c.alias_by_name(name).await?
                    && let Some(id) = alias.id
                {
                    c.delete_alias(id, false).await?;
                }
            }
            Undo::DeletedAlias { recreate } => {
                let name = recreate.name.as_deref().unwrap_or_default();
                if c.alias_by_name(name).await?.is_none() {
                    c.create_alias(recreate).await?;
                }
            }
            Undo::PatchedAlias { name, address, detail } => {
                let alias = c
                    .alias_by_name(name)
                    .await?
                    .ok_or_else(|| conflict(format!("alias {name} vanished before it could be restored")))?;
                let req = FirewallAliasRequest {
                    id: alias.id,
                    address: Some(address.clone()),
                    detail: Some(detail.clone()),
                    ..Default::default()
                };
                c.update_alias(&req).await?;
            }
            Undo::CreatedLimiter { name } => {
                if let Some(limiter) = c.limiter_by_name(name).await?
                    && let Some(id) = limiter.id
                {
                    c.delete_limiter(id, false).await?;
                }
            }
            Undo::PatchedLimiter { name, restore } => {
                let limiter = c
                    .limiter_by_name(name)
                    .await?
                    .ok_or_else(|| conflict(format!("limiter {name} vanished before it could be restored")))?;
                let req = TrafficShaperLimiterRequest { id: limiter.id, ..(**restore).clone() };
                c.update_limiter(&req).await?;
            }
            Undo::DeletedLimiter { recreate } => {
                let name = recreate.name.as_deref().unwrap_or_default();
                if c.limiter_by_name(name).await?.is_none() {
                    c.create_limiter(recreate).await?;
                }
            }
            Undo::StoreValue { key, previous } => {
                self.fw.store.meta_set(key, previous).map_err(store_error)?;
            }
            Undo::Anchor { rules } => {
                for command in crate::mirror::load_commands(rules)? {
                    self.fw.shell(&command).await?;
                }
            }
        }
        Ok(())
    }

    /// Undoes every completed step, newest first, then reloads the filter if the device was touched. Returns the
    /// steps that could not be undone.
    async fn rollback(&mut self) -> (usize, Vec<String>) {
        self.fw.cache.forget_state();
        // The undo writes carry no `apply`: the reload below is requested on its own.
        self.applied_inline = false;
        let undo = std::mem::take(&mut self.undo);
        let touched_device = undo.iter().any(Undo::on_device);
        // VPN operations come last in their plans and touch no rule or alias: theirs are undone first.
        let (vpn_undone, mut failures) = self.vpn.rollback(self.client()).await;
        for u in undo.iter().rev() {
            if let Err(e) = self.undo_one(u).await {
                failures.push(format!("{}: {}", u.describe(), e.message));
            }
        }
        if touched_device && let Err(e) = self.commit().await {
            failures.push(format!("reload the filter: {}", e.message));
        }
        (undo.len() + vpn_undone, failures)
    }

    /// Rolls back and turns the step's error into the error of the whole apply.
    async fn fail(&mut self, error: BackendError, step: &str) -> BackendError {
        let (undone, failures) = self.rollback().await;
        let code = match error.code {
            ErrorCode::UnexpectedResponse | ErrorCode::InternalError => ErrorCode::ApplyFailed,
            ErrorCode::NotFound => ErrorCode::Conflict,
            other => other,
        };
        let outcome = if failures.is_empty() {
            if undone == 0 {
                "nothing was changed".to_string()
            } else {
                format!("the {undone} completed step(s) were rolled back")
            }
        } else {
            format!("ROLLBACK INCOMPLETE ({})", failures.join("; "))
        };
        let hint = if failures.is_empty() {
            error.hint
        } else {
            Some(
                "the firewall may hold part of this change: read it back (get_firewall_rules, list_blocks) and fix \
                 what remains"
                    .to_string(),
            )
        };
        tracing::warn!(step, error = %error.message, %outcome, "pfSense apply failed");
        BackendError { code, message: format!("{step} failed: {}; {outcome}", error.message), hint }
    }
}

pub(crate) async fn apply(fw: &PfSenseFirewall, plan: &ChangePlan) -> Result<Applied, BackendError> {
    let _writer = fw.writer.lock().await;
    prevalidate(plan, fw.options.geo_alias_max_entries, fw.options.allow_shell)?;
    crate::vpn::note_new_users(&fw.store, &fw.name, plan)?;
    let (interfaces, _) = fw.interfaces().await?;
    let mut engine = Engine::new(fw, InterfaceMap::new(&interfaces));
    let groups = alias_groups(plan);
    engine.apply_with = last_write_is_a_patch(plan, &groups);
    for (index, op) in plan.operations.iter().enumerate() {
        if let Err(e) = engine.operation(index, op, &groups).await {
            return Err(engine.fail(e, &describe_op(op)).await);
        }
    }
    if let Err(e) = engine.write_mirrors().await {
        return Err(engine.fail(e, "write the mirror anchor").await);
    }
    if let Err(e) = engine.vpn.finish(fw.client.as_ref()).await {
        return Err(engine.fail(e, "apply the WireGuard changes").await);
    }
    let touched_device = engine.undo.iter().any(Undo::on_device);
    if let Err(e) = engine.record_pauses() {
        return Err(engine.fail(e, "record the pause deadlines").await);
    }
    if let Err(e) = engine.record_protections() {
        return Err(engine.fail(e, "record the DDoS protections").await);
    }
    if touched_device && let Err(e) = engine.commit().await {
        return Err(engine.fail(e, "apply the change on the firewall").await);
    }
    if let Err(e) = crate::vpn::forget_deleted_users(&fw.store, &fw.name, plan) {
        // Only costs reads: the name stays on the list of users to look for.
        tracing::warn!(error = %e.message, "the deleted VPN users could not be taken off the store's list");
    }
    engine.applied.handed_over = std::mem::take(&mut engine.vpn.handed_over);
    Ok(engine.applied)
}

/// The index of the alias PATCH that is the plan's last write, if the last write is one. Rule writes keep their
/// own reload: their outcome checks and retries must not have reloaded the filter half-way.
fn last_write_is_a_patch(plan: &ChangePlan, groups: &HashMap<&str, (usize, Vec<&Operation>)>) -> Option<usize> {
    let write_at = |(i, op): (usize, &Operation)| match op {
        Operation::PutAliasEntries { alias, .. } | Operation::RemoveAliasEntries { alias, .. } => {
            groups.get(alias.as_str()).map(|(first, _)| (*first, true))
        }
        _ => Some((i, false)),
    };
    let (last, is_patch) = plan.operations.iter().enumerate().filter_map(write_at).max_by_key(|(i, _)| *i)?;
    is_patch.then_some(last)
}

/// Whether a plan only changes the entries of one existing alias. Such a plan is one PATCH whose values
/// Portcullis parsed itself; pfRest validates the PATCH exactly as it would a dry run, and a refused PATCH leaves
/// the firewall as it was, so a dry run would only cost requests.
fn only_entries_of_one_alias(plan: &ChangePlan) -> bool {
    let mut aliases = plan.operations.iter().map(|op| match op {
        Operation::PutAliasEntries { alias, .. } | Operation::RemoveAliasEntries { alias, .. } => Some(alias),
        _ => None,
    });
    let Some(Some(first)) = aliases.next() else { return false };
    aliases.all(|a| a == Some(first))
}

/// Refuses a mirror whose anchor rule would let copied flows skip what the firewall does with them now: a flow
/// the rule set blocks (found with the evaluator), or a pass rule's gateway, limiter or SYN proxy.
async fn check_mirrors(fw: &PfSenseFirewall, plan: &ChangePlan) -> Result<(), BackendError> {
    let starts: Vec<&Mirror> = plan
        .operations
        .iter()
        .filter_map(|op| match op {
            Operation::CreateMirror { after } => Some(after),
            _ => None,
        })
        .collect();
    if starts.is_empty() || !fw.options.allow_shell {
        return Ok(());
    }
    let state = fw.read_state(&portcullis_core::freshness::StateRead::everything()).await?;
    let (interfaces, _) = fw.interfaces().await?;
    let ifaces = InterfaceMap::new(&interfaces);
    let raw = fw.client.rules().await?;
    let now = chrono::Utc::now();
    for m in starts {
        let refuse = |why: String| {
            BackendError::new(
                ErrorCode::ValidationError,
                format!("mirror {} is refused, nothing was changed: {why}", m.mirror_id),
            )
        };
        if let Some(flow) = crate::mirror::bypassed_flow(&state, m, now) {
            return Err(refuse(format!(
                "its pass rule in {} would let through a flow the rules of {} block ({flow}), as pf evaluates the \
                 anchor before them",
                crate::mirror::ANCHOR,
                m.interface
            ))
            .with_hint("narrow the selector to traffic the interface's rules pass"));
        }
        let skipped = crate::mirror::skipped_options(&raw, &ifaces, &m.interface);
        if !skipped.is_empty() {
            return Err(refuse(format!(
                "pass rules of {} send their traffic on ways the anchor's rule would skip: {}",
                m.interface,
                skipped.join("; ")
            ))
            .with_hint("mirror on an interface whose pass rules use no gateway, limiter or SYN proxy, or with a switch SPAN port"));
        }
    }
    Ok(())
}

/// A pfRest refusal of a dry run is a validation error; transport problems keep their code.
fn dry_run_error(e: PfRestError) -> BackendError {
    let refused = matches!(e.status, Some(400 | 404 | 409 | 422))
        || (e.status == Some(403) && e.code == ErrorCode::ValidationError);
    let mut err = BackendError::from(e);
    if refused {
        err.code = ErrorCode::ValidationError;
        err.message = format!("the firewall refused the change: {}", err.message);
    }
    err
}

fn references_any(rule: &Rule, names: &HashSet<String>) -> bool {
    let addr = |t: &AddressTarget| matches!(t, AddressTarget::Alias(n) if names.contains(n));
    let port = |p: &PortMatch| matches!(p, PortMatch::Alias(n) if names.contains(n));
    addr(&rule.source.target)
        || addr(&rule.destination.target)
        || port(&rule.source_port)
        || port(&rule.destination_port)
}

/// Validates every write of the plan with pfRest's `dry_run` (v2.8.0+), changing nothing.
pub(crate) async fn check(fw: &PfSenseFirewall, plan: &ChangePlan) -> Result<(), BackendError> {
    let c = &fw.client;
    let cap = fw.options.geo_alias_max_entries;
    if only_entries_of_one_alias(plan) {
        return prevalidate(plan, cap, fw.options.allow_shell);
    }
    prevalidate(plan, cap, fw.options.allow_shell)?;
    check_mirrors(fw, plan).await?;
    crate::vpn::check(c, plan).await?;
    let dry_run = c.supports_dry_run().await?;
    check_protections(fw, plan, dry_run).await?;
    if !dry_run {
        return Ok(());
    }
    let (interfaces, _) = fw.interfaces().await?;
    let engine = Engine::new(fw, InterfaceMap::new(&interfaces));
    let groups = alias_groups(plan);
    let mut new_aliases: HashMap<String, FirewallAlias> = HashMap::new();
    for (index, op) in plan.operations.iter().enumerate() {
        match op {
            Operation::CreateRule { after, .. } => {
                let names: HashSet<String> = new_aliases.keys().cloned().collect();
                if references_any(after, &names) {
                    // The alias exists only after the plan's own CreateAlias: a dry run would refuse the reference.
                    continue;
                }
                let mut req = RuleFields::from_rule(after)?.create_request();
                req.controls = WriteControls::dry_run();
                c.create_rule(&req).await.map_err(dry_run_error)?;
            }
            Operation::UpdateRule { before, after, .. } => {
                let current = engine.current_rule(before, None).await?;
                let mut req = RuleFields::from_rule(before)?.patch_to(&RuleFields::from_rule(after)?);
                if req.has_changes() {
                    req.id = current.id;
                    req.controls = WriteControls::dry_run();
                    c.update_rule(&req).await.map_err(dry_run_error)?;
                }
            }
            Operation::DeleteRule { before } => {
                let current = engine.current_rule(before, None).await?;
                let id = current.id.unwrap_or_default();
                c.delete_rule(id, true).await.map_err(dry_run_error)?;
            }
            Operation::CreateAlias { after } => {
                if c.alias_by_name(&after.name).await?.is_some() {
                    return Err(conflict(format!("alias {} already exists", after.name)));
                }
                let mut req = alias_create_request(after)?;
                req.controls = WriteControls::dry_run();
                c.create_alias(&req).await.map_err(dry_run_error)?;
                new_aliases.insert(after.name.clone(), created_shape(&req));
            }
            // The rules that use it are deleted first by the same plan, which a dry run does not do: pfRest
            // would refuse the deletion of an alias in use. That it exists is what can be checked.
            Operation::DeleteAlias { before } => {
                if c.alias_by_name(&before.name).await?.is_none() {
                    return Err(conflict(format!("alias {} does not exist", before.name)));
                }
            }
            Operation::PutAliasEntries { alias, .. } | Operation::RemoveAliasEntries { alias, .. } => {
                let Some((first, ops)) = groups.get(alias.as_str()) else { continue };
                if *first != index {
                    continue;
                }
                if let Some(shape) = new_aliases.get(alias) {
                    if is_geo_list(alias) {
                        // Prefixes Portcullis aggregated from the country database, each a valid CIDR, checked
                        // against the cap above; a dry run of thousands of them costs pfRest as much as the write.
                        continue;
                    }
                    let (address, detail) = merge_entries(shape, ops)?;
                    let req = FirewallAliasRequest {
                        name: Some(shape.name.clone()),
                        type_: Some(shape.type_.clone()),
                        descr: Some(shape.descr.clone()),
                        address: Some(address),
                        detail: Some(detail),
                        controls: WriteControls::dry_run(),
                        ..Default::default()
                    };
                    c.create_alias(&req).await.map_err(dry_run_error)?;
                } else {
                    let current = c
                        .alias_by_name(alias)
                        .await?
                        .ok_or_else(|| conflict(format!("alias {alias} does not exist")))?;
                    let (address, detail) = merge_entries(&current, ops)?;
                    let req = FirewallAliasRequest {
                        id: current.id,
                        address: Some(address),
                        detail: Some(detail),
                        controls: WriteControls::dry_run(),
                        ..Default::default()
                    };
                    c.update_alias(&req).await.map_err(dry_run_error)?;
                }
            }
            // Checked by `check_protections` above, mirrors by `prevalidate`, VPN users by `crate::vpn::check`.
            Operation::CreateProtection { .. }
            | Operation::UpdateProtection { .. }
            | Operation::DeleteProtection { .. }
            | Operation::CreateMirror { .. }
            | Operation::DeleteMirror { .. }
            | Operation::CreateVpnAccount { .. }
            | Operation::DeleteVpnAccount { .. } => {}
        }
    }
    Ok(())
}

/// A protection's SYN proxy needs TCP pass rules to go on, and its bandwidth cap pass rules of the protocols it
/// covers that no other limiter is on: without, it is refused as a validation error. Where pfRest can dry-run
/// (v2.8.0+), pfRest itself validates the statetype PATCH of each rule the proxy would go on, and the limiter's
/// creation (or its PATCH, when Portcullis' limiter is there already, and then the rules' `dnpipe` PATCHes too:
/// before the limiter exists, pfRest would refuse a rule naming it, which the real change creates first).
async fn check_protections(fw: &PfSenseFirewall, plan: &ChangePlan, dry_run: bool) -> Result<(), BackendError> {
    let wanted: Vec<&Protection> = plan
        .operations
        .iter()
        .filter_map(|op| match op {
            Operation::CreateProtection { after } | Operation::UpdateProtection { after, .. } => Some(after),
            _ => None,
        })
        .filter(|p| p.syn_proxy || p.per_source_bandwidth.is_some())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let c = &fw.client;
    let (interfaces, _) = fw.interfaces().await?;
    let ifaces = InterfaceMap::new(&interfaces);
    let rules = c.rules().await?;
    let capped = wanted.iter().any(|p| p.per_source_bandwidth.is_some());
    let limiters = if capped { c.limiters().await? } else { Vec::new() };
    let records = if capped { ddos::load(&fw.store, &fw.name)? } else { Vec::new() };
    // Every refusal first (it needs no dry run), then the dry runs.
    let mut judged = Vec::with_capacity(wanted.len());
    for p in wanted {
        let proxy = if p.syn_proxy { ddos::proxy_targets(c, &ifaces, p, &rules).await? } else { Vec::new() };
        let pipes = match p.per_source_bandwidth {
            Some(_) => ddos::pipe_targets(c, &ifaces, p, &rules).await?,
            None => Vec::new(),
        };
        let name = ddos::limiter_name(&p.protection_id);
        let recorded = records.iter().any(|r| {
            r.protection.protection_id == p.protection_id && r.limiter.as_ref().is_some_and(|l| l.name == name)
        });
        if p.per_source_bandwidth.is_some()
            && let Some(l) = limiters.iter().find(|l| l.name == name)
            && !ddos::is_own_limiter(l, &p.protection_id)
            && !recorded
        {
            return Err(foreign_limiter(&name, &p.protection_id));
        }
        judged.push((p, proxy, pipes));
    }
    if !dry_run {
        return Ok(());
    }
    for (p, proxy, targets) in judged {
        for target in proxy.iter().filter(|t| t.statetype.as_deref() != Some(SYNPROXY)) {
            let req = FirewallRuleRequest {
                id: target.id,
                statetype: Some(SYNPROXY.to_string()),
                controls: WriteControls::dry_run(),
                ..Default::default()
            };
            c.update_rule(&req).await.map_err(dry_run_error)?;
        }
        let Some(cap) = p.per_source_bandwidth else { continue };
        let name = ddos::limiter_name(&p.protection_id);
        let existing = limiters.iter().find(|l| l.name == name);
        let wanted = ddos::limiter_request(p, cap);
        match existing {
            None => {
                let req = TrafficShaperLimiterRequest { controls: WriteControls::dry_run(), ..wanted };
                c.create_limiter(&req).await.map_err(dry_run_error)?;
            }
            Some(l) => {
                if let Some(patch) = ddos::limiter_patch(l, &wanted) {
                    let req = TrafficShaperLimiterRequest { id: l.id, controls: WriteControls::dry_run(), ..patch };
                    c.update_limiter(&req).await.map_err(dry_run_error)?;
                }
                for target in targets.iter().filter(|t| t.dnpipe.as_deref() != Some(name.as_str())) {
                    let req = FirewallRuleRequest {
                        id: target.id,
                        dnpipe: Some(Some(name.clone())),
                        controls: WriteControls::dry_run(),
                        ..Default::default()
                    };
                    c.update_rule(&req).await.map_err(dry_run_error)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::model::AliasEntry;
    use serde_json::json;

    fn rules(ifaces: &[&str]) -> Vec<FirewallRule> {
        ifaces
            .iter()
            .enumerate()
            .map(|(i, iface)| {
                serde_json::from_value(json!({"id": i, "tracker": 100 + i, "interface": [iface]})).unwrap()
            })
            .collect()
    }

    fn map() -> InterfaceMap {
        let list = serde_json::from_value::<Vec<portcullis_pfrest::types::NetworkInterface>>(json!([
            {"id": "wan", "if": "em0", "descr": "WAN"}, {"id": "lan", "if": "em1", "descr": "LAN"}
        ]))
        .unwrap();
        InterfaceMap::new(&list)
    }

    #[test]
    fn placements_are_positions_among_the_interface_rules() {
        let all = rules(&["LAN", "LAN", "WAN", "LAN", "WAN"]);
        let m = map();
        assert_eq!(placement_for_create(&all, &m, "lan", 0), Some(0));
        assert_eq!(placement_for_create(&all, &m, "lan", 2), Some(3));
        assert_eq!(placement_for_create(&all, &m, "lan", 3), Some(4), "after the last lan rule");
        assert_eq!(placement_for_create(&all, &m, "wan", 2), None, "the end: append");
        assert_eq!(placement_for_create(&all, &m, "opt1", 0), None);
        // Moving tracker 100 (lan #0) to lan position 2: the list without it is [lan, wan, lan, wan].
        assert_eq!(placement_for_move(&all, &m, 100, "lan", 2), 3);
        assert_eq!(placement_for_move(&all, &m, 100, "lan", 0), 0);
    }

    #[test]
    fn entries_merge_in_one_pass() {
        let current = FirewallAlias {
            id: Some(0),
            name: "PORTCULLIS_BLOCK".into(),
            type_: "network".into(),
            address: vec!["192.0.2.1/32".into(), "192.0.2.2/32".into()],
            detail: vec!["old one".into(), "old two".into()],
            ..Default::default()
        };
        let e = |v: &str| AliasEntry { value: v.into(), detail: "r".into(), expires_at: None, created_at: None };
        let put = Operation::PutAliasEntries {
            alias: "PORTCULLIS_BLOCK".into(),
            before: vec![],
            after: vec![e("192.0.2.1"), e("2001:db8::1")],
        };
        let remove = Operation::RemoveAliasEntries { alias: "PORTCULLIS_BLOCK".into(), before: vec![e("192.0.2.2")] };
        let (address, detail) = merge_entries(&current, &[&put, &remove]).unwrap();
        assert_eq!(address, vec!["192.0.2.1/32", "2001:db8::1/128"]);
        assert_eq!(detail[0], "r | portcullis expires=never");
    }
}
