//! The `ModelTransfer` custom resource (`modelregistry.opendatahub.io/v1alpha1`): copy a model
//! between storage systems in a Job and register it in a Model Registry.

mod model;
mod signing;
mod spec;
mod status;
mod validate;

pub use model::{
    CustomProperties, CustomPropertyValue, ModelArtifactMetadata, ModelVersionMetadata,
    PropertyValue, RegisteredModelMetadata, TransferModel,
};
pub use signing::{
    DEFAULT_AUDIENCE, KeylessSigning, MAX_TOKEN_EXPIRATION_SECONDS, MIN_TOKEN_EXPIRATION_SECONDS,
    TransferSigning,
};
pub use spec::{
    HuggingFaceSource, ModelRegistryRef, ModelTransfer, ModelTransferSpec, OciDestination,
    OciSource, PvcLocation, RegistryTarget, S3Location, TransferDestination, TransferIntent,
    TransferJobSpec, TransferSource, UriSource,
};
pub use status::{ModelTransferStatus, TransferPhase};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API version name.
pub const VERSION: &str = "v1alpha1";

/// Name of the CRD object.
pub const CRD_NAME: &str = "modeltransfers.modelregistry.opendatahub.io";

/// The `ModelTransfer` CRD.
pub fn crd() -> CustomResourceDefinition {
    ModelTransfer::crd()
}
