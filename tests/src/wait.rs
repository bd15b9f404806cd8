//! Polling helpers: controllers converge asynchronously, so tests wait for a state with a deadline.
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns true; panics naming `what` after `timeout`.
pub async fn eventually_within<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`eventually_within`] with a 30 s deadline.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(30), check).await
}
