//! Who reaches the catalog and how: ServiceAccount, Service, the Role and RoleBinding letting
//! every authenticated user through kube-rbac-proxy, the admin Role and RoleBinding for the
//! platform's admin groups, the proxy's authorization config and its auth-delegator binding.
//!
//! Facts (T/ = internal/controller/config/templates/ at the Go operator's HEAD 08f64eb):
//! T/catalog/catalog-serviceaccount.yaml.tmpl:1-14, catalog-service.yaml.tmpl:15-40,
//! catalog-role.yaml.tmpl:14-32, catalog-rolebinding.yaml.tmpl:1-13,
//! catalog-admin-role.yaml.tmpl:14-27, catalog-admin-rolebinding.yaml.tmpl:14-25 (the binding
//! is deleted when there are no groups, internal/controller/catalog_controller.go:1017-1048),
//! catalog-kube-rbac-proxy-config.yaml.tmpl:16-23, catalog-kube-rbac-proxy-role-binding.yaml.tmpl:1-22.
//!
//! One deliberate difference: without a known domain (no `DEFAULT_DOMAIN`, no OpenShift
//! ingress domain) the Go template writes the address `model-catalog.:443`; here the
//! external-address annotation is left out instead.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::ResourceExt;
use serde_json::json;

use super::deployment::PROXY_PORT;
use super::input::CatalogInput;
use super::names::{self, Component};

/// Annotation with the address the dashboard shows.
pub const EXTERNAL_ADDRESS_ANNOTATION: &str = "routing.opendatahub.io/external-address-rest";
/// Annotation asking OpenShift's service CA for the proxy's serving certificate.
pub const SERVING_CERT_ANNOTATION: &str = "service.beta.openshift.io/serving-cert-secret-name";

/// The ServiceAccount the pods run as.
pub fn service_account(input: &CatalogInput) -> ServiceAccount {
    ServiceAccount {
        metadata: names::owned(input.catalog, names::NAME, Component::Catalog),
        ..ServiceAccount::default()
    }
}

/// The external address: `<GATEWAY_DOMAIN>/catalog` in gateway mode, else
/// `model-catalog.<domain>:443` when the domain is known.
pub fn external_address(input: &CatalogInput) -> Option<String> {
    if let Some(gw) = input.settings.gateway.active_domain() {
        return Some(format!("{gw}/catalog"));
    }
    input
        .domain
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|d| format!("{}.{d}:443", names::NAME))
}

/// The Service: port `https-api` 8443 (the proxy), serving-cert and address annotations.
pub fn service(input: &CatalogInput) -> Service {
    let mut meta = names::owned(input.catalog, names::NAME, Component::Catalog);
    let mut annotations = BTreeMap::from([(
        SERVING_CERT_ANNOTATION.to_string(),
        names::PROXY_TLS_SECRET.to_string(),
    )]);
    if let Some(addr) = external_address(input) {
        annotations.insert(EXTERNAL_ADDRESS_ANNOTATION.into(), addr);
    }
    meta.annotations = Some(annotations);
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {
            "ports": [{"name": "https-api", "port": PROXY_PORT, "protocol": "TCP", "appProtocol": "https"}],
            "selector": names::selector(),
        },
    }))
    .expect("a valid Service")
}

fn annotated(
    mut meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    display: &str,
    description: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    meta.annotations = Some(BTreeMap::from([
        ("openshift.io/display-name".to_string(), display.to_string()),
        (
            "openshift.io/description".to_string(),
            description.to_string(),
        ),
    ]));
    meta
}

/// Role `model-catalog`: `get` on the Service and Endpoints `model-catalog` (what
/// kube-rbac-proxy checks).
pub fn role(input: &CatalogInput) -> Role {
    let meta = annotated(
        names::owned(input.catalog, names::ROLE, Component::Catalog),
        "Model catalog User",
        "Can access model catalog",
    );
    serde_json::from_value(json!({
        "metadata": meta,
        "rules": [
            {"apiGroups": [""], "resourceNames": [names::NAME], "resources": ["services"], "verbs": ["get"]},
            {"apiGroups": [""], "resourceNames": [names::NAME], "resources": ["endpoints"], "verbs": ["get"]},
        ],
    }))
    .expect("a valid Role")
}

/// RoleBinding `model-catalog-authenticated`: the Role for Group `system:authenticated`.
pub fn role_binding(input: &CatalogInput) -> RoleBinding {
    serde_json::from_value(json!({
        "metadata": names::owned(input.catalog, names::ROLE_BINDING, Component::Catalog),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names::ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}],
    }))
    .expect("a valid RoleBinding")
}

/// Role `model-catalog-admin`: read and edit ConfigMaps and Secrets of the namespace.
pub fn admin_role(input: &CatalogInput) -> Role {
    let meta = annotated(
        names::owned(input.catalog, names::ADMIN_ROLE, Component::Catalog),
        "Model Catalog Admin",
        "Admin access to model catalog ConfigMaps and Secrets",
    );
    serde_json::from_value(json!({
        "metadata": meta,
        "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"],
                   "verbs": ["get", "list", "watch", "update", "patch"]}],
    }))
    .expect("a valid Role")
}

/// RoleBinding `model-catalog-admin-binding` for the platform Auth's `adminGroups`; `None`
/// when there are none (the controller deletes an existing binding then).
pub fn admin_role_binding(input: &CatalogInput) -> Option<RoleBinding> {
    if input.admin_groups.is_empty() {
        return None;
    }
    let meta = annotated(
        names::owned(input.catalog, names::ADMIN_ROLE_BINDING, Component::Catalog),
        "Model Catalog Admin Binding",
        "Binds admin groups to model catalog admin role",
    );
    let subjects: Vec<_> = input
        .admin_groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    Some(
        serde_json::from_value(json!({
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names::ADMIN_ROLE},
            "subjects": subjects,
        }))
        .expect("a valid RoleBinding"),
    )
}

/// kube-rbac-proxy's config: a request passes when its user may `get` Service `model-catalog`
/// in the Catalog's namespace (no subresource).
pub fn proxy_config(input: &CatalogInput) -> ConfigMap {
    let ns = input.catalog.namespace().unwrap_or_default();
    let doc = format!(
        "authorization:\n  resourceAttributes:\n    apiVersion: v1\n    resource: services\n    verb: get\n    namespace: {ns}\n    name: {}\n",
        names::NAME
    );
    ConfigMap {
        metadata: names::owned(input.catalog, names::PROXY_CONFIG, Component::Catalog),
        data: Some(BTreeMap::from([("config-file.yaml".to_string(), doc)])),
        ..ConfigMap::default()
    }
}

/// ClusterRoleBinding `model-catalog-auth-delegator`: `system:auth-delegator` for the
/// ServiceAccount, so the proxy can review tokens and access. Cluster-scoped, so not owned
/// (the finalizer deletes it); labelled with the Catalog's namespace for the watch mapping.
pub fn auth_delegator(input: &CatalogInput) -> ClusterRoleBinding {
    let ns = input.catalog.namespace().unwrap_or_default();
    let mut meta = names::unowned(None, names::AUTH_DELEGATOR, Component::Catalog);
    meta.labels
        .get_or_insert_default()
        .insert(names::NAMESPACE_LABEL.into(), ns.clone());
    serde_json::from_value(json!({
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": names::NAME, "namespace": ns}],
    }))
    .expect("a valid ClusterRoleBinding")
}
