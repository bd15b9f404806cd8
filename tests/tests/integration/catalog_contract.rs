//! The catalog Deployment starts the real catalog server: the arguments the pure builder
//! renders, checked flag by flag against the server's `catalog` command line
//! (`mro_tests::catalog_server`, written from catalog/cmd/catalog.go@v0.3.14 of the ODH fork the
//! Go operator deploys, and @v0.3.8 of kubeflow/model-registry); that the check refuses what
//! the server refuses; and the stand-in started with the rendered command line serving
//! `/readyz`.
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use model_registry_operator::catalog::build::{CatalogInput, deployment};
use model_registry_operator::catalog::settings::CatalogSettings;
use mro_api::catalog::Catalog;
use mro_tests::catalog_server::{
    CatalogConfig, CatalogVersion, FLAGS, VERSIONS, flag_of, parse_catalog,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Generous: the stand-in starts in milliseconds, but CI machines are loaded.
const START_DEADLINE: Duration = Duration::from_secs(120);

fn catalog() -> Catalog {
    serde_json::from_value(json!({
        "apiVersion": "aihub.opendatahub.io/v1alpha1", "kind": "Catalog",
        "metadata": {"name": "catalog", "namespace": "reg", "uid": "u-1"}, "spec": {}
    }))
    .unwrap()
}

/// The catalog server container as the builder renders it, with two labeled sources.
fn rendered() -> Container {
    let c = catalog();
    let s = CatalogSettings::for_tests();
    let input = CatalogInput {
        catalog: &c,
        settings: &s,
        openshift: false,
        domain: None,
        admin_groups: vec![],
        labeled_sources: vec!["extra-a".into(), "extra-b".into()],
    };
    let d = deployment::deployment(&input);
    d.spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .find(|c| c.name == "catalog")
        .expect("the catalog container")
}

/// What follows the image's entrypoint `/model-registry`: the subcommand, then the arguments.
fn command_line(c: &Container) -> Vec<String> {
    let command = c.command.clone().unwrap();
    assert_eq!(command, ["/model-registry", "catalog"]);
    let mut argv = command[1..].to_vec();
    argv.extend(c.args.clone().unwrap());
    argv
}

fn expected() -> CatalogConfig {
    CatalogConfig {
        listen: "0.0.0.0:8080".into(),
        catalogs_paths: [
            "default-sources",
            "user-model-sources",
            "user-mcp-sources",
            "user-agent-sources",
            "labeled-sources/extra-a",
            "labeled-sources/extra-b",
        ]
        .iter()
        .map(|d| format!("/data/{d}/sources.yaml"))
        .collect(),
        performance_metrics: vec!["/shared-benchmark-data".into()],
        cors_allowed_origins: vec![],
        help: false,
    }
}

#[test]
fn rendered_arguments_are_flags_of_every_server_release() {
    let c = rendered();
    let argv = command_line(&c);
    for arg in &argv[1..] {
        let name = flag_of(arg).unwrap_or_else(|| panic!("{arg}: not a --flag"));
        assert!(
            FLAGS.iter().any(|f| f.long == name && f.only.is_none()),
            "{arg}: --{name} is not a flag every release's catalog command has"
        );
    }
    for version in VERSIONS {
        let got = parse_catalog(version, &argv).unwrap_or_else(|e| panic!("{version}: {e:#}"));
        assert_eq!(got, expected(), "{version}");
    }
    // The server reads its database from the libpq variables the Deployment sets.
    let env: Vec<String> = c.env.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(env, ["PGHOST", "PGDATABASE", "PGUSER", "PGPASSWORD"]);
    // The readiness probe asks the path the server serves, on the port it listens on.
    let probe = c.readiness_probe.unwrap().http_get.unwrap();
    assert_eq!(probe.path.as_deref(), Some("/readyz"));
    let port = &c.ports.unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("http-api"), 8080)
    );
}

#[test]
fn the_check_refuses_what_the_server_refuses() {
    let argv = command_line(&rendered());
    for extra in [
        "--catalog-path=/x",
        "--listen-address=:1",
        "-p",
        "--performance-metrics",
    ] {
        let mut bad = argv.clone();
        bad.push(extra.into());
        for version in VERSIONS {
            assert!(
                parse_catalog(version, &bad).is_err(),
                "{version} accepted {extra}"
            );
        }
    }
    let mut cors = argv.clone();
    cors.push("--cors-allowed-origins=https://dash.example.com".into());
    assert!(parse_catalog(CatalogVersion::Odh0314, &cors).is_ok());
    assert!(parse_catalog(CatalogVersion::Kubeflow038, &cors).is_err());
    let mut proxy = argv.clone();
    proxy[0] = "proxy".into();
    assert!(parse_catalog(CatalogVersion::Odh0314, &proxy).is_err());
}

fn standin(argv: &[String], version: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalog_standin"));
    cmd.args(argv)
        .env("MRO_CATALOG_STANDIN_LISTEN", "127.0.0.1:0")
        .env("MRO_CATALOG_STANDIN_VERSION", version)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn standin_serves_readiness_with_the_rendered_command_line() {
    let argv = command_line(&rendered());
    for version in ["v0.3.14", "v0.3.8"] {
        let mut child = standin(&argv, version)
            .spawn()
            .expect("the stand-in starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(START_DEADLINE, lines.next_line())
            .await
            .expect("the stand-in announces its address in time")
            .unwrap()
            .expect("a line on stdout");
        let addr = line.strip_prefix("listening on ").expect(&line).to_string();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let ready = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{version}");
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "ready");
        let seen: serde_json::Value = http
            .get(format!("http://{addr}/standin/config"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen, serde_json::to_value(expected()).unwrap(), "{version}");
        child.kill().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn standin_exits_non_zero_on_an_unknown_flag() {
    let mut argv = command_line(&rendered());
    argv.push("--catalogs-dir=/data".into());
    let out = tokio::time::timeout(START_DEADLINE, standin(&argv, "v0.3.14").output())
        .await
        .expect("the stand-in exits in time")
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown flag: --catalogs-dir"), "{stderr}");
    assert!(out.stdout.is_empty(), "it never listened");
}
