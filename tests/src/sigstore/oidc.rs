//! A test OIDC issuer: mints ES256 identity tokens the Fulcio stand-in accepts. Tokens look
//! like projected Kubernetes service-account tokens (`sub: system:serviceaccount:<ns>:<sa>`).
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

/// The audience sigstore expects in identity tokens.
pub const AUDIENCE: &str = "sigstore";

pub struct TestIssuer {
    pub url: String,
    key: EcdsaKeyPair,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("url", &self.url)
            .finish()
    }
}

impl TestIssuer {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("generate OIDC key"))?;
        Ok(Self {
            url: url.to_owned(),
            key,
        })
    }

    /// Uncompressed public point (what the Fulcio stand-in verifies tokens with).
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// A token for `sub`, valid for `ttl_secs` (negative: already expired), audience `aud`.
    pub fn token(&self, sub: &str, aud: &str, ttl_secs: i64) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": "test"});
        let claims = json!({
            "iss": self.url, "sub": sub, "aud": [aud], "iat": now, "nbf": now - 5,
            "exp": now + ttl_secs,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("sign token"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }
}

/// The SAN Fulcio puts in certificates for a Kubernetes service-account subject.
pub fn kubernetes_identity(sub: &str) -> Option<String> {
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, sa) = rest.split_once(':')?;
    Some(format!(
        "https://kubernetes.io/namespaces/{ns}/serviceaccounts/{sa}"
    ))
}
