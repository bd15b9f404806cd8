//! A test-only node agent: plays the kubelet for ModelTransfer Job pods when the real node
//! ([`crate::node`]) is switched off (`MRO_NODE=0`: `make demo` and the end-to-end transfer tests
//! then use it, without the node's binaries or containerd).
//!
//! The shared control planes have no kubelet. [`NodeAgent`] watches the pods of Jobs in one namespace,
//! binds pending ones to [`crate::cluster::TEST_NODE`], and runs each pod's container with the `model-sync` binary
//! under test (in place of the image's entrypoint), configured exactly as the pod says:
//!
//! - volumes are materialised into a per-pod work directory: Secret and ConfigMap volumes (one file
//!   per key, or `items` key→path, with `defaultMode`/`mode`), projected volumes (Secret, ConfigMap
//!   and ServiceAccount-token sources; tokens come from the TokenRequest API for the pod's
//!   ServiceAccount, bound to the pod, with the projection's audience and expiry), `emptyDir` (an
//!   empty directory) and PVCs (a directory per claim under [`NodeAgent::pvc_dir`], which tests
//!   pre-fill or read back);
//! - the environment is resolved (`value` with `$(VAR)` expansion, `secretKeyRef`,
//!   `configMapKeyRef`, `fieldRef`), and `$(VAR)` is expanded in `command`/`args`;
//! - the process runs in a private mount namespace (`unshare --mount --propagation private`) where
//!   every volume is bind-mounted at its `mountPath` (read-only mounts remounted `ro`) and the
//!   container's `terminationMessagePath` is bind-mounted from a host file. Missing mount points
//!   are never created on the host: when a parent directory does not exist (say `/run/secrets`),
//!   its nearest existing ancestor is "shadowed" inside the namespace: a tmpfs is mounted over it
//!   and every original entry is bind-mounted (or symlinked) back, so the namespace sees the host's
//!   content plus the new directories. Nothing of this is visible outside the namespace, and it all
//!   disappears with the process. The network namespace is the host's, so loopback servers work;
//! - with [`HostAliases`] (e.g. a Service's DNS name → 127.0.0.1, as cluster DNS would answer for
//!   its ClusterIP), a hosts file is bind-mounted over `/etc/hosts` inside the namespace.
//!
//! Status is written like a kubelet: `Running` (podIP 127.0.0.1, container running) at start, then
//! `Succeeded`/`Failed` with the container's `terminated` state: exit code, `Completed`/`Error`,
//! and the termination message (the file's content, or with `FallbackToLogsOnError` and an empty
//! file after a failure, the last 80 log lines), capped at 4 KiB. The real Job controller then
//! completes or fails the Job. A pod deleted while running gets SIGTERM (SIGKILL after its grace
//! period, at most 5 s) and is then removed for good (grace period 0), as a kubelet would confirm.
//!
//! A container that fails in a pod whose `restartPolicy` is `OnFailure` (or `Always`) restarts
//! in the same pod, with its volumes as they are, after the kubelet's back-off (10 s, doubling):
//! meanwhile the pod stays `Running`, the container `waiting` (`CrashLoopBackOff`) with the failed
//! run as `lastState`, and `restartCount` counts the restarts.
//!
//! Limits: the process runs as root (no `runAsUser`/`fsGroup`), the root filesystem stays writable,
//! resource limits, probes, init containers, `envFrom`, downward-API volumes and image pulls are
//! not emulated; only the first container is run.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::sync::watch;

use crate::cluster::bind_pod;

mod hosts;
mod mounts;
mod prepare;

pub use hosts::HostAliases;
use prepare::prepare;

/// Default `terminationMessagePath`.
const DEFAULT_TERMINATION_PATH: &str = "/dev/termination-log";
/// The kubelet's cap on termination messages.
const MAX_TERMINATION_BYTES: usize = 4096;
/// Log lines used by `FallbackToLogsOnError`.
const FALLBACK_LOG_LINES: usize = 80;
/// Longest wait between SIGTERM and SIGKILL.
const MAX_GRACE: Duration = Duration::from_secs(5);

/// How one pod run ended (for test diagnostics).
#[derive(Clone, Debug)]
pub struct PodRun {
    pub pod: String,
    /// `None` while running, or when the pod was deleted before it ended.
    pub exit_code: Option<i32>,
    /// Combined stdout/stderr so far (set once the process ended).
    pub log: String,
    /// Whether the pod was deleted while running (and the process killed).
    pub killed: bool,
}

struct Shared {
    client: Client,
    namespace: String,
    binary: PathBuf,
    root: PathBuf,
    hosts: HostAliases,
    runs: Mutex<BTreeMap<String, PodRun>>,
}

/// A running agent for one namespace; stops (killing every process it started) on drop.
pub struct NodeAgent {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    // Dropped last: the work directories (volumes, logs, PVC directories).
    _root: tempfile::TempDir,
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        // Aborting the watch task drops the pod tasks, whose children are killed on drop.
        self.task.abort();
    }
}

impl NodeAgent {
    /// Starts watching Job pods in `namespace` and running them with `model_sync_binary`
    /// (see [`crate::model_sync::binary`]). Must be called inside a tokio runtime.
    pub fn start(
        client: Client,
        namespace: &str,
        model_sync_binary: impl Into<PathBuf>,
    ) -> anyhow::Result<NodeAgent> {
        Self::start_with_hosts(client, namespace, model_sync_binary, HostAliases::new())
    }

    /// Like [`NodeAgent::start`], with `hosts` resolvable inside every pod (see
    /// [`HostAliases`]).
    pub fn start_with_hosts(
        client: Client,
        namespace: &str,
        model_sync_binary: impl Into<PathBuf>,
        hosts: HostAliases,
    ) -> anyhow::Result<NodeAgent> {
        // Outside /tmp: pods mount an emptyDir at /tmp, which must not hide the work directory.
        let base = Path::new("/var/tmp");
        let root = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("mro-node-agent-")
                .tempdir_in(base)?
        } else {
            tempfile::Builder::new()
                .prefix("mro-node-agent-")
                .tempdir()?
        };
        std::fs::create_dir_all(root.path().join("pvc"))?;
        let binary = outside_tmp(model_sync_binary.into(), root.path())?;
        let shared = Arc::new(Shared {
            client,
            namespace: namespace.to_owned(),
            binary,
            root: root.path().to_path_buf(),
            hosts,
            runs: Mutex::new(BTreeMap::new()),
        });
        let task = tokio::spawn(watch_pods(shared.clone()));
        Ok(NodeAgent {
            shared,
            task,
            _root: root,
        })
    }

    /// The directory standing in for PersistentVolumeClaim `claim` (created on first use), for
    /// tests to pre-fill or inspect.
    pub fn pvc_dir(&self, claim: &str) -> PathBuf {
        let d = self.shared.root.join("pvc").join(claim);
        let _ = std::fs::create_dir_all(&d);
        d
    }

    /// Every pod run so far, by pod name.
    pub fn runs(&self) -> BTreeMap<String, PodRun> {
        self.shared.runs.lock().expect("runs").clone()
    }

    /// The runs' logs, for failure messages.
    pub fn describe(&self) -> String {
        self.runs()
            .values()
            .map(|r| {
                format!(
                    "--- pod {} (exit {:?}, killed {})\n{}",
                    r.pod, r.exit_code, r.killed, r.log
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn is_job_pod(pod: &Pod) -> bool {
    pod.labels().contains_key("job-name")
        || pod
            .owner_references()
            .iter()
            .any(|o| o.kind == "Job" && o.api_version.starts_with("batch/"))
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

async fn watch_pods(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    // uid → "delete requested" flag of pods we run.
    let mut running: HashMap<String, watch::Sender<bool>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(ev) = stream.next().await {
        let pods = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => vec![(p, false)],
            Ok(watcher::Event::Delete(p)) => vec![(p, true)],
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "node agent: pod watch error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        for (pod, gone) in pods {
            if !is_job_pod(&pod) {
                continue;
            }
            let uid = pod.uid().unwrap_or_default();
            let deleting = gone || pod.metadata.deletion_timestamp.is_some();
            if let Some(tx) = running.get(&uid) {
                if deleting {
                    let _ = tx.send(true);
                }
                continue;
            }
            if deleting {
                if !gone && !is_terminal(&pod) {
                    // Never started here (or already finished): confirm the deletion.
                    force_delete(&api, &pod).await;
                }
                continue;
            }
            if is_terminal(&pod) {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            running.insert(uid, tx);
            let shared = shared.clone();
            tasks.spawn(async move {
                let name = pod.name_any();
                if let Err(e) = run_pod(shared.clone(), pod, rx).await {
                    tracing::warn!(pod = %name, error = format!("{e:#}"), "node agent: pod run failed");
                    let mut runs = shared.runs.lock().expect("runs");
                    let r = runs.entry(name.clone()).or_insert_with(|| PodRun {
                        pod: name.clone(),
                        exit_code: None,
                        log: String::new(),
                        killed: false,
                    });
                    r.log.push_str(&format!("\nnode agent: {e:#}\n"));
                }
            });
        }
        // Reap finished pod tasks.
        while tasks.try_join_next().is_some() {}
    }
}

async fn force_delete(api: &Api<Pod>, pod: &Pod) {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    if let Err(e) = api.delete(&pod.name_any(), &dp).await {
        tracing::debug!(pod = %pod.name_any(), error = %e, "node agent: force delete");
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Runs one pod to completion (or until it is deleted).
async fn run_pod(
    shared: Arc<Shared>,
    pod: Pod,
    mut deleted: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = &shared.client;
    let ns = &shared.namespace;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let name = pod.name_any();
    bind_pod(client, ns, &pod).await.context("bind the pod")?;
    let spec = pod.spec.clone().context("pod without a spec")?;
    let container = spec
        .containers
        .first()
        .cloned()
        .context("pod without containers")?;
    let work = shared.root.join("pods").join(format!(
        "{name}-{}",
        &pod.uid().unwrap_or_default()[..8.min(pod.uid().unwrap_or_default().len())]
    ));
    std::fs::create_dir_all(&work)?;

    // Volumes and env: retried while a referenced object is missing, as the kubelet would.
    let prepared = loop {
        match prepare(&shared, &pod, &container, &work).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::debug!(pod = %name, error = format!("{e:#}"), "node agent: not ready to start");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = until_deleted(&mut deleted) => {
                        force_delete(&api, &pod).await;
                        return Ok(());
                    }
                }
            }
        }
    };

    // Kept for diagnostics: the exact mount script the pod ran.
    std::fs::write(work.join("script.sh"), &prepared.script)?;
    let log_path = work.join("log");
    // `OnFailure` (and `Always`): a failed container restarts in the same pod, after the
    // kubelet's back-off, with its volumes (the `emptyDir` too) as the failed run left them.
    let restarts_on_failure =
        matches!(spec.restart_policy.as_deref(), Some("OnFailure" | "Always"));
    let mut restarts: u32 = 0;
    let mut last_state = serde_json::Value::Null;
    let mut logs = String::new();
    loop {
        // A new container: a new termination-message file.
        std::fs::write(&prepared.termination_file, b"")?;
        let log = std::fs::File::create(&log_path)?;
        let started = now();
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(&prepared.script)
            .arg("sh")
            .args(&prepared.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(prepared.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn unshare")?;
        let pid = child.id();
        shared.runs.lock().expect("runs").insert(
            name.clone(),
            PodRun {
                pod: name.clone(),
                exit_code: None,
                log: logs.clone(),
                killed: false,
            },
        );
        let container_id = format!("mro-node-agent://{}", pid.unwrap_or_default());
        let running = json!({ "status": {
            "phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
            "podIPs": [{ "ip": "127.0.0.1" }], "startTime": started,
            "conditions": conditions(true, &started),
            "containerStatuses": [{ "name": container.name, "ready": true, "restartCount": restarts,
                "image": container.image.clone().unwrap_or_default(), "imageID": "",
                "containerID": container_id, "started": true,
                "state": { "running": { "startedAt": started } }, "lastState": last_state }]
        }});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&running))
            .await
        {
            tracing::debug!(pod = %name, error = %e, "node agent: Running status");
        }

        let status = tokio::select! {
            s = child.wait() => Some(s?),
            _ = until_deleted(&mut deleted) => None,
        };
        let Some(status) = status else {
            // Deleted while running: SIGTERM, then SIGKILL after the grace period.
            if let Some(pid) = pid {
                let _ = tokio::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            let grace = spec
                .termination_grace_period_seconds
                .map_or(MAX_GRACE, |s| Duration::from_secs(s.max(0) as u64))
                .min(MAX_GRACE);
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(r) = shared.runs.lock().expect("runs").get_mut(&name) {
                r.killed = true;
                r.log = format!("{logs}{log}");
            }
            force_delete(&api, &pod).await;
            return Ok(());
        };

        use std::os::unix::process::ExitStatusExt as _;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(9));
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let mut message = std::fs::read(&prepared.termination_file).unwrap_or_default();
        message.truncate(MAX_TERMINATION_BYTES);
        let mut message = String::from_utf8_lossy(&message).into_owned();
        if message.trim().is_empty()
            && code != 0
            && container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
        {
            message = tail(&log, FALLBACK_LOG_LINES, MAX_TERMINATION_BYTES);
        }
        logs.push_str(&log);
        if let Some(r) = shared.runs.lock().expect("runs").get_mut(&name) {
            r.exit_code = Some(code);
            r.log = if code == 0 {
                logs.clone()
            } else {
                format!("{logs}\n--- mount script\n{}", prepared.script)
            };
        }
        if *deleted.borrow() {
            force_delete(&api, &pod).await;
            return Ok(());
        }
        let finished = now();
        let terminated = json!({ "terminated": { "exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" },
            "message": message, "startedAt": started, "finishedAt": finished,
            "containerID": container_id } });
        if code != 0 && restarts_on_failure {
            // Backing off before the restart, as the kubelet reports it: the pod stays
            // Running, the container waits, and `lastState` is the run that failed.
            let backing_off = json!({ "status": {
                "phase": "Running",
                "conditions": conditions(false, &finished),
                "containerStatuses": [{ "name": container.name, "ready": false,
                    "restartCount": restarts,
                    "image": container.image.clone().unwrap_or_default(), "imageID": "",
                    "started": false,
                    "state": { "waiting": { "reason": "CrashLoopBackOff",
                        "message": format!("back-off restarting failed container {}", container.name) } },
                    "lastState": terminated }]
            }});
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&backing_off))
                .await
            {
                tracing::debug!(pod = %name, error = %e, "node agent: back-off status");
            }
            tokio::select! {
                _ = tokio::time::sleep(restart_backoff(restarts)) => {}
                _ = until_deleted(&mut deleted) => {
                    force_delete(&api, &pod).await;
                    return Ok(());
                }
            }
            restarts += 1;
            last_state = terminated;
            continue;
        }
        let done = json!({ "status": {
            "phase": if code == 0 { "Succeeded" } else { "Failed" },
            "conditions": conditions(false, &finished),
            "containerStatuses": [{ "name": container.name, "ready": false, "restartCount": restarts,
                "image": container.image.clone().unwrap_or_default(), "imageID": "",
                "containerID": container_id, "started": false,
                "state": terminated, "lastState": last_state }]
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&done))
            .await
            .context("write the terminated status")?;
        return Ok(());
    }
}

/// The kubelet's back-off before restarting a failed container: 10 s, doubled per restart, at
/// most 5 minutes.
fn restart_backoff(restarts: u32) -> Duration {
    Duration::from_secs(10u64.saturating_mul(1 << restarts.min(5)).min(300))
}

/// Resolves once the pod is being deleted (never, if the agent is gone).
async fn until_deleted(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|d| *d).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn conditions(ready: bool, at: &str) -> serde_json::Value {
    let r = if ready { "True" } else { "False" };
    json!([
        { "type": "PodScheduled", "status": "True", "lastTransitionTime": at },
        { "type": "Initialized", "status": "True", "lastTransitionTime": at },
        { "type": "ContainersReady", "status": r, "lastTransitionTime": at },
        { "type": "Ready", "status": r, "lastTransitionTime": at },
    ])
}

/// The last `lines` lines of `log`, at most `max` bytes (cut on a character boundary).
fn tail(log: &str, lines: usize, max: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    let mut s = all[all.len().saturating_sub(lines)..].join("\n");
    if s.len() > max {
        let mut start = s.len() - max;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        s = s[start..].to_owned();
    }
    s
}

/// The binary at a path the pods' `/tmp` emptyDir cannot hide: a checkout under `/tmp` (where a
/// CI may clone) is linked, or copied, into the agent's work directory (under `/var/tmp`).
fn outside_tmp(binary: PathBuf, root: &Path) -> anyhow::Result<PathBuf> {
    let canonical = std::fs::canonicalize(&binary).unwrap_or_else(|_| binary.clone());
    if !canonical.starts_with("/tmp") || root.starts_with("/tmp") {
        return Ok(binary);
    }
    let dest = root.join("model-sync");
    if std::fs::hard_link(&canonical, &dest).is_err() {
        std::fs::copy(&canonical, &dest)
            .with_context(|| format!("copy {} to {}", canonical.display(), dest.display()))?;
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_under_tmp_is_moved_where_the_pods_tmp_cannot_hide_it() {
        let checkout = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
        let root = tempfile::Builder::new().tempdir_in("/var/tmp").unwrap();
        let bin = checkout.path().join("model-sync");
        std::fs::write(&bin, b"#!/bin/true\n").unwrap();
        let moved = outside_tmp(bin.clone(), root.path()).unwrap();
        assert_eq!(moved, root.path().join("model-sync"));
        assert_eq!(std::fs::read(&moved).unwrap(), b"#!/bin/true\n");
        // Elsewhere: used where it is.
        let elsewhere = root.path().join("other");
        std::fs::write(&elsewhere, b"x").unwrap();
        assert_eq!(
            outside_tmp(elsewhere.clone(), root.path()).unwrap(),
            elsewhere
        );
    }

    #[test]
    fn tail_keeps_the_end() {
        let log = (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let t = tail(&log, 80, 4096);
        assert!(t.starts_with("20\n") && t.ends_with("99"));
        assert_eq!(tail(&log, 80, 5), "98\n99");
    }
}
