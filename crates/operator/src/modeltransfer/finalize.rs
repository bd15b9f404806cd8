//! The *finalize* step, on deletion: the RoleBinding in the registry's namespace goes; owned
//! children (Job and its pods, ConfigMap, ServiceAccount, same-namespace RoleBinding) go by
//! garbage collection. Nothing in the registry is touched: the registered model stays.
use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use mro_api::ModelTransfer;

use super::apply::{has_finalizer, role_binding_kind};
use super::names;
use super::policy::FINALIZER;
use crate::context::Context;
use crate::kube_ext::{finalizer, prune};

/// Why the cleanup did not finish (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

pub async fn finalize(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
) -> Result<Action, FinalizeError> {
    if !has_finalizer(mt) {
        return Ok(Action::await_change());
    }
    prune::prune_consistent(
        &ctx.client,
        &[role_binding_kind(false)],
        &mt.namespace().unwrap_or_default(),
        &names::selector(mt),
        &BTreeSet::new(),
    )
    .await?;
    finalizer::remove(api, mt, FINALIZER).await?;
    Ok(Action::await_change())
}
