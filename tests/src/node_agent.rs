//! A test-only node agent: plays the kubelet for ModelTransfer Job pods, for end-to-end tests.
//!
//! The local control plane has no kubelet. [`NodeAgent`] watches the pods of Jobs in one namespace,
//! binds pending ones to [`TEST_NODE`], and runs each pod's container with the `model-sync` binary
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
//!   disappears with the process. The network namespace is the host's, so loopback servers work.
//!
//! Status is written like a kubelet: `Running` (podIP 127.0.0.1, container running) at start, then
//! `Succeeded`/`Failed` with the container's `terminated` state: exit code, `Completed`/`Error`,
//! and the termination message (the file's content, or with `FallbackToLogsOnError` and an empty
//! file after a failure, the last 80 log lines), capped at 4 KiB. The real Job controller then
//! completes or fails the Job. A pod deleted while running gets SIGTERM (SIGKILL after its grace
//! period, at most 5 s) and is then removed for good (grace period 0), as a kubelet would confirm.
//!
//! Limits: the process runs as root (no `runAsUser`/`fsGroup`), the root filesystem stays writable,
//! resource limits, probes, init containers, `envFrom`, downward-API volumes and image pulls are
//! not emulated; only the first container is run.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::sync::watch;

use crate::cluster::{TEST_NODE, bind_pod};

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
        let shared = Arc::new(Shared {
            client,
            namespace: namespace.to_owned(),
            binary: model_sync_binary.into(),
            root: root.path().to_path_buf(),
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
            log: String::new(),
            killed: false,
        },
    );
    let container_id = format!("mro-node-agent://{}", pid.unwrap_or_default());
    let running = json!({ "status": {
        "phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "podIPs": [{ "ip": "127.0.0.1" }], "startTime": started,
        "conditions": conditions(true, &started),
        "containerStatuses": [{ "name": container.name, "ready": true, "restartCount": 0,
            "image": container.image.clone().unwrap_or_default(), "imageID": "",
            "containerID": container_id, "started": true,
            "state": { "running": { "startedAt": started } } }]
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
            r.log = log;
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
    if let Some(r) = shared.runs.lock().expect("runs").get_mut(&name) {
        r.exit_code = Some(code);
        r.log = if code == 0 {
            log
        } else {
            format!("{log}\n--- mount script\n{}", prepared.script)
        };
    }
    if *deleted.borrow() {
        force_delete(&api, &pod).await;
        return Ok(());
    }
    let finished = now();
    let done = json!({ "status": {
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "conditions": conditions(false, &finished),
        "containerStatuses": [{ "name": container.name, "ready": false, "restartCount": 0,
            "image": container.image.clone().unwrap_or_default(), "imageID": "",
            "containerID": container_id, "started": false,
            "state": { "terminated": { "exitCode": code,
                "reason": if code == 0 { "Completed" } else { "Error" },
                "message": message, "startedAt": started, "finishedAt": finished,
                "containerID": container_id } } }]
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&done))
        .await
        .context("write the terminated status")?;
    Ok(())
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

/// What a pod needs to start.
struct Prepared {
    script: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    termination_file: PathBuf,
}

async fn prepare(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    work: &Path,
) -> anyhow::Result<Prepared> {
    let spec = pod.spec.as_ref().context("pod without a spec")?;
    let mut objects = Objects::new(shared.client.clone(), &shared.namespace);
    let volumes_dir = work.join("volumes");
    if volumes_dir.exists() {
        std::fs::remove_dir_all(&volumes_dir)?;
    }
    std::fs::create_dir_all(&volumes_dir)?;
    let mut sources: HashMap<String, PathBuf> = HashMap::new();
    for v in spec.volumes.iter().flatten() {
        let dir = materialise(shared, &mut objects, pod, v, &volumes_dir).await?;
        sources.insert(v.name.clone(), dir);
    }
    let env = resolve_env(&mut objects, pod, container).await?;
    let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // The image's entrypoint is model-sync: our binary takes its place.
    let mut argv: Vec<String> = Vec::new();
    if let Some(cmd) = &container.command {
        let (first, rest) = cmd.split_first().context("empty command")?;
        let first = expand(first, &lookup);
        if !first
            .rsplit('/')
            .next()
            .unwrap_or("")
            .contains("model-sync")
        {
            bail!("container command {first:?} is not model-sync");
        }
        argv.extend(rest.iter().map(|a| expand(a, &lookup)));
    }
    argv.extend(container.args.iter().flatten().map(|a| expand(a, &lookup)));

    let termination_file = work.join("termination-log");
    std::fs::write(&termination_file, b"")?;
    let mut plan = MountPlan::new(work.join("stash"));
    let mut mounts: Vec<_> = container.volume_mounts.iter().flatten().collect();
    mounts.sort_by_key(|m| Path::new(&m.mount_path).components().count());
    let guarded = [shared.root.as_path(), shared.binary.as_path()];
    for m in mounts {
        let src = sources
            .get(&m.name)
            .with_context(|| format!("volumeMount {} names no volume", m.name))?;
        let src = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => src.join(sub),
            None => src.clone(),
        };
        let target = host_canonical(Path::new(&m.mount_path));
        if guarded.iter().any(|g| g.starts_with(&target)) {
            bail!(
                "mountPath {} would hide the node agent's own files",
                m.mount_path
            );
        }
        plan.bind(&src, &target, m.read_only == Some(true))?;
    }
    let tpath = container
        .termination_message_path
        .clone()
        .unwrap_or_else(|| DEFAULT_TERMINATION_PATH.into());
    plan.bind(&termination_file, &host_canonical(Path::new(&tpath)), false)?;

    let mut script = String::from("set -e\n");
    for line in &plan.script {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(&format!(
        "exec {} \"$@\"\n",
        q(&shared.binary.to_string_lossy())
    ));
    Ok(Prepared {
        script,
        args: argv,
        env,
        termination_file,
    })
}

/// Reads Secrets and ConfigMaps once per preparation.
struct Objects {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
    secret_cache: HashMap<String, Option<Secret>>,
    cm_cache: HashMap<String, Option<ConfigMap>>,
}

impl Objects {
    fn new(client: Client, ns: &str) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), ns),
            config_maps: Api::namespaced(client, ns),
            secret_cache: HashMap::new(),
            cm_cache: HashMap::new(),
        }
    }

    /// Key → bytes of a Secret (None when it does not exist).
    async fn secret(&mut self, name: &str) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
        if !self.secret_cache.contains_key(name) {
            let s = self.secrets.get_opt(name).await?;
            self.secret_cache.insert(name.to_owned(), s);
        }
        Ok(self.secret_cache[name].as_ref().map(|s| {
            let mut out: BTreeMap<String, Vec<u8>> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            for (k, v) in s.string_data.iter().flatten() {
                out.insert(k.clone(), v.clone().into_bytes());
            }
            out
        }))
    }

    async fn config_map(
        &mut self,
        name: &str,
    ) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
        if !self.cm_cache.contains_key(name) {
            let c = self.config_maps.get_opt(name).await?;
            self.cm_cache.insert(name.to_owned(), c);
        }
        Ok(self.cm_cache[name].as_ref().map(|c| {
            let mut out: BTreeMap<String, Vec<u8>> = c
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            for (k, v) in c.binary_data.iter().flatten() {
                out.insert(k.clone(), v.0.clone());
            }
            out
        }))
    }
}

/// Writes `data` (all keys, or `items`) into `dir` with the kubelet's modes.
fn write_keys(
    dir: &Path,
    what: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    default_mode: Option<i32>,
) -> anyhow::Result<()> {
    let Some(data) = data else {
        if optional {
            return Ok(());
        }
        bail!("{what} does not exist");
    };
    let mode = default_mode.unwrap_or(0o644);
    let entries: Vec<(String, String, i32)> = match items {
        Some(items) => {
            let mut v = Vec::new();
            for i in items {
                if !data.contains_key(&i.key) {
                    if optional {
                        continue;
                    }
                    bail!("{what} has no key {}", i.key);
                }
                v.push((i.key.clone(), i.path.clone(), i.mode.unwrap_or(mode)));
            }
            v
        }
        None => data.keys().map(|k| (k.clone(), k.clone(), mode)).collect(),
    };
    for (key, path, mode) in entries {
        if path.split('/').any(|c| c == "..") || path.starts_with('/') {
            bail!("{what}: item path {path:?} leaves the volume");
        }
        let full = dir.join(&path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, &data[&key])?;
        std::fs::set_permissions(
            &full,
            std::fs::Permissions::from_mode((mode & 0o777) as u32),
        )?;
    }
    Ok(())
}

async fn materialise(
    shared: &Shared,
    objects: &mut Objects,
    pod: &Pod,
    v: &Volume,
    volumes_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let dir = volumes_dir.join(&v.name);
    if let Some(c) = &v.persistent_volume_claim {
        let d = shared.root.join("pvc").join(&c.claim_name);
        std::fs::create_dir_all(&d)?;
        return Ok(d);
    }
    std::fs::create_dir_all(&dir)?;
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = objects.secret(&name).await?;
        write_keys(
            &dir,
            &format!("Secret {name}"),
            data,
            s.items.as_ref(),
            s.optional == Some(true),
            s.default_mode,
        )?;
    } else if let Some(c) = &v.config_map {
        let name = c.name.clone();
        let data = objects.config_map(&name).await?;
        write_keys(
            &dir,
            &format!("ConfigMap {name}"),
            data,
            c.items.as_ref(),
            c.optional == Some(true),
            c.default_mode,
        )?;
    } else if let Some(p) = &v.projected {
        for src in p.sources.iter().flatten() {
            if let Some(s) = &src.secret {
                let name = s.name.clone();
                let data = objects.secret(&name).await?;
                write_keys(
                    &dir,
                    &format!("Secret {name}"),
                    data,
                    s.items.as_ref(),
                    s.optional == Some(true),
                    p.default_mode,
                )?;
            } else if let Some(c) = &src.config_map {
                let name = c.name.clone();
                let data = objects.config_map(&name).await?;
                write_keys(
                    &dir,
                    &format!("ConfigMap {name}"),
                    data,
                    c.items.as_ref(),
                    c.optional == Some(true),
                    p.default_mode,
                )?;
            } else if let Some(t) = &src.service_account_token {
                let token =
                    pod_token(shared, pod, t.audience.clone(), t.expiration_seconds).await?;
                let data = BTreeMap::from([("token".to_owned(), token.into_bytes())]);
                let items = vec![KeyToPath {
                    key: "token".into(),
                    path: t.path.clone(),
                    mode: None,
                }];
                write_keys(
                    &dir,
                    "ServiceAccount token",
                    Some(data),
                    Some(&items),
                    false,
                    p.default_mode,
                )?;
            } else {
                bail!("volume {}: unsupported projection", v.name);
            }
        }
    } else if v.empty_dir.is_some() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    } else {
        bail!("volume {}: unsupported volume type", v.name);
    }
    Ok(dir)
}

/// A token for the pod's ServiceAccount, bound to the pod (TokenRequest API).
async fn pod_token(
    shared: &Shared,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> anyhow::Result<String> {
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(shared.client.clone(), &shared.namespace);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().filter(|a| !a.is_empty()).collect(),
            expiration_seconds: Some(expiration.unwrap_or(3600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..Default::default()
    };
    let resp = api
        .create_token_request(&sa, &PostParams::default(), &req)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {sa}"))?;
    resp.status
        .map(|s| s.token)
        .context("TokenRequest returned no token")
}

/// The container's environment, in order, with `$(VAR)` references to earlier variables expanded.
async fn resolve_env(
    objects: &mut Objects,
    pod: &Pod,
    container: &Container,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let resolved = if let Some(from) = value_from {
            if let Some(r) = &from.secret_key_ref {
                let data = objects.secret(&r.name).await?;
                match data.and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => Some(String::from_utf8(v)?),
                    None if r.optional == Some(true) => None,
                    None => bail!("env {name}: Secret {} key {} not found", r.name, r.key),
                }
            } else if let Some(r) = &from.config_map_key_ref {
                let data = objects.config_map(&r.name).await?;
                match data.and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => Some(String::from_utf8(v)?),
                    None if r.optional == Some(true) => None,
                    None => bail!("env {name}: ConfigMap {} key {} not found", r.name, r.key),
                }
            } else if let Some(f) = &from.field_ref {
                Some(field(pod, &f.field_path)?)
            } else {
                bail!("env {name}: unsupported valueFrom");
            }
        } else {
            let lookup: HashMap<&str, &str> =
                out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Some(expand(value.as_deref().unwrap_or(""), &lookup))
        };
        if let Some(v) = resolved {
            out.retain(|(k, _)| k != name);
            out.push((name.clone(), v));
        }
    }
    Ok(out)
}

fn field(pod: &Pod, path: &str) -> anyhow::Result<String> {
    let m = &pod.metadata;
    let sel = |map: &Option<BTreeMap<String, String>>, rest: &str| {
        let key = rest.trim_start_matches("['").trim_end_matches("']");
        map.as_ref()
            .and_then(|l| l.get(key).cloned())
            .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => TEST_NODE.to_owned(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
        p if p.starts_with("metadata.labels[") => sel(&m.labels, &p["metadata.labels".len()..]),
        p if p.starts_with("metadata.annotations[") => {
            sel(&m.annotations, &p["metadata.annotations".len()..])
        }
        other => bail!("fieldRef {other} is not supported by the node agent"),
    })
}

/// Kubernetes `$(VAR)` expansion: defined references are replaced, `$$` escapes `$`, anything
/// else is kept as written.
fn expand(s: &str, env: &HashMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(v) = env.get(&inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Single-quotes `s` for sh.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `p` with symlinks of its longest existing ancestor resolved (e.g. `/var/run` → `/run`), as the
/// mount calls would resolve them.
fn host_canonical(p: &Path) -> PathBuf {
    for a in p.ancestors() {
        if let Ok(c) = std::fs::canonicalize(a) {
            let rest = p.strip_prefix(a).unwrap_or(Path::new(""));
            // (Joining an empty path would add a trailing slash.)
            return if rest.as_os_str().is_empty() {
                c
            } else {
                c.join(rest)
            };
        }
    }
    p.to_path_buf()
}

/// What backs a path inside the namespace.
#[derive(Clone, Debug)]
enum Backing {
    /// Our own directory or file (writable; creating entries in it is fine).
    Ours(PathBuf),
    /// The host's file system, seen through (must not be written).
    Host(PathBuf),
    /// A tmpfs mounted inside the namespace.
    Tmpfs,
}

/// Builds the mount commands run inside the namespace, never creating anything on the host
/// outside our work directory.
struct MountPlan {
    stash: PathBuf,
    seq: usize,
    mounts: Vec<(PathBuf, Backing)>,
    created: HashSet<PathBuf>,
    script: Vec<String>,
}

impl MountPlan {
    fn new(stash: PathBuf) -> Self {
        Self {
            stash,
            seq: 0,
            mounts: vec![(PathBuf::from("/"), Backing::Host(PathBuf::from("/")))],
            created: HashSet::new(),
            script: Vec::new(),
        }
    }

    /// The innermost mount holding `p` and `p` relative to it.
    fn resolve(&self, p: &Path) -> (Backing, PathBuf) {
        let (m, b) = self
            .mounts
            .iter()
            .filter(|(m, _)| p.starts_with(m))
            .max_by_key(|(m, _)| m.components().count())
            .expect("/ is always mounted");
        (
            b.clone(),
            p.strip_prefix(m).unwrap_or(Path::new("")).to_path_buf(),
        )
    }

    /// The host path behind `p`, when a host or our directory backs it.
    fn resolve_host(&self, p: &Path) -> Option<PathBuf> {
        match self.resolve(p) {
            (Backing::Ours(h) | Backing::Host(h), rel) => Some(h.join(rel)),
            (Backing::Tmpfs, _) => None,
        }
    }

    fn exists(&self, p: &Path) -> bool {
        if self.created.contains(p) {
            return true;
        }
        match self.resolve(p) {
            (Backing::Ours(h) | Backing::Host(h), rel) => h.join(rel).exists(),
            (Backing::Tmpfs, rel) => rel.as_os_str().is_empty(),
        }
    }

    /// Whether new entries may be created in directory `p` inside the namespace.
    fn writable(&self, p: &Path) -> bool {
        !matches!(self.resolve(p).0, Backing::Host(_))
    }

    fn ensure_parent(&mut self, p: &Path) -> anyhow::Result<()> {
        let parent = p.parent().context("cannot mount over /")?;
        self.ensure_dir(parent)?;
        if !self.writable(parent) {
            self.shadow(parent, None)?;
        }
        Ok(())
    }

    fn ensure_dir(&mut self, p: &Path) -> anyhow::Result<()> {
        if self.exists(p) {
            return Ok(());
        }
        self.ensure_parent(p)?;
        self.script
            .push(format!("mkdir {}", q(&p.to_string_lossy())));
        self.created.insert(p.to_path_buf());
        Ok(())
    }

    fn ensure_file(&mut self, p: &Path) -> anyhow::Result<()> {
        if self.exists(p) {
            return Ok(());
        }
        self.ensure_parent(p)?;
        self.script.push(format!(": > {}", q(&p.to_string_lossy())));
        self.created.insert(p.to_path_buf());
        Ok(())
    }

    /// Mounts a tmpfs over directory `a` and puts every original entry back (bind mounts and
    /// symlinks), so new entries can be created in `a` inside the namespace only.
    /// `skip` names an entry not to put back (to be replaced by a mount point of another type).
    fn shadow(&mut self, a: &Path, skip: Option<&std::ffi::OsStr>) -> anyhow::Result<()> {
        let (Backing::Host(h), rel) = self.resolve(a) else {
            return Ok(());
        };
        let host = h.join(rel);
        let meta = std::fs::metadata(&host).with_context(|| format!("stat {}", host.display()))?;
        let stash = self.stash.join(self.seq.to_string());
        self.seq += 1;
        std::fs::create_dir_all(&stash)?;
        let qa = q(&a.to_string_lossy());
        let qs = q(&stash.to_string_lossy());
        self.script.push(format!("mount --rbind {qa} {qs}"));
        self.script.push(format!(
            "mount -t tmpfs -o mode={:o} mro-node-agent {qa}",
            meta.permissions().mode() & 0o7777
        ));
        self.mounts.push((a.to_path_buf(), Backing::Tmpfs));
        let mut entries: Vec<_> = std::fs::read_dir(&host)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if Some(name.as_os_str()) == skip {
                continue;
            }
            let target = a.join(&name);
            let qt = q(&target.to_string_lossy());
            let from = q(&stash.join(&name).to_string_lossy());
            let ft = e.file_type()?;
            if ft.is_symlink() {
                let link = std::fs::read_link(e.path())?;
                self.script.push(format!(
                    "[ -L {qt} ] || ln -s {} {qt}",
                    q(&link.to_string_lossy())
                ));
                self.created.insert(target);
            } else if ft.is_dir() {
                self.script
                    .push(format!("mkdir -p {qt} && mount --rbind {from} {qt}"));
                self.mounts.push((target, Backing::Host(e.path())));
            } else {
                self.script.push(format!(
                    "{{ [ -e {qt} ] || : > {qt}; }} && mount --bind {from} {qt}"
                ));
                self.mounts.push((target, Backing::Host(e.path())));
            }
        }
        Ok(())
    }

    /// Bind-mounts our `src` (a directory or a file) at `target` inside the namespace.
    fn bind(&mut self, src: &Path, target: &Path, read_only: bool) -> anyhow::Result<()> {
        if src.is_dir() {
            self.ensure_dir(target)?;
        } else {
            if !src.exists() {
                std::fs::write(src, b"")?;
            }
            if self.exists(target) && self.resolve_host(target).is_some_and(|h| h.is_dir()) {
                // A directory where a file mount point is needed: shadow the parent without it.
                let parent = target.parent().context("cannot mount over /")?;
                self.ensure_dir(parent)?;
                if self.writable(parent) {
                    bail!("{} is a directory, not a file", target.display());
                }
                self.shadow(parent, target.file_name())?;
            }
            self.ensure_file(target)?;
        }
        let qt = q(&target.to_string_lossy());
        self.script
            .push(format!("mount --bind {} {qt}", q(&src.to_string_lossy())));
        if read_only {
            self.script.push(format!("mount -o remount,bind,ro {qt}"));
        }
        self.mounts
            .push((target.to_path_buf(), Backing::Ours(src.to_path_buf())));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let env = HashMap::from([("A", "1"), ("B", "x y")]);
        assert_eq!(expand("$(A)-$(B)", &env), "1-x y");
        assert_eq!(expand("$$(A) $(C) $", &env), "$(A) $(C) $");
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
