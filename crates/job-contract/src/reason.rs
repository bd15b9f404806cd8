//! The one vocabulary of failure reasons.
//!
//! model-sync's transfer engine returns them, its termination message carries their
//! [`FailureReason::code`], and the operator copies them into the ModelTransfer's `Failed`
//! condition through [`FailureReason::condition_reason`]. The strings are part of the public
//! status API: changing one breaks users' alerting, so the tests pin them.
use std::fmt;

/// Why a transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// Flags, variables, credential/metadata files, or input that cannot work as given (a bad
    /// path, an unusable archive, an empty source).
    InvalidConfiguration,
    /// The source cannot be read: not found, access denied, unreachable.
    SourceUnavailable,
    /// The destination refused the data: auth, quota, not found, unreachable.
    DestinationRejected,
    /// Bytes did not match their digest or size.
    IntegrityError,
    /// The Model Registry refused a request or a pre-check failed.
    RegistryRejected,
    /// Requested but not implemented (said loudly, never faked).
    NotImplemented,
    /// The model was published but could not be signed (Fulcio, Rekor, writing `model.sig`).
    SigningFailed,
    /// Anything else, including an interrupted run.
    Internal,
}

/// The condition reason of a failure that carries no usable reason (and of [`FailureReason::Internal`]).
pub const TRANSFER_FAILED: &str = "TransferFailed";

impl FailureReason {
    /// Every reason.
    pub const ALL: &'static [FailureReason] = &[
        Self::InvalidConfiguration,
        Self::SourceUnavailable,
        Self::DestinationRejected,
        Self::IntegrityError,
        Self::RegistryRejected,
        Self::NotImplemented,
        Self::SigningFailed,
        Self::Internal,
    ];

    /// The code in the termination message.
    pub const fn code(self) -> &'static str {
        match self {
            Self::InvalidConfiguration => "InvalidConfiguration",
            Self::SourceUnavailable => "SourceUnavailable",
            Self::DestinationRejected => "DestinationRejected",
            Self::IntegrityError => "IntegrityError",
            Self::RegistryRejected => "RegistryRejected",
            Self::NotImplemented => "NotImplemented",
            Self::SigningFailed => "SigningFailed",
            Self::Internal => "Internal",
        }
    }

    /// The reason of the ModelTransfer's `Failed` condition: the code, except that an internal
    /// error is reported as the generic [`TRANSFER_FAILED`].
    pub const fn condition_reason(self) -> &'static str {
        match self {
            Self::Internal => TRANSFER_FAILED,
            other => other.code(),
        }
    }

    /// Reads a code back. `InvalidInput` is what earlier model-sync builds wrote for input
    /// that cannot work; it is still accepted from their termination messages.
    pub fn from_code(code: &str) -> Option<Self> {
        if code == "InvalidInput" {
            return Some(Self::InvalidConfiguration);
        }
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// [`crate::exit::EXIT_INVALID_CONFIG`] for configuration problems ("fix the manifest"),
    /// [`crate::exit::EXIT_FAILURE`] for everything else.
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::InvalidConfiguration => crate::exit::EXIT_INVALID_CONFIG,
            _ => crate::exit::EXIT_FAILURE,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_stable() {
        let codes: Vec<_> = FailureReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(
            codes,
            [
                "InvalidConfiguration",
                "SourceUnavailable",
                "DestinationRejected",
                "IntegrityError",
                "RegistryRejected",
                "NotImplemented",
                "SigningFailed",
                "Internal",
            ]
        );
        assert_eq!(FailureReason::Internal.condition_reason(), "TransferFailed");
        assert_eq!(
            FailureReason::SourceUnavailable.condition_reason(),
            "SourceUnavailable"
        );
    }

    #[test]
    fn codes_read_back() {
        for r in FailureReason::ALL {
            assert_eq!(FailureReason::from_code(r.code()), Some(*r));
        }
        assert_eq!(
            FailureReason::from_code("InvalidInput"),
            Some(FailureReason::InvalidConfiguration)
        );
        assert_eq!(FailureReason::from_code("OOMKilled"), None);
    }

    #[test]
    fn only_configuration_exits_2() {
        for r in FailureReason::ALL {
            let want = if *r == FailureReason::InvalidConfiguration {
                2
            } else {
                1
            };
            assert_eq!(r.exit_code(), want, "{r}");
        }
    }
}
