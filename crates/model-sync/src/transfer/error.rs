//! Transfer errors with stable reason codes (they end up in the termination message and in the
//! ModelTransfer status). Messages keep the root cause and never contain secrets.
use std::fmt;

/// Stable, machine-readable failure reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Configuration or input that cannot work (bad path, bad archive, empty source).
    InvalidInput,
    /// The source cannot be read: not found, access denied, unreachable.
    SourceUnavailable,
    /// The destination refused the data: auth, quota, not found, unreachable.
    DestinationRejected,
    /// Bytes did not match their expected digest or size.
    IntegrityError,
    /// The Model Registry refused or failed a request.
    RegistryRejected,
    /// A feature that is not implemented (said loudly, never faked).
    NotImplemented,
    /// Signing what is being published failed (the model signature inside an image).
    SigningFailed,
    /// Anything else.
    Internal,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidInput => "InvalidInput",
            Reason::SourceUnavailable => "SourceUnavailable",
            Reason::DestinationRejected => "DestinationRejected",
            Reason::IntegrityError => "IntegrityError",
            Reason::RegistryRejected => "RegistryRejected",
            Reason::NotImplemented => "NotImplemented",
            Reason::SigningFailed => "SigningFailed",
            Reason::Internal => "Internal",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A failed transfer step. `transient` errors may be retried.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct TransferError {
    pub reason: Reason,
    pub message: String,
    pub transient: bool,
}

impl TransferError {
    pub fn new(reason: Reason, message: impl Into<String>) -> TransferError {
        TransferError {
            reason,
            message: message.into(),
            transient: false,
        }
    }

    pub fn transient(reason: Reason, message: impl Into<String>) -> TransferError {
        TransferError {
            reason,
            message: message.into(),
            transient: true,
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> TransferError {
        TransferError::new(Reason::InvalidInput, message)
    }

    /// The error with context prepended (`context: message`), same reason and transience.
    pub fn context(self, context: impl fmt::Display) -> TransferError {
        TransferError {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }
}

/// Formats an error and its sources as `a: b: c` (root cause kept).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
