//! Client configuration.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};

/// The two URL prefixes under which servers publish the same resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `/api/model_registry/v1`, served by current servers.
    V1,
    /// `/api/model_registry/v1alpha3`, the only prefix of older servers (deprecated on newer ones).
    V1Alpha3,
}

impl ApiVersion {
    /// The URL path prefix, without a trailing slash.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::V1 => "/api/model_registry/v1",
            Self::V1Alpha3 => "/api/model_registry/v1alpha3",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// A bearer token. `Debug` and `Display` never show the value, so the token cannot leak through
/// `{:?}` of a config or through an error message.
///
/// A token from a file ([`BearerToken::from_file`]) is read again before every request: the
/// kubelet rewrites a projected ServiceAccount token before it expires, so a short-lived token
/// stays good for a transfer that outlasts it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    value: String,
    file: Option<PathBuf>,
}

/// Upper bound of a token file read per request (a ServiceAccount token is about 1 KiB).
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

impl BearerToken {
    /// Wraps a token; surrounding whitespace (a trailing newline from a mounted file) is dropped.
    pub fn new(token: impl Into<String>) -> Self {
        let token: String = token.into();
        Self {
            value: token.trim().to_owned(),
            file: None,
        }
    }

    /// A token kept in `path`, whose content at start was `initial`. Each request sends what the
    /// file holds then; while it cannot be read (or is empty), `initial` is sent.
    pub fn from_file(path: impl Into<PathBuf>, initial: impl Into<String>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::new(initial)
        }
    }

    /// The token as given or as first read, for scrubbing and tests.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The token to send now: the file's current content for a file token, else the value.
    pub fn current(&self) -> String {
        self.file
            .as_deref()
            .and_then(read_token_file)
            .unwrap_or_else(|| self.value.clone())
    }
}

fn read_token_file(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_TOKEN_FILE_BYTES)
        .read_to_string(&mut s)
        .ok()?;
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

impl fmt::Display for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Bounded exponential backoff for transient failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for every further attempt.
    pub initial_backoff: Duration,
    /// Upper bound of a single delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Delay before attempt number `attempt` (1-based; attempt 1 has no delay).
    pub fn backoff(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(attempt.saturating_sub(2).min(20));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Which API prefix to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApiSelection {
    /// Probe once: `v1` when served, else `v1alpha3`.
    #[default]
    Negotiate,
    /// Use this prefix without probing.
    Force(ApiVersion),
}

/// Everything needed to build a [`crate::Client`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `scheme://host[:port][/path-prefix]`; no credentials, query or fragment.
    pub base_url: Url,
    /// Sent as `Authorization: Bearer ...` when set.
    pub token: Option<BearerToken>,
    /// Extra trust anchors (PEM, one or more certificates) added to the platform roots.
    pub custom_ca_pem: Option<Vec<u8>>,
    /// Trust only `custom_ca_pem`, not the platform roots (hermetic tests, private PKI).
    pub custom_ca_only: bool,
    /// Disables certificate verification. Off unless explicitly requested.
    pub insecure_skip_verify: bool,
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    pub api: ApiSelection,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// Largest response body read (success or error). Bodies are read in chunks and the read
    /// stops at this size, so the caller's memory is bounded whatever the server sends.
    pub max_body_bytes: usize,
}

/// Default [`ClientConfig::max_body_bytes`]: a page of 100 entities with generous custom
/// properties is well under 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

impl ClientConfig {
    /// A config with defaults for everything but the URL, which is validated here.
    pub fn new(base_url: &str) -> Result<Self> {
        Ok(Self {
            base_url: parse_base_url(base_url)?,
            token: None,
            custom_ca_pem: None,
            custom_ca_only: false,
            insecure_skip_verify: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            api: ApiSelection::Negotiate,
            retry: RetryPolicy::default(),
            user_agent: concat!("registry-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        })
    }

    /// Sets the bearer token.
    pub fn with_token(mut self, token: BearerToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Adds trust anchors from a PEM bundle.
    pub fn with_custom_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.custom_ca_pem = Some(pem.into());
        self
    }

    /// Forces an API prefix instead of negotiating.
    pub fn with_api_version(mut self, version: ApiVersion) -> Self {
        self.api = ApiSelection::Force(version);
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// Validates a base URL. Credentials in the URL are refused (they would end up in logs and
/// error messages); the message deliberately does not echo the URL for that reason.
pub fn parse_base_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw.trim()).map_err(|e| Error::InvalidConfig {
        message: format!("base URL is not a valid URL ({e}); expected scheme://host[:port]"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidConfig {
            message: format!(
                "base URL scheme {:?} is not supported; expected http or https",
                url.scheme()
            ),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidConfig {
            message: "base URL must not contain credentials; pass a bearer token instead".into(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidConfig {
            message: "base URL has no host".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidConfig {
            message: "base URL must not have a query or fragment".into(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints() {
        let t = BearerToken::new("s3cr3t-token\n");
        assert_eq!(t.expose(), "s3cr3t-token");
        assert!(!format!("{t:?} {t}").contains("s3cr3t"));
        let cfg = ClientConfig::new("https://mr.example:8443")
            .unwrap()
            .with_token(t);
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }

    #[test]
    fn base_url_validation() {
        assert!(parse_base_url("http://localhost:8080").is_ok());
        assert!(parse_base_url("https://mr.example/prefix").is_ok());
        for bad in [
            "ftp://x",
            "localhost:8080",
            "https://user:pw@host",
            "https://host/?q=1",
            "not a url",
        ] {
            let e = parse_base_url(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidConfig { .. }), "{bad}");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        assert_eq!(p.backoff(1), Duration::ZERO);
        assert_eq!(p.backoff(2), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(350));
        assert_eq!(p.backoff(40), Duration::from_millis(350));
    }

    #[test]
    fn prefixes() {
        assert_eq!(ApiVersion::V1.prefix(), "/api/model_registry/v1");
        assert_eq!(
            ApiVersion::V1Alpha3.prefix(),
            "/api/model_registry/v1alpha3"
        );
    }
}
