//! Intent pre-checks: everything that can be known to fail is checked before a byte moves.
//!
//! | intent            | checks                                                              |
//! |-------------------|---------------------------------------------------------------------|
//! | `update_artifact` | the artifact exists (its state and properties are remembered)       |
//! | `create_model`    | no model with that name, unless it carries our marker (then reused) |
//! |                   | and then the same for the version name under it                     |
//! | `create_version`  | the model exists (by id or name); the version name is free, or the  |
//! |                   | version there carries our marker                                    |
//!
//! A name taken by something we did not create is a conflict whose message names the metadata
//! key (or flag) to change.

use registry_client::{Client, ModelArtifact, ModelVersion, RegisteredModel};

use super::marker::Marker;
use crate::config::{Config, Intent, ModelRef};
use crate::failure::{FailureReason, RunError, registry_error};

/// What the pre-checks found.
#[derive(Clone, Debug)]
pub enum Plan {
    UpdateArtifact(Box<ArtifactPlan>),
    Create(Box<CreatePlan>),
}

/// `update_artifact`: the artifact as it was before we touched it.
#[derive(Clone, Debug)]
pub struct ArtifactPlan {
    pub artifact: ModelArtifact,
}

/// `create_model` / `create_version`.
#[derive(Clone, Debug)]
pub struct CreatePlan {
    /// The parent model when it already exists (always for `create_version`; for `create_model`
    /// only when an earlier attempt of this transfer created it).
    pub model: Option<RegisteredModel>,
    pub model_name: String,
    pub version_name: String,
    /// A version an earlier attempt of this transfer created.
    pub version: Option<ModelVersion>,
    pub marker: Marker,
    /// Where the names came from, for conflict messages.
    pub model_name_field: String,
    pub version_name_field: String,
}

impl CreatePlan {
    /// Whether anything will be reused.
    pub fn reuses(&self) -> bool {
        self.version.is_some()
            || self
                .model
                .as_ref()
                .is_some_and(|m| self.marker.is_on(&m.custom_properties))
    }
}

fn metadata_key(cfg: &Config, key: &str) -> String {
    match &cfg.metadata {
        Some(md) => format!("metadata key {key} (in {})", md.dir.display()),
        None => format!("metadata key {key}"),
    }
}

fn rejected(message: String) -> RunError {
    RunError::new(FailureReason::RegistryRejected, message)
}

/// Runs the checks of the configured intent.
pub async fn precheck(client: &Client, cfg: &Config) -> Result<Plan, RunError> {
    match &cfg.intent {
        Intent::UpdateArtifact { model_artifact_id } => {
            let artifact = client.get_model_artifact(model_artifact_id).await.map_err(
                |e| match e {
                    registry_client::Error::NotFound { .. } => rejected(format!(
                        "model artifact {model_artifact_id} (--model-artifact-id) does not exist \
                         in the Model Registry at {}",
                        client.base_url()
                    )),
                    e => {
                        registry_error(e, &format!("looking up model artifact {model_artifact_id}"))
                    }
                },
            )?;
            Ok(Plan::UpdateArtifact(Box::new(ArtifactPlan { artifact })))
        }
        Intent::CreateModel {
            model_name,
            version_name,
        } => {
            let marker = Marker::for_config(cfg).ok_or_else(|| {
                RunError::new(FailureReason::Internal, "no transfer id for create_model")
            })?;
            let model_field = metadata_key(cfg, "RegisteredModel.name");
            let model = client
                .find_registered_model_by_name(model_name)
                .await
                .map_err(|e| {
                    registry_error(e, &format!("looking up registered model {model_name:?}"))
                })?;
            if let Some(m) = &model
                && !marker.is_on(&m.custom_properties)
            {
                return Err(rejected(format!(
                    "registered model {model_name:?} already exists (id {}) and was not created \
                     by this transfer; choose another name in {model_field}, or use \
                     --model-upload-intent create_version to add a version to it",
                    m.id
                )));
            }
            let mut plan = CreatePlan {
                model,
                model_name: model_name.clone(),
                version_name: version_name.clone(),
                version: None,
                marker,
                model_name_field: model_field,
                version_name_field: metadata_key(cfg, "ModelVersion.name"),
            };
            check_version(client, &mut plan).await?;
            Ok(Plan::Create(Box::new(plan)))
        }
        Intent::CreateVersion {
            model,
            version_name,
        } => {
            let marker = Marker::for_config(cfg).ok_or_else(|| {
                RunError::new(FailureReason::Internal, "no transfer id for create_version")
            })?;
            let found = match model {
                ModelRef::Id(id) => {
                    let field = if cfg.ids.model_id.as_deref() == Some(id.as_str()) {
                        crate::config::Key::ModelId.label()
                    } else {
                        metadata_key(cfg, "RegisteredModel.id")
                    };
                    let m = match client.get_registered_model(id).await {
                        Ok(m) => Some(m),
                        Err(registry_client::Error::NotFound { .. }) => None,
                        Err(e) => {
                            return Err(registry_error(
                                e,
                                &format!("looking up registered model {id}"),
                            ));
                        }
                    };
                    m.ok_or_else(|| format!("registered model {id} given by {field}"))
                }
                ModelRef::Name(name) => {
                    let field = metadata_key(cfg, "RegisteredModel.name");
                    let m = client
                        .find_registered_model_by_name(name)
                        .await
                        .map_err(|e| {
                            registry_error(e, &format!("looking up registered model {name:?}"))
                        })?;
                    m.ok_or_else(|| format!("registered model {name:?} named by {field}"))
                }
            };
            let model = found.map_err(|what| {
                rejected(format!(
                    "{what} does not exist in the Model Registry at {}; create_version adds a \
                     version to an existing model (use create_model to create one)",
                    client.base_url()
                ))
            })?;
            let mut plan = CreatePlan {
                model_name: model.name.clone(),
                model: Some(model),
                version_name: version_name.clone(),
                version: None,
                marker,
                model_name_field: metadata_key(cfg, "RegisteredModel.name"),
                version_name_field: metadata_key(cfg, "ModelVersion.name"),
            };
            check_version(client, &mut plan).await?;
            Ok(Plan::Create(Box::new(plan)))
        }
    }
}

/// The version name must be free under the model, or taken by a version carrying our marker.
async fn check_version(client: &Client, plan: &mut CreatePlan) -> Result<(), RunError> {
    let Some(model) = &plan.model else {
        return Ok(());
    };
    let existing = client
        .find_model_version(&plan.version_name, &model.id)
        .await
        .map_err(|e| {
            registry_error(
                e,
                &format!(
                    "looking up model version {:?} of registered model {}",
                    plan.version_name, model.id
                ),
            )
        })?;
    match existing {
        None => Ok(()),
        Some(v) if plan.marker.is_on(&v.custom_properties) => {
            plan.version = Some(v);
            Ok(())
        }
        Some(v) => Err(rejected(format!(
            "model version {:?} already exists (id {}) under registered model {:?} (id {}) and \
             was not created by this transfer; choose another name in {}",
            plan.version_name, v.id, model.name, model.id, plan.version_name_field
        ))),
    }
}
