//! HTTP plumbing for the Hub: one client that never follows redirects by itself, so that this
//! module decides where the token goes; the Hub's error headers turned into clear errors; every
//! body read bounded.
//!
//! Redirects (followed here, at most [`MAX_REDIRECTS`]): the token is sent only to the
//! endpoint's own origin (scheme, host, port). A resolve of an LFS file is answered by the Hub
//! with a redirect to a CDN's signed URL: that hop, and any after it, go without the token, as
//! the Python client does. A redirect from https to http is refused.
//!
//! Errors: the Hub names its refusals in `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
//! `EntryNotFound`, `GatedRepo`) and `X-Error-Message`; 401 on a repository without a code means
//! "not found or private". 429 and 5xx are transient (retried), the rest are not.
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::config::HubSettings;
use crate::transfer::{ByteStream, Reason, TransferError};

/// Redirect hops followed for one request (the Python client allows 20; the Hub uses one or two).
pub(crate) const MAX_REDIRECTS: usize = 10;
/// Time allowed for one metadata request (revision, tree page, probe), start to end of body.
const METADATA_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `X-Error-Message` quoted in an error.
const MAX_ERROR_TEXT: usize = 300;

/// `(scheme, host, port)`, with the scheme's default port when none is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin(String, String, Option<u16>);

pub(crate) fn origin(url: &Url) -> Origin {
    Origin(
        url.scheme().to_owned(),
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default(),
    )
}

/// A URL as shown in messages: no query (signed CDN URLs carry their signature there).
pub(crate) fn shown(url: &Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(url.path());
    if url.query().is_some() {
        s.push_str("?…");
    }
    s
}

/// Percent-encodes `s` the way Python's `urllib.parse.quote(s, safe)` does: letters, digits,
/// `_.-~` and the characters in `safe` stay, every other UTF-8 byte becomes `%XX`.
pub(crate) fn quote(s: &str, safe: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = b as char;
        if b.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '~') || safe.contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The client and what it needs to decide where credentials go.
pub(crate) struct Hub {
    client: reqwest::Client,
    pub settings: HubSettings,
    home: Origin,
}

impl Hub {
    pub fn new(settings: HubSettings, ca_pem: Option<&[u8]>) -> Result<Hub, TransferError> {
        let internal = |e: reqwest::Error| {
            TransferError::new(
                Reason::Internal,
                format!("http client: {}", e.without_url()),
            )
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                TransferError::invalid_input(format!("SSL_CERT_FILE: {}", e.without_url()))
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        if settings.token.is_some() && settings.endpoint.scheme() == "http" {
            tracing::warn!(
                endpoint = %shown(&settings.endpoint),
                "HF_TOKEN is sent to a plain-http Hub endpoint; use https outside a test set-up"
            );
        }
        Ok(Hub {
            client: builder.build().map_err(internal)?,
            home: origin(&settings.endpoint),
            settings,
        })
    }

    /// A URL under the endpoint (`path` starts with `/`).
    pub fn url(&self, path: &str) -> Result<Url, TransferError> {
        let raw = self.settings.url(path);
        Url::parse(&raw).map_err(|e| {
            TransferError::invalid_input(format!("cannot build a Hub URL from {raw:?}: {e}"))
        })
    }

    /// Whether `url` is on the endpoint's origin (the only place the token goes).
    pub fn is_home(&self, url: &Url) -> bool {
        origin(url) == self.home
    }

    /// One request, no redirect handling. The token goes along only to the endpoint's origin.
    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, TransferError> {
        let mut headers = headers.clone();
        if self.is_home(url)
            && let Some(t) = &self.settings.token
        {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                TransferError::invalid_input("HF_TOKEN is not a valid HTTP header value")
            })?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        let mut req = self.client.request(method, url.clone()).headers(headers);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        req.send().await.map_err(|e| {
            let transient = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
            TransferError {
                reason: Reason::SourceUnavailable,
                message: format!(
                    "{}: {}",
                    shown(url),
                    crate::transfer::error::chain(&e.without_url())
                ),
                transient,
            }
        })
    }

    /// Sends `method url`, following redirects (see the module documentation). With
    /// `stay_home`, a redirect that leaves the endpoint's origin is not followed: its response
    /// is returned (the Hub's answer about an LFS file is that redirect itself).
    /// Error statuses become errors named after `what`.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &HeaderMap,
        stay_home: bool,
        what: &str,
    ) -> Result<reqwest::Response, TransferError> {
        let timeout = (method != Method::GET || stay_home).then_some(METADATA_TIMEOUT);
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            let resp = self
                .send_once(method.clone(), &url, headers, timeout)
                .await?;
            let status = resp.status();
            if !status.is_redirection() {
                if !status.is_success() {
                    return Err(hub_error(status, resp.headers(), what));
                }
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            match next_hop(&self.home, &url, status, location, stay_home, what)? {
                Hop::Stop => return Ok(resp),
                Hop::Follow(next) => url = next,
            }
        }
        Err(TransferError::new(
            Reason::SourceUnavailable,
            format!("{what}: more than {MAX_REDIRECTS} redirects"),
        ))
    }

    /// GET a JSON document under the endpoint (bounded to `limit` bytes), with its headers.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        limit: usize,
        what: &str,
    ) -> Result<(T, HeaderMap), TransferError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let resp = self.send(Method::GET, url, &headers, true, what).await?;
        if resp.status().is_redirection() {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: the Hub redirected an API call off its origin"),
            ));
        }
        let head = resp.headers().clone();
        let body = read_bounded(resp, limit, what).await?;
        let value = serde_json::from_slice(&body).map_err(|e| {
            TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: the answer is not the Hub's JSON: {e}"),
            )
        })?;
        Ok((value, head))
    }
}

/// What to do with a redirect.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hop {
    Follow(Url),
    /// Leaves the endpoint's origin while the caller wants the Hub's own answer.
    Stop,
}

/// The decision for a redirect from `from` to `location` (relative or absolute): refused
/// without a location, to an invalid URL, or from https to http.
pub(crate) fn next_hop(
    home: &Origin,
    from: &Url,
    status: StatusCode,
    location: Option<&str>,
    stay_home: bool,
    what: &str,
) -> Result<Hop, TransferError> {
    let refused = |why: String| {
        TransferError::new(
            Reason::SourceUnavailable,
            format!("{what}: {}{why}", shown(from)),
        )
    };
    let location =
        location.ok_or_else(|| refused(format!(" answered {status} without a Location")))?;
    let next = from
        .join(location)
        .map_err(|e| refused(format!(" redirected to an invalid URL: {e}")))?;
    if from.scheme() == "https" && next.scheme() != "https" {
        return Err(refused(format!(
            " redirected from https to {}; refused",
            shown(&next)
        )));
    }
    if stay_home && origin(&next) != *home {
        return Ok(Hop::Stop);
    }
    Ok(Hop::Follow(next))
}

/// Reads a whole body, refusing more than `limit` bytes.
pub(crate) async fn read_bounded(
    resp: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, TransferError> {
    let too_big = || {
        TransferError::new(
            Reason::SourceUnavailable,
            format!("{what}: the answer is larger than {limit} bytes"),
        )
    };
    if resp.content_length().is_some_and(|l| l > limit as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            TransferError::transient(
                Reason::SourceUnavailable,
                format!(
                    "{what}: {}",
                    crate::transfer::error::chain(&e.without_url())
                ),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A response body as a [`ByteStream`] (errors without the URL: it may be a signed one).
pub(crate) fn body_stream(resp: reqwest::Response) -> ByteStream {
    resp.bytes_stream()
        .map_err(|e| std::io::Error::other(e.without_url()))
        .boxed()
}

/// The Hub's refusal as an error: its `X-Error-Code` first, then the status.
pub(crate) fn hub_error(status: StatusCode, headers: &HeaderMap, what: &str) -> TransferError {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(MAX_ERROR_TEXT).collect::<String>())
    };
    let code = text("x-error-code");
    let message = text("x-error-message");
    let said = message
        .as_deref()
        .map(|m| format!(" (the Hub says: {m})"))
        .unwrap_or_default();
    let n = status.as_u16();
    let explained = match code.as_deref() {
        Some("RepoNotFound") => format!(
            "repository not found (or private: set HF_TOKEN to a token that can read it){said}"
        ),
        Some("RevisionNotFound") => format!("revision not found in the repository{said}"),
        Some("EntryNotFound") => format!("file not found at this revision{said}"),
        Some("GatedRepo") => format!(
            "the repository is gated: the account whose token is in HF_TOKEN must request and \
             be granted access on the Hub first (HTTP {n}){said}"
        ),
        _ if message.as_deref() == Some("Access to this resource is disabled.") => {
            "the repository is disabled on the Hub".to_owned()
        }
        _ if n == 401
            && message.as_deref() == Some("Invalid credentials in Authorization header") =>
        {
            "HF_TOKEN was refused by the Hub (invalid or expired token)".to_owned()
        }
        _ if n == 401 => format!(
            "authentication required: the repository does not exist, or it is private or gated \
             and HF_TOKEN is missing or lacks access (HTTP 401){said}"
        ),
        _ if n == 403 => format!("access denied (HTTP 403){said}"),
        _ if n == 404 => format!("not found (HTTP 404){said}"),
        _ => format!(
            "HTTP {n} ({}){said}",
            status.canonical_reason().unwrap_or("unexpected status")
        ),
    };
    TransferError {
        reason: Reason::SourceUnavailable,
        message: format!("{what}: {explained}"),
        transient: status.is_server_error() || n == 408 || n == 429,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn quoting_matches_python() {
        // urllib.parse.quote("refs/pr/1", safe="") and quote("sub dir/ü.bin") (safe="/").
        assert_eq!(quote("refs/pr/1", ""), "refs%2Fpr%2F1");
        assert_eq!(quote("sub dir/ü.bin", "/"), "sub%20dir/%C3%BC.bin");
        assert_eq!(quote("a-b_c.d~e", ""), "a-b_c.d~e");
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            origin(&u("https://HF.example/x")),
            origin(&u("https://hf.example:443/y"))
        );
        assert_ne!(
            origin(&u("http://127.0.0.1:1/")),
            origin(&u("http://127.0.0.1:2/"))
        );
        assert_ne!(origin(&u("http://h/")), origin(&u("https://h/")));
        assert_eq!(
            shown(&u("http://127.0.0.1:9/blobs/ab?X-Amz-Signature=s3cr3t")),
            "http://127.0.0.1:9/blobs/ab?…"
        );
    }

    #[test]
    fn redirects_stay_on_https_and_stop_at_the_hub_edge() {
        let u = |s: &str| Url::parse(s).unwrap();
        let home = origin(&u("https://hub.example"));
        let from = u("https://hub.example/o/m/resolve/c/a.bin");
        let found = StatusCode::FOUND;
        let hop = |loc: Option<&str>, stay: bool| next_hop(&home, &from, found, loc, stay, "w");
        // A relative redirect (a renamed repository) stays on the Hub: followed either way.
        assert_eq!(
            hop(Some("/n/m/resolve/c/a.bin"), true).unwrap(),
            Hop::Follow(u("https://hub.example/n/m/resolve/c/a.bin"))
        );
        // The CDN: followed for a download, not for the Hub's own answer.
        let cdn = "https://cdn.example/blob?X-Amz-Signature=s";
        assert_eq!(hop(Some(cdn), false).unwrap(), Hop::Follow(u(cdn)));
        assert_eq!(hop(Some(cdn), true).unwrap(), Hop::Stop);
        // Same host, other port: another origin.
        assert_eq!(
            hop(Some("https://hub.example:8443/x"), true).unwrap(),
            Hop::Stop
        );
        let e = hop(Some("http://cdn.example/blob?sig=s"), false).unwrap_err();
        assert!(
            e.message
                .contains("from https to http://cdn.example/blob?…"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("sig=s"));
        assert!(
            hop(None, false)
                .unwrap_err()
                .message
                .contains("without a Location")
        );
    }

    #[test]
    fn hub_error_codes_become_clear_messages() {
        let e = hub_error(
            StatusCode::FORBIDDEN,
            &headers(&[
                ("x-error-code", "GatedRepo"),
                ("x-error-message", "ask first"),
            ]),
            "hf://org/m",
        );
        assert!(!e.transient);
        assert_eq!(e.reason, Reason::SourceUnavailable);
        assert!(
            e.message.starts_with("hf://org/m: the repository is gated"),
            "{}",
            e.message
        );
        assert!(e.message.contains("ask first"));
        let e = hub_error(
            StatusCode::NOT_FOUND,
            &headers(&[("x-error-code", "RevisionNotFound")]),
            "w",
        );
        assert_eq!(e.message, "w: revision not found in the repository");
        let e = hub_error(
            StatusCode::UNAUTHORIZED,
            &headers(&[("x-error-code", "RepoNotFound")]),
            "w",
        );
        assert!(e.message.contains("repository not found"), "{}", e.message);
        let e = hub_error(
            StatusCode::UNAUTHORIZED,
            &headers(&[(
                "x-error-message",
                "Invalid credentials in Authorization header",
            )]),
            "w",
        );
        assert!(e.message.contains("HF_TOKEN was refused"), "{}", e.message);
        assert!(hub_error(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), "w").transient);
        assert!(hub_error(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), "w").transient);
        let long = "x".repeat(5000);
        let e = hub_error(
            StatusCode::BAD_REQUEST,
            &headers(&[("x-error-message", &long)]),
            "w",
        );
        assert!(e.message.len() < 400, "{}", e.message.len());
    }
}
