//! `AIHub` (`components.platform.opendatahub.io/v1alpha1`, cluster-scoped): the module CR the
//! OpenDataHub operator (3.x, "contract B", docs/odh.md) creates as `default-aihub` so that the
//! `aihub` controller deploys the model registry operator into the applications namespace.
//!
//! The schema follows the Go operator's HEAD (api/aihub/v1alpha1/aihub_types.go@08f64eb), so the
//! ODH operator reads the status of this module as it reads every other: `phase`, `conditions`
//! (with `severity`), `observedGeneration` and `releases` (a list map keyed on `name`).
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::Resource;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the AIHub resource.
pub const GROUP: &str = "components.platform.opendatahub.io";
/// The only name an AIHub may have (a CEL rule of the CRD).
pub const SINGLETON_NAME: &str = "default-aihub";

/// A DNS label (namespace name) of at most 63 characters.
const NAMESPACE_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
/// A DNS-1123 subdomain.
const DOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$";

/// Desired state of the AI Hub module.
// Each `printcolumn(...)` repeats the same keys, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "components.platform.opendatahub.io",
    version = "v1alpha1",
    kind = "AIHub",
    plural = "aihubs",
    singular = "aihub",
    status = "AIHubStatus",
    derive = "PartialEq",
    doc = "The module CR the OpenDataHub operator creates (as `default-aihub`) so that the `aihub` controller deploys the model registry operator into the applications namespace and creates the instances namespace.",
    printcolumn(
        name = "AppNamespace",
        type_ = "string",
        json_path = ".spec.applicationNamespace"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = Rule::new("self.metadata.name == 'default-aihub'").message("Only the name 'default-aihub' is allowed")
)]
#[serde(rename_all = "camelCase")]
pub struct AIHubSpec {
    /// Namespace the model registry operator is deployed in (the ODH applications namespace).
    #[schemars(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN))]
    pub application_namespace: String,

    /// Namespace of the ModelRegistry instances (the DataScienceCluster's
    /// `registriesNamespace`); created if absent, never owned. May equal
    /// `applicationNamespace`.
    #[schemars(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN))]
    pub instances_namespace: String,

    /// Data Science Gateway settings, absent until the platform knows the gateway domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<AIHubGateway>,
}

/// Data Science Gateway settings projected by the platform.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIHubGateway {
    /// The gateway's wildcard domain; handed to the model registry operator as `GATEWAY_DOMAIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = DOMAIN_PATTERN))]
    pub domain: Option<String>,
}

/// Observed state of the AI Hub module, in the layout every ODH module reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIHubStatus {
    /// `Ready` or `Not Ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `Ready` (from `ProvisioningSucceeded` and `ModelRegistryReady`), `ProvisioningSucceeded`,
    /// `ModelRegistryReady`, `CatalogReady` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub conditions: Vec<AIHubCondition>,
    /// The `.metadata.generation` the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The deployed component releases, and `platform` with the platform version the ODH
    /// operator wrote into ConfigMap `odh-modelregistry-config`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub releases: Vec<ComponentRelease>,
}

/// One condition of a platform module (`metav1.Condition` plus a severity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIHubCondition {
    /// Type of the condition in CamelCase.
    #[serde(rename = "type")]
    #[schemars(length(max = 316))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    /// The `.metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Deprecated; kept for compatibility with the platform's schema, never set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    /// Machine-readable CamelCase cause of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Error` (also when empty) or `Info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// A deployed component release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRelease {
    /// Component name (the list's key); `platform` carries the platform version.
    pub name: String,
    /// Version of the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Source repository of the component.
    #[serde(default, rename = "repoUrl", skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
}

impl AIHub {
    /// The object's `metadata.generation`.
    pub fn generation(&self) -> Option<i64> {
        self.meta().generation
    }
}

/// The AIHub CRD.
pub fn crd() -> CustomResourceDefinition {
    AIHub::crd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_is_cluster_scoped_with_the_singleton_rule() {
        let crd = crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("aihubs.components.platform.opendatahub.io")
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        let schema = serde_json::to_value(v.schema.as_ref().unwrap()).unwrap();
        let root = &schema["openAPIV3Schema"];
        assert_eq!(
            root["x-kubernetes-validations"][0]["rule"],
            "self.metadata.name == 'default-aihub'"
        );
        let spec = &root["properties"]["spec"];
        assert_eq!(
            spec["required"],
            serde_json::json!(["applicationNamespace", "instancesNamespace"])
        );
        assert_eq!(
            spec["properties"]["applicationNamespace"]["pattern"],
            NAMESPACE_PATTERN
        );
        assert_eq!(spec["properties"]["instancesNamespace"]["maxLength"], 63);
        assert_eq!(
            spec["properties"]["gateway"]["properties"]["domain"]["maxLength"],
            253
        );
        let releases = &root["properties"]["status"]["properties"]["releases"];
        assert_eq!(releases["x-kubernetes-list-type"], "map");
        assert_eq!(
            releases["x-kubernetes-list-map-keys"],
            serde_json::json!(["name"])
        );
        assert_eq!(releases["items"]["required"], serde_json::json!(["name"]));
    }
}
