//! A stateful stand-in for the Kubeflow Model Registry REST API, for tests of `model-sync` and the
//! operator.
//!
//! Why a stand-in rather than the real server: the real one needs a database and its own deployment,
//! while tests need to start dozens of isolated registries in milliseconds, look inside them, and make
//! them fail on cue. The stand-in serves the resources our clients use (registered models, model
//! versions, model artifacts, artifacts) with the real server's rules: bearer auth, 404 for unknown
//! ids and empty finds, 409 for duplicate names, 400 for bodies the generated Go server would refuse
//! (unknown fields included), paging with opaque tokens. Its responses are checked against the
//! official OpenAPI document by the Prism contract test (see [`prism`]), so it cannot drift from the
//! spec silently.
//!
//! Newer servers serve the API under both [`PREFIX_V1ALPHA3`] and [`PREFIX_V1`] (same state); older
//! ones only under v1alpha3, which [`StandInOptions::v1alpha3_only`] mimics.
mod routes;
mod store;
mod validate;

pub mod contract;
pub mod deployment;
pub mod dsn;
pub mod prism;
pub mod server;
pub mod server_cli;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use store::DEFAULT_PAGE_SIZE;
pub use validate::{ARTIFACT_STATES, MODEL_STATES};

use store::{Store, Table};

/// The API prefix every server version serves.
pub const PREFIX_V1ALPHA3: &str = "/api/model_registry/v1alpha3";
/// The prefix newer servers serve as well (v1alpha3 is deprecated there).
pub const PREFIX_V1: &str = "/api/model_registry/v1";

/// How to start a [`ModelRegistryStandIn`].
#[derive(Debug, Clone)]
pub struct StandInOptions {
    /// When set, every request must carry `Authorization: Bearer <token>` or gets 401.
    pub token: Option<String>,
    /// Serve [`PREFIX_V1`] next to [`PREFIX_V1ALPHA3`] (newer servers); `false` mimics older ones.
    pub serve_v1: bool,
    /// Page size of list requests without `pageSize`.
    pub default_page_size: u32,
    /// Probe paths to serve (GET, outside the bearer check, as a kubelet calls them) and the
    /// check they answer from: 200 `OK`, or 503 with the failure.
    pub readyz: Option<(Vec<&'static str>, ReadyCheck)>,
    /// Where to listen; `None`: an ephemeral port on `127.0.0.1` (tests). A pod's stand-in
    /// listens where the server's `--hostname`/`--port` say.
    pub listen: Option<SocketAddr>,
}

type CheckFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// What the readiness endpoints check (e.g. that the database answers).
#[derive(Clone)]
pub struct ReadyCheck(Arc<dyn Fn() -> CheckFuture + Send + Sync>);

impl ReadyCheck {
    pub fn new(f: impl Fn() -> CheckFuture + Send + Sync + 'static) -> Self {
        ReadyCheck(Arc::new(f))
    }
}

impl std::fmt::Debug for ReadyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadyCheck")
    }
}

impl Default for StandInOptions {
    fn default() -> Self {
        Self {
            token: None,
            serve_v1: true,
            default_page_size: DEFAULT_PAGE_SIZE,
            readyz: None,
            listen: None,
        }
    }
}

impl StandInOptions {
    /// Requires this bearer token on every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Serves only [`PREFIX_V1ALPHA3`], like servers released before the v1 prefix existed.
    pub fn v1alpha3_only(mut self) -> Self {
        self.serve_v1 = false;
        self
    }

    /// The prefixes served with these options.
    pub fn prefixes(&self) -> Vec<&'static str> {
        if self.serve_v1 {
            vec![PREFIX_V1ALPHA3, PREFIX_V1]
        } else {
            vec![PREFIX_V1ALPHA3]
        }
    }
}

/// One request as the stand-in saw it (after any fault or auth decision).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// The full path, prefix included.
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// Whether an injected [`Fault`] produced the response.
    pub injected_fault: bool,
    /// The request body, when it was JSON.
    pub body: Option<Value>,
}

impl RecordedRequest {
    /// Which API prefix the request used, if any (the longest match, so v1alpha3 is not taken for v1).
    pub fn prefix(&self) -> Option<&'static str> {
        [PREFIX_V1ALPHA3, PREFIX_V1]
            .into_iter()
            .find(|p| strip(&self.path, p).is_some())
    }

    /// The path below the prefix, e.g. `/registered_models/1` (the whole path if no prefix matched).
    pub fn resource_path(&self) -> &str {
        resource_path(&self.path)
    }
}

fn strip<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn resource_path(path: &str) -> &str {
    strip(path, PREFIX_V1ALPHA3)
        .or_else(|| strip(path, PREFIX_V1))
        .unwrap_or(path)
}

/// A scripted misbehaviour for the next matching requests, for retry and error-handling tests.
///
/// A fault matches a request by method (any if unset) and path: either the full path or the path
/// below the API prefix (`/registered_models` matches under both prefixes). Faults are consumed in
/// the order injected; each applies to `times` requests.
#[derive(Debug, Clone)]
pub struct Fault {
    method: Option<Method>,
    path: String,
    remaining: usize,
    status: Option<StatusCode>,
    body: Option<String>,
    delay: Duration,
}

impl Fault {
    /// Answer the next matching request with `status` and an `Error` body, without touching state.
    pub fn respond(path: impl Into<String>, status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            method: None,
            path: path.into(),
            remaining: 1,
            status: Some(status),
            body: None,
            delay: Duration::ZERO,
        }
    }

    /// Hold the next matching request for `delay`, then serve it normally (timeouts, slow servers).
    pub fn delay(path: impl Into<String>, delay: Duration) -> Self {
        Self {
            method: None,
            path: path.into(),
            remaining: 1,
            status: None,
            body: None,
            delay,
        }
    }

    /// Apply to this many matching requests (default 1).
    pub fn times(mut self, n: usize) -> Self {
        self.remaining = n;
        self
    }

    /// Only match requests with this method.
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Also wait this long before answering.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answer with this exact body (served as `application/json`, even if it is not valid JSON), so
    /// tests can feed clients malformed or schema-violating responses.
    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.remaining > 0
            && self.method.as_ref().is_none_or(|m| m == method)
            && (self.path == path || self.path == resource_path(path))
    }

    /// The canned response, or `None` for a delay-only fault.
    fn response(&self) -> Option<Response> {
        let status = self.status?;
        let body = self.body.clone().unwrap_or_else(|| {
            json!({ "code": status.as_u16().to_string(), "message": "fault injected by the test" }).to_string()
        });
        Some(
            (
                status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response(),
        )
    }
}

/// State shared by the handlers and the [`ModelRegistryStandIn`] handle.
#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    log: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<Vec<Fault>>,
    token: Option<String>,
    default_page_size: u32,
}

impl Shared {
    /// Consumes one use of the first fault matching the request.
    fn take_fault(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().expect("faults lock");
        let i = faults.iter().position(|f| f.matches(method, path))?;
        faults[i].remaining -= 1;
        let hit = faults[i].clone();
        if faults[i].remaining == 0 {
            faults.remove(i);
        }
        Some(hit)
    }
}

/// A running stand-in on `127.0.0.1:<ephemeral port>` (or [`StandInOptions::listen`]); the server shuts down when this is dropped
/// (or, deterministically, on [`ModelRegistryStandIn::stop`]).
#[derive(Debug)]
pub struct ModelRegistryStandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
    prefixes: Vec<&'static str>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ModelRegistryStandIn {
    /// Binds a loopback port and serves on the current tokio runtime.
    pub async fn start(options: StandInOptions) -> anyhow::Result<Self> {
        let bind = options
            .listen
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .context("binding the Model Registry stand-in")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            token: options.token.clone(),
            default_page_size: options.default_page_size.max(1),
        });
        let prefixes = options.prefixes();
        let mut app = routes::router(shared.clone(), &prefixes);
        if let Some((paths, check)) = options.readyz.clone() {
            for path in paths {
                let check = check.clone();
                let probe = axum::routing::get(move || {
                    let check = check.clone();
                    async move {
                        match (check.0)().await {
                            Ok(()) => (StatusCode::OK, "OK".to_string()),
                            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e),
                        }
                    }
                });
                app = app.merge(axum::Router::new().route(path, probe));
            }
        }
        let (shutdown, stopped) = oneshot::channel::<()>();
        // Graceful shutdown also closes idle keep-alive connections, so clients really lose the
        // server (aborting the accept loop alone would leave those connections served).
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::warn!("model registry stand-in stopped: {e}");
            }
        });
        Ok(Self {
            shared,
            addr,
            prefixes,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// Starts one with default options (no token, both prefixes).
    pub async fn start_default() -> anyhow::Result<Self> {
        Self::start(StandInOptions::default()).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without an API prefix (what clients take as the server address).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` plus `prefix`, e.g. `api_url(PREFIX_V1ALPHA3)`.
    pub fn api_url(&self, prefix: &str) -> String {
        format!("{}{prefix}", self.base_url())
    }

    /// The bearer token clients must send, if one is required.
    pub fn token(&self) -> Option<&str> {
        self.shared.token.as_deref()
    }

    /// The prefixes this instance serves.
    pub fn prefixes(&self) -> &[&'static str] {
        &self.prefixes
    }

    fn rendered(&self, t: Table, parent: Option<u64>) -> Vec<Value> {
        let store = self.shared.store.lock().expect("store lock");
        store
            .table(t)
            .values()
            .filter(|r| parent.is_none_or(|p| r.parent == Some(p)))
            .map(|r| r.render())
            .collect()
    }

    /// All registered models as the API returns them, by id.
    pub fn registered_models(&self) -> Vec<Value> {
        self.rendered(Table::Models, None)
    }

    /// All model versions, by id.
    pub fn model_versions(&self) -> Vec<Value> {
        self.rendered(Table::Versions, None)
    }

    /// All artifacts of every type, by id.
    pub fn artifacts(&self) -> Vec<Value> {
        self.rendered(Table::Artifacts, None)
    }

    /// The artifacts attached to one model version (empty if the id is unknown or malformed).
    pub fn version_artifacts(&self, version_id: &str) -> Vec<Value> {
        match version_id.parse::<u64>() {
            Ok(v) => self.rendered(Table::Artifacts, Some(v)),
            Err(_) => Vec::new(),
        }
    }

    /// Every request served so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().expect("log lock").clone()
    }

    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("log lock").clear();
    }

    /// Queues a fault; see [`Fault`].
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().expect("faults lock").push(fault);
    }

    /// Shorthand: the next `times` requests (any method) to `path` get `status`.
    pub fn fail_next(&self, path: &str, times: usize, status: u16) {
        self.inject(Fault::respond(path, status).times(times));
    }

    /// How many fault uses are still queued (0 once all fired).
    pub fn pending_faults(&self) -> usize {
        self.shared
            .faults
            .lock()
            .expect("faults lock")
            .iter()
            .map(|f| f.remaining)
            .sum()
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("faults lock").clear();
    }
}

impl ModelRegistryStandIn {
    /// Shuts the server down and waits (up to 10 s) until in-flight requests are answered and the
    /// port is closed, for tests of an unreachable registry. State stays inspectable afterwards.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for ModelRegistryStandIn {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
