//! A Hugging Face Hub stand-in on 127.0.0.1, for `hf://` sources: the endpoints the real
//! `huggingface_hub` client uses for `snapshot_download`, and a second server playing the CDN
//! that LFS files are redirected to.
//!
//! Why our own: model-sync must be tested without the network, and a stand-in that merely
//! agrees with model-sync proves nothing. So the integration tests run the real client from PyPI
//! (`huggingface_hub.snapshot_download`, installed by tests/tools/install-hf-hub.sh) against this
//! server first, and only then model-sync. What is served follows huggingface_hub's source
//! (hf_api.py, file_download.py, utils/_http.py, utils/_pagination.py, release 2.4.0):
//! - `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}` (rev percent-encoded):
//!   the repository with `sha`, the commit the revision names;
//! - `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=&cursor=`: file and directory
//!   entries (`oid`, `size`, `lfs {oid, size, pointerSize}`), [`HubStandIn::set_page_size`]
//!   entries a page, the next page in a `Link: <…>; rel="next"` header;
//! - `HEAD`/`GET /{repo}/resolve/{rev}/{path}`: a file kept in git is served here (`ETag` = its
//!   git blob id, `X-Repo-Commit`, `Range`); an LFS file is a `302` to the CDN's signed URL, with
//!   `X-Linked-Etag` (its sha256) and `X-Linked-Size`.
//! - refusals carry `X-Error-Code` / `X-Error-Message` as the Hub's do: `RepoNotFound` (401
//!   without a token, 404 with one), `RevisionNotFound`, `EntryNotFound`, `GatedRepo` (401
//!   without a token, 403 for a token without access; a gated repository's metadata and tree stay
//!   readable), and `Invalid credentials in Authorization header` for an unknown token.
//! - a renamed repository answers `307` to its new name (a relative, same-host redirect).
//!
//! The CDN refuses a request that carries an `Authorization` header (as S3 does for a presigned
//! URL: "only one auth mechanism allowed") and a bad signature, so a client that forwards the
//! Hub token to it fails. Every request of both servers is recorded.
//! [`HubStandIn::interrupt_downloads`] cuts the next downloads of a file after some bytes,
//! [`HubStandIn::tamper_downloads`] changes their content. [`client`] runs the real client.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Router;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::http_files::ServerThread;

pub mod client;
mod routes;

/// Who may read a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Invisible (RepoNotFound) without a reader's token.
    Private,
    /// Metadata public; downloads need a reader's token (GatedRepo).
    Gated,
}

/// One file of a commit.
#[derive(Clone, Debug)]
pub struct HubFile {
    pub path: String,
    pub content: Vec<u8>,
    /// Stored in LFS (served through the CDN) rather than in git.
    pub lfs: bool,
}

impl HubFile {
    pub fn git(path: &str, content: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.to_owned(),
            content: content.into(),
            lfs: false,
        }
    }

    pub fn lfs(path: &str, content: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.to_owned(),
            content: content.into(),
            lfs: true,
        }
    }
}

/// One request either server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubRequest {
    /// `"hub"` or `"cdn"`.
    pub host: &'static str,
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub authorization: Option<String>,
    pub range: Option<String>,
}

pub(crate) struct Blob {
    pub content: Bytes,
    pub lfs: bool,
    /// The git blob id: of the content, or of the LFS pointer file.
    pub oid: String,
    pub sha256: String,
    pub pointer_size: usize,
}

pub(crate) struct Repo {
    pub access: Access,
    pub readers: BTreeSet<String>,
    pub commits: BTreeMap<String, BTreeMap<String, Arc<Blob>>>,
    pub refs: BTreeMap<String, String>,
}

pub(crate) struct Fault {
    pub sha256: String,
    /// Break the body after this many bytes; `None`: send it whole with its first byte changed.
    pub after: Option<usize>,
    pub times: usize,
}

pub(crate) struct State {
    pub repos: BTreeMap<String, Repo>,
    pub renamed: BTreeMap<String, String>,
    pub tokens: BTreeSet<String>,
    pub page_size: usize,
    pub faults: Vec<Fault>,
    pub log: Vec<HubRequest>,
    pub hub_base: String,
    pub cdn_base: String,
    pub signing_key: String,
    pub commits_made: u64,
}

pub(crate) type Shared = Arc<Mutex<State>>;

/// The Hub and its CDN (see the module documentation).
pub struct HubStandIn {
    hub: ServerThread,
    cdn: ServerThread,
    state: Shared,
}

impl std::fmt::Debug for HubStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubStandIn")
            .field("endpoint", &self.endpoint())
            .field("cdn", &self.cdn_base())
            .finish_non_exhaustive()
    }
}

/// `sha1("blob <len>\0" + content)`, git's blob id.
pub fn git_blob_id(content: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(format!("blob {}\0", content.len()).as_bytes());
    ctx.update(content);
    hex::encode(ctx.finish().as_ref())
}

pub(crate) fn sha1_hex(text: &str) -> String {
    hex::encode(
        aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            text.as_bytes(),
        )
        .as_ref(),
    )
}

fn blob(f: &HubFile) -> Blob {
    let sha256 = hex::encode(Sha256::digest(&f.content));
    let pointer = format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {}\n",
        f.content.len()
    );
    Blob {
        oid: if f.lfs {
            git_blob_id(pointer.as_bytes())
        } else {
            git_blob_id(&f.content)
        },
        content: Bytes::from(f.content.clone()),
        lfs: f.lfs,
        sha256,
        pointer_size: pointer.len(),
    }
}

impl HubStandIn {
    pub fn start() -> anyhow::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(State {
            repos: BTreeMap::new(),
            renamed: BTreeMap::new(),
            tokens: BTreeSet::new(),
            page_size: 1000,
            faults: Vec::new(),
            log: Vec::new(),
            hub_base: String::new(),
            cdn_base: String::new(),
            signing_key: hex::encode(Sha256::digest(
                format!("{:?}", std::time::SystemTime::now()).as_bytes(),
            )),
            commits_made: 0,
        }));
        let app = Router::new()
            .fallback(routes::hub)
            .with_state(state.clone());
        let hub = ServerThread::spawn("hf-hub", move |l| async move {
            let _ = axum::serve(l, app).await;
        })?;
        let app = Router::new()
            .fallback(routes::cdn)
            .with_state(state.clone());
        let cdn = ServerThread::spawn("hf-cdn", move |l| async move {
            let _ = axum::serve(l, app).await;
        })?;
        {
            let mut s = state.lock().expect("hub state");
            s.hub_base = format!("http://{}", hub.addr());
            s.cdn_base = format!("http://{}", cdn.addr());
        }
        Ok(Self { hub, cdn, state })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("hub state")
    }

    /// `http://127.0.0.1:<port>`: what `HF_ENDPOINT` is set to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.hub.addr())
    }

    /// `http://127.0.0.1:<port>` of the CDN.
    pub fn cdn_base(&self) -> String {
        format!("http://{}", self.cdn.addr())
    }

    /// The bases of the URLs the Hub hands out (LFS redirects to the CDN, next-page links), for
    /// clients that reach the servers at another address than loopback (a pod on the test node).
    pub fn set_public_bases(&self, hub: &str, cdn: &str) {
        let mut s = self.state();
        s.hub_base = hub.trim_end_matches('/').to_owned();
        s.cdn_base = cdn.trim_end_matches('/').to_owned();
    }

    /// A token the Hub knows (a user's); others are refused as invalid credentials.
    pub fn add_token(&self, token: &str) {
        self.state().tokens.insert(token.to_owned());
    }

    /// Commits `files` (the whole tree) to `repo` (created public if new) on `branch`; returns
    /// the commit id.
    pub fn commit(&self, repo: &str, branch: &str, files: &[HubFile]) -> String {
        let mut s = self.state();
        s.commits_made += 1;
        let tree: BTreeMap<String, Arc<Blob>> = files
            .iter()
            .map(|f| (f.path.clone(), Arc::new(blob(f))))
            .collect();
        let ids: Vec<&str> = tree.values().map(|b| b.oid.as_str()).collect();
        let sha = sha1_hex(&format!(
            "commit {repo} {} {}",
            s.commits_made,
            ids.join(" ")
        ));
        let r = s.repos.entry(repo.to_owned()).or_insert_with(|| Repo {
            access: Access::Public,
            readers: BTreeSet::new(),
            commits: BTreeMap::new(),
            refs: BTreeMap::new(),
        });
        r.commits.insert(sha.clone(), tree);
        r.refs.insert(branch.to_owned(), sha.clone());
        sha
    }

    /// Points `name` (a tag, `refs/pr/1`, ...) at `commit`.
    pub fn tag(&self, repo: &str, name: &str, commit: &str) -> anyhow::Result<()> {
        let mut s = self.state();
        let r = s.repos.get_mut(repo).context("no such repo")?;
        anyhow::ensure!(r.commits.contains_key(commit), "no such commit");
        r.refs.insert(name.to_owned(), commit.to_owned());
        Ok(())
    }

    /// Who may read `repo`: `readers` are tokens (added to the known ones).
    pub fn set_access(&self, repo: &str, access: Access, readers: &[&str]) -> anyhow::Result<()> {
        let mut s = self.state();
        for t in readers {
            s.tokens.insert((*t).to_owned());
        }
        let r = s.repos.get_mut(repo).context("no such repo")?;
        r.access = access;
        r.readers = readers.iter().map(|t| (*t).to_owned()).collect();
        Ok(())
    }

    /// `old` now redirects to `new` (a renamed repository).
    pub fn rename(&self, old: &str, new: &str) {
        self.state().renamed.insert(old.to_owned(), new.to_owned());
    }

    /// Tree entries per page (default 1000, as the Hub).
    pub fn set_page_size(&self, n: usize) {
        self.state().page_size = n.max(1);
    }

    /// The next `times` downloads of a file with this content (from the Hub or the CDN) break
    /// after `after` bytes of the body.
    pub fn interrupt_downloads(&self, content: &[u8], after: usize, times: usize) {
        self.state().faults.push(Fault {
            sha256: hex::encode(Sha256::digest(content)),
            after: Some(after),
            times,
        });
    }

    /// The next `times` downloads of a file with this content come whole but with their first
    /// byte changed (what a client's integrity checks must catch).
    pub fn tamper_downloads(&self, content: &[u8], times: usize) {
        self.state().faults.push(Fault {
            sha256: hex::encode(Sha256::digest(content)),
            after: None,
            times,
        });
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// The commit `rev` names in `repo`.
    pub fn resolve(&self, repo: &str, rev: &str) -> Option<String> {
        let s = self.state();
        let r = s.repos.get(repo)?;
        r.refs
            .get(rev)
            .cloned()
            .or_else(|| r.commits.contains_key(rev).then(|| rev.to_owned()))
    }

    /// What a snapshot of `repo` at `rev` holds: path → content.
    pub fn files_at(&self, repo: &str, rev: &str) -> BTreeMap<String, Vec<u8>> {
        let Some(sha) = self.resolve(repo, rev) else {
            return BTreeMap::new();
        };
        let s = self.state();
        s.repos[repo].commits[&sha]
            .iter()
            .map(|(p, b)| (p.clone(), b.content.to_vec()))
            .collect()
    }

    /// Every request so far, both servers, in arrival order.
    pub fn requests(&self) -> Vec<HubRequest> {
        self.state().log.clone()
    }

    pub fn clear_requests(&self) {
        self.state().log.clear();
    }
}
