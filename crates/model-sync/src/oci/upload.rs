//! Streaming blob upload: `POST` a session, `PATCH` the bytes as they are produced, `PUT ?digest=`.
//!
//! A producer writes the blob through a [`BlobWriter`], which hashes every byte (aws-lc sha256)
//! and hands the pieces over a small channel to the sender: large pieces as they are (the
//! source's own buffers), small ones gathered into [`GATHER`]-byte pieces first, because every
//! piece costs a write system call here and a read in the registry (S3 bodies often arrive in
//! a few KiB at a time). The sender streams them as the body of one `PATCH` per segment
//! (default: the whole blob, like `docker push`), with the `Content-Length` known up front.
//! Memory per blob is the few pieces in the channel and in the socket, whatever the blob size;
//! nothing is staged on disk.
//!
//! Why one streamed request rather than many buffered chunks: every `PATCH` costs the registry a
//! session resume and a hash-state save, and buffered chunks cost the client a copy and several
//! chunks of memory per file in flight. A chunk buffered for re-sending would not buy a resume
//! on distribution either: it invalidates a session whose `PATCH` broke after writing part of
//! the body (its `_state` token no longer matches the stored size).
//!
//! Failures: a failed `PATCH` fails the blob with a transient error; the caller restarts it with
//! a new session, re-reading the source from the start (see `layer.rs`). The final `PUT` carries
//! the digest we computed over exactly the bytes we sent; the registry refuses the blob unless
//! its own hash matches, so a completed upload is a verified one.
use std::future::Future;

use bytes::{Bytes, BytesMut};
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt as _, StreamExt as _};

use crate::transfer::{Reason, TransferError};

use super::digest::Hasher;
use super::registry::Registry;

/// Default largest `PATCH`: the whole blob in one streamed request.
pub(crate) const DEFAULT_SEGMENT: u64 = u64::MAX;

/// Pieces queued between the producer and the request body, per blob: about a MiB per file in
/// flight.
const QUEUE: usize = 4;

/// Smaller pieces are gathered up to this size before they are sent.
const GATHER: usize = 64 << 10;

/// Where a producer writes blob bytes.
pub(crate) struct BlobWriter {
    tx: mpsc::Sender<Bytes>,
    /// Small pieces not sent yet.
    gathered: BytesMut,
    hasher: Hasher,
    /// The declared blob length.
    len: u64,
}

impl BlobWriter {
    /// Appends a piece (waits while the sender is busy). Writing past the declared length fails.
    pub(crate) async fn write(&mut self, data: Bytes) -> Result<(), TransferError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.hasher.len() + data.len() as u64 > self.len {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!("blob is longer than the declared {} bytes", self.len),
            ));
        }
        self.hasher.update(&data);
        if data.len() >= GATHER {
            self.flush().await?;
            return self.send(data).await;
        }
        self.gathered.extend_from_slice(&data);
        if self.gathered.len() >= GATHER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransferError> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.gathered, BytesMut::with_capacity(GATHER));
        self.send(piece.freeze()).await
    }

    async fn send(&mut self, piece: Bytes) -> Result<(), TransferError> {
        self.tx.send(piece).await.map_err(|_| {
            TransferError::transient(Reason::DestinationRejected, "blob upload stopped")
        })
    }

    /// Sends what is gathered, checks the length; returns the digest of everything written.
    async fn finish(mut self) -> Result<String, TransferError> {
        if self.hasher.len() != self.len {
            return Err(TransferError::new(
                Reason::IntegrityError,
                format!(
                    "blob has {} bytes, {} were declared",
                    self.hasher.len(),
                    self.len
                ),
            ));
        }
        self.flush().await?;
        Ok(self.hasher.finish())
    }
}

/// Uploads one blob of `len` bytes produced by `produce` into `repo`, in `PATCH` requests of at
/// most `segment` bytes. With `expected` set (copies of known blobs), the computed digest must
/// match before the upload is committed. Returns the digest and length.
pub(crate) async fn upload_blob<P, Fut>(
    reg: &Registry,
    repo: &str,
    scopes: &[String],
    segment: u64,
    expected: Option<&str>,
    len: u64,
    produce: P,
) -> Result<(String, u64), TransferError>
where
    P: FnOnce(BlobWriter) -> Fut,
    Fut: Future<Output = Result<BlobWriter, TransferError>>,
{
    let location = reg.start_upload(repo, scopes).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = BlobWriter {
        tx,
        gathered: BytesMut::new(),
        hasher: Hasher::default(),
        len,
    };
    let producer = async move { produce(writer).await?.finish().await };
    let sender = send_segments(reg, location.clone(), rx, len, segment.max(1), scopes);
    let (digest, location) = match futures::future::try_join(producer, sender).await {
        Ok(v) => v,
        Err(e) => {
            reg.cancel_upload(&location, scopes).await;
            return Err(e);
        }
    };
    if let Some(e) = expected.filter(|e| *e != digest) {
        reg.cancel_upload(&location, scopes).await;
        return Err(TransferError::new(
            Reason::IntegrityError,
            format!("blob content hashes to {digest}, expected {e}"),
        ));
    }
    reg.finish_upload(repo, &location, &digest, scopes).await?;
    Ok((digest, len))
}

/// The receiving end of the producer's pieces, with what is left of a piece split at a segment
/// boundary.
struct Feed {
    rx: mpsc::Receiver<Bytes>,
    rest: Bytes,
}

impl Feed {
    /// The next `n` bytes as a request body; the feed comes back through the receiver once the
    /// body has handed out its last byte (it is lost if the request fails first).
    fn take(self, n: u64) -> (reqwest::Body, oneshot::Receiver<Feed>) {
        let (back, returned) = oneshot::channel();
        let state = (Some(self), n, Some(back));
        let body = futures::stream::unfold(state, |(feed, left, back)| async move {
            let mut feed = feed?;
            let piece = if feed.rest.is_empty() {
                match feed.rx.next().await {
                    Some(p) => p,
                    None => {
                        let e = std::io::Error::other("the blob producer stopped early");
                        return Some((Err(e), (None, left, None)));
                    }
                }
            } else {
                std::mem::take(&mut feed.rest)
            };
            let mut piece = piece;
            if piece.len() as u64 > left {
                feed.rest = piece.split_off(left as usize);
            }
            let left = left - piece.len() as u64;
            if left == 0 {
                // Hand the feed back before the last piece goes out: the request may complete
                // without polling the body again.
                if let Some(back) = back {
                    let _ = back.send(feed);
                }
                return Some((Ok::<_, std::io::Error>(piece), (None, 0, None)));
            }
            Some((Ok(piece), (Some(feed), left, back)))
        });
        (reqwest::Body::wrap_stream(body), returned)
    }
}

/// Streams the blob in `PATCH` requests of at most `segment` bytes; returns the final location.
async fn send_segments(
    reg: &Registry,
    mut location: String,
    rx: mpsc::Receiver<Bytes>,
    len: u64,
    segment: u64,
    scopes: &[String],
) -> Result<String, TransferError> {
    let mut feed = Feed {
        rx,
        rest: Bytes::new(),
    };
    let mut offset = 0u64;
    while offset < len {
        let n = segment.min(len - offset);
        let (body, returned) = feed.take(n);
        location = reg.patch(&location, offset, n, body, scopes).await?;
        feed = returned.await.map_err(|_| {
            TransferError::transient(
                reg.side(),
                "the registry accepted a PATCH before receiving its body",
            )
        })?;
        offset += n;
    }
    Ok(location)
}
