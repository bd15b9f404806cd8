//! The Model Registry stand-in as a container's program: the image
//! `mro.local/model-registry:<version>` (`tests/local-cluster/images.sh`) runs it as
//! `/model-registry`, so a pod started from the Deployment the operator renders runs it with
//! exactly the real server's command line (`proxy` and the flags of the version the image claims,
//! `MR_*` variables) and refuses what the real server refuses (exit status 1).
//!
//! What differs from a test's in-process start ([`start_from_command_line`]): it listens where
//! `--hostname`/`--port` say, and resolves the DSN's host with the pod's resolver (cluster DNS).
//! Like the real server, it waits for its database: the DSN's host is resolved and the database
//! connected to with retries until `MRO_STANDIN_DB_WAIT_SECONDS` (default 300) have passed, then it
//! exits 1 naming the last error. Its readiness endpoints answer from the database on every probe.
//!
//! Environment of its own (set by the image): `MRO_STANDIN_VERSION`, the server version it
//! claims (e.g. `v0.3.14`). Registry state lives in memory: a restarted pod starts empty (the real
//! server keeps it in the database).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mro_tests::model_registry::server::{self, CommandLineStart, start_from_command_line};
use mro_tests::model_registry::server_cli::{self, Version};

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("model-registry stand-in: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("model-registry stand-in: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let claimed = env
        .get("MRO_STANDIN_VERSION")
        .context("MRO_STANDIN_VERSION (the server version the image claims) is not set")?;
    let version =
        Version::parse(claimed).with_context(|| format!("MRO_STANDIN_VERSION {claimed:?}"))?;
    // The command line first: a flag the real server refuses fails at once, not after a wait.
    let config = server_cli::parse_proxy(version, &args, &env)?;
    let db = server::database(&config, &env)?;
    let wait = env
        .get("MRO_STANDIN_DB_WAIT_SECONDS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let deadline = Instant::now() + Duration::from_secs(wait);
    eprintln!(
        "model-registry stand-in {version}: {} database at {}:{} (database {}, user {}); waiting up to {wait} s for it",
        db.kind, db.host, db.port, db.database, db.user
    );
    let addr = resolve(&db.host, db.port, deadline).await?;
    let opts = CommandLineStart {
        hosts: BTreeMap::from([(db.host.clone(), addr)]),
        listen_as_configured: true,
        ..CommandLineStart::default()
    };
    let started = loop {
        match start_from_command_line(version, &args, &env, opts.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                let text = format!("{e:#}");
                if !text.contains("error connecting to datastore") || Instant::now() > deadline {
                    return Err(e);
                }
                eprintln!("model-registry stand-in: {text}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    eprintln!(
        "model-registry stand-in {version}: serving on {} ({} at {addr})",
        started.standin.addr(),
        db.kind
    );
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    eprintln!("model-registry stand-in: stopping");
    Ok(())
}

/// The DSN's host through the system resolver (in a pod: the cluster DNS), retried until
/// `deadline`: a Service created moments ago may not be in the DNS yet.
async fn resolve(host: &str, port: u16, deadline: Instant) -> anyhow::Result<SocketAddr> {
    loop {
        let last = match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if let Some(a) = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
                    return Ok(*a);
                }
                "no address".to_string()
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!(
                "{{ALERT}} error connecting to datastore: host {host:?} does not resolve: {last}"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
