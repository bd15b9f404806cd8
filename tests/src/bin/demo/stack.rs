//! Everything the demo runs: the local control plane, the storage and registry servers, the
//! operator process and the test node agent. Dropping a [`Stack`] stops all of it.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use mro_tests::cluster::{self, Cluster, Flavour};
use mro_tests::model_registry::ModelRegistryStandIn;
use mro_tests::model_registry::deployment::StartedContainer;
use mro_tests::model_sync::{self, Profile};
use mro_tests::node_agent::NodeAgent;
use mro_tests::oci_registry::OciRegistry;
use mro_tests::ports::free_port;
use mro_tests::postgres::Postgres;
use mro_tests::s3::S3Server;
use tokio::process::Child;

use crate::names::FIELD_MANAGER;

/// How long the operator may take to report ready (cache sync on a busy 2-core machine).
const OPERATOR_READY: Duration = Duration::from_secs(120);

/// The two binaries the demo runs: the operator, and model-sync (run by the node agent in the
/// place of the Job container's image).
pub struct Binaries {
    pub operator: PathBuf,
    pub model_sync: PathBuf,
}

impl Binaries {
    /// `MRO_OPERATOR_BIN` / `MODEL_SYNC_BIN` when set (`make demo` builds both first), else
    /// built with cargo.
    pub async fn locate() -> anyhow::Result<Binaries> {
        let operator = mro_tests::tools::cargo_bin(
            "model-registry-operator",
            "model-registry-operator",
            "MRO_OPERATOR_BIN",
        )
        .await
        .context("the operator binary")?;
        let model_sync = model_sync::binary(Profile::Debug)
            .await
            .context("the model-sync binary")?;
        for b in [&operator, &model_sync] {
            if !b.is_file() {
                bail!("{} does not exist; build it first", b.display());
            }
        }
        Ok(Binaries {
            operator,
            model_sync,
        })
    }
}

/// The test node agent runs each pod in a private mount namespace (`unshare --mount`), which
/// needs root (or CAP_SYS_ADMIN): fail before starting anything when that is not available.
pub async fn check_mount_namespaces() -> anyhow::Result<()> {
    let out = tokio::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .stdin(Stdio::null())
        .output()
        .await
        .context("run `unshare` (util-linux)")?;
    if !out.status.success() {
        bail!(
            "the test node agent cannot create a mount namespace (`unshare --mount` failed: {}); \
             run the demo as root, as the end-to-end tests are",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The storage and registry servers, on loopback ports.
pub struct Servers {
    pub s3: S3Server,
    pub oci: OciRegistry,
    /// Started from the operator's Deployment once the sample ModelRegistry exists.
    pub registry: std::sync::OnceLock<StartedContainer>,
    /// The sample database the registry's DSN names.
    pub database: Postgres,
    /// The bearer token the stand-in requires (random per run).
    pub registry_token: String,
    /// A tiny base image in `oci`, in place of the busybox a real cluster would pull.
    pub base_image: String,
}

impl Servers {
    pub async fn start() -> anyhow::Result<Servers> {
        let s3 = S3Server::start().await.context("start the S3 server")?;
        let oci = OciRegistry::start_plain()
            .await
            .context("start the OCI registry (Debian's docker-registry)")?;
        let registry_token = format!("demo-{:016x}", rand_u64());
        let database = crate::registry::start_database().await?;
        let base_image = model_sync::push_base_image(&oci)
            .await
            .context("push the base image")?;
        Ok(Servers {
            s3,
            oci,
            registry: std::sync::OnceLock::new(),
            database,
            registry_token,
            base_image,
        })
    }
}

impl Servers {
    /// The registry stand-in (started by the "model registry" step).
    pub fn registry(&self) -> &ModelRegistryStandIn {
        &self
            .registry
            .get()
            .expect("the registry is started from its Deployment first")
            .server
            .standin
    }
}

/// A per-run random number without another dependency: the hash of the time and the pid.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The operator binary, run as a child process with the operator's identity.
pub struct OperatorProcess {
    child: Child,
    pub pid: u32,
    pub log: PathBuf,
    pub metrics: String,
    pub health: String,
}

impl OperatorProcess {
    /// Starts `model-registry-operator run` against the control plane in `cluster_dir`, with the
    /// operator's ServiceAccount token (`operator.kubeconfig`) and waits until `/readyz` is OK.
    pub async fn start(binary: &Path, cluster_dir: &Path, log: PathBuf) -> anyhow::Result<Self> {
        let (health, metrics) = (free_port(), free_port());
        let health = format!("127.0.0.1:{health}");
        let metrics = format!("127.0.0.1:{metrics}");
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = tokio::process::Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", cluster_dir.join("operator.kubeconfig"))
            .env("RUST_LOG", "info")
            .args(["--health-probe-bind-address", &health])
            .args(["--metrics-bind-address", &metrics])
            // The settings are the top-level command's, so they come before the subcommand.
            .arg("run")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let pid = child.id().context("operator pid")?;
        let mut op = OperatorProcess {
            child,
            pid,
            log,
            metrics,
            health,
        };
        op.wait_ready().await?;
        Ok(op)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.health);
        let deadline = Instant::now() + OPERATOR_READY;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the operator exited ({status}) before it was ready:\n{}",
                    tail(&self.log, 20)
                );
            }
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator was not ready after {OPERATOR_READY:?}:\n{}",
                    tail(&self.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then up to 20 s for a clean exit (SIGKILL after that).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("the operator exited with {status}");
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the operator did not stop within 20 s of SIGTERM (killed)")
            }
        }
    }
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Everything that runs, in start order; dropped in reverse (fields drop in declaration order,
/// so the list below is reversed on purpose).
pub struct Stack {
    pub agent: NodeAgent,
    pub operator: Option<OperatorProcess>,
    pub servers: Servers,
    pub cluster: Cluster,
    /// Operator log and other files of this run (kept with DEMO_KEEP=1, else removed).
    pub _work: tempfile::TempDir,
    pub namespace: String,
}

impl Stack {
    pub fn admin(&self) -> kube::Client {
        self.cluster.admin_client()
    }

    pub fn cluster_dir(&self) -> &Path {
        self.cluster
            .dir()
            .expect("the demo always starts its own control plane")
    }

    /// Stops the operator (gracefully), then everything else by dropping it.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let op = self.operator.take();
        let stopped = match op {
            Some(op) => op.stop().await,
            None => Ok(()),
        };
        drop(self);
        stopped
    }
}

/// A private control plane (stopped when dropped, and by its watchdog when this process dies).
pub async fn control_plane() -> Cluster {
    cluster::private(Flavour::Vanilla).await
}

/// Creates the demo namespace (server-side apply: idempotent).
pub async fn namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns = serde_json::json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(ns))
        .await
        .with_context(|| format!("create namespace {name}"))?;
    // The operator's Secrets and service-proxy rights there (README, RBAC).
    mro_tests::cluster::grant_namespace_role(client, name).await?;
    Ok(())
}
