//! Errors of the pfRest client, mapped to Portcullis' stable error codes.

use std::fmt;

use portcullis_core::firewall::{BackendError, ErrorCode};

/// A failed pfRest request. `message` names the endpoint (`METHOD /api/v2/...`) and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfRestError {
    pub code: ErrorCode,
    pub message: String,
    pub hint: Option<String>,
    /// HTTP status, when an answer arrived.
    pub status: Option<u16>,
    /// pfRest's `response_id` (e.g. `FIELD_INVALID_CHOICE`), when the answer was a pfRest envelope.
    pub response_id: Option<String>,
    /// True when a write may or may not have taken effect (timeout, dropped connection, an answer that is not a
    /// pfRest envelope, a 5xx from PHP). The caller must re-read the object to learn what happened.
    pub outcome_unknown: bool,
}

impl PfRestError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PfRestError {
            code,
            message: message.into(),
            hint: None,
            status: None,
            response_id: None,
            outcome_unknown: false,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether pfRest answered with this `response_id`.
    pub fn is(&self, response_id: &str) -> bool {
        self.response_id.as_deref() == Some(response_id)
    }

    pub fn into_backend(self) -> BackendError {
        self.into()
    }
}

impl fmt::Display for PfRestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PfRestError {}

impl From<PfRestError> for BackendError {
    fn from(e: PfRestError) -> Self {
        BackendError { code: e.code, message: e.message, hint: e.hint }
    }
}

pub(crate) const HINT_NOT_INSTALLED: &str = "install pfRest (the pfSense-pkg-RESTAPI package, v2) on the firewall: it \
     is not in pfSense's own package list, see https://pfrest.org for the install command matching your pfSense \
     version; also check that the target's host, port and protocol point at the web configurator";
pub(crate) const HINT_AUTH: &str = "check the credentials; the method must be enabled in System > REST API > Settings \
     (auth_methods; a fresh install allows BasicAuth only). Repeated failures can get this address blocked by \
     sshguard's login protection";
pub(crate) const HINT_FORBIDDEN: &str = "the user behind these credentials lacks the pfRest privilege for this \
     endpoint (api-v2-<path>-<method>), or the REST API access list / allowed interfaces refuse this client";
pub(crate) const HINT_LOCKED: &str =
    "another administrator or process is writing the pfSense configuration; retry later";
pub(crate) const HINT_CONNECT: &str = "check the target's host and port (those of the web configurator), that the \
     firewall is up, and that no firewall rule blocks this host";
pub(crate) const HINT_TLS: &str = "the firewall's certificate is not trusted: set the target's ca_file to its CA \
     (PEM), or verify_ssl: false for a lab; also check the target's protocol (https) and port";
pub(crate) const HINT_TIMEOUT: &str = "the firewall did not answer in time; it may be overloaded or applying a large \
     change. Raise the timeout or retry later";
pub(crate) const HINT_UNKNOWN_OUTCOME: &str =
    "the request may or may not have taken effect; read the firewall state again before retrying";

/// Maps a pfRest answer that is an error envelope (or an error status without one).
pub(crate) fn from_status(
    endpoint: &str,
    status: u16,
    response_id: Option<&str>,
    message: Option<&str>,
    is_envelope: bool,
) -> PfRestError {
    let rid = response_id.unwrap_or("");
    let detail = match (response_id, message.filter(|m| !m.is_empty())) {
        (Some(id), Some(m)) => format!("{id}: {m}"),
        (Some(id), None) => id.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => String::new(),
    };
    let with = |what: &str| {
        if detail.is_empty() {
            format!("{endpoint}: {what} (HTTP {status})")
        } else {
            format!("{endpoint}: {what} (HTTP {status} {detail})")
        }
    };
    let mut e = match status {
        401 => PfRestError::new(ErrorCode::AuthenticationFailed, with("authentication failed")).hint(HINT_AUTH),
        403 if rid.starts_with("MODEL_") => PfRestError::new(ErrorCode::ValidationError, with("refused")),
        403 => PfRestError::new(ErrorCode::AuthorizationFailed, with("not authorized")).hint(HINT_FORBIDDEN),
        404 if !is_envelope => PfRestError::new(
            ErrorCode::PfrestNotInstalled,
            format!("{endpoint}: pfRest is not installed on this firewall (HTTP 404 from the web server, not pfRest)"),
        )
        .hint(HINT_NOT_INSTALLED),
        404 => PfRestError::new(ErrorCode::NotFound, with("not found")),
        405 if rid == "ENDPOINT_METHOD_NOT_ALLOWED_IN_READ_ONLY_MODE" => {
            PfRestError::new(ErrorCode::AuthorizationFailed, with("the REST API is in read-only mode"))
                .hint("turn off read_only in System > REST API > Settings to allow changes")
        }
        409 => PfRestError::new(ErrorCode::Conflict, with("conflict")),
        400 | 422 => PfRestError::new(ErrorCode::ValidationError, with("rejected")),
        424 => PfRestError::new(ErrorCode::Unavailable, with("a required package is missing"))
            .hint("install the pfSense package the endpoint needs"),
        503 if rid == "MODEL_WRITE_CONFIG_LOCKED" => {
            PfRestError::new(ErrorCode::Unavailable, with("the configuration is locked")).hint(HINT_LOCKED)
        }
        503 if rid == "ENDPOINT_REST_API_IS_NOT_ENABLED" => {
            PfRestError::new(ErrorCode::Unavailable, with("the REST API is disabled"))
                .hint("enable it in System > REST API > Settings")
        }
        503 => PfRestError::new(ErrorCode::Unavailable, with("temporarily unavailable")).hint("retry later"),
        500..=599 => PfRestError::new(ErrorCode::UnexpectedResponse, with("server error")),
        _ => PfRestError::new(ErrorCode::UnexpectedResponse, with("unexpected answer")),
    };
    e.status = Some(status);
    e.response_id = response_id.map(str::to_string);
    // pfRest validates before it writes, so a 4xx envelope (and a 503 lock) means nothing happened. A 5xx can come
    // from PHP failing part-way, and a non-envelope answer tells nothing at all.
    e.outcome_unknown = !is_envelope || (status >= 500 && rid != "MODEL_WRITE_CONFIG_LOCKED");
    if e.outcome_unknown && e.hint.is_none() {
        e.hint = Some(HINT_UNKNOWN_OUTCOME.into());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_table() {
        let cases: &[(u16, Option<&str>, bool, ErrorCode)] = &[
            (401, Some("AUTH_AUTHENTICATION_FAILED"), true, ErrorCode::AuthenticationFailed),
            (403, Some("AUTH_AUTHORIZATION_FAILED"), true, ErrorCode::AuthorizationFailed),
            (403, Some("MODEL_MANY_MINIMUM_REACHED"), true, ErrorCode::ValidationError),
            (404, None, false, ErrorCode::PfrestNotInstalled),
            (404, Some("MODEL_OBJECT_NOT_FOUND"), true, ErrorCode::NotFound),
            (409, Some("MODEL_CANNOT_BE_DELETED_WHILE_REFERENCED"), true, ErrorCode::Conflict),
            (400, Some("FIELD_INVALID_CHOICE"), true, ErrorCode::ValidationError),
            (422, Some("X"), true, ErrorCode::ValidationError),
            (503, Some("MODEL_WRITE_CONFIG_LOCKED"), true, ErrorCode::Unavailable),
            (500, Some("ENDPOINT_RECEIVED_UNEXPECTED_ERROR"), true, ErrorCode::UnexpectedResponse),
            (502, None, false, ErrorCode::UnexpectedResponse),
        ];
        for (status, rid, env, code) in cases {
            let e = from_status("GET /api/v2/x", *status, *rid, Some("msg"), *env);
            assert_eq!(e.code, *code, "{status} {rid:?}");
            assert!(e.message.starts_with("GET /api/v2/x: "), "{}", e.message);
        }
        assert!(!from_status("P", 503, Some("MODEL_WRITE_CONFIG_LOCKED"), None, true).outcome_unknown);
        assert!(from_status("P", 502, None, None, false).outcome_unknown);
        assert!(!from_status("P", 400, Some("FIELD_IS_REQUIRED"), None, true).outcome_unknown);
    }
}
