//! The error every tool call can end in: a stable code, a message, the field at fault, and a hint.

use portcullis_core::FieldError;
use portcullis_core::firewall::{BackendError, ErrorCode};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct CallError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// The pending approval a person can grant, for `approval_required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

impl CallError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None, hint: None, retry_after_seconds: None, approval_id: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn policy(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PolicyDenied, message)
    }

    pub fn approval_required(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ApprovalRequired, message)
    }

    pub fn cancelled() -> Self {
        Self::new(ErrorCode::Cancelled, "the caller cancelled the call").with_hint("nothing was changed")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
}

impl From<FieldError> for CallError {
    fn from(e: FieldError) -> Self {
        Self {
            code: ErrorCode::ValidationError,
            message: format!("{}: {}", e.field, e.message),
            field: Some(e.field),
            hint: None,
            retry_after_seconds: None,
            approval_id: None,
        }
    }
}

impl From<BackendError> for CallError {
    fn from(e: BackendError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            field: None,
            hint: e.hint,
            retry_after_seconds: None,
            approval_id: None,
        }
    }
}
