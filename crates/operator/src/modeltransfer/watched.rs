//! The stores the ModelTransfer controller keeps (see [`crate::kube_ext::store`] for why): the
//! Jobs and their pods, from which a transfer's status is computed, trimmed to what it reads.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use crate::kube_ext::store::{Slot, Trim};

#[derive(Default)]
pub struct TransferStores {
    pub jobs: Slot<Job>,
    pub pods: Slot<Pod>,
}

impl Trim for Job {
    /// The transfer reads the Job's annotations (the spec hash) and its status.
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        self.spec = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    #[test]
    fn trimming_a_job_keeps_what_status_reads() {
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
