//! S3 → S3 on one endpoint: server-side copies, so no model byte passes through model-sync.
//!
//! Objects up to `copy_threshold` (default 5 GiB, the largest `CopyObject`) are copied with one
//! `CopyObject`, larger ones with a multipart upload of `UploadPartCopy` ranges (aborted when it
//! fails, like a streamed multipart upload). Every copy names the listed ETag
//! (`x-amz-copy-source-if-match`), so an object that changed since the listing fails the copy
//! as it fails a read, and the copy is checked afterwards with a `HEAD`: its size must be the
//! listed one, the check a streamed copy of an S3 source makes (S3 sources know no content
//! digest to compare).
//!
//! Refusals: a server that does not implement copies, or credentials of the destination that may
//! not read the source (`NotImplemented`, `AccessDenied`, HTTP 501/403/405), make the file, and
//! every file after it, stream instead, with a warning saying why.
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt as _, TryStreamExt as _};

use super::super::error::{Side, sdk_error};
use super::super::keys::{bare_etag, object_key, s3_uri};
use super::super::multipart::{AbortGuard, part_size};
use super::S3Destination;
use crate::s3::S3Source;
use crate::transfer::retry::retry;
use crate::transfer::{ModelFile, Progress, Published, Reason, TransferError};

/// Server-side copies run at once (they cost the client nothing but a request).
const COPIES_IN_FLIGHT: usize = 8;

/// How a file's copy ended.
enum Copied {
    Done,
    /// The server refused server-side copies: stream this file (and the rest).
    Refused(TransferError),
}

impl S3Destination {
    /// Whether `source` is on this destination's endpoint (both endpoints known and equal).
    pub fn same_endpoint(&self, source: &S3Source) -> bool {
        matches!((self.endpoint.as_deref(), source.endpoint()), (Some(a), Some(b)) if a == b)
    }

    /// Publishes from an S3 source: server-side copies on the same endpoint (falling back to
    /// streaming where the server refuses them), a streamed [`S3Destination::publish`] otherwise.
    pub async fn publish_from_s3(
        &self,
        source: &S3Source,
        files: &[ModelFile],
        progress: &Progress,
    ) -> Result<Published, TransferError> {
        if !self.same_endpoint(source) {
            return self.publish(source, files, progress).await;
        }
        tracing::info!(
            files = files.len(),
            "source and destination share the S3 endpoint: copying server-side"
        );
        let refused = AtomicBool::new(false);
        let cancel = AtomicBool::new(false);
        futures::stream::iter(files)
            .map(|f| async {
                if !refused.load(Ordering::Relaxed) {
                    match self.copy_file(source, f).await? {
                        Copied::Done => {
                            progress.add(f.size);
                            return Ok(());
                        }
                        Copied::Refused(why) => {
                            if !refused.swap(true, Ordering::Relaxed) {
                                tracing::warn!(
                                    error = %why.message,
                                    "the S3 server refused a server-side copy; streaming the files instead"
                                );
                            }
                        }
                    }
                }
                self.upload_file(source, f, progress, &cancel).await
            })
            .buffer_unordered(COPIES_IN_FLIGHT.max(self.options.files_in_flight))
            .try_collect::<Vec<()>>()
            .await?;
        if let Some(j) = &self.journal {
            j.finished();
        }
        Ok(Published {
            uri: self.uri(),
            digest: None,
            bytes: files.iter().map(|f| f.size).sum(),
            files: files.len(),
        })
    }

    async fn copy_file(&self, source: &S3Source, f: &ModelFile) -> Result<Copied, TransferError> {
        let (src_bucket, src_key, etag) = source.object_of(&f.path);
        let key = object_key(&self.key, &f.path);
        let copy_source = format!("{}/{}", encode(src_bucket), encode(&src_key));
        let what = format!(
            "copying {} to {}",
            s3_uri(src_bucket, &src_key),
            s3_uri(&self.bucket, &key)
        );
        let if_match = etag.map(|e| format!("\"{}\"", bare_etag(&e)));
        let outcome = if f.size > self.options.copy_threshold {
            self.copy_in_parts(&key, &copy_source, if_match.as_deref(), f, &what)
                .await
        } else {
            retry(self.retry, &what, |_| {
                let req = self
                    .client
                    .copy_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .copy_source(&copy_source)
                    .set_copy_source_if_match(if_match.clone());
                let what = &what;
                async move { req.send().await.map(|_| ()).map_err(|e| classify(&e, what)) }
            })
            .await
        };
        match outcome {
            Ok(()) => {}
            Err(e) if e.reason == Reason::NotImplemented => return Ok(Copied::Refused(e)),
            Err(e) => return Err(e),
        }
        self.check_copy(&key, f, &what).await?;
        tracing::debug!(path = %f.path, bytes = f.size, "copied server-side");
        Ok(Copied::Done)
    }

    /// `UploadPartCopy` ranges of at least `copy_part_size`, a few at a time.
    async fn copy_in_parts(
        &self,
        key: &str,
        copy_source: &str,
        if_match: Option<&str>,
        f: &ModelFile,
        what: &str,
    ) -> Result<(), TransferError> {
        let part = part_size(f.size, self.options.copy_part_size)?;
        let created = retry(self.retry, what, |_| {
            let req = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(key);
            async move { req.send().await.map_err(|e| classify(&e, what)) }
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
        let ranges: Vec<(i32, u64, u64)> = (0..f.size.div_ceil(part))
            .map(|i| (i as i32 + 1, i * part, ((i + 1) * part).min(f.size) - 1))
            .collect();
        let upload_id = upload_id.as_str();
        let parts: Result<Vec<CompletedPart>, TransferError> = futures::stream::iter(ranges)
            .map(|(number, first, last)| async move {
                let out = retry(self.retry, what, |_| {
                    let req = self
                        .client
                        .upload_part_copy()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .copy_source(copy_source)
                        .copy_source_range(format!("bytes={first}-{last}"))
                        .set_copy_source_if_match(if_match.map(str::to_owned));
                    async move { req.send().await.map_err(|e| classify(&e, what)) }
                })
                .await?;
                let etag = out
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .map(str::to_owned);
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(etag)
                    .build())
            })
            .buffered(self.options.parts_in_flight.max(1))
            .try_collect()
            .await;
        let parts = match parts {
            Ok(p) => p,
            Err(e) => {
                guard.abort().await;
                return Err(e);
            }
        };
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let completed = retry(self.retry, what, |_| {
            let req = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(done.clone());
            async move { req.send().await.map_err(|e| classify(&e, what)) }
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

    /// The copy has the listed size.
    async fn check_copy(&self, key: &str, f: &ModelFile, what: &str) -> Result<(), TransferError> {
        let head = retry(self.retry, what, |_| {
            let req = self.client.head_object().bucket(&self.bucket).key(key);
            async move {
                req.send()
                    .await
                    .map_err(|e| sdk_error(&e, Side::Destination, what))
            }
        })
        .await?;
        let size = head.content_length().unwrap_or(-1);
        if size != f.size as i64 {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!(
                    "{what}: the copy has {size} bytes, the source listed {}",
                    f.size
                ),
            ));
        }
        Ok(())
    }
}

/// An S3 error of a copy request; a refusal of server-side copies gets `NotImplemented` (the
/// caller streams instead), a changed source is not one.
fn classify<E>(err: &SdkError<E>, what: &str) -> TransferError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut e = sdk_error(err, Side::Destination, what);
    if let SdkError::ServiceError(se) = err {
        let status = se.raw().status().as_u16();
        let code = se.err().code().unwrap_or("");
        let refusal = matches!(
            code,
            "NotImplemented" | "AccessDenied" | "MethodNotAllowed" | "XNotImplemented"
        ) || matches!(status, 403 | 405 | 501);
        if refusal {
            e.reason = Reason::NotImplemented;
            e.transient = false;
        }
    }
    e
}

/// Percent-encodes a bucket or key for `x-amz-copy-source` (unreserved characters and `/` kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(super::encode("a b/ü+x.bin"), "a%20b/%C3%BC%2Bx.bin");
        assert_eq!(super::encode("plain/key-1_2.~"), "plain/key-1_2.~");
    }
}
