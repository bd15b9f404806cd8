//! Issue 15, model-sync side, against the real servers (S3, OCI registry, the Model Registry
//! stand-in) and the real binary:
//!
//! - credentials that are no configuration value (the signature and session token of a
//!   pre-signed URL, `user:password@`) appear nowhere: not in stdout (the configuration
//!   summary, which is what `FallbackToLogsOnError` copies into the pod status), stderr or the
//!   termination message; a malformed URI read from a Secret file is not echoed either;
//! - a PVC source whose root is a symlink to somewhere else in the pod is refused;
//! - a `LIVE` artifact survives a hard kill mid-transfer and a failed retry: it stays `LIVE`
//!   with its old URI until a new one is published.
use std::time::Duration;

use mro_tests::model_sync::{FlakyProxy, Model, SyncJob, pseudo_random};

use super::e2e::{World, artifact, registry_client};

const URL_PASSWORD: &str = "PLANTED-URL-PASSWORD-51c0";
const CREDENTIAL: &str = "PLANTEDAKIDCREDENTIAL9";
const SESSION: &str = "PLANTED-SESSION-TOKEN-e4d2";
const SIGNATURE: &str = "planted0signature0b7e91";

fn presigned(base: &str) -> String {
    format!(
        "http://alice:{URL_PASSWORD}@{}/models/missing.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CREDENTIAL}%2F20261206%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261206T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token={SESSION}&X-Amz-Signature={SIGNATURE}",
        base.trim_start_matches("http://")
    )
}

fn assert_clean(out: &str) {
    for secret in [URL_PASSWORD, CREDENTIAL, SESSION, SIGNATURE] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
}

/// A pre-signed URL with user info as the source, answered 404: the run fails with
/// SourceUnavailable and none of the URL's credentials is printed anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn presigned_url_credentials_appear_nowhere() -> anyhow::Result<()> {
    let w = World::start().await?;
    let http = mro_tests::http_files::HttpFileServer::start().await?;
    let dest = tempfile::tempdir()?;
    let mut job = w.job()?;
    job.uri_source(&presigned(&http.base_url()))
        .pvc_destination(dest.path())
        .create_model("presigned", "v1")?;
    job.env("MODEL_SYNC_LOG_LEVEL", "debug");
    let out = job.run().await?;
    out.expect_exit(1);
    assert_eq!(out.reason(), "SourceUnavailable", "{}", out.all_output());
    // The run did print the URL (host and path), just not its credentials.
    assert!(
        out.stdout.contains("/models/missing.bin"),
        "{}",
        out.all_output()
    );
    assert_clean(&out.all_output());
    Ok(())
}

/// The same URL, malformed, in the `URI` file of a credentials directory (a Secret): the
/// configuration error names the setting and the file, and quotes nothing of the value.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_uri_from_a_secret_is_not_echoed() -> anyhow::Result<()> {
    let mut job = SyncJob::new()?;
    let bad = presigned("127.0.0.1:1").replacen("http://", "htps:/", 1);
    let file = job.file("uri-secret/URI", bad.as_bytes())?;
    let dir = file.parent().unwrap().display().to_string();
    let dest = tempfile::tempdir()?;
    job.env("MODEL_SYNC_SOURCE_TYPE", "uri")
        .env("MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH", dir)
        .pvc_destination(dest.path())
        .registry("http://127.0.0.1:1", None)
        .create_model("m", "v1")?;
    let out = job.run().await?;
    out.expect_exit(2);
    assert_eq!(out.reason(), "InvalidConfiguration", "{}", out.all_output());
    assert!(
        out.termination.contains("MODEL_SYNC_SOURCE_URI"),
        "{}",
        out.all_output()
    );
    assert!(
        out.termination.contains("not shown"),
        "{}",
        out.all_output()
    );
    assert_clean(&out.all_output());
    assert!(!out.all_output().contains("alice"), "{}", out.all_output());
    Ok(())
}

/// A PVC whose `path` is a symlink to the pod's own files (here: a directory standing for a
/// mounted Secret): refused before anything is read or registered.
#[tokio::test(flavor = "multi_thread")]
async fn a_pvc_source_whose_root_is_a_symlink_is_refused() -> anyhow::Result<()> {
    let w = World::start().await?;
    let secrets = tempfile::tempdir()?;
    std::fs::write(secrets.path().join("token"), "PLANTED-POD-SECRET")?;
    let pvc = tempfile::tempdir()?;
    std::os::unix::fs::symlink(secrets.path(), pvc.path().join("models"))?;
    let dest = tempfile::tempdir()?;
    let mut job = w.job()?;
    job.pvc_source(&pvc.path().join("models"))
        .pvc_destination(dest.path())
        .create_model("escape", "v1")?;
    let out = job.run().await?;
    out.expect_exit(2);
    assert!(
        out.termination.contains("symbolic link"),
        "{}",
        out.all_output()
    );
    assert_eq!(std::fs::read_dir(dest.path())?.count(), 0);
    assert!(w.mr.registered_models().is_empty());
    Ok(())
}

/// update_artifact of a LIVE artifact, killed with SIGKILL mid-transfer (nothing can be
/// recorded then), then retried with a source that fails: the artifact stays LIVE at its old
/// URI throughout; only a published transfer replaces the URI.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_artifact_survives_a_hard_kill_and_a_failed_retry() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut model = Model::small(31);
    model
        .files
        .insert("big.bin".into(), pseudo_random(131, 16 << 20));
    model.put_s3(&w.s3, "models", "kill").await?;
    let s3: std::net::SocketAddr = w.s3.endpoint().trim_start_matches("http://").parse()?;
    let proxy = FlakyProxy::start(s3).await?;
    let (_, _, aid) = w.seed_artifact("kill").await?;
    registry_client(&w.mr)?
        .update_model_artifact(
            &aid,
            &registry_client::ModelArtifactUpdate::uri_and_state(
                "s3://old/location",
                registry_client::ArtifactState::Live,
            ),
        )
        .await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "kill")
        .env("MODEL_SYNC_SOURCE_AWS_ENDPOINT", proxy.url())
        .env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid.clone());
    w.to_oci(&mut job, "kill/model", "v1")?;
    proxy.cut_after(2 << 20, Duration::from_secs(3600));
    let child = job.spawn().await?;
    let pid = child.id().expect("pid");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while proxy.cuts() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(proxy.cuts() > 0, "the transfer never started");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await??;
    assert_eq!(out.status.code(), None, "killed by a signal");
    let a = artifact(&w.mr, &aid);
    assert_eq!(a["state"], "LIVE", "after the kill: {a}");
    assert_eq!(a["uri"], "s3://old/location");

    // The retry fails (the model is gone): still LIVE at the old URI, with the error noted.
    let mut retry = w.job()?;
    retry
        .s3_source(&w.s3, "models", "kill-gone")
        .env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid.clone());
    w.to_oci(&mut retry, "kill/model", "v1")?;
    let out = retry.run().await?;
    out.expect_exit(1);
    let a = artifact(&w.mr, &aid);
    assert_eq!(a["state"], "LIVE", "after the failed retry: {a}");
    assert_eq!(a["uri"], "s3://old/location");
    assert!(
        a["customProperties"]["model_sync_error"]["string_value"]
            .as_str()
            .unwrap_or_default()
            .starts_with("SourceUnavailable:"),
        "{a}"
    );
    Ok(())
}
