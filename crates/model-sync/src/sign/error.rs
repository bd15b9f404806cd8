//! The signing errors and their mapping to a run failure, in their own file so every signing
//! module imports them without going through `mod.rs`.
use url::Url;

use crate::failure::{FailureReason, RunError};

/// What can go wrong while signing.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The private key file is unusable.
    #[error("signing key {0}")]
    Key(String),
    /// The identity token is missing or malformed.
    #[error("signing identity token: {0}")]
    Token(String),
    /// Fulcio or Rekor failed or refused.
    #[error("{0}")]
    Service(String),
    /// The trusted root could not be fetched or verified through TUF.
    #[error("trusted root: {0}")]
    TrustRoot(String),
    /// What a sigstore service returned does not verify against the trusted root.
    #[error("{service} returned {what} that the trusted root does not vouch for: {why}")]
    Untrusted {
        service: &'static str,
        what: &'static str,
        why: String,
    },
    /// Reading the published model or writing the signature next to it failed.
    #[error("{0}")]
    Storage(String),
    #[error("signing: {0}")]
    Internal(String),
}

impl SignError {
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    /// Whether fixing the job's configuration (key, token) is the cure.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Key(_) | Self::Token(_))
    }
}

/// A transport error, with its cause chain and a hint for TLS problems.
pub(crate) fn http_error(service: &str, url: &Url, e: &reqwest::Error) -> SignError {
    let hint = if crate::transfer::error::chain(e).contains("certificate") {
        " (a private CA can be trusted through SSL_CERT_FILE)"
    } else {
        ""
    };
    SignError::Service(format!(
        "{service} {url}: {}{hint}",
        crate::transfer::error::chain(e)
    ))
}

impl From<SignError> for RunError {
    fn from(e: SignError) -> Self {
        let reason = if e.is_configuration() {
            FailureReason::InvalidConfiguration
        } else {
            FailureReason::SigningFailed
        };
        RunError::new(reason, e.to_string())
    }
}
