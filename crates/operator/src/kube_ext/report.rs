//! One reporter for failed reconciles, for every controller: the failure metric (by the error's
//! label), one log line, and, for errors in the [`ErrorCategory::UserMustAct`] category, a
//! warning event on the resource (when the controller asks for it). A controller's errors say
//! which category they are in ([`Categorized`]); the retry itself follows the object's backoff
//! (see [`super::backoff`]).
use kube::runtime::events::{EventType, Recorder};
use kube::{Resource, ResourceExt};

use super::events;
use super::identity::ControllerId;
use crate::metrics::Metrics;

/// Whether a failure goes away by retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCategory {
    /// Conflicts, throttling, server and transport errors: only retried.
    Transient,
    /// Persists until someone changes something (the API server rejected a request as invalid
    /// or forbidden, the desired objects cannot be built): shown to the user.
    UserMustAct,
}

/// What the reporter needs of a reconcile error.
pub trait Categorized: std::fmt::Display {
    /// Label for the `reconcile_failures` metric.
    fn metric_label(&self) -> String;
    fn category(&self) -> ErrorCategory;
}

/// Where a controller's failures are reported.
pub struct Reporter<'a> {
    pub id: &'a ControllerId,
    pub metrics: &'a Metrics,
    /// Publishes a `ReconcileFailed` warning for [`ErrorCategory::UserMustAct`] errors; `None`
    /// for a controller whose status already tells the user.
    pub events: Option<&'a Recorder>,
}

impl Reporter<'_> {
    /// Reports one failed reconcile of `obj`.
    pub fn failed<K, E>(&self, obj: &K, err: &E)
    where
        K: Resource<DynamicType = ()>,
        E: Categorized,
    {
        self.metrics
            .reconcile_failed(self.id.name, &err.metric_label());
        tracing::warn!(controller = self.id.name, name = %obj.name_any(),
            namespace = ?obj.namespace(), error = %err, "reconcile failed");
        // The recorder folds repeats into one event series.
        if let Some(recorder) = self.events
            && err.category() == ErrorCategory::UserMustAct
            && tokio::runtime::Handle::try_current().is_ok()
        {
            events::publish_in_background(
                recorder,
                obj,
                "Reconcile",
                EventType::Warning,
                "ReconcileFailed",
                &err.to_string(),
            );
        }
    }
}

/// The metric label of a failed Kubernetes request: the API status code when the server
/// answered, else `kube_client`. Every controller's errors label their Kubernetes failures so.
pub fn kube_metric_label(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("kube_api_{}", s.code),
        _ => "kube_client".into(),
    }
}

/// The category of a failed Kubernetes request: a request the API server rejected as invalid
/// or forbidden (400, 403, 422) persists until someone changes something; conflicts,
/// throttling, server and transport errors are transient.
pub fn kube_category(e: &kube::Error) -> ErrorCategory {
    match e {
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 422) => ErrorCategory::UserMustAct,
        _ => ErrorCategory::Transient,
    }
}
