//! Drift: Portcullis records every entry it puts into (or takes out of) a managed alias; the firewall is
//! compared with that record, and entries removed or added there by hand are reported as alarms.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use portcullis_core::firewall::HandEdits;
use portcullis_core::freshness::StateRead;
use portcullis_core::model::RuleSet;
use portcullis_core::plan::{ChangePlan, Operation};
use portcullis_store::ManagedEntry;

use crate::args::AlarmsArgs;
use crate::views::{Alarm, AlarmsResult};
use portcullis_guard::CallContext;

use crate::work::LocalJob;
use crate::{CallError, Target, ToolService, Trace, now, until_cancelled};

/// What differs between Portcullis' record and one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub target: String,
    /// (alias, value) recorded by Portcullis but gone from the firewall.
    pub removed_by_hand: Vec<(String, String)>,
    /// (alias, value) on the firewall that Portcullis never put there.
    pub added_by_hand: Vec<(String, String)>,
}

impl Drift {
    fn is_empty(&self) -> bool {
        self.removed_by_hand.is_empty() && self.added_by_hand.is_empty()
    }

    fn describe(&self) -> String {
        let list = |v: &[(String, String)]| v.iter().map(|(a, e)| format!("{e} ({a})")).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !self.removed_by_hand.is_empty() {
            parts.push(format!("removed by hand: {}", list(&self.removed_by_hand)));
        }
        if !self.added_by_hand.is_empty() {
            parts.push(format!("added by hand: {}", list(&self.added_by_hand)));
        }
        format!("managed lists on {} differ from Portcullis' record; {}", self.target, parts.join("; "))
    }
}

/// What drift checks remember between runs.
#[derive(Default)]
pub(crate) struct DriftWatch {
    /// The last drift reported per target, so that a standing difference raises one alarm, not one per check.
    last: std::sync::Mutex<HashMap<String, String>>,
    /// How long the last check took, so the reconciler can keep it out of the way of deadlines.
    cost: std::sync::Mutex<std::time::Duration>,
    /// What the last check found per target, once a whole comparison has been made in this process: a backend
    /// that tells what others touched since ([`HandEdits::Touched`]) is then checked on those entries and these.
    findings: std::sync::Mutex<HashMap<String, Drift>>,
}

fn seeded_key(target: &str) -> String {
    format!("managed_record_seeded:{target}")
}

impl ToolService {
    /// Records the entries a verified plan put into and took out of managed aliases, for drift checks and the
    /// reconciler's time index.
    pub(crate) fn record_managed(
        &self,
        target: &str,
        plan: &ChangePlan,
        after: &RuleSet,
        owner: Option<&str>,
    ) -> Result<(), CallError> {
        let (put, removed) = managed_changes(plan, after);
        if put.is_empty() && removed.is_empty() {
            return Ok(());
        }
        self.guard.auditor.store().managed_record(target, &put, &removed, owner).map_err(|e| {
            CallError::internal(format!("the change was applied but its record could not be written: {e}"))
        })
    }

    /// Compares every target with the record; raises one alarm per new difference. The first check of a target
    /// adopts what its managed aliases hold.
    pub async fn check_drift(&self) -> Vec<Drift> {
        let started = std::time::Instant::now();
        let found = self.find_drift().await;
        *self.drift.cost.lock().unwrap_or_else(|p| p.into_inner()) = started.elapsed();
        found
    }

    /// How long the last drift check took.
    pub fn drift_check_cost(&self) -> std::time::Duration {
        *self.drift.cost.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn find_drift(&self) -> Vec<Drift> {
        let mut found = Vec::new();
        for target in &self.targets {
            let edits = target.firewall.hand_edits().await;
            let known = self.drift.findings.lock().unwrap_or_else(|p| p.into_inner()).get(&target.name).cloned();
            let drift = match (edits, known) {
                (HandEdits::Touched(touched), Some(known)) => self.drift_of_edits(target, touched, &known).await,
                _ => self.whole_drift(target).await,
            };
            let mut findings = self.drift.findings.lock().unwrap_or_else(|p| p.into_inner());
            let Some(drift) = drift else {
                findings.remove(&target.name);
                continue;
            };
            findings.insert(target.name.clone(), drift.clone());
            if !drift.is_empty() {
                found.push(drift);
            }
        }
        let mut last = self.drift.last.lock().unwrap_or_else(|p| p.into_inner());
        for drift in &found {
            let signature = drift.describe();
            if last.get(&drift.target) != Some(&signature) {
                self.raise_alarm("drift", "portcullis", &signature);
                tracing::warn!(target = drift.target, "{signature}");
                last.insert(drift.target.clone(), signature);
            }
        }
        last.retain(|t, _| found.iter().any(|d| &d.target == t));
        found
    }

    /// The whole comparison: every managed entry on the firewall against every recorded one.
    async fn whole_drift(&self, target: &Target) -> Option<Drift> {
        let state = target.firewall.snapshot().await.ok()?;
        self.drift_of(target, &state)
    }

    /// The comparison of the entries others touched since the last check, and of those that differed then (they
    /// may have been put right, or have expired): each looked up on the firewall and in the record.
    async fn drift_of_edits(
        &self,
        target: &Target,
        mut wanted: BTreeMap<String, BTreeSet<String>>,
        known: &Drift,
    ) -> Option<Drift> {
        for (alias, value) in known.removed_by_hand.iter().chain(&known.added_by_hand) {
            wanted.entry(alias.clone()).or_default().insert(value.clone());
        }
        let mut drift = Drift { target: target.name.clone(), removed_by_hand: Vec::new(), added_by_hand: Vec::new() };
        if wanted.is_empty() {
            return Some(drift);
        }
        let read =
            StateRead { aliases: wanted.keys().cloned().collect(), entries: wanted.clone(), ..Default::default() };
        let state = target.firewall.state(&read).await.ok()?;
        let now = now();
        let recorded = self.guard.auditor.store().managed_live_among(&target.name, &wanted, now).ok()?;
        for (alias, values) in &wanted {
            let there: HashSet<&str> = state
                .alias(alias)
                .filter(|a| a.managed.is_some())
                .map(|a| a.entries.iter().filter(|e| e.is_live(now)).map(|e| e.value.as_str()).collect())
                .unwrap_or_default();
            for value in values {
                match (recorded.contains(&(alias.clone(), value.clone())), there.contains(value.as_str())) {
                    (true, false) => drift.removed_by_hand.push((alias.clone(), value.clone())),
                    (false, true) => drift.added_by_hand.push((alias.clone(), value.clone())),
                    _ => {}
                }
            }
        }
        Some(drift)
    }

    fn drift_of(&self, target: &Target, state: &RuleSet) -> Option<Drift> {
        let store = self.guard.auditor.store();
        let now = now();
        let on_firewall: HashMap<&str, HashSet<&str>> = state
            .aliases
            .iter()
            .filter(|a| a.managed.is_some())
            .map(|a| (a.name.as_str(), a.entries.iter().filter(|e| e.is_live(now)).map(|e| e.value.as_str()).collect()))
            .collect();
        let key = seeded_key(&target.name);
        if store.meta_get(&key).ok().flatten().is_none() {
            let adopt: Vec<ManagedEntry> = state
                .aliases
                .iter()
                .filter(|a| a.managed.is_some())
                .flat_map(|a| a.entries.iter().map(|e| (a.name.clone(), e)))
                .map(|(alias, e)| ManagedEntry { alias, value: e.value.clone(), expires_at: e.expires_at })
                .collect();
            store.managed_record(&target.name, &adopt, &[], None).ok()?;
            store.meta_set(&key, "true").ok()?;
            return None;
        }
        let recorded = store.managed_live(&target.name, now).ok()?;
        let mut drift = Drift { target: target.name.clone(), removed_by_hand: Vec::new(), added_by_hand: Vec::new() };
        for (alias, values) in &recorded {
            let there = on_firewall.get(alias.as_str());
            for v in values.iter().filter(|v| there.is_none_or(|t| !t.contains(v.as_str()))) {
                drift.removed_by_hand.push((alias.clone(), v.clone()));
            }
        }
        // Sets, not the recorded lists: a managed list can hold a million entries.
        let known_sets: HashMap<&str, HashSet<&str>> =
            recorded.iter().map(|(a, vs)| (a.as_str(), vs.iter().map(String::as_str).collect())).collect();
        for (alias, values) in &on_firewall {
            let known = known_sets.get(*alias);
            for v in values.iter().filter(|v| known.is_none_or(|k| !k.contains(*v))) {
                drift.added_by_hand.push((alias.to_string(), v.to_string()));
            }
        }
        drift.removed_by_hand.sort();
        drift.added_by_hand.sort();
        Some(drift)
    }

    /// `get_active_alarms`: alerts of the timeframe (denial bursts, refused high-risk changes, drift), the drift
    /// found now, threats in the logs (Suricata's included), and interfaces whose Suricata alerts crossed their
    /// threshold.
    pub(crate) async fn active_alarms(&self, a: &AlarmsArgs) -> Result<AlarmsResult, CallError> {
        let span = match &a.timeframe {
            Some(t) => portcullis_core::duration::parse_span("timeframe", t)?,
            None => TimeDelta::hours(24),
        };
        let store = self.guard.auditor.store();
        let alerts = store.alerts_since(Utc::now() - span).map_err(|e| CallError::internal(e.to_string()))?;
        let mut data: Vec<Alarm> = self
            .check_drift()
            .await
            .into_iter()
            .map(|d| Alarm {
                kind: "drift".into(),
                severity: "high".into(),
                time: Utc::now(),
                message: d.describe(),
                principal: None,
                target: Some(d.target.clone()),
                source_ip: None,
                threat_score: None,
                recommendation:
                    "review the hand edit: re-apply with block_ip_address / grant_access, or remove it by hand too"
                        .into(),
            })
            .collect();
        // A change applied is news for the sinks (`alerts:`), not an alarm to act on.
        let active = |kind: &str| kind != "drift" && kind != "change_applied";
        data.extend(alerts.into_iter().filter(|al| active(&al.kind)).map(|al| Alarm {
            severity: match al.kind.as_str() {
                "denial_burst" => "medium".into(),
                "threat" | "rollback" if !al.message.starts_with("[high]") => "medium".into(),
                _ => "high".into(),
            },
            recommendation: match al.kind.as_str() {
                "denial_burst" => {
                    format!("check what {} is trying to do; revoke its token if it is not expected", al.principal)
                }
                "threat" => "see analyze_threats; block_ip_address the source if nothing blocks it yet".into(),
                "rollback" => "read the change in get_audit_log; apply it again once it is understood".into(),
                _ => "review the refused change in get_audit_log before approving anything like it".into(),
            },
            kind: al.kind,
            time: al.time,
            message: al.message,
            principal: Some(al.principal),
            target: None,
            source_ip: None,
            threat_score: None,
        }));
        data.extend(self.threat_alarms(span));
        data.extend(self.traffic_threshold_alarms().await);
        data.extend(self.threshold_alarms(span, crate::now()));
        Ok(AlarmsResult { count: data.len(), data })
    }
}

impl ToolService {
    /// Threats in the logs of every target (scored high or critical, and every group of severity-1 Suricata
    /// alerts) over the alarm timeframe, capped at a day so that an alarm stays current.
    fn threat_alarms(&self, span: TimeDelta) -> Vec<Alarm> {
        let now = crate::now();
        let mut out = Vec::new();
        for target in self.targets.iter().filter(|t| self.log_store(&t.name).is_some()) {
            let threats = match self.threats(target, span.min(TimeDelta::hours(24)), now, 200) {
                Ok((t, _)) => t,
                Err(e) => {
                    tracing::warn!(target = target.name, "threat alarms: {}", e.message);
                    continue;
                }
            };
            let alarming =
                |t: &crate::ThreatView| t.threat_score >= 50 || t.ids.as_ref().is_some_and(|i| i.alert_severity == 1);
            out.extend(threats.into_iter().filter(alarming).map(|t| Alarm {
                message: format!("{} from {}: {}", t.kind_label(), t.source_ip, t.detail),
                kind: t.kind,
                severity: t.severity,
                time: t.last_seen,
                principal: None,
                target: Some(target.name.clone()),
                source_ip: Some(t.source_ip),
                threat_score: Some(t.threat_score),
                recommendation: t.recommendation,
            }));
        }
        out
    }
}

/// The entries a plan put into and took out of managed aliases, as they stand on the firewall afterwards.
fn managed_changes(plan: &ChangePlan, after: &RuleSet) -> (Vec<ManagedEntry>, Vec<(String, String)>) {
    let managed = |alias: &str| after.alias(alias).is_some_and(|a| a.managed.is_some());
    let mut put = Vec::new();
    let mut removed = Vec::new();
    for op in &plan.operations {
        match op {
            Operation::PutAliasEntries { alias, after: entries, before } if managed(alias) => {
                // An entry put back as it was (a longer block kept) changes nothing, not even its owner.
                put.extend(entries.iter().filter(|e| !before.contains(e)).map(|e| ManagedEntry {
                    alias: alias.clone(),
                    value: e.value.clone(),
                    expires_at: e.expires_at,
                }));
            }
            Operation::RemoveAliasEntries { alias, before } if managed(alias) => {
                removed.extend(before.iter().map(|e| (alias.clone(), e.value.clone())));
            }
            _ => {}
        }
    }
    (put, removed)
}

/// `get_active_alarms`: it reads every target for drift, so it ends when the caller gives up.
#[async_trait]
impl LocalJob for AlarmsArgs {
    type Output = AlarmsResult;
    async fn run(self, svc: &ToolService, ctx: &CallContext, _trace: &mut Trace) -> Result<AlarmsResult, CallError> {
        until_cancelled(ctx, svc.active_alarms(&self)).await
    }
}
