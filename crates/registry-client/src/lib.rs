//! Typed async client for the Kubeflow Model Registry REST API.
//!
//! Shared by the operator and `model-sync` so that both speak the API the same way: one place
//! knows the wire quirks (`int_value` as a string, `artifactType` discriminators, the `v1` /
//! `v1alpha3` prefixes), and one place decides what is safe to retry.
//!
//! ```no_run
//! # async fn demo() -> registry_client::Result<()> {
//! use registry_client::{BearerToken, Client, ClientConfig};
//! let config = ClientConfig::new("https://model-registry.example:443")?
//!     .with_token(BearerToken::new("token"));
//! let client = Client::new(config)?;
//! if let Some(model) = client.find_registered_model_by_name("iris").await? {
//!     println!("{}", model.id);
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
mod metadata;
mod models;
mod ops;

pub use client::Client;
pub use config::{
    ApiSelection, ApiVersion, BearerToken, ClientConfig, DEFAULT_MAX_BODY_BYTES, RetryPolicy,
    parse_base_url,
};
pub use error::{Error, Result};
pub use metadata::{CustomProperties, MetadataValue};
pub use models::{
    ApiErrorBody, Artifact, ArtifactList, ArtifactState, FindParams, ListOptions, ListPage,
    MODEL_ARTIFACT_TYPE, ModelArtifact, ModelArtifactCreate, ModelArtifactFields,
    ModelArtifactList, ModelArtifactUpdate, ModelCard, ModelState, ModelVersion,
    ModelVersionCreate, ModelVersionList, ModelVersionUpdate, OrderBy, OtherArtifact,
    RegisteredModel, RegisteredModelCreate, RegisteredModelList, RegisteredModelUpdate, SortOrder,
};
