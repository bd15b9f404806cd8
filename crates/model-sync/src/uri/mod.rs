//! The `uri` source: one http(s) URL.
//!
//! - A plain file whose size the server announces (`Content-Length`) is streamed straight to the
//!   destination, no staging: one model file named by the `Content-Disposition` file name or the
//!   URL's last path segment. Interrupted reads resume with `Range` requests (`If-Range` pinned to
//!   the ETag or `Last-Modified` when the server sends one).
//! - A plain file of unknown size is staged to the scratch directory first (sizes must be known
//!   before a destination starts).
//! - A zip, tar or tar.gz archive (by file name or content type; the leading bytes must agree —
//!   see [`archive::detect`] for why magic bytes alone are not enough) is downloaded to the
//!   scratch directory and unpacked safely ([`archive`]), then read like a local directory.
//!   Staging lives in a temporary directory under the scratch path, removed when the source is
//!   dropped.
//! - `hf://` is not this module: see [`crate::hf`].
//!
//! Credentials: `user:password@` in the URL (sent as basic auth) or an `Authorization` header value
//! in [`UriOptions::authorization`] (the configuration has no separate URI credential today).
//! Messages show the URL without user info and without the query string.
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use tempfile::TempDir;

use crate::config::{Secret, UriSource};
use crate::local::{Expected, LocalSource, write_atomically};
use crate::transfer::retry::{Reopen, ResumeOptions, resume_stream, retry};
use crate::transfer::{ByteStream, ModelFile, ModelPath, OpenFile, Reason, TransferError};

pub mod archive;
mod http;
#[cfg(test)]
mod tests;

pub use archive::{ArchiveKind, ExtractLimits, Extracted};
use http::{Head, Remote, body_stream, url_file_name};

/// Bytes looked at before deciding what a download is.
const PEEK: usize = 512;

/// Knobs for [`HttpSource::prepare`].
#[derive(Clone, Debug, Default)]
pub struct UriOptions {
    /// A full `Authorization` header value (`Bearer …`, `Basic …`).
    pub authorization: Option<Secret<String>>,
    pub limits: ExtractLimits,
    pub resume: ResumeOptions,
    /// A preconfigured client (custom CA, proxy); default: rustls with the platform roots.
    pub client: Option<reqwest::Client>,
}

/// An http(s) model source (see the module documentation).
pub struct HttpSource {
    inner: Inner,
}

enum Inner {
    /// Streamed from the server.
    Direct(Arc<Direct>),
    /// Staged (and unpacked) under the scratch directory.
    Staged {
        local: LocalSource,
        _scratch: TempDir,
    },
}

struct Direct {
    remote: Remote,
    file: ModelFile,
    validator: Option<String>,
    resume: ResumeOptions,
    /// The body of the first GET, kept for the first `open(…, 0)`.
    first: Mutex<Option<ByteStream>>,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Direct(d) => write!(f, "HttpSource(direct {})", d.remote.shown),
            Inner::Staged { local, .. } => {
                write!(f, "HttpSource(staged {})", local.path().display())
            }
        }
    }
}

impl HttpSource {
    /// Fetches the URL's headers and first bytes, and stages/unpacks it under `scratch` when it is
    /// an archive or of unknown size.
    pub async fn prepare(
        source: &UriSource,
        scratch: &Path,
        options: UriOptions,
    ) -> Result<HttpSource, TransferError> {
        let url = match source {
            UriSource::Http(u) => u,
            UriSource::HuggingFace { repo, .. } => {
                return Err(TransferError::new(
                    Reason::Internal,
                    format!("hf://{repo} is read by the Hub source (crate::hf), not as a URL"),
                ));
            }
        };
        let remote = Remote::new(url, options.authorization.clone(), options.client.clone())?;
        let what = format!("downloading {}", remote.shown);
        let (resp, head) = retry(options.resume.policy, &what, |_| remote.get(None, None)).await?;
        let (peeked, body) = peek(body_stream(resp), PEEK)
            .await
            .map_err(|e| crate::transfer::source::from_io(e, &what))?;
        let name = head
            .file_name
            .clone()
            .or_else(|| url_file_name(url))
            .unwrap_or_else(|| "model".to_owned());
        let path = ModelPath::new(&name)
            .ok()
            .filter(|p| !p.as_str().contains('/'))
            .ok_or_else(|| {
                TransferError::invalid_input(format!(
                    "{}: cannot name a file {name:?}",
                    remote.shown
                ))
            })?;
        let kind = archive::detect(&peeked, &name, head.content_type.as_deref())?;
        let first = chain(peeked, body);
        if let (None, Some(len)) = (kind, head.length) {
            let file = ModelFile {
                path,
                size: len,
                fingerprint: head.validator.clone(),
                sha256: None,
            };
            let direct = Arc::new(Direct {
                remote,
                file,
                validator: head.validator.clone(),
                resume: options.resume,
                first: Mutex::new(None),
            });
            let stream = direct.resuming(first, 0);
            *direct.first.lock().unwrap_or_else(|p| p.into_inner()) = Some(stream);
            return Ok(HttpSource {
                inner: Inner::Direct(direct),
            });
        }
        let stage = Staging {
            scratch,
            name: path,
            head,
            kind,
            limits: options.limits,
        };
        let stream = match stage.head.length {
            Some(len) => {
                let direct = Arc::new(Direct {
                    remote,
                    file: ModelFile {
                        path: stage.name.clone(),
                        size: len,
                        fingerprint: None,
                        sha256: None,
                    },
                    validator: stage.head.validator.clone(),
                    resume: options.resume,
                    first: Mutex::new(None),
                });
                direct.resuming(first, 0)
            }
            None => first,
        };
        stage.run(stream, &what).await
    }

    /// The model files: the one streamed file, or the staged/unpacked ones.
    pub async fn list(&self) -> Result<Vec<ModelFile>, TransferError> {
        match &self.inner {
            Inner::Direct(d) => Ok(vec![d.file.clone()]),
            Inner::Staged { local, .. } => local.list().await,
        }
    }

    pub async fn open(&self, file: &ModelFile, offset: u64) -> Result<ByteStream, TransferError> {
        match &self.inner {
            Inner::Direct(d) => d.open(file, offset).await,
            Inner::Staged { local, .. } => local.open(file, offset).await,
        }
    }

    /// Whether the download was staged to scratch space (archives, unknown sizes).
    pub fn is_staged(&self) -> bool {
        matches!(self.inner, Inner::Staged { .. })
    }
}

impl OpenFile for HttpSource {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        Box::pin(HttpSource::open(self, file, offset))
    }
}

impl Direct {
    /// `stream` (open at `offset`) made continuous with ranged re-requests.
    fn resuming(self: &Arc<Self>, stream: ByteStream, offset: u64) -> ByteStream {
        let me = self.clone();
        let reopen: Reopen = Box::new(move |pos| {
            let me = me.clone();
            Box::pin(async move { me.get(pos).await })
        });
        resume_stream(
            stream,
            offset,
            self.file.size,
            format!("downloading {}", self.remote.shown),
            self.resume,
            reopen,
        )
    }

    async fn get(&self, pos: u64) -> Result<ByteStream, TransferError> {
        let (resp, head) = self
            .remote
            .get(Some(pos), self.validator.as_deref())
            .await?;
        if head.length.is_some_and(|l| l != self.file.size) {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                format!(
                    "{}: the file changed during the transfer (size {:?}, was {})",
                    self.remote.shown, head.length, self.file.size
                ),
            ));
        }
        Ok(body_stream(resp))
    }

    async fn open(
        self: &Arc<Self>,
        file: &ModelFile,
        offset: u64,
    ) -> Result<ByteStream, TransferError> {
        if file.path != self.file.path || offset > self.file.size {
            return Err(TransferError::invalid_input(format!(
                "{}: no file {} at offset {offset}",
                self.remote.shown, file.path
            )));
        }
        if offset == self.file.size {
            return Ok(futures::stream::empty().boxed());
        }
        if offset == 0
            && let Some(s) = self.first.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            return Ok(s);
        }
        let what = format!("downloading {}", self.remote.shown);
        let first = retry(self.resume.policy, &what, |_| self.get(offset)).await?;
        Ok(self.resuming(first, offset))
    }
}

/// Everything needed to stage a download.
struct Staging<'a> {
    scratch: &'a Path,
    name: ModelPath,
    head: Head,
    kind: Option<ArchiveKind>,
    limits: ExtractLimits,
}

impl Staging<'_> {
    async fn run(self, stream: ByteStream, what: &str) -> Result<HttpSource, TransferError> {
        let scratch_err = |e: std::io::Error| {
            TransferError::new(
                Reason::Internal,
                format!("scratch space {}: {e}", self.scratch.display()),
            )
        };
        tokio::fs::create_dir_all(self.scratch)
            .await
            .map_err(scratch_err)?;
        let dir = tempfile::Builder::new()
            .prefix("model-sync-uri-")
            .tempdir_in(self.scratch)
            .map_err(scratch_err)?;
        let staged = dir.path().join("download").join(self.name.as_str());
        tracing::info!(
            size = self.head.length,
            archive = ?self.kind,
            "{what}: staging to {}",
            staged.display()
        );
        let expected = Expected {
            size: self.head.length,
            sha256: None,
        };
        let written = write_atomically(&staged, stream, expected, None, false).await?;
        let Some(kind) = self.kind else {
            return Ok(HttpSource {
                inner: Inner::Staged {
                    local: LocalSource::new(staged),
                    _scratch: dir,
                },
            });
        };
        let out = dir.path().join("model");
        let (archive_path, out2, limits) = (staged.clone(), out.clone(), self.limits);
        let extracted = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&out2)
                .map_err(|e| TransferError::new(Reason::Internal, format!("scratch space: {e}")))?;
            archive::extract(kind, &archive_path, &out2, limits)
        })
        .await
        .map_err(|e| TransferError::new(Reason::Internal, format!("unpacking task failed: {e}")))?
        .map_err(|e| e.context(format!("unpacking {}", self.name)))?;
        let _ = tokio::fs::remove_file(&staged).await;
        tracing::info!(
            files = extracted.files,
            bytes = extracted.bytes,
            archive_bytes = written.bytes,
            "{what}: unpacked {kind:?} archive"
        );
        Ok(HttpSource {
            inner: Inner::Staged {
                local: LocalSource::new(out),
                _scratch: dir,
            },
        })
    }
}

/// Reads at least `n` bytes (or to the end) from `stream`; returns them and the rest.
async fn peek(mut stream: ByteStream, n: usize) -> std::io::Result<(Vec<u8>, ByteStream)> {
    let mut head = Vec::new();
    while head.len() < n {
        match stream.next().await {
            Some(chunk) => head.extend_from_slice(&chunk?),
            None => break,
        }
    }
    Ok((head, stream))
}

/// `head` followed by `rest`.
fn chain(head: Vec<u8>, rest: ByteStream) -> ByteStream {
    let first = (!head.is_empty()).then(|| Ok(bytes::Bytes::from(head)));
    futures::stream::iter(first).chain(rest).boxed()
}
