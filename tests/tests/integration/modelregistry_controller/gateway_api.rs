//! Data Science Gateway mode (`GATEWAY_DOMAIN`) on a control plane serving the Gateway API: the
//! registry gets HTTPRoute `model-registry-<name>` in `HTTPROUTE_NAMESPACE` attached to the
//! configured Gateway, a ReferenceGrant next to its Service, the gateway address on its Service
//! and in its hosts, and an `HTTPRouteAvailable` condition that follows the route's own status
//! (the test plays the Gateway controller). Deleting the registry removes the route from the
//! other namespace. Without the Gateway API, the condition says so and nothing is created.
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams};
use mro_api::ModelRegistry;
use mro_tests::cluster::{self, Flavour};
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::openshift::ensure_ingress_config;
use super::{Env, postgres_sample};

pub(super) const GATEWAY_DOMAIN: &str = "gateway.apps.example.com";
const GATEWAY_NAME: &str = "test-gateway";
const GATEWAY_NAMESPACE: &str = "test-gateway-ns";
const WAIT: Duration = Duration::from_secs(180);

/// An operator in gateway mode, its HTTPRoutes in a namespace of their own.
pub(super) async fn gateway_env(flavour: Flavour, prefix: &str) -> (Env<'static>, String) {
    let cluster = cluster::shared(flavour).await;
    let route_ns = cluster.namespace("mr-gw-routes").await.unwrap();
    let rn = route_ns.clone();
    let env = Env::with_settings(cluster, prefix, move |s| {
        s.gateway.domain = Some(GATEWAY_DOMAIN.into());
        s.gateway.name = Some(GATEWAY_NAME.into());
        s.gateway.namespace = Some(GATEWAY_NAMESPACE.into());
        s.gateway.httproute_namespace = Some(rn);
    })
    .await;
    ensure_ingress_config(&env).await;
    (env, route_ns)
}

/// Waits until the registry's `HTTPRouteAvailable` has `status` and its message contains `part`.
async fn wait_route_condition(env: &Env<'_>, name: &str, status: &str, part: &str) -> String {
    let api = env.api::<ModelRegistry>();
    let what = format!("{name} HTTPRouteAvailable={status} containing {part:?}");
    eventually_within(&what, WAIT, || async {
        api.get(name)
            .await
            .ok()
            .and_then(|mr| mr.status)
            .is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "HTTPRouteAvailable"
                        && c.status.as_str() == status
                        && c.message.contains(part)
                })
            })
    })
    .await;
    let mr = env.registry(name).await;
    let c = mr.status.unwrap().conditions;
    c.into_iter()
        .find(|c| c.type_ == "HTTPRouteAvailable")
        .unwrap()
        .message
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_mode_routes_the_registry_through_the_configured_gateway() {
    let (env, route_ns) = gateway_env(Flavour::OpenShiftIstio, "mr-gwapi").await;
    let name = "gwapi-reg";
    let mut mr = postgres_sample(name);
    mr["spec"]["kubeRBACProxy"] = json!({});
    env.create_registry(mr).await;

    let routes = env.dynamic(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
        Some(&route_ns),
    );
    let grants = env.dynamic(
        "gateway.networking.k8s.io",
        "v1beta1",
        "ReferenceGrant",
        "referencegrants",
        Some(&env.ns),
    );
    let route_name = format!("model-registry-{name}");
    eventually_within("the HTTPRoute and its ReferenceGrant", WAIT, || async {
        routes.get_opt(&route_name).await.ok().flatten().is_some()
            && grants
                .get_opt(&format!("model-registry-{name}-httproute"))
                .await
                .ok()
                .flatten()
                .is_some()
    })
    .await;
    let route = routes.get(&route_name).await.unwrap();
    assert_eq!(
        route.data["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                "name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}])
    );
    assert_eq!(
        route.data["spec"]["rules"][0]["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": name, "namespace": env.ns,
                "port": 8443, "weight": 1}])
    );
    assert_eq!(
        route.data["spec"]["rules"][0]["matches"][0]["path"]["value"],
        format!("/model-registry/{name}/")
    );
    let grant = grants
        .get(&format!("model-registry-{name}-httproute"))
        .await
        .unwrap();
    assert_eq!(
        grant.data["spec"],
        json!({"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": route_ns}],
               "to": [{"group": "", "kind": "Service", "name": name}]})
    );
    let owners = grant.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].kind, "ModelRegistry");

    // The address the dashboard reads, and the registry's hosts.
    let address = format!("{GATEWAY_DOMAIN}/model-registry/{name}");
    let services = env.api::<Service>();
    eventually_within("the Service's gateway address", WAIT, || async {
        services
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| {
                s.metadata
                    .annotations
                    .unwrap_or_default()
                    .get("routing.opendatahub.io/external-address-rest")
                    == Some(&address)
            })
    })
    .await;

    // No Gateway controller has spoken yet.
    wait_route_condition(&env, name, "False", "not yet accepted").await;
    let hosts = env.registry(name).await.status.unwrap().hosts;
    assert!(hosts.contains(&address), "{hosts:?}");

    // The Gateway controller accepts the route: the condition follows.
    let set_parents = |conditions: serde_json::Value| {
        json!({"status": {"parents": [{
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                          "name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
            "controllerName": "example.com/gateway-controller",
            "conditions": conditions}]}})
    };
    let now = "2026-01-01T00:00:00Z";
    let cond = |t: &str, s: &str, r: &str| {
        json!({"type": t, "status": s, "reason": r, "message": format!("{t} {r}"),
               "lastTransitionTime": now, "observedGeneration": 1})
    };
    routes
        .patch_status(
            &route_name,
            &PatchParams::default(),
            &Patch::Merge(&set_parents(json!([
                cond("Accepted", "True", "Accepted"),
                cond("ResolvedRefs", "True", "ResolvedRefs")
            ]))),
        )
        .await
        .unwrap();
    wait_route_condition(&env, name, "True", "is accepted by Gateway").await;

    // And refuses it: the route's own reason reaches the registry.
    routes
        .patch_status(
            &route_name,
            &PatchParams::default(),
            &Patch::Merge(&set_parents(json!([
                cond("Accepted", "True", "Accepted"),
                cond("ResolvedRefs", "False", "RefNotPermitted")
            ]))),
        )
        .await
        .unwrap();
    let msg = wait_route_condition(&env, name, "False", "RefNotPermitted").await;
    assert!(msg.contains("ResolvedRefs"), "{msg}");

    // Deleting the registry removes the route from the other namespace.
    env.api::<ModelRegistry>()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    eventually_within(
        "the HTTPRoute is removed with the registry",
        WAIT,
        || async { matches!(routes.get_opt(&route_name).await, Ok(None)) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_mode_without_the_gateway_api_says_so_and_keeps_the_route_address() {
    let (env, route_ns) = gateway_env(Flavour::OpenShift, "mr-gwapi-none").await;
    let name = "gwapi-none";
    let mut mr = postgres_sample(name);
    mr["spec"]["kubeRBACProxy"] = json!({});
    env.create_registry(mr).await;
    let msg = wait_route_condition(&env, name, "False", "gateway.networking.k8s.io").await;
    assert!(msg.contains("GATEWAY_DOMAIN"), "{msg}");
    // The OpenShift Route's address instead of one nothing serves.
    let services = env.api::<Service>();
    eventually_within("the Route address on the Service", WAIT, || async {
        services
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| {
                s.metadata
                    .annotations
                    .unwrap_or_default()
                    .get("routing.opendatahub.io/external-address-rest")
                    .map(String::as_str)
                    == Some("gwapi-none-rest.apps.example.com:443")
            })
    })
    .await;
    let _ = route_ns;
}
