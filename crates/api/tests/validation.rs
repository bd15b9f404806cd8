//! `validate()` reports each CEL rule's violation with the right field path.

use mro_api::model_registry::{IstioConfig, MySqlConfig, PostgresConfig, ProxyConfig, RestSpec};
use mro_api::model_transfer::{
    CustomPropertyValue, HuggingFaceSource, ModelArtifactMetadata, ModelRegistryRef,
    ModelVersionMetadata, OciDestination, OciSource, PvcLocation, RegisteredModelMetadata,
    RegistryTarget, S3Location, TransferDestination, TransferIntent, TransferModel, TransferSource,
    UriSource,
};
use mro_api::{ModelRegistrySpec, ModelTransferSpec, SecretKeyValue, SecretRef, ValidationError};
use std::collections::BTreeMap;

fn fields(result: Result<(), Vec<ValidationError>>) -> Vec<String> {
    result
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

fn messages(result: Result<(), Vec<ValidationError>>) -> String {
    mro_api::validation::join_errors(&result.err().unwrap_or_default())
}

fn secret() -> Option<SecretKeyValue> {
    Some(SecretKeyValue::new("s", "k"))
}

fn mysql() -> MySqlConfig {
    serde_json::from_value(serde_json::json!({"host": "db", "username": "u", "database": "d"}))
        .unwrap()
}

fn postgres() -> PostgresConfig {
    serde_json::from_value(serde_json::json!({"host": "db", "username": "u", "database": "d"}))
        .unwrap()
}

fn registry() -> ModelRegistrySpec {
    ModelRegistrySpec {
        rest: RestSpec::default(),
        grpc: None,
        postgres: None,
        mysql: Some(mysql()),
        enable_database_upgrade: None,
        downgrade_db_schema_version: None,
        oauth_proxy: None,
        kube_rbac_proxy: None,
        istio: None,
        model_transfers: None,
    }
}

fn istio() -> IstioConfig {
    serde_json::from_value(serde_json::json!({})).unwrap()
}

#[test]
fn valid_registry_passes() {
    registry().validate().unwrap();
    let mut pg = registry();
    pg.mysql = None;
    pg.postgres = Some(postgres());
    pg.kube_rbac_proxy = Some(ProxyConfig::default());
    pg.validate().unwrap();
}

#[test]
fn database_must_be_exactly_one() {
    let mut none = registry();
    none.mysql = None;
    let result = none.validate();
    assert_eq!(fields(result.clone()), ["spec"]);
    assert!(messages(result).contains("found neither"));

    let mut both = registry();
    both.postgres = Some(postgres());
    let result = both.validate();
    assert_eq!(fields(result.clone()), ["spec"]);
    assert!(messages(result).contains("found both"));
}

#[test]
fn auth_front_ends_are_mutually_exclusive() {
    let mut two = registry();
    two.oauth_proxy = Some(ProxyConfig::default());
    two.kube_rbac_proxy = Some(ProxyConfig::default());
    let result = two.validate();
    assert_eq!(fields(result.clone()), ["spec"]);
    assert!(messages(result).contains("spec.oauthProxy and spec.kubeRBACProxy"));

    let mut with_istio = registry();
    with_istio.oauth_proxy = Some(ProxyConfig::default());
    with_istio.istio = Some(istio());
    assert!(messages(with_istio.validate()).contains("spec.oauthProxy and spec.istio"));

    let mut alone = registry();
    alone.istio = Some(istio());
    alone.validate().unwrap();
}

#[test]
fn proxy_tls_secrets_come_in_pairs() {
    let mut cert_only = registry();
    cert_only.oauth_proxy = Some(ProxyConfig {
        tls_certificate_secret: secret(),
        ..ProxyConfig::default()
    });
    assert_eq!(
        fields(cert_only.validate()),
        ["spec.oauthProxy.tlsKeySecret"]
    );

    let mut key_only = registry();
    key_only.kube_rbac_proxy = Some(ProxyConfig {
        tls_key_secret: secret(),
        ..ProxyConfig::default()
    });
    assert_eq!(
        fields(key_only.validate()),
        ["spec.kubeRBACProxy.tlsCertificateSecret"]
    );

    let mut both = registry();
    both.kube_rbac_proxy = Some(ProxyConfig {
        tls_certificate_secret: secret(),
        tls_key_secret: secret(),
        ..ProxyConfig::default()
    });
    both.validate().unwrap();
}

#[test]
fn database_tls_secrets_come_in_pairs() {
    let mut pg_cert = registry();
    pg_cert.mysql = None;
    pg_cert.postgres = Some(PostgresConfig {
        ssl_certificate_secret: secret(),
        ..postgres()
    });
    assert_eq!(fields(pg_cert.validate()), ["spec.postgres.sslKeySecret"]);

    let mut pg_password = registry();
    pg_password.mysql = None;
    pg_password.postgres = Some(PostgresConfig {
        ssl_password_secret: secret(),
        ..postgres()
    });
    let result = pg_password.validate();
    assert_eq!(fields(result.clone()), ["spec.postgres.sslKeySecret"]);
    assert!(messages(result).contains("sslPasswordSecret"));

    let mut my_key = registry();
    my_key.mysql = Some(MySqlConfig {
        ssl_key_secret: secret(),
        ..mysql()
    });
    assert_eq!(
        fields(my_key.validate()),
        ["spec.mysql.sslCertificateSecret"]
    );
}

#[test]
fn postgres_host_depends_on_generate_deployment() {
    let mut no_host = registry();
    no_host.mysql = None;
    no_host.postgres = Some(PostgresConfig {
        host: None,
        ..postgres()
    });
    assert_eq!(fields(no_host.validate()), ["spec.postgres.host"]);

    let mut address_only = registry();
    address_only.mysql = None;
    address_only.postgres = Some(PostgresConfig {
        host: None,
        host_address: Some("10.0.0.1".into()),
        ..postgres()
    });
    address_only.validate().unwrap();

    let mut generated_with_host = registry();
    generated_with_host.mysql = None;
    generated_with_host.postgres = Some(PostgresConfig {
        generate_deployment: Some(true),
        ..postgres()
    });
    let result = generated_with_host.validate();
    assert_eq!(fields(result.clone()), ["spec.postgres.host"]);
    assert!(messages(result).contains("must be empty"));

    let mut generated = registry();
    generated.mysql = None;
    generated.postgres = Some(PostgresConfig {
        host: None,
        generate_deployment: Some(true),
        ..postgres()
    });
    generated.validate().unwrap();
}

#[test]
fn errors_accumulate() {
    let mut bad = registry();
    bad.postgres = Some(PostgresConfig {
        host: None,
        ..postgres()
    });
    bad.oauth_proxy = Some(ProxyConfig {
        tls_key_secret: secret(),
        ..ProxyConfig::default()
    });
    bad.istio = Some(istio());
    assert_eq!(
        fields(bad.validate()),
        [
            "spec",
            "spec",
            "spec.postgres.host",
            "spec.oauthProxy.tlsCertificateSecret"
        ]
    );
}

fn s3() -> S3Location {
    S3Location {
        bucket: "b".into(),
        key: "k".into(),
        region: None,
        endpoint: None,
        credentials_secret_ref: SecretRef::new("aws"),
    }
}

fn transfer() -> ModelTransferSpec {
    ModelTransferSpec {
        source: TransferSource {
            s3: Some(s3()),
            ..TransferSource::default()
        },
        destination: TransferDestination {
            oci: Some(OciDestination {
                uri: "quay.io/x/y:1".into(),
                ..OciDestination::default()
            }),
            ..TransferDestination::default()
        },
        registry: RegistryTarget {
            model_registry_ref: Some(ModelRegistryRef {
                name: "mr".into(),
                namespace: None,
            }),
            ..RegistryTarget::default()
        },
        intent: TransferIntent::CreateModel,
        model: TransferModel {
            registered_model: Some(RegisteredModelMetadata {
                name: Some("iris".into()),
                ..RegisteredModelMetadata::default()
            }),
            model_version: Some(ModelVersionMetadata {
                name: Some("v1".into()),
                ..ModelVersionMetadata::default()
            }),
            ..TransferModel::default()
        },
        job: None,
        signing: None,
    }
}

#[test]
fn valid_transfer_passes() {
    transfer().validate().unwrap();
}

#[test]
fn source_destination_and_registry_need_exactly_one_kind() {
    let mut none = transfer();
    none.source = TransferSource::default();
    let result = none.validate();
    assert_eq!(fields(result.clone()), ["spec.source"]);
    assert!(messages(result).contains("found none"));

    let mut two = transfer();
    two.source.uri = Some(UriSource {
        url: "https://x".into(),
        credentials_secret_ref: None,
    });
    let result = two.validate();
    assert_eq!(fields(result.clone()), ["spec.source"]);
    assert!(messages(result).contains("found s3 and uri"));

    let mut oci_and_pvc = transfer();
    oci_and_pvc.source = TransferSource {
        oci: Some(OciSource {
            uri: "x".into(),
            ..OciSource::default()
        }),
        ..TransferSource::default()
    };
    oci_and_pvc.destination.pvc = Some(PvcLocation {
        claim_name: "c".into(),
        path: None,
    });
    assert_eq!(fields(oci_and_pvc.validate()), ["spec.destination"]);

    let mut no_dest = transfer();
    no_dest.destination = TransferDestination::default();
    assert_eq!(fields(no_dest.validate()), ["spec.destination"]);

    let mut both_registries = transfer();
    both_registries.registry.url = Some("https://registry".into());
    assert_eq!(fields(both_registries.validate()), ["spec.registry"]);

    let mut no_registry = transfer();
    no_registry.registry = RegistryTarget::default();
    assert_eq!(fields(no_registry.validate()), ["spec.registry"]);
}

#[test]
fn create_model_needs_a_model_name() {
    let mut missing = transfer();
    missing.model = TransferModel::default();
    assert_eq!(
        fields(missing.validate()),
        [
            "spec.model.registeredModel.name",
            "spec.model.modelVersion.name"
        ]
    );

    let mut empty = transfer();
    empty.model.registered_model.as_mut().unwrap().name = Some(String::new());
    assert_eq!(
        fields(empty.validate()),
        ["spec.model.registeredModel.name"]
    );

    let mut id_only = transfer();
    id_only.model.registered_model = Some(RegisteredModelMetadata {
        id: Some("1".into()),
        ..RegisteredModelMetadata::default()
    });
    assert_eq!(
        fields(id_only.validate()),
        [
            "spec.model.registeredModel.name",
            "spec.model.registeredModel.id"
        ]
    );

    // create_model creates the model: an id is a contradiction, and a version name is needed.
    let mut with_id = transfer();
    with_id.model.registered_model.as_mut().unwrap().id = Some("1".into());
    let result = with_id.validate();
    assert_eq!(fields(result.clone()), ["spec.model.registeredModel.id"]);
    assert!(messages(result).contains("create_version"));
    let mut no_version = transfer();
    no_version.model.model_version = None;
    assert_eq!(
        fields(no_version.validate()),
        ["spec.model.modelVersion.name"]
    );
}

#[test]
fn transfers_from_other_namespaces_need_the_registry_opt_in() {
    let mut spec = registry();
    assert!(spec.allows_transfers_from("registries", "registries"));
    assert!(!spec.allows_transfers_from("registries", "team-a"));
    spec.model_transfers = Some(mro_api::model_registry::ModelTransferAccess {
        allowed_namespaces: vec!["team-a".into()],
    });
    assert!(spec.allows_transfers_from("registries", "team-a"));
    assert!(!spec.allows_transfers_from("registries", "team-b"));
    assert!(spec.allows_transfers_from("registries", "registries"));
    let wire = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        wire["modelTransfers"],
        serde_json::json!({ "allowedNamespaces": ["team-a"] })
    );
}

#[test]
fn create_version_needs_a_model_and_a_version_name() {
    let mut spec = transfer();
    spec.intent = TransferIntent::CreateVersion;
    spec.model = TransferModel::default();
    assert_eq!(
        fields(spec.validate()),
        ["spec.model.registeredModel", "spec.model.modelVersion.name"]
    );

    spec.model.registered_model = Some(RegisteredModelMetadata {
        id: Some("4".into()),
        ..RegisteredModelMetadata::default()
    });
    assert_eq!(fields(spec.validate()), ["spec.model.modelVersion.name"]);

    spec.model.model_version = Some(ModelVersionMetadata {
        name: Some("v2".into()),
        ..ModelVersionMetadata::default()
    });
    spec.validate().unwrap();
}

#[test]
fn update_artifact_needs_an_artifact_id() {
    let mut spec = transfer();
    spec.intent = TransferIntent::UpdateArtifact;
    assert_eq!(fields(spec.validate()), ["spec.model.modelArtifact.id"]);
    spec.model.model_artifact = Some(ModelArtifactMetadata {
        id: Some("9".into()),
        ..ModelArtifactMetadata::default()
    });
    spec.validate().unwrap();
}

#[test]
fn custom_property_values_need_exactly_one_type() {
    let mut spec = transfer();
    let mut props = BTreeMap::new();
    props.insert("ok".to_string(), CustomPropertyValue::double(1.5));
    props.insert("empty".to_string(), CustomPropertyValue::default());
    let mut two = CustomPropertyValue::string("x");
    two.bool_value = Some(true);
    props.insert("two".to_string(), two);
    spec.model.model_version = Some(ModelVersionMetadata {
        name: Some("v1".into()),
        custom_properties: Some(props),
        ..ModelVersionMetadata::default()
    });
    assert_eq!(
        fields(spec.validate()),
        [
            "spec.model.modelVersion.customProperties[empty]",
            "spec.model.modelVersion.customProperties[two]"
        ]
    );
    let wire = serde_json::to_value(CustomPropertyValue::int(3)).unwrap();
    assert_eq!(wire, serde_json::json!({"int": 3}));
}

#[test]
fn transfer_spec_is_immutable() {
    let old = transfer();
    old.validate_update(&old.clone()).unwrap();
    let mut new = old.clone();
    new.model.registered_model.as_mut().unwrap().description = Some("changed".into());
    assert_eq!(fields(new.validate_update(&old)), ["spec"]);
}

#[test]
fn errors_display_field_and_expectation() {
    let err = ValidationError::new(
        "spec.source",
        "exactly one of s3, oci, uri or pvc must be set",
    );
    assert_eq!(
        err.to_string(),
        "spec.source: exactly one of s3, oci, uri or pvc must be set"
    );
}

#[test]
fn hugging_face_source_fields_are_checked_and_named() {
    let hf = |repo: &str, revision: Option<&str>, endpoint: Option<&str>| {
        let mut t = transfer();
        t.source = TransferSource {
            hugging_face: Some(HuggingFaceSource {
                repo: repo.into(),
                revision: revision.map(Into::into),
                token_secret_ref: None,
                endpoint: endpoint.map(Into::into),
            }),
            ..TransferSource::default()
        };
        t
    };
    hf("ibm-granite/granite-3.0-2b-instruct", None, None)
        .validate()
        .unwrap();
    hf(
        "gpt2",
        Some("refs/pr/1"),
        Some("http://127.0.0.1:8080/mirror"),
    )
    .validate()
    .unwrap();
    let bad = hf("org/model/extra", Some("main:x"), Some("ftp://hub"));
    assert_eq!(
        fields(bad.validate()),
        [
            "spec.source.huggingFace.repo",
            "spec.source.huggingFace.revision",
            "spec.source.huggingFace.endpoint"
        ]
    );
    // User info in an endpoint is not repeated in the message (it may hold a password).
    let msg = messages(hf("o/m", None, Some("https://u:secret@hub")).validate());
    assert!(
        msg.contains("spec.source.huggingFace.endpoint") && !msg.contains("secret"),
        "{msg}"
    );
    // With another source kind: exactly one.
    let mut two = hf("o/m", None, None);
    two.source.s3 = Some(s3());
    assert_eq!(fields(two.validate()), ["spec.source"]);
}
