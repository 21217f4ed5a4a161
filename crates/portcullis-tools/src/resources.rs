//! Readable resources (MCP `resources/*`) and argument completions. Every resource that shows firewall or audit
//! data is a read tool called through `ToolService::call`, so reading `portcullis://rules` is authorized,
//! rate-limited and audited as a `get_firewall_rules` call by the reader.

use portcullis_core::firewall::ErrorCode;
use portcullis_guard::CallContext;
use serde_json::{Value, json};

use crate::{CallError, ToolService};

const SCHEME: &str = "portcullis://";
const JSON: &str = "application/json";
const MARKDOWN: &str = "text/markdown";

/// A resource with a fixed URI.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub uri: &'static str,
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub mime_type: &'static str,
}

/// A family of resources addressed by an RFC 6570 URI template.
#[derive(Debug, Clone)]
pub struct ResourceTemplateDef {
    pub uri_template: &'static str,
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub mime_type: &'static str,
}

/// What reading a resource gives.
#[derive(Debug, Clone)]
pub struct ResourceBody {
    pub uri: String,
    pub mime_type: &'static str,
    pub text: String,
}

pub fn resources() -> Vec<ResourceDef> {
    let def = |uri, name, title, description, mime_type| ResourceDef { uri, name, title, description, mime_type };
    vec![
        def(
            "portcullis://rules",
            "rules",
            "Firewall rules",
            "The default target's rule set (get_firewall_rules).",
            JSON,
        ),
        def("portcullis://aliases", "aliases", "Aliases", "The default target's aliases (list_aliases).", JSON),
        def("portcullis://blocks", "blocks", "Active blocks", "Blocked addresses with expiry (list_blocks).", JSON),
        def("portcullis://grants", "grants", "Active grants", "Time-limited access grants (list_grants).", JSON),
        def(
            "portcullis://audit/tail",
            "audit-tail",
            "Audit tail",
            "The latest 50 audit records, newest first (get_audit_log).",
            JSON,
        ),
        def(
            "portcullis://report/latest",
            "report-latest",
            "Latest security report",
            "The security report of the last 24 hours (markdown), made when read, from the log store.",
            MARKDOWN,
        ),
        def("portcullis://targets", "targets", "Targets", "The configured firewalls; the first is the default.", JSON),
    ]
}

pub fn resource_templates() -> Vec<ResourceTemplateDef> {
    let def = |uri_template, name, title, description, mime_type| ResourceTemplateDef {
        uri_template,
        name,
        title,
        description,
        mime_type,
    };
    vec![
        def("portcullis://targets/{target}/rules", "target-rules", "Rules of a target", "get_firewall_rules", JSON),
        def("portcullis://targets/{target}/aliases", "target-aliases", "Aliases of a target", "list_aliases", JSON),
        def("portcullis://targets/{target}/blocks", "target-blocks", "Blocks of a target", "list_blocks", JSON),
        def("portcullis://targets/{target}/grants", "target-grants", "Grants of a target", "list_grants", JSON),
        def("portcullis://rules/{rule_id}", "rule", "One rule", "One rule of the default target by its id", JSON),
        def(
            "portcullis://schemas/{tool}",
            "result-schema",
            "Result schema of a tool",
            "The whole JSON schema (2020-12) of a tool's result; its output schema is an outline of it",
            JSON,
        ),
        def(
            "portcullis://interfaces/{interface}/rules",
            "interface-rules",
            "Rules of an interface",
            "The default target's rules on one interface",
            JSON,
        ),
    ]
}

/// The tool call behind a resource URI, or `None` for URIs that need no tool.
fn tool_for(uri: &str) -> Result<Option<(&'static str, Value)>, CallError> {
    let path = uri.strip_prefix(SCHEME).ok_or_else(|| not_found(uri))?;
    let parts: Vec<&str> = path.split('/').collect();
    let call = match parts.as_slice() {
        ["rules"] => ("get_firewall_rules", json!({})),
        ["aliases"] => ("list_aliases", json!({})),
        ["blocks"] => ("list_blocks", json!({})),
        ["grants"] => ("list_grants", json!({})),
        ["audit", "tail"] => ("get_audit_log", json!({"limit": 50})),
        ["targets", target, list] if !target.is_empty() => {
            let tool = match *list {
                "rules" => "get_firewall_rules",
                "aliases" => "list_aliases",
                "blocks" => "list_blocks",
                "grants" => "list_grants",
                _ => return Err(not_found(uri)),
            };
            (tool, json!({"target": target}))
        }
        ["rules", rule_id] if !rule_id.is_empty() => ("get_firewall_rules", json!({"rule_id": rule_id})),
        ["interfaces", interface, "rules"] if !interface.is_empty() => {
            ("get_firewall_rules", json!({"interface": interface}))
        }
        ["report", "latest"] => ("generate_security_report", json!({"timeframe": "24h", "format": "markdown"})),
        ["targets"] | ["schemas", _] => return Ok(None),
        _ => return Err(not_found(uri)),
    };
    Ok(Some(call))
}

fn not_found(uri: &str) -> CallError {
    CallError::new(ErrorCode::NotFound, format!("there is no resource {uri:?}"))
        .with_hint("resources/list and resources/templates/list show what can be read")
}

impl ToolService {
    /// Whether a change applied to `target` may change what `uri` reads (the audit tail changes with every call and
    /// is not tied to a target).
    pub fn resource_depends_on(&self, uri: &str, target: &str) -> bool {
        match tool_for(uri) {
            Ok(Some((tool, args))) if !matches!(tool, "get_audit_log" | "generate_security_report") => {
                args["target"].as_str().unwrap_or(self.targets[0].name.as_str()) == target
            }
            _ => false,
        }
    }

    /// Reads a resource as `ctx`'s principal. Data comes from the matching read tool, through the pipeline.
    pub async fn read_resource(&self, ctx: &CallContext, uri: &str) -> Result<ResourceBody, CallError> {
        let body = |mime_type, text| ResourceBody { uri: uri.to_string(), mime_type, text };
        match tool_for(uri)? {
            Some(("generate_security_report", args)) => {
                let value = self.call(ctx, "generate_security_report", args).await?;
                Ok(body(MARKDOWN, value["content"].as_str().unwrap_or_default().to_string()))
            }
            Some((tool, args)) => {
                let value = self.call(ctx, tool, args).await?;
                let text = serde_json::to_string_pretty(&value)
                    .map_err(|e| CallError::internal(format!("resource not serialisable: {e}")))?;
                Ok(body(JSON, text))
            }
            None => match uri.strip_prefix("portcullis://schemas/") {
                Some(tool) => Ok(body(JSON, self.result_schema(ctx, tool).ok_or_else(|| not_found(uri))?)),
                None => {
                    let names = self.target_names();
                    Ok(body(JSON, json!({"default": names[0], "targets": names}).to_string()))
                }
            },
        }
    }

    /// The whole result schema of a tool the principal may call.
    fn result_schema(&self, ctx: &CallContext, tool: &str) -> Option<String> {
        let def = self.tools_for(ctx).into_iter().find(|t| t.name == tool)?;
        serde_json::to_string_pretty(&*def.result_schema).ok()
    }

    /// Known values for an argument of a prompt or resource template, starting with `prefix`. Values that live on
    /// a firewall (interfaces, rule ids, aliases) are read with `get_firewall_rules` / `list_aliases` through the
    /// pipeline, as `ctx`'s principal.
    pub async fn complete(
        &self,
        ctx: &CallContext,
        argument: &str,
        prefix: &str,
        target: Option<&str>,
    ) -> Result<Vec<String>, CallError> {
        let target_arg = json!({"target": target});
        let mut values: Vec<String> = match argument {
            "target" => self.target_names(),
            "timeframe" => ["15m", "1h", "24h", "7d", "30d"].map(String::from).to_vec(),
            "interface" => {
                let rules = self.call(ctx, "get_firewall_rules", target_arg).await?;
                strings(&rules["interfaces"], "name")
            }
            "rule_id" => {
                let rules = self.call(ctx, "get_firewall_rules", target_arg).await?;
                strings(&rules["data"], "rule_id")
            }
            "alias" | "name" => {
                let aliases = self.call(ctx, "list_aliases", target_arg).await?;
                strings(&aliases["data"], "name")
            }
            "address" | "ip_address" => {
                let blocks = self.call(ctx, "list_blocks", target_arg).await?;
                strings(&blocks["data"], "ip_address")
            }
            _ => Vec::new(),
        };
        values.retain(|v| v.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()));
        values.sort();
        values.dedup();
        Ok(values)
    }
}

/// The string values of `field` in each row of a JSON array.
fn strings(rows: &Value, field: &str) -> Vec<String> {
    let text = |v: &Value| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string()));
    rows.as_array().into_iter().flatten().filter_map(|row| text(&row[field])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_maps_to_a_catalogue_tool_or_none() {
        let tools: Vec<&str> = crate::catalogue().iter().map(|t| t.name).collect();
        for r in resources() {
            if let Some((tool, _)) = tool_for(r.uri).unwrap() {
                assert!(tools.contains(&tool), "{} reads {tool}, which is not in the catalogue", r.uri);
            }
        }
        let (tool, args) = tool_for("portcullis://targets/edge/blocks").unwrap().unwrap();
        assert_eq!((tool, args), ("list_blocks", json!({"target": "edge"})));
        let (tool, args) = tool_for("portcullis://rules/abc123").unwrap().unwrap();
        assert_eq!((tool, args), ("get_firewall_rules", json!({"rule_id": "abc123"})));
    }

    #[test]
    fn unknown_uris_are_not_found() {
        for uri in
            ["portcullis://nope", "portcullis://targets//rules", "file:///etc/passwd", "portcullis://targets/x/y"]
        {
            assert_eq!(tool_for(uri).unwrap_err().code, ErrorCode::NotFound, "{uri}");
        }
    }
}
