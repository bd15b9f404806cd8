//! A transfer pod killed mid-layer on the real node: the operator's Job (one retry) has
//! `restartPolicy: OnFailure` and model-sync's resume journal on the scratch `emptyDir`, so the
//! kubelet restarts the container in the same pod and the push continues where the registry
//! stopped.
//!
//! How the kill is placed without timing: the registry is reached through a [`PatchGate`] that
//! holds back every `PATCH` from the second 64 MiB part of the big layer on. Once the gate holds
//! one, the registry has acknowledged exactly one part; the container's process is then killed
//! through containerd (`ctr tasks kill -s SIGKILL`, as the OOM killer or a crash would end it),
//! the gate is opened, and the kubelet restarts the container after its back-off. Bytes are
//! counted at the gate: every `PATCH` body byte the pod sent, in both runs, including the held
//! part it sent into the void.
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use mro_api::model_transfer::TransferPhase;
use mro_tests::model_sync::{Model, pseudo_random, pull_image};
use mro_tests::patch_gate::PatchGate;
use serde_json::{Value, json};

use super::transfer::{World, condition};

const MIB: u64 = 1 << 20;
/// model-sync's part size with a journal (`DEFAULT_RESUME_PART`).
const PART: u64 = 64 * MIB;
const BIG: u64 = 160 * MIB;
const SOURCE: &str = "resume/v1";

/// The transfer's spec with its OCI destination (and base image) reached through `gate`.
fn through_gate(w: &World, gate: &PatchGate, name: &str, retries: i32) -> Value {
    let env = &w.t.node.env;
    let mut spec = w.spec(name, "s3-creds");
    let via_gate = |r: String| r.replace(w.oci.host(), &gate.host());
    spec["destination"]["oci"]["uri"] =
        json!(env.for_pods(&via_gate(w.oci.reference(&format!("models/{name}"), "v1"))));
    spec["destination"]["oci"]["baseImage"] = json!(env.for_pods(&via_gate(w.base_image.clone())));
    // One source for both transfers: a layer's fingerprint annotation records its source
    // object, so only the same objects give the same image digest.
    spec["source"]["s3"]["key"] = json!(format!("{SOURCE}/"));
    spec["job"] = json!({ "backoffLimit": retries });
    spec
}

fn only_pod(pods: Vec<Pod>) -> Pod {
    assert_eq!(pods.len(), 1, "one pod, restarted in place: {pods:#?}");
    pods.into_iter().next().unwrap()
}

async fn job_pods(w: &World, name: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(w.t.client.clone(), &w.t.ns)
        .list(&kube::api::ListParams::default().labels(&format!("job-name={name}-sync")))
        .await
        .unwrap()
        .items
}

/// The running container's id in containerd (`containerd://<id>` in the pod's status).
async fn running_container(w: &World, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pods = job_pods(w, name).await;
        let id = pods.first().and_then(|p| {
            let cs = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
            cs.state.as_ref()?.running.as_ref()?;
            cs.container_id.clone()
        });
        if let Some(id) = id {
            return id.trim_start_matches("containerd://").to_string();
        }
        assert!(Instant::now() < deadline, "no running container: {pods:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn digest(uri: &str) -> String {
    uri.rsplit('@').next().unwrap_or_default().to_owned()
}

/// 160 MiB in 64 MiB parts (plus small files), killed after the registry has one part: the
/// same pod's restarted container resumes, the two runs send at most one part more than an
/// uninterrupted transfer, the restarted run does not send the acknowledged part again, and the
/// image is the uninterrupted transfer's, digest for digest.
#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_pod_killed_mid_layer_restarts_in_place_and_sends_at_most_one_part_again() {
    if mro_tests::node::skip_when_switched_off(
        "a_transfer_pod_killed_mid_layer_restarts_in_place_and_sends_at_most_one_part_again",
    ) {
        return;
    }
    let w = World::new("node-resume").await;
    let mut model = Model::small(51);
    model
        .files
        .insert("weights.bin".into(), pseudo_random(5151, BIG as usize));
    model.put_s3(&w.s3, "models", SOURCE).await.unwrap();
    let gate = PatchGate::start(w.oci.host().parse().unwrap())
        .await
        .unwrap();

    // The uninterrupted transfer: what every PATCH of the same image adds up to.
    w.create("reference", through_gate(&w, &gate, "reference", 0))
        .await;
    let reference = w.finish("reference").await;
    let reference_st = reference.status.clone().unwrap();
    assert_eq!(
        reference_st.phase,
        Some(TransferPhase::Succeeded),
        "{reference_st:#?}\n{}",
        w.t.node.describe()
    );
    let full = gate.patch_bytes();
    assert!(full >= BIG, "the reference transfer sent {full} bytes");

    // The transfer that is killed once the registry has the big layer's first part.
    gate.hold_from(Some(PART));
    let before = gate.patch_bytes();
    w.create("resumed", through_gate(&w, &gate, "resumed", 1))
        .await;
    let container = running_container(&w, "resumed").await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while gate.held() == 0 {
        let pods = job_pods(&w, "resumed").await;
        let ended = pods
            .first()
            .and_then(mro_tests::node::pods::terminated)
            .is_some();
        assert!(
            !ended,
            "model-sync ended before its second part was held: {pods:#?}"
        );
        assert!(
            Instant::now() < deadline,
            "no second part of the big layer within 300 s\n{}",
            w.t.node.describe()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed = std::process::Command::new("ctr")
        .arg("--address")
        .arg(w.t.node.env.containerd_socket())
        .args(["-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", &container])
        .output()
        .expect("run ctr");
    assert!(
        killed.status.success(),
        "ctr tasks kill: {}",
        String::from_utf8_lossy(&killed.stderr)
    );
    // Every byte the killed run got out is counted once its connections are closed.
    let deadline = Instant::now() + Duration::from_secs(120);
    while gate.held_open() > 0 {
        assert!(
            Instant::now() < deadline,
            "the killed run's held connection stayed open for 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_run = gate.patch_bytes() - before;
    gate.hold_from(None);

    let t = w.finish("resumed").await;
    let resumed_run = gate.patch_bytes() - before - killed_run;
    let pod = only_pod(job_pods(&w, "resumed").await);
    let st = t.status.clone().unwrap();
    assert_eq!(
        st.phase,
        Some(TransferPhase::Succeeded),
        "{st:#?}\npod: {:#?}\n{}",
        pod.status,
        w.t.node.describe()
    );
    assert_eq!(st.attempts, Some(2), "{st:#?}");
    assert_eq!(
        condition(&t, "Registered").map(|c| c.0),
        Some("True".into())
    );
    let cs = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(cs.restart_count, 1, "restarted in place once: {cs:#?}");
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    assert_eq!(
        last.map(|l| l.exit_code),
        Some(137),
        "killed by SIGKILL: {cs:#?}"
    );
    let log =
        mro_tests::node::pods::logs(&w.t.client, &w.t.ns, &pod.metadata.name.clone().unwrap())
            .await
            .unwrap_or_default();
    assert!(
        log.contains("resuming the upload where the registry stopped")
            && log.contains(&format!("registry_has={PART}")),
        "{log}"
    );

    let resent = (killed_run + resumed_run).saturating_sub(full);
    eprintln!(
        "node resume: uninterrupted {full} B; killed run {killed_run} B, restarted run \
         {resumed_run} B; sent again {resent} B (part {PART} B)"
    );
    assert!(
        killed_run + resumed_run <= full + PART,
        "at most one part is sent twice: uninterrupted {full}, killed run {killed_run}, \
         restarted run {resumed_run}"
    );
    assert!(
        resumed_run + PART <= full,
        "the restarted run did not send the acknowledged part again: restarted run \
         {resumed_run}, uninterrupted {full}"
    );

    // The uninterrupted transfer's image, and the model's files in it.
    let uri = st.artifact_uri.clone().expect("artifactUri");
    let reference_uri = reference_st.artifact_uri.clone().expect("artifactUri");
    assert_eq!(
        digest(&uri),
        digest(&reference_uri),
        "{uri} vs {reference_uri}"
    );
    let real = uri
        .trim_start_matches("oci://")
        .replace(&w.t.node.env.host_ip.to_string(), "127.0.0.1")
        .replace(&gate.host(), w.oci.host());
    assert_eq!(pull_image(&w.oci, &real).await.unwrap().models, model);
}

/// A run that exits with invalid configuration (here a destination reference pinned to a
/// digest, which model-sync refuses: the digest is only known after the push) is not restarted
/// although the Job has retries: the transfer fails with `InvalidConfiguration` after one run,
/// and the operator deletes the Job before the kubelet's back-off ends.
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_configuration_fails_the_transfer_at_once_and_ends_its_job() {
    if mro_tests::node::skip_when_switched_off(
        "an_invalid_configuration_fails_the_transfer_at_once_and_ends_its_job",
    ) {
        return;
    }
    let w = World::new("node-invalid").await;
    Model::small(52)
        .put_s3(&w.s3, "models", "pinned/v1")
        .await
        .unwrap();
    let mut spec = w.spec("pinned", "s3-creds");
    let pinned = format!(
        "{}@sha256:{}",
        w.oci
            .reference("models/pinned", "v1")
            .rsplit_once(':')
            .unwrap()
            .0,
        "0".repeat(64)
    );
    spec["destination"]["oci"]["uri"] = json!(w.t.node.env.for_pods(&pinned));
    spec["job"] = json!({ "backoffLimit": 2 });
    w.create("pinned", spec).await;
    let t = w.finish("pinned").await;
    let st = t.status.clone().unwrap();
    assert_eq!(
        st.phase,
        Some(TransferPhase::Failed),
        "{st:#?}\n{}",
        w.t.node.describe()
    );
    assert_eq!(
        condition(&t, "Failed"),
        Some(("True".into(), "InvalidConfiguration".into())),
        "{st:#?}"
    );
    assert_eq!(st.attempts, Some(1), "not restarted: {st:#?}");
    let msg = st.message.clone().unwrap_or_default();
    assert!(
        msg.contains("digest") && msg.contains("not retried"),
        "{msg}"
    );
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(w.t.client.clone(), &w.t.ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    while jobs.get_opt("pinned-sync").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the Job was not ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let later = Api::<mro_api::ModelTransfer>::namespaced(w.t.client.clone(), &w.t.ns)
        .get("pinned")
        .await
        .unwrap();
    assert_eq!(
        condition(&later, "Failed"),
        Some(("True".into(), "InvalidConfiguration".into()))
    );
}
