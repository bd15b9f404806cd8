//! Item 2 of issue 15: a registry (or a transfer) never adopts an object it did not create.
//! Reproduced before the fix: a registry named `x` force-applied over an existing
//! ClusterRoleBinding `x-auth-delegator` (its subjects replaced, then deleted with the
//! registry), or, when that binding named another role, failed forever with a raw 422 in the
//! log and nothing in its status; an existing Group `x-users` was labelled as the registry's and
//! deleted with it; an existing ServiceAccount `<transfer>-sync` became the Job's identity.
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use mro_api::ModelRegistry;
use mro_api::model_transfer::TransferPhase;
use mro_tests::cluster::Flavour;
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::powerful_service_account;
use crate::modelregistry_controller::{Env, postgres_sample};
use crate::modeltransfer_controller::{self as mt, WAIT, s3_to_oci};

const PARENT_NAME: &str = "modelregistry.opendatahub.io/parent-name";

async fn foreign_binding(env: &Env<'_>, name: &str, role: &str) -> ClusterRoleBinding {
    let crb: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": [{ "kind": "ServiceAccount", "name": "monitoring", "namespace": "kube-system" }]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(env.client.clone())
        .create(&PostParams::default(), &crb)
        .await
        .expect("create ClusterRoleBinding")
}

fn proxied(name: &str) -> serde_json::Value {
    let mut mr = postgres_sample(name);
    mr["spec"]["kubeRBACProxy"] = json!({});
    mr
}

#[tokio::test(flavor = "multi_thread")]
async fn registries_report_and_leave_alone_objects_they_did_not_create() {
    let env = Env::new(Flavour::OpenShift, "sec-takeover").await;
    let crbs = Api::<ClusterRoleBinding>::all(env.client.clone());
    let groups = env.dynamic("user.openshift.io", "v1", "Group", "groups", None);
    // Same role, another subject: an apply would have rewritten the subjects.
    let same_role = foreign_binding(&env, "sec-crb-auth-delegator", "system:auth-delegator").await;
    // Another role: an apply would have failed with 422 (roleRef is immutable), forever.
    let other_role = foreign_binding(&env, "sec-crb-role-auth-delegator", "view").await;
    let group: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "user.openshift.io/v1", "kind": "Group",
        "metadata": { "name": "sec-group-users" }, "users": ["bob"]
    }))
    .unwrap();
    let group = groups.create(&PostParams::default(), &group).await.unwrap();

    for name in ["sec-crb", "sec-crb-role", "sec-group"] {
        env.create_registry(proxied(name)).await;
    }
    for (name, taken) in [
        ("sec-crb", "ClusterRoleBinding sec-crb-auth-delegator"),
        (
            "sec-crb-role",
            "ClusterRoleBinding sec-crb-role-auth-delegator",
        ),
        ("sec-group", "Group sec-group-users"),
    ] {
        let mr = env
            .wait_condition(name, "Available", "False", Some("ResourceConflict"))
            .await;
        let c = mr
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Available")
            .unwrap();
        assert!(c.message.contains(taken), "{name}: {}", c.message);
    }

    // Deleting the registries deletes none of them, and none was changed.
    for name in ["sec-crb", "sec-crb-role", "sec-group"] {
        env.api::<ModelRegistry>()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let registries = env.api::<ModelRegistry>();
    eventually_within("the registries to be gone", WAIT, || async {
        registries
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|m| !m.name_any().starts_with("sec-"))
    })
    .await;
    for before in [same_role, other_role] {
        let now = crbs.get(&before.name_any()).await.expect("still there");
        assert_eq!(now.subjects, before.subjects);
        assert_eq!(now.role_ref, before.role_ref);
        assert!(
            !now.labels().contains_key(PARENT_NAME),
            "{:?}",
            now.labels()
        );
    }
    let now = groups.get("sec-group-users").await.expect("still there");
    assert_eq!(now.data["users"], group.data["users"]);
    assert!(
        !now.labels().contains_key(PARENT_NAME),
        "{:?}",
        now.labels()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_does_not_adopt_an_existing_service_account() {
    let env = mt::Env::new("sec-sa-takeover").await;
    env.storage_secrets().await;
    // `<transfer>-sync`, made by someone else (and powerful).
    powerful_service_account(&env.client, &env.ns, "adopt-sync", "admin").await;
    env.create("adopt", s3_to_oci("http://registry.example:8080"))
        .await;
    let t = env
        .wait_status("adopt", "a ResourceConflict", |st| {
            st.phase == Some(TransferPhase::Failed)
                && st.conditions.iter().any(|c| c.reason == "ResourceConflict")
        })
        .await;
    let message = t.status.unwrap().message.unwrap_or_default();
    assert!(message.contains("ServiceAccount adopt-sync"), "{message}");
    env.assert_no_job("adopt-sync").await;
    let sa = env.api::<ServiceAccount>().get("adopt-sync").await.unwrap();
    assert!(
        sa.owner_references().is_empty(),
        "{:?}",
        sa.owner_references()
    );
    assert!(!sa.labels().contains_key(PARENT_NAME));
}
