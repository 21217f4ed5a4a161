//! The CLI for people: the catalogue, `call TOOL key=value ...` with readable tables (or `--json`), through
//! the same `ToolService::call` as MCP.

use std::io::IsTerminal;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use portcullis_guard::{CallContext, CallError, Transport};
use portcullis_tools::{ToolDef, ToolKind};
use serde_json::{Map, Value};

use crate::app::App;

/// Turns `key=value` words into tool arguments, typed by the tool's input schema.
pub fn parse_pairs(def: &ToolDef, pairs: &[String]) -> Result<Value, String> {
    let properties = def.input_schema.get("properties").and_then(Value::as_object);
    let mut args = Map::new();
    for pair in pairs {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| format!("argument {pair:?} is not key=value (try `portcullis tools {}`)", def.name))?;
        // An argument the tool does not take goes on as text: the service refuses it, naming the closest one, and
        // audits the refusal like any other.
        let schema = properties.and_then(|p| p.get(key));
        args.insert(key.to_string(), typed_value(raw, schema));
    }
    Ok(Value::Object(args))
}

fn typed_value(raw: &str, schema: Option<&Value>) -> Value {
    let types = schema.map(schema_types).unwrap_or_default();
    let wants = |t: &str| types.iter().any(|x| x == t);
    if (raw.starts_with('{') || raw.starts_with('['))
        && let Ok(v) = serde_json::from_str(raw)
    {
        return v;
    }
    if wants("boolean") {
        match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => return Value::Bool(true),
            "false" | "no" | "0" => return Value::Bool(false),
            _ => {}
        }
    }
    if (wants("integer") || wants("number"))
        && let Ok(n) = raw.parse::<i64>()
    {
        return Value::from(n);
    }
    Value::String(raw.to_string())
}

/// The JSON types a property schema admits (following `type` arrays and `anyOf`/`oneOf`).
fn schema_types(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match schema.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(|t| t.as_str().map(String::from))),
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = schema.get(key) {
            out.extend(alts.iter().flat_map(schema_types));
        }
    }
    out
}

pub async fn call(
    app: &App,
    tool: &str,
    pairs: &[String],
    json: bool,
    output: Option<&std::path::Path>,
) -> anyhow::Result<i32> {
    let service = &app.service;
    let args = match service.tools().iter().find(|d| d.name == tool) {
        Some(def) => parse_pairs(def, pairs).map_err(anyhow::Error::msg)?,
        // Unknown tools still go through the pipeline, so that the refusal is audited like any other.
        None => Value::Object(Map::new()),
    };
    let user = std::env::var("USER").ok().map(|u| format!("cli:{u}"));
    let ctx = CallContext::new(app.local_principal(), Transport::Cli, user);
    // Ctrl-C cancels the call the way an MCP client's cancellation does: a read stops, a change not yet applied is
    // not made, and the audit record says `cancelled`.
    let cancel = ctx.cancel.clone();
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let outcome = service.call(&ctx, tool, args).await;
    interrupt.abort();
    match outcome {
        Ok(value) => {
            if let Some(path) = output {
                let (text, what) = match value.get("content").and_then(Value::as_str) {
                    Some(content) => (content.to_string(), "the rendered report"),
                    None => (serde_json::to_string_pretty(&value)?, "the answer as JSON"),
                };
                std::fs::write(path, &text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                println!("wrote {what} to {} ({} bytes)", path.display(), text.len());
            } else if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", render_for(tool, &value));
            }
            Ok(0)
        }
        Err(e) => {
            print_error(&e, json);
            Ok(exit_code(&e))
        }
    }
}

/// The exit status of a refused or failed call (README, "Exit codes"): 2 for input the call cannot take (a bad
/// argument, an unknown tool), 4 when the guardrails refuse it (role, policy, rate limit, a person's approval,
/// lockout), 5 when the firewall cannot do it (`unsupported`), 1 for every other failure.
pub fn exit_code(e: &CallError) -> i32 {
    use portcullis_core::firewall::ErrorCode as C;
    match e.code {
        C::ValidationError | C::NotFound => 2,
        C::AuthorizationFailed | C::PolicyDenied | C::RateLimited | C::ApprovalRequired | C::LockoutPrevented => 4,
        C::Unsupported => 5,
        _ => 1,
    }
}

fn print_error(e: &CallError, json: bool) {
    if json {
        let body = serde_json::json!({ "error": e });
        println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
        return;
    }
    let label = paint(&format!("error [{}]", e.code.as_str()), "1;31", std::io::stderr().is_terminal());
    eprintln!("{label}: {}", e.message);
    if let Some(field) = &e.field {
        eprintln!("  field: {field}");
    }
    if let Some(hint) = &e.hint {
        eprintln!("  hint:  {hint}");
    }
}

/// [`render_for`] a tool that chooses no columns.
#[cfg(test)]
fn render(value: &Value) -> String {
    render_for("", value)
}

/// The columns a tool's table shows, in order, as paths into each row (`record.principal.name`); the rest is
/// left to `--json`. Tools without an entry get every column, the ones people read first leading.
fn tool_columns(tool: &str) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match tool {
        "get_audit_log" => &[
            ("seq", "seq"),
            ("time", "record.time"),
            ("principal", "record.principal.name"),
            ("tool", "record.tool"),
            ("target", "record.target"),
            ("decision", "record.decision"),
            ("outcome", "record.outcome"),
            ("risk", "record.risk_score"),
            ("reason", "record.reason"),
        ],
        "list_blocks" | "list_grants" => &[
            ("ip_address", "ip_address"),
            ("interface", "interface"),
            ("reason", "reason"),
            ("expires_at", "expires_at"),
            ("remaining_seconds", "remaining_seconds"),
        ],
        "query_firewall_logs" => &[
            ("timestamp", "timestamp"),
            ("action", "action"),
            ("interface", "interface"),
            ("protocol", "protocol"),
            ("src_ip", "src_ip"),
            ("src_port", "src_port"),
            ("dst_ip", "dst_ip"),
            ("dst_port", "dst_port"),
            ("src_country", "src_country"),
            ("rule_id", "rule_id"),
        ],
        "analyze_threats" => &[
            ("type", "type"),
            ("source_ip", "source_ip"),
            ("threat_score", "threat_score"),
            ("severity", "severity"),
            ("attempts", "attempt_count"),
            ("recommended_block", "recommended_block_duration"),
            ("detail", "detail"),
        ],
        "list_vpn_users" => &[
            ("username", "username"),
            ("type", "type"),
            ("server", "server"),
            ("address", "address"),
            ("expires_at", "expires_at"),
        ],
        "get_active_alarms" => &[
            ("kind", "kind"),
            ("severity", "severity"),
            ("time", "time"),
            ("message", "message"),
            ("recommendation", "recommendation"),
        ],
        _ => return None,
    })
}

/// The value at a dotted path of a row.
fn at<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(row, |v, key| v.get(key))
}

/// Renders a result for a person: scalar fields as `key: value`, `data` and `plan` rows as tables, with the
/// columns `tool` chooses.
pub fn render_for(tool: &str, value: &Value) -> String {
    let Some(map) = value.as_object() else {
        return format!("{value}\n");
    };
    let mut out = String::new();
    for (key, v) in map {
        if matches!(v, Value::Array(_) | Value::Object(_)) {
            continue;
        }
        let shown = scalar(v);
        let shown = match (key.as_str(), shown.as_str()) {
            ("status", "applied" | "rolled_back") => paint(&shown, "32", std::io::stdout().is_terminal()),
            ("status", "pending_confirmation" | "planned") => paint(&shown, "33", std::io::stdout().is_terminal()),
            _ => shown,
        };
        out.push_str(&fit(&format!("{key}: {shown}")));
    }
    for (key, v) in map {
        match v {
            Value::Array(rows) if rows.iter().all(Value::is_object) && !rows.is_empty() => {
                let chosen = tool_columns(tool).filter(|_| key == "data" || key == "users");
                let shown = match chosen {
                    Some(columns) => chosen_table(rows, columns),
                    None => table(rows),
                };
                out.push_str(&format!("\n{key}:\n{shown}\n"));
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str(&format!("\n{key}:\n"));
                for item in items {
                    out.push_str(&fit(&format!("  - {}", scalar(item))));
                }
            }
            Value::Object(inner) if !inner.is_empty() => {
                out.push_str(&format!("\n{key}:\n"));
                for (k, v) in inner {
                    out.push_str(&fit(&format!("  {k}: {}", scalar(v))));
                }
            }
            _ => {}
        }
    }
    out
}

/// Columns people read first, in this order; others follow. Bookkeeping columns are left to `--json`.
const FIRST_COLUMNS: &[&str] = &[
    "rule_id",
    "position",
    "interface",
    "status",
    "action",
    "protocol",
    "source",
    "source_port",
    "destination",
    "destination_port",
    "ip_address",
    "alias",
    "reason",
    "expires_at",
    "remaining_seconds",
    "change_id",
    "type",
    "severity",
    "kind",
    "message",
    "description",
];
const HIDDEN_COLUMNS: &[&str] = &["created_at", "updated_at", "enabled", "direction", "ip_version", "log", "prev_hash"];

fn table(rows: &[Value]) -> String {
    if rows.iter().all(|r| r.get("op").is_some()) {
        return plan_lines(rows);
    }
    let mut columns: Vec<String> = Vec::new();
    for row in rows.iter().filter_map(Value::as_object) {
        for key in row.keys().filter(|k| !HIDDEN_COLUMNS.contains(&k.as_str())) {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let rank = |c: &String| FIRST_COLUMNS.iter().position(|f| f == c).unwrap_or(FIRST_COLUMNS.len());
    columns.sort_by_key(rank);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(&columns);
    if let Some(width) = terminal_width() {
        t.set_width(width);
    }
    for row in rows.iter().filter_map(Value::as_object) {
        t.add_row(columns.iter().map(|c| row.get(c).map(scalar).unwrap_or_default()));
    }
    t.to_string()
}

/// A table of the columns a tool chose, those no row has left out.
fn chosen_table(rows: &[Value], columns: &[(&str, &str)]) -> String {
    let present: Vec<&(&str, &str)> =
        columns.iter().filter(|(_, path)| rows.iter().any(|r| at(r, path).is_some_and(|v| !v.is_null()))).collect();
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(present.iter().map(|(title, _)| *title));
    if let Some(width) = terminal_width() {
        t.set_width(width);
    }
    for row in rows {
        t.add_row(present.iter().map(|(_, path)| at(row, path).map(scalar).unwrap_or_default()));
    }
    t.to_string()
}

/// `text` in colour (an SGR code such as `1;31`) when the stream is a terminal and `NO_COLOR` is unset
/// (no-color.org); as it is otherwise.
fn paint(text: &str, sgr: &str, terminal: bool) -> String {
    let wanted = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if wanted { format!("\x1b[{sgr}m{text}\x1b[0m") } else { text.to_string() }
}

/// One line of `key: value`, cut to the terminal's width with a marker (`--json` has it whole).
fn fit(line: &str) -> String {
    match terminal_width().map(usize::from) {
        Some(width) if line.chars().count() > width => {
            let kept: String = line.chars().take(width.saturating_sub(1)).collect();
            format!("{kept}…\n")
        }
        _ => format!("{line}\n"),
    }
}

/// The width tables are fitted to: the terminal's when stdout is one, else `COLUMNS` when set (as shells export
/// it); `None` (no limit) when the output goes to a pipe or file without it.
fn terminal_width() -> Option<u16> {
    if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size_of(std::io::stdout()) {
        return Some(w.max(40));
    }
    std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok()).filter(|w| *w >= 40)
}

/// A plan, one line per operation: what it does to which object.
fn plan_lines(ops: &[Value]) -> String {
    let describe = |v: &Value| -> String {
        match (v.get("rule_id"), v.get("description"), v.get("name")) {
            (_, _, Some(name)) => format!("alias {}", scalar(name)),
            (Some(id), Some(d), _) if !scalar(id).is_empty() => format!("rule {} {:?}", scalar(id), scalar(d)),
            (_, Some(d), _) => {
                format!("new rule {:?} on {}", scalar(d), v.get("interface").map(scalar).unwrap_or_default())
            }
            _ => String::new(),
        }
    };
    let entries = |v: Option<&Value>| {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|e| e.get("value")).map(scalar).collect::<Vec<_>>().join(", "))
    };
    ops.iter()
        .map(|op| {
            let kind = op.get("op").map(scalar).unwrap_or_default();
            let alias = op.get("alias").map(scalar).unwrap_or_default();
            let what = match kind.as_str() {
                "put_alias_entries" => format!("{alias} += {}", entries(op.get("after")).unwrap_or_default()),
                "remove_alias_entries" => format!("{alias} -= {}", entries(op.get("before")).unwrap_or_default()),
                "delete_rule" => describe(op.get("before").unwrap_or(&Value::Null)),
                _ => describe(op.get("after").unwrap_or(&Value::Null)),
            };
            format!("  {kind:<22} {what}\n")
        })
        .collect()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `portcullis call TOOL --help`: what the tool does, its arguments (type, required, what each means) and an
/// example call with the required ones.
pub fn tool_help(defs: &[ToolDef], tool: &str) -> anyhow::Result<i32> {
    let Some(def) = defs.iter().find(|d| d.name == tool) else {
        let names: Vec<&str> = defs.iter().map(|d| d.name).collect();
        let near = names.iter().find(|n| strsim::jaro_winkler(n, tool) > 0.85);
        eprintln!(
            "there is no tool named {tool:?}{}; `portcullis tools` lists the catalogue",
            near.map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default()
        );
        return Ok(2);
    };
    println!(
        "{} — {}
",
        def.name, def.title
    );
    println!(
        "{}
",
        def.description
    );
    let kind = if def.kind == ToolKind::Read { "reads only" } else { "changes the firewall" };
    println!(
        "{kind}; permission: operation {}
",
        def.operation
    );
    let schema = &*def.input_schema;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut example = vec![format!("portcullis call {}", def.name)];
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        println!("arguments:");
        let mut keys: Vec<&String> = props.keys().collect();
        keys.sort_by_key(|k| (!required.contains(&k.as_str()), k.as_str()));
        for key in keys {
            let p = &props[key];
            let types = schema_types(p).into_iter().filter(|t| t != "null").collect::<Vec<_>>().join("|");
            let need = if required.contains(&key.as_str()) { "required" } else { "optional" };
            let about = p.get("description").and_then(Value::as_str).unwrap_or_default().replace('\n', " ");
            println!(
                "  {key} ({}, {need}){}",
                if types.is_empty() { "any".into() } else { types.clone() },
                if about.is_empty() { String::new() } else { format!(": {about}") }
            );
            if need == "required" {
                example.push(format!("{key}=<{}>", if types.is_empty() { "value".to_string() } else { types }));
            }
        }
    } else {
        println!("arguments: none");
    }
    println!(
        "
example:
  {}",
        example.join(" ")
    );
    Ok(0)
}

pub fn print_catalogue(defs: &[ToolDef], json: bool) -> anyhow::Result<()> {
    if json {
        let list: Vec<Value> = defs
            .iter()
            .map(|d| {
                serde_json::json!({
                    "name": d.name, "title": d.title, "description": d.description, "operation": d.operation,
                    "read_only": d.kind == ToolKind::Read, "input_schema": *d.input_schema,
                    "output_schema": *d.output_schema,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header([
        "tool",
        "kind",
        "operation",
        "arguments",
        "what it does",
    ]);
    for d in defs {
        let args = d
            .input_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| {
                let required: Vec<&str> = d
                    .input_schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                p.keys()
                    .map(|k| if required.contains(&k.as_str()) { k.clone() } else { format!("{k}?") })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let kind = if d.kind == ToolKind::Read { "read" } else { "change" };
        t.add_row([d.name, kind, d.operation, &args, d.description]);
    }
    println!("{t}");
    Ok(())
}

/// `portcullis whoami`: the principal local calls run as, its role, and the tools it may and may not call.
pub fn whoami(app: &App, json: bool) -> anyhow::Result<i32> {
    let principal = app.local_principal();
    let ctx = CallContext::new(principal.clone(), Transport::Cli, None);
    let allowed: Vec<&str> = app.service.tools_for(&ctx).iter().map(|t| t.name).collect();
    let refused: Vec<&str> =
        app.service.tools().iter().map(|t| t.name).filter(|name| !allowed.contains(name)).collect();
    let how = "run as another principal with security.principal in the config, or PORTCULLIS_PRINCIPAL";
    if json {
        let answer = serde_json::json!({"principal": principal.name, "role": principal.role,
                                        "may_call": allowed, "may_not_call": refused, "run_as_another": how});
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(0);
    }
    println!("principal: {}\nrole:      {}", principal.name, principal.role);
    println!("may call ({}): {}", allowed.len(), allowed.join(", "));
    if !refused.is_empty() {
        println!("may not call ({}): {}", refused.len(), refused.join(", "));
        println!("({how})");
    }
    Ok(0)
}

/// `config check --probe`: every target's status read through the tool service (guards and audit included), one
/// line each: what answered, or the error with its hint. Exit 1 when any target does not answer.
pub async fn probe_targets(config: crate::config::Config) -> anyhow::Result<i32> {
    let app = App::open(config)?;
    let ctx = CallContext::new(app.local_principal(), Transport::Cli, None);
    let mut failed = 0;
    for name in app.service.target_names() {
        let call = app.service.call(&ctx, "get_system_status", serde_json::json!({"target": name}));
        match tokio::time::timeout(std::time::Duration::from_secs(20), call).await {
            Ok(Ok(status)) => {
                let what = [&status["backend"], &status["version"], &status["hostname"]]
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                println!("# probe {name}: ok{}", if what.is_empty() { String::new() } else { format!(" ({what})") });
            }
            Ok(Err(e)) => {
                failed += 1;
                let hint = e.hint.as_deref().map(|h| format!(" — {h}")).unwrap_or_default();
                println!("# probe {name}: {}: {}{hint}", e.code.as_str(), e.message);
            }
            Err(_) => {
                failed += 1;
                println!("# probe {name}: no answer within 20 s");
            }
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_lead_with_what_people_read_and_plans_read_as_lines() {
        let rules = json!({"count": 1, "data": [{"description": "Web", "created_at": "2026-01-01T00:00:00Z",
            "rule_id": "17", "action": "pass", "position": 0, "interface": "lan"}]});
        let out = render(&rules);
        assert!(!out.contains("created_at"), "{out}");
        let header = out.lines().find(|l| l.contains("rule_id")).unwrap();
        assert!(header.find("rule_id") < header.find("description"), "{header}");

        let plan = json!({"plan": [{"op": "put_alias_entries", "alias": "PORTCULLIS_BLOCK", "before": [],
            "after": [{"value": "203.0.113.9"}]}]});
        assert!(render(&plan).contains("PORTCULLIS_BLOCK += 203.0.113.9"), "{}", render(&plan));
    }

    #[test]
    fn the_audit_log_is_a_table_of_its_records_fields_not_a_blob() {
        let audit = json!({"count": 1, "data": [{"seq": 7, "hash": "ab12", "record": {"time": "2026-12-07T10:00:00Z",
            "principal": {"name": "ada", "role": "admin"}, "tool": "block_ip_address", "decision": "allowed",
            "outcome": "ok", "risk_score": 10, "arguments": {"ip_address": "192.0.2.7"}}}]});
        let out = render_for("get_audit_log", &audit);
        let header = out.lines().find(|l| l.contains("principal")).unwrap_or_else(|| panic!("{out}"));
        assert!(header.find("seq") < header.find("time") && header.find("time") < header.find("tool"), "{header}");
        assert!(out.contains("ada") && out.contains("block_ip_address"), "{out}");
        assert!(!out.contains("ab12") && !out.contains("\"arguments\""), "bookkeeping and blobs left to --json: {out}");
        assert!(!header.contains("target"), "a column no row has is left out: {header}");
    }
}
