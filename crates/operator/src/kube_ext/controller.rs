//! The controllers' plumbing: kube-runtime's controller, assembled from its public parts
//! (`applier`, the trigger mappers, a reflector) the way `kube::runtime::Controller` assembles
//! them, plus one thing `Controller` cannot do: report its work queue. Every reconcile request
//! passes through here on its way to the scheduler, and every reconcile start on its way out, so
//! the [`WorkQueue`] gauge sees both ends.
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, Stream, StreamExt, TryFuture, TryFutureExt, TryStreamExt};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{
    self, Action, ReconcileReason, ReconcileRequest, trigger_owners, trigger_self, trigger_with,
};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::utils::{CancelableJoinHandle, StreamBackoff};
use kube::runtime::watcher::{self, DefaultBackoff, watcher};
use kube::runtime::{PredicateConfig, WatchStreamExt, applier};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;
use tracing::Instrument;

use crate::kube_ext::backoff::Backoff;
use crate::kube_ext::child_record::ChildRecord;
use crate::kube_ext::store::{Slot, Trim};
use crate::metrics::WorkQueue;
use crate::metrics::queue::QueueKey;

type Triggers<K> = BoxStream<'static, Result<ReconcileRequest<K>, watcher::Error>>;

/// The output of [`QueuedController::run`], as `Controller::run` yields it.
pub type RunResult<K, E> = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>;

/// Drives a controller's results (of [`QueuedController::run`]) until it stops, each logged at
/// debug level: a failure was reported already, by the controller's reporter.
pub async fn drain<K, E>(results: impl Stream<Item = RunResult<K, E>>, controller: &str)
where
    K: Resource,
    E: std::error::Error + 'static,
{
    results
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => {
                    tracing::debug!(controller, name = %obj.name, namespace = ?obj.namespace, "reconciled")
                }
                Err(e) => tracing::debug!(controller, error = %e, "reconcile attempt failed"),
            }
        })
        .await;
}

/// A controller for `K`: what triggers a reconcile of which `K`, then [`QueuedController::run`].
pub struct QueuedController<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    triggers: SelectAll<Triggers<K>>,
    config: controller::Config,
    /// The controller's own writes: they trigger nothing (see
    /// [`QueuedController::tracking_own_writes`]).
    own: Option<Arc<ChildRecord>>,
}

impl<K> QueuedController<K>
where
    K: Clone + Resource<DynamicType = ()> + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Reconciles every `K` the API lists, whenever anything but its status changes. The
    /// controller writes the status itself; its reconcile reads the latest one from the store,
    /// which keeps no managed fields (nothing reads them; they are often the bulk of an object).
    pub fn new(api: Api<K>, wc: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let events = watcher(api, wc).modify(|o: &mut K| o.meta_mut().managed_fields = None);
        let main = trigger_self(
            reflector::reflector(writer, events)
                .applied_objects()
                .predicate_filter(beyond_status::<K>, PredicateConfig::default()),
            (),
        );
        Self::from_parts(store, main)
    }

    /// A controller over an existing store and trigger stream (tests drive both by hand).
    pub fn from_parts(
        store: Store<K>,
        triggers: impl Stream<Item = Result<ReconcileRequest<K>, watcher::Error>> + Send + 'static,
    ) -> Self {
        let mut all = SelectAll::new();
        all.push(paced(triggers));
        QueuedController {
            store,
            triggers: all,
            config: controller::Config::default(),
            own: None,
        }
    }

    /// Changes of watched objects made last by the controller's own field manager trigger
    /// nothing: the reconcile that wrote them already acted on them. Without this, every
    /// reconcile that creates children triggers a second one that finds nothing to do.
    /// Deletions, and changes by anyone else (users, built-in controllers), still trigger. The
    /// watches also tell `own` the children's latest versions. Applies to the `owns` and
    /// `watches` calls after it.
    pub fn tracking_own_writes(mut self, own: Arc<ChildRecord>) -> Self {
        self.own = Some(own);
        self
    }

    /// Scheduler settings (e.g. how many reconciles run at once).
    pub fn with_config(mut self, config: controller::Config) -> Self {
        self.config = config;
        self
    }

    /// One more trigger stream (tests drive it by hand), paced like the watches.
    pub fn triggered_by(
        mut self,
        triggers: impl Stream<Item = Result<ReconcileRequest<K>, watcher::Error>> + Send + 'static,
    ) -> Self {
        self.triggers.push(paced(triggers));
        self
    }

    /// The store of `K`s the reconciles are handed (fed by the controller's main watch).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Children whose owner reference names a `K` trigger their owner. Only their metadata is
    /// watched (less memory), as `Controller::owns` does.
    pub fn owns<C>(mut self, api: Api<PartialObjectMeta<C>>, wc: watcher::Config) -> Self
    where
        C: Clone + Resource<DynamicType = ()> + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let (group, kind) = (C::group(&()).into_owned(), C::kind(&()).into_owned());
        if let Some(own) = &self.own {
            own.watching(&group, &kind, api.namespace());
        }
        let events = not_written_by(watcher(api, wc), self.own.clone(), group, kind, |_| {});
        let owners = trigger_owners(events.touched_objects(), (), ());
        self.triggers.push(paced(owners));
        self
    }

    /// As [`owns`](Self::owns), for a kind whose objects the reconciles read: whole objects are
    /// watched and kept, trimmed, in a store that `slot` then holds (see [`super::store`]).
    pub fn owns_kept<C>(mut self, api: Api<C>, wc: watcher::Config, slot: &Slot<C>) -> Self
    where
        C: Clone + Resource<DynamicType = ()> + DeserializeOwned + Debug + Send + Sync + Trim,
        C: 'static,
    {
        let events = self.kept_events(api, wc, slot);
        let owners = trigger_owners(events.touched_objects(), (), ());
        self.triggers.push(paced(owners));
        self
    }

    /// As [`watches`](Self::watches), keeping the watched objects, trimmed, in a store that
    /// `slot` then holds.
    pub fn watches_kept<O, I>(
        mut self,
        api: Api<O>,
        wc: watcher::Config,
        slot: &Slot<O>,
        mapper: impl Fn(O) -> I + Send + Sync + 'static,
    ) -> Self
    where
        O: Clone + Resource<DynamicType = ()> + DeserializeOwned + Debug + Send + Sync + Trim,
        O: 'static,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        let events = self.kept_events(api, wc, slot);
        self.triggers.push(paced(related(events, (), mapper)));
        self
    }

    /// The watch of a kind whose objects are kept: declared to the own-writes record (when
    /// tracked), own writes filtered out, every object kept, trimmed, in `slot`'s new store.
    fn kept_events<O>(
        &self,
        api: Api<O>,
        wc: watcher::Config,
        slot: &Slot<O>,
    ) -> impl Stream<Item = Result<watcher::Event<O>, watcher::Error>> + Send + 'static
    where
        O: Clone + Resource<DynamicType = ()> + DeserializeOwned + Debug + Send + Sync + Trim,
        O: 'static,
    {
        let (group, kind) = (O::group(&()).into_owned(), O::kind(&()).into_owned());
        if let Some(own) = &self.own {
            own.watching(&group, &kind, api.namespace());
        }
        let keep = keeper(slot, api.namespace());
        not_written_by(watcher(api, wc), self.own.clone(), group, kind, keep)
    }

    /// Keeps objects of another kind, trimmed, in a store that `slot` then holds, without
    /// triggering anything: for reads only. The watch runs (and stops) with the controller.
    pub fn keeps<O>(mut self, api: Api<O>, wc: watcher::Config, slot: &Slot<O>) -> Self
    where
        O: Clone + Resource<DynamicType = ()> + DeserializeOwned + Debug + Send + Sync + Trim,
        O: 'static,
    {
        let (group, kind) = (O::group(&()).into_owned(), O::kind(&()).into_owned());
        let keep = keeper(slot, api.namespace());
        let events = not_written_by(watcher(api, wc), None, group, kind, keep);
        // Only the watch's errors come through, so that they back off like the others.
        let nothing = events.try_filter_map(|_| futures::future::ready(Ok(None)));
        self.triggers.push(paced(nothing));
        self
    }

    /// Objects of another kind trigger the `K`s that `mapper` names.
    pub fn watches<O, I>(
        mut self,
        api: Api<O>,
        dyntype: O::DynamicType,
        wc: watcher::Config,
        mapper: impl Fn(O) -> I + Send + Sync + 'static,
    ) -> Self
    where
        O: Clone + Resource + DeserializeOwned + Debug + Send + 'static,
        O::DynamicType: Clone + Send + Sync + 'static,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        let (group, kind) = (
            O::group(&dyntype).into_owned(),
            O::kind(&dyntype).into_owned(),
        );
        if let Some(own) = &self.own {
            own.watching(&group, &kind, api.namespace());
        }
        let events = not_written_by(watcher(api, wc), self.own.clone(), group, kind, |_| {});
        self.triggers.push(paced(related(events, dyntype, mapper)));
        self
    }

    /// Runs `reconcile` (each call in a task of its own) until `shutdown` resolves; then running
    /// reconciles may finish. `queue` sees every object enter and leave the work queue.
    /// `report` is told of every failed reconcile (logs, metrics, events); the retry comes after
    /// the object's own exponential [`Backoff`], which its next success resets.
    pub fn run<Fut, Ctx>(
        self,
        reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
        report: impl Fn(Arc<K>, &Fut::Error, Arc<Ctx>),
        ctx: Arc<Ctx>,
        queue: WorkQueue,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> impl Stream<Item = RunResult<K, Fut::Error>>
    where
        Fut: TryFuture<Ok = Action> + Send + 'static,
        Fut::Error: std::error::Error + Send + 'static,
    {
        self.run_with_backoff(
            Arc::new(Backoff::default()),
            reconcile,
            report,
            ctx,
            queue,
            shutdown,
        )
    }

    /// [`run`](Self::run) with the given backoff record (tests read it).
    pub fn run_with_backoff<Fut, Ctx>(
        self,
        backoff: Arc<Backoff>,
        mut reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
        report: impl Fn(Arc<K>, &Fut::Error, Arc<Ctx>),
        ctx: Arc<Ctx>,
        queue: WorkQueue,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> impl Stream<Item = RunResult<K, Fut::Error>>
    where
        Fut: TryFuture<Ok = Action> + Send + 'static,
        Fut::Error: std::error::Error + Send + 'static,
    {
        let entering = queue.clone();
        let starting = queue.clone();
        // Each watch backs off on its own errors (see `paced`): one that fails (a platform API
        // answering 503) pauses neither the others nor the reconciles they trigger.
        let requests = self
            .triggers
            .take_until(shutdown)
            .inspect_ok(move |req| entering.requested(key(&req.obj_ref)));
        let (succeeded, failed, forget) = (backoff.clone(), backoff.clone(), backoff);
        applier(
            move |obj: Arc<K>, ctx| {
                // Called as the scheduler hands the object over, before the reconcile runs.
                let id = (obj.namespace(), obj.name_any());
                starting.left(&id);
                let backoff = succeeded.clone();
                let run = TryFutureExt::into_future(reconcile(obj, ctx)).map(move |res| {
                    if res.is_ok() {
                        backoff.reset(&id);
                    }
                    res
                });
                CancelableJoinHandle::spawn(run.in_current_span(), &Handle::current())
            },
            move |obj: Arc<K>, err: &Fut::Error, ctx| {
                let id = (obj.namespace(), obj.name_any());
                report(obj, err, ctx);
                Action::requeue(failed.failed(id))
            },
            ctx,
            self.store,
            requests,
            self.config,
        )
        .inspect(move |res| {
            // A request for an object gone from the store is dropped by the applier, unreconciled.
            if let Err(controller::Error::ObjectNotFound(gone)) = res {
                let id = (gone.namespace.clone(), gone.name.clone());
                queue.left(&id);
                forget.reset(&id);
            }
        })
    }
}

/// One trigger stream that pauses itself with a backoff after an error instead of spinning (as
/// `Controller` does for all its watches at once): the streams are merged after this, so an
/// unavailable API holds up only its own watch.
fn paced<K, S>(s: S) -> Triggers<K>
where
    K: Resource + 'static,
    S: Stream<Item = Result<ReconcileRequest<K>, watcher::Error>> + Send + 'static,
{
    StreamBackoff::new(s, DefaultBackoff::default()).boxed()
}

/// A hash of what a change to the main resource can mean for its reconcile: everything but the
/// status (and the bookkeeping every write changes).
fn beyond_status<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let m = obj.meta();
    let mut h = DefaultHasher::new();
    (
        m.generation,
        &m.labels,
        &m.annotations,
        m.deletion_timestamp.as_ref().map(|t| t.0),
    )
        .hash(&mut h);
    Some(h.finish())
}

/// Tells `own` about every event of a `group`/`kind` and drops added/modified events of objects
/// whose latest change was made by its field manager (that managed-fields entry is strictly the
/// newest; equal times count as someone else's change).
/// `sink` sees every event after that (to keep the objects, see [`keeper`]).
fn not_written_by<O, S>(
    events: S,
    own: Option<Arc<ChildRecord>>,
    group: String,
    kind: String,
    mut sink: impl FnMut(&mut watcher::Event<O>) + Send,
) -> impl Stream<Item = Result<watcher::Event<O>, watcher::Error>> + Send
where
    O: Resource + Send,
    S: Stream<Item = Result<watcher::Event<O>, watcher::Error>> + Send,
{
    events.try_filter_map(move |mut ev| {
        let keep = match &own {
            None => true,
            Some(own) => {
                own.observe(&group, &kind, &ev);
                match &ev {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                        !last_written_by(o.meta(), own.manager())
                    }
                    _ => true,
                }
            }
        };
        sink(&mut ev);
        futures::future::ready(Ok(keep.then_some(ev)))
    })
}

/// A sink for [`not_written_by`] that trims each object and keeps it in a new store, which
/// `slot` holds from now on (the watch covers `namespace`, `None`: all).
fn keeper<O>(
    slot: &Slot<O>,
    namespace: Option<&str>,
) -> impl FnMut(&mut watcher::Event<O>) + Send + use<O>
where
    O: Clone + Resource<DynamicType = ()> + Send + Sync + Trim + 'static,
{
    let (store, mut writer): (Store<O>, Writer<O>) = reflector::store();
    slot.set(store, namespace);
    move |ev| {
        match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
                o.trim()
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
        writer.apply_watcher_event(ev);
    }
}

/// Reconcile requests for the `K`s that `mapper` names for each changed object.
fn related<K, O, I>(
    events: impl Stream<Item = Result<watcher::Event<O>, watcher::Error>> + Send + 'static,
    dyntype: O::DynamicType,
    mapper: impl Fn(O) -> I + Send + Sync + 'static,
) -> impl Stream<Item = Result<ReconcileRequest<K>, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + 'static,
    O: Clone + Resource + DeserializeOwned + Debug + Send + 'static,
    O::DynamicType: Clone + Send + Sync + 'static,
    I: IntoIterator<Item = ObjectRef<K>> + 'static,
    I::IntoIter: Send,
{
    trigger_with(events.touched_objects(), move |obj: O| {
        let source = ObjectRef::from_obj_with(&obj, dyntype.clone()).erase();
        mapper(obj)
            .into_iter()
            .map(move |obj_ref| ReconcileRequest {
                obj_ref,
                reason: ReconcileReason::RelatedObjectUpdated {
                    obj_ref: Box::new(source.clone()),
                },
            })
    })
}

fn last_written_by(meta: &kube::api::ObjectMeta, manager: &str) -> bool {
    let entries = meta.managed_fields.as_deref().unwrap_or_default();
    let newest = |ours: bool| {
        entries
            .iter()
            .filter(|e| (e.manager.as_deref() == Some(manager)) == ours)
            .filter_map(|e| e.time.as_ref().map(|t| t.0))
            .max()
    };
    match (newest(true), newest(false)) {
        (Some(ours), Some(theirs)) => ours > theirs,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn key<K: Resource>(obj_ref: &ObjectRef<K>) -> QueueKey {
    (obj_ref.namespace.clone(), obj_ref.name.clone())
}

#[cfg(test)]
mod tests;
