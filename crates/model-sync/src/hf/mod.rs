//! The `hf://org/model[:revision]` source: a Hugging Face Hub repository, read over the Hub's
//! HTTP API the way `huggingface_hub.snapshot_download` reads it, and streamed like every other
//! source (no staging, interrupted reads resumed with `Range`).
//!
//! [`HubSource::prepare`] does everything that can fail for a reason the user must fix, before a
//! byte moves (in sync mode, before the registry is touched — see `run::engine::Backends`):
//! 1. resolve the revision (default `main`) to a commit: `GET /api/models/{repo}/revision/{rev}`
//!    (unknown repository, unknown revision: errors here);
//! 2. list every file at that commit: `GET /api/models/{repo}/tree/{commit}?recursive=true`,
//!    following `Link` pages;
//! 3. probe one file with `HEAD /{repo}/resolve/{commit}/{path}` (not following a redirect off
//!    the Hub): a gated repository lists fine but refuses downloads, so this is where gating
//!    shows. The answer must carry `X-Repo-Commit` (the Python client calls an endpoint without
//!    it "not a Hub"), and it must be the resolved commit.
//!
//! Downloads are `GET /{repo}/resolve/{commit}/{path}`, pinned to the commit (a branch moving
//! during the transfer changes nothing), following redirects: the token only ever goes to the
//! endpoint's origin, never to the CDN an LFS file is redirected to (see [`api`]). Integrity:
//! an LFS file's listed sha256 is checked by every destination; a file kept in git is checked
//! here against its git blob id (sha1 of `blob <size>\0<content>`) when read from its start.
//!
//! Settings (`HF_ENDPOINT`, `HF_TOKEN`, ...): [`crate::config::HubSettings`]. Xet storage is not
//! used: the Hub serves Xet-backed files over plain HTTP too (the resolve redirect), which is
//! what is read here.
use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderValue};

use crate::config::HubSettings;
use crate::transfer::retry::{Reopen, ResumeOptions, resume_stream, retry};
use crate::transfer::{ByteStream, ModelFile, ModelPath, OpenFile, Reason, TransferError};

mod api;
mod listing;
mod verify;

use api::{Hub, body_stream, quote, shown};
use listing::{RemoteFile, RevisionInfo, TreeEntry, is_commit, model_files, next_link};

/// Largest JSON answer read (a revision with its file list, one tree page).
const MAX_JSON: usize = 32 * 1024 * 1024;
/// Tree pages followed (the Hub serves 1000 entries a page).
const MAX_PAGES: usize = 1000;
/// Files a repository may list.
const MAX_FILES: usize = 100_000;

/// Knobs for [`HubSource::prepare`].
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    pub resume: ResumeOptions,
    /// Extra trusted CAs (PEM), e.g. for a mirror behind a private CA (`SSL_CERT_FILE`).
    pub ca_pem: Option<Vec<u8>>,
}

/// A resolved, listed Hub repository (see the module documentation).
pub struct HubSource {
    inner: Arc<Inner>,
    files: Vec<ModelFile>,
}

struct Inner {
    hub: Hub,
    repo: String,
    commit: String,
    remote: HashMap<ModelPath, RemoteFile>,
    resume: ResumeOptions,
}

impl std::fmt::Debug for HubSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HubSource(hf://{}@{})",
            self.inner.repo, self.inner.commit
        )
    }
}

impl HubSource {
    /// Resolves, lists and probes `hf://repo[:revision]` (see the module documentation).
    pub async fn prepare(
        repo: &str,
        revision: Option<&str>,
        settings: HubSettings,
        options: HubOptions,
    ) -> Result<HubSource, TransferError> {
        let hub = Hub::new(settings, options.ca_pem.as_deref())?;
        let revision = revision.unwrap_or("main");
        let what = format!("hf://{repo} (revision {revision:?})");
        let policy = options.resume.policy;

        let url = hub.url(&format!(
            "/api/models/{repo}/revision/{}",
            quote(revision, "")
        ))?;
        let (info, _): (RevisionInfo, _) =
            retry(policy, &what, |_| hub.json(url.clone(), MAX_JSON, &what)).await?;
        let commit = info
            .sha
            .filter(|s| is_commit(s))
            .ok_or_else(|| {
                TransferError::new(
                    Reason::SourceUnavailable,
                    format!("{what}: the Hub named no commit for the revision"),
                )
            })?
            .to_ascii_lowercase();
        let what = format!("hf://{repo}@{commit}");
        tracing::info!(repo, revision, commit = %commit, "resolved the Hugging Face revision");

        let entries = list_tree(&hub, repo, &commit, policy, &what).await?;
        let (mut files, remote) = model_files(entries, &what)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let Some(first) = files.first() else {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: the repository holds no files at this revision"),
            ));
        };
        let inner = Inner {
            hub,
            repo: repo.to_owned(),
            commit,
            remote,
            resume: options.resume,
        };
        retry(policy, &what, |_| inner.probe(first)).await?;
        tracing::info!(
            files = files.len(),
            bytes = files.iter().map(|f| f.size).sum::<u64>(),
            "{what}: listed"
        );
        Ok(HubSource {
            inner: Arc::new(inner),
            files,
        })
    }

    /// The commit every file is read at.
    pub fn commit(&self) -> &str {
        &self.inner.commit
    }

    pub async fn list(&self) -> Result<Vec<ModelFile>, TransferError> {
        Ok(self.files.clone())
    }

    pub async fn open(&self, file: &ModelFile, offset: u64) -> Result<ByteStream, TransferError> {
        let inner = &self.inner;
        let what = format!("hf://{}@{}/{}", inner.repo, inner.commit, file.path);
        let remote = inner
            .remote
            .get(&file.path)
            .filter(|_| offset <= file.size)
            .ok_or_else(|| {
                TransferError::invalid_input(format!("{what}: no such file at offset {offset}"))
            })?
            .clone();
        if offset == file.size {
            return Ok(futures::stream::empty().boxed());
        }
        let size = file.size;
        let first = retry(inner.resume.policy, &what, |_| {
            inner.get(&remote, size, offset, &what)
        })
        .await?;
        let me = self.inner.clone();
        let (r2, w2) = (remote.clone(), what.clone());
        let reopen: Reopen = Box::new(move |pos| {
            let (me, r, w) = (me.clone(), r2.clone(), w2.clone());
            Box::pin(async move { me.get(&r, size, pos, &w).await })
        });
        let stream = resume_stream(first, offset, size, what.clone(), inner.resume, reopen);
        Ok(match (&remote.git_oid, offset) {
            (Some(oid), 0) => verify::git_blob(stream, size, oid.clone(), what),
            _ => stream,
        })
    }
}

impl OpenFile for HubSource {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        Box::pin(HubSource::open(self, file, offset))
    }
}

/// Every entry under the commit, page by page.
async fn list_tree(
    hub: &Hub,
    repo: &str,
    commit: &str,
    policy: crate::transfer::retry::RetryPolicy,
    what: &str,
) -> Result<Vec<TreeEntry>, TransferError> {
    let mut url = hub.url(&format!(
        "/api/models/{repo}/tree/{commit}?recursive=true&expand=false"
    ))?;
    let mut entries = Vec::new();
    for _ in 0..MAX_PAGES {
        let (page, headers): (Vec<TreeEntry>, HeaderMap) =
            retry(policy, what, |_| hub.json(url.clone(), MAX_JSON, what)).await?;
        entries.extend(page);
        if entries.len() > MAX_FILES {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: more than {MAX_FILES} entries; not a model repository"),
            ));
        }
        let Some(next) = headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)
        else {
            return Ok(entries);
        };
        let next = url.join(next).map_err(|e| {
            TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: bad next-page link: {e}"),
            )
        })?;
        if !hub.is_home(&next) {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                format!(
                    "{what}: the next tree page is on another host ({}); refused",
                    shown(&next)
                ),
            ));
        }
        url = next;
    }
    Err(TransferError::new(
        Reason::SourceUnavailable,
        format!("{what}: more than {MAX_PAGES} tree pages"),
    ))
}

impl Inner {
    fn resolve_url(&self, remote: &RemoteFile) -> Result<url::Url, TransferError> {
        self.hub.url(&format!(
            "/{}/resolve/{}/{}",
            self.repo,
            self.commit,
            quote(&remote.repo_path, "/")
        ))
    }

    /// `HEAD` of one file on the Hub itself (see the module documentation, step 3).
    async fn probe(&self, file: &ModelFile) -> Result<(), TransferError> {
        let remote = &self.remote[&file.path];
        let what = format!("hf://{}@{}/{}", self.repo, self.commit, file.path);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let resp = self
            .hub
            .send(
                Method::HEAD,
                self.resolve_url(remote)?,
                &headers,
                true,
                &what,
            )
            .await?;
        let commit = resp
            .headers()
            .get("x-repo-commit")
            .and_then(|v| v.to_str().ok());
        match commit {
            None => Err(TransferError::new(
                Reason::SourceUnavailable,
                format!(
                    "{what}: the answer has no X-Repo-Commit header: {} does not look like a \
                     Hugging Face Hub (check HF_ENDPOINT)",
                    shown(&self.hub.settings.endpoint)
                ),
            )),
            Some(c) if !c.eq_ignore_ascii_case(&self.commit) => Err(TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: the Hub answered for commit {c}"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// `GET` of a file from byte `pos`: a stream of exactly `size - pos` bytes (checked by the
    /// caller's resume loop) or an error.
    async fn get(
        &self,
        remote: &RemoteFile,
        size: u64,
        pos: u64,
        what: &str,
    ) -> Result<ByteStream, TransferError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if pos > 0 {
            let range = HeaderValue::from_str(&format!("bytes={pos}-")).expect("ascii");
            headers.insert(header::RANGE, range);
        }
        let resp = self
            .hub
            .send(
                Method::GET,
                self.resolve_url(remote)?,
                &headers,
                false,
                what,
            )
            .await?;
        let h = resp.headers();
        let text = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
        if text(header::CONTENT_ENCODING).is_some_and(|e| !e.eq_ignore_ascii_case("identity")) {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: the server compressed the file although asked not to"),
            ));
        }
        let changed = |total: Option<u64>| {
            TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: the server has {total:?} bytes, the listing said {size}"),
            )
        };
        match resp.status().as_u16() {
            206 => {
                // `bytes a-b/total`
                let range = text(header::CONTENT_RANGE).and_then(|v| v.strip_prefix("bytes "));
                let start = range
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok());
                let total = range
                    .and_then(|r| r.rsplit('/').next())
                    .and_then(|t| t.parse::<u64>().ok());
                if start != Some(pos) {
                    return Err(TransferError::new(
                        Reason::SourceUnavailable,
                        format!("{what}: asked for bytes from {pos}, the server sent {range:?}"),
                    ));
                }
                if total.is_some_and(|t| t != size) {
                    return Err(changed(total));
                }
                Ok(body_stream(resp))
            }
            200 => {
                let total = resp.content_length();
                if total.is_some_and(|t| t != size) {
                    return Err(changed(total));
                }
                // A server that ignores `Range` sends everything: drop what was delivered.
                Ok(skip(body_stream(resp), pos))
            }
            s => Err(TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: unexpected HTTP {s} to a download"),
            )),
        }
    }
}

/// `stream` without its first `n` bytes.
fn skip(stream: ByteStream, n: u64) -> ByteStream {
    if n == 0 {
        return stream;
    }
    futures::stream::unfold((stream, n), |(mut s, mut left)| async move {
        loop {
            match s.next().await? {
                Ok(mut b) if left > 0 => {
                    let cut = left.min(b.len() as u64) as usize;
                    left -= cut as u64;
                    let rest = b.split_off(cut);
                    if !rest.is_empty() {
                        return Some((Ok(rest), (s, left)));
                    }
                }
                item => return Some((item, (s, left))),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::TryStreamExt as _;

    use super::*;

    #[tokio::test]
    async fn skip_drops_leading_bytes_across_chunks() {
        let chunks = ["abc", "defg", "h"].map(|c| Ok(Bytes::from_static(c.as_bytes())));
        let s = skip(futures::stream::iter(chunks).boxed(), 5);
        let got: Vec<Bytes> = s.try_collect().await.unwrap();
        assert_eq!(got.concat(), b"fgh");
    }
}
