//! One reporter for failed reconciles, for every controller: the failure metric (by the error's
//! label), one log line, and, for errors in the [`ErrorCategory::UserMustAct`] category, a
//! warning event on the resource (when the controller asks for it). A controller's errors say
//! what they came to ([`Classify`], a [`Failure`]): the label and category of every failed
//! Kubernetes request are derived here, once, so every controller counts and shows them alike;
//! the retry itself follows the object's backoff (see [`super::backoff`]).
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

/// What the reporter needs of a reconcile error. Derived from [`Classify`] (implement that);
/// only an error the reporter cannot describe as a [`Failure`] implements this itself.
pub trait Categorized: std::fmt::Display {
    /// Label for the `reconcile_failures` metric.
    fn metric_label(&self) -> String;
    fn category(&self) -> ErrorCategory;
}

/// A reconcile error, told as what it came to. Each controller keeps its own per-step error
/// types and says here which of them is a failed request and which is the controller's own;
/// the labels and categories follow from that.
pub trait Classify: std::fmt::Display {
    fn failure(&self) -> Failure<'_>;
}

impl<E: Classify> Categorized for E {
    fn metric_label(&self) -> String {
        self.failure().metric_label()
    }

    fn category(&self) -> ErrorCategory {
        self.failure().category()
    }
}

/// What a failed reconcile came to, as the reporter counts and shows it.
#[derive(Clone, Copy, Debug)]
pub enum Failure<'a> {
    /// A failed Kubernetes request: labelled by the API status code ([`kube_metric_label`]),
    /// categorised by it ([`kube_category`]).
    Kube(&'a kube::Error),
    /// A failed Kubernetes request of the named step: as [`Failure::Kube`], the label prefixed
    /// with the step (`apply_kube_api_403`).
    KubeIn(&'static str, &'a kube::Error),
    /// Anything else: the controller's own label and category.
    Other(&'static str, ErrorCategory),
}

impl Failure<'_> {
    /// A failure that persists until someone changes something, labelled `label`.
    pub const fn must_act(label: &'static str) -> Failure<'static> {
        Failure::Other(label, ErrorCategory::UserMustAct)
    }

    pub fn metric_label(&self) -> String {
        match self {
            Failure::Kube(e) => kube_metric_label(e),
            Failure::KubeIn(step, e) => format!("{step}_{}", kube_metric_label(e)),
            Failure::Other(label, _) => (*label).into(),
        }
    }

    pub fn category(&self) -> ErrorCategory {
        match self {
            Failure::Kube(e) | Failure::KubeIn(_, e) => kube_category(e),
            Failure::Other(_, category) => *category,
        }
    }
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

/// A request the API server answered with `code` (for tests of error mappings).
#[cfg(test)]
pub fn api_error(code: u16) -> kube::Error {
    kube::Error::Api(
        kube::core::Status {
            code,
            ..kube::core::Status::success()
        }
        .boxed(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::api_error as api;

    #[test]
    fn requests_are_labelled_and_categorised_by_their_status_code() {
        for code in [400, 403, 422] {
            let e = api(code);
            assert_eq!(Failure::Kube(&e).category(), ErrorCategory::UserMustAct);
            assert_eq!(Failure::Kube(&e).metric_label(), format!("kube_api_{code}"));
        }
        for code in [404, 409, 429, 500, 503] {
            let e = api(code);
            assert_eq!(Failure::Kube(&e).category(), ErrorCategory::Transient);
        }
        let timeout = kube::Error::Service("timeout".into());
        assert_eq!(Failure::Kube(&timeout).metric_label(), "kube_client");
        assert_eq!(Failure::Kube(&timeout).category(), ErrorCategory::Transient);
    }

    #[test]
    fn a_step_prefixes_the_label_and_keeps_the_category() {
        let e = api(403);
        let f = Failure::KubeIn("apply", &e);
        assert_eq!(f.metric_label(), "apply_kube_api_403");
        assert_eq!(f.category(), ErrorCategory::UserMustAct);
        let timeout = kube::Error::Service("timeout".into());
        assert_eq!(
            Failure::KubeIn("status", &timeout).metric_label(),
            "status_kube_client"
        );
    }

    #[test]
    fn a_controllers_own_failure_keeps_its_label_and_category() {
        assert_eq!(Failure::must_act("conflict").metric_label(), "conflict");
        assert_eq!(
            Failure::must_act("conflict").category(),
            ErrorCategory::UserMustAct
        );
        let f = Failure::Other("registry", ErrorCategory::Transient);
        assert_eq!(f.category(), ErrorCategory::Transient);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("x")]
    struct Refused(kube::Error);

    impl Classify for Refused {
        fn failure(&self) -> Failure<'_> {
            Failure::Kube(&self.0)
        }
    }

    #[test]
    fn a_classified_error_is_what_the_reporter_reads() {
        let e = Refused(api(422));
        assert_eq!(e.metric_label(), "kube_api_422");
        assert_eq!(e.category(), ErrorCategory::UserMustAct);
    }
}
