//! Streaming chunked blob upload: `POST` a session, `PATCH` fixed-size chunks, `PUT ?digest=`.
//!
//! A producer writes the blob through a [`Chunker`], which hashes every byte (aws-lc sha256)
//! and hands full chunks over a channel of depth one to the sender, which PATCHes them in order.
//! Reading the next chunk overlaps sending the previous one; memory per blob is bounded by three
//! chunks (filling, queued, in flight), whatever the blob size.
//!
//! A PATCH that fails transiently is resumed: the session's committed offset (`Range` of the
//! status GET) says how much of the chunk arrived, and the rest is re-sent from memory. When the
//! session cannot tell (or lost data), the error is returned as transient and the caller
//! restarts the blob from scratch. (distribution 2.8 invalidates a session whose PATCH broke
//! after writing part of the body — its `_state` token no longer matches — so there a broken
//! PATCH means a restart of that file; a PATCH refused before any byte was written resumes.) The final PUT carries the digest we computed over exactly the
//! bytes we sent; the registry refuses the blob unless its own hash matches, so a completed
//! upload is a verified one.
use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::mpsc;
use futures::{SinkExt as _, StreamExt as _};

use crate::transfer::retry::RetryPolicy;
use crate::transfer::{Reason, TransferError};

use super::digest::Hasher;
use super::registry::Registry;

/// Default PATCH size.
pub(crate) const DEFAULT_CHUNK: usize = 8 << 20;

/// Where a producer writes blob bytes.
pub(crate) struct Chunker {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    chunk: usize,
    hasher: Hasher,
}

impl Chunker {
    /// Appends bytes, sending each full chunk (waits while the sender is busy).
    pub(crate) async fn write(&mut self, mut data: &[u8]) -> Result<(), TransferError> {
        self.hasher.update(data);
        while !data.is_empty() {
            let take = (self.chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.chunk {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransferError> {
        let full = std::mem::replace(&mut self.buf, BytesMut::with_capacity(self.chunk)).freeze();
        self.tx
            .send(full)
            .await
            .map_err(|_| TransferError::new(Reason::Internal, "blob upload stopped"))
    }

    pub(crate) fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// Sends the last partial chunk; returns the digest and length of everything written.
    pub(crate) async fn finish(mut self) -> Result<(String, u64), TransferError> {
        if !self.buf.is_empty() {
            self.flush().await?;
        }
        let len = self.hasher.len();
        Ok((self.hasher.finish(), len))
    }
}

/// Uploads one blob produced by `produce` into `repo`. With `expected` set (copies of known
/// blobs), the computed digest must match before the upload is committed. Returns the digest
/// and length.
pub(crate) async fn upload_blob<P, Fut>(
    reg: &Registry,
    repo: &str,
    scopes: &[String],
    chunk: usize,
    expected: Option<&str>,
    produce: P,
) -> Result<(String, u64), TransferError>
where
    P: FnOnce(Chunker) -> Fut,
    Fut: Future<Output = Result<Chunker, TransferError>>,
{
    let location = reg.start_upload(repo, scopes).await?;
    // Capacity is `buffer + senders` = 1: one chunk queued while one is sent and one fills.
    let (tx, rx) = mpsc::channel::<Bytes>(0);
    let chunker = Chunker {
        tx,
        buf: BytesMut::with_capacity(chunk),
        chunk,
        hasher: Hasher::default(),
    };
    let producer = async move { produce(chunker).await?.finish().await };
    let sender = send_chunks(reg, location.clone(), rx, scopes);
    let result = futures::future::try_join(producer, sender).await;
    let ((digest, len), (location, sent)) = match result {
        Ok(v) => v,
        Err(e) => {
            reg.cancel_upload(&location, scopes).await;
            return Err(e);
        }
    };
    let mismatch = match expected {
        _ if sent != len => Some(format!("sent {sent} bytes of a {len}-byte blob")),
        Some(e) if e != digest => Some(format!("blob content hashes to {digest}, expected {e}")),
        _ => None,
    };
    if let Some(m) = mismatch {
        reg.cancel_upload(&location, scopes).await;
        return Err(TransferError::new(Reason::IntegrityError, m));
    }
    reg.finish_upload(repo, &location, &digest, scopes).await?;
    Ok((digest, len))
}

/// PATCHes every chunk from `rx` in order; returns the final location and the bytes sent.
async fn send_chunks(
    reg: &Registry,
    mut location: String,
    mut rx: mpsc::Receiver<Bytes>,
    scopes: &[String],
) -> Result<(String, u64), TransferError> {
    let mut offset = 0u64;
    while let Some(chunk) = rx.next().await {
        let len = chunk.len() as u64;
        location = patch_resuming(reg, location, offset, chunk, scopes).await?;
        offset += len;
    }
    Ok((location, offset))
}

/// One chunk, resumed after transient failures from the registry's committed offset.
async fn patch_resuming(
    reg: &Registry,
    mut location: String,
    offset: u64,
    chunk: Bytes,
    scopes: &[String],
) -> Result<String, TransferError> {
    let policy = RetryPolicy::default();
    let mut delay = policy.initial;
    let len = chunk.len() as u64;
    let mut sent = 0u64;
    for attempt in 1.. {
        let err = match reg
            .patch(
                &location,
                offset + sent,
                chunk.slice(sent as usize..),
                scopes,
            )
            .await
        {
            Ok(next) => return Ok(next),
            Err(e) if e.transient && attempt < policy.attempts => e,
            Err(e) => return Err(e),
        };
        tracing::warn!(offset, attempt, error = %err, "chunk upload failed; resuming in {delay:?}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(policy.max.max(Duration::from_millis(1)));
        let (committed, loc) = reg.upload_status(&location, scopes).await.map_err(|e| {
            TransferError::transient(
                reg.side(),
                format!("{}; upload session lost: {}", err.message, e.message),
            )
        })?;
        if committed < offset || committed > offset + len {
            return Err(TransferError::transient(
                reg.side(),
                format!(
                    "{}; registry holds {committed} bytes of the upload, expected {offset}..={}",
                    err.message,
                    offset + len
                ),
            ));
        }
        location = loc;
        sent = committed - offset;
        if sent == len {
            return Ok(location);
        }
    }
    unreachable!("the loop returns")
}
