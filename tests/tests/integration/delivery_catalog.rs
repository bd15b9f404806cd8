//! The Model Catalog's delivery: config/overlays/catalog carries the Go overlay's parameters
//! (config/overlays/catalog/params.env@08f64eb:1-12) through the same replacements
//! (replacements.yaml@08f64eb:2-137) to Deployment `catalog-controller-manager`; the overlay and
//! the sample are accepted by the API server; the Deployment runs the binary's `catalog`
//! subcommand as its own ServiceAccount, and the chart's `catalog.enabled` deploys the same
//! controller with the same rules.
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
    // Runnable: one replica of the `catalog` subcommand, as the overlay's ServiceAccount.
    assert_eq!(dep["spec"]["replicas"], 1);
    assert_eq!(c["args"], serde_json::json!(["catalog", "--leader-elect"]));
    assert_eq!(
        dep["spec"]["template"]["spec"]["serviceAccountName"],
        "catalog-controller-manager"
    );
    assert!(
        rendered
            .iter()
            .any(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "catalog-manager-role")
    );
}

/// The rules of the ClusterRole named `name` among `docs`.
fn rules_of(docs: &[Value], name_suffix: &str) -> Value {
    docs.iter()
        .find(|d| {
            d["kind"] == "ClusterRole"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(name_suffix))
        })
        .unwrap_or_else(|| panic!("ClusterRole *{name_suffix}"))["rules"]
        .clone()
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
fn chart_deploys_the_catalog_controller_with_the_overlay_rules() {
    let chart = ["template", "mro", "charts/model-registry-operator"];
    let off = run(&npm_tool("helm"), &chart, None).unwrap();
    assert!(!off.contains("catalog-controller"));
    let mut on = chart.to_vec();
    on.extend(["--set", "catalog.enabled=true"]);
    let rendered = docs(&run(&npm_tool("helm"), &on, None).unwrap());
    let dep = rendered
        .iter()
        .find(|d| {
            d["kind"] == "Deployment"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("catalog-controller-manager"))
        })
        .expect("the catalog controller's Deployment");
    let spec = &dep["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][0]["args"][0], "catalog");
    assert_eq!(spec["containers"][0]["args"][1], "--leader-elect");
    assert!(
        spec["serviceAccountName"]
            .as_str()
            .unwrap()
            .ends_with("catalog-controller-manager")
    );
    let overlay = docs(&kustomize("config/overlays/catalog"));
    assert_eq!(
        rules_of(&rendered, "catalog-manager-role"),
        rules_of(&overlay, "catalog-manager-role"),
        "the chart's catalog rules differ from config/overlays/catalog/rbac.yaml"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_has_the_catalog_subcommand() {
    let bin = cargo_bin(
        "model-registry-operator",
        "model-registry-operator",
        "MRO_OPERATOR_BIN",
    )
    .await
    .unwrap();
    let out = Command::new(bin)
        .args(["catalog", "--help"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Model Catalog controller"), "{stdout}");
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
