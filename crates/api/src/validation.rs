//! Client-side validation results.
//!
//! The CRDs carry CEL rules (`x-kubernetes-validations`), but API servers older than 1.25 ignore
//! them. The `validate()` functions of the spec types implement the same rules in Rust so the
//! controller can refuse invalid objects on any cluster.

use std::fmt;

/// One violated rule: which field, and what was expected of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// Path of the offending field from the object root, e.g. `spec.postgres.sslKeySecret`.
    pub field: String,
    /// What was expected, e.g. `must be set together with spec.postgres.sslCertificateSecret`.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Joins errors into one line, e.g. for a status condition message.
pub fn join_errors(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns a list of collected errors into the `validate()` result.
pub(crate) fn into_result(errors: Vec<ValidationError>) -> Result<(), Vec<ValidationError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
