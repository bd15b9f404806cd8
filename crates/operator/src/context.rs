//! What every reconciliation shares: the client, settings, capabilities, metrics, events, the
//! watches' stores, and each controller's child record. It knows no controller: a controller
//! asks for its own parts with its [`ControllerId`].
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::capabilities::CapabilityWatch;
use crate::kube_ext::child_record::{ChildRecord, ChildRecords};
use crate::kube_ext::identity::ControllerId;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::watched::Watched;

#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub caps: CapabilityWatch,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// What each controller applied (see [`ChildRecord`]), by field manager.
    records: Arc<ChildRecords>,
    /// The objects the controllers' watches keep for their reads.
    pub watched: Arc<Watched>,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        caps: CapabilityWatch,
        metrics: Metrics,
    ) -> Context {
        let reporter = Reporter {
            controller: "model-registry-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Context {
            client,
            settings,
            caps,
            metrics,
            recorder,
            records: Arc::default(),
            watched: Arc::new(Watched::default()),
        }
    }

    /// The child record of controller `id` (made on first use, counted in the metrics).
    pub fn child_record(&self, id: &ControllerId) -> Arc<ChildRecord> {
        self.records.of(id, || self.metrics.child_applies(id.name))
    }
}

/// How long a reconcile waits for more changes of the same resource. The built-in controllers'
/// reactions to a write (Deployment and Job status, pods, endpoints, service-account tokens)
/// come in bursts of events milliseconds apart; one reconcile after the burst replaces one per
/// event. Short, because a new resource waits this long for its first reconcile, and a
/// reconcile that finds nothing to do costs no request (see [`crate::watched`]).
pub const RECONCILE_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(100);

/// Scheduler settings every controller runs with.
pub fn controller_config(ctx: &Context) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(ctx.settings.max_concurrent_reconciles)
        .debounce(RECONCILE_DEBOUNCE)
}
