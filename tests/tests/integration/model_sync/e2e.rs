//! model-sync end to end: the binary as a Job runs it, against the real test servers.
//!
//! Every source × destination pair, every intent, both registry API prefixes, the auth+TLS OCI
//! registry with docker config credentials, SigV4 S3 with the data-connection directory layout,
//! a bearer-token registry, images pulled back and compared byte for byte, deterministic
//! digests, and idempotent reruns.
use std::path::PathBuf;

use mro_tests::model_registry::{ModelRegistryStandIn, PREFIX_V1, PREFIX_V1ALPHA3, StandInOptions};
use mro_tests::model_sync::{Model, SyncJob, pull_image, push_base_image};
use mro_tests::oci_registry::OciRegistry;
use mro_tests::s3::S3Server;
use serde_json::{Value, json};

/// Servers shared by one test.
pub(super) struct World {
    pub s3: S3Server,
    pub mr: ModelRegistryStandIn,
    pub oci: OciRegistry,
    pub base_image: String,
}

impl World {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(StandInOptions::default(), false).await
    }

    pub async fn start_with(options: StandInOptions, auth_tls: bool) -> anyhow::Result<Self> {
        mro_tests::init();
        let s3 = S3Server::start().await?;
        let mr = ModelRegistryStandIn::start(options).await?;
        let oci = if auth_tls {
            OciRegistry::start_auth_tls().await?
        } else {
            OciRegistry::start_plain().await?
        };
        let base_image = push_base_image(&oci).await?;
        Ok(Self {
            s3,
            mr,
            oci,
            base_image,
        })
    }

    /// A job wired to this world's registry (with its token, if any).
    pub fn job(&self) -> anyhow::Result<SyncJob> {
        let mut job = SyncJob::new()?;
        job.registry(&self.mr.base_url(), self.mr.token());
        Ok(job)
    }

    /// OCI destination plus the offline base image.
    pub fn to_oci(&self, job: &mut SyncJob, repo: &str, tag: &str) -> anyhow::Result<()> {
        job.oci_destination(&self.oci, repo, tag)?;
        job.env(
            "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
            self.base_image.clone(),
        );
        Ok(())
    }

    /// Creates a registered model, a version and a PENDING artifact, like the UI does before it
    /// starts an update_artifact job. Returns (model id, version id, artifact id).
    pub async fn seed_artifact(&self, name: &str) -> anyhow::Result<(String, String, String)> {
        let client = registry_client(&self.mr)?;
        let m = client
            .create_registered_model(&registry_client::RegisteredModelCreate {
                name: name.to_owned(),
                ..Default::default()
            })
            .await?;
        let v = client
            .create_model_version(&registry_client::ModelVersionCreate {
                name: "v1".into(),
                registered_model_id: m.id.clone(),
                ..Default::default()
            })
            .await?;
        let mut props = registry_client::CustomProperties::new();
        props.insert("owner-note".into(), "keep me".into());
        let a = client
            .create_model_version_artifact(
                &v.id,
                &registry_client::ModelArtifactCreate {
                    name: Some(format!("{name}-artifact")),
                    custom_properties: props,
                    fields: registry_client::ModelArtifactFields {
                        state: Some(registry_client::ArtifactState::Pending),
                        uri: Some("placeholder://not-yet".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?;
        Ok((m.id, v.id, a.id))
    }
}

/// A registry client for a stand-in (its token when it has one).
pub(super) fn registry_client(
    mr: &ModelRegistryStandIn,
) -> anyhow::Result<registry_client::Client> {
    let mut cfg = registry_client::ClientConfig::new(&mr.base_url())?;
    if let Some(t) = mr.token() {
        cfg = cfg.with_token(registry_client::BearerToken::new(t));
    }
    Ok(registry_client::Client::new(cfg)?)
}

/// The one artifact of the stand-in with this id, as JSON.
pub(super) fn artifact(mr: &ModelRegistryStandIn, id: &str) -> Value {
    mr.artifacts()
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap_or(Value::Null)
}

/// Checks the success document and the registry state of a create intent; returns the doc.
pub(super) fn check_created(
    mr: &ModelRegistryStandIn,
    out: &mro_tests::model_sync::JobOutput,
    model: &Model,
    model_name: &str,
    version_name: &str,
) -> Value {
    out.expect_exit(0);
    let doc = out.json();
    assert_eq!(doc["bytes"], json!(model.total_bytes()), "{doc}");
    assert_eq!(doc["files"], json!(model.files.len()), "{doc}");
    let model_id = doc["registeredModelId"]
        .as_str()
        .expect("model id")
        .to_owned();
    let version_id = doc["modelVersionId"]
        .as_str()
        .expect("version id")
        .to_owned();
    let artifact_id = doc["modelArtifactId"]
        .as_str()
        .expect("artifact id")
        .to_owned();
    assert_eq!(doc["RegisteredModel"]["id"], model_id.as_str());
    assert_eq!(doc["ModelVersion"]["id"], version_id.as_str());
    assert_eq!(doc["ModelArtifact"]["id"], artifact_id.as_str());
    assert!(doc["durationSeconds"].as_f64().is_some());
    let models = mr.registered_models();
    let m = models
        .iter()
        .find(|m| m["id"] == model_id.as_str())
        .expect("model");
    assert_eq!(m["name"], model_name);
    let versions = mr.model_versions();
    let v = versions
        .iter()
        .find(|v| v["id"] == version_id.as_str())
        .expect("version");
    assert_eq!(v["name"], version_name);
    assert_eq!(v["registeredModelId"], model_id.as_str());
    assert_eq!(v["state"], "LIVE");
    let arts = mr.version_artifacts(&version_id);
    assert_eq!(arts.len(), 1, "{arts:?}");
    let a = &arts[0];
    assert_eq!(a["id"], artifact_id.as_str());
    assert_eq!(a["state"], "LIVE");
    assert_eq!(a["uri"], doc["uri"]);
    assert_eq!(a["artifactType"], "model-artifact");
    // Created LIVE in one request: never UNKNOWN then PATCHed.
    let artifact_writes: Vec<_> = mr
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.resource_path().contains("artifact") && r.status < 300)
        .collect();
    assert!(
        artifact_writes
            .iter()
            .all(|r| r.body.as_ref().is_none_or(|b| b["state"] != "UNKNOWN")),
        "{artifact_writes:?}"
    );
    doc
}

// ---- source × destination pairs --------------------------------------------------------------

/// Where the model comes from in a pair test.
#[derive(Clone, Copy, Debug)]
pub(super) enum From {
    S3,
    Oci,
    Uri,
    Pvc,
}

/// Where it goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum To {
    S3,
    Oci,
    Pvc,
}

/// Stages `model` at the source and configures the job to read it.
async fn stage_source(
    w: &World,
    job: &mut SyncJob,
    from: From,
    model: &Model,
    name: &str,
    http: &mut Option<mro_tests::http_files::HttpFileServer>,
) -> anyhow::Result<()> {
    match from {
        From::S3 => {
            model.put_s3(&w.s3, "models", name).await?;
            job.s3_source(&w.s3, "models", name);
        }
        From::Pvc => {
            let dir = job.dir().join("source-pvc");
            model.write_dir(&dir)?;
            job.pvc_source(&dir);
        }
        From::Uri => {
            let server = mro_tests::http_files::HttpFileServer::start().await?;
            server.write_file(&format!("{name}.tar"), model.tar()?)?;
            job.uri_source(&server.url_for(&format!("{name}.tar")));
            *http = Some(server);
        }
        From::Oci => {
            // The source image is made by model-sync itself (PVC → OCI), then read back.
            let mut seed = w.job()?;
            let dir = seed.dir().join("seed");
            model.write_dir(&dir)?;
            seed.pvc_source(&dir);
            w.to_oci(&mut seed, &format!("seed/{name}"), "v1")?;
            let (_, _, aid) = w.seed_artifact(&format!("seed-{name}")).await?;
            seed.env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid);
            let out = seed.run().await?;
            out.expect_exit(0);
            let uri = out.json()["uri"].as_str().unwrap_or_default().to_owned();
            let reference = uri.trim_start_matches("oci://").to_owned();
            job.oci_source(&w.oci, &reference)?;
        }
    }
    Ok(())
}

/// What ended up at the destination.
async fn read_destination(
    w: &World,
    to: To,
    doc: &Value,
    dest_dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<Model> {
    match to {
        To::S3 => {
            assert_eq!(doc["uri"], format!("s3://published/{name}"));
            Model::read_s3(&w.s3, "published", name).await
        }
        To::Pvc => {
            assert_eq!(doc["uri"], dest_dir.display().to_string());
            Model::read_dir(dest_dir)
        }
        To::Oci => {
            let uri = doc["uri"].as_str().unwrap_or_default();
            let digest = doc["digest"].as_str().unwrap_or_default();
            assert!(
                uri.starts_with(&format!("oci://{}/pairs/{name}@sha256:", w.oci.host())),
                "{uri}"
            );
            assert!(uri.ends_with(digest), "{uri} vs {digest}");
            let img = pull_image(&w.oci, uri.trim_start_matches("oci://")).await?;
            assert_eq!(img.digest, digest);
            Ok(img.models)
        }
    }
}

/// Runs one create_model transfer for a pair and checks data and registry.
pub(super) async fn pair(from: From, to: To) -> anyhow::Result<()> {
    let w = World::start().await?;
    let name = format!("{from:?}-to-{to:?}").to_lowercase();
    let model = Model::small(name.len() as u64);
    let mut job = w.job()?;
    let mut http = None;
    stage_source(&w, &mut job, from, &model, &name, &mut http).await?;
    let dest_dir: PathBuf = job.dir().join("dest-pvc");
    match to {
        To::S3 => {
            w.s3.create_bucket("published").await?;
            job.s3_destination(&w.s3, "published", &name);
        }
        To::Oci => w.to_oci(&mut job, &format!("pairs/{name}"), "v1")?,
        To::Pvc => {
            job.pvc_destination(&dest_dir);
        }
    }
    job.create_model(&name, "1.0.0")?;
    let out = job.run().await?;
    let doc = check_created(&w.mr, &out, &model, &name, "1.0.0");
    let got = read_destination(&w, to, &doc, &dest_dir, &name).await?;
    assert_eq!(got, model, "{from:?} -> {to:?}: content differs");
    Ok(())
}

macro_rules! pair_tests {
    ($($test:ident: $from:ident -> $to:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $test() -> anyhow::Result<()> {
            pair(From::$from, To::$to).await
        }
    )*};
}

pair_tests! {
    s3_to_oci: S3 -> Oci;
    s3_to_s3: S3 -> S3;
    s3_to_pvc: S3 -> Pvc;
    oci_to_s3: Oci -> S3;
    oci_to_oci: Oci -> Oci;
    oci_to_pvc: Oci -> Pvc;
    uri_to_oci: Uri -> Oci;
    uri_to_s3: Uri -> S3;
    uri_to_pvc: Uri -> Pvc;
    pvc_to_oci: Pvc -> Oci;
    pvc_to_s3: Pvc -> S3;
    pvc_to_pvc: Pvc -> Pvc;
}

// ---- intents × API prefixes -----------------------------------------------------------------

async fn intents_on(options: StandInOptions) -> anyhow::Result<()> {
    let w = World::start_with(options, false).await?;
    let prefix = if w.mr.prefixes().contains(&PREFIX_V1) {
        PREFIX_V1
    } else {
        PREFIX_V1ALPHA3
    };
    let model = Model::small(7);
    model.put_s3(&w.s3, "models", "iris").await?;

    // create_model
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "iris");
    w.to_oci(&mut job, "intents/iris", "v1")?;
    job.create_model("iris", "v1")?;
    let out = job.run().await?;
    let doc = check_created(&w.mr, &out, &model, "iris", "v1");
    let model_id = doc["registeredModelId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Every call used the negotiated prefix; on an older server the only v1 request is the
    // probe that found it missing.
    for r in w.mr.requests() {
        if r.prefix() != Some(prefix) {
            assert_eq!(r.prefix(), Some(PREFIX_V1), "{r:?}");
            assert_eq!((r.method.as_str(), r.status), ("GET", 404), "{r:?}");
            assert_eq!(r.resource_path(), "/registered_models", "{r:?}");
        }
    }
    // Metadata made it to every entity.
    let a = artifact(&w.mr, doc["modelArtifactId"].as_str().unwrap_or_default());
    assert_eq!(a["modelFormatName"], "onnx");
    assert_eq!(a["modelFormatVersion"], "1");
    assert_eq!(a["customProperties"]["accuracy"]["double_value"], 0.9);
    assert_eq!(a["customProperties"]["size"]["int_value"], "3");
    let v =
        w.mr.model_versions()
            .into_iter()
            .find(|v| v["id"] == doc["modelVersionId"])
            .unwrap_or_default();
    assert_eq!(v["author"], "tester");

    // create_version by id (flag) and by name (metadata)
    for (i, by_name) in [false, true].into_iter().enumerate() {
        let version = format!("v{}", i + 2);
        let mut job = w.job()?;
        job.s3_source(&w.s3, "models", "iris");
        w.to_oci(&mut job, "intents/iris", &version)?;
        job.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_version");
        if by_name {
            job.metadata(&[
                ("RegisteredModel.name", "iris"),
                ("ModelVersion.name", &version),
            ])?;
        } else {
            job.env("MODEL_SYNC_MODEL_ID", model_id.clone())
                .metadata(&[("ModelVersion.name", &version)])?;
        }
        let out = job.run().await?;
        let doc = check_created(&w.mr, &out, &model, "iris", &version);
        assert_eq!(doc["registeredModelId"], model_id.as_str());
        assert_eq!(doc["intent"], "create_version");
    }

    // update_artifact
    let (mid, vid, aid) = w.seed_artifact("pending-one").await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "iris");
    w.to_oci(&mut job, "intents/pending", "v1")?;
    job.env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid.clone())
        .env("MODEL_SYNC_MODEL_ID", mid.clone())
        .env("MODEL_SYNC_MODEL_VERSION_ID", vid.clone());
    w.mr.clear_requests();
    let out = job.run().await?;
    out.expect_exit(0);
    let doc = out.json();
    assert_eq!(doc["intent"], "update_artifact");
    assert_eq!(doc["modelArtifactId"], aid.as_str());
    assert_eq!(doc["ModelArtifact"]["id"], aid.as_str());
    assert_eq!(doc["registeredModelId"], mid.as_str());
    let a = artifact(&w.mr, &aid);
    assert_eq!(a["state"], "LIVE");
    assert_eq!(a["uri"], doc["uri"]);
    assert_eq!(
        a["customProperties"]["owner-note"]["string_value"],
        "keep me"
    );
    // GET, PATCH PENDING (before the transfer), PATCH {uri, LIVE} (after).
    let patches: Vec<Value> =
        w.mr.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .filter_map(|r| r.body)
            .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert_eq!(patches[0]["state"], "PENDING");
    assert_eq!(patches[1]["state"], "LIVE");
    assert_eq!(patches[1]["uri"], doc["uri"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_intent_on_a_v1_server() -> anyhow::Result<()> {
    intents_on(StandInOptions::default()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_intent_on_a_v1alpha3_only_server() -> anyhow::Result<()> {
    intents_on(StandInOptions::default().v1alpha3_only()).await
}

// ---- credentials --------------------------------------------------------------------------------

/// Auth+TLS registry (docker config.json, per-run CA), SigV4 S3 through data-connection
/// directories on both ends, bearer-token registry: S3 → OCI (auth) → S3.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_from_files_and_tokens() -> anyhow::Result<()> {
    let token = "mr-token-for-credentials-test-0123456789";
    let w = World::start_with(StandInOptions::default().with_token(token), true).await?;
    let model = Model::small(11);
    model.put_s3(&w.s3, "secure", "bert").await?;

    let mut job = w.job()?;
    job.s3_source_from_data_connection(&w.s3, "secure", "bert")?;
    w.to_oci(&mut job, "secure/bert", "v1")?;
    job.create_model("bert", "v1")?;
    let out = job.run().await?;
    let doc = check_created(&w.mr, &out, &model, "bert", "v1");
    let uri = doc["uri"].as_str().unwrap_or_default();
    let img = pull_image(&w.oci, uri.trim_start_matches("oci://")).await?;
    assert_eq!(img.models, model);
    for secret in [
        token,
        w.s3.secret_key(),
        w.oci.password().unwrap_or("unset"),
    ] {
        assert!(!out.all_output().contains(secret), "secret leaked");
    }
    assert!(
        w.mr.requests().iter().all(|r| r.status != 401),
        "every registry call carries the token"
    );

    // ... and back out of the auth registry into S3 via a data connection.
    w.s3.create_bucket("restored").await?;
    let mut job = w.job()?;
    job.oci_source(&w.oci, uri.trim_start_matches("oci://"))?;
    job.s3_destination_from_data_connection(&w.s3, "restored", "bert")?;
    job.create_model("bert-restored", "v1")?;
    let out = job.run().await?;
    check_created(&w.mr, &out, &model, "bert-restored", "v1");
    assert_eq!(Model::read_s3(&w.s3, "restored", "bert").await?, model);

    // The token can also come from a file named by an environment variable.
    let mut job = w.job()?;
    let token_file = job.file("token/token", format!("{token}\n"))?;
    job.remove_env("MODEL_SYNC_REGISTRY_USER_TOKEN")
        .env("MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR", "MY_TOKEN_PATH")
        .env("MY_TOKEN_PATH", token_file.display().to_string());
    job.s3_source(&w.s3, "secure", "bert");
    job.pvc_destination(&job.dir().join("out"));
    job.create_model("bert-pvc", "v1")?;
    let out = job.run().await?;
    check_created(&w.mr, &out, &model, "bert-pvc", "v1");
    Ok(())
}

// ---- determinism and idempotency ---------------------------------------------------------------

/// The same model pushed twice (two tags, two runs) yields the same manifest digest; a third
/// run to an existing tag recognises every file (S3 fingerprints) and uploads no layer again.
#[tokio::test(flavor = "multi_thread")]
async fn oci_digests_are_deterministic() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(3);
    model.put_s3(&w.s3, "models", "det").await?;
    let mut digests = Vec::new();
    for tag in ["a", "b"] {
        let mut job = w.job()?;
        job.s3_source(&w.s3, "models", "det");
        w.to_oci(&mut job, "det/model", tag)?;
        job.create_model(&format!("det-{tag}"), "v1")?;
        let out = job.run().await?;
        out.expect_exit(0);
        digests.push(out.json()["digest"].as_str().unwrap_or_default().to_owned());
    }
    assert!(digests[0].starts_with("sha256:"), "{digests:?}");
    assert_eq!(digests[0], digests[1]);
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "det");
    w.to_oci(&mut job, "det/model", "b")?;
    job.create_model("det-b", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    assert_eq!(out.json()["digest"], digests[0].as_str());
    assert_eq!(
        out.stderr.matches("layer reused").count(),
        model.files.len(),
        "{}",
        out.all_output()
    );
    let img = pull_image(&w.oci, &w.oci.reference("det/model", "b")).await?;
    assert_eq!(img.digest, digests[0]);
    assert_eq!(img.models, model);
    // Directory structure is kept inside the image.
    assert!(
        img.paths.iter().any(|p| p == "models/tokenizer/vocab.json"),
        "{:?}",
        img.paths
    );
    Ok(())
}

/// Rerunning a finished create_model job (a Job retried after its pod died) reuses the model,
/// version and artifact instead of failing or duplicating them.
#[tokio::test(flavor = "multi_thread")]
async fn rerun_of_a_finished_create_model_reuses_everything() -> anyhow::Result<()> {
    let w = World::start().await?;
    let model = Model::small(5);
    model.put_s3(&w.s3, "models", "again").await?;
    let mut job = w.job()?;
    job.s3_source(&w.s3, "models", "again");
    w.to_oci(&mut job, "again/model", "v1")?;
    job.create_model("again", "v1")?;
    let first = job.run().await?;
    let d1 = check_created(&w.mr, &first, &model, "again", "v1");
    let second = job.run().await?;
    let d2 = check_created(&w.mr, &second, &model, "again", "v1");
    for k in [
        "registeredModelId",
        "modelVersionId",
        "modelArtifactId",
        "uri",
        "digest",
    ] {
        assert_eq!(d1[k], d2[k], "{k}");
    }
    assert_eq!(d2["reused"], true);
    assert_eq!(w.mr.registered_models().len(), 1);
    assert_eq!(w.mr.model_versions().len(), 1);
    assert_eq!(w.mr.artifacts().len(), 1);
    // The marker is a visible custom property on all three.
    let marker = &w.mr.registered_models()[0]["customProperties"]["model_sync_transfer_id"];
    assert!(
        marker["string_value"]
            .as_str()
            .is_some_and(|s| s.starts_with("mst1-"))
    );
    Ok(())
}
