//! The operator as it ships: `config/default` rendered by kustomize, applied to the node's control
//! plane, and its Deployment run by the kubelet from our operator image. Nothing of the operator
//! runs in the test process here, so everything that reconciles in this test's namespace is the
//! pod: with its ServiceAccount's token from the volume the ServiceAccount admission mounts, the
//! in-cluster configuration (the `kubernetes` Service through kube-proxy, the apiserver's
//! certificate checked against the mounted CA), the shipped RBAC only, leader election on, and
//! the shipped security context (non-root image user, read-only root filesystem, probes).
//!
//! What the test world changes in the rendered Deployment, and why: the image (ours, already in
//! the node's containerd), the REST and model-sync image variables (our stand-in and model-sync
//! images instead of the public ones, which cannot be pulled here), and `WATCH_NAMESPACE` (the
//! node's control plane is shared by the tests of this process, whose in-process operators own
//! their namespaces). The CRDs are left out: the harness installs them adapted to the 1.20
//! apiserver, as `model-registry-operator install` does.
//!
//! Robustness: every wait polls what the apiserver reports under a deadline of minutes (image
//! start, probes, leader election, database start on a loaded machine).
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams};
use mro_api::model_transfer::TransferPhase;
use mro_tests::cluster::OPERATOR_NAMESPACE;
use mro_tests::model_sync::{Model, pull_image};
use mro_tests::node::pods::{logs, terminated};
use mro_tests::node::samples::{apply, describe_pods, wait_deployment_ready};
use mro_tests::operator::NAME_PREFIX;
use serde_json::{Value, json};

use super::NodeNs;
use super::registry::Sample;
use super::transfer::{World, assert_restricted_pod_of_our_image, condition};

/// Image start, probes and leader election on a loaded 2-core machine.
const OPERATOR_DEADLINE: Duration = Duration::from_secs(300);
/// The operator's Deployment and ServiceAccount after kustomize's name prefix.
const DEPLOYMENT: &str = "model-registry-operator-controller-manager";
const LEASE: &str = "model-registry-operator-lock";
/// The variables of `config/manager/manager.yaml` that name the REST and model-sync images.
const REST_IMAGE_VAR: &str = "RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE";
const SYNC_IMAGE_VAR: &str = "RELATED_IMAGE_ODH_MODEL_REGISTRY_JOB_ASYNC_UPLOAD_IMAGE";

/// `config/default` as kustomize renders it, without the CRDs, with the test world's image
/// references and the watched namespace (see the module docs).
fn config_default_for_node(t: &NodeNs) -> Vec<Value> {
    let yaml = crate::delivery::kustomize("config/default");
    let mut out = Vec::new();
    for mut doc in crate::delivery::docs(&yaml) {
        if doc["kind"] == "CustomResourceDefinition" {
            continue;
        }
        if doc["kind"] == "Deployment" {
            assert_eq!(doc["metadata"]["name"], DEPLOYMENT, "{doc}");
            assert_eq!(doc["metadata"]["namespace"], OPERATOR_NAMESPACE, "{doc}");
            let c = doc["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .and_then(|cs| cs.iter_mut().find(|c| c["name"] == "manager"))
                .expect("the manager container");
            c["image"] = json!(t.node.images.operator);
            let env = c["env"].as_array_mut().expect("the manager's env");
            for (name, value) in [
                (REST_IMAGE_VAR, &t.node.images.model_registry),
                (SYNC_IMAGE_VAR, &t.node.images.model_sync),
            ] {
                let var = env
                    .iter_mut()
                    .find(|e| e["name"] == name)
                    .unwrap_or_else(|| panic!("config/manager sets {name}"));
                var["value"] = json!(value);
            }
            env.push(json!({ "name": "WATCH_NAMESPACE", "value": t.ns }));
        }
        out.push(doc);
    }
    out
}

/// The operator's one pod (Running, on the node).
async fn operator_pod(t: &NodeNs) -> Pod {
    let pods = Api::<Pod>::namespaced(t.client.clone(), OPERATOR_NAMESPACE)
        .list(&ListParams::default().labels("control-plane=controller-manager"))
        .await
        .unwrap()
        .items;
    let running: Vec<Pod> = pods
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .collect();
    assert_eq!(running.len(), 1, "one operator pod: {running:#?}");
    running.into_iter().next().unwrap()
}

/// Waits until the leader Lease names `holder` (the operator acquired leadership from its pod).
async fn wait_lease_holder(t: &NodeNs, holder: &str) -> Lease {
    let api = Api::<Lease>::namespaced(t.client.clone(), OPERATOR_NAMESPACE);
    let deadline = Instant::now() + OPERATOR_DEADLINE;
    loop {
        let lease = api.get_opt(LEASE).await.unwrap();
        let held_by = lease
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.clone());
        if held_by.as_deref() == Some(holder) {
            return lease.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "Lease {LEASE} held by {held_by:?}, not the pod {holder}:\n{}",
            describe_pods(&t.client, OPERATOR_NAMESPACE).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_runs_from_config_default_as_a_pod_and_reconciles_a_registry_and_a_transfer() {
    let t = NodeNs::new("node-operator").await;
    let docs = {
        let t = t.clone();
        tokio::task::spawn_blocking(move || config_default_for_node(&t))
            .await
            .unwrap()
    };
    let applied = apply(&t.client, OPERATOR_NAMESPACE, &docs).await.unwrap();
    for want in [
        format!("ServiceAccount/{NAME_PREFIX}controller-manager"),
        format!("ClusterRoleBinding/{NAME_PREFIX}manager-rolebinding"),
        format!("Deployment/{DEPLOYMENT}"),
    ] {
        assert!(applied.contains(&want), "{want} in {applied:?}");
    }

    // The sample database starts while the operator's pod comes up.
    let sample = Sample::on(t.clone(), "modelregistry-sample-op", None);
    let (ready, ()) = tokio::join!(
        wait_deployment_ready(&t.client, OPERATOR_NAMESPACE, DEPLOYMENT, OPERATOR_DEADLINE),
        sample.database(
            "config/samples/databases/postgres/db.yaml",
            &t.node.images.postgres
        ),
    );
    ready.unwrap_or_else(|e| panic!("{e:#}\n{}", t.node.describe()));

    // The pod runs our image as the shipped Deployment says, with its ServiceAccount's token.
    let pod = operator_pod(&t).await;
    let spec = pod.spec.clone().unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some(t.node.env.node_name.as_str())
    );
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some(&*format!("{NAME_PREFIX}controller-manager"))
    );
    let c = spec
        .containers
        .iter()
        .find(|c| c.name == "manager")
        .unwrap();
    assert_eq!(c.image.as_deref(), Some(t.node.images.operator.as_str()));
    let sc = c.security_context.clone().unwrap_or_default();
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{sc:?}");
    assert!(
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount"),
        "the ServiceAccount token is mounted: {:?}",
        c.volume_mounts
    );
    assert!(
        !c.env.iter().flatten().any(|e| e.name == "KUBECONFIG"),
        "in-cluster configuration only"
    );
    // Leadership is the pod's: its name (POD_NAME) holds the Lease, written with its token.
    wait_lease_holder(&t, &pod.name_any()).await;

    // A ModelRegistry in the watched namespace: only the pod can reconcile it.
    let mr = sample
        .registry("config/samples/postgres/modelregistry.yaml")
        .await;
    sample.assert_registry_pod().await;
    let conditions = &mr.status.unwrap().conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.is_true()),
        "{conditions:?}"
    );

    // A ModelTransfer S3 → OCI: the pod creates the Job, the kubelet runs model-sync's image,
    // and the pod reads the result (termination message, registry read-back) into the status.
    let w = World::with(t.clone(), None).await;
    let model = Model::small(41);
    model.put_s3(&w.s3, "models", "iris/v1").await.unwrap();
    w.create("iris", w.spec("iris", "s3-creds")).await;
    let done = w.finish("iris").await;
    let job_pod = w.pod().await;
    let st = done.status.clone().unwrap();
    assert_eq!(
        st.phase,
        Some(TransferPhase::Succeeded),
        "{st:#?}\njob pod: {:#?}\n{}",
        job_pod.status,
        describe_pods(&t.client, OPERATOR_NAMESPACE).await
    );
    assert_restricted_pod_of_our_image(&w, &job_pod);
    assert_eq!(terminated(&job_pod).map(|s| s.exit_code), Some(0));
    assert_eq!(
        condition(&done, "Registered").map(|c| c.0),
        Some("True".into()),
        "{st:#?}"
    );
    let uri = st.artifact_uri.clone().expect("artifactUri");
    let pinned = uri
        .trim_start_matches("oci://")
        .replace(&t.node.env.host_ip.to_string(), "127.0.0.1");
    assert_eq!(pull_image(&w.oci, &pinned).await.unwrap().models, model);

    // The same pod did all of it: never replaced, and its log shows it led.
    let after = operator_pod(&t).await;
    assert_eq!(after.uid(), pod.uid(), "the operator pod was replaced");
    let log = logs(&t.client, OPERATOR_NAMESPACE, &pod.name_any())
        .await
        .unwrap_or_default();
    assert!(log.contains("acquired leadership"), "{log}");

    // The Deployment goes; what it reconciled stays (no owner reference to the operator).
    Api::<Deployment>::namespaced(t.client.clone(), OPERATOR_NAMESPACE)
        .delete(DEPLOYMENT, &DeleteParams::default())
        .await
        .unwrap();
}
