//! Multipart uploads to S3: part sizes within S3's limits, parts read from a stream and sent a
//! bounded number at a time, the completion, and the abort of an upload that fails, apart from
//! the destination (`destination.rs`) so that the journaled path (`resume.rs`) and server-side
//! copies (`copy.rs`) share them without importing the destination.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;

use super::error::{Side, sdk_error};
use super::journal::{self, Journal};
use super::keys::s3_uri;
use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::source::from_io;
use crate::transfer::{ByteStream, ModelFile, Progress, Reason, TransferError};

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

/// Marks errors of uploads stopped because another file failed.
pub(super) const CANCELLED: &str = "upload cancelled after another file failed";

/// What a finished upload wrote: the object's ETag (as the server answered it) and sha256.
pub(super) struct Stored {
    pub(super) e_tag: Option<String>,
    pub(super) sha256: String,
}

/// How an upload's parts are journaled.
#[derive(Clone)]
pub(super) struct Journaled {
    pub(super) journal: Arc<Journal>,
    /// The object's journal key.
    pub(super) object: String,
    /// The upload was created by an earlier run: an unknown upload id is reported as
    /// [`UPLOAD_GONE`].
    pub(super) resumed: bool,
}

/// Marks errors of a resumed upload that the server no longer knows.
pub(super) const UPLOAD_GONE: &str = "the server no longer knows the multipart upload";

/// One multipart upload in progress.
pub(super) struct Upload<'a> {
    pub(super) client: &'a aws_sdk_s3::Client,
    pub(super) bucket: &'a str,
    pub(super) options: MultipartOptions,
    pub(super) retry: RetryPolicy,
    pub(super) key: &'a str,
    pub(super) upload_id: &'a str,
    pub(super) what: String,
    pub(super) file: &'a ModelFile,
    pub(super) progress: &'a Progress,
    pub(super) journal: Option<Journaled>,
}

impl Upload<'_> {
    /// Sends the parts and completes the upload, or aborts it when that fails (a resumed upload
    /// the server no longer knows is not aborted: there is nothing left to abort). Parts in
    /// `recorded` (their ETags from an earlier run) are not sent again when the bytes read now
    /// have that MD5.
    pub(super) async fn run(
        &self,
        stream: ByteStream,
        cancel: &AtomicBool,
        recorded: &BTreeMap<i32, String>,
    ) -> Result<Stored, TransferError> {
        let guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.to_owned(),
            key: self.key.to_owned(),
            upload_id: Some(self.upload_id.to_owned()),
        };
        let result: Result<Stored, TransferError> = async {
            let (parts, sha256) = self.parts(stream, cancel, recorded).await?;
            let e_tag = self.complete(parts).await?;
            Ok(Stored { e_tag, sha256 })
        }
        .await;
        match &result {
            Ok(_) => guard.disarm(),
            Err(e) if e.message.ends_with(UPLOAD_GONE) => guard.disarm(),
            Err(_) => guard.abort().await,
        }
        result
    }

    async fn complete(&self, parts: Vec<CompletedPart>) -> Result<Option<String>, TransferError> {
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let out = retry(self.retry, &self.what, |_| {
            let req = self
                .client
                .complete_multipart_upload()
                .bucket(self.bucket)
                .key(self.key)
                .upload_id(self.upload_id)
                .multipart_upload(done.clone());
            let what = &self.what;
            let resumed = self.journal.as_ref().is_some_and(|j| j.resumed);
            async move {
                req.send()
                    .await
                    .map_err(|e| upload_error(&e, what, resumed))
            }
        })
        .await?;
        Ok(out.e_tag().map(str::to_owned))
    }

    /// Reads the stream into parts and uploads them as they fill, a bounded number at a time;
    /// the parts and the sha256 of the file.
    /// On failure, part uploads already under way are waited for, so that none lands after the
    /// caller aborts the multipart upload (it would stay behind; S3 documents the same).
    async fn parts(
        &self,
        stream: ByteStream,
        cancel: &AtomicBool,
        recorded: &BTreeMap<i32, String>,
    ) -> Result<(Vec<CompletedPart>, String), TransferError> {
        let mut tasks = JoinSet::new();
        let result = self.fill_parts(stream, cancel, recorded, &mut tasks).await;
        if result.is_err() {
            while tasks.join_next().await.is_some() {}
        }
        result
    }

    async fn fill_parts(
        &self,
        mut stream: ByteStream,
        cancel: &AtomicBool,
        recorded: &BTreeMap<i32, String>,
        tasks: &mut JoinSet<Result<CompletedPart, TransferError>>,
    ) -> Result<(Vec<CompletedPart>, String), TransferError> {
        let opts = &self.options;
        let part = part_size(self.file.size, opts.min_part_size)?;
        let budget_parts = (opts.max_buffered / part).saturating_sub(1).max(1) as usize;
        // With a journal one part at a time: a kill then finds at most one part unacknowledged.
        let in_flight = match self.journal {
            Some(_) => 1,
            None => opts.parts_in_flight.clamp(1, budget_parts.max(1)),
        };
        let part_len = part as usize;
        let mut check = Check::new(self.file, &self.what);
        let mut buf = BytesMut::with_capacity(part_len);
        let mut done = Vec::new();
        let mut number = 0i32;
        let send =
            |number: i32, data: Bytes, done: &mut Vec<CompletedPart>, tasks: &mut JoinSet<_>| {
                match recorded.get(&number) {
                    Some(e_tag) if journal::md5_matches(e_tag, &data) => {
                        self.progress.add(data.len() as u64);
                        done.push(
                            CompletedPart::builder()
                                .part_number(number)
                                .e_tag(e_tag)
                                .build(),
                        );
                    }
                    _ => {
                        tasks.spawn(self.upload_part(number, data));
                    }
                }
            };
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(TransferError::new(
                    Reason::Internal,
                    format!("{}: {CANCELLED}", self.what),
                ));
            }
            let chunk = match stream.next().await {
                Some(c) => c.map_err(|e| from_io(e, &self.what))?,
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
                    send(number, data, &mut done, tasks);
                }
            }
        }
        let sha256 = check.finish()?;
        if !buf.is_empty() || number == 0 {
            number += 1;
            send(number, buf.freeze(), &mut done, tasks);
        }
        while let Some(r) = tasks.join_next().await {
            done.push(join(Some(r))?);
        }
        done.sort_by_key(|p| p.part_number());
        Ok((done, sha256))
    }

    fn upload_part(
        &self,
        number: i32,
        data: Bytes,
    ) -> impl Future<Output = Result<CompletedPart, TransferError>> + Send + 'static {
        let client = self.client.clone();
        let (bucket, key, upload_id) = (
            self.bucket.to_owned(),
            self.key.to_owned(),
            self.upload_id.to_owned(),
        );
        let policy = self.retry;
        let what = format!("{} (part {number})", self.what);
        let progress = self.progress.clone();
        let journal = self.journal.clone();
        let resumed = journal.as_ref().is_some_and(|j| j.resumed);
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
                        .map_err(|e| upload_error(&e, what, resumed))
                }
            })
            .await?;
            progress.add(data.len() as u64);
            let e_tag = out.e_tag().map(str::to_owned);
            if let (Some(j), Some(e_tag)) = (&journal, &e_tag) {
                j.journal.set(
                    &journal::part_key(&j.object, number),
                    journal::Entry::Part {
                        upload_id: upload_id.clone(),
                        e_tag: e_tag.clone(),
                    },
                );
            }
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(e_tag)
                .build())
        }
    }
}

/// An error of a part upload or a completion; in a resumed upload, an upload id the server no
/// longer knows (`NoSuchUpload`, HTTP 404, or s3s-fs's `AccessDenied` for an unknown id) is
/// marked [`UPLOAD_GONE`], so that the object starts over.
fn upload_error<E>(err: &aws_sdk_s3::error::SdkError<E>, what: &str, resumed: bool) -> TransferError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut e = sdk_error(err, Side::Destination, what);
    if resumed && let aws_sdk_s3::error::SdkError::ServiceError(se) = err {
        let status = se.raw().status().as_u16();
        let code = se.err().code().unwrap_or("");
        if matches!(code, "NoSuchUpload" | "AccessDenied") || matches!(status, 403 | 404) {
            e.message = format!("{}: {UPLOAD_GONE}", e.message);
            e.transient = false;
        }
    }
    e
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
pub(super) struct Check<'a> {
    file: &'a ModelFile,
    what: &'a str,
    bytes: u64,
    hasher: Sha256,
}

impl<'a> Check<'a> {
    pub(super) fn new(file: &'a ModelFile, what: &'a str) -> Self {
        Check {
            file,
            what,
            bytes: 0,
            hasher: Sha256::new(),
        }
    }

    pub(super) fn update(&mut self, chunk: &[u8]) -> Result<(), TransferError> {
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

    pub(super) fn finish(self) -> Result<String, TransferError> {
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
pub(super) struct AbortGuard {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) upload_id: Option<String>,
}

impl AbortGuard {
    pub(super) fn disarm(mut self) {
        self.upload_id = None;
    }

    pub(super) async fn abort(mut self) {
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

pub(super) async fn abort(
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
) {
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
