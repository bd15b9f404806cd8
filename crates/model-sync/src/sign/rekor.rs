//! Rekor v1 client: uploads a `dsse` (model files, image statements) entry and turns the
//! log's answer (body, integrated time, signed entry timestamp, inclusion proof with its signed
//! checkpoint) into the bundle's transparency-log entry.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::bundle::{
    Checkpoint, Envelope, InclusionPromise, InclusionProof, KindVersion, LogId, TlogEntry,
};
use super::error::{SignError, http_error};
use super::keys::to_pem;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEntry {
    body: String,
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: String,
    log_index: i64,
    verification: Option<Verification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verification {
    signed_entry_timestamp: Option<String>,
    inclusion_proof: Option<Proof>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Proof {
    checkpoint: String,
    hashes: Vec<String>,
    log_index: i64,
    root_hash: String,
    tree_size: i64,
}

/// Uploads a DSSE envelope signed by the leaf certificate `cert_der`.
pub async fn upload_dsse(
    http: &reqwest::Client,
    rekor: &Url,
    envelope: &Envelope,
    cert_der: &[u8],
) -> Result<TlogEntry, SignError> {
    let envelope_json = serde_json::to_string(envelope).unwrap_or_default();
    let body = json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {
            "envelope": envelope_json,
            "verifiers": [STANDARD.encode(to_pem("CERTIFICATE", cert_der))],
        }},
    });
    upload(http, rekor, &body, "dsse").await
}

async fn upload(
    http: &reqwest::Client,
    rekor: &Url,
    body: &serde_json::Value,
    kind: &str,
) -> Result<TlogEntry, SignError> {
    let url = rekor
        .join("api/v1/log/entries")
        .map_err(|e| SignError::Service(format!("Rekor URL {rekor}: {e}")))?;
    let resp = http
        .post(url.clone())
        .json(body)
        .send()
        .await
        .map_err(|e| http_error("Rekor", &url, &e))?;
    let status = resp.status();
    let text = if status.is_success() {
        let body = crate::net::read_body(resp, crate::net::SERVICE_BODY_BYTES)
            .await
            .map_err(|e| SignError::Service(format!("Rekor {url}: {e}")))?;
        String::from_utf8_lossy(&body).into_owned()
    } else {
        crate::net::error_text(resp).await
    };
    if !status.is_success() {
        return Err(SignError::Service(format!(
            "Rekor {url} refused the {kind} entry: HTTP {status}: {}",
            text.trim()
        )));
    }
    let entries: BTreeMap<String, LogEntry> = serde_json::from_str(&text)
        .map_err(|e| SignError::Service(format!("Rekor {url}: unexpected response ({e})")))?;
    let Some((_, entry)) = entries.into_iter().next() else {
        return Err(SignError::Service(format!("Rekor {url}: empty response")));
    };
    to_tlog_entry(entry, kind).map_err(|why| SignError::Service(format!("Rekor {url}: {why}")))
}

fn to_tlog_entry(e: LogEntry, kind: &str) -> Result<TlogEntry, String> {
    let v = e.verification.ok_or("the entry has no verification data")?;
    let set = v
        .signed_entry_timestamp
        .ok_or("the entry has no signed entry timestamp")?;
    let proof = v
        .inclusion_proof
        .ok_or("the entry has no inclusion proof")?;
    let b64_of_hex = |h: &str| {
        hex::decode(h)
            .map(|b| STANDARD.encode(b))
            .map_err(|_| format!("{h:?} is not hex"))
    };
    Ok(TlogEntry {
        log_index: e.log_index.to_string(),
        log_id: LogId {
            key_id: b64_of_hex(&e.log_id)?,
        },
        kind_version: KindVersion {
            kind: kind.to_owned(),
            version: "0.0.1".to_owned(),
        },
        integrated_time: e.integrated_time.to_string(),
        inclusion_promise: InclusionPromise {
            signed_entry_timestamp: set,
        },
        inclusion_proof: InclusionProof {
            log_index: proof.log_index.to_string(),
            root_hash: b64_of_hex(&proof.root_hash)?,
            tree_size: proof.tree_size.to_string(),
            hashes: proof
                .hashes
                .iter()
                .map(|h| b64_of_hex(h))
                .collect::<Result<_, _>>()?,
            checkpoint: Checkpoint {
                envelope: proof.checkpoint,
            },
        },
        canonicalized_body: e.body,
    })
}
