//! Prometheus metrics: reconciles, failures by error kind, durations, work in flight, and each
//! controller's work queue ([`queue`]).
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub mod queue;

pub use queue::WorkQueue;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    pub controller: &'static str,
    /// `applied`, or `skipped`: nothing changed since the last apply of the same content.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub error: String,
}

/// All operator metrics, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<ControllerLabel, Counter>,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Family<ControllerLabel, Histogram>,
    pub in_flight: Family<ControllerLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    pub status_writes: Family<ControllerLabel, Counter<u64, AtomicU64>>,
    pub queue_depth: Family<ControllerLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    pub queue_adds: Family<ControllerLabel, Counter<u64, AtomicU64>>,
    pub applies: Family<ApplyLabels, Counter<u64, AtomicU64>>,
    pub registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("model_registry_operator");
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let in_flight = Family::default();
        let status_writes = Family::default();
        let queue_depth = Family::default();
        let queue_adds = Family::default();
        let applies = Family::default();
        registry.register("reconciles", "Reconciliations started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciliations that failed, by error kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconciliation duration",
            duration.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciliations running now",
            in_flight.clone(),
        );
        registry.register(
            "status_writes",
            "Status subresource writes",
            status_writes.clone(),
        );
        registry.register(
            "work_queue_depth",
            "Objects whose reconciliation was requested by a watch event and has not started yet",
            queue_depth.clone(),
        );
        registry.register(
            "work_queue_adds",
            "Objects that entered the work queue (requests for an object already waiting are merged)",
            queue_adds.clone(),
        );
        registry.register(
            "child_applies",
            "Server-side applies of children that reconciles repeat (a registry's children, a \
             transfer's registry grant): applied, or skipped because the child is as the last \
             apply of the same content left it",
            applies.clone(),
        );
        Metrics {
            reconciles,
            failures,
            duration,
            in_flight,
            status_writes,
            queue_depth,
            queue_adds,
            applies,
            registry: Arc::new(registry),
        }
    }
}

/// Measures one reconciliation; records its duration when dropped.
pub struct ReconcileMeasurer {
    start: Instant,
    label: ControllerLabel,
    metrics: Metrics,
}

impl Metrics {
    pub fn reconcile_started(&self, controller: &'static str) -> ReconcileMeasurer {
        let label = ControllerLabel { controller };
        self.reconciles.get_or_create(&label).inc();
        self.in_flight.get_or_create(&label).inc();
        ReconcileMeasurer {
            start: Instant::now(),
            label,
            metrics: self.clone(),
        }
    }

    pub fn reconcile_failed(&self, controller: &'static str, error: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                controller,
                error: error.to_string(),
            })
            .inc();
    }

    /// The counters of `controller`'s child applies: (applied, skipped).
    pub fn child_applies(
        &self,
        controller: &'static str,
    ) -> (Counter<u64, AtomicU64>, Counter<u64, AtomicU64>) {
        let counter = |result| {
            self.applies
                .get_or_create(&ApplyLabels { controller, result })
                .clone()
        };
        (counter("applied"), counter("skipped"))
    }

    pub fn status_written(&self, controller: &'static str) {
        self.status_writes
            .get_or_create(&ControllerLabel { controller })
            .inc();
    }

    /// A fresh work queue for one run of `controller` (a restarted controller starts empty).
    pub fn work_queue(&self, controller: &'static str) -> WorkQueue {
        let label = ControllerLabel { controller };
        WorkQueue::new(
            self.queue_depth.get_or_create(&label).clone(),
            self.queue_adds.get_or_create(&label).clone(),
        )
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encode metrics");
        out
    }
}

impl Drop for ReconcileMeasurer {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&self.label)
            .observe(self.start.elapsed().as_secs_f64());
        self.metrics.in_flight.get_or_create(&self.label).dec();
    }
}
