//! Uploads with a resume journal (`--resume-journal`): each file's progress is recorded as the
//! server acknowledges it (`journal.rs` says what, and how a rerun checks it), so a rerun after
//! a kill sends only what the server does not have yet: the part in flight at the kill, or the
//! whole file for a file uploaded with one `PutObject` (up to the multipart threshold).
//!
//! Why continue the same upload id instead of starting over: the parts already stored are the
//! bulk of what a killed run sent, and S3 keeps them until the upload is completed, aborted or
//! removed by a lifecycle rule. Why not ask the server what it has: see `journal.rs`.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use futures::StreamExt as _;

use super::super::journal::{self, Entry, Journal};
use super::super::keys::{bare_etag, s3_uri};
use super::super::multipart::{self, Check, Journaled, Stored, UPLOAD_GONE, part_size};
use super::S3Destination;
use crate::transfer::source::from_io;
use crate::transfer::{ModelFile, OpenFile, Progress, TransferError};

impl S3Destination {
    /// Uploads `file` to `key`, resuming what the journal recorded of it and recording this
    /// run's progress.
    pub(super) async fn upload_journaled<S: OpenFile + ?Sized>(
        &self,
        j: &Arc<Journal>,
        source: &S,
        key: &str,
        file: &ModelFile,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<(), TransferError> {
        let object = journal::object_key(&self.bucket, key, file.size);
        let uri = s3_uri(&self.bucket, key);
        let multipart = file.size > self.options.threshold;
        let part = part_size(file.size, self.options.min_part_size)?;
        match j.get(&object) {
            Some(Entry::Done { e_tag, sha256, len }) if len == file.size => {
                if self
                    .still_written(source, key, file, &e_tag, &sha256)
                    .await?
                {
                    tracing::info!(object = %uri, "written before the restart; checked against the server and the source, not sent again");
                    progress.add(file.size);
                    return Ok(());
                }
                tracing::info!(object = %uri, "the object written before the restart changed (or its source did); uploading it again");
            }
            Some(Entry::Upload {
                upload_id,
                part_size,
            }) if multipart && part_size == part => {
                let recorded = journal::recorded_parts(j, &object, &upload_id);
                tracing::info!(object = %uri, parts = recorded.len(), part_size, "resuming the multipart upload where the server stopped");
                let journaled = Journaled {
                    journal: j.clone(),
                    object: object.clone(),
                    resumed: true,
                };
                let upload = self.upload(key, &upload_id, file, progress, Some(journaled));
                let stream = source.open(file, 0).await?;
                match upload.run(stream, cancel, &recorded).await {
                    Ok(stored) => {
                        record_done(j, &object, file, stored);
                        return Ok(());
                    }
                    Err(e) if e.message.ends_with(UPLOAD_GONE) => {
                        tracing::warn!(object = %uri, error = %e.message, "the journaled multipart upload is gone; uploading the object again from its first byte");
                    }
                    Err(e) => {
                        j.remove_prefix(&object);
                        return Err(e);
                    }
                }
            }
            Some(Entry::Upload { upload_id, .. }) => {
                tracing::info!(object = %uri, "the journaled upload has another part size; uploading the object again from its first byte");
                multipart::abort(
                    self.client.clone(),
                    self.bucket.clone(),
                    key.to_owned(),
                    upload_id,
                )
                .await;
            }
            _ => {}
        }
        j.remove_prefix(&object);
        let stream = source.open(file, 0).await?;
        if !multipart {
            let stored = self.single(key, stream, file, progress).await?;
            record_done(j, &object, file, stored);
            return Ok(());
        }
        let upload_id = self.create_upload(key).await?;
        j.set(
            &object,
            Entry::Upload {
                upload_id: upload_id.clone(),
                part_size: part,
            },
        );
        let journaled = Journaled {
            journal: j.clone(),
            object: object.clone(),
            resumed: false,
        };
        let upload = self.upload(key, &upload_id, file, progress, Some(journaled));
        match upload.run(stream, cancel, &BTreeMap::new()).await {
            Ok(stored) => {
                record_done(j, &object, file, stored);
                Ok(())
            }
            Err(e) => {
                j.remove_prefix(&object);
                Err(e)
            }
        }
    }

    /// Whether the object written before the restart is still there as written (its ETag and
    /// size) and its source still has the sha256 written then (read again, nothing sent).
    async fn still_written<S: OpenFile + ?Sized>(
        &self,
        source: &S,
        key: &str,
        file: &ModelFile,
        e_tag: &str,
        sha256: &str,
    ) -> Result<bool, TransferError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let same = head.is_ok_and(|h| {
            h.content_length() == Some(file.size as i64)
                && h.e_tag().map(bare_etag) == Some(bare_etag(e_tag))
        });
        if !same {
            return Ok(false);
        }
        let what = format!("checking {} against its source", s3_uri(&self.bucket, key));
        let mut stream = source.open(file, 0).await?;
        let mut check = Check::new(file, &what);
        while let Some(chunk) = stream.next().await {
            check.update(&chunk.map_err(|e| from_io(e, &what))?)?;
        }
        Ok(check.finish()? == sha256)
    }
}

/// The object is written: a rerun skips it after its checks. Without an ETag to check it
/// against, it is forgotten (a rerun sends it again).
fn record_done(j: &Journal, object: &str, file: &ModelFile, stored: Stored) {
    match stored.e_tag {
        Some(e_tag) => {
            j.set(
                object,
                Entry::Done {
                    e_tag,
                    sha256: stored.sha256,
                    len: file.size,
                },
            );
            j.remove_prefix(&journal::parts_prefix(object));
        }
        None => j.remove_prefix(object),
    }
}
