//! Sigstore signing of what a sync published.
//!
//! - [`keys`]: ECDSA P-256 keys (a PEM file, or an ephemeral key per run).
//! - [`bundle`]: the sigstore bundle v0.3 JSON and its DSSE envelope.
//! - [`statement`]: the in-toto statements (OpenSSF model-signing v1.0 over the model files).
//! - [`fulcio`], [`rekor`]: the keyless flow (identity token → certificate → log entry).
//! - [`model_files`]: hashes the published files and writes `model.sig` next to them (PVC, S3).
//! - [`modelcar`]: `model.sig` inside a modelcar image (`/models/model.sig`), from the digests
//!   the OCI sink computes while it pushes.
//! - [`oci_image`]: signs a pushed modelcar image by manifest digest and attaches the bundle as
//!   an OCI 1.1 referrer (the module explains why not cosign's legacy `.sig` tag).
//!
//! - [`tsa`]: RFC 3161 timestamps of keyless signatures from SIGSTORE_TSA_URL.
//! - [`trust`]: the sigstore trusted root from the TUF repository at SIGSTORE_TUF_URL, and the
//!   checks of Fulcio's certificate and Rekor's entry against it.
//!
//! Two modes ([`SigningMode`], chosen by the configuration): key-based (`--signing-key-path`,
//! air-gapped: the bundle names the key by a hint, no transparency log) and keyless (Fulcio
//! certificate for the workload's identity token, DSSE entry in Rekor, both recorded in the
//! bundle so verifiers need only the trusted root).
//!
//! Keyless with SIGSTORE_TUF_URL: the trusted root is fetched through TUF when the signer is
//! built (before any byte moves), and what Fulcio and Rekor return is checked against it before
//! the bundle exists; a mismatch fails the signature ([`SignError::Untrusted`]) and nothing is
//! published. Without it the services are trusted as they answer (a warning says so). The
//! identity token is read when the signer is built (fail fast) and again right before Fulcio is
//! called, so a projected token rotated by the kubelet during a long transfer is the one used.

pub mod bundle;
pub mod fulcio;
pub mod keys;
pub mod model_files;
pub mod modelcar;
pub mod oci_image;
pub mod rekor;
pub mod statement;
pub mod trust;
pub mod tsa;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::failure::{FailureReason, RunError};
use crate::transfer::Published;

pub use crate::config::SigningMode;
use bundle::{
    BUNDLE_MEDIA_TYPE, Bundle, Envelope, IN_TOTO_PAYLOAD_TYPE, PublicKeyIdentifier, RawBytes,
    Rfc3161Timestamp, TimestampVerificationData, VerificationMaterial, pae,
};
use keys::SigningKey;
use trust::TrustedRoot;

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

/// A ready signer: the key, or the keyless services, the identity token's file and the trusted
/// root (when SIGSTORE_TUF_URL is set).
pub enum Signer {
    Key(SigningKey),
    Keyless {
        http: reqwest::Client,
        fulcio: Url,
        rekor: Url,
        token_path: PathBuf,
        trust: Option<Box<TrustedRoot>>,
        /// SIGSTORE_TSA_URL: each signature is timestamped there.
        tsa: Option<Box<Url>>,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(_) => f.write_str("Signer::Key"),
            Self::Keyless {
                fulcio,
                rekor,
                trust,
                tsa,
                ..
            } => f
                .debug_struct("Signer::Keyless")
                .field("fulcio", fulcio)
                .field("rekor", rekor)
                .field("trusted_root", &trust.is_some())
                .field("tsa", tsa)
                .finish_non_exhaustive(),
        }
    }
}

impl Signer {
    /// Reads the key, or checks the identity token is readable. `ca_pem` is extra trust for the
    /// sigstore services. Keyless signers start without a trusted root ([`Self::with_trust`]).
    pub fn new(mode: &SigningMode, ca_pem: Option<&[u8]>) -> Result<Self, SignError> {
        match mode {
            SigningMode::Key { path } => {
                let pem = read(path, SignError::Key)?;
                Ok(Self::Key(SigningKey::from_pem(
                    &pem,
                    &path.display().to_string(),
                )?))
            }
            SigningMode::Keyless {
                fulcio,
                rekor,
                token_path,
                tsa,
                ..
            } => {
                read_token(token_path)?;
                Ok(Self::Keyless {
                    http: http_client(ca_pem)?,
                    fulcio: fulcio.clone(),
                    rekor: rekor.clone(),
                    token_path: token_path.clone(),
                    trust: None,
                    tsa: tsa.clone(),
                })
            }
        }
    }

    /// A keyless signer that checks Fulcio's and Rekor's answers against `root`.
    pub fn with_trust(mut self, root: TrustedRoot) -> Self {
        if let Self::Keyless { trust, .. } = &mut self {
            *trust = Some(Box::new(root));
        }
        self
    }

    /// The HTTP client of a keyless signer (the one the TUF repository is fetched with).
    pub fn http(&self) -> Option<&reqwest::Client> {
        match self {
            Self::Key(_) => None,
            Self::Keyless { http, .. } => Some(http),
        }
    }

    /// Signs an in-toto statement: a bundle with a DSSE envelope.
    pub async fn sign_statement(&self, statement: &[u8]) -> Result<Bundle, SignError> {
        let to_sign = pae(IN_TOTO_PAYLOAD_TYPE, statement);
        match self {
            Self::Key(key) => {
                let envelope = Envelope::new(IN_TOTO_PAYLOAD_TYPE, statement, &key.sign(&to_sign)?);
                let hint = hex::encode(Sha256::digest(key.public_key_pem().as_bytes()));
                Ok(Bundle {
                    media_type: BUNDLE_MEDIA_TYPE.to_owned(),
                    verification_material: VerificationMaterial {
                        public_key: Some(PublicKeyIdentifier { hint }),
                        certificate: None,
                        tlog_entries: Vec::new(),
                        timestamp_verification_data: None,
                    },
                    dsse_envelope: Some(envelope),
                    message_signature: None,
                })
            }
            Self::Keyless {
                http,
                fulcio,
                rekor,
                token_path,
                trust,
                tsa,
            } => {
                // Read again: a projected token may have been rotated since the start.
                let token = read_token(token_path)?;
                let key = SigningKey::generate()?;
                let chain = fulcio::signing_cert(http, fulcio, &token, &key).await?;
                let validity = match trust {
                    Some(root) => Some(
                        trust::certificate::check(root, &chain, chrono::Utc::now()).map_err(
                            |why| SignError::Untrusted {
                                service: "Fulcio",
                                what: "a certificate",
                                why,
                            },
                        )?,
                    ),
                    None => None,
                };
                let leaf = &chain[0];
                let signature = key.sign(&to_sign)?;
                let envelope = Envelope::new(IN_TOTO_PAYLOAD_TYPE, statement, &signature);
                let timestamp_verification_data = match tsa {
                    Some(url) => {
                        let reply = tsa::timestamp(http, url, &signature).await?;
                        if let Some(root) = trust {
                            trust::timestamp::check(root, &reply).map_err(|why| {
                                SignError::Untrusted {
                                    service: "the timestamp authority",
                                    what: "a timestamp",
                                    why,
                                }
                            })?;
                        }
                        Some(TimestampVerificationData {
                            rfc3161_timestamps: vec![Rfc3161Timestamp {
                                signed_timestamp: STANDARD.encode(reply),
                            }],
                        })
                    }
                    None => None,
                };
                let entry = rekor::upload_dsse(http, rekor, &envelope, leaf).await?;
                match (trust, validity) {
                    (Some(root), Some(validity)) => trust::tlog::check(root, &entry, validity)
                        .map_err(|why| SignError::Untrusted {
                            service: "Rekor",
                            what: "a log entry",
                            why,
                        })?,
                    _ => tracing::warn!(
                        "SIGSTORE_TUF_URL is not set: the certificate from Fulcio and the entry \
                         from Rekor are not checked against a trusted root (verifiers will)"
                    ),
                }
                tracing::info!(log_index = %entry.log_index, "signature recorded in Rekor");
                Ok(Bundle {
                    media_type: BUNDLE_MEDIA_TYPE.to_owned(),
                    verification_material: VerificationMaterial {
                        public_key: None,
                        certificate: Some(RawBytes {
                            raw_bytes: STANDARD.encode(leaf),
                        }),
                        tlog_entries: vec![entry],
                        timestamp_verification_data,
                    },
                    dsse_envelope: Some(envelope),
                    message_signature: None,
                })
            }
        }
    }
}

fn read(path: &Path, err: fn(String) -> SignError) -> Result<Vec<u8>, SignError> {
    std::fs::read(path).map_err(|e| err(format!("{}: cannot read: {e}", path.display())))
}

/// The identity token in `path`, trimmed; empty or non-UTF-8 files are refused.
fn read_token(path: &Path) -> Result<String, SignError> {
    let token = read(path, SignError::Token)?;
    let token = String::from_utf8(token)
        .map_err(|_| SignError::Token(format!("{} is not UTF-8 text", path.display())))?;
    if token.trim().is_empty() {
        return Err(SignError::Token(format!("{} is empty", path.display())));
    }
    Ok(token.trim().to_owned())
}

fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, SignError> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("model-sync/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| SignError::Service(format!("SSL_CERT_FILE is not a PEM bundle: {e}")))?;
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| SignError::internal(format!("building the HTTP client: {e}")))
}

impl Signer {
    /// The signer a configuration asks for (`None` when signing is off). Extra trust for the
    /// sigstore services comes from `SSL_CERT_FILE`, like for OCI registries. Keyless with a
    /// TUF repository: the trusted root is fetched and verified now, before any byte moves.
    pub async fn for_config(cfg: &crate::config::Config) -> Result<Option<Self>, RunError> {
        let Some(mode) = &cfg.signing.mode else {
            return Ok(None);
        };
        let ca = crate::trust::extra_ca(cfg.extra_ca_file.as_deref())?;
        let signer = Self::new(mode, ca.as_deref())?;
        let (SigningMode::Keyless { tuf: Some(tuf), .. }, Some(http)) = (mode, signer.http())
        else {
            return Ok(Some(signer));
        };
        let root = trust::tuf::fetch_trusted_root(
            http,
            &tuf.url,
            tuf.initial_root.as_deref(),
            &cfg.storage_path,
        )
        .await?;
        tracing::info!(
            certificate_authorities = root.certificate_authorities.len(),
            tlogs = root.tlogs.len(),
            ctlogs = root.ctlogs.len(),
            "trusted root fetched from SIGSTORE_TUF_URL; Fulcio's and Rekor's answers will be \
             checked against it"
        );
        Ok(Some(signer.with_trust(root)))
    }
}

/// Signs what the sync published: the image by manifest digest ([`oci_image`]) or the model
/// files ([`model_files`]).
pub async fn sign_published(
    signer: &Signer,
    cfg: &crate::config::Config,
    published: &Published,
) -> Result<(), RunError> {
    if let crate::config::Destination::Oci(dest) = &cfg.destination {
        let digest = published.digest.as_deref().ok_or_else(|| {
            SignError::internal(format!("the push of {} returned no digest", published.uri))
        })?;
        let ca = crate::trust::extra_ca(cfg.extra_ca_file.as_deref())?;
        let attached = oci_image::sign(signer, dest, digest, ca.as_deref()).await?;
        tracing::info!(
            image = %published.uri,
            signature = %attached.digest,
            referrers_tag = attached.referrers_tag.as_deref().unwrap_or("(registry referrers API)"),
            "image signed; signature attached as an OCI referrer"
        );
        return Ok(());
    }
    let at = model_files::sign(signer, &cfg.destination).await?;
    tracing::info!(signature = %at, "model files signed");
    Ok(())
}

/// The secret values signing reads (the identity token, the private key's PEM body), for the
/// log scrubber. Unreadable files give nothing: the signer reports them.
pub fn secret_values(signing: &crate::config::Signing) -> Vec<String> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    match &signing.mode {
        None => Vec::new(),
        Some(SigningMode::Keyless { token_path, .. }) => {
            read(token_path).map(|t| vec![t]).unwrap_or_default()
        }
        Some(SigningMode::Key { path }) => read(path).map(|t| pem_secrets(&t)).unwrap_or_default(),
    }
}

/// A PEM key's base64 body, whole and line by line (a log might show either); short lines
/// (the last one) are left out, they would match ordinary text.
fn pem_secrets(text: &str) -> Vec<String> {
    let body: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----") && !l.contains(':'))
        .collect();
    let mut out: Vec<String> = body
        .iter()
        .filter(|l| l.len() >= 16)
        .map(|l| (*l).to_owned())
        .collect();
    if !body.is_empty() {
        out.push(body.concat());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnabledBy, Signing, SigningDecision, SigstoreEndpoints};

    fn signing(mode: SigningMode) -> Signing {
        Signing {
            decision: SigningDecision::Enabled {
                by: EnabledBy::Flag,
            },
            endpoints: SigstoreEndpoints::default(),
            identity_token_path: None,
            key_path: None,
            tuf_root_path: None,
            mode: Some(mode),
        }
    }

    #[test]
    fn secret_values_are_the_token_and_the_key_body() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl\n").unwrap();
        let s = secret_values(&signing(SigningMode::Keyless {
            fulcio: "https://f/".parse().unwrap(),
            rekor: "https://r/".parse().unwrap(),
            token_path: token,
            tuf: None,
            tsa: None,
        }));
        assert_eq!(s, ["eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl\n"]);

        let key = dir.path().join("key.pem");
        let line1 = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0123456789abcdef";
        std::fs::write(
            &key,
            format!("-----BEGIN PRIVATE KEY-----\n{line1}\nAbC=\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let s = secret_values(&signing(SigningMode::Key { path: key }));
        assert_eq!(s, [line1.to_owned(), format!("{line1}AbC=")]);

        let missing = signing(SigningMode::Key {
            path: dir.path().join("nope"),
        });
        assert!(secret_values(&missing).is_empty());
    }

    /// The token is read again at signing time: a file emptied after the start fails the
    /// signature before any service is contacted (the URLs below do not resolve).
    #[tokio::test]
    async fn the_token_is_read_again_when_signing() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl\n").unwrap();
        let mode = SigningMode::Keyless {
            fulcio: "http://fulcio.invalid/".parse().unwrap(),
            rekor: "http://rekor.invalid/".parse().unwrap(),
            token_path: token.clone(),
            tuf: None,
            tsa: None,
        };
        let signer = Signer::new(&mode, None).unwrap();
        std::fs::write(&token, "\n").unwrap();
        let e = signer.sign_statement(b"{}").await.unwrap_err();
        assert!(
            matches!(&e, SignError::Token(m) if m.contains("is empty")),
            "{e}"
        );

        std::fs::remove_file(&token).unwrap();
        assert!(matches!(
            Signer::new(&mode, None).unwrap_err(),
            SignError::Token(_)
        ));
    }
}
