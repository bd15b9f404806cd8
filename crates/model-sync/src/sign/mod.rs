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

pub mod error;
pub mod signer;

use std::path::Path;

use crate::failure::RunError;
use crate::transfer::Published;

pub use crate::config::SigningMode;
pub use error::SignError;
pub use signer::Signer;

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
