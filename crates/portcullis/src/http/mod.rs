//! Streamable HTTP transport: `/mcp` (rmcp), `/health`, `/feeds/*`, `/dashboard` (`dashboard.rs`). Binds loopback unless bearer tokens are
//! configured; with tokens, every request to `/mcp` must carry one, and the token's principal makes the calls.
//! The Host header is checked on every route and the Origin header on `/mcp` (DNS-rebinding protection); a
//! POST body to `/mcp` that does not decode is answered with a JSON-RPC error (`guard.rs`).

mod auth;
mod dashboard;
mod guard;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::firewall::ErrorCode;
use portcullis_guard::{CallContext, Principal, Transport};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::HttpConfig;
use crate::mcp::McpServer;
use crate::{McpHandler, mcp_handler};
use auth::{AuthState, authenticate, bearer, principal_for_token, unauthorized};

/// Refuses a non-loopback bind without bearer tokens: an open firewall API on the network is never a default.
pub fn check_bind(addr: &SocketAddr, http: &HttpConfig) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && http.tokens.is_empty() {
        bail!(
            "refusing to serve MCP over HTTP on {addr} without bearer tokens: configure http.tokens \
             (SHA-256 of each token) or bind a loopback address such as 127.0.0.1:8787"
        );
    }
    Ok(())
}

pub async fn serve(app: &App, bind: &str, shutdown: CancellationToken) -> anyhow::Result<()> {
    let addr: SocketAddr = bind.parse().with_context(|| format!("--http {bind:?} is not an address:port"))?;
    let http = app.config.http.clone();
    check_bind(&addr, &http)?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot bind {addr}"))?;
    let local = listener.local_addr()?;
    let router = router(app, &http, local, shutdown.clone());
    // The printed address tells scripts (and tests) which port an ephemeral bind received.
    tracing::info!("MCP over Streamable HTTP on http://{local}/mcp (health: http://{local}/health)");
    eprintln!("portcullis: listening on http://{local}/mcp");
    // The peer address reaches each call's context, so that an egress policy keeps the calling client reachable.
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server failed")
}

fn router(app: &App, http: &HttpConfig, local: SocketAddr, shutdown: CancellationToken) -> Router {
    let service = app.service.clone();
    let principal = app.local_principal();
    let mcp = &app.config.mcp;
    let log_level = crate::mcp::log_level_from_config(&app.config.logging.level);
    let server = McpServer::new(service, Transport::Http, principal, &mcp.server_name, &mcp.version, log_level);
    let hosts = allowed_hosts(local);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts.clone())
        .with_max_request_body_bytes(guard::MAX_BODY_BYTES)
        .with_allowed_origins(allowed_origins(http, local))
        .enforce_origin_validation()
        .with_cancellation_token(shutdown.child_token());
    let mcp_service: StreamableHttpService<McpHandler, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(mcp_handler(server.for_session())), Default::default(), config);
    let roles = http.tokens.iter().map(|t| (t.principal.clone(), app.principal(&t.principal).role)).collect();
    let auth = AuthState { http: Arc::new(http.clone()), roles: Arc::new(roles) };
    let feeds = FeedState { service: app.service.clone(), auth: auth.clone() };
    let board = dashboard::DashboardState {
        service: app.service.clone(),
        store: app.store.clone(),
        auth: auth.clone(),
        changes: Default::default(),
    };
    board.follow_changes();
    let dashboard_routes = Router::new()
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .route("/dashboard/state", get(dashboard::data))
        .route("/dashboard/version", get(dashboard::version))
        .route("/dashboard/report", get(dashboard::report))
        .with_state(board);
    Router::new()
        .nest_service("/mcp", mcp_service)
        .layer(middleware::from_fn(guard::decode_body))
        .layer(middleware::from_fn_with_state(auth, authenticate))
        .route("/health", get(health))
        .route("/feeds/{list}", get(feed).with_state(feeds))
        .merge(dashboard_routes)
        .layer(middleware::from_fn_with_state(guard::AllowedHosts(Arc::new(hosts)), guard::check_host))
}

fn allowed_hosts(local: SocketAddr) -> Vec<String> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into(), "[::1]".into()];
    if !local.ip().is_unspecified() {
        hosts.push(local.ip().to_string());
    }
    if !local.ip().is_loopback() {
        // Behind a token, a non-loopback bind serves whatever name clients use for this host.
        hosts.clear();
    }
    hosts
}

fn allowed_origins(http: &HttpConfig, _local: SocketAddr) -> Vec<String> {
    let mut origins: Vec<String> =
        ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"].iter().map(|s| s.to_string()).collect();
    origins.extend(http.allowed_origins.iter().cloned());
    origins
}

#[derive(Clone)]
struct FeedState {
    service: Arc<portcullis_tools::ToolService>,
    auth: AuthState,
}

#[derive(serde::Deserialize)]
struct FeedQuery {
    target: Option<String>,
}

/// A managed list as plain text, one address or CIDR per line, for firewalls that pull block lists on their own
/// schedule. Token-protected always; each pull runs through the guarded pipeline like the matching tool.
async fn feed(
    State(state): State<FeedState>,
    axum::extract::Path(list): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<FeedQuery>,
    headers: HeaderMap,
) -> Response {
    let text = |status: StatusCode, body: String| (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body);
    if state.auth.http.tokens.is_empty() {
        return text(StatusCode::NOT_FOUND, "feeds are served only when http.tokens are configured\n".into())
            .into_response();
    }
    let Some(name) = bearer(&headers).and_then(|t| principal_for_token(&state.auth.http, &t).map(str::to_string))
    else {
        return unauthorized("a valid bearer token is required");
    };
    let tool = match list.as_str() {
        "blocks.txt" => "list_blocks",
        "grants.txt" => "list_grants",
        _ => return text(StatusCode::NOT_FOUND, "feeds: blocks.txt, grants.txt\n".into()).into_response(),
    };
    let role = state.auth.roles.get(&name).cloned().unwrap_or_else(|| "none".into());
    let ctx = CallContext::new(Principal { name, role }, Transport::Http, Some(format!("feed {list}")));
    match state.service.call(&ctx, tool, json!({ "target": query.target })).await {
        Ok(value) => {
            let lines: String = value["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| row["ip_address"].as_str())
                .map(|ip| format!("{ip}\n"))
                .collect();
            text(StatusCode::OK, lines).into_response()
        }
        Err(e) => {
            let status = match e.code {
                ErrorCode::AuthorizationFailed | ErrorCode::PolicyDenied => StatusCode::FORBIDDEN,
                ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::ValidationError => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            text(status, format!("{}: {}\n", e.code.as_str(), e.message)).into_response()
        }
    }
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves the router of a lab-only app (with one bearer token, so the feeds are on) on an ephemeral port.
    async fn start(dir: &Path) -> (SocketAddr, CancellationToken) {
        let hash = auth::hash_token("feed-token");
        let text = format!(
            "data_dir: {}\nsecurity: {{principals: {{bot: {{role: viewer}}}}}}\n\
             http: {{tokens: [{{principal: bot, sha256: {hash}}}]}}\n",
            dir.display()
        );
        let config = crate::config::parse(&text, Path::new("/etc/portcullis/config.yaml"), &|_| None).unwrap();
        let app = App::open(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let router = router(&app, &app.config.http.clone(), local, shutdown.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        (local, shutdown)
    }

    /// One raw HTTP/1.1 request; gives the status code and the body.
    async fn request(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut bytes = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn every_route_checks_the_host_header() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, shutdown) = start(dir.path()).await;
        let feed = "Authorization: Bearer feed-token";
        for (path, extra) in [("/health", ""), ("/feeds/blocks.txt", feed), ("/feeds/grants.txt", feed), ("/mcp", feed)]
        {
            for host in ["evil.example", "evil.example:8787", "127.0.0.2", "localhost.evil.example"] {
                let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}");
                let (status, _) = request(addr, head.trim_end(), b"").await;
                assert_eq!(status, 403, "{path} with Host {host}");
            }
        }
        for host in ["localhost", &format!("127.0.0.1:{}", addr.port()), "[::1]:8787"] {
            let (status, body) = request(addr, &format!("GET /health HTTP/1.1\r\nHost: {host}"), b"").await;
            assert_eq!(status, 200, "{host}: {body}");
            let (status, _) =
                request(addr, &format!("GET /feeds/blocks.txt HTTP/1.1\r\nHost: {host}\r\n{feed}"), b"").await;
            assert_eq!(status, 200, "feed with Host {host}");
        }
        shutdown.cancel();
    }

    /// The head of an authorized MCP POST, as a Streamable HTTP client sends it.
    const MCP_POST: &str = "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer feed-token\r\n\
                            Content-Type: application/json\r\nAccept: application/json, text/event-stream";

    #[tokio::test]
    async fn undecodable_mcp_bodies_get_a_json_rpc_error() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, shutdown) = start(dir.path()).await;
        let head = MCP_POST;
        let deep = |depth: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"get_firewall_rules","arguments":{{"x":{}1{}}}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes()
        };
        let cases: Vec<(Vec<u8>, serde_json::Value, i64)> = vec![
            (deep(200), json!(5), crate::jsonrpc::INVALID_PARAMS),
            (deep(10_000), json!(5), crate::jsonrpc::INVALID_PARAMS),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\",\"x\":\"\xff\"}".to_vec(),
                json!(6),
                crate::jsonrpc::PARSE_ERROR,
            ),
            (b"{\"jsonrpc\":\"2.0\",\"id\":7,".to_vec(), json!(7), crate::jsonrpc::PARSE_ERROR),
            (b"42".to_vec(), serde_json::Value::Null, crate::jsonrpc::INVALID_REQUEST),
            (
                b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]".to_vec(),
                serde_json::Value::Null,
                crate::jsonrpc::INVALID_REQUEST,
            ),
        ];
        for (body, id, code) in cases {
            let started = std::time::Instant::now();
            let (status, answer) = request(addr, head, &body).await;
            assert_eq!(status, 400, "{answer}");
            let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!((&answer["id"], answer["error"]["code"].as_i64()), (&id, Some(code)), "{answer}");
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
        let (status, _) = request(addr, head, &vec![b' '; MAX_BODY + 1]).await;
        assert_eq!(status, 413);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_body_with_a_byte_order_mark_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, shutdown) = start(dir.path()).await;
        let head = MCP_POST;
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#,
        );
        let (status, answer) = request(addr, head, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains("\"protocolVersion\""), "{answer}");
        shutdown.cancel();
    }

    const MAX_BODY: usize = guard::MAX_BODY_BYTES;
}
