//! Decoding of incoming JSON-RPC messages for both MCP transports, so that every message the server cannot
//! decode is answered with a JSON-RPC error instead of silence.
//!
//! rmcp drops a line it cannot parse as JSON (a syntax error, truncated text, invalid UTF-8, and nesting past
//! serde_json's recursion limit of 128, which serde_json reports as a syntax error), and the client waits forever
//! for an answer to its request. Here every message is decoded first; one that does not decode gets an error
//! response: `-32700` (parse error) for text that is not JSON, `-32600` (invalid request) for JSON that is not a
//! JSON-RPC request (a number, an array/batch, a missing or wrong `jsonrpc`/`method`/`id`, or nesting too deep
//! outside `params`), and `-32602` (invalid params) for a request whose params do not fit its method or nest too
//! deep. The id is recovered by a shallow scan of the top-level object where it can be (so the client that sent a
//! 200-deep call gets its answer), and is `null` otherwise. Notifications and responses that do not decode are not
//! answered over stdio (JSON-RPC never answers a notification, and answering garbage with garbage could start an
//! echo storm); over HTTP every POST gets an HTTP answer anyway, with the error as its body.

use rmcp::RoleServer;
use rmcp::service::RxJsonRpcMessage;
use serde_json::{Value, json};

/// serde_json's recursion limit: deeper JSON cannot be decoded into a message.
pub const MAX_DEPTH: usize = 128;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;

/// What one incoming message decodes to.
#[derive(Debug)]
pub enum Decoded {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    Refused(Refusal),
}

/// A message that did not decode, and the error that answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The request's id, when the shallow scan recovered a string or number id.
    pub id: Option<Value>,
    pub code: i64,
    pub message: String,
    /// False for a notification or a response: stdio does not answer those.
    pub answer: bool,
}

impl Refusal {
    /// The JSON-RPC error response.
    pub fn response(&self) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": self.id.clone().unwrap_or(Value::Null),
            "error": { "code": self.code, "message": self.message },
        })
    }

    /// The response as one line of the stdio transport.
    pub fn line(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(&self.response()).unwrap_or_else(|_| {
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}"#.to_vec()
        });
        bytes.push(b'\n');
        bytes
    }

    /// A message larger than the transport accepts; `prefix` is what was kept of it, scanned for the id.
    pub fn too_large(prefix: &[u8], limit: usize) -> Self {
        let scan = scan(prefix);
        Refusal {
            id: scan.id,
            code: INVALID_REQUEST,
            message: format!("Invalid Request: message larger than {limit} bytes"),
            answer: true,
        }
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes one message (a stdio line without its newline, or an HTTP body).
pub fn decode(bytes: &[u8]) -> Decoded {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    match serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(bytes) {
        Ok(message) => Decoded::Message(Box::new(message)),
        Err(e) => Decoded::Refused(refuse(bytes, &e)),
    }
}

fn refuse(bytes: &[u8], error: &serde_json::Error) -> Refusal {
    let scan = scan(bytes);
    // A complete object with a method and no id is a notification; one with a result or error and no method is
    // a response. Neither is answered over stdio.
    let answer = !(scan.complete && (scan.method_present && !scan.id_present)
        || scan.complete && !scan.method_present && scan.result_or_error && scan.id_present);
    let refusal = |code: i64, message: String| Refusal { id: scan.id.clone(), code, message, answer };
    if error.to_string().starts_with("recursion limit exceeded") || scan.max_depth > MAX_DEPTH {
        let (code, what) = if scan.deep_key.as_deref() == Some("params") {
            (INVALID_PARAMS, "Invalid params")
        } else {
            (INVALID_REQUEST, "Invalid Request")
        };
        return refusal(code, format!("{what}: JSON nested deeper than {MAX_DEPTH} levels"));
    }
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
            refusal(PARSE_ERROR, format!("Parse error: {error}"))
        }
        serde_json::error::Category::Data => {
            let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
                return refusal(PARSE_ERROR, format!("Parse error: {error}"));
            };
            match envelope_fault(&value) {
                Some(fault) => refusal(INVALID_REQUEST, format!("Invalid Request: {fault}")),
                None => refusal(INVALID_PARAMS, format!("Invalid params: {error}")),
            }
        }
    }
}

/// What is wrong with a decoded value as a JSON-RPC 2.0 request, if anything.
fn envelope_fault(value: &Value) -> Option<String> {
    let object = match value {
        Value::Object(o) => o,
        Value::Array(_) => return Some("batches are not supported; send one message at a time".into()),
        other => return Some(format!("a message is a JSON object, got {}", kind(other))),
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some("`jsonrpc` must be \"2.0\"".into());
    }
    match object.get("method") {
        Some(Value::String(_)) => {}
        Some(other) => return Some(format!("`method` must be a string, got {}", kind(other))),
        None if object.contains_key("result") || object.contains_key("error") => {
            return Some("not a response to any request of this server".into());
        }
        None => return Some("`method` is missing".into()),
    }
    match object.get("id") {
        None | Some(Value::String(_)) | Some(Value::Number(_)) => None,
        Some(other) => Some(format!("`id` must be a string or a number, got {}", kind(other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a shallow, iterative scan of a top-level object found: it decodes only the `id` and `method` values and
/// skips every other value by counting brackets, so it works on any depth, on invalid UTF-8 and on truncated
/// text (up to where the text ends).
#[derive(Debug, Default, PartialEq)]
pub struct Scan {
    /// A string or number `id`.
    pub id: Option<Value>,
    pub id_present: bool,
    pub method_present: bool,
    pub result_or_error: bool,
    /// The scan reached the object's closing brace.
    pub complete: bool,
    /// The deepest nesting seen, and the top-level key whose value reached it.
    pub max_depth: usize,
    pub deep_key: Option<String>,
}

pub fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan::default();
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return out;
    }
    i += 1;
    loop {
        i = skip_ws(bytes, i);
        match bytes.get(i) {
            Some(b'}') => {
                out.complete = true;
                return out;
            }
            Some(b'"') => {}
            _ => return out,
        }
        let Some(key_end) = skip_string(bytes, i) else { return out };
        let key = &bytes[i + 1..key_end - 1];
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return out;
        }
        i = skip_ws(bytes, i + 1);
        let start = i;
        let Some((end, depth)) = skip_value(bytes, i) else {
            // Truncated inside this value: its depth so far still counts.
            return out;
        };
        let value = &bytes[start..end];
        if depth > out.max_depth {
            out.max_depth = depth;
            out.deep_key = Some(String::from_utf8_lossy(key).into_owned());
        }
        match key {
            b"id" => {
                out.id_present = true;
                out.id = serde_json::from_slice::<Value>(value).ok().filter(|v| v.is_string() || v.is_number());
            }
            b"method" => out.method_present = true,
            b"result" | b"error" => out.result_or_error = true,
            _ => {}
        }
        i = skip_ws(bytes, end);
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                out.complete = true;
                return out;
            }
            _ => return out,
        }
    }
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// From an opening quote to just past the closing one.
fn skip_string(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Skips one value; gives its end and its nesting depth (0 for a scalar).
fn skip_value(bytes: &[u8], start: usize) -> Option<(usize, usize)> {
    match bytes.get(start)? {
        b'"' => skip_string(bytes, start).map(|end| (end, 0)),
        b'{' | b'[' => {
            let (mut depth, mut max) = (0usize, 0usize);
            let mut i = start;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = skip_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        max = max.max(depth);
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some((i + 1, max));
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = start;
            while let Some(&b) = bytes.get(i) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                i += 1;
            }
            (i > start).then_some((i, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn refused(bytes: &[u8]) -> Refusal {
        match decode(bytes) {
            Decoded::Refused(r) => r,
            Decoded::Message(m) => panic!("decoded: {m:?}"),
        }
    }

    fn call(id: &str, arguments: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"get_firewall_rules","arguments":{arguments}}}}}"#
        )
    }

    #[test]
    fn a_valid_request_decodes() {
        assert!(matches!(decode(call("1", "{}").as_bytes()), Decoded::Message(_)));
        assert!(matches!(
            decode(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"),
            Decoded::Message(_)
        ));
    }

    #[test]
    fn deep_arguments_are_invalid_params_with_the_id() {
        for depth in [130, 200, 10_000] {
            let line = call("7", &format!(r#"{{"x":{}}}"#, nested(depth)));
            let r = refused(line.as_bytes());
            assert_eq!((r.id, r.code, r.answer), (Some(json!(7)), INVALID_PARAMS, true), "{depth}");
            assert!(r.message.contains("nested deeper than 128"), "{}", r.message);
        }
        // The id after the deep params is found as well, and a string id stays a string.
        let line = format!(r#"{{"jsonrpc":"2.0","method":"tools/call","params":{},"id":"abc"}}"#, nested(500));
        let r = refused(line.as_bytes());
        assert_eq!((r.id, r.code), (Some(json!("abc")), INVALID_PARAMS));
        // Depth outside params is an invalid request.
        let line = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"ping","extra":{}}}"#, nested(300));
        assert_eq!(refused(line.as_bytes()).code, INVALID_REQUEST);
    }

    #[test]
    fn text_that_is_not_json_is_a_parse_error() {
        for (text, id) in [
            (
                &b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"x\""[..],
                Some(json!(4)),
            ),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\xfe\"}}",
                Some(json!(5)),
            ),
            (b"not json at all", None),
            (b"{", None),
            (b"{\"id\":}", None),
        ] {
            let r = refused(text);
            assert_eq!((r.code, r.id, r.answer), (PARSE_ERROR, id, true), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn json_that_is_not_a_request_is_an_invalid_request() {
        for text in ["42", "\"ping\"", "null", "[]", r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, r#"{"id":1}"#] {
            let r = refused(text.as_bytes());
            assert_eq!(
                (r.code, r.id.is_none() || text.starts_with("{\"id\""), r.answer),
                (INVALID_REQUEST, true, true),
                "{text}"
            );
        }
        let r = refused(br#"{"jsonrpc":"1.0","id":9,"method":"ping"}"#);
        assert_eq!((r.code, r.id), (INVALID_REQUEST, Some(json!(9))));
        let r = refused(br#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#);
        assert_eq!((r.code, r.id), (INVALID_REQUEST, None));
    }

    #[test]
    fn params_of_the_wrong_shape_are_left_to_rmcp() {
        // rmcp decodes a known method with params it cannot use as a custom request and answers it itself.
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":5}}"#),
            Decoded::Message(_)
        ));
    }

    #[test]
    fn notifications_and_responses_are_not_answered() {
        let deep = format!(r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{}}}"#, nested(200));
        assert!(!refused(deep.as_bytes()).answer);
        assert!(!refused(br#"{"jsonrpc":"2.0","id":1,"result":5,"error":{}}"#).answer);
        // A truncated request whose id would have come later is answered (with a null id).
        assert!(refused(br#"{"jsonrpc":"2.0","method":"tools/call","params":{"#).answer);
    }

    #[test]
    fn an_oversized_message_keeps_its_id() {
        let r = Refusal::too_large(br#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"na"#, 100);
        assert_eq!((r.code, r.id.clone()), (INVALID_REQUEST, Some(json!(12))));
        let line = r.line();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], 12);
    }

    #[test]
    fn the_scan_survives_any_depth_and_truncation() {
        let deep = format!(r#"{{"a":{},"id":1}}"#, "[".repeat(1_000_000));
        let s = scan(deep.as_bytes());
        assert_eq!((s.id, s.complete), (None, false));
        let s = scan(br#"{"a":"\"}","id":2}"#);
        assert_eq!((s.id, s.complete), (Some(json!(2)), true));
    }
}
