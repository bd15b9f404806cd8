//! `ModelTransfer` spec: where a model comes from, where it goes, and how it is registered.

use super::model::TransferModel;
use super::status::ModelTransferStatus;
use crate::common::{ConfigMapKeyValue, SecretKeyValue, SecretRef};
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Desired transfer of a model into storage and its registration in a Model Registry.
/// Immutable once created.
// Each `printcolumn(...)` repeats the same keys, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "modelregistry.opendatahub.io",
    version = "v1alpha1",
    kind = "ModelTransfer",
    plural = "modeltransfers",
    namespaced,
    status = "ModelTransferStatus",
    derive = "PartialEq",
    doc = "Copies a model from a source (S3, OCI image, URL or PVC) to a destination (OCI image, S3 or PVC) in a Job and registers it in a Model Registry.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        description = "Pending, Running, Succeeded or Failed",
        json_path = ".status.phase"
    ),
    printcolumn(
        name = "Intent",
        type_ = "string",
        description = "create_model, create_version or update_artifact",
        json_path = ".spec.intent",
        priority = 1
    ),
    printcolumn(
        name = "Source",
        type_ = "string",
        description = "Source location as a URI",
        json_path = ".status.sourceUri"
    ),
    printcolumn(
        name = "Destination",
        type_ = "string",
        description = "Destination location as a URI",
        json_path = ".status.destinationUri"
    ),
    printcolumn(
        name = "Model",
        type_ = "string",
        description = "Registered model name",
        json_path = ".spec.model.registeredModel.name"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        description = "Model version name",
        json_path = ".spec.model.modelVersion.name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("self == oldSelf")
        .message("spec is immutable; delete and re-create the ModelTransfer to change it"),
    validation = Rule::new(
        "self.intent != 'create_model' || (has(self.model.registeredModel) && has(self.model.registeredModel.name) && size(self.model.registeredModel.name) > 0)"
    )
    .message("intent create_model requires model.registeredModel.name"),
    validation = Rule::new(
        "self.intent != 'create_version' || (has(self.model.registeredModel) && ((has(self.model.registeredModel.id) && size(self.model.registeredModel.id) > 0) || (has(self.model.registeredModel.name) && size(self.model.registeredModel.name) > 0)))"
    )
    .message("intent create_version requires model.registeredModel.id or model.registeredModel.name"),
    validation = Rule::new(
        "self.intent != 'create_version' || (has(self.model.modelVersion) && has(self.model.modelVersion.name) && size(self.model.modelVersion.name) > 0)"
    )
    .message("intent create_version requires model.modelVersion.name"),
    validation = Rule::new(
        "self.intent != 'update_artifact' || (has(self.model.modelArtifact) && has(self.model.modelArtifact.id) && size(self.model.modelArtifact.id) > 0)"
    )
    .message("intent update_artifact requires model.modelArtifact.id")
)]
#[serde(rename_all = "camelCase")]
pub struct ModelTransferSpec {
    /// Where the model files are read from. Exactly one kind must be set.
    pub source: TransferSource,

    /// Where the model files are written to. Exactly one kind must be set.
    pub destination: TransferDestination,

    /// The Model Registry the model is registered in.
    pub registry: RegistryTarget,

    /// What to register: `create_model` (new registered model, version and artifact),
    /// `create_version` (new version and artifact of an existing model) or `update_artifact`
    /// (point an existing artifact at the transferred files).
    pub intent: TransferIntent,

    /// Metadata of the registered model, version and artifact.
    pub model: TransferModel,

    /// Settings of the Job that performs the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<TransferJobSpec>,
}

/// What the transfer registers in the Model Registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferIntent {
    /// Create a registered model, a version and an artifact.
    CreateModel,
    /// Create a version and an artifact of an existing registered model.
    CreateVersion,
    /// Update the URI of an existing model artifact.
    UpdateArtifact,
}

impl TransferIntent {
    /// The wire value, e.g. `create_model`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateModel => "create_model",
            Self::CreateVersion => "create_version",
            Self::UpdateArtifact => "update_artifact",
        }
    }
}

impl fmt::Display for TransferIntent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Source of the model files; exactly one field must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new(
        "(has(self.s3) ? 1 : 0) + (has(self.oci) ? 1 : 0) + (has(self.uri) ? 1 : 0) + (has(self.pvc) ? 1 : 0) == 1"
    )
    .message("exactly one of s3, oci, uri or pvc must be set")
)]
#[serde(rename_all = "camelCase")]
pub struct TransferSource {
    /// Objects under a key (prefix) of an S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
    /// Files of an OCI image (model car).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciSource>,
    /// A single file or archive downloaded from a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<UriSource>,
    /// Files on a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcLocation>,
}

/// Destination of the model files; exactly one field must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("(has(self.oci) ? 1 : 0) + (has(self.s3) ? 1 : 0) + (has(self.pvc) ? 1 : 0) == 1")
        .message("exactly one of oci, s3 or pvc must be set")
)]
#[serde(rename_all = "camelCase")]
pub struct TransferDestination {
    /// An OCI image (model car) pushed to a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciDestination>,
    /// Objects under a key (prefix) of an S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
    /// A directory on a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcLocation>,
}

/// A key (prefix) in an S3-compatible bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Location {
    /// Bucket name.
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// Object key, or key prefix of a directory of objects.
    #[schemars(length(min = 1))]
    pub key: String,
    /// Region of the bucket; taken from the credentials Secret when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible service; taken from the credentials Secret, or AWS,
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Secret in data-connection layout: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    /// optionally AWS_DEFAULT_REGION and AWS_S3_ENDPOINT.
    pub credentials_secret_ref: SecretRef,
}

/// An OCI image to read model files from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciSource {
    /// Image reference, e.g. `quay.io/org/model:1.0` (an `oci://` prefix is accepted).
    #[schemars(length(min = 1))]
    pub uri: String,
    /// Secret of type `kubernetes.io/dockerconfigjson` with pull credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

/// A URL to download model files from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UriSource {
    /// URL of the file or archive (http, https or hf://org/model[:revision]).
    #[schemars(length(min = 1))]
    pub url: String,
    /// Secret with credentials for the download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

/// A path on a PersistentVolumeClaim in the namespace of the ModelTransfer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcLocation {
    /// Name of the PersistentVolumeClaim.
    #[schemars(length(min = 1))]
    pub claim_name: String,
    /// Directory or file inside the volume; the volume root when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// An OCI image to write the model files into.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciDestination {
    /// Image reference to push, e.g. `quay.io/org/model:1.0` (an `oci://` prefix is accepted).
    #[schemars(length(min = 1))]
    pub uri: String,
    /// Base image the model layers are added to; an empty image when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    /// Secret of type `kubernetes.io/dockerconfigjson` with push credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Allow plain HTTP and unverified TLS towards the registry (testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// The Model Registry to register in: either `modelRegistryRef` or `url`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("has(self.modelRegistryRef) != has(self.url)")
        .message("exactly one of modelRegistryRef or url must be set")
)]
#[serde(rename_all = "camelCase")]
pub struct RegistryTarget {
    /// A ModelRegistry managed by this operator; its Service address is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_registry_ref: Option<ModelRegistryRef>,
    /// Base URL of the registry's REST API, including the scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret key holding a bearer token for the registry; the Job's service account token is
    /// used when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyValue>,
    /// ConfigMap key holding the CA bundle that signed the registry's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_config_map_ref: Option<ConfigMapKeyValue>,
}

/// Reference to a ModelRegistry object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRegistryRef {
    /// Name of the ModelRegistry.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Namespace of the ModelRegistry; the ModelTransfer's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Settings of the transfer Job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferJobSpec {
    /// Retries before the Job is marked failed; the operator's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,
    /// Maximum run time of the Job in seconds; unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after which a finished Job is deleted; kept when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Compute resources of the transfer container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Service account the Job runs as; the namespace's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Node labels the Job's pod must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the Job's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Size limit of the scratch volume used while transferring; the operator's default when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_volume_size: Option<Quantity>,
}

fn with_oci_scheme(uri: &str) -> String {
    if uri.starts_with("oci://") {
        uri.to_string()
    } else {
        format!("oci://{uri}")
    }
}

fn pvc_uri(pvc: &PvcLocation) -> String {
    match pvc.path.as_deref().map(|p| p.trim_start_matches('/')) {
        Some(path) if !path.is_empty() => format!("pvc://{}/{path}", pvc.claim_name),
        _ => format!("pvc://{}", pvc.claim_name),
    }
}

impl S3Location {
    /// `s3://bucket/key`.
    pub fn display_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key.trim_start_matches('/'))
    }
}

impl TransferSource {
    /// The source as one URI (`s3://…`, `oci://…`, the URL, `pvc://claim/path`), for
    /// `status.sourceUri`; `None` when no kind is set.
    pub fn display_uri(&self) -> Option<String> {
        if let Some(s3) = &self.s3 {
            Some(s3.display_uri())
        } else if let Some(oci) = &self.oci {
            Some(with_oci_scheme(&oci.uri))
        } else if let Some(uri) = &self.uri {
            Some(uri.url.clone())
        } else {
            self.pvc.as_ref().map(pvc_uri)
        }
    }
}

impl TransferDestination {
    /// The destination as one URI (`oci://…`, `s3://…`, `pvc://claim/path`), for
    /// `status.destinationUri`; `None` when no kind is set.
    pub fn display_uri(&self) -> Option<String> {
        if let Some(oci) = &self.oci {
            Some(with_oci_scheme(&oci.uri))
        } else if let Some(s3) = &self.s3 {
            Some(s3.display_uri())
        } else {
            self.pvc.as_ref().map(pvc_uri)
        }
    }
}
