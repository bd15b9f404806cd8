//! The S3 source: one object, or every object under a strict "directory" prefix.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use futures::future::BoxFuture;

use super::client::{client, client_with_tls};
use super::error::{Side, sdk_error};
use super::keys::{bare_etag, directory_prefix, endpoint_id, fingerprint, relative_path, s3_uri};
use super::tls::S3Tls;
use crate::config::S3Location;
use crate::transfer::retry::{Reopen, ResumeOptions, RetryPolicy, resume_stream, retry};
use crate::transfer::{
    ByteStream, ModelFile, ModelPath, OpenFile, Reason, TransferError, normalize_listing,
};

/// Reads a model from `s3://bucket/key`.
///
/// Listing ([`S3Source::list`]):
/// - the key names a *directory* `key/` (unless it already ends with `/`): every object under it,
///   paths relative to it, structure preserved. Strict: key `m1` lists `m1/…`, never `m10/…`.
///   Zero-byte directory markers (`…/`) are skipped; keys that are not safe relative paths
///   (`a/../../etc`) fail the listing.
/// - if nothing is under `key/`, the key may be a single object: one file named by the key's last
///   segment.
/// - if both an object `key` and objects under `key/` exist, the directory wins (a warning is
///   logged): a model is normally a directory, and an object next to it is more likely a stray
///   marker or an older single-file upload.
/// - an empty key lists the whole bucket.
///
/// Fingerprint: the ETag when the server lists one, else a digest of location, size and
/// last-modified time (see [`fingerprint`]). Reads ([`S3Source::open`]) are `GetObject`
/// with `Range: bytes=<offset>-` and `If-Match: <etag>`; an interrupted body is resumed from the
/// last delivered byte (the ETag — listed, or else the one the first read returned — is checked
/// on every re-request, so a changed object fails instead of mixing versions).
pub struct S3Source {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    retry: RetryPolicy,
    resume: ResumeOptions,
    /// Model path → object key and listed ETag, filled by `list`.
    keys: Mutex<HashMap<ModelPath, Listed>>,
    /// The endpoint (see [`endpoint_id`]); `None` when unknown (a caller's client).
    endpoint: Option<String>,
}

impl std::fmt::Debug for S3Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Source")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl S3Source {
    pub async fn new(location: &S3Location) -> S3Source {
        let mut s = S3Source::with_client(client(location).await, &location.bucket, &location.key);
        s.endpoint = Some(endpoint_id(location));
        s
    }

    /// Like [`S3Source::new`], checking the server's certificate as `tls` says.
    pub async fn new_with_tls(
        location: &S3Location,
        tls: &S3Tls,
    ) -> Result<S3Source, TransferError> {
        let mut s = S3Source::with_client(
            client_with_tls(location, tls).await?,
            &location.bucket,
            &location.key,
        );
        s.endpoint = Some(endpoint_id(location));
        Ok(s)
    }

    pub fn with_client(client: aws_sdk_s3::Client, bucket: &str, key: &str) -> S3Source {
        S3Source {
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            retry: RetryPolicy::default(),
            resume: ResumeOptions::default(),
            keys: Mutex::new(HashMap::new()),
            endpoint: None,
        }
    }

    /// The endpoint URL the client was built for, so that an S3 destination on the same
    /// endpoint can copy server-side (with [`S3Source::with_client`]; `new` knows it).
    pub fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Some(endpoint.trim_end_matches('/').to_owned());
        self
    }

    pub(crate) fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Bucket, object key and listed ETag of a file, for server-side copies.
    pub(crate) fn object_of(&self, path: &ModelPath) -> (&str, String, Option<String>) {
        let (key, etag) = self.key_of(path);
        (&self.bucket, key, etag)
    }

    /// How interrupted reads are resumed (tests shorten the delays).
    pub fn with_resume(mut self, resume: ResumeOptions) -> Self {
        self.resume = resume;
        self.retry = resume.policy;
        self
    }

    /// Lists the model (see the type's documentation for the rules).
    pub async fn list(&self) -> Result<Vec<ModelFile>, TransferError> {
        let prefix = directory_prefix(&self.key);
        let mut files = Vec::new();
        let mut keys = HashMap::new();
        for obj in self.list_prefix(&prefix).await? {
            match relative_path(&prefix, &obj.key, obj.size) {
                None => continue,
                Some(Err(e)) => return Err(e),
                Some(Ok(path)) => {
                    files.push(self.model_file(path.clone(), &obj));
                    keys.insert(path, obj);
                }
            }
        }
        let names_object = !self.key.is_empty() && !self.key.ends_with('/');
        if files.is_empty() && names_object {
            if let Some(obj) = self.head(&self.key).await? {
                let name = self.key.rsplit('/').next().unwrap_or(&self.key);
                let path = ModelPath::new(name)
                    .map_err(|e| e.context(format!("object key {:?}", self.key)))?;
                files.push(self.model_file(path.clone(), &obj));
                keys.insert(path, obj);
            }
        } else if names_object && self.object_exists_once(&self.key).await {
            tracing::warn!(
                "both an object {} and objects under {} exist; copying the directory",
                s3_uri(&self.bucket, &self.key),
                s3_uri(&self.bucket, &prefix)
            );
        }
        if files.is_empty() {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                if names_object {
                    format!(
                        "nothing to copy: no object {} and no objects under {}",
                        s3_uri(&self.bucket, &self.key),
                        s3_uri(&self.bucket, &prefix)
                    )
                } else {
                    format!(
                        "nothing to copy: no objects under {}",
                        s3_uri(&self.bucket, &prefix)
                    )
                },
            ));
        }
        let files = normalize_listing(files)?;
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(files)
    }

    fn model_file(&self, path: ModelPath, obj: &Listed) -> ModelFile {
        ModelFile {
            path,
            size: obj.size,
            fingerprint: fingerprint(
                &self.bucket,
                &obj.key,
                obj.size,
                obj.etag.as_deref(),
                obj.last_modified.as_ref(),
            ),
            sha256: None,
        }
    }

    /// Every object under `prefix`, all pages.
    async fn list_prefix(&self, prefix: &str) -> Result<Vec<Listed>, TransferError> {
        let what = format!("listing {}", s3_uri(&self.bucket, prefix));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retry(self.retry, &what, |_| {
                let req = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone());
                let what = &what;
                async move {
                    req.send()
                        .await
                        .map_err(|e| sdk_error(&e, Side::Source, what))
                }
            })
            .await?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    out.push(Listed {
                        key: key.to_owned(),
                        size: obj.size().unwrap_or(0).max(0) as u64,
                        etag: obj.e_tag().map(str::to_owned),
                        last_modified: obj.last_modified().copied(),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Err(TransferError::new(
                    Reason::SourceUnavailable,
                    format!(
                        "{what}: the server truncated the listing without a continuation token"
                    ),
                ));
            }
        }
    }

    /// Size, ETag and last-modified time of `key`, `None` when there is no such object.
    async fn head(&self, key: &str) -> Result<Option<Listed>, TransferError> {
        let what = format!("reading {}", s3_uri(&self.bucket, key));
        retry(self.retry, &what, |_| async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(h) => Ok(Some(Listed {
                    key: key.to_owned(),
                    size: h.content_length().unwrap_or(0).max(0) as u64,
                    etag: h.e_tag().map(str::to_owned),
                    last_modified: h.last_modified().copied(),
                })),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
                Err(e) => Err(sdk_error(&e, Side::Source, &what)),
            }
        })
        .await
    }

    /// One unretried HEAD, for a warning only (errors count as "no").
    async fn object_exists_once(&self, key: &str) -> bool {
        self.client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .customize()
            .config_override(
                aws_sdk_s3::Config::builder()
                    .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .is_ok()
    }

    /// The object key and listed ETag of a file (call [`S3Source::list`] first; unlisted paths
    /// are taken as relative to the directory prefix, with no ETag known).
    fn key_of(&self, path: &ModelPath) -> (String, Option<String>) {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        match keys.get(path) {
            Some(l) => (l.key.clone(), l.etag.clone()),
            None => (format!("{}{path}", directory_prefix(&self.key)), None),
        }
    }

    /// The bytes of `file` from `offset`, resumed transparently if the connection breaks.
    pub async fn open(&self, file: &ModelFile, offset: u64) -> Result<ByteStream, TransferError> {
        if offset > file.size {
            return Err(TransferError::invalid_input(format!(
                "offset {offset} is past the end of {} ({} bytes)",
                file.path, file.size
            )));
        }
        if offset == file.size {
            return Ok(futures::stream::empty().boxed());
        }
        let (key, etag) = self.key_of(&file.path);
        let what = format!("reading {}", s3_uri(&self.bucket, &key));
        let mut fetch = Fetch {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key,
            size: file.size,
            pin: etag,
            what: what.clone(),
        };
        let (first, etag) = retry(self.retry, &what, |_| fetch.get(offset)).await?;
        // Servers that list without ETags (some S3-compatible ones) still pin the version read first.
        if fetch.pin.is_none() {
            fetch.pin = etag;
        }
        let fetch = Arc::new(fetch);
        let reopen: Reopen = Box::new(move |pos| {
            let f = fetch.clone();
            Box::pin(async move { f.get(pos).await.map(|(s, _)| s) })
        });
        Ok(resume_stream(
            first,
            offset,
            file.size,
            what,
            self.resume,
            reopen,
        ))
    }
}

impl OpenFile for S3Source {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        Box::pin(S3Source::open(self, file, offset))
    }
}

/// A listed object.
#[derive(Clone, Debug)]
struct Listed {
    key: String,
    size: u64,
    etag: Option<String>,
    last_modified: Option<aws_smithy_types::DateTime>,
}

/// One ranged, version-pinned `GetObject`.
struct Fetch {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    size: u64,
    pin: Option<String>,
    what: String,
}

impl Fetch {
    async fn get(&self, pos: u64) -> Result<(ByteStream, Option<String>), TransferError> {
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={pos}-"));
        if let Some(pin) = &self.pin {
            req = req.if_match(format!("\"{}\"", bare_etag(pin)));
        }
        let out = req
            .send()
            .await
            .map_err(|e| sdk_error(&e, Side::Source, &self.what))?;
        let changed = |detail: String| {
            TransferError::new(
                Reason::SourceUnavailable,
                format!(
                    "{}: the object changed during the transfer ({detail})",
                    self.what
                ),
            )
        };
        // Servers that ignore If-Match are caught here.
        if let (Some(pin), Some(got)) = (&self.pin, out.e_tag())
            && bare_etag(pin) != bare_etag(got)
        {
            return Err(changed(format!("ETag {got}, expected {pin}")));
        }
        let expected = self.size - pos;
        if let Some(len) = out.content_length().map(|l| l.max(0) as u64)
            && len != expected
        {
            if pos > 0 && out.content_range().is_none() {
                return Err(TransferError::new(
                    Reason::SourceUnavailable,
                    format!(
                        "{}: the server ignored the Range header (cannot resume)",
                        self.what
                    ),
                ));
            }
            return Err(changed(format!(
                "{len} bytes from offset {pos}, expected {expected}"
            )));
        }
        let etag = out.e_tag().map(str::to_owned);
        Ok((body_stream(out.body), etag))
    }
}

/// An SDK body as a [`ByteStream`].
fn body_stream(body: aws_sdk_s3::primitives::ByteStream) -> ByteStream {
    futures::stream::unfold(body, |mut b| async move {
        b.next()
            .await
            .map(|r| (r.map_err(std::io::Error::other), b))
    })
    .boxed()
}
