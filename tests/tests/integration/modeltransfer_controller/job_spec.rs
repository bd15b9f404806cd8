//! The Job the controller creates: name, ownership, model-sync configuration through variables
//! and mounted files, no secret values anywhere, restricted pod security, and its inputs.
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, ServiceAccount};
use mro_api::model_transfer::TransferPhase;

use super::{Env, OCI_AUTH_VALUE, S3_SECRET_VALUE, s3_to_oci};

fn env_of(spec: &PodSpec) -> BTreeMap<String, String> {
    spec.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| {
            assert!(e.value_from.is_none(), "{}: no valueFrom", e.name);
            (e.name.clone(), e.value.clone().unwrap_or_default())
        })
        .collect()
}

/// The restricted Pod Security Standard's rules that apply to this pod.
fn assert_restricted(spec: &PodSpec) {
    let psc = spec.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u > 0));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    for c in &spec.containers {
        let sc = c
            .security_context
            .as_ref()
            .expect("container securityContext");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        assert!(sc.capabilities.as_ref().unwrap().add.is_none());
        assert_ne!(sc.privileged, Some(true));
    }
    for v in spec.volumes.iter().flatten() {
        assert!(v.host_path.is_none(), "no hostPath volumes");
    }
    assert_ne!(spec.host_network, Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn job_is_created_with_the_expected_spec() {
    let env = Env::new("mt-job-spec").await;
    env.storage_secrets().await;
    env.create("iris", s3_to_oci("http://registry.example:8080"))
        .await;

    let job = env.wait_job("iris-sync").await;
    let t = env.transfer("iris").await;
    // Owned by the transfer (garbage-collected with it) and tagged with its spec's hash.
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ModelTransfer", "iris")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(Some(&owner.uid), t.metadata.uid.as_ref());
    assert!(
        job.metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("modelregistry.opendatahub.io/spec-hash")
    );
    let js = job.spec.as_ref().unwrap();
    assert_eq!(js.backoff_limit, Some(0));
    let spec = js.template.spec.as_ref().unwrap();
    assert_restricted(spec);
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.service_account_name.as_deref(), Some("iris-sync"));
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let c = &spec.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("quay.io/opendatahub/model-sync:latest")
    );
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    assert_eq!(
        c.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );

    let e = env_of(spec);
    for (k, v) in [
        ("MODEL_SYNC_SOURCE_TYPE", "s3"),
        ("MODEL_SYNC_SOURCE_AWS_BUCKET", "models"),
        ("MODEL_SYNC_SOURCE_AWS_KEY", "iris/v1/"),
        (
            "MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH",
            "/var/run/secrets/model-sync/source",
        ),
        ("MODEL_SYNC_DESTINATION_TYPE", "oci"),
        ("MODEL_SYNC_DESTINATION_OCI_URI", "quay.io/example/iris:v1"),
        (
            "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH",
            "/var/run/secrets/model-sync/destination/.dockerconfigjson",
        ),
        (
            "MODEL_SYNC_REGISTRY_SERVER_ADDRESS",
            "http://registry.example",
        ),
        ("MODEL_SYNC_REGISTRY_PORT", "8080"),
        ("MODEL_SYNC_REGISTRY_IS_SECURE", "false"),
        ("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_model"),
        ("MODEL_SYNC_METADATA_CONFIGMAP_PATH", "/etc/model-metadata"),
        ("MODEL_SYNC_STORAGE_PATH", "/tmp/model-sync"),
    ] {
        assert_eq!(e.get(k).map(String::as_str), Some(v), "{k}");
    }
    // Credentials are files from the referenced Secrets; their values are nowhere in the Job.
    let volumes: BTreeMap<String, serde_json::Value> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), serde_json::to_value(v).unwrap()))
        .collect();
    assert_eq!(
        volumes["source-credentials"]["secret"]["secretName"],
        "s3-creds"
    );
    assert_eq!(
        volumes["destination-credentials"]["secret"]["secretName"],
        "push-creds"
    );
    assert_eq!(volumes["metadata"]["configMap"]["name"], "iris-metadata");
    assert_eq!(volumes["scratch"]["emptyDir"]["sizeLimit"], "20Gi");
    let text = serde_json::to_string(&job).unwrap();
    for secret in [S3_SECRET_VALUE, OCI_AUTH_VALUE, "AKIDTESTVALUE"] {
        assert!(!text.contains(secret), "a secret value leaked into the Job");
    }

    // Inputs: the metadata ConfigMap and the per-transfer ServiceAccount, both owned.
    let cm = env.api::<ConfigMap>().get("iris-metadata").await.unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data["RegisteredModel.name"], "iris");
    assert_eq!(
        data["RegisteredModel.custom_properties"],
        r#"{"team":"ml"}"#
    );
    assert_eq!(data["ModelVersion.name"], "v1");
    assert_eq!(data["ModelVersion.author"], "ci");
    assert_eq!(data["ModelArtifact.model_format_name"], "onnx");
    assert_eq!(cm.metadata.owner_references.unwrap()[0].name, "iris");
    let sa = env.api::<ServiceAccount>().get("iris-sync").await.unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert_eq!(sa.metadata.owner_references.unwrap()[0].name, "iris");

    // The API server (admission included) accepted the pod built from the template.
    let pod = env.wait_pod("iris-sync").await;
    assert_restricted(pod.spec.as_ref().unwrap());

    let t = env
        .wait_status("iris", "Pending with the Job's name", |s| {
            s.phase == Some(TransferPhase::Pending) && s.job_name.as_deref() == Some("iris-sync")
        })
        .await;
    let st = t.status.unwrap();
    assert_eq!(st.source_uri.as_deref(), Some("s3://models/iris/v1/"));
    assert_eq!(
        st.destination_uri.as_deref(),
        Some("oci://quay.io/example/iris:v1")
    );
    assert_eq!(st.observed_generation, t.metadata.generation);
    let status_text = serde_json::to_string(&st).unwrap();
    assert!(!status_text.contains(S3_SECRET_VALUE));
    // One Job per transfer, also after further reconciles.
    let jobs = env.api::<Job>().list(&Default::default()).await.unwrap();
    assert_eq!(jobs.items.len(), 1);
}

/// A URL source written with `user:password@` and a pre-signed query: `status.sourceUri`
/// (readable by whoever may list transfers) shows neither.
#[tokio::test(flavor = "multi_thread")]
async fn status_source_uri_hides_url_credentials() {
    let env = Env::new("mt-source-uri").await;
    env.storage_secrets().await;
    let mut spec = s3_to_oci("http://registry.example:8080");
    spec["source"] = serde_json::json!({ "uri": {
        "url": "https://alice:PLANTED-URL-PASS@dl.example/m.bin?X-Amz-Security-Token=PLANTED-SESSION&X-Amz-Signature=PLANTEDSIG"
    }});
    env.create("url", spec).await;
    let t = env
        .wait_status("url", "a status with the source URI", |s| {
            s.source_uri.is_some()
        })
        .await;
    let shown = t.status.unwrap().source_uri.unwrap();
    assert_eq!(
        shown,
        "https://***@dl.example/m.bin?X-Amz-Security-Token=***&X-Amz-Signature=***"
    );
}
