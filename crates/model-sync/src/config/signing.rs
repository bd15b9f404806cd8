//! The signing decision and the signing mode.
//!
//! | `--sign` | `--signing-key-path` | SIGSTORE_TUF_URL / _FULCIO_URL / _REKOR_URL | decision                        |
//! |----------|----------------------|---------------------------------------------|---------------------------------|
//! | true     | any                  | any                                         | enabled (explicit)              |
//! | false    | any                  | any                                         | disabled                        |
//! | unset    | set                  | any                                         | enabled (key-based)             |
//! | unset    | unset                | all three                                   | enabled (auto-detected)         |
//! | unset    | unset                | none                                        | disabled, silently              |
//! | unset    | unset                | some                                        | disabled, warning names missing |
//!
//! Mode of an enabled decision ([`SigningMode`]): key-based when `--signing-key-path` is set
//! (no sigstore service is contacted), otherwise keyless, which needs SIGSTORE_FULCIO_URL and
//! SIGSTORE_REKOR_URL and an identity token (`--signing-identity-token-path`, default the
//! service-account token). With SIGSTORE_TUF_URL the signer fetches the trusted root from that
//! TUF repository and checks Fulcio's certificate and Rekor's entry against it
//! ([`crate::sign::trust`]); the initial `root.json` is `--signing-tuf-root-path` when set, else
//! the repository's own, trusted on first use. Without it, the services' answers are not checked
//! (a warning says so). With SIGSTORE_TSA_URL (keyless only) every signature is also
//! timestamped by that RFC 3161 timestamp authority ([`crate::sign::tsa`]); key-based bundles
//! carry no timestamp (the mode is meant for air-gapped clusters), so the variable is refused
//! there rather than ignored.

use std::path::{Path, PathBuf};

use url::Url;

use super::args::{Key, parse_bool};
use super::env::{Layers, LoadContext};
use crate::error::{ConfigError, ConfigErrors, Field};

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
    /// `--sign` unset and `--signing-key-path` set.
    SigningKey,
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

/// How an enabled signature is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningMode {
    /// A private key file; the bundle names the key by a hint, no transparency log.
    Key { path: PathBuf },
    /// An ephemeral key certified by Fulcio for the identity token, the signature logged in Rekor.
    Keyless {
        fulcio: Url,
        rekor: Url,
        token_path: PathBuf,
        /// Where the trusted root comes from (SIGSTORE_TUF_URL); `None`: not checked.
        tuf: Option<Box<TufRoot>>,
        /// SIGSTORE_TSA_URL: the timestamp authority's endpoint, posted to as given.
        tsa: Option<Box<Url>>,
    },
}

/// The TUF repository of the sigstore instance and the `root.json` to start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TufRoot {
    /// SIGSTORE_TUF_URL, ending in `/`.
    pub url: Url,
    /// `--signing-tuf-root-path`; `None`: the repository's `root.json`, trusted on first use.
    pub initial_root: Option<PathBuf>,
}

/// Signing configuration handed to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signing {
    pub decision: SigningDecision,
    pub endpoints: SigstoreEndpoints,
    /// `--signing-identity-token-path`; `None` means the signer's default (the
    /// service-account token).
    pub identity_token_path: Option<PathBuf>,
    /// `--signing-key-path`.
    pub key_path: Option<PathBuf>,
    /// `--signing-tuf-root-path`.
    pub tuf_root_path: Option<PathBuf>,
    /// Set exactly when the decision is enabled and the mode's inputs are valid.
    pub mode: Option<SigningMode>,
}

/// Reads the signing settings, applies the decision table and checks the chosen mode's inputs.
/// Files are checked for presence here (fail before any byte moves); the key's content is
/// parsed when the signer is built, still before the transfer.
pub(super) fn build(
    layers: &Layers,
    ctx: &LoadContext,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<Signing> {
    let sign = match layers.text(Key::Sign) {
        Some(v) => Some(parse_bool(Key::Sign, &v).map_err(|e| errors.push(e)).ok()?),
        None => None,
    };
    let key_path = layers.text(Key::SigningKeyPath).map(PathBuf::from);
    let tuf_root_path = layers.text(Key::SigningTufRootPath).map(PathBuf::from);
    let identity_token_path = layers
        .text(Key::SigningIdentityTokenPath)
        .map(PathBuf::from);
    let endpoints = SigstoreEndpoints::from_context(ctx);
    let decision = match (sign, &key_path) {
        (None, Some(_)) => SigningDecision::Enabled {
            by: EnabledBy::SigningKey,
        },
        _ => decide(sign, &endpoints),
    };
    if let Some(w) = decision.warning() {
        warnings.push(w);
    }
    let mut mode = None;
    if decision.is_enabled() {
        let before = errors.0.len();
        mode = match &key_path {
            Some(path) => {
                check_file(Key::SigningKeyPath.into(), path, errors);
                if endpoints.tsa_url.is_some() {
                    errors.push(ConfigError::Conflict(format!(
                        "{SIGSTORE_TSA_URL} is set with {}: key-based bundles are not \
                         timestamped (timestamps need keyless signing); unset one of them",
                        Key::SigningKeyPath.label()
                    )));
                }
                Some(SigningMode::Key { path: path.clone() })
            }
            None => keyless(
                &endpoints,
                identity_token_path.as_ref(),
                tuf_root_path.as_ref(),
                ctx,
                errors,
            ),
        };
        if errors.0.len() > before {
            mode = None;
        }
    }
    Some(Signing {
        decision,
        endpoints,
        identity_token_path,
        key_path,
        tuf_root_path,
        mode,
    })
}

fn keyless(
    endpoints: &SigstoreEndpoints,
    token_path: Option<&PathBuf>,
    tuf_root_path: Option<&PathBuf>,
    ctx: &LoadContext,
    errors: &mut ConfigErrors,
) -> Option<SigningMode> {
    let mut url = |name: &'static str, value: &Option<String>| match value {
        None => {
            errors.push(ConfigError::Missing {
                field: Field::Other(name.into()),
                when: format!(
                    "for keyless signing (or set {} for key-based signing, or --sign false)",
                    Key::SigningKeyPath.label()
                ),
            });
            None
        }
        Some(v) => match Url::parse(v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(with_slash(u)),
            _ => {
                errors.push(ConfigError::Invalid {
                    field: Field::Other(name.into()),
                    shown: format!(" {v:?}"),
                    expected: "an http(s) URL".into(),
                });
                None
            }
        },
    };
    let fulcio = url(SIGSTORE_FULCIO_URL, &endpoints.fulcio_url);
    let rekor = url(SIGSTORE_REKOR_URL, &endpoints.rekor_url);
    let tuf_url = match &endpoints.tuf_url {
        Some(_) => url(SIGSTORE_TUF_URL, &endpoints.tuf_url).map(Some),
        None => Some(None),
    };
    // The TSA URL is the endpoint itself (e.g. `.../api/v1/timestamp`): no slash appended.
    let tsa = match &endpoints.tsa_url {
        Some(v) => match Url::parse(v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(Some(Box::new(u))),
            _ => {
                errors.push(ConfigError::Invalid {
                    field: Field::Other(SIGSTORE_TSA_URL.into()),
                    shown: format!(" {v:?}"),
                    expected: "an http(s) URL".into(),
                });
                None
            }
        },
        None => Some(None),
    };
    if let Some(p) = tuf_root_path {
        if endpoints.tuf_url.is_none() {
            errors.push(ConfigError::Missing {
                field: Field::Other(SIGSTORE_TUF_URL.into()),
                when: format!(
                    "when {} is set (the initial root of that TUF repository)",
                    Key::SigningTufRootPath.label()
                ),
            });
        }
        check_file(Key::SigningTufRootPath.into(), p, errors);
    }
    let (field, token_path) = match token_path {
        Some(p) => (Key::SigningIdentityTokenPath.into(), p.clone()),
        None => (
            Field::Other(format!(
                "{} (default of {})",
                ctx.service_account_token_path.display(),
                Key::SigningIdentityTokenPath.label()
            )),
            ctx.service_account_token_path.clone(),
        ),
    };
    check_file(field, &token_path, errors);
    Some(SigningMode::Keyless {
        fulcio: fulcio?,
        rekor: rekor?,
        token_path,
        tuf: tuf_url?.map(|url| {
            Box::new(TufRoot {
                url,
                initial_root: tuf_root_path.cloned(),
            })
        }),
        tsa: tsa?,
    })
}

/// A base URL ending in `/`, so `join("api/v2/...")` keeps any path prefix.
fn with_slash(mut u: Url) -> Url {
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u
}

fn check_file(field: Field, path: &Path, errors: &mut ConfigErrors) {
    if let Err(cause) = std::fs::metadata(path).and_then(|m| {
        if m.is_file() {
            Ok(())
        } else {
            Err(std::io::Error::other("not a regular file"))
        }
    }) {
        errors.push(ConfigError::Io {
            field,
            path: path.to_owned(),
            cause,
        });
    }
}
