//! Model metadata from a mounted ConfigMap directory.
//!
//! Each file is one ConfigMap key named `<Section>.<field>`, for example
//! `RegisteredModel.name` or `ModelVersion.custom_properties`. `*.custom_properties` values are
//! JSON objects whose values are booleans, integers, floats or strings; they are converted to
//! typed registry custom properties here, so that a bad value fails before any transfer starts.
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
    pub name: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub custom_properties: CustomProperties,
}

/// `ModelArtifact.*` keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelArtifactMetadata {
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
    let field = crate::config::Key::MetadataConfigmapPath;
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
        if let Err(e) = apply(&mut md, &key, value) {
            match e {
                Apply::Unknown => warnings.push(format!(
                    "metadata key {key} ({}) is not recognised and is ignored",
                    path.display()
                )),
                Apply::Bad(message) => errors.push(ConfigError::Metadata { key, path, message }),
            }
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

fn apply(md: &mut ModelMetadata, key: &str, value: String) -> Result<(), Apply> {
    let (section, field) = key.split_once('.').ok_or(Apply::Unknown)?;
    if field == "custom_properties" {
        let props = parse_custom_properties(&value).map_err(Apply::Bad)?;
        match section {
            "RegisteredModel" => md.registered_model.custom_properties = props,
            "ModelVersion" => md.model_version.custom_properties = props,
            "ModelArtifact" => md.model_artifact.custom_properties = props,
            _ => return Err(Apply::Unknown),
        }
        return Ok(());
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
        ("ModelVersion", "name") => mv.name = v,
        ("ModelVersion", "description") => mv.description = v,
        ("ModelVersion", "author") => mv.author = v,
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
    Ok(())
}

/// Parses a `custom_properties` value: a JSON object of scalars.
///
/// Integers become `MetadataIntValue` (sent as strings), other numbers `MetadataDoubleValue`.
/// `null`, arrays and nested objects are rejected rather than stringified, because silently
/// changing a value's type would surprise whoever filters on it later.
pub fn parse_custom_properties(text: &str) -> Result<CustomProperties, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = json
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, found {}", json_kind(&json)))?;
    let mut props = CustomProperties::new();
    for (name, v) in obj {
        let value = match v {
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
            other => {
                return Err(format!(
                    "property {name:?}: expected a boolean, number or string, found {}",
                    json_kind(other)
                ));
            }
        };
        props.insert(name.clone(), value);
    }
    Ok(props)
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
