//! HTTP plumbing for the URI source: requests with optional credentials, status mapping, ranged
//! re-requests, and URLs redacted for messages (no user info, no query: presigned URLs carry
//! signatures there).
use std::time::Duration;

use base64::Engine as _;
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use url::Url;

use crate::config::Secret;
use crate::transfer::{ByteStream, Reason, TransferError};

/// Longest `Content-Disposition` file name used (the usual file-system limit).
const MAX_FILE_NAME_BYTES: usize = 255;

/// One remote file.
pub(crate) struct Remote {
    client: reqwest::Client,
    url: Url,
    authorization: Option<Secret<String>>,
    /// The URL as shown in messages.
    pub shown: String,
}

/// What the first response said about the file.
pub(crate) struct Head {
    pub length: Option<u64>,
    pub content_type: Option<String>,
    /// `Content-Disposition` file name, if any.
    pub file_name: Option<String>,
    /// A strong ETag or `Last-Modified`, for `If-Range` on resumed requests.
    pub validator: Option<String>,
}

impl Remote {
    /// `url` may carry `user:password@` (sent as basic auth, never shown); `authorization` is a
    /// full `Authorization` header value and wins over it.
    pub fn new(
        url: &Url,
        authorization: Option<Secret<String>>,
        client: Option<reqwest::Client>,
    ) -> Result<Remote, TransferError> {
        let mut clean = url.clone();
        let mut auth = authorization;
        if !url.username().is_empty() || url.password().is_some() {
            let user = percent_decode(url.username());
            let pass = url.password().map(percent_decode).unwrap_or_default();
            if auth.is_none() {
                let raw = format!("{user}:{pass}");
                auth = Some(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )));
            }
            let _ = clean.set_username("");
            let _ = clean.set_password(None);
        }
        let client = match client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(Duration::from_secs(120))
                .build()
                .map_err(|e| {
                    TransferError::new(
                        Reason::Internal,
                        format!("http client: {}", e.without_url()),
                    )
                })?,
        };
        Ok(Remote {
            client,
            shown: redact(&clean),
            url: clean,
            authorization: auth,
        })
    }

    /// GET the file (from `from` with `If-Range: validator` when given). Non-success statuses are
    /// errors; a ranged request must be answered with `206` starting at `from`.
    pub async fn get(
        &self,
        from: Option<u64>,
        validator: Option<&str>,
    ) -> Result<(reqwest::Response, Head), TransferError> {
        let mut headers = HeaderMap::new();
        if let Some(a) = &self.authorization {
            let mut v = HeaderValue::from_str(a.expose()).map_err(|_| {
                TransferError::invalid_input(format!(
                    "{}: the credential is not a valid header value",
                    self.shown
                ))
            })?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        if let Some(from) = from.filter(|f| *f > 0) {
            headers.insert(
                header::RANGE,
                HeaderValue::from_str(&format!("bytes={from}-")).expect("ascii"),
            );
            if let Some(v) = validator.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(header::IF_RANGE, v);
            }
        }
        let resp = self
            .client
            .get(self.url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(|e| self.request_error(e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(status, &self.shown));
        }
        let from = from.unwrap_or(0);
        if from > 0 {
            let start = resp
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if status != StatusCode::PARTIAL_CONTENT || start != Some(from) {
                return Err(TransferError::new(
                    Reason::SourceUnavailable,
                    format!(
                        "{}: cannot resume at byte {from}: the server answered {status} (no range support, or the file changed)",
                        self.shown
                    ),
                ));
            }
        }
        let head = head_of(&resp);
        Ok((resp, head))
    }

    fn request_error(&self, e: reqwest::Error) -> TransferError {
        let transient = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
        let e = e.without_url();
        let message = format!("{}: {}", self.shown, crate::transfer::error::chain(&e));
        TransferError {
            reason: Reason::SourceUnavailable,
            message,
            transient,
        }
    }
}

fn head_of(resp: &reqwest::Response) -> Head {
    let h = resp.headers();
    let text = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let length = if resp.status() == StatusCode::PARTIAL_CONTENT {
        // `bytes a-b/total`
        text(header::CONTENT_RANGE).and_then(|v| v.rsplit('/').next().and_then(|t| t.parse().ok()))
    } else if h.contains_key(header::CONTENT_ENCODING) {
        None
    } else {
        resp.content_length()
    };
    let validator = text(header::ETAG)
        .filter(|e| !e.starts_with("W/"))
        .or_else(|| text(header::LAST_MODIFIED));
    Head {
        length,
        content_type: text(header::CONTENT_TYPE),
        file_name: text(header::CONTENT_DISPOSITION).and_then(|v| disposition_file_name(&v)),
        validator,
    }
}

/// A response body as a [`ByteStream`] (errors without the URL).
pub(crate) fn body_stream(resp: reqwest::Response) -> ByteStream {
    resp.bytes_stream()
        .map_err(|e| std::io::Error::other(e.without_url()))
        .boxed()
}

fn status_error(status: StatusCode, shown: &str) -> TransferError {
    let code = status.as_u16();
    let what = match code {
        401 => "authentication required or the credentials were refused",
        403 => "access denied",
        404 | 410 => "not found",
        416 => "range not satisfiable",
        _ => status.canonical_reason().unwrap_or("unexpected status"),
    };
    let transient = status.is_server_error() || code == 408 || code == 429;
    TransferError {
        reason: Reason::SourceUnavailable,
        message: format!("{shown}: HTTP {code} ({what})"),
        transient,
    }
}

/// `scheme://host[:port]/path`, with `?…` when there was a query.
pub(crate) fn redact(url: &Url) -> String {
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

/// The file name a URL names: its last non-empty path segment, percent-decoded.
pub(crate) fn url_file_name(url: &Url) -> Option<String> {
    url.path_segments()?
        .rev()
        .find(|s| !s.is_empty())
        .map(percent_decode)
}

/// `filename="x.bin"` / `filename=x.bin` from a `Content-Disposition` value (base name only).
pub(crate) fn disposition_file_name(value: &str) -> Option<String> {
    let v = value
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("filename="))?;
    let v = v.trim_matches('"');
    let base = v.rsplit(['/', '\\']).next()?.trim();
    // A file name longer than any file system allows is the server's noise, not a name.
    (!base.is_empty() && base != "." && base != ".." && base.len() <= MAX_FILE_NAME_BYTES)
        .then(|| base.to_owned())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A download URL with `user:password@` that redirects to another host: the credentials
    /// (sent as basic auth to the first host) do not follow the redirect.
    #[tokio::test]
    async fn credentials_do_not_follow_a_redirect_to_another_host() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        async fn head(sock: &mut tokio::net::TcpStream) -> String {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            String::from_utf8_lossy(&buf).to_ascii_lowercase()
        }
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_port = other.local_addr().unwrap().port();
        let seen = tokio::spawn(async move {
            let (mut sock, _) = other.accept().await.unwrap();
            let h = head(&mut sock).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
            h
        });
        let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let first_port = first.local_addr().unwrap().port();
        let first_seen = tokio::spawn(async move {
            let (mut sock, _) = first.accept().await.unwrap();
            let h = head(&mut sock).await;
            let reply = format!(
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{other_port}/elsewhere.bin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = sock.write_all(reply.as_bytes()).await;
            h
        });
        let url = Url::parse(&format!("http://alice:s3cret@127.0.0.1:{first_port}/m.bin")).unwrap();
        let remote = Remote::new(&url, None, None).unwrap();
        let (resp, _) = remote.get(None, None).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(first_seen.await.unwrap().contains("authorization: basic"));
        let h = seen.await.unwrap();
        assert!(!h.contains("authorization"), "{h}");
    }

    #[test]
    fn urls_are_redacted_and_named() {
        let u = Url::parse("https://user:pw@host.example:8443/a/b%20c.bin?X-Amz-Signature=abc")
            .unwrap();
        assert_eq!(redact(&u), "https://host.example:8443/a/b%20c.bin?…");
        assert_eq!(url_file_name(&u).as_deref(), Some("b c.bin"));
        assert_eq!(
            url_file_name(&Url::parse("http://h/dir/").unwrap()).as_deref(),
            Some("dir")
        );
        assert_eq!(url_file_name(&Url::parse("http://h/").unwrap()), None);
        let r = Remote::new(&u, None, Some(reqwest::Client::new())).unwrap();
        assert!(!r.shown.contains("pw") && !r.shown.contains("user"));
        assert_eq!(r.authorization.unwrap().expose(), "Basic dXNlcjpwdw==");
    }

    #[test]
    fn content_disposition_names() {
        assert_eq!(
            disposition_file_name(r#"attachment; filename="m.tar.gz""#).as_deref(),
            Some("m.tar.gz")
        );
        assert_eq!(
            disposition_file_name("attachment; filename=../../x.zip").as_deref(),
            Some("x.zip")
        );
        assert_eq!(disposition_file_name("inline"), None);
        assert_eq!(disposition_file_name(r#"attachment; filename="..""#), None);
    }
}
