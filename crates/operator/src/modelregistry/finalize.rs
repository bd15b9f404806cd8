//! The *finalize* step, on deletion: every labelled child goes (cluster-scoped and
//! cross-namespace ones included), then the finalizer. Namespaced owned children would go by
//! garbage collection anyway; the generated database's password stays when its data is kept.
use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use mro_api::ModelRegistry;

use super::apply::{generated_db_secret, has_finalizer};
use super::build::{self, names};
use super::policy::FINALIZER;
use super::publish::write_status;
use super::{kinds, status};
use crate::context::Context;
use crate::kube_ext::{finalizer, prune};

/// Why the cleanup did not finish (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

pub async fn finalize(
    mr: &ModelRegistry,
    api: &Api<ModelRegistry>,
    ctx: &Context,
    caps: &crate::capabilities::Capabilities,
) -> Result<Action, FinalizeError> {
    if !has_finalizer(mr) {
        return Ok(Action::await_change());
    }
    let st = status::finalizing(mr);
    if status::differs(&mr.status, &st) {
        // Best effort: the object is going away.
        let _ = write_status(api, mr, &st, ctx).await;
    }
    let ns = mr.namespace().unwrap_or_default();
    let selector = names::parent(mr).selector();
    // Kept data keeps its password.
    let mut keep = BTreeSet::new();
    if build::postgres_provision::keep_data(mr) {
        keep.insert(generated_db_secret(mr));
    }
    prune::prune_consistent(&ctx.client, &kinds::managed(caps), &ns, &selector, &keep).await?;
    finalizer::remove(api, mr, FINALIZER).await?;
    Ok(Action::await_change())
}
