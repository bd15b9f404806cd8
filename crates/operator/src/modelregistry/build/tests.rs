//! Whole-registry builds: what the children look like together, per cluster flavour.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use mro_api::ModelRegistry;
use serde_json::{Value, json};

use super::*;
use crate::capabilities::{
    AUTHORINO_GROUP, Capabilities, ISTIO_NETWORKING_GROUP, ISTIO_SECURITY_GROUP,
};
use crate::settings::Settings;

fn registry(spec: Value) -> ModelRegistry {
    let mut spec = spec;
    spec["postgres"] = json!({ "host": "db", "username": "u", "database": "d",
                               "passwordSecret": { "name": "db", "key": "password" } });
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
        "kind": "ModelRegistry",
        "metadata": { "name": "reg", "namespace": "ns", "uid": "u-1" },
        "spec": spec,
    }))
    .unwrap()
}

/// Istio with `spec.grpc` on a server of that era (the ML Metadata layout, up to v0.2.20).
fn istio_spec() -> Value {
    json!({ "rest": { "image": "quay.io/opendatahub/model-registry:v0.2.19" }, "grpc": {}, "istio": {
        "authProvider": "provider", "gateway": { "domain": "example.com" },
    } })
}

fn only_istio() -> Capabilities {
    Capabilities::from_groups([
        (ISTIO_NETWORKING_GROUP, vec!["v1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1"]),
    ])
}

fn mesh() -> Capabilities {
    Capabilities::from_groups([
        (ISTIO_NETWORKING_GROUP, vec!["v1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1"]),
        (AUTHORINO_GROUP, vec!["v1beta3"]),
    ])
}

fn build(mr: &ModelRegistry, caps: &Capabilities) -> Desired {
    let settings = Settings::for_tests();
    desired(&BuildInput {
        mr,
        settings: &settings,
        caps,
        cluster_domain: None,
        ingress_gateway: None,
        oauth_cookie_secret: None,
        legacy_selector: false,
    })
    .expect("builds")
}

fn typed<K: serde::de::DeserializeOwned>(out: &Desired, kind: &str) -> K {
    out.children
        .iter()
        .find(|c| c.resource.kind == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
        .to_typed()
}

fn replicas_and_inject(out: &Desired) -> (Option<i32>, Option<String>) {
    let d: Deployment = typed(out, "Deployment");
    let spec = d.spec.unwrap();
    let inject = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .and_then(|l| l.get("sidecar.istio.io/inject").cloned());
    (spec.replicas, inject)
}

#[test]
fn istio_without_the_mesh_runs_no_pods_so_nothing_is_served_unauthenticated() {
    let mr = registry(istio_spec());
    // Plain Kubernetes, and Istio without Authorino: nothing would check callers.
    for caps in [Capabilities::vanilla(), only_istio()] {
        let out = build(&mr, &caps);
        assert_eq!(replicas_and_inject(&out), (Some(0), None), "{caps:?}");
        let why = out.withheld.as_deref().expect("withheld");
        assert!(
            why.contains("Deployment reg") && why.contains("without authentication"),
            "{why}"
        );
        let kinds: Vec<_> = out
            .children
            .iter()
            .map(|c| c.resource.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            ["ServiceAccount", "Service", "Role", "Deployment"],
            "{caps:?}"
        );
        // The Service keeps the ports the mesh will protect; with no pods it has no endpoints.
        let svc: Service = typed(&out, "Service");
        let ports: Vec<_> = svc
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port))
            .collect();
        assert_eq!(
            ports,
            [
                ("http-api".to_string(), 8080),
                ("grpc-api".to_string(), 9090)
            ]
        );
    }
}

#[test]
fn istio_in_the_mesh_runs_the_registry_with_the_sidecar() {
    let mr = registry(istio_spec());
    let out = build(&mr, &mesh());
    assert_eq!(out.withheld, None);
    assert_eq!(replicas_and_inject(&out), (None, Some("true".to_string())));
    assert!(
        out.children
            .iter()
            .any(|c| c.resource.kind == "AuthorizationPolicy")
    );
}

#[test]
fn registries_without_istio_are_never_withheld() {
    for spec in [
        json!({ "rest": {} }),
        json!({ "rest": {}, "kubeRBACProxy": {} }),
        json!({ "rest": {}, "oauthProxy": {} }),
    ] {
        let out = build(&registry(spec.clone()), &Capabilities::vanilla());
        assert_eq!(out.withheld, None, "{spec}");
        // Replicas are left to the API server's default, `kubectl scale` and autoscalers.
        assert_eq!(replicas_and_inject(&out), (None, None), "{spec}");
    }
}

#[test]
fn registry_pods_meet_the_restricted_pod_security_standard() {
    use crate::modeltransfer::build::pss;
    let openshift = Capabilities::from_groups([
        (crate::capabilities::ROUTE_GROUP, vec!["v1"]),
        (crate::capabilities::USER_GROUP, vec!["v1"]),
        (crate::capabilities::CONFIG_GROUP, vec!["v1"]),
    ]);
    for (spec, caps) in [
        (json!({ "rest": {} }), Capabilities::vanilla()),
        (json!({ "rest": {}, "grpc": {} }), Capabilities::vanilla()),
        (
            json!({ "rest": {}, "kubeRBACProxy": {} }),
            Capabilities::vanilla(),
        ),
        (
            json!({ "rest": {}, "kubeRBACProxy": {} }),
            openshift.clone(),
        ),
        (json!({ "rest": {}, "oauthProxy": {} }), openshift.clone()),
        (istio_spec(), mesh()),
    ] {
        let out = build(&registry(spec.clone()), &caps);
        let d: Deployment = typed(&out, "Deployment");
        let pod = d.spec.unwrap().template.spec.unwrap();
        assert_eq!(pss::violations(&pod), Vec::<String>::new(), "{spec}");
        // Beyond the profile, as for transfer pods: nothing writes to an image's filesystem.
        for c in &pod.containers {
            let sc = c.security_context.clone().unwrap_or_default();
            assert_eq!(
                sc.read_only_root_filesystem,
                Some(true),
                "{spec}: {}",
                c.name
            );
            assert_eq!(sc.run_as_non_root, Some(true), "{spec}: {}", c.name);
        }
    }
}

#[test]
fn only_the_proxy_container_gets_the_service_account_token() {
    let openshift = Capabilities::from_groups([(crate::capabilities::ROUTE_GROUP, vec!["v1"])]);
    for (spec, caps) in [
        (json!({ "rest": {} }), Capabilities::vanilla()),
        (
            json!({ "rest": {}, "grpc": {}, "kubeRBACProxy": {} }),
            Capabilities::vanilla(),
        ),
        (
            json!({ "rest": {}, "kubeRBACProxy": {} }),
            openshift.clone(),
        ),
        (json!({ "rest": {}, "oauthProxy": {} }), openshift.clone()),
    ] {
        let out = build(&registry(spec.clone()), &caps);
        let d: Deployment = typed(&out, "Deployment");
        let pod = d.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false), "{spec}");
        for c in &pod.containers {
            let has_token = c
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == proxy::TOKEN_DIR && m.name == proxy::TOKEN_VOLUME);
            let is_proxy = [
                proxy::KUBE_RBAC_PROXY_CONTAINER,
                proxy::OAUTH_PROXY_CONTAINER,
            ]
            .contains(&c.name.as_str());
            assert_eq!(has_token, is_proxy, "{spec}: {}", c.name);
        }
        let token = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == proxy::TOKEN_VOLUME);
        let proxied = spec.get("kubeRBACProxy").is_some() || spec.get("oauthProxy").is_some();
        assert_eq!(token.is_some(), proxied, "{spec}");
        if let Some(t) = token {
            let sources = t.projected.as_ref().unwrap().sources.as_ref().unwrap();
            let sa = sources[0].service_account_token.as_ref().unwrap();
            assert_eq!(sa.audience, None, "the proxy talks to the API server");
            assert!(sa.expiration_seconds.unwrap() <= 3607);
        }
    }
}

/// `routing.opendatahub.io/external-address-*` on the Service, per exposure mode.
fn external_addresses(out: &Desired) -> std::collections::BTreeMap<String, String> {
    let svc: Service = typed(out, "Service");
    svc.metadata
        .annotations
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with("routing.opendatahub.io/"))
        .collect()
}

#[test]
fn the_service_names_the_registry_address_for_every_exposure_mode() {
    use crate::capabilities::{GATEWAY_API_GROUP, ROUTE_GROUP};
    let openshift = Capabilities::from_groups([(ROUTE_GROUP, vec!["v1"])]);
    let settings = Settings::for_tests();
    let build_in = |mr: &ModelRegistry, caps: &Capabilities, settings: &Settings| {
        desired(&BuildInput {
            mr,
            settings,
            caps,
            cluster_domain: Some("apps.example.com".into()),
            ingress_gateway: None,
            oauth_cookie_secret: None,
            legacy_selector: false,
        })
        .unwrap()
    };
    let proxied = registry(json!({ "rest": {}, "kubeRBACProxy": {} }));

    // The proxy's Route: `<name>-rest.<domain>:<routePort>`.
    let out = build_in(&proxied, &openshift, &settings);
    assert_eq!(
        external_addresses(&out),
        [(
            "routing.opendatahub.io/external-address-rest".to_string(),
            "reg-rest.apps.example.com:443".to_string()
        )]
        .into()
    );
    // Route disabled, or no Routes on this cluster: no address.
    let no_route = registry(json!({ "rest": {}, "kubeRBACProxy": {"serviceRoute": "disabled"} }));
    assert!(external_addresses(&build_in(&no_route, &openshift, &settings)).is_empty());
    assert!(external_addresses(&build(&proxied, &Capabilities::vanilla())).is_empty());

    // The Data Science Gateway wins over the Route, as upstream.
    let mut gw = Settings::for_tests();
    gw.gateway.domain = Some("gw.example.com".into());
    gw.gateway.httproute_namespace = Some("apps".into());
    let with_gateway =
        Capabilities::from_groups([(ROUTE_GROUP, vec!["v1"]), (GATEWAY_API_GROUP, vec!["v1"])]);
    let out = build_in(&proxied, &with_gateway, &gw);
    assert_eq!(
        external_addresses(&out),
        [(
            "routing.opendatahub.io/external-address-rest".to_string(),
            "gw.example.com/model-registry/reg".to_string()
        )]
        .into()
    );
    // Gateway mode without the API: nothing claims the gateway address.
    let out = build_in(&proxied, &openshift, &gw);
    assert_eq!(
        external_addresses(&out)["routing.opendatahub.io/external-address-rest"],
        "reg-rest.apps.example.com:443"
    );

    // An Istio gateway: one address per API on its hosts and ports.
    let out = build(&registry(istio_spec()), &mesh());
    assert_eq!(
        external_addresses(&out),
        [
            (
                "routing.opendatahub.io/external-address-grpc".to_string(),
                "reg-grpc.example.com:80".to_string()
            ),
            (
                "routing.opendatahub.io/external-address-rest".to_string(),
                "reg-rest.example.com:80".to_string()
            ),
        ]
        .into()
    );
    // Istio without the mesh exposes nothing.
    assert!(external_addresses(&build(&registry(istio_spec()), &only_istio())).is_empty());
}

#[test]
fn istio_pods_bypass_the_sidecar_for_the_database_as_upstream() {
    let d: Deployment = typed(&build(&registry(istio_spec()), &mesh()), "Deployment");
    let meta = d.spec.unwrap().template.metadata.unwrap();
    assert_eq!(meta.labels.unwrap()["sidecar.istio.io/inject"], "true");
    assert_eq!(
        meta.annotations.unwrap()["traffic.sidecar.istio.io/excludeOutboundPorts"],
        "5432"
    );
    // Without Istio the pods carry neither (as the Go operator's HEAD).
    let d: Deployment = typed(
        &build(&registry(json!({ "rest": {} })), &mesh()),
        "Deployment",
    );
    let meta = d.spec.unwrap().template.metadata.unwrap();
    assert!(!meta.labels.unwrap().contains_key("sidecar.istio.io/inject"));
    assert!(meta.annotations.is_none());
}

#[test]
fn the_deployment_selects_as_the_go_operator_unless_it_exists_with_the_former_selector() {
    let mr = registry(json!({}));
    let settings = Settings::for_tests();
    let caps = Capabilities::default();
    let selector_and_pods = |legacy_selector: bool| {
        let out = desired(&BuildInput {
            mr: &mr,
            settings: &settings,
            caps: &caps,
            cluster_domain: None,
            ingress_gateway: None,
            oauth_cookie_secret: None,
            legacy_selector,
        })
        .expect("builds");
        let d: Deployment = typed(&out, "Deployment");
        let svc: Service = typed(&out, "Service");
        let spec = d.spec.unwrap();
        (
            spec.selector.match_labels.unwrap(),
            spec.template.metadata.unwrap().labels.unwrap(),
            svc.spec.unwrap().selector.unwrap(),
        )
    };
    let name = "reg";
    let go = names::selector(&mr);
    assert_eq!(
        serde_json::to_value(&go).unwrap(),
        json!({ "app": name, "component": "model-registry", "app.kubernetes.io/name": name })
    );
    let (selector, pods, service) = selector_and_pods(false);
    assert_eq!(selector, go);
    assert_eq!(service, go);
    assert!(go.iter().all(|(k, v)| pods.get(k) == Some(v)));
    // An existing Deployment of this operator's former selector keeps it (immutable); the
    // pods still carry every label the Service selects by.
    let (selector, pods, service) = selector_and_pods(true);
    assert_eq!(selector, names::legacy_selector(&mr));
    assert_eq!(selector.len(), 2);
    assert_eq!(service, go);
    assert!(go.iter().all(|(k, v)| pods.get(k) == Some(v)));
}
