//! The transfer container's termination message: what model-sync writes and the operator reads.
//!
//! Kubernetes copies the file at `TERMINATION_MESSAGE_PATH` (default `/dev/termination-log`)
//! into the container status, truncated to 4096 bytes. Writers stay under
//! [`MAX_TERMINATION_MESSAGE_BYTES`] so that the JSON is never cut in the middle: the message is
//! shortened first, and the document is always valid JSON (on the last line of a failure).
//!
//! Success: one JSON object, [`Success`], plus the Python job's capitalised objects
//! (`{"RegisteredModel": {"id": ..}, "ModelVersion": .., "ModelArtifact": ..}`) so existing
//! readers (the Model Registry UI back-end) keep working. [`Success::parse`] reads it back
//! leniently: camelCase or snake_case, the Python job's nested form, numbers as strings.
//!
//! Failure: a human-readable first line (`SourceUnavailable: …`, at most
//! [`MAX_FIRST_LINE_BYTES`]), then on the second line `{"reason": "...", "message": "..."}`
//! plus `intent` when known. The Model Registry UI shows a failed pod's termination message as
//! its error text, so the text it shows first must read as a sentence; readers of the JSON take
//! the last line ([`json_document`]).
//!
//! Secrets are not this module's business: model-sync scrubs every text before it is rendered
//! (the `scrub` argument of [`render_success`]).
use serde::Serialize;
use serde_json::{Value, json};

use crate::FailureReason;

/// Upper bound of the message a writer produces (Kubernetes keeps 4096 bytes).
pub const MAX_TERMINATION_MESSAGE_BYTES: usize = 4000;

/// What a successful sync reports (the fields are optional for readers: older writers and
/// the Python job leave some out; model-sync sets them all).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Success {
    pub intent: Option<String>,
    pub registered_model_id: Option<String>,
    pub model_version_id: Option<String>,
    pub model_artifact_id: Option<String>,
    pub uri: Option<String>,
    pub digest: Option<String>,
    pub bytes: Option<u64>,
    pub files: Option<usize>,
    pub duration_seconds: Option<f64>,
    /// Set when a rerun found and reused entities created by an earlier attempt.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// The registered artifact as read back from the registry after the registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_back: Option<ReadBack>,
}

/// The model artifact as the registry returned it to a GET after the registration.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBack {
    pub model_artifact_id: Option<String>,
    /// The registry's state name (`LIVE`, `PENDING`, ...).
    pub state: Option<String>,
    pub uri: Option<String>,
}

impl Success {
    /// The JSON document, with the Python job's keys added.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Value::Object(map) = &mut v {
            for (key, id) in [
                ("RegisteredModel", &self.registered_model_id),
                ("ModelVersion", &self.model_version_id),
                ("ModelArtifact", &self.model_artifact_id),
            ] {
                if let Some(id) = id {
                    map.insert(key.to_owned(), json!({ "id": id }));
                }
            }
        }
        v
    }

    /// Reads a success message leniently (see the module documentation). Text that is not a
    /// JSON object gives the empty report.
    pub fn parse(text: &str) -> Success {
        let Ok(v) = serde_json::from_str::<Value>(text.trim()) else {
            return Success::default();
        };
        let nested = |section: &str| {
            v.get(section)
                .and_then(|s| s.get("id"))
                .and_then(scalar_string)
        };
        Success {
            intent: str_field(&v, &["intent"]),
            registered_model_id: str_field(&v, &["registeredModelId", "registered_model_id"])
                .or_else(|| nested("RegisteredModel")),
            model_version_id: str_field(&v, &["modelVersionId", "model_version_id"])
                .or_else(|| nested("ModelVersion")),
            model_artifact_id: str_field(&v, &["modelArtifactId", "model_artifact_id"])
                .or_else(|| nested("ModelArtifact")),
            uri: str_field(&v, &["uri", "artifactUri", "artifact_uri"]).or_else(|| {
                v.get("ModelArtifact")
                    .and_then(|s| s.get("uri"))
                    .and_then(scalar_string)
            }),
            digest: str_field(&v, &["digest"]),
            bytes: ["bytes", "bytesTransferred", "bytes_transferred"]
                .iter()
                .find_map(|k| v.get(*k))
                .and_then(|b| b.as_u64().or_else(|| b.as_str()?.parse().ok())),
            files: v
                .get("files")
                .and_then(Value::as_u64)
                .and_then(|f| usize::try_from(f).ok()),
            duration_seconds: v.get("durationSeconds").and_then(Value::as_f64),
            reused: v.get("reused").and_then(Value::as_bool).unwrap_or(false),
            read_back: ["readBack", "read_back"]
                .iter()
                .find_map(|k| v.get(*k))
                .filter(|r| r.is_object())
                .map(|r| ReadBack {
                    model_artifact_id: str_field(
                        r,
                        &["modelArtifactId", "model_artifact_id", "id"],
                    ),
                    state: str_field(r, &["state"]),
                    uri: str_field(r, &["uri"]),
                }),
        }
    }
}

/// What a failure message reports: its `reason` (not necessarily one of ours: other writers,
/// such as the Python job, use their own) and `message`, from the JSON document (or its
/// `error` object) when there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportedFailure {
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl ReportedFailure {
    pub fn parse(text: &str) -> ReportedFailure {
        let json = json_document(text);
        let body = json.as_ref().map(|v| v.get("error").unwrap_or(v));
        ReportedFailure {
            reason: body.and_then(|b| str_field(b, &["reason"])),
            message: body.and_then(|b| str_field(b, &["message"])),
        }
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn str_field(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| v.get(*k)).and_then(scalar_string)
}

/// The failure message: a readable first line and the JSON document, the (already scrubbed)
/// message shortened to fit.
pub fn render_failure(reason: FailureReason, message: &str, intent: Option<&str>) -> String {
    let build = |m: &str| {
        let mut v = json!({ "reason": reason.code(), "message": m });
        if let (Some(i), Value::Object(map)) = (intent, &mut v) {
            map.insert("intent".into(), json!(i));
        }
        format!("{}\n{v}", first_line(reason, m))
    };
    fit(message, build)
}

/// Longest first line of a failure message.
pub const MAX_FIRST_LINE_BYTES: usize = 300;

/// `<reason>: <message>` on one line (newlines and tabs become spaces), shortened with `…`.
pub fn first_line(reason: FailureReason, message: &str) -> String {
    let flat: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = format!("{}: {}", reason.code(), flat.trim());
    if line.len() <= MAX_FIRST_LINE_BYTES {
        return line;
    }
    let cut = floor_char_boundary(&line, MAX_FIRST_LINE_BYTES - '…'.len_utf8());
    format!("{}…", &line[..cut])
}

/// The JSON document of a termination message: the whole text, or its last line (failures
/// start with a human-readable line). `None` when neither is a JSON object.
pub fn json_document(text: &str) -> Option<Value> {
    let text = text.trim();
    let parse = |t: &str| {
        serde_json::from_str::<Value>(t)
            .ok()
            .filter(Value::is_object)
    };
    parse(text).or_else(|| parse(text.rsplit('\n').next()?))
}

/// Serialises a success document through `scrub`, within the size limit (it always fits: ids,
/// one URI and numbers; an absurdly long URI is shortened like a failure message would be).
pub fn render_success(value: &Value, scrub: impl Fn(&str) -> String) -> String {
    let text = scrub(&value.to_string());
    if text.len() <= MAX_TERMINATION_MESSAGE_BYTES {
        return text;
    }
    let uri = value.get("uri").and_then(Value::as_str).unwrap_or_default();
    // The read-back URI, when it is the same, is shortened the same way, so the two still match.
    let same = value.pointer("/readBack/uri").and_then(Value::as_str) == Some(uri);
    fit(uri, |u| {
        let mut v = value.clone();
        if let Value::Object(map) = &mut v {
            map.insert("uri".into(), json!(u));
            if let Some(Value::Object(rb)) = map.get_mut("readBack") {
                let rb_uri = if same { json!(u) } else { json!("…") };
                rb.insert("uri".into(), rb_uri);
            }
        }
        scrub(&v.to_string())
    })
}

/// Shortens `text` (keeping its start, where the cause chain begins, and its end, where the
/// root cause is) until `build(text)` fits.
fn fit(text: &str, build: impl Fn(&str) -> String) -> String {
    let full = build(text);
    if full.len() <= MAX_TERMINATION_MESSAGE_BYTES {
        return full;
    }
    let marker = " …[truncated]… ";
    let mut budget = MAX_TERMINATION_MESSAGE_BYTES.saturating_sub(full.len() - text.len() + 64);
    loop {
        let half = budget / 2;
        let head = floor_char_boundary(text, half);
        let tail_start = ceil_char_boundary(text, text.len().saturating_sub(half));
        let shortened = format!("{}{marker}{}", &text[..head], &text[tail_start..]);
        let out = build(&shortened);
        if out.len() <= MAX_TERMINATION_MESSAGE_BYTES || budget == 0 {
            return out;
        }
        budget = budget.saturating_sub((out.len() - MAX_TERMINATION_MESSAGE_BYTES).max(16));
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Success {
        Success {
            intent: Some("create_model".into()),
            registered_model_id: Some("1".into()),
            model_version_id: Some("2".into()),
            model_artifact_id: Some("3".into()),
            uri: Some("oci://r/x@sha256:00".into()),
            digest: Some("sha256:00".into()),
            bytes: Some(10),
            files: Some(2),
            duration_seconds: Some(1.5),
            reused: true,
            read_back: Some(ReadBack {
                model_artifact_id: Some("3".into()),
                state: Some("LIVE".into()),
                uri: Some("oci://r/x@sha256:00".into()),
            }),
        }
    }

    #[test]
    fn success_round_trips() {
        let s = full();
        let text = render_success(&s.to_json(), str::to_owned);
        assert!(text.len() <= MAX_TERMINATION_MESSAGE_BYTES);
        assert_eq!(Success::parse(&text), s);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["RegisteredModel"]["id"], "1");
        assert_eq!(v["ModelArtifact"]["id"], "3");
    }

    #[test]
    fn long_success_stays_bounded_and_parses() {
        let mut s = full();
        s.uri = Some(format!("s3://b/{}", "k".repeat(5000)));
        s.read_back.as_mut().unwrap().uri = s.uri.clone();
        let text = render_success(&s.to_json(), str::to_owned);
        assert!(text.len() <= MAX_TERMINATION_MESSAGE_BYTES);
        let back = Success::parse(&text);
        assert_eq!(back.uri, back.read_back.unwrap().uri);
        assert_eq!(back.bytes, Some(10));
    }

    #[test]
    fn failure_round_trips_and_is_bounded() {
        for reason in FailureReason::ALL {
            let text = render_failure(*reason, "reading s3://b/k: NoSuchKey", Some("create_model"));
            let (first, _) = text.split_once('\n').unwrap();
            assert_eq!(
                first,
                format!("{}: reading s3://b/k: NoSuchKey", reason.code())
            );
            assert_eq!(
                ReportedFailure::parse(&text),
                ReportedFailure {
                    reason: Some(reason.code().into()),
                    message: Some("reading s3://b/k: NoSuchKey".into()),
                }
            );
        }
        let long = format!("start {} root cause", "é".repeat(5000));
        let text = render_failure(FailureReason::Internal, &long, None);
        assert!(
            text.len() <= MAX_TERMINATION_MESSAGE_BYTES,
            "{}",
            text.len()
        );
        let back = ReportedFailure::parse(&text);
        assert_eq!(back.reason.as_deref(), Some("Internal"));
        let m = back.message.unwrap();
        assert!(m.starts_with("start ") && m.ends_with("root cause"), "{m}");
        // Escapes (quotes, newlines) that grow in JSON still fit, as two lines.
        let text = render_failure(FailureReason::Internal, &"\"\\\n".repeat(3000), None);
        assert!(text.len() <= MAX_TERMINATION_MESSAGE_BYTES);
        assert_eq!(text.lines().count(), 2);
        assert!(json_document(&text).is_some());
        assert_eq!(
            ReportedFailure::parse("plain text"),
            ReportedFailure::default()
        );
    }
}
