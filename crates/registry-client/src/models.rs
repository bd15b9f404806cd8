//! Entity, payload and list types of the Model Registry REST API.
//!
//! Response types are lenient (every server-filled field is optional or defaulted and unknown
//! fields are ignored) so that newer servers adding fields do not break older clients. Request
//! payloads skip unset fields so that a PATCH only touches what the caller set.

use serde::{Deserialize, Serialize};

use crate::metadata::CustomProperties;

/// The `artifactType` discriminator value of model artifacts.
pub const MODEL_ARTIFACT_TYPE: &str = "model-artifact";

/// Lifecycle state of an artifact (`ArtifactState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArtifactState {
    Pending,
    Live,
    MarkedForDeletion,
    Deleted,
    Abandoned,
    Reference,
    /// The schema default; also used for any state this client does not know yet.
    #[default]
    #[serde(other)]
    Unknown,
}

/// State of a registered model or model version (`RegisteredModelState`, `ModelVersionState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelState {
    #[default]
    Live,
    Archived,
}

/// Field used to order list results (`OrderByField`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderBy {
    CreateTime,
    LastUpdateTime,
    Id,
}

/// Sort direction of list results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// A registered model, as returned by the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredModel {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ModelState>,
    #[serde(default, skip_serializing_if = "CustomProperties::is_empty")]
    pub custom_properties: CustomProperties,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time_since_epoch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time_since_epoch: Option<String>,
    /// Catalog-style fields (`BaseModel`), rarely set by this project but preserved.
    #[serde(flatten)]
    pub model_card: ModelCard,
}

/// Optional descriptive fields shared by registered-model payloads (`BaseModel`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maturity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_name: Option<String>,
}

/// Body of `POST /registered_models`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredModelCreate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ModelState>,
    #[serde(default, skip_serializing_if = "CustomProperties::is_empty")]
    pub custom_properties: CustomProperties,
    #[serde(flatten)]
    pub model_card: ModelCard,
}

/// Body of `PATCH /registered_models/{id}`. The name cannot change once set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredModelUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ModelState>,
    /// `None` leaves properties alone; `Some(empty)` would clear them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_properties: Option<CustomProperties>,
    #[serde(flatten)]
    pub model_card: ModelCard,
}

/// A model version, as returned by the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub registered_model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ModelState>,
    #[serde(default, skip_serializing_if = "CustomProperties::is_empty")]
    pub custom_properties: CustomProperties,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time_since_epoch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time_since_epoch: Option<String>,
}

/// Body of `POST /model_versions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersionCreate {
    pub name: String,
    pub registered_model_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ModelState>,
    #[serde(default, skip_serializing_if = "CustomProperties::is_empty")]
    pub custom_properties: CustomProperties,
}

/// Body of `PATCH /model_versions/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersionUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ModelState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_properties: Option<CustomProperties>,
}

/// Storage and provenance fields shared by model-artifact payloads (`ModelArtifactUpdate`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifactFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ArtifactState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_format_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_format_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_name: Option<String>,
}

/// A model artifact, as returned by the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifact {
    #[serde(default = "model_artifact_type")]
    pub artifact_type: String,
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "CustomProperties::is_empty")]
    pub custom_properties: CustomProperties,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time_since_epoch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time_since_epoch: Option<String>,
    #[serde(flatten)]
    pub fields: ModelArtifactFields,
}

impl Default for ModelArtifact {
    fn default() -> Self {
        Self {
            artifact_type: model_artifact_type(),
            id: String::new(),
            name: None,
            description: None,
            external_id: None,
            custom_properties: CustomProperties::new(),
            experiment_id: None,
            experiment_run_id: None,
            create_time_since_epoch: None,
            last_update_time_since_epoch: None,
            fields: ModelArtifactFields::default(),
        }
    }
}

fn model_artifact_type() -> String {
    MODEL_ARTIFACT_TYPE.to_owned()
}

/// Body of `POST /model_versions/{id}/artifacts` (and `POST /model_artifacts`).
///
/// `artifactType` is always sent: the artifacts endpoint is polymorphic and servers pick the
/// schema from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifactCreate {
    #[serde(default = "model_artifact_type")]
    pub artifact_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "CustomProperties::is_empty")]
    pub custom_properties: CustomProperties,
    #[serde(flatten)]
    pub fields: ModelArtifactFields,
}

impl Default for ModelArtifactCreate {
    fn default() -> Self {
        Self {
            artifact_type: model_artifact_type(),
            name: None,
            description: None,
            external_id: None,
            custom_properties: CustomProperties::new(),
            fields: ModelArtifactFields::default(),
        }
    }
}

/// Body of `PATCH /model_artifacts/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifactUpdate {
    #[serde(default = "model_artifact_type")]
    pub artifact_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_properties: Option<CustomProperties>,
    #[serde(flatten)]
    pub fields: ModelArtifactFields,
}

impl Default for ModelArtifactUpdate {
    fn default() -> Self {
        Self {
            artifact_type: model_artifact_type(),
            description: None,
            external_id: None,
            custom_properties: None,
            fields: ModelArtifactFields::default(),
        }
    }
}

impl ModelArtifactUpdate {
    /// A PATCH that only changes the state.
    pub fn state(state: ArtifactState) -> Self {
        Self {
            fields: ModelArtifactFields {
                state: Some(state),
                ..ModelArtifactFields::default()
            },
            ..Self::default()
        }
    }

    /// A PATCH that sets the URI and the state together (the "transfer finished" update).
    pub fn uri_and_state(uri: impl Into<String>, state: ArtifactState) -> Self {
        Self {
            fields: ModelArtifactFields {
                uri: Some(uri.into()),
                state: Some(state),
                ..ModelArtifactFields::default()
            },
            ..Self::default()
        }
    }
}

/// An artifact of a kind this project does not model in detail (doc, dataset, metric, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherArtifact {
    pub artifact_type: String,
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ArtifactState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "CustomProperties::is_empty")]
    pub custom_properties: CustomProperties,
    /// Every other field, kept so that the value round-trips unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Any artifact returned by the polymorphic `/artifacts` endpoints, split on `artifactType`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Artifact {
    Model(Box<ModelArtifact>),
    Other(OtherArtifact),
}

impl Artifact {
    /// The `artifactType` discriminator.
    pub fn artifact_type(&self) -> &str {
        match self {
            Self::Model(m) => &m.artifact_type,
            Self::Other(o) => &o.artifact_type,
        }
    }

    /// The server-assigned id.
    pub fn id(&self) -> &str {
        match self {
            Self::Model(m) => &m.id,
            Self::Other(o) => &o.id,
        }
    }

    /// The model artifact, when this is one.
    pub fn into_model_artifact(self) -> Option<ModelArtifact> {
        match self {
            Self::Model(m) => Some(*m),
            Self::Other(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Artifact {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        // A missing discriminator is read as a model artifact: that is the schema default and
        // the only kind older servers return from the version-artifacts endpoint.
        let kind = value
            .get("artifactType")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(MODEL_ARTIFACT_TYPE);
        if kind == MODEL_ARTIFACT_TYPE {
            serde_json::from_value(value)
                .map(|m| Self::Model(Box::new(m)))
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(Self::Other)
                .map_err(D::Error::custom)
        }
    }
}

/// One page of a list response (`*List` schemas).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    /// Empty when there are no further pages.
    #[serde(default)]
    pub next_page_token: String,
    #[serde(default)]
    pub page_size: i32,
    #[serde(default)]
    pub size: i32,
}

impl<T> Default for ListPage<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            next_page_token: String::new(),
            page_size: 0,
            size: 0,
        }
    }
}

/// `RegisteredModelList`.
pub type RegisteredModelList = ListPage<RegisteredModel>;
/// `ModelVersionList`.
pub type ModelVersionList = ListPage<ModelVersion>;
/// `ModelArtifactList`.
pub type ModelArtifactList = ListPage<ModelArtifact>;
/// `ArtifactList`.
pub type ArtifactList = ListPage<Artifact>;

/// Query options shared by the list endpoints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListOptions {
    pub page_size: Option<u32>,
    pub order_by: Option<OrderBy>,
    pub sort_order: Option<SortOrder>,
    pub next_page_token: Option<String>,
    /// SQL-like `filterQuery` expression, passed through verbatim.
    pub filter_query: Option<String>,
}

impl ListOptions {
    pub(crate) fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(n) = self.page_size {
            q.push(("pageSize", n.to_string()));
        }
        if let Some(o) = self.order_by {
            q.push(("orderBy", enum_str(&o)));
        }
        if let Some(s) = self.sort_order {
            q.push(("sortOrder", enum_str(&s)));
        }
        if let Some(t) = &self.next_page_token {
            q.push(("nextPageToken", t.clone()));
        }
        if let Some(f) = &self.filter_query {
            q.push(("filterQuery", f.clone()));
        }
        q
    }
}

/// Wire spelling of a unit enum, taken from its serde representation so the two cannot drift.
pub(crate) fn enum_str<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Search parameters of the `find` endpoints (`/model_artifact`, `/artifact`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FindParams {
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub parent_resource_id: Option<String>,
}

impl FindParams {
    pub(crate) fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(v) = &self.name {
            q.push(("name", v.clone()));
        }
        if let Some(v) = &self.external_id {
            q.push(("externalId", v.clone()));
        }
        if let Some(v) = &self.parent_resource_id {
            q.push(("parentResourceId", v.clone()));
        }
        q
    }
}

/// The server's error body (`Error` schema).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    #[serde(default)]
    pub code: String,
    pub message: String,
}
