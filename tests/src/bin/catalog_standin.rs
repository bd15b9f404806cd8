//! The Model Catalog server stand-in: run as `/model-registry catalog ...` it accepts exactly
//! the real server's `catalog` command line ([`mro_tests::catalog_server`]; anything else exits
//! 1 naming the problem, as the real server does) and serves its readiness path `/readyz`.
//!
//! It reads no database and serves no catalog: it answers what it understood on `/standin/config`
//! (JSON), so a test can check the arguments took effect, and on `/standin/sources` what its
//! files hold, read at request time: for each `--catalogs-path` file the sources it lists
//! (`catalogs`, `model_catalogs`, `mcp_catalogs`, `agent_catalogs`: id and `yamlCatalogPath`,
//! with whether that data file exists, a relative one taken from the sources file's directory)
//! or why it could not be read, and the entries of each `--performance-metrics` directory.
//! Environment of its own:
//! `MRO_CATALOG_STANDIN_VERSION` (`v0.3.14`, the default and the deployed release, or `v0.3.8`)
//! and `MRO_CATALOG_STANDIN_LISTEN` (an address that replaces `--listen`, e.g. `127.0.0.1:0` in
//! tests). Once listening it prints `listening on <addr>` on stdout.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use axum::Json;
use axum::Router;
use axum::routing::get;
use mro_tests::catalog_server::{CatalogVersion, parse_catalog};
use serde_json::json;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("catalog stand-in: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("catalog stand-in: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `host:port` with an empty host meaning every interface, as Go's listener reads it.
fn listen_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .with_context(|| format!("listen address {s:?} is not host:port"))
}

/// What the files of `config` hold now (see the module docs).
fn sources(config: &mro_tests::catalog_server::CatalogConfig) -> serde_json::Value {
    let files: Vec<serde_json::Value> = config
        .catalogs_paths
        .iter()
        .map(|path| {
            let doc = std::fs::read_to_string(path)
                .map_err(|e| format!("read: {e}"))
                .and_then(|t| {
                    serde_saphyr::from_str::<serde_json::Value>(&t)
                        .map_err(|e| format!("parse: {e}"))
                });
            match doc {
                Err(e) => json!({"path": path, "error": e}),
                Ok(doc) => {
                    let mut listed = Vec::new();
                    for list in [
                        "catalogs",
                        "model_catalogs",
                        "mcp_catalogs",
                        "agent_catalogs",
                    ] {
                        for s in doc[list].as_array().into_iter().flatten() {
                            let data = s["properties"]["yamlCatalogPath"].as_str();
                            // A relative data path is taken from the sources file's directory.
                            let full = data.map(|d| {
                                std::path::Path::new(path)
                                    .parent()
                                    .unwrap_or(std::path::Path::new("/"))
                                    .join(d)
                            });
                            listed.push(json!({
                                "list": list,
                                "id": s["id"],
                                "yamlCatalogPath": data,
                                "present": full.map(|f| f.is_file()),
                            }));
                        }
                    }
                    json!({"path": path, "sources": listed})
                }
            }
        })
        .collect();
    let metrics: Vec<serde_json::Value> = config
        .performance_metrics
        .iter()
        .map(|dir| match std::fs::read_dir(dir) {
            Err(e) => json!({"dir": dir, "error": format!("read: {e}")}),
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                json!({"dir": dir, "entries": names})
            }
        })
        .collect();
    json!({"files": files, "performance_metrics": metrics})
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let version = match std::env::var("MRO_CATALOG_STANDIN_VERSION").as_deref() {
        Err(_) | Ok("") | Ok("v0.3.14") => CatalogVersion::Odh0314,
        Ok("v0.3.8") => CatalogVersion::Kubeflow038,
        Ok(other) => bail!("MRO_CATALOG_STANDIN_VERSION {other:?}: want v0.3.14 or v0.3.8"),
    };
    let config = parse_catalog(version, &args)?;
    if config.help {
        println!("catalog stand-in ({version}): Catalog API server");
        return Ok(());
    }
    let listen = match std::env::var("MRO_CATALOG_STANDIN_LISTEN") {
        Ok(a) if !a.is_empty() => a,
        _ => config.listen.clone(),
    };
    let listener = tokio::net::TcpListener::bind(listen_addr(&listen)?)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let shown = config.clone();
    let config = config.clone();
    let app = Router::new()
        .route(
            "/readyz",
            get(|| async { Json(json!({"plugins": {}, "status": "ready"})) }),
        )
        .route(
            "/standin/config",
            get(move || {
                let c = shown.clone();
                async move { Json(c) }
            }),
        )
        .route(
            "/standin/sources",
            get(move || {
                let c = config.clone();
                async move { Json(sources(&c)) }
            }),
        );
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        r = axum::serve(listener, app) => r.context("serving")?,
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}
