//! Validation errors that name the offending field.

use std::borrow::Cow;

/// A value that failed validation, with the (JSON-pointer-like) field that
/// carried it and a sentence a client developer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct FieldError {
    /// The offending field, e.g. `completed_at` or `items/3/hours`.
    pub field: Cow<'static, str>,
    /// What is wrong with it.
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// The same error with `prefix/` put before the field name.
    pub fn within(self, prefix: &str) -> Self {
        Self {
            field: Cow::Owned(format!("{prefix}/{}", self.field)),
            detail: self.detail,
        }
    }
}
