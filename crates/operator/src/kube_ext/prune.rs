//! Pruning: deleting a parent's children that are no longer desired, found by the parent labels
//! (see `super::child`), from what the controller's watches saw ([`ChildRecord`]) or by listing.
use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::{Client, ResourceExt};

use super::child::{ChildKey, ManagedKind, Parent};
use super::child_record::ChildRecord;

/// Deletes children of `parent` that are not in `keep`. Returns what it deleted.
///
/// The children are looked up in what the controller's watches saw ([`ChildRecord`]): no request
/// unless something is to be deleted. Kinds the watches cannot answer for are listed, from the
/// API server's watch cache: a consistent list reads every object of the kind in the cluster
/// from etcd to filter by label. A child created moments ago may be missing from either; the
/// controller created it in an earlier reconcile ([`ChildRecord`] knows those), or someone else
/// did, and that change triggers another reconcile.
pub async fn prune(
    client: &Client,
    own: &ChildRecord,
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
