//! The *apply* step: the registry grant (a RoleBinding, possibly in the registry's namespace,
//! with the finalizer exactly while it may exist there), then the Job's inputs at once, then the
//! Job, created once and never changed.
//!
//! A Job the API server would refuse is found out by a dry run before anything is granted for
//! it. When the applies stop before the Job (a name taken by someone else's object, or a child
//! the API server refuses), the grant applied for the Job is revoked before the step returns:
//! no grant outlives a Job that will not run.
use std::collections::BTreeSet;
use std::ops::ControlFlow;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, Preconditions};
use mro_api::ModelTransfer;

use super::build::Desired;
use super::names;
use super::policy::{FINALIZER, ID};
use crate::context::Context;
use crate::kube_ext::applier::Waves;
use crate::kube_ext::apply::{self as ssa, ApplyError as ChildApplyError};
use crate::kube_ext::child::{Child, ChildKey, ManagedKind};
use crate::kube_ext::{finalizer, prune};

/// Why the children were not (all) applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A child's name is taken by an object that is not this transfer's.
    #[error("{0}")]
    Conflict(String),
    /// The API server refused a child built from the spec (the message says which and why).
    #[error("invalid configuration: {0}")]
    Refused(String),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The API server's answer to the Job's apply is not a Job.
    #[error("invalid configuration: applied Job does not parse: {0}")]
    NotAJob(String),
    #[error("object has no applied Job")]
    NoJob,
}

impl From<ChildApplyError> for ApplyError {
    fn from(e: ChildApplyError) -> ApplyError {
        match e {
            ChildApplyError::Kube(e) => ApplyError::Kube(e),
            ChildApplyError::Conflict(c) => ApplyError::Conflict(c.to_string()),
        }
    }
}

/// Applies the grant and the Job's inputs, then creates the Job; returns the Job as created.
pub async fn apply(
    ctx: &Context,
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    desired: &Desired,
) -> Result<Job, ApplyError> {
    let job_child = Child::typed(&desired.job);
    // A Job the API server would refuse (what the CRD schema let through, e.g. a malformed
    // toleration) is found out before anything is granted for it: a grant applied first and
    // revoked after the refusal would exist for a moment on every reconcile of the transfer.
    if desired.role_binding.is_some()
        && let Err(kube::Error::Api(s)) =
            ssa::apply_dry_run(&ctx.client, ID.manager, &job_child).await
        && (s.code == 400 || s.code == 422)
    {
        set_grant(mt, api, ctx, None).await?;
        return Err(ApplyError::Refused(refused_message(&job_child, &s.message)));
    }
    // The binding's name in the registry's namespace may be taken by someone else's object.
    set_grant(mt, api, ctx, desired.role_binding.as_ref()).await?;
    // The Job's inputs at once, then the Job.
    let inputs = desired.inputs();
    let mut applied = None;
    let waves = Waves::new(vec![inputs.iter().collect(), vec![&job_child]]);
    let stop = waves
        .apply(
            |c| ssa::apply_new(&ctx.client, ID.manager, c),
            |results| {
                for (child, result) in results {
                    match result {
                        Ok(obj) => applied = Some(obj),
                        Err(ChildApplyError::Conflict(c)) => {
                            return ControlFlow::Break(ApplyError::Conflict(c.to_string()));
                        }
                        Err(ChildApplyError::Kube(kube::Error::Api(s)))
                            if s.code == 400 || s.code == 422 =>
                        {
                            let message = refused_message(child, &s.message);
                            return ControlFlow::Break(ApplyError::Refused(message));
                        }
                        Err(ChildApplyError::Kube(e)) => {
                            return ControlFlow::Break(ApplyError::Kube(e));
                        }
                    }
                }
                ControlFlow::Continue(())
            },
        )
        .await;
    match stop {
        None => {}
        // A name taken by an object that is not this transfer's (a ServiceAccount
        // `<name>-sync` made for something else would hand the Job its rights), or a child the
        // API server refuses (what the CRD schema let through, e.g. a malformed toleration or
        // node selector): no Job will run, so the registry grant applied for it must not
        // outlive it.
        Some(stopped @ (ApplyError::Conflict(_) | ApplyError::Refused(_))) => {
            revoke(ctx, desired.role_binding.as_ref()).await?;
            set_grant(mt, api, ctx, None).await?;
            return Err(stopped);
        }
        Some(e) => return Err(e),
    }
    applied
        .ok_or(ApplyError::NoJob)?
        .try_parse()
        .map_err(|e| ApplyError::NotAJob(e.to_string()))
}

/// The status message for a child the API server refused.
fn refused_message(child: &Child, why: &str) -> String {
    format!(
        "spec: the {} {} built from this spec is invalid: {why}",
        child.resource.kind,
        child.name(),
    )
}

/// The grant's kind. It lives in the registry's namespace, which may be another one; such a
/// binding exists only while the transfer has the finalizer (added before the binding is
/// applied, removed once it is gone), so without it the bindings are in the transfer's own
/// namespace (`in_parent_namespace`).
pub fn role_binding_kind(in_parent_namespace: bool) -> ManagedKind {
    ManagedKind {
        resource: ApiResource::erase::<RoleBinding>(&()),
        namespaced: true,
        in_parent_namespace,
    }
}

/// Makes the registry-access RoleBinding exist (`Some`) or not (`None`), with the finalizer
/// exactly while a RoleBinding outside the transfer's namespace may exist.
pub async fn set_grant(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    binding: Option<&RoleBinding>,
) -> Result<(), ApplyError> {
    let ns = mt.namespace().unwrap_or_default();
    let foreign = binding.is_some_and(|b| b.metadata.namespace.as_deref() != Some(ns.as_str()));
    if foreign && !has_finalizer(mt) {
        finalizer::add(api, mt, FINALIZER).await?;
    }
    let child = binding.map(Child::typed);
    let keep: BTreeSet<_> = child.iter().map(Child::key).collect();
    // Unchanged since our last apply: not applied again (see `ChildRecord`).
    let grant = async {
        match &child {
            Some(c) => ctx
                .child_record(&ID)
                .apply(&ctx.client, c)
                .await
                .map(drop)
                .map_err(ApplyError::from),
            None => Ok(()),
        }
    };
    // The prune keeps the binding whether or not its list shows it yet: both at once.
    let local = !foreign && !has_finalizer(mt);
    let (kinds, parent) = ([role_binding_kind(local)], names::parent(mt));
    let prune = async {
        prune::prune(&ctx.client, &ctx.child_record(&ID), &kinds, &parent, &keep)
            .await
            .map_err(ApplyError::from)
    };
    let ((), pruned) = futures::try_join!(grant, prune)?;
    if !pruned.is_empty() {
        tracing::info!(transfer = %mt.name_any(), namespace = %ns, ?pruned, "revoked registry access");
    }
    if !foreign && has_finalizer(mt) {
        finalizer::remove(api, mt, FINALIZER).await?;
    }
    Ok(())
}

/// Deletes the grant applied moments ago for a Job that will not run, by its name: the prune
/// of [`set_grant`] finds children through caches that may not show it yet.
async fn revoke(ctx: &Context, binding: Option<&RoleBinding>) -> Result<(), ApplyError> {
    let Some(b) = binding else { return Ok(()) };
    let (ns, name) = (b.namespace().unwrap_or_default(), b.name_any());
    let api = Api::<RoleBinding>::namespaced(ctx.client.clone(), &ns);
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => ctx
            .child_record(&ID)
            .deleted(&ChildKey::of::<RoleBinding>(&ns, &name)),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Ends a Job whose runs cannot succeed by running again (a run exited with invalid
/// configuration): deletes it with its pods, but only a Job this transfer controls, and only the
/// very Job that was read (its uid), never one made again under the name. Returns whether it
/// was deleted now.
pub async fn end_job(ctx: &Context, mt: &ModelTransfer, job: &Job) -> Result<bool, ApplyError> {
    let controlled = mt.uid().is_some_and(|uid| {
        job.owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == uid)
    });
    if !controlled || job.metadata.deletion_timestamp.is_some() {
        return Ok(false);
    }
    let api = Api::<Job>::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: job.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&job.name_any(), &dp).await {
        Ok(_) => Ok(true),
        // Gone already, or another object under the name now.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub fn has_finalizer(mt: &ModelTransfer) -> bool {
    finalizer::has(mt, FINALIZER)
}
