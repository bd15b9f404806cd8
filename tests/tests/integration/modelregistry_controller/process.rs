//! The real `model-registry-operator` process: probes, readiness after cache sync, Prometheus
//! metrics (reconciles, failures by kind, durations, work queues, child applies made and skipped),
//! JSON logs, leader election, no status hot loop, and a clean exit on SIGTERM.
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use mro_tests::cluster::{Flavour, OPERATOR_NAMESPACE};
use mro_tests::ports::free_port;
use mro_tests::wait::{eventually, eventually_within};
use tokio::io::AsyncReadExt;

use super::{Env, postgres_sample};

const QUEUE_ADDS: &str =
    "model_registry_operator_work_queue_adds_total{controller=\"modelregistry\"}";
const QUEUE_DEPTH: &str = "model_registry_operator_work_queue_depth{controller=\"modelregistry\"}";
const IN_FLIGHT: &str =
    "model_registry_operator_reconciles_in_flight{controller=\"modelregistry\"}";
const APPLIED: &str =
    "model_registry_operator_child_applies_total{controller=\"modelregistry\",result=\"applied\"}";
const SKIPPED: &str =
    "model_registry_operator_child_applies_total{controller=\"modelregistry\",result=\"skipped\"}";

async fn get(url: &str) -> Option<(u16, String)> {
    let resp = reqwest::get(url).await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_binary_serves_probes_and_metrics_and_stops_on_sigterm() {
    let mut env = Env::new(Flavour::Vanilla, "mr-process").await;
    env.stop_operator().await;
    let dir = env
        .cluster
        .dir()
        .expect("a harness-started control plane (operator kubeconfig)");
    let exe = mro_tests::tools::cargo_bin(
        "model-registry-operator",
        "model-registry-operator",
        "MRO_OPERATOR_BIN",
    )
    .await
    .unwrap();
    let (health, metrics) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(exe)
        .env_clear()
        .env("KUBECONFIG", dir.join("operator.kubeconfig"))
        .env("RUST_LOG", "info")
        .args([
            "--watch-namespace",
            &env.ns,
            "--log-format",
            "json",
            "--leader-elect",
        ])
        .args([
            "--leader-election-namespace",
            OPERATOR_NAMESPACE,
            "--leader-election-id",
            &format!("lock-{}", env.ns),
        ])
        .args([
            "--health-probe-bind-address",
            &format!("127.0.0.1:{health}"),
        ])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    eventually("/healthz", || async {
        get(&format!("http://127.0.0.1:{health}/healthz"))
            .await
            .is_some_and(|r| r.0 == 200)
    })
    .await;
    eventually("/readyz", || async {
        get(&format!("http://127.0.0.1:{health}/readyz"))
            .await
            .is_some_and(|r| r.0 == 200)
    })
    .await;

    let name = env.create_registry(postgres_sample("process")).await;
    env.wait_deployment(&name).await;
    env.make_pods_ready(&name).await;
    env.wait_condition(&name, "Available", "True", None).await;
    let url = format!("http://127.0.0.1:{metrics}/metrics");
    let text = get(&url).await.unwrap().1;
    assert!(
        metric(
            &text,
            "model_registry_operator_reconciles_total{controller=\"modelregistry\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(
        text.contains("model_registry_operator_reconcile_duration_seconds"),
        "{text}"
    );

    // No hot loop: once settled (status and write counter read together, twice, unchanged), neither
    // moves any more.
    let snapshot = || async {
        let rv = env.registry(&name).await.metadata.resource_version;
        let writes = metric(
            &get(&url).await.unwrap().1,
            "model_registry_operator_status_writes_total",
        );
        (rv, writes)
    };
    let mut settled = snapshot().await;
    for round in 0.. {
        assert!(round < 30, "the status never settled: a write loop");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = snapshot().await;
        if now == settled {
            break;
        }
        settled = now;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        snapshot().await,
        settled,
        "status rewritten without a change"
    );

    // Work queues: one gauge per controller, empty once everything settled. A change to the
    // registry enters the queue and leaves it when its reconcile starts.
    let text = get(&url).await.unwrap().1;
    for line in [
        format!("{QUEUE_DEPTH} 0"),
        "model_registry_operator_work_queue_depth{controller=\"modeltransfer\"} 0".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    let added = metric(&text, QUEUE_ADDS);
    assert!(added >= 1.0, "{text}");
    env.api::<mro_api::ModelRegistry>()
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    eventually("the change queued, then taken", || async {
        let text = get(&url).await.unwrap().1;
        metric(&text, QUEUE_ADDS) > added && metric(&text, QUEUE_DEPTH) == 0.0
    })
    .await;

    // Child applies: a change by someone else outside the fields the operator sets wakes the
    // registry up, and its reconcile applies nothing (the server-side apply would change
    // nothing); a hand edit of one of the operator's fields is applied over.
    let idle = |text: &str| metric(text, QUEUE_DEPTH) == 0.0 && metric(text, IN_FLIGHT) == 0.0;
    eventually("nothing queued or running", || async {
        idle(&get(&url).await.unwrap().1)
    })
    .await;
    let text = get(&url).await.unwrap().1;
    let (applied, skipped) = (metric(&text, APPLIED), metric(&text, SKIPPED));
    assert!(applied >= 1.0 && skipped >= 0.0, "{text}");
    let deps = env.api::<Deployment>();
    let note = serde_json::json!({"metadata": {"annotations": {"example.com/note": "not the operator's"}}});
    deps.patch(&name, &PatchParams::default(), &Patch::Merge(&note))
        .await
        .unwrap();
    eventually(
        "a reconcile that skips its applies, then nothing running",
        || async {
            let text = get(&url).await.unwrap().1;
            metric(&text, SKIPPED) > skipped
                && metric(&text, QUEUE_DEPTH) == 0.0
                && metric(&text, IN_FLIGHT) == 0.0
        },
    )
    .await;
    assert_eq!(
        metric(&get(&url).await.unwrap().1, APPLIED),
        applied,
        "a child was applied again though none of the operator's fields changed"
    );
    let edit = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "rest-container", "image": "example/hand-edit:1"}]}}}});
    deps.patch(&name, &PatchParams::default(), &Patch::Strategic(&edit))
        .await
        .unwrap();
    eventually("the hand edit applied over", || async {
        let restored = deps.get(&name).await.is_ok_and(|d| {
            !serde_json::to_string(&d.spec)
                .unwrap()
                .contains("example/hand-edit")
        });
        restored && metric(&get(&url).await.unwrap().1, APPLIED) > applied
    })
    .await;

    // A problem the user must act on (an unrelated Deployment holds the registry's name) is
    // reported as a ResourceConflict condition and Warning event; the Deployment is left alone.
    let squatter: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "process-blocked"},
        "spec": {"selector": {"matchLabels": {"app": "someone-else"}},
                 "template": {"metadata": {"labels": {"app": "someone-else"}},
                              "spec": {"containers": [{"name": "c", "image": "example/app:1"}]}}}
    }))
    .unwrap();
    env.api::<Deployment>()
        .create(&PostParams::default(), &squatter)
        .await
        .unwrap();
    let blocked = env
        .create_registry(postgres_sample("process-blocked"))
        .await;
    env.wait_condition(&blocked, "Available", "False", Some("ResourceConflict"))
        .await;
    let events = env.api::<Event>();
    eventually(
        "a ResourceConflict warning naming the Deployment",
        || async {
            events.list(&Default::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.reason.as_deref() == Some("ResourceConflict")
                        && e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&blocked)
                        && e.note
                            .as_deref()
                            .is_some_and(|n| n.contains("Deployment process-blocked"))
                })
            })
        },
    )
    .await;
    let left = env
        .api::<Deployment>()
        .get("process-blocked")
        .await
        .unwrap();
    assert!(
        serde_json::to_string(&left.spec)
            .unwrap()
            .contains("example/app:1"),
        "the unrelated Deployment was changed"
    );

    // SIGTERM: the process exits cleanly.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    let lines: Vec<_> = logs
        .lines()
        .chain(err.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "not a JSON log line: {l}"
        );
    }
    assert!(
        !lines.join("\n").contains("TheBlurstOfTimes"),
        "secrets never reach the logs"
    );
    eventually_within("port released", Duration::from_secs(5), || async {
        get(&format!("http://127.0.0.1:{health}/healthz"))
            .await
            .is_none()
    })
    .await;
}
