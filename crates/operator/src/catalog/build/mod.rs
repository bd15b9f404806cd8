//! The *build* step of the catalog: pure functions from a validated Catalog, the catalog's
//! settings and what the read step observed, to every object the Go controller's HEAD
//! (internal/controller/catalog_controller.go@08f64eb:249-453) applies, grouped by how the
//! applier must treat them. No I/O; unit-tested in `tests`.
//!
//! - [`input`]: what the build reads ([`CatalogInput`]).
//! - [`names`]: fixed names, labels, selectors, owner references.
//! - [`sources`]: default and user sources ConfigMaps, the `default_catalog` migration,
//!   labeled sources.
//! - [`deployment`]: the catalog server's Deployment and its argument list.
//! - [`access`]: ServiceAccount, Service, Roles and RoleBindings, kube-rbac-proxy config and
//!   auth-delegator binding.
//! - [`openshift`]: Route and its NetworkPolicy; the gateway HTTPRoute and ReferenceGrant.
//! - [`postgres`]: the database Secret (password from a caller's random bytes), Deployment,
//!   Service, NetworkPolicy.
//! - [`status`]: the `Available` condition from observed objects.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;

pub mod access;
pub mod deployment;
pub mod input;
pub mod names;
pub mod openshift;
pub mod postgres;
pub mod sources;
pub mod status;
#[cfg(test)]
mod tests;

pub use input::CatalogInput;

/// The PostgreSQL objects other than the Secret (which is created once, see
/// [`postgres::secret`], and amended in place, see [`postgres::amend`]).
#[derive(Clone, Debug)]
pub struct PostgresObjects {
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: NetworkPolicy,
}

/// The gateway-mode objects.
#[derive(Clone, Debug)]
pub struct GatewayObjects {
    /// HTTPRoute `model-catalog` in `HTTPROUTE_NAMESPACE`: applied, not owned, deleted by the
    /// finalizer.
    pub http_route: Value,
    /// The shared ReferenceGrant: created only when absent, never updated or deleted.
    pub reference_grant: Value,
}

/// What the catalog wants, grouped by how each object is applied.
#[derive(Clone, Debug)]
pub struct Desired {
    /// Owned by the Catalog (controller reference), applied on every reconcile, in the Go
    /// controller's order.
    pub service_account: ServiceAccount,
    pub default_sources: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub admin_role: Role,
    /// `None`: delete `model-catalog-admin-binding` if it exists.
    pub admin_role_binding: Option<RoleBinding>,
    /// `None` with `SKIP_MODEL_CATALOG_DB_CREATION`.
    pub postgres: Option<PostgresObjects>,
    /// OpenShift only.
    pub gateway: Option<GatewayObjects>,
    pub route: Option<Value>,
    pub route_network_policy: Option<NetworkPolicy>,
    pub proxy_config: ConfigMap,
    /// Created when absent, never owned or overwritten (users edit them); see
    /// [`sources::without_retired_source`] for the one rewrite.
    pub user_sources: Vec<ConfigMap>,
    /// Cluster-scoped, not owned; deleted by the finalizer.
    pub auth_delegator: ClusterRoleBinding,
}

/// Builds every object of the catalog.
pub fn desired(input: &CatalogInput) -> Desired {
    let openshift = input.openshift;
    Desired {
        service_account: access::service_account(input),
        default_sources: sources::default_sources(input.catalog),
        deployment: deployment::deployment(input),
        service: access::service(input),
        role: access::role(input),
        role_binding: access::role_binding(input),
        admin_role: access::admin_role(input),
        admin_role_binding: access::admin_role_binding(input),
        postgres: (!input.settings.skip_db_creation).then(|| PostgresObjects {
            deployment: postgres::deployment(input),
            service: postgres::service(input),
            network_policy: postgres::network_policy(input),
        }),
        gateway: openshift::gateway_mode(input).then(|| GatewayObjects {
            http_route: openshift::http_route(input),
            reference_grant: openshift::reference_grant(input),
        }),
        route: openshift.then(|| openshift::route(input)),
        route_network_policy: openshift.then(|| openshift::route_network_policy(input)),
        proxy_config: access::proxy_config(input),
        user_sources: sources::user_config_maps(input.catalog),
        auth_delegator: access::auth_delegator(input),
    }
}
