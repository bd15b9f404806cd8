//! The one status writer: every controller writes its resource's status through [`write`].
//!
//! A JSON merge patch of the whole status under the controller's field manager, with every
//! top-level key the previous status had and the new one lacks sent as `null`, so that a removed
//! key disappears (a merge patch alone keeps what it does not mention; lists, conditions among
//! them, are replaced whole). Why not server-side apply: objects written before carry their
//! status fields under an `Update` entry of the same manager, which an apply would never remove,
//! so removed keys would stay on every existing resource.
use std::fmt::Debug;

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
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "status": patch(old, new) })),
    )
    .await?;
    metrics.status_written(id.name);
    Ok(())
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
