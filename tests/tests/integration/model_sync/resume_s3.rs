//! Resuming an S3 upload after `kill -9`: with `--resume-journal`, a rerun continues the
//! multipart upload in flight from its first part not acknowledged, skips the objects already
//! written, and leaves the same objects as an uninterrupted run; a journal naming an upload the
//! server no longer knows starts that object over.
//!
//! The kill is placed as in the OCI test (`resume.rs`): the S3 server is reached through a
//! [`PatchGate`] holding back every `UploadPart` from a part number on; once one is held (and
//! the small files are written), the server has exactly the parts before it, checked on its own
//! disk, and model-sync is killed. Bytes are counted at the gate: every `PUT` body byte
//! model-sync sent in both runs, including the held part it sent into the void. The source is a
//! directory (a PVC), so nothing is copied server-side.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{JobOutput, Model, SyncJob, pseudo_random};
use mro_tests::patch_gate::PatchGate;
use mro_tests::s3::S3Server;
use sha2::{Digest as _, Sha256};

use super::e2e::check_created;

const MIB: u64 = 1 << 20;
/// model-sync's S3 part size for these files (its 8 MiB minimum).
const PART: u64 = 8 * MIB;
const BUCKET: &str = "published";

struct Setup {
    s3: S3Server,
    mr: ModelRegistryStandIn,
    gate: PatchGate,
    model: Model,
    src: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Setup {
    async fn start(seed: u64, big: u64) -> anyhow::Result<Self> {
        mro_tests::init();
        let s3 = S3Server::start().await?;
        s3.create_bucket(BUCKET).await?;
        let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
        let gate = PatchGate::start(s3.endpoint().trim_start_matches("http://").parse()?).await?;
        let mut model = Model::small(seed);
        model
            .files
            .insert("weights.bin".into(), pseudo_random(seed * 7, big as usize));
        let src = tempfile::tempdir()?;
        model.write_dir(src.path())?;
        Ok(Self {
            s3,
            mr,
            gate,
            model,
            src,
            work: tempfile::tempdir()?,
        })
    }

    /// A PVC → S3 job through the gate, recording into `journal`.
    fn job(&self, prefix: &str, journal: &Path) -> anyhow::Result<SyncJob> {
        let mut job = SyncJob::new()?;
        job.registry(&self.mr.base_url(), self.mr.token())
            .pvc_source(self.src.path())
            .s3_destination(&self.s3, BUCKET, prefix)
            .env(
                "MODEL_SYNC_DESTINATION_AWS_ENDPOINT",
                format!("http://{}", self.gate.host()),
            )
            .env("MODEL_SYNC_RESUME_JOURNAL", journal.display().to_string())
            .timeout(Duration::from_secs(600));
        job.create_model(&format!("resume-s3-{prefix}"), "v1")?;
        Ok(job)
    }

    /// Runs `job` until the server has the parts below `hold_from` and every small file is
    /// journaled as written, then kills it; returns the `PUT` bytes it sent.
    async fn run_killed(
        &self,
        job: &SyncJob,
        journal: &Path,
        hold_from: u64,
    ) -> anyhow::Result<u64> {
        self.gate.hold_from_part(Some(hold_from));
        let before = self.gate.put_bytes();
        let mut child = job.spawn().await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        let small = self.model.files.len() - 1;
        let written = || {
            std::fs::read_to_string(journal)
                .unwrap_or_default()
                .matches("\"state\":\"done\"")
                .count()
        };
        while self.gate.held() == 0 || written() < small {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("model-sync ended before part {hold_from} was held: {status}");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "part {hold_from} not held in 300 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let parts = stored_parts(self.s3.root());
        assert_eq!(
            parts,
            (1..hold_from).collect::<Vec<_>>(),
            "the server holds exactly the parts before the held one"
        );
        child.start_kill()?;
        let status = tokio::time::timeout(Duration::from_secs(120), child.wait()).await??;
        assert_eq!(status.code(), None, "killed by a signal");
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.gate.held_open() > 0 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the killed process's held connection stayed open for 120 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.gate.hold_from_part(None);
        Ok(self.gate.put_bytes() - before)
    }

    /// Runs `job` to its end; its output and the `PUT` bytes it sent.
    async fn run(&self, job: &SyncJob) -> anyhow::Result<(JobOutput, u64)> {
        let before = self.gate.put_bytes();
        let out = job.run().await?;
        Ok((out, self.gate.put_bytes() - before))
    }

    /// sha256 of every object under `prefix`.
    async fn digests(&self, prefix: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let got = Model::read_s3(&self.s3, BUCKET, prefix).await?;
        assert_eq!(
            got, self.model,
            "the objects under {prefix} are the model's files"
        );
        Ok(got
            .files
            .iter()
            .map(|(p, d)| (p.clone(), hex::encode(Sha256::digest(d))))
            .collect())
    }
}

/// Part numbers of the multipart uploads s3s-fs holds (`.upload_id-<id>.part-<n>` in its root).
fn stored_parts(root: &Path) -> Vec<u64> {
    let mut parts: Vec<u64> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix(".upload_id-")?
                .rsplit_once(".part-")?
                .1
                .parse()
                .ok()
        })
        .collect();
    parts.sort_unstable();
    parts
}

/// A 64 MiB file in 8 MiB parts (plus small files) is killed once the server has two parts; the
/// rerun sends only the parts after them (the small files, written before the kill, not at all),
/// so both runs together send at most one part more than an uninterrupted run, and the objects
/// are the uninterrupted run's, byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn an_s3_upload_killed_mid_object_resumes_sending_at_most_one_part_again()
-> anyhow::Result<()> {
    const BIG: u64 = 64 * MIB;
    let t = Setup::start(51, BIG).await?;
    let small = t.model.total_bytes() - BIG;

    let ref_journal = t.work.path().join("ref");
    let (out, full) = t.run(&t.job("reference", &ref_journal)?).await?;
    check_created(&t.mr, &out, &t.model, "resume-s3-reference", "v1");
    assert_eq!(
        full,
        t.model.total_bytes(),
        "the uninterrupted run sends each byte once"
    );
    assert!(!ref_journal.exists(), "a finished run removes its journal");

    let journal = t.work.path().join("killed");
    let job = t.job("killed", &journal)?;
    let killed_run = t.run_killed(&job, &journal, 3).await?;
    let journaled = std::fs::read_to_string(&journal)?;
    assert_eq!(
        journaled.matches("\"state\":\"part\"").count(),
        2,
        "two acknowledged parts journaled: {journaled}"
    );
    assert!(
        !journaled.contains(t.s3.secret_key()) && !journaled.contains(t.s3.access_key()),
        "no credential in the journal"
    );

    let (out, resumed_run) = t.run(&job).await?;
    check_created(&t.mr, &out, &t.model, "resume-s3-killed", "v1");
    let log = out.all_output();
    assert!(
        log.contains("resuming the multipart upload where the server stopped")
            && log.contains("parts=2"),
        "{log}"
    );
    assert!(log.contains("written before the restart"), "{log}");
    let resent = (killed_run + resumed_run).saturating_sub(full);
    eprintln!(
        "s3 resume: uninterrupted {full} B; killed run {killed_run} B, rerun {resumed_run} B; \
         sent again {resent} B (part {PART} B)"
    );
    assert!(
        killed_run + resumed_run <= full + PART,
        "at most one part is sent twice: uninterrupted {full}, killed run {killed_run}, \
         rerun {resumed_run}"
    );
    assert_eq!(
        resumed_run,
        BIG - 2 * PART,
        "the rerun sends neither the two acknowledged parts nor the {small} B of small files again"
    );
    assert!(!journal.exists(), "the finished rerun removes its journal");
    assert!(
        stored_parts(t.s3.root()).is_empty(),
        "no upload left behind"
    );
    assert_eq!(t.digests("killed").await?, t.digests("reference").await?);
    Ok(())
}

/// The upload the journal names is aborted between the runs (as a bucket lifecycle rule
/// would): the rerun says so and uploads that object again from its first byte.
#[tokio::test(flavor = "multi_thread")]
async fn a_journal_naming_a_vanished_s3_upload_starts_that_object_over() -> anyhow::Result<()> {
    const BIG: u64 = 32 * MIB;
    let t = Setup::start(52, BIG).await?;
    let journal = t.work.path().join("vanished");
    let job = t.job("vanished", &journal)?;
    t.run_killed(&job, &journal, 2).await?;
    let journaled = std::fs::read_to_string(&journal)?;
    let upload_id = journaled
        .split("\"upload_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an upload id journaled")
        .to_owned();
    t.s3.client()
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("vanished/weights.bin")
        .upload_id(&upload_id)
        .send()
        .await?;
    assert!(stored_parts(t.s3.root()).is_empty(), "the upload is gone");

    let (out, rerun) = t.run(&job).await?;
    check_created(&t.mr, &out, &t.model, "resume-s3-vanished", "v1");
    let log = out.all_output();
    assert!(
        log.contains(
            "the journaled multipart upload is gone; uploading the object again from its first byte"
        ),
        "{log}"
    );
    // The resumed upload's first part is not sent (its bytes match the journaled ETag); its
    // second is, and the server refuses it for the unknown upload: then the whole file.
    assert!(
        (BIG..=BIG + PART).contains(&rerun),
        "the big file again, whole, plus at most the part refused; the small files not: {rerun}\n{log}"
    );
    assert!(!journal.exists());
    t.digests("vanished").await?;
    Ok(())
}
