//! Item 3 of issue 15: registry access granted for a transfer never outlives its reason, and
//! is never another transfer's. Reproduced before the fix: the RoleBinding stayed when the API
//! server refused the Job; transfers `c` in namespace `x-b` and `b-c` in namespace `x` both
//! wrote the RoleBinding `x-b-c-registry-user`, the second taking the first's grant.
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use mro_api::ModelRegistry;
use mro_api::model_transfer::TransferPhase;
use mro_tests::wait::eventually_within;
use serde_json::json;

use crate::modeltransfer_controller::{Env, WAIT, s3_to_oci};

/// A ModelRegistry behind kube-rbac-proxy in `ns` that allows transfers from `allowed`, with the
/// `registry-user-<name>` Role its controller would create (no controller watches `ns`).
async fn proxied_registry(env: &Env, ns: &str, name: &str, allowed: &[&str]) {
    let mr: ModelRegistry = serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry",
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

/// Generous: the shared control plane of a loaded machine.
const GRANT_GONE: std::time::Duration = std::time::Duration::from_secs(180);

fn via_ref(ns: &str, name: &str) -> serde_json::Value {
    let mut spec = s3_to_oci("http://unused");
    spec["registry"] = json!({ "modelRegistryRef": { "name": name, "namespace": ns } });
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_job_leaves_no_grant() {
    let env = Env::new("sec-refused").await;
    env.storage_secrets().await;
    let reg_ns = env.cluster.namespace("sec-refused-registry").await.unwrap();
    proxied_registry(&env, &reg_ns, "refusing", &[&env.ns]).await;
    let mut spec = via_ref(&reg_ns, "refusing");
    // Let through by the CRD schema, refused by the API server's Job validation.
    spec["job"]["tolerations"] = json!([{ "key": "k", "operator": "Sometimes" }]);
    env.create("refused", spec).await;
    env.wait_status("refused", "the Job refused", |st| {
        st.phase == Some(TransferPhase::Failed)
            && st
                .message
                .as_deref()
                .is_some_and(|m| m.contains("Job refused-sync"))
    })
    .await;
    // The Job is refused by a dry run before anything is granted; a grant applied by an older
    // reconcile would be deleted by name. Either way it is gone within the deadline, and no
    // later reconcile (status writes wake the controller) brings it back.
    let bindings = Api::<RoleBinding>::namespaced(env.client.clone(), &reg_ns);
    let left = || async {
        bindings
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|b| b.metadata.name)
            .filter(|n| n.contains("refused"))
            .collect::<Vec<_>>()
    };
    eventually_within("no grant for the refused Job", GRANT_GONE, || async {
        left().await.is_empty()
    })
    .await;
    // Another reconcile of the refused transfer (a no-op status patch wakes it) grants nothing.
    Api::<mro_api::ModelTransfer>::namespaced(env.client.clone(), &env.ns)
        .patch(
            "refused",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "metadata": { "annotations": { "poke": "1" } } })),
        )
        .await
        .unwrap();
    for _ in 0..5 {
        let found = left().await;
        assert!(found.is_empty(), "a grant for the refused Job: {found:?}");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    env.assert_no_job("refused-sync").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_of_transfers_in_different_namespaces_never_share_a_name() {
    // Namespaces `x` and `x-b`, transfers `b-c` and `c`: `x-b-c` both ways.
    let env = Env::new("sec-collide").await;
    env.storage_secrets().await;
    let other_ns = format!("{}-b", env.ns);
    let ns: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": other_ns } })).unwrap();
    Api::<Namespace>::all(env.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    mro_tests::cluster::grant_namespace_role(&env.client, &other_ns)
        .await
        .unwrap();
    let other = env.in_namespace(&other_ns).await;
    other.storage_secrets().await;
    let reg_ns = env.cluster.namespace("sec-collide-registry").await.unwrap();
    proxied_registry(&env, &reg_ns, "shared", &[&env.ns, &other_ns]).await;

    env.create("b-c", via_ref(&reg_ns, "shared")).await;
    env.wait_job("b-c-sync").await;
    other.create("c", via_ref(&reg_ns, "shared")).await;
    other.wait_job("c-sync").await;

    let bindings = Api::<RoleBinding>::namespaced(env.client.clone(), &reg_ns);
    let subjects = |b: &RoleBinding| {
        b.subjects
            .iter()
            .flatten()
            .map(|s| format!("{}/{}", s.namespace.clone().unwrap_or_default(), s.name))
            .collect::<Vec<_>>()
    };
    let want = [format!("{}/b-c-sync", env.ns), format!("{other_ns}/c-sync")];
    eventually_within("one binding per transfer", WAIT, || async {
        let all: Vec<Vec<String>> = bindings
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(subjects)
            .collect();
        want.iter()
            .all(|w| all.iter().any(|s| s == std::slice::from_ref(w)))
    })
    .await;
    // The transfers' grants (the harness's binding of the operator's namespace role aside).
    let all: Vec<RoleBinding> = bindings
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|b| {
            b.metadata.name.as_deref() != Some(mro_tests::cluster::OPERATOR_NAMESPACE_ROLE_BINDING)
        })
        .collect();
    assert_eq!(
        all.len(),
        2,
        "{:?}",
        all.iter().map(subjects).collect::<Vec<_>>()
    );
}
