//! The reconciler: takes expired blocks and grants off the firewall and resumes paused rules, on time.
//!
//! It does not poll every target's full state. Entry expiries come from the store's time index
//! (`managed_entries_by_expiry`), which every process writing to the store keeps, so one indexed probe per
//! target tells when the next entry is due however many are pending; pause ends come from the last state the
//! service read. The loop sleeps until the earliest deadline (or the next housekeeping tick), then sweeps only
//! the targets that have something due: one fresh read, one plan removing everything due, applied and verified
//! like any change, audited as `portcullis`. A full read of each target also happens every
//! [`FULL_SWEEP_EVERY`], which catches pauses set by another process and entries the index never saw.

use std::future::Future;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use chrono::{TimeDelta, Utc};
use portcullis_core::model::{AliasEntry, RuleSet, Timestamp};
use portcullis_core::plan::{self, ChangePlan, Operation};
use portcullis_store::ManagedEntry;
use serde_json::{Value, json};

use crate::door::{Inside, ReadBack};
use crate::{CallError, Target, ToolService, changes, now};

/// The longest a target goes without a full read by the reconciler.
pub const FULL_SWEEP_EVERY: TimeDelta = TimeDelta::seconds(60);

/// The most due entries one sweep removes; a larger backlog is worked off in consecutive sweeps.
const EXPIRY_BATCH: usize = 50_000;

/// Rollbacks of overdue unconfirmed changes run on this tick.
const HOUSEKEEPING_TICK: Duration = Duration::from_secs(1);
/// The usual interval between drift checks (a full read of every target).
const DRIFT_CHECK_EVERY: Duration = Duration::from_secs(10);
/// How long a drift check may wait for due expiries to be settled first.
const DRIFT_CHECK_MAX_DELAY: Duration = Duration::from_secs(60);

/// What the reconciler knows of one target's next deadlines.
#[derive(Debug, Clone, Default)]
pub struct TargetSchedule {
    /// The earliest pause end in the last state read (overdue ones included); `None` when nothing is paused.
    next_pause_end: Option<Timestamp>,
    /// When the reconciler last read the whole target; `None` before the first read.
    last_full_read: Option<Timestamp>,
}

impl TargetSchedule {
    /// When the target must next be read whole: at once if it never was, else at the earlier of the full-read
    /// interval and the next pause end.
    fn full_read_due(&self, now: Timestamp) -> Timestamp {
        match self.last_full_read {
            None => now,
            Some(last) => self.next_pause_end.map_or(last + FULL_SWEEP_EVERY, |p| p.min(last + FULL_SWEEP_EVERY)),
        }
    }
}

/// One sweep of one target, for logs and benchmarks.
#[derive(Debug)]
pub struct SweepOutcome {
    pub target: String,
    /// Everything that expired at or before this moment was due in this sweep.
    pub cutoff: Timestamp,
    /// When the firewall was verified to be without the due entries.
    pub finished: Timestamp,
    /// Entries removed plus rules resumed, or why the sweep failed.
    pub result: Result<usize, CallError>,
}

impl Target {
    fn schedule(&self) -> std::sync::MutexGuard<'_, TargetSchedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the pause ends of a state just read or written.
    pub(crate) fn note_state(&self, state: &RuleSet) {
        self.schedule().next_pause_end = plan::next_pause_end(state);
    }
}

impl ToolService {
    /// The earliest moment at which some target has something due, as far as the time index and the last reads
    /// know. A target never read yet is due now.
    pub fn next_deadline(&self) -> Timestamp {
        let now = now();
        self.targets.iter().map(|t| self.target_deadline(t, now)).min().unwrap_or(now + FULL_SWEEP_EVERY)
    }

    fn target_deadline(&self, target: &Target, now: Timestamp) -> Timestamp {
        let full_read = target.schedule().full_read_due(now);
        match self.guard.auditor.store().managed_next_expiry(&target.name) {
            Ok(next_expiry) => next_expiry.map_or(full_read, |t| t.min(full_read)),
            Err(e) => {
                tracing::warn!(target = target.name, "time index unreadable, sweeping now: {e}");
                now
            }
        }
    }

    /// Sweeps every target that has something due now; the others are not read.
    pub async fn sweep_expired(&self) -> Vec<(String, Result<usize, CallError>)> {
        self.sweep_due().await.into_iter().map(|o| (o.target, o.result)).collect()
    }

    /// Like [`ToolService::sweep_expired`], with the times of each sweep.
    pub async fn sweep_due(&self) -> Vec<SweepOutcome> {
        let mut outcomes = Vec::new();
        for target in &self.targets {
            let cutoff = now();
            if self.target_deadline(target, cutoff) > cutoff {
                continue;
            }
            let result = self.sweep_target(target, cutoff).await;
            outcomes.push(SweepOutcome { target: target.name.clone(), cutoff, finished: Utc::now(), result });
        }
        outcomes
    }

    async fn sweep_target(&self, target: &Target, cutoff: Timestamp) -> Result<usize, CallError> {
        let inside = self.enter(target).await;
        let full_read_due = target.schedule().full_read_due(cutoff) <= cutoff;
        if full_read_due { self.sweep_full(&inside, cutoff).await } else { self.sweep_entries(&inside, cutoff).await }
    }

    /// Reads the whole target and settles everything due in it: pauses, and entries whether the index knew
    /// them or not.
    async fn sweep_full(&self, inside: &Inside<'_>, cutoff: Timestamp) -> Result<usize, CallError> {
        let target = inside.target;
        let state = inside.fresh_state().await?;
        target.schedule().last_full_read = Some(cutoff);
        self.restore_lost(target, &state).await;
        let done = match plan::plan_expiry(&state, cutoff) {
            Some(plan) => {
                let started = Instant::now();
                let result = inside.carry(&plan, ReadBack::Whole, None).await.map(|_| ());
                self.audit_expiry(target, &plan, result, started)?
            }
            None => 0,
        };
        // Everything due by the cutoff is now off the firewall (verified) or was never there: its record is done.
        self.guard
            .auditor
            .store()
            .managed_forget_expired(&target.name, cutoff)
            .map_err(|e| CallError::internal(format!("expired entries removed, but their records remain: {e}")))?;
        Ok(done)
    }

    /// Settles the entries the time index says are due, reading only those entries from the firewall.
    async fn sweep_entries(&self, inside: &Inside<'_>, cutoff: Timestamp) -> Result<usize, CallError> {
        let target = inside.target;
        let store = self.guard.auditor.store();
        let due =
            store.managed_due(&target.name, cutoff, EXPIRY_BATCH).map_err(|e| CallError::internal(e.to_string()))?;
        let mut on_firewall = Vec::with_capacity(due.len());
        for (alias, values) in &due {
            let entries = target.firewall.alias_entries(alias, values).await?.unwrap_or_default();
            on_firewall.push((alias.clone(), entries));
        }
        let (still_live, settled) = reconcile_records(&due, &on_firewall, cutoff);
        let done = match plan::plan_entry_expiry(on_firewall, cutoff) {
            Some(plan) => {
                let started = Instant::now();
                let result = inside.carry(&plan, ReadBack::RemovedEntries, None).await.map(|_| ());
                self.audit_expiry(target, &plan, result, started)?
            }
            None => 0,
        };
        store
            .managed_record(&target.name, &still_live, &settled, None)
            .map_err(|e| CallError::internal(format!("expired entries removed, but their records remain: {e}")))?;
        Ok(done)
    }

    /// Puts back what the firewall lost without a change (pfSense's mirror anchor after a reboot), audited as
    /// `restore`; a failure is logged and tried again on the next full read.
    async fn restore_lost(&self, target: &Target, state: &RuleSet) {
        let started = Instant::now();
        let result = target.firewall.restore_lost(state).await.map_err(CallError::from);
        let restored = match &result {
            Ok(restored) if restored.is_empty() => return,
            Ok(restored) => restored.clone(),
            Err(e) => {
                tracing::warn!(target = target.name, "cannot restore what the firewall lost: {}", e.message);
                Vec::new()
            }
        };
        let change_id = uuid::Uuid::new_v4().to_string();
        let record = changes::system_record(
            &target.name,
            "restore",
            "expiry reconciler",
            json!({"restored": restored}),
            &change_id,
            &result.map(|_| ()),
            started,
        );
        if let Err(e) = self.guard.auditor.record(&record) {
            tracing::error!(target = target.name, "restore audit record not written: {}", e.message);
        }
    }

    /// Writes the audit record of an expiry and returns how much it settled.
    fn audit_expiry(
        &self,
        target: &Target,
        plan: &ChangePlan,
        result: Result<(), CallError>,
        started: Instant,
    ) -> Result<usize, CallError> {
        let change_id = uuid::Uuid::new_v4().to_string();
        let record = changes::system_record(
            &target.name,
            "expire",
            "expiry reconciler",
            expiry_summary(plan),
            &change_id,
            &result,
            started,
        );
        self.guard.auditor.record(&record)?;
        let (entries, resumed) = plan::expiry_counts(&plan.operations);
        result.map(|()| entries + resumed)
    }

    /// Runs the reconciler until `stop` completes: sweeps at each deadline, rolls back overdue unconfirmed
    /// changes every second, checks drift every ten seconds or, when the managed lists are so long that a check
    /// takes a while, at most 5% of the time, and not when an expiry falls due before it would end, unless it
    /// has waited a minute.
    /// `observe` sees every sweep.
    pub async fn reconcile(&self, stop: impl Future<Output = ()>, mut observe: impl FnMut(&SweepOutcome)) {
        tokio::pin!(stop);
        let mut next_tick = Instant::now();
        let mut next_drift_check = Instant::now();
        loop {
            let wake = next_tick.min(instant_of(self.next_deadline()));
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {}
                () = &mut stop => return,
            }
            if Instant::now() >= next_tick {
                self.roll_back_overdue_logged().await;
                self.refresh_domains_logged().await;
                next_tick += HOUSEKEEPING_TICK;
            }
            // Deadlines first: a drift check (read-only; reports go to the log and get_active_alarms) waits while
            // an expiry falls due before the check would end, up to DRIFT_CHECK_MAX_DELAY.
            let now = Instant::now();
            let cost = self.drift_check_cost();
            let in_the_way = instant_of(self.next_deadline()) <= now + cost;
            if now >= next_drift_check && (!in_the_way || now >= next_drift_check + DRIFT_CHECK_MAX_DELAY) {
                self.check_drift().await;
                next_drift_check = Instant::now() + DRIFT_CHECK_EVERY.max(self.drift_check_cost() * 20);
            }
            for outcome in self.sweep_due().await {
                observe(&outcome);
            }
        }
    }

    async fn roll_back_overdue_logged(&self) {
        for (change, outcome) in self.roll_back_overdue().await {
            match outcome {
                Ok(()) => tracing::warn!(change, "unconfirmed change rolled back"),
                Err(e) => tracing::error!(change, "rollback of an unconfirmed change failed: {e}"),
            }
        }
    }
}

/// What the record should say after a sweep of due entries: entries still live on the firewall (re-blocked
/// since, with a later expiry) get their new expiry; the others are settled, whether the sweep removes them or
/// they were gone already.
fn reconcile_records(
    due: &[(String, Vec<String>)],
    on_firewall: &[(String, Vec<AliasEntry>)],
    cutoff: Timestamp,
) -> (Vec<ManagedEntry>, Vec<(String, String)>) {
    let mut still_live = Vec::new();
    let mut settled = Vec::new();
    for ((alias, values), (_, entries)) in due.iter().zip(on_firewall) {
        let live: HashMap<&str, &AliasEntry> =
            entries.iter().filter(|e| e.is_live(cutoff)).map(|e| (e.value.as_str(), e)).collect();
        for value in values {
            match live.get(value.as_str()) {
                Some(e) => still_live.push(ManagedEntry {
                    alias: alias.clone(),
                    value: value.clone(),
                    expires_at: e.expires_at,
                }),
                None => settled.push((alias.clone(), value.clone())),
            }
        }
    }
    (still_live, settled)
}

/// The monotonic instant of a wall-clock deadline (now if it has passed).
fn instant_of(deadline: Timestamp) -> Instant {
    let ahead = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + ahead
}

/// The audit arguments of an expiry: the values removed from each list and the rules resumed, without the rest
/// of each entry, so that a sweep of many entries stays a readable record.
fn expiry_summary(plan: &ChangePlan) -> Value {
    let mut removed = serde_json::Map::new();
    let mut resumed = Vec::new();
    for op in &plan.operations {
        match op {
            Operation::RemoveAliasEntries { alias, before } => {
                removed.insert(alias.clone(), before.iter().map(|e| Value::from(e.value.as_str())).collect());
            }
            Operation::UpdateRule { after, .. } => resumed.push(Value::from(after.rule_id.to_string())),
            _ => {}
        }
    }
    json!({"removed": removed, "resumed": resumed})
}
