//! Prompts (MCP `prompts/*`): ready-made tasks for an assistant. Each one gathers the data it needs with read tools
//! through `ToolService::call` (authorized and audited as the caller) and frames the task; what the caller may
//! not read is stated in the prompt instead of being left out silently.

use portcullis_core::FieldError;
use portcullis_core::firewall::ErrorCode;
use portcullis_guard::CallContext;
use serde_json::{Map, Value, json};

use crate::{CallError, ToolService};

#[derive(Debug, Clone)]
pub struct PromptArgDef {
    pub name: &'static str,
    pub description: &'static str,
    pub required: bool,
}

#[derive(Debug, Clone)]
pub struct PromptDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub arguments: Vec<PromptArgDef>,
}

/// A rendered prompt: one user message per part.
#[derive(Debug, Clone)]
pub struct PromptBody {
    pub description: String,
    pub parts: Vec<String>,
}

const TARGET: PromptArgDef =
    PromptArgDef { name: "target", description: "The firewall; the default target when omitted.", required: false };

pub fn prompts() -> Vec<PromptDef> {
    vec![
        PromptDef {
            name: "investigate_address",
            title: "Investigate an address",
            description: "Incident triage: what an address did, whether it is blocked, and what to do about it.",
            arguments: vec![
                PromptArgDef { name: "address", description: "The IPv4/IPv6 address or CIDR.", required: true },
                PromptArgDef { name: "timeframe", description: "How far back to look (default 24h).", required: false },
                TARGET,
            ],
        },
        PromptDef {
            name: "weekly_security_report",
            title: "Weekly security report",
            description: "Write the weekly security report from the last 7 days of alarms, blocks, grants and logs.",
            arguments: vec![TARGET],
        },
        PromptDef {
            name: "rule_cleanup_review",
            title: "Rule clean-up review",
            description: "Review shadowed, redundant, overly broad and long-disabled rules and propose dry-run fixes.",
            arguments: vec![
                PromptArgDef { name: "interface", description: "Only this interface's rules.", required: false },
                TARGET,
            ],
        },
    ]
}

impl ToolService {
    pub async fn prompt(
        &self,
        ctx: &CallContext,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<PromptBody, CallError> {
        let def = prompts().into_iter().find(|p| p.name == name).ok_or_else(|| {
            CallError::new(ErrorCode::NotFound, format!("there is no prompt named {name:?}"))
                .with_hint("prompts/list shows the prompts")
        })?;
        let arg = |key: &str| args.get(key).and_then(Value::as_str).map(str::to_string);
        for a in &def.arguments {
            if a.required && arg(a.name).is_none_or(|v| v.trim().is_empty()) {
                return Err(FieldError::new(a.name, "is required").into());
            }
        }
        if let Some(unknown) = args.keys().find(|k| !def.arguments.iter().any(|a| a.name == k.as_str())) {
            return Err(FieldError::new(unknown.clone(), "is not an argument of this prompt").into());
        }
        let target = arg("target");
        let mut parts = Vec::new();
        match name {
            "investigate_address" => {
                let address = arg("address").unwrap_or_default();
                portcullis_core::model::parse_net("address", &address)?;
                let timeframe = arg("timeframe").unwrap_or_else(|| "24h".into());
                portcullis_core::duration::parse_span("timeframe", &timeframe)?;
                parts.push(format!(
                    "Investigate {address} on firewall {target}. Using the data below and further read tools \
                     (query_firewall_logs, simulate_packet, list_blocks), tell me: what this address tried over the \
                     last {timeframe} (ports, protocols, interfaces, how often, allowed or blocked), whether it is \
                     blocked now and by which rule, and whether it looks like a scan, a brute-force attempt or \
                     legitimate traffic. If a block is warranted, show it with block_ip_address and dry_run: true \
                     first, with a duration that fits the evidence and a reason, and wait for my go-ahead.",
                    target = target.as_deref().unwrap_or("(default)")
                ));
                let logs = json!({"timeframe": timeframe, "source_ip": address, "limit": 200, "target": target});
                parts.push(self.gather(ctx, "query_firewall_logs", logs, "Log entries from the address").await);
                let blocks = json!({"target": target});
                parts.push(self.gather(ctx, "list_blocks", blocks, "Active blocks").await);
            }
            "weekly_security_report" => {
                parts.push(
                    "Write the weekly security report for this firewall as Markdown: a summary (rule count, blocked \
                     and allowed traffic), security events grouped by protocol:port, the top blocked source \
                     addresses, active alarms, blocks and grants with their expiry, and recommendations (for example \
                     disabled rules to clean up or heavy SSH attack volume). Base every figure on the data below; \
                     say where data is missing rather than estimating it."
                        .to_string(),
                );
                let t = || json!({"target": target});
                parts.push(
                    self.gather(ctx, "get_firewall_rules", json!({"summary": true, "target": target}), "Rules").await,
                );
                let logs = json!({"timeframe": "7d", "action": "block", "limit": 1000, "target": target});
                parts.push(self.gather(ctx, "query_firewall_logs", logs, "Blocked traffic, last 7 days").await);
                parts.push(self.gather(ctx, "get_active_alarms", json!({}), "Active alarms").await);
                parts.push(self.gather(ctx, "list_blocks", t(), "Active blocks").await);
                parts.push(self.gather(ctx, "list_grants", t(), "Active grants").await);
                parts.push(self.gather(ctx, "lint_rules", t(), "Rule findings").await);
            }
            _ => {
                let interface = arg("interface");
                parts.push(
                    "Review this firewall's rules for clean-up. For each finding below (shadowed, redundant, overly \
                     broad, disabled for a long time, paused), explain the risk in one sentence and propose the fix \
                     as a modify_firewall_rule or delete_firewall_rule call with dry_run: true. Never propose a \
                     change that would cut management access; do not apply anything without my confirmation."
                        .to_string(),
                );
                let filter = json!({"interface": interface, "target": target});
                parts.push(self.gather(ctx, "lint_rules", filter.clone(), "Rule findings").await);
                parts.push(self.gather(ctx, "get_firewall_rules", filter, "Rules").await);
            }
        }
        Ok(PromptBody { description: def.description.to_string(), parts })
    }

    /// One read tool's result as a titled JSON block, or the reason it could not be read.
    async fn gather(&self, ctx: &CallContext, tool: &str, args: Value, title: &str) -> String {
        let args = drop_nulls(args);
        match self.call(ctx, tool, args.clone()).await {
            Ok(value) => {
                let text = serde_json::to_string_pretty(&value).unwrap_or_else(|e| e.to_string());
                format!("{title} ({tool} {args}):\n```json\n{text}\n```")
            }
            Err(e) => format!("{title}: not available ({tool} refused: {}: {})", e.code.as_str(), e.message),
        }
    }
}

fn drop_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}
