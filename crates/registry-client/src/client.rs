//! HTTP plumbing: client construction, API prefix negotiation, retries and status mapping.
//! The typed operations live in `ops.rs`.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use url::Url;

use crate::config::{ApiSelection, ApiVersion, BearerToken, ClientConfig, RetryPolicy};
use crate::error::{Error, Result};
use crate::models::ApiErrorBody;

/// Longest server message kept in an error (bodies of misconfigured proxies can be whole pages).
const MAX_MESSAGE_CHARS: usize = 400;

/// A cheap-to-clone handle on one registry server.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base_url: Url,
    token: Option<BearerToken>,
    api: ApiSelection,
    retry: RetryPolicy,
    max_body_bytes: usize,
    negotiated: OnceCell<ApiVersion>,
}

/// One logical request; rebuilt for every attempt.
pub(crate) struct Request<'a> {
    pub method: Method,
    pub segments: &'a [&'a str],
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// Human description of the target ("model artifact 12") for not-found messages.
    pub what: String,
}

impl<'a> Request<'a> {
    pub fn get(segments: &'a [&'a str], what: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            segments,
            query: Vec::new(),
            body: None,
            what: what.into(),
        }
    }

    pub fn with_query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }

    pub fn with_json<B: Serialize>(
        method: Method,
        segments: &'a [&'a str],
        what: impl Into<String>,
        body: &B,
    ) -> Result<Self> {
        let what = what.into();
        let body = serde_json::to_vec(body).map_err(|source| Error::Decode {
            context: format!("encoding the request body for {what}"),
            source,
        })?;
        Ok(Self {
            method,
            segments,
            query: Vec::new(),
            body: Some(body),
            what,
        })
    }
}

/// Outcome of one probe of an API prefix.
enum Probe {
    Served,
    NotServed,
}

impl Client {
    /// Builds the HTTP client. Does no I/O; the API prefix is negotiated on first use.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // The API never redirects; following one would send the token where a server says.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone());
        if let Some(pem) = &config.custom_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Tls {
                message: format!("custom CA bundle is not valid PEM: {e}"),
                source: None,
            })?;
            if certs.is_empty() {
                return Err(Error::Tls {
                    message: "custom CA bundle contains no certificate".into(),
                    source: None,
                });
            }
            builder = if config.custom_ca_only {
                builder.tls_certs_only(certs)
            } else {
                builder.tls_certs_merge(certs)
            };
        } else if config.custom_ca_only {
            return Err(Error::InvalidConfig {
                message: "custom_ca_only is set but no custom CA was given".into(),
            });
        }
        if config.insecure_skip_verify {
            tracing::warn!("TLS certificate verification of the Model Registry is disabled");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| Error::Tls {
            message: format!("building the HTTP client failed: {e}"),
            source: Some(e),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url,
                token: config.token,
                api: config.api,
                retry: config.retry,
                max_body_bytes: config.max_body_bytes,
                negotiated: OnceCell::new(),
            }),
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The API prefix in use, probing the server the first time when negotiating.
    ///
    /// A failed probe is not cached, so a later call tries again.
    pub async fn api_version(&self) -> Result<ApiVersion> {
        match self.inner.api {
            ApiSelection::Force(v) => Ok(v),
            ApiSelection::Negotiate => self
                .inner
                .negotiated
                .get_or_try_init(|| self.negotiate())
                .await
                .copied(),
        }
    }

    async fn negotiate(&self) -> Result<ApiVersion> {
        for version in [ApiVersion::V1, ApiVersion::V1Alpha3] {
            match self.probe(version).await? {
                Probe::Served => {
                    tracing::debug!(
                        prefix = version.prefix(),
                        "Model Registry API prefix selected"
                    );
                    return Ok(version);
                }
                Probe::NotServed => {
                    tracing::debug!(prefix = version.prefix(), "API prefix not served")
                }
            }
        }
        Err(Error::NotFound {
            what: format!(
                "Model Registry API at {} (neither {} nor {} is served)",
                self.inner.base_url,
                ApiVersion::V1.prefix(),
                ApiVersion::V1Alpha3.prefix()
            ),
        })
    }

    /// `GET {prefix}/registered_models?pageSize=1`: 2xx means served; 401/403 mean served (or
    /// at least guarded) but refused, which is reported as such rather than guessed around.
    ///
    /// Any 404 means "not served", whatever the body: the list operation declares no 404 in
    /// the OpenAPI document, so a 404 can only come from a router that does not know the
    /// prefix. Real servers answer that with plain text, but stand-ins and proxies may wrap it
    /// in an API error body, so the body is not a reliable signal.
    async fn probe(&self, version: ApiVersion) -> Result<Probe> {
        let url = self.url(version, &["registered_models"])?;
        let query = [("pageSize", "1".to_owned())];
        let what = format!("GET {}", url.path());
        let (status, body) = self
            .with_retries(&Method::GET, &what, || {
                self.authorize(self.inner.http.get(url.clone()).query(&query))
            })
            .await?;
        if status.is_success() {
            return Ok(Probe::Served);
        }
        if status == StatusCode::NOT_FOUND {
            return Ok(Probe::NotServed);
        }
        Err(self.status_error(status, &body, &what))
    }

    /// Sends `req` under the negotiated prefix and decodes a success body.
    pub(crate) async fn send<T: DeserializeOwned>(&self, req: Request<'_>) -> Result<T> {
        let (status, body, context) = self.execute(&req).await?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|source| Error::Decode { context, source });
        }
        Err(self.status_error(status, &body, &req.what))
    }

    /// Like [`Self::send`] but a 404 is `Ok(None)` (the `find` endpoints answer "no match"
    /// with 404).
    pub(crate) async fn send_optional<T: DeserializeOwned>(
        &self,
        req: Request<'_>,
    ) -> Result<Option<T>> {
        match self.send(req).await {
            Ok(v) => Ok(Some(v)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn execute(&self, req: &Request<'_>) -> Result<(StatusCode, Vec<u8>, String)> {
        let version = self.api_version().await?;
        let url = self.url(version, req.segments)?;
        let context = format!("{} {}", req.method, url.path());
        let (status, body) = self
            .with_retries(&req.method, &context, || {
                let mut rb = self
                    .inner
                    .http
                    .request(req.method.clone(), url.clone())
                    .header(reqwest::header::ACCEPT, "application/json");
                if !req.query.is_empty() {
                    rb = rb.query(&req.query);
                }
                if let Some(body) = &req.body {
                    rb = rb
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                }
                self.authorize(rb)
            })
            .await?;
        Ok((status, body, context))
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.inner.token {
            Some(t) => rb.bearer_auth(t.current()),
            None => rb,
        }
    }

    /// Runs one request with bounded exponential backoff.
    ///
    /// What is retried depends on whether repeating the request is safe: GET and PATCH (which
    /// sets absolute values) are retried on connect errors, timeouts and 502/503/504. POST is
    /// retried only when the server cannot have acted on it: connect errors and 502/503. A 504 or
    /// a timeout on POST may hide a created entity, and a blind retry would turn that into a
    /// confusing 409.
    async fn with_retries<F>(
        &self,
        method: &Method,
        context: &str,
        build: F,
    ) -> Result<(StatusCode, Vec<u8>)>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let policy = &self.inner.retry;
        let max = policy.max_attempts.max(1);
        let idempotent = *method != Method::POST;
        let mut attempt = 1;
        loop {
            let outcome = match build().send().await {
                Ok(resp) => {
                    let status = resp.status();
                    read_body(resp, self.inner.max_body_bytes, context)
                        .await
                        .map(|b| (status, b))
                }
                Err(e) => Err(Error::from_reqwest(context.to_owned(), e)),
            };
            let retryable = match &outcome {
                Ok((status, _)) => match status.as_u16() {
                    502 | 503 => true,
                    504 => idempotent,
                    _ => false,
                },
                Err(Error::Transport { source, .. }) => {
                    source.is_connect() || (idempotent && source.is_timeout())
                }
                Err(_) => false,
            };
            if !retryable || attempt >= max {
                return outcome;
            }
            let delay = policy.backoff(attempt + 1);
            match &outcome {
                Ok((status, _)) => tracing::warn!(
                    %context, status = status.as_u16(), attempt, ?delay,
                    "transient registry response, retrying"
                ),
                Err(e) => tracing::warn!(
                    %context, error = %e, attempt, ?delay,
                    "transient registry transport error, retrying"
                ),
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn status_error(&self, status: StatusCode, body: &[u8], what: &str) -> Error {
        Error::from_status(status, what, self.message_of(body))
    }

    /// The server's message: the `message` of an API error body, else the start of the body,
    /// with the token scrubbed in case anything echoed it.
    fn message_of(&self, body: &[u8]) -> String {
        let raw = match serde_json::from_slice::<ApiErrorBody>(body) {
            Ok(e) => e.message,
            Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
        };
        let mut msg: String = raw.chars().take(MAX_MESSAGE_CHARS).collect();
        if raw.chars().count() > MAX_MESSAGE_CHARS {
            msg.push_str("...");
        }
        match &self.inner.token {
            Some(t) => [t.expose().to_owned(), t.current()]
                .iter()
                .filter(|v| !v.is_empty())
                .fold(msg, |m, v| m.replace(v.as_str(), "***")),
            None => msg,
        }
    }

    fn url(&self, version: ApiVersion, segments: &[&str]) -> Result<Url> {
        let mut url = self.inner.base_url.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| Error::InvalidConfig {
                message: "base URL cannot carry a path".into(),
            })?;
            path.pop_if_empty();
            for s in version.prefix().trim_start_matches('/').split('/') {
                path.push(s);
            }
            for s in segments {
                path.push(s);
            }
        }
        Ok(url)
    }
}

/// Reads a whole body, refusing more than `limit` bytes: a declared length over the limit is
/// refused before reading, and a chunked or endless body is cut off at the limit.
async fn read_body(mut resp: reqwest::Response, limit: usize, context: &str) -> Result<Vec<u8>> {
    let too_large = || Error::TooLarge {
        context: context.to_owned(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::from_reqwest(context.to_owned(), e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
