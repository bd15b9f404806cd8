//! A static HTTP file server over a temporary directory, for `uri` model sources.
//!
//! Deliberately small and hand-written (GET/HEAD, `Content-Length`, single `Range`, 404, optional
//! credential) rather than a general file server: tests need to know exactly what the server does, and
//! it records each request so a test can assert what the tool under test fetched.
//!
//! Also home of [`ServerThread`], the runner shared by the in-process servers (this one and
//! [`crate::s3`]).
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::sync::oneshot;

/// An in-process server running on its own OS thread with its own single-threaded tokio runtime.
///
/// Why a thread rather than `tokio::spawn`: the server then outlives no test by accident yet does not
/// depend on the caller's runtime either — it keeps answering while a test blocks a worker (e.g. waits
/// on a child process), works under `current_thread` tests and from synchronous code, and can be shared
/// through a `static` by several tests. Dropping it stops the runtime (aborting open connections) and
/// joins the thread, so the port and files are released when `drop` returns.
pub struct ServerThread {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerThread")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ServerThread {
    /// Binds `127.0.0.1:0` here (so the port is known, and connectable, when this returns) and runs
    /// `serve(listener)` on a new thread until the `ServerThread` is dropped.
    pub fn spawn<F, Fut>(name: &str, serve: F) -> anyhow::Result<Self>
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind loopback")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build server runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("register listener");
                    tokio::select! {
                        () = serve(listener) => {}
                        _ = rx => {}
                    }
                });
                // Dropping `rt` here cancels every connection task the server spawned.
            })
            .context("spawn server thread")?;
        Ok(Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The credential the file server requires, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic base64(user:password)`.
    Basic { username: String, password: String },
}

impl HttpAuth {
    /// The exact `Authorization` header value a client must send.
    pub fn header_value(&self) -> String {
        match self {
            HttpAuth::Bearer(token) => format!("Bearer {token}"),
            HttpAuth::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
        }
    }
}

/// One request the server received: method and path (query included), in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Whether the request carried the required credential (always true without auth).
    pub authorized: bool,
}

#[derive(Clone)]
struct AppState {
    root: PathBuf,
    expected_auth: Option<HeaderValue>,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
}

/// A static file server rooted at a fresh temporary directory.
pub struct HttpFileServer {
    // Field order matters: the server thread stops before the directory is deleted.
    server: ServerThread,
    auth: Option<HttpAuth>,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
    root: tempfile::TempDir,
}

impl std::fmt::Debug for HttpFileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFileServer")
            .field("base_url", &self.base_url())
            .field("root", &self.root.path())
            .finish_non_exhaustive()
    }
}

impl HttpFileServer {
    /// Starts a server that serves its root to anyone.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// Starts a server that answers 401 unless the request carries `auth`.
    pub async fn start_with_auth(auth: HttpAuth) -> anyhow::Result<Self> {
        Self::start_with(Some(auth)).await
    }

    async fn start_with(auth: Option<HttpAuth>) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new().prefix("mro-http-").tempdir()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = AppState {
            root: root.path().to_path_buf(),
            expected_auth: auth
                .as_ref()
                .map(|a| HeaderValue::from_str(&a.header_value()))
                .transpose()
                .context("credential is not a valid header value")?,
            log: log.clone(),
        };
        let app = Router::new().fallback(serve_file).with_state(state);
        let server = ServerThread::spawn("http-files", move |listener| async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("http file server stopped: {e}");
            }
        })?;
        Ok(Self {
            server,
            auth,
            log,
            root,
        })
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The URL of `path` (relative to the root; a leading `/` is optional).
    pub fn url_for(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// The directory being served.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Writes `contents` at `path` under the root, creating parent directories.
    pub fn write_file(&self, path: &str, contents: impl AsRef<[u8]>) -> anyhow::Result<PathBuf> {
        let full = self.root.path().join(path.trim_start_matches('/'));
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, contents).with_context(|| format!("write {}", full.display()))?;
        Ok(full)
    }

    /// The credential required, if any.
    pub fn auth(&self) -> Option<&HttpAuth> {
        self.auth.as_ref()
    }

    /// The `Authorization` header value clients must send, if any.
    pub fn authorization_header(&self) -> Option<String> {
        self.auth.as_ref().map(HttpAuth::header_value)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.lock().expect("request log").clone()
    }
}

/// Maps a URL path to a file under `root`, refusing anything that could escape it.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(url_path)?;
    let mut out = root.to_path_buf();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Minimal `%XX` decoding; rejects malformed escapes and non-UTF-8 results.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range against a file of `len` bytes into an
/// inclusive `(start, end)`. `None` means unsatisfiable or unsupported (multi-range).
pub(crate) fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.saturating_sub(n), len - 1)
        }
        (a, "") => (a.parse().ok()?, len - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(len - 1)),
    };
    (start <= end && start < len).then_some((start, end))
}

async fn serve_file(State(state): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let headers: HeaderMap = req.headers().clone();
    let authorized = state
        .expected_auth
        .as_ref()
        .is_none_or(|want| headers.get(header::AUTHORIZATION) == Some(want));
    state
        .log
        .lock()
        .expect("request log")
        .push(RecordedRequest {
            method: method.to_string(),
            path: req
                .uri()
                .path_and_query()
                .map_or(path.clone(), |p| p.to_string()),
            authorized,
        });

    if !authorized {
        let challenge = match state.expected_auth.as_ref().and_then(|v| v.to_str().ok()) {
            Some(v) if v.starts_with("Basic") => r#"Basic realm="mro-tests""#,
            _ => r#"Bearer realm="mro-tests""#,
        };
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            "unauthorized\n",
        )
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let Some(file) = resolve(&state.root, &path) else {
        return (StatusCode::BAD_REQUEST, "bad path\n").into_response();
    };
    let data = match tokio::fs::read(&file).await {
        Ok(d) => d,
        Err(_) => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    let len = data.len() as u64;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, body, content_range) = match range {
        None => (StatusCode::OK, data, None),
        Some(r) => match parse_range(r, len) {
            Some((start, end)) => (
                StatusCode::PARTIAL_CONTENT,
                data[start as usize..=end as usize].to_vec(),
                Some(format!("bytes {start}-{end}/{len}")),
            ),
            None => {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                )
                    .into_response();
            }
        },
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some(cr) = content_range {
        builder = builder.header(header::CONTENT_RANGE, cr);
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    builder.body(body).expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), Some((0, 3)));
        assert_eq!(parse_range("bytes=4-", 10), Some((4, 9)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(parse_range("bytes=5-100", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
    }

    #[test]
    fn paths_stay_under_root() {
        let root = Path::new("/srv");
        assert_eq!(
            resolve(root, "/a/b%20c.bin"),
            Some(PathBuf::from("/srv/a/b c.bin"))
        );
        assert_eq!(resolve(root, "/a/../../etc/passwd"), None);
        assert_eq!(resolve(root, "/%2e%2e/x"), None);
    }
}
