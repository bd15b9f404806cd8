//! Fixed names, labels and owner references of the catalog's objects.
//!
//! The names are fixed, whatever the Catalog is called, so that objects a Go-operator install
//! left (its legacy singleton used the same names) are adopted rather than duplicated
//! (internal/controller/catalog_controller.go@08f64eb:51-58). Every object's metadata labels
//! are the set the Go controller stamps over its templates (`applyLabels`, :1227-1240); the
//! selectors keep the templates' own labels, which are not the same set: see [`selector`] and
//! [`postgres_selector`].
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mro_api::catalog::Catalog;

use crate::kube_ext::owner::{self, label_map};

/// Catalog server objects: SA, Deployment, Service, Role, Route, config CM (`model-catalog`).
pub const NAME: &str = "model-catalog";
/// PostgreSQL objects: Secret, Deployment, Service, NetworkPolicy (`model-catalog-postgres`).
pub const POSTGRES: &str = "model-catalog-postgres";
/// The owned default-sources ConfigMap.
pub const DEFAULT_SOURCES: &str = "default-catalog-sources";
/// The user ConfigMaps: created once, never owned or overwritten.
pub const USER_MODEL_SOURCES: &str = "model-catalog-sources";
pub const USER_MCP_SOURCES: &str = "mcp-catalog-sources";
pub const USER_AGENT_SOURCES: &str = "agent-catalog-sources";
/// The ConfigMap an older Go operator owned for the default sources; deleted when it carries
/// the operator's created-by label (catalog_controller.go@08f64eb:270-280).
pub const LEGACY_DEFAULT_SOURCES: &str = "model-catalog-default-sources";
/// The PVC an older Go operator's database used; deleted when labelled (:355-362).
pub const LEGACY_POSTGRES_PVC: &str = "model-catalog-postgres";
/// The key of every sources ConfigMap.
pub const SOURCES_KEY: &str = "sources.yaml";
/// Role and RoleBinding letting every authenticated user read the Service.
pub const ROLE: &str = NAME;
pub const ROLE_BINDING: &str = "model-catalog-authenticated";
/// Role and RoleBinding for the platform's admin groups.
pub const ADMIN_ROLE: &str = "model-catalog-admin";
pub const ADMIN_ROLE_BINDING: &str = "model-catalog-admin-binding";
/// kube-rbac-proxy: its config ConfigMap, serving-cert Secret, auth-delegator binding.
pub const PROXY_CONFIG: &str = "model-catalog-kube-rbac-proxy-config";
pub const PROXY_TLS_SECRET: &str = "model-catalog-kube-rbac-proxy";
pub const AUTH_DELEGATOR: &str = "model-catalog-auth-delegator";
/// OpenShift Route and the NetworkPolicy admitting the router.
pub const ROUTE: &str = "model-catalog-https";
pub const ROUTE_NETWORK_POLICY: &str = "model-catalog-https-route";
/// Gateway mode: the HTTPRoute (in `HTTPROUTE_NAMESPACE`) and the shared ReferenceGrant
/// (create-if-absent, never updated or deleted).
pub const HTTP_ROUTE: &str = NAME;
pub const REFERENCE_GRANT: &str = "allow-gateway-httproutes";
/// The finalizer of the Catalog.
pub const FINALIZER: &str = "catalog.aihub.opendatahub.io/finalizer";
/// Label of ConfigMaps picked up as extra catalog sources.
pub const SOURCE_LABEL: &str = "opendatahub.io/catalog-source";
/// Label mapping the auth-delegator ClusterRoleBinding back to the Catalog's namespace.
pub const NAMESPACE_LABEL: &str = "modelregistry.opendatahub.io/namespace";
/// The operator, in `created-by` and `managed-by`.
pub const OPERATOR: &str = "model-registry-operator";

/// Which component an object belongs to (`component` and `app.kubernetes.io/component`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The catalog server and everything around it.
    Catalog,
    /// The PostgreSQL instance.
    Postgres,
}

impl Component {
    fn label(self) -> &'static str {
        match self {
            Component::Catalog => NAME,
            Component::Postgres => POSTGRES,
        }
    }
}

/// The metadata labels of every object (`applyLabels`).
pub fn labels(component: Component) -> BTreeMap<String, String> {
    label_map(&[
        ("app", NAME),
        ("component", component.label()),
        ("app.kubernetes.io/name", NAME),
        ("app.kubernetes.io/instance", NAME),
        ("app.kubernetes.io/component", component.label()),
        ("app.kubernetes.io/created-by", OPERATOR),
        ("app.kubernetes.io/part-of", "model-catalog"),
        ("app.kubernetes.io/managed-by", OPERATOR),
    ])
}

/// Selector (and pod labels) of the catalog Deployment, Service and NetworkPolicies
/// (T/catalog/catalog-deployment.yaml.tmpl@08f64eb:17-27).
pub fn selector() -> BTreeMap<String, String> {
    label_map(&[
        ("app", NAME),
        ("component", NAME),
        ("app.kubernetes.io/name", NAME),
    ])
}

/// Selector of the PostgreSQL Deployment and NetworkPolicy
/// (T/catalog/catalog-postgres-deployment.yaml.tmpl@08f64eb:17-29): `component` is the catalog's.
pub fn postgres_selector() -> BTreeMap<String, String> {
    label_map(&[
        ("app", NAME),
        ("component", NAME),
        ("app.kubernetes.io/name", POSTGRES),
    ])
}

/// Selector of the PostgreSQL Service (T/catalog/catalog-postgres-service.yaml.tmpl@08f64eb:24-26).
pub fn postgres_service_selector() -> BTreeMap<String, String> {
    label_map(&[("app", NAME), ("app.kubernetes.io/name", POSTGRES)])
}

/// Metadata of an object in the Catalog's namespace, owned by it: the one controller
/// reference to the Catalog (adoption replaces whatever references an object had,
/// catalog_controller.go@08f64eb:1242-1246).
pub fn owned(catalog: &Catalog, name: &str, component: Component) -> ObjectMeta {
    owner::owned_meta(catalog, name, labels(component))
}

/// Metadata of an object the Catalog does not own (user ConfigMaps, cluster-scoped or
/// cross-namespace objects, which the finalizer removes instead).
pub fn unowned(namespace: Option<String>, name: &str, component: Component) -> ObjectMeta {
    owner::unowned_meta(namespace, name, labels(component))
}
