//! The tool rows: one type per tool, declaring it once (metadata, access, argument and result types, route),
//! grouped by what the tools are about. Adding a tool is one row here and in its group, one handler, one view.

mod lists;
mod logs;
mod records;
mod rules;
mod system;

use crate::catalogue::{ToolDef, row};

/// Every tool, in catalogue order.
pub(crate) fn rows() -> Vec<ToolDef> {
    vec![
        row::<rules::GetFirewallRules>(),
        row::<rules::CreateFirewallRule>(),
        row::<rules::ModifyFirewallRule>(),
        row::<rules::DeleteFirewallRule>(),
        row::<rules::PauseRule>(),
        row::<rules::ResumeRule>(),
        row::<lists::BlockIpAddress>(),
        row::<lists::UnblockIpAddress>(),
        row::<lists::GrantAccess>(),
        row::<lists::RevokeAccess>(),
        row::<lists::ListGrants>(),
        row::<lists::ListAliases>(),
        row::<lists::ListBlocks>(),
        row::<system::GetSystemStatus>(),
        row::<system::GetVpnStatus>(),
        row::<logs::QueryFirewallLogs>(),
        row::<logs::GetTrafficStats>(),
        row::<logs::AnalyzeThreats>(),
        row::<logs::GenerateSecurityReport>(),
        row::<logs::GetDashboardData>(),
        row::<rules::SimulatePacket>(),
        row::<rules::LintRules>(),
        row::<records::GetActiveAlarms>(),
        row::<records::ListPendingChanges>(),
        row::<system::SetEgressPolicy>(),
        row::<records::ConfirmChange>(),
        row::<records::RollbackChange>(),
        row::<records::GetAuditLog>(),
        row::<records::VerifyAuditLog>(),
    ]
}
