//! The signing decision.
//!
//! | `--sign` | SIGSTORE_TUF_URL / _FULCIO_URL / _REKOR_URL | decision                        |
//! |----------|---------------------------------------------|---------------------------------|
//! | true     | any                                         | enabled (explicit)              |
//! | false    | any                                         | disabled                        |
//! | unset    | all three                                   | enabled (auto-detected)         |
//! | unset    | none                                        | disabled, silently              |
//! | unset    | some                                        | disabled, warning names missing |
//!
//! Signing itself is not implemented yet. Validation therefore rejects every *enabled*
//! decision with "signing is not implemented yet" rather than skipping a signature the user
//! asked for (explicitly, or by configuring sigstore); `--sign false` is the way out.

use std::path::PathBuf;

use super::env::LoadContext;

pub const SIGSTORE_TUF_URL: &str = "SIGSTORE_TUF_URL";
pub const SIGSTORE_FULCIO_URL: &str = "SIGSTORE_FULCIO_URL";
pub const SIGSTORE_REKOR_URL: &str = "SIGSTORE_REKOR_URL";
/// Optional timestamp authority; does not take part in the decision.
pub const SIGSTORE_TSA_URL: &str = "SIGSTORE_TSA_URL";

/// The sigstore endpoints from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigstoreEndpoints {
    pub tuf_url: Option<String>,
    pub fulcio_url: Option<String>,
    pub rekor_url: Option<String>,
    pub tsa_url: Option<String>,
}

impl SigstoreEndpoints {
    pub fn from_context(ctx: &LoadContext) -> Self {
        let get = |n: &str| ctx.var(n).map(str::to_owned);
        Self {
            tuf_url: get(SIGSTORE_TUF_URL),
            fulcio_url: get(SIGSTORE_FULCIO_URL),
            rekor_url: get(SIGSTORE_REKOR_URL),
            tsa_url: get(SIGSTORE_TSA_URL),
        }
    }

    /// Names of the required variables that are unset.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            (SIGSTORE_TUF_URL, &self.tuf_url),
            (SIGSTORE_FULCIO_URL, &self.fulcio_url),
            (SIGSTORE_REKOR_URL, &self.rekor_url),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n)
        .collect()
    }
}

/// Why signing is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnabledBy {
    /// `--sign true`.
    Flag,
    /// `--sign` unset and all three SIGSTORE_* variables set.
    Environment,
}

/// Why signing is off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisabledBy {
    /// `--sign false`.
    Flag,
    /// `--sign` unset and no SIGSTORE_* variable set.
    NoSigstoreConfig,
    /// `--sign` unset and only some variables set; lists the missing ones.
    PartialSigstoreConfig { missing: Vec<&'static str> },
}

/// The outcome of the decision table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningDecision {
    Enabled { by: EnabledBy },
    Disabled { by: DisabledBy },
}

impl SigningDecision {
    pub fn is_enabled(&self) -> bool {
        matches!(self, Self::Enabled { .. })
    }

    /// The warning to log, if any (only the partial-configuration row has one).
    pub fn warning(&self) -> Option<String> {
        match self {
            Self::Disabled {
                by: DisabledBy::PartialSigstoreConfig { missing },
            } => Some(format!(
                "signing skipped: --sign is not set and sigstore is only partly configured \
                 (missing {}); set all of SIGSTORE_TUF_URL, SIGSTORE_FULCIO_URL and \
                 SIGSTORE_REKOR_URL, or pass --sign false to silence this warning",
                missing.join(", ")
            )),
            _ => None,
        }
    }
}

/// Applies the decision table.
pub fn decide(sign: Option<bool>, endpoints: &SigstoreEndpoints) -> SigningDecision {
    match sign {
        Some(true) => SigningDecision::Enabled {
            by: EnabledBy::Flag,
        },
        Some(false) => SigningDecision::Disabled {
            by: DisabledBy::Flag,
        },
        None => {
            let missing = endpoints.missing();
            match missing.len() {
                0 => SigningDecision::Enabled {
                    by: EnabledBy::Environment,
                },
                3 => SigningDecision::Disabled {
                    by: DisabledBy::NoSigstoreConfig,
                },
                _ => SigningDecision::Disabled {
                    by: DisabledBy::PartialSigstoreConfig { missing },
                },
            }
        }
    }
}

/// Signing configuration handed to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signing {
    pub decision: SigningDecision,
    pub endpoints: SigstoreEndpoints,
    /// `--signing-identity-token-path`; `None` means the signer's default (the
    /// service-account token).
    pub identity_token_path: Option<PathBuf>,
}
