//! The Hub's and the CDN's request handlers (see the parent module for what they serve).
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Access, Blob, HubRequest, Repo, Shared, State as HubState, sha1_hex};
use crate::http_files::{parse_range, percent_decode};

fn record(state: &Shared, host: &'static str, req: &Request) {
    let h = req.headers();
    let text = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    state.lock().expect("hub state").log.push(HubRequest {
        host,
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.to_string()),
        authorization: text(header::AUTHORIZATION),
        range: text(header::RANGE),
    });
}

/// A refusal the way the Hub words it: `X-Error-Code`, `X-Error-Message`, `{"error": …}`.
fn refuse(status: StatusCode, code: Option<&str>, message: &str, commit: Option<&str>) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Error-Message", message);
    if let Some(c) = code {
        b = b.header("X-Error-Code", c);
    }
    if let Some(c) = commit {
        b = b.header("X-Repo-Commit", c);
    }
    b.body(Body::from(json!({ "error": message }).to_string()))
        .expect("response")
}

fn query(req: &Request) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .filter_map(|(k, v)| Some((percent_decode(k)?, percent_decode(v)?)))
        .collect()
}

/// The Hub.
pub(super) async fn hub(State(state): State<Shared>, req: Request) -> Response {
    record(&state, "hub", &req);
    let s = state.lock().expect("hub state");
    // An unknown token is refused everywhere, whatever the repository.
    let token = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
            Some(t) if s.tokens.contains(t) => Some(t.to_owned()),
            _ => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    None,
                    "Invalid credentials in Authorization header",
                    None,
                );
            }
        },
    };
    let raw = req.uri().path().trim_start_matches('/').to_owned();
    let Some(segs) = raw
        .split('/')
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()
    else {
        return (StatusCode::BAD_REQUEST, "bad path").into_response();
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (repo, api) = match segs.as_slice() {
        ["api", "models", a, b, ..] => (format!("{a}/{b}"), true),
        [a, b, "resolve", ..] => (format!("{a}/{b}"), false),
        _ => return (StatusCode::NOT_FOUND, "Not Found").into_response(),
    };
    if let Some(new) = s.renamed.get(&repo) {
        let location = format!("/{}", raw.replacen(&repo, new, 1));
        let location = match req.uri().query() {
            Some(q) => format!("{location}?{q}"),
            None => location,
        };
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response();
    }
    let q = query(&req);
    let ctx = Ctx {
        s: &s,
        repo: &repo,
        token: token.as_deref(),
    };
    let r = match ctx.visible() {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if api {
        if req.method() != Method::GET {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        match &segs[4..] {
            [] => ctx.info(r, "main"),
            ["revision", rev] => ctx.info(r, rev),
            ["tree", rev, path @ ..] => ctx.tree(r, rev, &path.join("/"), &q),
            _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        }
    } else {
        match &segs[3..] {
            [rev, path @ ..] if !path.is_empty() => {
                match ctx.resolve(r, rev, &path.join("/"), req.method()) {
                    Ok((blob, sha)) => {
                        drop(s);
                        serve(
                            &state,
                            &blob,
                            &blob.oid,
                            req.method(),
                            req.headers(),
                            Some(&sha),
                        )
                    }
                    Err(resp) => *resp,
                }
            }
            _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        }
    }
}

/// A result whose error is the (boxed) answer to send instead.
type Answer<T> = Result<T, Box<Response>>;

struct Ctx<'a> {
    s: &'a HubState,
    repo: &'a str,
    token: Option<&'a str>,
}

impl Ctx<'_> {
    fn reader(&self, r: &Repo) -> bool {
        self.token.is_some_and(|t| r.readers.contains(t))
    }

    fn visible(&self) -> Answer<&Repo> {
        match self.s.repos.get(self.repo) {
            Some(r) if r.access != Access::Private || self.reader(r) => Ok(r),
            _ => Err(Box::new(refuse(
                if self.token.is_some() {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::UNAUTHORIZED
                },
                Some("RepoNotFound"),
                "Repository not found",
                None,
            ))),
        }
    }

    fn commit<'r>(
        &self,
        r: &'r Repo,
        rev: &str,
    ) -> Answer<(String, &'r BTreeMap<String, Arc<Blob>>)> {
        let sha = r
            .refs
            .get(rev)
            .cloned()
            .or_else(|| r.commits.contains_key(rev).then(|| rev.to_owned()));
        match sha {
            Some(sha) => {
                let tree = &r.commits[&sha];
                Ok((sha, tree))
            }
            None => Err(Box::new(refuse(
                StatusCode::NOT_FOUND,
                Some("RevisionNotFound"),
                &format!("Invalid rev id: {rev}"),
                None,
            ))),
        }
    }

    fn info(&self, r: &Repo, rev: &str) -> Response {
        let (sha, tree) = match self.commit(r, rev) {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        let (author, _) = self.repo.split_once('/').unwrap_or(("", ""));
        let gated = match r.access {
            Access::Gated => json!("manual"),
            _ => json!(false),
        };
        let siblings: Vec<Value> = tree.keys().map(|p| json!({ "rfilename": p })).collect();
        axum::Json(json!({
            "_id": sha1_hex(self.repo)[..24],
            "id": self.repo,
            "modelId": self.repo,
            "author": author,
            "sha": sha,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "private": r.access == Access::Private,
            "gated": gated,
            "disabled": false,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "library_name": null,
            "siblings": siblings,
            "usedStorage": tree.values().map(|b| b.content.len()).sum::<usize>(),
        }))
        .into_response()
    }

    fn tree(&self, r: &Repo, rev: &str, dir: &str, q: &BTreeMap<String, String>) -> Response {
        let (sha, tree) = match self.commit(r, rev) {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        let recursive = q
            .get("recursive")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{}/", dir.trim_end_matches('/'))
        };
        let mut dirs = BTreeSet::new();
        let mut files = Vec::new();
        for (path, blob) in tree.iter().filter(|(p, _)| p.starts_with(&prefix)) {
            let rest = &path[prefix.len()..];
            let parts: Vec<&str> = rest.split('/').collect();
            for i in 1..parts.len() {
                if recursive || i == 1 {
                    dirs.insert(format!("{prefix}{}", parts[..i].join("/")));
                }
            }
            if recursive || parts.len() == 1 {
                files.push((path.clone(), blob.clone()));
            }
        }
        if !prefix.is_empty() && dirs.is_empty() && files.is_empty() {
            return refuse(
                StatusCode::NOT_FOUND,
                Some("EntryNotFound"),
                &format!("{dir} does not exist on \"{rev}\""),
                Some(&sha),
            );
        }
        let mut entries: Vec<(String, Value)> = dirs
            .into_iter()
            .map(|d| {
                let v = json!({"type": "directory", "oid": sha1_hex(&d), "size": 0, "path": d});
                (d, v)
            })
            .collect();
        for (p, b) in files {
            let mut v = json!({"type": "file", "oid": b.oid, "size": b.content.len(), "path": p});
            if b.lfs {
                v["lfs"] = json!({
                    "oid": b.sha256, "size": b.content.len(), "pointerSize": b.pointer_size
                });
            }
            entries.push((p, v));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let start: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + self.s.page_size).min(entries.len());
        let page: Vec<Value> = entries
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|(_, v)| v.clone())
            .collect();
        let mut resp = axum::Json(page).into_response();
        if end < entries.len() {
            let path = if dir.is_empty() {
                String::new()
            } else {
                format!("/{dir}")
            };
            let next = format!(
                "<{}/api/models/{}/tree/{}{path}?recursive={recursive}&expand=false&cursor={end}>; rel=\"next\"",
                self.s.hub_base,
                self.repo,
                crate_quote(rev)
            );
            resp.headers_mut()
                .insert(header::LINK, next.parse().expect("link header"));
        }
        resp
    }

    /// A file kept in git to serve (and its commit), or the answer (a refusal, an LFS redirect).
    fn resolve(
        &self,
        r: &Repo,
        rev: &str,
        path: &str,
        method: &Method,
    ) -> Answer<(Arc<Blob>, String)> {
        if method != Method::GET && method != Method::HEAD {
            return Err(Box::new(StatusCode::METHOD_NOT_ALLOWED.into_response()));
        }
        let (sha, tree) = self.commit(r, rev)?;
        if r.access == Access::Gated && !self.reader(r) {
            let (status, message) = match self.token {
                None => (
                    StatusCode::UNAUTHORIZED,
                    format!(
                        "Access to model {} is restricted. You must have access to it and be authenticated to access it. Please log in.",
                        self.repo
                    ),
                ),
                Some(_) => (
                    StatusCode::FORBIDDEN,
                    format!(
                        "Access to model {} is restricted and you are not in the authorized list.",
                        self.repo
                    ),
                ),
            };
            return Err(Box::new(refuse(status, Some("GatedRepo"), &message, None)));
        }
        let Some(blob) = tree.get(path) else {
            return Err(Box::new(refuse(
                StatusCode::NOT_FOUND,
                Some("EntryNotFound"),
                "Entry not found",
                Some(&sha),
            )));
        };
        if blob.lfs {
            let location = format!(
                "{}/lfs/{}?X-Amz-Expires=3600&X-Amz-Signature={}",
                self.s.cdn_base,
                blob.sha256,
                signature(self.s, &blob.sha256)
            );
            return Err(Box::new(
                Response::builder()
                    .status(StatusCode::FOUND)
                    .header(header::LOCATION, &location)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .header(header::ETAG, format!("\"{}\"", blob.oid))
                    .header("X-Repo-Commit", &sha)
                    .header("X-Linked-Etag", format!("\"{}\"", blob.sha256))
                    .header("X-Linked-Size", blob.content.len())
                    .body(Body::from(format!("Found. Redirecting to {location}")))
                    .expect("response"),
            ));
        }
        Ok((blob.clone(), sha))
    }
}

fn crate_quote(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn signature(s: &HubState, sha256: &str) -> String {
    hex::encode(Sha256::digest(format!("{}:{sha256}", s.signing_key)))
}

/// Sends a blob (or the requested range of it), breaking the body early when a fault says so.
fn serve(
    state: &Shared,
    blob: &Blob,
    etag: &str,
    method: &Method,
    headers: &HeaderMap,
    commit: Option<&str>,
) -> Response {
    let len = blob.content.len() as u64;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, body, content_range) = match range.map(|r| parse_range(r, len)) {
        None => (StatusCode::OK, blob.content.clone(), None),
        Some(Some((a, b))) => (
            StatusCode::PARTIAL_CONTENT,
            blob.content.slice(a as usize..=b as usize),
            Some(format!("bytes {a}-{b}/{len}")),
        ),
        Some(None) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
    };
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::ETAG, format!("\"{etag}\""));
    if let Some(cr) = content_range {
        b = b.header(header::CONTENT_RANGE, cr);
    }
    if let Some(c) = commit {
        b = b.header("X-Repo-Commit", c);
    }
    if method == Method::HEAD {
        return b.body(Body::empty()).expect("response");
    }
    let cut = {
        let mut s = state.lock().expect("hub state");
        s.faults
            .iter_mut()
            .find(|f| f.sha256 == blob.sha256 && f.times > 0)
            .map(|f| {
                f.times -= 1;
                f.after
            })
    };
    match cut {
        Some(None) if !body.is_empty() => {
            let mut changed = body.to_vec();
            changed[0] ^= 0xff;
            b.body(Body::from(changed)).expect("response")
        }
        Some(Some(after)) if after < body.len() => {
            // The cut comes a moment after the first bytes, so they (and the headers) are sent.
            let head = futures::stream::iter([Ok::<_, std::io::Error>(body.slice(..after))]);
            let cut = futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Err(std::io::Error::other("stand-in: connection cut"))
            });
            b.body(Body::from_stream(head.chain(cut)))
                .expect("response")
        }
        _ => b.body(Body::from(body)).expect("response"),
    }
}

/// The CDN: `/lfs/{sha256}?X-Amz-Signature=…`, no `Authorization` accepted.
pub(super) async fn cdn(State(state): State<Shared>, req: Request) -> Response {
    record(&state, "cdn", &req);
    if req.headers().contains_key(header::AUTHORIZATION) {
        return (
            StatusCode::BAD_REQUEST,
            "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; \
             the Authorization header must not come with a presigned URL</Message></Error>",
        )
            .into_response();
    }
    let q = query(&req);
    let s = state.lock().expect("hub state");
    let Some(sha) = req.uri().path().strip_prefix("/lfs/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if q.get("X-Amz-Signature") != Some(&signature(&s, sha)) {
        return (
            StatusCode::FORBIDDEN,
            "<Error><Code>SignatureDoesNotMatch</Code></Error>",
        )
            .into_response();
    }
    let blob = s
        .repos
        .values()
        .flat_map(|r| r.commits.values())
        .flat_map(|t| t.values())
        .find(|b| b.lfs && b.sha256 == sha)
        .cloned();
    drop(s);
    match blob {
        Some(b) => serve(&state, &b, &b.sha256, req.method(), req.headers(), None),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
