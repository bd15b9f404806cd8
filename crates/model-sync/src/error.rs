//! Error types and process exit codes.
//!
//! Exit codes are the Job contract's ([`mro_job_contract::exit`]); they are re-exported here.
//!
//! No message built here contains a secret: values of secret settings are never formatted, and
//! credential files are named by path, never quoted.

use std::fmt;
use std::path::PathBuf;

use mro_job_contract::Key;

pub use mro_job_contract::exit::{EXIT_FAILURE, EXIT_INVALID_CONFIG, EXIT_OK};

/// What a message is about: a table setting, or something else (a positional argument, a
/// SIGSTORE_* variable, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Setting(Key),
    Other(String),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Setting(k) => f.write_str(&k.label()),
            Self::Other(s) => f.write_str(s),
        }
    }
}

impl From<Key> for Field {
    fn from(k: Key) -> Self {
        Self::Setting(k)
    }
}

/// One configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required value is absent from every layer.
    #[error("{field} is required {when}")]
    Missing { field: Field, when: String },

    /// A value is present but unusable. `shown` is empty for secrets.
    #[error("{field} has an invalid value{shown}: expected {expected}")]
    Invalid {
        field: Field,
        shown: String,
        expected: String,
    },

    /// Settings that cannot hold together.
    #[error("{0}")]
    Conflict(String),

    /// A file or directory named by a setting could not be read. The I/O error is part of the
    /// message because Job logs and termination messages only show the top-level text.
    #[error("{field}: cannot read {}: {cause}", path.display())]
    Io {
        field: Field,
        path: PathBuf,
        cause: std::io::Error,
    },

    /// A credential or metadata file was read but its content is unusable.
    #[error("{field}: {}: {message}", path.display())]
    File {
        field: Field,
        path: PathBuf,
        message: String,
    },

    /// A metadata ConfigMap key is unusable.
    #[error("metadata key {key} ({}): {message}", path.display())]
    Metadata {
        key: String,
        path: PathBuf,
        message: String,
    },

    /// Signing was requested but is not available in this build.
    #[error("signing is not implemented yet ({how})")]
    SigningNotImplemented { how: String },

    /// A source or destination type that is recognised but does not work yet. Refused while
    /// loading the configuration, so the registry is never touched (no artifact is marked
    /// PENDING for a transfer that cannot start).
    #[error("{field}: {what} is not implemented yet{hint}")]
    SourceNotImplemented {
        field: Field,
        what: String,
        hint: String,
    },

    /// The command line itself is malformed (unknown flag, missing value).
    #[error("{0}")]
    Usage(String),
}

impl ConfigError {
    /// An invalid value; the value is quoted unless the setting is a secret.
    pub fn invalid(key: Key, value: &str, expected: impl Into<String>) -> Self {
        Self::Invalid {
            field: key.into(),
            shown: shown(key, value),
            expected: expected.into(),
        }
    }

    /// A missing value.
    pub fn missing(key: Key, when: impl Into<String>) -> Self {
        Self::Missing {
            field: key.into(),
            when: when.into(),
        }
    }
}

/// The value as quoted in a message: nothing for a secret setting, else the value with
/// credential-shaped parts removed (a URI may be a pre-signed URL, or carry `user:password@`).
fn shown(key: Key, value: &str) -> String {
    if key.is_secret() {
        String::new()
    } else {
        format!(" {:?}", crate::redact::text(value))
    }
}

/// Every problem found in one pass, so a manifest can be fixed in one go.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("invalid configuration"),
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(EXIT_OK, 0);
    }

    #[test]
    fn secret_values_are_not_shown() {
        let e = ConfigError::invalid(Key::RegistryUserToken, "hunter2", "x");
        assert!(!e.to_string().contains("hunter2"));
        let e = ConfigError::invalid(Key::SourceType, "ftp", "x");
        assert!(e.to_string().contains("\"ftp\""));
    }

    #[test]
    fn several_problems_are_listed() {
        let mut errs = ConfigErrors::default();
        errs.push(ConfigError::Conflict("a".into()));
        errs.push(ConfigError::Conflict("b".into()));
        assert_eq!(
            errs.to_string(),
            "invalid configuration (2 problems):\n  - a\n  - b"
        );
    }
}
