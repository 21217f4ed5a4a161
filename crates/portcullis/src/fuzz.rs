//! A stable-Rust fuzzer of the MCP request path: generated JSON-RPC messages go through the real server (the
//! `McpServer` handler, rmcp's service loop and this crate's stdio transport, over an in-memory duplex pipe) into
//! `ToolService::call` against a lab firewall. The messages are calls of every catalogue tool with arguments
//! generated from its input schema (valid, then mutated: keys dropped or unknown, values of other types, deep and
//! wide JSON, hostile strings), the other MCP methods, deep/wide/non-object/batch JSON, and byte-level mutations of
//! all of these (flipped, deleted, inserted and truncated bytes, invalid UTF-8). It checks that nothing panics and
//! nothing hangs: every request with an id is answered within `FUZZ_DEADLINE_MS` (default 10 s), and a `ping`
//! after every message is answered too, so the server is still serving.
//!
//! In the normal test suite it runs for 3 s. For longer: `FUZZ_SECONDS=300 cargo test -p portcullis --bin
//! portcullis fuzz_mcp -- --nocapture` (`FUZZ_SEED=n` replays a run; every run prints its seed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

use crate::app::App;
use crate::mcp::McpServer;
use crate::stdio::LineTransport;

/// SplitMix64: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const STRINGS: &[&str] = &[
    "192.0.2.7",
    "198.51.100.0/24",
    "10.0.0.0/8",
    "0.0.0.0/0",
    "::/0",
    "::ffff:192.0.2.50",
    "2001:db8::1",
    "fe80::1%eth0",
    "any",
    "lan",
    "wan",
    "dmz",
    "em0",
    "(self)",
    "!192.0.2.1",
    "lan:ip",
    "22",
    "1000:2000",
    "0",
    "65536",
    "tcp",
    "udp",
    "icmp",
    "pass",
    "block",
    "reject",
    "1h",
    "15m",
    "7d",
    "permanent",
    "0s",
    "99999999d",
    "24h",
    "lab",
    "pfsense",
    "PORTCULLIS_BLOCK",
    "PORTCULLIS_GRANT",
    "port scan",
    "",
    " ",
    "\u{202e}evil",
    "zero\u{200b}width",
    "nul\u{0}byte",
    "line\nbreak",
    "../../etc/passwd",
    "'; DROP TABLE audit; --",
    "${jndi:ldap://x}",
    "%s%s%n",
    "🔥🔥",
    "portcullis://audit/tail",
    "portcullis://rules/lab",
    "2026-01-01T00:00:00Z",
    "yesterday",
    "json",
    "markdown",
    "html",
];

fn random_string(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => "x".repeat(rng.below(4_096)),
        1 => (0..rng.below(40)).map(|_| char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?')).collect(),
        2 => format!("{}.{}.{}.{}", rng.below(300), rng.below(256), rng.below(256), rng.below(256)),
        3 => format!("{}.{}.0.0/{}", rng.below(256), rng.below(256), rng.below(40)),
        _ => (*rng.pick(STRINGS)).to_string(),
    }
}

fn random_number(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => json!(-1),
        1 => json!(i64::MAX),
        2 => json!(u64::MAX),
        3 => json!(1.5e308),
        4 => json!(0.5),
        5 => json!(-9_223_372_036_854_775_808i64),
        _ => json!(rng.below(70_000)),
    }
}

fn deep(rng: &mut Rng, depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = if rng.chance(50) { json!([v]) } else { json!({ "a": v }) };
    }
    v
}

/// A deep value as text (serde_json cannot build or drop a 10,000-deep `Value` without recursing that deep).
fn deep_text(depth: usize, object: bool) -> String {
    if object {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }
}

fn wide(rng: &mut Rng, keys: usize) -> Value {
    let mut m = Map::new();
    for i in 0..keys {
        m.insert(format!("k{i}"), if rng.chance(50) { json!(i) } else { json!("v") });
    }
    Value::Object(m)
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 5 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => random_number(rng),
        3 | 4 => json!(random_string(rng)),
        5 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        6 => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(random_string(rng), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
        7 => {
            let depth = rng.below(120);
            deep(rng, depth)
        }
        _ => {
            let keys = rng.below(200);
            wide(rng, keys)
        }
    }
}

/// A value the schema describes (mostly): enums, consts, types, object properties and array items.
fn from_schema(rng: &mut Rng, schema: &Value, depth: usize) -> Value {
    if depth > 6 || rng.chance(3) {
        return random_value(rng, depth);
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array).filter(|o| !o.is_empty()) {
        return rng.pick(options).clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array).filter(|o| !o.is_empty()) {
            let option = rng.pick(options).clone();
            return from_schema(rng, &option, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) if !ts.is_empty() => rng.pick(ts).as_str().unwrap_or("null").to_string(),
        _ => "any".into(),
    };
    match ty.as_str() {
        "null" => Value::Null,
        "boolean" => json!(rng.chance(50)),
        "integer" => {
            if rng.chance(70) {
                let max = schema.get("maximum").and_then(Value::as_u64).unwrap_or(1000).min(100_000);
                json!(rng.below(max as usize + 1))
            } else {
                random_number(rng)
            }
        }
        "number" => json!(rng.below(1000) as f64 / 7.0),
        "string" => json!(random_string(rng)),
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            Value::Array((0..rng.below(4)).map(|_| from_schema(rng, &items, depth + 1)).collect())
        }
        "object" => {
            let mut m = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if rng.chance(60) {
                        m.insert(k.clone(), from_schema(rng, s, depth + 1));
                    }
                }
            }
            Value::Object(m)
        }
        _ => random_value(rng, depth),
    }
}

/// Mutations of a tool's arguments: dropped or unknown keys, values of other types, deep and wide values.
fn mutate_arguments(rng: &mut Rng, args: &mut Value) {
    let Value::Object(m) = args else { return };
    for _ in 0..rng.below(3) {
        match rng.below(6) {
            0 => {
                if let Some(k) = m.keys().nth(rng.below(m.len())).cloned() {
                    m.remove(&k);
                }
            }
            1 => {
                m.insert(random_string(rng), random_value(rng, 0));
            }
            2 => {
                if let Some(k) = m.keys().nth(rng.below(m.len())).cloned() {
                    m.insert(k, random_value(rng, 0));
                }
            }
            3 => {
                let depth = rng.below(125);
                m.insert("nested".into(), deep(rng, depth));
            }
            4 => {
                let keys = rng.below(2_000);
                m.insert("wide".into(), wide(rng, keys));
            }
            _ => {
                if let Some(k) = m.keys().nth(rng.below(m.len())).cloned() {
                    m.insert(k, json!(random_string(rng)));
                }
            }
        }
    }
}

/// One message: its text, and the id whose answer must come (None: a notification, or text too mangled to say).
struct Case {
    text: Vec<u8>,
    expect: Option<u64>,
    kind: &'static str,
}

fn request(id: u64, method: &str, params: Value) -> Vec<u8> {
    let mut v = json!({ "jsonrpc": "2.0", "id": id, "method": method });
    if !params.is_null() {
        v["params"] = params;
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

fn generate(rng: &mut Rng, tools: &[(String, Value)], id: u64) -> Case {
    let structured = |rng: &mut Rng| -> (Vec<u8>, &'static str) {
        match rng.below(20) {
            0..=11 => {
                let (name, schema) = rng.pick(tools);
                let mut args = from_schema(rng, schema, 0);
                if rng.chance(50) {
                    mutate_arguments(rng, &mut args);
                }
                let name = if rng.chance(3) { random_string(rng) } else { name.clone() };
                let params =
                    if rng.chance(3) { random_value(rng, 0) } else { json!({ "name": name, "arguments": args }) };
                (request(id, "tools/call", params), "tools/call")
            }
            12 => (request(id, "tools/list", Value::Null), "tools/list"),
            13 => (request(id, "resources/read", json!({ "uri": random_string(rng) })), "resources/read"),
            14 => {
                let method = *rng.pick(&["resources/list", "resources/templates/list", "prompts/list", "ping"]);
                (request(id, method, Value::Null), "lists")
            }
            15 => {
                let args = random_value(rng, 0);
                (request(id, "prompts/get", json!({ "name": random_string(rng), "arguments": args })), "prompts/get")
            }
            16 => {
                let params = json!({
                    "ref": { "type": *rng.pick(&["ref/resource", "ref/prompt", "x"]), "uri": random_string(rng), "name": random_string(rng) },
                    "argument": { "name": random_string(rng), "value": random_string(rng) },
                });
                (request(id, "completion/complete", params), "completion")
            }
            17 => (request(id, "logging/setLevel", json!({ "level": random_string(rng) })), "setLevel"),
            18 => (request(id, &random_string(rng), random_value(rng, 0)), "unknown method"),
            _ => {
                // A deep or wide call as text: deeper than serde_json decodes.
                let depth = 100 + rng.below(20_000);
                let inner = if rng.chance(80) {
                    deep_text(depth, rng.chance(50))
                } else {
                    let keys = rng.below(100_000);
                    serde_json::to_string(&wide(rng, keys)).unwrap_or_default()
                };
                let text = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"get_firewall_rules","arguments":{{"x":{inner}}}}}}}"#
                );
                (text.into_bytes(), "deep or wide")
            }
        }
    };
    match rng.below(10) {
        0..=5 => {
            let (text, kind) = structured(rng);
            Case { text, expect: Some(id), kind }
        }
        6 => {
            let raw: Vec<u8> = match rng.below(6) {
                0 => b"42".to_vec(),
                1 => format!("[{}]", String::from_utf8_lossy(&request(id, "ping", Value::Null))).into_bytes(),
                2 => b"\xff\xfe\x00garbage".to_vec(),
                3 => deep_text(rng.below(50_000), rng.chance(50)).into_bytes(),
                4 => b"null".to_vec(),
                _ => {
                    let mut t = request(id, "tools/list", Value::Null);
                    t.truncate(rng.below(t.len()));
                    t
                }
            };
            Case { text: raw, expect: None, kind: "raw" }
        }
        7 => {
            // Notifications: never answered. Cancellations name ids this run never uses.
            let text = match rng.below(3) {
                0 => serde_json::to_vec(
                    &json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": format!("never-{}", rng.below(9)) } }),
                ),
                1 => serde_json::to_vec(
                    &json!({ "jsonrpc": "2.0", "method": random_string(rng), "params": random_value(rng, 0) }),
                ),
                _ => serde_json::to_vec(
                    &json!({ "jsonrpc": "2.0", "method": "notifications/progress", "params": random_value(rng, 0) }),
                ),
            };
            Case { text: text.unwrap_or_default(), expect: None, kind: "notification" }
        }
        _ => {
            let (mut text, _) = structured(rng);
            for _ in 0..1 + rng.below(4) {
                if text.is_empty() {
                    break;
                }
                let at = rng.below(text.len());
                match rng.below(5) {
                    0 => text[at] ^= 1 << rng.below(8),
                    1 => {
                        let end = (at + rng.below(16)).min(text.len());
                        text.drain(at..end);
                    }
                    2 => {
                        const INSERTS: &[&[u8]] = &[b"{", b"[", b"\"", b"\\", b"\xff", b"}", b"]", b",", b":"];
                        let bytes = *rng.pick(INSERTS);
                        text.splice(at..at, bytes.iter().copied());
                    }
                    3 => text.truncate(at),
                    _ => {
                        let end = (at + rng.below(32)).min(text.len());
                        let copy = text[at..end].to_vec();
                        text.splice(at..at, copy);
                    }
                }
            }
            // One message per line: a newline would make two.
            for b in &mut text {
                if *b == b'\n' {
                    *b = b' ';
                }
            }
            Case { text, expect: None, kind: "mutated bytes" }
        }
    }
}

/// The client side of the pipe: answers by id, in arrival order.
#[derive(Default)]
struct Answers {
    by_id: Mutex<HashMap<u64, Value>>,
    arrived: Notify,
    total: AtomicUsize,
}

impl Answers {
    async fn wait(&self, id: u64, deadline: Duration) -> Option<Value> {
        let until = Instant::now() + deadline;
        loop {
            let notified = self.arrived.notified();
            if let Some(v) = self.by_id.lock().ok().and_then(|mut m| m.remove(&id)) {
                return Some(v);
            }
            let left = until.checked_duration_since(Instant::now())?;
            if tokio::time::timeout(left, notified).await.is_err() {
                return self.by_id.lock().ok().and_then(|mut m| m.remove(&id));
            }
        }
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn fuzz_mcp() {
    let seconds = env_u64("FUZZ_SECONDS").unwrap_or(3);
    let deadline = Duration::from_millis(env_u64("FUZZ_DEADLINE_MS").unwrap_or(10_000));
    let seed = env_u64("FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("fuzz_mcp: seed {seed} (FUZZ_SEED={seed} replays), {seconds} s, deadline {deadline:?}");
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    let dir = tempfile::tempdir().unwrap();
    let text = format!("data_dir: {}\nsecurity: {{principal: admin, rate_limit: 1000000}}\n", dir.path().display());
    let config = crate::config::parse(&text, std::path::Path::new("/etc/portcullis/config.yaml"), &|_| None).unwrap();
    let app = App::open(config).unwrap();
    let server = McpServer::new(
        app.service.clone(),
        portcullis_guard::Transport::Stdio,
        app.local_principal(),
        "portcullis",
        "fuzz",
        crate::mcp::log_level_from_config("info"),
    );
    let (client, server_end) = tokio::io::duplex(1 << 22);
    let (server_read, server_write) = tokio::io::split(server_end);
    let running = tokio::spawn(async move {
        let running = server.serve(LineTransport::new(server_read, server_write)).await?;
        running.waiting().await.map(|_| ()).map_err(|e| anyhow::anyhow!("{e}"))
    });
    let (client_read, mut client_write) = tokio::io::split(client);
    let answers = Arc::new(Answers::default());
    let reader = {
        let answers = answers.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(client_read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Scanned, not parsed: an answer may echo arguments (audit records) deeper than serde_json's
                // recursion limit.
                let scan = crate::jsonrpc::scan(line.as_bytes());
                assert!(
                    scan.complete,
                    "the server wrote a line that is not a JSON object: {}",
                    &line[..line.len().min(300)]
                );
                answers.total.fetch_add(1, Ordering::SeqCst);
                if let Some(id) = scan.id.as_ref().and_then(Value::as_u64).filter(|_| !scan.method_present)
                    && let Ok(mut m) = answers.by_id.lock()
                {
                    m.insert(id, Value::String(line));
                    answers.arrived.notify_waiters();
                }
            }
        })
    };
    let mut send = async |bytes: &[u8]| {
        client_write.write_all(bytes).await.unwrap();
        client_write.write_all(b"\n").await.unwrap();
        client_write.flush().await.unwrap();
    };
    send(&request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}),
    ))
    .await;
    assert!(answers.wait(0, deadline).await.is_some(), "no answer to initialize");
    send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;

    let tools: Vec<(String, Value)> = portcullis_tools::catalogue()
        .iter()
        .map(|t| (t.name.to_string(), Value::Object((*t.input_schema).clone())))
        .collect();
    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut iterations, mut errors, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut kinds: HashMap<&'static str, u64> = HashMap::new();
    let mut slowest_case = String::new();
    let mut next_id = 1u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let id = next_id;
        let ping = next_id + 1;
        next_id += 2;
        let case = generate(&mut rng, &tools, id);
        *kinds.entry(case.kind).or_default() += 1;
        let sent = Instant::now();
        send(&case.text).await;
        send(&request(ping, "ping", Value::Null)).await;
        let shown = || String::from_utf8_lossy(&case.text[..case.text.len().min(300)]).into_owned();
        if let Some(expect) = case.expect {
            let answer = answers.wait(expect, deadline).await;
            let Some(answer) = answer else {
                panic!(
                    "hang: no answer to id {expect} within {deadline:?} (seed {seed}, iteration {iterations}): {}",
                    shown()
                )
            };
            let text = answer.as_str().unwrap_or_default();
            if text.contains("\"error\":{\"code\"") || text.contains("\"isError\":true") {
                errors += 1;
            }
        }
        if answers.wait(ping, deadline).await.is_none() {
            panic!(
                "hang: the ping after iteration {iterations} got no answer within {deadline:?} (seed {seed}): {}",
                shown()
            );
        }
        if sent.elapsed() > slowest {
            slowest = sent.elapsed();
            slowest_case = format!("{}: {}", case.kind, shown());
        }
        iterations += 1;
        assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a panic (seed {seed}, iteration {iterations}): {}", shown());
        assert!(!running.is_finished(), "the server stopped (seed {seed}, iteration {iterations}): {}", shown());
    }
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort();
    eprintln!(
        "fuzz_mcp: {iterations} messages in {:.1} s ({} lines answered, {errors} requests answered with errors), \
         slowest round trip {slowest:?} ({slowest_case}), no panic, no hang; by kind: {kinds:?}",
        started.elapsed().as_secs_f64(),
        answers.total.load(Ordering::SeqCst),
    );
    assert!(iterations > 0);
    reader.abort();
    running.abort();
}
