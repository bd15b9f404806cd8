//! Registry access for a ModelRegistry behind kube-rbac-proxy (a RoleBinding in the registry's
//! namespace, revoked when no longer needed), deletion without leftovers, and the spec guard.
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mro_api::model_transfer::TransferPhase;
use mro_api::{ModelRegistry, ModelTransfer};
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::{Env, WAIT, condition, s3_to_oci};

/// A ModelRegistry behind kube-rbac-proxy in namespace `ns` that allows transfers from the
/// namespaces `allowed`, with the `registry-user-<name>` Role its controller would create (no
/// controller watches that namespace in this test).
async fn proxied_registry(env: &Env, ns: &str, name: &str, allowed: &[&str]) {
    let mr: ModelRegistry = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": name },
        "spec": {
            "rest": {}, "kubeRBACProxy": { "port": 8443 },
            "postgres": { "host": "db", "database": "model_registry", "username": "u",
                          "passwordSecret": { "name": "db", "key": "password" } },
            "modelTransfers": { "allowedNamespaces": allowed }
        }
    }))
    .unwrap();
    Api::<ModelRegistry>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &mr)
        .await
        .unwrap();
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": format!("registry-user-{name}") },
        "rules": [{ "apiGroups": [""], "resources": ["services"], "resourceNames": [name], "verbs": ["get"] }]
    }))
    .unwrap();
    Api::<Role>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
}

fn via_ref(ns: &str, name: &str) -> serde_json::Value {
    let mut spec = s3_to_oci("http://unused");
    spec["registry"] = json!({ "modelRegistryRef": { "name": name, "namespace": ns } });
    spec
}

async fn binding(env: &Env, ns: &str, name: &str) -> Option<RoleBinding> {
    Api::<RoleBinding>::namespaced(env.client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_namespace_grant_is_revoked_and_deletion_leaves_nothing() {
    let env = Env::new("mt-grant").await;
    env.storage_secrets().await;
    let reg_ns = env.cluster.namespace("mt-grant-registry").await.unwrap();
    proxied_registry(&env, &reg_ns, "central", &[&env.ns]).await;

    env.create("granted", via_ref(&reg_ns, "central")).await;
    let job = env.wait_job("granted-sync").await;
    let spec = job.spec.unwrap().template.spec.unwrap();
    let text = serde_json::to_string(&spec).unwrap();
    assert!(
        text.contains(&format!("https://central.{reg_ns}.svc")),
        "{text}"
    );
    assert!(
        text.contains("serviceAccountToken"),
        "a projected token for the proxy"
    );
    assert_eq!(spec.automount_service_account_token, Some(false));

    // Exactly the Job's ServiceAccount gets the registry's user Role, in the registry namespace.
    let rb_name = format!("{}.granted-registry-user", env.ns);
    let rb = binding(&env, &reg_ns, &rb_name).await.expect("RoleBinding");
    assert_eq!(rb.role_ref.name, "registry-user-central");
    let subjects = rb.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].name, "granted-sync");
    assert_eq!(subjects[0].namespace.as_deref(), Some(env.ns.as_str()));
    let labels = rb.metadata.labels.unwrap();
    assert_eq!(
        labels["modelregistry.opendatahub.io/parent-name"],
        "granted"
    );
    assert_eq!(
        labels["modelregistry.opendatahub.io/parent-namespace"],
        env.ns
    );
    let t = env.transfer("granted").await;
    assert!(
        t.metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f.contains("modeltransfer")),
        "a finalizer guards the cross-namespace RoleBinding"
    );

    // Deletion: Job, pods, ConfigMap, ServiceAccount and the RoleBinding go; the registry stays.
    let pod = env.wait_pod("granted-sync").await;
    env.api::<ModelTransfer>()
        .delete("granted", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within("everything of the transfer to be gone", WAIT, || async {
        env.api::<ModelTransfer>()
            .get_opt("granted")
            .await
            .unwrap()
            .is_none()
            && binding(&env, &reg_ns, &rb_name).await.is_none()
            && env
                .api::<Job>()
                .get_opt("granted-sync")
                .await
                .unwrap()
                .is_none()
            && env
                .api::<ConfigMap>()
                .get_opt("granted-metadata")
                .await
                .unwrap()
                .is_none()
            && env
                .api::<ServiceAccount>()
                .get_opt("granted-sync")
                .await
                .unwrap()
                .is_none()
            && env
                .api::<Pod>()
                .get_opt(&kube::ResourceExt::name_any(&pod))
                .await
                .unwrap()
                .is_none()
    })
    .await;
    let reg = Api::<ModelRegistry>::namespaced(env.client.clone(), &reg_ns);
    assert!(reg.get_opt("central").await.unwrap().is_some());
    let roles = Api::<Role>::namespaced(env.client.clone(), &reg_ns);
    assert!(
        roles
            .get_opt("registry-user-central")
            .await
            .unwrap()
            .is_some()
    );

    // A failed transfer keeps nothing: its grant is revoked and the finalizer released.
    env.create("revoked", via_ref(&reg_ns, "central")).await;
    let rb2 = format!("{}.revoked-registry-user", env.ns);
    let pod = env.wait_pod("revoked-sync").await;
    assert!(binding(&env, &reg_ns, &rb2).await.is_some());
    env.finish_pod(
        &pod,
        1,
        r#"{"reason":"SourceUnavailable","message":"gone"}"#,
    )
    .await;
    env.wait_status("revoked", "Failed", |s| {
        s.phase == Some(TransferPhase::Failed)
    })
    .await;
    eventually_within("the grant to be revoked", WAIT, || async {
        binding(&env, &reg_ns, &rb2).await.is_none()
            && env
                .transfer("revoked")
                .await
                .metadata
                .finalizers
                .unwrap_or_default()
                .is_empty()
    })
    .await;
    let left = Api::<RoleBinding>::namespaced(env.client.clone(), &reg_ns)
        .list(
            &ListParams::default().labels("modelregistry.opendatahub.io/parent-kind=ModelTransfer"),
        )
        .await
        .unwrap();
    assert!(
        left.items.is_empty(),
        "no transfer RoleBinding left in the registry namespace"
    );
}

/// Transfer RoleBindings in namespace `ns`.
async fn transfer_bindings(env: &Env, ns: &str) -> Vec<RoleBinding> {
    Api::<RoleBinding>::namespaced(env.client.clone(), ns)
        .list(
            &ListParams::default().labels("modelregistry.opendatahub.io/parent-kind=ModelTransfer"),
        )
        .await
        .unwrap()
        .items
}

/// A ModelRegistry in another namespace decides who gets its user Role: without its opt-in the
/// transfer fails before any Job or RoleBinding exists; once it opts in, the transfer proceeds
/// on its own; when it withdraws, the running transfer's grant is revoked.
#[tokio::test(flavor = "multi_thread")]
async fn cross_namespace_registry_must_opt_in_before_anything_is_granted() {
    let env = Env::new("mt-optin").await;
    env.storage_secrets().await;
    let reg_ns = env.cluster.namespace("mt-optin-registry").await.unwrap();
    proxied_registry(&env, &reg_ns, "private", &["someone-else"]).await;

    env.create("denied", via_ref(&reg_ns, "private")).await;
    let t = env
        .wait_status("denied", "RegistryAccessDenied", |s| {
            s.phase == Some(TransferPhase::Failed)
                && condition(s, "Failed") == Some(("True".into(), "RegistryAccessDenied".into()))
        })
        .await;
    let msg = t.status.unwrap().message.unwrap();
    assert!(
        msg.contains("spec.registry.modelRegistryRef")
            && msg.contains(&format!("{:?}", env.ns))
            && msg.contains("spec.modelTransfers.allowedNamespaces"),
        "{msg}"
    );
    env.assert_no_job("denied-sync").await;
    assert!(transfer_bindings(&env, &reg_ns).await.is_empty());
    assert!(
        env.transfer("denied")
            .await
            .metadata
            .finalizers
            .unwrap_or_default()
            .is_empty(),
        "nothing to clean up, so no finalizer"
    );
    assert!(
        env.api::<ServiceAccount>()
            .get_opt("denied-sync")
            .await
            .unwrap()
            .is_none(),
        "no ServiceAccount before access is allowed"
    );

    // The registry's owner opts in: the transfer proceeds by itself (periodic re-check).
    let registries = Api::<ModelRegistry>::namespaced(env.client.clone(), &reg_ns);
    let allow = |namespaces: Vec<String>| json!({ "spec": { "modelTransfers": { "allowedNamespaces": namespaces } } });
    registries
        .patch(
            "private",
            &PatchParams::default(),
            &Patch::Merge(&allow(vec!["someone-else".into(), env.ns.clone()])),
        )
        .await
        .unwrap();
    env.wait_job("denied-sync").await;
    let rb_name = format!("{}.denied-registry-user", env.ns);
    eventually_within("the grant", WAIT, || async {
        binding(&env, &reg_ns, &rb_name).await.is_some()
    })
    .await;
    env.wait_status("denied", "Pending with a Job", |s| {
        s.phase == Some(TransferPhase::Pending) && s.job_name.is_some()
    })
    .await;

    // The owner withdraws while the Job runs: the grant goes at the next reconcile (here
    // triggered by the pod starting).
    registries
        .patch(
            "private",
            &PatchParams::default(),
            &Patch::Merge(&allow(vec!["someone-else".into()])),
        )
        .await
        .unwrap();
    let pod = env.wait_pod("denied-sync").await;
    env.run_pod(&pod).await;
    eventually_within("the grant to be revoked", WAIT, || async {
        binding(&env, &reg_ns, &rb_name).await.is_none()
    })
    .await;
    assert!(transfer_bindings(&env, &reg_ns).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn spec_change_after_job_is_reported_and_job_untouched() {
    let env = Env::new("mt-immutable").await;
    env.storage_secrets().await;
    env.create("fixed", s3_to_oci("http://registry.example:8080"))
        .await;
    let before = env.wait_job("fixed-sync").await;
    env.wait_status("fixed", "Pending", |s| s.job_name.is_some())
        .await;
    let cm_before = env.api::<ConfigMap>().get("fixed-metadata").await.unwrap();

    // Older API servers do not evaluate the CRD's immutability rule, so the change is stored.
    let patch = json!({ "spec": { "source": { "s3": { "key": "iris/v2/" } },
                                  "model": { "modelVersion": { "name": "v2" } } } });
    env.api::<ModelTransfer>()
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let t = env
        .wait_status("fixed", "SpecChanged", |s| {
            condition(s, "Failed") == Some(("True".into(), "SpecChanged".into()))
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(st.phase, Some(TransferPhase::Failed));
    assert!(st.message.unwrap().contains("create a new ModelTransfer"));
    assert_eq!(st.observed_generation, t.metadata.generation);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = env.api::<Job>().get("fixed-sync").await.unwrap();
    assert_eq!(after.metadata.uid, before.metadata.uid);
    assert_eq!(
        serde_json::to_value(&after.spec.as_ref().unwrap().template.spec).unwrap(),
        serde_json::to_value(&before.spec.as_ref().unwrap().template.spec).unwrap(),
        "the running Job is never changed"
    );
    assert_eq!(after.metadata.annotations, before.metadata.annotations);
    let cm_after = env.api::<ConfigMap>().get("fixed-metadata").await.unwrap();
    assert_eq!(
        cm_after.data, cm_before.data,
        "the Job's inputs are not changed either"
    );
}
