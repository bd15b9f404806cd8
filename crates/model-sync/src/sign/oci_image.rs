//! Signs a pushed modelcar image by its manifest digest and attaches the signature to the image
//! as an OCI 1.1 referrer, in the layout cosign 3 writes by default (cosign's BUNDLE_SPEC).
//!
//! What is signed: an in-toto statement whose subject is the repository with the digest of the
//! pushed manifest (of the index, for a multi-platform base), predicate type
//! `https://sigstore.dev/cosign/sign/v1` (cosign's "this image is signed" statement), in a DSSE
//! envelope. Keyless adds the Fulcio certificate and the Rekor `dsse` entry, as for model files.
//!
//! Where it goes: the sigstore bundle v0.3 JSON is the single layer of an artifact manifest with
//! `artifactType` `application/vnd.dev.sigstore.bundle.v0.3+json` and `subject` = the image,
//! annotated with the bundle's content kind, predicate type and creation time. Registries without
//! the referrers API (distribution 2.8) also get the `sha256-<hex>` referrers-tag index
//! ([`crate::oci::referrers`]). Clients following that spec (cosign 3's `verify`, `oras
//! discover`, any referrers-API client) find it from the image digest; `sigstore verify identity
//! ... sha256:<hex>` verifies the downloaded bundle (what the integration tests do).
//!
//! Why a referrer rather than cosign's legacy `sha256-<hex>.sig` tag:
//! - the legacy tag holds a "simple signing" payload with the certificate and a cosign-only Rekor
//!   bundle in annotations; only cosign reads it, while the sigstore bundle is what every
//!   sigstore client (sigstore-python, sigstore-go, sigstore-js) verifies offline with nothing
//!   but the trusted root, and is the format `model.sig` already uses;
//! - cosign 3 signs and verifies with bundles as referrers by default and keeps the tag form as
//!   legacy; the referrers tag schema is the OCI spec's own fallback, not a cosign convention;
//! - a referrer is an independent artifact per signature; the legacy scheme rewrites one shared
//!   manifest per image (read-modify-write of its layers on every signature).
//!
//! The cost: tools that only know the legacy tag (cosign before bundle support, older admission
//! controllers) do not see the signature. Key-based bundles have no transparency-log entry, so
//! verifiers must be told not to require one.
//!
//! Not attached: a model-signing `model.sig` over the files inside the image. The image
//! signature pins the manifest, hence every layer digest and every file byte; a `model.sig` would
//! need each file's own sha256 (layers hash the tar framing), i.e. a second read of the model.

use std::collections::BTreeMap;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::bundle::BUNDLE_MEDIA_TYPE;
use super::error::SignError;
use super::signer::Signer;
use super::statement::{self, COSIGN_SIGN_PREDICATE};
use crate::config::OciDestination;
use crate::oci::referrers::{self, Artifact, Attached};

/// Annotations cosign's bundle spec defines for referrer entries.
pub const ANNOTATION_CONTENT: &str = "dev.sigstore.bundle.content";
pub const ANNOTATION_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// Signs the image `manifest_digest` pushed to `dest` and attaches the bundle to it.
/// `ca_pem` is extra trust for the registry.
pub async fn sign(
    signer: &Signer,
    dest: &OciDestination,
    manifest_digest: &str,
    ca_pem: Option<&[u8]>,
) -> Result<Attached, SignError> {
    let hex = manifest_digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            SignError::internal(format!(
                "the push returned {manifest_digest:?}, not a sha256 manifest digest"
            ))
        })?;
    let reference = &dest.location.reference;
    let name = format!("{}/{}", reference.registry(), reference.repository());
    let bundle = signer
        .sign_statement(&statement::image_statement(&name, hex))
        .await?;
    let artifact = bundle_artifact(Bytes::from(bundle.to_json()), chrono::Utc::now());
    referrers::attach(dest, ca_pem, manifest_digest, &artifact)
        .await
        .map_err(|e| {
            SignError::Storage(format!(
                "signing: attaching the signature to {name}@{manifest_digest}: {}",
                e.message
            ))
        })
}

/// The referrer carrying a DSSE bundle of an image-signing statement.
fn bundle_artifact(bundle_json: Bytes, created: chrono::DateTime<chrono::Utc>) -> Artifact {
    let title = format!(
        "sha256-{}.sigstore.json",
        hex::encode(Sha256::digest(&bundle_json))
    );
    Artifact {
        artifact_type: BUNDLE_MEDIA_TYPE.to_owned(),
        layer_media_type: BUNDLE_MEDIA_TYPE.to_owned(),
        data: bundle_json,
        title: Some(title),
        annotations: BTreeMap::from([
            (ANNOTATION_CONTENT.to_owned(), "dsse-envelope".to_owned()),
            (
                ANNOTATION_PREDICATE_TYPE.to_owned(),
                COSIGN_SIGN_PREDICATE.to_owned(),
            ),
            (
                ANNOTATION_CREATED.to_owned(),
                created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn bundle_artifact_follows_the_cosign_bundle_spec() {
        let at = chrono::Utc
            .with_ymd_and_hms(2024, 3, 8, 18, 18, 20)
            .unwrap();
        let a = bundle_artifact(Bytes::from_static(b"{}"), at);
        assert_eq!(a.artifact_type, BUNDLE_MEDIA_TYPE);
        assert_eq!(a.layer_media_type, BUNDLE_MEDIA_TYPE);
        assert_eq!(
            a.title.as_deref(),
            Some(
                "sha256-44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\
                 .sigstore.json"
            )
        );
        assert_eq!(a.annotations[ANNOTATION_CONTENT], "dsse-envelope");
        assert_eq!(
            a.annotations[ANNOTATION_PREDICATE_TYPE],
            "https://sigstore.dev/cosign/sign/v1"
        );
        assert_eq!(
            a.annotations[ANNOTATION_CREATED],
            "2024-03-08T18:18:20.000Z"
        );
    }

    #[tokio::test]
    async fn a_malformed_digest_is_refused_before_signing() {
        let key = super::super::keys::SigningKey::generate().unwrap();
        let dest = OciDestination {
            location: crate::config::OciLocation {
                reference: "registry.example/models/m:1".parse().unwrap(),
                credentials: None,
                tls_verify: true,
            },
            base_image: "busybox:latest".into(),
        };
        let e = sign(&Signer::Key(key), &dest, "md5:abc", None)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("not a sha256 manifest digest"),
            "{e}"
        );
    }
}
