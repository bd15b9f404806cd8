//! Server-side apply of one child, after making sure the object under its name is the child's
//! to write (the claim). Pruning is in `super::prune`; the skipper of no-op applies that
//! controllers use in `super::child_record`.
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
//! Its gateway HTTPRoute lives in another namespace (no owner reference either): it is taken
//! over only when its labels and name are the Go operator's for the registry and it routes to
//! that registry's Service only ([`go_operator_route`]).
//! Its cluster-scoped ones can carry no owner reference: they are left exactly as they are when
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};

use super::child::{Child, Conflict, Parent, parent_of};

/// Why a child was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Conflict(#[from] Box<Conflict>),
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
    if go_operator_route(client, child, &existing.metadata).await? {
        tracing::info!(kind = %child.resource.kind, name = %child.name(),
            "taking over the Go operator's HTTPRoute of the same registry");
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

/// Whether `meta` carries the labels the Go operator put on every object of the registry
/// `registry` (`app=<name>`, `component=model-registry`,
/// `app.kubernetes.io/created-by=model-registry-operator`) and no owner reference.
fn go_labelled(meta: &ObjectMeta, registry: &str) -> bool {
    label_is(meta, "app", registry)
        && label_is(meta, "component", "model-registry")
        && label_is(
            meta,
            "app.kubernetes.io/created-by",
            "model-registry-operator",
        )
        && meta.owner_references.as_ref().is_none_or(Vec::is_empty)
}

/// Whether `meta` has the label `key` with the value `value`.
fn label_is(meta: &ObjectMeta, key: &str, value: &str) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        == Some(value)
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
    if !go_labelled(existing, &parent.name) || child.namespaced || parent.kind != "ModelRegistry" {
        return Ok(false);
    }
    match (child.resource.group.as_str(), child.resource.kind.as_str()) {
        ("user.openshift.io", "Group") => Ok(child.name() == format!("{}-users", parent.name)),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            if !label_is(
                existing,
                "modelregistry.opendatahub.io/namespace",
                &parent.namespace,
            ) {
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

/// The Go operator's gateway HTTPRoute `model-registry-<name>` of a registry `<name>` in `<ns>`
/// (T/gateway/gateway-httproute.yaml.tmpl@08f64eb): it lives in another namespace, so it has no
/// owner reference, only its labels (`app=<name>`, `component=model-registry`,
/// `app.kubernetes.io/name=<name>`, `app.kubernetes.io/instance=model-registry-<name>`,
/// `app.kubernetes.io/created-by=model-registry-operator`), which do not say the namespace.
/// It is taken over only when, besides those labels and that name, every backend it routes to
/// is the Service `<name>` in `<ns>`: the route of exactly this registry, sending traffic
/// nowhere else (a same-named registry of another namespace, or anyone's other route, is left
/// alone and reported).
async fn go_operator_route(
    client: &Client,
    child: &Child,
    existing: &ObjectMeta,
) -> kube::Result<bool> {
    let Some(parent) = parent_of(child) else {
        return Ok(false);
    };
    if (child.resource.group.as_str(), child.resource.kind.as_str())
        != ("gateway.networking.k8s.io", "HTTPRoute")
        || parent.kind != "ModelRegistry"
        || child.name() != format!("model-registry-{}", parent.name)
    {
        return Ok(false);
    }
    let instance = format!("model-registry-{}", parent.name);
    if !go_labelled(existing, &parent.name)
        || !label_is(existing, "app.kubernetes.io/name", &parent.name)
        || !label_is(existing, "app.kubernetes.io/instance", &instance)
    {
        return Ok(false);
    }
    let Some(found) = child.api(client).get_opt(&child.name()).await? else {
        return Ok(false);
    };
    Ok(routes_only_to(&found.data, &parent.name, &parent.namespace))
}

/// Whether an HTTPRoute's spec has at least one backend, and every backend of every rule is
/// the core Service `service` in `namespace`.
fn routes_only_to(spec_holder: &serde_json::Value, service: &str, namespace: &str) -> bool {
    let rules = spec_holder["spec"]["rules"].as_array();
    let backends: Vec<&serde_json::Value> = rules
        .into_iter()
        .flatten()
        .flat_map(|r| r["backendRefs"].as_array().into_iter().flatten())
        .collect();
    !backends.is_empty()
        && backends.iter().all(|b| {
            b["group"].as_str().unwrap_or("").is_empty()
                && b["kind"].as_str().unwrap_or("Service") == "Service"
                && b["name"].as_str() == Some(service)
                && b["namespace"].as_str() == Some(namespace)
        })
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

/// [`ensure_ours`], then [`apply`]: for children applied without a controller's `ChildRecord`. Only
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
/// ([`ensure_ours`], or `ChildRecord::apply`, which does).
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ApiResource;

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
    fn a_route_is_the_registrys_only_when_every_backend_is_its_service() {
        let route = |backends: serde_json::Value| serde_json::json!({"spec": {"rules": [{"backendRefs": backends}]}});
        let svc = |name: &str, ns: &str| {
            serde_json::json!({"group": "", "kind": "Service", "name": name, "namespace": ns,
                               "port": 8443})
        };
        assert!(routes_only_to(
            &route(serde_json::json!([svc("r", "ns")])),
            "r",
            "ns"
        ));
        // Defaults for group and kind are a core Service.
        assert!(routes_only_to(
            &route(serde_json::json!([{"name": "r", "namespace": "ns"}])),
            "r",
            "ns"
        ));
        // The same name in another namespace, another Service, another kind, an extra backend,
        // or none at all: not this registry's.
        for backends in [
            serde_json::json!([svc("r", "other")]),
            serde_json::json!([svc("x", "ns")]),
            serde_json::json!([{"group": "example.io", "kind": "Backend", "name": "r", "namespace": "ns"}]),
            serde_json::json!([svc("r", "ns"), svc("x", "ns")]),
            serde_json::json!([{"name": "r"}]),
            serde_json::json!([]),
        ] {
            assert!(
                !routes_only_to(&route(backends.clone()), "r", "ns"),
                "{backends}"
            );
        }
        assert!(!routes_only_to(&serde_json::json!({"spec": {}}), "r", "ns"));
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
}
