//! The operator as it ships: `config/default` rendered by kustomize, applied to the node's control
//! plane, and its Deployment run by the kubelet from our operator image. Nothing of the operator
//! runs in the test process here, so everything that reconciles in this test's namespace is the
//! pod: with its ServiceAccount's token from the volume the ServiceAccount admission mounts, the
//! in-cluster configuration (the `kubernetes` Service through kube-proxy, the apiserver's
//! certificate checked against the mounted CA), the shipped RBAC only, leader election on, and
//! the shipped security context (non-root image user, read-only root filesystem, probes).
//!
//! What the test world changes in the rendered Deployment is [`mro_tests::node::operator`]'s
//! (images, and `WATCH_NAMESPACE`: the node's control plane is shared by the tests of this
//! process, whose in-process operators own their namespaces).
//!
//! Robustness: every wait polls what the apiserver reports under a deadline of minutes (image
//! start, probes, leader election, database start on a loaded machine).
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams};
use mro_api::model_transfer::TransferPhase;
use mro_tests::cluster::OPERATOR_NAMESPACE;
use mro_tests::model_sync::{Model, pull_image};
use mro_tests::node::operator::{self, DEPLOYMENT, LEASE, SERVICE_ACCOUNT};
use mro_tests::node::pods::{logs, terminated};
use mro_tests::node::samples::describe_pods;
use mro_tests::operator::NAME_PREFIX;

use super::NodeNs;
use super::registry::Sample;
use super::transfer::{World, assert_restricted_pod_of_our_image, condition};

/// Image start, probes and leader election on a loaded 2-core machine.
const OPERATOR_DEADLINE: Duration = Duration::from_secs(300);

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
    if mro_tests::node::skip_when_switched_off(
        "the_operator_runs_from_config_default_as_a_pod_and_reconciles_a_registry_and_a_transfer",
    ) {
        return;
    }
    let t = NodeNs::new("node-operator").await;
    let deploy = operator::deploy(&t.client, &t.node.images, Some(&t.ns), OPERATOR_DEADLINE);
    // The sample database starts while the operator's pod comes up.
    let sample = Sample::on(t.clone(), "modelregistry-sample-op", None);
    let (applied, ()) = tokio::join!(
        deploy,
        sample.database(
            "config/samples/databases/postgres/db.yaml",
            &t.node.images.postgres
        ),
    );
    let applied = applied.unwrap_or_else(|e| panic!("{e:#}\n{}", t.node.describe()));
    for want in [
        format!("ServiceAccount/{NAME_PREFIX}controller-manager"),
        format!("ClusterRoleBinding/{NAME_PREFIX}manager-rolebinding"),
        format!("Deployment/{DEPLOYMENT}"),
    ] {
        assert!(applied.contains(&want), "{want} in {applied:?}");
    }

    // The pod runs our image as the shipped Deployment says, with its ServiceAccount's token.
    let pod = operator::running_pod(&t.client).await.unwrap();
    let spec = pod.spec.clone().unwrap();
    assert_eq!(
        spec.node_name.as_deref(),
        Some(t.node.env.node_name.as_str())
    );
    assert_eq!(spec.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
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
    let after = operator::running_pod(&t.client).await.unwrap();
    assert_eq!(after.uid(), pod.uid(), "the operator pod was replaced");
    // Read through the kubelet, retried: a log request can fail or time out on a loaded machine,
    // and a restarted container logs the line again once its old Lease has expired.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = logs(&t.client, OPERATOR_NAMESPACE, &pod.name_any()).await;
        if log
            .as_ref()
            .is_ok_and(|l| l.contains("acquired leadership"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the operator's log never said it acquired leadership: {log:?}\n{}",
            describe_pods(&t.client, OPERATOR_NAMESPACE).await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The Deployment goes; what it reconciled stays (no owner reference to the operator).
    Api::<Deployment>::namespaced(t.client.clone(), OPERATOR_NAMESPACE)
        .delete(DEPLOYMENT, &DeleteParams::default())
        .await
        .unwrap();
}
