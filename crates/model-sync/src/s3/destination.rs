//! The S3 destination: every model file under the configured key, multipart for large files
//! (`multipart.rs`); with a resume journal, a rerun after a kill continues the uploads in flight
//! (`resume.rs`).
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::primitives::ByteStream as SdkBody;
use bytes::BytesMut;
use futures::StreamExt as _;

use super::client::client;
use super::error::{Side, sdk_error};
use super::journal::Journal;
use super::keys::{endpoint_id, object_key, s3_uri};
use super::multipart::{CANCELLED, Check, Journaled, MultipartOptions, Stored, Upload};
use crate::config::S3Location;
use crate::transfer::retry::{RetryPolicy, retry};
use crate::transfer::source::from_io;
use crate::transfer::{
    ByteStream, ModelFile, OpenFile, Progress, Published, Reason, TransferError,
};

#[path = "copy.rs"]
mod copy;
#[path = "resume.rs"]
mod resume;

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
    /// Where uploads are recorded for a resume after a kill (`--resume-journal`).
    journal: Option<Arc<Journal>>,
}

impl std::fmt::Debug for S3Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Destination")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

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
            journal: None,
        }
    }

    /// Records uploads in the journal at `path` and resumes what it holds from an earlier run
    /// (see `journal.rs`). With a journal the parts of one file go up one at a time, so a kill
    /// leaves at most one part per file in flight to send again.
    pub fn with_resume_journal(mut self, path: &Path) -> Result<Self, TransferError> {
        let destination = format!(
            "s3 {} {}",
            journal_endpoint(self.endpoint.as_deref()),
            self.bucket
        );
        self.journal = Some(Arc::new(Journal::open(path, &destination)?));
        Ok(self)
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

    async fn upload_file<S: OpenFile + ?Sized>(
        &self,
        source: &S,
        file: &ModelFile,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<(), TransferError> {
        let key = object_key(&self.key, &file.path);
        let result = async {
            if let Some(j) = &self.journal {
                return self
                    .upload_journaled(j, source, &key, file, progress, cancel)
                    .await;
            }
            let stream = source.open(file, 0).await?;
            if file.size > self.options.threshold {
                let upload_id = self.create_upload(&key).await?;
                let upload = self.upload(&key, &upload_id, file, progress, None);
                upload
                    .run(stream, cancel, &BTreeMap::new())
                    .await
                    .map(|_| ())
            } else {
                self.single(&key, stream, file, progress).await.map(|_| ())
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
    ) -> Result<Stored, TransferError> {
        let what = format!("uploading {}", s3_uri(&self.bucket, key));
        let mut check = Check::new(file, &what);
        let mut buf = BytesMut::with_capacity(file.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| from_io(e, &what))?;
            check.update(&chunk)?;
            buf.extend_from_slice(&chunk);
        }
        let sha256 = check.finish()?;
        let body = buf.freeze();
        let out = retry(self.retry, &what, |_| {
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
                    .map_err(|e| sdk_error(&e, Side::Destination, what))
            }
        })
        .await?;
        progress.add(file.size);
        Ok(Stored {
            e_tag: out.e_tag().map(str::to_owned),
            sha256,
        })
    }

    /// Starts a multipart upload; its id.
    async fn create_upload(&self, key: &str) -> Result<String, TransferError> {
        let what = format!("uploading {}", s3_uri(&self.bucket, key));
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
        created.upload_id().map(str::to_owned).ok_or_else(|| {
            TransferError::new(
                Reason::DestinationRejected,
                format!("{what}: the server returned no upload id"),
            )
        })
    }

    /// The parts of upload `upload_id` of `file` under `key`; `journal` records them (with the
    /// object's journal key) and marks the upload's errors as a resumed upload's.
    fn upload<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        file: &'a ModelFile,
        progress: &'a Progress,
        journal: Option<Journaled>,
    ) -> Upload<'a> {
        Upload {
            client: &self.client,
            bucket: &self.bucket,
            options: self.options,
            retry: self.retry,
            key,
            upload_id,
            what: format!("uploading {}", s3_uri(&self.bucket, key)),
            file,
            progress,
            journal,
        }
    }
}

/// The endpoint part of a journal's destination: the endpoint URL without any user
/// information (the journal never holds a credential).
fn journal_endpoint(endpoint: Option<&str>) -> String {
    match endpoint.filter(|e| !e.is_empty()).map(url::Url::parse) {
        Some(Ok(mut u)) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_owned()
        }
        Some(Err(_)) => "unparsed endpoint".to_owned(),
        None => "default endpoint".to_owned(),
    }
}
