//! The seed's Istio shapes with PostgreSQL, from the shipped samples: `istio/postgres-tls` (TLS
//! gateway) and `istio/postgres` (plain-text gateway) produce exactly the expected objects on
//! OpenShift + Istio + Authorino, in the registry's namespace and the ingress gateway's; the same
//! CR on plain Kubernetes reports what is missing, creates no mesh objects and runs no pods (so
//! nothing is served unauthenticated), and starts once Istio and Authorino are installed.
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use mro_tests::cluster::{self, Flavour};
use mro_tests::platform_apis::PlatformApi;
use mro_tests::wait::eventually;
use serde_json::{Value, json};

use super::openshift::ensure_ingress_config;
use super::{ALL_KINDS, Env, children, shipped_sample};

const DOMAIN: &str = "apps.example.com";
const PROVIDER: &str = "opendatahub-auth-provider";

/// A shipped Istio sample with the values its `istio.env` would feed in, on a server of the Istio
/// era that still runs the ML Metadata gRPC layout (the Go operator dropped Istio in v0.3).
pub(super) fn istio_sample(dir: &str, name: &str, ingress: &str) -> Value {
    let mut mr = shipped_sample(dir, name);
    mr["spec"]["rest"]["image"] = "quay.io/opendatahub/model-registry:v0.2.19".into();
    let istio = &mut mr["spec"]["istio"];
    istio["authProvider"] = PROVIDER.into();
    istio["gateway"]["domain"] = DOMAIN.into();
    istio["gateway"]["istioIngress"] = ingress.into();
    for api in ["rest", "grpc"] {
        if istio["gateway"][api]["tls"].is_object() {
            istio["gateway"][api]["tls"]["credentialName"] =
                format!("{name}-{api}-credential").into();
        }
    }
    mr
}

/// The objects a registry of the Istio samples has on OpenShift with Istio and Authorino.
fn expected_children(ns: &str, name: &str) -> Vec<String> {
    let mut v: Vec<String> = [
        format!("AuthConfig/{name}"),
        format!("AuthorizationPolicy/{name}-authorino"),
        format!("Deployment/{name}"),
        format!("DestinationRule/{name}"),
        format!("Gateway/{name}"),
        format!("Group/{name}-users"),
        format!("Role/registry-user-{name}"),
        format!("RoleBinding/{name}-users"),
        format!("Route/{ns}-{name}-grpc"),
        format!("Route/{ns}-{name}-rest"),
        format!("Service/{name}"),
        format!("ServiceAccount/{name}"),
        format!("VirtualService/{name}"),
    ]
    .into();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn istio_postgres_samples_with_and_without_tls_gateway_build_exactly_the_expected_objects() {
    let env = Env::new(Flavour::OpenShiftIstio, "mr-istio-pg").await;
    ensure_ingress_config(&env).await;
    // The ingress gateway in a namespace of its own, found by its label. Its Service name is not
    // Istio's default, so the Routes must name the Service that was found.
    let ingress = format!("ingressgateway-{}", env.ns);
    let gw_ns = env.cluster.namespace("istio-ingress").await.unwrap();
    let gw_svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "custom-ingress", "labels": {"istio": ingress}},
        "spec": {"ports": [{"name": "http2", "port": 80}, {"name": "https", "port": 443}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(env.client.clone(), &gw_ns)
        .create(&PostParams::default(), &gw_svc)
        .await
        .unwrap();

    let tls = env
        .create_registry(istio_sample("istio/postgres-tls", "istio-pg-tls", &ingress))
        .await;
    let plain = env
        .create_registry(istio_sample("istio/postgres", "istio-pg", &ingress))
        .await;
    let gateways = env.dynamic(
        "networking.istio.io",
        "v1",
        "Gateway",
        "gateways",
        Some(&env.ns),
    );
    let routes = env.dynamic("route.openshift.io", "v1", "Route", "routes", Some(&gw_ns));
    for (name, with_tls) in [(&tls, true), (&plain, false)] {
        let expected = expected_children(&env.ns, name);
        mro_tests::wait::eventually(&format!("the children of {name}"), || async {
            children(&env, name, ALL_KINDS).await.len() >= expected.len()
        })
        .await;
        assert_eq!(children(&env, name, ALL_KINDS).await, expected, "{name}");

        // The gateway: one server per API on its own host, TLS from the named credentials.
        let hosts = ["rest", "grpc"].map(|api| format!("{name}-{api}.{DOMAIN}"));
        let gateway = gateways.get(name).await.unwrap();
        let servers: Vec<Value> = [("rest", "HTTP"), ("grpc", "GRPC")]
            .iter()
            .zip(&hosts)
            .map(|((api, plain_protocol), host)| {
                if with_tls {
                    json!({"name": api, "hosts": [host],
                           "port": {"number": 443, "name": format!("https-{api}"), "protocol": "HTTPS"},
                           "tls": {"mode": "SIMPLE", "credentialName": format!("{name}-{api}-credential")}})
                } else {
                    json!({"name": api, "hosts": [host],
                           "port": {"number": 80, "name": format!("{}-{api}", plain_protocol.to_lowercase()),
                                    "protocol": plain_protocol}})
                }
            })
            .collect();
        assert_eq!(
            gateway.data["spec"],
            json!({"selector": {"istio": ingress}, "servers": servers}),
            "{name}"
        );

        // OpenShift Routes in the gateway's namespace expose both hosts through the router.
        for (api, host) in ["rest", "grpc"].iter().zip(&hosts) {
            let route = routes
                .get(&format!("{}-{name}-{api}", env.ns))
                .await
                .unwrap();
            assert!(route.metadata.owner_references.is_none());
            let spec = &route.data["spec"];
            assert_eq!(spec["host"], host.as_str());
            assert_eq!(spec["to"]["name"], "custom-ingress", "{spec}");
            let (port, termination) = if with_tls {
                ("https", json!("passthrough"))
            } else {
                ("http2", Value::Null)
            };
            assert_eq!(spec["port"]["targetPort"], port, "{spec}");
            assert_eq!(spec["tls"]["termination"], termination, "{spec}");
        }

        // Mesh routing and authorization cover the gateway hosts too.
        let vs = env
            .dynamic(
                "networking.istio.io",
                "v1",
                "VirtualService",
                "virtualservices",
                Some(&env.ns),
            )
            .get(name)
            .await
            .unwrap();
        assert_eq!(vs.data["spec"]["gateways"], json!(["mesh", name]));
        let auth = env
            .dynamic(
                "authorino.kuadrant.io",
                "v1beta3",
                "AuthConfig",
                "authconfigs",
                Some(&env.ns),
            )
            .get(name)
            .await
            .unwrap();
        for host in &hosts {
            for list in [&vs.data["spec"]["hosts"], &auth.data["spec"]["hosts"]] {
                assert!(
                    list.as_array().unwrap().contains(&json!(host)),
                    "{host} not in {list}"
                );
            }
        }
        let ap = env
            .dynamic(
                "security.istio.io",
                "v1",
                "AuthorizationPolicy",
                "authorizationpolicies",
                Some(&env.ns),
            )
            .get(&format!("{name}-authorino"))
            .await
            .unwrap();
        assert_eq!(ap.data["spec"]["action"], "CUSTOM");
        assert_eq!(ap.data["spec"]["provider"]["name"], PROVIDER);

        // The seed's gRPC layout with PostgreSQL, in the mesh; both ports on the Service.
        let dep = env.wait_deployment(name).await;
        let template = dep.spec.unwrap().template;
        assert_eq!(
            template.metadata.unwrap().labels.unwrap()["sidecar.istio.io/inject"],
            "true"
        );
        let pod = template.spec.unwrap();
        let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["grpc-container", "rest-container"]);
        let grpc_args = pod.containers[0].args.clone().unwrap();
        for expected in [
            "--postgres_config_host=model-registry-db",
            "--postgres_config_port=5432",
            "--postgres_config_sslmode=disable",
            "--metadata_source_config_type=postgresql",
            "--fromenv=postgres_config_password",
        ] {
            assert!(
                grpc_args.contains(&expected.to_string()),
                "missing {expected} in {grpc_args:?}"
            );
        }
        let ports: Vec<_> = env
            .api::<Service>()
            .get(name)
            .await
            .unwrap()
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("http-api".to_string(), 8080),
                ("grpc-api".to_string(), 9090)
            ]
        );
    }

    // Available once the pods are ready and the router admitted the gateway Routes.
    env.admit_routes(&gw_ns).await;
    for name in [&tls, &plain] {
        env.make_pods_ready(name).await;
        env.wait_condition(name, "IstioAvailable", "True", Some("ResourcesAvailable"))
            .await;
        env.wait_condition(name, "GatewayAvailable", "True", Some("ResourcesAvailable"))
            .await;
        let mr = env
            .wait_condition(name, "Available", "True", Some("DeploymentAvailable"))
            .await;
        let hosts = mr.status.unwrap().hosts;
        assert!(
            hosts.contains(&format!("{name}-rest.{DOMAIN}"))
                && hosts.contains(&format!("{name}-grpc.{DOMAIN}")),
            "{hosts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn istio_sample_on_vanilla_reports_the_missing_apis_and_serves_nothing_unauthenticated() {
    let env = Env::new(Flavour::Vanilla, "mr-istio-vanilla").await;
    let name = env
        .create_registry(istio_sample(
            "istio/postgres-tls",
            "istio-vanilla",
            "ingressgateway",
        ))
        .await;
    let mr = env
        .wait_condition(
            &name,
            "IstioAvailable",
            "False",
            Some("ResourcesUnavailable"),
        )
        .await;
    let st = mr.status.unwrap();
    let message = |t: &str| {
        st.conditions
            .iter()
            .find(|c| c.type_ == t)
            .unwrap_or_else(|| panic!("no {t} in {:?}", st.conditions))
            .message
            .clone()
    };
    for group in [
        "networking.istio.io",
        "security.istio.io",
        "authorino.kuadrant.io",
    ] {
        assert!(message("IstioAvailable").contains(group), "{st:?}");
    }
    assert!(message("GatewayAvailable").contains("networking.istio.io"));
    env.wait_condition(&name, "Degraded", "True", Some("UnsupportedFeature"))
        .await;
    env.wait_deployment(&name).await;
    assert_eq!(
        children(&env, &name, ALL_KINDS).await,
        vec![
            "Deployment/istio-vanilla",
            "Role/registry-user-istio-vanilla",
            "Service/istio-vanilla",
            "ServiceAccount/istio-vanilla",
        ]
    );
    // Nothing would authenticate callers, so the registry runs no pods and its Service has no
    // endpoint: the plain REST port is not reachable through it.
    assert_withheld(&env, &name).await;
    let mr = env
        .wait_condition(&name, "Available", "False", Some("ResourcesUnavailable"))
        .await;
    let available = mr
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert!(
        available.message.contains("scaled to zero")
            && available.message.contains("authorino.kuadrant.io"),
        "{available:?}"
    );
}

/// The registry's Deployment is at zero replicas, its ReplicaSet controller has seen that, and
/// neither pods nor Service endpoints exist.
async fn assert_withheld(env: &Env<'_>, name: &str) {
    let dep = env.wait_deployment(name).await;
    assert_eq!(dep.spec.as_ref().unwrap().replicas, Some(0));
    let replica_sets = env.api::<ReplicaSet>();
    let selector = format!("app={name},component=model-registry");
    eventually("the ReplicaSet controller saw zero replicas", || async {
        replica_sets
            .list(&ListParams::default().labels(&selector))
            .await
            .is_ok_and(|l| {
                !l.items.is_empty()
                    && l.items.iter().all(|rs| {
                        rs.spec.as_ref().and_then(|s| s.replicas) == Some(0)
                            && rs.status.as_ref().and_then(|s| s.observed_generation)
                                >= rs.metadata.generation
                    })
            })
    })
    .await;
    let pods = env
        .api::<Pod>()
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap();
    assert!(pods.items.is_empty(), "{:?}", pods.items);
    let addresses: Vec<_> = env
        .api::<Endpoints>()
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|e| e.subsets)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|s| s.addresses.unwrap_or_default())
        .collect();
    assert!(addresses.is_empty(), "{addresses:?}");
}

/// The same registry on plain Kubernetes starts, with the mesh's protection, once Istio and
/// Authorino are installed: capabilities are rediscovered without an operator restart.
#[tokio::test(flavor = "multi_thread")]
async fn istio_sample_on_vanilla_starts_once_istio_and_authorino_appear() {
    let private = cluster::private(Flavour::Vanilla).await;
    let mut env = Env::on(&private, "mr-istio-late").await;
    let name = env
        .create_registry(istio_sample(
            "istio/postgres-tls",
            "istio-late",
            "ingressgateway",
        ))
        .await;
    env.wait_condition(
        &name,
        "IstioAvailable",
        "False",
        Some("ResourcesUnavailable"),
    )
    .await;
    assert_withheld(&env, &name).await;

    private
        .install_platform_apis(&[PlatformApi::Istio, PlatformApi::Authorino])
        .await
        .unwrap();
    env.wait_condition(&name, "IstioAvailable", "True", Some("ResourcesAvailable"))
        .await;
    let mut expected: Vec<String> = [
        "AuthConfig/istio-late",
        "AuthorizationPolicy/istio-late-authorino",
        "Deployment/istio-late",
        "DestinationRule/istio-late",
        "Gateway/istio-late",
        "Role/registry-user-istio-late",
        "Service/istio-late",
        "ServiceAccount/istio-late",
        "VirtualService/istio-late",
    ]
    .map(String::from)
    .into();
    expected.sort();
    mro_tests::wait::eventually("the mesh children", || async {
        children(&env, &name, ALL_KINDS).await == expected
    })
    .await;
    let dep = env.wait_deployment(&name).await;
    let spec = dep.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.template.metadata.unwrap().labels.unwrap()["sidecar.istio.io/inject"],
        "true"
    );
    env.make_pods_ready(&name).await;
    env.wait_condition(&name, "Available", "True", Some("DeploymentAvailable"))
        .await;
    env.wait_condition(&name, "Degraded", "False", Some("Healthy"))
        .await;
    env.stop_operator().await;
}
