//! A small OCI distribution client on reqwest: scheme selection, authentication and error
//! mapping. Blob and manifest calls are in `blobs.rs`.
//!
//! Why not `oci-client`'s push/pull: they hold layers in memory, hash with a portable sha256,
//! cannot resume a chunk and hide the HTTP status needed for stable error reasons.
//!
//! - Scheme: HTTPS. With `insecure` (the `tls_verify=false` setting) certificates are not checked
//!   and plain HTTP is tried when the TLS handshake fails (docker's "insecure registry").
//! - Auth: the `/v2/` ping learns the challenge. `Basic` sends the credentials on every request
//!   (preemptively, so large bodies are not sent twice); `Bearer` fetches a token from the realm
//!   (with the credentials, or anonymously) for the scopes a request needs, cached per scope set.
//! - Errors: connect/timeout, 408, 429 and 5xx are transient; 401/403/404 map to the side's
//!   reason (`SourceUnavailable` or `DestinationRejected`); digest/size mismatches are
//!   `IntegrityError`. Messages name the registry and the user, never the password or token.
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::OnceCell;

use crate::config::OciCredentials;
use crate::transfer::error::chain;
use crate::transfer::{Reason, TransferError};

use super::auth::{Challenge, parse_challenge};

/// How to reach one registry.
#[derive(Clone, Debug, Default)]
pub(crate) struct Settings {
    /// Skip certificate verification and allow plain HTTP.
    pub(crate) insecure: bool,
    /// Extra trusted CA certificates (PEM), added to the system roots.
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) credentials: Option<OciCredentials>,
}

/// Request counters (used by tests and the performance notes).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) patch_requests: AtomicU64,
    pub(crate) uploaded_bytes: AtomicU64,
    pub(crate) blobs_uploaded: AtomicU64,
    pub(crate) blobs_existing: AtomicU64,
    pub(crate) blobs_mounted: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The bearer token service, when the registry uses one.
#[derive(Clone, Debug)]
struct TokenService {
    realm: String,
    service: Option<String>,
}

/// A client for one registry host.
pub(crate) struct Registry {
    http: reqwest::Client,
    /// `host[:port]` as contacted (`index.docker.io` for Docker Hub).
    host: String,
    settings: Settings,
    /// Reason used when the registry refuses something.
    side: Reason,
    /// `scheme://host` and the token service, learned by the first ping.
    ready: OnceCell<(String, Option<TokenService>)>,
    /// The registry asked for basic auth: send the credentials with every request.
    basic: AtomicBool,
    /// Bearer tokens by scope set.
    tokens: Mutex<HashMap<String, String>>,
    pub(crate) counters: Counters,
}

/// One request. Bodies are `Bytes`, so a request can be re-sent after an auth challenge.
pub(crate) struct Req<'a> {
    pub(crate) method: Method,
    /// Absolute URL, or a path starting with `/` (resolved against the registry).
    pub(crate) url: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    /// Token scopes (`repository:<name>:pull,push`).
    pub(crate) scopes: &'a [String],
}

impl<'a> Req<'a> {
    pub(crate) fn new(method: Method, url: impl Into<String>, scopes: &'a [String]) -> Self {
        Req {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
            scopes,
        }
    }

    pub(crate) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }
}

impl Registry {
    pub(crate) fn new(
        host: &str,
        settings: Settings,
        side: Reason,
    ) -> Result<Registry, TransferError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("model-sync/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                TransferError::invalid_input(format!("registry CA bundle is not valid PEM: {e}"))
            })?;
            if certs.is_empty() {
                return Err(TransferError::invalid_input(
                    "registry CA bundle contains no certificate",
                ));
            }
            b = b.tls_certs_merge(certs);
        }
        if settings.insecure {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let http = b.build().map_err(|e| {
            TransferError::new(
                Reason::Internal,
                format!("building the HTTP client: {}", chain(&e)),
            )
        })?;
        Ok(Registry {
            http,
            host: host.to_owned(),
            settings,
            side,
            ready: OnceCell::new(),
            basic: AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `scheme://host`, pinging `/v2/` on first use.
    pub(crate) async fn base(&self) -> Result<&str, TransferError> {
        Ok(&self.ready().await?.0)
    }

    async fn ready(&self) -> Result<&(String, Option<TokenService>), TransferError> {
        self.ready.get_or_try_init(|| self.ping()).await
    }

    /// Finds the scheme and the auth mode, and checks basic credentials early (a wrong password
    /// fails here with a clear message instead of on the first upload).
    async fn ping(&self) -> Result<(String, Option<TokenService>), TransferError> {
        let schemes: &[&str] = if self.settings.insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last = None;
        for scheme in schemes {
            let base = format!("{scheme}://{}", self.host);
            let resp = match self.http.get(format!("{base}/v2/")).send().await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(self.transport_error(&format!("connecting to {base}"), e));
                    continue;
                }
            };
            let tokens = match resp.status() {
                StatusCode::UNAUTHORIZED => match challenge_of(&resp) {
                    Some(Challenge::Basic) => {
                        self.basic.store(true, Ordering::Relaxed);
                        None
                    }
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        Some(TokenService { realm, service })
                    }
                    None => return Err(self.status_error("registry ping", resp).await),
                },
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    return Err(self.status_error("registry ping", resp).await);
                }
                _ => None,
            };
            if let (true, Some(c)) = (
                self.basic.load(Ordering::Relaxed),
                &self.settings.credentials,
            ) {
                let r = self
                    .http
                    .get(format!("{base}/v2/"))
                    .header(AUTHORIZATION, basic(c))
                    .send()
                    .await;
                let r = r.map_err(|e| self.transport_error("registry ping", e))?;
                if matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                    return Err(self.rejected_credentials(r.status()));
                }
            }
            return Ok((base, tokens));
        }
        Err(last.unwrap_or_else(|| {
            TransferError::new(self.side, format!("cannot reach {}", self.host))
        }))
    }

    fn rejected_credentials(&self, status: StatusCode) -> TransferError {
        let who = match &self.settings.credentials {
            Some(c) => format!("the credentials of user {:?} were rejected", c.username),
            None => "anonymous access was refused (credentials are required)".to_owned(),
        };
        TransferError::new(
            self.side,
            format!("registry {}: {who} (HTTP {})", self.host, status.as_u16()),
        )
    }

    /// Resolves a path or a `Location` header against the registry.
    pub(crate) async fn resolve(&self, url: &str) -> Result<String, TransferError> {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(url.to_owned());
        }
        Ok(format!("{}{url}", self.base().await?))
    }

    /// Whether `url` is on the registry itself (scheme, host and port). Credentials and tokens
    /// go only there: a `Location` the registry answers with may point anywhere (storage
    /// back-ends, or a hostile server), and reqwest drops them on cross-origin redirects too.
    async fn same_origin(&self, url: &str) -> Result<bool, TransferError> {
        let base = self.base().await?;
        Ok(same_origin(base, url))
    }

    /// Sends a request with authentication; answers a 401 once by (re-)authenticating.
    /// Returns the response whatever its status (callers map statuses to errors).
    pub(crate) async fn send(&self, req: Req<'_>) -> Result<Response, TransferError> {
        let (_, token_service) = self.ready().await?;
        let url = self.resolve(&req.url).await?;
        // Get the token first, so a large body is not sent just to learn that one is needed.
        if let Some(ts) = token_service
            && self.auth_header(req.scopes).is_none()
        {
            self.fetch_token(&ts.realm, ts.service.as_deref(), req.scopes, req.scopes)
                .await?;
        }
        let mut challenged = false;
        loop {
            let mut rb = self
                .http
                .request(req.method.clone(), &url)
                .headers(req.headers.clone());
            if let Some(auth) = self.auth_header(req.scopes)
                && self.same_origin(&url).await?
            {
                rb = rb.header(AUTHORIZATION, auth);
            }
            if let Some(body) = &req.body {
                rb = rb.body(body.clone());
            }
            let what = format!("{} {}", req.method, redact_query(&url));
            let resp = rb
                .send()
                .await
                .map_err(|e| self.transport_error(&what, e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || challenged {
                return Ok(resp);
            }
            challenged = true;
            match challenge_of(&resp) {
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let mut scopes: Vec<String> = req.scopes.to_vec();
                    scopes.extend(scope);
                    self.fetch_token(&realm, service.as_deref(), req.scopes, &scopes)
                        .await?;
                }
                Some(Challenge::Basic) if self.settings.credentials.is_some() => {
                    if self.basic.swap(true, Ordering::Relaxed) {
                        return Err(self.rejected_credentials(resp.status()));
                    }
                }
                _ => return Ok(resp),
            }
        }
    }

    /// Sends a request whose body is a one-shot stream. It cannot be re-sent after a challenge,
    /// so the credentials or the token are made ready first; a 401 anyway (a token that expired
    /// mid-upload) drops the cached token and is returned as a transient error, so that a retry
    /// authenticates again.
    pub(crate) async fn send_streaming(
        &self,
        req: Req<'_>,
        body: reqwest::Body,
    ) -> Result<Response, TransferError> {
        let (_, token_service) = self.ready().await?;
        let url = self.resolve(&req.url).await?;
        if let Some(ts) = token_service
            && self.auth_header(req.scopes).is_none()
        {
            self.fetch_token(&ts.realm, ts.service.as_deref(), req.scopes, req.scopes)
                .await?;
        }
        let mut rb = self
            .http
            .request(req.method.clone(), &url)
            .headers(req.headers.clone());
        if let Some(auth) = self.auth_header(req.scopes)
            && self.same_origin(&url).await?
        {
            rb = rb.header(AUTHORIZATION, auth);
        }
        let what = format!("{} {}", req.method, redact_query(&url));
        let resp = rb
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&what, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&scope_key(req.scopes));
            return Err(TransferError::transient(
                self.side,
                format!(
                    "{what}: registry {} asked to authenticate again (HTTP 401)",
                    self.host
                ),
            ));
        }
        Ok(resp)
    }

    fn auth_header(&self, scopes: &[String]) -> Option<String> {
        if self.basic.load(Ordering::Relaxed) {
            return self.settings.credentials.as_ref().map(basic);
        }
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(&scope_key(scopes))
            .map(|t| format!("Bearer {t}"))
    }

    /// Gets a bearer token for `scopes` from `realm` and caches it under `key_scopes`.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        key_scopes: &[String],
        scopes: &[String],
    ) -> Result<(), TransferError> {
        self.check_realm(realm).await?;
        let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
        if let Some(s) = service {
            query.push(("service", s));
        }
        let mut rb = self.http.get(realm).query(&query);
        if let Some(c) = &self.settings.credentials {
            rb = rb.header(AUTHORIZATION, basic(c));
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| self.transport_error("token request", e))?;
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(self.rejected_credentials(resp.status()));
        }
        if !resp.status().is_success() {
            return Err(self.status_error("token request", resp).await);
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let bytes = crate::net::read_body(resp, crate::net::TOKEN_BODY_BYTES)
            .await
            .map_err(|e| {
                TransferError::new(self.side, format!("token response from {realm}: {e}"))
            })?;
        let body: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
            TransferError::new(
                self.side,
                format!("token response from {realm}: not a token document ({e})"),
            )
        })?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                TransferError::new(
                    self.side,
                    format!("token response from {realm} holds no token"),
                )
            })?;
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope_key(key_scopes), token);
        Ok(())
    }

    /// A token realm must be HTTPS, or plain HTTP on the registry's own host when the registry
    /// itself is reached over plain HTTP (`tls_verify=false`): the credentials are sent there.
    async fn check_realm(&self, realm: &str) -> Result<(), TransferError> {
        let refuse = |why: &str| {
            TransferError::new(
                self.side,
                format!(
                    "registry {}: token realm {realm:?} refused: {why}",
                    self.host
                ),
            )
        };
        let url = url::Url::parse(realm).map_err(|_| refuse("not an absolute URL"))?;
        match url.scheme() {
            "https" => Ok(()),
            "http" => {
                let base = url::Url::parse(self.base().await?)
                    .map_err(|_| refuse("the registry URL does not parse"))?;
                if base.scheme() == "http" && base.host_str() == url.host_str() {
                    Ok(())
                } else {
                    Err(refuse(
                        "plain http to another host (or from an https registry) would send the credentials in clear",
                    ))
                }
            }
            _ => Err(refuse(
                "only https (or http to the registry's own host) is allowed",
            )),
        }
    }

    /// A transport failure: transient, except certificate problems (retrying cannot fix them).
    pub(crate) fn transport_error(&self, what: &str, e: reqwest::Error) -> TransferError {
        // The URL is in `what` already (upload URLs carry a long opaque `_state`).
        let msg = format!("{what}: {}", chain(&e.without_url()));
        let tls = msg.contains("certificate") || msg.contains("UnknownIssuer");
        if tls {
            TransferError::new(
                self.side,
                format!("{msg} (TLS verification failed; trust the registry CA)"),
            )
        } else {
            TransferError::transient(self.side, msg)
        }
    }

    /// Maps a non-success response to an error with the registry's own error text.
    pub(crate) async fn status_error(&self, what: &str, resp: Response) -> TransferError {
        let status = resp.status();
        let text = crate::net::error_text(resp).await;
        let detail = registry_error_text(&text);
        let msg = format!(
            "{what}: registry {} answered HTTP {}{detail}",
            self.host,
            status.as_u16()
        );
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return self.rejected_credentials(status).context(what);
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            return TransferError::transient(self.side, msg);
        }
        if detail.contains("DIGEST_INVALID") || detail.contains("SIZE_INVALID") {
            return TransferError::new(Reason::IntegrityError, msg);
        }
        TransferError::new(self.side, msg)
    }

    /// Reason used for refusals by this registry.
    pub(crate) fn side(&self) -> Reason {
        self.side
    }
}

/// `": CODE message; ..."` from a distribution error body (truncated), or empty.
fn registry_error_text(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let text = match serde_json::from_str::<Errors>(body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.code.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body.trim().chars().take(300).collect(),
    };
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}

fn challenge_of(resp: &Response) -> Option<Challenge> {
    resp.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_challenge)
}

fn basic(c: &OciCredentials) -> String {
    let raw = format!("{}:{}", c.username, c.password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn scope_key(scopes: &[String]) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    s.dedup();
    s.join(" ")
}

/// Whether `url` has the scheme, host and port of `base` (`scheme://host[:port]`).
fn same_origin(base: &str, url: &str) -> bool {
    match (url::Url::parse(base), url::Url::parse(url)) {
        (Ok(b), Ok(u)) => {
            b.scheme() == u.scheme()
                && b.host_str() == u.host_str()
                && b.port_or_known_default() == u.port_or_known_default()
        }
        _ => false,
    }
}

/// Upload URLs carry an opaque `_state` query; keep messages short and free of it.
fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// `repository:<repo>:<actions>`.
pub(crate) fn scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}
