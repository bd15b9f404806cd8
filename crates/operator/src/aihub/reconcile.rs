//! One reconciliation of the `AIHub`, as a pipeline of named steps, each with its own error
//! ([`ReconcileError`] says which step failed): [validate](super::validate) (the singleton, its
//! namespaces and domain) → build (the embedded overlay [rendered](super::render), pure) →
//! [apply](super::apply) (finalizer, instances namespace, server-side apply) →
//! [status](super::status) (from what provisioning came to and the child Deployment). Deletion
//! is its own step ([finalize](super::finalize)).
//!
//! A provisioning failure (rendering, the namespace, an apply, an object left alone) is shown on
//! the status and looked at again soon; only failing requests of the pipeline itself are
//! reconcile failures.
use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use mro_api::aihub::AIHub;

use super::apply::{self, ApplyError};
use super::finalize::{FinalizeError, finalize};
use super::policy::{CONTROLLER, FAILURE_REQUEUE, FIELD_MANAGER};
use super::render::{self, ChildImages, RenderInput, Rendered};
use super::status::{self, StatusError};
use super::validate::{self, Valid, ValidateError};
use crate::kube_ext::identity::ControllerId;
use crate::kube_ext::report::{
    Categorized, ErrorCategory, Reporter, kube_category, kube_metric_label,
};
use crate::metrics::Metrics;

/// This controller's name and its one field manager.
pub const ID: ControllerId = ControllerId {
    name: CONTROLLER,
    manager: FIELD_MANAGER,
};

/// What the reconciler needs.
pub struct Ctx {
    pub client: Client,
    pub images: ChildImages,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Finalize(#[from] FinalizeError),
}

impl ReconcileError {
    fn kube(&self) -> &kube::Error {
        match self {
            ReconcileError::Apply(ApplyError::Kube(e))
            | ReconcileError::Status(StatusError::Kube(e))
            | ReconcileError::Finalize(FinalizeError::Kube(e)) => e,
        }
    }
}

impl Categorized for ReconcileError {
    fn metric_label(&self) -> String {
        kube_metric_label(self.kube())
    }

    fn category(&self) -> ErrorCategory {
        kube_category(self.kube())
    }
}

pub async fn reconcile(hub: Arc<AIHub>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let _measure = ctx.metrics.reconcile_started(CONTROLLER);
    let client = &ctx.client;
    let valid = match validate::validate(&hub) {
        Ok(valid) => valid,
        Err(ValidateError::NotTheSingleton(name)) => {
            tracing::info!(name = %name, "ignoring an AIHub that is not {}", mro_api::aihub::SINGLETON_NAME);
            return Ok(Action::await_change());
        }
    };
    if hub.meta().deletion_timestamp.is_some() {
        finalize(&Api::all(client.clone()), &hub).await?;
        return Ok(Action::await_change());
    }
    let built = build(&valid, &ctx.images);
    let provisioned = apply::apply(client, &hub, &valid, built).await?;
    let requeue = status::status(client, &ctx.metrics, &hub, &valid, &provisioned).await?;
    Ok(Action::requeue(requeue))
}

/// The *build* step: the embedded overlay rendered with the AIHub's settings (pure); a failure
/// is a provisioning failure, shown on the status.
fn build(valid: &Valid<'_>, images: &ChildImages) -> Result<Vec<Rendered>, String> {
    render::render(&RenderInput {
        application_namespace: valid.application_namespace,
        instances_namespace: valid.instances_namespace,
        gateway_domain: valid.domain,
        images,
    })
    .map_err(|e| format!("{e:#}"))
}

/// Reports a failed reconcile through the one reporter (no events: the AIHub's status tells
/// the user) and looks again soon.
pub fn error_policy(hub: Arc<AIHub>, err: &ReconcileError, ctx: Arc<Ctx>) -> Action {
    let reporter = Reporter {
        id: &ID,
        metrics: &ctx.metrics,
        events: None,
    };
    reporter.failed(hub.as_ref(), err);
    Action::requeue(FAILURE_REQUEUE)
}
