//! The one status writer: every controller writes its resource's status through [`write`].
//!
//! A JSON merge patch of the whole status under the controller's field manager, with every
//! top-level key the previous status had and the new one lacks sent as `null`, so that a removed
//! key disappears (a merge patch alone keeps what it does not mention; lists, conditions among
//! them, are replaced whole). Why not server-side apply: objects written before carry their
//! status fields under an `Update` entry of the same manager, which an apply would never remove,
//! so removed keys would stay on every existing resource.
//!
//! No request is made when it would change nothing: when the new status equals the old one, and
//! when the same status was already written onto this very version of the object (a reconcile
//! woken by a child's event before the watch delivered the object with our own write still sees
//! the old status; writing again would be a no-op the API server still has to serve). The
//! second needs a memory: per object UID the resource version the last write was made on and a
//! hash of what it wrote, a few dozen bytes per object.
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{LazyLock, Mutex};

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::identity::ControllerId;
use crate::metrics::Metrics;

/// Writes `new` as the status of `obj`, whose last status was `old`.
pub async fn write<K, S>(
    id: &ControllerId,
    metrics: &Metrics,
    api: &Api<K>,
    obj: &K,
    old: Option<&S>,
    new: &S,
) -> kube::Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let Some(body) = planned(old, new) else {
        return Ok(());
    };
    let written = Written::of(obj, &body);
    if written.as_ref().is_some_and(|w| WRITTEN.already(w)) {
        return Ok(());
    }
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "status": body })),
    )
    .await?;
    if let Some(w) = written {
        WRITTEN.remember(w);
    }
    metrics.status_written(id.name);
    Ok(())
}

/// The patch to send, or `None` when `new` is what `old` already is.
fn planned<S: Serialize>(old: Option<&S>, new: &S) -> Option<serde_json::Value> {
    let unchanged =
        old.is_some_and(|o| serde_json::to_value(o).ok() == serde_json::to_value(new).ok());
    (!unchanged).then(|| patch(old, new))
}

/// One write: the object (UID), the resource version it was made on, a hash of the body.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Written {
    uid: String,
    on_version: String,
    body: u64,
}

impl Written {
    fn of<K: Resource>(obj: &K, body: &serde_json::Value) -> Option<Written> {
        let mut h = DefaultHasher::new();
        body.to_string().hash(&mut h);
        Some(Written {
            uid: obj.meta().uid.clone()?,
            on_version: obj.meta().resource_version.clone()?,
            body: h.finish(),
        })
    }
}

/// Past this many objects the memory starts over (the cost is one redundant write each).
const REMEMBERED: usize = 20_000;

/// The last write per object, process-wide (UIDs are unique across kinds and controllers).
static WRITTEN: LazyLock<Memory> = LazyLock::new(Memory::default);

#[derive(Default)]
struct Memory(Mutex<HashMap<String, (String, u64)>>);

impl Memory {
    /// Whether exactly this was last written onto exactly this version of the object.
    fn already(&self, w: &Written) -> bool {
        let map = self.0.lock().expect("status memory lock");
        map.get(&w.uid) == Some(&(w.on_version.clone(), w.body))
    }

    fn remember(&self, w: Written) {
        let mut map = self.0.lock().expect("status memory lock");
        if map.len() >= REMEMBERED && !map.contains_key(&w.uid) {
            map.clear();
        }
        map.insert(w.uid, (w.on_version, w.body));
    }
}

/// `new`, with `null` for each top-level key of `old` it lacks.
fn patch<S: Serialize>(old: Option<&S>, new: &S) -> serde_json::Value {
    let mut value = serde_json::to_value(new).expect("status serializes");
    if let (Some(old), Some(obj)) = (
        old.and_then(|o| serde_json::to_value(o).ok()),
        value.as_object_mut(),
    ) {
        for key in old.as_object().into_iter().flat_map(|o| o.keys()) {
            obj.entry(key.clone()).or_insert(serde_json::Value::Null);
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    /// A client whose every request fails (nothing listens at its address): a write that
    /// returns `Ok` made no request.
    fn unreachable_client() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn object(uid: &str, version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("o".into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const ID: ControllerId = ControllerId {
        name: "test",
        manager: "test",
    };

    #[tokio::test]
    async fn an_unchanged_status_makes_no_request() {
        let api: Api<ConfigMap> = Api::namespaced(unreachable_client(), "ns");
        let metrics = Metrics::default();
        let st = serde_json::json!({"phase": "Running", "conditions": [{"type": "Ready"}]});
        let obj = object("uid-unchanged", "1");
        write(&ID, &metrics, &api, &obj, Some(&st), &st.clone())
            .await
            .expect("no request, so no failure");
        // A changed status is sent (and fails here, proving the client does make requests).
        let new = serde_json::json!({"phase": "Succeeded", "conditions": [{"type": "Ready"}]});
        assert!(
            write(&ID, &metrics, &api, &obj, Some(&st), &new)
                .await
                .is_err()
        );
        // Nothing written was counted.
        let label = crate::metrics::ControllerLabel {
            controller: ID.name,
        };
        assert_eq!(metrics.status_writes.get_or_create(&label).get(), 0);
    }

    #[test]
    fn a_write_onto_the_same_version_is_not_repeated() {
        let memory = Memory::default();
        let body = serde_json::json!({"phase": "Running"});
        let w = Written::of(&object("uid-a", "7"), &body).unwrap();
        assert!(!memory.already(&w));
        memory.remember(w.clone());
        // The watch has not shown our write yet: same version, same body: not again.
        assert!(memory.already(&w));
        // Another body, or a newer version of the object (someone changed it): written.
        let other = serde_json::json!({"phase": "Failed"});
        assert!(!memory.already(&Written::of(&object("uid-a", "7"), &other).unwrap()));
        assert!(!memory.already(&Written::of(&object("uid-a", "8"), &body).unwrap()));
        // Another object with the same status and version: written.
        assert!(!memory.already(&Written::of(&object("uid-b", "7"), &body).unwrap()));
    }

    #[test]
    fn the_plan_is_none_only_for_an_equal_status() {
        let st = serde_json::json!({"phase": "Running"});
        assert_eq!(planned(Some(&st), &st), None);
        assert_eq!(planned(None, &st), Some(st.clone()));
        let new = serde_json::json!({"phase": "Succeeded"});
        assert_eq!(planned(Some(&st), &new), Some(new.clone()));
    }

    #[test]
    fn removed_keys_are_nulled_and_kept_ones_written() {
        let old = serde_json::json!({"phase": "Running", "jobName": "j", "conditions": [1]});
        let new = serde_json::json!({"phase": "Succeeded", "conditions": [2]});
        assert_eq!(
            patch(Some(&old), &new),
            serde_json::json!({"phase": "Succeeded", "jobName": null, "conditions": [2]})
        );
        assert_eq!(patch(None, &new), new);
    }
}
