#![forbid(unsafe_code)]
//! Custom resource types of the model-registry-operator.
//!
//! - [`ModelRegistry`] (`modelregistry.opendatahub.io`, `v1beta1` storage, `v1alpha1` deprecated):
//!   a Model Registry instance.
//! - [`ModelTransfer`] (`modelregistry.opendatahub.io/v1alpha1`): copy a model between storage
//!   systems and register it.
//!
//! - [`aihub::AIHub`] (`components.platform.opendatahub.io/v1alpha1`, cluster-scoped): the
//!   OpenDataHub module CR the `aihub` controller reconciles.
//! - [`catalog::Catalog`] (`aihub.opendatahub.io/v1alpha1`): the Model Catalog (its builders are
//!   in; its controller is not yet wired).
//!
//! Each spec has a `validate()` that mirrors the CEL rules of its CRD, for API servers that do
//! not evaluate CEL. [`all_crds`] returns the CRDs to install.

pub mod aihub;
pub mod catalog;
pub mod common;
pub mod compat;
pub mod condition;
pub mod model_registry;
pub mod model_transfer;
pub mod validation;

pub use common::{ConfigMapKeyValue, SecretKeyValue, SecretRef};
pub use condition::{Condition, ConditionStatus, set_condition};
pub use model_registry::{ModelRegistry, ModelRegistrySpec, ModelRegistryStatus};
pub use model_transfer::{ModelTransfer, ModelTransferSpec, ModelTransferStatus};
pub use validation::ValidationError;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// API group of both custom resources.
pub const GROUP: &str = "modelregistry.opendatahub.io";

/// Every CRD of the operator: `ModelRegistry` (both versions), `ModelTransfer`, `AIHub`, then
/// `Catalog`.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        model_registry::crd(),
        model_transfer::crd(),
        aihub::crd(),
        catalog::crd(),
    ]
}
