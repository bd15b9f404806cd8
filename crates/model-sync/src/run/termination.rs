//! The termination message and secret scrubbing.
//!
//! The format itself is the Job contract's ([`mro_job_contract::termination`]); this module
//! adds the secret scrubbing every message passes through, and writes the file.
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
use mro_job_contract::FailureReason;
use mro_job_contract::termination;
use serde::Serialize;
use serde_json::Value;

pub use mro_job_contract::termination::{
    MAX_FIRST_LINE_BYTES, MAX_TERMINATION_MESSAGE_BYTES, ReadBack, Success as SyncSuccess,
    json_document,
};

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
    termination::render_failure(reason, &scrubber.scrub(message), intent)
}

/// Serialises a success document, scrubbed, within the size limit.
pub fn success_json(value: &Value, scrubber: &Scrubber) -> String {
    termination::render_success(value, |t| scrubber.scrub(t))
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
        let long = termination::first_line(FailureReason::Internal, &"é".repeat(400));
        assert!(
            long.len() <= MAX_FIRST_LINE_BYTES && long.ends_with('…'),
            "{long}"
        );
    }

    #[test]
    fn success_has_python_compatible_keys() {
        let s = SyncSuccess {
            intent: Some("create_model".into()),
            registered_model_id: Some("1".into()),
            model_version_id: Some("2".into()),
            model_artifact_id: Some("3".into()),
            uri: Some("oci://r/x@sha256:00".into()),
            digest: Some("sha256:00".into()),
            bytes: Some(10),
            files: Some(2),
            duration_seconds: Some(1.5),
            reused: false,
            read_back: Some(ReadBack {
                model_artifact_id: Some("3".into()),
                state: Some("LIVE".into()),
                uri: Some("oci://r/x@sha256:00".into()),
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
        long.uri = Some(format!("s3://b/{}", "k".repeat(5000)));
        long.read_back.as_mut().unwrap().uri = long.uri.clone();
        let text = success_json(&long.to_json(), &Scrubber::default());
        assert!(text.len() <= MAX_TERMINATION_MESSAGE_BYTES);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["uri"], v["readBack"]["uri"]);
    }
}
