//! One model file → one layer: reuse from a previous push, or stream it from the source
//! through the tar framing into a chunked upload.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt as _;

use super::digest::{Hasher, normalize_content_sha256};
use super::image::{self, ANNOTATION_FINGERPRINT, ANNOTATION_SHA256, Descriptor, ModelLayer};
use super::registry::{Counters, Registry};
use super::tar;
use super::upload::{BlobWriter, upload_blob};
use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::source::{from_io, io_is_transient};
use crate::transfer::{ModelFile, OpenFile, Progress, Reason, TransferError};

/// Re-opens of a source stream that failed mid-file (sources already resume internally; this
/// covers those that do not), before the file upload fails.
const MAX_REOPENS: u32 = 3;

/// Where model layers go.
pub(crate) struct Target<'a> {
    pub(crate) reg: &'a Registry,
    pub(crate) repo: &'a str,
    pub(crate) scopes: &'a [String],
    /// Largest PATCH request.
    pub(crate) segment: u64,
    /// Every layer gets its content's sha256 annotation (the model signature needs them); a
    /// previous layer is reused only when its content digest is known.
    pub(crate) hash_content: bool,
}

impl Target<'_> {
    /// Reuses (when `previous` matches) or uploads the layer of one model file.
    pub(crate) async fn model_layer<S: OpenFile + ?Sized>(
        &self,
        source: &S,
        f: &ModelFile,
        previous: Option<&Descriptor>,
        progress: &Progress,
    ) -> Result<ModelLayer, TransferError> {
        let (repo, scopes) = (self.repo, self.scopes);
        let path = f.path.as_str();
        let layer_len = tar::layer_len(&f.path, f.size);
        let fingerprint = f.fingerprint.as_deref();
        let content_sha = f.sha256.as_deref().and_then(normalize_content_sha256);
        if let Some(prev) = previous.filter(|p| {
            p.size == layer_len
                && ((fingerprint.is_some() && p.annotation(ANNOTATION_FINGERPRINT) == fingerprint)
                    || (content_sha.is_some()
                        && p.annotation(ANNOTATION_SHA256) == content_sha.as_deref()))
                && (!self.hash_content
                    || content_sha.is_some()
                    || p.annotation(ANNOTATION_SHA256).is_some())
        }) && self.reg.blob_size(repo, &prev.digest, scopes).await? == Some(layer_len)
        {
            let content_sha = content_sha
                .clone()
                .or_else(|| prev.annotation(ANNOTATION_SHA256).map(str::to_owned));
            tracing::info!(path, digest = %prev.digest, "file unchanged since the previous push; layer reused");
            Counters::add(&self.reg.counters.blobs_existing, 1);
            progress.add(f.size);
            return Ok(ModelLayer {
                path: path.to_owned(),
                descriptor: image::model_layer_descriptor(
                    path,
                    prev.digest.clone(),
                    layer_len,
                    fingerprint,
                    content_sha.as_deref(),
                ),
            });
        }
        let counted = AtomicU64::new(0);
        let hashed = Mutex::new(None);
        let hash = content_sha.is_some() || self.hash_content;
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        let (digest, len) = retry(policy, &format!("upload of {path}"), |_| {
            upload_blob(self.reg, repo, scopes, self.segment, None, layer_len, |w| {
                let content = Content {
                    expected: content_sha.as_deref(),
                    hash,
                    hashed: &hashed,
                };
                produce_layer(source, f, content, w, progress, &counted)
            })
        })
        .await
        .map_err(|e| e.context(format!("model file {path}")))?;
        if len != layer_len {
            return Err(TransferError::new(
                Reason::Internal,
                format!("layer of {path} is {len} bytes, expected {layer_len}"),
            ));
        }
        tracing::debug!(path, %digest, "model layer uploaded");
        let hashed = hashed.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(ModelLayer {
            path: path.to_owned(),
            descriptor: image::model_layer_descriptor(
                path,
                digest,
                layer_len,
                fingerprint,
                hashed.as_deref(),
            ),
        })
    }
}

/// What `produce_layer` does with the file's content digest.
struct Content<'a> {
    /// The source's digest (`sha256:<hex>`), checked.
    expected: Option<&'a str>,
    /// Whether to hash the content at all.
    hash: bool,
    /// Where the content digest is left (`sha256:<hex>`).
    hashed: &'a Mutex<Option<String>>,
}

/// Writes one model file's layer: tar headers, the content streamed from the source (re-opened
/// at the current offset when the stream breaks), padding and the end-of-archive blocks.
async fn produce_layer<S: OpenFile + ?Sized>(
    source: &S,
    f: &ModelFile,
    content_digest: Content<'_>,
    mut w: BlobWriter,
    progress: &Progress,
    counted: &AtomicU64,
) -> Result<BlobWriter, TransferError> {
    let path = f.path.as_str();
    w.write(tar::layer_prefix(&f.path, f.size).into()).await?;
    let start = w.written();
    let mut content = content_digest.hash.then(Hasher::default);
    let mut pos = 0u64;
    let mut reopens = 0;
    let open = |offset: u64| {
        retry(RetryPolicy::default(), "open source file", move |_| {
            source.open(f, offset)
        })
    };
    let mut stream = if f.size > 0 {
        Some(open(0).await?)
    } else {
        None
    };
    while let Some(s) = stream.as_mut() {
        if pos == f.size {
            // The source must end here: more bytes mean the listing was stale.
            while let Some(Ok(extra)) = s.next().await {
                if !extra.is_empty() {
                    return Err(TransferError::new(
                        Reason::IntegrityError,
                        format!(
                            "{path}: the source has more than the listed {} bytes",
                            f.size
                        ),
                    ));
                }
            }
            break;
        }
        match s.next().await {
            Some(Ok(bytes)) => {
                if bytes.len() as u64 > f.size - pos {
                    return Err(TransferError::new(
                        Reason::IntegrityError,
                        format!(
                            "{path}: the source has more than the listed {} bytes",
                            f.size
                        ),
                    ));
                }
                if let Some(h) = content.as_mut() {
                    h.update(&bytes);
                }
                let n = bytes.len() as u64;
                w.write(bytes).await?;
                pos += n;
                let before = counted.fetch_max(pos, Ordering::Relaxed);
                if pos > before {
                    progress.add(pos - before);
                }
            }
            failure => {
                reopens += 1;
                let why = match failure {
                    Some(Err(e)) if !io_is_transient(&e) => {
                        return Err(from_io(e, &format!("{path}: reading the source")));
                    }
                    Some(Err(e)) => e.to_string(),
                    _ => "the stream ended early".to_owned(),
                };
                if reopens > MAX_REOPENS {
                    return Err(TransferError::new(
                        Reason::SourceUnavailable,
                        format!("{path}: reading failed at byte {pos} of {}: {why}", f.size),
                    ));
                }
                tracing::warn!(path, pos, error = %why, "source stream broke; re-opening at the current offset");
                tokio::time::sleep(std::time::Duration::from_millis(200 << reopens.min(5))).await;
                stream = Some(open(pos).await?);
            }
        }
    }
    debug_assert_eq!(w.written() - start, pos);
    if let Some(h) = content {
        let actual = h.finish();
        if let Some(expected) = content_digest.expected
            && actual != expected
        {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!("{path}: content hashes to {actual}, the source listed {expected}"),
            ));
        }
        *content_digest
            .hashed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(actual);
    }
    w.write(tar::layer_suffix(f.size).into()).await?;
    Ok(w)
}
