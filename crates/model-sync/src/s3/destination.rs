//! The S3 destination: every model file under the configured key, multipart for large files.
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;

use super::client::client;
use super::error::{Side, sdk_error};
use super::keys::{endpoint_id, object_key, s3_uri};
use crate::config::S3Location;
use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::source::from_io;
use crate::transfer::{
    ByteStream, ModelFile, OpenFile, Progress, Published, Reason, TransferError,
};

#[path = "copy.rs"]
mod copy;

const MIB: u64 = 1024 * 1024;
/// S3 limits: parts per upload, smallest non-final part, largest part.
pub const MAX_PARTS: u64 = 10_000;
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;

/// Upload tuning.
#[derive(Clone, Copy, Debug)]
pub struct MultipartOptions {
    /// Files larger than this are uploaded in parts (default 16 MiB); smaller ones with one
    /// `PutObject` (held in memory).
    pub threshold: u64,
    /// Smallest part (default 8 MiB; never below S3's 5 MiB). Grows with the file so that no
    /// upload needs more than 10 000 parts.
    pub min_part_size: u64,
    /// Parts of one file uploading at once (default 4), further limited by `max_buffered`.
    pub parts_in_flight: usize,
    /// Memory for one file's parts (read buffer plus parts in flight; default 256 MiB).
    pub max_buffered: u64,
    /// Files uploading at once (default 2).
    pub files_in_flight: usize,
    /// Server-side copies (same endpoint): objects larger than this are copied in parts with
    /// `UploadPartCopy` (default 5 GiB, the largest `CopyObject`), others with one `CopyObject`.
    pub copy_threshold: u64,
    /// Smallest part of a copy in parts (default 1 GiB; grows for 10,000 parts at most).
    pub copy_part_size: u64,
}

impl Default for MultipartOptions {
    fn default() -> Self {
        MultipartOptions {
            threshold: 16 * MIB,
            min_part_size: 8 * MIB,
            parts_in_flight: 4,
            max_buffered: 256 * MIB,
            files_in_flight: 2,
            copy_threshold: MAX_PART_SIZE,
            copy_part_size: 1024 * MIB,
        }
    }
}

/// The part size for a file of `size` bytes: at least `min_part` (and 5 MiB), a whole number of
/// MiB, and large enough for at most 10 000 parts. Files too large for S3 (parts over 5 GiB) are
/// refused.
pub fn part_size(size: u64, min_part: u64) -> Result<u64, TransferError> {
    let part = size
        .div_ceil(MAX_PARTS)
        .max(min_part)
        .max(MIN_PART_SIZE)
        .next_multiple_of(MIB);
    if part > MAX_PART_SIZE {
        return Err(TransferError::new(
            Reason::DestinationRejected,
            format!("a file of {size} bytes exceeds S3's object size limit"),
        ));
    }
    Ok(part)
}

/// Writes a model to `s3://bucket/key/<relative path>` (the key is a prefix, for single-file
/// models too). Each file's sha256 and byte count are checked while it streams; a multipart upload
/// that fails is aborted, so no half-written object remains. `Published.uri` is
/// `s3://bucket/key`.
pub struct S3Destination {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    options: MultipartOptions,
    retry: RetryPolicy,
    /// The endpoint (see [`endpoint_id`]); `None` when unknown (a caller's client).
    endpoint: Option<String>,
}

impl std::fmt::Debug for S3Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Destination")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Marks errors of uploads stopped because another file failed.
const CANCELLED: &str = "upload cancelled after another file failed";

impl S3Destination {
    pub async fn new(location: &S3Location) -> S3Destination {
        let mut d =
            S3Destination::with_client(client(location).await, &location.bucket, &location.key);
        d.endpoint = Some(endpoint_id(location));
        d
    }

    pub fn with_client(client: aws_sdk_s3::Client, bucket: &str, key: &str) -> S3Destination {
        S3Destination {
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            options: MultipartOptions::default(),
            retry: RetryPolicy::default(),
            endpoint: None,
        }
    }

    /// The endpoint URL the client was built for (with [`S3Destination::with_client`]; `new`
    /// knows it): a source on the same endpoint is then copied server-side.
    pub fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Some(endpoint.trim_end_matches('/').to_owned());
        self
    }

    pub fn with_options(mut self, options: MultipartOptions) -> Self {
        self.options = options;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// `s3://bucket/key`, as registered.
    pub fn uri(&self) -> String {
        s3_uri(&self.bucket, &self.key)
    }

    pub async fn publish<S: OpenFile + ?Sized>(
        &self,
        source: &S,
        files: &[ModelFile],
        progress: &Progress,
    ) -> Result<Published, TransferError> {
        let cancel = AtomicBool::new(false);
        let results: Vec<Result<(), TransferError>> = futures::stream::iter(files)
            .map(|f| self.upload_file(source, f, progress, &cancel))
            .buffer_unordered(self.options.files_in_flight.max(1))
            .collect()
            .await;
        let mut errors: Vec<TransferError> = results.into_iter().filter_map(Result::err).collect();
        if let Some(i) = errors.iter().position(|e| !e.message.ends_with(CANCELLED)) {
            return Err(errors.swap_remove(i));
        }
        if let Some(e) = errors.pop() {
            return Err(e);
        }
        Ok(Published {
            uri: self.uri(),
            digest: None,
            bytes: files.iter().map(|f| f.size).sum(),
            files: files.len(),
        })
    }

    async fn upload_file<S: OpenFile + ?Sized>(
        &self,
        source: &S,
        file: &ModelFile,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<(), TransferError> {
        let key = object_key(&self.key, &file.path);
        let result = async {
            let stream = source.open(file, 0).await?;
            if file.size > self.options.threshold {
                self.multipart(&key, stream, file, progress, cancel).await
            } else {
                self.single(&key, stream, file, progress).await
            }
        }
        .await;
        if result.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        result
    }

    async fn single(
        &self,
        key: &str,
        mut stream: ByteStream,
        file: &ModelFile,
        progress: &Progress,
    ) -> Result<(), TransferError> {
        let what = format!("uploading {}", s3_uri(&self.bucket, key));
        let mut check = Check::new(file, &what);
        let mut buf = BytesMut::with_capacity(file.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| from_io(e, &what))?;
            check.update(&chunk)?;
            buf.extend_from_slice(&chunk);
        }
        check.finish()?;
        let body = buf.freeze();
        retry(self.retry, &what, |_| {
            let req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_length(body.len() as i64)
                .body(SdkBody::from(body.clone()));
            let what = &what;
            async move {
                req.send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_error(&e, Side::Destination, what))
            }
        })
        .await?;
        progress.add(file.size);
        Ok(())
    }

    async fn multipart(
        &self,
        key: &str,
        stream: ByteStream,
        file: &ModelFile,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<(), TransferError> {
        let what = format!("uploading {}", s3_uri(&self.bucket, key));
        let part = part_size(file.size, self.options.min_part_size)?;
        let created = retry(self.retry, &what, |_| {
            let req = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(key);
            let what = &what;
            async move {
                req.send()
                    .await
                    .map_err(|e| sdk_error(&e, Side::Destination, what))
            }
        })
        .await?;
        let upload_id = created.upload_id().map(str::to_owned).ok_or_else(|| {
            TransferError::new(
                Reason::DestinationRejected,
                format!("{what}: the server returned no upload id"),
            )
        })?;
        let guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id: Some(upload_id.clone()),
        };
        let upload = Upload {
            dest: self,
            key,
            upload_id: &upload_id,
            what: &what,
            part,
            progress,
        };
        match upload.parts(stream, file, cancel).await {
            Ok(parts) => {
                let done = CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build();
                let completed = retry(self.retry, &what, |_| {
                    let req = self
                        .client
                        .complete_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(&upload_id)
                        .multipart_upload(done.clone());
                    let what = &what;
                    async move {
                        req.send()
                            .await
                            .map_err(|e| sdk_error(&e, Side::Destination, what))
                    }
                })
                .await;
                match completed {
                    Ok(_) => {
                        guard.disarm();
                        Ok(())
                    }
                    Err(e) => {
                        guard.abort().await;
                        Err(e)
                    }
                }
            }
            Err(e) => {
                guard.abort().await;
                Err(e)
            }
        }
    }
}

/// One multipart upload in progress.
struct Upload<'a> {
    dest: &'a S3Destination,
    key: &'a str,
    upload_id: &'a str,
    what: &'a str,
    part: u64,
    progress: &'a Progress,
}

impl Upload<'_> {
    /// Reads the stream into parts and uploads them as they fill, a bounded number at a time.
    /// On failure, part uploads already under way are waited for, so that none lands after the
    /// caller aborts the multipart upload (it would stay behind; S3 documents the same).
    async fn parts(
        &self,
        stream: ByteStream,
        file: &ModelFile,
        cancel: &AtomicBool,
    ) -> Result<Vec<CompletedPart>, TransferError> {
        let mut tasks = JoinSet::new();
        let result = self.fill_parts(stream, file, cancel, &mut tasks).await;
        if result.is_err() {
            while tasks.join_next().await.is_some() {}
        }
        result
    }

    async fn fill_parts(
        &self,
        mut stream: ByteStream,
        file: &ModelFile,
        cancel: &AtomicBool,
        tasks: &mut JoinSet<Result<CompletedPart, TransferError>>,
    ) -> Result<Vec<CompletedPart>, TransferError> {
        let opts = &self.dest.options;
        let budget_parts = (opts.max_buffered / self.part).saturating_sub(1).max(1) as usize;
        let in_flight = opts.parts_in_flight.clamp(1, budget_parts.max(1));
        let part_len = self.part as usize;
        let mut check = Check::new(file, self.what);
        let mut buf = BytesMut::with_capacity(part_len);
        let mut done = Vec::new();
        let mut number = 0i32;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(TransferError::new(
                    Reason::Internal,
                    format!("{}: {CANCELLED}", self.what),
                ));
            }
            let chunk = match stream.next().await {
                Some(c) => c.map_err(|e| from_io(e, self.what))?,
                None => break,
            };
            check.update(&chunk)?;
            let mut rest: &[u8] = &chunk;
            while !rest.is_empty() {
                let take = rest.len().min(part_len - buf.len());
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buf.len() == part_len {
                    while tasks.len() >= in_flight {
                        done.push(join(tasks.join_next().await)?);
                    }
                    number += 1;
                    let data =
                        std::mem::replace(&mut buf, BytesMut::with_capacity(part_len)).freeze();
                    tasks.spawn(self.upload_part(number, data));
                }
            }
        }
        check.finish()?;
        if !buf.is_empty() || number == 0 {
            number += 1;
            tasks.spawn(self.upload_part(number, buf.freeze()));
        }
        while let Some(r) = tasks.join_next().await {
            done.push(join(Some(r))?);
        }
        done.sort_by_key(|p| p.part_number());
        Ok(done)
    }

    fn upload_part(
        &self,
        number: i32,
        data: Bytes,
    ) -> impl Future<Output = Result<CompletedPart, TransferError>> + Send + 'static {
        let client = self.dest.client.clone();
        let (bucket, key, upload_id) = (
            self.dest.bucket.clone(),
            self.key.to_owned(),
            self.upload_id.to_owned(),
        );
        let policy = self.dest.retry;
        let what = format!("{} (part {number})", self.what);
        let progress = self.progress.clone();
        async move {
            let out = retry(policy, &what, |_| {
                let req = client
                    .upload_part()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .content_length(data.len() as i64)
                    .body(SdkBody::from(data.clone()));
                let what = &what;
                async move {
                    req.send()
                        .await
                        .map_err(|e| sdk_error(&e, Side::Destination, what))
                }
            })
            .await?;
            progress.add(data.len() as u64);
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build())
        }
    }
}

fn join(
    r: Option<Result<Result<CompletedPart, TransferError>, tokio::task::JoinError>>,
) -> Result<CompletedPart, TransferError> {
    match r {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(TransferError::new(
            Reason::Internal,
            format!("part upload task failed: {e}"),
        )),
        None => Err(TransferError::new(
            Reason::Internal,
            "no part upload in flight",
        )),
    }
}

/// Byte count and sha256 of a file as it streams, checked against the listing.
struct Check<'a> {
    file: &'a ModelFile,
    what: &'a str,
    bytes: u64,
    hasher: Sha256,
}

impl<'a> Check<'a> {
    fn new(file: &'a ModelFile, what: &'a str) -> Self {
        Check {
            file,
            what,
            bytes: 0,
            hasher: Sha256::new(),
        }
    }

    fn update(&mut self, chunk: &[u8]) -> Result<(), TransferError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.file.size {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!(
                    "{}: the source sent more than the listed {} bytes",
                    self.what, self.file.size
                ),
            ));
        }
        self.hasher.update(chunk);
        Ok(())
    }

    fn finish(self) -> Result<String, TransferError> {
        if self.bytes != self.file.size {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!(
                    "{}: the source sent {} bytes, listed {}",
                    self.what, self.bytes, self.file.size
                ),
            ));
        }
        let sha = hex::encode(self.hasher.finalize());
        if let Some(want) = &self.file.sha256
            && !want.eq_ignore_ascii_case(&sha)
        {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!(
                    "{}: sha256 {sha} does not match the expected {want}",
                    self.what
                ),
            ));
        }
        tracing::debug!(sha256 = %sha, bytes = self.bytes, "{}", self.what);
        Ok(sha)
    }
}

/// Aborts a multipart upload that did not complete: explicitly on errors, and from `Drop` (on a
/// spawned task) when the upload future is cancelled.
struct AbortGuard {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortGuard {
    fn disarm(mut self) {
        self.upload_id = None;
    }

    async fn abort(mut self) {
        if let Some(id) = self.upload_id.take() {
            abort(
                self.client.clone(),
                self.bucket.clone(),
                self.key.clone(),
                id,
            )
            .await;
        }
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(id) = self.upload_id.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(abort(
                self.client.clone(),
                self.bucket.clone(),
                self.key.clone(),
                id,
            ));
        }
    }
}

async fn abort(client: aws_sdk_s3::Client, bucket: String, key: String, upload_id: String) {
    match client
        .abort_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .upload_id(&upload_id)
        .send()
        .await
    {
        Ok(_) => tracing::debug!("aborted the multipart upload of {}", s3_uri(&bucket, &key)),
        Err(e) => tracing::warn!(
            "could not abort the multipart upload {upload_id} of {} ({}); a bucket lifecycle rule for \
             incomplete uploads will remove its parts",
            s3_uri(&bucket, &key),
            sdk_error(&e, Side::Destination, "abort").message
        ),
    }
}
