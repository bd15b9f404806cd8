//! Kubernetes events about a controller's resource. One shape for every controller: the note is
//! capped (an event is no place for a server's whole answer), and a failure to publish is only
//! logged (an event is never worth failing a reconcile for).
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

/// The longest note an event carries, in characters.
const NOTE_CHARS: usize = 1000;

/// Publishes one event regarding `obj`, waiting for the request.
pub async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    action: &str,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    send(
        recorder,
        &event(action, type_, reason, note),
        &obj.object_ref(&()),
    )
    .await;
}

/// As [`publish`], in the background: the caller (a reconcile, its status write) need not wait.
pub fn publish_in_background<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    action: &str,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let ev = event(action, type_, reason, note);
    let (recorder, regarding) = (recorder.clone(), obj.object_ref(&()));
    tokio::spawn(async move { send(&recorder, &ev, &regarding).await });
}

/// Publishes `ev`; a failure is only logged.
async fn send(recorder: &Recorder, ev: &Event, regarding: &ObjectReference) {
    if let Err(e) = recorder.publish(ev, regarding).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

fn event(action: &str, type_: EventType, reason: &str, note: &str) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(NOTE_CHARS).collect()),
        action: action.into(),
        secondary: None,
    }
}
