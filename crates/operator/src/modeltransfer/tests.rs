//! Status tests: phases and conditions from Job and pod states, termination messages, the
//! registration verdict, the spec-change guard, and the events of transitions.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::EventType;
use mro_api::condition::model_transfer::{reasons, types};
use mro_api::condition::{ConditionStatus, find_condition};
use mro_api::model_transfer::TransferPhase;
use mro_api::{ModelTransfer, ModelTransferStatus};
use serde_json::{Value, json};

use super::publish::transitions;
use super::status::{self, Registration, StatusInput};

fn mt() -> ModelTransfer {
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
        "kind": "ModelTransfer",
        "metadata": { "name": "t", "namespace": "ns", "uid": "u-1", "generation": 3 },
        "spec": {
            "source": { "s3": { "bucket": "b", "key": "k", "credentialsSecretRef": { "name": "s" } } },
            "destination": { "oci": { "uri": "quay.io/o/m:1" } },
            "registry": { "url": "http://r:8080" },
            "intent": "create_model",
            "model": { "registeredModel": { "name": "m" }, "modelVersion": { "name": "v1" } }
        }
    }))
    .unwrap()
}

fn job(status: Value) -> Job {
    serde_json::from_value(json!({
        "metadata": { "name": "t-sync", "namespace": "ns" },
        "status": status,
    }))
    .unwrap()
}

fn pod(name: &str, created: &str, phase: &str, terminated: Option<Value>) -> Pod {
    let state = match terminated {
        Some(t) => json!({ "terminated": t }),
        None => json!({ "running": { "startedAt": created } }),
    };
    serde_json::from_value(json!({
        "metadata": { "name": name, "creationTimestamp": created },
        "status": { "phase": phase, "containerStatuses": [{
            "name": "model-sync", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
            "state": state
        }]}
    }))
    .unwrap()
}

fn compute(job: &Job, pods: &[Pod], registration: Registration) -> ModelTransferStatus {
    let t = mt();
    let o = status::outcome(job, pods);
    status::compute(&StatusInput {
        mt: &t,
        job_name: "t-sync",
        outcome: &o,
        registration: &registration,
    })
}

fn cond(st: &ModelTransferStatus, t: &str) -> (ConditionStatus, String) {
    let c = find_condition(&st.conditions, t).unwrap();
    (c.status, c.reason.clone())
}

const SUCCESS: &str = r#"{"intent":"create_model","registeredModelId":"1","modelVersionId":"2","modelArtifactId":"3","uri":"oci://quay.io/o/m@sha256:aa","digest":"sha256:aa","bytes":1234}"#;

#[test]
fn pending_then_running() {
    let st = compute(&job(json!({})), &[], Registration::NotChecked);
    assert_eq!(st.phase, Some(TransferPhase::Pending));
    assert_eq!(
        cond(&st, types::COMPLETE),
        (ConditionStatus::False, reasons::JOB_CREATED.into())
    );
    assert_eq!(cond(&st, types::REGISTERED).0, ConditionStatus::Unknown);
    assert_eq!(st.job_name.as_deref(), Some("t-sync"));
    assert_eq!(st.source_uri.as_deref(), Some("s3://b/k"));
    assert_eq!(st.destination_uri.as_deref(), Some("oci://quay.io/o/m:1"));
    assert_eq!(st.observed_generation, Some(3));

    let running = pod("p1", "2024-01-01T00:00:00Z", "Running", None);
    let st = compute(
        &job(json!({ "active": 1, "startTime": "2024-01-01T00:00:00Z" })),
        &[running],
        Registration::NotChecked,
    );
    assert_eq!(st.phase, Some(TransferPhase::Running));
    assert_eq!(st.attempts, Some(1));
    assert!(st.start_time.is_some());
    assert_eq!(
        cond(&st, types::FAILED),
        (ConditionStatus::False, reasons::RUNNING.into())
    );
}

#[test]
fn pending_pod_problems_are_shown() {
    let p: Pod = serde_json::from_value(json!({
        "metadata": { "name": "p1" },
        "status": { "phase": "Pending", "containerStatuses": [{
            "name": "model-sync", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
            "state": { "waiting": { "reason": "CreateContainerConfigError", "message": "secret \"s\" not found" } }
        }]}
    }))
    .unwrap();
    let st = compute(&job(json!({ "active": 1 })), &[p], Registration::NotChecked);
    assert_eq!(st.phase, Some(TransferPhase::Pending));
    assert!(st.message.unwrap().contains("CreateContainerConfigError"));
}

#[test]
fn success_copies_the_results_and_waits_for_the_registry() {
    let done = pod(
        "p1",
        "2024-01-01T00:00:00Z",
        "Succeeded",
        Some(json!({ "exitCode": 0, "reason": "Completed", "message": SUCCESS })),
    );
    let j = job(json!({
        "succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:01:00Z",
        "conditions": [{ "type": "Complete", "status": "True" }]
    }));
    let st = compute(&j, std::slice::from_ref(&done), Registration::NotChecked);
    assert_eq!(st.phase, Some(TransferPhase::Succeeded));
    assert_eq!(st.registered_model_id.as_deref(), Some("1"));
    assert_eq!(st.model_version_id.as_deref(), Some("2"));
    assert_eq!(st.model_artifact_id.as_deref(), Some("3"));
    assert_eq!(
        st.artifact_uri.as_deref(),
        Some("oci://quay.io/o/m@sha256:aa")
    );
    assert_eq!(st.bytes_transferred, Some(1234));
    assert_eq!(st.attempts, Some(1));
    assert!(st.completion_time.is_some());
    assert_eq!(
        cond(&st, types::COMPLETE),
        (ConditionStatus::True, reasons::SUCCEEDED.into())
    );
    assert_eq!(
        cond(&st, types::REGISTERED),
        (ConditionStatus::Unknown, status::CHECKING.into())
    );

    let live = compute(&j, std::slice::from_ref(&done), Registration::Live);
    assert_eq!(
        cond(&live, types::REGISTERED),
        (ConditionStatus::True, status::ARTIFACT_LIVE.into())
    );
    let not = compute(
        &j,
        std::slice::from_ref(&done),
        Registration::NotLive {
            reason: status::ARTIFACT_NOT_LIVE,
            message: "PENDING".into(),
        },
    );
    assert_eq!(
        cond(&not, types::REGISTERED),
        (ConditionStatus::False, status::ARTIFACT_NOT_LIVE.into())
    );

    // Once decided, a reconcile that does not check keeps the verdict.
    let mut again = mt();
    again.status = Some(live.clone());
    let o = status::outcome(&j, std::slice::from_ref(&done));
    let kept = status::compute(&StatusInput {
        mt: &again,
        job_name: "t-sync",
        outcome: &o,
        registration: &Registration::NotChecked,
    });
    assert!(!status::differs(&Some(live), &kept));
}

#[test]
fn failure_reason_comes_from_the_termination_message() {
    let failed = pod(
        "p1",
        "2024-01-01T00:00:00Z",
        "Failed",
        Some(
            json!({ "exitCode": 1, "reason": "Error", "message": r#"{"reason":"SourceUnavailable","message":"s3://b/k: no such key"}"# }),
        ),
    );
    let j = job(json!({
        "failed": 1,
        "conditions": [{ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2024-01-01T00:02:00Z" }]
    }));
    let st = compute(&j, &[failed], Registration::NotChecked);
    assert_eq!(st.phase, Some(TransferPhase::Failed));
    assert_eq!(
        cond(&st, types::FAILED),
        (ConditionStatus::True, reasons::SOURCE_UNAVAILABLE.into())
    );
    assert_eq!(cond(&st, types::REGISTERED).0, ConditionStatus::False);
    let msg = st.message.unwrap();
    assert!(
        msg.contains("no such key") && msg.contains("BackoffLimitExceeded"),
        "{msg}"
    );
    assert!(st.completion_time.is_some());
    assert!(st.registered_model_id.is_none());

    // Without a message the Job's reason is used; a deadline always wins.
    let bare = compute(&j, &[], Registration::NotChecked);
    assert_eq!(
        cond(&bare, types::FAILED).1,
        reasons::BACKOFF_LIMIT_EXCEEDED
    );
    let late = job(
        json!({ "conditions": [{ "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline" }] }),
    );
    let killed = pod(
        "p2",
        "2024-01-01T00:00:00Z",
        "Failed",
        Some(json!({ "exitCode": 137, "reason": "Error" })),
    );
    let st = compute(&late, &[killed], Registration::NotChecked);
    assert_eq!(cond(&st, types::FAILED).1, reasons::DEADLINE_EXCEEDED);
    let cfg = pod(
        "p3",
        "2024-01-01T00:00:00Z",
        "Failed",
        Some(
            json!({ "exitCode": 2, "message": "invalid configuration: --source-aws-bucket is required" }),
        ),
    );
    let st = compute(&j, &[cfg], Registration::NotChecked);
    assert_eq!(cond(&st, types::FAILED).1, reasons::INVALID_CONFIGURATION);
}

#[test]
fn the_latest_attempt_counts() {
    let first = pod(
        "p1",
        "2024-01-01T00:00:00Z",
        "Failed",
        Some(
            json!({ "exitCode": 1, "message": r#"{"reason":"SourceUnavailable","message":"a"}"# }),
        ),
    );
    let second = pod(
        "p2",
        "2024-01-01T00:05:00Z",
        "Failed",
        Some(json!({ "exitCode": 1, "message": r#"{"reason":"RegistryRejected","message":"b"}"# })),
    );
    let j = job(
        json!({ "failed": 2, "conditions": [{ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded" }] }),
    );
    let st = compute(&j, &[second, first], Registration::NotChecked);
    assert_eq!(st.attempts, Some(2));
    assert_eq!(cond(&st, types::FAILED).1, reasons::REGISTRY_REJECTED);
}

#[test]
fn invalid_spec_changed_and_deleted_job() {
    let t = mt();
    let st = status::invalid(
        &t,
        "spec.source.s3.credentialsSecretRef: Secret \"s\" not found",
    );
    assert_eq!(st.phase, Some(TransferPhase::Failed));
    assert_eq!(
        cond(&st, types::FAILED),
        (ConditionStatus::True, reasons::INVALID_CONFIGURATION.into())
    );
    assert!(st.job_name.is_none());

    let running = compute(&job(json!({ "active": 1 })), &[], Registration::NotChecked);
    let changed = status::spec_changed(running, &t);
    assert_eq!(changed.phase, Some(TransferPhase::Failed));
    assert_eq!(cond(&changed, types::FAILED).1, status::SPEC_CHANGED);
    assert!(
        changed
            .message
            .unwrap()
            .contains("create a new ModelTransfer")
    );

    let gone = status::job_deleted(&t, "t-sync");
    assert_eq!(cond(&gone, types::FAILED).1, status::JOB_DELETED);
    assert_eq!(gone.job_name.as_deref(), Some("t-sync"));
}

#[test]
fn events_follow_transitions() {
    let pending = compute(&job(json!({})), &[], Registration::NotChecked);
    assert!(transitions(None, &pending).is_empty());
    let running = compute(
        &job(json!({ "active": 1 })),
        &[pod("p1", "2024-01-01T00:00:00Z", "Running", None)],
        Registration::NotChecked,
    );
    let ev = transitions(Some(&pending), &running);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].1, "Running");
    assert!(transitions(Some(&running), &running).is_empty());
    let done = pod(
        "p1",
        "2024-01-01T00:00:00Z",
        "Succeeded",
        Some(json!({ "exitCode": 0, "message": SUCCESS })),
    );
    let j =
        job(json!({ "succeeded": 1, "conditions": [{ "type": "Complete", "status": "True" }] }));
    let live = compute(&j, std::slice::from_ref(&done), Registration::Live);
    let ev = transitions(Some(&running), &live);
    let kinds: Vec<&str> = ev.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds, ["Succeeded", "Registered"]);
    let invalid = status::invalid(&mt(), "x");
    let ev = transitions(None, &invalid);
    assert!(matches!(ev[0].0, EventType::Warning));
    assert_eq!(ev[0].1, reasons::INVALID_CONFIGURATION);
    assert!(transitions(Some(&invalid), &invalid).is_empty());
}

#[test]
fn source_uri_in_status_carries_no_credentials() {
    use super::status::redact_uri;
    let presigned = "https://b.s3.amazonaws.com/m/w.bin?X-Amz-Credential=AKIAX%2F1&X-Amz-Security-Token=sess-tok&X-Amz-Signature=abcdef";
    assert_eq!(
        redact_uri(presigned),
        "https://b.s3.amazonaws.com/m/w.bin?X-Amz-Credential=***&X-Amz-Security-Token=***&X-Amz-Signature=***"
    );
    assert_eq!(
        redact_uri("https://alice:s3cret@host:8443/x.bin#frag"),
        "https://***@host:8443/x.bin#***"
    );
    assert_eq!(redact_uri("s3://b/k"), "s3://b/k");
    assert_eq!(redact_uri("oci://quay.io/o/m:1"), "oci://quay.io/o/m:1");
    assert_eq!(redact_uri("pvc://claim/dir"), "pvc://claim/dir");

    // Through the status builder: the spec's URL with user info and a signature.
    let mut mt = mt();
    mt.spec.source.s3 = None;
    mt.spec.source.uri = Some(
        serde_json::from_value(json!({
            "url": "https://alice:s3cret@dl.example/m.bin?sig=SIGVALUE"
        }))
        .unwrap(),
    );
    let st = super::status::invalid(&mt, "x");
    let shown = st.source_uri.unwrap();
    assert!(
        !shown.contains("s3cret") && !shown.contains("SIGVALUE"),
        "{shown}"
    );
}

/// A pod whose container restarted in place `restarts` times: `state` now, `last` the run
/// before the last restart (as the kubelet reports an `OnFailure` pod).
fn restarted_pod(restarts: i32, state: Value, last: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": "p1", "creationTimestamp": "2024-01-01T00:00:00Z" },
        "status": { "phase": "Running", "containerStatuses": [{
            "name": "model-sync", "ready": false, "restartCount": restarts, "image": "i",
            "imageID": "", "state": state, "lastState": { "terminated": last }
        }]}
    }))
    .unwrap()
}

fn compute_from(
    t: &ModelTransfer,
    job: &Job,
    pods: &[Pod],
) -> (status::Outcome, ModelTransferStatus) {
    let o = status::outcome(job, pods);
    let st = status::compute(&StatusInput {
        mt: t,
        job_name: "t-sync",
        outcome: &o,
        registration: &Registration::NotChecked,
    });
    (o, st)
}

const UNAVAILABLE: &str =
    r#"{"reason":"DestinationRejected","message":"quay.io: connection reset by peer"}"#;

/// Restarts in place count as attempts; while the Job retries, the failed run's reason and
/// report are kept on `Failed=False`; once the Job gives up and its pod is gone, the kept
/// reason is the verdict, and it stands on later reconciles.
#[test]
fn restarts_in_place_count_and_the_failed_runs_reason_outlives_its_pod() {
    let running = restarted_pod(
        1,
        json!({ "running": { "startedAt": "2024-01-01T00:01:00Z" } }),
        json!({ "exitCode": 1, "reason": "Error", "message": UNAVAILABLE }),
    );
    let active = job(json!({ "active": 1, "startTime": "2024-01-01T00:00:00Z" }));
    let mut t = mt();
    let (o, st) = compute_from(&t, &active, &[running]);
    assert_eq!(st.phase, Some(TransferPhase::Running));
    assert_eq!(st.attempts, Some(2), "first run plus one restart");
    assert!(!o.end_job);
    assert_eq!(
        cond(&st, types::FAILED),
        (ConditionStatus::False, reasons::DESTINATION_REJECTED.into())
    );
    assert_eq!(
        cond(&st, types::COMPLETE),
        (ConditionStatus::False, reasons::RUNNING.into())
    );
    let msg = st.message.clone().unwrap();
    assert!(
        msg.contains("retries") && msg.contains("DestinationRejected"),
        "{msg}"
    );

    // Backing off before the next restart: still one ended run per restart plus the first.
    let waiting = restarted_pod(
        2,
        json!({ "waiting": { "reason": "CrashLoopBackOff" } }),
        json!({ "exitCode": 1, "reason": "Error", "message": UNAVAILABLE }),
    );
    let (_, backing_off) = compute_from(&t, &active, &[waiting]);
    assert_eq!(backing_off.attempts, Some(3));
    assert_eq!(backing_off.phase, Some(TransferPhase::Running));

    // The Job controller gives up and deletes the pod: only the Job's word is left.
    t.status = Some(st);
    let failed = job(
        json!({ "failed": 1, "conditions": [{ "type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit" }] }),
    );
    let (o, st) = compute_from(&t, &failed, &[]);
    assert!(!o.failure_from_run);
    assert_eq!(st.phase, Some(TransferPhase::Failed));
    assert_eq!(
        cond(&st, types::FAILED),
        (ConditionStatus::True, reasons::DESTINATION_REJECTED.into())
    );
    let msg = st.message.clone().unwrap();
    assert!(
        msg.contains("connection reset by peer") && msg.contains("BackoffLimitExceeded"),
        "{msg}"
    );
    // Later reconciles see the verdict, not the kept report: it stands as written.
    t.status = Some(st.clone());
    let (_, again) = compute_from(&t, &failed, &[]);
    assert!(!status::differs(&Some(st), &again), "{again:#?}");

    // Without a kept report the Job's reason is all there is.
    let (_, bare) = compute_from(&mt(), &failed, &[]);
    assert_eq!(
        cond(&bare, types::FAILED).1,
        reasons::BACKOFF_LIMIT_EXCEEDED
    );
}

/// A run that exits with invalid configuration fails the transfer at once, although its Job
/// would restart it, and asks for the Job to be ended; any other failure waits for the Job.
#[test]
fn an_invalid_configuration_run_fails_the_transfer_and_ends_a_retrying_job() {
    let active = job(json!({ "active": 1 }));
    let cfg = json!({ "exitCode": 2, "reason": "Error", "finishedAt": "2024-01-01T00:00:30Z",
        "message": "invalid configuration: --source-aws-bucket is required" });
    for p in [
        // Backing off before the restart, and already restarted.
        restarted_pod(
            0,
            json!({ "waiting": { "reason": "CrashLoopBackOff" } }),
            cfg.clone(),
        ),
        restarted_pod(
            1,
            json!({ "running": { "startedAt": "2024-01-01T00:00:40Z" } }),
            cfg.clone(),
        ),
        // A `Never` pod of a Job with retries.
        pod("p1", "2024-01-01T00:00:00Z", "Failed", Some(cfg.clone())),
    ] {
        let (o, st) = compute_from(&mt(), &active, &[p]);
        assert!(o.end_job);
        assert_eq!(st.phase, Some(TransferPhase::Failed));
        assert_eq!(
            cond(&st, types::FAILED),
            (ConditionStatus::True, reasons::INVALID_CONFIGURATION.into())
        );
        let msg = st.message.unwrap();
        assert!(
            msg.contains("--source-aws-bucket is required") && msg.contains("not retried"),
            "{msg}"
        );
        assert!(st.completion_time.is_some());
    }
    // Exit code 1 is retried by the Job.
    let other = restarted_pod(
        0,
        json!({ "waiting": { "reason": "CrashLoopBackOff" } }),
        json!({ "exitCode": 1, "message": UNAVAILABLE }),
    );
    let (o, st) = compute_from(&mt(), &active, &[other]);
    assert!(!o.end_job);
    assert_eq!(st.phase, Some(TransferPhase::Running));
}
