//! What every reconcile of the catalog shares: the operator's [`Context`] (client, metrics,
//! events, child records), the catalog's own settings, and the stores its watches keep. The
//! stores live here, not in the operator-wide `watched` module, so the catalog's watched state
//! stays inside the catalog and nothing else depends on it.
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod};

use super::settings::CatalogSettings;
use crate::context::Context;
use crate::kube_ext::identity::ControllerId;
use crate::kube_ext::store::Slot;

/// The catalog controller's name (metrics, work queue, logs) and field manager (never renamed
/// once released: server-side apply ownership of the catalog's objects depends on it). Here,
/// beside the context, so that every step can name it without importing the pipeline.
pub const ID: ControllerId = ControllerId {
    name: "catalog",
    manager: "model-registry-operator-catalog",
};

/// The stores the catalog's watches keep (trimmed as `crate::watched` trims these kinds).
#[derive(Default)]
pub struct CatalogWatched {
    /// Deployments labelled as the catalog's children.
    pub deployments: Slot<Deployment>,
    /// Endpoints of the catalog's Services (they carry the Service's labels).
    pub endpoints: Slot<Endpoints>,
    /// The catalog server's pods (by the Deployment's selector: the pod template is left as
    /// the Go operator wrote it, so that adoption restarts no pod).
    pub pods: Slot<Pod>,
}

/// The catalog controller's context.
pub struct CatalogContext {
    pub base: Arc<Context>,
    pub settings: CatalogSettings,
    pub watched: CatalogWatched,
}

impl CatalogContext {
    /// With the catalog-only variables read from the process environment.
    pub fn new(base: Arc<Context>) -> CatalogContext {
        let settings = CatalogSettings::new(&base.settings, |k| std::env::var(k).ok());
        CatalogContext::with_settings(base, settings)
    }

    pub fn with_settings(base: Arc<Context>, settings: CatalogSettings) -> CatalogContext {
        CatalogContext {
            base,
            settings,
            watched: CatalogWatched::default(),
        }
    }
}
