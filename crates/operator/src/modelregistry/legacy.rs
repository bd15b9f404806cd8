//! The Go operator's legacy cleanup, part of the *apply* step: before its Catalog controller, the
//! Go operator ran a model catalog per registry (`<name>-catalog` Deployment and Service, and on
//! OpenShift the `<name>-catalog-https` Route and `<name>-catalog-https-route` NetworkPolicy). Its
//! HEAD deletes them, but only those this ModelRegistry controls (controller owner reference to
//! its uid): the standalone catalog owns fixed-name `model-catalog` objects, which a registry
//! named `model` would otherwise take for its own (internal/controller/
//! modelregistry_controller.go@08f64eb:974-1018, `deleteOldCatalogResources`). This operator
//! takes such registries over, so it does the same.
//!
//! Why once per registry and process: the objects are only ever made by an old Go operator, never
//! by this one, so after one complete pass for a registry (every lookup answered) nothing new can
//! appear; looking again on every reconcile would cost up to four reads each time.
use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Preconditions};
use kube::{Client, ResourceExt};
use mro_api::ModelRegistry;

use super::kinds;
use crate::capabilities::Capabilities;

/// Registries (by uid) whose legacy objects were looked for completely in this process.
fn done() -> &'static Mutex<BTreeSet<String>> {
    static DONE: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    DONE.get_or_init(Default::default)
}

/// The legacy objects of a registry that may exist on this cluster: kind and name.
pub fn legacy_objects(mr: &ModelRegistry, caps: &Capabilities) -> Vec<(ApiResource, String)> {
    let name = mr.name_any();
    let mut out = vec![
        (
            ApiResource::erase::<Deployment>(&()),
            format!("{name}-catalog"),
        ),
        (
            ApiResource::erase::<Service>(&()),
            format!("{name}-catalog"),
        ),
    ];
    if let Some(route) = kinds::route(caps) {
        out.push((route, format!("{name}-catalog-https")));
        out.push((
            ApiResource::erase::<NetworkPolicy>(&()),
            format!("{name}-catalog-https-route"),
        ));
    }
    out
}

/// Whether `meta`'s controller owner reference is the registry with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Deletes the registry's legacy catalog objects it controls; returns what was deleted
/// (`Kind/name`). Anything else under those names is left alone.
pub async fn delete_old_catalog(
    client: &Client,
    mr: &ModelRegistry,
    caps: &Capabilities,
) -> kube::Result<Vec<String>> {
    let (Some(uid), Some(ns)) = (mr.uid(), mr.namespace()) else {
        return Ok(Vec::new());
    };
    if done().lock().expect("not poisoned").contains(&uid) {
        return Ok(Vec::new());
    }
    let mut deleted = Vec::new();
    for (ar, name) in legacy_objects(mr, caps) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let Some(found) = api.get_metadata_opt(&name).await? else {
            continue;
        };
        if !controlled_by(&found.metadata, &uid) {
            continue;
        }
        // Only the object just read: one made again under the name meanwhile is not touched.
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: found.uid(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => deleted.push(format!("{}/{name}", ar.kind)),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    done().lock().expect("not poisoned").insert(uid);
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use serde_json::json;

    use super::*;
    use crate::capabilities::ROUTE_GROUP;

    fn mr() -> ModelRegistry {
        serde_json::from_value(json!({
            "apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry",
            "metadata": {"name": "model", "namespace": "ns", "uid": "u-1"},
            "spec": {"mysql": {"host": "h", "username": "u", "database": "d"}},
        }))
        .unwrap()
    }

    fn owned(uid: &str, controller: Option<bool>) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "modelregistry.opendatahub.io/v1beta1".into(),
                kind: "ModelRegistry".into(),
                name: "model".into(),
                uid: uid.into(),
                controller,
                block_owner_deletion: None,
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn only_what_the_registry_controls_is_its_legacy() {
        assert!(controlled_by(&owned("u-1", Some(true)), "u-1"));
        // Owned but not controlled, controlled by another resource, or not owned at all.
        assert!(!controlled_by(&owned("u-1", None), "u-1"));
        assert!(!controlled_by(&owned("u-1", Some(false)), "u-1"));
        assert!(!controlled_by(&owned("u-2", Some(true)), "u-1"));
        assert!(!controlled_by(&ObjectMeta::default(), "u-1"));
    }

    #[test]
    fn the_go_operators_names_and_the_openshift_ones_only_there() {
        let names = |caps: &Capabilities| -> Vec<String> {
            legacy_objects(&mr(), caps)
                .into_iter()
                .map(|(ar, n)| format!("{}/{n}", ar.kind))
                .collect()
        };
        assert_eq!(
            names(&Capabilities::vanilla()),
            ["Deployment/model-catalog", "Service/model-catalog"]
        );
        let openshift = Capabilities::from_groups([(ROUTE_GROUP, vec!["v1"])]);
        assert_eq!(
            names(&openshift),
            [
                "Deployment/model-catalog",
                "Service/model-catalog",
                "Route/model-catalog-https",
                "NetworkPolicy/model-catalog-https-route"
            ]
        );
    }
}
