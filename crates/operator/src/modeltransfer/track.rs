//! Tracking a transfer whose Job exists, as the same steps: dereference (the Job's pods, the
//! transfer read fresh, the registry) → the registry check after success (see [`super::verify`])
//! → apply (the registry grant, only while the Job runs) → status.
//!
//! The Job is never changed: a spec whose hash no longer matches the one recorded on the Job is
//! reported (`SpecChanged`), not applied.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use mro_api::ModelTransfer;
use mro_api::condition::model_transfer::types;
use mro_api::condition::{find_condition, is_condition_true};
use mro_api::model_transfer::TransferPhase;

use super::apply::{end_job, set_grant};
use super::build::registry::TokenSource;
use super::dereference::{self, DereferenceError};
use super::error::ReconcileError;
use super::policy::{ACTIVE_RESYNC, REGISTERED_RETRY, REGISTERED_WINDOW};
use super::publish::{note, publish_status};
use super::status::{self, Registration, StatusInput};
use super::{build, names, verify};
use crate::context::Context;

/// Status of an existing Job; registry check after success; registry access while needed.
pub async fn track(
    mt: &ModelTransfer,
    api: &Api<ModelTransfer>,
    ctx: &Context,
    job: &Job,
) -> Result<Action, ReconcileError> {
    let hash = names::spec_hash(&mt.spec);
    let ns = mt.namespace().unwrap_or_default();
    let pods = dereference::pods(ctx, &ns, job)
        .await
        .map_err(DereferenceError::from)?;
    let outcome = status::outcome(job, &pods);
    let job_name = job.name_any();
    let recorded = job
        .annotations()
        .get(names::SPEC_HASH_ANNOTATION)
        .map(String::as_str);
    if recorded != Some(hash.as_str()) {
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
        match dereference::fresh(api, mt).await? {
            Some(m) => {
                fresh = m;
                &fresh
            }
            // Deleted (or re-created) meanwhile: the next event brings the current object.
            None => return Ok(Action::await_change()),
        }
    } else {
        mt
    };
    let caps = ctx.caps.current();
    let wiring = dereference::wiring(ctx, mt, &caps)
        .await
        .map_err(DereferenceError::from)?;
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
    // The failure is on the status first: the Job's end cannot lose it.
    if outcome.end_job && end_job(ctx, mt, job).await? {
        let text = format!(
            "ended Job {job_name}: a run exited with invalid configuration, which running it \
             again cannot fix"
        );
        note(ctx, mt, EventType::Warning, "JobEnded", &text).await;
    }
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
