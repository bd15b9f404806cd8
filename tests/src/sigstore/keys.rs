//! Signing keys of the stand-in logs (CT log, transparency log): ECDSA P-256, identified like
//! sigstore does, by the sha256 of the SubjectPublicKeyInfo.
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

pub struct LogKey {
    key: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl LogKey {
    pub fn generate() -> anyhow::Result<Self> {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| anyhow::anyhow!("generate log key"))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| anyhow::anyhow!("encode log key"))?
            .as_ref()
            .to_vec();
        Ok(Self { key, spki })
    }

    /// DER ECDSA signature over sha256(`data`).
    pub fn sign(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(self
            .key
            .sign(&SystemRandom::new(), data)
            .map_err(|_| anyhow::anyhow!("log signature"))?
            .as_ref()
            .to_vec())
    }

    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// sha256 of the SubjectPublicKeyInfo.
    pub fn log_id(&self) -> [u8; 32] {
        Sha256::digest(&self.spki).into()
    }
}

/// PEM with 64-column lines and a trailing newline (what sigstore clients emit).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
