//! What users add to a registry's children is left alone: a ConfigMap key or label of their own
//! survives reconciles, the operator does not write the ConfigMap again for it, and the
//! registry's Deployment (so its pods) does not change.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::Role;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use mro_tests::cluster::Flavour;
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::{Env, postgres_sample};

const WAIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn config_map_keys_users_add_survive_reconciles_without_a_rewrite_or_rollout() {
    let env = Env::new(Flavour::Vanilla, "mr-user-edits").await;
    let name = "user-edits";
    let mut mr = postgres_sample(name);
    mr["spec"]["kubeRBACProxy"] = json!({});
    env.create_registry(mr).await;
    let cms = env.api::<ConfigMap>();
    let cm_name = format!("{name}-kube-rbac-proxy-config");
    eventually_within("the kube-rbac-proxy ConfigMap", WAIT, || async {
        matches!(cms.get_opt(&cm_name).await, Ok(Some(_)))
    })
    .await;
    env.wait_deployment(name).await;
    // A first reconcile completed (it wrote a status): the Deployment is as the operator wants.
    let registries = env.api::<mro_api::ModelRegistry>();
    eventually_within("a first status", WAIT, || async {
        registries
            .get(name)
            .await
            .ok()
            .and_then(|m| m.status)
            .is_some_and(|s| !s.conditions.is_empty())
    })
    .await;
    let deployment = env.api::<Deployment>().get(name).await.unwrap();
    let ours = cms.get(&cm_name).await.unwrap().data.unwrap();

    // A user's own key and label, written under another field manager.
    let edited = cms
        .patch(
            &cm_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"team": "data-science"}},
                                  "data": {"notes.txt": "ours, do not touch"}})),
        )
        .await
        .unwrap();

    // A reconcile after the edit: the Role, deleted, is recreated.
    let roles = env.api::<Role>();
    let role = format!("registry-user-{name}");
    let old_uid = roles.get(&role).await.unwrap().uid();
    roles.delete(&role, &DeleteParams::default()).await.unwrap();
    eventually_within("the Role is recreated", WAIT, || async {
        roles
            .get_opt(&role)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.uid() != old_uid)
    })
    .await;

    let now = cms.get(&cm_name).await.unwrap();
    assert_eq!(
        now.resource_version(),
        edited.resource_version(),
        "rewritten"
    );
    let data = now.data.clone().unwrap();
    assert_eq!(data["notes.txt"], "ours, do not touch");
    for (k, v) in &ours {
        assert_eq!(data.get(k), Some(v), "{k}");
    }
    assert_eq!(now.labels()["team"], "data-science");
    let after = env.api::<Deployment>().get(name).await.unwrap();
    assert_eq!(after.metadata.generation, deployment.metadata.generation);
}
