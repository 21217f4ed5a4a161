//! Bearer tokens: the configuration holds only each token's SHA-256, so a leaked config file grants nothing; a
//! presented token is hashed and compared in constant time, so that the comparison does not reveal how much of a
//! guess was right.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_guard::Principal;
use serde_json::json;

use crate::config::HttpConfig;

#[derive(Clone)]
pub(super) struct AuthState {
    pub(super) http: Arc<HttpConfig>,
    /// The role of each token's principal, resolved from config once.
    pub(super) roles: Arc<BTreeMap<String, String>>,
}

/// Lower-case hex SHA-256 of a bearer token, as stored in `http.tokens`.
pub fn hash_token(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The principal whose token hashes to the same SHA-256 as `token`.
pub fn principal_for_token<'a>(http: &'a HttpConfig, token: &str) -> Option<&'a str> {
    let digest = hash_token(token);
    http.tokens.iter().find(|t| constant_time_eq(t.sha256.as_bytes(), digest.as_bytes())).map(|t| t.principal.as_str())
}

/// Maps a bearer token to its principal. Without configured tokens the server is loopback-only (see
/// `check_bind`) and calls run as the local principal.
pub(super) async fn authenticate(State(auth): State<AuthState>, mut request: Request, next: Next) -> Response {
    if auth.http.tokens.is_empty() {
        return next.run(request).await;
    }
    let Some(token) = bearer(request.headers()) else {
        return unauthorized("a bearer token is required (Authorization: Bearer <token>)");
    };
    match principal_for_token(&auth.http, &token) {
        Some(name) => {
            let role = auth.roles.get(name).cloned().unwrap_or_else(|| "none".into());
            request.extensions_mut().insert(Principal { name: name.to_string(), role });
            next.run(request).await
        }
        None => unauthorized("the bearer token is not valid"),
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_string())
}

pub(super) fn unauthorized(message: &str) -> Response {
    let body = json!({"error": {"code": "authentication_failed", "message": message}});
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn tokens_find_their_principal_whatever_the_case_of_the_configured_hash() {
        let hash = hash_token("s3cret-token").to_ascii_uppercase();
        let text = format!(
            "security: {{principals: {{bot: {{role: operator}}}}}}\n\
             http: {{tokens: [{{principal: bot, sha256: {hash}}}]}}\n"
        );
        let c = crate::config::parse(&text, Path::new("/etc/portcullis/config.yaml"), &|_| None).unwrap();
        assert_eq!(principal_for_token(&c.http, "s3cret-token"), Some("bot"));
        assert_eq!(principal_for_token(&c.http, "wrong"), None);
    }

    #[test]
    fn hash_token_is_sha256_hex() {
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
