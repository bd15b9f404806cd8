//! Minimal CRDs (open schemas) for optional platform APIs, so code that depends on OpenShift, Istio,
//! Authorino or the Gateway API can be tested on a plain control plane. They accept any object of the
//! kind; no controller acts on them (tests play that part where needed, e.g. admitting a Route).
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;

use crate::cluster::install_crds;

/// One optional API group (or a set of kinds that ship together).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlatformApi {
    /// `route.openshift.io` Route.
    OpenShiftRoute,
    /// `user.openshift.io` Group.
    OpenShiftUser,
    /// `config.openshift.io` Ingress (cluster ingress config with the default domain).
    OpenShiftConfig,
    /// `networking.istio.io` Gateway, VirtualService, DestinationRule; `security.istio.io` AuthorizationPolicy.
    Istio,
    /// `authorino.kuadrant.io` AuthConfig.
    Authorino,
    /// `gateway.networking.k8s.io` HTTPRoute and ReferenceGrant.
    GatewayApi,
    /// `services.platform.opendatahub.io` Auth (cluster-scoped; the platform's admin groups).
    PlatformAuth,
}

struct Kind {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    /// Served versions; the last one is stored.
    versions: &'static [&'static str],
}

fn kinds(api: PlatformApi) -> Vec<Kind> {
    match api {
        PlatformApi::OpenShiftRoute => vec![Kind {
            group: "route.openshift.io",
            kind: "Route",
            plural: "routes",
            namespaced: true,
            versions: &["v1"],
        }],
        PlatformApi::OpenShiftUser => vec![Kind {
            group: "user.openshift.io",
            kind: "Group",
            plural: "groups",
            namespaced: false,
            versions: &["v1"],
        }],
        PlatformApi::OpenShiftConfig => vec![Kind {
            group: "config.openshift.io",
            kind: "Ingress",
            plural: "ingresses",
            namespaced: false,
            versions: &["v1"],
        }],
        PlatformApi::Istio => {
            let net: &'static [&'static str] = &["v1alpha3", "v1beta1", "v1"];
            vec![
                Kind {
                    group: "networking.istio.io",
                    kind: "Gateway",
                    plural: "gateways",
                    namespaced: true,
                    versions: net,
                },
                Kind {
                    group: "networking.istio.io",
                    kind: "VirtualService",
                    plural: "virtualservices",
                    namespaced: true,
                    versions: net,
                },
                Kind {
                    group: "networking.istio.io",
                    kind: "DestinationRule",
                    plural: "destinationrules",
                    namespaced: true,
                    versions: net,
                },
                Kind {
                    group: "security.istio.io",
                    kind: "AuthorizationPolicy",
                    plural: "authorizationpolicies",
                    namespaced: true,
                    versions: &["v1beta1", "v1"],
                },
            ]
        }
        PlatformApi::Authorino => vec![Kind {
            group: "authorino.kuadrant.io",
            kind: "AuthConfig",
            plural: "authconfigs",
            namespaced: true,
            versions: &["v1beta2", "v1beta3"],
        }],
        PlatformApi::GatewayApi => vec![
            Kind {
                group: "gateway.networking.k8s.io",
                kind: "HTTPRoute",
                plural: "httproutes",
                namespaced: true,
                versions: &["v1beta1", "v1"],
            },
            Kind {
                group: "gateway.networking.k8s.io",
                kind: "ReferenceGrant",
                plural: "referencegrants",
                namespaced: true,
                versions: &["v1beta1"],
            },
        ],
        PlatformApi::PlatformAuth => vec![Kind {
            group: "services.platform.opendatahub.io",
            kind: "Auth",
            plural: "auths",
            namespaced: false,
            versions: &["v1alpha1"],
        }],
    }
}

fn crd(k: &Kind) -> CustomResourceDefinition {
    let last = k.versions.len() - 1;
    let versions: Vec<_> = k
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::json!({
                "name": v, "served": true, "storage": i == last,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.{}", k.plural, k.group),
            // Groups under k8s.io are protected: the API server wants this approval annotation.
            "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/891"}
        },
        "spec": {
            "group": k.group,
            "names": {"kind": k.kind, "plural": k.plural, "singular": k.kind.to_lowercase(), "listKind": format!("{}List", k.kind)},
            "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
            "versions": versions,
        }
    }))
    .expect("valid CRD")
}

/// The CRDs that make up `apis`.
pub fn crds(apis: &[PlatformApi]) -> Vec<CustomResourceDefinition> {
    apis.iter()
        .flat_map(|a| kinds(*a))
        .map(|k| crd(&k))
        .collect()
}

/// Installs the platform APIs and waits until they are served.
pub async fn install(client: &Client, apis: &[PlatformApi]) -> anyhow::Result<()> {
    if apis.is_empty() {
        return Ok(());
    }
    install_crds(client, &crds(apis)).await
}
