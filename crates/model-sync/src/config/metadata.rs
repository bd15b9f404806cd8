//! Model metadata from a mounted ConfigMap directory.
//!
//! Each file is one ConfigMap key named `<Section>.<field>`, for example
//! `RegisteredModel.name` or `ModelVersion.custom_properties`. `*.custom_properties` values are
//! JSON objects whose values are booleans, integers, floats or strings; they are converted to
//! typed registry custom properties here, so that a bad value fails before any transfer starts.
//!
//! What the Model Registry UI backend writes is understood too, although the Python job loses
//! it: `*.customProperties` (camelCase) keys whose values are the registry's typed form
//! (`{"metadataType": "MetadataStringValue", "string_value": ""}`), merged with any
//! `custom_properties` of the same section; and the ids of its update_artifact ConfigMap
//! (`ModelArtifact.id`, `ModelVersion.id`), which stand in for `--model-artifact-id` /
//! `--model-version-id`. A `null` property value is dropped with a warning (the Python client
//! skips unset values too), not an error.
//!
//! Hidden entries (`..data`, `..2024_...`: the kubelet's atomic-update machinery) are skipped.
//! Unknown keys are reported as warnings, not errors, so that a ConfigMap written for a newer
//! version of this job still works.

use std::path::{Path, PathBuf};

use registry_client::{CustomProperties, MetadataValue};

use crate::error::ConfigError;

/// `RegisteredModel.*` keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegisteredModelMetadata {
    pub name: Option<String>,
    /// An existing model to add a version to (alternative to `--model-id`).
    pub id: Option<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub custom_properties: CustomProperties,
}

/// `ModelVersion.*` keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelVersionMetadata {
    /// The version an update_artifact ConfigMap of the UI backend names.
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub custom_properties: CustomProperties,
}

/// `ModelArtifact.*` keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelArtifactMetadata {
    /// The artifact an update_artifact ConfigMap of the UI backend names (it sets no
    /// `--model-artifact-id`).
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub model_format_name: Option<String>,
    pub model_format_version: Option<String>,
    pub storage_key: Option<String>,
    pub storage_path: Option<String>,
    pub service_account_name: Option<String>,
    pub model_source_kind: Option<String>,
    pub model_source_class: Option<String>,
    pub model_source_group: Option<String>,
    pub model_source_id: Option<String>,
    pub model_source_name: Option<String>,
    pub custom_properties: CustomProperties,
}

/// Everything read from the metadata directory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelMetadata {
    pub dir: PathBuf,
    pub registered_model: RegisteredModelMetadata,
    pub model_version: ModelVersionMetadata,
    pub model_artifact: ModelArtifactMetadata,
}

/// Reads a metadata directory. Returns the metadata plus warnings about ignored keys, or every
/// problem found.
pub fn read_metadata_dir(dir: &Path) -> Result<(ModelMetadata, Vec<String>), Vec<ConfigError>> {
    let field = super::args::Key::MetadataConfigmapPath;
    let entries = std::fs::read_dir(dir).map_err(|cause| {
        vec![ConfigError::Io {
            field: field.into(),
            path: dir.to_owned(),
            cause,
        }]
    })?;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|cause| {
            vec![ConfigError::Io {
                field: field.into(),
                path: dir.to_owned(),
                cause,
            }]
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Follows the kubelet's symlinks: a key is a symlink into `..data/`.
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        names.push((name, entry.path()));
    }
    names.sort();

    let mut md = ModelMetadata {
        dir: dir.to_owned(),
        ..ModelMetadata::default()
    };
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for (key, path) in names {
        let value = match std::fs::read_to_string(&path) {
            Ok(v) => v.trim().to_owned(),
            Err(cause) => {
                errors.push(ConfigError::Io {
                    field: field.into(),
                    path,
                    cause,
                });
                continue;
            }
        };
        if value.is_empty() {
            continue;
        }
        match apply(&mut md, &key, value) {
            Ok(dropped) => warnings.extend(dropped.into_iter().map(|name| {
                format!(
                    "metadata key {key} ({}): property {name:?} is null and is dropped",
                    path.display()
                )
            })),
            Err(Apply::Unknown) => warnings.push(format!(
                "metadata key {key} ({}) is not recognised and is ignored",
                path.display()
            )),
            Err(Apply::Bad(message)) => errors.push(ConfigError::Metadata { key, path, message }),
        }
    }
    if errors.is_empty() {
        Ok((md, warnings))
    } else {
        Err(errors)
    }
}

enum Apply {
    Unknown,
    Bad(String),
}

/// Applies one key; `Ok` carries the names of dropped (null) properties.
fn apply(md: &mut ModelMetadata, key: &str, value: String) -> Result<Vec<String>, Apply> {
    let (section, field) = key.split_once('.').ok_or(Apply::Unknown)?;
    if matches!(field, "custom_properties" | "customProperties") {
        let target = match section {
            "RegisteredModel" => &mut md.registered_model.custom_properties,
            "ModelVersion" => &mut md.model_version.custom_properties,
            "ModelArtifact" => &mut md.model_artifact.custom_properties,
            _ => return Err(Apply::Unknown),
        };
        let (props, dropped) = parse_custom_properties(&value).map_err(Apply::Bad)?;
        // Both spellings may be present: merge them, refusing two different values for a name.
        for (name, v) in props {
            match target.get(&name) {
                Some(old) if *old != v => {
                    return Err(Apply::Bad(format!(
                        "property {name:?} is also set, to another value, by the other spelling \
                         of {section}.custom_properties / {section}.customProperties"
                    )));
                }
                _ => {
                    target.insert(name, v);
                }
            }
        }
        return Ok(dropped);
    }
    let v = Some(value);
    let rm = &mut md.registered_model;
    let mv = &mut md.model_version;
    let ma = &mut md.model_artifact;
    match (section, field) {
        ("RegisteredModel", "name") => rm.name = v,
        ("RegisteredModel", "id") => rm.id = v,
        ("RegisteredModel", "description") => rm.description = v,
        ("RegisteredModel", "owner") => rm.owner = v,
        ("ModelVersion", "id") => mv.id = v,
        ("ModelVersion", "name") => mv.name = v,
        ("ModelVersion", "description") => mv.description = v,
        ("ModelVersion", "author") => mv.author = v,
        ("ModelArtifact", "id") => ma.id = v,
        ("ModelArtifact", "name") => ma.name = v,
        ("ModelArtifact", "description") => ma.description = v,
        ("ModelArtifact", "model_format_name") => ma.model_format_name = v,
        ("ModelArtifact", "model_format_version") => ma.model_format_version = v,
        ("ModelArtifact", "storage_key") => ma.storage_key = v,
        ("ModelArtifact", "storage_path") => ma.storage_path = v,
        ("ModelArtifact", "service_account_name") => ma.service_account_name = v,
        ("ModelArtifact", "model_source_kind") => ma.model_source_kind = v,
        ("ModelArtifact", "model_source_class") => ma.model_source_class = v,
        ("ModelArtifact", "model_source_group") => ma.model_source_group = v,
        ("ModelArtifact", "model_source_id") => ma.model_source_id = v,
        ("ModelArtifact", "model_source_name") => ma.model_source_name = v,
        _ => return Err(Apply::Unknown),
    }
    Ok(Vec::new())
}

/// Parses a `custom_properties` value: a JSON object of scalars, or of the registry's typed
/// values (`{"metadataType": "MetadataStringValue", "string_value": "x"}`, as the UI backend
/// writes them). Returns the properties and the names of `null` ones, which are dropped.
///
/// Integers become `MetadataIntValue` (sent as strings), other numbers `MetadataDoubleValue`.
/// Arrays and untyped nested objects are rejected rather than stringified, because silently
/// changing a value's type would surprise whoever filters on it later.
pub fn parse_custom_properties(text: &str) -> Result<(CustomProperties, Vec<String>), String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = json
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, found {}", json_kind(&json)))?;
    let mut props = CustomProperties::new();
    let mut dropped = Vec::new();
    for (name, v) in obj {
        let value = match v {
            serde_json::Value::Null => {
                dropped.push(name.clone());
                continue;
            }
            serde_json::Value::Bool(b) => MetadataValue::from(*b),
            serde_json::Value::String(s) => MetadataValue::from(s.as_str()),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    MetadataValue::from(i)
                } else if n.is_u64() {
                    return Err(format!(
                        "property {name:?}: integer {n} is too large (maximum {})",
                        i64::MAX
                    ));
                } else {
                    MetadataValue::from(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::Object(o) if o.contains_key("metadataType") => {
                serde_json::from_value::<MetadataValue>(v.clone()).map_err(|e| {
                    format!("property {name:?}: not a valid typed registry value ({e})")
                })?
            }
            other => {
                return Err(format!(
                    "property {name:?}: expected a boolean, number, string, null or a typed \
                     value with \"metadataType\", found {}",
                    json_kind(other)
                ));
            }
        };
        props.insert(name.clone(), value);
    }
    Ok((props, dropped))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
