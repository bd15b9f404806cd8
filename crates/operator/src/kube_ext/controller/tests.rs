//! The plumbing with kube-runtime's real applier and scheduler, driven by a hand-fed store and
//! trigger stream: the work queue gauge follows what the scheduler actually holds.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::runtime::controller::{Action, ReconcileRequest};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use tokio::sync::Semaphore;

use super::QueuedController;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

/// Reconciles block on their object's gate until the test releases them; `started` records who
/// ran.
#[derive(Default)]
struct Probe {
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    started: Mutex<Vec<String>>,
}

impl Probe {
    fn gate(&self, name: &str) -> Arc<Semaphore> {
        self.gates
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(0)))
            .clone()
    }
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn request(name: &str) -> Result<ReconcileRequest<ConfigMap>, watcher::Error> {
    Ok(ObjectRef::new(name).within("ns").into())
}

async fn reconcile(obj: Arc<ConfigMap>, probe: Arc<Probe>) -> Result<Action, Never> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    probe.started.lock().unwrap().push(name.clone());
    let gate = probe.gate(&name);
    gate.acquire().await.expect("gate open").forget();
    Ok(Action::await_change())
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn depth_line(m: &Metrics) -> String {
    m.encode()
        .lines()
        .find(|l| l.starts_with("model_registry_operator_work_queue_depth{controller=\"test\"}"))
        .expect("depth series")
        .to_string()
}

#[tokio::test]
async fn queue_depth_follows_requests_waiting_in_the_scheduler() {
    let metrics = Metrics::default();
    let queue = metrics.work_queue("test");
    let (store, mut writer) = reflector::store::<ConfigMap>();
    let (tx, rx) = mpsc::unbounded();
    let probe = Arc::new(Probe::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let results = QueuedController::from_parts(store, rx).run(
        reconcile,
        |_, _: &Never, _| {},
        probe.clone(),
        queue.clone(),
        async move {
            let _ = stop_rx.await;
        },
    );
    let outputs = tokio::spawn(results.collect::<Vec<_>>());

    // Before the cache has synced nothing may run: every distinct object waits.
    for name in ["a", "b", "a"] {
        tx.unbounded_send(request(name)).unwrap();
    }
    until("two waiting objects", || queue.depth() == 2).await;
    assert!(
        depth_line(&metrics).ends_with(" 2"),
        "{}",
        depth_line(&metrics)
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(probe.started.lock().unwrap().is_empty());

    // The cache syncs: both start (and block), leaving the queue.
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply(cm("a")));
    writer.apply_watcher_event(&watcher::Event::InitApply(cm("b")));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    until("a and b running", || {
        probe.started.lock().unwrap().len() == 2
    })
    .await;
    until("an empty queue", || queue.depth() == 0).await;

    // Requests for a running object wait for it (merged into one); a request for an object the
    // cache does not hold is dropped by the applier and leaves the queue too.
    for name in ["a", "a", "gone"] {
        tx.unbounded_send(request(name)).unwrap();
    }
    until("a waiting behind its own run", || queue.depth() == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(queue.depth(), 1, "only a waits");
    assert!(depth_line(&metrics).ends_with(" 1"));

    // a's first run ends: its waiting request starts at once.
    probe.gate("a").add_permits(1);
    until("a's second run", || {
        probe
            .started
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == "a")
            .count()
            == 2
    })
    .await;
    assert_eq!(queue.depth(), 0);
    assert!(depth_line(&metrics).ends_with(" 0"));

    probe.gate("a").add_permits(1);
    probe.gate("b").add_permits(1);
    let _ = stop_tx.send(());
    drop(tx);
    let outputs = tokio::time::timeout(Duration::from_secs(5), outputs)
        .await
        .expect("the controller stops")
        .unwrap();
    let not_found = outputs
        .iter()
        .filter(|r| matches!(r, Err(kube::runtime::controller::Error::ObjectNotFound(_))))
        .count();
    assert_eq!(not_found, 1, "{outputs:?}");
    let mut started = probe.started.lock().unwrap().clone();
    started.sort();
    assert_eq!(started, vec!["a", "a", "b"]);
}

fn pod_written_by(name: &str, manager: &str) -> k8s_openapi::api::core::v1::Pod {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    k8s_openapi::api::core::v1::Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some("1".into()),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some(manager.into()),
                operation: Some("Apply".into()),
                time: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(Default::default()),
        status: Some(Default::default()),
    }
}

#[tokio::test]
async fn kept_watches_store_every_object_trimmed_and_pass_on_only_others_changes() {
    use crate::kube_ext::child_record::ChildRecord;
    use crate::kube_ext::store::{Lookup, Slot};
    let own = Arc::new(ChildRecord::new("us"));
    own.watching("", "Pod", Some("ns"));
    let slot = Slot::default();
    let events = futures::stream::iter(
        [
            watcher::Event::Init,
            watcher::Event::InitApply(pod_written_by("ours", "us")),
            watcher::Event::InitApply(pod_written_by("theirs", "kubelet")),
            watcher::Event::InitDone,
        ]
        .map(Ok),
    );
    let sink = super::keeper(&slot, Some("ns"));
    let passed: Vec<_> =
        super::not_written_by(events, Some(own.clone()), "".into(), "Pod".into(), sink)
            .filter_map(|ev| async move {
                match ev {
                    Ok(watcher::Event::InitApply(p)) => p.metadata.name,
                    _ => None,
                }
            })
            .collect()
            .await;
    assert_eq!(passed, ["theirs"], "our own write triggers nothing");
    for name in ["ours", "theirs"] {
        let Lookup::Found(kept) = slot.get("ns", name) else {
            panic!("{name} not kept");
        };
        assert!(kept.spec.is_none() && kept.metadata.managed_fields.is_none());
        assert!(kept.status.is_some());
    }
    assert!(matches!(slot.get("ns", "other"), Lookup::Absent));
    let key = |name: &str| crate::kube_ext::child::ChildKey {
        group: String::new(),
        kind: "Pod".into(),
        namespace: Some("ns".into()),
        name: name.into(),
    };
    assert_eq!(own.exists(&key("ours")), Some(true));
    assert_eq!(own.exists(&key("theirs")), Some(true));
}

#[derive(Debug, thiserror::Error)]
#[error("failing on purpose")]
struct Failing;

/// Fails the first `fail` reconciles of every object; records when each one started.
#[derive(Default)]
struct Flaky {
    fail: usize,
    starts: Mutex<Vec<(String, tokio::time::Instant)>>,
}

async fn flaky(obj: Arc<ConfigMap>, f: Arc<Flaky>) -> Result<Action, Failing> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let mut starts = f.starts.lock().unwrap();
    let runs = starts.iter().filter(|(n, _)| *n == name).count();
    starts.push((name, tokio::time::Instant::now()));
    if runs < f.fail {
        Err(Failing)
    } else {
        Ok(Action::await_change())
    }
}

#[tokio::test]
async fn failed_reconciles_back_off_per_object_and_success_resets() {
    let metrics = Metrics::default();
    let (store, mut writer) = reflector::store::<ConfigMap>();
    let (tx, rx) = mpsc::unbounded();
    let probe = Arc::new(Flaky {
        fail: 4,
        ..Default::default()
    });
    let backoff = Arc::new(crate::kube_ext::backoff::Backoff::new(
        Duration::from_millis(100),
        Duration::from_secs(1),
    ));
    let reported = Arc::new(Mutex::new(0usize));
    let seen = reported.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let results = QueuedController::from_parts(store, rx).run_with_backoff(
        backoff.clone(),
        flaky,
        move |_, _: &Failing, _| *seen.lock().unwrap() += 1,
        probe.clone(),
        metrics.work_queue("test"),
        async move {
            let _ = stop_rx.await;
        },
    );
    let outputs = tokio::spawn(results.collect::<Vec<_>>());
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply(cm("a")));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    tx.unbounded_send(request("a")).unwrap();
    until("four failures and a success", || {
        probe.starts.lock().unwrap().len() == 5
    })
    .await;
    let starts = probe.starts.lock().unwrap().clone();
    let gaps: Vec<u64> = starts
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).as_millis() as u64)
        .collect();
    // 100, 200, 400, 800 ms after each failure: never sooner (a loaded machine may be later).
    for (gap, want) in gaps.iter().zip([100u64, 200, 400, 800]) {
        assert!(
            (want..want + 500).contains(gap),
            "gaps {gaps:?}, expected about 100, 200, 400, 800 ms"
        );
    }
    assert_eq!(*reported.lock().unwrap(), 4, "every failure is reported");
    let key = (Some("ns".to_string()), "a".to_string());
    assert_eq!(backoff.failures(&key), 0, "the success reset the count");
    drop(tx);
    let _ = stop_tx.send(());
    let _ = outputs.await;
}

/// A watch that fails (a platform API answering 503) backs off alone: a request from another
/// watch right after its error is reconciled at once, not after the failing watch's pause
/// (before, one backoff of at least 800 ms paused the merged triggers; the bound below leaves
/// a loaded machine most of that margin).
#[tokio::test]
async fn a_failing_watch_does_not_hold_up_the_others() {
    let metrics = Metrics::default();
    let (store, mut writer) = reflector::store::<ConfigMap>();
    let (tx, rx) = mpsc::unbounded();
    let probe = Arc::new(Flaky::default());
    let backoff = Arc::new(crate::kube_ext::backoff::Backoff::new(
        Duration::from_millis(100),
        Duration::from_secs(1),
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let failing = futures::stream::once(async { Err(watcher::Error::NoResourceVersion) })
        .chain(futures::stream::pending());
    let results = QueuedController::from_parts(store, rx)
        .triggered_by(failing)
        .run_with_backoff(
            backoff,
            flaky,
            |_, _: &Failing, _| {},
            probe.clone(),
            metrics.work_queue("test"),
            async move {
                let _ = stop_rx.await;
            },
        );
    let outputs = tokio::spawn(results.collect::<Vec<_>>());
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply(cm("a")));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    // The failing watch's error is taken first.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let sent = tokio::time::Instant::now();
    tx.unbounded_send(request("a")).unwrap();
    until("the reconcile of a", || {
        probe.starts.lock().unwrap().len() == 1
    })
    .await;
    let waited = probe.starts.lock().unwrap()[0].1 - sent;
    assert!(
        waited < Duration::from_millis(600),
        "the request waited {waited:?} behind the failing watch's backoff"
    );
    drop(tx);
    let _ = stop_tx.send(());
    let _ = outputs.await;
}
