//! ECDSA P-256 signing keys: a PEM private key file (key-based mode) or a fresh ephemeral key
//! per run (keyless mode, certified by Fulcio). P-256 with SHA-256 is what every sigstore client
//! and `model_signing` accept; aws-lc-rs is the crypto provider the rest of the binary uses.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::SignError;

/// A private key with its public half (SubjectPublicKeyInfo DER).
pub struct SigningKey {
    pair: EcdsaKeyPair,
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key (keyless mode: it lives only as long as the run).
    pub fn generate() -> Result<Self, SignError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| SignError::internal("cannot generate an ECDSA P-256 key"))?;
        Self::from_pair(pair)
    }

    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`),
    /// unencrypted, on curve P-256. `origin` names the file in errors.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, SignError> {
        let bad = |why: &str| SignError::Key(format!("{origin}: {why}"));
        let text = std::str::from_utf8(pem).map_err(|_| bad("not a PEM text file"))?;
        if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(bad(
                "the private key is encrypted; an unencrypted PEM key is expected \
                 (mount it from a Secret)",
            ));
        }
        let der = pem_block(text, &["PRIVATE KEY", "EC PRIVATE KEY"]).ok_or_else(|| {
            bad("no `BEGIN PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block (PEM ECDSA P-256 key expected)")
        })??;
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .map_err(|e| bad(&format!("not an ECDSA P-256 private key ({e})")))?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: EcdsaKeyPair) -> Result<Self, SignError> {
        let spki_der = pair
            .public_key()
            .as_der()
            .map_err(|_| SignError::internal("cannot encode the public key"))?
            .as_ref()
            .to_vec();
        Ok(Self { pair, spki_der })
    }

    /// ECDSA over SHA-256(`message`), DER-encoded (the form sigstore bundles carry).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| SignError::internal("ECDSA signing failed"))
    }

    /// SubjectPublicKeyInfo, DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SubjectPublicKeyInfo as PEM, byte for byte what OpenSSL and Python's `cryptography` write
    /// (the key hint of a key-based bundle is the sha256 of exactly this text).
    pub fn public_key_pem(&self) -> String {
        to_pem("PUBLIC KEY", &self.spki_der)
    }
}

/// PEM with 64-column lines and a trailing newline.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every PEM block's label and DER content, in order.
pub fn pem_blocks(text: &str) -> Vec<(String, Result<Vec<u8>, SignError>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after[..label_end].to_owned();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            out.push((label, Err(SignError::Key("unterminated PEM block".into()))));
            break;
        };
        let body: String = body_start[..end]
            .lines()
            .filter(|l| !l.contains(':'))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|e| SignError::Key(format!("PEM block {label}: bad base64 ({e})")));
        out.push((label, der));
        rest = &body_start[end + end_marker.len()..];
    }
    out
}

fn pem_block(text: &str, labels: &[&str]) -> Option<Result<Vec<u8>, SignError>> {
    pem_blocks(text)
        .into_iter()
        .find(|(l, _)| labels.contains(&l.as_str()))
        .map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pkcs8_pem() {
        let k = SigningKey::generate().unwrap();
        let pkcs8 = k.pair.to_pkcs8v1().unwrap();
        let pem = to_pem("PRIVATE KEY", pkcs8.as_ref());
        let back = SigningKey::from_pem(pem.as_bytes(), "key.pem").unwrap();
        assert_eq!(back.public_key_der(), k.public_key_der());
        assert!(
            k.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\nMFkw")
        );
        assert!(k.public_key_pem().ends_with("-----END PUBLIC KEY-----\n"));
    }

    #[test]
    fn bad_keys_are_named_and_explained() {
        let e = SigningKey::from_pem(b"hello", "/k/key.pem")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/k/key.pem") && e.contains("BEGIN PRIVATE KEY"),
            "{e}"
        );
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let e = SigningKey::from_pem(enc.as_bytes(), "k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("encrypted"), "{e}");
        let junk = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let e = SigningKey::from_pem(junk.as_bytes(), "k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("P-256"), "{e}");
    }
}
