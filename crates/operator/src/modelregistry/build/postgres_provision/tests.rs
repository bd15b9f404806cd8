use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use super::*;
use crate::capabilities::Capabilities;
use crate::modelregistry::build::desired;
use crate::settings::Settings;

fn registry(postgres: Value, annotations: Value) -> ModelRegistry {
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": "reg", "namespace": "ns", "uid": "u-1", "annotations": annotations },
        "spec": { "rest": {}, "postgres": postgres },
    }))
    .unwrap()
}

fn generated() -> ModelRegistry {
    registry(json!({ "generateDeployment": true }), json!({}))
}

fn build_all(mr: &ModelRegistry, settings: &Settings) -> Desired {
    desired(&BuildInput {
        mr,
        settings,
        caps: &Capabilities::vanilla(),
        cluster_domain: None,
        ingress_gateway: None,
        oauth_cookie_secret: None,
        legacy_selector: false,
    })
    .expect("builds")
}

fn typed<K: serde::de::DeserializeOwned>(out: &Desired, kind: &str, name: &str) -> K {
    out.children
        .iter()
        .find(|c| c.resource.kind == kind && c.name() == name)
        .unwrap_or_else(|| panic!("{kind} {name}"))
        .to_typed()
}

#[test]
fn the_database_is_built_as_upstream_with_the_operators_image() {
    let mut settings = Settings::for_tests();
    settings.images.postgres = "example.com/pg:16".into();
    let out = build_all(&generated(), &settings);
    let d: Deployment = typed(&out, "Deployment", "reg-postgres");
    let spec = d.spec.unwrap();
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("example.com/pg:16"));
    let env = serde_json::to_value(c.env.as_ref().unwrap()).unwrap();
    assert_eq!(
        env,
        json!([
            {"name": "POSTGRESQL_DATABASE", "value": "model_registry"},
            {"name": "POSTGRESQL_USER", "valueFrom": {"secretKeyRef":
                {"name": "reg-postgres-credentials", "key": "username", "optional": false}}},
            {"name": "POSTGRESQL_PASSWORD", "valueFrom": {"secretKeyRef":
                {"name": "reg-postgres-credentials", "key": "password", "optional": false}}},
        ])
    );
    assert_eq!(
        pod.volumes.unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "reg-postgres-storage"
    );
    // The database pods are not the registry's: the registry's selector does not match them.
    let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
    let registry_selector = names::selector(&generated());
    assert!(
        !registry_selector
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
    );
    assert_eq!(pod_labels["sidecar.istio.io/inject"], "false");
    // Owned by the registry, labelled as its child.
    assert_eq!(d.metadata.owner_references.unwrap()[0].uid, "u-1");
    assert_eq!(
        d.metadata.labels.unwrap()["modelregistry.opendatahub.io/parent-name"],
        "reg"
    );

    let svc: Service = typed(&out, "Service", "reg-postgres");
    let s = svc.spec.unwrap();
    assert_eq!(s.selector.unwrap(), pod_selector(&generated()));
    assert_eq!(s.ports.unwrap()[0].port, 5432);

    let np: NetworkPolicy = typed(&out, "NetworkPolicy", "reg-postgres");
    assert_eq!(
        serde_json::to_value(np.spec.unwrap()).unwrap(),
        json!({
            "podSelector": {"matchLabels": pod_selector(&generated())},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"app": "reg", "component": "model-registry",
                                                          "app.kubernetes.io/name": "reg"}}}],
                "ports": [{"port": 5432, "protocol": "TCP"}],
            }],
        })
    );
    // Neither the Secret nor the claim is a re-applied child (created once by the reconciler).
    assert!(
        !out.children
            .iter()
            .any(|c| c.resource.kind == "Secret" || c.resource.kind == "PersistentVolumeClaim")
    );
}

#[test]
fn the_spec_image_overrides_the_operators() {
    let mr = registry(
        json!({ "generateDeployment": true, "image": "mine/pg:1" }),
        json!({}),
    );
    let out = build_all(&mr, &Settings::for_tests());
    let d: Deployment = typed(&out, "Deployment", "reg-postgres");
    assert_eq!(
        d.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("mine/pg:1")
    );
}

#[test]
fn the_registry_connects_to_the_generated_database_whatever_the_spec_says() {
    let mr = registry(
        json!({ "generateDeployment": true, "database": "other", "username": "someone",
                "sslMode": "verify-full" }),
        json!({}),
    );
    let out = build_all(&mr, &Settings::for_tests());
    let d: Deployment = typed(&out, "Deployment", "reg");
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    let args = c.args.clone().unwrap_or_default().join(" ");
    for part in [
        "host=reg-postgres",
        "port=5432",
        "user=modelregistry",
        "dbname=model_registry",
        "sslmode=disable",
    ] {
        assert!(args.contains(part), "{part} in {args}");
    }
    assert!(
        !args.contains("someone") && !args.contains("other"),
        "{args}"
    );
    // The password only by reference, from the generated Secret.
    let env = serde_json::to_value(c.env.as_ref().unwrap()).unwrap();
    let pg = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "PGPASSWORD")
        .expect("PGPASSWORD");
    assert_eq!(
        pg["valueFrom"]["secretKeyRef"],
        json!({"name": "reg-postgres-credentials", "key": "password", "optional": false})
    );
}

#[test]
fn secret_and_claim_are_owned_unless_the_data_is_kept() {
    let owned = generated();
    let s = secret(&owned, "pw");
    assert_eq!(s.metadata.owner_references.as_ref().unwrap().len(), 1);
    assert_eq!(
        s.data.as_ref().unwrap()["username"].0,
        b"modelregistry".to_vec()
    );
    assert_eq!(s.data.unwrap()["password"].0, b"pw".to_vec());
    let p = pvc(&owned);
    assert_eq!(p.metadata.owner_references.as_ref().unwrap().len(), 1);
    let spec = p.spec.unwrap();
    assert_eq!(spec.access_modes.unwrap(), vec!["ReadWriteOnce"]);
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"].0,
        "5Gi"
    );

    let kept = registry(
        json!({ "generateDeployment": true }),
        json!({ KEEP_ANNOTATION: "true" }),
    );
    assert!(keep_data(&kept));
    assert!(secret(&kept, "pw").metadata.owner_references.is_none());
    assert!(pvc(&kept).metadata.owner_references.is_none());
    // Still labelled as the registry's, so a registry of the same name finds them again.
    assert_eq!(
        pvc(&kept).metadata.labels.unwrap()["modelregistry.opendatahub.io/parent-name"],
        "reg"
    );
    assert!(!keep_data(&registry(
        json!({ "generateDeployment": true }),
        json!({ KEEP_ANNOTATION: "no" })
    )));
}

#[test]
fn nothing_is_generated_unless_asked() {
    let mr = registry(
        json!({ "host": "db", "username": "u", "database": "d" }),
        json!({}),
    );
    assert!(!enabled(&mr));
    let out = build_all(&mr, &Settings::for_tests());
    assert!(!out.children.iter().any(|c| c.name() == "reg-postgres"));
}
