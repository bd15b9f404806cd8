//! Objects a Go-operator install left for the same Catalog (its controller owner reference, the
//! Go field manager, no parent labels) are taken over in place: labelled as the catalog's from
//! then on, the Deployment's pod template unchanged (no rollout, no pod restart). Its PostgreSQL
//! Secret, whatever owned it, is amended as Go amends it, its password kept.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use model_registry_operator::catalog::build::{self, CatalogInput};
use model_registry_operator::kube_ext::apply::GO_OPERATOR_MANAGER;
use model_registry_operator::kube_ext::child::PARENT_KIND_LABEL;
use mro_tests::wait::eventually_within;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn go_written_objects_are_adopted_without_a_rollout() {
    let mut t = CatalogEnv::new("catalog-adopt").await;
    let ns = t.env.ns.clone();
    let catalog = t.create_catalog_in(&ns).await;
    // What the Go controller wrote, as the Go controller wrote it.
    let mut settings = mro_tests::operator::test_settings(&ns);
    settings.registries_namespace = Some(ns.clone());
    settings.defaults.domain = Some("apps.example".into());
    let cs = CatalogSettings::new(&settings, |_| None);
    let input = CatalogInput {
        catalog: &catalog,
        settings: &cs,
        openshift: true,
        domain: Some("apps.example".into()),
        admin_groups: vec![],
        labeled_sources: vec![],
    };
    let go = PatchParams::apply(GO_OPERATOR_MANAGER).force();
    let mut dep = build::deployment::deployment(&input);
    dep.metadata.namespace = Some(ns.clone());
    let deployments = t.api::<Deployment>();
    deployments
        .patch("model-catalog", &go, &Patch::Apply(&dep))
        .await
        .expect("the Go operator's Deployment");
    let svc = build::access::service(&input);
    t.api::<Service>()
        .patch("model-catalog", &go, &Patch::Apply(&svc))
        .await
        .expect("the Go operator's Service");
    let before = deployments.get("model-catalog").await.unwrap();

    t.start(None).await;
    let labelled = |d: &Deployment| {
        d.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get(PARENT_KIND_LABEL).map(String::as_str) == Some("Catalog"))
    };
    eventually_within("the Go Deployment taken over", WAIT, || async {
        deployments
            .get("model-catalog")
            .await
            .is_ok_and(|d| labelled(&d))
    })
    .await;
    let services = t.api::<Service>();
    eventually_within("the Go Service taken over", WAIT, || async {
        services.get("model-catalog").await.is_ok_and(|s| {
            s.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(PARENT_KIND_LABEL))
        })
    })
    .await;
    // Its other objects are made meanwhile; the Deployment stayed the same rollout.
    t.wait_available(&ns, "False", "DeploymentUnavailable")
        .await;
    let after = deployments.get("model-catalog").await.unwrap();
    assert_eq!(after.metadata.uid, before.metadata.uid, "not recreated");
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "the spec did not change: no rollout"
    );
    assert_eq!(
        after.spec.as_ref().unwrap().template,
        before.spec.as_ref().unwrap().template
    );
    t.delete_catalog_in(&ns).await;
}

/// A PostgreSQL Secret an older Go install left (its own values, other labels, another owner)
/// is amended as the Go controller amends it: Go's labels set (others kept), its owner
/// references replaced by the Catalog's controller reference, and no key it has changed: the
/// password keeps opening the data.
#[tokio::test(flavor = "multi_thread")]
async fn a_go_written_postgres_secret_gets_gos_labels_and_owner_and_keeps_its_password() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let mut t = CatalogEnv::new("catalog-adopt-secret").await;
    let ns = t.env.ns.clone();
    let legacy_owner: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "legacy-owner"}})).unwrap();
    let legacy_owner = t
        .api::<ConfigMap>()
        .create(&PostParams::default(), &legacy_owner)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": "model-catalog-postgres",
            "labels": {"app": "legacy", "team": "data"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "legacy-owner",
                "uid": legacy_owner.metadata.uid.clone().unwrap(), "controller": true}]
        },
        "stringData": {"database-name": "legacy_db", "database-user": "legacy_user",
                       "database-password": "go-written password"}
    }))
    .unwrap();
    let secrets = t.api::<Secret>();
    let before = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let catalog = t.create_catalog_in(&ns).await;
    t.start(None).await;

    let go_labels = build::names::labels(build::names::Component::Postgres);
    let uid = catalog.metadata.uid.clone().unwrap();
    eventually_within(
        "the Secret with Go's labels and the Catalog as owner",
        WAIT,
        || async {
            secrets.get("model-catalog-postgres").await.is_ok_and(|s| {
                let labels = s.metadata.labels.clone().unwrap_or_default();
                go_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
                    && s.metadata
                        .owner_references
                        .as_ref()
                        .is_some_and(|r| r.len() == 1 && r[0].uid == uid)
            })
        },
    )
    .await;
    let after = secrets.get("model-catalog-postgres").await.unwrap();
    assert_eq!(after.metadata.uid, before.metadata.uid, "not recreated");
    let owner = &after.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Catalog", "catalog", Some(true))
    );
    let labels = after.metadata.labels.clone().unwrap();
    assert_eq!(labels["team"], "data", "labels of others stay");
    assert_eq!(labels["app"], "model-catalog");
    assert_eq!(labels["component"], "model-catalog-postgres");
    let data = after.data.clone().unwrap();
    assert_eq!(password(&after), b"go-written password");
    assert_eq!(data["database-name"].0, b"legacy_db");
    assert_eq!(data["database-user"].0, b"legacy_user");
    // The catalog server is wired to it as it is.
    t.wait_available(&ns, "False", "DeploymentUnavailable")
        .await;
    t.delete_catalog_in(&ns).await;
}

/// The Go operator's objects that name no Catalog (orphaned: their Catalog was deleted with
/// orphaning) or an earlier Catalog of the same name (deleted and made again while the Go
/// operator was down) are taken over in place, as the Go controller takes them: re-pointed to
/// this Catalog, labelled as its children, the Deployment not rolled.
///
/// The earlier Catalog's Deployment also names a ConfigMap as a (non-controller) owner, so that
/// garbage collection, which deletes an object once all its owners are gone, keeps it for the
/// test; it may drop the reference to the gone Catalog meanwhile, which leaves an object of no
/// Catalog: taken over the same way.
#[tokio::test(flavor = "multi_thread")]
async fn go_objects_of_no_catalog_or_an_earlier_one_are_taken_over_in_place() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let mut t = CatalogEnv::new("catalog-adopt-earlier").await;
    let ns = t.env.ns.clone();
    let catalog = t.create_catalog_in(&ns).await;
    let mut settings = mro_tests::operator::test_settings(&ns);
    settings.registries_namespace = Some(ns.clone());
    settings.defaults.domain = Some("apps.example".into());
    let cs = CatalogSettings::new(&settings, |_| None);
    let input = CatalogInput {
        catalog: &catalog,
        settings: &cs,
        openshift: true,
        domain: Some("apps.example".into()),
        admin_groups: vec![],
        labeled_sources: vec![],
    };
    let keeper: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "keeps-the-deployment"}})).unwrap();
    let keeper = t
        .api::<ConfigMap>()
        .create(&PostParams::default(), &keeper)
        .await
        .unwrap();
    let go = PatchParams::apply(GO_OPERATOR_MANAGER).force();
    let mut dep = build::deployment::deployment(&input);
    dep.metadata.namespace = Some(ns.clone());
    dep.metadata.owner_references = Some(vec![
        serde_json::from_value(json!({"apiVersion": "aihub.opendatahub.io/v1alpha1",
            "kind": "Catalog", "name": "catalog", "uid": "0a1b2c3d-0000-4000-8000-000000000000",
            "controller": true}))
        .unwrap(),
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "name": "keeps-the-deployment", "uid": keeper.metadata.uid.clone().unwrap()}))
        .unwrap(),
    ]);
    let deployments = t.api::<Deployment>();
    deployments
        .patch("model-catalog", &go, &Patch::Apply(&dep))
        .await
        .expect("the earlier Catalog's Deployment");
    let mut svc = build::access::service(&input);
    svc.metadata.owner_references = None;
    let services = t.api::<Service>();
    services
        .patch("model-catalog", &go, &Patch::Apply(&svc))
        .await
        .expect("the orphaned Service");
    let dep_before = deployments.get("model-catalog").await.unwrap();
    let svc_before = services.get("model-catalog").await.unwrap();

    t.start(None).await;
    let uid = catalog.metadata.uid.clone().unwrap();
    let taken = |meta: &kube::core::ObjectMeta| {
        meta.labels
            .as_ref()
            .is_some_and(|l| l.get(PARENT_KIND_LABEL).map(String::as_str) == Some("Catalog"))
            && meta
                .owner_references
                .as_ref()
                .is_some_and(|r| r.len() == 1 && r[0].uid == uid && r[0].controller == Some(true))
    };
    eventually_within(
        "the earlier Catalog's Deployment taken over",
        WAIT,
        || async {
            deployments
                .get("model-catalog")
                .await
                .is_ok_and(|d| taken(&d.metadata))
        },
    )
    .await;
    eventually_within("the orphaned Service taken over", WAIT, || async {
        services
            .get("model-catalog")
            .await
            .is_ok_and(|s| taken(&s.metadata))
    })
    .await;
    // Not a conflict: the reconcile went on to the status.
    t.wait_available(&ns, "False", "DeploymentUnavailable")
        .await;
    let dep_after = deployments.get("model-catalog").await.unwrap();
    assert_eq!(
        dep_after.metadata.uid, dep_before.metadata.uid,
        "not recreated"
    );
    assert_eq!(
        dep_after.metadata.generation, dep_before.metadata.generation,
        "no rollout"
    );
    let svc_after = services.get("model-catalog").await.unwrap();
    assert_eq!(
        svc_after.metadata.uid, svc_before.metadata.uid,
        "not recreated"
    );
    t.delete_catalog_in(&ns).await;
}
