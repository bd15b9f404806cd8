//! Data Science Gateway mode (the operator's `GATEWAY_DOMAIN`): the Gateway API HTTPRoute
//! `model-registry-<name>` in `HTTPROUTE_NAMESPACE`, attached to Gateway
//! `GATEWAY_NAMESPACE/GATEWAY_NAME`, sending `/model-registry/<name>/` (prefix rewritten to `/`)
//! to the registry Service's authenticating proxy port (the REST port without a proxy). The
//! route has no host names: the gateway's listener decides them; the registry's address is
//! `<GATEWAY_DOMAIN>/model-registry/<name>` (status host, Service annotation), as the Go operator.
//!
//! A route in another namespace than the Service needs a ReferenceGrant in the Service's
//! namespace. The Go operator creates one shared grant `allow-gateway-httproutes` for every
//! Service of the namespace and never removes it; here each registry has its own,
//! `model-registry-<name>-httproute`, allowing exactly its HTTPRoute's namespace to reference
//! exactly its Service, owned by the registry (so it goes with it, and an existing shared grant
//! of the Go operator is left alone).
use kube::ResourceExt;
use mro_api::ModelRegistry;
use mro_api::condition::model_registry::types;
use serde_json::json;

use super::input::{BuildInput, Desired, Unsupported};
use super::names;
use crate::capabilities::GATEWAY_API_GROUP;
use crate::kube_ext::child::Child;
use crate::modelregistry::kinds;

/// `model-registry-<name>`.
pub fn http_route_name(mr: &ModelRegistry) -> String {
    format!("model-registry-{}", mr.name_any())
}

/// `model-registry-<name>-httproute`.
pub fn reference_grant_name(mr: &ModelRegistry) -> String {
    format!("model-registry-{}-httproute", mr.name_any())
}

/// `/model-registry/<name>`: the path the gateway serves the registry under.
pub fn path(mr: &ModelRegistry) -> String {
    format!("/model-registry/{}", mr.name_any())
}

/// The registry's external address in gateway mode, `<GATEWAY_DOMAIN>/model-registry/<name>`,
/// when the HTTPRoute is built (gateway mode on and the Gateway API served).
pub fn external_address(input: &BuildInput) -> Option<String> {
    let domain = input.settings.gateway.active_domain()?;
    kinds::http_route_resource(input.caps)?;
    Some(format!("{domain}{}", path(input.mr)))
}

/// The Service port the route sends traffic to: the proxy's when one fronts the registry (the
/// Service exposes nothing else then), else the REST port.
fn backend_port(input: &BuildInput) -> i32 {
    let spec = &input.mr.spec;
    spec.kube_rbac_proxy
        .as_ref()
        .or(spec.oauth_proxy.as_ref())
        .map_or(spec.rest.port, |p| p.port)
}

/// The HTTPRoute (and ReferenceGrant) in gateway mode; a report when the cluster lacks the API.
pub fn build(input: &BuildInput, out: &mut Desired) {
    let Some(domain) = input.settings.gateway.active_domain() else {
        return;
    };
    let (Some(route_ar), Some(grant_ar)) = (
        kinds::http_route_resource(input.caps),
        kinds::reference_grant_resource(input.caps),
    ) else {
        out.unsupported.push(Unsupported {
            condition: types::HTTP_ROUTE_AVAILABLE,
            message: format!(
                "the operator's GATEWAY_DOMAIN is set, but this cluster does not serve \
                 {GATEWAY_API_GROUP}: no HTTPRoute is created"
            ),
        });
        return;
    };
    let mr = input.mr;
    let name = mr.name_any();
    let ns = mr.namespace().unwrap_or_default();
    let gw = &input.settings.gateway;
    let route_ns = gw.route_namespace();
    let mut meta = if route_ns == ns {
        names::owned_meta(mr, http_route_name(mr))
    } else {
        names::foreign_meta(mr, route_ns, http_route_name(mr))
    };
    // As the Go operator labels its routes (an adopted route keeps its selector-visible labels).
    meta.labels
        .get_or_insert_default()
        .insert("app.kubernetes.io/instance".into(), http_route_name(mr));
    out.children.push(Child::dynamic(
        route_ar,
        json!({
            "metadata": meta,
            "spec": {
                "parentRefs": [{
                    "group": GATEWAY_API_GROUP,
                    "kind": "Gateway",
                    "name": gw.gateway_name(),
                    "namespace": gw.gateway_namespace(),
                }],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": format!("{}/", path(mr))}}],
                    "filters": [{
                        "type": "URLRewrite",
                        "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                    }],
                    "backendRefs": [{
                        "group": "",
                        "kind": "Service",
                        "name": name,
                        "namespace": ns,
                        "port": backend_port(input),
                        "weight": 1,
                    }],
                }],
            },
        }),
    ));
    if route_ns != ns {
        out.children.push(Child::dynamic(
            grant_ar,
            json!({
                "metadata": names::owned_meta(mr, reference_grant_name(mr)),
                "spec": {
                    "from": [{"group": GATEWAY_API_GROUP, "kind": "HTTPRoute", "namespace": route_ns}],
                    "to": [{"group": "", "kind": "Service", "name": name}],
                },
            }),
        ));
    }
    out.hosts.push(format!("{domain}{}", path(mr)));
}

/// What an HTTPRoute's `status.parents` says about the Gateway it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteState {
    /// `Accepted` and `ResolvedRefs` are True for the Gateway.
    Accepted,
    /// The Gateway's controller has not reported on the route (yet).
    Pending,
    /// A condition is not True: `<type>: <reason>: <message>`, joined.
    Rejected(String),
    /// The API server refused the route (e.g. its namespace does not exist).
    NotApplied(String),
}

/// The registry's HTTPRoute as observed, for the `HTTPRouteAvailable` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRoute {
    /// `<namespace>/<name>` of the route.
    pub route: String,
    /// `<namespace>/<name>` of the Gateway it names.
    pub gateway: String,
    pub state: RouteState,
}

/// Reads the route's own status for the parent `gateway_namespace/gateway_name` (a route may be
/// reported on by several controllers, one entry each).
pub fn route_state(
    route: &serde_json::Value,
    gateway_name: &str,
    gateway_namespace: &str,
) -> RouteState {
    let route_ns = route["metadata"]["namespace"].as_str().unwrap_or_default();
    let parents = route["status"]["parents"].as_array();
    let ours = parents.into_iter().flatten().filter(|p| {
        let r = &p["parentRef"];
        r["name"].as_str() == Some(gateway_name)
            && r["namespace"].as_str().unwrap_or(route_ns) == gateway_namespace
            && r["kind"].as_str().unwrap_or("Gateway") == "Gateway"
    });
    let mut problems = Vec::new();
    let mut accepted = false;
    for parent in ours {
        let conditions = parent["conditions"].as_array().cloned().unwrap_or_default();
        let is_true = |t: &str| {
            conditions
                .iter()
                .any(|c| c["type"] == t && c["status"] == "True")
        };
        if is_true("Accepted") && is_true("ResolvedRefs") {
            accepted = true;
            continue;
        }
        for c in &conditions {
            if c["status"] != "True" {
                problems.push(format!(
                    "{}: {}: {}",
                    c["type"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                ));
            }
        }
        if conditions.is_empty() {
            problems.push("no conditions reported".into());
        }
    }
    if accepted {
        RouteState::Accepted
    } else if problems.is_empty() {
        RouteState::Pending
    } else {
        RouteState::Rejected(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::capabilities::{Capabilities, ROUTE_GROUP};
    use crate::settings::Settings;

    fn registry(spec: Value) -> ModelRegistry {
        let mut spec = spec;
        spec["postgres"] = json!({ "host": "db", "username": "u", "database": "d" });
        serde_json::from_value(json!({
            "apiVersion": "modelregistry.opendatahub.io/v1beta1",
            "kind": "ModelRegistry",
            "metadata": { "name": "reg", "namespace": "ns", "uid": "u-1" },
            "spec": spec,
        }))
        .unwrap()
    }

    fn gateway_settings(route_ns: Option<&str>) -> Settings {
        let mut s = Settings::for_tests();
        s.gateway.domain = Some("gw.example.com".into());
        s.gateway.httproute_namespace = route_ns.map(str::to_string);
        s
    }

    fn gateway_caps() -> Capabilities {
        Capabilities::from_groups([(GATEWAY_API_GROUP, vec!["v1", "v1beta1"])])
    }

    fn build_with(mr: &ModelRegistry, settings: &Settings, caps: &Capabilities) -> Desired {
        super::super::desired(&BuildInput {
            mr,
            settings,
            caps,
            cluster_domain: Some("apps.example.com".into()),
            ingress_gateway: None,
            oauth_cookie_secret: None,
            legacy_selector: false,
        })
        .expect("builds")
    }

    fn child<'a>(out: &'a Desired, kind: &str) -> Option<&'a Child> {
        out.children.iter().find(|c| c.resource.kind == kind)
    }

    #[test]
    fn http_route_attaches_to_the_configured_gateway_and_rewrites_the_registry_prefix() {
        let mr = registry(json!({ "rest": {}, "kubeRBACProxy": {} }));
        let mut settings = gateway_settings(Some("odh-apps"));
        settings.gateway.name = Some("my-gateway".into());
        settings.gateway.namespace = Some("gw-ns".into());
        let out = build_with(&mr, &settings, &gateway_caps());
        let route = child(&out, "HTTPRoute").expect("an HTTPRoute");
        assert_eq!(route.resource.api_version, "gateway.networking.k8s.io/v1");
        assert_eq!(route.name(), "model-registry-reg");
        assert_eq!(route.namespace().as_deref(), Some("odh-apps"));
        // Another namespace: no owner reference (the finalizer removes it), parent labels.
        assert!(route.object.metadata.owner_references.is_none());
        let l = route.object.labels();
        assert_eq!(l["modelregistry.opendatahub.io/parent-name"], "reg");
        assert_eq!(l["app.kubernetes.io/instance"], "model-registry-reg");
        assert_eq!(l["component"], "model-registry");
        assert_eq!(
            route.object.data["spec"],
            json!({
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                "name": "my-gateway", "namespace": "gw-ns"}],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/model-registry/reg/"}}],
                    "filters": [{"type": "URLRewrite", "urlRewrite": {"path":
                        {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                    "backendRefs": [{"group": "", "kind": "Service", "name": "reg",
                                     "namespace": "ns", "port": 8443, "weight": 1}],
                }],
            })
        );
        // No host names on the route: the gateway's listener has them.
        assert!(route.object.data["spec"].get("hostnames").is_none());

        let grant = child(&out, "ReferenceGrant").expect("a ReferenceGrant");
        assert_eq!(grant.name(), "model-registry-reg-httproute");
        assert_eq!(grant.namespace().as_deref(), Some("ns"));
        assert!(grant.object.metadata.owner_references.is_some());
        assert_eq!(
            grant.object.data["spec"],
            json!({
                "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "odh-apps"}],
                "to": [{"group": "", "kind": "Service", "name": "reg"}],
            })
        );
        assert!(
            out.hosts
                .contains(&"gw.example.com/model-registry/reg".to_string())
        );
        assert!(
            !out.unsupported
                .iter()
                .any(|u| u.condition == types::HTTP_ROUTE_AVAILABLE),
            "{:?}",
            out.unsupported
        );
    }

    #[test]
    fn defaults_are_the_go_operators_and_the_rest_port_without_a_proxy() {
        let mr = registry(json!({ "rest": {"port": 8081} }));
        let out = build_with(&mr, &gateway_settings(None), &gateway_caps());
        let route = child(&out, "HTTPRoute").unwrap();
        assert_eq!(
            route.namespace().as_deref(),
            Some("redhat-ods-applications")
        );
        let spec = &route.object.data["spec"];
        assert_eq!(spec["parentRefs"][0]["name"], "data-science-gateway");
        assert_eq!(spec["parentRefs"][0]["namespace"], "openshift-ingress");
        assert_eq!(spec["rules"][0]["backendRefs"][0]["port"], 8081);
    }

    #[test]
    fn a_route_next_to_the_service_is_owned_and_needs_no_grant() {
        let mr = registry(json!({ "rest": {} }));
        let out = build_with(&mr, &gateway_settings(Some("ns")), &gateway_caps());
        let route = child(&out, "HTTPRoute").unwrap();
        assert!(route.object.metadata.owner_references.is_some());
        assert!(child(&out, "ReferenceGrant").is_none());
    }

    #[test]
    fn v1beta1_only_clusters_get_v1beta1_objects() {
        let mr = registry(json!({ "rest": {} }));
        let caps = Capabilities::from_groups([(GATEWAY_API_GROUP, vec!["v1beta1"])]);
        let out = build_with(&mr, &gateway_settings(Some("apps")), &caps);
        for kind in ["HTTPRoute", "ReferenceGrant"] {
            assert_eq!(
                child(&out, kind).unwrap().resource.api_version,
                "gateway.networking.k8s.io/v1beta1"
            );
        }
        // With v1 served, the route is v1; the grant stays v1beta1.
        let out = build_with(&mr, &gateway_settings(Some("apps")), &gateway_caps());
        assert_eq!(
            child(&out, "ReferenceGrant").unwrap().resource.api_version,
            "gateway.networking.k8s.io/v1beta1"
        );
    }

    #[test]
    fn without_the_gateway_api_nothing_is_built_and_the_condition_says_why() {
        let mr = registry(json!({ "rest": {} }));
        let out = build_with(
            &mr,
            &gateway_settings(Some("apps")),
            &Capabilities::vanilla(),
        );
        assert!(child(&out, "HTTPRoute").is_none());
        assert_eq!(out.unsupported.len(), 1);
        assert_eq!(out.unsupported[0].condition, types::HTTP_ROUTE_AVAILABLE);
        assert!(out.unsupported[0].message.contains(GATEWAY_API_GROUP));
        // No address is claimed that nothing serves.
        assert!(!out.hosts.iter().any(|h| h.contains("/model-registry/")));
    }

    #[test]
    fn without_a_gateway_domain_there_is_no_gateway_mode() {
        let mr = registry(json!({ "rest": {} }));
        let out = build_with(&mr, &Settings::for_tests(), &gateway_caps());
        assert!(child(&out, "HTTPRoute").is_none());
        assert!(out.unsupported.is_empty());
    }

    #[test]
    fn the_route_status_decides_acceptance_for_our_gateway_only() {
        let route = |parents: Value| json!({"metadata": {"namespace": "apps"}, "status": {"parents": parents}});
        let ok = json!([{"type": "Accepted", "status": "True"}, {"type": "ResolvedRefs", "status": "True"}]);
        let ours = json!({"name": "gw", "namespace": "gw-ns"});
        assert_eq!(route_state(&json!({}), "gw", "gw-ns"), RouteState::Pending);
        assert_eq!(
            route_state(
                &route(json!([{"parentRef": ours, "conditions": ok}])),
                "gw",
                "gw-ns"
            ),
            RouteState::Accepted
        );
        // Another Gateway's verdict says nothing about ours.
        let other = json!({"name": "other", "namespace": "gw-ns"});
        assert_eq!(
            route_state(
                &route(json!([{"parentRef": other, "conditions": ok}])),
                "gw",
                "gw-ns"
            ),
            RouteState::Pending
        );
        let refused = json!([{"parentRef": ours, "conditions": [
            {"type": "Accepted", "status": "True"},
            {"type": "ResolvedRefs", "status": "False", "reason": "RefNotPermitted", "message": "no grant"}]}]);
        assert_eq!(
            route_state(&route(refused), "gw", "gw-ns"),
            RouteState::Rejected("ResolvedRefs: RefNotPermitted: no grant".into())
        );
    }

    #[test]
    fn openshift_routes_are_kept_alongside_the_http_route() {
        let mr = registry(json!({ "rest": {}, "kubeRBACProxy": {} }));
        let caps = Capabilities::from_groups([
            (GATEWAY_API_GROUP, vec!["v1", "v1beta1"]),
            (ROUTE_GROUP, vec!["v1"]),
        ]);
        let out = build_with(&mr, &gateway_settings(Some("apps")), &caps);
        assert!(child(&out, "HTTPRoute").is_some());
        assert!(
            out.children
                .iter()
                .any(|c| c.resource.kind == "Route" && c.name() == "reg-https")
        );
    }
}
