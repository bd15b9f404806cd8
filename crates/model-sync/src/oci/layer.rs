//! One planned layer (the layer of one model file, or a layer shared by several small files,
//! see `group.rs`): reuse from a previous push, or stream the files from the source through the
//! tar framing into one upload.
//!
//! Files of a shared layer are read ahead, [`PREFETCH`] at a time, when they are at most
//! [`PREFETCH_MAX`] bytes (so a layer of thousands of small files is not a sequence of
//! round trips; at most `PREFETCH × PREFETCH_MAX` bytes wait per layer in flight), and written
//! in path order; larger members stream through as a file of its own layer does.
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt as _;

use super::digest::{Hasher, normalize_content_sha256};
use super::group::{self, Dirs, PlannedLayer};
use super::image::{
    self, ANNOTATION_FINGERPRINT, ANNOTATION_MEMBERS, ANNOTATION_SHA256, Descriptor, ModelLayer,
};
use super::journal::Journal;
use super::registry::{Counters, Registry};
use super::tar;
use super::upload::{BlobWriter, Journaled, upload_blob, upload_blob_journaled};
use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::source::{from_io, io_is_transient};
use crate::transfer::{ModelFile, OpenFile, Progress, Reason, TransferError};

/// Re-opens of a source stream that failed mid-file (sources already resume internally; this
/// covers those that do not), before the file upload fails.
const MAX_REOPENS: u32 = 3;
/// Members of a shared layer read ahead at once.
const PREFETCH: usize = 16;
/// Largest member of a shared layer that is read ahead (into memory).
const PREFETCH_MAX: u64 = 256 << 10;

/// Where model layers go.
pub(crate) struct Target<'a> {
    pub(crate) reg: &'a Registry,
    pub(crate) repo: &'a str,
    pub(crate) scopes: &'a [String],
    /// Largest PATCH request.
    pub(crate) segment: u64,
    /// Every file's content sha256 is computed (the model signature needs them); a previous
    /// layer is reused only when its files' content digests are known.
    pub(crate) hash_content: bool,
    /// Layer uploads are recorded here, and resumed from it (see `journal.rs`).
    pub(crate) journal: Option<&'a Journal>,
}

/// Model layers of the image already at the destination tag (reused on a retry when
/// unchanged): file layers by title, shared layers by their members' fingerprint.
#[derive(Debug, Default)]
pub(crate) struct Previous {
    pub(crate) by_path: BTreeMap<String, Descriptor>,
    pub(crate) by_members: BTreeMap<String, Descriptor>,
}

impl Previous {
    pub(crate) fn add(&mut self, l: &Descriptor) {
        if l.media_type != image::OCI_LAYER_TAR {
            return;
        }
        if let Some(title) = l.annotation(image::ANNOTATION_TITLE) {
            self.by_path.insert(title.to_owned(), l.clone());
        } else if let Some(fp) = l.annotation(ANNOTATION_MEMBERS) {
            self.by_members.insert(fp.to_owned(), l.clone());
        }
    }
}

impl Target<'_> {
    /// Reuses (when `previous` has it unchanged) or uploads one planned layer.
    pub(crate) async fn model_layer<S: OpenFile + ?Sized>(
        &self,
        source: &S,
        files: &[ModelFile],
        planned: &PlannedLayer,
        previous: &Previous,
        progress: &Progress,
    ) -> Result<ModelLayer, TransferError> {
        let (repo, scopes) = (self.repo, self.scopes);
        let members: Vec<&ModelFile> = planned.files.iter().map(|&i| &files[i]).collect();
        let first = members
            .first()
            .ok_or_else(|| TransferError::new(Reason::Internal, "an empty layer was planned"))?;
        let layer_len = group::layer_len(&members);
        let (what, history, prev, descriptor): (String, String, Option<&Descriptor>, _) =
            if planned.shared {
                let fp = group::members_fingerprint(&members);
                let last = members
                    .last()
                    .map_or(first.path.as_str(), |f| f.path.as_str());
                let what = format!("{} files ({} … {last})", members.len(), first.path);
                let history = format!(
                    "model-sync: add {} files to /{} ({} … {last})",
                    members.len(),
                    tar::MODELS_DIR,
                    first.path
                );
                // A shared layer records no per-file content digests, so it is not reused when
                // they are needed.
                let prev = fp
                    .as_deref()
                    .filter(|_| !self.hash_content)
                    .and_then(|fp| previous.by_members.get(fp));
                let count = members.len();
                let descriptor: Box<Describe> = Box::new(move |digest, _| {
                    image::shared_layer_descriptor(digest, layer_len, count, fp.as_deref())
                });
                (what, history, prev, descriptor)
            } else {
                let path = first.path.as_str().to_owned();
                let fingerprint = first.fingerprint.clone();
                let content_sha = first.sha256.as_deref().and_then(normalize_content_sha256);
                let prev = previous.by_path.get(&path).filter(|p| {
                    ((fingerprint.is_some()
                        && p.annotation(ANNOTATION_FINGERPRINT) == fingerprint.as_deref())
                        || (content_sha.is_some()
                            && p.annotation(ANNOTATION_SHA256) == content_sha.as_deref()))
                        && (!self.hash_content
                            || content_sha.is_some()
                            || p.annotation(ANNOTATION_SHA256).is_some())
                });
                let history = format!("model-sync: add /{}/{path}", tar::MODELS_DIR);
                let p = path.clone();
                let descriptor: Box<Describe> = Box::new(move |digest, content_sha| {
                    image::model_layer_descriptor(
                        &p,
                        digest,
                        layer_len,
                        fingerprint.as_deref(),
                        content_sha,
                    )
                });
                (path, history, prev, descriptor)
            };
        let what = what.as_str();
        if let Some(prev) = prev.filter(|p| p.size == layer_len)
            && self.reg.blob_size(repo, &prev.digest, scopes).await? == Some(layer_len)
        {
            tracing::info!(layer = what, digest = %prev.digest, "unchanged since the previous push; layer reused");
            Counters::add(&self.reg.counters.blobs_existing, 1);
            progress.add(members.iter().map(|f| f.size).sum());
            // Only file layers are reused when digests are needed: the source's, else the
            // previous layer's annotation.
            let contents: Vec<(String, Option<String>)> = members
                .iter()
                .map(|f| {
                    let known = f.sha256.as_deref().and_then(normalize_content_sha256);
                    let recorded = prev.annotation(ANNOTATION_SHA256).map(str::to_owned);
                    (f.path.as_str().to_owned(), known.or(recorded))
                })
                .collect();
            let single = contents.first().and_then(|c| c.1.clone());
            return Ok(ModelLayer {
                history,
                descriptor: descriptor(prev.digest.clone(), single.as_deref()),
                contents,
            });
        }
        let counted = AtomicU64::new(0);
        let hashed = Mutex::new(Vec::new());
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        let hash = self.hash_content;
        let journaled = self.journal.map(|journal| Journaled {
            journal,
            key: Journal::key(repo, &members),
            what,
        });
        let journaled = journaled.as_ref();
        let (digest, len) = retry(policy, &format!("upload of {what}"), |_| {
            let produce = |w: BlobWriter| {
                produce_layer(source, &members, hash, &hashed, w, progress, &counted)
            };
            async move {
                match journaled {
                    Some(j) => {
                        upload_blob_journaled(
                            self.reg,
                            repo,
                            scopes,
                            self.segment,
                            layer_len,
                            j,
                            produce,
                        )
                        .await
                    }
                    None => {
                        upload_blob(
                            self.reg,
                            repo,
                            scopes,
                            self.segment,
                            None,
                            layer_len,
                            produce,
                        )
                        .await
                    }
                }
            }
        })
        .await
        .map_err(|e| e.context(format!("model layer of {what}")))?;
        if len != layer_len {
            return Err(TransferError::new(
                Reason::Internal,
                format!("layer of {what} is {len} bytes, expected {layer_len}"),
            ));
        }
        tracing::debug!(layer = what, %digest, "model layer uploaded");
        let digests = hashed.into_inner().unwrap_or_else(|p| p.into_inner());
        let contents: Vec<(String, Option<String>)> = members
            .iter()
            .zip(digests.into_iter().chain(std::iter::repeat(None)))
            .map(|(f, d)| (f.path.as_str().to_owned(), d))
            .collect();
        let single = contents.first().and_then(|c| c.1.clone());
        Ok(ModelLayer {
            history,
            descriptor: descriptor(digest, single.as_deref()),
            contents,
        })
    }
}

/// Builds a layer's descriptor from its digest (and, for a file layer, its content digest).
type Describe = dyn Fn(String, Option<&str>) -> Descriptor + Send + Sync;

/// Where file content goes: the blob, or memory for a member read ahead.
trait Out {
    fn put(&mut self, data: Bytes) -> impl Future<Output = Result<(), TransferError>> + Send;
}

impl Out for BlobWriter {
    async fn put(&mut self, data: Bytes) -> Result<(), TransferError> {
        self.write(data).await
    }
}

impl Out for Vec<Bytes> {
    async fn put(&mut self, data: Bytes) -> Result<(), TransferError> {
        self.push(data);
        Ok(())
    }
}

/// Writes one layer: for each member, the directory entries it still needs, its file entry,
/// its content (read ahead or streamed) and padding; then the end-of-archive marker.
async fn produce_layer<S: OpenFile + ?Sized>(
    source: &S,
    members: &[&ModelFile],
    hash: bool,
    hashed: &Mutex<Vec<Option<String>>>,
    mut w: BlobWriter,
    progress: &Progress,
    counted: &AtomicU64,
) -> Result<BlobWriter, TransferError> {
    let report = |pos: u64| {
        let before = counted.fetch_max(pos, Ordering::Relaxed);
        if pos > before {
            progress.add(pos - before);
        }
    };
    let read_ahead = members.len() > 1;
    let mut early = futures::stream::iter(members.iter().copied())
        .map(|f| async move {
            if read_ahead && f.size <= PREFETCH_MAX {
                let mut pieces = Vec::new();
                let digest = write_content(source, f, hash, &mut pieces, &|_| {}).await?;
                Ok::<_, TransferError>(Some((pieces, digest)))
            } else {
                Ok(None)
            }
        })
        .buffered(PREFETCH);
    let mut dirs = Dirs::default();
    let mut done = 0u64;
    let mut digests = Vec::with_capacity(members.len());
    for f in members {
        let ahead = early.next().await.ok_or_else(|| {
            TransferError::new(Reason::Internal, "read-ahead ended before the members")
        })??;
        w.write(dirs.headers(&f.path, f.size).into()).await?;
        let digest = match ahead {
            Some((pieces, digest)) => {
                for p in pieces {
                    w.write(p).await?;
                }
                digest
            }
            None => write_content(source, f, hash, &mut w, &|pos| report(done + pos)).await?,
        };
        digests.push(digest);
        done += f.size;
        report(done);
        let pad = tar::padding(f.size);
        if pad > 0 {
            w.write(vec![0; pad as usize].into()).await?;
        }
    }
    w.write(vec![0; tar::END_OF_ARCHIVE as usize].into())
        .await?;
    *hashed.lock().unwrap_or_else(|p| p.into_inner()) = digests;
    Ok(w)
}

/// Streams one file's content from the source into `out` (re-opened at the current offset when
/// the stream breaks), checking its length and, when the source knows it, its sha256. Returns
/// the content's sha256 when it was computed (`hash`, or a digest to check).
async fn write_content<S: OpenFile + ?Sized, O: Out + Send>(
    source: &S,
    f: &ModelFile,
    hash: bool,
    out: &mut O,
    report: &(dyn Fn(u64) + Sync),
) -> Result<Option<String>, TransferError> {
    let path = f.path.as_str();
    let content_sha = f.sha256.as_deref().and_then(normalize_content_sha256);
    let mut content = (hash || content_sha.is_some()).then(Hasher::default);
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
                out.put(bytes).await?;
                pos += n;
                report(pos);
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
    let Some(h) = content else {
        return Ok(None);
    };
    let actual = h.finish();
    if let Some(expected) = content_sha
        && actual != expected
    {
        return Err(TransferError::new(
            Reason::IntegrityError,
            format!("{path}: content hashes to {actual}, the source listed {expected}"),
        ));
    }
    Ok(Some(actual))
}
