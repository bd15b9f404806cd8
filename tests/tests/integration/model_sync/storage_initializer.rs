//! KServe storage-initializer mode: `model-sync <source-uri> <dest-path>`, with the environment a
//! ClusterStorageContainer gives it (`MODEL_REGISTRY_BASE_URL`, `MODEL_REGISTRY_SCHEME`, AWS_*).
use mro_tests::model_registry::StandInOptions;
use mro_tests::model_sync::{Model, SyncJob};

use super::e2e::{World, registry_client};

/// A job in storage-initializer mode writing into `<job dir>/mnt/models`.
fn init_job(w: &World, source_uri: &str) -> anyhow::Result<(SyncJob, std::path::PathBuf)> {
    let mut job = SyncJob::new()?;
    let dest = job.dir().join("mnt/models");
    let addr = w.mr.addr();
    job.remove_env("MODEL_SYNC_STORAGE_PATH")
        .env("MODEL_REGISTRY_BASE_URL", addr.to_string())
        .env("MODEL_REGISTRY_SCHEME", "http")
        .env("AWS_ACCESS_KEY_ID", w.s3.access_key())
        .env("AWS_SECRET_ACCESS_KEY", w.s3.secret_key())
        .env("AWS_DEFAULT_REGION", w.s3.region())
        .env("AWS_ENDPOINT_URL", w.s3.endpoint())
        .arg(source_uri)
        .arg(dest.display().to_string());
    Ok((job, dest))
}

/// Registers `model` (already in S3 at `models/<key>`) as `name`/`version` with an artifact
/// pointing at it, directly through the API.
async fn register(
    w: &World,
    name: &str,
    version: &str,
    uri: &str,
    state: registry_client::ArtifactState,
) -> anyhow::Result<()> {
    let c = registry_client(&w.mr)?;
    let m = match c.find_registered_model_by_name(name).await? {
        Some(m) => m,
        None => {
            c.create_registered_model(&registry_client::RegisteredModelCreate {
                name: name.to_owned(),
                ..Default::default()
            })
            .await?
        }
    };
    let v = match c.find_model_version(version, &m.id).await? {
        Some(v) => v,
        None => {
            c.create_model_version(&registry_client::ModelVersionCreate {
                name: version.to_owned(),
                registered_model_id: m.id.clone(),
                ..Default::default()
            })
            .await?
        }
    };
    c.create_model_version_artifact(
        &v.id,
        &registry_client::ModelArtifactCreate {
            name: Some(format!("{name}-{version}-{}", uri.len())),
            fields: registry_client::ModelArtifactFields {
                uri: Some(uri.to_owned()),
                state: Some(state),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await?;
    // Creation times are in milliseconds: keep "newest" unambiguous.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_uris_resolve_to_the_newest_usable_artifact() -> anyhow::Result<()> {
    use registry_client::ArtifactState::{Live, Pending};
    let w = World::start().await?;
    let v1 = Model::small(31);
    let v2 = Model::small(32);
    v1.put_s3(&w.s3, "models", "iris/v1").await?;
    v2.put_s3(&w.s3, "models", "iris/v2").await?;
    register(&w, "iris", "v1", "s3://models/iris/v1", Live).await?;
    register(&w, "iris", "v2", "s3://models/iris/v2", Live).await?;
    // An upload in progress on v2 must not be picked.
    register(&w, "iris", "v2", "s3://models/iris/not-there-yet", Pending).await?;

    // No version: the newest one (v2).
    let (job, dest) = init_job(&w, "model-registry://iris")?;
    let out = job.run().await?;
    out.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, v2);
    let doc = out.json();
    assert_eq!(doc["uri"], "s3://models/iris/v2");
    assert_eq!(doc["mode"], "storage-initializer");
    assert_eq!(doc["files"], v2.files.len());

    // An explicit version.
    let (job, dest) = init_job(&w, "model-registry://iris/v1")?;
    job.run().await?.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, v1);

    // The registry named in the URI (no MODEL_REGISTRY_BASE_URL).
    let (mut job, dest) = init_job(&w, &format!("model-registry://{}/iris/v1", w.mr.addr()))?;
    job.remove_env("MODEL_REGISTRY_BASE_URL");
    job.run().await?.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, v1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_uri_to_an_oci_modelcar() -> anyhow::Result<()> {
    // A model pushed by model-sync itself, then served to KServe from its digest-pinned URI.
    let w = World::start().await?;
    let model = Model::small(33);
    model.put_s3(&w.s3, "models", "bert").await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "bert");
    w.to_oci(&mut job, "serve/bert", "v1")?;
    job.create_model("bert", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    assert!(
        out.json()["uri"]
            .as_str()
            .unwrap_or_default()
            .contains("@sha256:")
    );

    let (mut job, dest) = init_job(&w, "model-registry://bert/v1")?;
    job.env("MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY", "false");
    let out = job.run().await?;
    out.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, model);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_s3_oci_and_http_uris() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(34);
    model.put_s3(&w.s3, "models", "direct").await?;

    let (job, dest) = init_job(&w, "s3://models/direct")?;
    job.run().await?.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, model);

    // OCI: push with model-sync first (PVC → OCI, update_artifact of a seeded artifact).
    let mut push = w.job()?;
    let src = push.dir().join("src");
    model.write_dir(&src)?;
    push.pvc_source(&src);
    w.to_oci(&mut push, "direct/model", "v1")?;
    let (_, _, aid) = w.seed_artifact("direct").await?;
    push.env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid);
    let pushed = push.run().await?;
    pushed.expect_exit(0);
    let (mut job, dest) = init_job(&w, pushed.json()["uri"].as_str().unwrap_or_default())?;
    job.env("MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY", "false");
    job.run().await?.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, model);

    // http: an archive is unpacked, a plain file is kept as is.
    let http = mro_tests::http_files::HttpFileServer::start().await?;
    http.write_file("model.tar", model.tar()?)?;
    let (job, dest) = init_job(&w, &http.url_for("model.tar"))?;
    job.run().await?.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, model);
    let one = Model::single("model.onnx", 35, 100_000);
    http.write_file("model.onnx", &one.files["model.onnx"])?;
    let (job, dest) = init_job(&w, &http.url_for("model.onnx"))?;
    job.run().await?.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, one);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_initializer_errors() -> anyhow::Result<()> {
    let w = World::start_with(StandInOptions::default(), false).await?;
    register(
        &w,
        "only-pending",
        "v1",
        "s3://models/nothing",
        registry_client::ArtifactState::Pending,
    )
    .await?;
    let cases: [(&str, i32, &str, &str); 5] = [
        ("model-registry://nope", 1, "RegistryRejected", "\"nope\""),
        (
            "model-registry://only-pending/v9",
            1,
            "RegistryRejected",
            "\"v9\"",
        ),
        (
            "model-registry://only-pending/v1",
            1,
            "RegistryRejected",
            "no usable model artifact",
        ),
        ("ftp://x/y", 2, "InvalidConfiguration", "source URI"),
        (
            "s3://models/missing",
            1,
            "SourceUnavailable",
            "s3://models/missing",
        ),
    ];
    for (uri, code, reason, names) in cases {
        let (job, _) = init_job(&w, uri)?;
        let out = job.run().await?;
        out.expect_exit(code);
        assert_eq!(out.reason(), reason, "{uri}: {}", out.all_output());
        assert!(
            out.json()["message"]
                .as_str()
                .unwrap_or_default()
                .contains(names),
            "{uri}: {}",
            out.all_output()
        );
        assert!(!out.all_output().contains(w.s3.secret_key()));
    }
    // A relative destination path.
    let mut job = SyncJob::new()?;
    job.arg("s3://models/x").arg("relative/path");
    let out = job.run().await?;
    out.expect_exit(2);
    assert!(
        out.stderr.contains("destination path"),
        "{}",
        out.all_output()
    );

    // A registry that wants a token this pod does not have: 401, said clearly.
    let secured = World::start_with(
        StandInOptions::default().with_token("si-token-1234567"),
        false,
    )
    .await?;
    let (job, _) = init_job(&secured, "model-registry://iris")?;
    let out = job.run().await?;
    out.expect_exit(1);
    assert_eq!(out.reason(), "RegistryRejected");
    assert!(
        out.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{}",
        out.all_output()
    );
    Ok(())
}

/// `?namespace=ns` is stripped and names the registry Service `{service}.{ns}.{domain}` at the
/// base URL's port, as upstream builds it. The test spells 127.0.0.1 through those three parts
/// (service `127`, namespace `0`, domain `0.1`) so the name needs no DNS.
#[tokio::test(flavor = "multi_thread")]
async fn namespace_query_resolves_the_registry_service() -> anyhow::Result<()> {
    use registry_client::ArtifactState::Live;
    let w = World::start().await?;
    let model = Model::small(41);
    model.put_s3(&w.s3, "models", "ns/iris").await?;
    register(&w, "iris", "v1", "s3://models/ns/iris", Live).await?;
    let port = w.mr.addr().port();
    let (mut job, dest) = init_job(&w, "model-registry://iris/v1?namespace=0")?;
    job.env("MODEL_REGISTRY_BASE_URL", format!("localhost:{port}"))
        .env("MODEL_REGISTRY_SERVICE_NAME", "127")
        .env("MODEL_REGISTRY_CLUSTER_DOMAIN", "0.1");
    let out = job.run().await?;
    out.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, model);
    assert_eq!(
        out.json()["sourceUri"],
        "model-registry://iris/v1?namespace=0"
    );
    // Without the query the same URI goes to MODEL_REGISTRY_BASE_URL (localhost:<port> has no
    // such model when it names another port).
    let (mut job, _) = init_job(&w, "model-registry://iris/v1?namespace=0")?;
    job.env("MODEL_REGISTRY_BASE_URL", "localhost:1")
        .env("MODEL_REGISTRY_SERVICE_NAME", "127")
        .env("MODEL_REGISTRY_CLUSTER_DOMAIN", "0.1");
    let out = job.run().await?;
    out.expect_exit(1);
    assert!(
        out.termination.contains("127.0.0.1:1"),
        "{}",
        out.all_output()
    );
    Ok(())
}

/// `host/model` without a port, as upstream decides it: the host is asked for its registered
/// models; an answer makes the URI host + model, anything else model + version at the base
/// URL. (Driven through the library: a host without a port means port 80, which a test cannot
/// count on binding; the candidate here carries the stand-in's port.)
#[tokio::test(flavor = "multi_thread")]
async fn host_or_model_is_decided_by_asking_the_host() -> anyhow::Result<()> {
    use model_sync::config::{StorageInitializerConfig, StorageUri};
    let w = World::start().await?;
    let mr = url::Url::parse(&w.mr.base_url())?;
    let closed = url::Url::parse("http://127.0.0.1:1/")?;
    let si = |candidate: &url::Url, base: Option<url::Url>| StorageInitializerConfig {
        source_uri: StorageUri::ModelRegistry {
            host: None,
            port: None,
            model: "first".into(),
            version: Some("second".into()),
            namespace: None,
        },
        dest_path: "/mnt/models".into(),
        registry_base_url: base,
        registry_host_candidate: Some(candidate.clone()),
        registry_token: None,
        ca_bundle_pem: None,
        termination_message_path: "/dev/null".into(),
    };
    let run = model_sync::run::storage_init::target;
    // The candidate answers: host `first`, model `second`, latest version.
    let (base, model, version) = run(&si(&mr, Some(closed.clone())), "first", Some("second"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(
        (base, model.as_str(), version),
        (mr.clone(), "second", None)
    );
    // It does not: model `first`, version `second` at the base URL.
    let (base, model, version) = run(&si(&closed, Some(mr.clone())), "first", Some("second"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(
        (base, model.as_str(), version.as_deref()),
        (mr, "first", Some("second"))
    );
    // Neither: a clear error naming the variable to set.
    let e = run(&si(&closed, None), "first", Some("second"))
        .await
        .unwrap_err();
    assert!(e.message.contains("MODEL_REGISTRY_BASE_URL"), "{e}");
    Ok(())
}

/// KServe's CA bundle for storage initializers (`CA_BUNDLE_CONFIGMAP_NAME`, mounted at
/// `CA_BUNDLE_VOLUME_MOUNT_POINT/cabundle.crt`) is trusted: an `oci://` modelcar on the TLS
/// registry downloads with it, and fails certificate verification without it.
#[tokio::test(flavor = "multi_thread")]
async fn kserve_ca_bundle_is_trusted() -> anyhow::Result<()> {
    let w = World::start_with(StandInOptions::default(), true).await?;
    let model = Model::small(42);
    let mut push = w.job()?;
    let src = push.dir().join("src");
    model.write_dir(&src)?;
    push.pvc_source(&src);
    w.to_oci(&mut push, "kserve/ca", "v1")?;
    let (_, _, aid) = w.seed_artifact("kserve-ca").await?;
    push.env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid);
    let pushed = push.run().await?;
    pushed.expect_exit(0);
    let uri = pushed.json()["uri"].as_str().unwrap_or_default().to_owned();

    let with_pull_secret = |job: &mut SyncJob| -> anyhow::Result<()> {
        let cfg = job.file("pull/config.json", w.oci.docker_config_json())?;
        job.env(
            "MODEL_SYNC_SOURCE_OCI_CREDENTIALS_PATH",
            cfg.display().to_string(),
        );
        Ok(())
    };
    let (mut job, dest) = init_job(&w, &uri)?;
    with_pull_secret(&mut job)?;
    let mount = job.dir().join("etc/ssl/custom-certs");
    job.file(
        "etc/ssl/custom-certs/cabundle.crt",
        w.oci.ca_pem().expect("TLS registry CA"),
    )?;
    job.env("CA_BUNDLE_CONFIGMAP_NAME", "global-ca-bundle")
        .env("CA_BUNDLE_VOLUME_MOUNT_POINT", mount.display().to_string());
    let out = job.run().await?;
    out.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, model);

    let (mut job, _) = init_job(&w, &uri)?;
    with_pull_secret(&mut job)?;
    let out = job.run().await?;
    assert_eq!(out.exit_code, Some(1), "{}", out.all_output());
    Ok(())
}

/// KServe's S3 TLS variables for `s3://` URIs, against the S3 server over TLS with a test CA
/// the system trust store does not know: without them the download fails on the certificate;
/// `AWS_CA_BUNDLE` (a file) and KServe's cluster CA bundle (`CA_BUNDLE_CONFIGMAP_NAME`) are
/// trusted; `S3_VERIFY_SSL=0` skips verification with a warning; a named bundle that is not
/// there fails before any byte moves.
#[tokio::test(flavor = "multi_thread")]
async fn kserve_s3_ca_bundle_and_skip_verify_are_honoured() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(43);
    model.put_s3(&w.s3, "models", "tls").await?;
    let tls = w.s3.serve_tls()?;
    let tls_job = || -> anyhow::Result<(SyncJob, std::path::PathBuf)> {
        let (mut job, dest) = init_job(&w, "s3://models/tls")?;
        job.env("AWS_ENDPOINT_URL", tls.endpoint());
        Ok((job, dest))
    };

    // The test CA is not trusted by default.
    let (job, dest) = tls_job()?;
    let out = job.run().await?;
    assert_eq!(out.exit_code, Some(1), "{}", out.all_output());
    assert!(Model::read_dir(&dest).map_or(true, |m| m.files.is_empty()));

    // AWS_CA_BUNDLE names the CA's file.
    let (mut job, dest) = tls_job()?;
    let ca = job.file("certs/s3-ca.pem", tls.ca_pem())?;
    job.env("AWS_CA_BUNDLE", ca.display().to_string());
    job.run().await?.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, model);

    // KServe's cluster CA bundle, mounted as cabundle.crt.
    let (mut job, dest) = tls_job()?;
    let mount = job.dir().join("etc/ssl/custom-certs");
    job.file("etc/ssl/custom-certs/cabundle.crt", tls.ca_pem())?;
    job.env("CA_BUNDLE_CONFIGMAP_NAME", "global-ca-bundle")
        .env("CA_BUNDLE_VOLUME_MOUNT_POINT", mount.display().to_string());
    job.run().await?.expect_exit(0);
    assert_eq!(Model::read_dir(&dest)?, model);

    // A bundle of another CA is not enough: AWS_CA_BUNDLE is what is trusted.
    let (mut job, _) = tls_job()?;
    let other = mro_tests::tls::TestCa::try_new()?;
    let wrong = job.file("certs/other-ca.pem", other.cert_pem())?;
    job.env("AWS_CA_BUNDLE", wrong.display().to_string());
    let out = job.run().await?;
    assert_eq!(out.exit_code, Some(1), "{}", out.all_output());

    // S3_VERIFY_SSL=0: no verification, said loudly.
    let (mut job, dest) = tls_job()?;
    job.env("S3_VERIFY_SSL", "0");
    let out = job.run().await?;
    out.expect_exit(0);
    assert!(out.stderr.contains("S3_VERIFY_SSL"), "{}", out.all_output());
    assert_eq!(Model::read_dir(&dest)?, model);

    // A named bundle that is missing.
    let (mut job, _) = tls_job()?;
    job.env("AWS_CA_BUNDLE", "/nonexistent/s3-ca.pem");
    let out = job.run().await?;
    assert_ne!(out.exit_code, Some(0), "{}", out.all_output());
    assert!(
        out.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("AWS_CA_BUNDLE"),
        "{}",
        out.all_output()
    );
    Ok(())
}
