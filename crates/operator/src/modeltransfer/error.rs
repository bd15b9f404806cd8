//! A failed reconcile of a `ModelTransfer`: the error of the step that failed, and its category
//! for the one reporter ([`crate::kube_ext::report`]), which labels and categorises failed
//! requests as for every controller (by status code).
use super::apply::ApplyError;
use super::dereference::DereferenceError;
use super::finalize::FinalizeError;
use super::publish::StatusError;
use super::validate::ValidateError;
use crate::kube_ext::report::{Classify, Failure};

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

impl Classify for ReconcileError {
    /// Failed requests by their status code; everything else here (a name taken by someone
    /// else's object, a child refused, a transfer without namespace) persists until someone
    /// changes something.
    fn failure(&self) -> Failure<'_> {
        use ReconcileError as R;
        match self {
            R::Dereference(DereferenceError::Kube(e))
            | R::Validate(ValidateError::Kube(e))
            | R::Apply(ApplyError::Kube(e))
            | R::Status(StatusError::Kube(e))
            | R::Finalize(FinalizeError::Kube(e)) => Failure::Kube(e),
            R::Dereference(DereferenceError::MissingField(_)) | R::Apply(ApplyError::NoJob) => {
                Failure::must_act("missing_field")
            }
            R::Apply(ApplyError::Conflict(_)) => Failure::must_act("conflict"),
            R::Validate(ValidateError::Invalid(_))
            | R::Apply(ApplyError::Refused(_) | ApplyError::NotAJob(_)) => {
                Failure::must_act("invalid")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_ext::report::{Categorized, ErrorCategory, api_error as api};

    #[test]
    fn failures_keep_their_labels_and_categories() {
        let e = ReconcileError::Validate(ValidateError::Kube(api(403)));
        assert_eq!(e.metric_label(), "kube_api_403");
        assert_eq!(e.category(), ErrorCategory::UserMustAct);
        let e = ReconcileError::Status(StatusError::Kube(api(409)));
        assert_eq!(e.metric_label(), "kube_api_409");
        assert_eq!(e.category(), ErrorCategory::Transient);
        let e = ReconcileError::Apply(ApplyError::NoJob);
        assert_eq!(e.metric_label(), "missing_field");
        assert_eq!(e.category(), ErrorCategory::UserMustAct);
        let e = ReconcileError::Apply(ApplyError::Conflict("taken".into()));
        assert_eq!(e.metric_label(), "conflict");
        assert_eq!(e.category(), ErrorCategory::UserMustAct);
        let e = ReconcileError::Apply(ApplyError::Refused("no".into()));
        assert_eq!(e.metric_label(), "invalid");
        assert_eq!(e.category(), ErrorCategory::UserMustAct);
    }
}
