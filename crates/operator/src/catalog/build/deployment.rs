//! The catalog server's Deployment `model-catalog`: two init containers copy the catalog and
//! benchmark data into emptyDirs, the server runs `/model-registry catalog` on port 8080 with
//! every sources file, and kube-rbac-proxy fronts it on 8443.
//!
//! Layout, arguments, probes and mounts follow T/catalog/catalog-deployment.yaml.tmpl@08f64eb
//! (T/ = internal/controller/config/templates/): volumes :35-65, init containers :67-95, the
//! server :97-183, the proxy :184-234 (always present: the Go controller always configures it,
//! internal/controller/catalog_controller.go@08f64eb:1133-1156). The server's flags are checked
//! against its command line by the integration suite's catalog contract test.
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use mro_api::catalog::Catalog;
use serde_json::{Value, json};

use super::input::CatalogInput;
use super::names::{self, Component};

/// The server's HTTP port (`http-api`).
pub const SERVER_PORT: i32 = 8080;
/// kube-rbac-proxy's HTTPS port (`https-proxy`), the Service's `https-api`.
pub const PROXY_PORT: i32 = 8443;
/// kube-rbac-proxy's health port (`proxy-healthz`).
pub const PROXY_HEALTH_PORT: i32 = 8888;
/// The server's readiness path.
pub const READINESS_PATH: &str = "/readyz";
/// Where the benchmark data is copied and read.
pub const BENCHMARK_DIR: &str = "/shared-benchmark-data";
/// The server's command.
pub const COMMAND: [&str; 2] = ["/model-registry", "catalog"];

/// The sources ConfigMaps every server reads, as (volume, ConfigMap), in argument order.
const SOURCE_VOLUMES: [(&str, &str); 4] = [
    ("default-sources", names::DEFAULT_SOURCES),
    ("user-model-sources", names::USER_MODEL_SOURCES),
    ("user-mcp-sources", names::USER_MCP_SOURCES),
    ("user-agent-sources", names::USER_AGENT_SOURCES),
];

/// The server's arguments: listen address, one `--catalogs-path` per sources file (the
/// default and user ones, then each labeled source in the order given), the benchmark data.
pub fn server_args(labeled_sources: &[String]) -> Vec<String> {
    let mut args = vec![format!("--listen=0.0.0.0:{SERVER_PORT}")];
    for (volume, _) in SOURCE_VOLUMES {
        args.push(format!(
            "--catalogs-path=/data/{volume}/{}",
            names::SOURCES_KEY
        ));
    }
    for cm in labeled_sources {
        args.push(format!(
            "--catalogs-path=/data/labeled-sources/{cm}/{}",
            names::SOURCES_KEY
        ));
    }
    args.push(format!("--performance-metrics={BENCHMARK_DIR}"));
    args
}

/// The server container's resources: `spec.resources.catalog`, else requests cpu 100m and
/// memory 256Mi with a memory limit of 256Mi (internal/controller/config/defaults.go@08f64eb:96).
pub fn server_resources(catalog: &Catalog) -> ResourceRequirements {
    catalog
        .spec
        .resources
        .catalog
        .clone()
        .unwrap_or_else(|| ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "256Mi")])),
            limits: Some(quantities(&[("memory", "256Mi")])),
            ..ResourceRequirements::default()
        })
}

pub(super) fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn secret_env(name: &str, key: &str) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": names::POSTGRES, "key": key}}})
}

fn restricted() -> Value {
    json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
}

/// The Deployment.
pub fn deployment(input: &CatalogInput) -> Deployment {
    let catalog = input.catalog;
    let images = &input.settings.images;
    let labeled = &input.labeled_sources;

    let mut volumes: Vec<Value> = SOURCE_VOLUMES
        .iter()
        .map(|(v, cm)| json!({"name": v, "configMap": {"name": cm}}))
        .collect();
    volumes.push(json!({"name": "catalog-data", "emptyDir": {}}));
    volumes.push(json!({"name": "benchmark-data", "emptyDir": {}}));
    volumes.extend(
        labeled
            .iter()
            .map(|cm| json!({"name": format!("labeled-{cm}"), "configMap": {"name": cm}})),
    );
    volumes.push(json!({"name": "kube-rbac-proxy-tls",
        "secret": {"secretName": names::PROXY_TLS_SECRET, "defaultMode": 0o600}}));
    volumes.push(json!({"name": "kube-rbac-proxy-config",
        "configMap": {"name": names::PROXY_CONFIG}}));

    let mut mounts: Vec<Value> = SOURCE_VOLUMES
        .iter()
        .map(|(v, _)| json!({"name": v, "mountPath": format!("/data/{v}")}))
        .collect();
    mounts.push(json!({"name": "catalog-data", "mountPath": "/shared-data"}));
    mounts.push(json!({"name": "benchmark-data", "mountPath": BENCHMARK_DIR}));
    mounts.extend(labeled.iter().map(|cm| {
        json!({"name": format!("labeled-{cm}"), "mountPath": format!("/data/labeled-sources/{cm}")})
    }));

    let healthz = json!({"path": "/healthz", "port": "proxy-healthz", "scheme": "HTTPS"});
    let value = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names::owned(catalog, names::NAME, Component::Catalog),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 0,
            "selector": {"matchLabels": names::selector()},
            "template": {
                "metadata": {
                    "labels": names::selector(),
                    "annotations": {"openshift.io/required-scc": "restricted-v2"},
                },
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true},
                    "serviceAccountName": names::NAME,
                    "volumes": volumes,
                    "initContainers": [
                        {
                            "name": "catalog-data-init",
                            "image": images.catalog_data,
                            "command": ["/bin/sh", "-c", "cp /app/data/*.yaml /shared-data/"],
                            "volumeMounts": [{"name": "catalog-data", "mountPath": "/shared-data"}],
                            "securityContext": restricted(),
                        },
                        {
                            "name": "benchmark-data-init",
                            "image": images.benchmark_data,
                            "command": ["/bin/sh", "-c",
                                format!("cp -r /app/benchmarks/* {BENCHMARK_DIR}/ || true")],
                            "volumeMounts": [{"name": "benchmark-data", "mountPath": BENCHMARK_DIR}],
                            "securityContext": restricted(),
                        },
                    ],
                    "containers": [
                        {
                            "name": "catalog",
                            "image": images.server,
                            "command": COMMAND,
                            "args": server_args(labeled),
                            "ports": [{"name": "http-api", "containerPort": SERVER_PORT}],
                            "livenessProbe": {"initialDelaySeconds": 30, "periodSeconds": 5,
                                "timeoutSeconds": 2, "tcpSocket": {"port": "http-api"}},
                            "readinessProbe": {"initialDelaySeconds": 3, "periodSeconds": 5,
                                "timeoutSeconds": 2,
                                "httpGet": {"path": READINESS_PATH, "port": "http-api", "scheme": "HTTP"}},
                            "resources": server_resources(catalog),
                            "securityContext": restricted(),
                            "volumeMounts": mounts,
                            "env": [
                                {"name": "PGHOST", "value": names::POSTGRES},
                                secret_env("PGDATABASE", "database-name"),
                                secret_env("PGUSER", "database-user"),
                                secret_env("PGPASSWORD", "database-password"),
                            ],
                        },
                        {
                            "name": "kube-rbac-proxy",
                            "image": images.kube_rbac_proxy,
                            "args": [
                                format!("--secure-listen-address=0.0.0.0:{PROXY_PORT}"),
                                format!("--upstream=http://127.0.0.1:{SERVER_PORT}/"),
                                format!("--proxy-endpoints-port={PROXY_HEALTH_PORT}"),
                                "--logtostderr=true",
                                "--v=0",
                                "--config-file=/etc/kube-rbac-proxy/config-file.yaml",
                                "--tls-cert-file=/etc/tls/tls.crt",
                                "--tls-private-key-file=/etc/tls/tls.key",
                            ],
                            "ports": [
                                {"containerPort": PROXY_PORT, "name": "https-proxy", "protocol": "TCP"},
                                {"containerPort": PROXY_HEALTH_PORT, "name": "proxy-healthz", "protocol": "TCP"},
                            ],
                            "livenessProbe": {"httpGet": healthz, "initialDelaySeconds": 30,
                                "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3},
                            "readinessProbe": {"httpGet": healthz, "initialDelaySeconds": 5,
                                "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3},
                            "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
                            "volumeMounts": [
                                {"mountPath": "/etc/tls", "name": "kube-rbac-proxy-tls"},
                                {"mountPath": "/etc/kube-rbac-proxy", "name": "kube-rbac-proxy-config"},
                            ],
                        },
                    ],
                },
            },
        },
    });
    serde_json::from_value(value).expect("the catalog Deployment is a valid Deployment")
}
