//! The stores the controllers keep (see [`crate::kube_ext::store`] for why), and how each kept
//! kind is trimmed to what the reconciles read.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::core::PartialObjectMeta;
use mro_api::ModelRegistry;

use crate::kube_ext::store::{Slot, Trim};

/// Every store the controllers keep.
#[derive(Default)]
pub struct Watched {
    /// The ModelRegistry controller's own store of registries (its watch namespace).
    pub registries: Slot<ModelRegistry>,
    /// Every registry in the cluster (metadata only), kept when the controllers watch a single
    /// namespace: names are unique cluster-wide, so the other namespaces matter too.
    pub registry_names: Slot<PartialObjectMeta<ModelRegistry>>,
    pub registry_deployments: Slot<Deployment>,
    pub registry_endpoints: Slot<Endpoints>,
    pub registry_pods: Slot<Pod>,
    pub transfer_jobs: Slot<Job>,
    pub transfer_pods: Slot<Pod>,
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

impl Trim for Pod {
    /// Status reads container states and termination messages; nothing of the spec.
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        self.spec = None;
    }
}

impl Trim for Endpoints {
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
    }
}

impl Trim for Job {
    /// The transfer reads the Job's annotations (the spec hash) and its status.
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        self.spec = None;
    }
}

impl Trim for PartialObjectMeta<ModelRegistry> {
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        self.metadata.annotations = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn pod(ns: &str, name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn trimming_keeps_what_status_reads() {
        let mut p = pod("a", "p");
        p.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
        p.spec = Some(Default::default());
        p.status = Some(Default::default());
        p.metadata.managed_fields = Some(vec![Default::default()]);
        p.trim();
        assert!(p.spec.is_none() && p.metadata.managed_fields.is_none());
        assert!(p.status.is_some() && p.metadata.labels.is_some());

        let mut j = Job {
            metadata: ObjectMeta {
                annotations: Some([("h".to_string(), "1".to_string())].into()),
                ..Default::default()
            },
            spec: Some(Default::default()),
            status: Some(Default::default()),
        };
        j.trim();
        assert!(j.spec.is_none());
        assert!(j.status.is_some() && j.metadata.annotations.is_some());
    }
}
