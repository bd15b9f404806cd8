//! ModelTransfer on the real node: the operator (in-process, shipped RBAC) creates the Job with our
//! model-sync image, the real Job controller and kube-scheduler place its pod, and the kubelet runs
//! it under the restricted security context (image user 65532, read-only root filesystem, scratch
//! `emptyDir` at /tmp) against the host's S3, OCI and Model Registry servers. The operator's status
//! comes from the container's termination message as the kubelet reports it.
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use mro_api::ModelTransfer;
use mro_api::model_transfer::TransferPhase;
use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{Model, pull_image, push_base_image};
use mro_tests::node::Images;
use mro_tests::node::pods::terminated;
use mro_tests::oci_registry::OciRegistry;
use mro_tests::operator::{self, OperatorHandle};
use mro_tests::s3::S3Server;
use serde_json::{Value, json};

use super::NodeNs;

const TOKEN: &str = "node-registry-token";
const DONE: Duration = Duration::from_secs(180);

pub(super) struct World {
    pub(super) t: NodeNs,
    pub(super) s3: S3Server,
    pub(super) oci: OciRegistry,
    pub(super) mr: ModelRegistryStandIn,
    pub(super) base_image: String,
    /// The in-process operator; `None` when the operator runs as a pod on the node
    /// (`super::operator`).
    _operator: Option<OperatorHandle>,
}

impl World {
    /// A namespace on the node, the host's test servers, and the operator in-process.
    pub(super) async fn new(prefix: &str) -> World {
        World::with_sync_image(prefix, |images| images.model_sync.clone()).await
    }

    /// As [`World::new`], the operator's Jobs running the image `image` picks.
    async fn with_sync_image(prefix: &str, image: impl Fn(&Images) -> String) -> World {
        let t = NodeNs::new(prefix).await;
        let mut settings = operator::test_settings(&t.ns);
        settings.images.model_sync = image(&t.node.images);
        let op = operator::builder(&t.node.cluster, settings).start().await;
        World::with(t, Some(op)).await
    }

    /// The test servers and Secrets in `t`'s namespace; the operator is the caller's (`op`, or a
    /// pod on the node when `None`).
    pub(super) async fn with(t: NodeNs, op: Option<OperatorHandle>) -> World {
        let s3 = S3Server::start().await.unwrap();
        let oci = OciRegistry::start_plain().await.unwrap();
        let mr = ModelRegistryStandIn::start(StandInOptions::default().with_token(TOKEN))
            .await
            .unwrap();
        let base_image = push_base_image(&oci).await.unwrap();
        let w = World {
            t,
            s3,
            oci,
            mr,
            base_image,
            _operator: op,
        };
        w.secret("s3-creds", w.s3.access_key(), w.s3.secret_key())
            .await;
        w.token_secret("mr-token", TOKEN).await;
        w
    }

    async fn secret(&self, name: &str, key: &str, secret: &str) {
        let env = &self.t.node.env;
        self.plain_secret(
            name,
            json!({ "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
                    "AWS_DEFAULT_REGION": self.s3.region(), "AWS_S3_ENDPOINT": env.for_pods(&self.s3.endpoint()) }),
        )
        .await;
    }

    /// The registry token: the test registry listens on plain HTTP, which a token Secret may
    /// reach only with its owner's opt-in annotation.
    async fn token_secret(&self, name: &str, token: &str) {
        let s: Secret = serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": {
                "modelregistry.opendatahub.io/allow-plain-http": "true" } },
            "stringData": { "token": token } }))
        .unwrap();
        Api::<Secret>::namespaced(self.t.client.clone(), &self.t.ns)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }

    async fn plain_secret(&self, name: &str, data: Value) {
        let s: Secret =
            serde_json::from_value(json!({ "metadata": { "name": name }, "stringData": data }))
                .unwrap();
        Api::<Secret>::namespaced(self.t.client.clone(), &self.t.ns)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }

    pub(super) fn spec(&self, name: &str, secret: &str) -> Value {
        let env = &self.t.node.env;
        json!({
            "source": { "s3": { "bucket": "models", "key": format!("{name}/v1/"), "credentialsSecretRef": { "name": secret } } },
            "destination": { "oci": { "uri": env.for_pods(&self.oci.reference(&format!("models/{name}"), "v1")),
                                      "insecure": true, "baseImage": env.for_pods(&self.base_image) } },
            "registry": { "url": env.for_pods(&self.mr.base_url()), "tokenSecretRef": { "name": "mr-token", "key": "token" } },
            "intent": "create_model",
            "model": {
                "registeredModel": { "name": name },
                "modelVersion": { "name": "v1" },
                "modelArtifact": { "modelFormatName": "onnx", "modelFormatVersion": "1" }
            },
            "job": { "backoffLimit": 0 }
        })
    }

    pub(super) async fn create(&self, name: &str, spec: Value) {
        let mt: ModelTransfer = serde_json::from_value(json!({
            "apiVersion": "modelregistry.opendatahub.io/v1alpha1", "kind": "ModelTransfer",
            "metadata": { "name": name }, "spec": spec }))
        .unwrap();
        Api::<ModelTransfer>::namespaced(self.t.client.clone(), &self.t.ns)
            .create(&PostParams::default(), &mt)
            .await
            .unwrap();
    }

    pub(super) async fn finish(&self, name: &str) -> ModelTransfer {
        let api = Api::<ModelTransfer>::namespaced(self.t.client.clone(), &self.t.ns);
        let deadline = Instant::now() + DONE;
        loop {
            let t = api.get(name).await.unwrap();
            let st = t.status.clone().unwrap_or_default();
            if matches!(
                st.phase,
                Some(TransferPhase::Succeeded | TransferPhase::Failed)
            ) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: not finished after {DONE:?}: {st:#?}\n{}",
                self.t.node.describe()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub(super) async fn pod(&self) -> Pod {
        let pods = Api::<Pod>::namespaced(self.t.client.clone(), &self.t.ns)
            .list(&ListParams::default().labels("job-name"))
            .await
            .unwrap()
            .items;
        assert_eq!(pods.len(), 1, "backoffLimit 0: one Job pod: {pods:#?}");
        pods.into_iter().next().unwrap()
    }
}

pub(super) fn condition(t: &ModelTransfer, type_: &str) -> Option<(String, String)> {
    let st = t.status.as_ref()?;
    let v = serde_json::to_value(st).ok()?;
    v["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
}

/// The pod ran our image on the node under the restricted profile, as the kubelet reports it.
pub(super) fn assert_restricted_pod_of_our_image(w: &World, pod: &Pod) {
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some(w.t.node.env.node_name.as_str())
    );
    let c = &spec.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(w.t.node.images.model_sync.as_str())
    );
    let sc = c.security_context.clone().unwrap_or_default();
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{sc:?}");
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{sc:?}");
    let psc = spec.security_context.clone().unwrap_or_default();
    assert!(
        sc.run_as_non_root == Some(true) || psc.run_as_non_root == Some(true),
        "{sc:?} {psc:?}"
    );
    let status = pod.status.as_ref().unwrap();
    let cs = &status.container_statuses.as_ref().unwrap()[0];
    assert!(
        cs.image_id.starts_with("sha256:") || cs.image_id.contains("@sha256:"),
        "a containerd image: {cs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_to_oci_transfer_runs_in_a_real_pod_of_the_model_sync_image() {
    if mro_tests::node::skip_when_switched_off(
        "an_s3_to_oci_transfer_runs_in_a_real_pod_of_the_model_sync_image",
    ) {
        return;
    }
    let w = World::new("node-transfer").await;
    let model = Model::small(31);
    model.put_s3(&w.s3, "models", "iris/v1").await.unwrap();
    w.create("iris", w.spec("iris", "s3-creds")).await;
    let t = w.finish("iris").await;
    let pod = w.pod().await;
    let term = terminated(&pod).unwrap_or_default();
    let st = t.status.clone().unwrap();
    assert_eq!(
        st.phase,
        Some(TransferPhase::Succeeded),
        "{st:#?}\npod: {:#?}\n{}",
        pod.status,
        w.t.node.describe()
    );
    assert_restricted_pod_of_our_image(&w, &pod);
    assert_eq!(term.exit_code, 0);
    // The kubelet read model-sync's result from the termination-message file; the operator's
    // status carries what it says.
    let message = term.message.clone().unwrap_or_default();
    let uri = st.artifact_uri.clone().expect("artifactUri");
    let digest = uri.rsplit('@').next().unwrap();
    assert!(
        message.contains(digest),
        "termination message {message:?} vs {uri}"
    );
    assert_eq!(
        condition(&t, "Registered").map(|c| c.0),
        Some("True".into()),
        "{st:#?}\nmessage: {message}"
    );
    // The image in the registry has the model's files (pulled from the host side).
    let pinned = uri
        .trim_start_matches("oci://")
        .replace(&w.t.node.env.host_ip.to_string(), "127.0.0.1");
    let image = pull_image(&w.oci, &pinned).await.unwrap();
    assert_eq!(image.models, model);
    let models = w.mr.registered_models();
    assert!(models.iter().any(|m| m["name"] == "iris"), "{models:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_transfer_pod_reports_through_its_termination_message() {
    if mro_tests::node::skip_when_switched_off(
        "a_failing_transfer_pod_reports_through_its_termination_message",
    ) {
        return;
    }
    let w = World::new("node-transfer-fail").await;
    Model::small(32)
        .put_s3(&w.s3, "models", "broken/v1")
        .await
        .unwrap();
    w.secret("bad-creds", "MROTESTWRONGKEY", "wrong-secret")
        .await;
    w.create("broken", w.spec("broken", "bad-creds")).await;
    let t = w.finish("broken").await;
    let pod = w.pod().await;
    let term = terminated(&pod).unwrap_or_default();
    assert_eq!(
        t.status.as_ref().and_then(|s| s.phase),
        Some(TransferPhase::Failed),
        "{:#?}",
        t.status
    );
    assert_restricted_pod_of_our_image(&w, &pod);
    assert_eq!(term.exit_code, 1, "{term:?}");
    let message = term.message.clone().unwrap_or_default();
    assert!(message.contains("SourceUnavailable"), "{message}");
    assert!(
        !message.contains("wrong-secret"),
        "no secret in the message: {message}"
    );
    assert_eq!(
        condition(&t, "Failed"),
        Some(("True".into(), "SourceUnavailable".into())),
        "{:#?}",
        t.status
    );
}

/// The operator's Job pins the user (`runAsUser` 65532 beside `runAsNonRoot`), so even an image
/// whose user is root runs, as that user: the kubelet refuses `runAsNonRoot` for an effective uid
/// 0 (`node::pods::an_image_running_as_root_is_refused_under_run_as_non_root` shows the refusal
/// for a pod without `runAsUser`), so a transfer that succeeds from the root image proves the
/// container did not run as root.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_of_an_image_whose_user_is_root_runs_as_the_pinned_non_root_user() {
    if mro_tests::node::skip_when_switched_off(
        "a_job_of_an_image_whose_user_is_root_runs_as_the_pinned_non_root_user",
    ) {
        return;
    }
    let w = World::with_sync_image("node-transfer-root", |i| i.model_sync_root.clone()).await;
    let model = Model::small(33);
    model.put_s3(&w.s3, "models", "rooted/v1").await.unwrap();
    w.create("rooted", w.spec("rooted", "s3-creds")).await;
    let t = w.finish("rooted").await;
    let pod = w.pod().await;
    let st = t.status.clone().unwrap();
    assert_eq!(
        st.phase,
        Some(TransferPhase::Succeeded),
        "{st:#?}\npod: {:#?}\n{}",
        pod.status,
        w.t.node.describe()
    );
    let spec = pod.spec.as_ref().unwrap();
    let c = &spec.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(w.t.node.images.model_sync_root.as_str())
    );
    let (sc, psc) = (
        c.security_context.clone().unwrap_or_default(),
        spec.security_context.clone().unwrap_or_default(),
    );
    assert!(
        sc.run_as_non_root == Some(true) || psc.run_as_non_root == Some(true),
        "{sc:?} {psc:?}"
    );
    let user = sc.run_as_user.or(psc.run_as_user);
    assert!(
        user.is_some_and(|u| u != 0),
        "a pinned non-root user: {sc:?} {psc:?}"
    );
    assert_eq!(terminated(&pod).map(|s| s.exit_code), Some(0));
    let uri = st.artifact_uri.clone().expect("artifactUri");
    let pinned = uri
        .trim_start_matches("oci://")
        .replace(&w.t.node.env.host_ip.to_string(), "127.0.0.1");
    assert_eq!(pull_image(&w.oci, &pinned).await.unwrap().models, model);
}
