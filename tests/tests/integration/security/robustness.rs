//! Item 8 of issue 15: the operator does not fight the cluster's own controls. Reproduced
//! before the fix: every apply of the registry's Deployment set `replicas: 1` with force, so a
//! `kubectl scale` (or an HorizontalPodAutoscaler) was undone by the next reconcile.
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use mro_api::ModelRegistry;
use mro_tests::cluster::Flavour;
use mro_tests::wait::eventually;
use serde_json::json;

use crate::modelregistry_controller::{Env, postgres_sample};

#[tokio::test(flavor = "multi_thread")]
async fn a_scaled_registry_stays_scaled_across_spec_changes() {
    let env = Env::new(Flavour::Vanilla, "sec-scale").await;
    let name = env.create_registry(postgres_sample("sec-scale")).await;
    let deployments = env.api::<Deployment>();
    env.wait_deployment(&name).await;
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas);
    assert_eq!(replicas(&deployments.get(&name).await.unwrap()), Some(1));

    // `kubectl scale deployment <name> --replicas 3`.
    deployments
        .patch_scale(
            &name,
            &PatchParams {
                field_manager: Some("kubectl".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .unwrap();
    // A spec change the controller must apply to the Deployment.
    env.api::<ModelRegistry>()
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "rest": { "resources": {
                "requests": { "cpu": "123m", "memory": "64Mi" } } } } })),
        )
        .await
        .unwrap();
    let cpu = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .is_some_and(|p| {
                p.containers.iter().any(|c| {
                    c.resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .is_some_and(|r| r.get("cpu").is_some_and(|q| q.0 == "123m"))
                })
            })
    };
    eventually("the spec change on the Deployment", || async {
        deployments.get(&name).await.is_ok_and(|d| cpu(&d))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(replicas(&deployments.get(&name).await.unwrap()), Some(3));
}
