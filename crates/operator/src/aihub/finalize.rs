//! The *finalize* step, on deletion (go-operator-head.md §2.2 step 9): the Catalog the AIHub
//! created is deleted first, and looked at again every few seconds until it is gone (the catalog
//! controller cleans up behind its own finalizer); only then does the AIHub's finalizer go. What
//! was applied goes with the AIHub by garbage collection.
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use mro_api::aihub::AIHub;

use super::catalog::{self, CatalogError};
use super::policy::{DELETION_REQUEUE, FINALIZER};
use super::validate::Valid;
use crate::kube_ext::finalizer;

/// Why the deletion could not go on (retried).
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// `Some(after)`: the Catalog is still going, look again then; `None`: the finalizer is gone.
pub async fn finalize(
    client: &Client,
    hub: &AIHub,
    valid: &Valid<'_>,
) -> Result<Option<Duration>, FinalizeError> {
    if !finalizer::has(hub, FINALIZER) {
        return Ok(None);
    }
    if !catalog::delete_owned(client, hub, valid.instances_namespace).await? {
        return Ok(Some(DELETION_REQUEUE));
    }
    finalizer::remove(&Api::<AIHub>::all(client.clone()), hub, FINALIZER).await?;
    Ok(None)
}
