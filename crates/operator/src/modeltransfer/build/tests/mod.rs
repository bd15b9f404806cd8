//! Builder tests: every source and destination type, credentials as files only, registry wiring,
//! the restricted Pod Security Standard, Job settings, metadata and RBAC objects.
//! Registry wiring: [`wiring`]; `spec.signing`: [`signing`].
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};
use mro_api::{ModelRegistry, ModelTransfer};
use serde_json::{Value, json};

use super::registry::{self, TokenSource};
use super::*;
use crate::capabilities::{CONFIG_GROUP, Capabilities, ROUTE_GROUP, USER_GROUP};
pub(super) use crate::settings::Settings;

mod signing;
mod tls;
mod wiring;

const NS: &str = "team-a";
const NAME: &str = "iris-transfer";
const HASH: &str = "0123456789abcdef";

fn mt(spec: Value) -> ModelTransfer {
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
        "kind": "ModelTransfer",
        "metadata": { "name": NAME, "namespace": NS, "uid": "6f1d2c3b-0a9e-4b8c-8d7e-112233445566", "generation": 1 },
        "spec": spec,
    }))
    .expect("valid ModelTransfer")
}

fn base() -> Value {
    json!({
        "source": { "s3": { "bucket": "models", "key": "iris/v1", "credentialsSecretRef": { "name": "s3-creds" } } },
        "destination": { "oci": { "uri": "quay.io/org/iris:1", "credentialsSecretRef": { "name": "push-creds" } } },
        "registry": { "url": "http://registry.example:8080" },
        "intent": "create_model",
        "model": { "registeredModel": { "name": "iris" }, "modelVersion": { "name": "v1" } }
    })
}

fn with(mut spec: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut spec;
    for p in &path[..path.len() - 1] {
        cur = &mut cur[*p];
    }
    cur[path[path.len() - 1]] = value;
    spec
}

fn mr(ns: &str, spec: Value) -> ModelRegistry {
    let mut spec = spec;
    spec["mysql"] = json!({ "host": "db", "username": "u", "database": "d" });
    serde_json::from_value(json!({
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": { "name": "registry", "namespace": ns, "uid": "1b2c3d4e-0000-4000-8000-000000000001" },
        "spec": spec,
    }))
    .expect("valid ModelRegistry")
}

fn openshift() -> Capabilities {
    Capabilities::from_groups([
        (ROUTE_GROUP, vec!["v1"]),
        (USER_GROUP, vec!["v1"]),
        (CONFIG_GROUP, vec!["v1"]),
    ])
}

fn build_with(t: &ModelTransfer, m: Option<&ModelRegistry>, caps: &Capabilities) -> Desired {
    let settings = Settings::for_tests();
    let input = BuildInput {
        mt: t,
        settings: &settings,
        registry: registry::wiring(&t.spec.registry, m, caps).expect("wiring"),
        service_account: service_account_name(t),
    };
    desired(&input, HASH).expect("builds")
}

fn build(spec: Value) -> Desired {
    build_with(&mt(spec), None, &Capabilities::vanilla())
}

fn pod(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn container(job: &Job) -> &Container {
    &pod(job).containers[0]
}

fn env(job: &Job) -> BTreeMap<String, String> {
    container(job)
        .env
        .iter()
        .flatten()
        .map(|e| {
            assert!(e.value_from.is_none(), "{} must be a plain value", e.name);
            (e.name.clone(), e.value.clone().unwrap_or_default())
        })
        .collect()
}

/// mount path → (volume, read-only)
fn mounts(job: &Job) -> BTreeMap<String, (String, bool)> {
    container(job)
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            (
                m.mount_path.clone(),
                (m.name.clone(), m.read_only == Some(true)),
            )
        })
        .collect()
}

fn volume<'a>(job: &'a Job, name: &str) -> &'a Volume {
    pod(job)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// Checks shared by every Job: restricted PSS, no token unless wanted, files for credentials.
fn common_checks(job: &Job) {
    let p = pod(job);
    assert_eq!(pss::violations(p), Vec::<String>::new());
    assert_eq!(p.automount_service_account_token, Some(false));
    assert_eq!(p.enable_service_links, Some(false));
    // Restarts in place exactly when there are retries (see `job::retries`).
    let retries = job.spec.as_ref().unwrap().backoff_limit.unwrap() > 0;
    let policy = if retries { "OnFailure" } else { "Never" };
    assert_eq!(p.restart_policy.as_deref(), Some(policy));
    let sc = p.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_user, Some(job::RUN_AS_USER));
    assert_eq!(sc.run_as_non_root, Some(true));
    let c = container(job);
    let csc = c.security_context.as_ref().unwrap();
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(csc.run_as_user, Some(job::RUN_AS_USER));
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    assert!(c.termination_message_path.is_none(), "default path kept");
    let text = serde_json::to_string(job).unwrap();
    assert!(
        !text.contains("secretKeyRef"),
        "no secret in the environment"
    );
    let e = env(job);
    for name in e.keys() {
        assert!(
            !name.contains("SECRET_ACCESS_KEY")
                && !name.contains("PASSWORD")
                && name != "MODEL_SYNC_REGISTRY_USER_TOKEN",
            "{name} would carry a secret"
        );
    }
    assert_eq!(e["MODEL_SYNC_STORAGE_PATH"], job::STORAGE_PATH);
    assert_eq!(mounts(job)[job::SCRATCH_DIR], ("scratch".into(), false));
    assert_eq!(e["MODEL_SYNC_METADATA_CONFIGMAP_PATH"], job::METADATA_DIR);
    assert_eq!(
        volume(job, "metadata").config_map.as_ref().unwrap().name,
        format!("{NAME}-metadata")
    );
    for v in pod(job).volumes.iter().flatten() {
        if let Some(s) = &v.secret {
            assert_eq!(s.default_mode, Some(0o440));
        }
    }
}

#[test]
fn s3_to_oci_with_plain_url_registry() {
    let d = build(base());
    let j = &d.job;
    common_checks(j);
    let e = env(j);
    let want = [
        ("MODEL_SYNC_SOURCE_TYPE", "s3"),
        ("MODEL_SYNC_SOURCE_AWS_BUCKET", "models"),
        ("MODEL_SYNC_SOURCE_AWS_KEY", "iris/v1"),
        (
            "MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH",
            job::SOURCE_CREDENTIALS_DIR,
        ),
        ("MODEL_SYNC_DESTINATION_TYPE", "oci"),
        ("MODEL_SYNC_DESTINATION_OCI_URI", "quay.io/org/iris:1"),
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
    ];
    for (k, v) in want {
        assert_eq!(e.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(!e.contains_key("MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR"));
    assert!(!e.contains_key("MODEL_SYNC_SOURCE_AWS_REGION"));
    let m = mounts(j);
    assert_eq!(
        m[job::SOURCE_CREDENTIALS_DIR],
        ("source-credentials".into(), true)
    );
    let src = volume(j, "source-credentials").secret.as_ref().unwrap();
    assert_eq!(src.secret_name.as_deref(), Some("s3-creds"));
    assert!(src.items.is_none(), "the whole data-connection Secret");
    let dst = volume(j, "destination-credentials")
        .secret
        .as_ref()
        .unwrap();
    assert_eq!(dst.secret_name.as_deref(), Some("push-creds"));
    assert_eq!(dst.items.as_ref().unwrap()[0].key, ".dockerconfigjson");
    assert!(!m.contains_key(job::REGISTRY_TOKEN_DIR));
    // Per-transfer ServiceAccount, no grant for a URL registry.
    assert_eq!(
        d.service_account.as_ref().unwrap().metadata.name.as_deref(),
        Some("iris-transfer-sync")
    );
    assert!(d.role_binding.is_none());
    assert_eq!(
        pod(j).service_account_name.as_deref(),
        Some("iris-transfer-sync")
    );
}

#[test]
fn oci_source_and_s3_destination_with_overrides() {
    let spec = with(
        with(
            base(),
            &["source"],
            json!({ "oci": { "uri": "oci://quay.io/org/base:1", "credentialsSecretRef": { "name": "pull" } } }),
        ),
        &["destination"],
        json!({ "s3": { "bucket": "out", "key": "m/", "region": "eu-west-1", "endpoint": "https://minio:9000", "credentialsSecretRef": { "name": "dst" } } }),
    );
    let d = build(spec);
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(e["MODEL_SYNC_SOURCE_TYPE"], "oci");
    assert_eq!(e["MODEL_SYNC_SOURCE_OCI_URI"], "oci://quay.io/org/base:1");
    assert_eq!(
        e["MODEL_SYNC_SOURCE_OCI_CREDENTIALS_PATH"],
        "/var/run/secrets/model-sync/source/.dockerconfigjson"
    );
    assert_eq!(e["MODEL_SYNC_DESTINATION_TYPE"], "s3");
    assert_eq!(e["MODEL_SYNC_DESTINATION_AWS_REGION"], "eu-west-1");
    assert_eq!(
        e["MODEL_SYNC_DESTINATION_AWS_ENDPOINT"],
        "https://minio:9000"
    );
    assert_eq!(
        e["MODEL_SYNC_DESTINATION_S3_CREDENTIALS_PATH"],
        job::DESTINATION_CREDENTIALS_DIR
    );
}

#[test]
fn uri_source_with_and_without_credentials() {
    let plain = build(with(
        base(),
        &["source"],
        json!({ "uri": { "url": "https://example.com/m.tar.gz" } }),
    ));
    let e = env(&plain.job);
    assert_eq!(e["MODEL_SYNC_SOURCE_URI"], "https://example.com/m.tar.gz");
    assert!(!e.contains_key("MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH"));
    let secret = build(with(
        base(),
        &["source"],
        json!({ "uri": { "url": "https://example.com/m.tar.gz", "credentialsSecretRef": { "name": "u" } } }),
    ));
    common_checks(&secret.job);
    let e = env(&secret.job);
    // The variable would override the Secret's URI file, so it is not set.
    assert!(!e.contains_key("MODEL_SYNC_SOURCE_URI"));
    assert_eq!(
        e["MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH"],
        job::SOURCE_CREDENTIALS_DIR
    );
    let v = volume(&secret.job, "source-credentials")
        .secret
        .as_ref()
        .unwrap();
    assert_eq!(v.items.as_ref().unwrap()[0].key, "URI");
}

#[test]
fn hugging_face_source_is_an_hf_uri_with_hub_variables_and_a_token_file() {
    let anonymous = build(with(
        base(),
        &["source"],
        json!({ "huggingFace": { "repo": "org/tiny" } }),
    ));
    common_checks(&anonymous.job);
    let e = env(&anonymous.job);
    assert_eq!(e["MODEL_SYNC_SOURCE_TYPE"], "uri");
    assert_eq!(e["MODEL_SYNC_SOURCE_URI"], "hf://org/tiny");
    for unset in ["HF_ENDPOINT", "HF_TOKEN", "HF_TOKEN_PATH"] {
        assert!(!e.contains_key(unset), "{unset}");
    }
    assert!(!mounts(&anonymous.job).contains_key(job::SOURCE_CREDENTIALS_DIR));

    let full = build(with(
        base(),
        &["source"],
        json!({ "huggingFace": { "repo": "org/tiny", "revision": "refs/pr/1",
                "endpoint": "https://hub.example.com/mirror",
                "tokenSecretRef": { "name": "hf", "key": "token" } } }),
    ));
    common_checks(&full.job);
    let e = env(&full.job);
    assert_eq!(e["MODEL_SYNC_SOURCE_URI"], "hf://org/tiny:refs/pr/1");
    assert_eq!(e["HF_ENDPOINT"], "https://hub.example.com/mirror");
    // The token is a mounted file named by HF_TOKEN_PATH: not a value, not a secretKeyRef.
    assert!(!e.contains_key("HF_TOKEN"));
    let path = &e["HF_TOKEN_PATH"];
    let (dir, file) = path.rsplit_once('/').unwrap();
    assert_eq!(dir, job::SOURCE_CREDENTIALS_DIR);
    assert_eq!(
        mounts(&full.job)[job::SOURCE_CREDENTIALS_DIR],
        ("source-credentials".into(), true)
    );
    let v = volume(&full.job, "source-credentials")
        .secret
        .as_ref()
        .unwrap();
    assert_eq!(v.secret_name.as_deref(), Some("hf"));
    let items = v.items.as_ref().unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("token", file)
    );
    let args = serde_json::to_string(&container(&full.job).args).unwrap();
    assert!(
        !args.contains("hf"),
        "nothing of the source in argv: {args}"
    );
}

#[test]
fn pvc_to_pvc_on_one_claim_mounts_it_twice() {
    let spec = with(
        with(
            base(),
            &["source"],
            json!({ "pvc": { "claimName": "models", "path": "/in/iris" } }),
        ),
        &["destination"],
        json!({ "pvc": { "claimName": "models", "path": "out" } }),
    );
    let d = build(spec);
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(e["MODEL_SYNC_SOURCE_PATH"], "/mnt/source/in/iris");
    assert_eq!(e["MODEL_SYNC_DESTINATION_PATH"], "/mnt/destination/out");
    let m = mounts(&d.job);
    assert_eq!(m[job::SOURCE_PVC_DIR], ("source-pvc".into(), true));
    assert_eq!(m[job::DESTINATION_PVC_DIR], ("source-pvc".into(), false));
    let claims: Vec<_> = pod(&d.job)
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.persistent_volume_claim.is_some())
        .collect();
    assert_eq!(claims.len(), 1);

    let escape = with(
        base(),
        &["source"],
        json!({ "pvc": { "claimName": "models", "path": "../other" } }),
    );
    let t = mt(escape);
    let settings = Settings::for_tests();
    let input = BuildInput {
        mt: &t,
        settings: &settings,
        registry: registry::wiring(&t.spec.registry, None, &Capabilities::vanilla()).unwrap(),
        service_account: service_account_name(&t),
    };
    let err = desired(&input, HASH).unwrap_err();
    assert_eq!(err.field, "spec.source.pvc.path");
}

#[test]
fn job_settings_and_defaults() {
    let d = build(base());
    let s = d.job.spec.as_ref().unwrap();
    // The default retries, as an `OnFailure` Job counts them (see `job::retries`).
    assert_eq!(s.backoff_limit, Some(job::DEFAULT_BACKOFF_LIMIT + 1));
    assert_eq!(s.active_deadline_seconds, None);
    assert_eq!(s.ttl_seconds_after_finished, None);
    assert_eq!(d.job.metadata.name.as_deref(), Some("iris-transfer-sync"));
    assert_eq!(
        d.job.metadata.annotations.as_ref().unwrap()
            [crate::modeltransfer::names::SPEC_HASH_ANNOTATION],
        HASH
    );
    assert_eq!(
        d.job.metadata.owner_references.as_ref().unwrap()[0].controller,
        Some(true)
    );
    let r = container(&d.job).resources.clone().unwrap();
    assert_eq!(r, job::default_resources());
    let scratch = volume(&d.job, "scratch").empty_dir.as_ref().unwrap();
    assert_eq!(
        scratch.size_limit.as_ref().unwrap().0,
        job::DEFAULT_SCRATCH_SIZE
    );
    assert_eq!(
        container(&d.job).image.as_deref(),
        Some(Settings::for_tests().images.model_sync.as_str())
    );

    let spec = with(
        base(),
        &["job"],
        json!({
            "backoffLimit": 0, "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 3600,
            "resources": { "limits": { "memory": "4Gi" } },
            "serviceAccountName": "mine", "nodeSelector": { "gpu": "no" },
            "tolerations": [{ "key": "k", "operator": "Exists" }], "scratchVolumeSize": "5Gi"
        }),
    );
    let d = build(spec);
    common_checks(&d.job);
    let s = d.job.spec.as_ref().unwrap();
    assert_eq!(s.backoff_limit, Some(0));
    assert_eq!(s.active_deadline_seconds, Some(600));
    assert_eq!(s.ttl_seconds_after_finished, Some(3600));
    let p = pod(&d.job);
    assert_eq!(p.service_account_name.as_deref(), Some("mine"));
    assert!(
        d.service_account.is_none(),
        "the user's account is not created"
    );
    assert_eq!(p.node_selector.as_ref().unwrap()["gpu"], "no");
    assert_eq!(p.tolerations.as_ref().unwrap()[0].key.as_deref(), Some("k"));
    let r = container(&d.job).resources.clone().unwrap();
    assert_eq!(r.limits.unwrap()["memory"].0, "4Gi");
    let scratch = volume(&d.job, "scratch").empty_dir.as_ref().unwrap();
    assert_eq!(scratch.size_limit.as_ref().unwrap().0, "5Gi");
}

#[test]
fn metadata_config_map_and_intent_ids() {
    let spec = json!({
        "source": { "s3": { "bucket": "b", "key": "k", "credentialsSecretRef": { "name": "s" } } },
        "destination": { "oci": { "uri": "quay.io/o/m:1" } },
        "registry": { "url": "http://r:8080" },
        "intent": "create_version",
        "model": {
            "registeredModel": { "id": "7", "name": "iris", "owner": "me",
                "customProperties": { "team": { "string": "ml" }, "rank": { "int": 3 } } },
            "modelVersion": { "name": "v2", "author": "ann", "description": "",
                "customProperties": { "acc": { "double": 2.0 }, "prod": { "bool": true } } },
            "modelArtifact": { "modelFormatName": "onnx", "modelFormatVersion": "1", "storageKey": "conn" }
        }
    });
    let d = build(spec);
    let data = d.config_map.data.clone().unwrap();
    assert_eq!(
        d.config_map.metadata.name.as_deref(),
        Some("iris-transfer-metadata")
    );
    assert_eq!(data["RegisteredModel.name"], "iris");
    assert_eq!(data["RegisteredModel.id"], "7");
    assert_eq!(data["RegisteredModel.owner"], "me");
    assert_eq!(data["ModelVersion.name"], "v2");
    assert_eq!(data["ModelVersion.author"], "ann");
    assert!(
        !data.contains_key("ModelVersion.description"),
        "empty values are left out"
    );
    assert_eq!(data["ModelArtifact.model_format_name"], "onnx");
    assert_eq!(data["ModelArtifact.storage_key"], "conn");
    assert_eq!(
        data["RegisteredModel.custom_properties"],
        r#"{"rank":3,"team":"ml"}"#
    );
    assert_eq!(
        data["ModelVersion.custom_properties"],
        r#"{"acc":2.0,"prod":true}"#
    );
    let e = env(&d.job);
    assert_eq!(e["MODEL_SYNC_MODEL_UPLOAD_INTENT"], "create_version");
    assert_eq!(e["MODEL_SYNC_MODEL_ID"], "7");
    assert!(!e.contains_key("MODEL_SYNC_MODEL_ARTIFACT_ID"));

    let upd = with(
        with(base(), &["intent"], json!("update_artifact")),
        &["model"],
        json!({ "modelArtifact": { "id": "12" }, "registeredModel": { "id": "1" } }),
    );
    let e = env(&build(upd).job);
    assert_eq!(e["MODEL_SYNC_MODEL_ARTIFACT_ID"], "12");
    assert!(!e.contains_key("MODEL_SYNC_MODEL_ID"));
}

/// Every `MODEL_SYNC_*` variable the Job sets is one model-sync reads (its settings table).
#[test]
fn every_variable_is_a_model_sync_setting() {
    const TABLE: &str = include_str!("../../../../../job-contract/src/settings.rs");
    let specs = [
        base(),
        with(
            base(),
            &["source"],
            json!({ "uri": { "url": "https://x/m" } }),
        ),
        with(
            base(),
            &["source"],
            json!({ "uri": { "url": "https://x/m", "credentialsSecretRef": { "name": "u" } } }),
        ),
        with(
            base(),
            &["source"],
            json!({ "oci": { "uri": "q/m:1", "credentialsSecretRef": { "name": "p" }, "insecure": true } }),
        ),
        with(
            base(),
            &["source"],
            json!({ "huggingFace": { "repo": "o/m", "revision": "v1", "endpoint": "https://h",
                    "tokenSecretRef": { "name": "h", "key": "t" } } }),
        ),
        with(base(), &["source"], json!({ "pvc": { "claimName": "c" } })),
        with(
            base(),
            &["destination"],
            json!({ "pvc": { "claimName": "c" } }),
        ),
        with(
            base(),
            &["destination"],
            json!({ "oci": { "uri": "q/m:1", "baseImage": "b", "insecure": true } }),
        ),
        with(
            base(),
            &["destination"],
            json!({ "s3": { "bucket": "b", "key": "k", "region": "r", "endpoint": "http://e", "credentialsSecretRef": { "name": "d" } } }),
        ),
        with(
            base(),
            &["registry"],
            json!({ "url": "https://r", "tokenSecretRef": { "name": "t", "key": "k" }, "caConfigMapRef": { "name": "c", "key": "k" } }),
        ),
        with(
            with(base(), &["intent"], json!("update_artifact")),
            &["model"],
            json!({ "modelArtifact": { "id": "3" }, "modelVersion": { "id": "2" } }),
        ),
    ];
    for spec in specs {
        for name in env(&build(spec).job)
            .keys()
            .filter(|n| n.starts_with("MODEL_SYNC_"))
        {
            assert!(
                TABLE.contains(&format!("\"{name}\"")),
                "{name} is not a model-sync setting"
            );
        }
    }
}

/// Every metadata key the ConfigMap carries is one model-sync's metadata reader knows.
#[test]
fn every_metadata_key_is_read_by_model_sync() {
    const READER: &str = include_str!("../../../../../model-sync/src/config/metadata.rs");
    let spec = json!({
        "source": { "s3": { "bucket": "b", "key": "k", "credentialsSecretRef": { "name": "s" } } },
        "destination": { "oci": { "uri": "q/m:1" } },
        "registry": { "url": "http://r" },
        "intent": "create_version",
        "model": {
            "registeredModel": { "id": "1", "name": "n", "description": "d", "owner": "o",
                "customProperties": { "a": { "int": 1 } } },
            "modelVersion": { "name": "v", "description": "d", "author": "a",
                "customProperties": { "a": { "bool": true } } },
            "modelArtifact": { "name": "n", "description": "d", "modelFormatName": "f",
                "modelFormatVersion": "1", "storageKey": "k", "storagePath": "p",
                "serviceAccountName": "s", "modelSourceKind": "k", "modelSourceClass": "c",
                "modelSourceGroup": "g", "modelSourceId": "i", "modelSourceName": "n",
                "customProperties": { "a": { "string": "x" } } }
        }
    });
    let data = build(spec).config_map.data.unwrap();
    assert_eq!(data.len(), 22);
    for key in data.keys() {
        let (section, field) = key.split_once('.').unwrap();
        let known = if field == "custom_properties" {
            READER.contains(&format!("\"{section}\" =>"))
        } else {
            READER.contains(&format!("(\"{section}\", \"{field}\")"))
        };
        assert!(known, "metadata key {key} is not read by model-sync");
    }
}

/// With retries, a failed run restarts in its pod and an OCI push resumes from a journal on the
/// scratch volume; the Job's limit counts restarts, so it is one more than the spec's retries.
/// Without retries the pod runs once and is kept; S3 and PVC destinations keep no journal.
#[test]
fn retries_restart_in_place_and_oci_destinations_resume_from_the_scratch_volume() {
    let key = mro_job_contract::Key::ResumeJournal.env();
    for (retries, dest, policy, limit, journal) in [
        (
            None,
            "oci",
            "OnFailure",
            job::DEFAULT_BACKOFF_LIMIT + 1,
            true,
        ),
        (Some(5), "oci", "OnFailure", 6, true),
        (Some(0), "oci", "Never", 0, false),
        (Some(1), "s3", "OnFailure", 2, false),
        (Some(0), "s3", "Never", 0, false),
        (Some(3), "pvc", "OnFailure", 4, false),
    ] {
        let mut spec = base();
        match dest {
            "s3" => {
                spec["destination"] = json!({ "s3": { "bucket": "out", "key": "iris/",
                    "credentialsSecretRef": { "name": "dst-creds" } } })
            }
            "pvc" => spec["destination"] = json!({ "pvc": { "claimName": "models" } }),
            _ => {}
        }
        if let Some(r) = retries {
            spec["job"] = json!({ "backoffLimit": r });
        }
        let d = build(spec);
        common_checks(&d.job);
        let case = format!("{retries:?} retries to {dest}");
        assert_eq!(
            pod(&d.job).restart_policy.as_deref(),
            Some(policy),
            "{case}"
        );
        assert_eq!(
            d.job.spec.as_ref().unwrap().backoff_limit,
            Some(limit),
            "{case}"
        );
        let e = env(&d.job);
        assert_eq!(
            e.get(key).map(String::as_str),
            journal.then_some(job::RESUME_JOURNAL),
            "{case}"
        );
        if journal {
            // On the scratch emptyDir, which a restart in the same pod keeps.
            assert!(job::RESUME_JOURNAL.starts_with(&format!("{}/", job::SCRATCH_DIR)));
            assert!(!job::RESUME_JOURNAL.starts_with(job::STORAGE_PATH));
            assert_eq!(
                mounts(&d.job)[job::SCRATCH_DIR],
                ("scratch".to_string(), false)
            );
        }
    }
}
