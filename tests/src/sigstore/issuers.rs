//! The OIDC issuers the Fulcio stand-in trusts, and how it checks their tokens: the test issuer
//! (ES256, [`super::oidc`]) and a Kubernetes API server, whose ServiceAccount tokens are checked
//! against the keys it publishes (`/.well-known/openid-configuration`, `/openid/v1/jwks`), as a
//! Fulcio configured for a cluster's issuer does.
use anyhow::{Context as _, anyhow, bail, ensure};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::oidc::{AUDIENCE, TestIssuer};

/// A public key an issuer signs tokens with.
#[derive(Clone, Debug)]
enum VerifyKey {
    /// ES256: the uncompressed P-256 point.
    Es256 { kid: Option<String>, point: Vec<u8> },
    /// RS256: modulus and exponent, big-endian.
    Rs256 {
        kid: Option<String>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl VerifyKey {
    fn kid(&self) -> Option<&str> {
        match self {
            Self::Es256 { kid, .. } | Self::Rs256 { kid, .. } => kid.as_deref(),
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Es256 { .. } => "ES256",
            Self::Rs256 { .. } => "RS256",
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Self::Es256 { point, .. } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok(),
            Self::Rs256 { n, e, .. } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
        }
    }
}

/// An issuer URL (the tokens' `iss`) and its signing keys.
#[derive(Clone, Debug)]
pub struct TrustedIssuer {
    pub url: String,
    keys: Vec<VerifyKey>,
}

impl TrustedIssuer {
    /// The test issuer of [`super::oidc`].
    pub fn test(issuer: &TestIssuer) -> Self {
        Self {
            url: issuer.url.clone(),
            keys: vec![VerifyKey::Es256 {
                kid: None,
                point: issuer.public_key(),
            }],
        }
    }

    /// An issuer from its JWKS document (`{"keys": [...]}`; RSA and P-256 keys are used).
    pub fn from_jwks(url: &str, jwks: &Value) -> anyhow::Result<Self> {
        let b64 = |k: &Value, f: &str| -> anyhow::Result<Vec<u8>> {
            let s = k[f].as_str().with_context(|| format!("JWK without {f}"))?;
            Ok(URL_SAFE_NO_PAD.decode(s.trim_end_matches('='))?)
        };
        let mut keys = Vec::new();
        for k in jwks["keys"].as_array().context("JWKS without keys")? {
            let kid = k["kid"].as_str().map(str::to_owned);
            match (k["kty"].as_str(), k["crv"].as_str()) {
                (Some("RSA"), _) => keys.push(VerifyKey::Rs256 {
                    kid,
                    n: strip_zeros(b64(k, "n")?),
                    e: strip_zeros(b64(k, "e")?),
                }),
                (Some("EC"), Some("P-256")) => {
                    let mut point = vec![4u8];
                    point.extend(b64(k, "x")?);
                    point.extend(b64(k, "y")?);
                    keys.push(VerifyKey::Es256 { kid, point });
                }
                _ => {}
            }
        }
        ensure!(!keys.is_empty(), "JWKS of {url} has no RSA or P-256 key");
        Ok(Self {
            url: url.to_owned(),
            keys,
        })
    }

    /// The issuer of a Kubernetes API server, with the keys it publishes for its
    /// ServiceAccount tokens (readable by any authenticated client).
    pub async fn kubernetes(client: &kube::Client) -> anyhow::Result<Self> {
        let get = |path: &'static str| async move {
            let req = http::Request::get(path).body(Vec::new())?;
            let text = client
                .request_text(req)
                .await
                .with_context(|| format!("GET {path} from the API server"))?;
            anyhow::Ok(serde_json::from_str::<Value>(&text)?)
        };
        let config = get("/.well-known/openid-configuration").await?;
        let issuer = config["issuer"]
            .as_str()
            .context("openid-configuration without issuer")?
            .to_owned();
        let jwks = get("/openid/v1/jwks").await?;
        Self::from_jwks(&issuer, &jwks)
    }
}

/// Leading zero bytes removed (JWK integers may carry them; the verifier refuses them).
fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.drain(..first);
    v
}

/// Checks `token`: signed by a key of the issuer named in its `iss`, for the sigstore audience,
/// not expired. Returns the claims.
pub fn verify_token(trusted: &[TrustedIssuer], token: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = token.split('.').collect();
    ensure!(parts.len() == 3, "not a JWT");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0])?)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1])?)?;
    let iss = claims["iss"].as_str().unwrap_or_default();
    let Some(issuer) = trusted.iter().find(|i| i.url == iss) else {
        bail!("unknown issuer {iss:?}");
    };
    let alg = header["alg"].as_str().unwrap_or_default();
    let kid = header["kid"].as_str();
    let sig = URL_SAFE_NO_PAD.decode(parts[2])?;
    let message = format!("{}.{}", parts[0], parts[1]);
    let verified = issuer
        .keys
        .iter()
        .filter(|k| k.alg() == alg)
        .filter(|k| kid.is_none() || k.kid().is_none() || k.kid() == kid)
        .any(|k| k.verify(message.as_bytes(), &sig));
    if !verified {
        return Err(anyhow!(
            "signature ({alg}) is not from a key of issuer {iss:?}"
        ));
    }
    let aud_ok = claims["aud"] == AUDIENCE
        || claims["aud"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == AUDIENCE));
    ensure!(aud_ok, "audience is not {AUDIENCE:?}");
    let exp = claims["exp"].as_i64().unwrap_or(0);
    ensure!(exp > chrono::Utc::now().timestamp(), "token expired");
    Ok(claims)
}
