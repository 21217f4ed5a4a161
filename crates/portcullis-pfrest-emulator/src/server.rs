//! HTTP layer: listener with per-connection kill switch (for "drop the connection" faults), request decoding the
//! way pfRest's content handlers do, authentication, control parameters, faults, routing and the endpoint handlers.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::to_bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::faults::EchoStyle;
use crate::model::{ApiError, Obj, ValidateCtx, rule_alias_refs, rule_limiter_refs, to_repr, validate};
use crate::query::{ListOptions, list, parse_terms};
use crate::schema::{self, EndpointSchema, LintInput, ModelSchema, lint_request, model};
use crate::state::{Config, Inner};
use crate::util::{b64_decode, b64_encode, hmac_sha256, now, parse_form};
use crate::{AuthMethod, FaultsPatch, LoggedRequest, status};

// ---------------------------------------------------------------------------------------------------------------
// Listener with a kill switch per connection.

pub(crate) struct EmuListener(TcpListener);

/// Connection info handed to the handler: the peer address and the connection's kill switch.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    #[allow(dead_code)]
    pub remote: SocketAddr,
    pub kill: Arc<AtomicBool>,
}

/// A TCP stream that, once killed, refuses to write (so hyper closes the connection without sending anything).
pub(crate) struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl Listener for EmuListener {
    type Io = KillableStream;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    return (KillableStream { inner: stream, kill: Arc::clone(&kill) }, ConnInfo { remote, kill });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnInfo { remote: self.0.local_addr()?, kill: Arc::new(AtomicBool::new(false)) })
    }
}

impl Connected<IncomingStream<'_, EmuListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, EmuListener>) -> Self {
        stream.remote_addr().clone()
    }
}

fn killed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection dropped by fault injection")
}

impl AsyncRead for KillableStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut me.inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut me.inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

pub(crate) async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    let app = Router::new().fallback(handle).with_state(inner);
    let _ = axum::serve(EmuListener(listener), app.into_make_service_with_connect_info::<ConnInfo>()).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Responses.

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "ok",
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        405 => "method not allowed",
        406 => "not acceptable",
        409 => "conflict",
        415 => "unsupported media type",
        422 => "unprocessable entity",
        424 => "failed dependency",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "unknown",
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json"), (header::SERVER, "nginx")], format!("{body}\n"))
        .into_response()
}

fn envelope(code: u16, response_id: &str, message: &str, data: Value, links: Option<Value>) -> Response {
    let mut body = json!({"code": code, "status": status_text(code), "response_id": response_id,
                          "message": message, "data": data});
    if let Some(links) = links {
        body["_links"] = links;
    }
    json_response(code, &body)
}

fn error_response(e: &ApiError) -> Response {
    envelope(e.code, &e.response_id, &e.message, e.data.clone(), None)
}

fn nginx_page(code: u16, reason: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::NOT_FOUND);
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html"), (header::SERVER, "nginx")], body).into_response()
}

fn html_404() -> Response {
    nginx_page(404, "Not Found")
}

// ---------------------------------------------------------------------------------------------------------------
// Request entry point.

struct Rq {
    method: String,
    /// Path with any trailing slash removed.
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

struct Out {
    response: Response,
    status: u16,
    fault: Option<String>,
    drop: bool,
}

impl Out {
    fn ok(response: Response) -> Out {
        let status = response.status().as_u16();
        Out { response, status, fault: None, drop: false }
    }
    fn fault(response: Response, fault: &str) -> Out {
        let status = response.status().as_u16();
        Out { response, status, fault: Some(fault.to_string()), drop: false }
    }
    fn dropped(fault: &str) -> Out {
        Out { response: StatusCode::OK.into_response(), status: 0, fault: Some(fault.to_string()), drop: true }
    }
}

async fn handle(State(inner): State<Arc<Inner>>, ConnectInfo(conn): ConnectInfo<ConnInfo>, req: Request) -> Response {
    let method = req.method().as_str().to_ascii_uppercase();
    let raw_path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers = req.headers().clone();
    let body = to_bytes(req.into_body(), 64 * 1024 * 1024).await.map(|b| b.to_vec()).unwrap_or_default();

    if raw_path == "/__emulator" || raw_path.starts_with("/__emulator/") {
        return control(&inner, &method, &raw_path, &body).await;
    }
    if inner.shut_down.load(Ordering::SeqCst) {
        conn.kill.store(true, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let path = if raw_path.len() > 1 { raw_path.trim_end_matches('/').to_string() } else { raw_path.clone() };
    let rq = Rq { method, path, query, headers, body };
    let out = process(&inner, &rq).await;
    if out.drop {
        conn.kill.store(true, Ordering::SeqCst);
    }
    inner.log_request(LoggedRequest {
        method: rq.method.clone(),
        path: raw_path,
        query: rq.query.clone(),
        body: String::from_utf8_lossy(&rq.body).into_owned(),
        status: if out.drop { 0 } else { out.status },
        fault: out.fault,
    });
    out.response
}

fn version_at_least(version: &str, major: u64, minor: u64) -> bool {
    let v = version.trim_start_matches('v');
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

/// Decode request data like pfRest's content handlers. Also returns lint notes about data pfRest ignores.
fn decode_request(rq: &Rq) -> (Result<Value, ApiError>, Vec<String>) {
    let mut notes = Vec::new();
    let ct = rq
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_read = rq.method == "GET" || rq.method == "DELETE";
    let json_body = |body: &[u8]| -> Result<Value, ApiError> {
        let text = String::from_utf8_lossy(body);
        if text.trim().is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_str(&text).map_err(|_| {
            ApiError::bad_request("JSON_CONTENT_HANDLER_COULD_NOT_DECODE_JSON", "Unable to decode JSON data.")
        })
    };
    let result = match ct.as_str() {
        "" if is_read => Ok(Value::Object(parse_form(&rq.query))),
        "" | "application/json" => {
            if !rq.query.is_empty() {
                notes.push(format!(
                    "query string `{}` is ignored: the request data comes from the JSON body{}",
                    rq.query,
                    if is_read {
                        " because Content-Type is application/json (drop that header on GET/DELETE)"
                    } else {
                        ""
                    }
                ));
            }
            json_body(&rq.body)
        }
        "application/x-www-form-urlencoded" => {
            if is_read {
                Ok(Value::Object(parse_form(&rq.query)))
            } else {
                Ok(Value::Object(parse_form(&String::from_utf8_lossy(&rq.body))))
            }
        }
        other => Err(ApiError::new(
            415,
            "CONTENT_HANDLER_DECODE_NOT_FOUND",
            format!("No content handler exists for the requested Content-Type '{other}'."),
        )),
    };
    (result, notes)
}

async fn process(inner: &Arc<Inner>, rq: &Rq) -> Out {
    let latency = inner.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let ep = schema::endpoint(&rq.path);
    let is_api = rq.path == "/api" || rq.path.starts_with("/api/");
    let (decoded, notes) = decode_request(rq);
    let has_dry_run = version_at_least(&inner.cfg.version, 2, 8);

    // Lint every request against the schema.
    let mut problems = Vec::new();
    match ep {
        Some(ep) => {
            problems.extend(notes);
            match &decoded {
                Ok(data) => {
                    let current = if rq.method == "PATCH" { current_object(inner, ep, data) } else { None };
                    let current = current.as_ref().and_then(Value::as_object);
                    problems.extend(lint_request(&LintInput {
                        endpoint: ep,
                        method: &rq.method,
                        data,
                        has_dry_run,
                        current,
                    }))
                }
                Err(e) => problems.push(format!("request data could not be decoded: {}", e.message)),
            }
        }
        None if is_api && schema::exists_in_pfrest(&rq.path) => {
            problems.push("endpoint exists in pfRest v2.10 but is not emulated".to_string());
        }
        None => {}
    }
    for p in problems {
        inner.record_violation(format!("{} {}: {p}", rq.method, rq.path));
    }

    // Faults that replace the whole exchange.
    let faults = &inner.faults;
    if faults.take_drop() {
        return Out::dropped("drop");
    }
    if faults.take_fail(&rq.method, &rq.path) {
        let code = faults.fail_status();
        let resp = match code {
            502 => nginx_page(502, "Bad Gateway"),
            504 => nginx_page(504, "Gateway Time-out"),
            500 => envelope(
                500,
                "ENDPOINT_RECEIVED_UNEXPECTED_ERROR",
                "Injected failure (emulator fault).",
                json!([]),
                None,
            ),
            503 => envelope(503, "ENDPOINT_UNAVAILABLE", "Injected failure (emulator fault).", json!([]), None),
            c => envelope(c, "EMULATOR_INJECTED_FAILURE", "Injected failure (emulator fault).", json!([]), None),
        };
        return Out::fault(resp, "fail");
    }
    if is_api && faults.html_404_everything() {
        return Out::fault(html_404(), "html_404_everything");
    }
    if is_api && faults.wrong_credentials() {
        let e = ApiError::new(401, "AUTH_AUTHENTICATION_FAILED", "Authentication failed.");
        return Out::fault(error_response(&e), "wrong_credentials");
    }
    let is_write = !matches!(rq.method.as_str(), "GET" | "HEAD" | "OPTIONS");
    if is_api && let Some((style, status)) = faults.take_echo(is_write) {
        return Out::fault(echo_response(rq, style, status), "echo");
    }
    if faults.take_garbage() {
        let resp = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json"), (header::SERVER, "nginx")],
            "<br />\n<b>Warning</b>:  Undefined array key \"data\" in <b>/usr/local/pkg/RESTAPI/Core/Endpoint.inc</b>\n{\"code\":2",
        )
            .into_response();
        return Out::fault(resp, "garbage");
    }

    let Some(ep) = ep else {
        if is_api && schema::exists_in_pfrest(&rq.path) {
            let e = ApiError::new(
                500,
                "ENDPOINT_RECEIVED_UNEXPECTED_ERROR",
                format!("The pfRest emulator does not implement {}.", rq.path),
            );
            return Out::ok(error_response(&e));
        }
        return Out::ok(html_404());
    };

    let mut fault = None;
    let result = call_endpoint(inner, rq, ep, decoded, has_dry_run, &mut fault).await;
    let response = match result {
        Ok((data, links)) => envelope(200, "SUCCESS", "", data, links),
        Err(e) => error_response(&e),
    };
    if let Some(f) = fault {
        return Out::fault(response, f);
    }
    if faults.take_drop_after_commit() {
        return Out::dropped("drop_after_commit");
    }
    Out::ok(response)
}

// ---------------------------------------------------------------------------------------------------------------
// The echo fault: a hostile upstream that quotes the request back, credentials included.

fn echo_text(rq: &Rq) -> String {
    let mut text = format!("{} {}", rq.method, rq.path);
    if !rq.query.is_empty() {
        text.push('?');
        text.push_str(&rq.query);
    }
    text.push_str("\r\n");
    for (name, value) in &rq.headers {
        text.push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(value.as_bytes())));
    }
    text.push_str("\r\n");
    text.push_str(&String::from_utf8_lossy(&rq.body));
    text
}

fn percent_encode_all(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn echo_response(rq: &Rq, style: EchoStyle, status: u16) -> Response {
    let text = echo_text(rq);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match style {
        EchoStyle::Envelope => envelope(status, "ECHOED_REQUEST", &text, json!([text.clone()]), None),
        EchoStyle::Html => {
            let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
            let body = format!(
                "<html><head><title>{status}</title></head><body><h1>{status}</h1><pre>{escaped}</pre></body></html>"
            );
            (code, [(header::CONTENT_TYPE, "text/html")], body).into_response()
        }
        EchoStyle::Text => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response(),
        EchoStyle::Data => {
            let data = if rq.path.ends_with("/restapi/version") {
                json!({"current_version": text})
            } else if rq.method == "GET" && rq.path.ends_with('s') {
                json!([text])
            } else {
                json!(text)
            };
            envelope(200, "SUCCESS", "", data, None)
        }
        EchoStyle::Redirect => {
            // The credentials as user info: the API key, or the Basic pair as sent.
            let user_info = rq
                .headers
                .get("x-api-key")
                .map(|k| format!("key:{}", percent_encode_all(&String::from_utf8_lossy(k.as_bytes()))))
                .or_else(|| auth_header(&rq.headers, "basic").map(|b| format!("basic:{}", percent_encode_all(b))))
                .unwrap_or_else(|| "nobody:nothing".into());
            let host = rq.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            let location = format!("http://{user_info}@{host}/login?request={}", percent_encode_all(&text));
            let code = if (300..400).contains(&status) { code } else { StatusCode::FOUND };
            (code, [(header::LOCATION, location)], String::new()).into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication.

struct Principal {
    user: String,
    read_only: bool,
}

fn auth_header<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

fn auth_failed() -> ApiError {
    ApiError::new(401, "AUTH_AUTHENTICATION_FAILED", "Authentication failed.")
}

fn issue_jwt(inner: &Inner, user: &str) -> String {
    let now = now();
    let header = b64_encode(br#"{"typ":"JWT","alg":"HS256"}"#, true);
    let payload = json!({"iss": "pfSense.home.arpa", "exp": now + inner.cfg.jwt_exp.as_secs() as i64, "nbf": now,
                         "data": user});
    let payload = b64_encode(payload.to_string().as_bytes(), true);
    let signing_input = format!("{header}.{payload}");
    let sig = b64_encode(&hmac_sha256(&inner.jwt_secret, signing_input.as_bytes()), true);
    format!("{signing_input}.{sig}")
}

fn verify_jwt(inner: &Inner, token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let expected = b64_encode(&hmac_sha256(&inner.jwt_secret, format!("{h}.{p}").as_bytes()), true);
    if expected != s {
        return None;
    }
    let payload: Value = serde_json::from_slice(&b64_decode(p)?).ok()?;
    let now = now();
    if payload["exp"].as_i64()? <= now || payload["nbf"].as_i64().unwrap_or(0) > now {
        return None;
    }
    let user = payload["data"].as_str()?.to_string();
    inner.cfg.users.iter().any(|(u, _)| *u == user).then_some(user)
}

/// pfRest `Auth::attempt_multi_auth()`: the first enabled method whose credentials are present is tried; no
/// fallback to other methods.
fn authenticate(inner: &Inner, ep: &EndpointSchema, headers: &HeaderMap, method: &str) -> Result<Principal, ApiError> {
    let methods: Vec<AuthMethod> = if ep.auth_methods.is_empty() {
        inner.cfg.auth_methods.clone()
    } else {
        ep.auth_methods
            .iter()
            .filter_map(|m| match m.as_str() {
                "BasicAuth" => Some(AuthMethod::BasicAuth),
                "KeyAuth" => Some(AuthMethod::KeyAuth),
                "JWTAuth" => Some(AuthMethod::JWTAuth),
                _ => None,
            })
            .collect()
    };
    let mut principal = None;
    for m in methods {
        match m {
            AuthMethod::BasicAuth => {
                if let Some(cred) = auth_header(headers, "Basic") {
                    let decoded =
                        b64_decode(cred).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                    let (u, p) = decoded.split_once(':').unwrap_or((&decoded, ""));
                    principal = Some(
                        inner
                            .cfg
                            .users
                            .iter()
                            .any(|(uu, pp)| uu == u && pp == p)
                            .then(|| Principal { user: u.to_string(), read_only: false }),
                    );
                    break;
                }
            }
            AuthMethod::KeyAuth => {
                if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
                    let key = key.trim();
                    principal = Some(if inner.cfg.api_keys.iter().any(|k| k == key) {
                        Some(Principal { user: "admin".into(), read_only: false })
                    } else if inner.cfg.read_only_api_keys.iter().any(|k| k == key) {
                        Some(Principal { user: "readonly".into(), read_only: true })
                    } else {
                        None
                    });
                    break;
                }
            }
            AuthMethod::JWTAuth => {
                if let Some(token) = auth_header(headers, "Bearer") {
                    principal = Some(verify_jwt(inner, token).map(|user| Principal { user, read_only: false }));
                    break;
                }
            }
        }
    }
    let principal = principal.flatten().ok_or_else(auth_failed)?;
    if principal.read_only && method != "GET" {
        return Err(ApiError::new(
            403,
            "AUTH_AUTHORIZATION_FAILED",
            "Authorization failed. You do not have sufficient privileges to access this resource.",
        ));
    }
    Ok(principal)
}

// ---------------------------------------------------------------------------------------------------------------
// Control parameters.

#[derive(Debug)]
struct Controls {
    async_: bool,
    reverse: bool,
    sort_by: Option<Vec<String>>,
    sort_desc: bool,
    append: bool,
    remove: bool,
    limit: usize,
    offset: usize,
    dry_run: bool,
    apply: bool,
    placement: Option<usize>,
    all: bool,
}

fn invalid_type(name: &str, ty: &str) -> ApiError {
    ApiError::bad_request(
        &format!("ENDPOINT_{}_FIELD_INVALID_TYPE", name.to_ascii_uppercase()),
        format!("Field `{name}` must be of type `{ty}`."),
    )
}

fn take_bool(data: &mut Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match data.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(invalid_type(name, "boolean")),
    }
}

fn take_int(data: &mut Map<String, Value>, name: &str) -> Result<Option<usize>, ApiError> {
    match data.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.as_i64().unwrap_or(0).max(0) as usize)),
        Some(_) => Err(invalid_type(name, "integer")),
    }
}

/// Validate and strip the common control parameters, in pfRest's order. `apply`, `placement` and a non-`true`
/// `all` stay in the data (pfRest reads them without removing them; on plural endpoints they become queries on
/// fields that do not exist, which match everything).
fn take_controls(
    model: &ModelSchema,
    rq: &Rq,
    data: &mut Map<String, Value>,
    many_endpoint: bool,
    has_dry_run: bool,
) -> Result<Controls, ApiError> {
    let async_ = take_bool(data, "async")?.unwrap_or(true);
    let reverse = take_bool(data, "reverse")?.unwrap_or(false);
    let sort_by = match data.remove("sort_by") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let items = match v {
                Value::Array(items) => items,
                other => vec![other],
            };
            let mut fields = Vec::new();
            for item in items {
                let Some(s) = item.as_str() else {
                    return Err(invalid_type("sort_by", "string"));
                };
                if s != "id" && model.field(s).is_none() {
                    return Err(ApiError::bad_request(
                        "ENDPOINT_SORT_BY_FIELD_NON_EXISTENT_FIELD",
                        "Field `sort_by` must be a valid field in the Model.",
                    ));
                }
                fields.push(s.to_string());
            }
            Some(fields)
        }
    };
    let sort_desc = match data.remove("sort_order") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "SORT_ASC" => false,
        Some(Value::String(s)) if s == "SORT_DESC" => true,
        Some(Value::String(_)) => {
            return Err(ApiError::bad_request(
                "ENDPOINT_SORT_ORDER_FIELD_UNKNOWN_SORT_ORDER",
                "Field `sort_order` must be one of: ['SORT_ASC', 'SORT_DESC'].",
            ));
        }
        Some(_) => return Err(invalid_type("sort_order", "string")),
    };
    data.remove("sort_flags");
    let append = take_bool(data, "append")?.unwrap_or(false);
    let remove = take_bool(data, "remove")?.unwrap_or(false);
    let limit = take_int(data, "limit")?.unwrap_or(0);
    let offset = take_int(data, "offset")?.unwrap_or(0);
    let mut dry_run = false;
    if has_dry_run {
        if data.contains_key("dry_run") && rq.method == "GET" {
            return Err(ApiError::bad_request(
                "ENDPOINT_DRY_RUN_NOT_SUPPORTED_ON_GET",
                "The `dry_run` parameter is not supported for GET requests.",
            ));
        }
        dry_run = take_bool(data, "dry_run")?.unwrap_or(false);
        let prefer = rq
            .headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("dry-run")));
        if prefer && rq.method != "GET" {
            dry_run = true;
        }
    }
    let apply = data.get("apply") == Some(&Value::Bool(true));
    let placement = match data.get("placement") {
        Some(Value::Number(n)) if n.is_u64() => Some(n.as_u64().unwrap_or(0) as usize),
        _ => None,
    };
    let all = many_endpoint && rq.method == "DELETE" && data.get("all") == Some(&Value::Bool(true));
    if all {
        data.remove("all");
    }
    if !many_endpoint {
        data.remove("apply");
        data.remove("placement");
    }
    Ok(Controls { async_, reverse, sort_by, sort_desc, append, remove, limit, offset, dry_run, apply, placement, all })
}

// ---------------------------------------------------------------------------------------------------------------
// Dispatch.

type Success = (Value, Option<Value>);

async fn call_endpoint(
    inner: &Arc<Inner>,
    rq: &Rq,
    ep: &EndpointSchema,
    decoded: Result<Value, ApiError>,
    has_dry_run: bool,
    fault: &mut Option<&'static str>,
) -> Result<Success, ApiError> {
    let model = model(&ep.model_class);
    let principal = if ep.requires_auth {
        authenticate(inner, ep, &rq.headers, &rq.method)?
    } else {
        Principal { user: "anonymous".into(), read_only: false }
    };
    if let Some(accept) = rq.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        let accept = accept.to_ascii_lowercase();
        if !accept.trim().is_empty() && !accept.contains("application/json") && !accept.contains("*/*") {
            return Err(ApiError::new(
                406,
                "CONTENT_HANDLER_ENCODE_NOT_FOUND",
                format!("No content handler exists for the requested Accept value '{accept}'."),
            ));
        }
    }
    if !ep.request_method_options.contains(&rq.method) {
        return Err(ApiError::new(
            405,
            "ENDPOINT_METHOD_NOT_ALLOWED",
            format!("Resource at {} does not support the requested HTTP method '{}'", ep.url, rq.method),
        ));
    }
    if let Some(e) = crate::vpn::missing_package(inner, &model.packages) {
        return Err(e);
    }
    let data = decoded?;
    if rq.method == "PUT" && ep.many {
        let Value::Array(items) = data else {
            return Err(ApiError::bad_request(
                "ENDPOINT_REQUEST_DATA_MUST_BE_INDEXED_ARRAY",
                "PUT requests to 'many' endpoints must contain an indexed array of objects to replace.",
            ));
        };
        let mut empty = Map::new();
        let controls = take_controls(model, rq, &mut empty, true, has_dry_run)?;
        check_config_lock(inner, ep, &rq.method, controls.dry_run, fault)?;
        let coll = Coll::for_endpoint(ep).ok_or_else(|| not_emulated(inner, ep, &rq.method))?;
        return replace_all(inner, coll, items, &controls, &client_label(&principal)).await.map(|d| (d, None));
    }
    let Value::Object(mut data) = data else {
        return Err(ApiError::bad_request(
            "MODEL_NON_ARRAY_REPRESENTATION_DATA",
            "Representation data must be of type `array`.",
        ));
    };
    let controls = take_controls(model, rq, &mut data, ep.many, has_dry_run)?;
    check_config_lock(inner, ep, &rq.method, controls.dry_run, fault)?;
    let client = client_label(&principal);
    let links = |c: &Controls| -> Option<Value> {
        inner.cfg.hateoas.then(|| {
            let prev = c.offset.saturating_sub(c.limit);
            let next = c.offset + c.limit;
            json!({"prev": {"href": format!("{}?offset={prev}&limit={}", ep.url, c.limit)},
                   "next": {"href": format!("{}?offset={next}&limit={}", ep.url, c.limit)}})
        })
    };

    let url = ep.url.as_str();
    let method = rq.method.as_str();
    if let Some(coll) = Coll::for_endpoint(ep) {
        return match (ep.many, method) {
            (false, "GET") => get_one(inner, coll, &data).map(|d| (d, None)),
            (false, "POST") => create(inner, coll, data, &controls, &client).await.map(|d| (d, None)),
            (false, "PATCH") => update(inner, coll, data, &controls, &client).await.map(|d| (d, None)),
            (false, "DELETE") => delete_one(inner, coll, data, &controls).await.map(|d| (d, None)),
            (true, "GET") => list_collection(inner, coll, &data, &controls).map(|d| (d, links(&controls))),
            (true, "DELETE") => delete_many(inner, coll, data, &controls).await.map(|d| (d, links(&controls))),
            _ => Err(not_emulated(inner, ep, method)),
        };
    }
    match (url, method) {
        ("/api/v2/auth/jwt", "POST") => Ok((json!({"token": issue_jwt(inner, &principal.user)}), None)),
        ("/api/v2/system/restapi/version", "GET") => {
            singleton(&controls, status::restapi_version(&inner.cfg.version)).map(|d| (d, None))
        }
        ("/api/v2/firewall/apply", "GET") => singleton(&controls, apply_status(inner)).map(|d| (d, None)),
        ("/api/v2/system/packages", "GET") => static_list("Package", crate::vpn::packages(inner), &data, &controls),
        ("/api/v2/system/certificate/generate", "POST") => {
            crate::vpn::generate_certificate(inner, &data, controls.dry_run, &client).await.map(|d| (d, None))
        }
        ("/api/v2/vpn/openvpn/client_export", "POST") => {
            crate::vpn::client_export(inner, &data, &client).map(|d| (d, None))
        }
        ("/api/v2/vpn/wireguard/apply", "GET") => Ok((crate::vpn::wireguard_apply(inner, false), None)),
        ("/api/v2/vpn/wireguard/apply", "POST") => Ok((crate::vpn::wireguard_apply(inner, !controls.dry_run), None)),
        ("/api/v2/firewall/apply", "POST") => {
            if !controls.dry_run {
                if controls.async_ {
                    inner.spawn_apply();
                } else {
                    inner.apply_now().await;
                }
            }
            Ok((apply_status(inner), None))
        }
        ("/api/v2/status/system", "GET") => {
            singleton(&controls, status::system_status(now() - inner.started_at + 3 * 86_400 + 4_000))
                .map(|d| (d, None))
        }
        ("/api/v2/status/interfaces", "GET") => {
            static_list("InterfaceStats", status::interface_stats(), &data, &controls)
        }
        ("/api/v2/status/gateways", "GET") => static_list("RoutingGatewayStatus", status::gateways(), &data, &controls),
        ("/api/v2/status/openvpn/servers", "GET") => {
            static_list("OpenVPNServerStatus", status::openvpn_servers(), &data, &controls)
        }
        ("/api/v2/status/openvpn/clients", "GET") => {
            static_list("OpenVPNClientStatus", status::openvpn_clients(), &data, &controls)
        }
        ("/api/v2/status/ipsec/sas", "GET") => static_list("IPsecSAStatus", status::ipsec_sas(), &data, &controls),
        ("/api/v2/status/wireguard/tunnels", "GET") | ("/api/v2/status/wireguard/peers", "GET") => {
            if !inner.cfg.wireguard_installed {
                return Err(ApiError::not_found(
                    "MODEL_MISSING_REQUIRED_PACKAGE",
                    "The requested action requires the 'pfSense-pkg-WireGuard' package but it is not installed.",
                ));
            }
            if url.ends_with("tunnels") {
                static_list("WireGuardTunnelStatus", status::wireguard_tunnels(), &data, &controls)
            } else {
                static_list(
                    "WireGuardPeerStatus",
                    crate::vpn::wireguard_peer_status(&inner.config_snapshot().vpn),
                    &data,
                    &controls,
                )
            }
        }
        ("/api/v2/interfaces", "GET") => {
            static_list("NetworkInterface", status::network_interfaces(), &data, &controls)
        }
        ("/api/v2/status/logs/firewall", "GET") => firewall_log(inner, &data, &controls).map(|d| (d, links(&controls))),
        ("/api/v2/diagnostics/command_prompt", "POST") => {
            let command = data.get("command").and_then(Value::as_str).unwrap_or_default();
            if command.is_empty() {
                return Err(ApiError::bad_request("FIELD_IS_REQUIRED", "Field `command` is required."));
            }
            let ran = inner.run_command(command);
            Ok((json!({"output": ran.output, "result_code": ran.result_code}), None))
        }
        ("/api/v2/diagnostics/arp_table", "GET") => {
            static_list("ARPTable", inner.device_table("arp").unwrap_or_else(status::arp_table), &data, &controls)
        }
        ("/api/v2/firewall/states", "GET") => static_list("FirewallState", status::firewall_states(), &data, &controls),
        ("/api/v2/status/dhcp_server/leases", "GET") => static_list(
            "DHCPServerLease",
            inner.device_table("leases").unwrap_or_else(status::dhcp_leases),
            &data,
            &controls,
        ),
        ("/api/v2/diagnostics/tables", "GET") => static_list("Table", table_list(inner), &data, &controls),
        ("/api/v2/diagnostics/table", "GET") => {
            let name = table_id(&data)?;
            let entries = inner.tables().remove(&name).ok_or_else(|| table_not_found(&name))?;
            Ok((table_repr(&name, entries), None))
        }
        ("/api/v2/diagnostics/table", "DELETE") => {
            let name = table_id(&data)?;
            let tables = inner.tables();
            let entries = tables.get(&name).cloned().ok_or_else(|| table_not_found(&name))?;
            if !controls.dry_run {
                inner.flush_table(&name);
            }
            // pfRest answers with the object as it was read before its `_delete()` flushed it.
            Ok((table_repr(&name, entries), None))
        }
        _ => Err(not_emulated(inner, ep, method)),
    }
}

/// pfRest's `Table` objects: the table name is the (string) id, `entries` what `pfctl -T show` lists.
fn table_repr(name: &str, entries: Vec<String>) -> Value {
    json!({"id": name, "name": name, "entries": entries})
}

fn table_list(inner: &Inner) -> Vec<Value> {
    inner.tables().into_iter().map(|(name, entries)| table_repr(&name, entries)).collect()
}

/// The `id` of a singular table request: a table name (pfRest's `Table` has string ids).
fn table_id(data: &Map<String, Value>) -> Result<String, ApiError> {
    match data.get("id") {
        None | Some(Value::Null) => Err(ApiError::bad_request("MODEL_REQUIRES_ID", "Field 'id' is required.")),
        Some(Value::String(s)) => Ok(s.clone()),
        // The form decoder turns an all-digit value into an integer; pf table names are never numeric.
        Some(other) => Ok(other.to_string()),
    }
}

fn table_not_found(name: &str) -> ApiError {
    ApiError::not_found("MODEL_OBJECT_NOT_FOUND", format!("Object with ID '{name}' does not exist."))
}

/// The stored object a PATCH targets (for linting conditions against it).
fn current_object(inner: &Inner, ep: &EndpointSchema, data: &Value) -> Option<Value> {
    let coll = Coll::for_endpoint(ep)?;
    let cfg = inner.config_snapshot();
    let items = coll.items(&cfg);
    let id = resolve_id(data.get("id"), items.len()).ok()?;
    Some(to_repr(coll.model(), &items[id], Some(json!(id)), inner.repr()))
}

fn not_emulated(inner: &Inner, ep: &EndpointSchema, method: &str) -> ApiError {
    inner.record_violation(format!("{method} {}: this method of the endpoint is not emulated", ep.url));
    ApiError::new(
        500,
        "ENDPOINT_RECEIVED_UNEXPECTED_ERROR",
        format!("The pfRest emulator does not implement {method} {}.", ep.url),
    )
}

fn client_label(p: &Principal) -> String {
    format!("{}@127.0.0.1 (API)", p.user)
}

/// Writes to config-backed endpoints can hit the config write lock (`MODEL_WRITE_CONFIG_LOCKED`).
fn check_config_lock(
    inner: &Inner,
    ep: &EndpointSchema,
    method: &str,
    dry_run: bool,
    fault: &mut Option<&'static str>,
) -> Result<(), ApiError> {
    let is_write = matches!(method, "POST" | "PATCH" | "PUT" | "DELETE");
    if is_write && !dry_run && Coll::for_endpoint(ep).is_some() && inner.faults.take_config_locked() {
        *fault = Some("config_locked");
        return Err(ApiError::new(
            503,
            "MODEL_WRITE_CONFIG_LOCKED",
            "Failed to write to the configuration file after multiple attempts.",
        ));
    }
    Ok(())
}

fn singleton(c: &Controls, data: Value) -> Result<Value, ApiError> {
    if c.limit > 0 || c.offset > 0 {
        return Err(ApiError::bad_request(
            "MODEL_DOES_NOT_SUPPORT_PAGINATION",
            "Model does not support pagination. Please remove the `limit` and/or. `offset`parameters and try again.",
        ));
    }
    Ok(data)
}

fn apply_status(inner: &Inner) -> Value {
    let pending = inner.pending_subsystems();
    json!({"applied": pending.is_empty(), "pending_subsystems": pending})
}

fn list_options(c: &Controls) -> ListOptions {
    ListOptions {
        limit: c.limit,
        offset: c.offset,
        reverse: c.reverse,
        sort_by: c.sort_by.clone(),
        sort_desc: c.sort_desc,
    }
}

fn static_list(
    model_name: &str,
    items: Vec<Value>,
    query: &Map<String, Value>,
    c: &Controls,
) -> Result<Success, ApiError> {
    let m = model(model_name);
    let items: Vec<Value> = items
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            if let Some(o) = v.as_object_mut() {
                o.entry("id").or_insert(json!(i));
            }
            v
        })
        .collect();
    let terms = parse_terms(m, query)?;
    Ok((Value::Array(list(items, &terms, &list_options(c))?), None))
}

/// `/api/v2/status/logs/firewall`: since v2.8.0 limit/offset/reverse are pushed into the log reader when there is
/// no query: `limit=N` = newest N lines in chronological order, `offset` skips the newest lines, `reverse=true`
/// pages from the oldest line (each page newest-first). Before v2.8.0 (and with a query) the whole log is read and
/// paginated from the oldest line.
fn firewall_log(inner: &Inner, query: &Map<String, Value>, c: &Controls) -> Result<Value, ApiError> {
    inner.grow_log(inner.faults.log_growth_per_read());
    let lines = inner.log_lines();
    let m = model("FirewallLog");
    let terms = parse_terms(m, query)?;
    let pushed_down = version_at_least(&inner.cfg.version, 2, 8)
        && terms.is_empty()
        && c.sort_by.is_none()
        && (c.limit > 0 || c.offset > 0 || c.reverse);
    if pushed_down {
        let n = lines.len();
        let page: Vec<(usize, &String)> = if c.reverse {
            let start = c.offset.min(n);
            let end = if c.limit == 0 { n } else { (start + c.limit).min(n) };
            (start..end).rev().map(|i| (i, &lines[i])).collect()
        } else {
            let end = n.saturating_sub(c.offset);
            let start = if c.limit == 0 { 0 } else { end.saturating_sub(c.limit) };
            (start..end).map(|i| (i, &lines[i])).collect()
        };
        return Ok(Value::Array(page.into_iter().map(|(id, text)| json!({"id": id, "text": text})).collect()));
    }
    let items: Vec<Value> = lines.iter().enumerate().map(|(i, t)| json!({"id": i, "text": t})).collect();
    Ok(Value::Array(list(items, &terms, &list_options(c))?))
}

// ---------------------------------------------------------------------------------------------------------------
// Config-backed collections (rules, aliases, limiters).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coll {
    Rules,
    Aliases,
    Limiters,
    Users,
    Certificates,
    Authorities,
    OpenvpnServers,
    Csos,
    WireguardTunnels,
    WireguardPeers,
}

impl Coll {
    const ALL: [(Coll, &'static str); 10] = [
        (Coll::Rules, "FirewallRule"),
        (Coll::Aliases, "FirewallAlias"),
        (Coll::Limiters, "TrafficShaperLimiter"),
        (Coll::Users, "User"),
        (Coll::Certificates, "Certificate"),
        (Coll::Authorities, "CertificateAuthority"),
        (Coll::OpenvpnServers, "OpenVPNServer"),
        (Coll::Csos, "OpenVPNClientSpecificOverride"),
        (Coll::WireguardTunnels, "WireGuardTunnel"),
        (Coll::WireguardPeers, "WireGuardPeer"),
    ];

    fn for_endpoint(ep: &EndpointSchema) -> Option<Coll> {
        Coll::ALL.iter().find(|(_, m)| *m == ep.model_class).map(|(c, _)| *c)
    }
    fn model_name(self) -> &'static str {
        Coll::ALL.iter().find(|(c, _)| *c == self).map_or("", |(_, m)| *m)
    }
    fn model(self) -> &'static ModelSchema {
        model(self.model_name())
    }
    fn items(self, c: &Config) -> &Vec<Obj> {
        match self {
            Coll::Rules => &c.rules,
            Coll::Aliases => &c.aliases,
            Coll::Limiters => &c.limiters,
            Coll::Users => &c.vpn.users,
            Coll::Certificates => &c.vpn.certificates,
            Coll::Authorities => &c.vpn.authorities,
            Coll::OpenvpnServers => &c.vpn.openvpn_servers,
            Coll::Csos => &c.vpn.csos,
            Coll::WireguardTunnels => &c.vpn.wireguard_tunnels,
            Coll::WireguardPeers => &c.vpn.wireguard_peers,
        }
    }
    fn items_mut(self, c: &mut Config) -> &mut Vec<Obj> {
        match self {
            Coll::Rules => &mut c.rules,
            Coll::Aliases => &mut c.aliases,
            Coll::Limiters => &mut c.limiters,
            Coll::Users => &mut c.vpn.users,
            Coll::Certificates => &mut c.vpn.certificates,
            Coll::Authorities => &mut c.vpn.authorities,
            Coll::OpenvpnServers => &mut c.vpn.openvpn_servers,
            Coll::Csos => &mut c.vpn.csos,
            Coll::WireguardTunnels => &mut c.vpn.wireguard_tunnels,
            Coll::WireguardPeers => &mut c.vpn.wireguard_peers,
        }
    }
    fn subsystem(self) -> Option<&'static str> {
        match self {
            Coll::Aliases => Some("aliases"),
            Coll::Limiters => Some("shaper"),
            Coll::WireguardTunnels | Coll::WireguardPeers => Some("wireguard"),
            _ => None,
        }
    }
}

/// pfSense's `dnpipe_find_nextnumber()`: the lowest pipe number no limiter has (pfRest stamps it at creation).
fn next_pipe_number(limiters: &[Obj]) -> i64 {
    let used: Vec<i64> = limiters.iter().filter_map(|l| l.get("number").and_then(Value::as_i64)).collect();
    (1..).find(|n| !used.contains(n)).unwrap_or(1)
}

fn repr_list(inner: &Inner, coll: Coll, cfg: &Config) -> Vec<Value> {
    let m = coll.model();
    coll.items(cfg).iter().enumerate().map(|(i, o)| to_repr(m, o, Some(json!(i)), inner.repr())).collect()
}

/// Resolve the `id` of a singular request (pfRest: 400 `MODEL_REQUIRES_ID`, 404 `MODEL_OBJECT_NOT_FOUND`).
fn resolve_id(id: Option<&Value>, len: usize) -> Result<usize, ApiError> {
    let Some(id) = id.filter(|v| !v.is_null()) else {
        return Err(ApiError::bad_request("MODEL_REQUIRES_ID", "Field 'id' is required."));
    };
    let n = match id {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    let shown = id.as_str().map(str::to_string).unwrap_or_else(|| id.to_string());
    match n {
        Some(n) if (n as usize) < len => Ok(n as usize),
        _ => Err(ApiError::not_found("MODEL_OBJECT_NOT_FOUND", format!("Object with ID '{shown}' does not exist."))),
    }
}

fn get_one(inner: &Inner, coll: Coll, data: &Map<String, Value>) -> Result<Value, ApiError> {
    let cfg = inner.config_snapshot();
    let items = coll.items(&cfg);
    let id = resolve_id(data.get("id"), items.len())?;
    Ok(to_repr(coll.model(), &items[id], Some(json!(id)), inner.repr()))
}

fn list_collection(inner: &Inner, coll: Coll, query: &Map<String, Value>, c: &Controls) -> Result<Value, ApiError> {
    let terms = parse_terms(coll.model(), query)?;
    let cfg = inner.config_snapshot();
    Ok(Value::Array(list(repr_list(inner, coll, &cfg), &terms, &list_options(c))?))
}

/// pfRest `Model::set_placement()`: move `items[id]` to `placement` (capped at the count). A placement at or past
/// the end fails with 500 `MODEL_FAILED_TO_SET_PLACEMENT`, like PHP's array_splice/lookup does in pfRest.
fn place(items: &mut Vec<Obj>, id: usize, placement: usize) -> Result<usize, ApiError> {
    let placement = placement.min(items.len());
    if placement >= items.len() {
        return Err(ApiError::new(500, "MODEL_FAILED_TO_SET_PLACEMENT", "Failed to set placement for Model object."));
    }
    let obj = items.remove(id);
    items.insert(placement, obj);
    Ok(placement)
}

/// `sort_by` on a write re-sorts the stored objects (pfRest `Model::sort()`); returns the object's new id.
fn sort_stored(inner: &Inner, coll: Coll, items: &mut Vec<Obj>, id: usize, fields: &[String], desc: bool) -> usize {
    let m = coll.model();
    let mut keyed: Vec<(Value, usize)> =
        items.iter().enumerate().map(|(i, o)| (to_repr(m, o, Some(json!(i)), inner.repr()), i)).collect();
    keyed.sort_by(|(a, _), (b, _)| crate::query::cmp_by(a, b, fields, desc));
    let order: Vec<usize> = keyed.iter().map(|(_, i)| *i).collect();
    let old = std::mem::take(items);
    let mut slots: Vec<Option<Obj>> = old.into_iter().map(Some).collect();
    for i in &order {
        items.push(slots[*i].take().expect("each index once"));
    }
    order.iter().position(|i| *i == id).unwrap_or(id)
}

async fn after_write(inner: &Arc<Inner>, coll: Coll, c: &Controls) {
    if c.dry_run {
        return;
    }
    if let Some(sub) = coll.subsystem() {
        inner.mark_dirty(sub);
    }
    if c.apply {
        if c.async_ {
            inner.spawn_apply();
            if let Some(sub) = coll.subsystem() {
                // pfRest clears the subsystem's dirty flag right after spawning the (async) apply.
                inner.clear_dirty(sub);
            }
        } else {
            inner.apply_now().await;
        }
    }
}

/// The other objects a write is validated against.
struct Around<'a> {
    peers: &'a [Obj],
    aliases: &'a [Obj],
    limiters: &'a [Obj],
    vpn: &'a crate::vpn::VpnObjects,
}

fn validate_ctx<'a>(
    inner: &Inner,
    around: &Around<'a>,
    self_id: Option<usize>,
    initial: Option<&'a Obj>,
    client: &'a str,
    keep_read_only: bool,
) -> ValidateCtx<'a> {
    ValidateCtx {
        peers: around.peers,
        self_id,
        initial,
        aliases: around.aliases,
        limiters: around.limiters,
        vpn: Some(around.vpn),
        repr: inner.repr(),
        client,
        keep_read_only,
        now: now(),
    }
}

async fn create(
    inner: &Arc<Inner>,
    coll: Coll,
    mut data: Map<String, Value>,
    c: &Controls,
    client: &str,
) -> Result<Value, ApiError> {
    data.remove("id");
    let m = coll.model();
    // pfRest stamps the tracker (unix time) when the model object is constructed, before validation.
    let tracker = (coll == Coll::Rules).then(|| inner.next_tracker());
    let out = inner
        .write_config(c.dry_run, |cfg| {
            let peers = coll.items(cfg).clone();
            let aliases = cfg.aliases.clone();
            let limiters = cfg.limiters.clone();
            let vpn = cfg.vpn.clone();
            let around = Around { peers: &peers, aliases: &aliases, limiters: &limiters, vpn: &vpn };
            let ctx = validate_ctx(inner, &around, None, None, client, false);
            let mut obj = validate(m, &data, &ctx)?;
            crate::vpn::stamp_created(coll.model_name(), &mut obj, &peers);
            if let Some(t) = tracker {
                obj.insert("tracker".into(), json!(t));
            }
            if coll == Coll::Limiters {
                obj.insert("number".into(), json!(next_pipe_number(&peers)));
            }
            let items = coll.items_mut(cfg);
            items.push(obj);
            let mut id = items.len() - 1;
            if c.dry_run {
                return Ok(to_repr(m, &items[id], Some(json!(id)), inner.repr()));
            }
            if let Some(p) = c.placement {
                id = place(items, id, p)?;
            }
            if let Some(fields) = &c.sort_by {
                id = sort_stored(inner, coll, items, id, fields, c.sort_desc);
            }
            Ok(to_repr(m, &items[id], Some(json!(id)), inner.repr()))
        })
        .await?;
    after_write(inner, coll, c).await;
    Ok(out)
}

async fn update(
    inner: &Arc<Inner>,
    coll: Coll,
    mut data: Map<String, Value>,
    c: &Controls,
    client: &str,
) -> Result<Value, ApiError> {
    let id_value = data.remove("id");
    let m = coll.model();
    let out = inner
        .write_config(c.dry_run, |cfg| {
            let peers = coll.items(cfg).clone();
            let aliases = cfg.aliases.clone();
            let limiters = cfg.limiters.clone();
            let vpn = cfg.vpn.clone();
            let id = resolve_id(id_value.as_ref(), peers.len())?;
            let initial = peers[id].clone();
            // append / remove work on the represented array values (what the client sees).
            if c.append || c.remove {
                let initial_repr = to_repr(m, &initial, None, inner.repr());
                for field in m.fields.iter().filter(|f| f.many) {
                    let Some(Value::Array(new)) = data.get(&field.name).cloned() else { continue };
                    let current = initial_repr.get(&field.name).and_then(Value::as_array).cloned().unwrap_or_default();
                    if new == current {
                        continue;
                    }
                    let merged: Vec<Value> = if c.append {
                        current.into_iter().chain(new).collect()
                    } else {
                        current.into_iter().filter(|v| !new.contains(v)).collect()
                    };
                    data.insert(field.name.clone(), Value::Array(merged));
                }
            }
            let around = Around { peers: &peers, aliases: &aliases, limiters: &limiters, vpn: &vpn };
            let ctx = validate_ctx(inner, &around, Some(id), Some(&initial), client, false);
            let obj = validate(m, &data, &ctx)?;
            let items = coll.items_mut(cfg);
            items[id] = obj;
            let mut id = id;
            if !c.dry_run {
                if let Some(p) = c.placement {
                    id = place(items, id, p)?;
                }
                if let Some(fields) = &c.sort_by {
                    id = sort_stored(inner, coll, items, id, fields, c.sort_desc);
                }
            }
            Ok(to_repr(m, &items[id], Some(json!(id)), inner.repr()))
        })
        .await?;
    after_write(inner, coll, c).await;
    Ok(out)
}

/// 409 when an alias is still used by a rule (only with `refuse_referenced_alias_delete`; pfRest v2.10 has no
/// such check for aliases).
fn check_alias_references(inner: &Inner, cfg: &Config, alias: &Obj) -> Result<(), ApiError> {
    if !inner.cfg.refuse_referenced_alias_delete {
        return Ok(());
    }
    let name = alias.get("name").and_then(Value::as_str).unwrap_or_default();
    let rm = model("FirewallRule");
    let refs: Vec<Value> = cfg
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| rule_alias_refs(r).iter().any(|(_, n)| n == name))
        .map(|(i, r)| to_repr(rm, r, Some(json!(i)), inner.repr()))
        .collect();
    if refs.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::new(
        409,
        "MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED",
        "Object cannot be deleted because it is referenced by another existing object.",
    );
    e.data = Value::Array(refs);
    Err(e)
}

/// 409 when a rule's `dnpipe` / `pdnpipe` still names the limiter (with `refuse_referenced_limiter_delete`), naming
/// the rules by tracker so the caller knows what to unhook first.
fn check_limiter_references(inner: &Inner, cfg: &Config, limiter: &Obj) -> Result<(), ApiError> {
    if !inner.cfg.refuse_referenced_limiter_delete {
        return Ok(());
    }
    let name = limiter.get("name").and_then(Value::as_str).unwrap_or_default();
    let rm = model("FirewallRule");
    let users: Vec<(usize, &Obj)> =
        cfg.rules.iter().enumerate().filter(|(_, r)| rule_limiter_refs(r).iter().any(|n| n == name)).collect();
    if users.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = users
        .iter()
        .map(|(i, r)| format!("rule {i} (tracker {})", r.get("tracker").cloned().unwrap_or(Value::Null)))
        .collect();
    let mut e = ApiError::new(
        409,
        "MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED",
        format!(
            "Object cannot be deleted because it is referenced by another existing object: limiter `{name}` is the \
             dnpipe or pdnpipe of {}.",
            named.join(", ")
        ),
    );
    e.data = Value::Array(users.iter().map(|(i, r)| to_repr(rm, r, Some(json!(i)), inner.repr())).collect());
    Err(e)
}

fn many_minimum_reached(m: &ModelSchema, count: usize) -> Option<ApiError> {
    (m.many_minimum > 0 && count as i64 <= m.many_minimum).then(|| {
        ApiError::new(
            403,
            "MODEL_MANY_MINIMUM_REACHED",
            format!(
                "Object deletion denied. Deleting this object would result in the number of existing objects falling below the minimum number allowed for this Model, {}.",
                m.many_minimum
            ),
        )
    })
}

async fn delete_one(inner: &Arc<Inner>, coll: Coll, data: Map<String, Value>, c: &Controls) -> Result<Value, ApiError> {
    let m = coll.model();
    let out = inner
        .write_config(c.dry_run, |cfg| {
            let len = coll.items(cfg).len();
            let id = resolve_id(data.get("id"), len)?;
            if coll == Coll::Aliases {
                check_alias_references(inner, cfg, &cfg.aliases[id])?;
            }
            if coll == Coll::Limiters {
                check_limiter_references(inner, cfg, &cfg.limiters[id])?;
            }
            crate::vpn::check_deletable(coll.model_name(), &cfg.vpn, &coll.items(cfg)[id])?;
            if let Some(e) = many_minimum_reached(m, len) {
                return Err(e);
            }
            let removed = coll.items_mut(cfg).remove(id);
            Ok(to_repr(m, &removed, Some(json!(id)), inner.repr()))
        })
        .await?;
    after_write(inner, coll, c).await;
    Ok(out)
}

async fn replace_all(
    inner: &Arc<Inner>,
    coll: Coll,
    items: Vec<Value>,
    c: &Controls,
    client: &str,
) -> Result<Value, ApiError> {
    let m = coll.model();
    if (items.len() as i64) < m.many_minimum {
        return Err(ApiError::bad_request(
            "MODEL_REPLACE_ALL_MINIMUM_NOT_MET",
            format!("A minimum of {} new objects is required to replace all existing objects.", m.many_minimum),
        ));
    }
    if (items.len() as i64) > m.many_maximum {
        return Err(ApiError::bad_request(
            "MODEL_REPLACE_ALL_MAXIMUM_EXCEEDED",
            format!(
                "The request to replace all existing objects exceeds the maximum limit of {} new objects.",
                m.many_maximum
            ),
        ));
    }
    let out = inner
        .write_config(c.dry_run, |cfg| {
            let mut new_items: Vec<Obj> = Vec::with_capacity(items.len());
            for item in &items {
                let Some(obj) = item.as_object() else {
                    return Err(ApiError::bad_request(
                        "MODEL_NON_ARRAY_REPRESENTATION_DATA",
                        "Representation data must be of type `array`.",
                    ));
                };
                let mut obj = obj.clone();
                obj.remove("id");
                let aliases = if coll == Coll::Aliases { new_items.clone() } else { cfg.aliases.clone() };
                let limiters = if coll == Coll::Limiters { new_items.clone() } else { cfg.limiters.clone() };
                let around = Around { peers: &new_items, aliases: &aliases, limiters: &limiters, vpn: &cfg.vpn };
                let ctx = validate_ctx(inner, &around, Some(new_items.len()), None, client, true);
                let mut validated = validate(m, &obj, &ctx)?;
                if coll == Coll::Limiters && !validated.get("number").is_some_and(|n| n.is_i64()) {
                    validated.insert("number".into(), json!(next_pipe_number(&new_items)));
                }
                if coll == Coll::Rules {
                    // A tracker sent back by the client is kept (pfRest writes read-only values it is given);
                    // otherwise the rule gets a fresh one, as on creation.
                    if !validated.get("tracker").is_some_and(|t| t.is_i64()) {
                        validated.insert("tracker".into(), json!(inner.next_tracker()));
                    }
                }
                new_items.push(validated);
            }
            *coll.items_mut(cfg) = new_items;
            Ok(repr_list(inner, coll, cfg))
        })
        .await?;
    if !c.dry_run
        && let Some(sub) = coll.subsystem()
    {
        inner.mark_dirty(sub);
    }
    Ok(Value::Array(out))
}

/// Plural DELETE: every match is deleted one by one (highest id first), each a separate config write in pfRest, so
/// a failure part-way (e.g. the last firewall rule, `many_minimum`) keeps the deletions before it. `dry_run` is NOT
/// honoured (pfRest v2.10's ModelSet::delete() resets it).
async fn delete_many(
    inner: &Arc<Inner>,
    coll: Coll,
    query: Map<String, Value>,
    c: &Controls,
) -> Result<Value, ApiError> {
    let m = coll.model();
    if !c.all && query.is_empty() {
        return Err(ApiError::bad_request(
            "MODEL_DELETE_MANY_REQUIRES_QUERY_PARAMS",
            "At least one query parameter is required to perform mass deletion.",
        ));
    }
    let terms = parse_terms(m, &query)?;
    let opts = if c.all {
        ListOptions::default()
    } else {
        ListOptions { limit: c.limit, offset: c.offset, ..Default::default() }
    };
    let (deleted, error) = inner
        .write_config(false, |cfg| {
            let matched = list(repr_list(inner, coll, cfg), &terms, &opts)?;
            let mut ids: Vec<usize> = matched.iter().filter_map(|v| v["id"].as_u64().map(|n| n as usize)).collect();
            ids.sort_unstable();
            let mut done = Vec::new();
            let mut error = None;
            for id in ids.iter().rev() {
                if coll == Coll::Aliases
                    && let Err(e) = check_alias_references(inner, cfg, &cfg.aliases[*id])
                {
                    error = Some(e);
                    break;
                }
                if let Some(e) = many_minimum_reached(m, coll.items(cfg).len()) {
                    error = Some(e);
                    break;
                }
                coll.items_mut(cfg).remove(*id);
                done.push(*id);
            }
            let deleted: Vec<Value> = matched
                .into_iter()
                .filter(|v| v["id"].as_u64().is_some_and(|n| done.contains(&(n as usize))))
                .collect();
            Ok((deleted, error))
        })
        .await?;
    if !deleted.is_empty()
        && let Some(sub) = coll.subsystem()
    {
        inner.mark_dirty(sub);
    }
    match error {
        Some(e) => Err(e),
        None => Ok(Value::Array(deleted)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Control API under /__emulator (no auth, no faults, not logged).

async fn control(inner: &Arc<Inner>, method: &str, path: &str, body: &[u8]) -> Response {
    let path = path.trim_end_matches('/');
    let ok = |v: Value| json_response(200, &v);
    match (method, path) {
        ("GET", "/__emulator/state") => ok(serde_json::to_value(inner.state_view()).unwrap_or_default()),
        ("GET", "/__emulator/requests") => ok(serde_json::to_value(inner.requests()).unwrap_or_default()),
        ("GET", "/__emulator/requests/counts") => ok(serde_json::to_value(inner.request_counts()).unwrap_or_default()),
        ("DELETE", "/__emulator/requests") => {
            inner.clear_requests();
            ok(json!([]))
        }
        ("GET", "/__emulator/violations") => ok(serde_json::to_value(inner.violations()).unwrap_or_default()),
        ("DELETE", "/__emulator/violations") => {
            inner.clear_violations();
            ok(json!([]))
        }
        ("GET", "/__emulator/faults") => ok(serde_json::to_value(inner.faults.snapshot()).unwrap_or_default()),
        ("POST", "/__emulator/faults") => match serde_json::from_slice::<FaultsPatch>(body) {
            Ok(patch) => {
                inner.faults.apply_patch(&patch);
                ok(serde_json::to_value(inner.faults.snapshot()).unwrap_or_default())
            }
            Err(e) => json_response(400, &json!({"error": format!("invalid faults patch: {e}")})),
        },
        ("POST", "/__emulator/firewall_log") => {
            let lines = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("lines").and_then(Value::as_array).cloned())
                .map(|a| a.iter().filter_map(|l| l.as_str().map(str::to_string)).collect::<Vec<_>>());
            match lines {
                Some(lines) => {
                    inner.push_log_lines(lines);
                    ok(json!({"lines": inner.log_lines().len()}))
                }
                None => json_response(400, &json!({"error": "body must be {\"lines\": [\"...\"]}"})),
            }
        }
        ("GET", "/__emulator/tables") => ok(serde_json::to_value(inner.tables()).unwrap_or_default()),
        ("POST", "/__emulator/tables") => {
            let body = serde_json::from_slice::<Value>(body).ok();
            let name = body.as_ref().and_then(|v| v.get("name")).and_then(Value::as_str).map(str::to_string);
            let entries = body
                .as_ref()
                .and_then(|v| v.get("entries"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_string)).collect::<Vec<_>>());
            match (name, entries) {
                (Some(name), Some(entries)) => {
                    inner.add_table_entries(&name, entries);
                    ok(json!({"name": name, "entries": inner.tables().remove(&name).unwrap_or_default()}))
                }
                _ => json_response(400, &json!({"error": "body must be {\"name\": \"...\", \"entries\": [\"...\"]}"})),
            }
        }
        ("POST", "/__emulator/rule_config") => {
            let body = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
            let (tracker, key) = (body.get("tracker").and_then(Value::as_i64), body.get("key").and_then(Value::as_str));
            let (Some(tracker), Some(key)) = (tracker, key) else {
                return json_response(
                    400,
                    &json!({"error": "body must be {\"tracker\": N, \"key\": \"...\", \"value\": ...}"}),
                );
            };
            let value = body.get("value").cloned().unwrap_or(Value::Null);
            match inner.set_rule_config(tracker, key, value) {
                Ok(()) => ok(serde_json::to_value(inner.rule_config(tracker)).unwrap_or_default()),
                Err(e) => json_response(400, &json!({"error": e})),
            }
        }
        ("GET", "/__emulator/anchors") => ok(serde_json::to_value(inner.anchors()).unwrap_or_default()),
        ("POST", "/__emulator/reboot") => {
            inner.reboot();
            ok(json!({"rebooted": true}))
        }
        ("POST", "/__emulator/anchor_counters") => {
            let body = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
            let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
            let number = |k: &str| body.get(k).and_then(Value::as_u64).unwrap_or(0);
            match (text("anchor"), text("label")) {
                (Some(anchor), Some(label)) => {
                    let found = inner.count_anchor_rule(&anchor, &label, number("packets"), number("bytes"));
                    ok(json!({"counted": found}))
                }
                _ => json_response(
                    400,
                    &json!({"error": "body must be {\"anchor\": \"...\", \"label\": \"...\", \"packets\": N, \"bytes\": N}"}),
                ),
            }
        }
        ("POST", "/__emulator/wait_for_applies") => {
            inner.wait_for_applies().await;
            ok(serde_json::to_value(inner.state_view()).unwrap_or_default())
        }
        _ => json_response(
            404,
            &json!({"error": "unknown emulator control endpoint",
                    "endpoints": ["GET state", "GET|DELETE requests", "GET|DELETE violations", "GET|POST faults",
                                  "POST firewall_log", "GET|POST tables", "POST rule_config",
                                  "GET anchors", "POST reboot", "POST anchor_counters",
                                  "POST wait_for_applies"]}),
        ),
    }
}
