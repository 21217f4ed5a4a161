//! Who may take a block away: a principal unblocks its own blocks with the permission `unblock_ip_address`
//! needs; another principal's block, or the automated response's, needs admin access to security. Owners are
//! the principals whose calls put the entries (the store's `managed_entries.owner`); entries adopted from the
//! firewall have none on record, and any principal who may unblock may unblock them.

use portcullis_core::plan::{MANAGED_BLOCK, Operation};
use portcullis_guard::{Category, Level, Requirement};

use crate::door::{ChangeCall, Planned};
use crate::{CallError, ToolService};

/// What unblocking another principal's block needs.
const FOREIGN_UNBLOCK: Requirement = Requirement { category: Category::Security, level: Level::Admin };

impl ToolService {
    /// Refuses a plan that takes another principal's entries out of a block list, unless the caller's role
    /// grants [`FOREIGN_UNBLOCK`].
    pub(crate) fn check_ownership(&self, call: &ChangeCall<'_>, planned: &Planned<'_>) -> Result<(), CallError> {
        // A role that may unblock anyone's blocks needs no owner looked up (a bulk unblock names thousands).
        if self.guard.role(call.ctx)?.allows(FOREIGN_UNBLOCK) {
            return Ok(());
        }
        let caller = &call.ctx.principal.name;
        let store = self.guard.auditor.store();
        for op in &planned.plan.operations {
            let Operation::RemoveAliasEntries { alias, before } = op else { continue };
            if planned.state.alias(alias).and_then(|a| a.managed.as_deref()) != Some(MANAGED_BLOCK) {
                continue;
            }
            for entry in before {
                let owner = store
                    .managed_owner(&call.target.name, alias, &entry.value)
                    .map_err(|e| CallError::internal(format!("the owner of {} could not be read: {e}", entry.value)))?;
                if let Some(owner) = owner.filter(|o| o != caller) {
                    return Err(CallError::new(
                        portcullis_core::firewall::ErrorCode::AuthorizationFailed,
                        format!(
                            "{} was blocked by {owner}; {caller} (role {}) may unblock only its own blocks: another \
                             principal's needs admin access to security",
                            entry.value, call.ctx.principal.role
                        ),
                    )
                    .with_hint(format!("ask {owner} or an administrator to unblock it")));
                }
            }
        }
        Ok(())
    }
}
