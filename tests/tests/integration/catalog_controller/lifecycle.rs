//! A Catalog from creation to deletion: every object, status from the Deployment and the
//! Service's ready endpoints, a labelled source reaching the server's arguments, user
//! ConfigMaps and the database password surviving reconciles, and the finalizer's cleanup.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_catalog_reconciles_into_its_objects_and_is_cleaned_up_on_deletion() {
    let mut t = CatalogEnv::new("catalog-life").await;
    t.start(None).await;
    let ns = t.env.ns.clone();
    let catalog = t.create_catalog_in(&ns).await;

    // Every object of the Go controller, under its fixed name.
    let dep: Deployment = t.wait_for("model-catalog").await;
    t.wait_available(&ns, "False", "DeploymentUnavailable")
        .await;
    t.wait_for::<ServiceAccount>("model-catalog").await;
    for cm in [
        "default-catalog-sources",
        "model-catalog-sources",
        "mcp-catalog-sources",
        "agent-catalog-sources",
        "model-catalog-kube-rbac-proxy-config",
    ] {
        t.wait_for::<ConfigMap>(cm).await;
    }
    let svc: Service = t.wait_for("model-catalog").await;
    assert_eq!(
        annotations(&svc)
            .get("routing.opendatahub.io/external-address-rest")
            .map(String::as_str),
        Some("model-catalog.apps.example:443")
    );
    t.wait_for::<Role>("model-catalog").await;
    t.wait_for::<Role>("model-catalog-admin").await;
    t.wait_for::<RoleBinding>("model-catalog-authenticated")
        .await;
    t.wait_for::<Deployment>("model-catalog-postgres").await;
    t.wait_for::<Service>("model-catalog-postgres").await;
    t.wait_for::<NetworkPolicy>("model-catalog-postgres").await;
    t.wait_for::<NetworkPolicy>("model-catalog-https-route")
        .await;
    let secret: Secret = t.wait_for("model-catalog-postgres").await;
    let routes = t
        .env
        .dynamic("route.openshift.io", "v1", "Route", "routes", Some(&ns));
    eventually_within("Route model-catalog-https", WAIT, || async {
        routes
            .get_opt("model-catalog-https")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    let crbs = Api::<ClusterRoleBinding>::all(t.client().clone());
    eventually_within("the auth-delegator binding", WAIT, || async {
        crbs.get_opt(AUTH_DELEGATOR).await.ok().flatten().is_some()
    })
    .await;
    // No admin groups (no platform Auth): no admin binding.
    assert!(
        t.api::<RoleBinding>()
            .get_opt("model-catalog-admin-binding")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !server_args(&dep)
            .iter()
            .any(|a| a.contains("labeled-sources")),
        "{:?}",
        server_args(&dep)
    );
    let with_finalizer = Api::<Catalog>::namespaced(t.client().clone(), &ns)
        .get("catalog")
        .await
        .unwrap();
    assert!(
        with_finalizer
            .finalizers()
            .iter()
            .any(|f| f == "catalog.aihub.opendatahub.io/finalizer")
    );
    assert_eq!(catalog.name_any(), "catalog");

    // Available from the Deployment and the ready endpoints (after the 5 s cooldown).
    t.make_pods_ready().await;
    let available = t.wait_available(&ns, "True", "DeploymentAvailable").await;
    assert_eq!(
        available.status.unwrap().observed_generation,
        available.metadata.generation
    );

    // A user's edit of a user ConfigMap survives; a labelled source reaches the arguments.
    let cms = t.api::<ConfigMap>();
    let edited = "catalogs:\n- id: mine\n  name: Mine\n  type: yaml\n";
    cms.patch(
        "model-catalog-sources",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"sources.yaml": edited}})),
    )
    .await
    .unwrap();
    let labeled: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "team-models", "labels": {"opendatahub.io/catalog-source": "true"}},
        "data": {"sources.yaml": "catalogs: []\n"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &labeled).await.unwrap();
    let deployments = t.api::<Deployment>();
    eventually_within(
        "the labelled source in the server's arguments",
        WAIT,
        || async {
            deployments.get("model-catalog").await.is_ok_and(|d| {
                server_args(&d).contains(
                    &"--catalogs-path=/data/labeled-sources/team-models/sources.yaml".into(),
                )
            })
        },
    )
    .await;
    assert_eq!(
        sources_doc(&cms.get("model-catalog-sources").await.unwrap()),
        edited
    );
    // The generated password is never rotated.
    assert_eq!(
        password(
            &t.api::<Secret>()
                .get("model-catalog-postgres")
                .await
                .unwrap()
        ),
        password(&secret)
    );
    // The label removed: the source leaves the arguments.
    cms.patch(
        "team-models",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"opendatahub.io/catalog-source": null}}})),
    )
    .await
    .unwrap();
    eventually_within(
        "the unlabelled source out of the arguments",
        WAIT,
        || async {
            deployments
                .get("model-catalog")
                .await
                .is_ok_and(|d| !server_args(&d).iter().any(|a| a.contains("team-models")))
        },
    )
    .await;

    // Deletion: the cluster-scoped binding goes with the finalizer; user ConfigMaps stay.
    t.delete_catalog_in(&ns).await;
    assert!(crbs.get_opt(AUTH_DELEGATOR).await.unwrap().is_none());
    for cm in [
        "model-catalog-sources",
        "mcp-catalog-sources",
        "agent-catalog-sources",
    ] {
        let kept = cms.get_opt(cm).await.unwrap();
        assert!(kept.is_some(), "user ConfigMap {cm} survives the Catalog");
    }
    assert_eq!(
        sources_doc(&cms.get("model-catalog-sources").await.unwrap()),
        edited
    );
}
