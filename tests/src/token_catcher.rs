//! An HTTPS endpoint that plays the registry of an attacker: it answers every request with 404
//! and keeps the bearer tokens it was sent, so a test can ask the real API server what a stolen
//! token would be good for (a TokenReview). TLS with a certificate for 127.0.0.1 from its own
//! [`TestCa`] (clients are given the CA, as a transfer's `caConfigMapRef`).
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use http::StatusCode;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::rbac_proxy::TlsListener;
use crate::tls::TestCa;

/// A running catcher; stops on drop.
pub struct TokenCatcher {
    addr: SocketAddr,
    ca: TestCa,
    tokens: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenCatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenCatcher {
    pub async fn start() -> anyhow::Result<TokenCatcher> {
        let ca = TestCa::try_new()?;
        let config = ca.try_server_config(&["127.0.0.1"])?;
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind the token catcher")?;
        let addr = tcp.local_addr()?;
        let listener = TlsListener {
            tcp,
            tls: TlsAcceptor::from(Arc::new(config)),
        };
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(catch)
            .with_state(tokens.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(TokenCatcher {
            addr,
            ca,
            tokens,
            task,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The CA of its certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Every bearer token received so far.
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().expect("tokens").clone()
    }
}

async fn catch(State(tokens): State<Arc<Mutex<Vec<String>>>>, req: Request) -> impl IntoResponse {
    if let Some(t) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        tokens.lock().expect("tokens").push(t.to_owned());
    }
    (
        StatusCode::NOT_FOUND,
        [(http::header::CONTENT_TYPE, "application/json")],
        r#"{"code":"not found","message":"not found"}"#,
    )
}
