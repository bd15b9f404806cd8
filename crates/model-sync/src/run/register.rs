//! Registration after a successful transfer, and failure recording.
//!
//! Order (create intents): registered model (created unless it exists with our marker) → model
//! version (same) → model artifact (created `LIVE` in one POST, or, when an artifact with our
//! marker exists, PATCHed to the new URI and `LIVE`). Nothing is written before the transfer has
//! succeeded, so a failed transfer leaves the registry untouched.
//!
//! Every step looks up before it creates, so the whole sequence can be repeated: the registry
//! client retries single requests on transient failures, and [`register`] repeats the sequence
//! with backoff when a request still fails transiently (a POST whose answer was lost is found by
//! the next pass instead of being duplicated). If registration still fails, what was created is
//! archived (best effort) with a `model_sync_error` property, and a rerun reuses and revives it.
//!
//! `update_artifact`: the artifact is PATCHed to `PENDING` before the transfer (unless it is
//! `LIVE`: that one stays `LIVE` with its old URI) and to `{uri, state: LIVE}` after it. On failure it is PATCHed to [`failed_state`] of its previous
//! state, with `model_sync_error` = `"<Reason>: <message>"`; its URI is left unchanged.

use std::time::Duration;

use registry_client::{
    ArtifactState, Client, CustomProperties, MetadataValue, ModelArtifact, ModelArtifactCreate,
    ModelArtifactFields, ModelArtifactUpdate, ModelState, ModelVersion, ModelVersionCreate,
    ModelVersionUpdate, RegisteredModel, RegisteredModelCreate, RegisteredModelUpdate,
};

use super::intents::{ArtifactPlan, CreatePlan, Plan};
use super::marker::{ERROR_PROPERTY, Marker};
use super::termination::Scrubber;
use crate::config::{Config, ModelMetadata};
use crate::failure::{FailureReason, RunError, registry_error};
use crate::transfer::Published;

/// Longest `model_sync_error` value written to the registry.
const MAX_ERROR_PROPERTY_CHARS: usize = 1000;

/// How often the whole registration sequence is attempted, and the pauses in between. Each
/// request inside already has the client's own retries (5 attempts, 0.25 s doubling).
#[derive(Clone, Debug)]
pub struct RegistrationRetry {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RegistrationRetry {
    fn default() -> Self {
        Self {
            attempts: 3,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
        }
    }
}

/// Ids of what the run registered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registered {
    pub registered_model_id: Option<String>,
    pub model_version_id: Option<String>,
    pub model_artifact_id: String,
}

/// Whether repeating the registration sequence may help.
fn retryable(e: &registry_client::Error) -> bool {
    use registry_client::Error as E;
    e.is_transient()
        || matches!(e, E::Transport { .. })
        || matches!(e, E::Server { status, .. } if *status >= 500 || *status == 429)
}

/// `update_artifact`: marks the artifact `PENDING` before the transfer, unless it is `LIVE`.
///
/// A `LIVE` artifact points at data that is still intact, so it stays `LIVE` with its old URI
/// until the new one is published: a run killed mid-transfer (nothing can be recorded then)
/// must not leave it `PENDING`, nor make the retry read `PENDING` as its previous state and
/// turn it `ABANDONED`.
pub async fn mark_pending(client: &Client, plan: &ArtifactPlan) -> Result<(), RunError> {
    let id = &plan.artifact.id;
    if plan.artifact.fields.state == Some(ArtifactState::Live) {
        tracing::info!(artifact = %id, "model artifact is LIVE; it keeps its URI until the new one is published");
        return Ok(());
    }
    client
        .update_model_artifact(id, &ModelArtifactUpdate::state(ArtifactState::Pending))
        .await
        .map_err(|e| registry_error(e, &format!("marking model artifact {id} PENDING")))?;
    Ok(())
}

/// Registers the published model, repeating the idempotent sequence on transient failures.
pub async fn register(
    client: &Client,
    cfg: &Config,
    plan: &Plan,
    published: &Published,
    retry: &RegistrationRetry,
) -> Result<Registered, RunError> {
    let mut delay = retry.initial;
    let mut attempt = 1;
    loop {
        let result = match plan {
            Plan::UpdateArtifact(p) => finish_artifact(client, p, published).await,
            Plan::Create(p) => create(client, cfg, p, published).await,
        };
        match result {
            Ok(r) => return Ok(r),
            Err(Step { error, what }) if retryable(&error) && attempt < retry.attempts => {
                tracing::warn!(
                    attempt,
                    ?delay,
                    error = %registry_client_chain(&error),
                    "registration failed while {what}; repeating the registration"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(retry.max);
                attempt += 1;
            }
            Err(Step { error, what }) => {
                if let Plan::Create(p) = plan {
                    archive_incomplete(client, p, &what, &error).await;
                }
                let mut e = registry_error(error, &what);
                // Whatever the status, this is the registry refusing the registration.
                if e.reason != FailureReason::InvalidConfiguration {
                    e.reason = FailureReason::RegistryRejected;
                }
                e.message = format!(
                    "the model was transferred to {} but registering it failed: {}",
                    published.uri, e.message
                );
                return Err(e);
            }
        }
    }
}

fn registry_client_chain(e: &registry_client::Error) -> String {
    crate::transfer::error::chain(e)
}

/// A failed registry request and what it was for.
struct Step {
    error: registry_client::Error,
    what: String,
}

trait StepExt<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, Step>;
}

impl<T> StepExt<T> for registry_client::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, Step> {
        self.map_err(|error| Step {
            error,
            what: what(),
        })
    }
}

/// The registered artifact as a fresh GET returns it, for the termination message (the
/// operator's `Registered` check reads it where it cannot read the registry itself). A failed
/// read is logged and reported as no read-back: the registration itself succeeded.
pub async fn read_back(
    client: &Client,
    id: &str,
    scrubber: &Scrubber,
) -> Option<super::termination::ReadBack> {
    match client.get_model_artifact(id).await {
        Ok(a) => Some(super::termination::ReadBack {
            model_artifact_id: Some(a.id),
            state: Some(
                a.fields
                    .state
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "UNKNOWN".into()),
            ),
            uri: Some(a.fields.uri.unwrap_or_default()),
        }),
        Err(e) => {
            tracing::warn!(
                artifact = %id,
                "could not read the registered model artifact back: {}",
                scrubber.scrub(&registry_client_chain(&e))
            );
            None
        }
    }
}

/// `update_artifact` success: new URI, `LIVE`, and the error of an earlier failure removed.
async fn finish_artifact(
    client: &Client,
    plan: &ArtifactPlan,
    published: &Published,
) -> Result<Registered, Step> {
    let id = &plan.artifact.id;
    let mut update = ModelArtifactUpdate::uri_and_state(published.uri.clone(), ArtifactState::Live);
    if plan.artifact.custom_properties.contains_key(ERROR_PROPERTY) {
        let mut props = plan.artifact.custom_properties.clone();
        props.remove(ERROR_PROPERTY);
        update.custom_properties = Some(props);
    }
    let a = client
        .update_model_artifact(id, &update)
        .await
        .step(|| format!("setting the URI of model artifact {id} and marking it LIVE"))?;
    Ok(Registered {
        registered_model_id: None,
        model_version_id: None,
        model_artifact_id: a.id,
    })
}

/// The state an `update_artifact` target gets when the transfer fails: its previous state when
/// that describes data that is still intact (the URI is not changed), `ABANDONED` when it was
/// waiting for this upload (`PENDING`/`UNKNOWN`), so that it is never left silently `PENDING`.
pub fn failed_state(previous: Option<ArtifactState>) -> ArtifactState {
    match previous {
        None | Some(ArtifactState::Pending | ArtifactState::Unknown) => ArtifactState::Abandoned,
        Some(s) => s,
    }
}

fn error_value(reason: FailureReason, message: &str, scrubber: &Scrubber) -> MetadataValue {
    let text = scrubber.scrub(&format!("{}: {message}", reason.code()));
    let mut short: String = text.chars().take(MAX_ERROR_PROPERTY_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    MetadataValue::from(short)
}

/// `update_artifact` failure: previous (or `ABANDONED`) state plus `model_sync_error`. Best
/// effort: a failure to record is logged, the original error is what the run reports.
pub async fn record_artifact_failure(
    client: &Client,
    plan: &ArtifactPlan,
    error: &RunError,
    scrubber: &Scrubber,
) {
    let id = &plan.artifact.id;
    let mut props = plan.artifact.custom_properties.clone();
    props.insert(
        ERROR_PROPERTY.to_owned(),
        error_value(error.reason, &error.message, scrubber),
    );
    let state = failed_state(plan.artifact.fields.state);
    let update = ModelArtifactUpdate {
        custom_properties: Some(props),
        ..ModelArtifactUpdate::state(state)
    };
    match client.update_model_artifact(id, &update).await {
        Ok(_) => tracing::info!(
            artifact = %id,
            state = ?state,
            "recorded the failure on the model artifact"
        ),
        Err(e) => tracing::warn!(
            artifact = %id,
            "could not record the failure on the model artifact: {}",
            scrubber.scrub(&registry_client_chain(&e))
        ),
    }
}

fn with_marker(props: &CustomProperties, marker: &Marker) -> CustomProperties {
    let mut p = props.clone();
    marker.stamp(&mut p);
    p
}

fn metadata(cfg: &Config) -> ModelMetadata {
    cfg.metadata.clone().unwrap_or_default()
}

/// The artifact fields of a create intent.
fn artifact_fields(md: &ModelMetadata, uri: &str) -> ModelArtifactFields {
    let a = &md.model_artifact;
    ModelArtifactFields {
        uri: Some(uri.to_owned()),
        state: Some(ArtifactState::Live),
        model_format_name: a.model_format_name.clone(),
        model_format_version: a.model_format_version.clone(),
        storage_key: a.storage_key.clone(),
        storage_path: a.storage_path.clone(),
        service_account_name: a.service_account_name.clone(),
        model_source_kind: a.model_source_kind.clone(),
        model_source_class: a.model_source_class.clone(),
        model_source_group: a.model_source_group.clone(),
        model_source_id: a.model_source_id.clone(),
        model_source_name: a.model_source_name.clone(),
    }
}

/// The model artifact's name: `ModelArtifact.name`, else the registered model's name (what the
/// upstream Python client does).
fn artifact_name(md: &ModelMetadata, plan: &CreatePlan) -> String {
    md.model_artifact
        .name
        .clone()
        .unwrap_or_else(|| plan.model_name.clone())
}

async fn create(
    client: &Client,
    cfg: &Config,
    plan: &CreatePlan,
    published: &Published,
) -> Result<Registered, Step> {
    let md = metadata(cfg);
    let model = ensure_model(client, &md, plan).await?;
    let version = ensure_version(client, cfg, &md, plan, &model).await?;
    let artifact = ensure_artifact(client, &md, plan, &version, published).await?;
    Ok(Registered {
        registered_model_id: Some(model.id),
        model_version_id: Some(version.id),
        model_artifact_id: artifact.id,
    })
}

/// Finds or creates the registered model. A model carrying our marker is reused (and revived if
/// an earlier failure archived it); one without it is a conflict.
async fn ensure_model(
    client: &Client,
    md: &ModelMetadata,
    plan: &CreatePlan,
) -> Result<RegisteredModel, Step> {
    let marker = &plan.marker;
    let name = &plan.model_name;
    // create_version: the model was resolved by the pre-check and is not ours to change.
    if let Some(m) = &plan.model
        && !marker.is_on(&m.custom_properties)
    {
        return Ok(m.clone());
    }
    let found = client
        .find_registered_model_by_name(name)
        .await
        .step(|| format!("looking up registered model {name:?}"))?;
    let rm = &md.registered_model;
    let props = with_marker(&rm.custom_properties, marker);
    match found {
        Some(m) if marker.is_on(&m.custom_properties) => {
            let needs_revive = m.state == Some(ModelState::Archived)
                || m.custom_properties.contains_key(ERROR_PROPERTY);
            if !needs_revive {
                return Ok(m);
            }
            let update = RegisteredModelUpdate {
                state: Some(ModelState::Live),
                custom_properties: Some(props),
                description: rm.description.clone(),
                owner: rm.owner.clone(),
                ..RegisteredModelUpdate::default()
            };
            client
                .update_registered_model(&m.id, &update)
                .await
                .step(|| format!("reviving registered model {}", m.id))
        }
        Some(m) => Err(conflict(format!(
            "registered model {name:?} already exists (id {}) and was not created by this \
             transfer; choose another name in {}",
            m.id, plan.model_name_field
        ))),
        None => {
            let body = RegisteredModelCreate {
                name: name.clone(),
                description: rm.description.clone(),
                owner: rm.owner.clone(),
                custom_properties: props,
                ..RegisteredModelCreate::default()
            };
            client
                .create_registered_model(&body)
                .await
                .step(|| format!("creating registered model {name:?}"))
        }
    }
}

async fn ensure_version(
    client: &Client,
    cfg: &Config,
    md: &ModelMetadata,
    plan: &CreatePlan,
    model: &RegisteredModel,
) -> Result<ModelVersion, Step> {
    let marker = &plan.marker;
    let name = &plan.version_name;
    let found = client.find_model_version(name, &model.id).await.step(|| {
        format!(
            "looking up model version {name:?} of registered model {}",
            model.id
        )
    })?;
    let mv = &md.model_version;
    let author = mv.author.clone().or_else(|| cfg.registry.author.clone());
    let props = with_marker(&mv.custom_properties, marker);
    match found {
        Some(v) if marker.is_on(&v.custom_properties) => {
            let needs_revive = v.state == Some(ModelState::Archived)
                || v.custom_properties.contains_key(ERROR_PROPERTY);
            if !needs_revive {
                return Ok(v);
            }
            let update = ModelVersionUpdate {
                state: Some(ModelState::Live),
                custom_properties: Some(props),
                description: mv.description.clone(),
                author,
                ..ModelVersionUpdate::default()
            };
            client
                .update_model_version(&v.id, &update)
                .await
                .step(|| format!("reviving model version {}", v.id))
        }
        Some(v) => Err(conflict(format!(
            "model version {name:?} already exists (id {}) under registered model {:?} (id {}) \
             and was not created by this transfer; choose another name in {}",
            v.id, model.name, model.id, plan.version_name_field
        ))),
        None => {
            let body = ModelVersionCreate {
                name: name.clone(),
                registered_model_id: model.id.clone(),
                description: mv.description.clone(),
                author,
                custom_properties: props,
                ..ModelVersionCreate::default()
            };
            client.create_model_version(&body).await.step(|| {
                format!(
                    "creating model version {name:?} of registered model {}",
                    model.id
                )
            })
        }
    }
}

async fn ensure_artifact(
    client: &Client,
    md: &ModelMetadata,
    plan: &CreatePlan,
    version: &ModelVersion,
    published: &Published,
) -> Result<ModelArtifact, Step> {
    let marker = &plan.marker;
    let a = &md.model_artifact;
    let name = artifact_name(md, plan);
    let props = with_marker(&a.custom_properties, marker);
    let existing = client
        .list_all_model_version_artifacts(&version.id, &registry_client::ListOptions::default())
        .await
        .step(|| format!("listing the artifacts of model version {}", version.id))?;
    if let Some(ours) = existing.iter().find(|x| marker.is_on(&x.custom_properties)) {
        let update = ModelArtifactUpdate {
            description: a.description.clone(),
            custom_properties: Some(props),
            fields: artifact_fields(md, &published.uri),
            ..ModelArtifactUpdate::default()
        };
        return client
            .update_model_artifact(&ours.id, &update)
            .await
            .step(|| format!("updating model artifact {}", ours.id));
    }
    if let Some(other) = existing.iter().find(|x| x.name.as_deref() == Some(&name)) {
        return Err(conflict(format!(
            "model artifact {name:?} already exists (id {}) in model version {} and was not \
             created by this transfer; choose another name in metadata key ModelArtifact.name",
            other.id, version.id
        )));
    }
    let body = ModelArtifactCreate {
        name: Some(name.clone()),
        description: a.description.clone(),
        custom_properties: props,
        fields: artifact_fields(md, &published.uri),
        ..ModelArtifactCreate::default()
    };
    client
        .create_model_version_artifact(&version.id, &body)
        .await
        .step(|| {
            format!(
                "creating model artifact {name:?} in model version {}",
                version.id
            )
        })
}

fn conflict(message: String) -> Step {
    Step {
        what: "checking names".into(),
        error: registry_client::Error::Conflict { message },
    }
}

/// Best effort, after registration failed for good: whatever this transfer created and could
/// not complete is archived with a `model_sync_error`, so that no half-registered model shows
/// up as usable. A version of ours without an artifact of ours is archived; our model is
/// archived when its version could not be created. A rerun revives both (see `ensure_*`).
/// Every step looks the state up again, so nothing is archived on guesswork; if the registry
/// is unreachable nothing happens.
async fn archive_incomplete(
    client: &Client,
    plan: &CreatePlan,
    what: &str,
    error: &registry_client::Error,
) {
    let marker = &plan.marker;
    let cause = error_value(
        FailureReason::RegistryRejected,
        &format!("{what}: {}", registry_client_chain(error)),
        &Scrubber::default(),
    );
    let Ok(Some(model)) = client.find_registered_model_by_name(&plan.model_name).await else {
        return;
    };
    let version = match client
        .find_model_version(&plan.version_name, &model.id)
        .await
    {
        Ok(v) => v,
        Err(_) => return,
    };
    match version {
        Some(v) if marker.is_on(&v.custom_properties) => {
            let complete = client
                .list_all_model_version_artifacts(&v.id, &registry_client::ListOptions::default())
                .await
                .map(|arts| arts.iter().any(|a| marker.is_on(&a.custom_properties)));
            if complete.unwrap_or(true) {
                return;
            }
            let mut props = v.custom_properties.clone();
            props.insert(ERROR_PROPERTY.to_owned(), cause);
            let update = ModelVersionUpdate {
                state: Some(ModelState::Archived),
                custom_properties: Some(props),
                ..ModelVersionUpdate::default()
            };
            match client.update_model_version(&v.id, &update).await {
                Ok(_) => tracing::warn!(version = %v.id, "archived the incomplete model version"),
                Err(e) => {
                    tracing::warn!(version = %v.id, "could not archive the incomplete model version: {e}")
                }
            }
        }
        Some(_) => {}
        None if marker.is_on(&model.custom_properties) => {
            let mut props = model.custom_properties.clone();
            props.insert(ERROR_PROPERTY.to_owned(), cause);
            let update = RegisteredModelUpdate {
                state: Some(ModelState::Archived),
                custom_properties: Some(props),
                ..RegisteredModelUpdate::default()
            };
            match client.update_registered_model(&model.id, &update).await {
                Ok(_) => {
                    tracing::warn!(model = %model.id, "archived the incomplete registered model")
                }
                Err(e) => {
                    tracing::warn!(model = %model.id, "could not archive the incomplete registered model: {e}")
                }
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_state_rule() {
        assert_eq!(
            failed_state(Some(ArtifactState::Pending)),
            ArtifactState::Abandoned
        );
        assert_eq!(
            failed_state(Some(ArtifactState::Unknown)),
            ArtifactState::Abandoned
        );
        assert_eq!(failed_state(None), ArtifactState::Abandoned);
        assert_eq!(failed_state(Some(ArtifactState::Live)), ArtifactState::Live);
        assert_eq!(
            failed_state(Some(ArtifactState::Abandoned)),
            ArtifactState::Abandoned
        );
    }

    #[test]
    fn error_values_are_scrubbed_and_bounded() {
        let s = Scrubber::new(["topsecret"]);
        let v = error_value(
            FailureReason::SourceUnavailable,
            &format!("denied for topsecret {}", "x".repeat(5000)),
            &s,
        );
        let text = v.as_str().unwrap();
        assert!(text.starts_with("SourceUnavailable: denied for *** "));
        assert!(text.chars().count() <= MAX_ERROR_PROPERTY_CHARS + 1);
    }
}
