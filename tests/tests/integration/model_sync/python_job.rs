//! Jobs written for the Python async-upload job, run with the real model-sync binary.
//!
//! The upstream sample Job (`tests/fixtures/python-job/sample_job_s3_to_oci.yaml`: its env, its
//! two Secrets and their mounts) runs unchanged against local servers, pointed at them only by
//! substituting the sample's cluster host names, its registry port and the mount root. Then the
//! variations users hit: the strict TLS mode, the UI back-end's metadata ConfigMaps, the
//! registry log level, a source type that does not work yet, and a failure's termination
//! message.
use std::path::PathBuf;

use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{JobOutput, Model, SyncJob, pull_image, push_base_image_as};
use mro_tests::oci_registry::OciRegistry;
use mro_tests::s3::S3Server;
use serde::Deserialize;
use serde_json::Value;

use super::e2e::{artifact, registry_client};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sample {
    ids: Ids,
    cluster: Hosts,
    secrets: Vec<SecretVolume>,
    args: Vec<String>,
    env: Vec<EnvVar>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ids {
    registered_model: String,
    model_version: String,
    model_artifact: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hosts {
    s3_endpoint: String,
    oci_registry: String,
    registry_address: String,
    registry_port: String,
    base_image_registry: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretVolume {
    mount_path: String,
    #[serde(default)]
    items: Option<Vec<String>>,
    string_data: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct EnvVar {
    name: String,
    value: String,
}

fn fixture(name: &str) -> PathBuf {
    mro_tests::tools::repo_root()
        .join("tests/fixtures/python-job")
        .join(name)
}

fn sample() -> anyhow::Result<Sample> {
    let text = std::fs::read_to_string(fixture("sample_job_s3_to_oci.yaml"))?;
    Ok(serde_saphyr::from_str(&text)?)
}

/// The local servers standing in for the sample's cluster, seeded so that the sample's ids
/// exist: registered model 1, model version 3 under it, model artifact 6 under that.
struct Local {
    s3: S3Server,
    mr: ModelRegistryStandIn,
    oci: OciRegistry,
    sample: Sample,
    model: Model,
}

impl Local {
    async fn start() -> anyhow::Result<Self> {
        mro_tests::init();
        let sample = sample()?;
        let s3_secret = &sample.secrets[0].string_data;
        let s3 = S3Server::start_with_keys(
            &s3_secret["AWS_ACCESS_KEY_ID"],
            &s3_secret["AWS_SECRET_ACCESS_KEY"],
        )
        .await?;
        let bucket = &s3_secret["AWS_S3_BUCKET"];
        s3.create_bucket(bucket).await?;
        let key = env_of(&sample, "MODEL_SYNC_SOURCE_AWS_KEY");
        let model = Model::small(14);
        model.put_s3(&s3, bucket, &key).await?;
        let token = env_of(&sample, "MODEL_SYNC_REGISTRY_USER_TOKEN");
        let mr = ModelRegistryStandIn::start(StandInOptions::default().with_token(token)).await?;
        let oci = OciRegistry::start_plain().await?;
        // The sample's base image, on the local registry under the same repository and tag.
        let base = env_of(&sample, "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE");
        let (repo, tag) = base
            .strip_prefix(&format!("{}/", sample.cluster.base_image_registry))
            .and_then(|r| r.rsplit_once(':'))
            .expect("base image reference");
        push_base_image_as(&oci, repo, tag).await?;
        let c = Self {
            s3,
            mr,
            oci,
            sample,
            model,
        };
        c.seed().await?;
        Ok(c)
    }

    async fn seed(&self) -> anyhow::Result<()> {
        let client = registry_client(&self.mr)?;
        let model = |name: &str| registry_client::RegisteredModelCreate {
            name: name.to_owned(),
            ..Default::default()
        };
        let m = client.create_registered_model(&model("my-model")).await?;
        let other = client.create_registered_model(&model("other")).await?;
        let version = |name: &str, parent: &str| registry_client::ModelVersionCreate {
            name: name.to_owned(),
            registered_model_id: parent.to_owned(),
            ..Default::default()
        };
        let v = client.create_model_version(&version("v1", &m.id)).await?;
        let ov = client
            .create_model_version(&version("v1", &other.id))
            .await?;
        let mut last = String::new();
        for i in 1..=6 {
            let parent = if i == 6 { &v.id } else { &ov.id };
            let a = client
                .create_model_version_artifact(
                    parent,
                    &registry_client::ModelArtifactCreate {
                        name: Some(format!("artifact-{i}")),
                        fields: registry_client::ModelArtifactFields {
                            uri: Some("placeholder://not-yet".into()),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                )
                .await?;
            last = a.id;
        }
        let ids = &self.sample.ids;
        assert_eq!(
            (m.id.as_str(), v.id.as_str(), last.as_str()),
            (
                ids.registered_model.as_str(),
                ids.model_version.as_str(),
                ids.model_artifact.as_str()
            ),
            "the stand-in's ids must match the sample's labels"
        );
        Ok(())
    }

    /// Replaces what names the sample's cluster by the local servers, and the mount root.
    fn localize(&self, job: &SyncJob, value: &str) -> String {
        let c = &self.sample.cluster;
        let root = job.dir().display().to_string();
        value
            .replace(&c.s3_endpoint, &self.s3.endpoint())
            .replace(&c.oci_registry, self.oci.host())
            .replace(&c.registry_address, "http://127.0.0.1")
            .replace(
                &format!("{}/", c.base_image_registry),
                &format!("{}/", self.oci.host()),
            )
            .replace("/opt/creds/", &format!("{root}/opt/creds/"))
    }

    /// A job with exactly the sample's env, args and mounted Secret files, localized.
    fn job(&self) -> anyhow::Result<SyncJob> {
        let mut job = SyncJob::new()?;
        for secret in &self.sample.secrets {
            for (key, value) in &secret.string_data {
                if secret.items.as_ref().is_some_and(|i| !i.contains(key)) {
                    continue;
                }
                let rel = format!("{}/{key}", secret.mount_path.trim_start_matches('/'));
                job.file(&rel, self.localize(&job, value))?;
            }
        }
        for e in &self.sample.env {
            let value = if e.name == "MODEL_SYNC_REGISTRY_PORT" {
                assert_eq!(e.value, self.sample.cluster.registry_port);
                self.mr.addr().port().to_string()
            } else {
                self.localize(&job, &e.value)
            };
            job.env(&e.name, value);
        }
        for a in &self.sample.args {
            job.arg(self.localize(&job, a));
        }
        Ok(job)
    }

    fn artifact_id(&self) -> &str {
        &self.sample.ids.model_artifact
    }
}

fn env_of(sample: &Sample, name: &str) -> String {
    sample
        .env
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.value.clone())
        .unwrap_or_else(|| panic!("{name} not in the sample"))
}

/// What every run must not do: print the sample's registry token.
fn assert_token_hidden(c: &Local, out: &JobOutput) {
    let token = env_of(&c.sample, "MODEL_SYNC_REGISTRY_USER_TOKEN");
    assert!(
        !out.all_output().contains(&token),
        "the registry token leaked\n{}",
        out.all_output()
    );
}

#[tokio::test]
async fn upstream_sample_job_transfers_and_registers() -> anyhow::Result<()> {
    let c = Local::start().await?;
    let out = c.job()?.run().await?;
    out.expect_exit(0);
    assert_token_hidden(&c, &out);
    // The two things that used to be configuration errors are loud warnings now.
    assert!(
        out.stderr.contains("INSECURE") && out.stderr.contains("plain HTTP"),
        "{}",
        out.all_output()
    );
    assert!(out.stderr.contains("anonymously"), "{}", out.all_output());

    let doc = out.json();
    assert_eq!(doc["intent"], "update_artifact", "{doc}");
    assert_eq!(doc["ModelArtifact"]["id"], c.artifact_id(), "{doc}");
    let uri = doc["uri"].as_str().expect("uri").to_owned();
    let a = artifact(&c.mr, c.artifact_id());
    assert_eq!(a["state"], "LIVE", "{a}");
    assert_eq!(a["uri"], uri.as_str());
    let pinned = uri.strip_prefix("oci://").expect("oci uri");
    assert!(
        pinned.starts_with(&format!("{}/my-model@sha256:", c.oci.host())),
        "{uri}"
    );
    // PENDING first, then LIVE, each with the sample's bearer token (the stand-in requires it).
    let states: Vec<Value> =
        c.mr.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .filter_map(|r| r.body.and_then(|b| b.get("state").cloned()))
            .collect();
    assert_eq!(
        states,
        vec![Value::from("PENDING"), Value::from("LIVE")],
        "{:?}",
        c.mr.requests()
    );
    assert!(c.mr.requests().iter().all(|r| r.status != 401));
    // The image holds the model, byte for byte, under /models.
    let image = pull_image(&c.oci, pinned).await?;
    assert_eq!(image.models.files, c.model.files);
    Ok(())
}

/// The opt-in strict mode refuses the sample's token-over-HTTP before anything is contacted.
#[tokio::test]
async fn strict_tls_mode_refuses_the_sample() -> anyhow::Result<()> {
    let c = Local::start().await?;
    c.mr.clear_requests();
    let mut job = c.job()?;
    job.env("MODEL_SYNC_REGISTRY_REQUIRE_TLS", "true");
    let out = job.run().await?;
    out.expect_exit(2);
    assert_eq!(out.reason(), "InvalidConfiguration");
    assert!(
        out.termination
            .contains("--registry-require-tls (MODEL_SYNC_REGISTRY_REQUIRE_TLS) is true"),
        "{}",
        out.all_output()
    );
    assert!(c.mr.requests().is_empty(), "{:?}", c.mr.requests());
    assert_token_hidden(&c, &out);
    Ok(())
}

/// The UI back-end's update_artifact ConfigMap (fixture ui_bff_update_artifact_configmap.yaml)
/// names the artifact only by `ModelArtifact.id`, and its Job sets no artifact id variable.
#[tokio::test]
async fn ui_backend_update_artifact_configmap_names_the_artifact() -> anyhow::Result<()> {
    let c = Local::start().await?;
    let text = std::fs::read_to_string(fixture("ui_bff_update_artifact_configmap.yaml"))?;
    let cm: Value = serde_saphyr::from_str(&text)?;
    let data = cm["data"].as_object().expect("data");
    let mut job = c.job()?;
    job.remove_env("MODEL_SYNC_MODEL_ARTIFACT_ID");
    let entries: Vec<(String, String)> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    job.metadata(&refs)?;
    let out = job.run().await?;
    out.expect_exit(0);
    let a = artifact(&c.mr, c.artifact_id());
    assert_eq!(a["state"], "LIVE", "{a}");
    assert_eq!(out.json()["ModelArtifact"]["id"], c.artifact_id());
    // Nothing of the ConfigMap was ignored.
    assert!(
        !out.stderr.contains("not recognised"),
        "{}",
        out.all_output()
    );
    Ok(())
}

/// `--registry-log-level` sets the level of the registry client's messages: its debug line
/// about the negotiated API prefix shows only with `debug`.
#[tokio::test]
async fn registry_log_level_takes_effect() -> anyhow::Result<()> {
    let c = Local::start().await?;
    let line = "Model Registry API prefix selected";
    let out = c.job()?.run().await?;
    out.expect_exit(0);
    assert!(!out.stderr.contains(line), "{}", out.all_output());
    let mut job = c.job()?;
    job.env("MODEL_SYNC_REGISTRY_LOG_LEVEL", "10"); // logging.DEBUG, as Python spells it
    let out = job.run().await?;
    out.expect_exit(0);
    assert!(out.stderr.contains(line), "{}", out.all_output());
    assert_token_hidden(&c, &out);
    Ok(())
}

/// A failure's termination message reads as a sentence first (the UI back-end shows it as the
/// job's error text), and carries the JSON the operator reads on its last line.
#[tokio::test]
async fn failure_termination_message_has_a_readable_first_line() -> anyhow::Result<()> {
    let c = Local::start().await?;
    let mut job = c.job()?;
    job.env("MODEL_SYNC_SOURCE_AWS_KEY", "no-such-model");
    let out = job.run().await?;
    out.expect_exit(1);
    let (first, last) = out
        .termination
        .split_once('\n')
        .unwrap_or_else(|| panic!("two lines expected\n{}", out.all_output()));
    assert!(
        first.starts_with("SourceUnavailable: ") && first.contains("no-such-model"),
        "{first}"
    );
    assert!(!first.contains('{'), "{first}");
    let doc: Value = serde_json::from_str(last)?;
    assert_eq!(doc["reason"], "SourceUnavailable");
    assert_eq!(doc["intent"], "update_artifact");
    assert_token_hidden(&c, &out);
    Ok(())
}
