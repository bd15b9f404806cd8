//! Objects a Go-operator install left for the same Catalog (its controller owner reference, the
//! Go field manager, no parent labels) are taken over in place: labelled as the catalog's from
//! then on, the Deployment's pod template unchanged (no rollout, no pod restart).
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
