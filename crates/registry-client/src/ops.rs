//! Typed operations on registered models, model versions and model artifacts.
//!
//! Only the resources the operator and `model-sync` need are covered. Every call goes through
//! the negotiated API prefix, so the same code talks to `v1` and `v1alpha3` servers.

use reqwest::Method;

use crate::client::{Client, Request};
use crate::error::{Error, Result};
use crate::models::{
    Artifact, ArtifactList, FindParams, ListOptions, ListPage, MODEL_ARTIFACT_TYPE, ModelArtifact,
    ModelArtifactCreate, ModelArtifactUpdate, ModelVersion, ModelVersionCreate, ModelVersionList,
    ModelVersionUpdate, RegisteredModel, RegisteredModelCreate, RegisteredModelList,
    RegisteredModelUpdate,
};

/// Upper bound on pages fetched by the `*_all` helpers, so that a server that keeps returning a
/// token cannot make a caller loop forever.
const MAX_PAGES: usize = 10_000;

impl Client {
    // ---- registered models -------------------------------------------------------------

    /// `GET /registered_models/{id}`.
    pub async fn get_registered_model(&self, id: &str) -> Result<RegisteredModel> {
        self.send(Request::get(
            &["registered_models", id],
            format!("registered model {id}"),
        ))
        .await
    }

    /// `GET /registered_model?name=`; `None` when no model has that name.
    pub async fn find_registered_model_by_name(
        &self,
        name: &str,
    ) -> Result<Option<RegisteredModel>> {
        self.send_optional(
            Request::get(
                &["registered_model"],
                format!("registered model named {name:?}"),
            )
            .with_query(vec![("name", name.to_owned())]),
        )
        .await
    }

    /// `GET /registered_model?externalId=`.
    pub async fn find_registered_model_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<RegisteredModel>> {
        self.send_optional(
            Request::get(
                &["registered_model"],
                format!("registered model with external id {external_id:?}"),
            )
            .with_query(vec![("externalId", external_id.to_owned())]),
        )
        .await
    }

    /// `POST /registered_models`; a duplicate name is [`Error::Conflict`].
    pub async fn create_registered_model(
        &self,
        model: &RegisteredModelCreate,
    ) -> Result<RegisteredModel> {
        self.send(Request::with_json(
            Method::POST,
            &["registered_models"],
            format!("registered model {:?}", model.name),
            model,
        )?)
        .await
    }

    /// `PATCH /registered_models/{id}`.
    pub async fn update_registered_model(
        &self,
        id: &str,
        update: &RegisteredModelUpdate,
    ) -> Result<RegisteredModel> {
        self.send(Request::with_json(
            Method::PATCH,
            &["registered_models", id],
            format!("registered model {id}"),
            update,
        )?)
        .await
    }

    /// `GET /registered_models` (one page).
    pub async fn list_registered_models(&self, opts: &ListOptions) -> Result<RegisteredModelList> {
        self.send(
            Request::get(&["registered_models"], "registered models").with_query(opts.to_query()),
        )
        .await
    }

    // ---- model versions ----------------------------------------------------------------

    /// `GET /model_versions/{id}`.
    pub async fn get_model_version(&self, id: &str) -> Result<ModelVersion> {
        self.send(Request::get(
            &["model_versions", id],
            format!("model version {id}"),
        ))
        .await
    }

    /// `GET /model_version?name=&parentResourceId=`: the version called `name` of registered
    /// model `registered_model_id`; `None` when there is none.
    pub async fn find_model_version(
        &self,
        name: &str,
        registered_model_id: &str,
    ) -> Result<Option<ModelVersion>> {
        self.send_optional(
            Request::get(
                &["model_version"],
                format!("model version {name:?} of registered model {registered_model_id}"),
            )
            .with_query(vec![
                ("name", name.to_owned()),
                ("parentResourceId", registered_model_id.to_owned()),
            ]),
        )
        .await
    }

    /// `GET /model_version?externalId=`.
    pub async fn find_model_version_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<ModelVersion>> {
        self.send_optional(
            Request::get(
                &["model_version"],
                format!("model version with external id {external_id:?}"),
            )
            .with_query(vec![("externalId", external_id.to_owned())]),
        )
        .await
    }

    /// `POST /model_versions` (the parent is `registeredModelId` in the body).
    pub async fn create_model_version(&self, version: &ModelVersionCreate) -> Result<ModelVersion> {
        if version.registered_model_id.is_empty() {
            return Err(Error::BadRequest {
                message: "a model version needs registeredModelId".into(),
            });
        }
        self.send(Request::with_json(
            Method::POST,
            &["model_versions"],
            format!(
                "model version {:?} of registered model {}",
                version.name, version.registered_model_id
            ),
            version,
        )?)
        .await
    }

    /// `PATCH /model_versions/{id}`.
    pub async fn update_model_version(
        &self,
        id: &str,
        update: &ModelVersionUpdate,
    ) -> Result<ModelVersion> {
        self.send(Request::with_json(
            Method::PATCH,
            &["model_versions", id],
            format!("model version {id}"),
            update,
        )?)
        .await
    }

    /// `GET /registered_models/{id}/versions` (one page).
    pub async fn list_model_versions(
        &self,
        registered_model_id: &str,
        opts: &ListOptions,
    ) -> Result<ModelVersionList> {
        self.send(
            Request::get(
                &["registered_models", registered_model_id, "versions"],
                format!("versions of registered model {registered_model_id}"),
            )
            .with_query(opts.to_query()),
        )
        .await
    }

    /// Every version of a registered model, following page tokens.
    pub async fn list_all_model_versions(
        &self,
        registered_model_id: &str,
        opts: &ListOptions,
    ) -> Result<Vec<ModelVersion>> {
        collect_pages(|token| {
            let mut page_opts = opts.clone();
            page_opts.next_page_token = token;
            async move {
                self.list_model_versions(registered_model_id, &page_opts)
                    .await
            }
        })
        .await
    }

    // ---- model artifacts ---------------------------------------------------------------

    /// `GET /model_artifacts/{id}`.
    pub async fn get_model_artifact(&self, id: &str) -> Result<ModelArtifact> {
        self.send(Request::get(
            &["model_artifacts", id],
            format!("model artifact {id}"),
        ))
        .await
    }

    /// `PATCH /model_artifacts/{id}`.
    pub async fn update_model_artifact(
        &self,
        id: &str,
        update: &ModelArtifactUpdate,
    ) -> Result<ModelArtifact> {
        self.send(Request::with_json(
            Method::PATCH,
            &["model_artifacts", id],
            format!("model artifact {id}"),
            update,
        )?)
        .await
    }

    /// `POST /model_versions/{id}/artifacts` with `artifactType: model-artifact`: creates the
    /// artifact and links it to the version in one call.
    pub async fn create_model_version_artifact(
        &self,
        model_version_id: &str,
        artifact: &ModelArtifactCreate,
    ) -> Result<ModelArtifact> {
        let mut body = artifact.clone();
        MODEL_ARTIFACT_TYPE.clone_into(&mut body.artifact_type);
        let what = format!("model artifact of model version {model_version_id}");
        let created: Artifact = self
            .send(Request::with_json(
                Method::POST,
                &["model_versions", model_version_id, "artifacts"],
                what.clone(),
                &body,
            )?)
            .await?;
        created
            .into_model_artifact()
            .ok_or_else(|| Error::BadRequest {
                message: format!(
                    "server answered the creation of the {what} with another artifact type"
                ),
            })
    }

    /// `GET /model_versions/{id}/artifacts` (one page), optionally limited to one artifact type.
    pub async fn list_model_version_artifacts(
        &self,
        model_version_id: &str,
        artifact_type: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ArtifactList> {
        let mut query = opts.to_query();
        if let Some(t) = artifact_type {
            query.push(("artifactType", t.to_owned()));
        }
        self.send(
            Request::get(
                &["model_versions", model_version_id, "artifacts"],
                format!("artifacts of model version {model_version_id}"),
            )
            .with_query(query),
        )
        .await
    }

    /// The model artifacts of a version, following page tokens.
    pub async fn list_all_model_version_artifacts(
        &self,
        model_version_id: &str,
        opts: &ListOptions,
    ) -> Result<Vec<ModelArtifact>> {
        let all = collect_pages(|token| {
            let mut page_opts = opts.clone();
            page_opts.next_page_token = token;
            async move {
                self.list_model_version_artifacts(
                    model_version_id,
                    Some(MODEL_ARTIFACT_TYPE),
                    &page_opts,
                )
                .await
            }
        })
        .await?;
        Ok(all
            .into_iter()
            .filter_map(Artifact::into_model_artifact)
            .collect())
    }

    /// `GET /model_artifact?name=&externalId=&parentResourceId=`.
    pub async fn find_model_artifact(&self, params: &FindParams) -> Result<Option<ModelArtifact>> {
        self.send_optional(
            Request::get(&["model_artifact"], describe_find("model artifact", params))
                .with_query(params.to_query()),
        )
        .await
    }

    /// `GET /artifact?name=&externalId=&parentResourceId=` (any artifact type).
    pub async fn find_artifact(&self, params: &FindParams) -> Result<Option<Artifact>> {
        self.send_optional(
            Request::get(&["artifact"], describe_find("artifact", params))
                .with_query(params.to_query()),
        )
        .await
    }
}

fn describe_find(kind: &str, p: &FindParams) -> String {
    let mut parts = Vec::new();
    if let Some(v) = &p.name {
        parts.push(format!("name {v:?}"));
    }
    if let Some(v) = &p.external_id {
        parts.push(format!("external id {v:?}"));
    }
    if let Some(v) = &p.parent_resource_id {
        parts.push(format!("parent {v}"));
    }
    format!("{kind} with {}", parts.join(", "))
}

/// Follows `nextPageToken` until it is empty, repeats, or [`MAX_PAGES`] is reached.
async fn collect_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<ListPage<T>>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = fetch(token.clone()).await?;
        items.extend(page.items);
        if page.next_page_token.is_empty()
            || token.as_deref() == Some(page.next_page_token.as_str())
        {
            return Ok(items);
        }
        token = Some(page.next_page_token);
    }
    Ok(items)
}
