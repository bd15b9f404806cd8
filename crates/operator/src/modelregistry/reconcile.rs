//! One reconciliation of a `ModelRegistry`, as a pipeline of named steps, each with its own
//! error ([`ReconcileError`] says which step failed):
//!
//! [migrate](super::migrate) (a spec stored for the Go operator is first rewritten, once) →
//! [validate](super::validate) (spec, name, namespace, uniqueness; while it runs, whether the
//! Deployment exists is read) → dereference ([`super::read`]: what the cluster tells the
//! builders) → [build](super::build) (pure) → [apply](super::apply) (the generated database,
//! the finalizer, the children in waves, the prune) → [status](super::publish) (from what was
//! applied and observed). Deletion is its own step ([finalize](super::finalize)).
//!
//! An invalid registry gets no children: a validation or build failure, like a name taken by
//! someone else's object, is shown on the status (with an event), not retried as a failure.
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use mro_api::ModelRegistry;
use mro_api::condition::model_registry::reasons;

use super::apply::{self, ApplyError};
use super::build::{self, BuildInput, names};
use super::finalize::{FinalizeError, finalize};
use super::policy::{CONFLICT_RETRY, CONTROLLER, ID};
use super::provision::ProvisionError;
use super::publish::{StatusError, status_step, warn, write_status};
use super::read::DereferenceError;
use super::validate::{self, ValidateError};
use super::{migrate, read, status};
use crate::context::Context;
use crate::kube_ext::child;
use crate::kube_ext::report::{Classify, Failure, Reporter};

/// A failed reconcile: the error of the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Validate(#[from] ValidateError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Finalize(#[from] FinalizeError),
}

impl Classify for ReconcileError {
    /// Failed requests by their status code; everything else here (a spec that cannot be
    /// checked in, a name taken by someone else's object, no randomness) persists until someone
    /// changes something.
    fn failure(&self) -> Failure<'_> {
        use ReconcileError as R;
        match self {
            R::Dereference(DereferenceError::Kube(e))
            | R::Validate(ValidateError::Check(e))
            | R::Apply(ApplyError::Kube(e) | ApplyError::Provision(ProvisionError::Kube(e)))
            | R::Status(StatusError::Kube(e))
            | R::Finalize(FinalizeError::Kube(e)) => Failure::Kube(e),
            R::Dereference(DereferenceError::NoNamespace) => Failure::must_act("missing_field"),
            R::Apply(ApplyError::Conflict(_)) => Failure::must_act("conflict"),
            R::Dereference(DereferenceError::NoRandomness(_))
            | R::Validate(ValidateError::Invalid(_))
            | R::Apply(ApplyError::Provision(ProvisionError::NoRandomness(_))) => {
                Failure::must_act("invalid")
            }
        }
    }
}

pub async fn reconcile(
    mr: Arc<ModelRegistry>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let _measure = ctx.metrics.reconcile_started(CONTROLLER);
    let ns = mr.namespace().ok_or(DereferenceError::NoNamespace)?;
    let api: Api<ModelRegistry> = Api::namespaced(ctx.client.clone(), &ns);
    let caps = ctx.caps.current();

    if mr.metadata.deletion_timestamp.is_some() {
        return Ok(finalize(&mr, &api, &ctx, &caps).await?);
    }
    // A spec stored for the Go operator is first rewritten as its HEAD rewrites it.
    if let Some(action) = migrate::apply(&api, &mr, &ctx, &ID)
        .await
        .map_err(DereferenceError::from)?
    {
        return Ok(action);
    }

    // Validate before anything is built or applied, so an invalid registry gets no children.
    // Whether the Deployment exists yet is read meanwhile: from the watches when they can tell.
    let name = mr.name_any();
    let deployment_key = child::ChildKey::of::<Deployment>(&ns, &name);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ns);
    // And whether it has this operator's former selector, which is kept (immutable): the kept
    // Deployment tells, else one read; a Deployment the Go operator made (not labelled as
    // ours, so not kept) has the current selector.
    let existing = async {
        let kept = ctx.watched.registry.deployments.get(&ns, &name).known();
        let legacy = |d: &Deployment| {
            d.spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.as_ref())
                == Some(&names::legacy_selector(&mr))
        };
        Ok::<_, kube::Error>(
            match (ctx.child_record(&ID).exists(&deployment_key), kept) {
                (Some(known), Some(kept)) if known == kept.is_some() => {
                    (known, kept.as_deref().is_some_and(legacy))
                }
                _ => {
                    let d = deployments.get_opt(&name).await?;
                    (d.is_some(), d.as_ref().is_some_and(legacy))
                }
            },
        )
    };
    let (valid, existing) = futures::join!(validate::validate(&mr, &ctx), existing);
    let validated = match valid {
        Ok(v) => v,
        Err(ValidateError::Invalid(message)) => {
            return configuration_error(&ctx, &mr, &api, &message).await;
        }
        Err(e) => return Err(e.into()),
    };
    let (existing, legacy_selector) = existing.map_err(DereferenceError::from)?;

    // Dereference, then build.
    let observed = read::observe(&ctx.client, &mr, &caps, &ctx.settings).await?;
    let input = BuildInput {
        mr: validated.mr,
        settings: &ctx.settings,
        caps: &caps,
        cluster_domain: observed.cluster_domain.clone(),
        ingress_gateway: observed.ingress_gateway.clone(),
        oauth_cookie_secret: observed.oauth_cookie_secret.clone(),
        legacy_selector,
    };
    let desired = match build::desired(&input) {
        Ok(d) => d,
        Err(e) => return configuration_error(&ctx, &mr, &api, &e.to_string()).await,
    };

    let applied = match apply::apply(&ctx, &mr, &api, &caps, &desired).await {
        Ok(applied) => applied,
        // Names taken by objects that are not ours: reported, looked at again on a timer (a
        // foreign object's deletion wakes no watch of ours).
        Err(ApplyError::Conflict(message)) => {
            let st = status::conflict(&mr, &message);
            if status::differs(&mr.status, &st) {
                warn(&ctx, &mr, reasons::RESOURCE_CONFLICT, &message).await;
                write_status(&api, &mr, &st, &ctx)
                    .await
                    .map_err(StatusError::from)?;
            }
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
        Err(e) => return Err(e.into()),
    };

    let created_deployment = !existing;
    Ok(status_step(
        &ctx,
        &mr,
        &api,
        &input,
        &desired,
        &applied,
        created_deployment,
    )
    .await?)
}

/// A registry that cannot be built from its spec: `ConfigurationError` on the status (with an
/// event), no children, no retry until the spec changes.
async fn configuration_error(
    ctx: &Context,
    mr: &ModelRegistry,
    api: &Api<ModelRegistry>,
    message: &str,
) -> Result<Action, ReconcileError> {
    let st = status::configuration_error(mr, message);
    if status::differs(&mr.status, &st) {
        warn(ctx, mr, "ConfigurationError", message).await;
        write_status(api, mr, &st, ctx)
            .await
            .map_err(StatusError::from)?;
    }
    Ok(Action::await_change())
}

/// Reports a failed reconcile (see [`crate::kube_ext::report`]); lasting rejections are shown
/// on the registry as `ReconcileFailed` events.
pub fn report_error(mr: Arc<ModelRegistry>, err: &ReconcileError, ctx: Arc<Context>) {
    let reporter = Reporter {
        id: &ID,
        metrics: &ctx.metrics,
        events: Some(&ctx.recorder),
    };
    reporter.failed(mr.as_ref(), err);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_ext::report::{Categorized, ErrorCategory, api_error as api};

    fn user_must_act(err: &ReconcileError) -> bool {
        err.category() == ErrorCategory::UserMustAct
    }

    #[test]
    fn only_lasting_rejections_are_reported_to_the_user() {
        for code in [400, 403, 422] {
            let e = ReconcileError::Dereference(DereferenceError::Kube(api(code)));
            assert!(user_must_act(&e), "{code}");
        }
        for code in [404, 409, 429, 500, 503] {
            let e = ReconcileError::Apply(ApplyError::Provision(ProvisionError::Kube(api(code))));
            assert!(!user_must_act(&e), "{code}");
        }
        // A request that timed out is retried.
        let timeout =
            ReconcileError::Status(StatusError::Kube(kube::Error::Service("timeout".into())));
        assert!(!user_must_act(&timeout));
        assert!(user_must_act(&ReconcileError::Validate(
            ValidateError::Invalid("bad".into())
        )));
    }

    #[test]
    fn each_failure_keeps_its_metric_label() {
        let e = ReconcileError::Finalize(FinalizeError::Kube(api(409)));
        assert_eq!(e.metric_label(), "kube_api_409");
        let e = ReconcileError::Dereference(DereferenceError::NoNamespace);
        assert_eq!(e.metric_label(), "missing_field");
        assert!(user_must_act(&e));
        let e = ReconcileError::Apply(ApplyError::Conflict("taken".into()));
        assert_eq!(e.metric_label(), "conflict");
        assert!(user_must_act(&e));
        let e = ReconcileError::Apply(ApplyError::Provision(ProvisionError::NoRandomness(
            "none".into(),
        )));
        assert_eq!(e.metric_label(), "invalid");
        assert_eq!(
            e.to_string(),
            "invalid configuration: no randomness for the database password: none"
        );
    }
}
