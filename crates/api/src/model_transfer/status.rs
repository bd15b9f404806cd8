//! `ModelTransfer` status.

use crate::condition::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Lifecycle phase of a transfer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TransferPhase {
    /// Accepted, Job not yet running.
    #[default]
    Pending,
    /// The transfer Job is running.
    Running,
    /// Transferred and registered.
    Succeeded,
    /// Failed permanently.
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
    /// Lifecycle phase: Pending, Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TransferPhase>,

    /// Current conditions: Complete, Failed, Registered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Name of the Job performing the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,

    /// Number of pod attempts the Job has made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub attempts: Option<i32>,

    /// When the transfer Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the transfer finished, successfully or not.
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

    /// URI recorded on the model artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,

    /// Bytes written to the destination.
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
