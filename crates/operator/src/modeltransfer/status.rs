//! The *status* step: phase, conditions and results from the Job, its pods' termination
//! messages and the registry check. Pure, so the same observations give the same status and
//! writes happen only when something changed.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use mro_api::condition::model_transfer::{reasons, types};
use mro_api::condition::{Condition, ConditionStatus, find_condition, set_condition};
use mro_api::model_transfer::TransferPhase;
use mro_api::{ModelTransfer, ModelTransferStatus};

use super::termination::{self, Termination, TransferResult};

/// `Registered` reasons.
pub const ARTIFACT_LIVE: &str = "ArtifactLive";
pub const ARTIFACT_NOT_LIVE: &str = "ArtifactNotLive";
pub const REGISTRY_UNREACHABLE: &str = "RegistryUnreachable";
pub const MISSING_RESULT: &str = "MissingResult";
pub const CHECKING: &str = "Checking";
/// `Registered` reasons of a finished check (as opposed to "not checked yet").
pub const DECIDED: &[&str] = &[
    ARTIFACT_LIVE,
    ARTIFACT_NOT_LIVE,
    REGISTRY_UNREACHABLE,
    MISSING_RESULT,
];
/// The spec changed after the Job was created.
pub const SPEC_CHANGED: &str = "SpecChanged";
/// The Job disappeared before it finished.
pub const JOB_DELETED: &str = "JobDeleted";

/// Container waiting reasons worth showing while the pod has not started.
const WAITING_PROBLEMS: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "ImagePullBackOff",
    "ErrImagePull",
];

/// Outcome of the operator's read-back of the registered artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Not checked this time: keep the current `Registered` condition.
    NotChecked,
    /// The artifact is LIVE with the expected URI.
    Live,
    /// Not (yet) registered as expected; `reason` is one of the constants above.
    NotLive {
        reason: &'static str,
        message: String,
    },
}

/// What the Job and its pods say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub phase: TransferPhase,
    pub attempts: i32,
    pub start_time: Option<Time>,
    pub completion_time: Option<Time>,
    /// The successful run's report.
    pub result: Option<TransferResult>,
    /// Reason and message of a failed transfer.
    pub failure: Option<(String, String)>,
    /// Why the pod is not running yet (image pull, missing Secret, unschedulable).
    pub waiting: Option<String>,
    /// The latest failed run (reason, message) while the Job retries it.
    pub retrying: Option<(String, String)>,
    /// `failure` comes from the failed run's own report; when false, the run's pod was gone
    /// (the Job controller deletes a restarting pod once its retries are spent) and the reason
    /// kept on the status while the Job retried is the better one (see [`compute`]).
    pub failure_from_run: bool,
    /// A run exited with invalid configuration while its Job would run it again: the transfer
    /// has failed, and the Job is to be ended (see [`super::track`]).
    pub end_job: bool,
}

fn job_condition<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn started(pod: &Pod) -> bool {
    let Some(st) = pod.status.as_ref() else {
        return false;
    };
    matches!(
        st.phase.as_deref(),
        Some("Running" | "Succeeded" | "Failed")
    ) || termination::terminated(pod).is_some()
}

fn waiting(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let st = pod.status.as_ref()?;
    for cs in st.container_statuses.iter().flatten() {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            if WAITING_PROBLEMS.contains(&reason.as_str()) {
                let msg = w.message.clone().unwrap_or_default();
                return Some(format!("pod {name}: {reason}: {msg}").trim().to_string());
            }
        }
    }
    st.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| {
            format!(
                "pod {name} cannot be scheduled: {}",
                c.message.clone().unwrap_or_default()
            )
        })
}

/// Reads the Job's state and its pods' termination messages.
pub fn outcome(job: &Job, pods: &[Pod]) -> Outcome {
    let js = job.status.clone().unwrap_or_default();
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    });
    let started_pods = i32::try_from(pods.iter().filter(|p| started(p)).count()).unwrap_or(0);
    // A pod's runs: the first plus each restart in place.
    let runs: i32 = pods
        .iter()
        .filter(|p| started(p))
        .map(|p| termination::restarts(p).saturating_add(1))
        .fold(0, i32::saturating_add);
    let attempts = runs.max(js.failed.unwrap_or(0) + js.succeeded.unwrap_or(0));
    let ended: Vec<_> = pods
        .iter()
        .flat_map(|p| termination::ended_runs(p))
        .collect();
    let last_failure = ended
        .iter()
        .rev()
        .find(|t| t.exit_code != 0)
        .map(|t| termination::parse(t));
    let success = ended
        .iter()
        .rev()
        .find(|t| t.exit_code == 0)
        .map(|t| termination::parse(t));
    let invalid = ended
        .iter()
        .rev()
        .find(|t| t.exit_code == termination::EXIT_INVALID_CONFIG);
    let mut o = Outcome {
        attempts,
        start_time: js.start_time.clone(),
        ..Default::default()
    };
    if let Some(done) = job_condition(job, "Complete") {
        o.phase = TransferPhase::Succeeded;
        o.completion_time = js
            .completion_time
            .clone()
            .or(done.last_transition_time.clone());
        o.result = Some(match success {
            Some(Termination::Succeeded(r)) => r,
            _ => TransferResult::default(),
        });
    } else if let Some(failed) = job_condition(job, "Failed") {
        o.phase = TransferPhase::Failed;
        o.completion_time = failed.last_transition_time.clone();
        let job_reason = failed
            .reason
            .clone()
            .filter(|r| termination::valid_reason(r))
            .unwrap_or_else(|| termination::TRANSFER_FAILED.into());
        let job_message = failed.message.clone().unwrap_or_default();
        let (reason, detail) = match last_failure {
            // The deadline is the cause even if the last attempt reported something else.
            Some(Termination::Failed { message, .. })
                if job_reason == reasons::DEADLINE_EXCEEDED =>
            {
                (job_reason.clone(), Some(message))
            }
            Some(Termination::Failed { reason, message }) => (reason, Some(message)),
            _ => (job_reason.clone(), None),
        };
        o.failure_from_run = detail.is_some();
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let summary = format!(
            "Job {job_name} failed after {attempts} attempt(s) ({job_reason}: {job_message})"
        );
        let message = match detail {
            Some(d) if !d.is_empty() => format!("{d} — {summary}"),
            _ => summary,
        };
        o.failure = Some((reason, termination::truncate(&message)));
    } else if let Some(t) = invalid {
        // Running it again cannot help: "fix the manifest". The Job would retry (or restart
        // the container in place), so the transfer fails now and the Job is ended.
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let detail = match termination::parse(t) {
            Termination::Failed { message, .. } => message,
            Termination::Succeeded(_) => String::new(),
        };
        o.phase = TransferPhase::Failed;
        o.completion_time = t.finished_at.clone();
        o.failure = Some((
            reasons::INVALID_CONFIGURATION.into(),
            termination::truncate(&format!(
                "{detail} — a run of Job {job_name} exited with invalid configuration \
                 (exit code {}), which is not retried; the Job is ended",
                t.exit_code
            )),
        ));
        o.failure_from_run = true;
        o.end_job = true;
    } else {
        o.phase = if started_pods > 0 {
            TransferPhase::Running
        } else {
            TransferPhase::Pending
        };
        o.waiting = pods.iter().rev().find_map(|p| waiting(p));
        o.retrying = match last_failure {
            Some(Termination::Failed { reason, message }) => Some((reason, message)),
            _ => None,
        };
    }
    o
}

/// What the status already says about a failed run, for a failed Job whose runs' reports are
/// gone.
enum Kept {
    /// The failed run's reason and report, kept on the `Failed` condition (status `False`)
    /// while the Job retried (see [`compute`]).
    Retried(String, String),
    /// The verdict already written from them: it stands as written.
    Decided(String, String),
}

fn kept_failure(mt: &ModelTransfer) -> Option<Kept> {
    let c = find_condition(&mt.status.as_ref()?.conditions, types::FAILED)?;
    let not_a_run = [
        reasons::RUNNING,
        reasons::JOB_CREATED,
        reasons::SUCCEEDED,
        SPEC_CHANGED,
    ];
    if not_a_run.contains(&c.reason.as_str()) {
        return None;
    }
    let (reason, message) = (c.reason.clone(), c.message.clone());
    Some(match c.status {
        ConditionStatus::True => Kept::Decided(reason, message),
        _ => Kept::Retried(reason, message),
    })
}

fn cond(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition::new(type_, status, reason, message).with_generation(generation)
}

/// Inputs of [`compute`].
pub struct StatusInput<'a> {
    pub mt: &'a ModelTransfer,
    pub job_name: &'a str,
    pub outcome: &'a Outcome,
    pub registration: &'a Registration,
}

/// The status for a transfer whose Job exists (or existed).
pub fn compute(input: &StatusInput) -> ModelTransferStatus {
    let mt = input.mt;
    let o = input.outcome;
    let g = mt.metadata.generation;
    let mut st = base(mt);
    st.job_name = Some(input.job_name.to_string());
    st.phase = Some(o.phase);
    st.attempts = Some(o.attempts);
    st.start_time = o.start_time.clone();
    st.completion_time = o.completion_time.clone();
    let result = o.result.clone().unwrap_or_default();
    st.registered_model_id = result.registered_model_id.clone();
    st.model_version_id = result.model_version_id.clone();
    st.model_artifact_id = result.model_artifact_id.clone();
    st.artifact_uri = result.uri.clone();
    st.bytes_transferred = result.bytes;
    let job = input.job_name;
    let c = &mut st.conditions;
    use ConditionStatus::{False, True, Unknown};
    let message = match o.phase {
        TransferPhase::Pending | TransferPhase::Running => {
            let (reason, msg) = match (o.phase, &o.waiting, &o.retrying) {
                (TransferPhase::Pending, Some(w), _) => (reasons::JOB_CREATED, w.clone()),
                (TransferPhase::Pending, None, _) => (
                    reasons::JOB_CREATED,
                    format!("Job {job} created; waiting for its pod to start"),
                ),
                (_, _, Some((failed, _))) => (
                    reasons::RUNNING,
                    format!(
                        "Job {job} retries after a failed run ({failed}); {} run(s) started so far",
                        o.attempts.max(1)
                    ),
                ),
                _ => (
                    reasons::RUNNING,
                    format!("Job {job} is running (attempt {})", o.attempts.max(1)),
                ),
            };
            set_condition(c, cond(types::COMPLETE, False, reason, &msg, g));
            // Not failed (yet), but the failed run's reason and report are kept here: once
            // the Job gives up, the Job controller deletes the restarting pod, and with it the
            // report.
            let failed = match &o.retrying {
                Some((r, m)) => cond(types::FAILED, False, r, m, g),
                None => cond(types::FAILED, False, reason, &msg, g),
            };
            set_condition(c, failed);
            set_condition(c, cond(types::REGISTERED, Unknown, reason, &msg, g));
            msg
        }
        TransferPhase::Succeeded => {
            let msg = format!(
                "Job {job} transferred {} to {}",
                result
                    .bytes
                    .map_or("the model".to_string(), |b| format!("{b} bytes")),
                result.uri.as_deref().unwrap_or("the destination")
            );
            set_condition(c, cond(types::COMPLETE, True, reasons::SUCCEEDED, &msg, g));
            set_condition(c, cond(types::FAILED, False, reasons::SUCCEEDED, &msg, g));
            let registered = match input.registration {
                Registration::Live => Some(cond(
                    types::REGISTERED,
                    True,
                    ARTIFACT_LIVE,
                    format!(
                        "model artifact {} is LIVE with URI {}",
                        result.model_artifact_id.as_deref().unwrap_or("?"),
                        result.uri.as_deref().unwrap_or("?")
                    ),
                    g,
                )),
                Registration::NotLive { reason, message } => {
                    Some(cond(types::REGISTERED, False, reason, message, g))
                }
                Registration::NotChecked => {
                    let kept = find_condition(c, types::REGISTERED).is_some_and(|r| {
                        r.reason == CHECKING || DECIDED.contains(&r.reason.as_str())
                    });
                    (!kept).then(|| {
                        cond(
                            types::REGISTERED,
                            Unknown,
                            CHECKING,
                            "reading the artifact back from the registry",
                            g,
                        )
                    })
                }
            };
            if let Some(r) = registered {
                set_condition(c, r);
            }
            msg
        }
        TransferPhase::Failed => {
            let (reason, msg) = o.failure.clone().unwrap_or_else(|| {
                (
                    termination::TRANSFER_FAILED.into(),
                    format!("Job {job} failed"),
                )
            });
            let (reason, msg) = match kept_failure(mt).filter(|_| !o.failure_from_run) {
                Some(Kept::Retried(kept, detail)) => {
                    (kept, termination::truncate(&format!("{detail} — {msg}")))
                }
                Some(Kept::Decided(reason, msg)) => (reason, msg),
                None => (reason, msg),
            };
            set_condition(c, cond(types::COMPLETE, False, &reason, &msg, g));
            set_condition(c, cond(types::FAILED, True, &reason, &msg, g));
            set_condition(
                c,
                cond(
                    types::REGISTERED,
                    False,
                    &reason,
                    "the transfer failed; model-sync reported no registration",
                    g,
                ),
            );
            msg
        }
    };
    st.message = Some(message);
    st
}

/// The parts every status shares: source/destination URIs and the observed generation.
fn base(mt: &ModelTransfer) -> ModelTransferStatus {
    let mut st = mt.status.clone().unwrap_or_default();
    st.source_uri = mt.spec.source.display_uri().map(|u| redact_uri(&u));
    st.destination_uri = mt.spec.destination.display_uri();
    st.observed_generation = mt.metadata.generation;
    st
}

/// A URI as shown in the status: user info (`user:password@`) becomes `***@`, and query values
/// become `***` (a pre-signed URL carries its signature and session token there); the names
/// are kept so the URL stays recognisable.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, _)) => (r, "#***"),
        None => (rest, ""),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((name, _)) => format!("{name}=***"),
                None => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out.push_str(fragment);
    out
}

/// A transfer that cannot start: invalid spec or missing references. No Job exists.
pub fn invalid(mt: &ModelTransfer, message: &str) -> ModelTransferStatus {
    not_started(mt, reasons::INVALID_CONFIGURATION, message)
}

/// A transfer that cannot start for `reason` (`InvalidConfiguration`, `RegistryAccessDenied`).
/// No Job exists.
pub fn not_started(mt: &ModelTransfer, reason: &str, message: &str) -> ModelTransferStatus {
    failed_without_job(mt, reason, message)
}

/// A transfer whose Job vanished before it finished (deleted by hand).
pub fn job_deleted(mt: &ModelTransfer, job_name: &str) -> ModelTransferStatus {
    let mut st = failed_without_job(
        mt,
        JOB_DELETED,
        &format!(
            "Job {job_name} was deleted before it finished; create a new ModelTransfer to retry"
        ),
    );
    st.job_name = Some(job_name.to_string());
    st
}

fn failed_without_job(mt: &ModelTransfer, reason: &str, message: &str) -> ModelTransferStatus {
    let g = mt.metadata.generation;
    let mut st = base(mt);
    st.phase = Some(TransferPhase::Failed);
    let c = &mut st.conditions;
    use ConditionStatus::{False, True};
    set_condition(c, cond(types::COMPLETE, False, reason, message, g));
    set_condition(c, cond(types::FAILED, True, reason, message, g));
    set_condition(c, cond(types::REGISTERED, False, reason, message, g));
    st.message = Some(message.to_string());
    st
}

/// Marks a computed status as stale: the spec no longer matches the running Job, which is left
/// alone (a Job's pod template is immutable, and changing inputs under a running transfer would
/// register something nobody asked for).
pub fn spec_changed(mut st: ModelTransferStatus, mt: &ModelTransfer) -> ModelTransferStatus {
    let g = mt.metadata.generation;
    let job = st.job_name.clone().unwrap_or_default();
    let message = format!(
        "spec changed after Job {job} was created; the Job keeps running with the original spec \
         and is not updated. ModelTransfer specs are immutable: create a new ModelTransfer for \
         the new spec (or restore the original one)"
    );
    st.phase = Some(TransferPhase::Failed);
    set_condition(
        &mut st.conditions,
        cond(
            types::FAILED,
            ConditionStatus::True,
            SPEC_CHANGED,
            &message,
            g,
        ),
    );
    st.message = Some(message);
    st
}

/// True when two statuses differ in anything but condition timestamps.
pub fn differs(a: &Option<ModelTransferStatus>, b: &ModelTransferStatus) -> bool {
    let Some(a) = a else { return true };
    let strip = |s: &ModelTransferStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
        s.conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
        s
    };
    strip(a) != strip(b)
}

/// The reason of the `Failed` condition when it is true.
pub fn failure_reason(st: &ModelTransferStatus) -> Option<&str> {
    find_condition(&st.conditions, types::FAILED)
        .filter(|c| c.is_true())
        .map(|c| c.reason.as_str())
}
