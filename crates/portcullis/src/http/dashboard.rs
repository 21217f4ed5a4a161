//! The web dashboard on the HTTP listener: a read-only page (`/dashboard`, its script and style) that shows a
//! target's health, threats and countries, blocks and grants with their expiry, pending approvals and changes, and
//! the audit tail, and follows changes as they are applied.
//!
//! The page itself holds no data. Everything it shows comes from `/dashboard/state`, which runs the read tools
//! through the guarded pipeline as the bearer token's principal (so roles apply, and the reads are audited), and is
//! only served when `http.tokens` are configured. `/dashboard/version` is a counter of the changes applied since
//! the server started: the page polls it and reads the state again when it moves, so a tab left open costs one
//! audited read per change (and one a minute), not one per poll. `/dashboard/report` is the HTML security report,
//! which the page offers as a download. No external assets; the page's policy allows only its own origin.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_guard::{CallContext, Principal, Transport};
use serde_json::{Value, json};

use super::auth::{AuthState, bearer, principal_for_token, unauthorized};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// Only this origin's script, style and requests; no frames, no plugins, nothing inline.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                           img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Clone)]
pub(super) struct DashboardState {
    pub service: Arc<portcullis_tools::ToolService>,
    pub store: Arc<portcullis_store::Store>,
    pub auth: AuthState,
    /// Changes applied since the server started.
    pub changes: Arc<AtomicU64>,
}

impl DashboardState {
    /// Counts the changes the service announces, until it goes away.
    pub fn follow_changes(&self) {
        let mut changes = self.service.subscribe_changes();
        let counter = self.changes.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// The token's principal, or the answer that refuses the request.
    fn principal(&self, headers: &HeaderMap) -> Result<Principal, Box<Response>> {
        if self.auth.http.tokens.is_empty() {
            let body = "the dashboard's data is served only when http.tokens are configured \
                        (portcullis token new PRINCIPAL)\n";
            let refused = (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body);
            return Err(Box::new(refused.into_response()));
        }
        let name = bearer(headers)
            .and_then(|t| principal_for_token(&self.auth.http, &t).map(str::to_string))
            .ok_or_else(|| Box::new(unauthorized("a valid bearer token is required")))?;
        let role = self.auth.roles.get(&name).cloned().unwrap_or_else(|| "none".into());
        Ok(Principal { name, role })
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn page() -> Response {
    let mut response = asset("text/html; charset=utf-8", PAGE);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static(PAGE_POLICY));
    headers.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    response
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(serde::Deserialize)]
pub(super) struct TargetQuery {
    target: Option<String>,
}

impl TargetQuery {
    /// A tool's arguments with the page's target, when it names one.
    fn onto(&self, mut args: Value) -> Value {
        if let Some(t) = &self.target {
            args["target"] = t.clone().into();
        }
        args
    }
}

pub(super) async fn version(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    if let Err(refused) = state.principal(&headers) {
        return *refused;
    }
    Json(json!({"changes": state.changes.load(Ordering::Relaxed)})).into_response()
}

/// One section of the state: a tool's answer, or what refused it (the role may not read it).
async fn section(service: &portcullis_tools::ToolService, ctx: &CallContext, tool: &str, args: Value) -> Value {
    match service.call(ctx, tool, args).await {
        Ok(answer) => answer,
        Err(e) => json!({"error": {"code": e.code.as_str(), "message": e.message}}),
    }
}

pub(super) async fn data(
    State(state): State<DashboardState>,
    Query(query): Query<TargetQuery>,
    headers: HeaderMap,
) -> Response {
    let principal = match state.principal(&headers) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let ctx = CallContext::new(principal.clone(), Transport::Http, Some("dashboard".into()));
    let target = |args: Value| query.onto(args);
    let s = &state.service;
    let (dashboard, blocks, grants, changes, audit) = tokio::join!(
        section(s, &ctx, "get_dashboard_data", target(json!({}))),
        section(s, &ctx, "list_blocks", target(json!({"limit": 50}))),
        section(s, &ctx, "list_grants", target(json!({}))),
        section(s, &ctx, "list_pending_changes", json!({})),
        section(s, &ctx, "get_audit_log", json!({"limit": 100})),
    );
    let approvals = match state.store.approvals_pending(chrono::Utc::now()) {
        Ok(pending) => Value::Array(
            pending
                .into_iter()
                .map(|a| {
                    json!({"id": a.id, "principal": a.principal, "tool": a.tool, "target": a.target,
                           "risk_score": a.risk_score, "summary": a.summary, "expires_at": a.expires_at})
                })
                .collect(),
        ),
        Err(e) => json!({"error": {"code": "internal_error", "message": e.to_string()}}),
    };
    Json(json!({
        "principal": {"name": principal.name, "role": principal.role},
        "targets": s.target_names(),
        "generated_at": chrono::Utc::now(),
        "changes": state.changes.load(Ordering::Relaxed),
        "dashboard": dashboard,
        "blocks": blocks,
        "grants": grants,
        "pending_changes": changes,
        "approvals": approvals,
        "audit": audit,
    }))
    .into_response()
}

pub(super) async fn report(
    State(state): State<DashboardState>,
    Query(query): Query<TargetQuery>,
    headers: HeaderMap,
) -> Response {
    let principal = match state.principal(&headers) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let ctx = CallContext::new(principal, Transport::Http, Some("dashboard report".into()));
    let args = query.onto(json!({"timeframe": "24h", "format": "html"}));
    match state.service.call(&ctx, "generate_security_report", args).await {
        Ok(answer) => {
            let html = answer["content"].as_str().unwrap_or_default().to_string();
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CONTENT_DISPOSITION, "attachment; filename=\"security-report.html\""),
                ],
                html,
            )
                .into_response()
        }
        Err(e) => (StatusCode::FORBIDDEN, Json(json!({"error": {"code": e.code.as_str(), "message": e.message}})))
            .into_response(),
    }
}
