//! A table of bad inputs: each case breaks one thing in an otherwise working Job and asserts the
//! exit code, the stable reason, that stderr and the termination message name the culprit, and
//! that no secret appears anywhere (stdout, stderr, termination message, and what was sent to
//! the registry). Distinctive secrets are planted in every case: the S3 secret key, an OCI
//! password, the registry bearer token.
use std::sync::Arc;

use futures::StreamExt as _;
use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{Model, SyncJob, push_base_image};
use mro_tests::oci_registry::OciRegistry;
use mro_tests::s3::S3Server;

use super::e2e::{artifact, registry_client};

const TOKEN: &str = "PLANTED-REGISTRY-TOKEN-3f9c1e7a";
const WRONG_TOKEN: &str = "PLANTED-WRONG-TOKEN-a81d55c2";
const OCI_PASSWORD: &str = "PLANTED-OCI-PASSWORD-7f3a9b10";
const WRONG_S3_SECRET: &str = "PLANTED-WRONG-S3-SECRET-5d1e0c4b";

struct Bed {
    http: mro_tests::http_files::HttpFileServer,
    s3: S3Server,
    mr: ModelRegistryStandIn,
    oci: OciRegistry,
    secure_oci: OciRegistry,
    base_image: String,
}

type Setup = Box<dyn Fn(&mut SyncJob, &Bed) -> anyhow::Result<()> + Send + Sync>;

struct Case {
    name: &'static str,
    exit: i32,
    reason: &'static str,
    /// Must appear in stderr and in the termination message.
    names: &'static str,
    setup: Setup,
}

fn case(
    name: &'static str,
    exit: i32,
    reason: &'static str,
    names: &'static str,
    setup: impl Fn(&mut SyncJob, &Bed) -> anyhow::Result<()> + Send + Sync + 'static,
) -> Case {
    Case {
        name,
        exit,
        reason,
        names,
        setup: Box::new(setup),
    }
}

const CONFIG: &str = "InvalidConfiguration";

fn cases() -> Vec<Case> {
    vec![
        // ---- configuration (exit 2) ----
        case(
            "no registry address",
            2,
            CONFIG,
            "--registry-server-address",
            |j, _| {
                j.remove_env("MODEL_SYNC_REGISTRY_SERVER_ADDRESS");
                Ok(())
            },
        ),
        case("unknown source type", 2, CONFIG, "--source-type", |j, _| {
            j.env("MODEL_SYNC_SOURCE_TYPE", "ftp");
            Ok(())
        }),
        case(
            "unknown destination type",
            2,
            CONFIG,
            "--destination-type",
            |j, _| {
                j.env("MODEL_SYNC_DESTINATION_TYPE", "gcs");
                Ok(())
            },
        ),
        case(
            "s3 source without bucket",
            2,
            CONFIG,
            "--source-aws-bucket",
            |j, _| {
                j.remove_env("MODEL_SYNC_SOURCE_AWS_BUCKET");
                Ok(())
            },
        ),
        case(
            "s3 source without key",
            2,
            CONFIG,
            "--source-aws-key",
            |j, _| {
                j.remove_env("MODEL_SYNC_SOURCE_AWS_KEY");
                Ok(())
            },
        ),
        case(
            "unknown intent",
            2,
            CONFIG,
            "--model-upload-intent",
            |j, _| {
                j.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "delete_model");
                Ok(())
            },
        ),
        case(
            "update_artifact without artifact id",
            2,
            CONFIG,
            "--model-artifact-id",
            |j, _| {
                j.remove_env("MODEL_SYNC_MODEL_ARTIFACT_ID");
                Ok(())
            },
        ),
        case(
            "non-numeric artifact id",
            2,
            CONFIG,
            "--model-artifact-id",
            |j, _| {
                j.env("MODEL_SYNC_MODEL_ARTIFACT_ID", "abc");
                Ok(())
            },
        ),
        case(
            "create_model without metadata",
            2,
            CONFIG,
            "--metadata-configmap-path",
            |j, _| {
                j.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_model");
                Ok(())
            },
        ),
        case(
            "create_model without version name",
            2,
            CONFIG,
            "ModelVersion.name",
            |j, _| {
                j.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_model")
                    .metadata(&[("RegisteredModel.name", "m")])?;
                Ok(())
            },
        ),
        case(
            "create_model with --model-id",
            2,
            CONFIG,
            "--model-id",
            |j, _| {
                j.create_model("m", "v1")?.env("MODEL_SYNC_MODEL_ID", "4");
                Ok(())
            },
        ),
        case(
            "custom properties not JSON",
            2,
            CONFIG,
            "ModelVersion.custom_properties",
            |j, _| {
                j.create_model("m", "v1")?
                    .metadata(&[("ModelVersion.custom_properties", "{not json")])?;
                Ok(())
            },
        ),
        case(
            "nested custom property",
            2,
            CONFIG,
            "RegisteredModel.custom_properties",
            |j, _| {
                j.create_model("m", "v1")?
                    .metadata(&[("RegisteredModel.custom_properties", r#"{"a": {"b": 1}}"#)])?;
                Ok(())
            },
        ),
        case(
            "uppercase OCI repository",
            2,
            CONFIG,
            "--destination-oci-uri",
            |j, b| {
                j.env(
                    "MODEL_SYNC_DESTINATION_OCI_URI",
                    format!("oci://{}/Models/UPPER:v1", b.oci.host()),
                );
                Ok(())
            },
        ),
        case(
            "S3 endpoint not a URL",
            2,
            CONFIG,
            "--source-aws-endpoint",
            |j, _| {
                j.env("MODEL_SYNC_SOURCE_AWS_ENDPOINT", "not a url");
                Ok(())
            },
        ),
        case(
            "registry port out of range",
            2,
            CONFIG,
            "--registry-port",
            |j, _| {
                j.env("MODEL_SYNC_REGISTRY_PORT", "99999");
                Ok(())
            },
        ),
        case(
            "boolean that is not one",
            2,
            CONFIG,
            "--registry-is-secure",
            |j, _| {
                j.env("MODEL_SYNC_REGISTRY_IS_SECURE", "maybe");
                Ok(())
            },
        ),
        case(
            "token over http in strict mode",
            2,
            CONFIG,
            "--registry-require-tls",
            |j, _| {
                j.env("MODEL_SYNC_REGISTRY_IS_SECURE", "true")
                    .env("MODEL_SYNC_REGISTRY_USER_TOKEN", "tok-strict-1")
                    .env("MODEL_SYNC_REGISTRY_REQUIRE_TLS", "true");
                Ok(())
            },
        ),
        case(
            "relative storage path",
            2,
            CONFIG,
            "--storage-path",
            |j, _| {
                j.env("MODEL_SYNC_STORAGE_PATH", "tmp/model-sync");
                Ok(())
            },
        ),
        case(
            "concurrency out of range",
            2,
            CONFIG,
            "--concurrency",
            |j, _| {
                j.env("MODEL_SYNC_CONCURRENCY", "0");
                Ok(())
            },
        ),
        case(
            "pvc source without path",
            2,
            CONFIG,
            "--source-path",
            |j, _| {
                j.env("MODEL_SYNC_SOURCE_TYPE", "pvc");
                Ok(())
            },
        ),
        case(
            "source equals destination",
            2,
            CONFIG,
            "same location",
            |j, _| {
                let d = j.dir().join("same");
                std::fs::create_dir_all(&d)?;
                j.pvc_source(&d).pvc_destination(&d);
                Ok(())
            },
        ),
        case(
            "docker config not JSON",
            2,
            CONFIG,
            "--destination-oci-credentials-path",
            |j, _| {
                let p = j.file("bad-docker/config.json", "nope{")?;
                j.env(
                    "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH",
                    p.display().to_string(),
                );
                Ok(())
            },
        ),
        case(
            "docker config for another registry",
            2,
            CONFIG,
            "--destination-oci-credentials-path",
            |j, _| {
                let p = j.file(
                    "other-docker/config.json",
                    r#"{"auths":{"other.example:5000":{"auth":"dTpQTEFOVEVELU9DSS1QQVNTV09SRC03ZjNhOWIxMA=="}}}"#,
                )?;
                j.env(
                    "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH",
                    p.display().to_string(),
                );
                j.remove_env("MODEL_SYNC_DESTINATION_OCI_USERNAME")
                    .remove_env("MODEL_SYNC_DESTINATION_OCI_PASSWORD");
                Ok(())
            },
        ),
        case(
            "S3 credentials dir missing",
            2,
            CONFIG,
            "--source-s3-credentials-path",
            |j, _| {
                j.env(
                    "MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH",
                    "/nonexistent/s3-creds",
                );
                Ok(())
            },
        ),
        case(
            "signing requested without sigstore endpoints",
            2,
            CONFIG,
            "SIGSTORE_FULCIO_URL",
            |j, _| {
                j.env("MODEL_SYNC_SIGN", "true");
                Ok(())
            },
        ),
        case(
            "token variable names an unset variable",
            2,
            CONFIG,
            "--registry-user-token-envvar",
            |j, _| {
                j.remove_env("MODEL_SYNC_REGISTRY_USER_TOKEN")
                    .env("MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR", "NO_SUCH_VARIABLE");
                Ok(())
            },
        ),
        case("uri source with ftp", 2, CONFIG, "--source-uri", |j, _| {
            j.uri_source("ftp://files.example/model.tar");
            Ok(())
        }),
        case("unknown flag", 2, CONFIG, "--frobnicate", |j, _| {
            j.arg("--frobnicate").arg("yes");
            Ok(())
        }),
        case(
            "custom CA is not PEM",
            2,
            CONFIG,
            "--registry-custom-ca",
            |j, _| {
                let p = j.file("ca.pem", "this is not a certificate")?;
                j.env("MODEL_SYNC_REGISTRY_CUSTOM_CA", p.display().to_string());
                Ok(())
            },
        ),
        case(
            "metadata path is a file",
            2,
            CONFIG,
            "--metadata-configmap-path",
            |j, _| {
                let p = j.file("metadata-file", "x")?;
                j.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_model").env(
                    "MODEL_SYNC_METADATA_CONFIGMAP_PATH",
                    p.display().to_string(),
                );
                Ok(())
            },
        ),
        // ---- found out at run time (exit 1) ----
        case(
            "wrong S3 secret key",
            1,
            "SourceUnavailable",
            "s3://models/base",
            |j, _| {
                j.env("MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY", WRONG_S3_SECRET);
                Ok(())
            },
        ),
        case(
            "unknown S3 access key",
            1,
            "SourceUnavailable",
            "s3://models/base",
            |j, _| {
                j.env("MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID", "AKIAPLANTEDUNKNOWN");
                Ok(())
            },
        ),
        case(
            "unreachable S3 endpoint",
            1,
            "SourceUnavailable",
            "s3://models/base",
            |j, _| {
                j.env(
                    "MODEL_SYNC_SOURCE_AWS_ENDPOINT",
                    format!("http://127.0.0.1:{}", mro_tests::ports::free_port()),
                );
                Ok(())
            },
        ),
        case(
            "empty S3 prefix",
            1,
            "SourceUnavailable",
            "s3://models/nothing-here",
            |j, _| {
                j.env("MODEL_SYNC_SOURCE_AWS_KEY", "nothing-here");
                Ok(())
            },
        ),
        case(
            "S3 bucket missing",
            1,
            "SourceUnavailable",
            "NoSuchBucket",
            |j, _| {
                j.env("MODEL_SYNC_SOURCE_AWS_BUCKET", "no-such-bucket");
                Ok(())
            },
        ),
        case(
            "wrong registry token",
            1,
            "RegistryRejected",
            "--registry-user-token",
            |j, _| {
                j.env("MODEL_SYNC_REGISTRY_USER_TOKEN", WRONG_TOKEN);
                Ok(())
            },
        ),
        case(
            "unreachable registry",
            1,
            "RegistryRejected",
            "Model Registry",
            |j, _| {
                j.env(
                    "MODEL_SYNC_REGISTRY_PORT",
                    mro_tests::ports::free_port().to_string(),
                );
                Ok(())
            },
        ),
        case(
            "artifact does not exist",
            1,
            "RegistryRejected",
            "--model-artifact-id",
            |j, _| {
                j.env("MODEL_SYNC_MODEL_ARTIFACT_ID", "999999");
                Ok(())
            },
        ),
        case(
            "create_version of a missing model",
            1,
            "RegistryRejected",
            "--model-id",
            |j, _| {
                j.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_version")
                    .env("MODEL_SYNC_MODEL_ID", "999999")
                    .metadata(&[("ModelVersion.name", "v1")])?;
                Ok(())
            },
        ),
        case(
            "create_version of a missing model name",
            1,
            "RegistryRejected",
            "RegisteredModel.name",
            |j, _| {
                j.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_version")
                    .metadata(&[
                        ("RegisteredModel.name", "no-such-model"),
                        ("ModelVersion.name", "v1"),
                    ])?;
                Ok(())
            },
        ),
        case(
            "model name taken",
            1,
            "RegistryRejected",
            "RegisteredModel.name",
            |j, _| {
                j.create_model("taken", "v9")?;
                Ok(())
            },
        ),
        case(
            "version name taken",
            1,
            "RegistryRejected",
            "ModelVersion.name",
            |j, _| {
                j.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_version")
                    .metadata(&[
                        ("RegisteredModel.name", "taken"),
                        ("ModelVersion.name", "v1"),
                    ])?;
                Ok(())
            },
        ),
        case(
            "wrong OCI password",
            1,
            "DestinationRejected",
            "mro-tester",
            |j, b| {
                j.oci_destination(&b.secure_oci, "bad/password", "v1")?;
                j.env(
                    "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
                    b.base_image.clone(),
                )
                .remove_env("MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH")
                .env("MODEL_SYNC_DESTINATION_OCI_USERNAME", "mro-tester")
                .env("MODEL_SYNC_DESTINATION_OCI_PASSWORD", OCI_PASSWORD);
                Ok(())
            },
        ),
        case(
            "base image missing",
            1,
            "DestinationRejected",
            "base image",
            |j, b| {
                j.env(
                    "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
                    format!("{}/base/missing:1", b.oci.host()),
                );
                Ok(())
            },
        ),
        case(
            "http source 404",
            1,
            "SourceUnavailable",
            "missing.tar",
            |j, b| {
                j.uri_source(&b.http.url_for("missing.tar"));
                Ok(())
            },
        ),
    ]
}

/// The base Job: update_artifact of a fresh PENDING artifact, S3 → plain OCI, with every
/// secret setting filled with a planted value.
async fn base_job(bed: &Bed, n: usize) -> anyhow::Result<SyncJob> {
    let client = registry_client(&bed.mr)?;
    let m = client
        .create_registered_model(&registry_client::RegisteredModelCreate {
            name: format!("bad-input-{n}"),
            ..Default::default()
        })
        .await?;
    let v = client
        .create_model_version(&registry_client::ModelVersionCreate {
            name: "v1".into(),
            registered_model_id: m.id,
            ..Default::default()
        })
        .await?;
    let a = client
        .create_model_version_artifact(
            &v.id,
            &registry_client::ModelArtifactCreate {
                name: Some("artifact".into()),
                fields: registry_client::ModelArtifactFields {
                    state: Some(registry_client::ArtifactState::Pending),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let mut job = SyncJob::new()?;
    job.registry(&bed.mr.base_url(), Some(TOKEN))
        .s3_source(&bed.s3, "models", "base")
        .oci_destination(&bed.oci, &format!("bad/input-{n}"), "v1")?;
    job.env(
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
        bed.base_image.clone(),
    )
    .env("MODEL_SYNC_DESTINATION_OCI_USERNAME", "planted-user")
    .env("MODEL_SYNC_DESTINATION_OCI_PASSWORD", OCI_PASSWORD)
    .env("MODEL_SYNC_MODEL_ARTIFACT_ID", a.id)
    .timeout(std::time::Duration::from_secs(180));
    Ok(job)
}

fn secrets(bed: &Bed) -> Vec<String> {
    use base64::Engine as _;
    let b64 =
        |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    vec![
        TOKEN.to_owned(),
        WRONG_TOKEN.to_owned(),
        OCI_PASSWORD.to_owned(),
        WRONG_S3_SECRET.to_owned(),
        bed.s3.secret_key().to_owned(),
        bed.secure_oci.password().unwrap_or("unset").to_owned(),
        b64("planted-user", OCI_PASSWORD),
        b64("mro-tester", OCI_PASSWORD),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_fail_clearly_without_leaking_secrets() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    Model::small(1).put_s3(&s3, "models", "base").await?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default().with_token(TOKEN)).await?;
    let oci = OciRegistry::start_plain().await?;
    let secure_oci = OciRegistry::start_auth_tls().await?;
    let base_image = push_base_image(&oci).await?;
    let http = mro_tests::http_files::HttpFileServer::start().await?;
    let bed = Arc::new(Bed {
        http,
        s3,
        mr,
        oci,
        secure_oci,
        base_image,
    });
    // Names used by the "taken" cases, created by someone else.
    {
        let c = registry_client(&bed.mr)?;
        let m = c
            .create_registered_model(&registry_client::RegisteredModelCreate {
                name: "taken".into(),
                ..Default::default()
            })
            .await?;
        c.create_model_version(&registry_client::ModelVersionCreate {
            name: "v1".into(),
            registered_model_id: m.id,
            ..Default::default()
        })
        .await?;
    }

    let table = cases();
    assert!(table.len() >= 25);
    let results: Vec<(String, Vec<String>)> = futures::stream::iter(table.into_iter().enumerate())
        .map(|(n, c)| {
            let bed = bed.clone();
            async move {
                let problems = match run_case(&bed, n, &c).await {
                    Ok(p) => p,
                    Err(e) => vec![format!("harness error: {e:#}")],
                };
                (c.name.to_owned(), problems)
            }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    let failed: Vec<String> = results
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(name, p)| format!("[{name}]\n  {}", p.join("\n  ")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // Nothing any case sent to the registry carries a secret either.
    let sent = serde_json::to_string(
        &bed.mr
            .requests()
            .iter()
            .map(|r| (r.path.clone(), r.query.clone(), r.body.clone()))
            .collect::<Vec<_>>(),
    )?;
    for s in secrets(&bed) {
        assert!(!sent.contains(&s), "a secret reached the registry");
    }
    Ok(())
}

/// Runs one case; returns what is wrong with the outcome.
async fn run_case(bed: &Bed, n: usize, c: &Case) -> anyhow::Result<Vec<String>> {
    let mut job = base_job(bed, n).await?;
    (c.setup)(&mut job, bed)?;
    let artifact_id = job
        .get_env("MODEL_SYNC_MODEL_ARTIFACT_ID")
        .unwrap_or_default()
        .to_owned();
    let out = job.run().await?;
    let mut problems = Vec::new();
    if out.exit_code != Some(c.exit) {
        problems.push(format!(
            "exit code {:?}, expected {}",
            out.exit_code, c.exit
        ));
    }
    let doc = out.json();
    if doc["reason"] != c.reason {
        problems.push(format!("reason {}, expected {}", doc["reason"], c.reason));
    }
    let message = doc["message"].as_str().unwrap_or_default();
    if !message.contains(c.names) {
        problems.push(format!("termination message does not name {:?}", c.names));
    }
    if !out.stderr.contains(c.names) {
        problems.push(format!("stderr does not name {:?}", c.names));
    }
    if out.termination.len() >= 4096 {
        problems.push("termination message is 4 KiB or more".into());
    }
    for s in secrets(bed) {
        if out.all_output().contains(&s) {
            problems.push(format!("secret {}… leaked", &s[..6.min(s.len())]));
        }
    }
    // A transfer that failed after the PENDING mark is recorded on the artifact.
    if c.exit == 1 && matches!(c.reason, "SourceUnavailable" | "DestinationRejected") {
        let a = artifact(&bed.mr, &artifact_id);
        if a["state"] != "ABANDONED" {
            problems.push(format!(
                "artifact state {} after a failed transfer",
                a["state"]
            ));
        }
        let recorded = a["customProperties"]["model_sync_error"]["string_value"]
            .as_str()
            .unwrap_or_default();
        if !recorded.starts_with(c.reason) {
            problems.push(format!("model_sync_error is {recorded:?}"));
        }
    }
    if !problems.is_empty() {
        problems.push(format!("output:\n{}", indent(&out.all_output())));
    }
    Ok(problems)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
