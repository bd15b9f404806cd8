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

/// The platform Auth API installed after the controller started is watched from then on: with
/// the Catalog Available (its periodic reconcile 5 minutes away), the admin binding follows an
/// Auth created, then changed, well within that time.
#[tokio::test(flavor = "multi_thread")]
async fn the_platform_auth_api_installed_after_the_start_is_watched() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let mut t = CatalogEnv::new("catalog-auth-later").await;
    let client = t.client().clone();
    // No Auth API when the controller starts (an earlier test may have installed it).
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let _ = crds
        .delete(
            "auths.services.platform.opendatahub.io",
            &Default::default(),
        )
        .await;
    eventually_within("the Auth API no longer served", WAIT, || async {
        crds.get_opt("auths.services.platform.opendatahub.io")
            .await
            .is_ok_and(|c| c.is_none())
            && client
                .list_api_group_resources("services.platform.opendatahub.io/v1alpha1")
                .await
                .ok()
                .is_none_or(|l| l.resources.iter().all(|r| r.name != "auths"))
    })
    .await;
    t.start(None).await;
    let ns = t.env.ns.clone();
    t.create_catalog_in(&ns).await;
    t.wait_for::<Deployment>("model-catalog").await;
    t.make_pods_ready().await;
    t.wait_available(&ns, "True", "DeploymentAvailable").await;

    t.env
        .cluster
        .install_platform_apis(&[PlatformApi::PlatformAuth])
        .await
        .expect("the platform Auth API");
    let auths = auths(t.client());
    let auth: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "services.platform.opendatahub.io/v1alpha1", "kind": "Auth",
        "metadata": {"name": "auth"},
        "spec": {"adminGroups": ["late-admins"]}
    }))
    .unwrap();
    eventually_within("the Auth created", WAIT, || async {
        auths.create(&PostParams::default(), &auth).await.is_ok()
            || auths.get_opt("auth").await.ok().flatten().is_some()
    })
    .await;
    let bindings = t.api::<RoleBinding>();
    let bound = |want: &'static [&'static str]| {
        let bindings = bindings.clone();
        async move {
            bindings
                .get_opt("model-catalog-admin-binding")
                .await
                .ok()
                .flatten()
                .is_some_and(|rb| groups(&rb) == want)
        }
    };
    eventually_within("the admin binding for the late Auth", WAIT, || {
        bound(&["late-admins"])
    })
    .await;
    // A change now reaches the Catalog through the watch.
    auths
        .patch(
            "auth",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"adminGroups": ["later-admins"]}})),
        )
        .await
        .unwrap();
    eventually_within("the admin binding follows the change", WAIT, || {
        bound(&["later-admins"])
    })
    .await;
    let _ = auths.delete("auth", &Default::default()).await;
    t.delete_catalog_in(&ns).await;
}
