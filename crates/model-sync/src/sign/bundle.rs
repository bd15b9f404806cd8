//! The sigstore bundle v0.3 (JSON form of `dev.sigstore.bundle.v1.Bundle`) and the DSSE envelope
//! it carries. Field names follow the protobuf JSON mapping (camelCase, bytes as standard base64,
//! int64 as strings), which is what sigstore clients and `model_signing` read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// DSSE pre-authentication encoding: what is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// base64 of the payload bytes.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// base64 DER ECDSA signature over [`pae`].
    pub sig: String,
    #[serde(default)]
    pub keyid: String,
}

impl Envelope {
    pub fn new(payload_type: &str, payload: &[u8], signature: &[u8]) -> Self {
        Self {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![EnvelopeSignature {
                sig: STANDARD.encode(signature),
                keyid: String::new(),
            }],
        }
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        STANDARD.decode(&self.payload)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<MessageSignature>,
}

impl Bundle {
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs of strings cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<RawBytes>,
    #[serde(default)]
    pub tlog_entries: Vec<TlogEntry>,
    /// RFC 3161 timestamps of the signature (SIGSTORE_TSA_URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<TimestampVerificationData>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampVerificationData {
    pub rfc3161_timestamps: Vec<Rfc3161Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rfc3161Timestamp {
    /// base64 of the DER `TimeStampResp`.
    pub signed_timestamp: String,
}

/// Key-based bundles name the key only by a hint: the verifier supplies the key itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyIdentifier {
    pub hint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBytes {
    /// base64 DER.
    pub raw_bytes: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSignature {
    pub message_digest: HashOutput,
    /// base64 DER ECDSA signature over the message.
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashOutput {
    /// `SHA2_256`.
    pub algorithm: String,
    /// base64 digest.
    pub digest: String,
}

/// One transparency-log entry (`dev.sigstore.rekor.v1.TransparencyLogEntry`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlogEntry {
    pub log_index: String,
    pub log_id: LogId,
    pub kind_version: KindVersion,
    pub integrated_time: String,
    pub inclusion_promise: InclusionPromise,
    pub inclusion_proof: InclusionProof,
    /// base64 of the entry body exactly as the log stores it.
    pub canonicalized_body: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    /// base64 sha256 of the log's public key.
    pub key_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionPromise {
    /// base64 signed entry timestamp.
    pub signed_entry_timestamp: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    pub log_index: String,
    /// base64 root hash.
    pub root_hash: String,
    pub tree_size: String,
    /// base64 sibling hashes, leaf to root.
    pub hashes: Vec<String>,
    pub checkpoint: Checkpoint,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The signed note, verbatim.
    pub envelope: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_follows_the_dsse_spec() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn key_based_bundle_has_protobuf_json_names() {
        let b = Bundle {
            media_type: BUNDLE_MEDIA_TYPE.into(),
            verification_material: VerificationMaterial {
                public_key: Some(PublicKeyIdentifier { hint: "ab".into() }),
                certificate: None,
                tlog_entries: vec![],
                timestamp_verification_data: Some(TimestampVerificationData {
                    rfc3161_timestamps: vec![Rfc3161Timestamp {
                        signed_timestamp: "MAA=".into(),
                    }],
                }),
            },
            dsse_envelope: Some(Envelope::new(IN_TOTO_PAYLOAD_TYPE, b"{}", b"sig")),
            message_signature: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert_eq!(v["verificationMaterial"]["publicKey"]["hint"], "ab");
        assert_eq!(v["dsseEnvelope"]["payloadType"], IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(v["dsseEnvelope"]["payload"], "e30=");
        assert_eq!(v["dsseEnvelope"]["signatures"][0]["keyid"], "");
        assert!(v.get("messageSignature").is_none());
        assert_eq!(
            v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"],
            "MAA="
        );
    }
}
