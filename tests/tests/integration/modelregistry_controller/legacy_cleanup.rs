//! Issue 19, item 5: the Go operator's legacy cleanup. Before its Catalog controller the Go
//! operator ran a catalog per registry; its HEAD deletes `<name>-catalog` (Deployment and
//! Service), `<name>-catalog-https` (Route) and `<name>-catalog-https-route` (NetworkPolicy),
//! but only those the registry controls (internal/controller/modelregistry_controller.go@08f64eb:
//! 974-1018). So does this operator: an object under such a name that the registry does not
//! control (owned without being its controller, or not owned) is left alone, as is an object
//! the registry controls under another name.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::PostParams;
use mro_tests::cluster::Flavour;
use mro_tests::operator;
use mro_tests::wait::eventually_within;
use serde_json::{Value, json};

use super::{Env, postgres_sample};

const WAIT: Duration = Duration::from_secs(180);
const NAME: &str = "legacy-cleanup";

fn deployment(name: &str, owners: &Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": owners},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "catalog", "image": "quay.io/opendatahub/model-registry:v0.3.14"}]},
            },
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_legacy_catalog_objects_the_registry_controls_are_deleted() {
    let mut env = Env::new(Flavour::OpenShift, "mr-legacy").await;
    // The Go operator left them before this operator ever saw the registry (it looks once per
    // registry): no operator while they are made.
    env.stop_operator().await;
    env.create_registry(postgres_sample(NAME)).await;
    let uid = env.registry(NAME).await.uid().unwrap();
    let owner = |controller: bool| {
        json!([{"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry",
                "name": NAME, "uid": uid, "controller": controller, "blockOwnerDeletion": true}])
    };
    let pp = PostParams::default();
    let deployments = env.api::<Deployment>();
    let services = env.api::<Service>();
    let policies = env.api::<NetworkPolicy>();
    let routes = env.dynamic("route.openshift.io", "v1", "Route", "routes", Some(&env.ns));
    let legacy = format!("{NAME}-catalog");
    // Controlled by the registry, under the legacy names: deleted.
    deployments
        .create(&pp, &deployment(&legacy, &owner(true)))
        .await
        .unwrap();
    routes
        .create(
            &pp,
            &serde_json::from_value(json!({
                "apiVersion": "route.openshift.io/v1", "kind": "Route",
                "metadata": {"name": format!("{legacy}-https"), "ownerReferences": owner(true)},
                "spec": {"host": format!("{legacy}.apps.example.com"),
                         "to": {"kind": "Service", "name": legacy, "weight": 100}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    policies
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": format!("{legacy}-https-route"), "ownerReferences": owner(true)},
                "spec": {"podSelector": {"matchLabels": {"app": legacy}}, "policyTypes": ["Ingress"]},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    // Owned by the registry but not its controller, under a legacy name: kept.
    services
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": legacy, "ownerReferences": owner(false)},
                "spec": {"ports": [{"name": "http", "port": 8080}], "selector": {"app": legacy}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    // Controlled by the registry under another name: kept.
    let other = format!("{NAME}-catalog-v2");
    deployments
        .create(&pp, &deployment(&other, &owner(true)))
        .await
        .unwrap();

    env.operator = Some(
        operator::builder(env.cluster, operator::test_settings(&env.ns))
            .start()
            .await,
    );
    eventually_within(
        "the legacy objects the registry controls to go",
        WAIT,
        || async {
            let gone_dep = deployments
                .get_opt(&legacy)
                .await
                .is_ok_and(|d| d.is_none_or(|d| d.metadata.deletion_timestamp.is_some()));
            let gone_route = routes
                .get_opt(&format!("{legacy}-https"))
                .await
                .is_ok_and(|r| r.is_none());
            let gone_policy = policies
                .get_opt(&format!("{legacy}-https-route"))
                .await
                .is_ok_and(|p| p.is_none());
            gone_dep && gone_route && gone_policy
        },
    )
    .await;
    // The deletes came from one pass over the four names, which read the Service first
    // (Deployment, Service, Route, NetworkPolicy): it was looked at and kept.
    let kept = services.get(&legacy).await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none());
    let kept = deployments.get(&other).await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none());
    // And the registry itself is served as usual.
    env.wait_deployment(NAME).await;
}
