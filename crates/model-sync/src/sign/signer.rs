//! The ready signer (a key, or the keyless services with their trusted root) and how it signs
//! a statement; its own file so the modules that sign published content import it directly.
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use url::Url;

use super::bundle::{
    BUNDLE_MEDIA_TYPE, Bundle, Envelope, IN_TOTO_PAYLOAD_TYPE, PublicKeyIdentifier, RawBytes,
    Rfc3161Timestamp, TimestampVerificationData, VerificationMaterial, pae,
};
use super::error::SignError;
use super::keys::SigningKey;
use super::trust::{self, TrustedRoot};
use super::{fulcio, rekor, tsa};
use crate::config::SigningMode;
use crate::failure::RunError;

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
