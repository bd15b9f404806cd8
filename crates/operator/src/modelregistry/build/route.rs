//! OpenShift Routes, one shape for every Route the operator creates (the plain REST Route, the
//! proxies' Routes, the Istio gateway's Route), and the DNS domain their host names use. Apart
//! from the builders that use it, so those builders do not depend on one another.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ApiResource;
use serde_json::{Value, json};

use super::input::BuildInput;
use crate::capabilities::ROUTE_GROUP;
use crate::kube_ext::child::Child;
use crate::modelregistry::kinds;

/// `route.openshift.io/v1` `Route`.
pub fn route_resource() -> ApiResource {
    kinds::platform(ROUTE_GROUP, "v1", "Route", "routes")
}

/// The DNS domain for externally visible host names: the one the spec gives, else the operator's
/// `DEFAULT_DOMAIN`, else the cluster's ingress domain. Empty strings count as unset, since a
/// kustomize replacement that found nothing leaves `""` rather than dropping the field.
pub fn domain(input: &BuildInput, explicit: Option<&str>) -> Option<String> {
    [
        explicit,
        input.settings.defaults.domain.as_deref(),
        input.cluster_domain.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find(|d| !d.is_empty())
    .map(str::to_string)
}

/// What a Route points at and how it terminates TLS.
#[derive(Clone, Debug)]
pub struct RouteSpec<'a> {
    /// Fixed host name; `None` lets the router generate one.
    pub host: Option<&'a str>,
    /// Service the Route sends traffic to (in the Route's namespace).
    pub service: &'a str,
    /// Service port: a port name, or a number.
    pub target_port: Value,
    /// `edge`, `reencrypt` or `passthrough`; `None` for plain HTTP.
    pub termination: Option<&'static str>,
}

/// A Route child. TLS Routes redirect plain HTTP to HTTPS rather than serving it, since every
/// TLS Route here fronts an authenticated endpoint and a token must not travel in clear text.
pub fn route(meta: ObjectMeta, spec: &RouteSpec) -> Child {
    let mut body = json!({
        "to": { "kind": "Service", "name": spec.service, "weight": 100 },
        "port": { "targetPort": spec.target_port },
        "wildcardPolicy": "None",
    });
    if let Some(host) = spec.host {
        body["host"] = host.into();
    }
    if let Some(termination) = spec.termination {
        body["tls"] = json!({
            "termination": termination,
            "insecureEdgeTerminationPolicy": "Redirect",
        });
    }
    let meta = serde_json::to_value(meta).expect("ObjectMeta serializes");
    Child::dynamic(route_resource(), json!({ "metadata": meta, "spec": body }))
}
