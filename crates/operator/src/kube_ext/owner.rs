//! The metadata every controller stamps on its children: the one controller owner reference to
//! the parent, and the labels (the controller's own set plus the parent labels of
//! [`super::child`]).
//!
//! Why here: a child in its parent's namespace is owned (garbage-collected with the parent);
//! one elsewhere, or cluster-scoped, cannot be (Kubernetes refuses cross-namespace owners) and
//! is found again by its labels alone. Each controller used to spell both shapes out; what
//! stays with a controller is only which labels its children carry.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use super::child::Parent;

/// The operator, in the `app.kubernetes.io/managed-by` label of its children (and the
/// `created-by` label of those that carry one).
pub const MANAGED_BY: &str = "model-registry-operator";

/// The controller owner reference to `parent`, as stored (with its name and uid).
pub fn controller_ref<K: Resource<DynamicType = ()>>(parent: &K) -> OwnerReference {
    parent
        .controller_owner_ref(&())
        .unwrap_or_else(|| panic!("a stored {} has a name and uid", K::kind(&())))
}

/// Metadata of a child in `parent`'s namespace, owned by it.
pub fn owned_meta<K: Resource<DynamicType = ()>>(
    parent: &K,
    name: impl Into<String>,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: parent.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![controller_ref(parent)]),
        ..ObjectMeta::default()
    }
}

/// Metadata of a child that has no owner reference: in `namespace`, or cluster-scoped when
/// `None` (a finalizer removes it, found by its labels).
pub fn unowned_meta(
    namespace: Option<String>,
    name: impl Into<String>,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace,
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// A label map from `(key, value)` pairs.
pub fn label_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A child's labels: the controller's own `pairs`, and the labels naming `parent` (which a
/// pair cannot override).
pub fn child_labels(pairs: &[(&str, &str)], parent: &Parent) -> BTreeMap<String, String> {
    let mut labels = label_map(pairs);
    labels.extend(parent.labels());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_ext::child::{PARENT_KIND_LABEL, PARENT_NAME_LABEL, PARENT_NAMESPACE_LABEL};
    use k8s_openapi::api::core::v1::ConfigMap;

    fn stored(ns: &str, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                uid: Some("u-1".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn the_owner_reference_is_the_one_controller_reference() {
        let r = controller_ref(&stored("ns", "p"));
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("ConfigMap", "p"));
        assert_eq!(r.uid, "u-1");
        assert_eq!(r.controller, Some(true));
    }

    #[test]
    #[should_panic(expected = "a stored ConfigMap has a name and uid")]
    fn a_parent_never_stored_has_no_owner_reference() {
        let mut p = stored("ns", "p");
        p.metadata.uid = None;
        controller_ref(&p);
    }

    #[test]
    fn owned_children_live_in_the_parents_namespace() {
        let labels = label_map(&[("a", "1")]);
        let m = owned_meta(&stored("ns", "p"), "child", labels.clone());
        assert_eq!(m.name.as_deref(), Some("child"));
        assert_eq!(m.namespace.as_deref(), Some("ns"));
        assert_eq!(m.labels, Some(labels));
        assert_eq!(m.owner_references.unwrap()[0].uid, "u-1");
    }

    #[test]
    fn unowned_children_have_labels_only() {
        let m = unowned_meta(Some("other".into()), "child", label_map(&[("a", "1")]));
        assert_eq!(m.namespace.as_deref(), Some("other"));
        assert!(m.owner_references.is_none());
        let m = unowned_meta(None, "cluster-wide", BTreeMap::new());
        assert!(m.namespace.is_none() && m.owner_references.is_none());
    }

    #[test]
    fn child_labels_name_the_parent_whatever_the_pairs_say() {
        let parent = Parent::new("Kind", "ns", "p");
        let l = child_labels(
            &[("app", "x"), (PARENT_NAME_LABEL, "someone-else")],
            &parent,
        );
        assert_eq!(l["app"], "x");
        assert_eq!(l[PARENT_KIND_LABEL], "Kind");
        assert_eq!(l[PARENT_NAMESPACE_LABEL], "ns");
        assert_eq!(l[PARENT_NAME_LABEL], "p");
        assert_eq!(l.len(), 4);
    }
}
