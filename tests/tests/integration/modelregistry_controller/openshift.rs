//! OAuth proxy, OpenShift Routes and Groups, Istio + Authorino: on the matching cluster flavour,
//! and gracefully degraded on plain Kubernetes.
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mro_tests::cluster::Flavour;
use serde_json::json;

use super::{ALL_KINDS, Env, children, mysql_sample, shipped_sample};

fn oauth_sample(name: &str) -> serde_json::Value {
    let mut mr = mysql_sample(name);
    mr["spec"]["oauthProxy"] = json!({});
    mr
}

/// The cluster ingress config OpenShift keeps (default domain for Routes).
pub(super) async fn ensure_ingress_config(env: &Env<'_>) {
    let api = env.dynamic("config.openshift.io", "v1", "Ingress", "ingresses", None);
    let obj: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "config.openshift.io/v1", "kind": "Ingress",
        "metadata": {"name": "cluster"}, "spec": {"domain": "apps.example.com"}}),
    )
    .unwrap();
    api.patch(
        "cluster",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_sample_on_openshift_builds_proxy_route_group_and_becomes_available() {
    let env = Env::new(Flavour::OpenShift, "mr-oauth").await;
    ensure_ingress_config(&env).await;
    let name = env.create_registry(oauth_sample("oauth-registry")).await;
    let dep = env.wait_deployment(&name).await;
    mro_tests::wait::eventually("all OAuth children", || async {
        children(&env, &name, ALL_KINDS).await.len() >= 10
    })
    .await;
    assert_eq!(
        children(&env, &name, ALL_KINDS).await,
        vec![
            "ClusterRoleBinding/oauth-registry-auth-delegator",
            "Deployment/oauth-registry",
            "Group/oauth-registry-users",
            "NetworkPolicy/oauth-registry-https-route",
            "Role/registry-user-oauth-registry",
            "RoleBinding/oauth-registry-users",
            "Route/oauth-registry-https",
            "Secret/oauth-registry-oauth-cookie-secret",
            "Service/oauth-registry",
            "ServiceAccount/oauth-registry",
        ]
    );
    let pod = dep.spec.unwrap().template.spec.unwrap();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"oauth-proxy"), "{names:?}");
    // Only the authenticated port is exposed, with a serving certificate from the service CA.
    let svc = env.api::<Service>().get(&name).await.unwrap();
    let ports: Vec<_> = svc
        .spec
        .clone()
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.name.clone().unwrap())
        .collect();
    assert_eq!(ports, vec!["https-api"]);
    assert_eq!(
        svc.metadata.annotations.unwrap()["service.beta.openshift.io/serving-cert-secret-name"],
        "oauth-registry-oauth-proxy"
    );
    let route = env
        .dynamic("route.openshift.io", "v1", "Route", "routes", Some(&env.ns))
        .get("oauth-registry-https")
        .await
        .unwrap();
    assert_eq!(
        route.data["spec"]["host"],
        "oauth-registry-rest.apps.example.com"
    );
    assert_eq!(route.data["spec"]["tls"]["termination"], "reencrypt");
    // Cluster-scoped children need the finalizer.
    let mr = env.registry(&name).await;
    assert!(
        mr.metadata
            .finalizers
            .unwrap()
            .contains(&"modelregistry.opendatahub.io/finalizer".to_string())
    );

    env.make_pods_ready(&name).await;
    // Ready pods are not enough: the Route must be admitted by the router first.
    mro_tests::wait::eventually("OAuthProxyAvailable=False naming the Route", || async {
        env.registry(&name).await.status.is_some_and(|st| {
            st.conditions.iter().any(|c| {
                c.type_ == "OAuthProxyAvailable"
                    && c.status.as_str() == "False"
                    && c.message.contains("Route oauth-registry-https")
            })
        })
    })
    .await;
    env.admit_routes(&env.ns).await;
    env.wait_condition(
        &name,
        "OAuthProxyAvailable",
        "True",
        Some("ResourcesAvailable"),
    )
    .await;
    let mr = env.wait_condition(&name, "Available", "True", None).await;
    assert!(
        mr.status
            .unwrap()
            .hosts
            .contains(&"oauth-registry-rest.apps.example.com".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_sample_on_vanilla_degrades_without_exposing_the_registry() {
    let env = Env::new(Flavour::Vanilla, "mr-oauth-vanilla").await;
    let name = env.create_registry(oauth_sample("oauth-vanilla")).await;
    let mr = env
        .wait_condition(
            &name,
            "OAuthProxyAvailable",
            "False",
            Some("ResourcesUnavailable"),
        )
        .await;
    let msg = mr
        .status
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "OAuthProxyAvailable")
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("OpenShift"), "{msg}");
    env.wait_condition(&name, "Degraded", "True", Some("UnsupportedFeature"))
        .await;
    // No OpenShift objects were attempted; the Service exposes no unauthenticated port.
    let kids = children(&env, &name, ALL_KINDS).await;
    assert!(
        kids.iter()
            .all(|k| !k.starts_with("Route/") && !k.starts_with("Group/")),
        "{kids:?}"
    );
    let svc = env.api::<Service>().get(&name).await.unwrap();
    let ports: Vec<_> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.name.clone().unwrap())
        .collect();
    assert_eq!(ports, vec!["https-api"]);
    env.make_pods_ready(&name).await;
    env.wait_condition(&name, "Available", "False", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn istio_samples_build_mesh_and_gateway_objects_and_clean_up_across_namespaces() {
    let env = Env::new(Flavour::OpenShiftIstio, "mr-istio").await;
    ensure_ingress_config(&env).await;
    // The ingress gateway lives in its own namespace, found by its Service label.
    let gw_ns = env.cluster.namespace("istio-system").await.unwrap();
    let gw_svc: Service =
        serde_json::from_value(json!({"metadata": {"name": "istio-ingressgateway",
        "labels": {"istio": format!("ingressgateway-{}", env.ns)}},
        "spec": {"ports": [{"name": "http2", "port": 80}, {"name": "https", "port": 443}]}}))
        .unwrap();
    Api::<Service>::namespaced(env.client.clone(), &gw_ns)
        .create(&PostParams::default(), &gw_svc)
        .await
        .unwrap();

    let mut mr = mysql_sample("istio-registry");
    // The Istio era's server, which still serves gRPC through ML Metadata.
    mr["spec"]["rest"]["image"] = json!("quay.io/opendatahub/model-registry:v0.2.19");
    mr["spec"]["istio"] = json!({
        "authProvider": "opendatahub-auth-provider",
        "gateway": {"istioIngress": format!("ingressgateway-{}", env.ns),
                    "rest": {"tls": {"mode": "SIMPLE", "credentialName": "rest-cert"}},
                    "grpc": {"tls": {"mode": "SIMPLE", "credentialName": "grpc-cert"}}}
    });
    let name = env.create_registry(mr).await;
    env.wait_deployment(&name).await;
    mro_tests::wait::eventually("Istio and gateway children", || async {
        let kids = children(&env, &name, ALL_KINDS).await;
        kids.iter().filter(|k| k.starts_with("Route/")).count() == 2
            && kids.iter().any(|k| k.starts_with("Gateway/"))
    })
    .await;
    let kids = children(&env, &name, ALL_KINDS).await;
    for expected in [
        "AuthConfig/istio-registry",
        "AuthorizationPolicy/istio-registry-authorino",
        "DestinationRule/istio-registry",
        "Gateway/istio-registry",
        "VirtualService/istio-registry",
    ] {
        assert!(
            kids.contains(&expected.to_string()),
            "missing {expected} in {kids:?}"
        );
    }
    let routes = env.dynamic("route.openshift.io", "v1", "Route", "routes", Some(&gw_ns));
    let rest_route = routes
        .get(&format!("{}-istio-registry-rest", env.ns))
        .await
        .expect("gateway route in the gateway namespace");
    assert!(
        rest_route.metadata.owner_references.is_none(),
        "cross-namespace children cannot be owned"
    );
    let gateway = env
        .dynamic(
            "networking.istio.io",
            "v1",
            "Gateway",
            "gateways",
            Some(&env.ns),
        )
        .get("istio-registry")
        .await
        .unwrap();
    let hosts = gateway.data["spec"]["servers"].to_string();
    assert!(
        hosts.contains("istio-registry-rest.apps.example.com"),
        "{hosts}"
    );
    let ap = env
        .dynamic(
            "security.istio.io",
            "v1",
            "AuthorizationPolicy",
            "authorizationpolicies",
            Some(&env.ns),
        )
        .get("istio-registry-authorino")
        .await
        .unwrap();
    assert_eq!(ap.data["spec"]["action"], "CUSTOM");
    assert_eq!(
        ap.data["spec"]["provider"]["name"],
        "opendatahub-auth-provider"
    );
    let dep = env.wait_deployment(&name).await;
    assert_eq!(
        dep.spec.unwrap().template.metadata.unwrap().labels.unwrap()["sidecar.istio.io/inject"],
        "true"
    );

    env.make_pods_ready(&name).await;
    env.admit_routes(&gw_ns).await;
    env.wait_condition(&name, "IstioAvailable", "True", None)
        .await;
    env.wait_condition(&name, "GatewayAvailable", "True", None)
        .await;
    env.wait_condition(&name, "Available", "True", None).await;

    // Deleting the registry removes the cross-namespace Routes too (finalizer), then the CR goes.
    env.api::<mro_api::ModelRegistry>()
        .delete(&name, &Default::default())
        .await
        .unwrap();
    mro_tests::wait::eventually("the registry and all its children to go", || async {
        env.api::<mro_api::ModelRegistry>()
            .get_opt(&name)
            .await
            .is_ok_and(|o| o.is_none())
            && routes
                .list(&Default::default())
                .await
                .is_ok_and(|l| l.items.is_empty())
    })
    .await;
}

/// The seed's `oauth/postgres` sample on OpenShift: exactly the proxy, Route, Group objects, the
/// single REST container behind the OAuth proxy, and Available once the Route is admitted.
#[tokio::test(flavor = "multi_thread")]
async fn oauth_postgres_sample_on_openshift_builds_exactly_the_proxy_objects() {
    let env = Env::new(Flavour::OpenShift, "mr-oauth-pg").await;
    ensure_ingress_config(&env).await;
    let name = env
        .create_registry(shipped_sample("oauth/postgres", "oauth-pg"))
        .await;
    let dep = env.wait_deployment(&name).await;
    let expected = vec![
        "ClusterRoleBinding/oauth-pg-auth-delegator",
        "Deployment/oauth-pg",
        "Group/oauth-pg-users",
        "NetworkPolicy/oauth-pg-https-route",
        "Role/registry-user-oauth-pg",
        "RoleBinding/oauth-pg-users",
        "Route/oauth-pg-https",
        "Secret/oauth-pg-oauth-cookie-secret",
        "Service/oauth-pg",
        "ServiceAccount/oauth-pg",
    ];
    mro_tests::wait::eventually("all OAuth children", || async {
        children(&env, &name, ALL_KINDS).await.len() >= expected.len()
    })
    .await;
    assert_eq!(children(&env, &name, ALL_KINDS).await, expected);

    // One REST container with embedded PostgreSQL access, behind the OAuth proxy.
    let pod = dep.spec.unwrap().template.spec.unwrap();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["rest-container", "oauth-proxy"]);
    let rest_args = pod.containers[0].args.clone().unwrap();
    assert!(
        rest_args.contains(&"--embedmd-database-type=postgres".to_string()),
        "{rest_args:?}"
    );
    let proxy_args = pod.containers[1].args.clone().unwrap();
    for expected in [
        "--https-address=:8443",
        "--provider=openshift",
        "--openshift-service-account=oauth-pg",
        "--upstream=http://localhost:8080",
    ] {
        assert!(
            proxy_args.contains(&expected.to_string()),
            "missing {expected} in {proxy_args:?}"
        );
    }
    let svc = env.api::<Service>().get(&name).await.unwrap();
    let ports: Vec<_> = svc
        .spec
        .clone()
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.port))
        .collect();
    assert_eq!(ports, vec![("https-api".to_string(), 8443)]);
    assert_eq!(
        svc.metadata.annotations.unwrap()["service.beta.openshift.io/serving-cert-secret-name"],
        "oauth-pg-oauth-proxy"
    );
    let route = env
        .dynamic("route.openshift.io", "v1", "Route", "routes", Some(&env.ns))
        .get("oauth-pg-https")
        .await
        .unwrap();
    assert_eq!(route.data["spec"]["host"], "oauth-pg-rest.apps.example.com");
    assert_eq!(route.data["spec"]["tls"]["termination"], "reencrypt");
    assert_eq!(route.data["spec"]["to"]["name"], "oauth-pg");

    env.make_pods_ready(&name).await;
    env.admit_routes(&env.ns).await;
    env.wait_condition(
        &name,
        "OAuthProxyAvailable",
        "True",
        Some("ResourcesAvailable"),
    )
    .await;
    let mr = env
        .wait_condition(&name, "Available", "True", Some("DeploymentAvailable"))
        .await;
    assert!(
        mr.status
            .unwrap()
            .hosts
            .contains(&"oauth-pg-rest.apps.example.com".to_string())
    );
}
