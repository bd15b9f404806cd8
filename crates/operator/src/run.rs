//! The operator process: probes and metrics first, then (with leader election) wait for the
//! Lease, discover capabilities, and run the controllers until shutdown or lost leadership.
//! Controllers restart when the cluster's capabilities change, so new platform APIs get watched.
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kube::Client;
use tokio::sync::watch;

use crate::capabilities;
use crate::catalog;
use crate::context::Context;
use crate::http::{self, Readiness};
use crate::metrics::Metrics;
use crate::modelregistry;
use crate::modeltransfer;
use crate::settings::Settings;

/// How often capabilities are re-discovered.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(20);

/// How long in-flight reconciles may run after a stop was requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The operator's API client for `config`, without the client library's built-in retry of
/// 429/503/504 answers. That retry (kube-client 5: up to 15 attempts, delays doubling from 5 ms,
/// minutes in all) made one request to an aggregated platform API whose server is down (every
/// answer a 503) take minutes, so each reconcile that listed or deleted that API's children
/// hung with it; registry deletions too. The controllers retry instead: a failed reconcile is
/// requeued with the object's own backoff, a failed watch backs off on its own.
pub fn client(mut config: kube::Config) -> kube::Result<Client> {
    config.default_retry = false;
    Client::try_from(config)
}

/// Options for embedding the operator (tests run it in-process).
#[derive(Clone)]
pub struct RunOptions {
    pub discovery_interval: Duration,
    /// Serve `/healthz`, `/readyz`, `/metrics` on the settings' addresses.
    pub serve_http: bool,
    /// Which controllers this process runs.
    pub controllers: Controllers,
}

/// The controllers of one process: the registry controllers (`run`), or the catalog's alone
/// (`catalog`, its own Deployment, as the Go operator's `catalog` subcommand).
#[derive(Clone, Debug, Default)]
pub enum Controllers {
    #[default]
    Registries,
    /// `settings`: `None` reads the catalog's variables from the process environment.
    Catalog {
        settings: Option<Box<catalog::settings::CatalogSettings>>,
    },
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            discovery_interval: DISCOVERY_INTERVAL,
            serve_http: true,
            controllers: Controllers::default(),
        }
    }
}

/// Why the operator stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    Shutdown,
    LostLeadership,
}

/// Runs until `shutdown` resolves (e.g. SIGTERM) or leadership is lost.
pub async fn run(
    client: Client,
    settings: Settings,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Stopped> {
    let metrics = Metrics::default();
    let readiness = Readiness::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = {
        let rx = stop_rx.clone();
        async move {
            let mut rx = rx;
            let _ = rx.wait_for(|s| *s).await;
        }
        .shared()
    };
    if options.serve_http {
        let (h, m, _) = http::serve(
            settings.health_addr,
            settings.metrics_addr,
            readiness.clone(),
            metrics.clone(),
            stopped.clone(),
        )
        .await?;
        tracing::info!(health = %h, metrics = %m, "serving probes and metrics");
    }
    let stop_tx2 = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx2.send(true);
    });

    // Leader election: followers stay ready (healthy stand-bys) but do not reconcile.
    let mut leadership = None;
    if settings.leader_elect {
        let ns = settings
            .leader_election_namespace
            .clone()
            .or_else(|| {
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .ok()
            })
            .unwrap_or_else(|| "model-registry-operator-system".into());
        let identity = settings
            .leader_election_identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("model-registry-operator-{}", std::process::id()));
        readiness.set_ready(true);
        let acquire = crate::leader::acquire(
            client.clone(),
            ns.trim(),
            &settings.leader_election_id,
            &identity,
        );
        tokio::select! {
            rx = acquire => leadership = Some(rx?),
            _ = stopped.clone() => return Ok(Stopped::Shutdown),
        }
    }

    let (caps, _discovery) =
        capabilities::start(client.clone(), options.discovery_interval).await?;
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings.clone(),
        caps.clone(),
        metrics.clone(),
    ));
    let lost = async move {
        match leadership {
            Some(rx) => crate::leader::lost(rx).await,
            None => std::future::pending().await,
        }
    }
    .shared();

    loop {
        // One generation of controllers: stops on shutdown, lost leadership or capability change.
        let (gen_tx, gen_rx) = watch::channel(false);
        let gen_stop = move || {
            let mut rx = gen_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let handles = match &options.controllers {
            Controllers::Registries => vec![
                tokio::spawn(modelregistry::run(ctx.clone(), gen_stop())),
                tokio::spawn(modeltransfer::run(ctx.clone(), gen_stop())),
            ],
            Controllers::Catalog { settings } => vec![tokio::spawn(catalog::run(
                ctx.clone(),
                settings.as_deref().cloned(),
                gen_stop(),
            ))],
        };
        readiness.set_ready(true);
        let mut changes = Box::pin(caps.changes());
        let outcome = tokio::select! {
            _ = stopped.clone() => Some(Stopped::Shutdown),
            _ = lost.clone() => Some(Stopped::LostLeadership),
            _ = futures::StreamExt::next(&mut changes) => None,
        };
        let _ = gen_tx.send(true);
        // kube-runtime's graceful shutdown also waits for scheduled requeues (minutes ahead), so
        // in-flight reconciles get a short grace period and are then dropped. That is safe:
        // every reconcile is an idempotent server-side apply and resumes on the next start.
        for mut handle in handles {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut handle)
                .await
                .is_err()
            {
                handle.abort();
                let _ = handle.await;
            }
        }
        match outcome {
            Some(why) => {
                let _ = stop_tx.send(true);
                tracing::info!(?why, "operator stopped");
                return Ok(why);
            }
            None => tracing::info!("capabilities changed; restarting controllers"),
        }
    }
}
