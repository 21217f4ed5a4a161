//! What every HTTP request passes before any route: the Host check (DNS-rebinding protection, the same rule rmcp
//! applies to `/mcp`, here for `/health` and `/feeds/*` too), and for POSTs to `/mcp` the JSON-RPC decoding of
//! the body (`jsonrpc::decode`), so that a body rmcp would refuse with a plain-text 415 (not JSON, too deep,
//! invalid UTF-8) is answered with a JSON-RPC error instead.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::jsonrpc::{self, Decoded, Refusal};

/// The largest POST body accepted on `/mcp` (rmcp's default).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The host names requests may carry in `Host`; empty allows every host (a non-loopback bind behind tokens).
#[derive(Clone)]
pub struct AllowedHosts(pub Arc<Vec<String>>);

/// `allowed` entries are host names without ports, compared case-insensitively, IPv6 with or without brackets.
pub fn host_is_allowed(host_header: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Ok(authority) = host_header.parse::<axum::http::uri::Authority>() else {
        return false;
    };
    let normalise = |h: &str| h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let host = normalise(authority.host());
    allowed.iter().any(|a| normalise(a) == host)
}

pub async fn check_host(State(allowed): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(host) if host_is_allowed(&host, &allowed.0) => next.run(request).await,
        Some(host) => {
            tracing::warn!(host, path = %request.uri().path(), "refused a request with a disallowed Host header");
            (StatusCode::FORBIDDEN, "Forbidden: Host header is not allowed\n").into_response()
        }
        None => (StatusCode::BAD_REQUEST, "Bad Request: missing Host header\n").into_response(),
    }
}

fn refused(status: StatusCode, refusal: &Refusal) -> Response {
    tracing::debug!(code = refusal.code, id = ?refusal.id, "refused an incoming message: {}", refusal.message);
    (status, [(header::CONTENT_TYPE, "application/json")], refusal.response().to_string()).into_response()
}

/// Decodes a JSON POST body before rmcp does; one that does not decode is answered here. Other requests (GET,
/// DELETE, other content types, which rmcp answers with its own status) pass untouched.
pub async fn decode_body(request: Request, next: Next) -> Response {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"));
    if request.method() != Method::POST || !is_json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return refused(StatusCode::PAYLOAD_TOO_LARGE, &Refusal::too_large(b"", MAX_BODY_BYTES)),
    };
    if let Decoded::Refused(refusal) = jsonrpc::decode(&bytes) {
        return refused(StatusCode::BAD_REQUEST, &refusal);
    }
    // rmcp does not skip a byte order mark; the decoder does (RFC 8259 §8.1 allows it).
    let bytes = if bytes.starts_with(b"\xEF\xBB\xBF") { bytes.slice(3..) } else { bytes };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_name_whatever_the_port_case_and_brackets() {
        let allowed: Vec<String> = ["localhost", "127.0.0.1", "::1", "[::1]"].iter().map(|s| s.to_string()).collect();
        for ok in ["localhost", "LOCALHOST:8787", "127.0.0.1:1", "[::1]:8787", "[::1]"] {
            assert!(host_is_allowed(ok, &allowed), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8787", "127.0.0.2", "localhost.evil.example", "", "a b"] {
            assert!(!host_is_allowed(bad, &allowed), "{bad}");
        }
        assert!(host_is_allowed("anything.example", &[]));
    }
}
