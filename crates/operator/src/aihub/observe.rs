//! The *observe* step: what became of the two child Deployments that were applied, the model
//! registry operator's and the catalog controller's. Read once per reconcile, after the apply,
//! so that the catalog step (which waits for both to be Available) and the status step (which
//! reports each) judge the same observation.
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::Api;

use super::apply::Provisioned;
use super::render::{CATALOG_DEPLOYMENT, CHILD_DEPLOYMENT};

/// Why the child Deployments could not be read (retried).
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The child Deployments as the API server has them; `None` when absent or, after a failed
/// provisioning, not looked at.
#[derive(Clone, Debug, Default)]
pub struct Children {
    pub registry: Option<Deployment>,
    pub catalog: Option<Deployment>,
}

impl Children {
    /// Both child Deployments are Available (the condition for creating the Catalog).
    pub fn all_available(&self) -> bool {
        self.registry.as_ref().is_some_and(available)
            && self.catalog.as_ref().is_some_and(available)
    }
}

/// Reads both child Deployments in the applications namespace, unless provisioning failed.
pub async fn observe(
    client: &Client,
    application_namespace: &str,
    provisioned: &Provisioned,
) -> Result<Children, ObserveError> {
    if provisioned.is_err() {
        return Ok(Children::default());
    }
    let deps: Api<Deployment> = Api::namespaced(client.clone(), application_namespace);
    Ok(Children {
        registry: deps.get_opt(CHILD_DEPLOYMENT).await?,
        catalog: deps.get_opt(CATALOG_DEPLOYMENT).await?,
    })
}

/// The Deployment reports `Available=True`.
pub fn available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        })
}
