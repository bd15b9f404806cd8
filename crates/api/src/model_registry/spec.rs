//! `ModelRegistry` spec and status (the schema shared by `v1alpha1` and `v1beta1`).

use super::auth::{IstioConfig, ProxyConfig};
use super::database::{MySqlConfig, PostgresConfig};
use super::defaults::{DEFAULT_GRPC_PORT, DEFAULT_REST_PORT};
use super::route::ServiceRoute;
use crate::condition::Condition;
use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Model Registry instance.
///
/// Exactly one of `postgres` or `mysql` must be given, and at most one of `oauthProxy`,
/// `kubeRBACProxy` or `istio`.
// Each `printcolumn(...)` repeats the same keys, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "modelregistry.opendatahub.io",
    version = "v1beta1",
    kind = "ModelRegistry",
    plural = "modelregistries",
    shortname = "mr",
    namespaced,
    status = "ModelRegistryStatus",
    derive = "PartialEq",
    doc = "A Model Registry instance: a REST service for model metadata backed by a PostgreSQL or MySQL database, optionally secured by an authenticating proxy or Istio.",
    printcolumn(
        name = "Available",
        type_ = "string",
        description = "Whether the registry service is available",
        json_path = r#".status.conditions[?(@.type=="Available")].status"#
    ),
    printcolumn(
        name = "OAuthProxy",
        type_ = "string",
        description = "Whether the OAuth proxy is available",
        json_path = r#".status.conditions[?(@.type=="OAuthProxyAvailable")].status"#
    ),
    printcolumn(
        name = "KubeRBACProxy",
        type_ = "string",
        description = "Whether the kube-rbac-proxy is available",
        json_path = r#".status.conditions[?(@.type=="KubeRBACProxyAvailable")].status"#
    ),
    printcolumn(
        name = "Istio",
        type_ = "string",
        description = "Whether the Istio resources are available",
        json_path = r#".status.conditions[?(@.type=="IstioAvailable")].status"#
    ),
    printcolumn(
        name = "Gateway",
        type_ = "string",
        description = "Whether the Istio gateway is available",
        json_path = r#".status.conditions[?(@.type=="GatewayAvailable")].status"#,
        priority = 2
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Hosts",
        type_ = "string",
        description = "Host names the registry is reachable at",
        json_path = ".status.hostsStr",
        priority = 2
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        description = "Message of the Available condition",
        json_path = r#".status.conditions[?(@.type=="Available")].message"#
    )
)]
#[x_kube(
    validation = Rule::new("has(self.postgres) != has(self.mysql)")
        .message("exactly one of postgres or mysql must be set"),
    validation = Rule::new(
        "(has(self.oauthProxy) ? 1 : 0) + (has(self.kubeRBACProxy) ? 1 : 0) + (has(self.istio) ? 1 : 0) <= 1"
    )
    .message("at most one of oauthProxy, kubeRBACProxy or istio may be set")
)]
#[serde(rename_all = "camelCase")]
pub struct ModelRegistrySpec {
    /// REST API endpoint of the registry.
    #[serde(default)]
    pub rest: RestSpec,

    /// Deprecated: port, image and resources of the ML Metadata gRPC server, which servers up to
    /// v0.2.20 run next to the REST container (it owns the database; the REST container talks
    /// to it on localhost). The server version (from the REST image tag) decides the layout:
    /// from v0.2.21 the REST container accesses the database itself and this field is ignored
    /// (the `ServerLayout` condition says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcSpec>,

    /// PostgreSQL database settings. Exactly one of `postgres` or `mysql` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresConfig>,

    /// MySQL database settings. Exactly one of `postgres` or `mysql` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<MySqlConfig>,

    /// Migrate the database schema to the registry's version at start-up when true.
    #[serde(
        rename = "enable_database_upgrade",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_database_upgrade: Option<bool>,

    /// Downgrade the database schema to this version at start-up (for rolling back a registry
    /// upgrade).
    #[serde(
        rename = "downgrade_db_schema_version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub downgrade_db_schema_version: Option<i64>,

    /// Front the REST API with the OpenShift OAuth proxy. Mutually exclusive with
    /// `kubeRBACProxy` and `istio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_proxy: Option<ProxyConfig>,

    /// Front the REST API with kube-rbac-proxy (authorization by SubjectAccessReview on the
    /// registry's Service). Mutually exclusive with `oauthProxy` and `istio`.
    #[serde(
        rename = "kubeRBACProxy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kube_rbac_proxy: Option<ProxyConfig>,

    /// Deprecated (v1alpha1 only upstream): secure the registry with Istio and Authorino, with an
    /// optional Istio gateway. Mutually exclusive with `oauthProxy` and `kubeRBACProxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioConfig>,

    /// Which ModelTransfers outside this registry's namespace may register in it through
    /// `spec.registry.modelRegistryRef`. ModelTransfers in the registry's own namespace are
    /// always allowed; others only from the namespaces listed here (none when unset). Behind
    /// `kubeRBACProxy` (or `oauthProxy` on OpenShift) an allowed transfer's Job ServiceAccount is
    /// granted this registry's `registry-user-<name>` Role by a RoleBinding in this namespace
    /// while the transfer needs it. Transfers from other namespaces can still reach the registry
    /// with their own credentials through `spec.registry.url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_transfers: Option<ModelTransferAccess>,
}

/// ModelTransfers from other namespaces that may use a registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelTransferAccess {
    /// Namespaces whose ModelTransfers may reference this registry (exact names; no
    /// wildcards). The registry's own namespace need not be listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")))]
    pub allowed_namespaces: Vec<String>,
}

impl ModelRegistrySpec {
    /// Whether ModelTransfers in `namespace` may reference this registry, which lives in
    /// `registry_namespace`: always from its own namespace, otherwise only when listed in
    /// `spec.modelTransfers.allowedNamespaces`.
    pub fn allows_transfers_from(&self, registry_namespace: &str, namespace: &str) -> bool {
        namespace == registry_namespace
            || self
                .model_transfers
                .as_ref()
                .is_some_and(|a| a.allowed_namespaces.iter().any(|n| n == namespace))
    }
}

/// REST endpoint settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestSpec {
    /// Port the REST API listens on.
    #[serde(default = "default_rest_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Create an OpenShift Route `<name>-http` exposing the plain REST Service.
    #[serde(default = "ServiceRoute::disabled")]
    pub service_route: ServiceRoute,

    /// Compute resources of the REST container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Image of the REST container, overriding the operator's default registry image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Default for RestSpec {
    fn default() -> Self {
        Self {
            port: DEFAULT_REST_PORT,
            service_route: ServiceRoute::Disabled,
            resources: None,
            image: None,
        }
    }
}

/// Deprecated gRPC endpoint settings (ML Metadata server).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcSpec {
    /// Port the gRPC server listens on.
    #[serde(default = "default_grpc_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Compute resources of the gRPC container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Image of the gRPC container, overriding the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Default for GrpcSpec {
    fn default() -> Self {
        Self {
            port: DEFAULT_GRPC_PORT,
            resources: None,
            image: None,
        }
    }
}

fn default_rest_port() -> i32 {
    DEFAULT_REST_PORT
}

fn default_grpc_port() -> i32 {
    DEFAULT_GRPC_PORT
}

/// Observed state of a Model Registry instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRegistryStatus {
    /// Host names at which the registry's services can be reached (Service DNS names, Routes,
    /// gateway hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,

    /// `hosts` joined with commas, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_str: Option<String>,

    /// JSON merge patch of the default values the operator applied at run time (images, domain,
    /// certificates, ...) without writing them into the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_defaults: Option<String>,

    /// Current conditions: Available, Progressing, Degraded, OAuthProxyAvailable,
    /// KubeRBACProxyAvailable, IstioAvailable, GatewayAvailable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The `.metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
