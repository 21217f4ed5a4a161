//! Change planning: an intent plus freshly read state gives a plan — the before and after of every object the
//! change touches — or a field error, with nothing changed. Backends apply plans; `verify` checks that the
//! firewall, read back afterwards, holds exactly what the plan said.

//!
//! The module is split by concern: `intent` (what a tool asks for), `rules` (the rule planners and the checks they
//! share), `lists` (blocks and grants), `expiry`, `verify`, `invert`, `positions` (interface positions in the
//! global rule list) and `carry` (the one meaning of carrying a plan out, shared by the lockout preview and the
//! backends), `reserved` (the names Portcullis manages, each kept to its purpose). Everything public is re-exported here, so `portcullis_core::plan::X` paths stay as they were.

mod carry;
mod expiry;
mod intent;
mod invert;
mod lists;
mod positions;
mod reserved;
mod rules;
mod verify;

#[cfg(test)]
mod tests;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FieldResult;
use crate::model::{Alias, AliasEntry, Rule, RuleSet, Timestamp};

pub use carry::{Carried, Conflict, Entries, Ids, carry_out, next_tracker};
pub use expiry::{expiry_counts, next_pause_end, plan_entry_expiry, plan_expiry};
pub use intent::{Addresses, GrantRule, Intent, RuleDraft, RulePatch};
pub use invert::invert;
pub use lists::block_alias_name;
pub use positions::{global_index, global_index_by};
pub use reserved::{Purpose, RESERVED_PREFIX, check_name_for, check_reference, reserved_purpose};
pub use verify::{same_enforcement, verify};

use lists::{BlockAsk, plan_block, plan_grant, plan_revoke, plan_unblock};
pub(crate) use rules::leading_system_rules as leading_managed_rules;
use rules::{plan_create, plan_delete, plan_modify, plan_pause, plan_resume};

/// The managed alias behind blocks that apply to every interface.
pub const BLOCK_ALIAS: &str = "PORTCULLIS_BLOCK";
/// The `managed` tag of block-list aliases and of the rules that enforce them.
pub const MANAGED_BLOCK: &str = "block_list";
/// The `managed` tag of the pfSense anti-lockout rule.
pub const MANAGED_ANTI_LOCKOUT: &str = "anti_lockout";

/// Descriptions Portcullis gives its managed aliases and rules; backends that cannot store a `managed` tag (pfSense)
/// recognise them by these.
pub const BLOCK_ALIAS_DESCR: &str = "Addresses blocked by Portcullis (entries expire on their own)";
pub const GRANT_ALIAS_DESCR: &str = "Access granted by Portcullis (entries expire on their own)";
pub const BLOCK_RULE_DESCR: &str = "Portcullis managed block list";
pub const GRANT_RULE_DESCR: &str = "Portcullis grant list";

/// The managed alias behind grants unless a call names another.
pub const GRANT_ALIAS: &str = "PORTCULLIS_GRANT";
/// The `managed` tag of grant-list aliases and of the pass rules created for them.
pub const MANAGED_GRANT: &str = "grant_list";

/// One object-level step of a plan, with its before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
// A plan holds a handful of operations built once per change; boxing the rules would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Operation {
    /// `position` is the index among the rules of the rule's interface; the id is assigned on apply.
    CreateRule {
        position: usize,
        after: Rule,
    },
    UpdateRule {
        before: Rule,
        after: Rule,
        position: Option<usize>,
    },
    DeleteRule {
        before: Rule,
    },
    CreateAlias {
        after: Alias,
    },
    /// Adds entries to an alias, replacing entries with the same value (listed in `before`).
    PutAliasEntries {
        alias: String,
        before: Vec<AliasEntry>,
        after: Vec<AliasEntry>,
    },
    RemoveAliasEntries {
        alias: String,
        before: Vec<AliasEntry>,
    },
    /// Deletes an alias with whatever entries it holds (`before`: the alias as planned, entries included, so the
    /// undo can put it back). Only Portcullis' geo lists are deleted this way, after the rules that use them.
    DeleteAlias {
        before: Alias,
    },
    /// A DDoS protection added where its interface and selector had none (`crate::protection`).
    CreateProtection {
        after: crate::protection::Protection,
    },
    UpdateProtection {
        before: crate::protection::Protection,
        after: crate::protection::Protection,
    },
    DeleteProtection {
        before: crate::protection::Protection,
    },
    /// A traffic mirror started (`crate::mirror`).
    CreateMirror {
        after: crate::mirror::Mirror,
    },
    DeleteMirror {
        before: crate::mirror::Mirror,
    },
    /// A VPN user made (`crate::vpn`): its account with the peer's public key, never a secret.
    CreateVpnAccount {
        after: crate::vpn::VpnAccount,
    },
    DeleteVpnAccount {
        before: crate::vpn::VpnAccount,
    },
}

impl Operation {
    /// Whether it starts or stops a mirror.
    pub fn is_mirror(&self) -> bool {
        matches!(self, Operation::CreateMirror { .. } | Operation::DeleteMirror { .. })
    }

    /// Whether it makes or removes a VPN user's account.
    pub fn is_vpn_account(&self) -> bool {
        matches!(self, Operation::CreateVpnAccount { .. } | Operation::DeleteVpnAccount { .. })
    }
}

/// Facts about a change that risk scoring and policy need, computed once by the planner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeFacts {
    /// Host bits of the widest source the change admits or stops: 0 for one host, 8 for a /24, 128 for whatever
    /// covers a whole address family (`any`, `0.0.0.0/0`, `::/0`, an alias of two `/1`s), judged by what it covers.
    pub host_bits: u8,
    /// Whether the change lets more traffic through (a pass rule added or widened, a block removed or paused).
    pub widens_exposure: bool,
    /// Seconds until the change undoes itself; `None` when it is permanent or has no expiry.
    pub lifetime_seconds: Option<i64>,
    pub permanent: bool,
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangePlan {
    pub summary: String,
    pub operations: Vec<Operation>,
    pub warnings: Vec<String>,
    pub facts: ChangeFacts,
}

impl ChangePlan {
    /// Whether the plan changes only objects that decide no packet's verdict: DDoS protections (which limit
    /// rates) and mirrors (which copy).
    pub fn decides_no_verdict(&self) -> bool {
        !self.operations.is_empty()
            && self.operations.iter().all(|op| {
                matches!(
                    op,
                    Operation::CreateProtection { .. }
                        | Operation::UpdateProtection { .. }
                        | Operation::DeleteProtection { .. }
                        | Operation::CreateMirror { .. }
                        | Operation::DeleteMirror { .. }
                )
            })
    }

    /// Whether the plan changes only mirrors.
    pub fn only_mirrors(&self) -> bool {
        !self.operations.is_empty() && self.operations.iter().all(Operation::is_mirror)
    }
}

/// Plans `intent` against `state` at `now`.
pub fn plan(state: &RuleSet, intent: &Intent, now: Timestamp) -> FieldResult<ChangePlan> {
    match intent {
        Intent::CreateRule(draft) => plan_create(state, draft, now),
        Intent::ModifyRule { rule_id, patch } => plan_modify(state, rule_id, patch, now),
        Intent::DeleteRule { rule_id } => plan_delete(state, rule_id),
        Intent::PauseRule { rule_id, until } => plan_pause(state, rule_id, *until, now),
        Intent::ResumeRule { rule_id } => plan_resume(state, rule_id, now),
        Intent::Block { addresses, interface, expires_at, reason, replace } => {
            let ask = BlockAsk {
                addresses,
                interface: interface.as_deref(),
                expires_at: *expires_at,
                reason,
                replace: *replace,
            };
            plan_block(state, &ask, now)
        }
        Intent::Unblock { addresses, interface } => plan_unblock(state, addresses, interface.as_deref()),
        Intent::Grant { addresses, alias, expires_at, reason, rule } => {
            plan_grant(state, addresses, alias.as_deref(), *expires_at, reason, rule.as_ref(), now)
        }
        Intent::Revoke { addresses, alias } => plan_revoke(state, addresses, alias.as_deref()),
        Intent::SetEgressPolicy(policy) => crate::egress::plan_set(state, policy, now),
        Intent::RemoveEgressPolicy { interface } => crate::egress::plan_remove(state, interface),
        Intent::CreateGeoBlock(block) => crate::geo::plan_create(state, block, now),
        Intent::DeleteGeoBlock { id } => crate::geo::plan_delete(state, id),
        Intent::RefreshGeoBlocks(refreshes) => crate::geo::plan_refresh(state, refreshes, now),
        Intent::ConfigureProtection(asked) => crate::protection::plan_configure(state, asked, now),
        Intent::RemoveProtection(key) => crate::protection::plan_remove(state, key),
        Intent::StartMirror(ask) => crate::mirror::plan_start(state, ask, now),
        Intent::StopMirror { mirror_id } => crate::mirror::plan_stop(state, mirror_id),
        Intent::CreateVpnUser(ask) => crate::vpn::plan_create(state, ask, now),
        Intent::DeleteVpnUser { username } => crate::vpn::plan_delete(state, username, now),
        Intent::BlockDomain(ask) => crate::domain::plan_domain_block(state, ask, now),
        Intent::UnblockDomain { domain, interface, others } => {
            crate::domain::plan_domain_unblock(state, domain, interface.as_deref(), others)
        }
    }
}
