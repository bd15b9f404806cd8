//! Ways in from outside the cluster: on OpenShift the reencrypt Route `model-catalog-https` and
//! the NetworkPolicy admitting the router to the proxy port; in gateway mode (OpenShift and
//! `GATEWAY_DOMAIN`) the HTTPRoute `model-catalog` in `HTTPROUTE_NAMESPACE` and the shared
//! ReferenceGrant `allow-gateway-httproutes` it needs.
//!
//! Facts (T/ = internal/controller/config/templates/, Go operator HEAD 08f64eb):
//! T/catalog/catalog-kube-rbac-proxy-https-route.yaml.tmpl:1-26,
//! T/catalog/catalog-kube-rbac-proxy-network-policy.yaml.tmpl:13-35,
//! T/catalog/catalog-gateway-httproute.yaml.tmpl:1-40, T/gateway/gateway-reference-grant.yaml.tmpl:1-19;
//! gateway mode and order: internal/controller/catalog_controller.go:403-420.
//!
//! Route and HTTPRoute are not typed in k8s-openapi: they are built as JSON objects with
//! `apiVersion` and `kind`, for the applier's dynamic path.
use kube::ResourceExt;
use serde_json::{Value, json};

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::deployment::PROXY_PORT;
use super::input::CatalogInput;
use super::names::{self, Component};

/// The Gateway API group.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// Route `model-catalog-https` to the Service's `https-api` port, reencrypting; host
/// `model-catalog.<domain>` when the domain is known (else OpenShift picks one).
pub fn route(input: &CatalogInput) -> Value {
    let mut spec = json!({
        "to": {"kind": "Service", "name": names::NAME},
        "port": {"targetPort": "https-api"},
        "tls": {"termination": "reencrypt"},
        "wildcardPolicy": "None",
    });
    if let Some(d) = input.domain.as_deref().filter(|d| !d.is_empty()) {
        spec["host"] = json!(format!("{}.{d}", names::NAME));
    }
    json!({
        "apiVersion": "route.openshift.io/v1",
        "kind": "Route",
        "metadata": names::owned(input.catalog, names::ROUTE, Component::Catalog),
        "spec": spec,
    })
}

/// NetworkPolicy `model-catalog-https-route`: TCP 8443 from the router's namespaces
/// (`network.openshift.io/policy-group=ingress`) and generated namespaces.
pub fn route_network_policy(input: &CatalogInput) -> NetworkPolicy {
    serde_json::from_value(json!({
        "metadata": names::owned(input.catalog, names::ROUTE_NETWORK_POLICY, Component::Catalog),
        "spec": {
            "ingress": [{
                "from": [
                    {"namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "ingress"}}},
                    {"namespaceSelector": {"matchLabels": {"opendatahub.io/generated-namespace": "true"}}},
                ],
                "ports": [{"protocol": "TCP", "port": PROXY_PORT}],
            }],
            "podSelector": {"matchLabels": names::selector()},
            "policyTypes": ["Ingress"],
        },
    }))
    .expect("a valid NetworkPolicy")
}

/// Gateway mode is on: OpenShift and `GATEWAY_DOMAIN` set.
pub fn gateway_mode(input: &CatalogInput) -> bool {
    input.openshift && input.settings.gateway.active_domain().is_some()
}

/// HTTPRoute `model-catalog` (in `HTTPROUTE_NAMESPACE`, not owned: the finalizer deletes it):
/// `/catalog/` rewritten to `/`, to the Service's proxy port. No host names: the Gateway's
/// listener decides them.
pub fn http_route(input: &CatalogInput) -> Value {
    let gw = &input.settings.gateway;
    let ns = input.catalog.namespace().unwrap_or_default();
    json!({
        "apiVersion": format!("{GATEWAY_API_GROUP}/v1"),
        "kind": "HTTPRoute",
        "metadata": names::unowned(Some(gw.route_namespace().to_string()), names::HTTP_ROUTE, Component::Catalog),
        "spec": {
            "parentRefs": [{"group": GATEWAY_API_GROUP, "kind": "Gateway",
                            "name": gw.gateway_name(), "namespace": gw.gateway_namespace()}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/catalog/"}}],
                "filters": [{"type": "URLRewrite",
                             "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                "backendRefs": [{"group": "", "kind": "Service", "name": names::NAME,
                                 "namespace": ns, "port": PROXY_PORT, "weight": 1}],
            }],
        },
    })
}

/// ReferenceGrant `allow-gateway-httproutes` in the Catalog's namespace: HTTPRoutes of
/// `HTTPROUTE_NAMESPACE` may reference the namespace's Services. Shared with the registries of
/// the namespace, so created only when absent, never updated, owned or deleted.
pub fn reference_grant(input: &CatalogInput) -> Value {
    json!({
        "apiVersion": format!("{GATEWAY_API_GROUP}/v1beta1"),
        "kind": "ReferenceGrant",
        "metadata": {
            "name": names::REFERENCE_GRANT,
            "namespace": input.catalog.namespace(),
            "labels": {
                "component": "model-registry",
                "app.kubernetes.io/component": "model-registry",
                "app.kubernetes.io/created-by": names::OPERATOR,
                "app.kubernetes.io/part-of": "model-registry",
                "app.kubernetes.io/managed-by": names::OPERATOR,
            },
        },
        "spec": {
            "from": [{"group": GATEWAY_API_GROUP, "kind": "HTTPRoute",
                      "namespace": input.settings.gateway.route_namespace()}],
            "to": [{"group": "", "kind": "Service"}],
        },
    })
}
