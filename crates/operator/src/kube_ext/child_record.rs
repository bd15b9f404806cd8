//! What a controller wrote itself and what its watches saw of its children, so that it neither
//! wakes up for its own writes, nor repeats writes that would change nothing, nor lists the API
//! server to find children to prune.
//!
//! The controller's watches report every change of its children ([`ChildRecord::observe`]): the
//! latest `resourceVersion` of each, its uid, our field manager's entry in its managed fields,
//! and the parent its labels name. Its applies record the same of what they left, and a hash of
//! what they applied. A child is not applied again with the same desired content while the
//! watch shows it unchanged since our last apply, or changed by others only in fields we do not
//! set: server-side apply takes a field away from our field manager's entry as soon as anyone
//! else changes it, so an unchanged entry means every field we set still has our value, and the
//! apply would be a no-op (which still costs the API server a full merge). This is what lets the
//! built-in controllers' status updates (a Deployment's rollout) pass without a re-apply. A
//! change of one of our fields (a hand edit) changes the entry and is reverted by the next
//! reconcile, which that very change triggers; a deleted child is created again.
//!
//! Pruning asks [`ChildRecord::known_children`] instead of listing: the children the watches saw
//! with the parent's labels, plus those we applied and the watches have not reported yet. A kind
//! whose watch has not finished its first list, or does not cover the parent's namespace, has no
//! answer; the caller lists it.
//!
//! Memory: one small entry per live child.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;

use crate::kube_ext::apply;
use crate::kube_ext::child::{Child, ChildKey, ManagedKind, Parent};
use crate::kube_ext::identity::ControllerId;

/// The own writes of one controller (one field manager).
pub struct ChildRecord {
    manager: &'static str,
    state: Mutex<State>,
    /// Applies made and skipped (exported as metrics when attached, see [`ChildRecord::counting`]).
    applied: Counter<u64, AtomicU64>,
    skipped: Counter<u64, AtomicU64>,
}

type GroupKind = (String, String);

#[derive(Default)]
struct State {
    /// The latest the watches saw of each child.
    live: HashMap<ChildKey, Live>,
    /// What our last apply of each child applied and left.
    applied: HashMap<ChildKey, Applied>,
    /// Per kind being re-listed by its watch: the children seen so far (the rest are gone).
    relisting: HashMap<GroupKind, HashSet<ChildKey>>,
    /// The watched kinds: where each watch looks, and whether its first list is complete.
    watches: HashMap<GroupKind, Watch>,
}

struct Live {
    version: String,
    /// Our field manager's managed-fields entry (see [`entry_hash`]) and the object's uid.
    ours: Option<(u64, String)>,
    parent: Option<Parent>,
    deleting: bool,
}

struct Applied {
    hash: u64,
    version: String,
    ours: Option<(u64, String)>,
    parent: Option<Parent>,
}

impl Applied {
    /// Whether applying content `hash` again would change nothing on `live`.
    fn still_holds(&self, hash: u64, live: &Live) -> bool {
        self.hash == hash
            && (self.version == live.version || (self.ours.is_some() && self.ours == live.ours))
    }
}

/// Our field manager's `Apply` entry in an object's managed fields (what it owns, in which API
/// version) with the object's uid, or `None` when it has no such entry.
fn entry_hash(meta: &kube::api::ObjectMeta, manager: &str) -> Option<(u64, String)> {
    let entry = meta.managed_fields.as_ref()?.iter().find(|e| {
        e.manager.as_deref() == Some(manager)
            && e.operation.as_deref() == Some("Apply")
            && e.subresource.as_deref().unwrap_or_default().is_empty()
    })?;
    let mut h = DefaultHasher::new();
    entry.api_version.hash(&mut h);
    serde_json::to_vec(&entry.fields_v1)
        .unwrap_or_default()
        .hash(&mut h);
    Some((h.finish(), meta.uid.clone()?))
}

struct Watch {
    /// `None`: all namespaces.
    namespace: Option<String>,
    synced: bool,
}

/// A child as the cache knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownChild {
    pub key: ChildKey,
    /// Its deletion has begun (it has a deletion timestamp).
    pub deleting: bool,
}

impl ChildRecord {
    pub fn new(manager: &'static str) -> ChildRecord {
        ChildRecord {
            manager,
            state: Mutex::new(State::default()),
            applied: Counter::default(),
            skipped: Counter::default(),
        }
    }

    /// Counts applies made and skipped in these counters (e.g. registered metrics).
    pub fn counting(
        mut self,
        (applied, skipped): (Counter<u64, AtomicU64>, Counter<u64, AtomicU64>),
    ) -> ChildRecord {
        self.applied = applied;
        self.skipped = skipped;
        self
    }

    /// The field manager of the controller's applies.
    pub fn manager(&self) -> &'static str {
        self.manager
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a cache: after a panic elsewhere it is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Declares the watch of a child kind: in `namespace`, or all namespaces for `None`. Its
    /// events must then be passed to [`observe`](Self::observe).
    pub fn watching(&self, group: &str, kind: &str, namespace: Option<&str>) {
        self.lock().watches.insert(
            (group.to_string(), kind.to_string()),
            Watch {
                namespace: namespace.map(str::to_string),
                synced: false,
            },
        );
    }

    /// Records a watch event of a child kind (`group`, `kind`).
    pub fn observe<O: Resource>(&self, group: &str, kind: &str, event: &watcher::Event<O>) {
        let key = |o: &O| ChildKey {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: o.namespace(),
            name: o.name_any(),
        };
        let live = |o: &O| Live {
            version: o.resource_version().unwrap_or_default(),
            ours: entry_hash(o.meta(), self.manager),
            parent: Parent::from_labels(o.labels()),
            deleting: o.meta().deletion_timestamp.is_some(),
        };
        let gk = (group.to_string(), kind.to_string());
        let mut s = self.lock();
        match event {
            watcher::Event::Apply(o) => {
                s.live.insert(key(o), live(o));
            }
            watcher::Event::Delete(o) => {
                let k = key(o);
                s.live.remove(&k);
                s.applied.remove(&k);
            }
            watcher::Event::Init => {
                s.relisting.insert(gk, HashSet::new());
            }
            watcher::Event::InitApply(o) => {
                let k = key(o);
                s.live.insert(k.clone(), live(o));
                if let Some(seen) = s.relisting.get_mut(&gk) {
                    seen.insert(k);
                }
            }
            watcher::Event::InitDone => {
                // Children deleted while the watch was down get no Delete event.
                if let Some(seen) = s.relisting.remove(&gk) {
                    let State { live, applied, .. } = &mut *s;
                    let gone =
                        |k: &ChildKey| k.group == gk.0 && k.kind == gk.1 && !seen.contains(k);
                    live.retain(|k, _| !gone(k));
                    applied.retain(|k, _| !gone(k));
                }
                if let Some(w) = s.watches.get_mut(&gk) {
                    w.synced = true;
                }
            }
        }
    }

    /// The children of `parent` of one kind, when the watch of that kind can tell: the ones it
    /// saw with the parent's labels, plus ones we applied that it has not reported yet. `None`
    /// when the kind is not watched, its first list is not complete, or the watch does not
    /// cover every namespace such children may be in.
    pub fn known_children(&self, parent: &Parent, kind: &ManagedKind) -> Option<Vec<KnownChild>> {
        let (group, kind_name) = (&kind.resource.group, &kind.resource.kind);
        let s = self.lock();
        let w = s.watches.get(&(group.clone(), kind_name.clone()))?;
        let covered = match &w.namespace {
            None => true,
            Some(ns) => kind.in_parent_namespace && *ns == parent.namespace,
        };
        if !w.synced || !covered {
            return None;
        }
        let of_kind = |k: &ChildKey| k.group == *group && k.kind == *kind_name;
        let mut found: Vec<KnownChild> = s
            .live
            .iter()
            .filter(|(k, l)| of_kind(k) && l.parent.as_ref() == Some(parent))
            .map(|(k, l)| KnownChild {
                key: k.clone(),
                deleting: l.deleting,
            })
            .collect();
        found.extend(
            s.applied
                .iter()
                .filter(|(k, a)| {
                    of_kind(k) && a.parent.as_ref() == Some(parent) && !s.live.contains_key(*k)
                })
                .map(|(k, _)| KnownChild {
                    key: k.clone(),
                    deleting: false,
                }),
        );
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Some(found)
    }

    /// Whether a child exists, when the watch of its kind can tell (see
    /// [`known_children`](Self::known_children)).
    pub fn exists(&self, key: &ChildKey) -> Option<bool> {
        let s = self.lock();
        let w = s.watches.get(&(key.group.clone(), key.kind.clone()))?;
        let covered = match (&w.namespace, &key.namespace) {
            (None, _) => true,
            (Some(ns), Some(child_ns)) => ns == child_ns,
            (Some(_), None) => false,
        };
        if !w.synced || !covered {
            return None;
        }
        Some(s.live.contains_key(key) || s.applied.contains_key(key))
    }

    /// Forgets our apply of a child we deleted, so it is not reported as known any more.
    pub fn deleted(&self, key: &ChildKey) {
        self.lock().applied.remove(key);
    }

    /// Applies `child` (server-side, as [`apply::apply`]) unless our last apply of the same
    /// content is still its latest version. Returns the applied object, `None` when skipped.
    ///
    /// Only over what is ours: an object the watches show labelled for another parent (or for
    /// none) is a [`child::Conflict`]; one they do not show (they select by our labels, so a
    /// foreign object is never among them) and we did not apply is read first
    /// ([`apply::ensure_ours`]): one request when a child is created, none afterwards. One the
    /// Go operator made for the same resource is applied over when it names the parent as its
    /// controller, and left as it is when it is [`apply::Claim::LeftAsIs`] (`None`, asked again
    /// on each apply).
    pub async fn apply(
        &self,
        client: &Client,
        child: &Child,
    ) -> Result<Option<DynamicObject>, apply::ApplyError> {
        let key = child.key();
        let hash = content_hash(&child.object);
        let known = {
            let s = self.lock();
            if let (Some(a), Some(live)) = (s.applied.get(&key), s.live.get(&key))
                && a.still_holds(hash, live)
            {
                self.skipped.inc();
                return Ok(None);
            }
            match s.live.get(&key) {
                Some(live) => Some(live.parent.clone()),
                None => s.applied.get(&key).map(|a| a.parent.clone()),
            }
        };
        match known {
            Some(parent) => apply::claim(child, parent)?,
            None => match apply::ensure_ours(client, child).await? {
                apply::Claim::Ours => {}
                apply::Claim::TakeOver(existing) => {
                    apply::take_over_fields(client, self.manager, child, &existing).await?;
                }
                apply::Claim::LeftAsIs => {
                    self.skipped.inc();
                    return Ok(None);
                }
            },
        }
        let obj = apply::apply(client, self.manager, child).await?;
        self.applied.inc();
        if let Some(version) = obj.resource_version() {
            let parent = Parent::from_labels(obj.labels());
            let ours = entry_hash(&obj.metadata, self.manager);
            self.lock().applied.insert(
                key,
                Applied {
                    hash,
                    version,
                    ours,
                    parent,
                },
            );
        }
        Ok(Some(obj))
    }
}

fn content_hash(obj: &DynamicObject) -> u64 {
    let mut h = DefaultHasher::new();
    // Serialization of the same object is deterministic (maps are ordered).
    serde_json::to_vec(obj).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// The child records of every controller, one per field manager, made on first use and kept for
/// the process: a controller restarted (capabilities changed) keeps what it knew it applied.
#[derive(Default)]
pub struct ChildRecords(Mutex<BTreeMap<&'static str, Arc<ChildRecord>>>);

impl ChildRecords {
    /// The record of controller `id`; `counters` (applies made and skipped) are attached when
    /// the record is made.
    pub fn of(
        &self,
        id: &ControllerId,
        counters: impl FnOnce() -> (Counter<u64, AtomicU64>, Counter<u64, AtomicU64>),
    ) -> Arc<ChildRecord> {
        let mut records = self.0.lock().expect("child records lock");
        records
            .entry(id.manager)
            .or_insert_with(|| Arc::new(ChildRecord::new(id.manager).counting(counters())))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use kube::api::ObjectMeta;

    fn parent(name: &str) -> Parent {
        Parent {
            kind: "ModelRegistry".into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn cm(name: &str, rv: &str, owner: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                labels: owner.map(|o| parent(o).labels()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn key(name: &str) -> ChildKey {
        ChildKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    fn applied(w: &ChildRecord, name: &str, hash: u64, rv: &str, owner: &str) {
        w.lock().applied.insert(
            key(name),
            Applied {
                hash,
                version: rv.into(),
                ours: None,
                parent: Some(parent(owner)),
            },
        );
    }

    fn skips(w: &ChildRecord, name: &str, hash: u64) -> bool {
        let s = w.lock();
        matches!((s.applied.get(&key(name)), s.live.get(&key(name))),
            (Some(a), Some(live)) if a.still_holds(hash, live))
    }

    fn entry(manager: &str, operation: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    fn with_entries(mut c: ConfigMap, entries: Vec<ManagedFieldsEntry>) -> ConfigMap {
        c.metadata.uid = Some("u1".into());
        c.metadata.managed_fields = Some(entries);
        c
    }

    #[test]
    fn others_changing_only_their_fields_do_not_cause_a_reapply() {
        let w = ChildRecord::new("m");
        let ours = entry("m", "Apply", serde_json::json!({"f:data": {"f:a": {}}}));
        let theirs = entry("kcm", "Update", serde_json::json!({"f:data": {"f:b": {}}}));
        let ours_now = with_entries(cm("a", "10", Some("r")), vec![ours.clone()]);
        w.lock().applied.insert(
            key("a"),
            Applied {
                hash: 7,
                version: "10".into(),
                ours: entry_hash(&ours_now.metadata, "m"),
                parent: Some(parent("r")),
            },
        );
        // Someone else added a field of their own: our entry is as we left it.
        let later = with_entries(cm("a", "11", Some("r")), vec![ours.clone(), theirs.clone()]);
        observe(&w, watcher::Event::Apply(later));
        assert!(skips(&w, "a", 7));
        assert!(!skips(&w, "a", 8), "other content");
        // Someone else changed our field: it left our entry.
        let taken = entry("m", "Apply", serde_json::json!({}));
        let edited = with_entries(cm("a", "12", Some("r")), vec![taken, theirs.clone()]);
        observe(&w, watcher::Event::Apply(edited));
        assert!(!skips(&w, "a", 7));
        // Deleted and created anew by someone else with our very entry: another uid.
        let mut recreated = with_entries(cm("a", "13", Some("r")), vec![ours]);
        recreated.metadata.uid = Some("u2".into());
        observe(&w, watcher::Event::Apply(recreated));
        assert!(!skips(&w, "a", 7));
    }

    fn observe(w: &ChildRecord, ev: watcher::Event<ConfigMap>) {
        w.observe("", "ConfigMap", &ev);
    }

    fn config_maps(in_parent_namespace: bool) -> ManagedKind {
        ManagedKind {
            resource: kube::api::ApiResource::erase::<ConfigMap>(&()),
            namespaced: true,
            in_parent_namespace,
        }
    }

    fn names(found: Option<Vec<KnownChild>>) -> Option<Vec<String>> {
        found.map(|v| v.into_iter().map(|c| c.key.name).collect())
    }

    #[test]
    fn only_an_unchanged_child_with_the_same_content_is_skipped() {
        let w = ChildRecord::new("m");
        applied(&w, "a", 7, "10", "r");
        assert!(!skips(&w, "a", 7), "not seen on the watch yet");
        observe(&w, watcher::Event::Apply(cm("a", "10", Some("r"))));
        assert!(skips(&w, "a", 7));
        assert!(!skips(&w, "a", 8), "other content");
        observe(&w, watcher::Event::Apply(cm("a", "11", Some("r"))));
        assert!(!skips(&w, "a", 7), "changed by someone else");
    }

    #[test]
    fn deleted_children_are_forgotten_also_when_the_watch_relists() {
        let w = ChildRecord::new("m");
        for (name, rv) in [("a", "1"), ("b", "2")] {
            applied(&w, name, 1, rv, "r");
            observe(&w, watcher::Event::Apply(cm(name, rv, Some("r"))));
        }
        observe(&w, watcher::Event::Delete(cm("a", "1", Some("r"))));
        assert!(!skips(&w, "a", 1));
        // "b" vanished while the watch was down: the relist does not mention it.
        observe(&w, watcher::Event::Init);
        observe(&w, watcher::Event::InitApply(cm("c", "3", Some("r"))));
        observe(&w, watcher::Event::InitDone);
        assert!(!skips(&w, "b", 1));
        assert!(w.lock().live.contains_key(&key("c")));
    }

    #[test]
    fn children_are_known_only_once_the_watch_listed_them_all() {
        let w = ChildRecord::new("m");
        assert_eq!(w.known_children(&parent("r"), &config_maps(true)), None);
        w.watching("", "ConfigMap", None);
        observe(&w, watcher::Event::Init);
        observe(&w, watcher::Event::InitApply(cm("a", "1", Some("r"))));
        assert_eq!(
            w.known_children(&parent("r"), &config_maps(true)),
            None,
            "first list incomplete"
        );
        observe(&w, watcher::Event::InitApply(cm("other", "2", Some("s"))));
        observe(&w, watcher::Event::InitApply(cm("unlabelled", "3", None)));
        observe(&w, watcher::Event::InitDone);
        assert_eq!(
            names(w.known_children(&parent("r"), &config_maps(true))),
            Some(vec!["a".to_string()])
        );
        // Applied by us, not reported by the watch yet: known all the same.
        applied(&w, "b", 1, "4", "r");
        assert_eq!(
            names(w.known_children(&parent("r"), &config_maps(true))),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        w.deleted(&key("b"));
        observe(&w, watcher::Event::Delete(cm("a", "1", Some("r"))));
        assert_eq!(
            names(w.known_children(&parent("r"), &config_maps(true))),
            Some(vec![])
        );
        assert_eq!(w.exists(&key("other")), Some(true));
        assert_eq!(w.exists(&key("a")), Some(false));
    }

    #[test]
    fn a_namespaced_watch_answers_for_its_namespace_only() {
        let w = ChildRecord::new("m");
        w.watching("", "ConfigMap", Some("ns"));
        observe(&w, watcher::Event::Init);
        observe(&w, watcher::Event::InitDone);
        assert!(w.known_children(&parent("r"), &config_maps(true)).is_some());
        let elsewhere = Parent {
            namespace: "other".into(),
            ..parent("r")
        };
        assert_eq!(w.known_children(&elsewhere, &config_maps(true)), None);
        // Children that may be in other namespaces are not covered by a namespaced watch.
        assert_eq!(w.known_children(&parent("r"), &config_maps(false)), None);
        let mut foreign = key("x");
        foreign.namespace = Some("other".into());
        assert_eq!(w.exists(&foreign), None);
    }

    #[test]
    fn children_being_deleted_are_marked() {
        let w = ChildRecord::new("m");
        w.watching("", "ConfigMap", None);
        observe(&w, watcher::Event::Init);
        let mut going = cm("a", "1", Some("r"));
        going.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        observe(&w, watcher::Event::InitApply(going));
        observe(&w, watcher::Event::InitDone);
        let found = w.known_children(&parent("r"), &config_maps(true)).unwrap();
        assert!(found[0].deleting);
    }
}
