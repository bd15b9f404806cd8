//! Resuming an OCI push after `kill -9`: with `--resume-journal`, a rerun continues each layer
//! where the registry stopped, re-sending at most the part that was in flight, and publishes
//! the same image as an uninterrupted run.
//!
//! How the kill is placed without timing: the registry is reached through a [`PatchGate`],
//! which holds back every `PATCH` of the big layer from its third part on. The test waits until
//! the gate holds one (so the registry has acknowledged exactly two parts, checked on the
//! registry's own disk), kills model-sync with SIGKILL and reruns the same Job. Bytes are
//! counted at the gate: every `PATCH` body byte model-sync sent, in both runs, including the
//! held part it sent into the void.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mro_tests::model_sync::{Model, SyncJob, pseudo_random, pull_image};
use mro_tests::patch_gate::PatchGate;

use super::e2e::{World, check_created};

const MIB: u64 = 1 << 20;
const PART: u64 = 16 * MIB;
const BIG: u64 = 128 * MIB;

/// Sizes of the registry's upload sessions on its disk (`_uploads/<id>/data`).
fn upload_sizes(storage: &Path) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut stack: Vec<PathBuf> = vec![storage.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "data")
                && p.parent()
                    .and_then(Path::parent)
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "_uploads")
            {
                sizes.push(e.metadata().map(|m| m.len()).unwrap_or(0));
            }
        }
    }
    sizes
}

fn job_to_gate(w: &World, gate: &PatchGate, repo: &str, journal: &Path) -> anyhow::Result<SyncJob> {
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "resume");
    w.to_oci(&mut job, repo, "v1")?;
    job.env(
        "MODEL_SYNC_DESTINATION_OCI_URI",
        format!("oci://{}/{repo}:v1", gate.host()),
    )
    // The base image through the gate too: one registry, its layers mounted, not sent.
    .env(
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
        w.base_image.replace(w.oci.host(), &gate.host()),
    )
    .env("MODEL_SYNC_RESUME_JOURNAL", journal.display().to_string())
    .env(
        "MODEL_SYNC_DESTINATION_OCI_PART_MIB",
        (PART / MIB).to_string(),
    )
    .timeout(Duration::from_secs(900));
    job.create_model(repo.replace('/', "-").as_str(), "v1")?;
    Ok(job)
}

/// A 128 MiB file in 16 MiB parts (plus a small file) is killed after the registry has two
/// parts; the rerun sends at most one part more than an uninterrupted push in all, says it
/// resumed at the registry's size, and yields the uninterrupted push's manifest digest.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_killed_mid_layer_resumes_sending_at_most_one_part_again() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut model = Model::small(41);
    model
        .files
        .insert("weights.bin".into(), pseudo_random(4242, BIG as usize));
    model.put_s3(&w.s3, "models", "resume").await?;
    let gate = PatchGate::start(w.oci.host().parse()?).await?;
    let work = tempfile::tempdir()?;

    // The uninterrupted push: what every PATCH of the same image adds up to.
    let reference = job_to_gate(&w, &gate, "resume/reference", &work.path().join("ref.json"))?;
    let out = reference.run().await?;
    let doc = check_created(&w.mr, &out, &model, "resume-reference", "v1");
    let reference_uri = doc["uri"].as_str().unwrap_or_default().to_owned();
    let full = gate.patch_bytes();
    assert!(full >= BIG, "the reference push sent {full} bytes");
    assert!(
        !work.path().join("ref.json").exists(),
        "a finished push removes its journal"
    );

    // The push that is killed once the registry has two parts of the big layer.
    let journal = work.path().join("killed.json");
    let job = job_to_gate(&w, &gate, "resume/killed", &journal)?;
    gate.hold_from(Some(2 * PART));
    let before = gate.patch_bytes();
    let mut child = job.spawn().await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while gate.held() == 0 {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("model-sync ended before its third part was held: {status}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no third part of the big layer was sent within 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let storage = w.oci.dir().join("storage");
    let sizes = upload_sizes(&storage);
    assert!(
        sizes.contains(&(2 * PART)),
        "the registry holds exactly two parts of the big layer: {sizes:?}"
    );
    child.start_kill()?;
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait()).await??;
    assert_eq!(status.code(), None, "killed by a signal");
    // Every byte the killed process got out is counted once its connections are closed.
    let deadline = Instant::now() + Duration::from_secs(120);
    while gate.held_open() > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the killed process's held connection stayed open for 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let journaled = std::fs::read_to_string(&journal)?;
    assert!(
        journaled.contains(&format!("\"committed\":{}", 2 * PART)),
        "{journaled}"
    );
    let killed_run = gate.patch_bytes() - before;

    gate.hold_from(None);
    let out = job.run().await?;
    let doc = check_created(&w.mr, &out, &model, "resume-killed", "v1");
    let resumed_run = gate.patch_bytes() - before - killed_run;
    assert!(
        out.stderr
            .contains("resuming the upload where the registry stopped")
            && out.stderr.contains(&format!("registry_has={}", 2 * PART)),
        "{}",
        out.all_output()
    );
    let resent = (killed_run + resumed_run).saturating_sub(full);
    eprintln!(
        "resume: uninterrupted {full} B; killed run {killed_run} B, rerun {resumed_run} B; \
         sent again {resent} B (part {PART} B)"
    );
    assert!(
        killed_run + resumed_run <= full + PART,
        "at most one part is sent twice: uninterrupted {full}, killed run {killed_run}, \
         rerun {resumed_run}"
    );
    assert!(
        resumed_run + 2 * PART <= full,
        "the rerun did not send the two acknowledged parts again: rerun {resumed_run}, \
         uninterrupted {full}"
    );
    assert!(!journal.exists(), "the finished rerun removes its journal");

    // The same image as the uninterrupted push, and its files intact.
    let digest = |uri: &str| uri.rsplit('@').next().unwrap_or_default().to_owned();
    let uri = doc["uri"].as_str().unwrap_or_default();
    assert_eq!(
        digest(uri),
        digest(&reference_uri),
        "{uri} vs {reference_uri}"
    );
    let real = uri
        .trim_start_matches("oci://")
        .replace(&gate.host(), w.oci.host());
    let img = pull_image(&w.oci, &real).await?;
    assert_eq!(img.models, model);
    Ok(())
}
