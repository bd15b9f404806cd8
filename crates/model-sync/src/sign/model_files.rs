//! Signs the model files a sync published, in the OpenSSF model-signing format, and stores the
//! bundle as `model.sig` at the top of the model (PVC directory or S3 prefix), where
//! `model_signing verify <model> --signature <model>/model.sig` expects it.
//!
//! The digests are taken from the destination, after the transfer: the signature covers what is
//! stored, everything under the model's root (a verifier hashes the whole directory and rejects
//! unlisted files), except the paths model-signing always ignores ([`statement::is_ignored`]).
//! This costs one more read of the model; reading it back is also what proves the bytes landed.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};

use super::error::SignError;
use super::signer::Signer;
use super::statement::{self, FileDigest, SIGNATURE_FILE};
use crate::config::Destination;
use crate::local::LocalSource;
use crate::s3::{S3Destination, S3Source};
use crate::transfer::{ByteStream, ModelFile, ModelPath, OpenFile, Progress, TransferError};

/// Files hashed at once.
const CONCURRENCY: usize = 4;

/// Where the signature was written (a path or an `s3://` URI).
pub async fn sign(signer: &Signer, destination: &Destination) -> Result<String, SignError> {
    match destination {
        Destination::Pvc { path } => {
            let source = LocalSource::new(path.clone());
            let files = source
                .list()
                .await
                .map_err(storage("listing", path.display()))?;
            let name = model_name(&path.to_string_lossy());
            let digests = hash_all(&source, &files).await?;
            let bundle = signer
                .sign_statement(&statement::model_statement(&name, &digests))
                .await?;
            let target = path.join(SIGNATURE_FILE);
            write_file(&target, &bundle.to_json()).await?;
            Ok(target.display().to_string())
        }
        Destination::S3(location) => {
            let source = S3Source::new(location).await;
            let uri = format!("s3://{}/{}", location.bucket, location.key);
            let files = source.list().await.map_err(storage("listing", &uri))?;
            let name = model_name(&location.key);
            let digests = hash_all(&source, &files).await?;
            let bundle = signer
                .sign_statement(&statement::model_statement(&name, &digests))
                .await?;
            let json = Bytes::from(bundle.to_json());
            let file = ModelFile {
                path: ModelPath::new(SIGNATURE_FILE).map_err(|e| SignError::internal(e.message))?,
                size: json.len() as u64,
                fingerprint: None,
                sha256: Some(hex::encode(Sha256::digest(&json))),
            };
            S3Destination::new(location)
                .await
                .publish(
                    &InMemory(json),
                    std::slice::from_ref(&file),
                    &Progress::new(file.size),
                )
                .await
                .map_err(storage("writing model.sig to", &uri))?;
            Ok(format!("{}/{SIGNATURE_FILE}", uri.trim_end_matches('/')))
        }
        Destination::Oci(_) => Err(SignError::internal(
            "OCI destinations are signed by the image step, not here",
        )),
    }
}

/// The subject name: the last component of the model's path or prefix (informative only).
fn model_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("model")
        .to_owned()
}

fn storage<D: std::fmt::Display>(
    doing: &'static str,
    what: D,
) -> impl FnOnce(TransferError) -> SignError {
    move |e| SignError::Storage(format!("signing: {doing} {what}: {}", e.message))
}

/// sha256 of every file not ignored by model-signing, checked against the listed size.
async fn hash_all<S: OpenFile>(
    source: &S,
    files: &[ModelFile],
) -> Result<Vec<FileDigest>, SignError> {
    let wanted: Vec<&ModelFile> = files
        .iter()
        .filter(|f| !statement::is_ignored(f.path.as_str()))
        .collect();
    if wanted.is_empty() {
        return Err(SignError::Storage(
            "signing: the destination holds no model file to sign".into(),
        ));
    }
    futures::stream::iter(wanted)
        .map(|f| hash_one(source, f))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

async fn hash_one<S: OpenFile>(source: &S, file: &ModelFile) -> Result<FileDigest, SignError> {
    let fail =
        |why: String| SignError::Storage(format!("signing: reading back {}: {why}", file.path));
    let mut stream = source.open(file, 0).await.map_err(|e| fail(e.message))?;
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fail(e.to_string()))?;
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    if len != file.size {
        return Err(fail(format!("read {len} bytes, listed {}", file.size)));
    }
    Ok(FileDigest {
        path: file.path.as_str().to_owned(),
        sha256: hasher.finalize().into(),
    })
}

/// Temporary file next to the target, then rename: a reader never sees half a signature.
async fn write_file(target: &std::path::Path, data: &[u8]) -> Result<(), SignError> {
    let fail = |e: std::io::Error| {
        SignError::Storage(format!("signing: writing {}: {e}", target.display()))
    };
    let tmp = target.with_file_name(format!(".{SIGNATURE_FILE}.tmp"));
    tokio::fs::write(&tmp, data).await.map_err(fail)?;
    tokio::fs::rename(&tmp, target).await.map_err(fail)
}

/// A one-file source over bytes in memory (the signature being uploaded).
struct InMemory(Bytes);

impl OpenFile for InMemory {
    fn open<'a>(
        &'a self,
        _file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        let rest = self.0.slice((offset as usize).min(self.0.len())..);
        Box::pin(async move { Ok(futures::stream::once(async move { Ok(rest) }).boxed()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name_is_the_last_component() {
        assert_eq!(model_name("/mnt/models/bert/"), "bert");
        assert_eq!(model_name("models/bert"), "bert");
        assert_eq!(model_name(""), "model");
    }
}
