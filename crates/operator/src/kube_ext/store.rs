//! The objects the controllers' watches keep in memory, for the reads a reconcile makes.
//!
//! A controller already watches the objects whose changes wake it up (the registry's Deployment,
//! pods and endpoints; the transfer's Job and pods). Keeping what those watches deliver answers
//! the reconcile's reads without asking the API server: a reconcile that finds nothing to do
//! then costs no request at all. The data is exactly as fresh as the watch, which is also what
//! triggers the next reconcile after any change; a read from the API server's watch cache (what
//! it replaces) is no fresher.
//!
//! Each kept object is trimmed to what the reconciles read (no managed fields, no pod specs), so
//! memory grows by a few hundred bytes per child. A store answers only once its watch has listed
//! everything, and only for the namespaces its watch covers; otherwise the caller reads from the
//! API server as before ([`Lookup::Unknown`]).
use std::sync::{Arc, RwLock};

use futures::FutureExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

/// What a store can tell about one object.
#[derive(Clone, Debug)]
pub enum Lookup<K> {
    Found(Arc<K>),
    /// The store covers the object's namespace and has no such object.
    Absent,
    /// The store cannot tell (not kept, first list not complete, namespace not watched).
    Unknown,
}

impl<K> Lookup<K> {
    /// `Some(found or not)` when the store can tell.
    pub fn known(self) -> Option<Option<Arc<K>>> {
        match self {
            Lookup::Found(o) => Some(Some(o)),
            Lookup::Absent => Some(None),
            Lookup::Unknown => None,
        }
    }
}

/// One watch's store and where that watch looks.
struct Kept<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    /// `None`: all namespaces.
    namespace: Option<String>,
}

/// A slot for the store of one kind, set by the controller that runs the watch (anew with each
/// generation of controllers).
pub struct Slot<K: Resource<DynamicType = ()> + 'static>(RwLock<Option<Kept<K>>>);

impl<K> Default for Slot<K>
where
    K: Resource<DynamicType = ()> + 'static,
{
    fn default() -> Self {
        Slot(RwLock::new(None))
    }
}

impl<K> Slot<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// Keeps the store of a watch over `namespace` (`None`: all namespaces).
    pub fn set(&self, store: Store<K>, namespace: Option<&str>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Kept {
            store,
            namespace: namespace.map(str::to_string),
        });
    }

    /// The store, when it is complete and covers namespace `ns` (`None`: every namespace).
    fn store_for(&self, ns: Option<&str>) -> Option<Store<K>> {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        let kept = guard.as_ref()?;
        let covered = match (&kept.namespace, ns) {
            (None, _) => true,
            (Some(watched), Some(ns)) => watched == ns,
            (Some(_), None) => false,
        };
        let ready = matches!(kept.store.wait_until_ready().now_or_never(), Some(Ok(())));
        (covered && ready).then(|| kept.store.clone())
    }

    /// The object `name` in namespace `ns`.
    pub fn get(&self, ns: &str, name: &str) -> Lookup<K> {
        match self.store_for(Some(ns)) {
            None => Lookup::Unknown,
            Some(store) => match store.get(&ObjectRef::new(name).within(ns)) {
                Some(o) => Lookup::Found(o),
                None => Lookup::Absent,
            },
        }
    }

    /// The objects in namespace `ns` that `keep` accepts; `None` when the store cannot tell.
    pub fn select(&self, ns: &str, keep: impl Fn(&K) -> bool) -> Option<Vec<Arc<K>>> {
        let store = self.store_for(Some(ns))?;
        Some(store.state_filter(|o| o.namespace().as_deref() == Some(ns) && keep(o)))
    }

    /// The objects in every namespace that `keep` accepts; `None` unless the store covers all
    /// namespaces.
    pub fn select_all(&self, keep: impl Fn(&K) -> bool) -> Option<Vec<Arc<K>>> {
        Some(self.store_for(None)?.state_filter(keep))
    }
}
/// Trims a kept object to what reconciles read.
pub trait Trim {
    fn trim(&mut self);
}

impl Trim for k8s_openapi::api::core::v1::Pod {
    /// Reconciles read a kept pod's status (container states, termination messages) and its
    /// labels and owners; nothing of the spec.
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        self.spec = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    #[test]
    fn trimming_a_pod_keeps_what_status_reads() {
        let mut p = pod("a", "p");
        p.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
        p.spec = Some(Default::default());
        p.status = Some(Default::default());
        p.metadata.managed_fields = Some(vec![Default::default()]);
        p.trim();
        assert!(p.spec.is_none() && p.metadata.managed_fields.is_none());
        assert!(p.status.is_some() && p.metadata.labels.is_some());
    }

    fn pod(ns: &str, name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_store_answers_once_listed_and_only_for_its_namespace() {
        let slot = Slot::<Pod>::default();
        assert!(
            matches!(slot.get("a", "p"), Lookup::Unknown),
            "no store yet"
        );
        let (store, mut writer) = reflector::store();
        slot.set(store, Some("a"));
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(pod("a", "p")));
        assert!(
            matches!(slot.get("a", "p"), Lookup::Unknown),
            "first list incomplete"
        );
        writer.apply_watcher_event(&Event::InitDone);
        assert!(matches!(slot.get("a", "p"), Lookup::Found(_)));
        assert!(matches!(slot.get("a", "q"), Lookup::Absent));
        assert!(matches!(slot.get("b", "p"), Lookup::Unknown), "not watched");
        assert_eq!(slot.select("a", |_| true).map(|v| v.len()), Some(1));
        assert!(slot.select_all(|_| true).is_none(), "one namespace only");
        writer.apply_watcher_event(&Event::Delete(pod("a", "p")));
        assert!(matches!(slot.get("a", "p"), Lookup::Absent));
    }

    #[test]
    fn an_all_namespaces_store_answers_everywhere() {
        let slot = Slot::<Pod>::default();
        let (store, mut writer) = reflector::store();
        slot.set(store, None);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(pod("a", "p")));
        writer.apply_watcher_event(&Event::InitApply(pod("b", "p")));
        writer.apply_watcher_event(&Event::InitDone);
        assert!(matches!(slot.get("b", "p"), Lookup::Found(_)));
        assert_eq!(slot.select("a", |_| true).map(|v| v.len()), Some(1));
        assert_eq!(slot.select_all(|_| true).map(|v| v.len()), Some(2));
    }
}
