//! Attacks on the operator's trust boundaries, on the real local control plane with the operator
//! running under its own identity and the shipped `config/rbac` (issue 15). Each test is the
//! attack as a tenant would mount it, then the proof that it gets nothing:
//!
//! - [`tokens`]: a user who may only create ModelTransfers borrows no ServiceAccount, sends no
//!   token Secret in clear, and the tokens sent to a URL of their choice are refused by the API
//!   server.
//! - [`takeover`]: a registry named after someone else's ClusterRoleBinding or Group neither
//!   rewrites nor deletes it; it reports the conflict.
//! - [`grants`]: registry access granted for a transfer goes when its Job is refused, and one
//!   transfer's grant is never another's (names of different namespaces do not collide).
//! - [`robustness`]: a `kubectl scale` of a registry is not undone.
//! - [`rbac`]: the operator holds the rules of the README's RBAC table, each only in its scope,
//!   and nothing more (no tokens for other accounts, no kube-system Secrets, no escalation).
use k8s_openapi::api::authorization::v1::LocalSubjectAccessReview;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

mod grants;
mod rbac;
mod robustness;
mod takeover;
mod tokens;

/// Binds `user` in `ns` to the rules of the shipped ModelTransfer editor ClusterRole
/// (`config/rbac/modeltransfer_editor_role.yaml`), created under a name of this namespace's own:
/// other tests on the shared control plane install and remove the shipped role's rendered copy
/// (chart, kustomize), so binding that one raced with them. Waits until the API server's
/// authorizer lets `user` create ModelTransfers there (RBAC reaches it through informers).
pub async fn bind_user_to_transfer_editor(client: &Client, ns: &str, user: &str) {
    let path = mro_tests::tools::repo_root().join("config/rbac/modeltransfer_editor_role.yaml");
    let text = std::fs::read_to_string(&path).expect("read the shipped editor role");
    let mut role: ClusterRole = serde_saphyr::from_str(&text).expect("parse the editor role");
    let name = format!("{ns}-modeltransfer-editor-role");
    role.metadata = kube::api::ObjectMeta {
        name: Some(name.clone()),
        ..Default::default()
    };
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create the editor ClusterRole");
    bind_user(client, ns, user, &name).await;
    let review: LocalSubjectAccessReview = serde_json::from_value(json!({
        "metadata": { "namespace": ns },
        "spec": { "user": user, "resourceAttributes": {
            "namespace": ns, "verb": "create", "group": "modelregistry.opendatahub.io",
            "resource": "modeltransfers" } }
    }))
    .unwrap();
    let reviews = Api::<LocalSubjectAccessReview>::namespaced(client.clone(), ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("LocalSubjectAccessReview");
        if answer.status.is_some_and(|s| s.allowed) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{user} still may not create ModelTransfers in {ns} after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Binds `user` to the ClusterRole `role` in `ns`.
pub async fn bind_user(client: &Client, ns: &str, user: &str, role: &str) {
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": format!("{user}-{role}") },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rb)
        .await
        .expect("create RoleBinding");
}

/// A ServiceAccount `name` in `ns` holding the ClusterRole `role` there.
pub async fn powerful_service_account(client: &Client, ns: &str, name: &str, role: &str) {
    let sa: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": format!("{name}-{role}") },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": ns }]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rb)
        .await
        .expect("create RoleBinding");
}
