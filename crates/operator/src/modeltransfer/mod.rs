//! The ModelTransfer controller: copies a model in a Job running model-sync and registers it.
//! Built on the shared controller layer ([`crate::kube_ext`]): this module declares what is
//! particular to this controller (its identity in `policy::ID`, its watches, builders, status).
//!
//! - [`reconcile`]: the pipeline (dereference → validate → build → apply → status), one file
//!   per step: [`dereference`] (the Job, its pods, the registry, how references are read),
//!   [`validate`] (the spec and every reference, before a Job exists), [`build`] (pure
//!   functions producing the Job, the metadata ConfigMap, the ServiceAccount and the
//!   registry-access RoleBinding), [`apply`] (the grant, the Job's inputs, the Job once),
//!   [`publish`] (the status write and its events); [`track`] runs the steps for an existing
//!   Job, [`finalize`] on deletion; [`error`] names the step that failed.
//! - [`policy`]: the controller's identity, finalizer and retry intervals.
//! - [`termination`]: the termination-message contract with model-sync.
//! - [`status`]: phase and conditions from the Job's outcome.
//! - [`verify`]: the `Registered` check against the registry.
//! - [`names`]: deterministic names and labels.
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use mro_api::ModelTransfer;

use crate::context::{Context, controller_config};
use crate::kube_ext::controller::{QueuedController, drain};
use crate::kube_ext::watch::{children_config, scoped};

pub mod apply;
pub mod build;
pub mod dereference;
pub mod error;
pub mod finalize;
pub mod names;
pub mod policy;
pub mod publish;
pub mod reconcile;
pub mod status;
pub mod termination;
pub mod track;
pub mod validate;
pub mod verify;
pub mod watched;

#[cfg(test)]
mod tests;

/// Maps a transfer pod to its transfer by the annotations copied from the Job's template.
fn transfer_of(pod: &Pod) -> Option<ObjectRef<ModelTransfer>> {
    let a = pod.metadata.annotations.as_ref()?;
    Some(
        ObjectRef::new(a.get(names::PARENT_NAME_ANNOTATION)?)
            .within(a.get(names::PARENT_NAMESPACE_ANNOTATION)?),
    )
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = ctx.settings.watch_namespace.clone();
    let ns = ns.as_deref();
    let cfg = || children_config(names::KIND, ns);
    let transfers: Api<ModelTransfer> = scoped(&client, ns);
    let w = &ctx.watched;
    // The Job and its pods are kept: the status is computed from them.
    let controller = QueuedController::new(transfers, watcher::Config::default().any_semantic())
        .tracking_own_writes(ctx.child_record(&policy::ID))
        .owns_kept(scoped::<Job>(&client, ns), cfg(), &w.transfer.jobs)
        .owns(scoped::<PartialObjectMeta<ConfigMap>>(&client, ns), cfg())
        .owns(
            scoped::<PartialObjectMeta<ServiceAccount>>(&client, ns),
            cfg(),
        )
        .owns(scoped::<PartialObjectMeta<RoleBinding>>(&client, ns), cfg())
        // Pod phases and termination messages drive the status before the Job's counters move.
        .watches_kept(scoped::<Pod>(&client, ns), cfg(), &w.transfer.pods, |p| {
            transfer_of(&p)
        });
    tracing::info!("starting ModelTransfer controller");
    let queue = ctx.metrics.work_queue(policy::CONTROLLER);
    let results = controller.with_config(controller_config(&ctx)).run(
        reconcile::reconcile,
        reconcile::report_error,
        ctx,
        queue,
        shutdown,
    );
    drain(results, policy::CONTROLLER).await;
}
