//! Reconciliation errors. Each has a short metric label; none carries secret values.
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::report::{Categorized, ErrorCategory, kube_category, kube_metric_label};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("invalid configuration: {0}")]
    Invalid(String),

    #[error("cannot build the desired objects: {0}")]
    Build(#[from] BuildError),

    #[error("object has no {0}")]
    MissingField(&'static str),

    #[error("registry request failed: {0}")]
    Registry(String),

    /// A child's name is taken by an object the operator did not create for this parent.
    #[error("{0}")]
    Conflict(#[from] Box<crate::kube_ext::child::Conflict>),
}

impl From<crate::kube_ext::apply::ApplyError> for Error {
    fn from(e: crate::kube_ext::apply::ApplyError) -> Error {
        match e {
            crate::kube_ext::apply::ApplyError::Kube(e) => Error::Kube(e),
            crate::kube_ext::apply::ApplyError::Conflict(c) => Error::Conflict(c),
        }
    }
}

impl Categorized for Error {
    fn metric_label(&self) -> String {
        match self {
            Error::Kube(e) => kube_metric_label(e),
            Error::Invalid(_) => "invalid".into(),
            Error::Build(_) => "build".into(),
            Error::MissingField(_) => "missing_field".into(),
            Error::Registry(_) => "registry".into(),
            Error::Conflict(_) => "conflict".into(),
        }
    }

    /// Failures that persist until someone changes something: the API server rejected a
    /// request as invalid or forbidden, or the desired objects cannot be built. Conflicts,
    /// throttling, server and transport errors are transient and only retried.
    fn category(&self) -> ErrorCategory {
        match self {
            Error::Kube(e) => kube_category(e),
            Error::Registry(_) => ErrorCategory::Transient,
            Error::Invalid(_) | Error::Build(_) | Error::MissingField(_) | Error::Conflict(_) => {
                ErrorCategory::UserMustAct
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
