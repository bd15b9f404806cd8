//! The probe and metrics endpoints: `/healthz` (process alive), `/readyz` (caches synced), `/metrics`.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// Shared readiness flag: set once the controllers' caches have synced.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(r): State<Readiness>) -> (StatusCode, &'static str) {
    if r.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics(
    State(m): State<Metrics>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

/// Binds both listeners (so a bad address fails at start) and serves them until `shutdown` resolves.
pub async fn serve(
    health_addr: SocketAddr,
    metrics_addr: SocketAddr,
    readiness: Readiness,
    metrics_state: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + Clone + 'static,
) -> std::io::Result<(SocketAddr, SocketAddr, tokio::task::JoinHandle<()>)> {
    let health = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness);
    let metrics_router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(metrics_state);
    let hl = tokio::net::TcpListener::bind(health_addr).await?;
    let ml = tokio::net::TcpListener::bind(metrics_addr).await?;
    let (ha, ma) = (hl.local_addr()?, ml.local_addr()?);
    let s1 = shutdown.clone();
    let handle = tokio::spawn(async move {
        let a = axum::serve(hl, health).with_graceful_shutdown(s1);
        let b = axum::serve(ml, metrics_router).with_graceful_shutdown(shutdown);
        let _ = tokio::join!(a, b);
    });
    Ok((ha, ma, handle))
}
