//! Why a run failed: the Job contract's [`FailureReason`] and a message that keeps the root
//! cause ([`RunError`]), and how the errors of the layers below (configuration, transfer,
//! registry client) become one. Kept apart from the orchestration in [`crate::run`] so that
//! the signing code and the registration steps can fail the same way without depending on it.
use crate::error::{ConfigError, ConfigErrors};
use crate::transfer::TransferError;

/// The stable failure codes of the termination message (and of the ModelTransfer status): the
/// Job contract's one vocabulary, also the transfer engine's.
pub use mro_job_contract::FailureReason;

/// A failed run: a stable reason and a message that keeps the root cause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct RunError {
    pub reason: FailureReason,
    pub message: String,
}

impl RunError {
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.reason.exit_code()
    }
}

impl From<TransferError> for RunError {
    fn from(e: TransferError) -> Self {
        Self::new(e.reason, e.message)
    }
}

impl From<&ConfigErrors> for RunError {
    fn from(e: &ConfigErrors) -> Self {
        let all_not_implemented = !e.is_empty()
            && e.iter().all(|c| {
                matches!(
                    c,
                    ConfigError::SigningNotImplemented { .. }
                        | ConfigError::SourceNotImplemented { .. }
                )
            });
        let reason = if all_not_implemented {
            FailureReason::NotImplemented
        } else {
            FailureReason::InvalidConfiguration
        };
        Self::new(reason, e.to_string())
    }
}

/// Maps a registry client error, keeping its cause chain. Client configuration problems (a bad
/// CA bundle) are configuration errors; everything else is the registry refusing or failing.
pub fn registry_error(e: registry_client::Error, doing: &str) -> RunError {
    let reason = match &e {
        registry_client::Error::InvalidConfig { .. } => FailureReason::InvalidConfiguration,
        _ => FailureReason::RegistryRejected,
    };
    let hint = match &e {
        registry_client::Error::Unauthorized { .. } => {
            " (check the bearer token: --registry-user-token / the service-account token)"
        }
        registry_client::Error::Forbidden { .. } => {
            " (the token is valid but lacks permission on the Model Registry)"
        }
        registry_client::Error::Tls { .. } => {
            " (check --registry-custom-ca and --registry-is-secure)"
        }
        _ => "",
    };
    RunError::new(
        reason,
        format!(
            "Model Registry: {doing}: {}{hint}",
            crate::transfer::error::chain(&e)
        ),
    )
}
