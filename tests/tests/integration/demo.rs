//! `make demo` (the `demo` binary of this crate) run as a user runs it: it must exit 0, print a
//! summary whose facts hold (succeeded, registered, digest-pinned URI, ids, content verified) and
//! leave nothing running; with `DEMO_KEEP=1` it must keep everything up until SIGTERM and then
//! stop it all cleanly. Both ways: on the real node (the default: operator, registry, database
//! and the transfer's Job as pods of our images) and with `MRO_NODE=0` (the test node agent).
use std::net::TcpStream;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// A cold run builds nothing (the binaries are built by cargo before the tests), but starts a
/// control plane on a busy machine.
const DEMO_DEADLINE: Duration = Duration::from_secs(600);

fn demo_command(summary: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"));
    // Without the real node (the test node agent); [`on_node`] runs the default.
    cmd.env("DEMO_SUMMARY_JSON", summary)
        .env("MRO_NODE", "0")
        .env_remove("DEMO_KEEP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn port_open(url: &str) -> bool {
    let hostport = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    let Ok(addr) = hostport.parse() else {
        panic!("not a host:port URL: {url}");
    };
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Everything the summary names is gone: ports closed, operator process gone, cluster
/// directory removed.
fn assert_nothing_left(s: &Value) {
    let e = &s["endpoints"];
    for key in [
        "kubeApiserver",
        "etcd",
        "s3",
        "ociRegistry",
        "modelRegistry",
        "operatorMetrics",
        "operatorHealth",
    ] {
        let url = e[key].as_str().unwrap_or_else(|| panic!("endpoints.{key}"));
        assert!(!port_open(url), "{key} ({url}) still accepts connections");
    }
    let pid = e["operatorPid"].as_u64().expect("operatorPid");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the operator process {pid} is still there"
    );
    let dir = e["clusterDir"].as_str().expect("clusterDir");
    assert!(
        !Path::new(dir).exists(),
        "the control plane directory {dir} was not removed"
    );
}

/// The facts of a successful run, cross-checked between the JSON summary and stdout.
fn assert_summary(s: &Value, stdout: &str, kept: bool) {
    assert_eq!(s["ok"], true, "{s:#}");
    let t = &s["modelTransfer"];
    assert_eq!(t["phase"], "Succeeded", "{s:#}");
    let cond = |rows: &Value, ty: &str| {
        rows.as_array()
            .and_then(|a| a.iter().find(|c| c["type"] == ty))
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or("").to_owned(),
                    c["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
    };
    assert_eq!(
        cond(&t["conditions"], "Registered"),
        Some(("True".into(), "ArtifactLive".into())),
        "{s:#}"
    );
    assert_eq!(t["registryAddressedBy"], "spec.registry.url");
    for id in ["registeredModelId", "modelVersionId", "modelArtifactId"] {
        assert!(
            t[id].as_str().is_some_and(|v| !v.is_empty()),
            "{id} missing: {s:#}"
        );
    }
    // oci://<the demo's registry>/models/granite@sha256:<64 hex>
    let oci_host = s["endpoints"]["ociRegistry"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://");
    let uri = t["artifactUri"].as_str().unwrap();
    let digest = uri
        .strip_prefix(&format!("oci://{oci_host}/models/granite@sha256:"))
        .unwrap_or_else(|| panic!("artifactUri {uri} is not pinned in the demo's registry"));
    assert!(
        digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "{uri}"
    );
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["podExitCodes"], serde_json::json!([0]));
    let v = &s["verified"];
    assert!(v["imageFiles"].as_u64().unwrap() >= 1);
    assert_eq!(t["bytesTransferred"], v["imageBytes"]);
    assert_eq!(v["registeredModelName"], "granite");
    assert_eq!(v["modelVersionName"], "1.0");
    assert_eq!(v["artifactState"], "LIVE");
    let created: Vec<&str> = t["created"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(created.iter().any(|c| c.starts_with("Job/")), "{created:?}");
    // No kubelet runs the registry: the operator says so instead of claiming it is available.
    let r = &s["modelRegistry"];
    assert_eq!(
        cond(&r["conditions"], "Available"),
        Some(("False".into(), "DeploymentUnavailable".into())),
        "{s:#}"
    );
    assert!(
        r["created"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "Deployment/modelregistry-sample"),
        "{s:#}"
    );
    // The printed summary says the same.
    for needle in [
        "Summary",
        &format!("Artifact URI    {uri}"),
        &format!(
            "model artifact id {}",
            t["modelArtifactId"].as_str().unwrap()
        ),
        "via spec.registry.url",
        if kept {
            "Left running    everything (DEMO_KEEP=1)"
        } else {
            "Left running    nothing"
        },
        "Stopped the operator, node agent, servers and control plane",
    ] {
        assert!(
            stdout.contains(needle),
            "stdout lacks {needle:?}:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_moves_registers_verifies_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = tokio::time::timeout(DEMO_DEADLINE, demo_command(&summary).output())
        .await
        .expect("the demo finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "demo exited with {}\n{}",
        out.status,
        text(&out)
    );
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_summary(&s, &String::from_utf8_lossy(&out.stdout), false);
    assert_eq!(s["keptRunning"], false);
    assert_nothing_left(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_keep_runs_until_sigterm_then_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    // stderr to a file: nobody reads a pipe while the demo waits for the signal.
    let stderr_path = dir.path().join("stderr");
    let mut child = demo_command(&summary)
        .env("DEMO_KEEP", "1")
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    // Until the demo says how to stop it, everything is up: the apiserver answers then.
    let waited = tokio::time::timeout(DEMO_DEADLINE, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push_str(&l);
            seen.push('\n');
            if l.starts_with("Stop everything:") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(waited, Ok(true)),
        "the demo never said how to stop it:\n{seen}\n--- stderr\n{}",
        stderr()
    );
    assert!(
        seen.contains("Left running    everything (DEMO_KEEP=1)"),
        "{seen}"
    );
    assert!(seen.contains("export KUBECONFIG="), "{seen}");
    let apiserver_port = std::fs::read_to_string(
        seen.lines()
            .find_map(|l| l.trim().strip_prefix("export KUBECONFIG="))
            .map(|k| Path::new(k).with_file_name("ports.env"))
            .unwrap(),
    )
    .unwrap()
    .lines()
    .find_map(|l| l.strip_prefix("APISERVER_PORT=").map(str::to_owned))
    .unwrap();
    assert!(
        port_open(&format!("127.0.0.1:{apiserver_port}")),
        "DEMO_KEEP=1 must keep the control plane running"
    );

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    let drained = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            rest.push_str(&l);
            rest.push('\n');
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the demo's output did not end within 120 s of SIGTERM:\n{seen}{rest}\n--- stderr\n{}",
        stderr()
    );
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("the demo stops after SIGTERM")
        .unwrap();
    assert!(
        status.success(),
        "exit {status} after SIGTERM:\n{seen}{rest}\n--- stderr\n{}",
        stderr()
    );
    assert!(
        rest.contains("SIGTERM received: stopping everything"),
        "{rest}"
    );
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_summary(&s, &format!("{seen}{rest}"), true);
    assert_eq!(s["keptRunning"], true);
    assert_nothing_left(&s);
}

/// `make demo` as it runs by default, on the real node.
mod on_node {
    use std::path::Path;

    use serde_json::Value;

    use super::{DEMO_DEADLINE, demo_command, text};

    const OPERATOR_IMAGE: &str = "mro.local/operator:dev";
    const SYNC_IMAGE: &str = "mro.local/model-sync:dev";
    const REST_IMAGE: &str = "mro.local/model-registry:v0.3.14";

    fn condition(rows: &Value, ty: &str) -> Option<(String, String)> {
        rows.as_array()?.iter().find(|c| c["type"] == ty).map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
    }

    /// The demo's facts on the node: the operator, the registry and the transfer's Job ran as pods
    /// of our images there, the registry is Available=True, the transfer Succeeded and its
    /// artifact is LIVE; afterwards the control plane, the node's namespace and its directory are
    /// gone.
    #[tokio::test(flavor = "multi_thread")]
    async fn demo_on_the_node_runs_everything_as_pods_and_leaves_nothing_running() {
        if mro_tests::node::skip_when_switched_off("demo_on_the_node") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let summary = dir.path().join("summary.json");
        let out = tokio::time::timeout(
            DEMO_DEADLINE,
            demo_command(&summary).env_remove("MRO_NODE").output(),
        )
        .await
        .expect("the demo finishes")
        .unwrap();
        assert!(
            out.status.success(),
            "demo exited with {}\n{}",
            out.status,
            text(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
        assert_eq!(s["ok"], true, "{s:#}");
        assert_eq!(s["mode"], "node", "{s:#}");
        let node = s["nodeName"].as_str().unwrap();
        let op = &s["operatorPod"];
        assert_eq!(op["image"], OPERATOR_IMAGE, "{s:#}");
        assert_eq!(op["nodeName"], node, "{s:#}");
        assert_eq!(op["ready"], true, "{s:#}");
        assert_eq!(
            condition(&s["registryConditions"], "Available"),
            Some(("True".into(), "DeploymentAvailable".into())),
            "{s:#}"
        );
        let registry_pods = s["registryPods"].as_array().unwrap();
        assert!(
            registry_pods
                .iter()
                .any(|p| p["image"] == REST_IMAGE && p["ready"] == true && p["nodeName"] == node),
            "{s:#}"
        );
        assert_eq!(s["transferPhase"], "Succeeded", "{s:#}");
        assert_eq!(
            condition(&s["transferConditions"], "Registered"),
            Some(("True".into(), "ArtifactLive".into())),
            "{s:#}"
        );
        assert_eq!(s["registryAddressedBy"], "spec.registry.modelRegistryRef");
        let uri = s["artifactUri"].as_str().unwrap();
        let digest = uri.rsplit_once("@sha256:").map(|(_, d)| d).unwrap_or("");
        assert!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{uri}"
        );
        let jobs = s["jobPods"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "backoffLimit 0: {s:#}");
        let job = &jobs[0];
        assert_eq!(job["image"], SYNC_IMAGE, "{s:#}");
        assert_eq!(job["nodeName"], node, "{s:#}");
        assert_eq!(job["exitCode"], 0, "{s:#}");
        assert!(
            job["terminationMessage"].as_str().unwrap().contains(digest),
            "the kubelet read model-sync's result: {s:#}"
        );
        assert_eq!(s["artifactState"], "LIVE");
        assert!(s["imageFiles"].as_u64().unwrap() >= 1, "{s:#}");
        for needle in [
            "Summary",
            &format!("Artifact URI    {uri}"),
            "Available=True (DeploymentAvailable)",
            "Left running    nothing",
            "Stopped the pods, the node, the servers and the control plane",
        ] {
            assert!(
                stdout.contains(needle),
                "stdout lacks {needle:?}:\n{stdout}"
            );
        }
        let cluster_dir = s["clusterDir"].as_str().unwrap();
        assert!(
            !Path::new(cluster_dir).exists(),
            "{cluster_dir} was not removed"
        );
        let netns = s["netns"].as_str().unwrap();
        assert!(!netns.is_empty());
        assert!(
            !Path::new("/run/netns").join(netns).exists(),
            "the node's network namespace {netns} is still there"
        );
    }
}
