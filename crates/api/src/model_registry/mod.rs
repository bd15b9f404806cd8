//! The `ModelRegistry` custom resource (`modelregistry.opendatahub.io`, kind `ModelRegistry`).
//!
//! Both API versions are served with one schema, the union of the fields of the former
//! `v1alpha1` and `v1beta1` APIs, so the API server converts between them by rewriting
//! `apiVersion` only (no conversion webhook). `v1beta1` is the storage version; `v1alpha1` is
//! deprecated. [`ModelRegistry`] is the `v1beta1` type; [`v1alpha1::ModelRegistry`] shares its
//! spec and status types.

mod auth;
mod database;
mod spec;
pub mod v1alpha1;
mod validate;

pub use auth::{
    GatewayConfig, GatewayServerConfig, GatewayTlsMode, GatewayTlsSettings, IstioConfig,
    IstioTlsMode, ProxyConfig,
};
pub use database::{MySqlConfig, PostgresConfig, PostgresSslMode};
pub use spec::{
    GrpcSpec, ModelRegistry, ModelRegistrySpec, ModelRegistryStatus, ModelTransferAccess, RestSpec,
    ServiceRoute,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::core::crd::merge_crds;

/// The storage (and preferred) API version.
pub mod v1beta1 {
    pub use super::{ModelRegistry, ModelRegistrySpec, ModelRegistryStatus};

    /// API version name.
    pub const VERSION: &str = "v1beta1";
}

/// Default REST port.
pub const DEFAULT_REST_PORT: i32 = 8080;
/// Default (deprecated) gRPC port.
pub const DEFAULT_GRPC_PORT: i32 = 9090;
/// Default PostgreSQL port.
pub const DEFAULT_POSTGRES_PORT: i32 = 5432;
/// Default MySQL port.
pub const DEFAULT_MYSQL_PORT: i32 = 3306;
/// Default port of the OAuth proxy and kube-rbac-proxy sidecars.
pub const DEFAULT_PROXY_PORT: i32 = 8443;
/// Default port of the OpenShift router serving proxy Routes.
pub const DEFAULT_ROUTE_PORT: i32 = 443;
/// Istio gateway server port without TLS.
pub const DEFAULT_GATEWAY_PORT: i32 = 80;
/// Istio gateway server port with TLS.
pub const DEFAULT_GATEWAY_TLS_PORT: i32 = 443;
/// Default value of the `istio` label selecting the ingress gateway.
pub const DEFAULT_ISTIO_INGRESS: &str = "ingressgateway";

/// Name of the CRD object.
pub const CRD_NAME: &str = "modelregistries.modelregistry.opendatahub.io";

/// The complete `ModelRegistry` CRD: `v1alpha1` (served, deprecated) and `v1beta1` (served,
/// storage), listed in that order, with identical schemas.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = merge_crds(
        vec![v1alpha1::ModelRegistry::crd(), ModelRegistry::crd()],
        v1beta1::VERSION,
    )
    .expect("both ModelRegistry versions share group, kind and scope");
    crd.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
    crd
}
