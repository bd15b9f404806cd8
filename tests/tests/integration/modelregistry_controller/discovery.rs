//! What the ODH dashboard needs to find a registry, for every way of exposing it: a Service
//! labelled `component=model-registry` with a port named `http-api` or `https-api`, its address
//! in `routing.opendatahub.io/external-address-rest`, and the Role `registry-user-<name>` its
//! permission page binds. Exposure modes: the proxy's OpenShift Route, an Istio gateway, and the
//! Data Science Gateway's HTTPRoute.
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, PostParams};
use mro_tests::cluster::Flavour;
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::gateway_api::{GATEWAY_DOMAIN, gateway_env};
use super::istio::istio_sample;
use super::openshift::ensure_ingress_config;
use super::{Env, postgres_sample};

const WAIT: Duration = Duration::from_secs(180);

/// Waits until the registry is discoverable as the dashboard discovers it, with `address`.
async fn assert_discoverable(env: &Env<'_>, name: &str, port_name: &str, address: &str) {
    let services = env.api::<Service>();
    let roles = env.api::<Role>();
    let what = format!("{name} discoverable at {address} on port {port_name}");
    eventually_within(&what, WAIT, || async {
        let Ok(Some(svc)) = services.get_opt(name).await else {
            return false;
        };
        let labelled = svc
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("component"))
            == Some(&"model-registry".to_string());
        let port = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|ps| ps.iter().any(|p| p.name.as_deref() == Some(port_name)));
        let cluster_ip = svc
            .spec
            .as_ref()
            .is_some_and(|s| s.type_.as_deref() == Some("ClusterIP"));
        let annotated = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("routing.opendatahub.io/external-address-rest"))
            .map(String::as_str)
            == Some(address);
        let role = roles
            .get_opt(&format!("registry-user-{name}"))
            .await
            .ok()
            .flatten()
            .is_some_and(|r| {
                r.rules.unwrap_or_default().iter().any(|rule| {
                    rule.verbs.contains(&"get".to_string())
                        && rule
                            .resources
                            .as_ref()
                            .is_some_and(|rs| rs.contains(&"services".to_string()))
                        && rule
                            .resource_names
                            .as_ref()
                            .is_some_and(|n| n.contains(&name.to_string()))
                })
            });
        labelled && port && cluster_ip && annotated && role
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_discovers_registries_exposed_by_route_istio_gateway_and_http_route() {
    // The proxy's OpenShift Route.
    let env = Env::new(Flavour::OpenShift, "mr-disc-route").await;
    ensure_ingress_config(&env).await;
    let mut mr = postgres_sample("disc-route");
    mr["spec"]["kubeRBACProxy"] = json!({});
    env.create_registry(mr).await;
    assert_discoverable(
        &env,
        "disc-route",
        "https-api",
        "disc-route-rest.apps.example.com:443",
    )
    .await;

    // An Istio gateway (the Go operator's v0.2 shape), with its ingress gateway found by label.
    let istio = Env::new(Flavour::OpenShiftIstio, "mr-disc-istio").await;
    ensure_ingress_config(&istio).await;
    let ingress = format!("ingressgateway-{}", istio.ns);
    let gw_ns = istio.cluster.namespace("istio-ingress").await.unwrap();
    let gw_svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "custom-ingress", "labels": {"istio": ingress}},
        "spec": {"ports": [{"name": "http2", "port": 80}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(istio.client.clone(), &gw_ns)
        .create(&PostParams::default(), &gw_svc)
        .await
        .unwrap();
    istio
        .create_registry(istio_sample("istio/postgres", "disc-istio", &ingress))
        .await;
    assert_discoverable(
        &istio,
        "disc-istio",
        "http-api",
        "disc-istio-rest.apps.example.com:80",
    )
    .await;

    // The Data Science Gateway's HTTPRoute, with and without a proxy in front.
    let (gw, _route_ns) = gateway_env(Flavour::OpenShiftIstio, "mr-disc-gw").await;
    let mut mr = postgres_sample("disc-gw");
    mr["spec"]["kubeRBACProxy"] = json!({});
    gw.create_registry(mr).await;
    assert_discoverable(
        &gw,
        "disc-gw",
        "https-api",
        &format!("{GATEWAY_DOMAIN}/model-registry/disc-gw"),
    )
    .await;
}
