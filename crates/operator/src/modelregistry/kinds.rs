//! The kinds of children a registry may have, given what the cluster serves (used to prune).
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{ApiResource, GroupVersionKind};

use crate::capabilities::{
    AUTHORINO_GROUP, Capabilities, GATEWAY_API_GROUP, ISTIO_NETWORKING_GROUP, ISTIO_SECURITY_GROUP,
    ROUTE_GROUP, USER_GROUP,
};
use crate::kube_ext::child::ManagedKind;

fn typed<K: kube::Resource<DynamicType = ()>>(namespaced: bool) -> ManagedKind {
    ManagedKind {
        resource: ApiResource::erase::<K>(&()),
        namespaced,
        // The registry's core children all live in its namespace (only platform kinds, e.g.
        // gateway Routes, go elsewhere).
        in_parent_namespace: namespaced,
    }
}

/// An ApiResource for a platform kind at a version.
pub fn platform(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

pub fn route(caps: &Capabilities) -> Option<ApiResource> {
    caps.openshift()
        .then(|| platform(ROUTE_GROUP, "v1", "Route", "routes"))
}

pub fn group(caps: &Capabilities) -> Option<ApiResource> {
    caps.openshift_users()
        .then(|| platform(USER_GROUP, "v1", "Group", "groups"))
}

pub fn istio_networking(caps: &Capabilities, kind: &str, plural: &str) -> Option<ApiResource> {
    let v = caps.version(ISTIO_NETWORKING_GROUP, &["v1", "v1beta1", "v1alpha3"])?;
    Some(platform(ISTIO_NETWORKING_GROUP, v, kind, plural))
}

pub fn authorization_policy(caps: &Capabilities) -> Option<ApiResource> {
    let v = caps.version(ISTIO_SECURITY_GROUP, &["v1", "v1beta1"])?;
    Some(platform(
        ISTIO_SECURITY_GROUP,
        v,
        "AuthorizationPolicy",
        "authorizationpolicies",
    ))
}

pub fn auth_config(caps: &Capabilities) -> Option<ApiResource> {
    let v = caps.version(AUTHORINO_GROUP, &["v1beta3", "v1beta2"])?;
    Some(platform(AUTHORINO_GROUP, v, "AuthConfig", "authconfigs"))
}

pub fn http_route_resource(caps: &Capabilities) -> Option<ApiResource> {
    let v = caps.version(GATEWAY_API_GROUP, &["v1", "v1beta1"])?;
    Some(platform(GATEWAY_API_GROUP, v, "HTTPRoute", "httproutes"))
}

/// ReferenceGrant at v1beta1, as the Go operator uses it: every Gateway API release since it
/// appeared serves it there (the group's versions say nothing about which kinds each serves).
pub fn reference_grant_resource(caps: &Capabilities) -> Option<ApiResource> {
    let v = caps.version(GATEWAY_API_GROUP, &["v1beta1"])?;
    Some(platform(
        GATEWAY_API_GROUP,
        v,
        "ReferenceGrant",
        "referencegrants",
    ))
}

/// Every kind a registry's children can have on this cluster.
pub fn managed(caps: &Capabilities) -> Vec<ManagedKind> {
    let mut kinds = vec![
        typed::<ServiceAccount>(true),
        typed::<Service>(true),
        typed::<Deployment>(true),
        typed::<Role>(true),
        typed::<RoleBinding>(true),
        typed::<ConfigMap>(true),
        typed::<Secret>(true),
        typed::<NetworkPolicy>(true),
        typed::<ClusterRoleBinding>(false),
    ];
    let platform_namespaced = [
        route(caps),
        istio_networking(caps, "VirtualService", "virtualservices"),
        istio_networking(caps, "DestinationRule", "destinationrules"),
        istio_networking(caps, "Gateway", "gateways"),
        authorization_policy(caps),
        auth_config(caps),
    ];
    kinds.extend(
        platform_namespaced
            .into_iter()
            .flatten()
            .map(|resource| ManagedKind {
                resource,
                namespaced: true,
                in_parent_namespace: false,
            }),
    );
    // The HTTPRoute lives in HTTPROUTE_NAMESPACE; the ReferenceGrant next to the Service.
    for (resource, in_parent_namespace) in [
        (http_route_resource(caps), false),
        (reference_grant_resource(caps), true),
    ] {
        if let Some(resource) = resource {
            kinds.push(ManagedKind {
                resource,
                namespaced: true,
                in_parent_namespace,
            });
        }
    }
    if let Some(resource) = group(caps) {
        kinds.push(ManagedKind {
            resource,
            namespaced: false,
            in_parent_namespace: false,
        });
    }
    kinds
}
