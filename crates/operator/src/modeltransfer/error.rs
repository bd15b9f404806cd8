//! A failed reconcile of a `ModelTransfer`: the error of the step that failed, and its category
//! for the one reporter ([`crate::kube_ext::report`]). The metric labels and categories are the
//! ones every controller uses (Kubernetes failures by status code).
use super::apply::ApplyError;
use super::dereference::DereferenceError;
use super::finalize::FinalizeError;
use super::publish::StatusError;
use super::validate::ValidateError;
use crate::kube_ext::report::{Categorized, ErrorCategory, kube_category, kube_metric_label};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Validate(#[from] ValidateError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Finalize(#[from] FinalizeError),
}

impl ReconcileError {
    /// The failed Kubernetes request behind this error, if that is what it is.
    fn kube(&self) -> Option<&kube::Error> {
        match self {
            ReconcileError::Dereference(DereferenceError::Kube(e))
            | ReconcileError::Validate(ValidateError::Kube(e))
            | ReconcileError::Apply(ApplyError::Kube(e))
            | ReconcileError::Status(StatusError::Kube(e))
            | ReconcileError::Finalize(FinalizeError::Kube(e)) => Some(e),
            _ => None,
        }
    }
}

impl Categorized for ReconcileError {
    fn metric_label(&self) -> String {
        if let Some(e) = self.kube() {
            return kube_metric_label(e);
        }
        match self {
            ReconcileError::Dereference(DereferenceError::MissingField(_))
            | ReconcileError::Apply(ApplyError::NoJob) => "missing_field",
            ReconcileError::Apply(ApplyError::Conflict(_)) => "conflict",
            _ => "invalid",
        }
        .into()
    }

    /// Kubernetes failures by their status code (see [`kube_category`]); everything else here
    /// (a name taken by someone else's object, a child refused, a transfer without namespace)
    /// persists until someone changes something.
    fn category(&self) -> ErrorCategory {
        match self.kube() {
            Some(e) => kube_category(e),
            None => ErrorCategory::UserMustAct,
        }
    }
}
