//! The stores the ModelRegistry controller keeps (see [`crate::kube_ext::store`] for why), and
//! how each kept kind is trimmed to what its reconciles read. The ModelTransfer controller reads
//! [`RegistryStores::registries`] too (the registry a transfer names).
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::core::PartialObjectMeta;
use mro_api::ModelRegistry;

use crate::kube_ext::store::{Slot, Trim};

#[derive(Default)]
pub struct RegistryStores {
    /// The controller's own store of registries (its watch namespace).
    pub registries: Slot<ModelRegistry>,
    /// Every registry in the cluster (metadata only), kept when the controllers watch a single
    /// namespace: names are unique cluster-wide, so the other namespaces matter too.
    pub registry_names: Slot<PartialObjectMeta<ModelRegistry>>,
    pub deployments: Slot<Deployment>,
    pub endpoints: Slot<Endpoints>,
    pub pods: Slot<Pod>,
}

impl Trim for Deployment {
    /// Status reads the rollout: generation, replicas and status. The pod template is the
    /// bulk of the object and is not read.
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        if let Some(spec) = self.spec.as_mut() {
            spec.template = Default::default();
        }
    }
}

impl Trim for Endpoints {
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
    }
}

impl Trim for PartialObjectMeta<ModelRegistry> {
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        self.metadata.annotations = None;
    }
}
