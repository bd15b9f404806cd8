//! The sample ModelRegistry on the real node: the sample database Deployment and Service
//! (`config/samples/databases/*`) run our database image built from Debian's packages, the
//! operator (in-process, shipped RBAC) renders the registry Deployment with the Model Registry
//! stand-in image as its REST image, the kubelet starts it with the rendered command line, probes
//! it (the readiness endpoint answers from the database), the Deployment becomes available, the
//! ModelRegistry reports Available=True, and a pod reaches the REST API through the registry's
//! Service name.
//!
//! Robustness: nothing waits on a fixed delay. The registry is applied once the database pod is
//! Ready (its readiness probe runs a real client against the server); the stand-in itself also
//! resolves and connects to the database with retries under a deadline; the pod calling the API
//! retries until the Service answers (DNS and kube-proxy follow the endpoints within seconds).
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use mro_tests::node::pods::{self, logs, terminated};
use mro_tests::node::samples::{
    apply, database_on_node, describe_pods, sample_docs, wait_deployment_ready,
    wait_registry_condition,
};
use mro_tests::operator::{self, OperatorHandle};

use super::NodeNs;

const DB: &str = "model-registry-db";
/// Anything on the node on a loaded machine: image unpacking, database initialisation, probes.
const NODE_DEADLINE: Duration = Duration::from_secs(300);

pub(super) struct Sample {
    pub(super) t: NodeNs,
    /// The sample ModelRegistry's name in this test: registry names are unique across the
    /// cluster (the operator refuses a second one), and the tests share the node's control plane.
    registry: String,
    /// The in-process operator; `None` when the operator runs as a pod on the node
    /// (`super::operator`).
    _operator: Option<OperatorHandle>,
}

impl Sample {
    async fn start(prefix: &str, registry: &str) -> Sample {
        let t = NodeNs::new(prefix).await;
        let mut settings = operator::test_settings(&t.ns);
        settings.images.rest = t.node.images.model_registry.clone();
        let op = operator::builder(&t.node.cluster, settings).start().await;
        Sample::on(t, registry, Some(op))
    }

    /// The sample `registry` in `t`'s namespace, reconciled by `op` (or a pod when `None`).
    pub(super) fn on(t: NodeNs, registry: &str, op: Option<OperatorHandle>) -> Sample {
        Sample {
            t,
            registry: registry.to_string(),
            _operator: op,
        }
    }

    /// The sample database with our image, applied and Ready (its readiness probe passed).
    pub(super) async fn database(&self, sample: &str, image: &str) {
        let docs = database_on_node(sample, image).unwrap();
        apply(&self.t.client, &self.t.ns, &docs).await.unwrap();
        wait_deployment_ready(&self.t.client, &self.t.ns, DB, NODE_DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.t.node.describe()));
    }

    /// The sample ModelRegistry (under this test's name), applied, until Available=True.
    pub(super) async fn registry(&self, sample: &str) -> mro_api::ModelRegistry {
        let mut docs = sample_docs(sample).unwrap();
        for d in &mut docs {
            if d["kind"] == "ModelRegistry" {
                d["metadata"]["name"] = serde_json::json!(self.registry);
            }
        }
        apply(&self.t.client, &self.t.ns, &docs).await.unwrap();
        wait_registry_condition(
            &self.t.client,
            &self.t.ns,
            &self.registry,
            "Available",
            "True",
            NODE_DEADLINE,
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.t.node.describe()))
    }

    /// From a pod: lists registered models through the Service name (retrying until the Service
    /// answers, bounded), creates one, lists again. Returns the pod's output.
    async fn call_api_from_a_pod(&self, model: &str) -> String {
        let url = format!(
            "http://{}.{}.svc.cluster.local:8080/api/model_registry/v1alpha3/registered_models",
            self.registry, self.t.ns
        );
        let script = format!(
            r#"end=$(( $(date +%s) + 120 ))
until timeout 5 wget -q -O /tmp/first "{url}"; do
  [ "$(date +%s)" -lt "$end" ] || {{ echo "no answer from {url}"; exit 1; }}
  sleep 1
done
echo "first: $(cat /tmp/first)"
timeout 10 wget -q -O /tmp/created --header 'Content-Type: application/json' --post-data '{{"name":"{model}"}}' "{url}" || exit 2
echo "created: $(cat /tmp/created)"
timeout 10 wget -q -O /tmp/list "{url}" || exit 3
echo "list: $(cat /tmp/list)""#
        );
        let pod = pods::pod(
            "api-client",
            &self.t.node.images.busybox,
            &["/bin/sh", "-c", &script],
            serde_json::json!({}),
        );
        let done = pods::run_to_end(&self.t.client, &self.t.ns, &pod, NODE_DEADLINE)
            .await
            .unwrap();
        let log = logs(&self.t.client, &self.t.ns, "api-client")
            .await
            .unwrap_or_default();
        let term = terminated(&done).unwrap_or_default();
        assert_eq!(
            term.exit_code,
            0,
            "the API did not answer through the Service: {log}\n{}",
            describe_pods(&self.t.client, &self.t.ns).await
        );
        log
    }

    /// The registry's pod runs our stand-in image from the rendered Deployment and is ready.
    pub(super) async fn assert_registry_pod(&self) {
        let dep = Api::<Deployment>::namespaced(self.t.client.clone(), &self.t.ns)
            .get(&self.registry)
            .await
            .unwrap();
        let spec = dep.spec.unwrap().template.spec.unwrap();
        let rest = spec
            .containers
            .iter()
            .find(|c| c.name == "rest-container")
            .expect("rest-container");
        assert_eq!(
            rest.image.as_deref(),
            Some(self.t.node.images.model_registry.as_str())
        );
        assert_eq!(
            rest.command.as_deref(),
            Some(&["/model-registry".to_string(), "proxy".to_string()][..])
        );
        let st = dep.status.unwrap_or_default();
        assert!(st.available_replicas.unwrap_or(0) >= 1, "{st:?}");
    }
}

/// The sample database `db_sample` with `image`, then the sample ModelRegistry `mr_sample` on it:
/// Available=True, the REST container from the rendered Deployment, and the REST API answering
/// through the Service from a pod (a model created and listed back, so the answer is the
/// registry's, not a canned one).
async fn sample_runs_on_the_node(
    prefix: &str,
    registry: &str,
    db_sample: &str,
    image: impl Fn(&Sample) -> String,
    mr_sample: &str,
    model: &str,
) {
    let s = Sample::start(prefix, registry).await;
    s.database(db_sample, &image(&s)).await;
    let mr = s.registry(mr_sample).await;
    s.assert_registry_pod().await;
    let log = s.call_api_from_a_pod(model).await;
    assert!(log.contains("first: {"), "{log}");
    assert!(log.contains(&format!(r#""name":"{model}""#)), "{log}");
    let list = log.lines().find(|l| l.starts_with("list: ")).unwrap_or("");
    assert!(list.contains(model), "{log}");
    let conditions = &mr.status.unwrap().conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.is_true()),
        "{conditions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_sample_registry_runs_on_the_node_and_answers_through_its_service() {
    if mro_tests::node::skip_when_switched_off(
        "the_postgres_sample_registry_runs_on_the_node_and_answers_through_its_service",
    ) {
        return;
    }
    sample_runs_on_the_node(
        "node-registry-pg",
        "modelregistry-sample-pg",
        "config/samples/databases/postgres/db.yaml",
        |s| s.t.node.images.postgres.clone(),
        "config/samples/postgres/modelregistry.yaml",
        "node-pg-model",
    )
    .await;
}

/// The MySQL sample on our MariaDB image: the sample's readiness probe (`mysql` as the sample's
/// user on the sample's database) is what the test waits on before the registry is applied.
#[tokio::test(flavor = "multi_thread")]
async fn the_mysql_sample_registry_runs_on_the_node_and_answers_through_its_service() {
    if mro_tests::node::skip_when_switched_off(
        "the_mysql_sample_registry_runs_on_the_node_and_answers_through_its_service",
    ) {
        return;
    }
    sample_runs_on_the_node(
        "node-registry-my",
        "modelregistry-sample-my",
        "config/samples/databases/mysql/db.yaml",
        |s| s.t.node.images.mariadb.clone(),
        "config/samples/mysql/modelregistry.yaml",
        "node-my-model",
    )
    .await;
}
