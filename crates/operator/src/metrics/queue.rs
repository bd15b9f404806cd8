//! The work queue gauge. kube-runtime's controller keeps its queue private, so the controller
//! plumbing ([`crate::controller`]) reports to a [`WorkQueue`] what enters and leaves it: a
//! reconcile request from a watch event adds its object; the start of that object's reconcile (or
//! the finding that the object no longer exists) removes it. Requests for an object that is
//! already waiting are merged, exactly as kube-runtime's scheduler merges them, so the depth is
//! the number of distinct objects waiting for a reconcile.
//!
//! Timed requeues (the periodic re-check, error retries) are not counted while they wait for
//! their time: they are scheduled work, not a backlog, and with unbounded concurrency they start
//! the moment they are due.
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// An object by namespace and name (one controller has one kind).
pub type QueueKey = (Option<String>, String);

/// What one controller's queue holds now, mirrored into its gauge.
#[derive(Clone)]
pub struct WorkQueue {
    waiting: Arc<Mutex<HashSet<QueueKey>>>,
    depth: Gauge<i64, AtomicI64>,
    adds: Counter<u64, AtomicU64>,
}

impl WorkQueue {
    /// An empty queue; the gauge is reset, since a new controller run starts with a new queue.
    pub fn new(depth: Gauge<i64, AtomicI64>, adds: Counter<u64, AtomicU64>) -> WorkQueue {
        depth.set(0);
        WorkQueue {
            waiting: Arc::default(),
            depth,
            adds,
        }
    }

    /// A reconcile of `key` was requested.
    pub fn requested(&self, key: QueueKey) {
        let mut waiting = self.lock();
        if waiting.insert(key) {
            self.adds.inc();
        }
        self.depth.set(len(&waiting));
    }

    /// `key` left the queue: its reconcile started, or it no longer exists.
    pub fn left(&self, key: &QueueKey) {
        let mut waiting = self.lock();
        waiting.remove(key);
        self.depth.set(len(&waiting));
    }

    /// Objects waiting now.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<QueueKey>> {
        // The set stays consistent even if a holder panicked: every update is a single call.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn len(set: &HashSet<QueueKey>) -> i64 {
    i64::try_from(set.len()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn key(name: &str) -> QueueKey {
        (Some("ns".into()), name.into())
    }

    fn scrape(m: &Metrics, series: &str) -> String {
        m.encode()
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in {}", m.encode()))
            .to_string()
    }

    #[test]
    fn depth_counts_distinct_waiting_objects_and_drops_them_when_they_start() {
        let m = Metrics::default();
        let q = m.work_queue("test");
        let depth = "model_registry_operator_work_queue_depth{controller=\"test\"}";
        let adds = "model_registry_operator_work_queue_adds_total{controller=\"test\"}";
        assert_eq!(scrape(&m, depth), format!("{depth} 0"));

        q.requested(key("a"));
        q.requested(key("a")); // merged, as the scheduler merges it
        q.requested(key("b"));
        q.requested((Some("other".into()), "a".into())); // same name, other namespace
        assert_eq!(q.depth(), 3);
        assert_eq!(scrape(&m, depth), format!("{depth} 3"));
        assert_eq!(scrape(&m, adds), format!("{adds} 3"));

        q.left(&key("a"));
        assert_eq!(scrape(&m, depth), format!("{depth} 2"));
        // Requested again while its reconcile runs: waiting again.
        q.requested(key("a"));
        assert_eq!(scrape(&m, depth), format!("{depth} 3"));
        assert_eq!(scrape(&m, adds), format!("{adds} 4"));
        q.left(&key("missing")); // leaving twice or unknown objects changes nothing
        for k in [key("a"), key("b"), (Some("other".into()), "a".into())] {
            q.left(&k);
        }
        assert_eq!(scrape(&m, depth), format!("{depth} 0"));
    }

    #[test]
    fn a_new_controller_run_starts_with_an_empty_queue() {
        let m = Metrics::default();
        let old = m.work_queue("test");
        old.requested(key("a"));
        let new = m.work_queue("test");
        assert_eq!(new.depth(), 0);
        assert!(
            m.encode()
                .contains("model_registry_operator_work_queue_depth{controller=\"test\"} 0")
        );
    }
}
