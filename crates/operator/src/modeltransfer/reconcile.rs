//! One reconciliation of a `ModelTransfer`:
//! read (Job, pods) → validate (spec and references) → build → apply (server-side, inputs first,
//! the Job last and only once) → status (from the Job, its pods' termination messages and the
//! registry check).
//!
//! The Job is created once and never changed. Its spec hash is recorded on it; a spec that no
//! longer matches is reported (`SpecChanged`), not applied. A Job that is gone after it was
//! created (TTL, or deleted by hand) is never re-created: the status keeps the outcome.
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mro_api::condition::model_transfer::{reasons, types};
use mro_api::condition::{find_condition, is_condition_true};
use mro_api::model_transfer::TransferPhase;
use mro_api::{ModelTransfer, ModelTransferStatus};

use super::build::registry::TokenSource;
use super::build::{self, BuildInput};
use super::read::{self, Resolution};
use super::status::{self, Registration, StatusInput};
use super::{names, verify};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::kube_ext::applier::Waves;
use crate::kube_ext::apply;
use crate::kube_ext::apply::ApplyError;
use crate::kube_ext::child::{Child, ChildKey, ManagedKind};
use crate::kube_ext::identity::ControllerId;
use crate::kube_ext::prune;
use crate::kube_ext::report::Reporter;
use crate::kube_ext::store::Lookup;
use crate::kube_ext::{self, events};

pub const CONTROLLER: &str = "modeltransfer";
/// This controller's name and field manager (never renamed: SSA ownership of existing objects
/// depends on the manager).
pub const ID: ControllerId = ControllerId {
    name: CONTROLLER,
    manager: "model-registry-operator-transfers",
};
/// Guards the RoleBinding in another namespace (owner references cannot reach it).
pub const FINALIZER: &str = "modelregistry.opendatahub.io/modeltransfer-cleanup";
/// How often a transfer waiting for a missing reference (Secret, ModelRegistry, ...) looks again.
/// Cheaper than watching every Secret of the cluster.
pub const MISSING_REFERENCE_RETRY: Duration = Duration::from_secs(10);
/// How often the registry is asked again while the artifact is not (yet) as expected.
pub const REGISTERED_RETRY: Duration = Duration::from_secs(10);
/// How long after completion the registry is checked; then the result stands and the Job's
/// registry access is revoked.
pub const REGISTERED_WINDOW: Duration = Duration::from_secs(600);
/// Safety net while the Job runs (Job and pod watches wake the controller on change).
const ACTIVE_RESYNC: Duration = Duration::from_secs(120);

pub async fn reconcile(mt: Arc<ModelTransfer>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.metrics.reconcile_started(CONTROLLER);
    let ns = mt
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<ModelTransfer> = Api::namespaced(ctx.client.clone(), &ns);
    if mt.metadata.deletion_timestamp.is_some() {
        return finalize(&mt, &api, &ctx).await;
    }
    let job_name = names::job_name(&mt);
    let hash = names::spec_hash(&mt.spec);
    // The watches know whether the Job exists (and we know the Jobs we created): a transfer
    // whose Job is known to be absent needs no read; an existing Job is read for its status.
    let job_key = ChildKey::of::<Job>(&ns, &job_name);
    let job = match ctx.watched.transfer_jobs.get(&ns, &job_name) {
        Lookup::Found(job) => Some((*job).clone()),
        _ => match ctx.child_record(&ID).exists(&job_key) {
            Some(false) => None,
            _ => read::job(&ctx.client, &ns, &job_name).await?,
        },
    };
    if let Some(job) = job {
        return track(&mt, &api, &ctx, &job, &hash).await;
    }
    if let Some(created) = mt.status.as_ref().and_then(|s| s.job_name.clone()) {
        // The Job ran (or started) and is gone: never run the transfer twice.
        let st = match mt.status.as_ref().and_then(|s| s.phase) {
            Some(p) if p.is_terminal() => mt.status.clone().unwrap_or_default(),
            _ => status::job_deleted(&mt, &created),
        };
        set_grant(&mt, &api, &ctx, None).await?;
        publish_status(&mt, &api, &ctx, &st).await?;
        return Ok(Action::await_change());
    }

    // No Job yet: everything must check out before one is created.
    let caps = ctx.caps.current();
    let resolved = match read::resolve(&ctx, &mt, &caps).await? {
        Resolution::Ready(r) => r,
        Resolution::Invalid {
            reason,
            message,
            retry,
        } => {
            // A grant left by an earlier attempt whose Job was never created goes.
            set_grant(&mt, &api, &ctx, None).await?;
            let st = status::not_started(&mt, reason, &message);
            publish_status(&mt, &api, &ctx, &st).await?;
            return Ok(if retry {
                Action::requeue(MISSING_REFERENCE_RETRY)
            } else {
                Action::await_change()
            });
        }
    };
    let input = BuildInput {
        mt: &mt,
        settings: &ctx.settings,
        registry: resolved.wiring,
        service_account: resolved.service_account,
    };
    let desired = match build::desired(&input, &hash) {
        Ok(d) => d,
        Err(e) => {
            publish_status(&mt, &api, &ctx, &status::invalid(&mt, &e.to_string())).await?;
            return Ok(Action::await_change());
        }
    };
    let job_child = Child::typed(&desired.job);
    // A Job the API server would refuse (what the CRD schema let through, e.g. a malformed
    // toleration) is found out before anything is granted for it: a grant applied first and
    // revoked after the refusal would exist for a moment on every reconcile of the transfer.
    if desired.role_binding.is_some()
        && let Err(kube::Error::Api(s)) =
            apply::apply_dry_run(&ctx.client, ID.manager, &job_child).await
        && (s.code == 400 || s.code == 422)
    {
        set_grant(&mt, &api, &ctx, None).await?;
        let message = refused_message(&job_child, &s.message);
        publish_status(&mt, &api, &ctx, &status::invalid(&mt, &message)).await?;
        return Ok(Action::await_change());
    }
    match set_grant(&mt, &api, &ctx, desired.role_binding.as_ref()).await {
        Ok(()) => {}
        // The binding's name in the registry's namespace is taken by someone else's object.
        Err(Error::Conflict(c)) => {
            let st = status::not_started(&mt, reasons::RESOURCE_CONFLICT, &c.to_string());
            publish_status(&mt, &api, &ctx, &st).await?;
            return Ok(Action::requeue(MISSING_REFERENCE_RETRY));
        }
        Err(e) => return Err(e),
    }
    // The Job's inputs at once, then the Job.
    let inputs = desired.inputs();
    let mut applied = None;
    let waves = Waves::new(vec![inputs.iter().collect(), vec![&job_child]]);
    let stop = waves
        .apply(
            |c| apply::apply_new(&ctx.client, ID.manager, c),
            |results| {
                for (child, result) in results {
                    match result {
                        Ok(obj) => applied = Some(obj),
                        Err(ApplyError::Conflict(c)) => {
                            return ControlFlow::Break(Stopped::Conflict(c.to_string()));
                        }
                        Err(ApplyError::Kube(kube::Error::Api(s)))
                            if s.code == 400 || s.code == 422 =>
                        {
                            let message = refused_message(child, &s.message);
                            return ControlFlow::Break(Stopped::Refused(message));
                        }
                        Err(ApplyError::Kube(e)) => return ControlFlow::Break(Stopped::Failed(e)),
                    }
                }
                ControlFlow::Continue(())
            },
        )
        .await;
    match stop {
        None => {}
        // A name taken by an object that is not this transfer's (a ServiceAccount
        // `<name>-sync` made for something else would hand the Job its rights): no
        // Job; looked at again on a timer.
        Some(Stopped::Conflict(message)) => {
            revoke(&ctx, desired.role_binding.as_ref()).await?;
            set_grant(&mt, &api, &ctx, None).await?;
            let st = status::not_started(&mt, reasons::RESOURCE_CONFLICT, &message);
            publish_status(&mt, &api, &ctx, &st).await?;
            return Ok(Action::requeue(MISSING_REFERENCE_RETRY));
        }
        // The API server refuses what the CRD schema let through (e.g. a malformed
        // toleration or node selector): a spec problem for the user, not a retry loop.
        Some(Stopped::Refused(message)) => {
            // No Job will run: the registry grant applied for it must not outlive it.
            revoke(&ctx, desired.role_binding.as_ref()).await?;
            set_grant(&mt, &api, &ctx, None).await?;
            publish_status(&mt, &api, &ctx, &status::invalid(&mt, &message)).await?;
            return Ok(Action::await_change());
        }
        Some(Stopped::Failed(e)) => return Err(e.into()),
    }
    let job: Job = applied
        .ok_or(Error::MissingField("applied Job"))?
        .try_parse()
        .map_err(|e| Error::Invalid(format!("applied Job does not parse: {e}")))?;
    let outcome = status::outcome(&job, &[]);
    let st = status::compute(&StatusInput {
        mt: &mt,
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
        note(&ctx, &mt, EventType::Normal, "JobCreated", &created),
        publish_status(&mt, &api, &ctx, &st)
    );
    published?;
    Ok(Action::requeue(ACTIVE_RESYNC))
}

/// The status message for a child the API server refused.
fn refused_message(child: &Child, why: &str) -> String {
    format!(
        "spec: the {} {} built from this spec is invalid: {why}",
        child.resource.kind,
        child.name(),
    )
}

/// Status of an existing Job; registry check after success; registry access while needed.
async fn track(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    job: &Job,
    hash: &str,
) -> Result<Action> {
    let ns = mt.namespace().unwrap_or_default();
    let pods = read::pods(ctx, &ns, job).await?;
    let outcome = status::outcome(job, &pods);
    let job_name = job.name_any();
    let recorded = job
        .annotations()
        .get(names::SPEC_HASH_ANNOTATION)
        .map(String::as_str);
    if recorded != Some(hash) {
        let st = status::compute(&StatusInput {
            mt,
            job_name: &job_name,
            outcome: &outcome,
            registration: &Registration::NotChecked,
        });
        publish_status(mt, api, ctx, &status::spec_changed(st, mt)).await?;
        return Ok(Action::await_change());
    }
    // The watch cache can lag behind this controller's own last status write (the `Registered`
    // verdict written a moment ago, then the grant revoked): deciding on a stale copy would
    // check again without access and overwrite the verdict. Read the transfer fresh before a
    // registry check can happen.
    let fresh;
    let mt = if outcome.phase == TransferPhase::Succeeded {
        match api.get_opt(&mt.name_any()).await? {
            Some(m) if m.metadata.uid == mt.metadata.uid => {
                fresh = m;
                &fresh
            }
            // Deleted (or re-created) meanwhile: the next event brings the current object.
            _ => return Ok(Action::await_change()),
        }
    } else {
        mt
    };
    let caps = ctx.caps.current();
    let wiring = read::wiring(ctx, mt, &caps).await?;
    let already = mt
        .status
        .as_ref()
        .is_some_and(|s| is_condition_true(&s.conditions, types::REGISTERED));
    let now = Timestamp::now();
    let in_window = outcome
        .completion_time
        .as_ref()
        .is_none_or(|t| now.duration_since(t.0).as_secs() < REGISTERED_WINDOW.as_secs() as i64);
    // Checked at least once, however late the operator sees the success.
    let decided = mt
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, types::REGISTERED))
        .is_some_and(|c| status::DECIDED.contains(&c.reason.as_str()));
    let check = outcome.phase == TransferPhase::Succeeded && !already && (in_window || !decided);
    let registration = match (check, &wiring) {
        (false, _) => Registration::NotChecked,
        (true, Err(problem)) => Registration::NotLive {
            reason: status::REGISTRY_UNREACHABLE,
            message: problem.to_string(),
        },
        (true, Ok(w)) => {
            let result = outcome.result.clone().unwrap_or_default();
            let bundle = mt
                .spec
                .job
                .as_ref()
                .and_then(|j| j.ca_bundle_config_map_ref.as_ref());
            verify::check(&ctx.client, &ns, w, bundle, &result).await
        }
    };
    // Only the Job uses the grant: the operator's check borrows no token of its account.
    let keep_grant = matches!(
        outcome.phase,
        TransferPhase::Pending | TransferPhase::Running
    );
    // A verdict from the Job's read-back does not change by asking again.
    let from_read_back = matches!(&wiring, Ok(w) if w.token == TokenSource::ServiceAccount);
    let grant = match (&wiring, keep_grant) {
        (Ok(w), true) => w
            .grant
            .as_ref()
            .map(|g| build::role_binding(mt, g, &build::service_account_name(mt))),
        _ => None,
    };
    set_grant(mt, api, ctx, grant.as_ref()).await?;
    let st = status::compute(&StatusInput {
        mt,
        job_name: &job_name,
        outcome: &outcome,
        registration: &registration,
    });
    publish_status(mt, api, ctx, &st).await?;
    Ok(match outcome.phase {
        TransferPhase::Pending | TransferPhase::Running => Action::requeue(ACTIVE_RESYNC),
        TransferPhase::Succeeded
            if check && registration != Registration::Live && !from_read_back =>
        {
            Action::requeue(REGISTERED_RETRY)
        }
        _ => Action::await_change(),
    })
}

/// The grant's kind. It lives in the registry's namespace, which may be another one; such a
/// binding exists only while the transfer has the finalizer (added before the binding is
/// applied, removed once it is gone), so without it the bindings are in the transfer's own
/// namespace (`in_parent_namespace`).
fn role_binding_kind(in_parent_namespace: bool) -> ManagedKind {
    ManagedKind {
        resource: ApiResource::erase::<RoleBinding>(&()),
        namespaced: true,
        in_parent_namespace,
    }
}

/// Makes the registry-access RoleBinding exist (`Some`) or not (`None`), with the finalizer
/// exactly while a RoleBinding outside the transfer's namespace may exist.
async fn set_grant(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    binding: Option<&RoleBinding>,
) -> Result<()> {
    let ns = mt.namespace().unwrap_or_default();
    let foreign = binding.is_some_and(|b| b.metadata.namespace.as_deref() != Some(ns.as_str()));
    if foreign && !has_finalizer(mt) {
        add_finalizer(api, mt).await?;
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
                .map_err(Error::from),
            None => Ok(()),
        }
    };
    // The prune keeps the binding whether or not its list shows it yet: both at once.
    let local = !foreign && !has_finalizer(mt);
    let (kinds, parent) = ([role_binding_kind(local)], names::parent(mt));
    let prune = async {
        prune::prune(&ctx.client, &ctx.child_record(&ID), &kinds, &parent, &keep)
            .await
            .map_err(Error::from)
    };
    let ((), pruned) = futures::try_join!(grant, prune)?;
    if !pruned.is_empty() {
        tracing::info!(transfer = %mt.name_any(), namespace = %ns, ?pruned, "revoked registry access");
    }
    if !foreign && has_finalizer(mt) {
        remove_finalizer(api, mt).await?;
    }
    Ok(())
}

/// Deletes the grant applied moments ago for a Job that will not run, by its name: the prune
/// of [`set_grant`] finds children through caches that may not show it yet.
async fn revoke(ctx: &Context, binding: Option<&RoleBinding>) -> Result<()> {
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

/// Deletion: the RoleBinding in the registry's namespace goes; owned children (Job and its pods,
/// ConfigMap, ServiceAccount, same-namespace RoleBinding) go by garbage collection. Nothing in
/// the registry is touched: the registered model stays.
async fn finalize(mt: &ModelTransfer, api: &Api<ModelTransfer>, ctx: &Context) -> Result<Action> {
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
    remove_finalizer(api, mt).await?;
    Ok(Action::await_change())
}

fn has_finalizer(mt: &ModelTransfer) -> bool {
    crate::kube_ext::finalizer::has(mt, FINALIZER)
}

async fn add_finalizer(api: &Api<ModelTransfer>, mt: &ModelTransfer) -> Result<()> {
    Ok(crate::kube_ext::finalizer::add(api, mt, FINALIZER).await?)
}

async fn remove_finalizer(api: &Api<ModelTransfer>, mt: &ModelTransfer) -> Result<()> {
    Ok(crate::kube_ext::finalizer::remove(api, mt, FINALIZER).await?)
}

/// Writes the status when it changed, with events for the transitions users care about.
async fn publish_status(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    st: &ModelTransferStatus,
) -> Result<()> {
    if !status::differs(&mt.status, st) {
        return Ok(());
    }
    for (kind, reason, text) in transitions(mt.status.as_ref(), st) {
        note(ctx, mt, kind, &reason, &text).await;
    }
    kube_ext::status::write(&ID, &ctx.metrics, api, mt, mt.status.as_ref(), st).await?;
    Ok(())
}

/// Events for a status change: phase changes, failures, and the registration verdict.
pub fn transitions(
    old: Option<&ModelTransferStatus>,
    new: &ModelTransferStatus,
) -> Vec<(EventType, String, String)> {
    let mut out = Vec::new();
    let message = new.message.clone().unwrap_or_default();
    let old_phase = old.and_then(|o| o.phase);
    let old_failure = old.and_then(status::failure_reason);
    let old_message = old.and_then(|o| o.message.clone());
    match (new.phase, status::failure_reason(new)) {
        (Some(TransferPhase::Failed), Some(reason))
            if old_failure != Some(reason) || old_message.as_deref() != Some(message.as_str()) =>
        {
            out.push((EventType::Warning, reason.to_string(), message.clone()));
        }
        (Some(TransferPhase::Running), _) if old_phase != Some(TransferPhase::Running) => {
            out.push((EventType::Normal, "Running".into(), message.clone()));
        }
        (Some(TransferPhase::Succeeded), _) if old_phase != Some(TransferPhase::Succeeded) => {
            out.push((EventType::Normal, "Succeeded".into(), message.clone()));
        }
        _ => {}
    }
    let reg = |s: &ModelTransferStatus| {
        find_condition(&s.conditions, types::REGISTERED).map(|c| (c.status, c.reason.clone()))
    };
    if new.phase == Some(TransferPhase::Succeeded)
        && reg(new) != old.and_then(reg)
        && let Some(c) = find_condition(&new.conditions, types::REGISTERED)
    {
        match c.status {
            mro_api::ConditionStatus::True => {
                out.push((EventType::Normal, "Registered".into(), c.message.clone()));
            }
            mro_api::ConditionStatus::False => {
                out.push((
                    EventType::Warning,
                    "NotRegistered".into(),
                    c.message.clone(),
                ));
            }
            mro_api::ConditionStatus::Unknown => {}
        }
    }
    out
}

async fn note(ctx: &Context, mt: &ModelTransfer, type_: EventType, reason: &str, text: &str) {
    events::publish(&ctx.recorder, mt, "Transfer", type_, reason, text).await;
}

/// Why the applies of a transfer's children stopped before the Job.
enum Stopped {
    /// A child's name is taken by someone else's object.
    Conflict(String),
    /// The API server refused a child (the message says which and why).
    Refused(String),
    Failed(kube::Error),
}

/// Reports a failed reconcile (see [`crate::kube_ext::report`]); no events: the transfer's
/// status and its own events tell the user.
pub fn report_error(mt: Arc<ModelTransfer>, err: &Error, ctx: Arc<Context>) {
    let reporter = Reporter {
        id: &ID,
        metrics: &ctx.metrics,
        events: None,
    };
    reporter.failed(mt.as_ref(), err);
}
