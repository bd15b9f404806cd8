//! A real Kubernetes control plane for tests.
//!
//! One control plane per flavour per test run, started on first use by `tests/local-cluster/cluster.sh`
//! (etcd + kube-apiserver + kube-controller-manager on loopback) and stopped by the script's watchdog
//! when the test process exits. With `USE_EXISTING_CLUSTER=true`, the vanilla flavour is the cluster
//! named by `KUBECONFIG` instead. Our CRDs are installed once per control plane; every test gets its own
//! namespace, so tests run in parallel.
//!
//! Clients are made per test (a client's connection pool belongs to the test's tokio runtime); only
//! configurations are shared.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::OnceCell;

use crate::platform_apis::{self, PlatformApi};
use crate::tools::repo_root;

/// Field manager the harness uses for what it applies.
pub const HARNESS_MANAGER: &str = "mro-test-harness";
/// Namespace and ServiceAccount the operator runs as (the static token file carries this identity).
pub const OPERATOR_NAMESPACE: &str = "model-registry-operator-system";
pub const OPERATOR_SERVICE_ACCOUNT: &str = "model-registry-operator-controller-manager";

/// The Node the harness registers on control planes it starts. No kubelet runs behind it; tests
/// (and the test node agent) bind pods to it and write their status, as a kubelet would.
pub const TEST_NODE: &str = "mro-test-node";

/// Which optional platform APIs a control plane offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// Plain Kubernetes: no OpenShift, Istio or Authorino APIs.
    Vanilla,
    /// OpenShift APIs: Route, Group (user API), Ingress config.
    OpenShift,
    /// OpenShift plus Istio, Authorino and the Gateway API.
    OpenShiftIstio,
}

impl Flavour {
    pub fn platform_apis(self) -> &'static [PlatformApi] {
        match self {
            Flavour::Vanilla => &[],
            Flavour::OpenShift => &[
                PlatformApi::OpenShiftRoute,
                PlatformApi::OpenShiftUser,
                PlatformApi::OpenShiftConfig,
            ],
            Flavour::OpenShiftIstio => &[
                PlatformApi::OpenShiftRoute,
                PlatformApi::OpenShiftUser,
                PlatformApi::OpenShiftConfig,
                PlatformApi::Istio,
                PlatformApi::Authorino,
                PlatformApi::GatewayApi,
            ],
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Flavour::Vanilla => "vanilla",
            Flavour::OpenShift => "openshift",
            Flavour::OpenShiftIstio => "openshift-istio",
        }
    }
}

/// A running control plane (ours or an existing one) and the identities tests use on it.
pub struct Cluster {
    admin: Config,
    operator: Config,
    unprivileged: Option<Config>,
    /// The directory of a control plane we started (stopped on drop for private clusters).
    dir: Option<PathBuf>,
    stop_on_drop: bool,
    /// A real node runs behind this control plane (`cluster.sh --node`): no [`TEST_NODE`].
    real_node: bool,
}

static SHARED: [OnceCell<Cluster>; 3] = [
    OnceCell::const_new(),
    OnceCell::const_new(),
    OnceCell::const_new(),
];

/// One retry (fresh ports and directory): a start can lose a port race or time out on a loaded
/// machine, and one lost start should not fail a test about something else.
async fn start_retrying_once(flavour: Flavour, private: bool) -> anyhow::Result<Cluster> {
    match Cluster::start(flavour, private, false).await {
        Ok(c) => Ok(c),
        Err(e) => {
            tracing::warn!(error = %e, "control plane start failed; retrying once");
            Cluster::start(flavour, private, false).await
        }
    }
}

/// The shared control plane of a flavour, started (and given our CRDs) on first use.
pub async fn shared(flavour: Flavour) -> &'static Cluster {
    crate::init();
    let idx = flavour as usize;
    SHARED[idx]
        .get_or_init(|| async move {
            let cluster = if flavour == Flavour::Vanilla && use_existing_cluster() {
                Cluster::existing().await
            } else {
                start_retrying_once(flavour, false).await
            }
            .unwrap_or_else(|e| panic!("cannot provide a {} control plane: {e:#}", flavour.slug()));
            cluster
                .prepare(flavour)
                .await
                .expect("install CRDs and platform APIs");
            cluster
        })
        .await
}

/// A control plane of its own for one test (e.g. to install platform APIs mid-test). Stopped on drop.
pub async fn private(flavour: Flavour) -> Cluster {
    crate::init();
    let cluster = start_retrying_once(flavour, true)
        .await
        .expect("start a private control plane");
    cluster
        .prepare(flavour)
        .await
        .expect("install CRDs and platform APIs");
    cluster
}

/// A vanilla control plane with a real node (kubelet, containerd, kube-proxy, cluster DNS: see
/// `tests/local-cluster/node.sh`), CRDs installed; stopped when the test process exits, and also
/// when dropped if `private`. Not retried:
/// a node that cannot start is an error to read, not a race to hide.
pub(crate) async fn start_with_node(private: bool) -> anyhow::Result<Cluster> {
    crate::init();
    // One retry with fresh ports and directory, as for the shared control planes: a start can
    // lose a port race (etcd's port taken by another run) on a loaded machine.
    let cluster = match Cluster::start(Flavour::Vanilla, private, true).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "control plane with a node failed to start; retrying once");
            Cluster::start(Flavour::Vanilla, private, true).await?
        }
    };
    cluster.prepare(Flavour::Vanilla).await?;
    Ok(cluster)
}

fn use_existing_cluster() -> bool {
    std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|v| v == "true")
}

async fn config_from(path: &Path) -> anyhow::Result<Config> {
    let kc = Kubeconfig::read_from(path)
        .with_context(|| format!("read kubeconfig {}", path.display()))?;
    Ok(Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?)
}

impl Cluster {
    async fn start(flavour: Flavour, private: bool, real_node: bool) -> anyhow::Result<Cluster> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mro-cluster-{}-{}-{}",
            std::process::id(),
            flavour.slug(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let script = repo_root().join("tests/local-cluster/cluster.sh");
        let pid = std::process::id().to_string();
        let dir2 = dir.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("bash");
            cmd.arg(&script)
                .args(["start", "--dir"])
                .arg(&dir2)
                .args(["--owner-pid", &pid]);
            if real_node {
                cmd.arg("--node");
            }
            cmd.output()
        })
        .await??;
        if !out.status.success() {
            bail!(
                "cluster.sh start failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let admin = config_from(&dir.join("admin.kubeconfig")).await?;
        let operator = config_from(&dir.join("operator.kubeconfig")).await?;
        let unprivileged = Some(config_from(&dir.join("unprivileged.kubeconfig")).await?);
        Ok(Cluster {
            admin,
            operator,
            unprivileged,
            dir: Some(dir),
            stop_on_drop: private,
            real_node,
        })
    }

    /// The cluster named by `KUBECONFIG`. The operator identity is a real ServiceAccount there,
    /// with a token from the TokenRequest API; no unprivileged identity is assumed.
    async fn existing() -> anyhow::Result<Cluster> {
        let admin = Config::infer().await?;
        let client = Client::try_from(admin.clone())?;
        let token =
            service_account_token(&client, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT).await?;
        let mut operator = admin.clone();
        operator.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };
        Ok(Cluster {
            admin,
            operator,
            unprivileged: None,
            dir: None,
            stop_on_drop: false,
            real_node: false,
        })
    }

    async fn prepare(&self, flavour: Flavour) -> anyhow::Result<()> {
        let client = self.admin_client();
        ensure_namespace(&client, OPERATOR_NAMESPACE).await?;
        install_crds(&client, &crd_files()?).await?;
        platform_apis::install(&client, flavour.platform_apis()).await?;
        if self.dir.is_some() && !self.real_node {
            register_test_node(&client).await?;
        }
        Ok(())
    }

    /// A cluster-admin client.
    pub fn admin_client(&self) -> Client {
        Client::try_from(self.admin.clone()).expect("admin client")
    }

    /// A client with exactly the operator's identity (RBAC as shipped in `config/rbac` applies).
    pub fn operator_client(&self) -> Client {
        Client::try_from(self.operator.clone()).expect("operator client")
    }

    /// The operator identity's configuration (for a client built as the operator builds its own,
    /// [`model_registry_operator::run::client`]).
    pub fn operator_config(&self) -> Config {
        self.operator.clone()
    }

    /// An admin client without the client library's retry of 503 answers (which retries a
    /// request to an unavailable aggregated API for minutes).
    pub fn admin_client_without_retry(&self) -> Client {
        let mut config = self.admin.clone();
        config.default_retry = false;
        Client::try_from(config).expect("admin client")
    }

    /// A client acting as `user` (the admin impersonates it: exactly that user's RBAC applies,
    /// as `kubectl --as`).
    pub fn impersonating_client(&self, user: &str) -> Client {
        let mut config = self.admin.clone();
        config.auth_info.impersonate = Some(user.to_string());
        Client::try_from(config).expect("impersonating client")
    }

    /// A client for a user with no role bindings, when the cluster has one.
    pub fn unprivileged_client(&self) -> Option<Client> {
        self.unprivileged
            .clone()
            .map(|c| Client::try_from(c).expect("unprivileged client"))
    }

    /// The directory of a control plane started by the harness (kubeconfigs, logs).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Installs optional platform APIs (CRDs) on this control plane.
    pub async fn install_platform_apis(&self, apis: &[PlatformApi]) -> anyhow::Result<()> {
        platform_apis::install(&self.admin_client(), apis).await
    }

    /// A fresh namespace for one test, named after `prefix`.
    pub async fn namespace(&self, prefix: &str) -> anyhow::Result<String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{}-{}-{}",
            prefix.chars().take(40).collect::<String>(),
            std::process::id() % 10000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("mro-test".to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.admin_client())
            .create(&PostParams::default(), &ns)
            .await?;
        grant_namespace_role(&self.admin_client(), &name).await?;
        Ok(name)
    }

    /// A fresh namespace where the operator holds nothing beyond its cluster-wide role (no
    /// [`grant_namespace_role`]).
    pub async fn namespace_without_operator_rights(&self, prefix: &str) -> anyhow::Result<String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{}-{}-u{}",
            prefix.chars().take(40).collect::<String>(),
            std::process::id() % 10000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ensure_namespace(&self.admin_client(), &name).await?;
        Ok(name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let (true, Some(dir)) = (self.stop_on_drop, &self.dir) {
            let _ = Command::new("bash")
                .arg(repo_root().join("tests/local-cluster/cluster.sh"))
                .args(["stop", "--dir"])
                .arg(dir)
                .output();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The operator's per-namespace ClusterRole (`config/rbac/namespace_role.yaml`, as installed by
/// [`crate::operator::install_rbac`]).
pub const OPERATOR_NAMESPACE_ROLE: &str = "model-registry-operator-namespace-role";
/// The RoleBinding [`grant_namespace_role`] creates.
pub const OPERATOR_NAMESPACE_ROLE_BINDING: &str = "model-registry-operator-namespace-rolebinding";

/// Binds the operator's namespace role (Secrets, the service proxy) to its ServiceAccount in
/// `namespace`, as an installation does in every namespace holding ModelRegistries or
/// ModelTransfers (README, RBAC). Idempotent. Every namespace of [`Cluster::namespace`] has it.
pub async fn grant_namespace_role(client: &Client, namespace: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let rb = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": { "name": OPERATOR_NAMESPACE_ROLE_BINDING, "namespace": namespace },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": OPERATOR_NAMESPACE_ROLE },
        "subjects": [{ "kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT,
                       "namespace": OPERATOR_NAMESPACE }]
    });
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .patch(
            OPERATOR_NAMESPACE_ROLE_BINDING,
            &PatchParams::apply(HARNESS_MANAGER),
            &Patch::Apply(rb),
        )
        .await
        .with_context(|| format!("bind the operator's namespace role in {namespace}"))?;
    Ok(())
}

/// Registers [`TEST_NODE`] as a Ready node (Endpoints and EndpointSlices need pods on a real Node).
async fn register_test_node(client: &Client) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let nodes = Api::<Node>::all(client.clone());
    let node = serde_json::json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": TEST_NODE, "labels": {"kubernetes.io/hostname": TEST_NODE, "kubernetes.io/os": "linux"}}});
    nodes
        .patch(
            TEST_NODE,
            &PatchParams::apply(HARNESS_MANAGER),
            &Patch::Apply(node),
        )
        .await?;
    let status = serde_json::json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": TEST_NODE}]}});
    nodes
        .patch_status(TEST_NODE, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

/// Binds a pending pod to [`TEST_NODE`], as the scheduler would (no-op if already bound).
pub async fn bind_pod(
    client: &Client,
    namespace: &str,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{Binding, ObjectReference};
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some()
    {
        return Ok(());
    }
    let name = pod.metadata.name.clone().context("pod without a name")?;
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(TEST_NODE.into()),
            api_version: Some("v1".into()),
            ..Default::default()
        },
    };
    let body = serde_json::to_vec(&binding)?;
    let req = http::Request::post(format!(
        "/api/v1/namespaces/{namespace}/pods/{name}/binding"
    ))
    .header("content-type", "application/json")
    .body(body)?;
    match client.request::<serde_json::Value>(req).await {
        Ok(_) => Ok(()),
        // Someone bound it meanwhile.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply(HARNESS_MANAGER),
            &Patch::Apply(ns),
        )
        .await?;
    Ok(())
}

/// The committed CRD manifests (`config/crd/bases`), as the operator's users install them.
pub fn crd_files() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let dir = repo_root().join("config/crd/bases");
    let mut crds = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        for doc in serde_saphyr::from_multiple::<CustomResourceDefinition>(&text)
            .with_context(|| format!("parse {}", path.display()))?
        {
            crds.push(doc);
        }
    }
    Ok(crds)
}

/// The API server's minor version (e.g. 20 for 1.20).
pub async fn server_minor(client: &Client) -> anyhow::Result<u32> {
    let info = client.apiserver_version().await?;
    let digits: String = info
        .minor
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .with_context(|| format!("unexpected server minor version {:?}", info.minor))
}

/// Applies CRDs and waits until each is Established. CEL rules are dropped for servers that
/// predate them (they reject the unknown schema field), as `crdgen --server-minor` does for users.
pub async fn install_crds(
    client: &Client,
    crds: &[CustomResourceDefinition],
) -> anyhow::Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let pp = PatchParams::apply(HARNESS_MANAGER).force();
    let minor = server_minor(client).await?;
    for crd in crds {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        let mut crd = mro_api::compat::for_server_minor(crd.clone(), minor);
        crd.metadata.managed_fields = None;
        crd.metadata.resource_version = None;
        api.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("apply CRD {name}"))?;
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        wait_established(&api, &name).await?;
    }
    Ok(())
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        let crd = api.get(name).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("CRD {name} did not become Established")
}

/// A token for a ServiceAccount (created if missing) from the TokenRequest API.
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    ensure_namespace(client, namespace).await?;
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}});
    sas.patch(
        name,
        &PatchParams::apply(HARNESS_MANAGER),
        &Patch::Apply(sa),
    )
    .await?;
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let resp = sas
        .create_token_request(name, &PostParams::default(), &req)
        .await?;
    resp.status
        .map(|s| s.token)
        .context("TokenRequest returned no token")
}
