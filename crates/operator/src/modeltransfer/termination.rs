//! The contract with model-sync: the transfer container's termination message (and exit code).
//! Nothing else about the pod is interpreted, so anything that runs the container (a kubelet,
//! or a test agent) only has to write this message.
//!
//! Success (exit code 0): a JSON object. Recognised fields (camelCase or snake_case):
//! `registeredModelId`, `modelVersionId`, `modelArtifactId` (also the Python job's nested form
//! `{"RegisteredModel": {"id": ..}, "ModelVersion": {..}, "ModelArtifact": {..}}`), `uri` (the
//! registered, digest-pinned URI; alias `artifactUri`), `digest`, `bytes` (alias
//! `bytesTransferred`), `readBack` (`{"modelArtifactId", "state", "uri"}`: the artifact as
//! model-sync read it back from the registry after registering it). Unknown fields are ignored.
//!
//! The format is the Job contract's ([`mro_job_contract::termination`]); this module turns it
//! into status types.
//!
//! Failure (non-zero exit code): `{"reason": "SourceUnavailable", "message": "..."}` with
//! the contract's [`FailureReason`] codes, either the whole message or its last line (model-sync writes a
//! human-readable first line for the Model Registry UI before the JSON); plain text is accepted
//! too (configuration errors, logs kept by `FallbackToLogsOnError`). Exit code 2 always means
//! invalid configuration.
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use mro_api::condition::model_transfer::reasons;
use mro_job_contract::FailureReason;
use mro_job_contract::exit::{self, EXIT_INVALID_CONFIG as EXIT_INVALID_CONFIG_CODE};
use mro_job_contract::termination::{ReportedFailure, Success};

use super::build::job::CONTAINER;

/// model-sync's exit code for invalid configuration, as a container status reports it.
pub const EXIT_INVALID_CONFIG: i32 = exit::as_status(EXIT_INVALID_CONFIG_CODE);
/// Reason when a failure carries none we can use.
pub const TRANSFER_FAILED: &str = mro_job_contract::reason::TRANSFER_FAILED;
/// Longest message copied into the status (the kubelet caps termination messages at 4 KiB).
pub const MAX_MESSAGE: usize = 2048;

/// What a successful run reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferResult {
    pub registered_model_id: Option<String>,
    pub model_version_id: Option<String>,
    pub model_artifact_id: Option<String>,
    pub uri: Option<String>,
    pub digest: Option<String>,
    pub bytes: Option<i64>,
    pub read_back: Option<ReadBack>,
}

/// The artifact as model-sync read it back after registering it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadBack {
    pub model_artifact_id: Option<String>,
    pub state: Option<String>,
    pub uri: Option<String>,
}

/// How one run of the container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Termination {
    Succeeded(TransferResult),
    Failed { reason: String, message: String },
}

/// Parses a terminated container state.
pub fn parse(state: &ContainerStateTerminated) -> Termination {
    let text = state.message.as_deref().unwrap_or("").trim();
    if state.exit_code == 0 {
        return Termination::Succeeded(parse_success(text));
    }
    let reported = ReportedFailure::parse(text);
    let message = reported.message.unwrap_or_else(|| text.to_string());
    let reason = if state.exit_code == EXIT_INVALID_CONFIG {
        reasons::INVALID_CONFIGURATION.to_string()
    } else if let Some(r) = reported.reason {
        condition_reason(&r)
    } else {
        // No structured reason: the kubelet's (OOMKilled, DeadlineExceeded, ...) when specific.
        state
            .reason
            .as_deref()
            .filter(|r| !matches!(*r, "" | "Error" | "Completed"))
            .filter(|r| valid_reason(r))
            .unwrap_or(TRANSFER_FAILED)
            .to_string()
    };
    let message = if message.is_empty() {
        format!(
            "container exited with code {}{}",
            state.exit_code,
            state
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )
    } else {
        message
    };
    Termination::Failed {
        reason,
        message: truncate(&message),
    }
}

/// The operator's view of a success message (the contract's [`Success`], in status types).
fn parse_success(text: &str) -> TransferResult {
    let s = Success::parse(text);
    TransferResult {
        registered_model_id: s.registered_model_id,
        model_version_id: s.model_version_id,
        model_artifact_id: s.model_artifact_id,
        uri: s.uri,
        digest: s.digest,
        bytes: s.bytes.and_then(|b| i64::try_from(b).ok()),
        read_back: s.read_back.map(|r| ReadBack {
            model_artifact_id: r.model_artifact_id,
            state: r.state,
            uri: r.uri,
        }),
    }
}

/// A reported reason as a ModelTransfer reason: one of the contract's through
/// [`FailureReason::condition_reason`], any other valid reason (another writer's) unchanged.
fn condition_reason(code: &str) -> String {
    match FailureReason::from_code(code) {
        Some(r) => r.condition_reason().into(),
        None if valid_reason(code) => code.into(),
        None => TRANSFER_FAILED.into(),
    }
}

/// The `metav1.Condition` reason format: `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`, ≤ 1024.
pub fn valid_reason(r: &str) -> bool {
    let b = r.as_bytes();
    !b.is_empty()
        && b.len() <= 1024
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b',' | b':'))
        && !matches!(b[b.len() - 1], b',' | b':')
}

/// Cuts a message to [`MAX_MESSAGE`] bytes on a character boundary.
pub fn truncate(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_MESSAGE {
        return s.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn container_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER)
}

/// The transfer container's terminated state in a pod, if it has ended.
pub fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    container_status(pod)?.state.as_ref()?.terminated.as_ref()
}

/// How the run before the container's last restart in the pod ended (`lastState`).
pub fn last_terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    container_status(pod)?
        .last_state
        .as_ref()?
        .terminated
        .as_ref()
}

/// Every ended run of the transfer container in a pod, oldest first: the run before the last
/// restart, then the current one if it has ended. (The kubelet keeps no older runs.)
pub fn ended_runs(pod: &Pod) -> impl Iterator<Item = &ContainerStateTerminated> {
    last_terminated(pod).into_iter().chain(terminated(pod))
}

/// Times the kubelet restarted the transfer container in the pod.
pub fn restarts(pod: &Pod) -> i32 {
    container_status(pod).map_or(0, |c| c.restart_count.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(code: i32, msg: &str) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: code,
            message: Some(msg.into()),
            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
            ..Default::default()
        }
    }

    #[test]
    fn failure_json_after_a_readable_first_line() {
        let t = parse(&term(
            1,
            "SourceUnavailable: reading s3://b/k: NoSuchKey\n{\"reason\":\"SourceUnavailable\",\"message\":\"reading s3://b/k: NoSuchKey\"}",
        ));
        assert_eq!(
            t,
            Termination::Failed {
                reason: reasons::SOURCE_UNAVAILABLE.into(),
                message: "reading s3://b/k: NoSuchKey".into()
            }
        );
    }

    #[test]
    fn success_flat_and_nested() {
        let flat = parse(&term(
            0,
            r#"{"intent":"create_model","registeredModelId":"1","modelVersionId":"2","modelArtifactId":"3","uri":"oci://q/m@sha256:ab","digest":"sha256:ab","bytes":42}"#,
        ));
        assert_eq!(
            flat,
            Termination::Succeeded(TransferResult {
                registered_model_id: Some("1".into()),
                model_version_id: Some("2".into()),
                model_artifact_id: Some("3".into()),
                uri: Some("oci://q/m@sha256:ab".into()),
                digest: Some("sha256:ab".into()),
                bytes: Some(42),
                read_back: None,
            })
        );
        let nested = parse(&term(
            0,
            r#"{"intent":"update_artifact","RegisteredModel":{"id":1},"ModelVersion":{"id":"2"},"ModelArtifact":{"id":"3","uri":"s3://b/k"}}"#,
        ));
        let Termination::Succeeded(r) = nested else {
            panic!("success")
        };
        assert_eq!(r.registered_model_id.as_deref(), Some("1"));
        assert_eq!(r.model_artifact_id.as_deref(), Some("3"));
        assert_eq!(r.uri.as_deref(), Some("s3://b/k"));
        let Termination::Succeeded(r) = parse(&term(
            0,
            r#"{"modelArtifactId":"3","uri":"s3://b/k","readBack":{"modelArtifactId":"3","state":"LIVE","uri":"s3://b/k"}}"#,
        )) else {
            panic!("success")
        };
        assert_eq!(
            r.read_back,
            Some(ReadBack {
                model_artifact_id: Some("3".into()),
                state: Some("LIVE".into()),
                uri: Some("s3://b/k".into()),
            })
        );
        assert_eq!(
            parse(&term(0, "done")),
            Termination::Succeeded(TransferResult::default())
        );
    }

    #[test]
    fn failures_map_reasons() {
        let f = |code, msg: &str| match parse(&term(code, msg)) {
            Termination::Failed { reason, message } => (reason, message),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            f(
                1,
                r#"{"reason":"SourceUnavailable","message":"no such key"}"#
            ),
            ("SourceUnavailable".into(), "no such key".into())
        );
        assert_eq!(
            f(1, r#"{"reason":"InvalidInput","message":"x"}"#).0,
            "InvalidConfiguration"
        );
        assert_eq!(
            f(1, r#"{"reason":"IntegrityError","message":"x"}"#).0,
            "IntegrityError"
        );
        assert_eq!(
            f(1, r#"{"reason":"bad reason!","message":"x"}"#).0,
            TRANSFER_FAILED
        );
        assert_eq!(
            f(2, "invalid configuration: --source-type is required"),
            (
                "InvalidConfiguration".into(),
                "invalid configuration: --source-type is required".into()
            )
        );
        assert_eq!(f(1, "Unexpected error: boom").0, TRANSFER_FAILED);
        let oom = parse(&ContainerStateTerminated {
            exit_code: 137,
            reason: Some("OOMKilled".into()),
            ..Default::default()
        });
        assert_eq!(
            oom,
            Termination::Failed {
                reason: "OOMKilled".into(),
                message: "container exited with code 137 (OOMKilled)".into()
            }
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(3000);
        let t = truncate(&long);
        assert!(t.len() <= MAX_MESSAGE + "…".len());
        assert!(valid_reason("DeadlineExceeded"));
        assert!(!valid_reason("1abc"));
        assert!(!valid_reason("a:"));
    }
}
