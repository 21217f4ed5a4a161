//! The output schema clients check every result against: an outline of the result type. Clients validate each
//! result against the schema a tool declares, and the official Python client 1.x compiles that schema anew on
//! every call (checking it against its metaschema first): with the whole result type, 17 KB for a change, that
//! cost it 50–130 ms per call, more than the server's own work by a hundred times. The outline keeps what a
//! client reads first — the top-level fields with their JSON types, descriptions and whether they are required —
//! in JSON Schema draft-07, whose metaschema is the quick one to check, and points at the whole type
//! (`portcullis://schemas/{tool}`, the 2020-12 schema with shared `$defs`), which the server's own tests check
//! every result against.

use serde_json::{Map, Value, json};

/// The draft an outline declares.
const DIALECT: &str = "http://json-schema.org/draft-07/schema#";

/// The outline of `full` (a 2020-12 object schema with `$defs`), for the tool `tool`.
pub(super) fn outline(tool: &str, full: &Map<String, Value>) -> Map<String, Value> {
    let defs = full.get("$defs").and_then(Value::as_object);
    let properties: Map<String, Value> = full
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.iter().map(|(name, p)| (name.clone(), Value::Object(field(p, defs)))).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("$schema".into(), json!(DIALECT));
    out.insert("type".into(), json!("object"));
    let about = full.get("description").and_then(Value::as_str).map(|d| format!("{d} ")).unwrap_or_default();
    out.insert("description".into(), json!(format!("{about}Whole schema: portcullis://schemas/{tool}")));
    out.insert("properties".into(), Value::Object(properties));
    if let Some(required) = full.get("required") {
        out.insert("required".into(), required.clone());
    }
    out
}

/// One top-level field: its JSON types, its description, and for an array the types of its items.
fn field(schema: &Value, defs: Option<&Map<String, Value>>) -> Map<String, Value> {
    let mut out = Map::new();
    let types = types_of(schema, defs, 0);
    if !types.is_empty() {
        out.insert("type".into(), if types.len() == 1 { json!(types[0]) } else { json!(types) });
    }
    let description = schema.get("description").or_else(|| referenced(schema, defs).and_then(|d| d.get("description")));
    if let Some(d) = description {
        out.insert("description".into(), d.clone());
    }
    if types.contains(&"array") {
        let item_types = items_of(schema, defs).map(|i| types_of(i, defs, 0)).unwrap_or_default();
        if !item_types.is_empty() {
            let t = if item_types.len() == 1 { json!(item_types[0]) } else { json!(item_types) };
            out.insert("items".into(), json!({ "type": t }));
        }
    }
    out
}

/// The JSON types a schema admits, or none when they cannot be told without resolving deeper (any type then).
fn types_of(schema: &Value, defs: Option<&Map<String, Value>>, depth: usize) -> Vec<&'static str> {
    if depth > 4 {
        return Vec::new();
    }
    if let Some(def) = resolve(schema, defs) {
        return types_of(def, defs, depth + 1);
    }
    let mut out: Vec<&'static str> = Vec::new();
    match schema.get("type") {
        Some(Value::String(t)) => out.extend(known(t)),
        Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(Value::as_str).filter_map(known)),
        _ => {
            let branches = ["oneOf", "anyOf"].iter().find_map(|k| schema.get(*k)).and_then(Value::as_array);
            let consts = schema.get("const").or_else(|| schema.get("enum"));
            if let Some(branches) = branches {
                for b in branches {
                    let t = types_of(b, defs, depth + 1);
                    if t.is_empty() {
                        return Vec::new();
                    }
                    out.extend(t);
                }
            } else if consts
                .is_some_and(|c| c.is_string() || c.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
            {
                out.push("string");
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn items_of<'a>(schema: &'a Value, defs: Option<&'a Map<String, Value>>) -> Option<&'a Value> {
    let own = schema.get("items");
    own.or_else(|| {
        ["anyOf", "oneOf"]
            .iter()
            .find_map(|k| schema.get(*k))
            .and_then(Value::as_array)
            .and_then(|bs| bs.iter().find_map(|b| b.get("items")))
    })
    .or_else(|| resolve(schema, defs).and_then(|d| d.get("items")))
}

/// The definition a schema names, directly or as the one branch of an optional value (`anyOf [T, null]`).
fn referenced<'a>(schema: &Value, defs: Option<&'a Map<String, Value>>) -> Option<&'a Value> {
    resolve(schema, defs).or_else(|| {
        let branches = schema.get("anyOf")?.as_array()?;
        branches.iter().find_map(|b| resolve(b, defs))
    })
}

fn resolve<'a>(schema: &Value, defs: Option<&'a Map<String, Value>>) -> Option<&'a Value> {
    let name = schema.get("$ref")?.as_str()?.strip_prefix("#/$defs/")?;
    defs?.get(name)
}

/// The JSON type names draft-07 knows, as static strings.
fn known(t: &str) -> Option<&'static str> {
    ["object", "array", "string", "integer", "number", "boolean", "null"].into_iter().find(|k| *k == t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outline_keeps_top_level_types_descriptions_and_required() {
        let full = json!({
            "type": "object",
            "description": "A change.",
            "required": ["status", "plan"],
            "properties": {
                "status": {"$ref": "#/$defs/Status"},
                "plan": {"type": "array", "items": {"$ref": "#/$defs/Op"}, "description": "Steps."},
                "rule": {"anyOf": [{"$ref": "#/$defs/Rule"}, {"type": "null"}]},
                "risk": {"type": "integer", "format": "uint8", "minimum": 0},
                "confirm_by": {"type": ["string", "null"], "format": "date-time"},
                "anything": {}
            },
            "$defs": {
                "Status": {"description": "Where it stands.", "oneOf": [{"const": "applied"}, {"const": "planned"}]},
                "Op": {"oneOf": [{"type": "object"}, {"type": "object"}]},
                "Rule": {"type": "object", "description": "A rule."}
            }
        });
        let out = Value::Object(outline("block_ip_address", full.as_object().unwrap()));
        assert_eq!(out["$schema"], DIALECT);
        assert_eq!(out["required"], json!(["status", "plan"]));
        assert!(out["description"].as_str().unwrap().ends_with("portcullis://schemas/block_ip_address"));
        let p = &out["properties"];
        assert_eq!(p["status"], json!({"type": "string", "description": "Where it stands."}));
        assert_eq!(p["plan"], json!({"type": "array", "description": "Steps.", "items": {"type": "object"}}));
        assert_eq!(p["rule"], json!({"type": ["null", "object"], "description": "A rule."}));
        assert_eq!(p["risk"], json!({"type": "integer"}));
        assert_eq!(p["confirm_by"], json!({"type": ["null", "string"]}));
        assert_eq!(p["anything"], json!({}), "a field of any type stays unconstrained");
    }
}
