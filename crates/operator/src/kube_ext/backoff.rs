//! Per-object exponential backoff of failed reconciles.
//!
//! A fixed retry interval hammers the API server (and floods the log) with every object whose
//! reconcile keeps failing, at the same pace, forever; and it retries a transient failure no
//! sooner than a lasting one. Here each object has its own count of consecutive failures: the
//! first retry comes after [`Backoff::BASE`], each further one after twice the previous delay,
//! up to [`Backoff::MAX`]; a success (or the object leaving the store) forgets the count, so
//! one object's trouble never slows down another.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Namespace and name of an object.
pub type Key = (Option<String>, String);

#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<Key, u32>>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(Backoff::BASE, Backoff::MAX)
    }
}

impl Backoff {
    /// Delay after the first failure.
    pub const BASE: Duration = Duration::from_secs(1);
    /// Longest delay (as long as the safety-net resync of a healthy object).
    pub const MAX: Duration = Duration::from_secs(300);

    /// A backoff from `base` doubling up to `max` (the operator uses [`Backoff::default`]).
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            failures: Mutex::default(),
        }
    }

    /// Records one more failure of `key`; returns how long to wait before the retry.
    pub fn failed(&self, key: Key) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        self.delay(*n)
    }

    /// The object reconciled fine (or is gone): its next failure starts from the base delay.
    pub fn reset(&self, key: &Key) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &Key) -> u32 {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.get(key).copied().unwrap_or(0)
    }

    /// Delay after the `n`th consecutive failure (`n >= 1`).
    pub fn delay(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(30);
        self.base
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        (Some("ns".into()), name.into())
    }

    #[test]
    fn doubles_per_object_up_to_the_cap_and_resets_on_success() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..12).map(|_| b.failed(key("a")).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // Another object is not slowed down by the first one's failures.
        assert_eq!(b.failed(key("b")), Backoff::BASE);
        b.reset(&key("a"));
        assert_eq!(b.failures(&key("a")), 0);
        assert_eq!(b.failed(key("a")), Backoff::BASE);
        assert_eq!(b.delay(u32::MAX), Backoff::MAX);
    }
}
