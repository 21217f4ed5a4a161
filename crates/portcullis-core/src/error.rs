//! Validation errors that name the offending field.

use serde::Serialize;

/// A rejected value: which field, and why. Every validation failure in Portcullis is one of these, so that
/// a client (or a person) always learns exactly which argument to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// Re-labels the error for the argument name a tool exposes (e.g. `address` → `ip_address`).
    pub fn in_field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
}

pub type FieldResult<T> = Result<T, FieldError>;
