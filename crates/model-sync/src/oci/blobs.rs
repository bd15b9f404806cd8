//! Blob and manifest calls of the distribution API (OCI distribution spec v1.1).
//!
//! Idempotent calls (HEAD/GET, upload start, mount, manifest PUT) retry transient failures here;
//! a failed PATCH fails its blob, which the uploader's caller restarts.
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode};

use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::{Reason, TransferError};

use super::digest;
use super::registry::{Counters, Registry, Req};

/// Manifests and indexes we accept, OCI and Docker flavours.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (the OCI spec's recommended registry limit).
const MAX_MANIFEST: usize = 4 << 20;

/// A manifest or index as served.
#[derive(Clone, Debug)]
pub(crate) struct RawManifest {
    pub(crate) bytes: Bytes,
    pub(crate) media_type: String,
    /// `sha256:` of `bytes` (verified against the reference and `Docker-Content-Digest`).
    pub(crate) digest: String,
}

impl Registry {
    async fn retrying<T, F, Fut>(&self, what: &str, op: F) -> Result<T, TransferError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, TransferError>>,
    {
        retry(RetryPolicy::default(), what, op)
            .await
            .map_err(|e| e.context(format!("{} {what}", self.host())))
    }

    /// Size of the blob if the repository has it.
    pub(crate) async fn blob_size(
        &self,
        repo: &str,
        digest: &str,
        scopes: &[String],
    ) -> Result<Option<u64>, TransferError> {
        self.retrying(&format!("HEAD blob {digest}"), |_| async {
            let resp = self
                .send(Req::new(
                    Method::HEAD,
                    format!("/v2/{repo}/blobs/{digest}"),
                    scopes,
                ))
                .await?;
            match resp.status() {
                s if s.is_success() => Ok(Some(content_length(&resp).unwrap_or(0))),
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(self.status_error("HEAD blob", resp).await),
            }
        })
        .await
    }

    /// GET a blob, from `start` (with a `Range` request when `start > 0` or `end` is given).
    /// The answer is 200 (whole blob: the server ignored the range) or 206.
    pub(crate) async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
        start: u64,
        end_inclusive: Option<u64>,
        scopes: &[String],
    ) -> Result<Response, TransferError> {
        self.retrying(&format!("GET blob {digest}"), |_| async move {
            let mut req = Req::new(Method::GET, format!("/v2/{repo}/blobs/{digest}"), scopes);
            if start > 0 || end_inclusive.is_some() {
                let end = end_inclusive.map(|e| e.to_string()).unwrap_or_default();
                req = req.header(RANGE, &format!("bytes={start}-{end}"));
            }
            let resp = self.send(req).await?;
            match resp.status() {
                StatusCode::OK | StatusCode::PARTIAL_CONTENT => Ok(resp),
                StatusCode::NOT_FOUND => Err(TransferError::new(
                    self.side(),
                    format!("blob {digest} not found in {}/{repo}", self.host()),
                )),
                _ => Err(self.status_error("GET blob", resp).await),
            }
        })
        .await
    }

    /// A small blob (image config) in memory, digest-verified.
    pub(crate) async fn get_small_blob(
        &self,
        repo: &str,
        digest: &str,
        scopes: &[String],
    ) -> Result<Bytes, TransferError> {
        let resp = self.get_blob(repo, digest, 0, None, scopes).await?;
        let bytes = read_limited(self, resp, MAX_MANIFEST, "blob").await?;
        let actual = digest::sha256(&bytes);
        if actual != digest {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!("blob {digest} has digest {actual}"),
            ));
        }
        Ok(bytes)
    }

    /// A manifest by tag or digest; `None` when the registry has none (404).
    pub(crate) async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        scopes: &[String],
    ) -> Result<Option<RawManifest>, TransferError> {
        self.retrying(&format!("GET manifest {repo}:{reference}"), |_| async {
            let req = Req::new(
                Method::GET,
                format!("/v2/{repo}/manifests/{reference}"),
                scopes,
            )
            .header(ACCEPT, MANIFEST_ACCEPT);
            let resp = self.send(req).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(self.status_error("GET manifest", resp).await);
            }
            let media_type = header(&resp, CONTENT_TYPE.as_str()).unwrap_or_default();
            let served = header(&resp, "docker-content-digest");
            let bytes = read_limited(self, resp, MAX_MANIFEST, "manifest").await?;
            let digest = digest::sha256(&bytes);
            let expected = if reference.contains(':') {
                Some(reference.to_owned())
            } else {
                served.filter(|d| d.starts_with("sha256:"))
            };
            if let Some(e) = expected
                && e != digest
            {
                return Err(TransferError::new(
                    Reason::IntegrityError,
                    format!("manifest {repo}:{reference} hashes to {digest}, expected {e}"),
                ));
            }
            Ok(Some(RawManifest {
                bytes,
                media_type,
                digest,
            }))
        })
        .await
    }

    /// Pushes a manifest under a tag or its digest; returns its digest.
    pub(crate) async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
        scopes: &[String],
    ) -> Result<String, TransferError> {
        let digest = digest::sha256(&body);
        self.retrying(&format!("PUT manifest {repo}:{reference}"), |_| async {
            let req = Req::new(
                Method::PUT,
                format!("/v2/{repo}/manifests/{reference}"),
                scopes,
            )
            .header(CONTENT_TYPE, media_type)
            .body(body.clone());
            let resp = self.send(req).await?;
            if !resp.status().is_success() {
                return Err(self.status_error("PUT manifest", resp).await);
            }
            match header(&resp, "docker-content-digest") {
                Some(d) if d != digest => Err(TransferError::new(
                    Reason::IntegrityError,
                    format!("registry stored manifest as {d}, expected {digest}"),
                )),
                _ => Ok(()),
            }
        })
        .await?;
        Ok(digest)
    }

    /// Opens an upload session; returns its location.
    pub(crate) async fn start_upload(
        &self,
        repo: &str,
        scopes: &[String],
    ) -> Result<String, TransferError> {
        self.retrying("start blob upload", |_| async {
            let req = Req::new(Method::POST, format!("/v2/{repo}/blobs/uploads/"), scopes)
                .header(CONTENT_LENGTH, "0");
            let resp = self.send(req).await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(self.status_error("start blob upload", resp).await);
            }
            self.location(&resp).await
        })
        .await
    }

    /// Cross-repository mount; `false` when the registry declined (then the blob must be copied).
    pub(crate) async fn mount(
        &self,
        repo: &str,
        digest: &str,
        from: &str,
        scopes: &[String],
    ) -> Result<bool, TransferError> {
        self.retrying(&format!("mount {digest}"), |_| async {
            let url = format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
            let resp = self
                .send(Req::new(Method::POST, url, scopes).header(CONTENT_LENGTH, "0"))
                .await?;
            match resp.status() {
                StatusCode::CREATED => {
                    Counters::add(&self.counters.blobs_mounted, 1);
                    Ok(true)
                }
                StatusCode::ACCEPTED => {
                    // The registry opened an ordinary upload instead; close it.
                    if let Ok(loc) = self.location(&resp).await {
                        self.cancel_upload(&loc, scopes).await;
                    }
                    Ok(false)
                }
                _ => Err(self.status_error("mount blob", resp).await),
            }
        })
        .await
    }

    /// Streams `len` bytes of an upload from `start`; returns the next location. Not retried
    /// here (the body cannot be replayed; the uploader restarts the blob).
    pub(crate) async fn patch(
        &self,
        location: &str,
        start: u64,
        len: u64,
        body: reqwest::Body,
        scopes: &[String],
    ) -> Result<String, TransferError> {
        let req = Req::new(Method::PATCH, location, scopes)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_RANGE, &format!("{start}-{}", start + len - 1))
            .header(CONTENT_LENGTH, &len.to_string());
        Counters::add(&self.counters.patch_requests, 1);
        let resp = self.send_streaming(req, body).await?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // Our offset and the registry's disagree (e.g. a lost response): a new session
            // fixes it.
            return Err(TransferError::transient(
                self.side(),
                "registry rejected the chunk offset (HTTP 416)",
            ));
        }
        if resp.status() != StatusCode::ACCEPTED && !resp.status().is_success() {
            return Err(self.status_error("PATCH blob", resp).await);
        }
        Counters::add(&self.counters.uploaded_bytes, len);
        self.location(&resp).await
    }

    /// Completes an upload with the digest the registry must verify.
    pub(crate) async fn finish_upload(
        &self,
        repo: &str,
        location: &str,
        digest: &str,
        scopes: &[String],
    ) -> Result<(), TransferError> {
        let mut url = url::Url::parse(&self.resolve(location).await?)
            .map_err(|e| TransferError::new(self.side(), format!("bad upload location: {e}")))?;
        url.query_pairs_mut().append_pair("digest", digest);
        let url = url.to_string();
        self.retrying(&format!("complete upload of {digest}"), |attempt| {
            let url = url.clone();
            async move {
                let req = Req::new(Method::PUT, url, scopes).header(CONTENT_LENGTH, "0");
                let resp = self.send(req).await?;
                if resp.status().is_success() {
                    return Ok(());
                }
                // A retried PUT finds the session consumed if the first one succeeded.
                if attempt > 1
                    && resp.status() == StatusCode::NOT_FOUND
                    && self.blob_size(repo, digest, scopes).await?.is_some()
                {
                    return Ok(());
                }
                Err(self.status_error("complete blob upload", resp).await)
            }
        })
        .await?;
        Counters::add(&self.counters.blobs_uploaded, 1);
        Ok(())
    }

    /// How many bytes an upload session holds (its `Range`) and where it goes on; `None` when
    /// the registry no longer knows the session (or refuses its state).
    pub(crate) async fn upload_status(
        &self,
        location: &str,
        scopes: &[String],
    ) -> Result<Option<(u64, String)>, TransferError> {
        self.retrying("read upload status", |_| async {
            let resp = self.send(Req::new(Method::GET, location, scopes)).await?;
            match resp.status() {
                StatusCode::NO_CONTENT | StatusCode::OK => {
                    let range = header(&resp, RANGE.as_str()).unwrap_or_default();
                    let size = parse_upload_range(&range).ok_or_else(|| {
                        TransferError::new(
                            self.side(),
                            format!("upload status has no usable Range ({range:?})"),
                        )
                    })?;
                    let next = match header(&resp, LOCATION.as_str()) {
                        Some(l) => self.resolve(&l).await?,
                        None => location.to_owned(),
                    };
                    Ok(Some((size, next)))
                }
                StatusCode::NOT_FOUND
                | StatusCode::BAD_REQUEST
                | StatusCode::RANGE_NOT_SATISFIABLE => Ok(None),
                _ => Err(self.status_error("read upload status", resp).await),
            }
        })
        .await
    }

    /// Best-effort cancellation of an upload session.
    pub(crate) async fn cancel_upload(&self, location: &str, scopes: &[String]) {
        let _ = self.send(Req::new(Method::DELETE, location, scopes)).await;
    }

    async fn location(&self, resp: &Response) -> Result<String, TransferError> {
        let loc = header(resp, LOCATION.as_str()).ok_or_else(|| {
            TransferError::new(
                self.side(),
                "registry answered an upload request without a Location",
            )
        })?;
        self.resolve(&loc).await
    }
}

/// The size an upload's `Range: 0-<last>` reports (distribution answers `0-0` for an empty
/// session, so `0-0` counts as none: a resume then sends the first byte again).
pub(crate) fn parse_upload_range(range: &str) -> Option<u64> {
    let range = range.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (first, last) = range.split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    let last: u64 = last.trim().parse().ok()?;
    Some(if last == 0 { 0 } else { last + 1 })
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(crate) fn content_length(resp: &Response) -> Option<u64> {
    header(resp, CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok())
}

/// Reads a body of at most `max` bytes.
async fn read_limited(
    reg: &Registry,
    resp: Response,
    max: usize,
    what: &str,
) -> Result<Bytes, TransferError> {
    let mut buf = BytesMut::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| reg.transport_error(&format!("reading {what}"), e))?;
        if buf.len() + chunk.len() > max {
            return Err(TransferError::new(
                reg.side(),
                format!("{what} is larger than {max} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::parse_upload_range;

    #[test]
    fn upload_ranges_give_the_stored_size() {
        assert_eq!(parse_upload_range("0-67108863"), Some(64 << 20));
        assert_eq!(parse_upload_range("bytes=0-9"), Some(10));
        assert_eq!(parse_upload_range("0-0"), Some(0));
        assert_eq!(parse_upload_range("5-9"), None);
        assert_eq!(parse_upload_range(""), None);
        assert_eq!(parse_upload_range("0-x"), None);
    }
}
