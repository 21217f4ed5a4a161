//! The embedded subset of the pfRest native schema (see `scripts/extract-schema.py`) and the request linter that
//! records every request that does not match it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
pub(crate) struct Subset {
    #[cfg_attr(not(test), allow(dead_code))]
    pub version: String,
    pub endpoints: BTreeMap<String, EndpointSchema>,
    pub models: BTreeMap<String, ModelSchema>,
    pub all_endpoint_paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub(crate) struct EndpointSchema {
    pub url: String,
    pub model_class: String,
    pub many: bool,
    pub request_method_options: Vec<String>,
    pub requires_auth: bool,
    pub auth_methods: Vec<String>,
    pub deprecated: bool,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub(crate) struct ModelSchema {
    pub class: String,
    pub id_type: Option<String>,
    pub parent_model_class: String,
    pub many: bool,
    pub many_minimum: i64,
    pub many_maximum: i64,
    pub packages: Vec<String>,
    pub always_apply: bool,
    pub subsystem: String,
    pub fields: Vec<FieldSchema>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub(crate) struct FieldSchema {
    pub name: String,
    pub class: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub required: bool,
    pub default: Value,
    pub choices: Vec<Value>,
    pub unique: bool,
    pub allow_empty: bool,
    pub allow_null: bool,
    pub editable: bool,
    pub read_only: bool,
    pub write_only: bool,
    pub sensitive: bool,
    pub many: bool,
    pub many_minimum: i64,
    pub many_maximum: i64,
    pub minimum: Value,
    pub maximum: Value,
    pub minimum_length: Value,
    pub maximum_length: Value,
    pub nested_model_class: Option<String>,
    pub foreign_model_class: Value,
    pub foreign_model_field: Option<String>,
    /// `[]` when unconditional, otherwise an object `{"field": value | [values], "!field": ...}`.
    pub conditions: Value,
}

static SUBSET: LazyLock<Subset> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../schema/subset.json")).expect("embedded schema/subset.json is valid")
});

#[cfg(test)]
pub(crate) fn subset() -> &'static Subset {
    &SUBSET
}

pub(crate) fn endpoint(url: &str) -> Option<&'static EndpointSchema> {
    SUBSET.endpoints.get(url)
}

pub(crate) fn model(name: &str) -> &'static ModelSchema {
    SUBSET.models.get(name).unwrap_or_else(|| panic!("model {name} missing from schema subset"))
}

/// Whether `url` is an endpoint of the real pfRest (full schema), emulated or not.
pub(crate) fn exists_in_pfrest(url: &str) -> bool {
    SUBSET.all_endpoint_paths.binary_search_by(|p| p.as_str().cmp(url)).is_ok()
}

impl ModelSchema {
    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl FieldSchema {
    /// The PHP `gettype()` name pfRest uses in `FIELD_INVALID_TYPE` messages.
    pub fn php_type(&self) -> &str {
        match self.ty.as_str() {
            "double" => "double",
            other => other,
        }
    }

    /// Whether a single (non-array) JSON value has this field's primitive type, as PHP's `gettype()` sees it.
    pub fn scalar_type_ok(&self, v: &Value) -> bool {
        match self.ty.as_str() {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "boolean" => v.is_boolean(),
            "double" => v.is_f64(),
            "array" => v.is_array(),
            _ => true,
        }
    }

    pub fn max_len(&self) -> Option<usize> {
        self.maximum_length.as_u64().map(|n| n as usize)
    }
}

/// pfRest `Field::are_conditions_met()`: `{"f": v}` needs `obj.f === v`, `{"f": [a, b]}` needs `obj.f in [a, b]`,
/// a leading `!` inverts.
pub(crate) fn conditions_met(field: &FieldSchema, obj: &Map<String, Value>) -> bool {
    let Some(conds) = field.conditions.as_object() else { return true };
    for (key, expected) in conds {
        let (inverted, name) = match key.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, key.as_str()),
        };
        let actual = obj.get(name).unwrap_or(&Value::Null);
        let matched = match expected {
            Value::Array(options) => options.iter().any(|o| loose_eq(o, actual)),
            other => other == actual,
        };
        if matched == inverted {
            return false;
        }
    }
    true
}

/// PHP loose `==` for the scalar cases conditions use.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::Number(y)) | (Value::Number(y), Value::String(x)) => {
            x.parse::<f64>().ok() == y.as_f64()
        }
        _ => a == b,
    }
}

/// Control parameters that pfRest's `Endpoint` strips from the request data before it reaches the model, plus the
/// ones that stay in the data but are read by the endpoint (`apply`, `placement`, `all`).
pub(crate) const CONTROL_PARAMS: &[&str] = &[
    "apply",
    "async",
    "dry_run",
    "placement",
    "append",
    "remove",
    "limit",
    "offset",
    "sort_by",
    "sort_order",
    "sort_flags",
    "reverse",
    "all",
];

/// Query filters pfRest knows (`field__<filter>=value`).
pub(crate) const QUERY_FILTERS: &[&str] =
    &["exact", "startswith", "endswith", "contains", "in", "lt", "lte", "gt", "gte", "regex", "format", "except"];

/// Which control parameters have an effect for a given endpoint kind + method (contract §2).
fn control_params_for(many_endpoint: bool, many_model: bool, method: &str, model: &str) -> &'static [&'static str] {
    if model == "FirewallApply" {
        return if method == "POST" { &["async", "dry_run"] } else { &[] };
    }
    match (many_endpoint, method) {
        (true, "GET") => &["limit", "offset", "reverse", "sort_by", "sort_order", "sort_flags"],
        (true, "DELETE") => &["limit", "offset", "all", "dry_run", "async"],
        (true, "PUT") => &["async"],
        (false, "GET") if many_model => &[],
        (false, "GET") => &[],
        (false, "POST") => &["apply", "async", "dry_run", "placement", "sort_by", "sort_order", "sort_flags"],
        (false, "PATCH") => {
            &["apply", "async", "dry_run", "placement", "append", "remove", "sort_by", "sort_order", "sort_flags"]
        }
        (false, "DELETE") => &["apply", "async", "dry_run"],
        _ => &[],
    }
}

/// Split a query target `field__filter` into (field, filter). Unknown trailing filter names are reported by
/// returning `Err(filter)`.
pub(crate) fn split_query_target(target: &str) -> Result<(&str, &str), &str> {
    match target.rsplit_once("__") {
        None => Ok((target, "exact")),
        Some((field, filter)) if QUERY_FILTERS.contains(&filter) => Ok((field, filter)),
        Some((_, filter)) => Err(filter),
    }
}

fn describe_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Lint one object of request data against a model: unknown fields, read-only fields, types, choices,
/// conditions, and (for creations) required fields. Appends human-readable problems to `out`.
struct ObjectLint<'a> {
    /// Keys accepted besides the model's fields (e.g. `id`).
    allowed_extra: &'a [&'a str],
    /// A creation: required fields must be present.
    creating: bool,
    /// Read-only fields are acceptable (PUT items sent back from a GET).
    allow_read_only: bool,
    /// The stored object (PATCH), for evaluating conditions.
    current: Option<&'a Map<String, Value>>,
    /// Prefix of every message (e.g. `[3] ` for PUT items).
    prefix: &'a str,
}

fn lint_object(model: &ModelSchema, obj: &Map<String, Value>, opts: &ObjectLint<'_>, out: &mut Vec<String>) {
    let ObjectLint { allowed_extra, creating, allow_read_only, current, prefix } = *opts;
    for (key, value) in obj {
        if allowed_extra.contains(&key.as_str()) {
            continue;
        }
        let Some(field) = model.field(key) else {
            if CONTROL_PARAMS.contains(&key.as_str()) {
                out.push(format!(
                    "{prefix}control parameter `{key}` has no effect on this request (pfRest ignores it)"
                ));
            } else {
                out.push(format!(
                    "{prefix}unknown field `{key}` (not a field of {}); pfRest silently ignores it",
                    model.class
                ));
            }
            continue;
        };
        if field.read_only && !allow_read_only {
            out.push(format!(
                "{prefix}field `{key}` is read-only in {}; do not send it on writes (the emulator ignores it)",
                model.class
            ));
            continue;
        }
        lint_value(field, value, prefix, out);
    }
    // Merge the request over the stored object (PATCH) or the defaults to evaluate conditions and required fields.
    let mut merged = Map::new();
    for f in &model.fields {
        let stored = current.and_then(|c| c.get(&f.name)).cloned();
        merged.insert(f.name.clone(), stored.unwrap_or_else(|| f.default.clone()));
    }
    for (k, v) in obj {
        merged.insert(k.clone(), v.clone());
    }
    for field in &model.fields {
        let met = conditions_met(field, &merged);
        if !met && obj.get(&field.name).is_some_and(|v| !v.is_null()) && !field.read_only {
            out.push(format!(
                "{prefix}field `{}` is only used when {} ; pfRest silently drops the value",
                field.name, field.conditions
            ));
        }
        if creating && met && field.required && !field.read_only && obj.get(&field.name).is_none_or(Value::is_null) {
            out.push(format!("{prefix}required field `{}` of {} is missing", field.name, model.class));
        }
    }
}

fn lint_value(field: &FieldSchema, value: &Value, prefix: &str, out: &mut Vec<String>) {
    if value.is_null() {
        if !field.allow_null && !field.required {
            // pfRest replaces null with the default; harmless but not the schema's type.
            out.push(format!("{prefix}field `{}` is not nullable (null is replaced by the default)", field.name));
        } else if !field.allow_null {
            out.push(format!("{prefix}field `{}` must not be null", field.name));
        }
        return;
    }
    let items: Vec<&Value> = if field.many {
        match value.as_array() {
            Some(items) => items.iter().collect(),
            None => {
                out.push(format!(
                    "{prefix}field `{}` must be an array of {}, got {}",
                    field.name,
                    field.php_type(),
                    describe_type(value)
                ));
                return;
            }
        }
    } else {
        vec![value]
    };
    for (i, item) in items.into_iter().enumerate() {
        if field.class == "NestedModelField"
            && let Some(nested) = field.nested_model_class.as_deref()
        {
            // Each item is an object of the nested model (a limiter's `bandwidth` items); pfRest drops the
            // `id` / `parent_id` a client sends back from a read.
            match item.as_object() {
                Some(obj) => {
                    let prefix = format!("{prefix}{}[{i}] ", field.name);
                    let opts = ObjectLint {
                        allowed_extra: &["id", "parent_id"],
                        creating: true,
                        allow_read_only: false,
                        current: None,
                        prefix: &prefix,
                    };
                    lint_object(model(nested), obj, &opts, out);
                }
                None => out.push(format!(
                    "{prefix}field `{}` items must be {nested} objects, got {}",
                    field.name,
                    describe_type(item)
                )),
            }
            continue;
        }
        if !field.scalar_type_ok(item) {
            out.push(format!(
                "{prefix}field `{}` must be of type {}, got {} ({item})",
                field.name,
                field.php_type(),
                describe_type(item)
            ));
            continue;
        }
        if !field.choices.is_empty() && !field.choices.contains(item) {
            out.push(format!(
                "{prefix}field `{}` value {item} is not one of {}",
                field.name,
                Value::Array(field.choices.clone())
            ));
        }
    }
}

/// Type expectations of control parameters (contract §2).
fn lint_control_param(name: &str, value: &Value, prefix: &str, out: &mut Vec<String>) {
    let ok = match name {
        "apply" | "async" | "dry_run" | "append" | "remove" | "reverse" | "all" => value.is_boolean(),
        "limit" | "offset" | "placement" => value.is_i64() || value.is_u64(),
        "sort_by" => value.is_string() || value.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "sort_order" => matches!(value.as_str(), Some("SORT_ASC" | "SORT_DESC")),
        "sort_flags" => value.is_string(),
        _ => true,
    };
    if !ok {
        out.push(format!("{prefix}control parameter `{name}` has the wrong type/value: {value}"));
    }
}

/// Everything the linter needs to know about one decoded request.
pub(crate) struct LintInput<'a> {
    pub endpoint: &'a EndpointSchema,
    pub method: &'a str,
    /// Request data as pfRest decoded it (query string for GET/DELETE, JSON body otherwise).
    pub data: &'a Value,
    /// True for the emulated pfRest version >= v2.8.0 (dry_run exists).
    pub has_dry_run: bool,
    /// For PATCH: the stored object being updated (representation), so conditions are evaluated against it.
    pub current: Option<&'a Map<String, Value>>,
}

/// Lint a decoded request against the schema. Returns the list of problems (empty = conforming).
pub(crate) fn lint_request(input: &LintInput<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let ep = input.endpoint;
    let model = model(&ep.model_class);
    let method = input.method;
    if !ep.request_method_options.iter().any(|m| m == method) {
        out.push(format!("method {method} is not supported by {} (allowed: {:?})", ep.url, ep.request_method_options));
        return out;
    }
    let controls = control_params_for(ep.many, model.many, method, &model.class);

    if method == "PUT" && ep.many {
        let Some(items) = input.data.as_array() else {
            out.push("PUT on a plural endpoint needs a JSON array of objects".to_string());
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("[{i}] ");
            match item.as_object() {
                Some(obj) => {
                    let opts = ObjectLint {
                        allowed_extra: &["id"],
                        creating: true,
                        allow_read_only: true,
                        current: None,
                        prefix: &prefix,
                    };
                    lint_object(model, obj, &opts, &mut out)
                }
                None => out.push(format!("{prefix}item must be an object")),
            }
        }
        return out;
    }

    let Some(obj) = input.data.as_object() else {
        out.push(format!("request data must be an object, got {}", describe_type(input.data)));
        return out;
    };

    // Control parameters: type checks, and "no effect here" notes.
    let mut rest = Map::new();
    for (k, v) in obj {
        if CONTROL_PARAMS.contains(&k.as_str()) && model.field(k).is_none() {
            if k == "dry_run" && !input.has_dry_run {
                out.push(
                    "control parameter `dry_run` does not exist before pfRest v2.8.0: the request is executed for real"
                        .to_string(),
                );
                continue;
            }
            if k == "dry_run" && method == "GET" {
                out.push("`dry_run` is not supported on GET (pfRest answers 400)".to_string());
                continue;
            }
            if k == "dry_run" && method == "DELETE" && ep.many {
                out.push(
                    "`dry_run` on a plural DELETE is not honoured by pfRest's ModelSet::delete() in the v2.10 source: \
                     the matching objects are really deleted"
                        .to_string(),
                );
                continue;
            }
            if !controls.contains(&k.as_str()) {
                if ep.many && matches!(method, "GET" | "DELETE") && matches!(k.as_str(), "apply" | "placement") {
                    out.push(format!(
                        "`{k}` is not a control parameter of plural {method}: pfRest treats it as a query on a \
                         non-existent field, which matches EVERY object"
                    ));
                } else {
                    out.push(format!(
                        "control parameter `{k}` has no effect on {method} {} (pfRest ignores it)",
                        ep.url
                    ));
                }
                continue;
            }
            lint_control_param(k, v, "", &mut out);
            if k == "all" && v != &Value::Bool(true) {
                out.push(
                    "`all` other than `true` is treated as a query on a non-existent field, which matches EVERY object"
                        .to_string(),
                );
            }
            continue;
        }
        rest.insert(k.clone(), v.clone());
    }

    match (ep.many, method) {
        (true, "GET") | (true, "DELETE") => {
            for (target, _) in &rest {
                match split_query_target(target) {
                    Err(filter) => out.push(format!("unknown query filter `{filter}` in `{target}`")),
                    Ok((field, _)) => {
                        if field != "id" && model.field(field).is_none() {
                            out.push(format!(
                                "query on unknown field `{field}` (not a field of {}): pfRest skips it, so it matches \
                                 every object",
                                model.class
                            ));
                        }
                    }
                }
            }
            if method == "DELETE" && rest.is_empty() && obj.get("all") != Some(&Value::Bool(true)) {
                out.push("plural DELETE without a query (pfRest answers 400)".to_string());
            }
        }
        (false, "GET") | (false, "DELETE") => {
            if model.many && !rest.contains_key("id") {
                out.push(format!("`id` is required for {method} {}", ep.url));
            }
            for (k, v) in &rest {
                if k == "id" {
                    if !(v.is_i64() || v.is_u64() || (model.id_type.as_deref() == Some("string") && v.is_string())) {
                        out.push(format!("`id` has the wrong type: {v}"));
                    }
                } else if model.field(k).is_some() && method == "DELETE" {
                    out.push(format!("field `{k}` has no effect on DELETE (only `id` selects the object)"));
                } else if model.field(k).is_some() {
                    out.push(format!("field `{k}` has no effect on GET of a single object"));
                } else {
                    out.push(format!("unknown parameter `{k}` (pfRest ignores it)"));
                }
            }
        }
        (false, "POST") => {
            let extra: &[&str] = if model.many { &[] } else { &["id"] };
            if model.many && rest.contains_key("id") {
                out.push("`id` is ignored on POST (pfRest strips it)".to_string());
            }
            let creating = model.many;
            let allowed = [extra, &["id"]].concat();
            let opts =
                ObjectLint { allowed_extra: &allowed, creating, allow_read_only: false, current: None, prefix: "" };
            lint_object(model, &rest, &opts, &mut out);
        }
        (false, "PATCH") => {
            if model.many && !rest.contains_key("id") {
                out.push(format!("`id` is required for PATCH {}", ep.url));
            }
            let opts = ObjectLint {
                allowed_extra: &["id"],
                creating: false,
                allow_read_only: false,
                current: input.current,
                prefix: "",
            };
            lint_object(model, &rest, &opts, &mut out);
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_loads_and_has_the_models() {
        let s = subset();
        assert_eq!(s.version, "v2.10");
        for m in ["FirewallRule", "FirewallAlias", "FirewallApply", "SystemStatus", "IPsecChildSAStatus"] {
            assert!(s.models.contains_key(m), "{m}");
        }
        assert!(exists_in_pfrest("/api/v2/firewall/nat/port_forwards"));
        assert!(!exists_in_pfrest("/api/v2/firewall/rulez"));
    }

    #[test]
    fn lint_flags_unknown_and_bad_values() {
        let ep = endpoint("/api/v2/firewall/rule").unwrap();
        let data = json!({"type": "allow", "interface": "wan", "ipprotocol": "inet", "source": "any",
            "destination": "any", "bogus": 1, "source_port": "22", "tracker": 5});
        let v =
            lint_request(&LintInput { endpoint: ep, method: "POST", data: &data, has_dry_run: true, current: None });
        let all = v.join("\n");
        assert!(all.contains("unknown field `bogus`"), "{all}");
        assert!(all.contains("`type` value \"allow\""), "{all}");
        assert!(all.contains("`interface` must be an array"), "{all}");
        assert!(all.contains("`source_port` is only used"), "{all}");
        assert!(all.contains("`tracker` is read-only"), "{all}");
    }

    #[test]
    fn lint_accepts_a_good_rule() {
        let ep = endpoint("/api/v2/firewall/rule").unwrap();
        let data = json!({"type": "block", "interface": ["wan"], "ipprotocol": "inet", "protocol": "tcp",
            "source": "any", "destination": "any", "destination_port": "22", "apply": true});
        let v =
            lint_request(&LintInput { endpoint: ep, method: "POST", data: &data, has_dry_run: true, current: None });
        assert!(v.is_empty(), "{v:?}");
    }
}
