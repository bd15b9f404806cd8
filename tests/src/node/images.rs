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
}

impl Images {
    pub const MODEL_SYNC: &'static str = "mro.local/model-sync:dev";
    pub const MODEL_SYNC_ROOT: &'static str = "mro.local/model-sync-root:dev";
    pub const OPERATOR: &'static str = "mro.local/operator:dev";
    pub const BUSYBOX: &'static str = "mro.local/busybox:dev";
    pub const MODEL_REGISTRY: &'static str = "mro.local/model-registry:v0.3.14";
    pub const POSTGRES: &'static str = "mro.local/postgresql:15";
    pub const MARIADB: &'static str = "mro.local/mariadb:10.11";

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
        })
    }
}
