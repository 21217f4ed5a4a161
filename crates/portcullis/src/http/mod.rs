//! Streamable HTTP transport: `/mcp` (rmcp), `/health`. Binds loopback unless bearer tokens are configured;
//! with tokens, every request to `/mcp` must carry one, and the token's principal makes the calls. Host and
//! Origin headers are checked (DNS-rebinding protection).

mod auth;

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
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(local))
        .with_allowed_origins(allowed_origins(http, local))
        .enforce_origin_validation()
        .with_cancellation_token(shutdown.child_token());
    let mcp_service: StreamableHttpService<McpHandler, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(mcp_handler(server.for_session())), Default::default(), config);
    let roles = http.tokens.iter().map(|t| (t.principal.clone(), app.principal(&t.principal).role)).collect();
    let auth = AuthState { http: Arc::new(http.clone()), roles: Arc::new(roles) };
    let feeds = FeedState { service: app.service.clone(), auth: auth.clone() };
    Router::new()
        .nest_service("/mcp", mcp_service)
        .layer(middleware::from_fn_with_state(auth, authenticate))
        .route("/health", get(health))
        .route("/feeds/{list}", get(feed).with_state(feeds))
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
