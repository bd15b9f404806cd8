//! Serialization of payloads and decoding of responses, checked against the JSON shapes of the
//! OpenAPI document without a server.

use registry_client::{
    Artifact, ArtifactList, ArtifactState, CustomProperties, MetadataValue, ModelArtifact,
    ModelArtifactCreate, ModelArtifactFields, ModelArtifactUpdate, ModelState, ModelVersion,
    ModelVersionCreate, ModelVersionUpdate, RegisteredModel, RegisteredModelCreate,
    RegisteredModelList, RegisteredModelUpdate,
};
use serde_json::json;

#[test]
fn registered_model_create_is_camel_case_and_skips_unset_fields() {
    let mut props = CustomProperties::new();
    props.insert("team".into(), "nlp".into());
    props.insert("epochs".into(), 12_i64.into());
    let body = RegisteredModelCreate {
        name: "iris".into(),
        owner: Some("ds-team".into()),
        external_id: Some("ext-1".into()),
        custom_properties: props,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({
            "name": "iris",
            "owner": "ds-team",
            "externalId": "ext-1",
            "customProperties": {
                "epochs": {"metadataType": "MetadataIntValue", "int_value": "12"},
                "team": {"metadataType": "MetadataStringValue", "string_value": "nlp"}
            }
        })
    );
}

#[test]
fn registered_model_update_leaves_properties_alone_unless_set() {
    let patch = RegisteredModelUpdate {
        state: Some(ModelState::Archived),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        json!({"state": "ARCHIVED"})
    );
    let clear = RegisteredModelUpdate {
        custom_properties: Some(CustomProperties::new()),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&clear).unwrap(),
        json!({"customProperties": {}})
    );
}

#[test]
fn model_version_create_carries_parent_id() {
    let body = ModelVersionCreate {
        name: "1.0.0".into(),
        registered_model_id: "4".into(),
        author: Some("Jane".into()),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({"name": "1.0.0", "registeredModelId": "4", "author": "Jane"})
    );
    let patch = ModelVersionUpdate {
        description: Some("d".into()),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        json!({"description": "d"})
    );
}

#[test]
fn model_artifact_create_always_has_artifact_type() {
    let body = ModelArtifactCreate {
        name: Some("sentiment".into()),
        fields: ModelArtifactFields {
            uri: Some("oci://quay.io/org/m:1".into()),
            state: Some(ArtifactState::Pending),
            model_format_name: Some("onnx".into()),
            model_format_version: Some("1".into()),
            storage_key: Some("conn".into()),
            storage_path: Some("models/m".into()),
            service_account_name: Some("sa".into()),
            model_source_kind: Some("kfp".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({
            "artifactType": "model-artifact",
            "name": "sentiment",
            "uri": "oci://quay.io/org/m:1",
            "state": "PENDING",
            "modelFormatName": "onnx",
            "modelFormatVersion": "1",
            "storageKey": "conn",
            "storagePath": "models/m",
            "serviceAccountName": "sa",
            "modelSourceKind": "kfp"
        })
    );
}

#[test]
fn model_artifact_update_helpers() {
    assert_eq!(
        serde_json::to_value(ModelArtifactUpdate::state(ArtifactState::Pending)).unwrap(),
        json!({"artifactType": "model-artifact", "state": "PENDING"})
    );
    assert_eq!(
        serde_json::to_value(ModelArtifactUpdate::uri_and_state(
            "s3://b/k/",
            ArtifactState::Live
        ))
        .unwrap(),
        json!({"artifactType": "model-artifact", "uri": "s3://b/k/", "state": "LIVE"})
    );
}

#[test]
fn artifact_states_use_screaming_snake_case() {
    for (state, text) in [
        (ArtifactState::Unknown, "UNKNOWN"),
        (ArtifactState::Pending, "PENDING"),
        (ArtifactState::Live, "LIVE"),
        (ArtifactState::MarkedForDeletion, "MARKED_FOR_DELETION"),
        (ArtifactState::Deleted, "DELETED"),
        (ArtifactState::Abandoned, "ABANDONED"),
        (ArtifactState::Reference, "REFERENCE"),
    ] {
        assert_eq!(serde_json::to_value(state).unwrap(), json!(text));
        assert_eq!(
            serde_json::from_value::<ArtifactState>(json!(text)).unwrap(),
            state
        );
    }
    // A state added by a newer server does not break decoding.
    assert_eq!(
        serde_json::from_value::<ArtifactState>(json!("SOMETHING_NEW")).unwrap(),
        ArtifactState::Unknown
    );
}

#[test]
fn server_responses_decode_with_extra_and_missing_fields() {
    let rm: RegisteredModel = serde_json::from_value(json!({
        "id": "1", "name": "iris", "state": "LIVE",
        "createTimeSinceEpoch": "1700000000000",
        "customProperties": {"acc": {"metadataType": "MetadataDoubleValue", "double_value": 0.9}},
        "language": ["en"], "someFutureField": {"x": 1}
    }))
    .unwrap();
    assert_eq!(rm.id, "1");
    assert_eq!(rm.state, Some(ModelState::Live));
    assert_eq!(
        rm.model_card.language.as_deref(),
        Some(&["en".to_owned()][..])
    );
    assert_eq!(rm.custom_properties["acc"].as_f64(), Some(0.9));

    let mv: ModelVersion =
        serde_json::from_value(json!({"id": "2", "name": "v1", "registeredModelId": "1"})).unwrap();
    assert_eq!(mv.registered_model_id, "1");
    assert!(mv.custom_properties.is_empty());

    let ma: ModelArtifact = serde_json::from_value(json!({
        "id": "3", "uri": "s3://b/k", "state": "LIVE", "modelFormatName": "onnx"
    }))
    .unwrap();
    assert_eq!(ma.artifact_type, "model-artifact");
    assert_eq!(ma.fields.state, Some(ArtifactState::Live));
    assert_eq!(ma.fields.model_format_name.as_deref(), Some("onnx"));
}

#[test]
fn artifact_is_split_on_artifact_type() {
    let list: ArtifactList = serde_json::from_value(json!({
        "items": [
            {"artifactType": "model-artifact", "id": "3", "uri": "oci://r/m:1"},
            {"artifactType": "doc-artifact", "id": "4", "uri": "https://d", "state": "LIVE"},
            {"id": "5"}
        ],
        "nextPageToken": "", "pageSize": 3, "size": 3
    }))
    .unwrap();
    assert_eq!(list.items.len(), 3);
    assert!(matches!(&list.items[0], Artifact::Model(m) if m.id == "3"));
    match &list.items[1] {
        Artifact::Other(o) => {
            assert_eq!(o.artifact_type, "doc-artifact");
            assert_eq!(o.state, Some(ArtifactState::Live));
        }
        other => panic!("expected a doc artifact, got {other:?}"),
    }
    assert_eq!(list.items[2].artifact_type(), "model-artifact");
    // Other artifacts round-trip their unknown fields.
    let metric = json!({"artifactType": "metric", "id": "9", "value": 0.5, "step": "3"});
    let a: Artifact = serde_json::from_value(metric.clone()).unwrap();
    assert_eq!(serde_json::to_value(&a).unwrap(), metric);
}

#[test]
fn list_pages_tolerate_missing_paging_fields() {
    let l: RegisteredModelList = serde_json::from_value(json!({"items": []})).unwrap();
    assert!(l.items.is_empty());
    assert!(l.next_page_token.is_empty());
}

#[test]
fn metadata_values_in_a_version_round_trip() {
    let mut props = CustomProperties::new();
    props.insert("i".into(), MetadataValue::from(1_i64));
    props.insert("d".into(), MetadataValue::from(1.5));
    props.insert("b".into(), MetadataValue::from(false));
    props.insert("s".into(), MetadataValue::from("x"));
    let mv = ModelVersion {
        id: "1".into(),
        name: "v".into(),
        registered_model_id: "2".into(),
        custom_properties: props,
        ..Default::default()
    };
    let text = serde_json::to_string(&mv).unwrap();
    assert!(text.contains(r#""int_value":"1""#), "{text}");
    assert_eq!(serde_json::from_str::<ModelVersion>(&text).unwrap(), mv);
}
