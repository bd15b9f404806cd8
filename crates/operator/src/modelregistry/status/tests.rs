use k8s_openapi::api::apps::v1::Deployment;
use mro_api::condition::Condition;
use serde_json::{Value, json};

use super::*;
use crate::capabilities::{
    AUTHORINO_GROUP, Capabilities, ISTIO_NETWORKING_GROUP, ISTIO_SECURITY_GROUP,
};
use crate::modelregistry::build::{self, BuildInput};
use crate::settings::Settings;

fn istio_registry() -> ModelRegistry {
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": "reg", "namespace": "ns", "uid": "u-1", "generation": 1 },
        "spec": {
            "rest": {},
            "postgres": { "host": "db", "username": "u", "database": "d",
                          "passwordSecret": { "name": "db", "key": "password" } },
            "istio": { "authProvider": "provider" },
        },
    }))
    .unwrap()
}

fn mesh() -> Capabilities {
    Capabilities::from_groups([
        (ISTIO_NETWORKING_GROUP, vec!["v1"]),
        (ISTIO_SECURITY_GROUP, vec!["v1"]),
        (AUTHORINO_GROUP, vec!["v1beta3"]),
    ])
}

fn desired(mr: &ModelRegistry, caps: &Capabilities) -> Desired {
    let settings = Settings::for_tests();
    build::desired(&BuildInput {
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

/// The Deployment as its controller reports it once rolled out at `replicas`.
fn rolled_out(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": "reg", "generation": 1 },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "reg" } },
            "template": {},
        },
        "status": {
            "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
            "availableReplicas": replicas, "readyReplicas": replicas,
            "conditions": [{ "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" }],
        },
    }))
    .unwrap()
}

fn status_for(desired: &Desired, runtime: &Runtime) -> ModelRegistryStatus {
    let mr = istio_registry();
    compute(&StatusInput {
        mr: &mr,
        desired,
        runtime,
        created_deployment: false,
        spec_defaults: None,
    })
}

fn condition<'a>(st: &'a ModelRegistryStatus, type_: &str) -> &'a Condition {
    st.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {:?}", st.conditions))
}

fn summary(c: &Condition) -> Value {
    json!([c.status.as_str(), c.reason])
}

#[test]
fn a_registry_withheld_for_missing_istio_is_unavailable_for_that_reason() {
    let mr = istio_registry();
    let d = desired(&mr, &Capabilities::vanilla());
    assert!(d.withheld.is_some());
    // Rolled out at zero replicas: the Deployment itself is Available, the Service has no endpoints.
    let st = status_for(
        &d,
        &Runtime {
            deployment: Some(rolled_out(0)),
            ..Runtime::default()
        },
    );
    let available = condition(&st, types::AVAILABLE);
    assert_eq!(
        summary(available),
        json!(["False", reasons::RESOURCES_UNAVAILABLE])
    );
    for part in [
        "networking.istio.io",
        "authorino.kuadrant.io",
        "scaled to zero",
    ] {
        assert!(available.message.contains(part), "{}", available.message);
    }
    assert_eq!(
        summary(condition(&st, types::ISTIO_AVAILABLE)),
        json!(["False", reasons::RESOURCES_UNAVAILABLE])
    );
    assert_eq!(
        summary(condition(&st, types::DEGRADED)),
        json!(["True", "UnsupportedFeature"])
    );
    assert_eq!(
        summary(condition(&st, types::PROGRESSING)),
        json!(["False", reasons::CREATED_DEPLOYMENT])
    );
}

#[test]
fn the_same_registry_in_the_mesh_is_available_once_served() {
    let mr = istio_registry();
    let d = desired(&mr, &mesh());
    assert_eq!(d.withheld, None);
    let st = status_for(
        &d,
        &Runtime {
            deployment: Some(rolled_out(1)),
            endpoints_ready: true,
            ..Runtime::default()
        },
    );
    assert_eq!(
        summary(condition(&st, types::AVAILABLE)),
        json!(["True", reasons::DEPLOYMENT_AVAILABLE])
    );
    assert_eq!(
        summary(condition(&st, types::DEGRADED)),
        json!(["False", "Healthy"])
    );
}
