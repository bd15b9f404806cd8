//! Faults: the registry failing during registration, storage servers restarting mid-transfer,
//! interrupted jobs, and reruns after failures. The rule under test: never a corrupt image and
//! never a half-registered model; a rerun of the same Job finishes what an earlier one started.
use std::time::Duration;

use axum::http::Method;
use mro_tests::model_registry::Fault;
use mro_tests::model_sync::{FlakyProxy, Model, pull_image};
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

/// The S3 server goes away mid-transfer (every connection cut, refused for 2 s): the transfer
/// resumes and the image is intact, or the job fails cleanly (no tag, nothing registered).
#[tokio::test(flavor = "multi_thread")]
async fn s3_restart_mid_transfer_never_corrupts() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut model = Model::small(24);
    model.files.insert(
        "big.bin".into(),
        mro_tests::model_sync::pseudo_random(99, 24 << 20),
    );
    model.put_s3(&w.s3, "models", "restart").await?;
    let proxy = FlakyProxy::start(s3_addr(&w)).await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "restart")
        .env("MODEL_SYNC_SOURCE_AWS_ENDPOINT", proxy.url());
    w.to_oci(&mut job, "restart/model", "v1")?;
    job.create_model("restart", "v1")?;
    proxy.cut_after(6 << 20, Duration::from_secs(2));
    let out = job.run().await?;
    assert_eq!(proxy.cuts(), 1, "the cut happened mid-transfer");
    match out.exit_code {
        Some(0) => {
            eprintln!("s3 restart: the transfer resumed");
            let doc = check_created(&w.mr, &out, &model, "restart", "v1");
            let uri = doc["uri"].as_str().unwrap_or_default();
            let img = pull_image(&w.oci, uri.trim_start_matches("oci://")).await?;
            assert_eq!(img.models, model, "image content after the restart");
        }
        _ => {
            eprintln!("s3 restart: the transfer failed cleanly");
            assert_eq!(out.reason(), "SourceUnavailable", "{}", out.all_output());
            assert!(w.mr.registered_models().is_empty(), "nothing registered");
            let pulled = pull_image(&w.oci, &w.oci.reference("restart/model", "v1")).await;
            assert!(
                pulled.is_err(),
                "no image may be tagged after a failed transfer"
            );
            // A rerun (server healthy again) succeeds.
            let out = job.run().await?;
            let doc = check_created(&w.mr, &out, &model, "restart", "v1");
            let img = pull_image(
                &w.oci,
                doc["uri"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("oci://"),
            )
            .await?;
            assert_eq!(img.models, model);
        }
    }
    Ok(())
}

/// The same for the OCI registry during the push (the registry behind a proxy).
#[tokio::test(flavor = "multi_thread")]
async fn oci_registry_restart_mid_push_never_corrupts() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut model = Model::small(25);
    model.files.insert(
        "big.bin".into(),
        mro_tests::model_sync::pseudo_random(98, 24 << 20),
    );
    model.put_s3(&w.s3, "models", "push").await?;
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
    proxy.cut_after(8 << 20, Duration::from_secs(2));
    let out = job.run().await?;
    assert_eq!(proxy.cuts(), 1);
    let real = |uri: &str| {
        uri.trim_start_matches("oci://")
            .replace(&proxy_host, w.oci.host())
    };
    match out.exit_code {
        Some(0) => {
            eprintln!("registry restart: the push resumed");
            let doc = check_created(&w.mr, &out, &model, "push", "v1");
            let img = pull_image(&w.oci, &real(doc["uri"].as_str().unwrap_or_default())).await?;
            assert_eq!(img.models, model);
        }
        _ => {
            eprintln!("registry restart: the push failed cleanly");
            assert_eq!(out.reason(), "DestinationRejected", "{}", out.all_output());
            assert!(w.mr.registered_models().is_empty());
            assert!(
                pull_image(&w.oci, &w.oci.reference("push/model", "v1"))
                    .await
                    .is_err()
            );
        }
    }
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
    model.files.insert(
        "big.bin".into(),
        mro_tests::model_sync::pseudo_random(97, 16 << 20),
    );
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
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(job.termination_path())?)?;
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
