//! The ModelTransfer controller on the real local control plane, running in-process under the
//! shipped RBAC (`config/rbac`). No kubelet runs: tests play its part by writing the transfer
//! pod's status, including the container's termination message (the only contract between the
//! controller and model-sync); the real Job controller then completes or fails the Job, and the
//! real garbage collector follows owner references.
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mro_api::{ModelTransfer, ModelTransferStatus};
use mro_tests::cluster::{self, Cluster, Flavour};
use mro_tests::operator::{self, OperatorHandle};
use mro_tests::wait::eventually_within;
use serde_json::{Value, json};

mod job_spec;
mod lifecycle;
mod outcome;
mod retries;
mod validation;

/// Deadline of every wait: controllers, watches and the Job controller converge in seconds.
pub const WAIT: Duration = Duration::from_secs(120);

/// A test namespace on the shared vanilla control plane with an operator watching only it.
pub struct Env {
    pub cluster: &'static Cluster,
    pub ns: String,
    pub client: Client,
    _operator: Option<OperatorHandle>,
}

impl Env {
    pub async fn new(prefix: &str) -> Env {
        let mut env = Env::without_operator(prefix).await;
        env._operator = Some(
            operator::builder(env.cluster, operator::test_settings(&env.ns))
                .start()
                .await,
        );
        env
    }

    /// Another (existing) namespace `ns` on the same control plane, with an operator of its own
    /// watching only it.
    pub async fn in_namespace(&self, ns: &str) -> Env {
        Env {
            cluster: self.cluster,
            ns: ns.to_string(),
            client: self.client.clone(),
            _operator: Some(
                operator::builder(self.cluster, operator::test_settings(ns))
                    .start()
                    .await,
            ),
        }
    }

    /// A test namespace without an operator (the test runs one itself, e.g. as a process).
    pub async fn without_operator(prefix: &str) -> Env {
        Env::without_operator_on(cluster::shared(Flavour::Vanilla).await, prefix).await
    }

    /// A test namespace on `cluster` (e.g. the real node's control plane) with an operator
    /// watching only it, its settings adjusted by `adjust` (e.g. the Jobs' image).
    pub async fn on(
        cluster: &'static Cluster,
        prefix: &str,
        adjust: impl FnOnce(&mut model_registry_operator::settings::Settings),
    ) -> Env {
        let mut env = Env::without_operator_on(cluster, prefix).await;
        let mut settings = operator::test_settings(&env.ns);
        adjust(&mut settings);
        env._operator = Some(operator::builder(env.cluster, settings).start().await);
        env
    }

    /// A test namespace on `cluster` without an operator.
    pub async fn without_operator_on(cluster: &'static Cluster, prefix: &str) -> Env {
        let ns = cluster.namespace(prefix).await.expect("namespace");
        let client = cluster.admin_client();
        Env {
            cluster,
            ns,
            client,
            _operator: None,
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates a Secret in the test namespace (`type_` e.g. `kubernetes.io/dockerconfigjson`).
    pub async fn secret(&self, name: &str, type_: Option<&str>, data: Value) {
        let mut s = json!({ "metadata": { "name": name }, "stringData": data });
        if let Some(t) = type_ {
            s["type"] = t.into();
        }
        let s: Secret = serde_json::from_value(s).unwrap();
        self.api::<Secret>()
            .create(&PostParams::default(), &s)
            .await
            .expect("create Secret");
    }

    /// A registry token Secret whose owner allows sending it to a plain-HTTP registry (the
    /// registry stand-ins serve HTTP; without the opt-in the controller refuses).
    pub async fn plain_http_token_secret(&self, name: &str, token: &str) {
        let s: Secret = serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": {
                "modelregistry.opendatahub.io/allow-plain-http": "true" } },
            "stringData": { "token": token },
        }))
        .unwrap();
        self.api::<Secret>()
            .create(&PostParams::default(), &s)
            .await
            .expect("create Secret");
    }

    /// The S3 data-connection Secret and the docker config Secret [`s3_to_oci`] refers to.
    pub async fn storage_secrets(&self) {
        self.secret(
            "s3-creds",
            None,
            json!({ "AWS_ACCESS_KEY_ID": "AKIDTESTVALUE", "AWS_SECRET_ACCESS_KEY": S3_SECRET_VALUE,
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_S3_ENDPOINT": "http://s3.example:9000" }),
        )
        .await;
        let docker = json!({ "auths": { "quay.io": { "auth": OCI_AUTH_VALUE } } }).to_string();
        self.secret(
            "push-creds",
            Some("kubernetes.io/dockerconfigjson"),
            json!({ ".dockerconfigjson": docker }),
        )
        .await;
    }

    pub async fn create(&self, name: &str, spec: Value) {
        let mt: ModelTransfer = serde_json::from_value(json!({
            "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
            "kind": "ModelTransfer",
            "metadata": { "name": name },
            "spec": spec,
        }))
        .expect("ModelTransfer");
        self.api::<ModelTransfer>()
            .create(&PostParams::default(), &mt)
            .await
            .expect("create ModelTransfer");
    }

    pub async fn transfer(&self, name: &str) -> ModelTransfer {
        self.api::<ModelTransfer>()
            .get(name)
            .await
            .expect("get ModelTransfer")
    }

    /// Waits until the transfer's status satisfies `pred`; returns the transfer.
    pub async fn wait_status(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&ModelTransferStatus) -> bool,
    ) -> ModelTransfer {
        let api = &self.api::<ModelTransfer>();
        let pred = &pred;
        eventually_within(&format!("{name}: {what}"), WAIT, || async move {
            api.get(name)
                .await
                .ok()
                .and_then(|t| t.status)
                .is_some_and(|s| pred(&s))
        })
        .await;
        self.transfer(name).await
    }

    pub async fn wait_job(&self, name: &str) -> Job {
        let api = self.api::<Job>();
        eventually_within(&format!("Job {name}"), WAIT, || async {
            api.get_opt(name).await.ok().flatten().is_some()
        })
        .await;
        api.get(name).await.unwrap()
    }

    /// The pod the Job controller created for Job `job`.
    pub async fn wait_pod(&self, job: &str) -> Pod {
        let api = self.api::<Pod>();
        let lp = ListParams::default().labels(&format!("job-name={job}"));
        eventually_within(&format!("a pod of Job {job}"), WAIT, || async {
            api.list(&lp).await.is_ok_and(|l| !l.items.is_empty())
        })
        .await;
        api.list(&lp).await.unwrap().items.remove(0)
    }

    /// Plays the kubelet: the transfer container is running.
    pub async fn run_pod(&self, pod: &Pod) {
        let status = json!({ "status": {
            "phase": "Running", "startTime": NOW,
            "containerStatuses": [{ "name": "model-sync", "ready": true, "restartCount": 0,
                "image": "model-sync", "imageID": "", "started": true,
                "state": { "running": { "startedAt": NOW } } }]
        }});
        self.patch_pod_status(pod, status).await;
    }

    /// Plays the kubelet: the transfer container exited with `code` and `message` (what
    /// model-sync writes to its termination log).
    pub async fn finish_pod(&self, pod: &Pod, code: i32, message: &str) {
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        let status = json!({ "status": {
            "phase": phase, "startTime": NOW,
            "containerStatuses": [{ "name": "model-sync", "ready": false, "restartCount": 0,
                "image": "model-sync", "imageID": "",
                "state": { "terminated": { "exitCode": code,
                    "reason": if code == 0 { "Completed" } else { "Error" },
                    "message": message, "startedAt": NOW, "finishedAt": NOW } } }]
        }});
        self.patch_pod_status(pod, status).await;
    }

    /// Plays the kubelet of a `restartPolicy: OnFailure` pod: the transfer container's run
    /// before its last restart exited with `code` and `message` (`lastState`), and the pod stays
    /// `Running`. `restarts` is the container's `restartCount`; `running` says whether the next
    /// run has started or the kubelet is still backing off (`CrashLoopBackOff`).
    pub async fn restart_pod(
        &self,
        pod: &Pod,
        restarts: i32,
        running: bool,
        code: i32,
        message: &str,
    ) {
        let state = if running {
            json!({ "running": { "startedAt": NOW } })
        } else {
            json!({ "waiting": { "reason": "CrashLoopBackOff" } })
        };
        let status = json!({ "status": {
            "phase": "Running", "startTime": NOW,
            "containerStatuses": [{ "name": "model-sync", "ready": running,
                "restartCount": restarts, "image": "model-sync", "imageID": "",
                "started": running, "state": state,
                "lastState": { "terminated": { "exitCode": code, "reason": "Error",
                    "message": message, "startedAt": NOW, "finishedAt": NOW } } }]
        }});
        self.patch_pod_status(pod, status).await;
    }

    async fn patch_pod_status(&self, pod: &Pod, status: Value) {
        self.api::<Pod>()
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
            .expect("patch pod status");
    }

    /// Asserts that no Job exists for the transfer, now and a little later (the controller had
    /// every chance to create one).
    pub async fn assert_no_job(&self, job: &str) {
        for _ in 0..2 {
            assert!(
                self.api::<Job>().get_opt(job).await.unwrap().is_none(),
                "Job {job} must not exist"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

pub const NOW: &str = "2026-01-01T00:00:00Z";
/// Values stored in the test Secrets; none may show up in any object the controller writes.
pub const S3_SECRET_VALUE: &str = "s3-secret-value-do-not-leak";
/// base64("robot:oci-password-do-not-leak").
pub const OCI_AUTH_VALUE: &str = "cm9ib3Q6b2NpLXBhc3N3b3JkLWRvLW5vdC1sZWFr";
pub const REGISTRY_TOKEN_VALUE: &str = "registry-token-do-not-leak";

/// S3 → OCI, create_model, registering at `registry_url`.
pub fn s3_to_oci(registry_url: &str) -> Value {
    json!({
        "source": { "s3": { "bucket": "models", "key": "iris/v1/", "credentialsSecretRef": { "name": "s3-creds" } } },
        "destination": { "oci": { "uri": "quay.io/example/iris:v1", "credentialsSecretRef": { "name": "push-creds" } } },
        "registry": { "url": registry_url },
        "intent": "create_model",
        "model": {
            "registeredModel": { "name": "iris", "customProperties": { "team": { "string": "ml" } } },
            "modelVersion": { "name": "v1", "author": "ci" },
            "modelArtifact": { "modelFormatName": "onnx", "modelFormatVersion": "1" }
        },
        "job": { "backoffLimit": 0 }
    })
}

/// The condition `type_` of a status as (status, reason).
pub fn condition(st: &ModelTransferStatus, type_: &str) -> Option<(String, String)> {
    st.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str().to_string(), c.reason.clone()))
}
