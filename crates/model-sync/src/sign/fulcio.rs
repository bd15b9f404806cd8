//! Fulcio v2 client: an OIDC identity token and a fresh public key in, a short-lived code-signing
//! certificate (with its SCT embedded) out.
//!
//! `POST /api/v2/signingCert` with `publicKeyRequest`: the proof of possession is our signature
//! over the identity the certificate will name (the token's `email` claim when present, else
//! `sub`), which is how Fulcio checks that the caller holds the private key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::error::{SignError, http_error};
use super::keys::{SigningKey, pem_blocks};

/// The subject Fulcio expects the proof of possession to sign, read from the token's claims.
/// The token's signature is Fulcio's business; we only need the claim.
pub fn token_subject(token: &str) -> Result<String, SignError> {
    let bad = |why: &str| SignError::Token(format!("the identity token is not a JWT: {why}"));
    let mut parts = token.trim().split('.');
    let claims = match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(c), Some(_)) => c,
        _ => return Err(bad("expected three dot-separated parts")),
    };
    let raw = URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .map_err(|_| bad("the claims are not base64url"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|_| bad("the claims are not JSON"))?;
    claims["email"]
        .as_str()
        .or_else(|| claims["sub"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| bad("it has neither an `email` nor a `sub` claim"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigningCertResponse {
    signed_certificate_embedded_sct: Option<CertChain>,
    signed_certificate_detached_sct: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct CertChain {
    chain: Certificates,
}

#[derive(Deserialize)]
struct Certificates {
    certificates: Vec<String>,
}

/// Asks Fulcio for a certificate; returns the chain as DER, leaf first.
pub async fn signing_cert(
    http: &reqwest::Client,
    fulcio: &Url,
    token: &str,
    key: &SigningKey,
) -> Result<Vec<Vec<u8>>, SignError> {
    let subject = token_subject(token)?;
    let proof = key.sign(subject.as_bytes())?;
    let url = fulcio
        .join("api/v2/signingCert")
        .map_err(|e| SignError::Service(format!("Fulcio URL {fulcio}: {e}")))?;
    let body = json!({
        "credentials": {"oidcIdentityToken": token.trim()},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": key.public_key_pem()},
            "proofOfPossession": STANDARD.encode(proof),
        },
    });
    let resp = http
        .post(url.clone())
        .json(&body)
        .send()
        .await
        .map_err(|e| http_error("Fulcio", &url, &e))?;
    let status = resp.status();
    let text = if status.is_success() {
        let body = crate::net::read_body(resp, crate::net::SERVICE_BODY_BYTES)
            .await
            .map_err(|e| SignError::Service(format!("Fulcio {url}: {e}")))?;
        String::from_utf8_lossy(&body).into_owned()
    } else {
        crate::net::error_text(resp).await
    };
    if !status.is_success() {
        return Err(SignError::Service(format!(
            "Fulcio {url} refused the certificate request: HTTP {status}: {}",
            text.trim()
        )));
    }
    let parsed: SigningCertResponse = serde_json::from_str(&text)
        .map_err(|e| SignError::Service(format!("Fulcio {url}: unexpected response ({e})")))?;
    let chain = match (
        parsed.signed_certificate_embedded_sct,
        parsed.signed_certificate_detached_sct,
    ) {
        (Some(c), _) => c.chain.certificates,
        (None, Some(_)) => {
            return Err(SignError::Service(format!(
                "Fulcio {url} returned a certificate with a detached SCT; sigstore bundles need \
                 the SCT embedded in the certificate (configure Fulcio with a CT log)"
            )));
        }
        (None, None) => {
            return Err(SignError::Service(format!(
                "Fulcio {url}: response without a certificate"
            )));
        }
    };
    let mut ders = Vec::new();
    for pem in &chain {
        for (label, der) in pem_blocks(pem) {
            if label == "CERTIFICATE" {
                ders.push(der?);
            }
        }
    }
    if ders.is_empty() {
        return Err(SignError::Service(format!(
            "Fulcio {url}: empty certificate chain"
        )));
    }
    Ok(ders)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn subject_prefers_email_then_sub() {
        assert_eq!(
            token_subject(&jwt(r#"{"sub":"s","email":"a@b"}"#)).unwrap(),
            "a@b"
        );
        assert_eq!(
            token_subject(&jwt(r#"{"sub":"system:serviceaccount:ns:sa"}"#)).unwrap(),
            "system:serviceaccount:ns:sa"
        );
        assert!(token_subject("not-a-jwt").is_err());
        assert!(token_subject(&jwt(r#"{"aud":"x"}"#)).is_err());
    }
}
