//! Operator settings: command-line flags, each with an environment variable (the names the Go
//! operator's users already set in their manager Deployments).
use std::collections::BTreeMap;
use std::net::SocketAddr;

use clap::{Args, ValueEnum};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Container images the operator deploys.
#[derive(Clone, Debug, Args)]
pub struct Images {
    /// Model Registry REST server image.
    #[arg(
        long = "rest-image",
        env = "REST_IMAGE",
        default_value = "quay.io/opendatahub/model-registry:v0.3.14"
    )]
    pub rest: String,
    /// Server version of REST images whose tag is not a version (digest-only references,
    /// `latest`, custom builds), e.g. `v0.3.14`: it decides the Deployment's layout and flags.
    /// Images tagged with a version use their tag.
    #[arg(long = "rest-image-version", env = "REST_IMAGE_VERSION")]
    pub rest_version: Option<String>,
    /// ML Metadata gRPC server image (the layout of REST servers up to v0.2.20).
    #[arg(
        long = "grpc-image",
        env = "GRPC_IMAGE",
        default_value = "quay.io/opendatahub/mlmd-grpc-server:latest"
    )]
    pub grpc: String,
    /// OpenShift OAuth proxy image.
    #[arg(
        long = "oauth-proxy-image",
        env = "OAUTH_PROXY_IMAGE",
        default_value = "quay.io/openshift/origin-oauth-proxy:4.14.0"
    )]
    pub oauth_proxy: String,
    /// kube-rbac-proxy image.
    #[arg(
        long = "kube-rbac-proxy-image",
        env = "KUBE_RBAC_PROXY_IMAGE",
        default_value = "quay.io/brancz/kube-rbac-proxy:v0.18.1"
    )]
    pub kube_rbac_proxy: String,
    /// model-sync image run by ModelTransfer Jobs.
    #[arg(
        long = "model-sync-image",
        env = "MODEL_SYNC_IMAGE",
        default_value = "quay.io/opendatahub/model-sync:latest"
    )]
    pub model_sync: String,
}

/// Defaults applied to ModelRegistry resources that leave them unset.
#[derive(Clone, Debug, Default, Args)]
pub struct RegistryDefaults {
    /// Default domain for Routes and Istio gateway hosts (else the cluster ingress config on OpenShift).
    #[arg(long = "default-domain", env = "DEFAULT_DOMAIN")]
    pub domain: Option<String>,
    /// Default Authorino auth provider name for Istio AuthorizationPolicies.
    #[arg(long = "default-auth-provider", env = "DEFAULT_AUTH_PROVIDER")]
    pub auth_provider: Option<String>,
    /// Default labels for AuthConfigs, as `k=v,k2=v2`.
    #[arg(long = "default-auth-config-labels", env = "DEFAULT_AUTH_CONFIG_LABELS", value_parser = parse_labels)]
    pub auth_config_labels: Option<BTreeMap<String, String>>,
    /// Default Istio ingress gateway name.
    #[arg(long = "default-istio-ingress", env = "DEFAULT_ISTIO_INGRESS")]
    pub istio_ingress: Option<String>,
    /// Default Istio control plane name.
    #[arg(long = "default-control-plane", env = "DEFAULT_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    /// Default TLS credential name for gateway servers.
    #[arg(long = "default-cert", env = "DEFAULT_CERT")]
    pub cert: Option<String>,
}

/// Everything the operator process is configured with.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    #[command(flatten)]
    pub images: Images,
    #[command(flatten)]
    pub defaults: RegistryDefaults,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long = "watch-namespace", env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// When set, ModelRegistry resources are only accepted in this namespace.
    #[arg(long = "registries-namespace", env = "REGISTRIES_NAMESPACE")]
    pub registries_namespace: Option<String>,
    /// Create Authorino/Istio auth resources for Istio-enabled registries.
    #[arg(long = "create-auth-resources", env = "CREATE_AUTH_RESOURCES", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_auth_resources: bool,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(
        long = "metrics-bind-address",
        env = "METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// Address of the `/healthz` and `/readyz` probes.
    #[arg(
        long = "health-probe-bind-address",
        env = "HEALTH_PROBE_BIND_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    pub health_addr: SocketAddr,
    /// Run controllers only while holding the leader Lease (safe with several replicas).
    #[arg(long = "leader-elect", env = "LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long = "leader-election-namespace", env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        long = "leader-election-id",
        env = "LEADER_ELECTION_ID",
        default_value = "model-registry-operator-lock"
    )]
    pub leader_election_id: String,
    /// Identity in the Lease (default: the hostname).
    #[arg(long = "leader-election-identity", env = "POD_NAME")]
    pub leader_election_identity: Option<String>,
    /// Reconciles each controller runs at once (0: unbounded). Bounded, so that the changes
    /// piling up for a resource while it waits are handled by one reconcile, resources are
    /// handled in the order they changed, and memory stays flat with thousands of resources.
    #[arg(
        long = "max-concurrent-reconciles",
        env = "MAX_CONCURRENT_RECONCILES",
        default_value_t = 8
    )]
    pub max_concurrent_reconciles: u16,
    /// Log format.
    #[arg(
        long = "log-format",
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("expected key=value pairs separated by commas, got {pair:?}"))?;
        if k.trim().is_empty() {
            return Err(format!("empty label key in {pair:?}"));
        }
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

impl Settings {
    /// Settings with every default, for tests.
    pub fn for_tests() -> Settings {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            s: Settings,
        }
        <P as clap::Parser>::try_parse_from(["test"])
            .expect("defaults parse")
            .s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_reject_garbage() {
        let l = parse_labels("a=b, c = d ,").unwrap();
        assert_eq!(l.get("a").unwrap(), "b");
        assert_eq!(l.get("c").unwrap(), "d");
        assert!(parse_labels("novalue").unwrap_err().contains("key=value"));
        assert!(parse_labels("=x").is_err());
    }
}
