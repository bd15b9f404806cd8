//! The sigstore trusted root (`application/vnd.dev.sigstore.trustedroot+json`), and the checks
//! of what Fulcio and Rekor returned against it, before anything is published.
//!
//! - [`tuf`]: fetches `trusted_root.json` from the TUF repository at SIGSTORE_TUF_URL.
//! - [`certificate`]: the Fulcio certificate chains to a trusted certificate authority valid now,
//!   is a code-signing certificate, and carries an SCT signed by a trusted CT log.
//! - [`tlog`]: Rekor's signed entry timestamp verifies with the trusted log whose id it names,
//!   and the entry was integrated while the certificate was valid.
//! - [`timestamp`]: the timestamp authority's reply (SIGSTORE_TSA_URL) is signed by a listed
//!   timestamp authority.
//!
//! A signer without a trusted root (SIGSTORE_TUF_URL unset) signs as before and says that
//! nothing was checked: verifiers still check everything, so this only moves the failure earlier.

pub mod certificate;
pub mod timestamp;
pub mod tlog;
pub mod tuf;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The parts of a trusted root a signer checks against.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedRoot {
    #[serde(default)]
    pub tlogs: Vec<TransparencyLog>,
    #[serde(default)]
    pub certificate_authorities: Vec<CertificateAuthority>,
    #[serde(default)]
    pub ctlogs: Vec<TransparencyLog>,
    /// Checked only when signatures are timestamped (SIGSTORE_TSA_URL).
    #[serde(default)]
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

/// A transparency log (Rekor) or CT log.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyLog {
    #[serde(default)]
    pub base_url: String,
    pub public_key: PublicKey,
    pub log_id: LogId,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKey {
    /// base64 SubjectPublicKeyInfo DER.
    #[serde(default)]
    pub raw_bytes: String,
    #[serde(default)]
    pub key_details: String,
    #[serde(default)]
    pub valid_for: Option<TimeRange>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    /// base64 of the log id (sha256 of the key, for Rekor v1 and CT logs).
    pub key_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthority {
    #[serde(default)]
    pub uri: String,
    pub cert_chain: CertChain,
    #[serde(default)]
    pub valid_for: Option<TimeRange>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CertChain {
    pub certificates: Vec<RawBytes>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBytes {
    /// base64 DER.
    pub raw_bytes: String,
}

/// `validFor`: from `start`, until `end` when there is one.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TimeRange {
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
}

impl TimeRange {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }
}

fn valid_at(range: Option<&TimeRange>, t: DateTime<Utc>) -> bool {
    range.is_none_or(|r| r.contains(t))
}

impl TrustedRoot {
    /// Parses a trusted root; a root naming no certificate authority or no transparency log
    /// cannot vouch for a keyless signature and is refused.
    pub fn from_json(json: &[u8]) -> Result<Self, String> {
        let root: Self = serde_json::from_slice(json)
            .map_err(|e| format!("not a sigstore trusted root ({e})"))?;
        if root.certificate_authorities.is_empty() {
            return Err("it lists no certificate authority (certificateAuthorities)".into());
        }
        if root.tlogs.is_empty() {
            return Err("it lists no transparency log (tlogs)".into());
        }
        Ok(root)
    }
}

impl TransparencyLog {
    fn id(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.log_id.key_id).ok()
    }

    /// Verifies `signature` over `message` with this log's key.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let spki = STANDARD
            .decode(&self.public_key.raw_bytes)
            .map_err(|_| "its public key is not base64".to_owned())?;
        verify_with_spki(&spki, &self.public_key.key_details, message, signature)
    }
}

/// Verifies a signature with a DER SubjectPublicKeyInfo, for the key types a trusted root names
/// (`keyDetails`).
pub(crate) fn verify_with_spki(
    spki_der: &[u8],
    key_details: &str,
    message: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let alg: &'static dyn VerificationAlgorithm = match key_details {
        "PKIX_ECDSA_P256_SHA_256" => &signature::ECDSA_P256_SHA256_ASN1,
        "PKIX_ECDSA_P384_SHA_384" => &signature::ECDSA_P384_SHA384_ASN1,
        "PKIX_ECDSA_P521_SHA_512" => &signature::ECDSA_P521_SHA512_ASN1,
        "PKIX_ED25519" => &signature::ED25519,
        "PKIX_RSA_PKCS1V15_2048_SHA256"
        | "PKIX_RSA_PKCS1V15_3072_SHA256"
        | "PKIX_RSA_PKCS1V15_4096_SHA256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        other => return Err(format!("unsupported key type {other:?}")),
    };
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| "the public key is not a DER SubjectPublicKeyInfo".to_owned())?;
    UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(message, sig)
        .map_err(|_| "the signature does not verify".to_owned())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Keys and roots for the unit tests of the checks.
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;
    use sha2::{Digest as _, Sha256};

    pub struct LogKey {
        pub pair: EcdsaKeyPair,
        pub spki: Vec<u8>,
    }

    impl LogKey {
        pub fn new() -> Self {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
            let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
            Self { pair, spki }
        }

        pub fn id(&self) -> [u8; 32] {
            Sha256::digest(&self.spki).into()
        }

        pub fn sign(&self, m: &[u8]) -> Vec<u8> {
            self.pair
                .sign(&SystemRandom::new(), m)
                .unwrap()
                .as_ref()
                .to_vec()
        }

        pub fn json(&self, valid_for: serde_json::Value) -> serde_json::Value {
            json!({
                "baseUrl": "http://log.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(&self.spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for,
                },
                "logId": {"keyId": STANDARD.encode(self.id())},
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ranges_and_required_parts() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let r = TimeRange {
            start: Some(t("2020-01-01T00:00:00Z")),
            end: Some(t("2021-01-01T00:00:00Z")),
        };
        assert!(r.contains(t("2020-06-01T00:00:00Z")));
        assert!(!r.contains(t("2019-06-01T00:00:00Z")));
        assert!(!r.contains(t("2022-06-01T00:00:00Z")));
        assert!(TimeRange::default().contains(t("2022-06-01T00:00:00Z")));

        let e = TrustedRoot::from_json(br#"{"tlogs":[]}"#).unwrap_err();
        assert!(e.contains("certificateAuthorities"), "{e}");
        let e = TrustedRoot::from_json(b"\"x\"").unwrap_err();
        assert!(e.contains("not a sigstore trusted root"), "{e}");
    }

    #[test]
    fn unknown_key_types_are_named() {
        let e = verify_with_spki(b"", "PKIX_FANCY", b"m", b"s").unwrap_err();
        assert!(e.contains("PKIX_FANCY"), "{e}");
    }
}
