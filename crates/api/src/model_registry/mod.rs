//! The `ModelRegistry` custom resource (`modelregistry.opendatahub.io`, kind `ModelRegistry`).
//!
//! Both API versions are served with one schema, the union of the fields of the former
//! `v1alpha1` and `v1beta1` APIs, so the API server converts between them by rewriting
//! `apiVersion` only (no conversion webhook). `v1beta1` is the storage version; `v1alpha1` is
//! deprecated. [`ModelRegistry`] is the `v1beta1` type; [`v1alpha1::ModelRegistry`] shares its
//! spec and status types.

mod auth;
mod database;
mod defaults;
mod route;
mod spec;
pub mod v1alpha1;
mod validate;

pub use auth::{
    GatewayConfig, GatewayServerConfig, GatewayTlsMode, GatewayTlsSettings, IstioConfig,
    IstioTlsMode, ProxyConfig,
};
pub use database::{MySqlConfig, PostgresConfig, PostgresSslMode};
pub use defaults::*;
pub use route::ServiceRoute;
pub use spec::{
    GrpcSpec, ModelRegistry, ModelRegistrySpec, ModelRegistryStatus, ModelTransferAccess, RestSpec,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::core::crd::merge_crds;

/// The storage (and preferred) API version.
pub mod v1beta1 {
    pub use super::spec::{ModelRegistry, ModelRegistrySpec, ModelRegistryStatus};

    /// API version name.
    pub const VERSION: &str = "v1beta1";
}

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
