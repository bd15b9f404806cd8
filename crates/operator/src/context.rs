//! What every reconciliation shares: the client, settings, capabilities, metrics and events.
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::capabilities::CapabilityWatch;
use crate::kube_ext::child_record::ChildRecord;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::watched::Watched;

/// Field manager for everything the ModelRegistry controller applies.
pub const MODEL_REGISTRY_MANAGER: &str = "model-registry-operator";
/// Field manager for everything the ModelTransfer controller applies.
pub const MODEL_TRANSFER_MANAGER: &str = "model-registry-operator-transfers";

#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub caps: CapabilityWatch,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// What the ModelRegistry controller applied (see [`ChildRecord`]).
    pub registry_writes: Arc<ChildRecord>,
    /// What the ModelTransfer controller applied.
    pub transfer_writes: Arc<ChildRecord>,
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
        let registry_applies = metrics.child_applies(crate::modelregistry::reconcile::CONTROLLER);
        let transfer_applies = metrics.child_applies(crate::modeltransfer::reconcile::CONTROLLER);
        Context {
            client,
            settings,
            caps,
            metrics,
            recorder,
            registry_writes: Arc::new(
                ChildRecord::new(MODEL_REGISTRY_MANAGER).counting(registry_applies),
            ),
            transfer_writes: Arc::new(
                ChildRecord::new(MODEL_TRANSFER_MANAGER).counting(transfer_applies),
            ),
            watched: Arc::new(Watched::default()),
        }
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
