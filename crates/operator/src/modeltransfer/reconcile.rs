//! One reconciliation of a `ModelTransfer`, as a pipeline of named steps, each with its own
//! error ([`ReconcileError`] says which step failed):
//!
//! - a transfer being deleted is [finalized](super::finalize);
//! - [dereference](super::dereference): the Job (kept by the watches, known absent, or read);
//! - an existing Job is [tracked](super::track): status from the Job, its pods' termination
//!   messages and the registry check; a Job gone after it was created (TTL, or deleted by hand)
//!   is never re-created: the status keeps the outcome;
//! - no Job yet: [validate](super::validate) (spec and references) → [build](super::build)
//!   (pure) → [apply](super::apply) (the grant, the Job's inputs, the Job last and only once) →
//!   [status](super::publish).
//!
//! What keeps a transfer from starting (an invalid spec, a missing reference, a name taken by
//! someone else's object, a child the API server refuses) is shown on its status, not returned
//! as a failure: the user must act, and retrying it as a failure would only storm.
//!
//! The Job is created once and never changed. Its spec hash is recorded on it; a spec that no
//! longer matches is reported (`SpecChanged`), not applied.
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mro_api::ModelTransfer;
use mro_api::condition::model_transfer::reasons;

use super::apply::{self, ApplyError, set_grant};
use super::build::{self, BuildInput, Desired};
use super::dereference::{self, DereferenceError, JobState};
use super::error::ReconcileError;
use super::finalize::finalize;
use super::names;
use super::policy::{ACTIVE_RESYNC, CONTROLLER, ID, MISSING_REFERENCE_RETRY};
use super::publish::{note, publish_status};
use super::status::{self, Registration, StatusInput};
use super::track::track;
use super::validate::{self, Invalid, Valid, ValidateError};
use crate::context::Context;
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::report::Reporter;

pub async fn reconcile(
    mt: Arc<ModelTransfer>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let _measure = ctx.metrics.reconcile_started(CONTROLLER);
    let ns = mt
        .namespace()
        .ok_or(DereferenceError::MissingField("metadata.namespace"))?;
    let api: Api<ModelTransfer> = Api::namespaced(ctx.client.clone(), &ns);
    if mt.metadata.deletion_timestamp.is_some() {
        return Ok(finalize(&mt, &api, &ctx).await?);
    }
    match dereference::job(&ctx, &mt, &ns).await? {
        JobState::Exists(job) => track(&mt, &api, &ctx, &job).await,
        JobState::Gone { created } => job_gone(&mt, &api, &ctx, &created).await,
        JobState::NotCreated => start(&mt, &api, &ctx).await,
    }
}

/// No Job yet: validate → build → apply → status. Everything must check out before a Job is
/// created.
async fn start(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let caps = ctx.caps.current();
    let valid = match validate::validate(ctx, mt, &caps).await {
        Ok(valid) => valid,
        Err(ValidateError::Invalid(invalid)) => return not_startable(mt, api, ctx, invalid).await,
        Err(e) => return Err(e.into()),
    };
    let desired = match build(mt, ctx, valid) {
        Ok(desired) => desired,
        Err(e) => {
            publish_status(mt, api, ctx, &status::invalid(mt, &e.to_string())).await?;
            return Ok(Action::await_change());
        }
    };
    let job = match apply::apply(ctx, mt, api, &desired).await {
        Ok(job) => job,
        // A name taken by someone else's object: no Job; looked at again on a timer.
        Err(ApplyError::Conflict(message)) => {
            let st = status::not_started(mt, reasons::RESOURCE_CONFLICT, &message);
            publish_status(mt, api, ctx, &st).await?;
            return Ok(Action::requeue(MISSING_REFERENCE_RETRY));
        }
        // The API server refuses what the CRD schema let through: a spec problem for the user,
        // not a retry loop.
        Err(ApplyError::Refused(message)) => {
            publish_status(mt, api, ctx, &status::invalid(mt, &message)).await?;
            return Ok(Action::await_change());
        }
        Err(e) => return Err(e.into()),
    };
    created(mt, api, ctx, &job).await
}

/// The *build* step: the desired children from the validated input (pure).
fn build(mt: &ModelTransfer, ctx: &Context, valid: Valid) -> Result<Desired, BuildError> {
    let input = BuildInput {
        mt,
        settings: &ctx.settings,
        registry: valid.wiring,
        service_account: valid.service_account,
    };
    build::desired(&input, &names::spec_hash(&mt.spec))
}

/// The *status* step after the Job was created: its first status, with the `JobCreated` event.
async fn created(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    job: &Job,
) -> Result<Action, ReconcileError> {
    let job_name = job.name_any();
    let outcome = status::outcome(job, &[]);
    let st = status::compute(&StatusInput {
        mt,
        job_name: &job_name,
        outcome: &outcome,
        registration: &Registration::NotChecked,
    });
    let created = format!(
        "created Job {job_name} running {}",
        ctx.settings.images.model_sync
    );
    // The event and the status at once: one round trip.
    let (_, published) = tokio::join!(
        note(ctx, mt, EventType::Normal, "JobCreated", &created),
        publish_status(mt, api, ctx, &st)
    );
    published?;
    Ok(Action::requeue(ACTIVE_RESYNC))
}

/// Validation failed: no Job, and no grant left by an earlier attempt whose Job was never
/// created. Missing references are looked at again on a timer; spec errors wait for a change.
async fn not_startable(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    invalid: Invalid,
) -> Result<Action, ReconcileError> {
    set_grant(mt, api, ctx, None).await?;
    let st = status::not_started(mt, invalid.reason, &invalid.message);
    publish_status(mt, api, ctx, &st).await?;
    Ok(if invalid.retry {
        Action::requeue(MISSING_REFERENCE_RETRY)
    } else {
        Action::await_change()
    })
}

/// The Job ran (or started) and is gone: never run the transfer twice. A terminal status
/// stands; otherwise the status says the Job was deleted.
async fn job_gone(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    created: &str,
) -> Result<Action, ReconcileError> {
    let st = match mt.status.as_ref().and_then(|s| s.phase) {
        Some(p) if p.is_terminal() => mt.status.clone().unwrap_or_default(),
        _ => status::job_deleted(mt, created),
    };
    set_grant(mt, api, ctx, None).await?;
    publish_status(mt, api, ctx, &st).await?;
    Ok(Action::await_change())
}

/// Reports a failed reconcile (see [`crate::kube_ext::report`]); no events: the transfer's
/// status and its own events tell the user.
pub fn report_error(mt: Arc<ModelTransfer>, err: &ReconcileError, ctx: Arc<Context>) {
    let reporter = Reporter {
        id: &ID,
        metrics: &ctx.metrics,
        events: None,
    };
    reporter.failed(mt.as_ref(), err);
}
