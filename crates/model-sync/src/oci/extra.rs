//! Files added to a modelcar after its model layers, computed from the model files' content
//! digests (the model signature `/models/model.sig`). The sink knows only the [`ImageFiles`]
//! trait; signing implements it (`crate::sign::modelcar`), so `oci` does not depend on `sign`.
//! Each extra file is one more layer, like a model file, listed last in the manifest.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt as _, stream};
use sha2::Digest as _;

use super::group::PlannedLayer;
use super::image::ModelLayer;
use super::layer::{Previous, Target};
use crate::transfer::{
    ByteStream, ModelFile, ModelPath, OpenFile, Progress, Reason, TransferError,
};

/// Files an image gets after its model layers, made from the model files' content digests:
/// the model signature (`/models/model.sig`).
pub trait ImageFiles: Send + Sync {
    /// Paths a source file must not have (the sink drops them, with a warning: they would be
    /// replaced anyway).
    fn replaces(&self) -> &[&str];

    /// The files to add, given `(path, sha256 of the content)` of every model file, path order.
    fn files<'a>(
        &'a self,
        digests: &'a [(String, [u8; 32])],
    ) -> BoxFuture<'a, Result<Vec<(ModelPath, Bytes)>, TransferError>>;
}

/// Uploads the extra files' layers, made from the model layers' content digests.
pub(crate) async fn extra_layers(
    extra: &dyn ImageFiles,
    target: &Target<'_>,
    layers: &[ModelLayer],
) -> Result<Vec<ModelLayer>, TransferError> {
    let mut digests = Vec::with_capacity(layers.len());
    for (path, sha) in layers.iter().flat_map(|l| &l.contents) {
        let sha = sha
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                TransferError::new(
                    Reason::Internal,
                    format!("no content digest for the model file {path}"),
                )
            })?;
        digests.push((path.clone(), sha));
    }
    // Shared layers and file layers interleave by first path: the signature lists path order.
    digests.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (path, data) in extra.files(&digests).await? {
        let file = ModelFile {
            path,
            size: data.len() as u64,
            fingerprint: None,
            sha256: Some(hex::encode(sha2::Sha256::digest(&data))),
        };
        let source = InMemory(data);
        let progress = Progress::new(file.size);
        let planned = PlannedLayer {
            files: vec![0],
            shared: false,
        };
        let files = std::slice::from_ref(&file);
        let layer = target
            .model_layer(&source, files, &planned, &Previous::default(), &progress)
            .await?;
        out.push(layer);
    }
    Ok(out)
}

/// A source of one file held in memory (an extra file).
struct InMemory(Bytes);

impl OpenFile for InMemory {
    fn open<'a>(
        &'a self,
        _file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        let rest = self.0.slice((offset as usize).min(self.0.len())..);
        Box::pin(async move { Ok(stream::once(async move { Ok(rest) }).boxed()) })
    }
}
