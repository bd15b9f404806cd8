//! The model signature inside a modelcar: `/models/model.sig`, like the Python job's images.
//!
//! Why inside the image: the Python job signs the downloaded model directory before it builds
//! the image, so `model_signing verify` accepts the image's extracted `/models`; consumers of
//! those images expect it. The OCI referrer signature of the manifest ([`super::oci_image`]) is
//! made as well, after the push.
//!
//! The file digests are the sha256 of each file's content computed while the layer streamed to
//! the registry (the registry checks the layer's digest over the same bytes), so the model is
//! read once. Paths model-signing ignores ([`statement::is_ignored`]) are pushed but not
//! listed, as the verifier skips them; a source file at `model.sig` is replaced by ours.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::error::SignError;
use super::signer::Signer;
use super::statement::{self, FileDigest, SIGNATURE_FILE};
use crate::oci::ImageFiles;
use crate::transfer::{ModelPath, Reason, TransferError};

/// Writes `model.sig` for the files of one image.
pub struct ModelSignature {
    signer: Arc<Signer>,
    /// The subject name (informative: verifiers compare the files, not the name).
    name: String,
}

impl ModelSignature {
    pub fn new(signer: Arc<Signer>, repository: &str) -> Self {
        let name = repository
            .rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or("model")
            .to_owned();
        Self { signer, name }
    }
}

/// The statement's file list: every pushed file except those model-signing ignores.
pub fn listed(digests: &[(String, [u8; 32])]) -> Vec<FileDigest> {
    digests
        .iter()
        .filter(|(p, _)| !statement::is_ignored(p))
        .map(|(path, sha256)| FileDigest {
            path: path.clone(),
            sha256: *sha256,
        })
        .collect()
}

fn transfer_error(e: SignError) -> TransferError {
    let reason = if e.is_configuration() {
        Reason::InvalidConfiguration
    } else {
        Reason::SigningFailed
    };
    TransferError::new(reason, format!("signing the model files: {e}"))
}

impl ImageFiles for ModelSignature {
    fn replaces(&self) -> &[&str] {
        &[SIGNATURE_FILE]
    }

    fn files<'a>(
        &'a self,
        digests: &'a [(String, [u8; 32])],
    ) -> BoxFuture<'a, Result<Vec<(ModelPath, Bytes)>, TransferError>> {
        Box::pin(async move {
            let files = listed(digests);
            if files.is_empty() {
                return Err(transfer_error(SignError::Storage(
                    "the image holds no model file to sign".into(),
                )));
            }
            let bundle = self
                .signer
                .sign_statement(&statement::model_statement(&self.name, &files))
                .await
                .map_err(transfer_error)?;
            let path = ModelPath::new(SIGNATURE_FILE)?;
            tracing::info!(
                files = files.len(),
                "model files signed; adding /models/{SIGNATURE_FILE} to the image"
            );
            Ok(vec![(path, Bytes::from(bundle.to_json()))])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_paths_are_not_listed() {
        let d = |p: &str| (p.to_owned(), [7u8; 32]);
        let listed = listed(&[
            d(".git/HEAD"),
            d("config.json"),
            d("sub/model.sig"),
            d(".gitignore"),
        ]);
        let paths: Vec<&str> = listed.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["config.json", "sub/model.sig"]);
    }

    #[test]
    fn the_subject_is_the_repository_name() {
        let signer = Arc::new(Signer::Key(
            super::super::keys::SigningKey::generate().unwrap(),
        ));
        assert_eq!(
            ModelSignature::new(signer.clone(), "team/bert").name,
            "bert"
        );
        assert_eq!(ModelSignature::new(signer, "").name, "model");
    }
}
