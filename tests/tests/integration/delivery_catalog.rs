//! The Model Catalog's delivery: config/overlays/catalog carries the Go overlay's parameters
//! (config/overlays/catalog/params.env@08f64eb:1-12) through the same replacements
//! (replacements.yaml@08f64eb:2-137) to Deployment `catalog-controller-manager`; the overlay and
//! the sample are accepted by the API server; and nothing claims the controller runs: the
//! Deployment has no replicas, the chart refuses `catalog.enabled`, and the operator binary
//! refuses the `catalog` subcommand.
use std::collections::BTreeSet;
use std::process::Command;

use mro_tests::cluster::{self, Flavour};
use mro_tests::tools::{cargo_bin, repo_root};
use serde_json::Value;

use crate::delivery::{docs, dry_run, kustomize, npm_tool, run};

/// The Go overlay's keys, in its order.
const GO_KEYS: [&str; 12] = [
    "IMAGES_MODELREGISTRY_OPERATOR",
    "kube-rbac-proxy",
    "IMAGES_POSTGRES",
    "IMAGES_CATALOG_DATA",
    "IMAGES_BENCHMARK_DATA",
    "REGISTRIES_NAMESPACE",
    "DEFAULT_DOMAIN",
    "SKIP_MODEL_CATALOG_DB_CREATION",
    "GATEWAY_DOMAIN",
    "GATEWAY_NAME",
    "GATEWAY_NAMESPACE",
    "HTTPROUTE_NAMESPACE",
];

fn params() -> Vec<(String, String)> {
    std::fs::read_to_string(repo_root().join("config/overlays/catalog/params.env"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn overlay_has_the_go_parameters_and_each_reaches_the_deployment() {
    let params = params();
    let keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, GO_KEYS);

    let rendered = docs(&kustomize("config/overlays/catalog"));
    let cm = rendered
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["name"] == "catalog-operator-parameters"
        })
        .expect("the parameters ConfigMap");
    assert_eq!(cm["metadata"]["namespace"], "opendatahub");
    assert!(
        rendered
            .iter()
            .any(|d| d["kind"] == "CustomResourceDefinition"
                && d["metadata"]["name"] == "catalogs.aihub.opendatahub.io")
    );
    let dep = rendered
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the catalog controller's Deployment");
    assert_eq!(dep["metadata"]["name"], "catalog-controller-manager");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["name"], "manager");
    let env = |n: &str| -> Option<Value> {
        c["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == n)
            .map(|e| e["value"].clone())
    };
    // Each key's value, as the replacements carry it (the Go overlay's targets).
    for (key, value) in &params {
        let got = match key.as_str() {
            "IMAGES_MODELREGISTRY_OPERATOR" => Some(c["image"].clone()),
            "kube-rbac-proxy" => env("RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE"),
            "IMAGES_POSTGRES" => env("RELATED_IMAGE_POSTGRESQL_16_IMAGE"),
            "IMAGES_CATALOG_DATA" => env("RELATED_IMAGE_ODH_MODEL_METADATA_COLLECTION_IMAGE"),
            "IMAGES_BENCHMARK_DATA" => env("RELATED_IMAGE_ODH_MODEL_PERFORMANCE_DATA_IMAGE"),
            other => env(other),
        };
        assert_eq!(got, Some(Value::String(value.clone())), "{key}");
    }
    // Every replacement reads a key of params.env (and every key is read).
    let repl: Vec<Value> = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("config/overlays/catalog/replacements.yaml"))
            .unwrap(),
    )
    .unwrap();
    let read: BTreeSet<String> = repl
        .iter()
        .map(|r| {
            r["source"]["fieldPath"]
                .as_str()
                .unwrap()
                .trim_start_matches("data.")
                .to_string()
        })
        .collect();
    assert_eq!(read, GO_KEYS.iter().map(|k| k.to_string()).collect());
    // Not yet runnable, and saying so.
    assert_eq!(dep["spec"]["replicas"], 0);
    assert!(
        dep["metadata"]["annotations"]["modelregistry.opendatahub.io/status"]
            .as_str()
            .unwrap()
            .contains("not yet wired")
    );
}

#[test]
fn overlay_crd_is_the_generated_one() {
    assert_eq!(
        std::fs::read(
            repo_root().join("config/overlays/catalog/aihub.opendatahub.io_catalogs.yaml")
        )
        .unwrap(),
        std::fs::read(repo_root().join("config/crd/bases/aihub.opendatahub.io_catalogs.yaml"))
            .unwrap(),
        "config/overlays/catalog's CRD is stale: run make manifests"
    );
}

#[test]
fn chart_refuses_the_catalog_until_the_controller_is_wired() {
    let chart = ["template", "mro", "charts/model-registry-operator"];
    let off = run(&npm_tool("helm"), &chart, None).unwrap();
    assert!(!off.contains("catalog-controller"));
    let mut on = chart.to_vec();
    on.extend(["--set", "catalog.enabled=true"]);
    let err = run(&npm_tool("helm"), &on, None).unwrap_err().to_string();
    assert!(err.contains("not yet wired"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_has_no_catalog_subcommand_yet() {
    let bin = cargo_bin(
        "model-registry-operator",
        "model-registry-operator",
        "MRO_OPERATOR_BIN",
    )
    .await
    .unwrap();
    let out = Command::new(bin).arg("catalog").output().unwrap();
    assert!(
        !out.status.success(),
        "the operator pretends to run a catalog controller"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("catalog"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn overlay_and_sample_are_accepted_by_the_api_server() {
    let cluster = cluster::shared(Flavour::OpenShiftIstio).await;
    let ns = cluster.namespace("delivery-catalog").await.unwrap();
    // The overlay names its namespace; everything but the CRD (installed by the harness) is
    // dry-run into the test's namespace.
    let overlay = kustomize("config/overlays/catalog")
        .split("\n---\n")
        .filter(|d| !d.contains("kind: CustomResourceDefinition\n"))
        .collect::<Vec<_>>()
        .join("\n---\n")
        .replace("namespace: opendatahub\n", &format!("namespace: {ns}\n"));
    dry_run(cluster, &ns, &overlay, "config/overlays/catalog");
    dry_run(
        cluster,
        &ns,
        &kustomize("config/samples/catalog"),
        "sample catalog",
    );
}
