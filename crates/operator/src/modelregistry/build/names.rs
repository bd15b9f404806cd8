//! Names, labels and owner references of a registry's children (deterministic, as upstream).
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use mro_api::ModelRegistry;

use crate::kube_ext::child::{PARENT_KIND_LABEL, PARENT_NAME_LABEL, PARENT_NAMESPACE_LABEL};

pub const MANAGED_BY: &str = "model-registry-operator";
pub const KIND: &str = "ModelRegistry";

/// The labels every child carries: upstream's `app`/`component`/`app.kubernetes.io/*` set plus our
/// parent labels (used to prune and to clean up children that cannot have owner references).
pub fn labels(mr: &ModelRegistry) -> BTreeMap<String, String> {
    let name = mr.name_any();
    let ns = mr.namespace().unwrap_or_default();
    [
        ("app", name.as_str()),
        ("component", "model-registry"),
        ("app.kubernetes.io/name", name.as_str()),
        ("app.kubernetes.io/instance", name.as_str()),
        ("app.kubernetes.io/component", "model-registry"),
        ("app.kubernetes.io/created-by", MANAGED_BY),
        ("app.kubernetes.io/part-of", "model-registry"),
        ("app.kubernetes.io/managed-by", MANAGED_BY),
        (PARENT_KIND_LABEL, KIND),
        (PARENT_NAMESPACE_LABEL, ns.as_str()),
        (PARENT_NAME_LABEL, name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
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

/// The controller owner reference to the registry.
pub fn owner_ref(mr: &ModelRegistry) -> OwnerReference {
    mr.controller_owner_ref(&())
        .expect("a stored ModelRegistry has a name and uid")
}

/// Metadata of a child in the registry's namespace, owned by it.
pub fn owned_meta(mr: &ModelRegistry, name: impl Into<String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: mr.namespace(),
        labels: Some(labels(mr)),
        owner_references: Some(vec![owner_ref(mr)]),
        ..Default::default()
    }
}

/// Metadata of a cluster-scoped child (no owner reference possible; cleaned up by the finalizer).
pub fn cluster_meta(mr: &ModelRegistry, name: impl Into<String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(labels(mr)),
        ..Default::default()
    }
}

/// Metadata of a child in another namespace (no owner reference possible; cleaned up by the finalizer).
pub fn foreign_meta(mr: &ModelRegistry, namespace: &str, name: impl Into<String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(mr)),
        ..Default::default()
    }
}

/// `registry-user-<name>`: the Role granting access to the registry's Service.
pub fn user_role_name(mr: &ModelRegistry) -> String {
    format!("registry-user-{}", mr.name_any())
}
