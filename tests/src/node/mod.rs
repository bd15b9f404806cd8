//! A real node for tests: kubelet + containerd + runc, kube-scheduler, kube-proxy and a cluster DNS
//! behind a control plane of its own (`tests/local-cluster/cluster.sh start --node`, which runs
//! `node.sh`), so that pod-level behaviour (the image's user against `runAsNonRoot`, read-only root
//! filesystems, volume files and modes, termination messages, Service names) is what a kubelet does,
//! not what a stand-in believes it does.
//!
//! One node per test process ([`shared`]); every test gets its own namespace on it. The node lives in
//! a network namespace of its own with no route out of this machine; pods reach the host's loopback
//! test servers at [`NodeEnv::host_ip`] (same port), see [`NodeEnv::for_pods`]. Our images are built
//! offline ([`images`]) and loaded into the node's containerd once per process.
//!
//! The node needs root (network namespaces, cgroups, containerd). When it cannot start, [`shared`]
//! panics with the scripts' reason: tests that claim to run on the node never skip silently.
use std::path::Path;

use tokio::sync::OnceCell;

use crate::cluster::Cluster;

pub mod env;
pub mod images;
pub mod operator;
pub mod pods;
pub mod samples;

pub use env::{NodeEnv, NodeEnvError};
pub use images::Images;

/// The control plane with its real node, and our images loaded into the node's containerd.
pub struct Node {
    pub cluster: Cluster,
    pub env: NodeEnv,
    pub images: Images,
}

impl Node {
    pub fn dir(&self) -> &Path {
        self.cluster.dir().expect("a node's control plane is ours")
    }

    /// The last lines of the node's logs (kubelet, containerd), for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for name in ["kubelet", "containerd", "kube-proxy"] {
            let path = self.dir().join("node/logs").join(format!("{name}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {} (last lines)\n", path.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// `MRO_NODE=0`: the real node is switched off (`make test-deps MRO_NODE=0` provisions none of its
/// parts, and no root is needed for it). Tests that exist only on the node return early, saying so
/// on stderr; the end-to-end transfer tests run their Job pods with the test node agent instead.
/// Any other value (or none) means the node runs, and a node that cannot start fails its tests.
pub fn switched_off() -> bool {
    std::env::var("MRO_NODE").is_ok_and(|v| v.trim() == "0")
}

/// For tests that exist only on the node: true (after saying so on stderr) when it is switched
/// off ([`switched_off`]), so the test returns without claiming anything.
pub fn skip_when_switched_off(test: &str) -> bool {
    let off = switched_off();
    if off {
        eprintln!("MRO_NODE=0: {test} needs the real node and did not run");
    }
    off
}

/// The node of this test process, started on first use. Panics with the reason when it cannot start.
pub async fn shared() -> &'static Node {
    static NODE: OnceCell<Node> = OnceCell::const_new();
    NODE.get_or_init(|| async {
        start(false).await.unwrap_or_else(|e| {
            panic!("cannot start the real node (tests/local-cluster/node.sh): {e:#}")
        })
    })
    .await
}

/// A node of the caller's own (`make demo`): its control plane, kubelet, containerd and pods are
/// stopped when it is dropped (and when this process exits, by the control plane's watchdog).
pub async fn start_private() -> anyhow::Result<Node> {
    start(true).await
}

async fn start(private: bool) -> anyhow::Result<Node> {
    use anyhow::Context as _;
    let cluster = crate::cluster::start_with_node(private).await?;
    let dir = cluster.dir().context("node cluster directory")?;
    let env_path = dir.join("node.env");
    let text = std::fs::read_to_string(&env_path)
        .with_context(|| format!("read {}", env_path.display()))?;
    let env = NodeEnv::parse(&text)?;
    let images = Images::build_and_load(&env, &dir.join("images")).await?;
    Ok(Node {
        cluster,
        env,
        images,
    })
}
