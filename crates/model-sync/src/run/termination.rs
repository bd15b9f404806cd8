//! The termination message and secret scrubbing.
//!
//! Kubernetes copies the file at `TERMINATION_MESSAGE_PATH` (default `/dev/termination-log`)
//! into the container status, truncated to 4096 bytes. We write at most
//! [`MAX_TERMINATION_MESSAGE_BYTES`] so that the JSON is never cut in the middle: the message is
//! shortened first, and the document is always valid JSON (on the last line of a failure, see
//! below).
//!
//! Success:
//! ```json
//! {"intent":"create_model","registeredModelId":"1","modelVersionId":"2","modelArtifactId":"1",
//!  "uri":"oci://host/repo@sha256:…","digest":"sha256:…","bytes":123,"files":3,
//!  "durationSeconds":1.234,
//!  "readBack":{"modelArtifactId":"1","state":"LIVE","uri":"oci://host/repo@sha256:…"},
//!  "RegisteredModel":{"id":"1"},"ModelVersion":{"id":"2"},"ModelArtifact":{"id":"1"}}
//! ```
//! The capitalised objects are what the Python job wrote; they are kept so existing readers
//! (the Model Registry UI back-end) keep working. `readBack` is the model artifact as a fresh
//! GET returned it after the registration (absent when that read failed): the operator's
//! `Registered` check relies on it where it would need the Job's own credentials to read the
//! registry itself (it mints no tokens for other accounts).
//!
//! Failure: a human-readable first line (`SourceUnavailable: …`, at most
//! [`MAX_FIRST_LINE_BYTES`]), then on the second line the JSON document
//! `{"reason":"SourceUnavailable","message":"…root cause…"}` plus `intent` when known. The Model
//! Registry UI back-end shows a failed pod's termination message as its error text (it only
//! JSON-decodes it for ids), so the text it shows first must read as a sentence, as the Python
//! job's `Unexpected error: …` did; readers of the JSON take the last line.
//!
//! Every message passes through a [`Scrubber`] holding the secret values of the configuration
//! (and their base64 `user:password` forms), so that a back-end or server echoing a credential
//! cannot leak it into logs or the pod status.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::FailureReason;

/// Upper bound of the file we write (Kubernetes keeps 4096 bytes).
pub const MAX_TERMINATION_MESSAGE_BYTES: usize = 4000;

/// Secrets shorter than this are not scrubbed: replacing every occurrence of two or three
/// characters would mangle messages without protecting anything worth protecting.
const MIN_SECRET_LEN: usize = 4;

/// Replaces known secret values with `***`.
#[derive(Clone, Debug, Default)]
pub struct Scrubber {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Arc<Vec<String>>,
}

impl Scrubber {
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .map(|s| s.trim().to_owned())
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        // Forms a secret commonly takes on the wire or in files.
        let mut extra = Vec::new();
        for s in &v {
            let enc: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            if enc != *s {
                extra.push(enc);
            }
        }
        v.extend(extra);
        v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        v.dedup();
        Self {
            secrets: Arc::new(v),
        }
    }

    /// Adds `user:password` in base64 (the docker config `auth` form and HTTP basic auth).
    pub fn with_basic_auth(self, pairs: &[(String, String)]) -> Self {
        let mut all: Vec<String> = self.secrets.as_ref().clone();
        for (u, p) in pairs {
            all.push(p.clone());
            all.push(base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
        }
        Self::new(all)
    }

    /// Merges two scrubbers.
    pub fn merged(&self, other: &Scrubber) -> Self {
        Self::new(self.secrets.iter().chain(other.secrets.iter()).cloned())
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Known values first, then credential-shaped text ([`crate::redact`]: pre-signed URL
    /// signatures and tokens, `user:password@`, `Bearer …`) that no configuration value names.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        crate::redact::text(&out)
    }
}

/// A `tracing` writer that scrubs every formatted event before it reaches stderr.
///
/// `tracing_subscriber::fmt` formats an event into a buffer and hands it over in one
/// `write_all`, so a secret cannot be split across two writes.
#[derive(Clone, Debug)]
pub struct ScrubbingStderr {
    scrubber: Scrubber,
}

impl ScrubbingStderr {
    pub fn new(scrubber: Scrubber) -> Self {
        Self { scrubber }
    }
}

/// One event's worth of output.
pub struct ScrubbingWriter {
    scrubber: Scrubber,
}

impl std::io::Write for ScrubbingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = self.scrubber.scrub(&text);
        std::io::stderr().lock().write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbingStderr {
    type Writer = ScrubbingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingWriter {
            scrubber: self.scrubber.clone(),
        }
    }
}

/// What a successful sync reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSuccess {
    pub intent: String,
    pub registered_model_id: Option<String>,
    pub model_version_id: Option<String>,
    pub model_artifact_id: Option<String>,
    pub uri: String,
    pub digest: Option<String>,
    pub bytes: u64,
    pub files: usize,
    pub duration_seconds: f64,
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
    pub model_artifact_id: String,
    /// The registry's state name (`LIVE`, `PENDING`, ...).
    pub state: String,
    pub uri: String,
}

impl SyncSuccess {
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
}

/// What a successful storage-initializer run reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitSuccess {
    pub mode: &'static str,
    /// The URI given on the command line.
    pub source_uri: String,
    /// The storage URI actually downloaded (resolved through the registry when needed).
    pub uri: String,
    pub registered_model_id: Option<String>,
    pub model_version_id: Option<String>,
    pub model_artifact_id: Option<String>,
    pub dest_path: String,
    pub bytes: u64,
    pub files: usize,
    pub duration_seconds: f64,
}

/// The failure document: stable reason, scrubbed message shortened to fit.
pub fn failure_json(
    reason: FailureReason,
    message: &str,
    intent: Option<&str>,
    scrubber: &Scrubber,
) -> String {
    let message = scrubber.scrub(message);
    let build = |m: &str| {
        let mut v = json!({ "reason": reason.code(), "message": m });
        if let (Some(i), Value::Object(map)) = (intent, &mut v) {
            map.insert("intent".into(), json!(i));
        }
        format!("{}\n{v}", first_line(reason, m))
    };
    fit(&message, build)
}

/// Longest first line of a failure message.
pub const MAX_FIRST_LINE_BYTES: usize = 300;

/// `<reason>: <message>` on one line (newlines and tabs become spaces), shortened with `…`.
fn first_line(reason: FailureReason, message: &str) -> String {
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

/// Serialises a success document, scrubbed, within the size limit (it always fits: ids, one
/// URI and numbers; an absurdly long URI is shortened like a failure message would be).
pub fn success_json(value: &Value, scrubber: &Scrubber) -> String {
    let text = scrubber.scrub(&value.to_string());
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
        scrubber.scrub(&v.to_string())
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

/// Writes the termination message. Best effort: a read-only or missing directory (a local run
/// outside Kubernetes) must not turn a success into a failure, so problems are only logged.
pub fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        tracing::debug!(path = %path.display(), "cannot write the termination message: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_secrets_and_their_encodings() {
        let s = Scrubber::new(["hunter2-secret", "ab"])
            .with_basic_auth(&[("user".to_owned(), "pa ss/word".to_owned())]);
        let b64 = base64::engine::general_purpose::STANDARD.encode("user:pa ss/word");
        let text = format!("x hunter2-secret y pa+ss%2Fword z {b64} ab");
        let out = s.scrub(&text);
        assert_eq!(out, "x *** y *** z *** ab");
    }

    #[test]
    fn failure_fits_and_is_valid_json() {
        let long = format!("start {} root cause: disk on fire", "é".repeat(5000));
        let text = failure_json(
            FailureReason::SourceUnavailable,
            &long,
            Some("create_model"),
            &Scrubber::default(),
        );
        assert!(
            text.len() <= MAX_TERMINATION_MESSAGE_BYTES,
            "{}",
            text.len()
        );
        let v = json_document(&text).unwrap();
        assert_eq!(v["reason"], "SourceUnavailable");
        assert_eq!(v["intent"], "create_model");
        let m = v["message"].as_str().unwrap();
        assert!(m.starts_with("start "));
        assert!(m.ends_with("root cause: disk on fire"));
        assert!(m.contains("[truncated]"));
    }

    #[test]
    fn failure_with_quotes_fits() {
        let long = "\"\\\n".repeat(3000);
        let text = failure_json(FailureReason::Internal, &long, None, &Scrubber::default());
        assert!(text.len() <= MAX_TERMINATION_MESSAGE_BYTES);
        json_document(&text).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn failure_starts_with_a_readable_line() {
        let text = failure_json(
            FailureReason::SourceUnavailable,
            "reading s3://models/m1/: NoSuchBucket (HTTP 404)\ncaused by: gone",
            Some("update_artifact"),
            &Scrubber::new(["gone"]),
        );
        let (first, rest) = text.split_once('\n').unwrap();
        assert_eq!(
            first,
            "SourceUnavailable: reading s3://models/m1/: NoSuchBucket (HTTP 404) caused by: ***"
        );
        let v: Value = serde_json::from_str(rest).unwrap();
        assert_eq!(v["reason"], "SourceUnavailable");
        assert_eq!(v["intent"], "update_artifact");
        let long = first_line(FailureReason::Internal, &"é".repeat(400));
        assert!(
            long.len() <= MAX_FIRST_LINE_BYTES && long.ends_with('…'),
            "{long}"
        );
    }

    #[test]
    fn success_has_python_compatible_keys() {
        let s = SyncSuccess {
            intent: "create_model".into(),
            registered_model_id: Some("1".into()),
            model_version_id: Some("2".into()),
            model_artifact_id: Some("3".into()),
            uri: "oci://r/x@sha256:00".into(),
            digest: Some("sha256:00".into()),
            bytes: 10,
            files: 2,
            duration_seconds: 1.5,
            reused: false,
            read_back: Some(ReadBack {
                model_artifact_id: "3".into(),
                state: "LIVE".into(),
                uri: "oci://r/x@sha256:00".into(),
            }),
        };
        let v = s.to_json();
        assert_eq!(v["RegisteredModel"]["id"], "1");
        assert_eq!(v["ModelVersion"]["id"], "2");
        assert_eq!(v["ModelArtifact"]["id"], "3");
        assert_eq!(v["registeredModelId"], "1");
        assert_eq!(v["durationSeconds"], 1.5);
        assert!(v.get("reused").is_none());
        assert_eq!(v["readBack"]["state"], "LIVE");
        let text = success_json(&v, &Scrubber::default());
        assert!(text.len() < MAX_TERMINATION_MESSAGE_BYTES);
        // A URI too long for the message is cut the same way in readBack.
        let mut long = s.clone();
        long.uri = format!("s3://b/{}", "k".repeat(5000));
        long.read_back.as_mut().unwrap().uri = long.uri.clone();
        let text = success_json(&long.to_json(), &Scrubber::default());
        assert!(text.len() <= MAX_TERMINATION_MESSAGE_BYTES);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["uri"], v["readBack"]["uri"]);
    }
}
