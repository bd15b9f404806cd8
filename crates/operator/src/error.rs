//! Reconciliation errors. Each has a short metric label; none carries secret values.
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::report::{Categorized, ErrorCategory};

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
            Error::Kube(kube::Error::Api(s)) => format!("kube_api_{}", s.code),
            Error::Kube(_) => "kube_client".into(),
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
        let user_must_act = match self {
            Error::Kube(kube::Error::Api(s)) => matches!(s.code, 400 | 403 | 422),
            Error::Kube(_) | Error::Registry(_) => false,
            Error::Invalid(_) | Error::Build(_) | Error::MissingField(_) | Error::Conflict(_) => {
                true
            }
        };
        if user_must_act {
            ErrorCategory::UserMustAct
        } else {
            ErrorCategory::Transient
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
