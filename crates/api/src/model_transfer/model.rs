//! Registry metadata carried by a `ModelTransfer`.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Custom properties attached to a registry entity, by name.
pub type CustomProperties = BTreeMap<String, CustomPropertyValue>;

/// Metadata of the registered model, model version and model artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferModel {
    /// The registered model: created by `create_model` (with `name`; `description`, `owner`
    /// and `customProperties` are set on it), looked up by `create_version` (by `id` or
    /// `name`; the other fields are not applied to the existing model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_model: Option<RegisteredModelMetadata>,
    /// The model version created by `create_model` and `create_version` (`name` required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<ModelVersionMetadata>,
    /// The model artifact: created by `create_model` and `create_version` with these fields;
    /// for `update_artifact`, `id` names the existing artifact, of which only the URI and state
    /// (LIVE) change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_artifact: Option<ModelArtifactMetadata>,
}

/// Registered model metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredModelMetadata {
    /// Name of the registered model: required by `create_model` (must not exist yet, unless an
    /// earlier attempt of this transfer created it); identifies the model for `create_version`
    /// when `id` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Registry ID of an existing registered model, for `create_version`; must not be set with
    /// `create_model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// User-defined properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_properties: Option<CustomProperties>,
}

/// Model version metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersionMetadata {
    /// Name of the version: required by `create_model` and `create_version`; must be unused
    /// under the model (unless an earlier attempt of this transfer created it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Registry ID of the model version the artifact belongs to, for `update_artifact`:
    /// optional, only reported back in `status.modelVersionId` (the artifact is found by
    /// `modelArtifact.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Author of the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// User-defined properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_properties: Option<CustomProperties>,
}

/// Model artifact metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifactMetadata {
    /// Name of the artifact created by `create_model` and `create_version`; the registered
    /// model's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Registry ID of the existing artifact `update_artifact` points at the transferred files
    /// (required by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Model format, e.g. `onnx` or `sklearn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_format_name: Option<String>,
    /// Version of the model format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_format_version: Option<String>,
    /// Storage key (e.g. name of a data connection) recorded on the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<String>,
    /// Storage path recorded on the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_path: Option<String>,
    /// Service account recorded on the artifact for serving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Kind of the model's origin, e.g. `kfp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_kind: Option<String>,
    /// Class of the model's origin, e.g. `pipelinerun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_class: Option<String>,
    /// Group of the model's origin, e.g. a namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_group: Option<String>,
    /// Identifier of the model's origin, e.g. a run ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_id: Option<String>,
    /// Name of the model's origin, e.g. a run name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_source_name: Option<String>,
    /// User-defined properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_properties: Option<CustomProperties>,
}

/// A typed custom property value; exactly one field must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new(
        "(has(self.string) ? 1 : 0) + (has(self.int) ? 1 : 0) + (has(self.double) ? 1 : 0) + (has(self.bool) ? 1 : 0) == 1"
    )
    .message("exactly one of string, int, double or bool must be set")
)]
pub struct CustomPropertyValue {
    /// A string value.
    #[serde(rename = "string", default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// A 64-bit integer value.
    #[serde(rename = "int", default, skip_serializing_if = "Option::is_none")]
    pub int_value: Option<i64>,
    /// A floating-point value.
    #[serde(rename = "double", default, skip_serializing_if = "Option::is_none")]
    pub double_value: Option<f64>,
    /// A boolean value.
    #[serde(rename = "bool", default, skip_serializing_if = "Option::is_none")]
    pub bool_value: Option<bool>,
}

/// A custom property value with its type resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyValue<'a> {
    /// A string.
    String(&'a str),
    /// A 64-bit integer.
    Int(i64),
    /// A floating-point number.
    Double(f64),
    /// A boolean.
    Bool(bool),
}

impl CustomPropertyValue {
    /// A string value.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            string_value: Some(value.into()),
            ..Self::default()
        }
    }

    /// An integer value.
    pub fn int(value: i64) -> Self {
        Self {
            int_value: Some(value),
            ..Self::default()
        }
    }

    /// A floating-point value.
    pub fn double(value: f64) -> Self {
        Self {
            double_value: Some(value),
            ..Self::default()
        }
    }

    /// A boolean value.
    pub fn bool(value: bool) -> Self {
        Self {
            bool_value: Some(value),
            ..Self::default()
        }
    }

    /// Number of fields set (valid values have exactly one).
    pub fn set_count(&self) -> usize {
        usize::from(self.string_value.is_some())
            + usize::from(self.int_value.is_some())
            + usize::from(self.double_value.is_some())
            + usize::from(self.bool_value.is_some())
    }

    /// The single value, or `None` unless exactly one field is set.
    pub fn value(&self) -> Option<PropertyValue<'_>> {
        if self.set_count() != 1 {
            return None;
        }
        if let Some(s) = &self.string_value {
            Some(PropertyValue::String(s))
        } else if let Some(i) = self.int_value {
            Some(PropertyValue::Int(i))
        } else if let Some(d) = self.double_value {
            Some(PropertyValue::Double(d))
        } else {
            self.bool_value.map(PropertyValue::Bool)
        }
    }
}
