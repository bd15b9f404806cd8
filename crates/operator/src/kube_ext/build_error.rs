//! The error of a pure builder: the spec asks for something that cannot be built. It names the
//! field, so that every controller reports it the same way (as a configuration error the user
//! must fix), and it never carries secret values.

/// A spec that cannot be built (reported as `ConfigurationError`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct BuildError {
    pub field: String,
    pub message: String,
}

impl BuildError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError {
            field: field.into(),
            message: message.into(),
        }
    }
}
