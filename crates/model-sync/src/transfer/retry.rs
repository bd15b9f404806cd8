//! Retries with exponential backoff for transient errors, and [`resume_stream`]: one continuous
//! byte stream over a transport that may break mid-way (re-opened with a range request).
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::BoxFuture;

use super::error::{Reason, TransferError};
use super::model::ByteStream;
use super::source::{io_is_transient, to_io};

/// Attempts and delays.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (1-based): `initial * 2^(attempt-1)`, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or attempts run out.
pub async fn retry<T, F, Fut>(
    policy: RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, TransferError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TransferError>>,
{
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) if e.transient && attempt < policy.attempts => {
                let delay = policy.delay(attempt);
                tracing::warn!(what, attempt, error = %e, "transient failure; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How hard [`resume_stream`] tries.
#[derive(Clone, Copy, Debug)]
pub struct ResumeOptions {
    /// Consecutive failed attempts (without a byte delivered in between) before giving up, and
    /// the backoff between them.
    pub policy: RetryPolicy,
    /// A read that delivers nothing for this long counts as an interruption.
    pub idle_timeout: Duration,
    /// Re-opens allowed over the whole stream (guards against a link that breaks forever after a
    /// few bytes each time).
    pub max_resumes: u32,
}

impl Default for ResumeOptions {
    fn default() -> Self {
        ResumeOptions {
            policy: RetryPolicy::default(),
            idle_timeout: Duration::from_secs(120),
            max_resumes: 100,
        }
    }
}

/// Re-opens the underlying transport at a byte offset (e.g. a GET with `Range: bytes=<offset>-`).
/// Must fail (non-transiently) if the content changed since the first open.
pub type Reopen =
    Box<dyn FnMut(u64) -> BoxFuture<'static, Result<ByteStream, TransferError>> + Send>;

/// One continuous stream of bytes `start..end` of something, built from `first` (already open at
/// `start`) and, whenever it breaks, from `reopen(position)` where `position` is the first byte not
/// yet delivered. Consumers never see a gap or a repeat: either every byte once, in order, or an
/// error.
///
/// An interruption is a stream error (unless it carries a non-transient [`TransferError`]), an end
/// before `end`, or no data for `idle_timeout`. After `policy.attempts` consecutive interruptions
/// without progress, or `max_resumes` in total, the stream ends with a transient
/// `SourceUnavailable` error. More bytes than `end - start` end it with an `IntegrityError`.
pub fn resume_stream(
    first: ByteStream,
    start: u64,
    end: u64,
    what: impl Into<String>,
    options: ResumeOptions,
    reopen: Reopen,
) -> ByteStream {
    let state = ResumeState {
        stream: Some(first),
        pos: start,
        end,
        what: what.into(),
        options,
        reopen,
        failures: 0,
        resumes: 0,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let item = s.next_item().await;
        match item {
            None => None,
            Some(Ok(b)) => Some((Ok(b), s)),
            Some(Err(e)) => {
                s.done = true;
                Some((Err(to_io(e)), s))
            }
        }
    })
    .boxed()
}

struct ResumeState {
    stream: Option<ByteStream>,
    pos: u64,
    end: u64,
    what: String,
    options: ResumeOptions,
    reopen: Reopen,
    failures: u32,
    resumes: u32,
    done: bool,
}

impl ResumeState {
    async fn next_item(&mut self) -> Option<Result<Bytes, TransferError>> {
        loop {
            let interruption = match self.stream.as_mut() {
                None => match (self.reopen)(self.pos).await {
                    Ok(s) => {
                        self.stream = Some(s);
                        continue;
                    }
                    Err(e) if e.transient => e.message,
                    Err(e) => return Some(Err(e)),
                },
                Some(stream) => {
                    match tokio::time::timeout(self.options.idle_timeout, stream.next()).await {
                        Ok(Some(Ok(chunk))) => {
                            if chunk.is_empty() {
                                continue;
                            }
                            let len = chunk.len() as u64;
                            if self.pos + len > self.end {
                                return Some(Err(TransferError::new(
                                    Reason::IntegrityError,
                                    format!(
                                        "{}: more than the expected {} bytes",
                                        self.what, self.end
                                    ),
                                )));
                            }
                            self.pos += len;
                            self.failures = 0;
                            return Some(Ok(chunk));
                        }
                        Ok(None) if self.pos == self.end => return None,
                        Ok(None) => {
                            format!("stream ended early at byte {} of {}", self.pos, self.end)
                        }
                        Ok(Some(Err(e))) if !io_is_transient(&e) => {
                            return Some(Err(super::source::from_io(e, &self.what)));
                        }
                        Ok(Some(Err(e))) => e.to_string(),
                        Err(_) => format!("no data for {:?}", self.options.idle_timeout),
                    }
                }
            };
            self.stream = None;
            if self.pos == self.end {
                // Everything arrived; only the transport's goodbye failed.
                return None;
            }
            self.failures += 1;
            self.resumes += 1;
            if self.failures >= self.options.policy.attempts
                || self.resumes > self.options.max_resumes
            {
                return Some(Err(TransferError::transient(
                    Reason::SourceUnavailable,
                    format!(
                        "{}: interrupted at byte {} of {} ({interruption}); gave up after {} attempts",
                        self.what, self.pos, self.end, self.failures
                    ),
                )));
            }
            let delay = self.options.policy.delay(self.failures);
            tracing::warn!(
                what = %self.what,
                position = self.pos,
                attempt = self.failures,
                "read interrupted ({interruption}); resuming from byte {} in {delay:?}",
                self.pos
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::TryStreamExt as _;

    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A body serving `data[from..]` in 10-byte chunks that fails with a connection reset after
    /// `fail_after` bytes (if given).
    fn body(data: Arc<Vec<u8>>, from: usize, fail_after: Option<usize>) -> ByteStream {
        let mut items: Vec<std::io::Result<Bytes>> = Vec::new();
        let stop = fail_after.map_or(data.len(), |n| (from + n).min(data.len()));
        let mut i = from;
        while i < stop {
            let j = (i + 10).min(stop);
            items.push(Ok(Bytes::copy_from_slice(&data[i..j])));
            i = j;
        }
        if fail_after.is_some() {
            items.push(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset by peer",
            )));
        }
        futures::stream::iter(items).boxed()
    }

    fn fast() -> ResumeOptions {
        ResumeOptions {
            policy: RetryPolicy {
                attempts: 3,
                initial: Duration::from_millis(1),
                max: Duration::from_millis(5),
            },
            idle_timeout: Duration::from_secs(5),
            max_resumes: 10,
        }
    }

    #[tokio::test]
    async fn resumes_from_the_last_delivered_byte() {
        let d = Arc::new(data(1000));
        let opens = Arc::new(Mutex::new(Vec::new()));
        let (d2, o2) = (d.clone(), opens.clone());
        // Every re-open also breaks after 300 bytes: the stream needs several resumes.
        let reopen: Reopen = Box::new(move |pos| {
            o2.lock().unwrap().push(pos);
            let s = body(d2.clone(), pos as usize, Some(300));
            Box::pin(async move { Ok(s) })
        });
        let first = body(d.clone(), 0, Some(123));
        let s = resume_stream(first, 0, 1000, "test", fast(), reopen);
        let got: Vec<Bytes> = s.try_collect().await.unwrap();
        assert_eq!(got.concat(), *d);
        assert_eq!(*opens.lock().unwrap(), vec![123, 423, 723]);
    }

    #[tokio::test]
    async fn starts_at_an_offset_and_resumes_after_an_early_end() {
        let d = Arc::new(data(500));
        let d2 = d.clone();
        let reopen: Reopen = Box::new(move |pos| {
            let s = body(d2.clone(), pos as usize, None);
            Box::pin(async move { Ok(s) })
        });
        // The first body ends cleanly but short (a truncated response).
        let first = futures::stream::iter(vec![Ok(Bytes::copy_from_slice(&d[100..150]))]).boxed();
        let got: Vec<Bytes> = resume_stream(first, 100, 500, "test", fast(), reopen)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), d[100..]);
    }

    #[tokio::test]
    async fn gives_up_after_consecutive_failures_and_keeps_fatal_errors() {
        let d = Arc::new(data(100));
        let reopen: Reopen = Box::new(|_| {
            Box::pin(async {
                Err(TransferError::transient(
                    Reason::SourceUnavailable,
                    "connection refused",
                ))
            })
        });
        let err = resume_stream(body(d.clone(), 0, Some(10)), 0, 100, "obj", fast(), reopen)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        let t = super::super::source::from_io(err, "x");
        assert_eq!(t.reason, Reason::SourceUnavailable);
        assert!(
            t.message.contains("interrupted at byte 10 of 100"),
            "{}",
            t.message
        );

        // A non-transient re-open failure (content changed) ends the stream at once.
        let reopen: Reopen = Box::new(|_| {
            Box::pin(async {
                Err(TransferError::new(
                    Reason::SourceUnavailable,
                    "object changed",
                ))
            })
        });
        let err = resume_stream(body(d.clone(), 0, Some(10)), 0, 100, "obj", fast(), reopen)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert_eq!(
            super::super::source::from_io(err, "x").message,
            "object changed"
        );

        // Too many bytes is an integrity error, not a retry.
        let reopen: Reopen = Box::new(|_| Box::pin(async { unreachable!() }));
        let err = resume_stream(body(d, 0, None), 0, 50, "obj", fast(), reopen)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert_eq!(
            super::super::source::from_io(err, "x").reason,
            Reason::IntegrityError
        );
    }

    #[test]
    fn delays_double_and_cap() {
        let p = RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(350));
        assert_eq!(p.delay(60), Duration::from_millis(350));
    }
}
