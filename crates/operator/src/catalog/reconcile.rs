//! One reconciliation of a Catalog, as a short pipeline of named steps, each with its own error:
//!
//! ```text
//! dereference → validate → build → apply → status        (finalize, when deleted)
//! ```
//!
//! A refused Catalog (wrong name or namespace) and names taken by objects that are not the
//! catalog's are shown on its `Available` condition (`ConfigurationError`) and in an event;
//! every other failure goes to the one reporter, by category (retried, or also shown as a
//! `ReconcileFailed` event).
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use mro_api::catalog::Catalog;

use super::apply::{self, ApplyError};
use super::build::names;
use super::context::{CatalogContext, ID};
use super::dereference::{self, DereferenceError};
use super::finalize::{self, FinalizeError};
use super::plan;
use super::status::{self, StatusError};
use super::validate::{self, ValidateError};
use crate::kube_ext::report::{Classify, Failure, Reporter};
use crate::kube_ext::{events, finalizer};

/// How often a Catalog whose children's names are taken looks again (a foreign object's
/// deletion wakes no watch of the catalog's).
pub const CONFLICT_RETRY: Duration = Duration::from_secs(30);

/// A failed reconcile: which step failed, and why.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Finalize(#[from] FinalizeError),
    #[error("cannot add the finalizer: {0}")]
    Finalizer(#[source] kube::Error),
}

impl Classify for ReconcileError {
    /// Failed requests labelled with their step (`apply_kube_api_403`) and categorised by their
    /// status code; names taken by others' objects and a Catalog without a namespace need
    /// someone to act.
    fn failure(&self) -> Failure<'_> {
        use ReconcileError as R;
        match self {
            R::Apply(ApplyError::Conflict(_)) => Failure::must_act("conflict"),
            R::Dereference(DereferenceError::NoNamespace) => Failure::must_act("dereference"),
            R::Dereference(DereferenceError::Read { source, .. }) => {
                Failure::KubeIn("dereference", source)
            }
            R::Apply(ApplyError::Kube { source, .. }) => Failure::KubeIn("apply", source),
            R::Status(StatusError::Read { source, .. } | StatusError::Write(source)) => {
                Failure::KubeIn("status", source)
            }
            R::Finalize(FinalizeError::Kube(source)) | R::Finalizer(source) => {
                Failure::KubeIn("finalize", source)
            }
        }
    }
}

/// The reconcile.
pub async fn reconcile(
    catalog: Arc<Catalog>,
    ctx: Arc<CatalogContext>,
) -> Result<Action, ReconcileError> {
    let _measure = ctx.base.metrics.reconcile_started(ID.name);
    if catalog.metadata.deletion_timestamp.is_some() {
        return Ok(finalize::finalize(&ctx, &catalog).await?);
    }
    let read = dereference::dereference(&catalog, &ctx).await?;
    let (openshift, gateway_api) = (read.openshift, read.gateway_api);
    let valid = match validate::validate(read, &ctx.settings) {
        Ok(valid) => valid,
        Err(ValidateError(message)) => {
            // Shown, not retried: a change of the Catalog wakes it again.
            status::write(
                &ctx,
                &catalog,
                &status::configuration_error(&catalog, &message),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    for skipped in &valid.skipped_sources {
        tracing::info!(config_map = %skipped.config_map, reason = skipped.reason,
            "labelled catalog source ConfigMap left out");
    }
    let planned = plan::build(&valid, &ctx.settings);
    for e in &planned.unreadable_sources {
        // Reported, not fatal (as Go): the ConfigMap is left as it is.
        tracing::warn!(error = %e, "user catalog sources not migrated");
        events::publish_in_background(
            &ctx.base.recorder,
            catalog.as_ref(),
            "Reconcile",
            kube::runtime::events::EventType::Warning,
            "SourcesNotMigrated",
            &e.to_string(),
        );
    }
    // Cluster-scoped and cross-namespace children need the finalizer before they exist.
    if !finalizer::has(catalog.as_ref(), names::FINALIZER) {
        let api: Api<Catalog> = Api::namespaced(
            ctx.base.client.clone(),
            &catalog.namespace().unwrap_or_default(),
        );
        finalizer::add(&api, catalog.as_ref(), names::FINALIZER)
            .await
            .map_err(ReconcileError::Finalizer)?;
    }
    match apply::apply(&ctx, &catalog, &planned, openshift, gateway_api).await {
        Ok(applied) => {
            if !applied.created.is_empty() {
                tracing::info!(created = ?applied.created, "catalog objects created");
            }
        }
        Err(ApplyError::Conflict(message)) => {
            status::write(
                &ctx,
                &catalog,
                &status::configuration_error(&catalog, &message),
            )
            .await?;
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(status::status(&ctx, &catalog).await?)
}

/// Reports a failed reconcile through the one reporter (lasting failures also as events).
pub fn report_error(catalog: Arc<Catalog>, err: &ReconcileError, ctx: Arc<CatalogContext>) {
    Reporter {
        id: &ID,
        metrics: &ctx.base.metrics,
        events: Some(&ctx.base.recorder),
    }
    .failed(catalog.as_ref(), err);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_ext::report::{Categorized, ErrorCategory, api_error as api};

    #[test]
    fn errors_have_a_step_label_and_a_category() {
        let e = ReconcileError::Apply(ApplyError::Kube {
            action: "apply".into(),
            source: api(403),
        });
        assert_eq!(e.metric_label(), "apply_kube_api_403");
        assert_eq!(e.category(), ErrorCategory::UserMustAct);
        let e = ReconcileError::Status(StatusError::Write(api(409)));
        assert_eq!(e.metric_label(), "status_kube_api_409");
        assert_eq!(e.category(), ErrorCategory::Transient);
        let e = ReconcileError::Dereference(DereferenceError::Read {
            what: "x",
            source: api(500),
        });
        assert_eq!(e.category(), ErrorCategory::Transient);
        let e = ReconcileError::Apply(ApplyError::Conflict("taken".into()));
        assert_eq!(e.metric_label(), "conflict");
        assert_eq!(e.category(), ErrorCategory::UserMustAct);
    }
}
