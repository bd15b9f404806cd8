//! ModelTransfer end to end: the operator (in-process, shipped RBAC) creates the Job, the real Job
//! controller creates the pod, and the real node's kubelet runs it from our model-sync image
//! ([`runner`]; with `MRO_NODE=0` the test node agent runs the `model-sync` binary in its place),
//! against real S3, OCI, HTTP and Model Registry (stand-in) servers on the host's loopback, which
//! pods reach at the node's host address.
//!
//! Here the registry is addressed with `spec.registry.url`; [`model_registry_ref`] covers
//! `modelRegistryRef` (a ModelRegistry behind kube-rbac-proxy, reached by its Service's DNS name),
//! [`signing`] covers `spec.signing` (key Secret, and keyless with a projected token),
//! [`hugging_face`] `spec.source.huggingFace` (a gated repository on the Hub stand-in).
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams};
use mro_api::ModelTransfer;
use mro_api::model_transfer::TransferPhase;
use mro_tests::model_registry::{Fault, ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{self, Model, pull_image, push_base_image};
use mro_tests::oci_registry::OciRegistry;
use mro_tests::s3::S3Server;
use mro_tests::wait::eventually_within;
use registry_client::{ArtifactState, BearerToken, Client, ClientConfig};
use serde_json::{Value, json};

use crate::modeltransfer_controller::{Env, condition};

mod hugging_face;
mod model_registry_ref;
mod runner;
mod signing;

use runner::PodRunner;

const TOKEN: &str = "e2e-registry-token";
/// Transfers take seconds; on a loaded machine a pod's start (image unpacking, volumes, the
/// projected token) and the first cold debug binary take longer.
const DONE: Duration = Duration::from_secs(300);

struct E2e {
    env: Env,
    pods: PodRunner,
    s3: S3Server,
    oci: OciRegistry,
    mr: ModelRegistryStandIn,
    base_image: String,
}

impl E2e {
    async fn new(prefix: &str) -> E2e {
        let (env, pods) = PodRunner::env(prefix).await;
        let s3 = S3Server::start().await.unwrap();
        let oci = OciRegistry::start_plain().await.unwrap();
        let mr = ModelRegistryStandIn::start(StandInOptions::default().with_token(TOKEN))
            .await
            .unwrap();
        let base_image = push_base_image(&oci).await.unwrap();
        env.secret(
            "s3-creds",
            None,
            json!({ "AWS_ACCESS_KEY_ID": s3.access_key(), "AWS_SECRET_ACCESS_KEY": s3.secret_key(),
                    "AWS_DEFAULT_REGION": s3.region(), "AWS_S3_ENDPOINT": pods.for_pods(&s3.endpoint()) }),
        )
        .await;
        env.plain_http_token_secret("mr-token", TOKEN).await;
        E2e {
            env,
            pods,
            s3,
            oci,
            mr,
            base_image,
        }
    }

    fn registry(&self) -> Value {
        json!({ "url": self.for_pods(&self.mr.base_url()),
                "tokenSecretRef": { "name": "mr-token", "key": "token" } })
    }

    fn oci_destination(&self, repo: &str, tag: &str) -> Value {
        json!({ "oci": { "uri": self.for_pods(&self.oci.reference(repo, tag)), "insecure": true,
                         "baseImage": self.for_pods(&self.base_image) } })
    }

    /// A host test server's URL as the Job's pod dials it.
    fn for_pods(&self, url: &str) -> String {
        self.pods.for_pods(url)
    }

    /// The OCI registry's host as pods (and so image references in statuses) name it.
    fn oci_host(&self) -> String {
        self.for_pods(self.oci.host())
    }

    /// `oci://<pod address>/...` of a status as the test pulls it (from loopback).
    fn pull_ref(&self, uri: &str) -> String {
        self.pods.on_host(uri.trim_start_matches("oci://"))
    }

    /// The Job pods' states and logs, for failure messages.
    async fn describe(&self) -> String {
        self.pods.describe(&self.env).await
    }

    fn client(&self) -> Client {
        Client::new(
            ClientConfig::new(&self.mr.base_url())
                .unwrap()
                .with_token(BearerToken::new(TOKEN)),
        )
        .unwrap()
    }

    /// Model, version and a PENDING artifact, as the UI creates them before update_artifact.
    async fn seed(&self, name: &str) -> (String, String, String) {
        let c = self.client();
        let m = c
            .create_registered_model(&registry_client::RegisteredModelCreate {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let v = c
            .create_model_version(&registry_client::ModelVersionCreate {
                name: "v1".into(),
                registered_model_id: m.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let a = c
            .create_model_version_artifact(
                &v.id,
                &registry_client::ModelArtifactCreate {
                    name: Some(format!("{name}-artifact")),
                    fields: registry_client::ModelArtifactFields {
                        state: Some(ArtifactState::Pending),
                        uri: Some("placeholder://not-yet".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (m.id, v.id, a.id)
    }

    /// Waits for a final phase; panics with the pod logs when it is not `want`.
    async fn finish(&self, name: &str, want: TransferPhase) -> ModelTransfer {
        let api = self.env.api::<ModelTransfer>();
        let deadline = Instant::now() + DONE;
        loop {
            let t = api.get(name).await.unwrap();
            let st = t.status.clone().unwrap_or_default();
            let done = matches!(
                st.phase,
                Some(TransferPhase::Succeeded | TransferPhase::Failed)
            );
            let registered = condition(&st, "Registered").is_some();
            if done && (st.phase != Some(TransferPhase::Succeeded) || registered) {
                assert_eq!(
                    st.phase,
                    Some(want),
                    "{name}: {st:#?}\n{}",
                    self.describe().await
                );
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: not finished after {DONE:?}: {st:#?}\n{}",
                self.describe().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn create(&self, name: &str, spec: Value) {
        self.env.create(name, spec).await;
    }
}

fn artifact(mr: &ModelRegistryStandIn, id: &str) -> Value {
    mr.artifacts()
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("artifact {id} in {:?}", mr.artifacts()))
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_to_oci_create_model_registers_a_pinned_image() {
    let w = E2e::new("e2e-s3-oci").await;
    let model = Model::small(11);
    model.put_s3(&w.s3, "models", "iris/v1").await.unwrap();
    w.create(
        "iris",
        json!({
            "source": { "s3": { "bucket": "models", "key": "iris/v1/", "credentialsSecretRef": { "name": "s3-creds" } } },
            "destination": w.oci_destination("models/iris", "v1"),
            "registry": w.registry(),
            "intent": "create_model",
            "model": {
                "registeredModel": { "name": "iris", "description": "e2e" },
                "modelVersion": { "name": "v1", "author": "ci" },
                "modelArtifact": { "modelFormatName": "onnx", "modelFormatVersion": "1" }
            },
            "job": { "backoffLimit": 0 }
        }),
    )
    .await;
    let t = w.finish("iris", TransferPhase::Succeeded).await;
    let st = t.status.unwrap();
    assert_eq!(
        condition(&st, "Registered").map(|c| c.0),
        Some("True".into()),
        "{st:#?}"
    );
    let (rm, mv, ma) = (
        st.registered_model_id.clone().expect("registeredModelId"),
        st.model_version_id.clone().expect("modelVersionId"),
        st.model_artifact_id.clone().expect("modelArtifactId"),
    );
    let uri = st.artifact_uri.clone().expect("artifactUri");
    let pinned = uri.trim_start_matches("oci://");
    assert!(
        pinned.starts_with(&format!("{}/models/iris", w.oci_host())) && pinned.contains("@sha256:"),
        "{uri}"
    );
    // The registry holds what the status says.
    let models = w.mr.registered_models();
    assert!(
        models
            .iter()
            .any(|m| m["id"] == rm.as_str() && m["name"] == "iris"),
        "{models:?}"
    );
    let versions = w.mr.model_versions();
    assert!(
        versions
            .iter()
            .any(|v| v["id"] == mv.as_str() && v["registeredModelId"] == rm.as_str()),
        "{versions:?}"
    );
    let a = artifact(&w.mr, &ma);
    assert_eq!(a["state"], "LIVE");
    assert_eq!(a["uri"], uri.as_str());
    // The image has the model's files.
    let image = pull_image(&w.oci, &w.pull_ref(&uri)).await.unwrap();
    assert_eq!(image.models, model);
    // The Job's pod really ran (once) and succeeded.
    let runs = w.pods.runs(&w.env).await;
    assert_eq!(runs.len(), 1, "{}", w.describe().await);
    assert_eq!(runs[0].exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn uri_to_oci_update_artifact_goes_live() {
    let w = E2e::new("e2e-uri-oci").await;
    let (_, mv, ma) = w.seed("bert").await;
    let model = Model::small(12);
    let http = mro_tests::http_files::HttpFileServer::start()
        .await
        .unwrap();
    http.write_file("bert.tar", model.tar().unwrap()).unwrap();
    w.create(
        "bert",
        json!({
            "source": { "uri": { "url": w.for_pods(&http.url_for("bert.tar")) } },
            "destination": w.oci_destination("models/bert", "v1"),
            "registry": w.registry(),
            "intent": "update_artifact",
            "model": { "modelVersion": { "id": mv }, "modelArtifact": { "id": ma } },
            "job": { "backoffLimit": 0 }
        }),
    )
    .await;
    let st = w
        .finish("bert", TransferPhase::Succeeded)
        .await
        .status
        .unwrap();
    assert_eq!(
        condition(&st, "Registered").map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(st.model_artifact_id.as_deref(), Some(ma.as_str()));
    let uri = st.artifact_uri.clone().expect("artifactUri");
    assert!(uri.contains("@sha256:"), "{uri}");
    let a = artifact(&w.mr, &ma);
    assert_eq!(a["state"], "LIVE", "{a}");
    assert_eq!(a["uri"], uri.as_str());
    let image = pull_image(&w.oci, &w.pull_ref(&uri)).await.unwrap();
    assert_eq!(image.models, model);
}

/// The source registry speaks plain HTTP: `spec.source.oci.insecure` makes the Job allow it.
#[tokio::test(flavor = "multi_thread")]
async fn oci_to_s3_create_version() {
    let w = E2e::new("e2e-oci-s3").await;
    // The source image, made by model-sync itself (PVC → OCI, update_artifact).
    let model = Model::small(13);
    let (_, _, seed_artifact) = w.seed("seed").await;
    let mut seed = model_sync::SyncJob::new().unwrap();
    let dir = seed.dir().join("seed");
    model.write_dir(&dir).unwrap();
    seed.registry(&w.mr.base_url(), Some(TOKEN))
        .pvc_source(&dir)
        .env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "update_artifact")
        .env("MODEL_SYNC_MODEL_ARTIFACT_ID", seed_artifact)
        .env(
            "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
            w.base_image.clone(),
        )
        .oci_destination(&w.oci, "seed/gpt", "v1")
        .unwrap();
    let out = seed.run().await.unwrap();
    out.expect_exit(0);
    let source = out.json()["uri"].as_str().unwrap().to_owned();

    let (rm, _, _) = w.seed("gpt").await;
    w.s3.create_bucket("out").await.unwrap();
    w.create(
        "gpt",
        json!({
            "source": { "oci": { "uri": w.for_pods(&source), "insecure": true } },
            "destination": { "s3": { "bucket": "out", "key": "gpt/v2/", "credentialsSecretRef": { "name": "s3-creds" } } },
            "registry": w.registry(),
            "intent": "create_version",
            "model": {
                "registeredModel": { "id": rm },
                "modelVersion": { "name": "v2" },
                "modelArtifact": { "modelFormatName": "onnx" }
            },
            "job": { "backoffLimit": 0 }
        }),
    )
    .await;
    let st = w
        .finish("gpt", TransferPhase::Succeeded)
        .await
        .status
        .unwrap();
    assert_eq!(
        condition(&st, "Registered").map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(st.registered_model_id.as_deref(), Some(rm.as_str()));
    let mv = st.model_version_id.clone().expect("modelVersionId");
    let versions = w.mr.model_versions();
    assert!(
        versions.iter().any(|v| v["id"] == mv.as_str()
            && v["name"] == "v2"
            && v["registeredModelId"] == rm.as_str()),
        "{versions:?}"
    );
    let a = artifact(&w.mr, st.model_artifact_id.as_deref().unwrap());
    assert_eq!(a["state"], "LIVE");
    assert!(
        a["uri"]
            .as_str()
            .unwrap_or_default()
            .starts_with("s3://out/gpt/v2"),
        "{a}"
    );
    assert_eq!(Model::read_s3(&w.s3, "out", "gpt/v2").await.unwrap(), model);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_s3_credentials_fail_with_source_unavailable_and_release_the_artifact() {
    let w = E2e::new("e2e-fail").await;
    let (_, mv, ma) = w.seed("broken").await;
    Model::small(14)
        .put_s3(&w.s3, "models", "broken/v1")
        .await
        .unwrap();
    w.env
        .secret(
            "bad-creds",
            None,
            json!({ "AWS_ACCESS_KEY_ID": "MROTESTWRONGKEY", "AWS_SECRET_ACCESS_KEY": "wrong-secret",
                    "AWS_DEFAULT_REGION": w.s3.region(), "AWS_S3_ENDPOINT": w.for_pods(&w.s3.endpoint()) }),
        )
        .await;
    w.create(
        "broken",
        json!({
            "source": { "s3": { "bucket": "models", "key": "broken/v1/", "credentialsSecretRef": { "name": "bad-creds" } } },
            "destination": w.oci_destination("models/broken", "v1"),
            "registry": w.registry(),
            "intent": "update_artifact",
            "model": { "modelVersion": { "id": mv }, "modelArtifact": { "id": ma } },
            "job": { "backoffLimit": 0 }
        }),
    )
    .await;
    let st = w
        .finish("broken", TransferPhase::Failed)
        .await
        .status
        .unwrap();
    assert_eq!(
        condition(&st, "Failed"),
        Some(("True".into(), "SourceUnavailable".into())),
        "{st:#?}\n{}",
        w.describe().await
    );
    let a = artifact(&w.mr, &ma);
    assert_ne!(a["state"], "PENDING", "{a}");
    assert_ne!(a["state"], "LIVE", "{a}");
    assert_eq!(a["uri"], "placeholder://not-yet", "{a}");
    let runs = w.pods.runs(&w.env).await;
    assert_eq!(
        runs.len(),
        1,
        "backoffLimit 0: one attempt\n{}",
        w.describe().await
    );
    assert_eq!(runs[0].exit_code, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_running_transfer_kills_it_and_leaves_nothing() {
    let w = E2e::new("e2e-delete").await;
    let (_, mv, ma) = w.seed("slow").await;
    Model::small(15)
        .put_s3(&w.s3, "models", "slow/v1")
        .await
        .unwrap();
    // model-sync's first registry call (reading the artifact) hangs: the transfer keeps running.
    w.mr.inject(
        Fault::delay(format!("/model_artifacts/{ma}"), Duration::from_secs(300)).times(100),
    );
    w.create(
        "slow",
        json!({
            "source": { "s3": { "bucket": "models", "key": "slow/v1/", "credentialsSecretRef": { "name": "s3-creds" } } },
            "destination": w.oci_destination("models/slow", "v1"),
            "registry": w.registry(),
            "intent": "update_artifact",
            "model": { "modelVersion": { "id": mv }, "modelArtifact": { "id": ma } },
            "job": { "backoffLimit": 0 }
        }),
    )
    .await;
    let env = &w.env;
    eventually_within("the transfer to be Running", DONE, || async {
        env.transfer("slow")
            .await
            .status
            .is_some_and(|s| s.phase == Some(TransferPhase::Running))
    })
    .await;
    // Running for real: the process is waiting on the registry.
    let process = w.pods.running_process(env, DONE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = w.pods.runs(env).await;
    assert_eq!(runs.len(), 1, "{}", w.describe().await);
    assert_eq!(runs[0].exit_code, None, "{}", w.describe().await);

    env.api::<ModelTransfer>()
        .delete("slow", &DeleteParams::default())
        .await
        .unwrap();
    let lp = ListParams::default().labels("modelregistry.opendatahub.io/parent-name=slow");
    eventually_within("everything of the transfer to be gone", DONE, || async {
        env.api::<ModelTransfer>()
            .get_opt("slow")
            .await
            .unwrap()
            .is_none()
            && env.api::<Job>().list(&lp).await.unwrap().items.is_empty()
            && env
                .api::<Pod>()
                .list(&ListParams::default().labels("job-name=slow-sync"))
                .await
                .unwrap()
                .items
                .is_empty()
            && env
                .api::<ConfigMap>()
                .list(&lp)
                .await
                .unwrap()
                .items
                .is_empty()
            && env
                .api::<ServiceAccount>()
                .list(&lp)
                .await
                .unwrap()
                .items
                .is_empty()
            && env
                .api::<RoleBinding>()
                .list(&lp)
                .await
                .unwrap()
                .items
                .is_empty()
    })
    .await;
    w.pods.assert_killed(process, DONE).await;
}
