//! Observes completion the same way for the floor and the operator: watches on every child kind
//! and on the CRs record when the last expected child appears and the last status is written.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::{Stream, StreamExt};
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use model_registry_operator::kube_ext::child::{ChildKey, PARENT_NAMESPACE_LABEL};
use mro_api::{ModelRegistry, ModelTransfer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::fixtures::{self, Plan};

#[derive(Default)]
struct State {
    start: Option<Instant>,
    children: HashSet<ChildKey>,
    /// CRs whose status is not written yet.
    statuses: HashSet<String>,
    last: Option<Instant>,
}

impl State {
    fn done(&mut self, removed: bool) {
        if removed {
            self.last = Some(Instant::now());
        }
    }
}

/// Watches for one phase of one run; stopped on drop.
pub struct Tracker {
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn spawn<K, S, F>(stream: S, ready: oneshot::Sender<()>, mut on: F) -> JoinHandle<()>
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    F: FnMut(K) + Send + 'static,
{
    tokio::spawn(async move {
        let mut ready = Some(ready);
        let mut stream = std::pin::pin!(stream.default_backoff());
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => on(o),
                Ok(watcher::Event::InitDone) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                // The watcher recovers by itself (with backoff).
                Ok(_) | Err(_) => {}
            }
        }
    })
}

impl Tracker {
    /// Starts the watches and waits until each has listed what exists.
    pub async fn start(client: &Client, ns: &str, plan: &Plan) -> anyhow::Result<Tracker> {
        let state = Arc::new(Mutex::new(State {
            children: plan.expected.clone(),
            statuses: plan
                .registries
                .iter()
                .map(|r| r.name_any())
                .chain(plan.transfers.iter().map(|t| t.name_any()))
                .collect(),
            ..Default::default()
        }));
        let mut tasks = Vec::new();
        let mut ready = Vec::new();
        for kind in &plan.kinds {
            let ar = kind.resource.clone();
            let (api, cfg) = if kind.namespaced {
                (
                    Api::<PartialObjectMeta<DynamicObject>>::namespaced_with(
                        client.clone(),
                        ns,
                        &ar,
                    ),
                    watcher::Config::default(),
                )
            } else {
                (
                    Api::all_with(client.clone(), &ar),
                    watcher::Config::default().labels(&format!("{PARENT_NAMESPACE_LABEL}={ns}")),
                )
            };
            let (tx, rx) = oneshot::channel();
            ready.push(rx);
            let st = state.clone();
            tasks.push(spawn(watcher(api, cfg), tx, move |o| {
                let key = ChildKey {
                    group: ar.group.clone(),
                    kind: ar.kind.clone(),
                    namespace: o.namespace(),
                    name: o.name_any(),
                };
                let mut s = st.lock().expect("tracker state");
                let removed = s.children.remove(&key);
                s.done(removed);
            }));
        }
        if !plan.registries.is_empty() {
            let (tx, rx) = oneshot::channel();
            ready.push(rx);
            let st = state.clone();
            let api = Api::<ModelRegistry>::namespaced(client.clone(), ns);
            tasks.push(spawn(
                watcher(api, watcher::Config::default()),
                tx,
                move |o: ModelRegistry| {
                    if fixtures::registry_status_written(&o) {
                        let mut s = st.lock().expect("tracker state");
                        let removed = s.statuses.remove(&o.name_any());
                        s.done(removed);
                    }
                },
            ));
        }
        if !plan.transfers.is_empty() {
            let (tx, rx) = oneshot::channel();
            ready.push(rx);
            let st = state.clone();
            let api = Api::<ModelTransfer>::namespaced(client.clone(), ns);
            tasks.push(spawn(
                watcher(api, watcher::Config::default()),
                tx,
                move |o: ModelTransfer| {
                    if fixtures::transfer_status_written(&o) {
                        let mut s = st.lock().expect("tracker state");
                        let removed = s.statuses.remove(&o.name_any());
                        s.done(removed);
                    }
                },
            ));
        }
        let tracker = Tracker { state, tasks };
        for rx in ready {
            tokio::time::timeout(Duration::from_secs(60), rx).await??;
        }
        Ok(tracker)
    }

    /// The moment the first CR is sent.
    pub fn set_start(&self, at: Instant) {
        self.state.lock().expect("tracker state").start = Some(at);
    }

    /// Seconds from the start until the last expected child and status were seen.
    pub async fn wait(&self, timeout: Duration) -> anyhow::Result<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let s = self.state.lock().expect("tracker state");
                if s.children.is_empty() && s.statuses.is_empty() {
                    let (Some(start), Some(last)) = (s.start, s.last) else {
                        bail!("tracker finished without a start or any event");
                    };
                    return Ok(last.duration_since(start).as_secs_f64());
                }
                if Instant::now() > deadline {
                    let mut missing: Vec<String> = s
                        .children
                        .iter()
                        .map(|k| format!("{} {}", k.kind, k.name))
                        .chain(s.statuses.iter().map(|n| format!("status of {n}")))
                        .collect();
                    missing.sort();
                    let n = missing.len();
                    missing.truncate(10);
                    bail!(
                        "timed out after {timeout:?}: {n} expected objects/statuses missing, e.g. {}",
                        missing.join(", ")
                    );
                }
            }
            // Only the check is polled; the times are taken when the watch events arrive.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
