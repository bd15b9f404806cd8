//! The real `model-registry-operator` process: probes, readiness after cache sync, Prometheus
//! metrics, JSON logs, leader election, no status hot loop, and a clean exit on SIGTERM.
use std::process::Stdio;
use std::time::Duration;

use mro_tests::cluster::{Flavour, OPERATOR_NAMESPACE};
use mro_tests::ports::free_port;
use mro_tests::wait::{eventually, eventually_within};
use tokio::io::AsyncReadExt;

use super::{Env, postgres_sample};

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
