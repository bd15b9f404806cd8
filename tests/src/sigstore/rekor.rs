//! A Rekor v1 stand-in: an append-only RFC 6962 Merkle log of `dsse` entries.
//!
//! `POST /api/v1/log/entries` checks the DSSE signature against the submitted certificate,
//! stores the canonical body, and answers like Rekor: the body, integrated time, log id and index,
//! a signed entry timestamp (ECDSA over the RFC 8785 form of those four fields) and an inclusion
//! proof with a signed checkpoint (a signed note: origin, size, root hash).
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::der;
use super::keys::{LogKey, pem};
use crate::http_files::ServerThread;

/// Checkpoint origin line.
pub const ORIGIN: &str = "rekor.mro-tests - 4242";

struct Log {
    key: LogKey,
    leaves: Mutex<Vec<[u8; 32]>>,
}

/// A running Rekor stand-in.
pub struct Rekor {
    log: Arc<Log>,
    server: ServerThread,
}

impl std::fmt::Debug for Rekor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rekor").field("url", &self.url()).finish()
    }
}

impl Rekor {
    pub fn start() -> anyhow::Result<Self> {
        let log = Arc::new(Log {
            key: LogKey::generate()?,
            leaves: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/api/v1/log/entries", axum::routing::post(create_entry))
            .with_state(log.clone());
        let server = ServerThread::spawn("rekor", move |listener| async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("rekor stand-in stopped: {e}");
            }
        })
        .context("start the Rekor stand-in")?;
        Ok(Self { log, server })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn key(&self) -> &LogKey {
        &self.log.key
    }

    /// Entries logged so far.
    pub fn size(&self) -> usize {
        self.log.leaves.lock().map(|l| l.len()).unwrap_or(0)
    }
}

fn reject(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": msg.into()})),
    )
        .into_response()
}

async fn create_entry(State(log): State<Arc<Log>>, Json(req): Json<Value>) -> Response {
    let body = match dsse_body(&req) {
        Ok(b) => b,
        Err(e) => return reject(StatusCode::BAD_REQUEST, format!("{e:#}")),
    };
    match append(&log, &body) {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => reject(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

/// Validates a proposed `dsse` v0.0.1 entry and returns its canonical body.
fn dsse_body(req: &Value) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        req["kind"] == "dsse" && req["apiVersion"] == "0.0.1",
        "only dsse 0.0.1 entries are supported by this stand-in"
    );
    let content = &req["spec"]["proposedContent"];
    let envelope_text = content["envelope"]
        .as_str()
        .context("spec.proposedContent.envelope")?;
    let envelope: Value = serde_json::from_str(envelope_text).context("envelope is not JSON")?;
    let verifier_pem =
        STANDARD.decode(content["verifiers"][0].as_str().context("verifiers[0]")?)?;
    let cert = pem_body(&String::from_utf8_lossy(&verifier_pem))
        .context("verifier is not a PEM certificate")?;
    let spki = der::spki(&cert).context("certificate without a public key")?;
    anyhow::ensure!(spki.len() == 91, "only P-256 keys are supported");
    let payload_type = envelope["payloadType"].as_str().context("payloadType")?;
    let payload = STANDARD.decode(envelope["payload"].as_str().context("payload")?)?;
    let sigs = envelope["signatures"].as_array().context("signatures")?;
    anyhow::ensure!(sigs.len() == 1, "exactly one signature expected");
    let sig_b64 = sigs[0]["sig"].as_str().context("sig")?;
    let sig = STANDARD.decode(sig_b64)?;
    let pae = [
        format!(
            "DSSEv1 {} {payload_type} {} ",
            payload_type.len(),
            payload.len()
        )
        .as_bytes(),
        &payload,
    ]
    .concat();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki[26..])
        .verify(&pae, &sig)
        .map_err(|_| {
            anyhow::anyhow!("the envelope signature does not verify with the certificate")
        })?;
    let body = json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(envelope_text.as_bytes()))},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload))},
            "signatures": [{"signature": sig_b64, "verifier": STANDARD.encode(pem("CERTIFICATE", &cert))}],
        },
    });
    Ok(serde_json::to_vec(&body)?)
}

fn pem_body(text: &str) -> Option<Vec<u8>> {
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body.trim()).ok()
}

fn append(log: &Log, body: &[u8]) -> anyhow::Result<Value> {
    let mut leaves = log
        .leaves
        .lock()
        .map_err(|_| anyhow::anyhow!("log poisoned"))?;
    leaves.push(leaf_hash(body));
    let index = leaves.len() - 1;
    let size = leaves.len();
    let root = subtree(&leaves);
    let proof = path(index, &leaves);
    drop(leaves);

    let integrated_time = chrono::Utc::now().timestamp();
    let log_id = hex::encode(log.key.log_id());
    let body_b64 = STANDARD.encode(body);
    // RFC 8785 form of these four fields: keys sorted, no whitespace, integers as is.
    let canonical = format!(
        r#"{{"body":"{body_b64}","integratedTime":{integrated_time},"logID":"{log_id}","logIndex":{index}}}"#
    );
    let set = STANDARD.encode(log.key.sign(canonical.as_bytes())?);
    let note = format!("{ORIGIN}\n{size}\n{}\n", STANDARD.encode(root));
    let note_sig = [&log.key.log_id()[..4], &log.key.sign(note.as_bytes())?].concat();
    let checkpoint = format!(
        "{note}\n\u{2014} {} {}\n",
        ORIGIN.split(' ').next().unwrap_or("rekor"),
        STANDARD.encode(note_sig)
    );
    let uuid = hex::encode(leaf_hash(body));
    Ok(json!({ uuid: {
        "body": body_b64,
        "integratedTime": integrated_time,
        "logID": log_id,
        "logIndex": index,
        "verification": {
            "signedEntryTimestamp": set,
            "inclusionProof": {
                "checkpoint": checkpoint,
                "hashes": proof.iter().map(hex::encode).collect::<Vec<_>>(),
                "logIndex": index,
                "rootHash": hex::encode(root),
                "treeSize": size,
            },
        },
    }}))
}

fn leaf_hash(data: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

fn node_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(l)
        .chain_update(r)
        .finalize()
        .into()
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 Merkle tree hash of leaf hashes.
fn subtree(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&subtree(&leaves[..k]), &subtree(&leaves[k..]))
        }
    }
}

/// RFC 6962 audit path of leaf `m`, leaf level first.
fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(subtree(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(subtree(&leaves[..k]));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recomputes the root from a path the way RFC 9162 §2.1.3.2 verifiers do.
    fn root_from(index: usize, size: usize, leaf: [u8; 32], path: &[[u8; 32]]) -> [u8; 32] {
        let (mut fn_, mut sn) = (index, size - 1);
        let mut r = leaf;
        for p in path {
            if fn_ & 1 == 1 || fn_ == sn {
                r = node_hash(p, &r);
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        r
    }

    #[test]
    fn inclusion_paths_verify_for_every_leaf_of_every_size() {
        let leaves: Vec<[u8; 32]> = (0..13u8).map(|i| leaf_hash(&[i])).collect();
        for size in 1..=leaves.len() {
            let root = subtree(&leaves[..size]);
            for i in 0..size {
                let p = path(i, &leaves[..size]);
                assert_eq!(
                    root_from(i, size, leaves[i], &p),
                    root,
                    "leaf {i} of {size}"
                );
            }
        }
    }
}
