//! The admin RoleBinding follows the platform Auth `auth`'s `spec.adminGroups`: made when it
//! names groups (with exactly those as subjects), removed when it names none.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use mro_tests::platform_apis::PlatformApi;
use mro_tests::wait::eventually_within;

use super::*;

fn groups(rb: &RoleBinding) -> Vec<String> {
    rb.subjects
        .iter()
        .flatten()
        .filter(|s| s.kind == "Group")
        .map(|s| s.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_binding_follows_the_platform_admin_groups() {
    let mut t = CatalogEnv::new("catalog-admins").await;
    t.env
        .cluster
        .install_platform_apis(&[PlatformApi::PlatformAuth])
        .await
        .expect("the platform Auth API");
    let auths = auths(t.client());
    let _ = auths.delete("auth", &Default::default()).await;
    t.start(None).await;
    let ns = t.env.ns.clone();
    t.create_catalog_in(&ns).await;
    t.wait_for::<Deployment>("model-catalog").await;

    let auth: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "services.platform.opendatahub.io/v1alpha1", "kind": "Auth",
        "metadata": {"name": "auth"},
        "spec": {"adminGroups": ["catalog-admins", "platform-admins"]}
    }))
    .unwrap();
    // The CRD may take a moment to be served after it is established.
    eventually_within("the Auth created", WAIT, || async {
        auths.create(&PostParams::default(), &auth).await.is_ok()
            || auths.get_opt("auth").await.ok().flatten().is_some()
    })
    .await;
    let bindings = t.api::<RoleBinding>();
    eventually_within(
        "the admin binding for the platform's groups",
        WAIT,
        || async {
            bindings
                .get_opt("model-catalog-admin-binding")
                .await
                .ok()
                .flatten()
                .is_some_and(|rb| groups(&rb) == ["catalog-admins", "platform-admins"])
        },
    )
    .await;

    auths
        .patch(
            "auth",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"adminGroups": []}})),
        )
        .await
        .unwrap();
    eventually_within("the admin binding removed", WAIT, || async {
        bindings
            .get_opt("model-catalog-admin-binding")
            .await
            .is_ok_and(|rb| rb.is_none())
    })
    .await;
    let _ = auths.delete("auth", &Default::default()).await;
    t.delete_catalog_in(&ns).await;
}
