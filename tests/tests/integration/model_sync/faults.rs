//! Faults: the registry failing during registration, storage servers restarting mid-transfer,
//! interrupted jobs, and reruns after failures. The rule under test: never a corrupt image and
//! never a half-registered model; a rerun of the same Job finishes what an earlier one started.
use std::time::Duration;

use axum::http::Method;
use mro_tests::model_registry::Fault;
use mro_tests::model_sync::{FlakyProxy, Model, pseudo_random, pull_image};
use serde_json::Value;

use super::e2e::{World, artifact, check_created};

/// The S3 server's socket address (for a proxy in front of it).
fn s3_addr(w: &World) -> std::net::SocketAddr {
    w.s3.endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("s3 endpoint is host:port")
}

/// 503s on every registration call, more than the client's own five attempts on the first
/// one: the whole sequence is repeated and finishes with exactly one model, version, artifact.
#[tokio::test(flavor = "multi_thread")]
async fn registry_503s_during_registration_are_retried() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(21);
    model.put_s3(&w.s3, "models", "flaky").await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "flaky");
    w.to_oci(&mut job, "flaky/model", "v1")?;
    job.create_model("flaky", "v1")?;
    // Queued now; the pre-checks (GETs of other paths) do not consume them.
    w.mr.inject(
        Fault::respond("/registered_models", 503)
            .method(Method::POST)
            .times(7),
    );
    w.mr.inject(
        Fault::respond("/model_version", 502)
            .method(Method::GET)
            .times(2),
    );
    w.mr.inject(
        Fault::respond("/model_versions", 503)
            .method(Method::POST)
            .times(3),
    );
    let out = job.run().await?;
    check_created(&w.mr, &out, &model, "flaky", "v1");
    assert_eq!(w.mr.pending_faults(), 0, "every injected fault was hit");
    assert_eq!(w.mr.registered_models().len(), 1);
    assert_eq!(w.mr.model_versions().len(), 1);
    assert_eq!(w.mr.artifacts().len(), 1);
    Ok(())
}

/// Registration that keeps failing: RegistryRejected (exit 1) naming the transferred URI; the
/// model created before the failure is archived with the error; a rerun once the registry is
/// healthy revives and reuses it instead of conflicting or duplicating.
#[tokio::test(flavor = "multi_thread")]
async fn registration_failing_for_good_then_rerun_reuses() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(22);
    model.put_s3(&w.s3, "models", "stuck").await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "stuck");
    w.to_oci(&mut job, "stuck/model", "v1")?;
    job.create_model("stuck", "v1")?;
    w.mr.inject(
        Fault::respond("/model_versions", 503)
            .method(Method::POST)
            .times(10_000),
    );
    let out = job.run().await?;
    out.expect_exit(1);
    assert_eq!(out.reason(), "RegistryRejected", "{}", out.all_output());
    let message = out.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("was transferred to oci://"), "{message}");
    assert!(message.contains("503"), "{message}");
    let models = w.mr.registered_models();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["state"], "ARCHIVED", "{:?}", models[0]);
    let recorded = models[0]["customProperties"]["model_sync_error"]["string_value"]
        .as_str()
        .unwrap_or_default();
    assert!(recorded.starts_with("RegistryRejected:"), "{recorded}");
    assert!(w.mr.model_versions().is_empty());
    let model_id = models[0]["id"].clone();

    w.mr.clear_faults();
    let out = job.run().await?;
    let doc = check_created(&w.mr, &out, &model, "stuck", "v1");
    assert_eq!(doc["registeredModelId"], model_id);
    assert_eq!(doc["reused"], true);
    let models = w.mr.registered_models();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["state"], "LIVE");
    assert!(
        models[0]["customProperties"]
            .get("model_sync_error")
            .is_none()
    );
    Ok(())
}

/// The artifact POST fails for good: the version (ours) is archived; the rerun revives it.
#[tokio::test(flavor = "multi_thread")]
async fn artifact_creation_failing_archives_the_version_until_a_rerun() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(23);
    model.put_s3(&w.s3, "models", "halfway").await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "halfway");
    w.to_oci(&mut job, "halfway/model", "v1")?;
    job.create_model("halfway", "v1")?;
    // Model and version ids share a sequence in the stand-in: model 1, version 2.
    w.mr.inject(
        Fault::respond("/model_versions/2/artifacts", 400)
            .method(Method::POST)
            .times(10_000),
    );
    let out = job.run().await?;
    out.expect_exit(1);
    assert_eq!(out.reason(), "RegistryRejected");
    let versions = w.mr.model_versions();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["id"], "2", "stand-in id layout changed");
    assert_eq!(versions[0]["state"], "ARCHIVED");
    assert!(w.mr.artifacts().is_empty());
    w.mr.clear_faults();
    let out = job.run().await?;
    check_created(&w.mr, &out, &model, "halfway", "v1");
    assert_eq!(w.mr.model_versions()[0]["state"], "LIVE");
    Ok(())
}

/// Bytes in flight before a server is restarted: well into the big file, far from its end.
const RESTART_AFTER: u64 = 8 << 20;

/// Waits until `proxy` has forwarded `bytes` (the transfer is under way).
async fn wait_forwarded(proxy: &FlakyProxy, bytes: u64) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while proxy.forwarded() < bytes {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the transfer did not start"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// The S3 server process is restarted mid-read (connections cut, nothing listening for 2 s, then
/// back on the same address and data): the read resumes with a range request, so the job
/// succeeds, the image is intact, and S3 delivered barely more than the model's bytes (the big
/// file was not read again from its start).
#[tokio::test(flavor = "multi_thread")]
async fn s3_server_restart_mid_read_resumes_with_range() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut s3 = super::s3::RestartableS3::start()?;
    let mut model = Model::small(24);
    model
        .files
        .insert("big.bin".into(), pseudo_random(99, 64 << 20));
    let client = s3.client();
    client.create_bucket().bucket("models").send().await?;
    for (path, data) in &model.files {
        client
            .put_object()
            .bucket("models")
            .key(format!("restart/{path}"))
            .body(aws_sdk_s3::primitives::ByteStream::from(data.clone()))
            .send()
            .await?;
    }
    // Only counts bytes; it never cuts by itself.
    let proxy = FlakyProxy::start(s3.addr()).await?;
    let mut job = w.job()?;
    job.env("MODEL_SYNC_SOURCE_TYPE", "s3")
        .env("MODEL_SYNC_SOURCE_AWS_BUCKET", "models")
        .env("MODEL_SYNC_SOURCE_AWS_KEY", "restart")
        .env("MODEL_SYNC_SOURCE_AWS_REGION", mro_tests::s3::REGION)
        .env("MODEL_SYNC_SOURCE_AWS_ENDPOINT", proxy.url())
        .env("MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID", s3.access_key())
        .env("MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY", s3.secret_key());
    w.to_oci(&mut job, "restart/model", "v1")?;
    job.create_model("restart", "v1")?;
    let restart = async {
        wait_forwarded(&proxy, RESTART_AFTER).await?;
        s3.stop();
        tokio::time::sleep(Duration::from_secs(2)).await;
        s3.restart()
    };
    let (out, restarted) = tokio::join!(job.run(), restart);
    restarted?;
    let out = out?;
    let doc = check_created(&w.mr, &out, &model, "restart", "v1");
    assert!(
        s3.accepted() >= 1,
        "the rest came from the restarted server"
    );
    assert!(
        out.stderr.contains("reading s3://models/restart/big.bin")
            && out.stderr.contains("resuming from byte"),
        "the read of big.bin was resumed\n{}",
        out.all_output()
    );
    let uri = doc["uri"].as_str().unwrap_or_default();
    let img = pull_image(&w.oci, uri.trim_start_matches("oci://")).await?;
    assert_eq!(img.models, model, "image content after the restart");
    // Requests and responses headers are small; a re-read from byte 0 would add 8+ MiB.
    let read = proxy.forwarded();
    assert!(
        read < model.total_bytes() + (4 << 20),
        "{read} bytes through the S3 proxy for a {}-byte model: not resumed with a range",
        model.total_bytes()
    );
    Ok(())
}

/// The registry process is restarted mid-push (killed, down for 2 s, back with the same storage):
/// the push is retried and the image intact, or the job fails cleanly (no tag, nothing
/// registered) and a rerun succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn oci_registry_restart_mid_push_never_corrupts() -> anyhow::Result<()> {
    let mut w = World::start().await?;
    let mut model = Model::small(25);
    model
        .files
        .insert("big.bin".into(), pseudo_random(98, 64 << 20));
    model.put_s3(&w.s3, "models", "push").await?;
    // Only counts bytes, so the restart lands mid-upload.
    let proxy = FlakyProxy::start(w.oci.host().parse()?).await?;
    let proxy_host = proxy.url().trim_start_matches("http://").to_owned();
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "push");
    w.to_oci(&mut job, "push/model", "v1")?;
    job.env(
        "MODEL_SYNC_DESTINATION_OCI_URI",
        format!("oci://{proxy_host}/push/model:v1"),
    );
    job.create_model("push", "v1")?;
    // A connection the restart leaves hanging is given up by model-sync's 300 s read timeout,
    // then retried: the run may take that long on a loaded machine, so it is given longer.
    job.timeout(Duration::from_secs(600));
    let oci = &mut w.oci;
    let restart = async {
        wait_forwarded(&proxy, RESTART_AFTER).await?;
        oci.restart(Duration::from_secs(2)).await
    };
    let (out, restarted) = tokio::join!(job.run(), restart);
    restarted?;
    let mut out = out?;
    let real = |uri: &str| {
        uri.trim_start_matches("oci://")
            .replace(&proxy_host, w.oci.host())
    };
    if out.exit_code != Some(0) {
        eprintln!("registry restart: the push failed cleanly; rerunning");
        assert_eq!(out.reason(), "DestinationRejected", "{}", out.all_output());
        assert!(w.mr.registered_models().is_empty());
        assert!(
            pull_image(&w.oci, &w.oci.reference("push/model", "v1"))
                .await
                .is_err(),
            "no image may be tagged after a failed push"
        );
        out = job.run().await?;
    } else {
        eprintln!("registry restart: the push was retried");
        assert!(
            out.stderr.contains("transient failure; retrying"),
            "the restart was noticed and retried\n{}",
            out.all_output()
        );
    }
    let doc = check_created(&w.mr, &out, &model, "push", "v1");
    let img = pull_image(&w.oci, &real(doc["uri"].as_str().unwrap_or_default())).await?;
    assert_eq!(img.models, model);
    assert_eq!(w.mr.registered_models().len(), 1);
    Ok(())
}

/// update_artifact whose transfer succeeds but whose final update the Model Registry rejects:
/// the artifact is not left PENDING (ABANDONED, `model_sync_error`, URI untouched). The rerun,
/// against a registry that now answers 503 more often than the client retries a request, reuses
/// every layer pushed by the first run (nothing is sent again), repeats the registration and
/// leaves the artifact LIVE at the same digest-pinned URI with the error removed.
#[tokio::test(flavor = "multi_thread")]
async fn update_artifact_registration_failure_then_rerun_reuses_the_image() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(29);
    model.put_s3(&w.s3, "models", "upd").await?;
    let (_, _, aid) = w.seed_artifact("upd").await?;
    let artifact_path = format!("/model_artifacts/{aid}");
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "upd")
        .env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid.clone());
    w.to_oci(&mut job, "upd/model", "v1")?;
    // The first PATCH (PENDING) goes through, the second ({uri, LIVE}) is refused.
    w.mr.inject(Fault::delay(&artifact_path, Duration::ZERO).method(Method::PATCH));
    w.mr.inject(Fault::respond(&artifact_path, 400).method(Method::PATCH));
    let out = job.run().await?;
    out.expect_exit(1);
    assert_eq!(out.reason(), "RegistryRejected", "{}", out.all_output());
    assert_eq!(w.mr.pending_faults(), 0);
    let message = out.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("was transferred to oci://"), "{message}");
    let a = artifact(&w.mr, &aid);
    assert_eq!(a["state"], "ABANDONED", "{a}");
    assert_eq!(a["uri"], "placeholder://not-yet");
    let recorded = a["customProperties"]["model_sync_error"]["string_value"]
        .as_str()
        .unwrap_or_default();
    assert!(recorded.starts_with("RegistryRejected:"), "{recorded}");
    assert!(
        !out.stderr.contains("layer reused"),
        "first push: nothing to reuse"
    );

    w.mr.inject(Fault::delay(&artifact_path, Duration::ZERO).method(Method::PATCH));
    w.mr.inject(
        Fault::respond(&artifact_path, 503)
            .method(Method::PATCH)
            .times(7),
    );
    let rerun = job.run().await?;
    rerun.expect_exit(0);
    assert_eq!(w.mr.pending_faults(), 0);
    assert_eq!(
        rerun.stderr.matches("layer reused").count(),
        model.files.len(),
        "every layer reused from the first push (S3 fingerprints without ETags)\n{}",
        rerun.all_output()
    );
    let uri = rerun.json()["uri"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(&uri), "same image: {uri} vs {message}");
    let a = artifact(&w.mr, &aid);
    assert_eq!(a["state"], "LIVE");
    assert_eq!(a["uri"], uri.as_str());
    assert!(
        a["customProperties"].get("model_sync_error").is_none(),
        "{a}"
    );
    assert_eq!(
        a["customProperties"]["owner-note"]["string_value"],
        "keep me"
    );
    let img = pull_image(&w.oci, uri.trim_start_matches("oci://")).await?;
    assert_eq!(img.models, model);
    Ok(())
}

/// A create_model whose destination is unreachable registers nothing; the rerun succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn failed_transfer_registers_nothing_and_rerun_succeeds() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(26);
    model.put_s3(&w.s3, "models", "later").await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "later");
    w.to_oci(&mut job, "later/model", "v1")?;
    job.create_model("later", "v1")?;
    let good_uri = job
        .get_env("MODEL_SYNC_DESTINATION_OCI_URI")
        .unwrap_or_default()
        .to_owned();
    job.env(
        "MODEL_SYNC_DESTINATION_OCI_URI",
        format!(
            "oci://127.0.0.1:{}/later/model:v1",
            mro_tests::ports::free_port()
        ),
    );
    let out = job.run().await?;
    out.expect_exit(1);
    assert_eq!(out.reason(), "DestinationRejected", "{}", out.all_output());
    assert!(w.mr.registered_models().is_empty());
    assert!(
        w.mr.requests().iter().all(|r| r.method == "GET"),
        "only pre-checks"
    );
    job.env("MODEL_SYNC_DESTINATION_OCI_URI", good_uri);
    let out = job.run().await?;
    check_created(&w.mr, &out, &model, "later", "v1");
    Ok(())
}

/// update_artifact of a LIVE artifact whose transfer fails: the artifact stays LIVE with its
/// old URI (still valid) and gets `model_sync_error`; a successful rerun clears the error.
#[tokio::test(flavor = "multi_thread")]
async fn failed_update_of_a_live_artifact_keeps_it_live() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(27);
    model.put_s3(&w.s3, "models", "live").await?;
    let (_, _, aid) = w.seed_artifact("live").await?;
    let client = super::e2e::registry_client(&w.mr)?;
    client
        .update_model_artifact(
            &aid,
            &registry_client::ModelArtifactUpdate::uri_and_state(
                "s3://old/location",
                registry_client::ArtifactState::Live,
            ),
        )
        .await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "live-but-missing");
    w.to_oci(&mut job, "live/model", "v1")?;
    job.env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid.clone());
    let out = job.run().await?;
    out.expect_exit(1);
    let a = artifact(&w.mr, &aid);
    assert_eq!(a["state"], "LIVE");
    assert_eq!(a["uri"], "s3://old/location");
    let recorded = a["customProperties"]["model_sync_error"]["string_value"]
        .as_str()
        .unwrap_or_default();
    assert!(recorded.starts_with("SourceUnavailable:"), "{recorded}");
    assert_eq!(
        a["customProperties"]["owner-note"]["string_value"],
        "keep me"
    );

    job.env("MODEL_SYNC_SOURCE_AWS_KEY", "live");
    let out = job.run().await?;
    out.expect_exit(0);
    let a = artifact(&w.mr, &aid);
    assert_eq!(a["state"], "LIVE");
    assert_eq!(a["uri"], out.json()["uri"]);
    assert!(
        a["customProperties"].get("model_sync_error").is_none(),
        "{a}"
    );
    assert_eq!(
        a["customProperties"]["owner-note"]["string_value"],
        "keep me"
    );
    Ok(())
}

/// SIGTERM (the pod being stopped) during a transfer: exit 1, reason Internal naming the signal,
/// and the PENDING artifact is not left PENDING.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_transfer_is_recorded() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut model = Model::small(28);
    model
        .files
        .insert("big.bin".into(), pseudo_random(97, 16 << 20));
    model.put_s3(&w.s3, "models", "term").await?;
    let proxy = FlakyProxy::start(s3_addr(&w)).await?;
    let (_, _, aid) = w.seed_artifact("term").await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "term")
        .env("MODEL_SYNC_SOURCE_AWS_ENDPOINT", proxy.url())
        .env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid.clone());
    w.to_oci(&mut job, "term/model", "v1")?;
    // The S3 server "goes away" for good after a few MiB: the job is stuck retrying.
    proxy.cut_after(2 << 20, Duration::from_secs(3600));
    let child = job.spawn().await?;
    let pid = child.id().expect("pid");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while proxy.cuts() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = model_sync::run::termination::json_document(&std::fs::read_to_string(
        job.termination_path(),
    )?)
    .unwrap_or_default();
    assert_eq!(doc["reason"], "Internal", "{doc}");
    assert!(
        doc["message"]
            .as_str()
            .unwrap_or_default()
            .contains("SIGTERM"),
        "{doc}"
    );
    let a = artifact(&w.mr, &aid);
    assert_eq!(a["state"], "ABANDONED");
    assert!(
        a["customProperties"]["model_sync_error"]["string_value"]
            .as_str()
            .unwrap_or_default()
            .contains("SIGTERM")
    );
    Ok(())
}
