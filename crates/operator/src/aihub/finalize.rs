//! The *finalize* step, on deletion: the finalizer the Go operator puts on the AIHub goes.
//! Nothing is cleaned first: what was applied goes with the AIHub by garbage collection, and
//! this operator creates no Catalog.
use kube::api::Api;
use mro_api::aihub::AIHub;

use super::policy::FINALIZER;
use crate::kube_ext::finalizer;

/// Why the finalizer could not be removed (retried).
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

pub async fn finalize(api: &Api<AIHub>, hub: &AIHub) -> Result<(), FinalizeError> {
    finalizer::remove(api, hub, FINALIZER).await?;
    Ok(())
}
