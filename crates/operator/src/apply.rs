//! Server-side apply of desired children, and pruning of children that are no longer desired.
//!
//! Every child is handled as a `DynamicObject` with its `ApiResource`, so typed core objects and
//! platform objects (Routes, Istio, Authorino) go through one path. Children carry labels naming
//! their parent, which is how pruning and cleanup find them, including cluster-scoped and
//! cross-namespace children that cannot have owner references.
//!
//! Those labels are also the creation marker: an object that already exists under a child's
//! name is applied over only when its labels name the same parent ([`ensure_ours`]). Anything
//! else (a ClusterRoleBinding `<name>-auth-delegator` or a Group `<name>-users` someone made
//! for another purpose, a ServiceAccount `<transfer>-sync` that predates the transfer) is a
//! [`Conflict`]: reported, never rewritten, and never found by the label-selected prune and
//! cleanup, so never deleted. Whoever could put our labels on an object could change it
//! directly, so honouring them lends nobody the operator's rights.
//!
//! Taking over from the Go operator: its namespaced children of a registry have no parent
//! labels but a controller owner reference to that registry's uid (the very same resource, not
//! one made again under its name); those are applied over in place (and labelled from then on).
//! Such an object lives in the registry's namespace and goes with the registry anyway (garbage
//! collection follows the reference): whoever could make one could also change it directly, so
//! applying over it lends nobody the operator's rights, as with the labels.
//! Its cluster-scoped ones can carry no owner reference: they are left exactly as they are when
//! equivalent ([`Claim::LeftAsIs`]), never written nor deleted.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;

use crate::own_writes::OwnWrites;

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

    fn api(&self, client: &Client) -> Api<DynamicObject> {
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

/// Why a child was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Conflict(#[from] Box<Conflict>),
}

/// The parent a child's labels name (every child we build carries them).
pub fn parent_of(child: &Child) -> Option<Parent> {
    Parent::from_labels(child.object.labels())
}

/// Whether an existing object labelled for `existing` may be applied over by `child`.
pub fn claim(child: &Child, existing: Option<Parent>) -> Result<(), Box<Conflict>> {
    let ours = parent_of(child);
    if ours.is_some() && existing == ours {
        Ok(())
    } else {
        Err(Box::new(Conflict {
            key: child.key(),
            claimed_by: existing,
        }))
    }
}

/// What [`ensure_ours`] found under a child's name.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Nothing, or an object that is the child's: apply.
    Ours,
    /// The Go operator's object for the same resource (see [`ensure_ours`]): its field
    /// manager's fields are made ours first ([`take_over_fields`]), then apply.
    TakeOver(Box<ObjectMeta>),
    /// A cluster-scoped object the Go operator made for the same registry, which it can only
    /// name by labels (cluster-scoped objects cannot have owner references to a namespaced
    /// resource), equivalent to the child: left exactly as it is (not applied, not labelled,
    /// so never pruned or deleted by this operator either).
    LeftAsIs,
}

/// Reads the object under `child`'s name (metadata only): absent, or labelled for the child's
/// parent, is ours to apply; so is one without parent labels whose controller owner reference
/// is the child's own (the same parent uid: the Go operator's child of the same resource,
/// taken over in place). A cluster-scoped child of the Go operator for the same resource is
/// [`Claim::LeftAsIs`] (see [`go_operator_equivalent`]). Anything else is a [`Conflict`].
pub async fn ensure_ours(client: &Client, child: &Child) -> Result<Claim, ApplyError> {
    let Some(existing) = child.api(client).get_metadata_opt(&child.name()).await? else {
        return Ok(Claim::Ours);
    };
    let conflict = match claim(child, Parent::from_labels(existing.labels())) {
        Ok(()) => return Ok(Claim::Ours),
        Err(c) => c,
    };
    if conflict.claimed_by.is_some() {
        return Err(conflict.into());
    }
    if controlled_by_child_owner(child, &existing.metadata) {
        tracing::info!(kind = %child.resource.kind, name = %child.name(),
            "taking over an object controlled by the same resource (made by the Go operator)");
        return Ok(Claim::TakeOver(Box::new(existing.metadata)));
    }
    if go_operator_equivalent(client, child, &existing.metadata).await? {
        tracing::info!(kind = %child.resource.kind, name = %child.name(),
            "the Go operator's cluster-scoped object for this resource is left as it is");
        return Ok(Claim::LeftAsIs);
    }
    Err(conflict.into())
}

/// Whether `existing` has a controller owner reference to the object `child` is to be
/// controlled by (same uid: the same resource, not one of the same name made again).
pub fn controlled_by_child_owner(child: &Child, existing: &ObjectMeta) -> bool {
    let controller =
        |refs: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            refs.into_iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| (o.kind.clone(), o.uid.clone()))
        };
    let wanted = controller(child.object.metadata.owner_references.as_ref());
    wanted.is_some() && wanted == controller(existing.owner_references.as_ref())
}

/// The Go operator's cluster-scoped children of a registry `<name>` in `<ns>`, which carry its
/// labels (`app=<name>`, `component=model-registry`, `app.kubernetes.io/created-by=
/// model-registry-operator`; internal/controller/config/templates/{group,kube-rbac-proxy/
/// kube-rbac-proxy-role-binding}.yaml.tmpl@08f64eb) and no owner reference: the ClusterRoleBinding
/// `<name>-auth-delegator` when it also names the namespace
/// (`modelregistry.opendatahub.io/namespace`) and binds exactly the child's role to exactly the
/// child's subjects (nothing it grants differs from what the child would), and the Group
/// `<name>-users` (whose members are whoever the Go operator's users put there, as they
/// would be in the child, which sets none).
async fn go_operator_equivalent(
    client: &Client,
    child: &Child,
    existing: &ObjectMeta,
) -> kube::Result<bool> {
    let Some(parent) = parent_of(child) else {
        return Ok(false);
    };
    let labels = existing.labels.clone().unwrap_or_default();
    let has = |k: &str, v: &str| labels.get(k).map(String::as_str) == Some(v);
    let go_labelled = has("app", &parent.name)
        && has("component", "model-registry")
        && has("app.kubernetes.io/created-by", "model-registry-operator")
        && existing.owner_references.as_ref().is_none_or(Vec::is_empty);
    if !go_labelled || child.namespaced || parent.kind != "ModelRegistry" {
        return Ok(false);
    }
    match (child.resource.group.as_str(), child.resource.kind.as_str()) {
        ("user.openshift.io", "Group") => Ok(child.name() == format!("{}-users", parent.name)),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            if !has("modelregistry.opendatahub.io/namespace", &parent.namespace) {
                return Ok(false);
            }
            let Some(found) = child.api(client).get_opt(&child.name()).await? else {
                return Ok(false);
            };
            Ok(same_binding(&found.data, &child.object.data))
        }
        _ => Ok(false),
    }
}

/// Whether two ClusterRoleBindings bind the same role to the same subjects (an absent subject
/// `apiGroup` and an empty one are the same).
fn same_binding(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use k8s_openapi::api::rbac::v1::{RoleRef, Subject};
    let role = |v: &serde_json::Value| serde_json::from_value::<RoleRef>(v["roleRef"].clone()).ok();
    let subjects = |v: &serde_json::Value| {
        serde_json::from_value::<Option<Vec<Subject>>>(v["subjects"].clone())
            .ok()
            .map(|s| {
                let mut s: Vec<_> = s
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| {
                        (
                            s.kind,
                            s.name,
                            s.namespace.unwrap_or_default(),
                            s.api_group.unwrap_or_default(),
                        )
                    })
                    .collect();
                s.sort();
                s
            })
    };
    role(a).is_some() && role(a) == role(b) && subjects(a).is_some() && subjects(a) == subjects(b)
}

/// [`ensure_ours`], then [`apply`]: for children applied without [`OwnWrites`]' record. Only
/// over what is [`Claim::Ours`].
pub async fn apply_new(
    client: &Client,
    manager: &str,
    child: &Child,
) -> Result<DynamicObject, ApplyError> {
    match ensure_ours(client, child).await? {
        Claim::Ours => Ok(apply(client, manager, child).await?),
        Claim::TakeOver(existing) => {
            take_over_fields(client, manager, child, &existing).await?;
            Ok(apply(client, manager, child).await?)
        }
        Claim::LeftAsIs => Err(Box::new(Conflict {
            key: child.key(),
            claimed_by: None,
        })
        .into()),
    }
}

/// The field manager of the Go operator (controller-runtime's default: its binary's name).
pub const GO_OPERATOR_MANAGER: &str = "manager";

/// Makes the Go operator's fields of `existing` ours before the first apply over it: its
/// field manager's entries (not those of subresources) are renamed to `manager` as
/// appliers, so that the apply that follows removes what it set and the child does not
/// (server-side apply only ever removes fields of the applier's own; a Go-era volume or
/// annotation would otherwise stay forever). Fields the child sets are unchanged by this, so
/// nothing moves for what both agree on. Optimistic: stale `resourceVersion` → 409, retried by
/// the next reconcile.
pub async fn take_over_fields(
    client: &Client,
    manager: &str,
    child: &Child,
    existing: &ObjectMeta,
) -> kube::Result<()> {
    let Some(entries) = existing.managed_fields.as_ref() else {
        return Ok(());
    };
    if !entries
        .iter()
        .any(|e| e.manager.as_deref() == Some(GO_OPERATOR_MANAGER) && e.subresource.is_none())
    {
        return Ok(());
    }
    let mut mine: Vec<ManagedFieldsEntry> = Vec::new();
    let mut others: Vec<ManagedFieldsEntry> = Vec::new();
    for e in entries {
        let go = e.manager.as_deref() == Some(GO_OPERATOR_MANAGER) && e.subresource.is_none();
        let ours = e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply");
        if go || ours {
            let mut e = e.clone();
            e.manager = Some(manager.to_string());
            e.operation = Some("Apply".into());
            mine.push(e);
        } else {
            others.push(e.clone());
        }
    }
    // One entry per manager and operation: the fields of every renamed entry, united.
    let mut fields = serde_json::Map::new();
    for e in &mine {
        if let Some(FieldsV1(serde_json::Value::Object(f))) = &e.fields_v1 {
            merge_fields(&mut fields, f);
        }
    }
    let mut entry = mine[0].clone();
    entry.fields_v1 = Some(FieldsV1(serde_json::Value::Object(fields)));
    others.push(entry);
    let patch = serde_json::json!({"metadata": {
        "managedFields": others,
        "resourceVersion": existing.resource_version,
    }});
    child
        .api(client)
        .patch(
            &child.name(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// The union of two `FieldsV1` sets (nested maps of field paths).
fn merge_fields(
    into: &mut serde_json::Map<String, serde_json::Value>,
    from: &serde_json::Map<String, serde_json::Value>,
) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(serde_json::Value::Object(a)), serde_json::Value::Object(b)) => {
                merge_fields(a, b)
            }
            (Some(_), _) => {}
            (None, v) => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Applies one child with server-side apply, taking ownership of the fields we set (force), so
/// hand edits of those fields are reverted. Callers make sure the object is ours first
/// ([`ensure_ours`], or [`OwnWrites::apply`], which does).
pub async fn apply(client: &Client, manager: &str, child: &Child) -> kube::Result<DynamicObject> {
    let pp = PatchParams::apply(manager).force();
    child
        .api(client)
        .patch(&child.name(), &pp, &Patch::Apply(&child.object))
        .await
}

/// [`apply`] with `dryRun=All`: the API server validates and admits the object as it would be
/// written, and writes nothing.
pub async fn apply_dry_run(
    client: &Client,
    manager: &str,
    child: &Child,
) -> kube::Result<DynamicObject> {
    let mut pp = PatchParams::apply(manager).force();
    pp.dry_run = true;
    child
        .api(client)
        .patch(&child.name(), &pp, &Patch::Apply(&child.object))
        .await
}

/// Labels selecting every child of one parent.
pub fn parent_selector(kind: &str, namespace: &str, name: &str) -> String {
    format!(
        "{PARENT_KIND_LABEL}={kind},{PARENT_NAMESPACE_LABEL}={namespace},{PARENT_NAME_LABEL}={name}"
    )
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
        parent_selector(&self.kind, &self.namespace, &self.name)
    }
}

/// Deletes children of `parent` that are not in `keep`. Returns what it deleted.
///
/// The children are looked up in what the controller's watches saw ([`OwnWrites`]): no request
/// unless something is to be deleted. Kinds the watches cannot answer for are listed, from the
/// API server's watch cache: a consistent list reads every object of the kind in the cluster
/// from etcd to filter by label. A child created moments ago may be missing from either; the
/// controller created it in an earlier reconcile ([`OwnWrites`] knows those), or someone else
/// did, and that change triggers another reconcile.
pub async fn prune(
    client: &Client,
    own: &OwnWrites,
    kinds: &[ManagedKind],
    parent: &Parent,
    keep: &BTreeSet<ChildKey>,
) -> kube::Result<Vec<ChildKey>> {
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for kind in kinds {
        match own.known_children(parent, kind) {
            Some(children) => found.extend(
                children
                    .into_iter()
                    .filter(|c| !c.deleting)
                    .map(|c| (kind, c.key)),
            ),
            None => unknown.push(kind),
        }
    }
    let lp = ListParams::default().match_any().labels(&parent.selector());
    found.extend(list_children(client, &unknown, &parent.namespace, &lp).await?);
    let deleted = delete_unwanted(client, found, keep).await?;
    for key in &deleted {
        own.deleted(key);
    }
    Ok(deleted)
}

/// [`prune`] with consistent lists and no cache, for finalizers: nothing may be left behind, and
/// no later reconcile would catch a child the caches had not seen yet.
pub async fn prune_consistent(
    client: &Client,
    kinds: &[ManagedKind],
    parent_namespace: &str,
    selector: &str,
    keep: &BTreeSet<ChildKey>,
) -> kube::Result<Vec<ChildKey>> {
    let kinds: Vec<&ManagedKind> = kinds.iter().collect();
    let lp = ListParams::default().labels(selector);
    let found = list_children(client, &kinds, parent_namespace, &lp).await?;
    delete_unwanted(client, found, keep).await
}

/// The children of every kind matching `lp`'s selector, one list per kind, all at once (a
/// reconcile waits for one round trip, not one per kind). Being deleted already: left out.
/// Kinds whose children live only in their parent's namespace are listed there: the operator
/// may hold some kinds (Secrets) only in the namespaces where it has work, not cluster-wide.
async fn list_children<'k>(
    client: &Client,
    kinds: &[&'k ManagedKind],
    parent_namespace: &str,
    lp: &ListParams,
) -> kube::Result<Vec<(&'k ManagedKind, ChildKey)>> {
    let lists = futures::future::join_all(kinds.iter().map(|kind| {
        let api: Api<DynamicObject> = if kind.in_parent_namespace {
            Api::namespaced_with(client.clone(), parent_namespace, &kind.resource)
        } else {
            Api::all_with(client.clone(), &kind.resource)
        };
        async move { (*kind, api.list_metadata(lp).await) }
    }))
    .await;
    let mut found = Vec::new();
    for (kind, list) in lists {
        let existing = match list {
            Ok(list) => list.items,
            // A kind whose API disappeared has nothing left to prune.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            // A platform API that does not answer (an aggregated API whose server is down)
            // must not hold up the built-in children's pruning, nor a deletion: its objects
            // cannot be deleted now anyway. Said in the log; found again by the next prune.
            Err(kube::Error::Api(s)) if s.code == 503 && optional(&kind.resource.group) => {
                tracing::warn!(
                    kind = %kind.resource.kind, group = %kind.resource.group, error = %s.message,
                    "optional API unavailable: its children were not pruned"
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        for obj in existing {
            if obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let key = ChildKey {
                group: kind.resource.group.clone(),
                kind: kind.resource.kind.clone(),
                namespace: obj.metadata.namespace.clone(),
                name: obj.name_any(),
            };
            found.push((kind, key));
        }
    }
    Ok(found)
}

/// Whether `group` is an optional platform API (OpenShift, Istio, Authorino) rather than one
/// every Kubernetes cluster serves.
pub fn optional(group: &str) -> bool {
    !matches!(
        group,
        "" | "apps" | "batch" | "rbac.authorization.k8s.io" | "networking.k8s.io"
    )
}

async fn delete_unwanted(
    client: &Client,
    found: Vec<(&ManagedKind, ChildKey)>,
    keep: &BTreeSet<ChildKey>,
) -> kube::Result<Vec<ChildKey>> {
    let mut deleted = Vec::new();
    for (kind, key) in found {
        if keep.contains(&key) {
            continue;
        }
        let api: Api<DynamicObject> = match (kind.namespaced, &key.namespace) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &kind.resource),
            _ => Api::all_with(client.clone(), &kind.resource),
        };
        match api.delete(&key.name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(key),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s)) if s.code == 503 && optional(&key.group) => {
                tracing::warn!(kind = %key.kind, name = %key.name, error = %s.message,
                    "optional API unavailable: child not deleted");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment_child(owner_uid: &str) -> Child {
        let resource = ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
        Child::dynamic(
            resource,
            serde_json::json!({"metadata": {"name": "r", "namespace": "ns",
                "ownerReferences": [{"apiVersion": "modelregistry.opendatahub.io/v1beta1",
                    "kind": "ModelRegistry", "name": "r", "uid": owner_uid, "controller": true}]}}),
        )
    }

    fn meta_with_owner(kind: &str, uid: &str, controller: bool) -> ObjectMeta {
        serde_json::from_value(serde_json::json!({"name": "r", "ownerReferences": [
            {"apiVersion": "x/v1", "kind": kind, "name": "r", "uid": uid, "controller": controller}]}))
        .unwrap()
    }

    #[test]
    fn only_a_controller_reference_to_the_same_uid_is_taken_over() {
        let child = deployment_child("u-1");
        assert!(controlled_by_child_owner(
            &child,
            &meta_with_owner("ModelRegistry", "u-1", true)
        ));
        // A registry of the same name made again (another uid), a mere owner, another kind,
        // no owner at all: not ours.
        assert!(!controlled_by_child_owner(
            &child,
            &meta_with_owner("ModelRegistry", "u-2", true)
        ));
        assert!(!controlled_by_child_owner(
            &child,
            &meta_with_owner("ModelRegistry", "u-1", false)
        ));
        assert!(!controlled_by_child_owner(
            &child,
            &meta_with_owner("ReplicaSet", "u-1", true)
        ));
        assert!(!controlled_by_child_owner(&child, &ObjectMeta::default()));
        // A child without an owner reference (cluster-scoped) never matches.
        let mut unowned = child.clone();
        unowned.object.metadata.owner_references = None;
        assert!(!controlled_by_child_owner(&unowned, &ObjectMeta::default()));
    }

    #[test]
    fn bindings_are_the_same_only_with_the_same_role_and_subjects() {
        let b = |role: &str, subjects: serde_json::Value| {
            serde_json::json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole", "name": role}, "subjects": subjects})
        };
        let sa = serde_json::json!([{"kind": "ServiceAccount", "name": "r", "namespace": "ns"}]);
        let sa_group = serde_json::json!([{"kind": "ServiceAccount", "name": "r", "namespace": "ns", "apiGroup": ""}]);
        let delegator = "system:auth-delegator";
        assert!(same_binding(
            &b(delegator, sa.clone()),
            &b(delegator, sa_group)
        ));
        assert!(!same_binding(
            &b("view", sa.clone()),
            &b(delegator, sa.clone())
        ));
        let more = serde_json::json!([{"kind": "ServiceAccount", "name": "r", "namespace": "ns"},
                                      {"kind": "ServiceAccount", "name": "x", "namespace": "kube-system"}]);
        assert!(!same_binding(
            &b(delegator, more),
            &b(delegator, sa.clone())
        ));
        let other_ns =
            serde_json::json!([{"kind": "ServiceAccount", "name": "r", "namespace": "other"}]);
        assert!(!same_binding(&b(delegator, other_ns), &b(delegator, sa)));
    }

    #[test]
    fn field_sets_unite() {
        let mut a = serde_json::json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}});
        let b = serde_json::json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:data": {}});
        merge_fields(a.as_object_mut().unwrap(), b.as_object().unwrap());
        assert_eq!(
            a,
            serde_json::json!({"f:metadata": {"f:labels": {"f:app": {}, "f:x": {}}},
                               "f:spec": {"f:replicas": {}}, "f:data": {}})
        );
    }

    #[test]
    fn only_platform_groups_are_optional() {
        for g in [
            "",
            "apps",
            "batch",
            "rbac.authorization.k8s.io",
            "networking.k8s.io",
        ] {
            assert!(!optional(g), "{g}");
        }
        for g in [
            "route.openshift.io",
            "user.openshift.io",
            "networking.istio.io",
            "security.istio.io",
            "authorino.kuadrant.io",
        ] {
            assert!(optional(g), "{g}");
        }
    }
}
