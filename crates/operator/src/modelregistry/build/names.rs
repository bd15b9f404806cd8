//! Names and labels of a registry's children (deterministic, as upstream); their metadata is
//! shaped by the shared layer ([`crate::kube_ext::owner`]).
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use mro_api::ModelRegistry;

use crate::kube_ext::child::Parent;
use crate::kube_ext::owner::{self, MANAGED_BY};

pub const KIND: &str = "ModelRegistry";

/// The labels every child carries: upstream's `app`/`component`/`app.kubernetes.io/*` set plus our
/// parent labels (used to prune and to clean up children that cannot have owner references).
pub fn labels(mr: &ModelRegistry) -> BTreeMap<String, String> {
    let name = mr.name_any();
    owner::child_labels(
        &[
            ("app", name.as_str()),
            ("component", "model-registry"),
            ("app.kubernetes.io/name", name.as_str()),
            ("app.kubernetes.io/instance", name.as_str()),
            ("app.kubernetes.io/component", "model-registry"),
            ("app.kubernetes.io/created-by", MANAGED_BY),
            ("app.kubernetes.io/part-of", "model-registry"),
            ("app.kubernetes.io/managed-by", MANAGED_BY),
        ],
        &parent(mr),
    )
}

/// The registry as its children's labels name it.
pub fn parent(mr: &ModelRegistry) -> Parent {
    Parent::new(KIND, &mr.namespace().unwrap_or_default(), &mr.name_any())
}

/// Labels selecting the registry's pods: the Go operator's selector (`app`, `component`,
/// `app.kubernetes.io/name`; internal/controller/config/templates/deployment.yaml.tmpl@08f64eb),
/// so a Deployment it created is taken over in place (a Deployment selector cannot change), and
/// the generated database's pods (`app.kubernetes.io/name=<name>-postgres`) are not matched.
pub fn selector(mr: &ModelRegistry) -> BTreeMap<String, String> {
    let name = mr.name_any();
    [
        ("app".to_string(), name.clone()),
        ("component".to_string(), "model-registry".to_string()),
        ("app.kubernetes.io/name".to_string(), name),
    ]
    .into()
}

/// The Deployment selector this operator used before it took the Go operator's (`app`,
/// `component`): kept on Deployments created with it, since a selector cannot change. The pods
/// carry [`selector`]'s labels either way, which is what the Service and status select by.
pub fn legacy_selector(mr: &ModelRegistry) -> BTreeMap<String, String> {
    let mut s = selector(mr);
    s.remove("app.kubernetes.io/name");
    s
}

/// Metadata of a child in the registry's namespace, owned by it.
pub fn owned_meta(mr: &ModelRegistry, name: impl Into<String>) -> ObjectMeta {
    owner::owned_meta(mr, name, labels(mr))
}

/// Metadata of a cluster-scoped child (no owner reference possible; cleaned up by the finalizer).
pub fn cluster_meta(mr: &ModelRegistry, name: impl Into<String>) -> ObjectMeta {
    owner::unowned_meta(None, name, labels(mr))
}

/// Metadata of a child in another namespace (no owner reference possible; cleaned up by the finalizer).
pub fn foreign_meta(mr: &ModelRegistry, namespace: &str, name: impl Into<String>) -> ObjectMeta {
    owner::unowned_meta(Some(namespace.to_string()), name, labels(mr))
}

/// `registry-user-<name>`: the Role granting access to the registry's Service.
pub fn user_role_name(mr: &ModelRegistry) -> String {
    format!("registry-user-{}", mr.name_any())
}
