//! `spec.signing`: sigstore signatures over what a transfer publishes, in one of two modes.
//!
//! - `keyless`: the Job's ServiceAccount token (projected with the sigstore audience) is
//!   exchanged at Fulcio for a short-lived certificate naming the ServiceAccount; the signature
//!   is logged in Rekor.
//! - `keySecretRef`: a PEM ECDSA P-256 private key from a Secret (air-gapped clusters, no
//!   sigstore service contacted).

use crate::common::{ConfigMapKeyValue, SecretKeyValue};
use crate::validation::ValidationError;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Token audience when `keyless.audience` is unset (what Fulcio expects by default).
pub const DEFAULT_AUDIENCE: &str = "sigstore";
/// Shortest token lifetime the API server issues for projected ServiceAccount tokens.
pub const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// Longest token lifetime a projected ServiceAccount token may request (2^32 seconds).
pub const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 1 << 32;

// The CEL check of the URL fields; `validate_url` is its Rust mirror.
const URL_RULE: &str = "self.matches('^https?://[^/?#]+')";
const URL_MESSAGE: &str = "must be an http:// or https:// URL with a host";
// The CEL message of the `tufRootConfigMapRef` rule, and the Rust check's.
const TUF_ROOT_MESSAGE: &str =
    "tufRootConfigMapRef requires tufURL (it pins the initial root of that TUF repository)";

/// Sigstore signing of the transferred model: exactly one of `keyless` or `keySecretRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("has(self.keyless) != has(self.keySecretRef)")
        .message("exactly one of keyless or keySecretRef must be set")
)]
#[serde(rename_all = "camelCase")]
pub struct TransferSigning {
    /// Keyless signing with the Job's ServiceAccount identity: a projected ServiceAccount token
    /// (audience `audience`) is exchanged at Fulcio for a short-lived certificate whose
    /// identity is `https://kubernetes.io/namespaces/<namespace>/serviceaccounts/<account>`,
    /// issued for the cluster's ServiceAccount issuer (Fulcio must be configured to trust it);
    /// the signature is recorded in Rekor. Verify with that identity and issuer, e.g.
    /// `model_signing verify sigstore --identity ... --identity_provider ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessSigning>,
    /// Secret key holding an unencrypted PEM ECDSA P-256 private key (PKCS#8 or SEC1), in the
    /// ModelTransfer's namespace, mounted into the Job as a file. No sigstore service is
    /// contacted; verify with the matching public key, e.g. `model_signing verify key`. The
    /// transfer waits (phase Failed, reason InvalidConfiguration, re-checked every 10 seconds)
    /// until the Secret and key exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyValue>,
}

/// The sigstore services of keyless signing and the identity token the Job presents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("!has(self.tufRootConfigMapRef) || has(self.tufURL)")
        .message(TUF_ROOT_MESSAGE)
)]
#[serde(rename_all = "camelCase")]
pub struct KeylessSigning {
    /// Fulcio (certificate authority) base URL, e.g. `https://fulcio.sigstore.example`
    /// (`SIGSTORE_FULCIO_URL` of the Job).
    #[serde(rename = "fulcioURL")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(URL_RULE).message(URL_MESSAGE))]
    pub fulcio_url: String,
    /// Rekor (transparency log) base URL, e.g. `https://rekor.sigstore.example`
    /// (`SIGSTORE_REKOR_URL` of the Job).
    #[serde(rename = "rekorURL")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(URL_RULE).message(URL_MESSAGE))]
    pub rekor_url: String,
    /// TUF repository URL of the sigstore instance's trusted root (`SIGSTORE_TUF_URL` of the
    /// Job). When set, model-sync fetches `trusted_root.json` through TUF and checks Fulcio's
    /// certificate and Rekor's entry against it before publishing; when unset, they are not
    /// checked (verifiers still check). TUF starts from `tufRootConfigMapRef` when set, else
    /// from the repository's own `root.json`, trusted on first use (the Job logs a warning).
    #[serde(default, rename = "tufURL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(URL_RULE).message(URL_MESSAGE))]
    pub tuf_url: Option<String>,
    /// ConfigMap key (in the ModelTransfer's namespace) holding the initial `root.json` of the
    /// `tufURL` repository, to pin instead of trusting the repository's `root.json` on first
    /// use. Any root version works: newer roots are followed, each signed by its
    /// predecessor's keys. Mounted read-only into the Job and named by
    /// `MODEL_SYNC_SIGNING_TUF_ROOT_PATH`. Requires `tufURL`. The transfer waits (phase Failed,
    /// reason InvalidConfiguration, re-checked every 10 seconds) until the ConfigMap and key
    /// exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuf_root_config_map_ref: Option<ConfigMapKeyValue>,
    /// Timestamp authority URL (`SIGSTORE_TSA_URL` of the Job). Accepted and passed on;
    /// model-sync does not request timestamps yet (Rekor's signed entry timestamp is the
    /// signing time).
    #[serde(default, rename = "tsaURL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(URL_RULE).message(URL_MESSAGE))]
    pub tsa_url: Option<String>,
    /// Audience of the projected ServiceAccount token presented to Fulcio; `sigstore` when
    /// unset (the audience Fulcio expects unless configured otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub audience: Option<String>,
    /// Lifetime of the projected ServiceAccount token, 600 to 4294967296 seconds. The kubelet
    /// replaces the token file before the token expires (once it is older than 80% of this
    /// lifetime or 24 hours), and model-sync reads the file again right before asking Fulcio
    /// for a certificate (after the copy), so the token needs to be valid when signing
    /// starts, not for the whole transfer. When unset: `spec.job.activeDeadlineSeconds` plus
    /// 600 (at least 600), at most 3600 (one hour, also without a deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 600, max = 4_294_967_296_i64))]
    pub expiration_seconds: Option<i64>,
}

impl TransferSigning {
    /// Checks the rules the CRD expresses in CEL and in the schema; `at` is this object's path.
    pub(crate) fn validate(&self, at: &str, errors: &mut Vec<ValidationError>) {
        match (&self.keyless, &self.key_secret_ref) {
            (Some(_), Some(_)) => errors.push(ValidationError::new(
                at,
                "exactly one of keyless or keySecretRef must be set, found both",
            )),
            (None, None) => errors.push(ValidationError::new(
                at,
                "exactly one of keyless or keySecretRef must be set, found none",
            )),
            _ => {}
        }
        if let Some(k) = &self.keyless {
            k.validate(&format!("{at}.keyless"), errors);
        }
        if let Some(r) = &self.key_secret_ref {
            for (field, value) in [("name", &r.name), ("key", &r.key)] {
                if value.is_empty() {
                    errors.push(ValidationError::new(
                        format!("{at}.keySecretRef.{field}"),
                        "must not be empty",
                    ));
                }
            }
        }
    }
}

impl KeylessSigning {
    /// The token audience, `sigstore` when unset.
    pub fn audience(&self) -> &str {
        self.audience
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or(DEFAULT_AUDIENCE)
    }

    fn validate(&self, at: &str, errors: &mut Vec<ValidationError>) {
        validate_url(&format!("{at}.fulcioURL"), &self.fulcio_url, errors);
        validate_url(&format!("{at}.rekorURL"), &self.rekor_url, errors);
        if let Some(u) = &self.tuf_url {
            validate_url(&format!("{at}.tufURL"), u, errors);
        }
        if let Some(u) = &self.tsa_url {
            validate_url(&format!("{at}.tsaURL"), u, errors);
        }
        if let Some(r) = &self.tuf_root_config_map_ref {
            let field = format!("{at}.tufRootConfigMapRef");
            if self.tuf_url.is_none() {
                errors.push(ValidationError::new(
                    &field,
                    "requires tufURL (it pins the initial root of that TUF repository)",
                ));
            }
            for (part, value) in [("name", &r.name), ("key", &r.key)] {
                if value.is_empty() {
                    errors.push(ValidationError::new(
                        format!("{field}.{part}"),
                        "must not be empty",
                    ));
                }
            }
        }
        if self.audience.as_deref() == Some("") {
            errors.push(ValidationError::new(
                format!("{at}.audience"),
                "must not be empty (leave it unset for the default \"sigstore\")",
            ));
        }
        if let Some(s) = self.expiration_seconds
            && !(MIN_TOKEN_EXPIRATION_SECONDS..=MAX_TOKEN_EXPIRATION_SECONDS).contains(&s)
        {
            errors.push(ValidationError::new(
                format!("{at}.expirationSeconds"),
                format!(
                    "must be between {MIN_TOKEN_EXPIRATION_SECONDS} and \
                     {MAX_TOKEN_EXPIRATION_SECONDS} seconds, got {s}"
                ),
            ));
        }
    }
}

/// Mirror of [`URL_RULE`]: `http(s)://` followed by a host.
fn validate_url(at: &str, value: &str, errors: &mut Vec<ValidationError>) {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with(['/', '?', '#']));
    if !host_ok {
        errors.push(ValidationError::new(
            at,
            format!("{URL_MESSAGE}, got {value:?}"),
        ));
    }
}
