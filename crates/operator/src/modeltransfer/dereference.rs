//! The *dereference* step: what the cluster holds for a transfer (its Job and the Job's pods),
//! the transfer read fresh, the ModelRegistry it names, and the one way every referenced object
//! is read ([`referenced`]). Nothing here judges what it finds: that is [`super::validate`].
//!
//! Reads go to the controller's own stores first, then to the API server's watch cache, and to
//! etcd only when the cache cannot be trusted for the answer (a lagging cache must never make
//! a reference look missing).
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use mro_api::{ModelRegistry, ModelTransfer};

use super::build::registry::{self, RegistryWiring};
use super::names;
use super::policy::ID;
use crate::capabilities::Capabilities;
use crate::context::Context;
use crate::kube_ext::child::ChildKey;
use crate::kube_ext::store::Lookup;

/// Why the cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Reads a referenced object from the API server's watch cache, and consistently (from etcd)
/// when the cache lacks it or `usable` rejects what the cache has: existing, complete references
/// (the common case) cost no etcd read, and nothing is reported missing from a cache that lags.
pub async fn referenced<K>(
    api: &Api<K>,
    name: &str,
    usable: impl Fn(&K) -> bool,
) -> kube::Result<Option<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match crate::kube_ext::server_cache::get_opt(api, name).await? {
        Some(obj) if usable(&obj) => Ok(Some(obj)),
        _ => api.get_opt(name).await,
    }
}

/// What the cluster holds of the transfer's Job.
pub enum JobState {
    /// The Job exists: its status drives the transfer's.
    Exists(Box<Job>),
    /// The status names a Job (`created`) that is gone (TTL, or deleted by hand): the transfer
    /// never runs twice.
    Gone { created: String },
    /// No Job yet: everything must check out before one is created.
    NotCreated,
}

/// The transfer's Job. The watches know whether it exists (and the child record knows the
/// Jobs this controller created): a Job known to be absent needs no read; an existing Job is
/// read for its status.
pub async fn job(
    ctx: &Context,
    mt: &ModelTransfer,
    ns: &str,
) -> Result<JobState, DereferenceError> {
    let job_name = names::job_name(mt);
    let job_key = ChildKey::of::<Job>(ns, &job_name);
    let job = match ctx.watched.transfer.jobs.get(ns, &job_name) {
        Lookup::Found(job) => Some((*job).clone()),
        _ => match ctx.child_record(&ID).exists(&job_key) {
            Some(false) => None,
            _ => {
                Api::<Job>::namespaced(ctx.client.clone(), ns)
                    .get_opt(&job_name)
                    .await?
            }
        },
    };
    if let Some(job) = job {
        return Ok(JobState::Exists(Box::new(job)));
    }
    Ok(match mt.status.as_ref().and_then(|s| s.job_name.clone()) {
        Some(created) => JobState::Gone { created },
        None => JobState::NotCreated,
    })
}

/// The transfer as stored now, when it is still the same object (`None`: deleted or
/// re-created meanwhile). The watch cache can lag behind this controller's own last status
/// write; a decision that must not repeat reads the transfer so.
pub async fn fresh(
    api: &Api<ModelTransfer>,
    mt: &ModelTransfer,
) -> Result<Option<ModelTransfer>, DereferenceError> {
    Ok(api
        .get_opt(&mt.name_any())
        .await?
        .filter(|m| m.metadata.uid == mt.metadata.uid))
}

/// The Job's pods (by the Job controller's `job-name` label, and owned by this very Job): as
/// the controller's pod watch keeps them, else from the API server's watch cache.
pub async fn pods(ctx: &Context, ns: &str, job: &Job) -> kube::Result<Vec<Pod>> {
    let name = job.name_any();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let owned = |p: &Pod| p.owner_references().iter().any(|o| o.uid == uid);
    let of_job = |p: &Pod| p.labels().get(names::JOB_NAME_LABEL) == Some(&name) && owned(p);
    if let Some(kept) = ctx.watched.transfer.pods.select(ns, of_job) {
        return Ok(kept.iter().map(|p| (**p).clone()).collect());
    }
    let list = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(
            &ListParams::default()
                .labels(&format!("{}={name}", names::JOB_NAME_LABEL))
                .match_any(),
        )
        .await?;
    Ok(list.items.into_iter().filter(owned).collect())
}

/// Why the registry wiring cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WiringProblem {
    /// The referenced ModelRegistry does not exist (yet).
    Missing(String),
    /// The referenced ModelRegistry is in another namespace and does not (or no longer) allow
    /// transfers from the transfer's namespace.
    Denied(String),
    /// The spec cannot work (e.g. an unparsable URL).
    Spec(String),
}

impl std::fmt::Display for WiringProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WiringProblem::Missing(m) | WiringProblem::Denied(m) | WiringProblem::Spec(m) => {
                f.write_str(m)
            }
        }
    }
}

/// Whether a ModelTransfer in `ns` may use `mr` (same namespace, or listed by the registry in
/// `spec.modelTransfers.allowedNamespaces`): the registry's owner decides who gets its
/// `registry-user-<name>` Role, not whoever can create a ModelTransfer somewhere.
pub fn access(mr: &ModelRegistry, ns: &str) -> Result<(), WiringProblem> {
    let mr_ns = mr.namespace().unwrap_or_default();
    if mr.spec.allows_transfers_from(&mr_ns, ns) {
        return Ok(());
    }
    Err(WiringProblem::Denied(format!(
        "spec.registry.modelRegistryRef: ModelRegistry {:?} in namespace {mr_ns:?} does not \
         allow ModelTransfers from namespace {ns:?}; its owner can add {ns:?} to the \
         ModelRegistry's spec.modelTransfers.allowedNamespaces (or use spec.registry.url with \
         credentials of your own)",
        mr.name_any()
    )))
}

/// How the transfer reaches its registry; looks up the referenced ModelRegistry.
pub async fn wiring(
    ctx: &Context,
    mt: &ModelTransfer,
    caps: &Capabilities,
) -> kube::Result<Result<RegistryWiring, WiringProblem>> {
    let client = &ctx.client;
    let ns = mt.namespace().unwrap_or_default();
    let target = &mt.spec.registry;
    let mr = match &target.model_registry_ref {
        Some(r) if target.url.is_none() => {
            let mr_ns = r.namespace.clone().unwrap_or_else(|| ns.clone());
            let registries = Api::<ModelRegistry>::namespaced(client.clone(), &mr_ns);
            // A registry the caches show without this namespace's opt-in is read again: the
            // opt-in may be seconds old.
            let found = match ctx.watched.registry.registries.get(&mr_ns, &r.name) {
                Lookup::Found(m) if access(&m, &ns).is_ok() => Some((*m).clone()),
                _ => referenced(&registries, &r.name, |m| access(m, &ns).is_ok()).await?,
            };
            match found {
                None => {
                    return Ok(Err(WiringProblem::Missing(format!(
                        "spec.registry.modelRegistryRef: ModelRegistry {:?} not found in namespace {mr_ns:?}",
                        r.name
                    ))));
                }
                Some(mr) => {
                    if let Err(denied) = access(&mr, &ns) {
                        return Ok(Err(denied));
                    }
                    Some(mr)
                }
            }
        }
        _ => None,
    };
    // A kube-rbac-proxy in the Go operator's mode reviews tokens for the API server's audience.
    let bound = crate::modelregistry::build::proxy::tokens_bound_to_registry(
        ctx.settings.kube_rbac_proxy_authorization,
    );
    Ok(registry::wiring(target, mr.as_ref(), caps)
        .map(|mut w| {
            if mr.is_some() && !bound {
                w.audience = None;
            }
            w
        })
        .map_err(|e| WiringProblem::Spec(e.to_string())))
}
