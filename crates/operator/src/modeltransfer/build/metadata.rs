//! The `<name>-metadata` ConfigMap: registry metadata in the layout model-sync reads from a
//! mounted directory (`MODEL_SYNC_METADATA_CONFIGMAP_PATH`): one key per field, named
//! `<Section>.<field>` (`RegisteredModel.name`, `ModelArtifact.model_format_name`, ...), and
//! `<Section>.custom_properties` as a JSON object of typed scalars (strings stay strings, `int`
//! becomes a JSON integer, `double` a JSON number with a fraction, `bool` a JSON boolean), which
//! model-sync turns back into `MetadataStringValue`/`IntValue`/`DoubleValue`/`BoolValue`.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use mro_api::ModelTransfer;
use mro_api::model_transfer::{CustomProperties, PropertyValue, TransferIntent};
use serde_json::{Map, Value};

use crate::kube_ext::build_error::BuildError;
use crate::modeltransfer::names;

/// The metadata ConfigMap of a transfer.
pub fn config_map(mt: &ModelTransfer) -> Result<ConfigMap, BuildError> {
    Ok(ConfigMap {
        metadata: names::owned_meta(mt, names::metadata_config_map_name(mt)),
        data: Some(data(mt)?),
        ..Default::default()
    })
}

/// The ConfigMap's keys and values.
pub fn data(mt: &ModelTransfer) -> Result<BTreeMap<String, String>, BuildError> {
    let spec = &mt.spec;
    let model = &spec.model;
    let mut d = BTreeMap::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            d.insert(key.to_string(), v.to_string());
        }
    };
    if let Some(rm) = &model.registered_model {
        put("RegisteredModel.name", &rm.name);
        // model-sync refuses a model id together with create_model (it creates the model).
        if spec.intent == TransferIntent::CreateVersion {
            put("RegisteredModel.id", &rm.id);
        }
        put("RegisteredModel.description", &rm.description);
        put("RegisteredModel.owner", &rm.owner);
    }
    if let Some(mv) = &model.model_version {
        put("ModelVersion.name", &mv.name);
        put("ModelVersion.description", &mv.description);
        put("ModelVersion.author", &mv.author);
    }
    if let Some(ma) = &model.model_artifact {
        for (key, value) in [
            ("ModelArtifact.name", &ma.name),
            ("ModelArtifact.description", &ma.description),
            ("ModelArtifact.model_format_name", &ma.model_format_name),
            (
                "ModelArtifact.model_format_version",
                &ma.model_format_version,
            ),
            ("ModelArtifact.storage_key", &ma.storage_key),
            ("ModelArtifact.storage_path", &ma.storage_path),
            (
                "ModelArtifact.service_account_name",
                &ma.service_account_name,
            ),
            ("ModelArtifact.model_source_kind", &ma.model_source_kind),
            ("ModelArtifact.model_source_class", &ma.model_source_class),
            ("ModelArtifact.model_source_group", &ma.model_source_group),
            ("ModelArtifact.model_source_id", &ma.model_source_id),
            ("ModelArtifact.model_source_name", &ma.model_source_name),
        ] {
            put(key, value);
        }
    }
    let sections = [
        (
            "RegisteredModel",
            "spec.model.registeredModel.customProperties",
            model
                .registered_model
                .as_ref()
                .and_then(|m| m.custom_properties.as_ref()),
        ),
        (
            "ModelVersion",
            "spec.model.modelVersion.customProperties",
            model
                .model_version
                .as_ref()
                .and_then(|m| m.custom_properties.as_ref()),
        ),
        (
            "ModelArtifact",
            "spec.model.modelArtifact.customProperties",
            model
                .model_artifact
                .as_ref()
                .and_then(|m| m.custom_properties.as_ref()),
        ),
    ];
    for (section, field, props) in sections {
        if let Some(props) = props.filter(|p| !p.is_empty()) {
            d.insert(
                format!("{section}.custom_properties"),
                custom_properties_json(field, props)?,
            );
        }
    }
    Ok(d)
}

/// A `custom_properties` value: a JSON object whose value types carry the property types.
pub fn custom_properties_json(field: &str, props: &CustomProperties) -> Result<String, BuildError> {
    let mut obj = Map::new();
    for (name, value) in props {
        let v = match value.value() {
            Some(PropertyValue::String(s)) => Value::String(s.to_string()),
            Some(PropertyValue::Int(i)) => Value::from(i),
            Some(PropertyValue::Bool(b)) => Value::Bool(b),
            Some(PropertyValue::Double(f)) => double(f).ok_or_else(|| {
                BuildError::new(format!("{field}[{name}]"), "is not a finite number")
            })?,
            None => {
                return Err(BuildError::new(
                    format!("{field}[{name}]"),
                    "exactly one of string, int, double or bool must be set",
                ));
            }
        };
        obj.insert(name.clone(), v);
    }
    Ok(Value::Object(obj).to_string())
}

/// A double as a JSON number; serde_json writes `2.0` (not `2`), so it is read back as a double.
/// `None` for NaN and infinities, which JSON cannot carry.
fn double(f: f64) -> Option<Value> {
    serde_json::Number::from_f64(f).map(Value::Number)
}
