//! The *catalog* step: the Catalog `catalog` in the instances namespace, which turns the model
//! catalog on (go-operator-head.md §1.3, §2.2 steps 8-9). It is created, when absent, only once
//! both child Deployments are Available (the catalog controller is there to serve it), with the
//! AIHub as controller owner; it is never patched (its spec is the user's). On the AIHub's
//! deletion it is deleted first, and the finalizer goes only once it is gone (see
//! [`finalize`](super::finalize)).
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use mro_api::aihub::AIHub;
use mro_api::catalog::{Catalog, CatalogSpec, SINGLETON_NAME as CATALOG_NAME};

use super::observe::Children;
use super::render::{PART_OF_LABEL, PART_OF_VALUE};

/// Why the Catalog could not be read, created or deleted (retried).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The Catalog the AIHub creates (pure): named `catalog`, in `namespace`, labelled as everything
/// the aihub controller creates, controlled by `hub`; an empty spec (the catalog controller
/// defaults it).
pub fn desired(hub: &AIHub, namespace: &str) -> Catalog {
    let mut c = Catalog::new(CATALOG_NAME, CatalogSpec::default());
    c.metadata.namespace = Some(namespace.to_string());
    c.metadata.labels = Some([(PART_OF_LABEL.to_string(), PART_OF_VALUE.to_string())].into());
    c.metadata.owner_references = Some(vec![owner_ref(hub)]);
    c
}

fn owner_ref(hub: &AIHub) -> OwnerReference {
    OwnerReference {
        api_version: AIHub::api_version(&()).into_owned(),
        kind: AIHub::kind(&()).into_owned(),
        name: hub.name_any(),
        uid: hub.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Creates the Catalog when both children are Available and it is absent; an existing one (ours
/// or not) is left as it is. Returns whether a Catalog exists afterwards.
pub async fn ensure(
    client: &Client,
    hub: &AIHub,
    namespace: &str,
    children: &Children,
) -> Result<bool, CatalogError> {
    if !children.all_available() {
        return Ok(false);
    }
    let api: Api<Catalog> = Api::namespaced(client.clone(), namespace);
    if api.get_metadata_opt(CATALOG_NAME).await?.is_some() {
        return Ok(true);
    }
    match api
        .create(&PostParams::default(), &desired(hub, namespace))
        .await
    {
        Ok(_) => {
            tracing::info!(namespace, "created the Catalog {CATALOG_NAME}");
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// On the AIHub's deletion: deletes the Catalog it controls. `true` once no such Catalog is left
/// (a Catalog of someone else's is not touched and does not hold the deletion).
pub async fn delete_owned(
    client: &Client,
    hub: &AIHub,
    namespace: &str,
) -> Result<bool, CatalogError> {
    let api: Api<Catalog> = Api::namespaced(client.clone(), namespace);
    let Some(existing) = api.get_metadata_opt(CATALOG_NAME).await? else {
        return Ok(true);
    };
    let ours = existing
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == hub.uid().as_ref());
    if !ours {
        return Ok(true);
    }
    if existing.metadata.deletion_timestamp.is_none() {
        match api.delete(CATALOG_NAME, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(namespace, "deleting the Catalog {CATALOG_NAME}"),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(true),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use mro_api::aihub::AIHubSpec;

    use super::*;

    #[test]
    fn the_catalog_is_the_singleton_controlled_by_the_hub() {
        let mut hub = AIHub::new(
            mro_api::aihub::SINGLETON_NAME,
            AIHubSpec {
                application_namespace: "apps".into(),
                instances_namespace: "registries".into(),
                gateway: None,
            },
        );
        hub.metadata.uid = Some("u-1".into());
        let c = desired(&hub, "registries");
        assert_eq!(c.name_any(), "catalog");
        assert_eq!(c.namespace().as_deref(), Some("registries"));
        assert_eq!(c.labels()[PART_OF_LABEL], PART_OF_VALUE);
        let o = &c.owner_references()[0];
        assert_eq!(
            (
                o.kind.as_str(),
                o.name.as_str(),
                o.uid.as_str(),
                o.controller
            ),
            ("AIHub", "default-aihub", "u-1", Some(true))
        );
        assert_eq!(c.spec, CatalogSpec::default());
    }
}
