//! The *apply* step: the generated database's credentials and data volume (created once, before
//! anything refers to them), the finalizer when a child cannot have an owner reference, the
//! children in waves by server-side apply, then the prune of what is no longer desired, and the
//! Go operator's legacy catalog objects ([`super::legacy`]).
//!
//! A name taken by an object that is not this registry's stops the step
//! ([`ApplyError::Conflict`]); the pipeline shows it on the status and looks again on a timer (a
//! foreign object's deletion wakes no watch of ours).
use std::collections::BTreeSet;
use std::ops::ControlFlow;

use kube::ResourceExt;
use kube::api::Api;
use mro_api::ModelRegistry;

use super::build::{self, Desired, names};
use super::policy::{FINALIZER, ID};
use super::{kinds, legacy, provision};
use crate::capabilities::Capabilities;
use crate::context::Context;
use crate::kube_ext::applier::Waves;
use crate::kube_ext::apply::ApplyError as ChildApplyError;
use crate::kube_ext::child::{self, Child};
use crate::kube_ext::{finalizer, prune};

/// Why the children were not (all) applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Names taken by objects that are not this registry's (the message names them).
    #[error("{0}")]
    Conflict(String),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The generated database's Secret or claim (created before the children).
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
}

/// What the apply came to, for the status.
pub struct Applied {
    /// Why the gateway's HTTPRoute was refused (its namespace may be missing): reported on
    /// `HTTPRouteAvailable`, holding nothing else back.
    pub route_error: Option<String>,
}

pub async fn apply(
    ctx: &Context,
    mr: &ModelRegistry,
    api: &Api<ModelRegistry>,
    caps: &Capabilities,
    desired: &Desired,
) -> Result<Applied, ApplyError> {
    let ns = mr.namespace().unwrap_or_default();
    let name = mr.name_any();
    // The generated database's credentials and data volume: created once, before anything
    // refers to them.
    if let Some(message) = provision::ensure(&ctx.client, mr).await? {
        return Err(ApplyError::Conflict(message));
    }

    // Children without owner references need the finalizer before they exist.
    let needs_finalizer = desired.children.iter().any(|c| !is_owned_child(c, &ns));
    if needs_finalizer && !has_finalizer(mr) {
        finalizer::add(api, mr, FINALIZER).await?;
    }

    // Apply, then prune what is no longer desired.
    // Concurrently, in three waves. Bindings after the rest, because the API server checks a
    // binding against the Role it names (which must exist then). The Deployment last, so its
    // pods start with everything they reference in place (a pod naming a missing ServiceAccount
    // is refused), and an existing Deployment means its siblings exist. Within a wave nothing
    // depends on another child. Every apply of a wave completes before an error is returned, so
    // a failing child never cancels another one's request midway.
    // The gateway's HTTPRoute after the registry itself: it lives in another namespace, which
    // may be missing; that is reported on HTTPRouteAvailable and holds nothing else back.
    let wave_of = |c: &Child| match c.resource.kind.as_str() {
        "HTTPRoute" => 3,
        "Deployment" => 2,
        k if k.ends_with("RoleBinding") => 1,
        _ => 0,
    };
    let mut route_error = None;
    let record = ctx.child_record(&ID);
    let waves = Waves::by(&desired.children, 4, wave_of);
    let stop = waves
        .apply(
            |child| record.apply(&ctx.client, child),
            |results| {
                let mut conflicts = Vec::new();
                for (child, result) in results {
                    match result {
                        Ok(_) => {}
                        Err(ChildApplyError::Conflict(c)) => conflicts.push(c.to_string()),
                        Err(ChildApplyError::Kube(kube::Error::Api(s)))
                            if child.resource.kind == "HTTPRoute"
                                && matches!(s.code, 400 | 403 | 404 | 422) =>
                        {
                            route_error = Some(s.message.clone());
                        }
                        Err(ChildApplyError::Kube(e)) => return ControlFlow::Break(Err(e)),
                    }
                }
                if conflicts.is_empty() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(Ok(conflicts.join("; ")))
                }
            },
        )
        .await;
    match stop {
        None => {}
        Some(Err(e)) => return Err(e.into()),
        // Names taken by objects that are not ours: reported, nothing after this wave applied
        // (the Deployment is last).
        Some(Ok(message)) => return Err(ApplyError::Conflict(message)),
    }
    let mut keep: BTreeSet<_> = desired.children.iter().map(Child::key).collect();
    // The generated database's password is never pruned (upstream deletes nothing when
    // generateDeployment is turned off): the data it opens may still be there.
    keep.insert(generated_db_secret(mr));
    let parent = names::parent(mr);
    let kinds = kinds::managed(caps);
    let pruned = prune::prune(&ctx.client, &record, &kinds, &parent, &keep).await?;
    if !pruned.is_empty() {
        tracing::info!(registry = %name, namespace = %ns, ?pruned, "removed children no longer desired");
    }
    if !needs_finalizer && has_finalizer(mr) {
        finalizer::remove(api, mr, FINALIZER).await?;
    }
    // As the Go operator: a failure here holds nothing back (logged, looked at again next time).
    match legacy::delete_old_catalog(&ctx.client, mr, caps).await {
        Ok(deleted) if !deleted.is_empty() => {
            tracing::info!(registry = %name, namespace = %ns, ?deleted, "deleted the Go operator's legacy catalog objects");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(registry = %name, namespace = %ns, error = %e, "could not clean up the Go operator's legacy catalog objects");
        }
    }
    Ok(Applied { route_error })
}

pub fn generated_db_secret(mr: &ModelRegistry) -> child::ChildKey {
    child::ChildKey::of::<k8s_openapi::api::core::v1::Secret>(
        &mr.namespace().unwrap_or_default(),
        &build::postgres_provision::secret_name(mr),
    )
}

fn is_owned_child(child: &Child, ns: &str) -> bool {
    child.namespaced && child.namespace().as_deref() == Some(ns)
}

pub fn has_finalizer(mr: &ModelRegistry) -> bool {
    finalizer::has(mr, FINALIZER)
}
