//! The tool catalogue: names, descriptions, operations, annotations and schemas. Transports list tools from
//! here and call them through `ToolService::call`; there is no other way in.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use portcullis_guard::{Category, Level, RateClass, Requirement};
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value};

use crate::analytics::*;
use crate::args::*;
use crate::views::*;

/// Whether a tool reads or changes the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    Read,
    Change,
}

/// One tool as every transport sees it.
#[derive(Debug, Clone)]
pub struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The operation name policies refer to (`security.allowed_operations`).
    pub operation: &'static str,
    pub kind: ToolKind,
    /// The permission a principal's role must grant.
    pub requirement: Requirement,
    pub rate_class: RateClass,
    pub destructive: bool,
    pub idempotent: bool,
    pub input_schema: Schema,
    pub output_schema: Schema,
}

/// A JSON schema, shared: a dozen change tools return the same result type, and a server holds its tools' schemas
/// for its whole life (as JSON trees they are most of its heap at idle).
pub type Schema = Arc<Map<String, Value>>;

/// The schema of `T`, made once per process and type.
fn schema_of<T: JsonSchema + 'static>() -> Schema {
    static MADE: OnceLock<Mutex<HashMap<TypeId, Schema>>> = OnceLock::new();
    let made = MADE.get_or_init(Mutex::default);
    let mut made = made.lock().unwrap_or_else(|p| p.into_inner());
    made.entry(TypeId::of::<T>()).or_insert_with(|| Arc::new(generate_schema::<T>())).clone()
}

fn generate_schema<T: JsonSchema>() -> Map<String, Value> {
    // Draft 2020-12 with definitions inlined where possible, which MCP clients validate without resolvers.
    let settings = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    let schema = SchemaGenerator::new(settings).into_root_schema_for::<T>();
    let mut map = match serde_json::to_value(schema) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.remove("$schema");
    map.remove("title");
    let mut schema = Value::Object(map);
    objects_for_boolean_schemas(&mut schema);
    match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Replaces the boolean schema `true` (what schemars makes of a free-form `serde_json::Value`) with its equal `{}`
/// below `properties` and `items`: MCP clients (the official TypeScript SDK among them) accept only object
/// schemas there and refuse the whole tool list otherwise.
fn objects_for_boolean_schemas(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if child == &Value::Bool(true) && matches!(key.as_str(), "items" | "additionalProperties") {
                    *child = Value::Object(Map::new());
                } else if key == "properties" {
                    if let Value::Object(props) = child {
                        for prop in props.values_mut() {
                            if prop == &Value::Bool(true) {
                                *prop = Value::Object(Map::new());
                            }
                            objects_for_boolean_schemas(prop);
                        }
                    }
                } else {
                    objects_for_boolean_schemas(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(objects_for_boolean_schemas),
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn def<A: JsonSchema + 'static, R: JsonSchema + 'static>(
    name: &'static str,
    title: &'static str,
    operation: &'static str,
    kind: ToolKind,
    destructive: bool,
    idempotent: bool,
    description: &'static str,
) -> ToolDef {
    let (requirement, rate_class) = access(name, kind);
    ToolDef {
        name,
        title,
        description,
        operation,
        kind,
        requirement,
        rate_class,
        destructive,
        idempotent,
        input_schema: schema_of::<A>(),
        output_schema: schema_of::<R>(),
    }
}

use ToolKind::{Change, Read};

/// The permission and rate class of each tool: the table in docs/PERMISSIONS.md is generated from this.
fn access(name: &str, kind: ToolKind) -> (Requirement, RateClass) {
    let category = match name {
        "block_ip_address"
        | "unblock_ip_address"
        | "list_blocks"
        | "pause_rule"
        | "resume_rule"
        | "confirm_change"
        | "rollback_change"
        | "grant_access"
        | "revoke_access"
        | "list_grants"
        | "list_pending_changes"
        | "get_active_alarms" => Category::Security,
        "get_system_status" | "get_audit_log" | "verify_audit_log" | "set_egress_policy" => Category::System,
        "get_vpn_status" => Category::Network,
        "query_firewall_logs"
        | "get_traffic_stats"
        | "analyze_threats"
        | "generate_security_report"
        | "get_dashboard_data" => Category::Analytics,
        _ => Category::RuleManagement,
    };
    let level = match (name, kind) {
        ("delete_firewall_rule" | "set_egress_policy", _) => Level::Admin,
        (_, Read) => Level::Read,
        (_, Change) => Level::Write,
    };
    let rate = match (level, kind) {
        (Level::Admin, _) => RateClass::Admin,
        (_, Change) => RateClass::Sensitive,
        (_, Read) => RateClass::Default,
    };
    (Requirement { category, level }, rate)
}

/// Every tool Portcullis offers, in catalogue order.
pub fn catalogue() -> Vec<ToolDef> {
    vec![
        def::<GetFirewallRulesArgs, RulesResult>(
            "get_firewall_rules",
            "Firewall rules",
            "read_rules",
            Read,
            false,
            true,
            "List firewall rules in evaluation order with stable rule_id, interface, action, protocol, source, \
             destination, ports, description, enabled/paused state and position.",
        ),
        def::<CreateFirewallRuleArgs, ChangeResult>(
            "create_firewall_rule",
            "Create a firewall rule",
            "create_rule",
            Change,
            false,
            false,
            "Create a rule on an interface. Returns the plan, risk score and the rule as read back from the \
             firewall. dry_run: true returns the exact plan and changes nothing.",
        ),
        def::<ModifyFirewallRuleArgs, ChangeResult>(
            "modify_firewall_rule",
            "Modify a firewall rule",
            "modify_rule",
            Change,
            true,
            true,
            "Change fields of a rule addressed by rule_id (enable/disable, description, action, addresses, \
             ports, position). Managed rules (anti-lockout, block lists) are refused.",
        ),
        def::<RuleIdArgs, ChangeResult>(
            "delete_firewall_rule",
            "Delete a firewall rule",
            "delete_rule",
            Change,
            true,
            true,
            "Delete a rule by rule_id. The plan shows the rule as it was.",
        ),
        def::<PauseRuleArgs, ChangeResult>(
            "pause_rule",
            "Pause a rule",
            "pause_rule",
            Change,
            true,
            true,
            "Disable a rule for 1-1440 minutes (default 60); it resumes by itself.",
        ),
        def::<RuleIdArgs, ChangeResult>(
            "resume_rule",
            "Resume a paused rule",
            "resume_rule",
            Change,
            false,
            true,
            "Re-enable a paused rule now.",
        ),
        def::<BlockIpAddressArgs, ChangeResult>(
            "block_ip_address",
            "Block an address",
            "block_ip",
            Change,
            false,
            true,
            "Block an IPv4/IPv6 address or CIDR on one or every interface for a duration (30m, 1h, 24h, 7d or \
             permanent) with a reason. The block is an entry of a managed block-list alias and expires by itself.",
        ),
        def::<UnblockIpAddressArgs, ChangeResult>(
            "unblock_ip_address",
            "Unblock an address",
            "unblock_ip",
            Change,
            true,
            true,
            "Remove the block of an address or CIDR (on one interface, or everywhere).",
        ),
        def::<GrantAccessArgs, ChangeResult>(
            "grant_access",
            "Grant access",
            "grant_access",
            Change,
            false,
            true,
            "Let an address or CIDR in for a while (knock to get in): an entry with expiry in a managed allow \
             alias that pass rules reference. With interface and port, the pass rule is created on first use.",
        ),
        def::<RevokeAccessArgs, ChangeResult>(
            "revoke_access",
            "Revoke access",
            "revoke_access",
            Change,
            true,
            true,
            "Remove a grant now (from one grant list, or all).",
        ),
        def::<ListGrantsArgs, GrantsResult>(
            "list_grants",
            "Active grants",
            "read_grants",
            Read,
            false,
            true,
            "Active grants with reason, expiry and the pass rules that let them in.",
        ),
        def::<ListAliasesArgs, AliasesResult>(
            "list_aliases",
            "Aliases",
            "read_aliases",
            Read,
            false,
            true,
            "Aliases (named address and port lists) with their kind and entry count; with name, one alias and its \
             live entries with reason and expiry.",
        ),
        def::<InterfaceFilterArgs, BlocksResult>(
            "list_blocks",
            "Active blocks",
            "read_blocks",
            Read,
            false,
            true,
            "List active blocks with interface, reason, creation and expiry time.",
        ),
        def::<TargetArg, SystemStatusResult>(
            "get_system_status",
            "System status",
            "read_system",
            Read,
            false,
            true,
            "CPU and memory usage (percent), uptime (seconds), version, platform and health checks of a target.",
        ),
        def::<VpnStatusArgs, VpnStatusResult>(
            "get_vpn_status",
            "VPN status",
            "read_vpn",
            Read,
            false,
            true,
            "OpenVPN, IPsec and WireGuard servers and tunnels with their state and traffic, and the connected users \
             and peers. type: openvpn, ipsec or wireguard to narrow it.",
        ),
        def::<QueryLogsArgs, LogsResult>(
            "query_firewall_logs",
            "Firewall logs",
            "read_logs",
            Read,
            false,
            true,
            "Firewall log entries, newest first: timestamp, interface, action, direction, protocol, source and \
             destination with ports, the rule_id (tracker) that logged them, length. Filters: timeframe (15m, 1h, \
             24h, 7d), action, source_ip (address or CIDR), destination_ip, destination_port, protocol, interface.",
        ),
        def::<TrafficStatsArgs, TrafficStatsResult>(
            "get_traffic_stats",
            "Traffic statistics",
            "read_logs",
            Read,
            false,
            true,
            "Traffic from the firewall log: total_bytes, total_packets, bytes_in/out, packets_in/out, bandwidth_util \
             (average bits/s) and data: [{timestamp, bytes, packets, connections, blocked}] per granularity bucket. \
             Filters: timeframe (1h, 24h, 7d), interface.",
        ),
        def::<AnalyzeThreatsArgs, ThreatsResult>(
            "analyze_threats",
            "Analyze threats",
            "read_logs",
            Read,
            false,
            true,
            "Detect threats in the firewall log of a timeframe: port scans, brute force on sensitive ports (22, \
             3389, 445, ...), repeated attacks, traffic volume above the hour-of-day baseline. Each has type, \
             severity, source_ip, attempt_count, an adaptive threat_score (0-100) with the block duration it calls \
             for (>=80 7d, >=50 24h, >=20 1h) and a recommendation.",
        ),
        def::<ReportArgs, ReportResult>(
            "generate_security_report",
            "Security report",
            "read_logs",
            Read,
            false,
            true,
            "A security report for a timeframe: summary (rules, log lines, blocked, allowed, traffic), security \
             events by protocol:port, top blocked IPs, threats and recommendations. format: json (default), \
             markdown, or html (standalone page with charts: blocked over time, top sources, top ports, actions by \
             interface).",
        ),
        def::<TargetArg, DashboardResult>(
            "get_dashboard_data",
            "Dashboard",
            "read_logs",
            Read,
            false,
            true,
            "One-call overview: system health, firewall status (rules, interfaces), the last hour's traffic, VPN, \
             active blocks and recent threats.",
        ),
        def::<SimulatePacketArgs, SimulateResult>(
            "simulate_packet",
            "Simulate a packet",
            "read_rules",
            Read,
            false,
            true,
            "Decide a packet against the current rule set with pfSense first-match semantics and name the rule \
             that decides it (or the implicit default).",
        ),
        def::<InterfaceFilterArgs, LintResult>(
            "lint_rules",
            "Lint the rule set",
            "read_rules",
            Read,
            false,
            true,
            "Find shadowed, redundant, overly broad, disabled, long-disabled and paused rules.",
        ),
        def::<AlarmsArgs, AlarmsResult>(
            "get_active_alarms",
            "Active alarms",
            "read_alarms",
            Read,
            false,
            true,
            "Alarms with type, severity and a recommendation: managed block and grant lists edited by hand on the \
             firewall (drift), bursts of denied calls, refused high-risk changes.",
        ),
        def::<NoArgs, PendingChangesResult>(
            "list_pending_changes",
            "Changes awaiting confirmation",
            "read_changes",
            Read,
            false,
            true,
            "Changes applied with a confirmation window (confirm_within) that are undone automatically unless \
             confirmed, with the time left.",
        ),
        def::<SetEgressPolicyArgs, ChangeResult>(
            "set_egress_policy",
            "Egress policy of the Portcullis host",
            "set_egress_policy",
            Change,
            true,
            true,
            "Limit what the host that runs Portcullis may start on an interface (an nftables target on that host): \
             the flows in allow, DNS to the resolvers of /etc/resolv.conf, the APIs of the configured firewalls \
             and the MCP clients (each switchable); everything else it sends is logged and dropped. Forwarded \
             traffic is not affected. Replaces a policy already there; enabled: false removes it. Refused if the \
             host could no longer reach a firewall API or the calling client.",
        ),
        def::<ChangeIdArgs, ChangeRecordView>(
            "confirm_change",
            "Confirm a change",
            "confirm_change",
            Change,
            false,
            true,
            "Keep a change that was applied with a confirmation window; without it the change is undone at confirm_by.",
        ),
        def::<ChangeIdArgs, ChangeResult>(
            "rollback_change",
            "Roll back a change",
            "rollback_change",
            Change,
            true,
            false,
            "Undo an applied change now: the undo plan restores the objects the change touched, verified by \
             read-back. dry_run: true shows the undo plan.",
        ),
        def::<AuditLogArgs, AuditLogResult>(
            "get_audit_log",
            "Audit log",
            "read_audit",
            Read,
            false,
            true,
            "The audit trail, newest first: one record per call with principal, tool, redacted arguments, \
             decision, reason, risk score and outcome. Filters: tool, principal, decision, timeframe.",
        ),
        def::<NoArgs, AuditVerifyResult>(
            "verify_audit_log",
            "Verify the audit log",
            "read_audit",
            Read,
            false,
            true,
            "Check the audit trail's hash chain; reports the first edited, deleted or reordered record.",
        ),
    ]
}

/// The permission table of docs/PERMISSIONS.md, generated from the catalogue and the built-in roles.
pub fn permissions_markdown(roles: &portcullis_guard::Roles) -> String {
    let builtin = portcullis_guard::roles::BUILTIN_ROLES;
    let mut out = String::from(
        "# Permissions\n\n\
         Generated from the tool catalogue and the built-in roles by \
         `UPDATE_DOCS=1 cargo test -p portcullis-tools --test guardrails`; a test fails when this file and the \
         code disagree, and the role matrix test checks every tool against this table.\n\n\
         Levels: none < read < write < admin. Rate classes per principal and minute: default 100, sensitive 10, \
         admin 5 (config `security.rate_limits`).\n\n",
    );
    out.push_str("| tool | operation | category | level | rate class |");
    for r in builtin {
        out.push_str(&format!(" {r} |"));
    }
    out.push_str("\n|---|---|---|---|---|");
    out.push_str(&"---|".repeat(builtin.len()));
    out.push('\n');
    for t in catalogue() {
        let class =
            serde_json::to_value(t.rate_class).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |",
            t.name,
            t.operation,
            t.requirement.category.as_str(),
            t.requirement.level,
            class
        ));
        for r in builtin {
            let allowed = roles.get(r).is_some_and(|role| role.allows(t.requirement));
            out.push_str(if allowed { " allow |" } else { " deny |" });
        }
        out.push('\n');
    }
    out
}
