//! Issue 19: the Go operator's gateway HTTPRoute `model-registry-<name>` (in
//! `HTTPROUTE_NAMESPACE`, no owner reference; T/gateway/gateway-httproute.yaml.tmpl@08f64eb) is
//! taken over in place when its labels and name are the Go operator's for the registry and it
//! routes only to that registry's Service; the same labels on a route to another namespace's
//! Service (a same-named registry elsewhere) are a `ResourceConflict`, and that route is left
//! exactly as it is.
use kube::ResourceExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use mro_api::ModelRegistry;
use mro_tests::cluster::Flavour;
use mro_tests::wait::eventually_within;
use serde_json::{Value, json};

use super::gateway_api::gateway_env;
use super::postgres_sample;

const WAIT: std::time::Duration = std::time::Duration::from_secs(180);
const PARENT_NAME: &str = "modelregistry.opendatahub.io/parent-name";

/// The route as the Go operator HEAD renders it for registry `name`, sending to `backend_ns`.
fn go_route(name: &str, route_ns: &str, backend_ns: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": format!("model-registry-{name}"), "namespace": route_ns, "labels": {
            "app": name, "component": "model-registry", "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": format!("model-registry-{name}"),
            "app.kubernetes.io/component": "model-registry",
            "app.kubernetes.io/created-by": "model-registry-operator",
            "app.kubernetes.io/part-of": "model-registry",
            "app.kubernetes.io/managed-by": "model-registry-operator",
        }},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": "data-science-gateway", "namespace": "openshift-ingress"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": format!("/model-registry/{name}/")}}],
                "filters": [{"type": "URLRewrite", "urlRewrite": {"path":
                    {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                "backendRefs": [{"group": "", "kind": "Service", "name": name,
                                 "namespace": backend_ns, "port": 8443, "weight": 1}],
            }],
        },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_go_operators_route_of_the_registry_is_taken_over_and_no_other() {
    let (env, route_ns) = gateway_env(Flavour::OpenShiftIstio, "mr-gwgo").await;
    let routes = env.dynamic(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
        Some(&route_ns),
    );
    let (ours, other) = ("gwgo-reg", "gwgo-elsewhere");
    let mut before = Vec::new();
    for (name, backend_ns) in [(ours, env.ns.as_str()), (other, "another-namespace")] {
        let body: DynamicObject =
            serde_json::from_value(go_route(name, &route_ns, backend_ns)).unwrap();
        // Written by the Go operator's field manager.
        let obj = routes
            .patch(
                &format!("model-registry-{name}"),
                &PatchParams::apply("manager").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("the Go operator's HTTPRoute");
        before.push(obj);
    }
    for name in [ours, other] {
        let mut mr = postgres_sample(name);
        mr["spec"]["kubeRBACProxy"] = json!({});
        env.create_registry(mr).await;
    }

    // Taken over in place: the same object, labelled as ours, the Go operator's fields gone
    // with its manager, routing to the registry as ours does.
    let route_name = format!("model-registry-{ours}");
    eventually_within("the Go operator's route to be taken over", WAIT, || async {
        routes
            .get(&route_name)
            .await
            .is_ok_and(|r| r.labels().get(PARENT_NAME).map(String::as_str) == Some(ours))
    })
    .await;
    let now = routes.get(&route_name).await.unwrap();
    assert_eq!(now.uid(), before[0].uid(), "the route was replaced");
    let managers: Vec<_> = now
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(!managers.iter().any(|m| m == "manager"), "{managers:?}");
    assert_eq!(
        now.data["spec"]["rules"][0]["backendRefs"][0]["namespace"],
        env.ns.as_str()
    );

    // The other registry's name is taken by a route to another namespace: reported, untouched.
    let api = env.api::<ModelRegistry>();
    eventually_within(&format!("{other} to report the conflict"), WAIT, || async {
        api.get(other).await.is_ok_and(|mr| {
            mr.status.is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.reason == "ResourceConflict"
                        && c.message.contains(&format!("model-registry-{other}"))
                })
            })
        })
    })
    .await;
    let untouched = routes
        .get(&format!("model-registry-{other}"))
        .await
        .unwrap();
    assert_eq!(untouched.resource_version(), before[1].resource_version());
    assert!(!untouched.labels().contains_key(PARENT_NAME));
}
