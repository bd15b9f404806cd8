//! Transfer progress: shared counters, periodic structured log lines (bytes, rate, ETA).
//! (The S3/URI/local engineer owns this file; this is the agreed interface.)
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by all concurrent copies of one transfer.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    total: AtomicU64,
    done: AtomicU64,
}

impl Progress {
    pub fn new(total_bytes: u64) -> Progress {
        let p = Progress::default();
        p.inner.total.store(total_bytes, Ordering::Relaxed);
        p
    }
    pub fn add(&self, bytes: u64) {
        self.inner.done.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }
    pub fn total(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }
}
