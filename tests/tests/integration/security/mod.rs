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
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

mod grants;
mod robustness;
mod takeover;
mod tokens;

/// The shipped ModelTransfer editor ClusterRole, as `config/default` names it.
pub const TRANSFER_EDITOR_ROLE: &str = "model-registry-operator-modeltransfer-editor-role";

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
