//! `ModelTransfer` status.

use crate::condition::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Lifecycle phase. Pending: the Job exists, its pod has not started. Running: the pod runs.
/// Succeeded: the Job completed (the `Registered` condition tells whether the registry confirms
/// the artifact). Failed: the Job failed, or the transfer cannot start (invalid spec, missing
/// Secret/ConfigMap/PVC/ModelRegistry, access denied; missing references are re-checked and the
/// transfer proceeds once they exist). See `message` and the `Failed` condition's reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TransferPhase {
    /// The Job exists; its pod has not started.
    #[default]
    Pending,
    /// The Job's pod is running.
    Running,
    /// The Job completed; see the `Registered` condition.
    Succeeded,
    /// The Job failed, or the transfer cannot start; see the `Failed` condition.
    Failed,
}

impl TransferPhase {
    /// The wire value, e.g. `Running`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    /// True for `Succeeded` and `Failed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

impl fmt::Display for TransferPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a transfer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelTransferStatus {
    /// Lifecycle phase. Pending: the Job exists, its pod has not started. Running: the pod runs.
    /// Succeeded: the Job completed (the `Registered` condition tells whether the registry
    /// confirms the artifact). Failed: the Job failed, or the transfer cannot start (invalid
    /// spec, missing Secret/ConfigMap/PVC/ModelRegistry, access denied; missing references are
    /// re-checked and the transfer proceeds once they exist). See `message` and the `Failed`
    /// condition's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TransferPhase>,

    /// Current conditions. `Complete`: the Job succeeded. `Failed`: the transfer failed (reasons
    /// InvalidConfiguration, RegistryAccessDenied, SourceUnavailable, DestinationRejected,
    /// RegistryRejected, DeadlineExceeded, BackoffLimitExceeded, SpecChanged, JobDeleted, ...).
    /// `Registered`: True once the model artifact, read back from the registry, is LIVE with
    /// the reported URI (read by the controller, or, where the registry takes the Job's own
    /// ServiceAccount token, by the Job: its termination message's `readBack`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Name of the Job performing the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,

    /// Number of runs of the transfer container started so far (1 plus retries, counting
    /// restarts in the same pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub attempts: Option<i32>,

    /// When the transfer Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the Job finished, successfully or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Source location as a URI (s3://, oci://, http(s)://, pvc://).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uri: Option<String>,

    /// Destination location as a URI (oci://, s3://, pvc://).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_uri: Option<String>,

    /// Registry ID of the registered model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_model_id: Option<String>,

    /// Registry ID of the model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version_id: Option<String>,

    /// Registry ID of the model artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_artifact_id: Option<String>,

    /// URI model-sync recorded on the model artifact; for OCI destinations pinned by digest
    /// (`oci://registry/repository@sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,

    /// Bytes of model files written to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub bytes_transferred: Option<i64>,

    /// The `.metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Human-readable summary of the current state or of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
