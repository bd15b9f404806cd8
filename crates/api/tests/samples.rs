//! Existing manifests deserialize unchanged, in both API versions.

mod common;

use common::{MR_SAMPLES, MT_SAMPLES, assert_preserved, docs, with_version};
use mro_api::model_registry::{
    GatewayTlsMode, IstioTlsMode, PostgresSslMode, ServiceRoute, v1alpha1,
};
use mro_api::model_transfer::{PropertyValue, TransferIntent};
use mro_api::{ModelRegistry, ModelTransfer};
use serde_json::Value;

fn samples_in_both_versions() -> Vec<(String, Value, ModelRegistry)> {
    let mut out = Vec::new();
    for doc in docs(MR_SAMPLES) {
        assert_eq!(doc["kind"], "ModelRegistry");
        for version in ["v1alpha1", "v1beta1"] {
            let doc = with_version(&doc, version);
            let name = format!("{}@{version}", doc["metadata"]["name"].as_str().unwrap());
            let beta: ModelRegistry = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("{name} does not parse as v1beta1 type: {e}"));
            let alpha: v1alpha1::ModelRegistry = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("{name} does not parse as v1alpha1 type: {e}"));
            assert_eq!(alpha.spec, beta.spec, "{name}");
            out.push((name, doc, beta));
        }
    }
    out
}

fn sample(name: &str) -> ModelRegistry {
    samples_in_both_versions()
        .into_iter()
        .find(|(n, _, _)| n == &format!("{name}@v1beta1"))
        .unwrap_or_else(|| panic!("no sample {name}"))
        .2
}

#[test]
fn every_model_registry_sample_parses_validates_and_round_trips() {
    let samples = samples_in_both_versions();
    assert_eq!(samples.len(), 2 * 16);
    for (name, doc, mr) in samples {
        if let Err(errors) = mr.spec.validate() {
            panic!("{name} is rejected: {errors:?}");
        }
        let out = serde_json::to_value(&mr).unwrap();
        assert_preserved(&doc["spec"], &out["spec"], &format!("{name}: spec"));
        let again: ModelRegistry = serde_json::from_value(out).unwrap();
        assert_eq!(again, mr, "{name}: second round trip differs");
    }
}

#[test]
fn typed_objects_serialize_their_own_api_version() {
    let mr = sample("sample-mysql");
    let beta = serde_json::to_value(&mr).unwrap();
    assert_eq!(beta["apiVersion"], "modelregistry.opendatahub.io/v1beta1");
    assert_eq!(beta["kind"], "ModelRegistry");
    let alpha = serde_json::to_value(v1alpha1::ModelRegistry::from(mr.clone())).unwrap();
    assert_eq!(alpha["apiVersion"], "modelregistry.opendatahub.io/v1alpha1");
    assert_eq!(alpha["spec"], beta["spec"]);
    let back =
        ModelRegistry::from(serde_json::from_value::<v1alpha1::ModelRegistry>(alpha).unwrap());
    assert_eq!(back, mr);
}

#[test]
fn omitted_fields_get_upstream_defaults() {
    let mr = sample("sample-oauth-mysql");
    assert_eq!(mr.spec.rest.port, 8080);
    assert_eq!(mr.spec.rest.service_route, ServiceRoute::Disabled);
    assert_eq!(mr.spec.grpc.as_ref().map(|g| g.port), Some(9090));
    let mysql = mr.spec.mysql.as_ref().unwrap();
    assert_eq!(mysql.port, 3306);
    assert!(!mysql.skip_db_creation);
    let proxy = mr.spec.oauth_proxy.as_ref().unwrap();
    assert_eq!(proxy.port, 8443);
    assert_eq!(proxy.route_port, 443);
    assert_eq!(proxy.service_route, ServiceRoute::Enabled);

    let pg = sample("sample-postgres").spec.postgres.unwrap();
    assert_eq!(pg.port, 5432);
    assert_eq!(pg.ssl_mode, PostgresSslMode::Disable);
    let secure = sample("sample-secure-postgres").spec.postgres.unwrap();
    assert_eq!(secure.ssl_mode, PostgresSslMode::VerifyCa);
    assert_eq!(secure.ssl_mode.as_str(), "verify-ca");

    let v1beta1 = sample("sample-v1beta1-mysql");
    assert!(
        v1beta1.spec.grpc.is_none(),
        "an omitted grpc selects the single-container layout"
    );
}

#[test]
fn istio_samples_keep_gateway_settings() {
    let plain = sample("sample-istio-postgres").spec.istio.unwrap();
    assert_eq!(plain.tls_mode, IstioTlsMode::IstioMutual);
    assert_eq!(
        plain.auth_provider.as_deref(),
        Some("opendatahub-auth-provider")
    );
    let gw = plain.gateway.unwrap();
    assert_eq!(gw.istio_ingress.as_deref(), Some("ingressgateway"));
    assert_eq!(gw.rest.gateway_route, ServiceRoute::Enabled);
    assert_eq!(gw.rest.effective_port(), 80);
    assert!(gw.rest.tls.is_none());

    let tls = sample("sample-istio-mysql-tls").spec.istio.unwrap();
    assert_eq!(
        tls.audiences.as_deref(),
        Some(&["https://kubernetes.default.svc".to_string()][..])
    );
    let gw = tls.gateway.unwrap();
    assert_eq!(gw.control_plane.as_deref(), Some("data-science-smcp"));
    assert_eq!(gw.rest.effective_port(), 443);
    let rest_tls = gw.rest.tls.unwrap();
    assert_eq!(rest_tls.mode, GatewayTlsMode::Simple);
    assert_eq!(
        rest_tls.credential_name.as_deref(),
        Some("modelregistry-sample-rest-credential")
    );
    assert_eq!(gw.grpc.effective_port(), 8443);
    assert_eq!(gw.grpc.gateway_route, ServiceRoute::Disabled);
    assert_eq!(gw.grpc.tls.unwrap().mode, GatewayTlsMode::Mutual);

    let defaulted = sample("sample-istio-postgres-tls")
        .spec
        .istio
        .unwrap()
        .gateway
        .unwrap();
    assert_eq!(defaulted.rest.tls.unwrap().mode, GatewayTlsMode::Simple);
}

#[test]
fn v1beta1_only_fields_parse() {
    let mr = sample("sample-kube-rbac-proxy");
    let proxy = mr.spec.kube_rbac_proxy.unwrap();
    assert_eq!(proxy.service_route, ServiceRoute::Disabled);
    assert_eq!(proxy.domain.as_deref(), Some("apps.example.com"));
    let pg = mr.spec.postgres.unwrap();
    assert!(pg.skip_db_creation);
    assert_eq!(pg.host_address.as_deref(), Some("10.0.0.25"));
    assert_eq!(pg.ssl_mode, PostgresSslMode::VerifyFull);
    let limits = mr.spec.rest.resources.unwrap().limits.unwrap();
    assert_eq!(limits["memory"].0, "1Gi");

    let generated = sample("sample-generated-postgres").spec.postgres.unwrap();
    assert_eq!(generated.generate_deployment, Some(true));

    let all = sample("sample-mysql-all-tls").spec;
    assert_eq!(all.enable_database_upgrade, Some(true));
    assert_eq!(all.downgrade_db_schema_version, Some(9));
    let my = all.mysql.unwrap();
    assert_eq!(my.verify_server_cert, Some(true));
    assert_eq!(
        my.ssl_root_certificates_config_map_name.as_deref(),
        Some("db-cas")
    );
}

#[test]
fn every_model_transfer_sample_parses_validates_and_round_trips() {
    let docs = docs(MT_SAMPLES);
    assert_eq!(docs.len(), 4);
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        let mt: ModelTransfer = serde_json::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        if let Err(errors) = mt.spec.validate() {
            panic!("{name} is rejected: {errors:?}");
        }
        mt.spec.validate_update(&mt.spec.clone()).unwrap();
        let out = serde_json::to_value(&mt).unwrap();
        assert_eq!(out["apiVersion"], "modelregistry.opendatahub.io/v1alpha1");
        assert_preserved(&doc["spec"], &out["spec"], &format!("{name}: spec"));
        assert!(mt.spec.source.display_uri().is_some());
        assert!(mt.spec.destination.display_uri().is_some());
    }
}

#[test]
fn model_transfer_fields_map_as_expected() {
    let all = docs(MT_SAMPLES);
    let first: ModelTransfer = serde_json::from_value(all[0].clone()).unwrap();
    let spec = &first.spec;
    assert_eq!(spec.intent, TransferIntent::CreateModel);
    assert_eq!(spec.source.display_uri().unwrap(), "s3://models/iris/v1/");
    assert_eq!(
        spec.destination.display_uri().unwrap(),
        "oci://quay.io/example/iris:1.0"
    );
    let props = spec
        .model
        .registered_model
        .as_ref()
        .unwrap()
        .custom_properties
        .as_ref()
        .unwrap();
    assert_eq!(props["team"].value(), Some(PropertyValue::String("ds")));
    assert_eq!(props["stars"].value(), Some(PropertyValue::Int(5)));
    assert_eq!(props["accuracy"].value(), Some(PropertyValue::Double(0.97)));
    assert_eq!(
        props["production"].value(),
        Some(PropertyValue::Bool(false))
    );
    let job = spec.job.as_ref().unwrap();
    assert_eq!(job.scratch_volume_size.as_ref().unwrap().0, "20Gi");
    assert_eq!(
        job.ca_bundle_config_map_ref,
        Some(mro_api::ConfigMapKeyValue::new(
            "trusted-ca",
            "ca-bundle.crt"
        ))
    );
    assert_eq!(
        job.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("dedicated")
    );

    assert!(spec.signing.is_none());
    let second: ModelTransfer = serde_json::from_value(all[1].clone()).unwrap();
    let key = second
        .spec
        .signing
        .as_ref()
        .unwrap()
        .key_secret_ref
        .as_ref();
    assert_eq!(
        key,
        Some(&mro_api::SecretKeyValue::new(
            "model-signing-key",
            "key.pem"
        ))
    );

    let third: ModelTransfer = serde_json::from_value(all[2].clone()).unwrap();
    let keyless = third
        .spec
        .signing
        .as_ref()
        .unwrap()
        .keyless
        .as_ref()
        .unwrap();
    assert_eq!(keyless.fulcio_url, "https://fulcio.sigstore.example.com");
    assert_eq!(
        keyless.tsa_url.as_deref(),
        Some("https://tsa.sigstore.example.com/api/v1/timestamp")
    );
    assert_eq!(keyless.expiration_seconds, Some(3600));
    assert_eq!(third.spec.intent, TransferIntent::UpdateArtifact);
    assert_eq!(third.spec.source.oci.as_ref().unwrap().insecure, Some(true));
    assert_eq!(
        third.spec.source.display_uri().unwrap(),
        "oci://quay.io/example/iris:1.0"
    );
    assert_eq!(
        third.spec.destination.display_uri().unwrap(),
        "pvc://models/iris/v1"
    );

    for (intent, wire) in [
        (TransferIntent::CreateModel, "create_model"),
        (TransferIntent::CreateVersion, "create_version"),
        (TransferIntent::UpdateArtifact, "update_artifact"),
    ] {
        assert_eq!(serde_json::to_value(intent).unwrap(), wire);
        assert_eq!(intent.to_string(), wire);
    }
}

#[test]
fn status_written_by_the_go_operator_parses() {
    let status = serde_json::json!({
        "hosts": ["modelregistry-sample.ns.svc.cluster.local", "modelregistry-sample.ns"],
        "hostsStr": "modelregistry-sample.ns.svc.cluster.local,modelregistry-sample.ns",
        "specDefaults": "{\"rest\":{\"image\":\"quay.io/opendatahub/model-registry:latest\"}}",
        "conditions": [{
            "type": "Available",
            "status": "True",
            "reason": "DeploymentAvailable",
            "message": "Deployment for model registry modelregistry-sample is available",
            "lastTransitionTime": "2024-05-01T10:00:00Z"
        }]
    });
    let parsed: mro_api::ModelRegistryStatus = serde_json::from_value(status.clone()).unwrap();
    assert!(mro_api::condition::is_condition_true(
        &parsed.conditions,
        "Available"
    ));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), status);
}
