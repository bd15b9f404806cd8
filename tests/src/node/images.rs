//! Our images for the real node, built offline by `tests/local-cluster/images.sh` (the Dockerfile's
//! stages with a base made from this machine's Debian packages) from the binaries under test, and
//! imported into the node's containerd. Pods refer to them by these names with
//! `imagePullPolicy: IfNotPresent` (or `Never`): nothing is ever pulled.
use std::path::Path;

use anyhow::{Context as _, bail};

use super::env::NodeEnv;
use crate::model_sync::{self, Profile};
use crate::tools::{cargo_bin, repo_root};

/// References of the images loaded into the node's containerd.
#[derive(Clone, Debug)]
pub struct Images {
    /// The model-sync stage: `/model-sync`, user 65532.
    pub model_sync: String,
    /// The same filesystem with `USER 0`, for `runAsNonRoot` refusals.
    pub model_sync_root: String,
    /// The operator stage: `/model-registry-operator run`, user 65532.
    pub operator: String,
    /// A static busybox, user 65532, for pods that inspect their volumes, DNS and network.
    pub busybox: String,
    /// The Model Registry stand-in (`model_registry_standin`) at `/model-registry`, claiming
    /// the version of its tag: the operator's REST image on the node.
    pub model_registry: String,
    /// PostgreSQL from Debian's packages, for the sample database Deployments.
    pub postgres: String,
    /// MariaDB from Debian's packages, for the MySQL sample database Deployments.
    pub mariadb: String,
    /// The Model Catalog server stand-in (`catalog_standin`) at `/model-registry`: the catalog
    /// Deployment's server image on the node.
    pub model_catalog: String,
    /// The data the catalog Deployment's init containers copy (a shell, `cp`, small test files).
    pub catalog_data: String,
    /// The kube-rbac-proxy stand-in (`kube_rbac_proxy_standin`): the catalog's sidecar on the node.
    pub kube_rbac_proxy: String,
}

impl Images {
    pub const MODEL_SYNC: &'static str = "mro.local/model-sync:dev";
    pub const MODEL_SYNC_ROOT: &'static str = "mro.local/model-sync-root:dev";
    pub const OPERATOR: &'static str = "mro.local/operator:dev";
    pub const BUSYBOX: &'static str = "mro.local/busybox:dev";
    pub const MODEL_REGISTRY: &'static str = "mro.local/model-registry:v0.3.14";
    pub const POSTGRES: &'static str = "mro.local/postgresql:15";
    pub const MARIADB: &'static str = "mro.local/mariadb:10.11";
    pub const MODEL_CATALOG: &'static str = "mro.local/model-catalog:v0.3.14";
    pub const CATALOG_DATA: &'static str = "mro.local/catalog-data:dev";
    pub const KUBE_RBAC_PROXY: &'static str = "mro.local/kube-rbac-proxy:dev";

    /// Builds the images from the binaries under test into `out` and imports them.
    pub async fn build_and_load(env: &NodeEnv, out: &Path) -> anyhow::Result<Images> {
        let sync = model_sync::binary(Profile::Debug).await?;
        let operator = cargo_bin(
            "model-registry-operator",
            "model-registry-operator",
            "MRO_OPERATOR_BIN",
        )
        .await?;
        let standin = cargo_bin("mro-tests", "model_registry_standin", "MRO_STANDIN_BIN").await?;
        let catalog = cargo_bin("mro-tests", "catalog_standin", "MRO_CATALOG_STANDIN_BIN").await?;
        let proxy = cargo_bin(
            "mro-tests",
            "kube_rbac_proxy_standin",
            "MRO_RBAC_PROXY_STANDIN_BIN",
        )
        .await?;
        let script = repo_root().join("tests/local-cluster/images.sh");
        let output = tokio::process::Command::new("bash")
            .arg(&script)
            .arg("--out")
            .arg(out)
            .arg("--model-sync")
            .arg(&sync)
            .arg("--operator")
            .arg(&operator)
            .arg("--busybox")
            .arg("--standin")
            .arg(&standin)
            .arg("--databases")
            .arg("--catalog")
            .arg(&catalog)
            .arg("--rbac-proxy")
            .arg(&proxy)
            .arg("--import")
            .arg(env.containerd_socket())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("run {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "images.sh failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let listed = String::from_utf8_lossy(&output.stdout);
        for name in [
            Self::MODEL_SYNC,
            Self::MODEL_SYNC_ROOT,
            Self::OPERATOR,
            Self::BUSYBOX,
            Self::MODEL_REGISTRY,
            Self::POSTGRES,
            Self::MARIADB,
            Self::MODEL_CATALOG,
            Self::CATALOG_DATA,
            Self::KUBE_RBAC_PROXY,
        ] {
            if !listed.lines().any(|l| l.split(' ').next() == Some(name)) {
                bail!("images.sh did not build {name}; it printed:\n{listed}");
            }
        }
        Ok(Images {
            model_sync: Self::MODEL_SYNC.into(),
            model_sync_root: Self::MODEL_SYNC_ROOT.into(),
            operator: Self::OPERATOR.into(),
            busybox: Self::BUSYBOX.into(),
            model_registry: Self::MODEL_REGISTRY.into(),
            postgres: Self::POSTGRES.into(),
            mariadb: Self::MARIADB.into(),
            model_catalog: Self::MODEL_CATALOG.into(),
            catalog_data: Self::CATALOG_DATA.into(),
            kube_rbac_proxy: Self::KUBE_RBAC_PROXY.into(),
        })
    }
}
