//! End-to-end tests of the pfRest emulator over real HTTP (a minimal HTTP/1.1 client on tokio's TcpStream).

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis_pfrest_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "test-key-0123456789";

// ---------------------------------------------------------------------------------------------------------------
// Minimal HTTP client.

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn data(&self) -> Value {
        self.json()["data"].clone()
    }
    fn response_id(&self) -> String {
        self.json()["response_id"].as_str().unwrap_or_default().to_string()
    }
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..pos]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[pos + 2..pos + 2 + size]);
        rest = &rest[pos + 2 + size + 2..];
    }
    out
}

async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
    } else {
        req.push_str("\r\n");
    }
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    if buf.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed without a response"));
    }
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = buf[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Ok(Resp { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

#[derive(Clone)]
enum Auth {
    Key(String),
    Basic(String, String),
    Bearer(String),
    None,
}

#[derive(Clone)]
struct Client {
    addr: SocketAddr,
    auth: Auth,
}

fn basic(user: &str, pass: &str) -> String {
    // Tiny base64 for the test client.
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data = format!("{user}:{pass}").into_bytes();
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

impl Client {
    fn new(emu: &Emulator) -> Client {
        Client { addr: emu.local_addr(), auth: Auth::Key(KEY.to_string()) }
    }
    fn with_auth(&self, auth: Auth) -> Client {
        Client { addr: self.addr, auth }
    }
    fn auth_headers(&self) -> Vec<(&'static str, String)> {
        match &self.auth {
            Auth::Key(k) => vec![("X-API-Key", k.clone())],
            Auth::Basic(u, p) => vec![("Authorization", basic(u, p))],
            Auth::Bearer(t) => vec![("Authorization", format!("Bearer {t}"))],
            Auth::None => vec![],
        }
    }
    async fn try_send(&self, method: &str, target: &str, body: Option<&Value>) -> std::io::Result<Resp> {
        let mut headers = self.auth_headers();
        let body = body.map(|b| b.to_string());
        if body.is_some() {
            headers.push(("Content-Type", "application/json".to_string()));
        }
        raw_request(self.addr, method, target, &headers, body.as_deref()).await
    }
    async fn send(&self, method: &str, target: &str, body: Option<&Value>) -> Resp {
        self.try_send(method, target, body).await.expect("response")
    }
    async fn get(&self, target: &str) -> Resp {
        self.send("GET", target, None).await
    }
    async fn delete(&self, target: &str) -> Resp {
        self.send("DELETE", target, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send("POST", path, Some(&body)).await
    }
    async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send("PATCH", path, Some(&body)).await
    }
    async fn put(&self, path: &str, body: Value) -> Resp {
        self.send("PUT", path, Some(&body)).await
    }
}

fn config() -> EmulatorConfig {
    EmulatorConfig {
        api_keys: vec![KEY.to_string()],
        read_only_api_keys: vec!["ro-key".to_string()],
        users: vec![("admin".to_string(), "pfsense".to_string())],
        ..Default::default()
    }
}

async fn start() -> (Emulator, Client) {
    let emu = Emulator::start(config()).await.expect("start emulator");
    let client = Client::new(&emu);
    (emu, client)
}

fn block_rule(descr: &str) -> Value {
    json!({"type": "block", "interface": ["wan"], "ipprotocol": "inet", "protocol": "tcp", "source": "any",
           "destination": "any", "destination_port": "22", "descr": descr})
}

fn assert_ok(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["code"], 200);
    assert_eq!(j["status"], "ok");
    assert_eq!(j["response_id"], "SUCCESS");
    assert_eq!(j["message"], "");
}

// ---------------------------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn auth_key_basic_jwt_and_failures() {
    let (emu, c) = start().await;
    // KeyAuth
    assert_ok(&c.get("/api/v2/system/restapi/version").await);
    assert_eq!(c.get("/api/v2/system/restapi/version").await.data()["current_version"], "v2.10.0");
    // BasicAuth
    let b = c.with_auth(Auth::Basic("admin".into(), "pfsense".into()));
    assert_ok(&b.get("/api/v2/firewall/rules").await);
    // JWT: obtained with Basic credentials only.
    let r = b.post("/api/v2/auth/jwt", json!({})).await;
    assert_ok(&r);
    let token = r.data()["token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3);
    let j = c.with_auth(Auth::Bearer(token.clone()));
    assert_ok(&j.get("/api/v2/status/system").await);
    // The JWT endpoint refuses KeyAuth.
    let r = c.post("/api/v2/auth/jwt", json!({})).await;
    assert_eq!(r.status, 401);
    // Wrong / missing credentials.
    for bad in [
        c.with_auth(Auth::Key("nope".into())),
        c.with_auth(Auth::Basic("admin".into(), "wrong".into())),
        c.with_auth(Auth::Bearer(format!("{token}x"))),
        c.with_auth(Auth::None),
    ] {
        let r = bad.get("/api/v2/firewall/rules").await;
        assert_eq!(r.status, 401, "{}", r.body);
        let j = r.json();
        assert_eq!(j["response_id"], "AUTH_AUTHENTICATION_FAILED");
        assert_eq!(j["status"], "unauthorized");
        assert_eq!(j["data"], json!([]));
    }
    // Authenticated but not authorised -> 403.
    let ro = c.with_auth(Auth::Key("ro-key".into()));
    assert_ok(&ro.get("/api/v2/firewall/rules").await);
    let r = ro.post("/api/v2/firewall/rule", block_rule("x")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.response_id(), "AUTH_AUTHORIZATION_FAILED");
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    emu.shutdown().await;
}

#[tokio::test]
async fn created_rule_gets_tracker_and_is_enforced_only_after_apply() {
    let (emu, c) = start().await;
    let before = emu.state();
    assert_eq!(before.rules.len(), 2, "pfSense's two default LAN rules");
    let r = c.post("/api/v2/firewall/rule", block_rule("block ssh")).await;
    assert_ok(&r);
    let rule = r.data();
    let tracker = rule["tracker"].as_i64().expect("tracker assigned");
    assert!(tracker > 1_600_000_000, "tracker is a unix-time-like integer: {tracker}");
    assert_eq!(rule["id"], 2);
    assert_eq!(rule["interface"], json!(["WAN"]), "represent_interfaces_as=descr");
    assert_eq!(rule["statetype"], "keep state");
    assert!(rule["created_time"].is_i64());

    // Written to config, not enforced; and rule edits never show as pending.
    let s = emu.state();
    assert!(s.rule_by_tracker(tracker).is_some());
    assert!(!s.applied_trackers().contains(&tracker));
    let a = c.get("/api/v2/firewall/apply").await;
    assert_eq!(a.data(), json!({"applied": true, "pending_subsystems": []}));

    // Apply (async by default) -> enforced once the reload finished.
    assert_ok(&c.post("/api/v2/firewall/apply", json!({})).await);
    emu.wait_for_applies().await;
    assert!(emu.state().applied_trackers().contains(&tracker));

    // apply:true on the write itself.
    let r = c
        .post(
            "/api/v2/firewall/rule",
            json!({"type": "pass", "interface": ["LAN"], "ipprotocol": "inet46",
        "source": "lan", "destination": "any", "descr": "applied at once", "apply": true}),
        )
        .await;
    assert_ok(&r);
    let t2 = r.data()["tracker"].as_i64().unwrap();
    assert_ne!(t2, tracker);
    emu.wait_for_applies().await;
    assert!(emu.state().applied_trackers().contains(&t2));
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    emu.shutdown().await;
}

#[tokio::test]
async fn ids_shift_after_delete_while_trackers_stay() {
    let (emu, c) = start().await;
    let mut trackers = vec![];
    for d in ["a", "b", "c"] {
        trackers.push(c.post("/api/v2/firewall/rule", block_rule(d)).await.data()["tracker"].as_i64().unwrap());
    }
    // Rules a, b, c are at ids 2, 3, 4 (after the two default rules).
    let r = c.get("/api/v2/firewall/rule?id=3").await;
    assert_eq!(r.data()["descr"], "b");
    let r = c.delete("/api/v2/firewall/rule?id=2").await;
    assert_ok(&r);
    assert_eq!(r.data()["descr"], "a");
    assert_eq!(r.data()["id"], 2);
    // "c" moved from id 4 to id 3; id 4 no longer exists; trackers unchanged.
    let r = c.get("/api/v2/firewall/rule?id=3").await;
    assert_eq!(r.data()["descr"], "c");
    assert_eq!(r.data()["tracker"], trackers[2]);
    let r = c.get("/api/v2/firewall/rule?id=4").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.response_id(), "MODEL_OBJECT_NOT_FOUND");
    assert_eq!(r.json()["message"], "Object with ID `4` does not exist.");
    // Resolving by tracker still works.
    let r = c.get(&format!("/api/v2/firewall/rules?tracker={}", trackers[1])).await;
    assert_eq!(r.data().as_array().unwrap().len(), 1);
    assert_eq!(r.data()[0]["id"], 2);
    // id is required on singular endpoints.
    let r = c.get("/api/v2/firewall/rule").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.response_id(), "MODEL_REQUIRES_ID");
    assert_eq!(emu.schema_violations().len(), 1, "the missing id is recorded");
    emu.clear_schema_violations();
    // PATCH by id (conditions are checked against the stored rule: it is tcp, so a port is fine).
    let r = c.patch("/api/v2/firewall/rule", json!({"id": 3, "descr": "c2", "destination_port": "2222"})).await;
    assert_ok(&r);
    assert_eq!(r.data()["tracker"], trackers[2]);
    assert_eq!(r.data()["destination_port"], "2222");
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    // The tracker cannot be changed.
    let r = c.patch("/api/v2/firewall/rule", json!({"id": 3, "tracker": 1})).await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "FIELD_VALUE_CHANGED_WHEN_NOT_EDITABLE"));
    emu.clear_schema_violations();
    // Deleting down to the last rule is refused (many_minimum = 1).
    let r = c.delete("/api/v2/firewall/rules?type=block").await;
    assert_ok(&r);
    let r = c.delete("/api/v2/firewall/rules?type=pass").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.response_id(), "MODEL_MANY_MINIMUM_REACHED");
    assert_eq!(emu.state().rules.len(), 1, "plural DELETE is non-atomic: all but the last were deleted");
    emu.shutdown().await;
}

#[tokio::test]
async fn alias_marks_aliases_pending_until_apply() {
    let (emu, c) = start().await;
    let r = c
        .post(
            "/api/v2/firewall/alias",
            json!({"name": "blocklist", "type": "host",
        "address": ["203.0.113.7"], "descr": "bad guys"}),
        )
        .await;
    assert_ok(&r);
    assert_eq!(r.data()["detail"].as_array().unwrap().len(), 1, "detail auto-filled");
    let a = c.get("/api/v2/firewall/apply").await.data();
    assert_eq!(a, json!({"applied": false, "pending_subsystems": ["aliases"]}));
    assert!(emu.state().applied_alias("blocklist").is_none());
    // Name is unique.
    let r = c.post("/api/v2/firewall/alias", json!({"name": "blocklist", "type": "host"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.response_id(), "FIELD_MUST_BE_UNIQUE");
    // Unsupported type.
    let r = c.post("/api/v2/firewall/alias", json!({"name": "feed", "type": "urltable"})).await;
    assert_eq!(r.response_id(), "FIELD_INVALID_CHOICE");
    emu.clear_schema_violations();
    // Append an address by id, then apply synchronously.
    let r = c.patch("/api/v2/firewall/alias", json!({"id": 0, "address": ["198.51.100.9"], "append": true})).await;
    assert_ok(&r);
    assert_eq!(r.data()["address"], json!(["203.0.113.7", "198.51.100.9"]));
    let r = c.post("/api/v2/firewall/apply", json!({"async": false})).await;
    assert_eq!(r.data(), json!({"applied": true, "pending_subsystems": []}));
    let s = emu.state();
    assert!(s.pending_subsystems.is_empty());
    assert_eq!(s.applied_alias("blocklist").unwrap()["address"], json!(["203.0.113.7", "198.51.100.9"]));
    // A rule using the alias; deleting the alias is NOT refused by pfRest v2.10 and the rule is then skipped at
    // the next filter reload.
    let mut rule = block_rule("uses alias");
    rule["source"] = json!("blocklist");
    let t = c.post("/api/v2/firewall/rule", rule).await.data()["tracker"].as_i64().unwrap();
    assert_ok(&c.delete("/api/v2/firewall/alias?id=0").await);
    c.post("/api/v2/firewall/apply", json!({"async": false})).await;
    let s = emu.state();
    assert!(s.rule_by_tracker(t).is_some());
    assert!(!s.applied_trackers().contains(&t));
    assert!(s.applied.notices.iter().any(|n| n.contains("blocklist")), "{:?}", s.applied.notices);
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    emu.shutdown().await;
}

#[tokio::test]
async fn refusing_referenced_alias_delete_is_optional() {
    let emu = Emulator::start(EmulatorConfig { refuse_referenced_alias_delete: true, ..config() }).await.unwrap();
    let c = Client::new(&emu);
    c.post("/api/v2/firewall/alias", json!({"name": "ports", "type": "port", "address": ["22", "8000:8080"]})).await;
    let mut rule = block_rule("ports");
    rule["destination_port"] = json!("ports");
    assert_ok(&c.post("/api/v2/firewall/rule", rule).await);
    let r = c.delete("/api/v2/firewall/alias?id=0").await;
    assert_eq!(r.status, 409);
    assert_eq!(r.response_id(), "MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED");
    assert_eq!(r.data()[0]["descr"], "ports");
    emu.shutdown().await;
}

#[tokio::test]
async fn async_apply_returns_at_once_sync_apply_waits() {
    let emu = Emulator::start(EmulatorConfig { apply_delay: Duration::from_millis(500), ..config() }).await.unwrap();
    let c = Client::new(&emu);
    c.post("/api/v2/firewall/alias", json!({"name": "a1", "type": "network", "address": ["10.0.0.0/8"]})).await;
    let gen0 = emu.state().applied.generation;

    let t = Instant::now();
    let r = c.post("/api/v2/firewall/apply", json!({})).await;
    assert!(t.elapsed() < Duration::from_millis(400), "async apply returns at once");
    assert_eq!(r.data(), json!({"applied": false, "pending_subsystems": ["aliases"]}));
    // Still pending while the reload runs.
    assert_eq!(c.get("/api/v2/firewall/apply").await.data()["applied"], false);
    assert_eq!(emu.state().applied.generation, gen0);
    emu.wait_for_applies().await;
    assert_eq!(c.get("/api/v2/firewall/apply").await.data()["applied"], true);
    assert_eq!(emu.state().applied.generation, gen0 + 1);

    c.post("/api/v2/firewall/alias", json!({"name": "a2", "type": "network", "address": ["10.1.0.0/16"]})).await;
    let t = Instant::now();
    let r = c.post("/api/v2/firewall/apply", json!({"async": false})).await;
    assert!(t.elapsed() >= Duration::from_millis(500), "sync apply waits for the reload");
    assert_eq!(r.data(), json!({"applied": true, "pending_subsystems": []}));
    assert_eq!(emu.state().applied.generation, gen0 + 2);
    assert!(emu.state().applied_alias("a2").is_some());
    emu.shutdown().await;
}

#[tokio::test]
async fn rule_queries_sorting_and_paging() {
    let (emu, c) = start().await;
    for i in 0..5 {
        let mut r = block_rule(&format!("mcp rule {i}"));
        if i % 2 == 1 {
            r["type"] = json!("reject");
        }
        assert_ok(&c.post("/api/v2/firewall/rule", r).await);
    }
    let descrs = |r: &Resp| -> Vec<String> {
        r.data().as_array().unwrap().iter().map(|x| x["descr"].as_str().unwrap().to_string()).collect()
    };
    let all = c.get("/api/v2/firewall/rules").await;
    assert_eq!(all.data().as_array().unwrap().len(), 7);
    let r = c.get("/api/v2/firewall/rules?descr__contains=mcp&type=reject").await;
    assert_eq!(descrs(&r), vec!["mcp rule 1", "mcp rule 3"]);
    let r = c.get("/api/v2/firewall/rules?descr__startswith=mcp&limit=2&offset=1").await;
    assert_eq!(descrs(&r), vec!["mcp rule 1", "mcp rule 2"]);
    let r = c.get("/api/v2/firewall/rules?limit=2&offset=2").await;
    assert_eq!(r.data()[0]["id"], 2, "ids are kept when paginating");
    let r = c.get("/api/v2/firewall/rules?descr__contains=mcp&sort_by=descr&sort_order=SORT_DESC&limit=2").await;
    assert_eq!(descrs(&r), vec!["mcp rule 4", "mcp rule 3"]);
    let r = c.get("/api/v2/firewall/rules?limit=2&reverse=true").await;
    assert_eq!(descrs(&r), vec!["mcp rule 4", "mcp rule 3"]);
    let r = c
        .get("/api/v2/firewall/rules?interface__contains=WAN&descr__in[]=mcp%20rule%200&descr__in[]=mcp%20rule%204")
        .await;
    assert_eq!(descrs(&r), vec!["mcp rule 0", "mcp rule 4"]);
    let r = c.get("/api/v2/firewall/rules?descr__regex=rule%20%5B23%5D$").await;
    assert_eq!(descrs(&r), vec!["mcp rule 2", "mcp rule 3"]);
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    // Unknown filter -> 404; bad control parameter types -> 400.
    let r = c.get("/api/v2/firewall/rules?descr__like=x").await;
    assert_eq!((r.status, r.response_id().as_str()), (404, "QUERY_FILTER_NOT_FOUND"));
    let r = c.get("/api/v2/firewall/rules?limit=ten").await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "ENDPOINT_LIMIT_FIELD_INVALID_TYPE"));
    // A query on an unknown field is ignored by pfRest (matches everything) but recorded.
    emu.clear_schema_violations();
    let r = c.get("/api/v2/firewall/rules?descrption=x").await;
    assert_eq!(r.data().as_array().unwrap().len(), 7);
    assert!(emu.schema_violations().iter().any(|v| v.contains("unknown field `descrption`")));
    emu.shutdown().await;
}

#[tokio::test]
async fn unknown_field_is_recorded_and_ignored() {
    let (emu, c) = start().await;
    let mut rule = block_rule("with typo");
    rule["destination_prot"] = json!("443");
    let r = c.post("/api/v2/firewall/rule", rule).await;
    assert_ok(&r);
    assert!(r.data().get("destination_prot").is_none());
    assert_eq!(r.data()["destination_port"], "22");
    let v = emu.schema_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].starts_with("POST /api/v2/firewall/rule: unknown field `destination_prot`"), "{v:?}");
    // Wrong type: answered with pfRest's 400 and recorded.
    emu.clear_schema_violations();
    let mut rule = block_rule("int port");
    rule["destination_port"] = json!(22);
    let r = c.post("/api/v2/firewall/rule", rule).await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "FIELD_INVALID_TYPE"));
    assert_eq!(r.json()["message"], "Field `destination_port` must be of type `string`");
    assert!(emu.schema_violations().iter().any(|v| v.contains("destination_port` must be of type string")));
    // Bad enum + missing required field.
    emu.clear_schema_violations();
    let r = c
        .post(
            "/api/v2/firewall/rule",
            json!({"type": "allow", "interface": ["wan"], "ipprotocol": "inet",
        "source": "any"}),
        )
        .await;
    assert_eq!(r.response_id(), "FIELD_INVALID_CHOICE");
    let v = emu.schema_violations().join("\n");
    assert!(v.contains("`type` value \"allow\""), "{v}");
    assert!(v.contains("required field `destination`"), "{v}");
    // A field whose condition is not met is silently dropped by pfRest, and recorded.
    emu.clear_schema_violations();
    let r = c
        .post(
            "/api/v2/firewall/rule",
            json!({"type": "block", "interface": ["wan"], "ipprotocol": "inet",
        "source": "any", "destination": "any", "destination_port": "22"}),
        )
        .await;
    assert_ok(&r);
    assert_eq!(r.data()["destination_port"], Value::Null);
    assert!(emu.schema_violations().iter().any(|v| v.contains("`destination_port` is only used")));
    emu.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_get_nginx_html_and_wrong_methods_get_json() {
    let (emu, c) = start().await;
    for path in ["/api/v2/firewall/rulez", "/api/v3/firewall/rules", "/nope"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 404);
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(r.body.contains("<center>nginx</center>"), "{}", r.body);
    }
    // Trailing slash works.
    assert_ok(&c.get("/api/v2/firewall/rules/").await);
    let r = c.post("/api/v2/firewall/rules", json!({})).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.response_id(), "ENDPOINT_METHOD_NOT_ALLOWED");
    assert_eq!(r.json()["status"], "method not allowed");
    // A real pfRest endpoint the emulator does not implement: JSON error + violation, not an HTML 404.
    let r = c.get("/api/v2/firewall/nat/port_forwards").await;
    assert_eq!(r.status, 500);
    assert!(emu.schema_violations().iter().any(|v| v.contains("not emulated")));
    emu.shutdown().await;
}

#[tokio::test]
async fn fault_switches() {
    let (emu, c) = start().await;
    let f = emu.faults();

    f.set_latency(Duration::from_millis(120));
    let t = Instant::now();
    assert_ok(&c.get("/api/v2/firewall/rules").await);
    assert!(t.elapsed() >= Duration::from_millis(120));
    f.set_latency(Duration::ZERO);

    f.fail_next(2, 500);
    for _ in 0..2 {
        let r = c.get("/api/v2/firewall/rules").await;
        assert_eq!(r.status, 500);
        assert_eq!(r.response_id(), "ENDPOINT_RECEIVED_UNEXPECTED_ERROR");
    }
    assert_ok(&c.get("/api/v2/firewall/rules").await);
    f.fail_next(1, 502);
    let r = c.get("/api/v2/firewall/rules").await;
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));

    f.config_locked_next(1);
    assert_ok(&c.get("/api/v2/firewall/rules").await); // reads do not take the lock
    let r = c.post("/api/v2/firewall/rule", block_rule("locked")).await;
    assert_eq!((r.status, r.response_id().as_str()), (503, "MODEL_WRITE_CONFIG_LOCKED"));
    assert_eq!(emu.state().rules.len(), 2, "nothing written");
    assert_ok(&c.post("/api/v2/firewall/rule", block_rule("retried")).await);

    f.garbage_next(1);
    let r = c.get("/api/v2/firewall/rules").await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.body).is_err());

    f.drop_next(1);
    let before = emu.state().rules.len();
    assert!(c.try_send("POST", "/api/v2/firewall/rule", Some(&block_rule("dropped"))).await.is_err());
    assert_eq!(emu.state().rules.len(), before, "dropped requests are not processed");

    f.drop_after_commit_next(1);
    assert!(c.try_send("POST", "/api/v2/firewall/rule", Some(&block_rule("landed"))).await.is_err());
    assert_eq!(emu.state().rules.len(), before + 1, "the write landed although the client saw no response");

    f.set_wrong_credentials(true);
    let r = c.get("/api/v2/firewall/rules").await;
    assert_eq!((r.status, r.response_id().as_str()), (401, "AUTH_AUTHENTICATION_FAILED"));
    f.set_wrong_credentials(false);

    f.set_html_404_everything(true);
    let r = c.get("/api/v2/system/restapi/version").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("nginx"));
    f.set_html_404_everything(false);
    assert_ok(&c.get("/api/v2/system/restapi/version").await);

    let log = emu.request_log();
    let faults: Vec<_> = log.iter().filter_map(|r| r.fault.clone()).collect();
    assert_eq!(
        faults,
        [
            "fail",
            "fail",
            "fail",
            "config_locked",
            "garbage",
            "drop",
            "drop_after_commit",
            "wrong_credentials",
            "html_404_everything"
        ]
    );
    assert!(log.iter().any(|r| r.status == 0));
    emu.shutdown().await;
}

#[tokio::test]
async fn requests_are_counted_per_route_and_wait_for_the_latency() {
    let emu = Emulator::start(config()).await.unwrap();
    let c = Client::new(&emu);
    emu.faults().set_latency(Duration::from_millis(120));
    let started = std::time::Instant::now();
    assert_ok(&c.get("/api/v2/firewall/rules").await);
    assert!(started.elapsed() >= Duration::from_millis(120), "{:?}", started.elapsed());
    emu.faults().set_latency(Duration::ZERO);
    assert_ok(&c.get("/api/v2/firewall/rules?tracker=1").await);
    assert_ok(&c.get("/api/v2/firewall/aliases").await);
    let counts = emu.request_counts();
    assert_eq!(counts.get("GET /api/v2/firewall/rules"), Some(&2), "the query is not part of the route: {counts:?}");
    assert_eq!(counts.get("GET /api/v2/firewall/aliases"), Some(&1));
    assert_eq!(counts.values().sum::<usize>(), 3, "control requests are not counted: {counts:?}");
    emu.clear_request_log();
    assert!(emu.request_counts().is_empty());
    emu.shutdown().await;
}

async fn add_address(c: &Client, addr: &str) -> Resp {
    c.patch("/api/v2/firewall/alias", json!({"id": 0, "address": [addr], "append": true})).await
}

#[tokio::test]
async fn concurrent_unserialised_writes_lose_an_update() {
    let emu = Emulator::start(EmulatorConfig { write_latency: Duration::from_millis(300), ..config() }).await.unwrap();
    let c = Client::new(&emu);
    assert_ok(&c.post("/api/v2/firewall/alias", json!({"name": "bl", "type": "host", "address": []})).await);

    // Two concurrent updates: both get 200, one of them is lost.
    let (a, b) = tokio::join!(add_address(&c, "192.0.2.1"), add_address(&c, "192.0.2.2"));
    assert_ok(&a);
    assert_ok(&b);
    let addresses = emu.state().alias("bl").unwrap()["address"].as_array().unwrap().len();
    assert_eq!(addresses, 1, "lost update");

    // Serialised by the client: both land.
    assert_ok(&add_address(&c, "192.0.2.3").await);
    assert_ok(&add_address(&c, "192.0.2.4").await);
    let state = emu.state();
    let addr = state.alias("bl").unwrap()["address"].as_array().unwrap();
    assert!(addr.contains(&json!("192.0.2.3")) && addr.contains(&json!("192.0.2.4")));

    // With the emulation switched off, concurrent writes are serialised by the emulator.
    emu.faults().set_lost_updates(false);
    let (a, b) = tokio::join!(add_address(&c, "192.0.2.5"), add_address(&c, "192.0.2.6"));
    assert_ok(&a);
    assert_ok(&b);
    let state = emu.state();
    let addr = state.alias("bl").unwrap()["address"].as_array().unwrap();
    assert!(addr.contains(&json!("192.0.2.5")) && addr.contains(&json!("192.0.2.6")));
    emu.shutdown().await;
}

#[tokio::test]
async fn firewall_log_returns_samples_with_limit_semantics() {
    let (emu, c) = start().await;
    let samples: Vec<String> = include_str!("../fixtures/filterlog-samples.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    assert_eq!(samples.len(), 63);
    let texts = |r: &Resp| -> Vec<String> {
        r.data().as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap().to_string()).collect()
    };
    let r = c.get("/api/v2/status/logs/firewall").await;
    assert_ok(&r);
    assert_eq!(texts(&r), samples);
    // v2.8+: limit=N -> newest N in chronological order.
    let r = c.get("/api/v2/status/logs/firewall?limit=5").await;
    assert_eq!(texts(&r), samples[58..].to_vec());
    // offset skips the newest lines.
    let r = c.get("/api/v2/status/logs/firewall?limit=5&offset=5").await;
    assert_eq!(texts(&r), samples[53..58].to_vec());
    // reverse pages from the oldest line, each page newest-first.
    let r = c.get("/api/v2/status/logs/firewall?limit=3&reverse=true").await;
    assert_eq!(texts(&r), vec![samples[2].clone(), samples[1].clone(), samples[0].clone()]);
    // With a query filter: whole log filtered, paginated from the oldest match.
    let r = c.get("/api/v2/status/logs/firewall?text__contains=,block,&limit=2").await;
    let t = texts(&r);
    let blocks: Vec<_> = samples.iter().filter(|l| l.contains(",block,")).cloned().collect();
    assert_eq!(t, blocks[..2].to_vec());
    // Lines pushed by tests show up at the end.
    emu.push_firewall_log_lines(["Jan  1 00:00:00 pfSense filterlog[1]: 5,,,1770000000,em0,match,block,in,4,0x0,,64,1,0,none,6,tcp,60,198.51.100.1,203.0.113.2,40000,22,0,S,1,,64240,,mss"]);
    let r = c.get("/api/v2/status/logs/firewall?limit=1").await;
    assert!(texts(&r)[0].contains("1770000000"));
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    emu.shutdown().await;
}

#[tokio::test]
async fn old_pfrest_versions_have_old_log_paging_and_no_dry_run() {
    let emu = Emulator::start(EmulatorConfig { version: "v2.7.6".into(), ..config() }).await.unwrap();
    let c = Client::new(&emu);
    let r = c.get("/api/v2/status/logs/firewall?limit=2").await;
    let first = include_str!("../fixtures/filterlog-samples.txt").lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(r.data()[0]["text"], first, "before v2.8.0 limit=N returns the oldest N");
    let mut rule = block_rule("dry?");
    rule["dry_run"] = json!(true);
    assert_ok(&c.post("/api/v2/firewall/rule", rule).await);
    assert_eq!(emu.state().rules.len(), 3, "dry_run is ignored before v2.8.0: the rule was created");
    assert!(emu.schema_violations().iter().any(|v| v.contains("dry_run` does not exist before pfRest v2.8.0")));
    emu.shutdown().await;
}

#[tokio::test]
async fn both_log_paging_semantics_serve_the_same_page_counted_from_the_newest() {
    let samples: Vec<String> = include_str!("../fixtures/filterlog-samples.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let texts = |r: &Resp| -> Vec<String> {
        r.data().as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap().to_string()).collect()
    };
    // v2.8+: `limit=5&offset=10` = lines 48..53 in order.
    let (emu, c) = start().await;
    assert_eq!(texts(&c.get("/api/v2/status/logs/firewall?limit=5&offset=10").await), samples[48..53].to_vec());
    // The oldest page is short, not padded or wrapped.
    assert_eq!(texts(&c.get("/api/v2/status/logs/firewall?limit=5&offset=60").await), samples[..3].to_vec());
    emu.shutdown().await;
    // Before v2.8: the whole log reversed, then sliced: the same lines, newest first.
    let emu = Emulator::start(EmulatorConfig { version: "v2.7.6".into(), ..config() }).await.unwrap();
    let c = Client::new(&emu);
    let mut expected = samples[48..53].to_vec();
    expected.reverse();
    assert_eq!(texts(&c.get("/api/v2/status/logs/firewall?reverse=true&limit=5&offset=10").await), expected);
    assert_eq!(texts(&c.get("/api/v2/status/logs/firewall?limit=2&offset=1").await), samples[1..3].to_vec());
    emu.shutdown().await;
}

#[tokio::test]
async fn the_log_can_grow_while_a_client_pages() {
    let (emu, c) = start().await;
    emu.faults().set_log_growth_per_read(3);
    let first = c.get("/api/v2/status/logs/firewall?limit=4").await.data();
    let second = c.get("/api/v2/status/logs/firewall?limit=4&offset=4").await.data();
    let text = |v: &Value, i: usize| v[i]["text"].as_str().unwrap().to_string();
    // Three lines arrived between the reads: the second page's newest three are the first page's oldest three.
    assert_eq!(
        (1..4).map(|i| text(&second, i)).collect::<Vec<_>>(),
        (0..3).map(|i| text(&first, i)).collect::<Vec<_>>()
    );
    assert!(text(&first, 3).contains("198.51.100.77"), "grown lines are new filterlog lines: {}", text(&first, 3));
    assert_ne!(text(&first, 3), text(&first, 2), "grown lines are distinct");
    assert_eq!(emu.faults().snapshot().log_growth_per_read, 3);
    emu.shutdown().await;
}

#[tokio::test]
async fn dry_run_validates_without_writing() {
    let (emu, c) = start().await;
    let mut rule = block_rule("dry");
    rule["dry_run"] = json!(true);
    let r = c.post("/api/v2/firewall/rule", rule.clone()).await;
    assert_ok(&r);
    assert_eq!(r.data()["descr"], "dry");
    assert_eq!(emu.state().rules.len(), 2);
    rule["type"] = json!("allow");
    assert_eq!(c.post("/api/v2/firewall/rule", rule).await.response_id(), "FIELD_INVALID_CHOICE");
    let r = c.get("/api/v2/firewall/rules?dry_run=true").await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "ENDPOINT_DRY_RUN_NOT_SUPPORTED_ON_GET"));
    // PUT on a plural endpoint: dry run via the Prefer header.
    let rules = c.get("/api/v2/firewall/rules").await.data();
    let mut reversed: Vec<Value> = rules.as_array().unwrap().clone();
    reversed.reverse();
    let r = raw_request(
        c.addr,
        "PUT",
        "/api/v2/firewall/rules",
        &[("X-API-Key", KEY.to_string()), ("Content-Type", "application/json".into()), ("Prefer", "dry-run".into())],
        Some(&Value::Array(reversed.clone()).to_string()),
    )
    .await
    .unwrap();
    assert_ok(&r);
    assert_eq!(emu.state().rules[0]["descr"], "Default allow LAN to any rule");
    // The real PUT reorders and keeps the trackers sent back.
    let r = c.put("/api/v2/firewall/rules", Value::Array(reversed)).await;
    assert_ok(&r);
    let s = emu.state();
    assert_eq!(s.rules[0]["descr"], "Default allow LAN IPv6 to any rule");
    assert_eq!(s.rules[0]["tracker"], 100000102);
    // Plural DELETE does not honour dry_run (pfRest v2.10 source): the rules are deleted, and it is recorded.
    emu.clear_schema_violations();
    c.post("/api/v2/firewall/rule", block_rule("victim")).await;
    let r = c.delete("/api/v2/firewall/rules?descr=victim&dry_run=true").await;
    assert_ok(&r);
    assert!(emu.state().rules.iter().all(|r| r["descr"] != "victim"));
    assert!(emu.schema_violations().iter().any(|v| v.contains("dry_run` on a plural DELETE")));
    emu.shutdown().await;
}

#[tokio::test]
async fn status_endpoints_match_the_schema() {
    let (emu, c) = start().await;
    let subset: Value = serde_json::from_str(include_str!("../schema/subset.json")).unwrap();
    let fields = |model: &str| -> Vec<String> {
        subset["models"][model]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    let check = |model: &str, obj: &Value| {
        let names = fields(model);
        for k in obj.as_object().unwrap().keys() {
            assert!(k == "id" || names.contains(k), "{model} has no field {k}");
        }
        for n in &names {
            let wo = subset["models"][model]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == *n && f["write_only"] == true);
            assert!(wo || obj.get(n).is_some(), "{model}.{n} missing");
        }
    };
    let sys = c.get("/api/v2/status/system").await;
    assert_ok(&sys);
    check("SystemStatus", &sys.data());
    assert!(sys.data()["cpu_usage"].is_number());
    for (path, model) in [
        ("/api/v2/status/interfaces", "InterfaceStats"),
        ("/api/v2/status/gateways", "RoutingGatewayStatus"),
        ("/api/v2/status/openvpn/servers", "OpenVPNServerStatus"),
        ("/api/v2/status/openvpn/clients", "OpenVPNClientStatus"),
        ("/api/v2/status/ipsec/sas", "IPsecSAStatus"),
        ("/api/v2/status/wireguard/tunnels", "WireGuardTunnelStatus"),
        ("/api/v2/status/wireguard/peers", "WireGuardPeerStatus"),
        ("/api/v2/interfaces", "NetworkInterface"),
    ] {
        let r = c.get(path).await;
        assert_ok(&r);
        let items = r.data();
        assert!(!items.as_array().unwrap().is_empty(), "{path}");
        for item in items.as_array().unwrap() {
            check(model, item);
        }
    }
    let ifs = c.get("/api/v2/interfaces").await.data();
    let pairs: Vec<(String, String)> = ifs
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().into(), i["if"].as_str().unwrap().into()))
        .collect();
    assert_eq!(pairs, [("wan".into(), "em0".into()), ("lan".into(), "em1".into()), ("opt1".into(), "em2".into())]);
    let r = c.get("/api/v2/status/system?limit=1").await;
    assert_eq!(r.response_id(), "MODEL_DOES_NOT_SUPPORT_PAGINATION");
    emu.shutdown().await;
}

#[tokio::test]
async fn http_control_endpoints() {
    let (emu, c) = start().await;
    let none = c.with_auth(Auth::None);
    c.post(
        "/api/v2/firewall/rule",
        json!({"type": "block", "interface": ["wan"], "ipprotocol": "inet",
        "source": "any", "destination": "any", "bogus": true}),
    )
    .await;
    let state = none.get("/__emulator/state").await.json();
    assert_eq!(state["rules"].as_array().unwrap().len(), 3);
    let v = none.get("/__emulator/violations").await.json();
    assert!(v[0].as_str().unwrap().contains("bogus"));
    let reqs = none.get("/__emulator/requests").await.json();
    assert_eq!(reqs.as_array().unwrap().len(), 1, "control requests are not logged");
    assert_eq!(reqs[0]["method"], "POST");
    let f = none.post("/__emulator/faults", json!({"fail_next_n": 1, "fail_status": 503})).await.json();
    assert_eq!(f["fail_next_n"], 1);
    assert_eq!(c.get("/api/v2/firewall/rules").await.status, 503);
    none.post("/__emulator/faults", json!({"reset": true})).await;
    assert_eq!(emu.faults().snapshot().fail_next_n, 0);
    none.send("DELETE", "/__emulator/violations", None).await;
    assert!(emu.schema_violations().is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn binary_prints_its_url_and_serves() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pfrest-emulator"))
        .args(["--port", "0", "--api-key", KEY, "--user", "admin:pass"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pfrest-emulator");
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = line.strip_prefix("pfrest-emulator listening on http://").expect("listening line");
    let addr: SocketAddr = url.parse().unwrap();
    let c = Client { addr, auth: Auth::Basic("admin".into(), "pass".into()) };
    assert_ok(&c.get("/api/v2/firewall/rules").await);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn plural_delete_needs_a_query_and_unknown_fields_match_everything() {
    let (emu, c) = start().await;
    for n in ["a1", "a2", "a3"] {
        assert_ok(&c.post("/api/v2/firewall/alias", json!({"name": n, "type": "port", "address": ["80"]})).await);
    }
    let r = c.delete("/api/v2/firewall/aliases").await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "MODEL_DELETE_MANY_REQUIRES_QUERY_PARAMS"));
    let r = c.delete("/api/v2/firewall/aliases?name=a2").await;
    assert_ok(&r);
    assert_eq!(r.data()[0]["name"], "a2");
    assert_eq!(emu.state().aliases.len(), 2);
    emu.clear_schema_violations();
    // `apply` is not a control parameter of plural DELETE: pfRest queries a non-existent field -> matches all.
    let r = c.delete("/api/v2/firewall/aliases?apply=true").await;
    assert_ok(&r);
    assert_eq!(r.data().as_array().unwrap().len(), 2);
    assert!(emu.state().aliases.is_empty());
    assert!(
        emu.schema_violations().iter().any(|v| v.contains("matches EVERY object")),
        "{:?}",
        emu.schema_violations()
    );
    assert_eq!(emu.state().pending_subsystems, ["aliases"]);
    emu.shutdown().await;
}

#[tokio::test]
async fn pf_tables_are_listed_read_and_flushed() {
    let (emu, c) = start().await;
    let r = c.get("/api/v2/diagnostics/tables").await;
    assert_ok(&r);
    let names: Vec<String> =
        r.data().as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    for system in ["virusprot", "sshguard", "snort2c", "bogons"] {
        assert!(names.contains(&system.to_string()), "{names:?}");
    }
    let r = c.get("/api/v2/diagnostics/table?id=virusprot").await;
    assert_ok(&r);
    assert_eq!(r.data(), json!({"id": "virusprot", "name": "virusprot", "entries": []}));

    // pf puts sources there itself (an overload rule); pfRest can only read and flush.
    emu.add_table_entries("virusprot", ["198.51.100.7", "2001:db8:1::/64"]);
    let r = c.get("/api/v2/diagnostics/table?id=virusprot").await;
    assert_eq!(r.data()["entries"], json!(["198.51.100.7", "2001:db8:1::/64"]));
    let r = c.get("/api/v2/diagnostics/tables?name=virusprot").await;
    assert_eq!(r.data().as_array().unwrap().len(), 1);

    // A dry run flushes nothing; a DELETE answers the table as it was and empties it.
    let r = c.delete("/api/v2/diagnostics/table?id=virusprot&dry_run=true").await;
    assert_ok(&r);
    assert_eq!(emu.table("virusprot").unwrap().len(), 2);
    let r = c.delete("/api/v2/diagnostics/table?id=virusprot").await;
    assert_ok(&r);
    assert_eq!(r.data()["entries"].as_array().unwrap().len(), 2);
    assert_eq!(emu.table("virusprot"), Some(vec![]));

    let r = c.get("/api/v2/diagnostics/table?id=nosuchtable").await;
    assert_eq!((r.status, r.response_id().as_str()), (404, "MODEL_OBJECT_NOT_FOUND"));
    let r = c.delete("/api/v2/diagnostics/table?id=nosuchtable").await;
    assert_eq!(r.status, 404);
    let r = c.get("/api/v2/diagnostics/table").await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "MODEL_REQUIRES_ID"));
    emu.clear_schema_violations();

    // An alias becomes a table at the filter reload after its creation, its host routes without the prefix.
    let alias = json!({"name": "BAD", "type": "network", "address": ["203.0.113.9/32", "2001:db8::/32"]});
    assert_ok(&c.post("/api/v2/firewall/alias", alias).await);
    assert_eq!(emu.table("BAD"), None, "not before the reload");
    assert_ok(&c.post("/api/v2/firewall/apply", json!({"async": false})).await);
    assert_eq!(emu.table("BAD"), Some(vec!["203.0.113.9".to_string(), "2001:db8::/32".to_string()]));
    // A table nobody declares does not survive a reload; the system tables keep their entries.
    emu.add_table_entries("handmade", ["192.0.2.1"]);
    emu.add_table_entries("virusprot", ["192.0.2.2"]);
    assert_ok(&c.post("/api/v2/firewall/apply", json!({"async": false})).await);
    assert_eq!(emu.table("handmade"), None);
    assert_eq!(emu.table("virusprot"), Some(vec!["192.0.2.2".to_string()]));

    // The control endpoint does the same as the library call.
    let none = c.with_auth(Auth::None);
    let r = none.post("/__emulator/tables", json!({"name": "virusprot", "entries": ["192.0.2.3"]})).await;
    assert_eq!(r.json()["entries"], json!(["192.0.2.2", "192.0.2.3"]));
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    emu.shutdown().await;
}

#[tokio::test]
async fn a_rule_patch_keeps_the_gui_advanced_options_and_checks_the_statetype() {
    let (emu, c) = start().await;
    let web = json!({"type": "pass", "interface": ["wan"], "ipprotocol": "inet", "protocol": "tcp", "source": "any",
                     "destination": "wan:ip", "destination_port": "443", "descr": "web"});
    let r = c.post("/api/v2/firewall/rule", web).await;
    let (id, tracker) = (r.data()["id"].as_u64().unwrap(), r.data()["tracker"].as_i64().unwrap());
    // Set in the GUI (Display Advanced): pfRest has no field for them and does not show them.
    emu.set_rule_config(tracker, "max-src-conn-rate", json!("20")).unwrap();
    emu.set_rule_config(tracker, "max-src-conn-rates", json!("5")).unwrap();
    assert!(emu.set_rule_config(tracker, "statetype", json!("none")).is_err(), "a pfRest field");
    assert!(c.get(&format!("/api/v2/firewall/rule?id={id}")).await.data().get("max-src-conn-rate").is_none());

    let r = c.patch("/api/v2/firewall/rule", json!({"id": id, "statetype": "synproxy state"})).await;
    assert_ok(&r);
    assert_eq!(r.data()["statetype"], "synproxy state");
    let stored = emu.rule_config(tracker).unwrap();
    assert_eq!(
        (stored["max-src-conn-rate"].as_str(), stored["statetype"].as_str()),
        (Some("20"), Some("synproxy state"))
    );

    let r = c.patch("/api/v2/firewall/rule", json!({"id": id, "statetype": "proxy please"})).await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "FIELD_INVALID_CHOICE"));
    let r = c.patch("/api/v2/firewall/rule", json!({"id": id, "protocol": "tcp/udp"})).await;
    assert_eq!(
        (r.status, r.response_id().as_str()),
        (400, "FIREWALL_RULE_SYNPROXY_STATE_TYPE_WITH_NON_TCP_PROTOCOL"),
        "a synproxy rule must stay tcp"
    );
    assert_eq!(emu.rule_config(tracker).unwrap()["statetype"], "synproxy state", "refused writes change nothing");
    emu.clear_schema_violations();

    // A PUT of the rules rebuilds them from what is sent: the advanced options are gone.
    let rules = c.get("/api/v2/firewall/rules").await.data();
    let items: Vec<Value> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            for ro in ["id", "created_time", "updated_time", "created_by", "updated_by"] {
                o.remove(ro);
            }
            r
        })
        .collect();
    assert_ok(&c.put("/api/v2/firewall/rules", Value::Array(items)).await);
    let stored = emu.rule_config(tracker).unwrap();
    assert!(stored.get("max-src-conn-rate").is_none(), "{stored:?}");
    assert_eq!(stored["statetype"], "synproxy state", "a field pfRest knows survives the PUT");
    emu.shutdown().await;
}

fn limiter(name: &str, bw: i64, scale: &str) -> Value {
    json!({"name": name, "enabled": true, "mask": "srcaddress", "maskbits": 32, "maskbitsv6": 64, "aqm": "droptail",
           "sched": "wf2q+", "description": "per-source cap", "bandwidth": [{"bw": bw, "bwscale": scale}]})
}

#[tokio::test]
async fn limiters_are_validated_numbered_shift_on_delete_and_are_applied_with_the_filter() {
    let (emu, c) = start().await;
    let r = c.post("/api/v2/firewall/traffic_shaper/limiter", limiter("pc_one", 10, "Mb")).await;
    assert_ok(&r);
    let one = r.data();
    assert_eq!((one["id"].as_u64(), one["number"].as_i64()), (Some(0), Some(1)));
    assert_eq!(one["bandwidth"], json!([{"id": 0, "parent_id": 0, "bw": 10, "bwscale": "Mb", "bwsched": "none"}]));
    assert_eq!(
        (one["mask"].as_str(), one["maskbits"].as_i64(), one["maskbitsv6"].as_i64()),
        (Some("srcaddress"), Some(32), Some(64))
    );
    assert_eq!(c.get("/api/v2/firewall/apply").await.data()["pending_subsystems"], json!(["shaper"]));
    assert!(emu.state().applied_limiter("pc_one").is_none(), "loaded only by the next reload");
    let r = c.post("/api/v2/firewall/traffic_shaper/limiter", limiter("pc_two", 500, "Kb")).await;
    assert_eq!(r.data()["number"], 2);
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());

    // What pfRest refuses, with its response ids.
    let refused = |v: Value| {
        let c = c.clone();
        async move { c.post("/api/v2/firewall/traffic_shaper/limiter", v).await }
    };
    let mut no_aqm = limiter("pc_x", 1, "Mb");
    no_aqm.as_object_mut().unwrap().remove("aqm");
    let cases = [
        (no_aqm, 400, "FIELD_IS_REQUIRED"),
        (
            json!({"name": "pc_x", "aqm": "droptail", "sched": "wf2q+", "bandwidth": [{"bw": 1, "bwscale": "Gb"}]}),
            400,
            "FIELD_INVALID_CHOICE",
        ),
        (
            json!({"name": "pc_x", "aqm": "droptail", "sched": "wf2q+", "bandwidth": [{"bw": 0, "bwscale": "Mb"}]}),
            400,
            "NUMERIC_RANGE_VALIDATOR_MINIMUM_CONSTRAINT",
        ),
        (
            json!({"name": "pc_x", "aqm": "droptail", "sched": "wf2q+", "bandwidth": []}),
            400,
            "LENGTH_VALIDATOR_MINIMUM_CONSTRAINT",
        ),
        (
            json!({"name": "pc_x", "aqm": "tailspin", "sched": "wf2q+", "bandwidth": [{"bw": 1, "bwscale": "Mb"}]}),
            400,
            "FIELD_INVALID_CHOICE",
        ),
        (limiter("pc_one", 1, "Mb"), 400, "FIELD_MUST_BE_UNIQUE"),
        (limiter("pc-dash", 1, "Mb"), 400, "FILTER_NAME_VALIDATOR_INVALID_CHARACTERS"),
        (limiter("12345", 1, "Mb"), 400, "FILTER_NAME_VALIDATOR_CANNOT_BE_NUMERICAL"),
        (limiter("wan", 1, "Mb"), 400, "FILTER_NAME_VALIDATOR_NAME_IN_USE_BY_INTERFACE"),
        (
            json!({"name": "pc_x", "aqm": "droptail", "sched": "wf2q+", "enabled": "yes", "bandwidth": [{"bw": 1, "bwscale": "Mb"}]}),
            400,
            "FIELD_INVALID_TYPE",
        ),
    ];
    for (body, status, id) in cases {
        let r = refused(body.clone()).await;
        assert_eq!((r.status, r.response_id().as_str()), (status, id), "{body}: {}", r.body);
    }
    let r = refused(
        json!({"name": "pc_x", "aqm": "droptail", "sched": "wf2q+", "bandwidth": [{"bw": 0, "bwscale": "Mb"}]}),
    )
    .await;
    assert!(
        r.json()["message"].as_str().unwrap().starts_with("Field `bandwidth` encountered a nested validation error"),
        "{}",
        r.body
    );
    assert_eq!(emu.state().limiters.len(), 2, "refused writes change nothing");
    assert!(!emu.schema_violations().is_empty(), "the bad requests were recorded");
    emu.clear_schema_violations();

    // PATCH the bandwidth; the list and a single read agree.
    let r = c
        .patch("/api/v2/firewall/traffic_shaper/limiter", json!({"id": 1, "bandwidth": [{"bw": 2, "bwscale": "Mb"}]}))
        .await;
    assert_ok(&r);
    assert_eq!(r.data()["bandwidth"][0]["bw"], 2);
    assert_eq!(c.get("/api/v2/firewall/traffic_shaper/limiter?id=1").await.data()["bandwidth"][0]["bwscale"], "Mb");
    let list = c.get("/api/v2/firewall/traffic_shaper/limiters?name=pc_two").await.data();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], 1);
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    // A bandwidth item with a field the model does not have is linted as the nested model's.
    c.patch(
        "/api/v2/firewall/traffic_shaper/limiter",
        json!({"id": 1, "bandwidth": [{"bw": 2, "bwscale": "Mb", "burst": 9}]}),
    )
    .await;
    let v = emu.schema_violations();
    assert!(v.iter().any(|v| v.contains("bandwidth[0] unknown field `burst`")), "{v:?}");
    emu.clear_schema_violations();

    // A reload loads them.
    c.post("/api/v2/firewall/apply", json!({"async": false})).await;
    let s = emu.state();
    assert!(s.pending_subsystems.is_empty());
    assert_eq!(s.applied_limiter("pc_two").unwrap()["bandwidth"][0]["bw"], 2);

    // Ids shift on delete; numbers stay.
    assert_ok(&c.delete("/api/v2/firewall/traffic_shaper/limiter?id=0").await);
    let two = c.get("/api/v2/firewall/traffic_shaper/limiter?id=0").await.data();
    assert_eq!((two["name"].as_str(), two["number"].as_i64()), (Some("pc_two"), Some(2)));
    let r = c.get("/api/v2/firewall/traffic_shaper/limiter?id=1").await;
    assert_eq!((r.status, r.response_id().as_str()), (404, "MODEL_OBJECT_NOT_FOUND"));
    // The freed number is given again.
    assert_eq!(
        c.post("/api/v2/firewall/traffic_shaper/limiter", limiter("pc_three", 1, "b")).await.data()["number"],
        1
    );
    assert_eq!(c.delete("/api/v2/firewall/traffic_shaper/limiters?name=pc_two").await.status, 405, "no plural DELETE");
    emu.clear_schema_violations();
    emu.shutdown().await;
}

#[tokio::test]
async fn a_rule_pipe_must_name_a_limiter_and_a_limiter_in_use_cannot_be_deleted() {
    let (emu, c) = start().await;
    let mut web = json!({"type": "pass", "interface": ["wan"], "ipprotocol": "inet", "protocol": "tcp",
                         "source": "any", "destination": "wan:ip", "destination_port": "443", "descr": "web",
                         "dnpipe": "pc_cap"});
    let r = c.post("/api/v2/firewall/rule", web.clone()).await;
    assert_eq!((r.status, r.response_id().as_str()), (404, "FIREWALL_RULE_DNPIPE_NOT_FOUND"));
    assert_ok(&c.post("/api/v2/firewall/traffic_shaper/limiter", limiter("pc_cap", 10, "Mb")).await);
    let r = c.post("/api/v2/firewall/rule", web.clone()).await;
    assert_ok(&r);
    let (id, tracker) = (r.data()["id"].as_u64().unwrap(), r.data()["tracker"].as_i64().unwrap());
    assert_eq!(r.data()["dnpipe"], "pc_cap");
    web["pdnpipe"] = json!("pc_cap");
    let r = c.post("/api/v2/firewall/rule", web).await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "FIREWALL_RULE_PDNPIPE_CANNOT_MATCH_DNPIPE"));
    let r = c.patch("/api/v2/firewall/rule", json!({"id": id, "dnpipe": null, "pdnpipe": "pc_cap"})).await;
    assert_eq!((r.status, r.response_id().as_str()), (400, "FIREWALL_RULE_PDNPIPE_SET_WITHOUT_DNPIPE"));

    // In use: refused, naming the rule.
    let r = c.delete("/api/v2/firewall/traffic_shaper/limiter?id=0").await;
    assert_eq!((r.status, r.response_id().as_str()), (409, "MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED"));
    assert!(r.json()["message"].as_str().unwrap().contains(&format!("tracker {tracker}")), "{}", r.body);
    assert_eq!(r.data()[0]["tracker"], tracker);
    assert_eq!(emu.state().limiters.len(), 1);
    // Unhooked with an explicit null (pfRest does not validate a null pipe), it can go.
    let r = c.patch("/api/v2/firewall/rule", json!({"id": id, "dnpipe": null})).await;
    assert_ok(&r);
    assert!(r.data()["dnpipe"].is_null());
    assert_ok(&c.delete("/api/v2/firewall/traffic_shaper/limiter?id=0").await);
    emu.clear_schema_violations();
    emu.shutdown().await;

    // pfRest itself does not check: with the switch off, the rule is left naming a missing pipe, and every later
    // PATCH of it fails.
    let emu = Emulator::start(EmulatorConfig { refuse_referenced_limiter_delete: false, ..config() }).await.unwrap();
    let c = Client::new(&emu);
    c.post("/api/v2/firewall/traffic_shaper/limiter", limiter("pc_cap", 10, "Mb")).await;
    let rule = json!({"type": "pass", "interface": ["wan"], "ipprotocol": "inet", "protocol": "udp",
                      "source": "any", "destination": "any", "dnpipe": "pc_cap"});
    let id = c.post("/api/v2/firewall/rule", rule).await.data()["id"].as_u64().unwrap();
    assert_ok(&c.delete("/api/v2/firewall/traffic_shaper/limiter?id=0").await);
    let r = c.patch("/api/v2/firewall/rule", json!({"id": id, "descr": "x"})).await;
    assert_eq!((r.status, r.response_id().as_str()), (404, "FIREWALL_RULE_DNPIPE_NOT_FOUND"));
    emu.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// VPN users' objects.

#[tokio::test]
async fn vpn_objects_get_pfsense_values_references_are_kept_and_secrets_never_shown() {
    let (emu, c) = start().await;
    let ca = c.get("/api/v2/system/certificate_authorities").await.data()[0]["refid"].clone();
    let made = c
        .post(
            "/api/v2/system/certificate/generate",
            json!({"descr": "u1", "caref": ca, "keytype": "RSA", "keylen": 2048, "digest_alg": "sha256",
                   "dn_commonname": "u1", "type": "user"}),
        )
        .await;
    assert_ok(&made);
    let refid = made.data()["refid"].clone();
    assert_eq!(refid.as_str().map(str::len), Some(13), "a uniqid: {}", made.body);
    assert!(made.data().get("prv").is_none(), "the private key is sensitive: {}", made.body);
    let bad_ca = c
        .post(
            "/api/v2/system/certificate/generate",
            json!({"descr": "x", "caref": "nope", "keytype": "RSA", "keylen": 2048, "digest_alg": "sha256",
                   "dn_commonname": "x"}),
        )
        .await;
    assert_eq!(bad_ca.response_id(), "FOREIGN_MODEL_FIELD_VALUE_NOT_FOUND", "{}", bad_ca.body);

    let user = c.post("/api/v2/user", json!({"name": "u1", "password": "secret-pass", "cert": [refid]})).await;
    assert_ok(&user);
    assert_eq!(user.data()["uid"], 2000);
    assert!(user.data().get("password").is_none());
    assert!(!c.get("/api/v2/users").await.body.contains("secret-pass"));
    let unknown_cert = c.post("/api/v2/user", json!({"name": "u2", "password": "p", "cert": ["nope"]})).await;
    assert_eq!(unknown_cert.response_id(), "FOREIGN_MODEL_FIELD_VALUE_NOT_FOUND");

    // The certificate is the user's: it cannot go first.
    let cert_id = c.get("/api/v2/system/certificates").await.data().as_array().unwrap().len() - 1;
    let in_use = c.delete(&format!("/api/v2/system/certificate?id={cert_id}")).await;
    assert_eq!((in_use.status, in_use.response_id().as_str()), (409, "MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED"));
    let admin = c.delete("/api/v2/user?id=0").await;
    assert_eq!(admin.status, 400, "the system's admin stays: {}", admin.body);

    let cso = json!({"common_name": "u1", "server_list": ["ovpns1"], "tunnel_network": "10.0.1.50/24"});
    assert_ok(&c.post("/api/v2/vpn/openvpn/cso", cso).await);
    let no_server = c.post("/api/v2/vpn/openvpn/cso", json!({"common_name": "u3", "server_list": ["ovpns9"]})).await;
    assert_eq!(no_server.response_id(), "FOREIGN_MODEL_FIELD_VALUE_NOT_FOUND");
    let export = c
        .post(
            "/api/v2/vpn/openvpn/client_export",
            json!({"server": 1, "type": "confinline", "username": "u1", "certref": refid}),
        )
        .await;
    assert_ok(&export);
    assert!(export.data()["filename"].as_str().unwrap().ends_with(".ovpn"));

    // A peer marks WireGuard pending until its apply; the tunnel's public key is derived from its private key.
    let tunnel = &c.get("/api/v2/vpn/wireguard/tunnels").await.data()[0];
    assert!(tunnel.get("privatekey").is_none() && tunnel["publickey"].as_str().is_some_and(|k| k.len() == 44));
    let peer = json!({"enabled": true, "tun": "tun_wg0", "publickey": "Sgfbxfq+Z8DiTQoDeYPh191Edu3Ir1fDtXCBbHxQzFs=",
                      "allowedips": [{"address": "10.6.0.9", "mask": 32}]});
    assert_ok(&c.post("/api/v2/vpn/wireguard/peer", peer.clone()).await);
    assert_eq!(c.get("/api/v2/vpn/wireguard/apply").await.data()["applied"], false);
    assert_eq!(c.post("/api/v2/vpn/wireguard/peer", peer).await.response_id(), "FIELD_MUST_BE_UNIQUE");
    assert_eq!(c.post("/api/v2/vpn/wireguard/apply", json!({})).await.data()["applied"], true);
    assert!(emu.schema_violations().is_empty(), "{:?}", emu.schema_violations());
    emu.shutdown().await;
}

#[tokio::test]
async fn packages_gate_their_endpoints_and_a_fault_can_hit_one_step_of_a_flow() {
    let emu =
        Emulator::start(EmulatorConfig { wireguard_installed: false, client_export_installed: false, ..config() })
            .await
            .unwrap();
    let c = Client::new(&emu);
    let names: Vec<Value> =
        c.get("/api/v2/system/packages").await.data().as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, vec![json!("pfSense-pkg-RESTAPI")]);
    let peers = c.get("/api/v2/vpn/wireguard/peers").await;
    assert_eq!((peers.status, peers.response_id().as_str()), (404, "MODEL_MISSING_REQUIRED_PACKAGE"));
    let export = c.post("/api/v2/vpn/openvpn/client_export", json!({"server": 1, "type": "confinline"})).await;
    assert_eq!(export.response_id(), "MODEL_MISSING_REQUIRED_PACKAGE");

    emu.faults().fail_next_on("POST", "/api/v2/vpn/openvpn/cso", 1, 500);
    assert_ok(&c.get("/api/v2/users").await);
    let failed = c.post("/api/v2/vpn/openvpn/cso", json!({"common_name": "x", "server_list": ["ovpns1"]})).await;
    assert_eq!(failed.status, 500);
    assert_eq!(emu.state().vpn_objects("csos").len(), 0, "a failed request changes nothing");
    assert_ok(&c.post("/api/v2/vpn/openvpn/cso", json!({"common_name": "x", "server_list": ["ovpns1"]})).await);
    assert_eq!(emu.faults().snapshot().fail_only.as_deref(), Some("POST /api/v2/vpn/openvpn/cso"));
    emu.faults().reset();
    assert_eq!(emu.faults().snapshot().fail_only, None);
    emu.shutdown().await;
}
