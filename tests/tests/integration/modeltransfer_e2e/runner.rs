//! Who runs the end-to-end tests' Job pods, and what the tests may ask about those runs.
//!
//! By default the real node ([`mro_tests::node`]): the Job controller's pod is scheduled on the
//! kubelet, which runs our model-sync image under the Job's security context with the volumes,
//! projected tokens and termination message the kubelet itself provides. Test servers stay on the
//! host's loopback; pods reach them at the node's host address ([`PodRunner::for_pods`]), and so
//! does the test process, through the node's host rule, so a URL means the same server on both
//! sides. PersistentVolumeClaims are bound to `hostPath` PersistentVolumes on directories the test
//! can fill and read ([`PodRunner::claim`]).
//!
//! With `MRO_NODE=0` (no root, no node binaries) the test node agent ([`NodeAgent`]) plays the
//! kubelet on the shared control plane instead, with the same assertions; URLs are then the
//! loopback ones unchanged.
//!
//! Why one type with both: the tests assert the same things either way; only how a pod's run is
//! observed differs (the kubelet's pod status and logs, or the agent's records).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use kube::api::{Api, ListParams, PostParams};
use mro_tests::cluster::Cluster;
use mro_tests::model_sync::{self, Profile};
use mro_tests::node::pods::{logs, terminated};
use mro_tests::node::{self, Node};
use mro_tests::node_agent::{HostAliases, NodeAgent};
use serde_json::json;

use crate::modeltransfer_controller::Env;

/// Unless `MRO_NODE=0` ([`node::switched_off`]): the Job pods run on the real node.
pub(super) fn on_node() -> bool {
    !node::switched_off()
}

/// How one Job pod ran, as far as the test can see it.
#[derive(Clone, Debug)]
pub(super) struct PodRun {
    pub(super) pod: String,
    /// `None` while running (or never started, or killed).
    pub(super) exit_code: Option<i32>,
    /// The container (process) has started.
    pub(super) started: bool,
}

/// The process of a running Job pod, to prove later that deleting the pod killed it.
pub(super) enum RunningProcess {
    /// The container's task on the node: its host pid and command line while running.
    Node { pid: u32, cmdline: Vec<u8> },
    /// The agent's run of this pod.
    Agent { pod: String },
}

pub(super) enum PodRunner {
    Node {
        node: &'static Node,
        /// Directories of the `hostPath` PersistentVolumes, removed on drop.
        volumes: tempfile::TempDir,
    },
    Agent(NodeAgent),
}

impl PodRunner {
    /// The control plane the tests run on: the node's, or (`MRO_NODE=0`) the shared vanilla one.
    pub(super) async fn cluster() -> &'static Cluster {
        if on_node() {
            &node::shared().await.cluster
        } else {
            mro_tests::cluster::shared(mro_tests::cluster::Flavour::Vanilla).await
        }
    }

    /// A namespace with an in-process operator whose Jobs run our model-sync image on the node
    /// (or, `MRO_NODE=0`, whatever the agent runs), and the runner of its pods.
    pub(super) async fn env(prefix: &str) -> (Env, PodRunner) {
        if on_node() {
            let node = node::shared().await;
            let image = node.images.model_sync.clone();
            let env = Env::on(&node.cluster, prefix, |s| s.images.model_sync = image).await;
            let runner = PodRunner::for_node(node);
            (env, runner)
        } else {
            let env = Env::new(prefix).await;
            let runner = PodRunner::agent(&env, HostAliases::new()).await;
            (env, runner)
        }
    }

    fn for_node(node: &'static Node) -> PodRunner {
        let volumes = tempfile::Builder::new()
            .prefix("mro-e2e-volumes-")
            .tempdir_in("/var/tmp")
            .expect("a directory for hostPath volumes");
        PodRunner::Node { node, volumes }
    }

    /// The runner for `env`'s namespace: the node when it runs, else the agent with `hosts`
    /// resolvable in its pods (on the node, cluster DNS resolves Service names).
    pub(super) async fn for_env(env: &Env, hosts: HostAliases) -> PodRunner {
        if on_node() {
            PodRunner::for_node(node::shared().await)
        } else {
            PodRunner::agent(env, hosts).await
        }
    }

    async fn agent(env: &Env, hosts: HostAliases) -> PodRunner {
        let bin = model_sync::binary(Profile::Debug)
            .await
            .expect("model-sync binary");
        PodRunner::Agent(
            NodeAgent::start_with_hosts(env.client.clone(), &env.ns, bin, hosts)
                .expect("node agent"),
        )
    }

    pub(super) fn node(&self) -> Option<&'static Node> {
        match self {
            PodRunner::Node { node, .. } => Some(node),
            PodRunner::Agent(_) => None,
        }
    }

    /// `url` (or image reference) of a host test server as a pod must dial it.
    pub(super) fn for_pods(&self, url: &str) -> String {
        match self {
            PodRunner::Node { node, .. } => node.env.for_pods(url),
            PodRunner::Agent(_) => url.to_string(),
        }
    }

    /// The inverse of [`Self::for_pods`] for the test's own clients (which talk to loopback, where
    /// the servers' certificates and helpers expect it).
    pub(super) fn on_host(&self, url: &str) -> String {
        match self {
            PodRunner::Node { node, .. } => {
                url.replace(&format!("{}:", node.env.host_ip), "127.0.0.1:")
            }
            PodRunner::Agent(_) => url.to_string(),
        }
    }

    /// Every Job pod of `env`'s namespace and how it ran.
    pub(super) async fn runs(&self, env: &Env) -> Vec<PodRun> {
        match self {
            PodRunner::Node { .. } => job_pods(env)
                .await
                .iter()
                .map(|p| {
                    let state = p
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|cs| cs.first())
                        .and_then(|c| c.state.clone())
                        .unwrap_or_default();
                    PodRun {
                        pod: p.metadata.name.clone().unwrap_or_default(),
                        exit_code: terminated(p).map(|t| t.exit_code),
                        started: state.running.is_some() || state.terminated.is_some(),
                    }
                })
                .collect(),
            PodRunner::Agent(agent) => agent
                .runs()
                .into_values()
                .map(|r| PodRun {
                    pod: r.pod,
                    exit_code: r.exit_code,
                    started: true,
                })
                .collect(),
        }
    }

    /// The Job pods' states and logs (and the node's last log lines), for failure messages.
    pub(super) async fn describe(&self, env: &Env) -> String {
        match self {
            PodRunner::Node { node, .. } => {
                let mut out = String::new();
                for p in job_pods(env).await {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let log = logs(&env.client, &env.ns, &name)
                        .await
                        .unwrap_or_else(|e| format!("(no log: {e})"));
                    out.push_str(&format!(
                        "--- pod {name} ({:?}, {:?})\n{log}\n",
                        p.status.as_ref().and_then(|s| s.phase.clone()),
                        p.status
                            .as_ref()
                            .and_then(|s| s.container_statuses.as_ref())
                            .and_then(|cs| cs.first())
                            .and_then(|c| c.state.clone()),
                    ));
                }
                out.push_str(&node.describe());
                out
            }
            PodRunner::Agent(agent) => agent.describe(),
        }
    }

    /// The Job pods' logs only (what model-sync printed), for assertions on its output.
    pub(super) async fn logs(&self, env: &Env) -> String {
        match self {
            PodRunner::Node { .. } => {
                let mut out = String::new();
                for p in job_pods(env).await {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let log = logs(&env.client, &env.ns, &name)
                        .await
                        .unwrap_or_else(|e| panic!("the log of pod {name}: {e:#}"));
                    out.push_str(&format!("--- pod {name}\n{log}\n"));
                }
                out
            }
            PodRunner::Agent(agent) => agent.describe(),
        }
    }

    /// Makes PersistentVolumeClaim `claim` of `env`'s namespace usable by pods and returns the
    /// host directory behind it, for the test to fill and read. On the node: a `hostPath`
    /// PersistentVolume reserved for the claim (created by the caller), on a directory any user
    /// may write (the Job runs as a non-root user; `hostPath` ignores `fsGroup`). With the agent:
    /// its directory for the claim.
    pub(super) async fn claim(&self, env: &Env, claim: &str) -> PathBuf {
        match self {
            PodRunner::Node { volumes, .. } => {
                let dir = volumes.path().join(format!("{}-{claim}", env.ns));
                std::fs::create_dir_all(&dir).unwrap();
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
                let pv: PersistentVolume = serde_json::from_value(json!({
                    "metadata": { "name": format!("{}-{claim}", env.ns) },
                    "spec": {
                        "capacity": { "storage": "1Gi" },
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "claimRef": { "namespace": env.ns, "name": claim },
                        "hostPath": { "path": dir.to_string_lossy(), "type": "Directory" }
                    }
                }))
                .unwrap();
                Api::<PersistentVolume>::all(env.client.clone())
                    .create(&PostParams::default(), &pv)
                    .await
                    .expect("create the PersistentVolume");
                dir
            }
            PodRunner::Agent(agent) => agent.pvc_dir(claim),
        }
    }

    /// Waits until the one Job pod of `env`'s namespace runs its process, and returns it.
    pub(super) async fn running_process(&self, env: &Env, within: Duration) -> RunningProcess {
        let deadline = Instant::now() + within;
        loop {
            let runs = self.runs(env).await;
            if let [run] = &runs[..]
                && run.started
            {
                assert_eq!(run.exit_code, None, "{}", self.describe(env).await);
                match self {
                    PodRunner::Agent(_) => {
                        return RunningProcess::Agent {
                            pod: run.pod.clone(),
                        };
                    }
                    PodRunner::Node { node, .. } => {
                        if let Some(p) = task_of(node, env, &run.pod).await {
                            return p;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no running Job pod after {within:?}: {runs:?}\n{}",
                self.describe(env).await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Asserts that `process` was killed (the pod being gone already).
    pub(super) async fn assert_killed(&self, process: RunningProcess, within: Duration) {
        match (self, process) {
            (PodRunner::Agent(agent), RunningProcess::Agent { pod }) => {
                let runs = agent.runs();
                let run = runs.get(&pod).expect("the agent's run of the pod");
                assert!(
                    run.killed,
                    "the pod's process was killed\n{}",
                    agent.describe()
                );
                assert_eq!(run.exit_code, None);
            }
            (PodRunner::Node { node, .. }, RunningProcess::Node { pid, cmdline }) => {
                let deadline = Instant::now() + within;
                // The kubelet stopped the container before the pod object went away; the
                // process is gone (its pid free, or reused by another command).
                while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == cmdline) {
                    assert!(
                        Instant::now() < deadline,
                        "the pod's process {pid} still runs after the pod was deleted\n{}",
                        node.describe()
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            _ => unreachable!("a process of another runner"),
        }
    }
}

async fn job_pods(env: &Env) -> Vec<Pod> {
    Api::<Pod>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels("job-name"))
        .await
        .expect("list the Job pods")
        .items
}

/// The running containerd task of pod `name`'s container (`ctr tasks ls` on the node's
/// containerd): its host pid and command line.
async fn task_of(node: &Node, env: &Env, name: &str) -> Option<RunningProcess> {
    let pod = Api::<Pod>::namespaced(env.client.clone(), &env.ns)
        .get(name)
        .await
        .ok()?;
    let status = pod.status?.container_statuses?.into_iter().next()?;
    status.state?.running?;
    let id = status.container_id?;
    let id = id.strip_prefix("containerd://")?;
    let out = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(node.env.containerd_socket())
        .args(["-n", "k8s.io", "tasks", "ls"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run ctr tasks ls");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))?;
    let mut cols = line.split_whitespace().skip(1);
    let pid: u32 = cols.next()?.parse().ok()?;
    if cols.next() != Some("RUNNING") {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    assert!(
        String::from_utf8_lossy(&cmdline).contains("model-sync"),
        "pod {name}'s task {pid} runs {:?}",
        String::from_utf8_lossy(&cmdline)
    );
    Some(RunningProcess::Node { pid, cmdline })
}
