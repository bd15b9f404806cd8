//! Specs that cannot work fail with `InvalidConfiguration`, naming the field, before any Job
//! exists; a missing reference that appears later lets the transfer proceed.
use mro_api::model_transfer::TransferPhase;
use serde_json::json;

use super::{Env, condition, s3_to_oci};

fn invalid(st: &mro_api::ModelTransferStatus) -> bool {
    st.phase == Some(TransferPhase::Failed)
        && condition(st, "Failed") == Some(("True".into(), "InvalidConfiguration".into()))
}

#[tokio::test(flavor = "multi_thread")]
async fn contradictory_spec_and_unknown_registry_fail_before_any_job() {
    let env = Env::new("mt-invalid").await;
    env.storage_secrets().await;

    // Two sources at once: API servers without CEL store it, the controller refuses it.
    let mut both = s3_to_oci("http://registry.example:8080");
    both["source"]["uri"] = json!({ "url": "https://example.com/model.tar.gz" });
    env.create("both", both).await;
    let t = env
        .wait_status("both", "InvalidConfiguration", invalid)
        .await;
    let msg = t.status.unwrap().message.unwrap();
    assert!(
        msg.contains("spec.source") && msg.contains("exactly one"),
        "{msg}"
    );
    env.assert_no_job("both-sync").await;

    // A ModelRegistry that does not exist.
    let mut unknown = s3_to_oci("http://unused");
    unknown["registry"] = json!({ "modelRegistryRef": { "name": "nope" } });
    env.create("unknown", unknown).await;
    let t = env
        .wait_status("unknown", "InvalidConfiguration", invalid)
        .await;
    let msg = t.status.unwrap().message.unwrap();
    assert!(
        msg.contains("spec.registry.modelRegistryRef") && msg.contains("\"nope\""),
        "{msg}"
    );
    env.assert_no_job("unknown-sync").await;

    // Something only the API server's validation of the Job catches.
    let mut toleration = s3_to_oci("http://registry.example:8080");
    toleration["job"]["tolerations"] = json!([{ "key": "k", "operator": "Sometimes" }]);
    env.create("toleration", toleration).await;
    let t = env
        .wait_status("toleration", "InvalidConfiguration", invalid)
        .await;
    let msg = t.status.unwrap().message.unwrap();
    assert!(
        msg.contains("Job toleration-sync") && msg.contains("operator"),
        "{msg}"
    );
    env.assert_no_job("toleration-sync").await;

    // An hf:// repository given as a URL to download is pointed at spec.source.huggingFace.
    let mut hf = s3_to_oci("http://registry.example:8080");
    hf["source"] = json!({ "uri": { "url": "hf://ibm-granite/granite-3.0-2b-instruct" } });
    env.create("hf", hf).await;
    let t = env.wait_status("hf", "InvalidConfiguration", invalid).await;
    let msg = t.status.unwrap().message.unwrap();
    assert!(
        msg.contains("spec.source.uri.url") && msg.contains("spec.source.huggingFace"),
        "{msg}"
    );
    env.assert_no_job("hf-sync").await;

    // A Hugging Face source with a malformed repository, revision and endpoint: each field is
    // named (API servers without CEL store it; the controller refuses it).
    let mut bad_hf = s3_to_oci("http://registry.example:8080");
    bad_hf["source"] = json!({ "huggingFace": {
        "repo": "org/model/extra", "revision": "main:x", "endpoint": "ftp://hub.example"
    } });
    env.create("bad-hf", bad_hf).await;
    let t = env
        .wait_status("bad-hf", "InvalidConfiguration", invalid)
        .await;
    let msg = t.status.unwrap().message.unwrap();
    for field in [
        "spec.source.huggingFace.repo",
        "spec.source.huggingFace.revision",
        "spec.source.huggingFace.endpoint",
    ] {
        assert!(msg.contains(field), "{field}: {msg}");
    }
    env.assert_no_job("bad-hf-sync").await;

    // An intent without what it needs.
    let mut no_artifact = s3_to_oci("http://registry.example:8080");
    no_artifact["intent"] = json!("update_artifact");
    env.create("no-artifact", no_artifact).await;
    let t = env
        .wait_status("no-artifact", "InvalidConfiguration", invalid)
        .await;
    assert!(
        t.status
            .unwrap()
            .message
            .unwrap()
            .contains("spec.model.modelArtifact.id")
    );
    env.assert_no_job("no-artifact-sync").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_secret_fails_then_proceeds_once_it_exists() {
    let env = Env::new("mt-missing").await;
    let mut spec = s3_to_oci("http://registry.example:8080");
    spec["job"]["caBundleConfigMapRef"] = json!({ "name": "trusted-ca", "key": "ca-bundle.crt" });
    env.create("waits", spec).await;
    let t = env
        .wait_status("waits", "InvalidConfiguration", invalid)
        .await;
    let msg = t.status.unwrap().message.unwrap();
    // Every missing reference is named, with its field.
    assert!(
        msg.contains("spec.source.s3.credentialsSecretRef: Secret \"s3-creds\" not found"),
        "{msg}"
    );
    assert!(
        msg.contains("spec.destination.oci.credentialsSecretRef"),
        "{msg}"
    );
    assert!(
        msg.contains("spec.job.caBundleConfigMapRef: ConfigMap \"trusted-ca\" not found"),
        "{msg}"
    );
    env.assert_no_job("waits-sync").await;

    // A Secret without the required keys is named too.
    env.secret("s3-creds", None, json!({ "AWS_ACCESS_KEY_ID": "x" }))
        .await;
    let t = env
        .wait_status("waits", "the missing key reported", |s| {
            s.message
                .as_deref()
                .is_some_and(|m| m.contains("has no key AWS_SECRET_ACCESS_KEY"))
        })
        .await;
    assert_eq!(t.status.unwrap().phase, Some(TransferPhase::Failed));
    env.assert_no_job("waits-sync").await;

    // Once everything exists, the transfer proceeds on its own (periodic re-check).
    env.api::<k8s_openapi::api::core::v1::Secret>()
        .delete("s3-creds", &Default::default())
        .await
        .unwrap();
    env.storage_secrets().await;
    let ca: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "trusted-ca" },
        "data": { "ca-bundle.crt": mro_tests::tls::TestCa::new().cert_pem() }
    }))
    .unwrap();
    env.api::<k8s_openapi::api::core::v1::ConfigMap>()
        .create(&Default::default(), &ca)
        .await
        .unwrap();
    let job = env.wait_job("waits-sync").await;
    let text = serde_json::to_string(&job.spec.unwrap().template.spec).unwrap();
    assert!(
        text.contains("trusted-ca") && text.contains("SSL_CERT_FILE"),
        "{text}"
    );
    let t = env
        .wait_status("waits", "Pending with a Job", |s| {
            s.phase == Some(TransferPhase::Pending) && s.job_name.is_some()
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(
        condition(&st, "Failed"),
        Some(("False".into(), "JobCreated".into()))
    );
}
