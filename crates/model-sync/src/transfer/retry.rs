//! Retries with exponential backoff for transient errors.
//! (The S3/URI/local engineer owns this file; this is the agreed interface.)
use std::future::Future;
use std::time::Duration;

use super::TransferError;

/// Attempts and delays.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 5, initial: Duration::from_millis(200), max: Duration::from_secs(10) }
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or attempts run out.
pub async fn retry<T, F, Fut>(policy: RetryPolicy, what: &str, mut op: F) -> Result<T, TransferError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TransferError>>,
{
    let mut delay = policy.initial;
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) if e.transient && attempt < policy.attempts => {
                tracing::warn!(what, attempt, error = %e, "transient failure; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
