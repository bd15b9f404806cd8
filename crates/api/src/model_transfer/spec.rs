//! `ModelTransfer` spec: where a model comes from, where it goes, and how it is registered.

use super::model::TransferModel;
use super::signing::TransferSigning;
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
/// Immutable once created: delete and re-create the ModelTransfer to run another transfer.
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
    doc = "Copies a model from a source (S3, OCI image, URL, Hugging Face repository or PVC) to a destination (OCI image, S3 or PVC) in a Job and registers it in a Model Registry.",
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
        "self.intent != 'create_model' || (has(self.model.modelVersion) && has(self.model.modelVersion.name) && size(self.model.modelVersion.name) > 0)"
    )
    .message("intent create_model requires model.modelVersion.name"),
    validation = Rule::new(
        "self.intent != 'create_model' || !has(self.model.registeredModel) || !has(self.model.registeredModel.id)"
    )
    .message("intent create_model creates the registered model: model.registeredModel.id must not be set (use create_version to add to an existing model)"),
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
    /// Where the model files are read from. Exactly one of `s3`, `oci`, `uri`, `huggingFace` or
    /// `pvc` must be set.
    pub source: TransferSource,

    /// Where the model files are written to. Exactly one of `oci`, `s3` or `pvc` must be set.
    pub destination: TransferDestination,

    /// The Model Registry the model is registered in: a ModelRegistry of this operator
    /// (`modelRegistryRef`) or any registry by its REST address (`url`).
    pub registry: RegistryTarget,

    /// What to register. `create_model`: a new registered model with a version and an artifact
    /// (needs `model.registeredModel.name` and `model.modelVersion.name`). `create_version`: a
    /// new version with an artifact under an existing registered model (needs
    /// `model.registeredModel.id` or `.name`, and `model.modelVersion.name`). `update_artifact`:
    /// point an existing model artifact at the transferred files and mark it LIVE (needs
    /// `model.modelArtifact.id`).
    pub intent: TransferIntent,

    /// Metadata of the registered model, version and artifact. The controller writes it into
    /// the ConfigMap `<name>-metadata`, which the Job reads.
    pub model: TransferModel,

    /// Settings of the Job `<name>-sync` that performs the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<TransferJobSpec>,

    /// Sign what the transfer publishes with sigstore; unsigned when unset. Model files (S3,
    /// PVC destinations) get a `model.sig` next to them in the OpenSSF model-signing format;
    /// an OCI image gets a sigstore bundle over its manifest digest, attached as an OCI
    /// referrer. Exactly one mode: `keyless` (the Job's ServiceAccount identity, certified by
    /// Fulcio and logged in Rekor) or `keySecretRef` (a private key from a Secret). Signing
    /// happens after the copy and before registration: when it fails, nothing is registered
    /// and the transfer ends Failed with reason SigningFailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<TransferSigning>,
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
        "(has(self.s3) ? 1 : 0) + (has(self.oci) ? 1 : 0) + (has(self.uri) ? 1 : 0) + (has(self.huggingFace) ? 1 : 0) + (has(self.pvc) ? 1 : 0) == 1"
    )
    .message("exactly one of s3, oci, uri, huggingFace or pvc must be set")
)]
#[serde(rename_all = "camelCase")]
pub struct TransferSource {
    /// One object, or every object under a key prefix, of an S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
    /// The files under `/models` of an OCI image (a KServe modelcar), or the files of an OCI
    /// artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciSource>,
    /// A single file downloaded from an http(s) URL (zip, tar and tar.gz archives are
    /// unpacked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<UriSource>,
    /// Every file of one commit of a model repository on the Hugging Face Hub (or a mirror
    /// that serves the Hub's API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugging_face: Option<HuggingFaceSource>,
    /// A file or directory on a PersistentVolumeClaim, mounted read-only into the Job.
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
    /// A KServe modelcar image pushed to an OCI registry; the registered URI is pinned by
    /// digest (`oci://registry/repository@sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciDestination>,
    /// Objects under a key prefix of an S3 bucket (multipart uploads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
    /// A directory on a PersistentVolumeClaim, mounted read-write into the Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcLocation>,
}

/// A key (or key prefix) in an S3-compatible bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Location {
    /// Bucket name.
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// As a source: the key of one object, or a key prefix whose objects are the model files
    /// (paths relative to the prefix). As a destination: the key prefix the files are written
    /// under.
    #[schemars(length(min = 1))]
    pub key: String,
    /// Region of the bucket. When unset: `AWS_DEFAULT_REGION` (or `AWS_REGION`) of the
    /// credentials Secret, else the AWS SDK's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible service, e.g. `http://minio.minio.svc:9000`. When
    /// unset: `AWS_S3_ENDPOINT` (or `AWS_ENDPOINT_URL`) of the credentials Secret, else AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Secret in the OpenDataHub data-connection layout, in the ModelTransfer's namespace,
    /// mounted into the Job as files: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
    /// (required), `AWS_DEFAULT_REGION` and `AWS_S3_ENDPOINT` (optional; `region` and
    /// `endpoint` above take precedence). The transfer waits (phase Failed, reason
    /// InvalidConfiguration, re-checked every 10 seconds) until the Secret and keys exist.
    pub credentials_secret_ref: SecretRef,
}

/// An OCI image or artifact to read model files from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciSource {
    /// Image reference to pull, by tag or digest, e.g. `quay.io/org/model:1.0` (an `oci://`
    /// prefix is accepted; the tag defaults to `latest`).
    #[schemars(length(min = 1))]
    pub uri: String,
    /// Secret with pull credentials, in the ModelTransfer's namespace: key `.dockerconfigjson`
    /// (a `kubernetes.io/dockerconfigjson` Secret), mounted into the Job as a file. Anonymous
    /// pulls when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Skip TLS certificate verification towards the source registry, and fall back to plain
    /// HTTP when it does not speak TLS (for test registries only). To trust a private CA
    /// instead, use `spec.job.caBundleConfigMapRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// A URL to download model files from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UriSource {
    /// `http://` or `https://` URL of a model file, or of a zip, tar or tar.gz archive (unpacked;
    /// its files are the model). Shown in `status.sourceUri`; the Job downloads the Secret's
    /// URL instead when `credentialsSecretRef` is set. For an `hf://` repository use
    /// `spec.source.huggingFace` (an `hf://` URL here is refused with reason
    /// InvalidConfiguration).
    #[schemars(length(min = 1))]
    pub url: String,
    /// Secret whose key `URI` holds the URL to download, for URLs that carry credentials
    /// (`https://user:password@host/…`, sent as basic auth, or pre-signed URLs), in the
    /// ModelTransfer's namespace. Mounted into the Job as a file; when set, the Job downloads
    /// that URL instead of `url`, which then only labels the source in the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

// CEL checks of `huggingFace` (mirrored in Rust by `HuggingFaceSource::validate`).
pub(crate) const HF_REPO_RULE: &str = "self.matches('^([A-Za-z0-9._-]+/)?[A-Za-z0-9._-]+$')";
pub(crate) const HF_REPO_MESSAGE: &str =
    "must be a Hugging Face repository id, org/model (letters, digits, '-', '_' and '.')";
pub(crate) const HF_REVISION_RULE: &str = "self.matches('^[^:\\\\s]+$')";
pub(crate) const HF_REVISION_MESSAGE: &str =
    "must be a branch, tag or commit id, without ':' or white space";
pub(crate) const HF_ENDPOINT_RULE: &str = "self.matches('^https?://[^/?#@]+(/[^?#]*)?$')";
pub(crate) const HF_ENDPOINT_MESSAGE: &str =
    "must be an http:// or https:// URL with a host and no user info, query or fragment";

/// A model repository on the Hugging Face Hub, read over the Hub's HTTP API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HuggingFaceSource {
    /// Repository id, `org/model`, e.g. `ibm-granite/granite-3.0-2b-instruct`. Every file of
    /// the repository at `revision` is transferred (LFS files included, directories kept).
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new(HF_REPO_RULE).message(HF_REPO_MESSAGE))]
    pub repo: String,
    /// Branch, tag or commit id (e.g. `v1.0`, `refs/pr/1`, a 40-character sha); `main` when
    /// unset. The Job resolves it to one commit before anything is registered, and reads every
    /// file from that commit; an unknown revision fails the transfer (reason
    /// SourceUnavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new(HF_REVISION_RULE).message(HF_REVISION_MESSAGE))]
    pub revision: Option<String>,
    /// Secret key (in the ModelTransfer's namespace) holding a Hugging Face access token, for
    /// private and gated repositories. Mounted into the Job as a file and named by
    /// `HF_TOKEN_PATH` (never in the environment or the command line); sent to `endpoint`
    /// only, not to the storage its downloads are redirected to. With an `http://` endpoint
    /// only when the Secret is annotated `modelregistry.opendatahub.io/allow-plain-http:
    /// "true"` (otherwise the transfer fails with reason InvalidConfiguration, looked at again
    /// every 10 s). Anonymous when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyValue>,
    /// Base URL of the Hub (`HF_ENDPOINT` of the Job): a mirror or a Hub-compatible server,
    /// e.g. `https://hf-mirror.example.com`; `https://huggingface.co` when unset. Its
    /// certificate is checked against the system CAs, or `spec.job.caBundleConfigMapRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(HF_ENDPOINT_RULE).message(HF_ENDPOINT_MESSAGE))]
    pub endpoint: Option<String>,
}

/// A path on a PersistentVolumeClaim in the namespace of the ModelTransfer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcLocation {
    /// Name of the PersistentVolumeClaim, in the ModelTransfer's namespace. The transfer waits
    /// (phase Failed, reason InvalidConfiguration, re-checked every 10 seconds) until it exists.
    #[schemars(length(min = 1))]
    pub claim_name: String,
    /// Path inside the volume, relative to its root (no `..`): a file or directory (source) or
    /// the directory to write into (destination). The volume root when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// An OCI image (KServe modelcar) to write the model files into.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciDestination {
    /// Image reference to push, with a tag and without a digest, e.g. `quay.io/org/model:1.0`
    /// (an `oci://` prefix is accepted). Each model file becomes one uncompressed layer under
    /// `/models`; the registered URI is pinned by the pushed manifest's digest.
    #[schemars(length(min = 1))]
    pub uri: String,
    /// Base image the model layers are added on top of (copied into the destination
    /// repository). When unset, model-sync's default
    /// `public.ecr.aws/docker/library/busybox:latest` (Docker Hub's busybox through its ECR
    /// Public mirror, away from Docker Hub's pull rate limits), which gives the modelcar the
    /// shell KServe's modelcar sidecar needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    /// Secret with push credentials, in the ModelTransfer's namespace: key `.dockerconfigjson`
    /// (a `kubernetes.io/dockerconfigjson` Secret), mounted into the Job as a file. Anonymous
    /// pushes when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Skip TLS certificate verification towards the destination registry, and fall back to
    /// plain HTTP when it does not speak TLS (for test registries only). To trust a private CA
    /// instead, use `spec.job.caBundleConfigMapRef`.
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
    /// A ModelRegistry of this operator. The controller derives the address from it: plain HTTP
    /// to `<name>.<namespace>.svc` on `spec.rest.port`, or, behind `kubeRBACProxy` (or
    /// `oauthProxy` on OpenShift), HTTPS on the proxy port, authenticated with the Job's
    /// ServiceAccount token, which the controller grants the registry's
    /// `registry-user-<name>` Role while the transfer needs it (unless `tokenSecretRef` is set).
    /// A ModelRegistry in another namespace must list this namespace in its
    /// `spec.modelTransfers.allowedNamespaces`; otherwise the transfer fails with reason
    /// RegistryAccessDenied before any Job or RoleBinding is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_registry_ref: Option<ModelRegistryRef>,
    /// Base URL of the registry's REST API: `http(s)://host[:port][/path-prefix]`. With
    /// `https` the Job sends a bearer token (see `tokenSecretRef`); with `http` only when
    /// `tokenSecretRef` is set and its Secret is annotated
    /// `modelregistry.opendatahub.io/allow-plain-http: "true"`. A ServiceAccount token sent to
    /// this URL is bound to the URL's origin (`https://host[:port]`) as its audience, so the
    /// API server refuses it; a kube-rbac-proxy there needs
    /// `--auth-token-audiences=<origin>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret key (in the ModelTransfer's namespace) holding a bearer token for the registry,
    /// mounted into the Job as a file. Sent only over HTTPS, unless the Secret is annotated
    /// `modelregistry.opendatahub.io/allow-plain-http: "true"` (otherwise the transfer fails
    /// with reason InvalidConfiguration, looked at again every 10 s). When unset, an HTTPS
    /// registry (an `https` url, or a ModelRegistry behind a proxy) gets a token of the Job's
    /// ServiceAccount; a plain HTTP one gets no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyValue>,
    /// ConfigMap key (in the ModelTransfer's namespace) holding the PEM CA bundle that signed
    /// the registry's certificate; trusted in addition to the system CAs. When unset for a
    /// proxied ModelRegistry on OpenShift: the service CA bundle `openshift-service-ca.crt`
    /// (key `service-ca.crt`) OpenShift publishes in every namespace; elsewhere the system CAs
    /// only (set it when the proxy's certificate comes from a private CA).
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
    /// Namespace of the ModelRegistry; the ModelTransfer's namespace when unset. Another
    /// namespace works only when that ModelRegistry lists this ModelTransfer's namespace in
    /// `spec.modelTransfers.allowedNamespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Settings of the transfer Job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferJobSpec {
    /// Retries of a failed transfer run before the Job (and the transfer) is marked failed;
    /// 2 when unset. With retries, a run that fails restarts in its pod (`restartPolicy:
    /// OnFailure`), and for an OCI destination it resumes from a journal on the scratch volume:
    /// the layers and parts the registry already holds are not sent again. A run that exits
    /// with invalid configuration (exit code 2) is not retried: the transfer fails at once and
    /// its Job is deleted. With 0, the single run's pod is kept (`restartPolicy: Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,
    /// Maximum run time of the Job in seconds, over all attempts; then the transfer fails with
    /// reason DeadlineExceeded. Unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after which the finished Job and its pods are deleted (the ModelTransfer keeps
    /// its status and is never run again); kept until the ModelTransfer is deleted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Compute resources of the model-sync container. When unset: requests 100m CPU and
    /// 256Mi memory, limits 1 CPU and 1Gi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Existing ServiceAccount (in the ModelTransfer's namespace) the Job runs as. It must be
    /// annotated `modelregistry.opendatahub.io/allow-model-transfers: "true"` (by whoever
    /// manages it: the Job acts with its rights and sends its token to the registry); otherwise
    /// the transfer fails with reason InvalidConfiguration, looked at again every 10 s. When
    /// unset, the controller creates a dedicated ServiceAccount `<name>-sync`, owned by the
    /// ModelTransfer, so registry access granted to the Job reaches no other pod. Pods get its
    /// token only when the registry needs one (a projected token volume); automounting is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Node labels the Job's pod must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the Job's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Size limit of the scratch `emptyDir` at `/tmp` (downloads of unknown size, archives
    /// being unpacked); 20Gi when unset. Transfers between S3, OCI and PVCs stream and need
    /// almost none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_volume_size: Option<Quantity>,
    /// ConfigMap key (in the ModelTransfer's namespace) holding a PEM CA bundle, for OCI
    /// registries, S3 endpoints or download servers with certificates from a private CA.
    /// Mounted into the Job and named by `SSL_CERT_FILE`, so it REPLACES the image's system CA
    /// certificates for every TLS connection of the transfer (the Model Registry included, to
    /// which `spec.registry.caConfigMapRef` is added): include the public CAs too when the
    /// transfer also talks to servers with public certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_config_map_ref: Option<ConfigMapKeyValue>,
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

impl HuggingFaceSource {
    /// `hf://org/model[:revision]`, the form model-sync reads.
    pub fn display_uri(&self) -> String {
        match self.revision.as_deref().filter(|r| !r.is_empty()) {
            Some(rev) => format!("hf://{}:{rev}", self.repo),
            None => format!("hf://{}", self.repo),
        }
    }
}

impl TransferSource {
    /// The source as one URI (`s3://…`, `oci://…`, the URL, `hf://…`, `pvc://claim/path`), for
    /// `status.sourceUri`; `None` when no kind is set.
    pub fn display_uri(&self) -> Option<String> {
        if let Some(s3) = &self.s3 {
            Some(s3.display_uri())
        } else if let Some(oci) = &self.oci {
            Some(with_oci_scheme(&oci.uri))
        } else if let Some(uri) = &self.uri {
            Some(uri.url.clone())
        } else if let Some(hf) = &self.hugging_face {
            Some(hf.display_uri())
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
