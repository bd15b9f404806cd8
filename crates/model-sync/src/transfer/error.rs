//! Transfer errors with stable reason codes (they end up in the termination message and in the
//! ModelTransfer status). Messages keep the root cause and never contain secrets.
use std::fmt;

/// Stable, machine-readable failure reasons: the Job contract's vocabulary, so a transfer
/// error's reason is what the termination message and the ModelTransfer status report.
pub use mro_job_contract::FailureReason as Reason;

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
        TransferError::new(Reason::InvalidConfiguration, message)
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
