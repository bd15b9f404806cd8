//! Which of the Go operator's objects under the catalog's names are the Catalog's to take over
//! although they do not name it: part of the *apply* step, used when a child's apply found its
//! name taken.
//!
//! The shared claim (`crate::kube_ext::apply`) takes over an object without parent labels only
//! when its controller owner reference names the very Catalog (same uid). The Go controller is
//! less strict: it overwrites the owner references of any object under its fixed names that it
//! finds in its cache, which holds only objects labelled `app.kubernetes.io/created-by=
//! model-registry-operator` (its `CreateOrUpdate` replaces the object, whose `ownerReferences`
//! `applyLabels`/`applyOwnerReference` set to the one Catalog, internal/controller/util.go@08f64eb:
//! 159-198, internal/controller/catalog_controller.go@08f64eb:1227-1246; the cache filter
//! cmd/catalog.go@08f64eb:92-126). Two cases of that matter here, and are re-pointed to this
//! Catalog so that the claim then takes them over in place (no rollout of the Deployment):
//! - the Go operator's object left without an owner (its Catalog deleted with orphaning
//!   propagation, which removes the references);
//! - the Go operator's object still controlled by an earlier Catalog of the same name, deleted
//!   and made again while the Go operator was down (garbage collection removes such an object
//!   once its owners are all gone; until then, or while another owner keeps it, it is there).
//!
//! Everything else stays a conflict, left alone: an object controlled by anything that is not a
//! Catalog named as this one, an object without Go's labels, and any object outside the Catalog's
//! namespace (a cluster-scoped or cross-namespace object can carry no owner reference to it).
//! Taking these over lends nobody the operator's rights: whoever could make such an object in the
//! namespace could change it directly.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use mro_api::catalog::Catalog;

use super::build::names;

/// The API group of the Catalog kind, as owner references name it (`<group>/<version>`).
const CATALOG_GROUP: &str = "aihub.opendatahub.io";

/// Whether `existing` (the metadata of the object found under a child's name, which has no
/// parent labels) is the Go operator's object for this Catalog's name that is to be re-pointed
/// to `catalog` (see the module docs). `namespace` is the child's namespace.
pub fn reparent(existing: &ObjectMeta, namespace: Option<&str>, catalog: &Catalog) -> bool {
    let same_namespace = namespace.is_some() && namespace == catalog.namespace().as_deref();
    let labels = existing.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let gos = label("app.kubernetes.io/created-by") == Some(names::OPERATOR)
        && label("app") == Some(names::NAME);
    if !same_namespace || !gos {
        return false;
    }
    let controller = existing
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match controller {
        None => true,
        Some(o) => {
            o.kind == "Catalog"
                && o.api_version.split('/').next() == Some(CATALOG_GROUP)
                && o.name == catalog.name_any()
                && Some(&o.uid) != catalog.uid().as_ref()
        }
    }
}

/// The merge patch re-pointing an object to `catalog`: its owner references replaced by the
/// Catalog's controller reference (as Go replaces them), on the version that was read.
pub fn reparent_patch(catalog: &Catalog, resource_version: Option<&str>) -> serde_json::Value {
    let mut meta =
        serde_json::json!({"ownerReferences": [crate::kube_ext::owner::controller_ref(catalog)]});
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = rv.into();
    }
    serde_json::json!({"metadata": meta})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        serde_json::from_value(json!({
            "apiVersion": "aihub.opendatahub.io/v1alpha1", "kind": "Catalog",
            "metadata": {"name": "catalog", "namespace": "reg", "uid": "now"}, "spec": {}
        }))
        .unwrap()
    }

    fn meta(labels: serde_json::Value, owners: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(json!({"name": "model-catalog", "labels": labels,
            "ownerReferences": owners}))
        .unwrap()
    }

    fn go_labels() -> serde_json::Value {
        json!(names::labels(names::Component::Catalog))
    }

    fn controller(kind: &str, api_version: &str, name: &str, uid: &str) -> serde_json::Value {
        json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
                "controller": true}])
    }

    #[test]
    fn the_go_operators_orphans_and_objects_of_an_earlier_catalog_are_re_pointed() {
        let c = catalog();
        let ns = Some("reg");
        // Orphaned (no owner at all, or only owners that are not controllers).
        assert!(reparent(&meta(go_labels(), json!([])), ns, &c));
        let mere_owner =
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u"}]);
        assert!(reparent(&meta(go_labels(), mere_owner), ns, &c));
        // Controlled by an earlier Catalog of the same name.
        let earlier = controller(
            "Catalog",
            "aihub.opendatahub.io/v1alpha1",
            "catalog",
            "before",
        );
        assert!(reparent(&meta(go_labels(), earlier.clone()), ns, &c));

        // Not: the same Catalog (the shared claim takes it over), anything else in control,
        // no Go labels, another namespace or none.
        let same = controller("Catalog", "aihub.opendatahub.io/v1alpha1", "catalog", "now");
        assert!(!reparent(&meta(go_labels(), same), ns, &c));
        for other in [
            controller("ConfigMap", "v1", "catalog", "before"),
            controller("Catalog", "example.com/v1", "catalog", "before"),
            controller(
                "Catalog",
                "aihub.opendatahub.io/v1alpha1",
                "other",
                "before",
            ),
        ] {
            assert!(
                !reparent(&meta(go_labels(), other.clone()), ns, &c),
                "{other}"
            );
        }
        let not_gos = json!({"app": "model-catalog"});
        assert!(!reparent(&meta(not_gos, json!([])), ns, &c));
        assert!(!reparent(
            &meta(go_labels(), earlier.clone()),
            Some("elsewhere"),
            &c
        ));
        assert!(!reparent(&meta(go_labels(), json!([])), None, &c));
    }

    #[test]
    fn the_patch_replaces_the_owner_references_on_the_version_read() {
        let p = reparent_patch(&catalog(), Some("7"));
        assert_eq!(p["metadata"]["resourceVersion"], "7");
        let refs = p["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["uid"], "now");
        assert_eq!(refs[0]["controller"], true);
        assert!(
            reparent_patch(&catalog(), None)["metadata"]
                .get("resourceVersion")
                .is_none()
        );
    }
}
