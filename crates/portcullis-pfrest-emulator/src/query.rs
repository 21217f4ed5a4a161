//! pfRest queries (`field[__filter]=value`), sorting and pagination over represented objects.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::model::{
    ApiError, is_fqdn, is_ip, is_ipv4, is_ipv6, is_port, is_port_range, is_subnet, is_subnet_v4, is_subnet_v6,
};
use crate::schema::{ModelSchema, split_query_target};

/// One parsed query term.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    pub field: String,
    pub filter: String,
    pub value: Value,
}

/// Parse query parameters into terms. Unknown filters are a 404 `QUERY_FILTER_NOT_FOUND` like pfRest; terms on
/// fields the model does not have are dropped (pfRest skips them, so they match everything).
pub(crate) fn parse_terms(model: &ModelSchema, params: &Map<String, Value>) -> Result<Vec<Term>, ApiError> {
    let mut terms = Vec::new();
    for (target, value) in params {
        let (field, filter) = split_query_target(target).map_err(|filter| {
            ApiError::not_found("QUERY_FILTER_NOT_FOUND", format!("No query filter with name `{filter}` exists."))
        })?;
        if field != "id" && model.field(field).is_none() {
            continue;
        }
        terms.push(Term { field: field.to_string(), filter: filter.to_string(), value: value.clone() });
    }
    Ok(terms)
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { String::new() }),
        _ => None,
    }
}

/// Evaluate one filter the way pfRest's QueryFilter classes do (best effort).
pub(crate) fn evaluate(filter: &str, field_value: &Value, filter_value: &Value) -> Result<bool, ApiError> {
    Ok(match filter {
        // Strict comparison: a form-decoded `?descr=123` is the integer 123 and does not match the string "123".
        "exact" => match (field_value, filter_value) {
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (a, b) => a == b,
        },
        "except" => field_value != filter_value,
        "startswith" => match (as_text(field_value), as_text(filter_value)) {
            (Some(a), Some(b)) => a.starts_with(&b),
            _ => false,
        },
        "endswith" => match (as_text(field_value), as_text(filter_value)) {
            (Some(a), Some(b)) => a.ends_with(&b),
            _ => false,
        },
        "contains" => match field_value {
            Value::Array(items) => items.contains(filter_value),
            other => match (as_text(other), as_text(filter_value)) {
                (Some(a), Some(b)) => a.contains(&b),
                _ => false,
            },
        },
        "in" => match filter_value {
            Value::Array(options) => options.contains(field_value),
            other => match (as_text(field_value), as_text(other)) {
                (Some(a), Some(b)) => b.contains(&a),
                _ => false,
            },
        },
        "lt" | "lte" | "gt" | "gte" => match (as_f64(field_value), as_f64(filter_value)) {
            (Some(a), Some(b)) => match filter {
                "lt" => a < b,
                "lte" => a <= b,
                "gt" => a > b,
                _ => a >= b,
            },
            _ => false,
        },
        "regex" => {
            let pattern = as_text(filter_value).unwrap_or_default();
            let re = regex_lite::Regex::new(&pattern).map_err(|e| {
                ApiError::bad_request("REGEX_QUERY_FILTER_INVALID_PATTERN", format!("Invalid regex `{pattern}`: {e}"))
            })?;
            as_text(field_value).is_some_and(|t| re.is_match(&t))
        }
        "format" => {
            let t = as_text(field_value).unwrap_or_default();
            match filter_value.as_str().unwrap_or_default() {
                "ipv4" => is_ipv4(&t),
                "ipv6" => is_ipv6(&t),
                "ip" => is_ip(&t),
                "subnetv4" => is_subnet_v4(&t),
                "subnetv6" => is_subnet_v6(&t),
                "subnet" => is_subnet(&t),
                "numeric" => t.parse::<f64>().is_ok(),
                "email" => t.contains('@') && t.split('@').nth(1).is_some_and(is_fqdn),
                "url" => t.contains("://"),
                "mac" => {
                    t.split(':').count() == 6 && t.split(':').all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
                }
                "fqdn" | "hostname" => is_fqdn(&t),
                "port" => is_port(&t),
                "portrange" => is_port_range(&t),
                "alias" => false,
                other => {
                    return Err(ApiError::bad_request(
                        "FORMAT_QUERY_FILTER_UNKNOWN_FORMAT",
                        format!("Unknown format `{other}`."),
                    ));
                }
            }
        }
        other => {
            return Err(ApiError::not_found(
                "QUERY_FILTER_NOT_FOUND",
                format!("No query filter with name `{other}` exists."),
            ));
        }
    })
}

/// Whether a represented object (with `id`) matches every term.
pub(crate) fn matches(obj: &Value, terms: &[Term]) -> Result<bool, ApiError> {
    for t in terms {
        let v = obj.get(&t.field).unwrap_or(&Value::Null);
        if !evaluate(&t.filter, v, &t.value)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (x, y) => x.to_string().cmp(&y.to_string()),
    }
}

/// Compare two objects by several fields (PHP `array_multisort` style, one order for all keys).
pub(crate) fn cmp_by(a: &Value, b: &Value, fields: &[String], descending: bool) -> Ordering {
    for f in fields {
        let o = cmp_values(a.get(f).unwrap_or(&Value::Null), b.get(f).unwrap_or(&Value::Null));
        if o != Ordering::Equal {
            return if descending { o.reverse() } else { o };
        }
    }
    Ordering::Equal
}

/// Stable sort by several fields.
pub(crate) fn sort(items: &mut [Value], fields: &[String], descending: bool) {
    items.sort_by(|a, b| cmp_by(a, b, fields, descending));
}

/// pfRest `Model::paginate()`.
pub(crate) fn paginate<T: Clone>(items: &[T], limit: usize, offset: usize) -> Vec<T> {
    if limit == 0 && offset == 0 {
        return items.to_vec();
    }
    if offset >= items.len() {
        return vec![];
    }
    let end = if limit == 0 { items.len() } else { (offset + limit).min(items.len()) };
    items[offset..end].to_vec()
}

/// Paging and ordering options of a plural GET.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListOptions {
    pub limit: usize,
    pub offset: usize,
    pub reverse: bool,
    pub sort_by: Option<Vec<String>>,
    pub sort_desc: bool,
}

/// pfRest `Model::query()` over config-backed objects: without query and sort it is `read_all()` (reverse first,
/// then paginate); otherwise filter, sort (ids kept), paginate, then reverse.
pub(crate) fn list(items: Vec<Value>, terms: &[Term], opts: &ListOptions) -> Result<Vec<Value>, ApiError> {
    if terms.is_empty() && opts.sort_by.is_none() {
        let mut items = items;
        if opts.reverse {
            items.reverse();
        }
        return Ok(paginate(&items, opts.limit, opts.offset));
    }
    let mut out = Vec::new();
    for item in items {
        if matches(&item, terms)? {
            out.push(item);
        }
    }
    if let Some(fields) = &opts.sort_by {
        sort(&mut out, fields, opts.sort_desc);
    }
    let mut out = paginate(&out, opts.limit, opts.offset);
    if opts.reverse {
        out.reverse();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters() {
        assert!(evaluate("exact", &json!("a"), &json!("a")).unwrap());
        assert!(!evaluate("exact", &json!("123"), &json!(123)).unwrap(), "form-decoded ints do not match strings");
        assert!(evaluate("contains", &json!(["WAN", "LAN"]), &json!("LAN")).unwrap());
        assert!(evaluate("contains", &json!("hello mcp"), &json!("mcp")).unwrap());
        assert!(evaluate("in", &json!("b"), &json!(["a", "b"])).unwrap());
        assert!(evaluate("gte", &json!(5), &json!(5)).unwrap());
        assert!(evaluate("regex", &json!("abc123"), &json!("^abc\\d+$")).unwrap());
        assert!(evaluate("format", &json!("10.0.0.0/8"), &json!("subnet")).unwrap());
        assert!(evaluate("nope", &json!(1), &json!(1)).is_err());
    }

    #[test]
    fn list_semantics() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": i, "n": 10 - i})).collect();
        let opts = ListOptions { limit: 2, reverse: true, ..Default::default() };
        let ids: Vec<_> = list(items.clone(), &[], &opts).unwrap().iter().map(|v| v["id"].clone()).collect();
        assert_eq!(ids, vec![json!(4), json!(3)]);
        let opts = ListOptions { sort_by: Some(vec!["n".into()]), limit: 2, ..Default::default() };
        let ids: Vec<_> = list(items, &[], &opts).unwrap().iter().map(|v| v["id"].clone()).collect();
        assert_eq!(ids, vec![json!(4), json!(3)]);
    }
}
