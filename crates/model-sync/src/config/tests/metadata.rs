//! Metadata ConfigMap directories and the intents that need them.

use registry_client::MetadataValue;

use super::*;
use crate::config::{Intent, ModelRef, parse_custom_properties};

/// The seed's example ConfigMap, one file per key, values ending in newlines as YAML `|`
/// blocks do.
fn example_configmap(dir: &Path) {
    let keys = [
        ("RegisteredModel.name", "my-model\n"),
        ("RegisteredModel.description", "Model description"),
        ("RegisteredModel.owner", "data-science-team"),
        (
            "RegisteredModel.custom_properties",
            "{\"project\": \"sentiment-analysis\", \"team\": \"nlp\"}\n",
        ),
        ("ModelVersion.name", "1.0.0"),
        ("ModelVersion.description", "Initial release"),
        ("ModelVersion.author", "Jane Doe"),
        (
            "ModelVersion.custom_properties",
            "{\"accuracy\": 0.95, \"f1_score\": 0.93, \"gold\": true}\n",
        ),
        ("ModelArtifact.name", "sentiment-analyzer"),
        ("ModelArtifact.model_format_name", "tensorflow"),
        ("ModelArtifact.model_format_version", "2.8"),
        ("ModelArtifact.storage_key", "s3-connection"),
        ("ModelArtifact.storage_path", "models/sentiment"),
        ("ModelArtifact.model_source_kind", "kfp"),
        (
            "ModelArtifact.custom_properties",
            "{\"model_size_mb\": 438, \"inference_time_ms\": 120, \"delta\": -3}",
        ),
    ];
    for (k, v) in keys {
        write(dir, k, v);
    }
}

fn create_model_args(dir: &Path) -> Vec<String> {
    let mut a = args_without(&["--model-artifact-id"]);
    a.extend([
        "--model-upload-intent".into(),
        "create_model".into(),
        "--metadata-configmap-path".into(),
        s(dir),
    ]);
    a
}

#[test]
fn seed_example_configmap_drives_create_model() {
    let d = tmp();
    example_configmap(d.path());
    let c = ok(&create_model_args(d.path()), &ctx(&[]));
    assert_eq!(
        c.intent,
        Intent::CreateModel {
            model_name: "my-model".into(),
            version_name: "1.0.0".into()
        }
    );
    let md = c.metadata.unwrap();
    assert_eq!(
        md.registered_model.owner.as_deref(),
        Some("data-science-team")
    );
    assert_eq!(md.model_version.author.as_deref(), Some("Jane Doe"));
    assert_eq!(
        md.model_artifact.model_format_version.as_deref(),
        Some("2.8")
    );
    assert_eq!(
        md.model_artifact.storage_path.as_deref(),
        Some("models/sentiment")
    );
    assert_eq!(md.model_artifact.model_source_kind.as_deref(), Some("kfp"));
    let rm = &md.registered_model.custom_properties;
    assert_eq!(rm["team"], MetadataValue::from("nlp"));
    let mv = &md.model_version.custom_properties;
    assert_eq!(mv["accuracy"], MetadataValue::from(0.95));
    assert_eq!(mv["gold"], MetadataValue::from(true));
    let ma = &md.model_artifact.custom_properties;
    assert_eq!(ma["model_size_mb"], MetadataValue::from(438_i64));
    assert_eq!(ma["delta"], MetadataValue::from(-3_i64));
    // And on the wire the integer is a string.
    let wire = serde_json::to_value(&ma["model_size_mb"]).unwrap();
    assert_eq!(wire["int_value"], "438");
}

#[cfg(unix)]
#[test]
fn kubelet_symlink_layout_is_understood() {
    let d = tmp();
    let data = d.path().join("..2025_01_01_00_00_00.000000000");
    std::fs::create_dir(&data).unwrap();
    example_configmap(&data);
    std::os::unix::fs::symlink(&data, d.path().join("..data")).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let name = entry.unwrap().file_name();
        std::os::unix::fs::symlink(Path::new("..data").join(&name), d.path().join(&name)).unwrap();
    }
    let c = ok(&create_model_args(d.path()), &ctx(&[]));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.metadata.unwrap().registered_model.name.as_deref(),
        Some("my-model")
    );
}

#[test]
fn default_metadata_dir_is_used_when_it_exists() {
    let d = tmp();
    example_configmap(d.path());
    let mut context = ctx(&[]);
    context.default_metadata_dir = d.path().to_owned();
    let mut a = args_without(&["--model-artifact-id"]);
    a.extend(["--model-upload-intent".into(), "create_model".into()]);
    let c = ok(&a, &context);
    assert_eq!(c.metadata.unwrap().dir, d.path());
    // Absent default directory: no metadata, and update_artifact does not need any.
    assert!(ok(&base_args(), &ctx(&[])).metadata.is_none());
}

#[test]
fn unknown_keys_are_warnings() {
    let d = tmp();
    example_configmap(d.path());
    write(d.path(), "ModelVersion.colour", "blue");
    write(d.path(), "README", "hello");
    let c = ok(&create_model_args(d.path()), &ctx(&[]));
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings.iter().any(|w| w.contains("ModelVersion.colour")));
}

#[test]
fn bad_custom_properties_json_names_key_and_file() {
    let d = tmp();
    example_configmap(d.path());
    write(
        d.path(),
        "ModelVersion.custom_properties",
        "{\"accuracy\": 0.95,",
    );
    let e = err(&create_model_args(d.path()), &ctx(&[]));
    assert!(e.contains("ModelVersion.custom_properties"), "{e}");
    assert!(e.contains(&s(d.path())), "{e}");
    assert!(e.contains("not valid JSON"), "{e}");
}

#[test]
fn non_scalar_property_is_an_error_naming_the_property() {
    let d = tmp();
    example_configmap(d.path());
    write(
        d.path(),
        "ModelArtifact.custom_properties",
        "{\"layers\": [1, 2]}",
    );
    let e = err(&create_model_args(d.path()), &ctx(&[]));
    assert!(e.contains("ModelArtifact.custom_properties"), "{e}");
    assert!(e.contains("\"layers\""), "{e}");
    assert!(e.contains("an array"), "{e}");
}

#[test]
fn custom_property_parsing_rules() {
    let (p, dropped) =
        parse_custom_properties(r#"{"a": 1, "b": 1.5, "c": "x", "d": false, "e": 1e3}"#).unwrap();
    assert!(dropped.is_empty());
    assert_eq!(p["a"], MetadataValue::from(1_i64));
    assert_eq!(p["b"], MetadataValue::from(1.5));
    assert_eq!(p["c"], MetadataValue::from("x"));
    assert_eq!(p["d"], MetadataValue::from(false));
    assert_eq!(p["e"], MetadataValue::from(1000.0));
    assert!(
        parse_custom_properties(r#"{"o": {"x": 1}}"#)
            .unwrap_err()
            .contains("an object")
    );
    assert!(
        parse_custom_properties("[1]")
            .unwrap_err()
            .contains("JSON object")
    );
    assert!(
        parse_custom_properties(r#"{"big": 18446744073709551615}"#)
            .unwrap_err()
            .contains("too large")
    );
    assert!(parse_custom_properties("{}").unwrap().0.is_empty());
}

#[test]
fn null_custom_property_is_dropped_not_an_error() {
    let (p, dropped) = parse_custom_properties(r#"{"n": null, "k": "v"}"#).unwrap();
    assert_eq!(dropped, vec!["n".to_owned()]);
    assert!(!p.contains_key("n"));
    assert_eq!(p["k"], MetadataValue::from("v"));
    // Through a whole load: a warning names the key, the job still loads.
    let d = tmp();
    write(
        d.path(),
        "ModelArtifact.custom_properties",
        r#"{"gone": null}"#,
    );
    let mut a = base_args();
    a.extend(["--metadata-configmap-path".into(), s(d.path())]);
    let c = ok(&a, &ctx(&[]));
    assert!(
        c.metadata
            .unwrap()
            .model_artifact
            .custom_properties
            .is_empty()
    );
    assert!(
        c.warnings.iter().any(|w| w.contains("\"gone\" is null")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn typed_registry_values_are_accepted() {
    // The UI backend's form: the registry's MetadataValue objects, labels as empty strings.
    let (p, _) = parse_custom_properties(
        r#"{"label": {"metadataType": "MetadataStringValue", "string_value": ""},
            "n": {"metadataType": "MetadataIntValue", "int_value": "7"},
            "f": {"metadataType": "MetadataDoubleValue", "double_value": 0.5},
            "b": {"metadataType": "MetadataBoolValue", "bool_value": true}}"#,
    )
    .unwrap();
    assert_eq!(p["label"], MetadataValue::from(""));
    assert_eq!(p["n"], MetadataValue::from(7_i64));
    assert_eq!(p["f"], MetadataValue::from(0.5));
    assert_eq!(p["b"], MetadataValue::from(true));
    let e = parse_custom_properties(r#"{"x": {"metadataType": "MetadataIntValue"}}"#).unwrap_err();
    assert!(e.contains("\"x\"") && e.contains("typed"), "{e}");
}

/// What the UI backend writes for create_model (clients/ui/bff
/// internal/repositories/model_transfer_jobs.go, buildModelMetadataConfigMap).
#[test]
fn ui_backend_camel_case_custom_properties_are_understood() {
    let d = tmp();
    let label = r#"{"team-a": {"metadataType": "MetadataStringValue", "string_value": ""}}"#;
    for (k, v) in [
        ("RegisteredModel.name", "ui-model"),
        ("RegisteredModel.customProperties", label),
        ("ModelVersion.name", "v1"),
        (
            "ModelVersion.customProperties",
            r#"{"acc": {"metadataType": "MetadataDoubleValue", "double_value": 0.9}}"#,
        ),
        (
            "ModelArtifact.customProperties",
            r#"{"acc": {"metadataType": "MetadataDoubleValue", "double_value": 0.9}}"#,
        ),
        ("ModelArtifact.custom_properties", r#"{"extra": 1}"#),
        ("ModelArtifact.model_source_kind", "transfer_job"),
    ] {
        write(d.path(), k, v);
    }
    let c = ok(&create_model_args(d.path()), &ctx(&[]));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let md = c.metadata.unwrap();
    assert_eq!(
        md.registered_model.custom_properties["team-a"],
        MetadataValue::from("")
    );
    assert_eq!(
        md.model_version.custom_properties["acc"],
        MetadataValue::from(0.9)
    );
    // Both spellings in one section are merged.
    assert_eq!(
        md.model_artifact.custom_properties["acc"],
        MetadataValue::from(0.9)
    );
    assert_eq!(
        md.model_artifact.custom_properties["extra"],
        MetadataValue::from(1_i64)
    );

    // The two spellings disagreeing on one name is an error naming the key.
    write(
        d.path(),
        "ModelArtifact.custom_properties",
        r#"{"acc": 0.1}"#,
    );
    let e = err(&create_model_args(d.path()), &ctx(&[]));
    assert!(
        e.contains("\"acc\"") && e.contains("ModelArtifact.customProperties"),
        "{e}"
    );
}

/// The UI backend's update_artifact ConfigMap names the artifact only by `ModelArtifact.id`
/// (its Job sets no MODEL_SYNC_MODEL_ARTIFACT_ID).
#[test]
fn ui_backend_update_artifact_configmap_names_the_artifact() {
    let d = tmp();
    for (k, v) in [
        ("RegisteredModel.id", "1"),
        ("ModelVersion.id", "3"),
        ("ModelArtifact.id", "6"),
        ("ModelVersion.name", "v1"),
        ("ModelArtifact.name", "v1"),
    ] {
        write(d.path(), k, v);
    }
    let mut a = args_without(&["--model-artifact-id"]);
    a.extend(["--metadata-configmap-path".into(), s(d.path())]);
    let c = ok(&a, &ctx(&[]));
    assert_eq!(
        c.intent,
        Intent::UpdateArtifact {
            model_artifact_id: "6".into()
        }
    );
    assert_eq!(c.ids.model_version_id.as_deref(), Some("3"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // The flag and the key agreeing is fine; disagreeing is a conflict naming both.
    let agree = {
        let mut a = a.clone();
        a.extend(["--model-artifact-id".into(), "6".into()]);
        a
    };
    ok(&agree, &ctx(&[]));
    let mut disagree = a.clone();
    disagree.extend(["--model-artifact-id".into(), "7".into()]);
    let e = err(&disagree, &ctx(&[]));
    assert!(
        e.contains("--model-artifact-id") && e.contains("ModelArtifact.id"),
        "{e}"
    );

    write(d.path(), "ModelArtifact.id", "six");
    let e = err(&a, &ctx(&[]));
    assert!(
        e.contains("ModelArtifact.id") && e.contains("positive decimal id"),
        "{e}"
    );
}

fn create_version_args(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = args_without(&["--model-artifact-id"]);
    a.extend([
        "--model-upload-intent".into(),
        "create_version".into(),
        "--metadata-configmap-path".into(),
        s(dir),
    ]);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

#[test]
fn create_version_parent_resolution() {
    let d = tmp();
    write(d.path(), "ModelVersion.name", "2.0.0");
    write(d.path(), "RegisteredModel.name", "by-name");
    let c = ok(&create_version_args(d.path(), &[]), &ctx(&[]));
    assert_eq!(
        c.intent,
        Intent::CreateVersion {
            model: ModelRef::Name("by-name".into()),
            version_name: "2.0.0".into()
        }
    );
    let c = ok(
        &create_version_args(d.path(), &["--model-id", "42"]),
        &ctx(&[]),
    );
    assert!(
        matches!(c.intent, Intent::CreateVersion { model: ModelRef::Id(ref id), .. } if id == "42")
    );
    write(d.path(), "RegisteredModel.id", "7");
    let c = ok(&create_version_args(d.path(), &[]), &ctx(&[]));
    assert!(
        matches!(c.intent, Intent::CreateVersion { model: ModelRef::Id(ref id), .. } if id == "7")
    );
    let e = err(
        &create_version_args(d.path(), &["--model-id", "42"]),
        &ctx(&[]),
    );
    assert!(e.contains("--model-id (MODEL_SYNC_MODEL_ID) is 42"), "{e}");
    assert!(e.contains("RegisteredModel.id is 7"), "{e}");
}

#[test]
fn create_version_needs_version_name() {
    let d = tmp();
    write(d.path(), "RegisteredModel.name", "m");
    let e = err(&create_version_args(d.path(), &[]), &ctx(&[]));
    assert!(e.contains("metadata key ModelVersion.name"), "{e}");
    assert!(
        e.contains("is required when --model-upload-intent is create_version"),
        "{e}"
    );
}
