//! Operator settings: command-line flags, each with an environment variable (the names the Go
//! operator's users already set in their manager Deployments).
use std::collections::BTreeMap;
use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use serde::Serialize;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// What kube-rbac-proxy checks before a request reaches a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyAuthorization {
    /// The Go operator's configuration: `get` on `services/<name>` for every method with
    /// kube-rbac-proxy builds that honour `verb` (OpenDataHub's); upstream builds ignore it and
    /// check the method's verb on the Service. Whoever could use a registry the Go operator
    /// deployed (including `view` holders) still can.
    Service,
    /// The method's verb (GET `get`, POST `create`, ...) on `services/<name>/proxy`, the same
    /// with every kube-rbac-proxy build; `registry-user-<name>` grants those verbs there, which
    /// allow no change to the Service itself.
    ServiceProxy,
}

/// The value of a legacy environment variable (a name the Go operator read before it moved to
/// `RELATED_IMAGE_*`), else `default`. Used as a clap default, so an explicit flag or the current
/// variable name wins over it.
fn legacy_env(name: &str, default: &str) -> String {
    or_default(std::env::var(name).ok(), default)
}

/// `value` unless it is absent or empty (an empty `KEY=` in params.env means "not set").
fn or_default(value: Option<String>, default: &str) -> String {
    value
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Container images the operator deploys. Each reads the `RELATED_IMAGE_*` variable the Go
/// operator's HEAD reads (and the ODH operator's CSV sets), then the name older Go releases read.
#[derive(Clone, Debug, Args, Serialize)]
pub struct Images {
    /// Model Registry REST server image (legacy variable: REST_IMAGE).
    #[arg(
        global = true,
        long = "rest-image",
        env = "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE",
        default_value_t = legacy_env("REST_IMAGE", "quay.io/opendatahub/model-registry:v0.3.14")
    )]
    pub rest: String,
    /// Server version of REST images whose tag is not a version (digest-only references,
    /// `latest`, custom builds), e.g. `v0.3.14`: it decides the Deployment's layout and flags.
    /// Images tagged with a version use their tag.
    #[arg(global = true, long = "rest-image-version", env = "REST_IMAGE_VERSION")]
    pub rest_version: Option<String>,
    /// ML Metadata gRPC server image (the layout of REST servers up to v0.2.20).
    #[arg(
        global = true,
        long = "grpc-image",
        env = "GRPC_IMAGE",
        default_value = "quay.io/opendatahub/mlmd-grpc-server:latest"
    )]
    pub grpc: String,
    /// OpenShift OAuth proxy image.
    #[arg(
        global = true,
        long = "oauth-proxy-image",
        env = "OAUTH_PROXY_IMAGE",
        default_value = "quay.io/openshift/origin-oauth-proxy:4.14.0"
    )]
    pub oauth_proxy: String,
    /// kube-rbac-proxy image (legacy variable: KUBE_RBAC_PROXY_IMAGE).
    #[arg(
        global = true,
        long = "kube-rbac-proxy-image",
        env = "RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE",
        default_value_t = legacy_env("KUBE_RBAC_PROXY_IMAGE", "quay.io/brancz/kube-rbac-proxy:v0.18.1")
    )]
    pub kube_rbac_proxy: String,
    /// model-sync image run by ModelTransfer Jobs. Read from the variable the ODH operator fills
    /// with its async-upload Job image (legacy variable: MODEL_SYNC_IMAGE).
    #[arg(
        global = true,
        long = "model-sync-image",
        env = "RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE",
        default_value_t = legacy_env(mro_job_contract::settings::LEGACY_IMAGE_ENV, "quay.io/opendatahub/model-sync:latest")
    )]
    pub model_sync: String,
    /// PostgreSQL image of the databases `spec.postgres.generateDeployment` provisions, unless
    /// `spec.postgres.image` names one (legacy variable: POSTGRES_IMAGE).
    #[arg(
        global = true,
        long = "postgres-image",
        env = "RELATED_IMAGE_POSTGRESQL_16_IMAGE",
        default_value_t = legacy_env("POSTGRES_IMAGE", "quay.io/sclorg/postgresql-16-c10s:latest")
    )]
    pub postgres: String,
    /// Model catalog data image (legacy variable: CATALOG_DATA_IMAGE): the catalog server's
    /// `catalog-data-init` container (`catalog` subcommand).
    #[arg(
        global = true,
        long = "catalog-data-image",
        env = "RELATED_IMAGE_ODH_MODEL_METADATA_COLLECTION_IMAGE",
        default_value_t = legacy_env("CATALOG_DATA_IMAGE", "quay.io/opendatahub/odh-model-metadata-collection:latest")
    )]
    pub catalog_data: String,
    /// Model catalog benchmark data image (legacy variable: BENCHMARK_DATA_IMAGE): the catalog
    /// server's `benchmark-data-init` container (`catalog` subcommand).
    #[arg(
        global = true,
        long = "benchmark-data-image",
        env = "RELATED_IMAGE_ODH_MODEL_PERFORMANCE_DATA_IMAGE",
        default_value_t = legacy_env("BENCHMARK_DATA_IMAGE", "quay.io/opendatahub/odh-model-metadata-collection:latest")
    )]
    pub benchmark_data: String,
}

/// The Data Science Gateway the ODH operator points registries at. With `GATEWAY_DOMAIN` set, every
/// registry gets an HTTPRoute `model-registry-<name>` in `HTTPROUTE_NAMESPACE` attached to Gateway
/// `GATEWAY_NAMESPACE/GATEWAY_NAME` (when the cluster serves `gateway.networking.k8s.io`), and its
/// Service the address `<GATEWAY_DOMAIN>/model-registry/<name>`, as the Go operator does.
#[derive(Clone, Debug, Default, Args, Serialize)]
pub struct Gateway {
    /// Gateway API mode's base domain: unset, no HTTPRoutes are made (the other GATEWAY_*
    /// settings are then unused).
    #[arg(
        global = true,
        long = "gateway-domain",
        env = "GATEWAY_DOMAIN",
        id = "gateway_domain"
    )]
    pub domain: Option<String>,
    /// Name of the Gateway the HTTPRoutes attach to (default: data-science-gateway).
    #[arg(
        global = true,
        long = "gateway-name",
        env = "GATEWAY_NAME",
        id = "gateway_name"
    )]
    pub name: Option<String>,
    /// Namespace of that Gateway (default: openshift-ingress).
    #[arg(
        global = true,
        long = "gateway-namespace",
        env = "GATEWAY_NAMESPACE",
        id = "gateway_namespace"
    )]
    pub namespace: Option<String>,
    /// Namespace the HTTPRoutes are created in (default: redhat-ods-applications, as the Go
    /// operator; the ODH operator always sets it to its applications namespace).
    #[arg(
        global = true,
        long = "httproute-namespace",
        env = "HTTPROUTE_NAMESPACE"
    )]
    pub httproute_namespace: Option<String>,
}

/// The Go operator's defaults for the gateway settings.
pub const DEFAULT_GATEWAY_NAME: &str = "data-science-gateway";
pub const DEFAULT_GATEWAY_NAMESPACE: &str = "openshift-ingress";
pub const DEFAULT_HTTPROUTE_NAMESPACE: &str = "redhat-ods-applications";

impl Gateway {
    /// The base domain when Gateway API mode is on.
    pub fn active_domain(&self) -> Option<&str> {
        self.domain.as_deref().filter(|d| !d.trim().is_empty())
    }
    pub fn gateway_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_GATEWAY_NAME)
    }
    pub fn gateway_namespace(&self) -> &str {
        self.namespace
            .as_deref()
            .unwrap_or(DEFAULT_GATEWAY_NAMESPACE)
    }
    pub fn route_namespace(&self) -> &str {
        self.httproute_namespace
            .as_deref()
            .unwrap_or(DEFAULT_HTTPROUTE_NAMESPACE)
    }
}

/// Defaults applied to ModelRegistry resources that leave them unset.
#[derive(Clone, Debug, Default, Args, Serialize)]
pub struct RegistryDefaults {
    /// Default domain for Routes and Istio gateway hosts (else the cluster ingress config on OpenShift).
    #[arg(global = true, long = "default-domain", env = "DEFAULT_DOMAIN")]
    pub domain: Option<String>,
    /// Default Authorino auth provider name for Istio AuthorizationPolicies.
    #[arg(
        global = true,
        long = "default-auth-provider",
        env = "DEFAULT_AUTH_PROVIDER"
    )]
    pub auth_provider: Option<String>,
    /// Default labels for AuthConfigs, as `k=v,k2=v2`.
    #[arg(global = true, long = "default-auth-config-labels", env = "DEFAULT_AUTH_CONFIG_LABELS", value_parser = parse_labels)]
    pub auth_config_labels: Option<BTreeMap<String, String>>,
    /// Default Istio ingress gateway name.
    #[arg(
        global = true,
        long = "default-istio-ingress",
        env = "DEFAULT_ISTIO_INGRESS"
    )]
    pub istio_ingress: Option<String>,
    /// Default Istio control plane name.
    #[arg(
        global = true,
        long = "default-control-plane",
        env = "DEFAULT_CONTROL_PLANE"
    )]
    pub control_plane: Option<String>,
    /// Default TLS credential name for gateway servers.
    #[arg(global = true, long = "default-cert", env = "DEFAULT_CERT")]
    pub cert: Option<String>,
    /// Audiences of the API server's tokens, as `a,b`: what an Authorino AuthConfig accepts when
    /// a registry's `spec.istio.audiences` is unset. Default: the `aud` of the operator's own
    /// ServiceAccount token (the cluster's API audiences), else `https://kubernetes.default.svc`.
    #[arg(
        global = true,
        long = "api-audiences",
        env = "API_AUDIENCES",
        value_delimiter = ','
    )]
    pub api_audiences: Vec<String>,
}

/// Unpadded base64url (a JWT segment).
fn base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Audience of tokens the AuthConfig accepts when neither the spec nor the operator's
/// `API_AUDIENCES` (by default its own token's `aud`) names one: the API server's usual own,
/// which is what ordinary user and service account tokens carry.
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc";

/// Where the operator's own ServiceAccount token is mounted.
pub const SERVICE_ACCOUNT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The `aud` claim of a JWT (a string or a list), without verifying it: the token is the
/// operator's own, read from its mount, and only tells which audiences the API server issues.
pub fn token_audiences(jwt: &str) -> Vec<String> {
    let Some(payload) = jwt.trim().split('.').nth(1) else {
        return Vec::new();
    };
    let Some(bytes) = base64url(payload.trim_end_matches('=')) else {
        return Vec::new();
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    match &claims["aud"] {
        serde_json::Value::String(a) if !a.is_empty() => vec![a.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Everything the operator process is configured with.
#[derive(Clone, Debug, Args, Serialize)]
pub struct Settings {
    #[command(flatten)]
    pub images: Images,
    #[command(flatten)]
    pub defaults: RegistryDefaults,
    #[command(flatten)]
    pub gateway: Gateway,
    /// Watch only this namespace (default: all namespaces).
    #[arg(global = true, long = "watch-namespace", env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// When set, ModelRegistry resources are only accepted in this namespace.
    #[arg(
        global = true,
        long = "registries-namespace",
        env = "REGISTRIES_NAMESPACE"
    )]
    pub registries_namespace: Option<String>,
    /// What kube-rbac-proxy authorizes (`service`: the Go operator's check, as the ODH overlay
    /// sets; `service-proxy`: the method's verb on the Service's `proxy` subresource).
    #[arg(
        global = true,
        long = "kube-rbac-proxy-authorization",
        env = "KUBE_RBAC_PROXY_AUTHORIZATION",
        value_enum,
        default_value = "service-proxy"
    )]
    pub kube_rbac_proxy_authorization: ProxyAuthorization,
    /// Rewrite every stored `spec.oauthProxy` registry to `spec.kubeRBACProxy` (port, TLS
    /// Secrets, serviceRoute, domain and routePort kept, not the image), as the Go operator's
    /// HEAD does; on in the ODH overlay, where registries are taken over from it.
    #[arg(global = true, long = "migrate-oauth-proxy", env = "MIGRATE_OAUTH_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub migrate_oauth_proxy: bool,
    /// Replace every stored `spec.istio` with `spec.oauthProxy` as the Go operator's HEAD does
    /// (the gateway's domain and TLS port kept; then `kubeRBACProxy` with
    /// `MIGRATE_OAUTH_PROXY`); on in the ODH overlay, which dropped the service mesh. Off: Istio
    /// registries are served with the mesh.
    #[arg(global = true, long = "migrate-istio", env = "MIGRATE_ISTIO", default_value_t = false, action = clap::ArgAction::Set)]
    pub migrate_istio: bool,
    /// Create Authorino/Istio auth resources for Istio-enabled registries.
    #[arg(global = true, long = "create-auth-resources", env = "CREATE_AUTH_RESOURCES", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_auth_resources: bool,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(
        global = true,
        long = "metrics-bind-address",
        env = "METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080",
        value_parser = parse_bind_addr
    )]
    pub metrics_addr: SocketAddr,
    /// Address of the `/healthz` and `/readyz` probes.
    #[arg(
        global = true,
        long = "health-probe-bind-address",
        env = "HEALTH_PROBE_BIND_ADDRESS",
        default_value = "0.0.0.0:8081",
        value_parser = parse_bind_addr
    )]
    pub health_addr: SocketAddr,
    /// Run controllers only while holding the leader Lease (safe with several replicas).
    #[arg(global = true, long = "leader-elect", env = "LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(
        global = true,
        long = "leader-election-namespace",
        env = "POD_NAMESPACE"
    )]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        global = true,
        long = "leader-election-id",
        env = "LEADER_ELECTION_ID",
        default_value = "model-registry-operator-lock"
    )]
    pub leader_election_id: String,
    /// Identity in the Lease (default: the hostname).
    #[arg(global = true, long = "leader-election-identity", env = "POD_NAME")]
    pub leader_election_identity: Option<String>,
    /// Reconciles each controller runs at once (0: unbounded). Bounded, so that the changes
    /// piling up for a resource while it waits are handled by one reconcile, resources are
    /// handled in the order they changed, and memory stays flat with thousands of resources.
    #[arg(
        global = true,
        long = "max-concurrent-reconciles",
        env = "MAX_CONCURRENT_RECONCILES",
        default_value_t = 8
    )]
    pub max_concurrent_reconciles: u16,
    /// Log format.
    #[arg(
        global = true,
        long = "log-format",
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// A listen address: `host:port`, or `:port` for every IPv4 interface (the Go operator's form,
/// which the manager Deployments pass).
fn parse_bind_addr(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    full.parse()
        .map_err(|e| format!("expected host:port or :port, got {s:?}: {e}"))
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

/// An empty value (`KEY=` in params.env, `value: ""` in a Deployment) means "not set".
fn unset_if_empty(v: &mut Option<String>) {
    if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
        *v = None;
    }
}

impl Settings {
    /// The parsed settings with empty optional values treated as unset: the ODH params.env
    /// ships `KEY=` for settings the ODH operator fills in later, and clap passes those through.
    pub fn normalized(mut self) -> Settings {
        let d = &mut self.defaults;
        let g = &mut self.gateway;
        for v in [
            &mut self.images.rest_version,
            &mut d.domain,
            &mut d.auth_provider,
            &mut d.istio_ingress,
            &mut d.control_plane,
            &mut d.cert,
            &mut g.domain,
            &mut g.name,
            &mut g.namespace,
            &mut g.httproute_namespace,
            &mut self.watch_namespace,
            &mut self.registries_namespace,
            &mut self.leader_election_namespace,
            &mut self.leader_election_identity,
        ] {
            unset_if_empty(v);
        }
        d.api_audiences.retain(|a| !a.trim().is_empty());
        self
    }

    /// Fills `api_audiences` when unset: from the operator's own ServiceAccount token, else
    /// the API server's conventional audience. Called once at start.
    pub fn with_api_audiences_resolved(mut self, token_path: &std::path::Path) -> Settings {
        if self.defaults.api_audiences.is_empty() {
            let from_token = std::fs::read_to_string(token_path)
                .map(|t| token_audiences(&t))
                .unwrap_or_default();
            self.defaults.api_audiences = if from_token.is_empty() {
                vec![DEFAULT_AUDIENCE.to_owned()]
            } else {
                from_token
            };
        }
        self
    }

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
            .normalized()
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

    #[test]
    fn bind_addresses_take_the_go_port_only_form() {
        assert_eq!(
            parse_bind_addr(":8080").unwrap(),
            "0.0.0.0:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_bind_addr("127.0.0.1:9").unwrap(),
            "127.0.0.1:9".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_bind_addr(":http").unwrap_err().contains(":port"));
    }

    #[test]
    fn legacy_names_fill_in_only_when_set_and_non_empty() {
        assert_eq!(or_default(Some("old/rest:1".into()), "d"), "old/rest:1");
        assert_eq!(or_default(Some(" ".into()), "d"), "d");
        assert_eq!(or_default(None, "d"), "d");
    }

    #[test]
    fn empty_values_are_unset_and_flags_reach_every_odh_setting() {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            s: Settings,
        }
        let s = <P as clap::Parser>::try_parse_from([
            "test",
            "--registries-namespace=odh-model-registries",
            "--gateway-domain=apps.example.com",
            "--gateway-name=data-science-gateway",
            "--gateway-namespace=openshift-ingress",
            "--httproute-namespace=",
            "--default-cert=default-modelregistry-cert",
            "--postgres-image=pg:16",
            "--catalog-data-image=cat:1",
            "--benchmark-data-image=bench:1",
            "--model-sync-image=sync:1",
            "--metrics-bind-address=:18080",
        ])
        .unwrap()
        .s
        .normalized();
        assert_eq!(
            s.registries_namespace.as_deref(),
            Some("odh-model-registries")
        );
        assert_eq!(s.gateway.domain.as_deref(), Some("apps.example.com"));
        assert_eq!(s.gateway.name.as_deref(), Some("data-science-gateway"));
        assert_eq!(s.gateway.namespace.as_deref(), Some("openshift-ingress"));
        assert_eq!(s.gateway.httproute_namespace, None, "empty means unset");
        assert_eq!(
            s.defaults.cert.as_deref(),
            Some("default-modelregistry-cert")
        );
        assert_eq!(
            (
                s.images.postgres.as_str(),
                s.images.catalog_data.as_str(),
                s.images.benchmark_data.as_str(),
                s.images.model_sync.as_str()
            ),
            ("pg:16", "cat:1", "bench:1", "sync:1")
        );
        assert_eq!(s.metrics_addr.port(), 18080);
    }
}

#[cfg(test)]
mod audience_tests {
    use super::*;

    #[test]
    fn token_audiences_are_read_from_the_jwt() {
        // {"aud":["https://kubernetes.default.svc","k3s"],"sub":"x"}
        let payload =
            "eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjIiwiazNzIl0sInN1YiI6IngifQ";
        assert_eq!(
            token_audiences(&format!("h.{payload}.s")),
            vec!["https://kubernetes.default.svc".to_string(), "k3s".into()]
        );
        // {"aud":"api"}
        assert_eq!(
            token_audiences("h.eyJhdWQiOiJhcGkifQ.s"),
            vec!["api".to_string()]
        );
        assert!(token_audiences("garbage").is_empty());
        let dir = std::env::temp_dir().join(format!("mro-aud-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "h.eyJhdWQiOiJhcGkifQ.s").unwrap();
        let s = Settings::for_tests().with_api_audiences_resolved(&path);
        assert_eq!(s.defaults.api_audiences, vec!["api".to_string()]);
        let s = Settings::for_tests().with_api_audiences_resolved(&dir.join("missing"));
        assert_eq!(s.defaults.api_audiences, vec![DEFAULT_AUDIENCE.to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
