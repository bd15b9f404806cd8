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
//!
//! Resuming after a kill ([`upload_blob_journaled`], with a journal: see `journal.rs` for the
//! design): the blob goes up in `PATCH` parts of `segment` bytes, the session recorded after
//! each. A rerun asks the registry how many bytes the recorded session holds, produces the blob
//! again from its first byte (hashing all of it: the digest is always the source's as read now)
//! and sends only the bytes past that size, so at most the part in flight at the kill is sent
//! twice. The final `PUT` has the registry verify its bytes from both runs against that digest.
use std::future::Future;

use bytes::{Bytes, BytesMut};
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt as _, StreamExt as _};

use crate::transfer::{Reason, TransferError};

use super::digest::Hasher;
use super::journal::{Entry, Journal};
use super::registry::{Counters, Registry};

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
    /// Leading bytes hashed but not sent (the registry has them from an earlier run).
    skip: u64,
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
        let mut data = data;
        if self.skip > 0 {
            let skipped = self.skip.min(data.len() as u64);
            self.skip -= skipped;
            data = data.slice(skipped as usize..);
            if data.is_empty() {
                return Ok(());
            }
        }
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
    let session = Session {
        location,
        start: 0,
        journal: None,
    };
    send_blob(reg, repo, scopes, segment, expected, len, session, produce).await
}

/// A journal entry a layer's upload keeps up to date.
pub(crate) struct Journaled<'a> {
    pub(crate) journal: &'a Journal,
    pub(crate) key: String,
    /// What the layer is, for log lines.
    pub(crate) what: &'a str,
}

/// Like [`upload_blob`], resuming what `journaled` recorded of an earlier run (see the module
/// docs) and recording this run's progress. A resumed upload that the registry refuses at the
/// end fails with a transient error after dropping its entry, so the caller's retry sends the
/// blob again from its first byte.
pub(crate) async fn upload_blob_journaled<P, Fut>(
    reg: &Registry,
    repo: &str,
    scopes: &[String],
    segment: u64,
    len: u64,
    journaled: &Journaled<'_>,
    produce: P,
) -> Result<(String, u64), TransferError>
where
    P: FnOnce(BlobWriter) -> Fut,
    Fut: Future<Output = Result<BlobWriter, TransferError>>,
{
    let Journaled { journal, key, what } = journaled;
    let base = format!("{}/", reg.base().await?);
    let resumed = match journal.get(key) {
        Some(Entry::Done { digest, len: l }) if l == len => {
            if reg.blob_size(repo, &digest, scopes).await? == Some(len) {
                // Committed before the restart: check the source still yields it.
                let computed = hash_only(len, produce).await?;
                if computed == digest {
                    tracing::info!(layer = what, %digest, "pushed before the restart; verified against the source, not sent again");
                    Counters::add(&reg.counters.blobs_existing, 1);
                    return Ok((digest, len));
                }
                journal.remove(key);
                return Err(TransferError::transient(
                    reg.side(),
                    format!(
                        "the source of {what} changed since {digest} was pushed; sending it again"
                    ),
                ));
            }
            tracing::info!(layer = what, %digest, "the registry no longer has the layer pushed before the restart; sending it again from its first byte");
            None
        }
        Some(Entry::Open {
            location,
            committed,
            len: l,
        }) if l == len && location.starts_with(&base) => {
            match reg.upload_status(&location, scopes).await {
                Ok(Some((size, next))) if size <= len => {
                    tracing::info!(
                        layer = what,
                        journaled = committed,
                        registry_has = size,
                        len,
                        "resuming the upload where the registry stopped"
                    );
                    Some(Session {
                        location: next,
                        start: size,
                        journal: Some(journaled),
                    })
                }
                Ok(Some((size, next))) => {
                    tracing::warn!(
                        layer = what,
                        registry_has = size,
                        len,
                        "the interrupted upload holds more bytes than the layer; sending it again from its first byte"
                    );
                    reg.cancel_upload(&next, scopes).await;
                    None
                }
                Ok(None) => {
                    tracing::info!(
                        layer = what,
                        journaled = committed,
                        "the registry has forgotten the interrupted upload; sending the layer again from its first byte"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(layer = what, error = %e, "cannot read the interrupted upload's state; sending the layer again from its first byte");
                    None
                }
            }
        }
        Some(_) => {
            tracing::info!(
                layer = what,
                "the journaled upload does not match this layer; sending it from its first byte"
            );
            None
        }
        None => None,
    };
    let session = match resumed {
        Some(s) => s,
        None => {
            journal.remove(key);
            Session {
                location: reg.start_upload(repo, scopes).await?,
                start: 0,
                journal: Some(journaled),
            }
        }
    };
    let start = session.start;
    match send_blob(reg, repo, scopes, segment, None, len, session, produce).await {
        Ok((digest, len)) => {
            journal.set(
                key,
                Entry::Done {
                    digest: digest.clone(),
                    len,
                },
            );
            Ok((digest, len))
        }
        Err(e) => {
            journal.remove(key);
            if start > 0 && !e.transient {
                tracing::warn!(layer = what, error = %e, "the resumed upload failed; sending the layer again from its first byte");
                return Err(TransferError::transient(e.reason, e.message));
            }
            Err(e)
        }
    }
}

/// Where an upload goes on.
struct Session<'a> {
    location: String,
    /// Bytes the registry already has.
    start: u64,
    journal: Option<&'a Journaled<'a>>,
}

/// Produces the blob, sending the bytes past `session.start`, and commits it.
#[allow(clippy::too_many_arguments)]
async fn send_blob<P, Fut>(
    reg: &Registry,
    repo: &str,
    scopes: &[String],
    segment: u64,
    expected: Option<&str>,
    len: u64,
    session: Session<'_>,
    produce: P,
) -> Result<(String, u64), TransferError>
where
    P: FnOnce(BlobWriter) -> Fut,
    Fut: Future<Output = Result<BlobWriter, TransferError>>,
{
    let Session {
        location,
        start,
        journal,
    } = session;
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = BlobWriter {
        tx,
        gathered: BytesMut::new(),
        hasher: Hasher::default(),
        len,
        skip: start,
    };
    let producer = async move { produce(writer).await?.finish().await };
    let sender = send_segments(
        reg,
        location.clone(),
        rx,
        (start, len),
        segment.max(1),
        scopes,
        journal,
    );
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

/// Runs the producer with nothing sent; returns the digest of what it wrote.
async fn hash_only<P, Fut>(len: u64, produce: P) -> Result<String, TransferError>
where
    P: FnOnce(BlobWriter) -> Fut,
    Fut: Future<Output = Result<BlobWriter, TransferError>>,
{
    let (tx, _rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = BlobWriter {
        tx,
        gathered: BytesMut::new(),
        hasher: Hasher::default(),
        len,
        skip: len,
    };
    produce(writer).await?.finish().await
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

/// Streams the blob's bytes from `start` to `len` in `PATCH` requests of at most `segment`
/// bytes, recording each acknowledged part in the journal; returns the final location.
async fn send_segments(
    reg: &Registry,
    mut location: String,
    rx: mpsc::Receiver<Bytes>,
    (start, len): (u64, u64),
    segment: u64,
    scopes: &[String],
    journal: Option<&Journaled<'_>>,
) -> Result<String, TransferError> {
    let mut feed = Feed {
        rx,
        rest: Bytes::new(),
    };
    let mut offset = start;
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
        if let Some(j) = journal
            && offset < len
        {
            j.journal.set(
                &j.key,
                Entry::Open {
                    location: location.clone(),
                    committed: offset,
                    len,
                },
            );
        }
    }
    Ok(location)
}
