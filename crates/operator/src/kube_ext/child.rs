//! The child model: an object a controller wants to exist ([`Child`]), its identity
//! ([`ChildKey`]), the parent it belongs to ([`Parent`]) and the kinds a controller manages
//! ([`ManagedKind`]).
//!
//! Every child is handled as a `DynamicObject` with its `ApiResource`, so typed core objects and
//! platform objects (Routes, Istio, Authorino) go through one path. Children carry labels naming
//! their parent, which is how pruning and cleanup find them, including cluster-scoped and
//! cross-namespace children that cannot have owner references. Those labels are also the
//! creation marker that `super::apply` checks before writing over an existing object; an object
//! they do not name the same parent on is a [`Conflict`].
use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;

/// Label naming the parent custom resource (on every child).
pub const PARENT_NAME_LABEL: &str = "modelregistry.opendatahub.io/parent-name";
/// Label naming the parent's namespace (on every child).
pub const PARENT_NAMESPACE_LABEL: &str = "modelregistry.opendatahub.io/parent-namespace";
/// Label naming the parent's kind (on every child).
pub const PARENT_KIND_LABEL: &str = "modelregistry.opendatahub.io/parent-kind";

/// One object the controller wants to exist.
#[derive(Clone, Debug)]
pub struct Child {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub object: DynamicObject,
}

impl Child {
    /// A child from a typed Kubernetes object.
    pub fn typed<K>(obj: &K) -> Child
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let mut value = serde_json::to_value(obj).expect("Kubernetes objects serialize");
        value["apiVersion"] = K::api_version(&()).into();
        value["kind"] = K::kind(&()).into();
        let object: DynamicObject = serde_json::from_value(value).expect("object has metadata");
        Child {
            resource,
            namespaced: object.metadata.namespace.is_some(),
            object,
        }
    }

    /// A child of a kind we have no Rust type for (platform APIs), from JSON.
    pub fn dynamic(resource: ApiResource, value: serde_json::Value) -> Child {
        let mut value = value;
        value["apiVersion"] = resource.api_version.clone().into();
        value["kind"] = resource.kind.clone().into();
        let object: DynamicObject = serde_json::from_value(value).expect("object has metadata");
        Child {
            resource,
            namespaced: object.metadata.namespace.is_some(),
            object,
        }
    }

    pub fn name(&self) -> String {
        self.object.name_any()
    }

    pub fn namespace(&self) -> Option<String> {
        self.object.metadata.namespace.clone()
    }

    /// Identity used to compare desired and existing children.
    pub fn key(&self) -> ChildKey {
        ChildKey {
            group: self.resource.group.clone(),
            kind: self.resource.kind.clone(),
            namespace: self.namespace(),
            name: self.name(),
        }
    }

    /// Decodes the object as a typed resource (for tests and status computation).
    pub fn to_typed<K: serde::de::DeserializeOwned>(&self) -> K {
        serde_json::from_value(serde_json::to_value(&self.object).expect("serialize"))
            .expect("typed child")
    }

    /// The API of the child's kind in its namespace (or cluster-wide).
    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        match (&self.namespaced, self.namespace()) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &self.resource),
            _ => Api::all_with(client.clone(), &self.resource),
        }
    }
}

/// Identity of a child: group, kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ChildKey {
    /// The key of the namespaced object `name` of typed kind `K` in `namespace`.
    pub fn of<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> ChildKey {
        ChildKey {
            group: K::group(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }
}

/// An object exists under a child's name that was not created for the child's parent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} {} already exists{} and was not created by the operator for this resource ({}); it is \
     left untouched: delete or rename it, or rename this resource",
    key.kind,
    key.name,
    key.namespace.as_ref().map(|n| format!(" in namespace {n}")).unwrap_or_default(),
    claimed_by.as_ref().map_or_else(
        || "it has no parent labels".to_string(),
        |p| format!("its labels name {} {}/{}", p.kind, p.namespace, p.name)
    )
)]
pub struct Conflict {
    pub key: ChildKey,
    /// The parent the existing object's labels name, if any.
    pub claimed_by: Option<Parent>,
}

/// The parent a child's labels name (every child we build carries them).
pub fn parent_of(child: &Child) -> Option<Parent> {
    Parent::from_labels(child.object.labels())
}

/// A kind the controller may create, and where to look for existing children of it.
#[derive(Clone, Debug)]
pub struct ManagedKind {
    pub resource: ApiResource,
    pub namespaced: bool,
    /// Children of this kind are only ever in their parent's namespace.
    pub in_parent_namespace: bool,
}

/// The custom resource a child belongs to, as the child's labels name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Parent {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Parent {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Parent {
        Parent {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The parent named by a child's labels, if they name one.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Parent> {
        Some(Parent {
            kind: labels.get(PARENT_KIND_LABEL)?.clone(),
            namespace: labels.get(PARENT_NAMESPACE_LABEL)?.clone(),
            name: labels.get(PARENT_NAME_LABEL)?.clone(),
        })
    }

    /// The labels naming this parent.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (PARENT_KIND_LABEL.to_string(), self.kind.clone()),
            (PARENT_NAMESPACE_LABEL.to_string(), self.namespace.clone()),
            (PARENT_NAME_LABEL.to_string(), self.name.clone()),
        ])
    }

    /// A label selector for this parent's children.
    pub fn selector(&self) -> String {
        let Parent {
            kind,
            namespace,
            name,
        } = self;
        format!(
            "{PARENT_KIND_LABEL}={kind},{PARENT_NAMESPACE_LABEL}={namespace},{PARENT_NAME_LABEL}={name}"
        )
    }
}
