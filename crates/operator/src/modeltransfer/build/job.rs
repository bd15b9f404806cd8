//! The transfer Job: one pod running model-sync, configured only through `MODEL_SYNC_*`
//! variables and mounted files.
//!
//! Credentials are mounted from the referenced Secrets as files and model-sync is pointed at the
//! files; no secret value is ever copied into the Job, the env or the ModelTransfer. The pod meets
//! the "restricted" Pod Security Standard and runs as a fixed non-root user (so images without a
//! numeric `USER` work), with a read-only root filesystem and a scratch `emptyDir` at `/tmp`.
//!
//! Every variable model-sync reads is named through the Job contract's settings table
//! ([`mro_job_contract::Key`]), never spelled out here. The pod's termination message is the only contract with model-sync (see
//! [`crate::modeltransfer::termination`]).
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mro_api::model_transfer::{PvcLocation, S3Location, TransferIntent};
use mro_job_contract::Key;
use mro_job_contract::settings::{SSL_CERT_FILE, Side};

use super::input::BuildInput;
use super::pod::{Pod, config_map_volume, item, token_lifetime, token_volume};
use super::registry::TokenSource;
use super::signing;
use crate::kube_ext::build_error::BuildError;
use crate::kube_ext::pod_security::restricted_security_context;
use crate::modeltransfer::names;

pub const CONTAINER: &str = "model-sync";
/// User and group the pod runs as ("nonroot" of distroless images).
pub const RUN_AS_USER: i64 = 65532;
/// Retries of a failed transfer pod when `spec.job.backoffLimit` is unset.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 2;
/// Size limit of the scratch volume when `spec.job.scratchVolumeSize` is unset: model-sync
/// streams between stores, and stages only what must be unpacked or assembled.
pub const DEFAULT_SCRATCH_SIZE: &str = "20Gi";
pub use super::pod::DEFAULT_TOKEN_SECONDS;

pub const SOURCE_CREDENTIALS_DIR: &str = "/var/run/secrets/model-sync/source";
pub const DESTINATION_CREDENTIALS_DIR: &str = "/var/run/secrets/model-sync/destination";
pub const REGISTRY_TOKEN_DIR: &str = "/var/run/secrets/model-sync/registry-token";
pub const REGISTRY_CA_DIR: &str = "/etc/model-sync/registry-ca";
/// `spec.job.caBundleConfigMapRef`, named by `SSL_CERT_FILE` (model-sync's TLS clients load
/// their roots from it instead of the image's system bundle).
pub const CA_BUNDLE_DIR: &str = "/etc/model-sync/ca-bundle";
pub const CA_BUNDLE_FILE: &str = "ca-bundle.crt";
pub const METADATA_DIR: &str = "/etc/model-metadata";
pub const SOURCE_PVC_DIR: &str = "/mnt/source";
pub const DESTINATION_PVC_DIR: &str = "/mnt/destination";
pub const SCRATCH_DIR: &str = "/tmp";
pub const STORAGE_PATH: &str = "/tmp/model-sync";
/// model-sync's resume journal: on the scratch volume, which a container restart in the same
/// pod keeps, and outside [`STORAGE_PATH`], which a run may clear.
pub const RESUME_JOURNAL: &str = "/tmp/resume-journal.json";
/// Holds the token file's path; model-sync is told its name with
/// `MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR` (the token itself is never in the environment).
pub const TOKEN_PATH_ENV: &str = "MODEL_TRANSFER_REGISTRY_TOKEN_PATH";
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";
/// The Hugging Face token's file in [`SOURCE_CREDENTIALS_DIR`], named by `HF_TOKEN_PATH`.
const HF_TOKEN_FILE: &str = "hf-token";

/// `dir/path`, refusing paths that would leave the volume.
fn pvc_path(field: &str, pvc: &PvcLocation, dir: &str) -> Result<String, BuildError> {
    let rel = pvc.path.as_deref().unwrap_or("").trim_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(BuildError::new(
            format!("{field}.path"),
            "must not contain '..' components",
        ));
    }
    Ok(if rel.is_empty() {
        dir.to_string()
    } else {
        format!("{dir}/{rel}")
    })
}

fn s3(p: &mut Pod, side: Side, dir: &str, s3: &S3Location) {
    p.set(side.storage_type(), "s3");
    p.set(side.aws_bucket(), &s3.bucket);
    p.set(side.aws_key(), &s3.key);
    if let Some(r) = &s3.region {
        p.set(side.aws_region(), r);
    }
    if let Some(e) = &s3.endpoint {
        p.set(side.aws_endpoint(), e);
    }
    // The whole data-connection Secret, one file per key; the spec's bucket, region and
    // endpoint (variables) win over the Secret's (files), as model-sync layers them.
    p.secret(
        &format!("{}-credentials", side.name()),
        &s3.credentials_secret_ref.name,
        None,
        dir,
    );
    p.set(side.s3_credentials_path(), dir);
}

fn oci_credentials(p: &mut Pod, side: Side, dir: &str, secret: &str) {
    p.secret(
        &format!("{}-credentials", side.name()),
        secret,
        item(DOCKER_CONFIG_KEY, DOCKER_CONFIG_KEY),
        dir,
    );
    p.set(
        side.oci_credentials_path(),
        format!("{dir}/{DOCKER_CONFIG_KEY}"),
    );
}

fn source(p: &mut Pod, input: &BuildInput) -> Result<(), BuildError> {
    let src = &input.mt.spec.source;
    let dir = SOURCE_CREDENTIALS_DIR;
    if let Some(l) = &src.s3 {
        s3(p, Side::Source, dir, l);
    } else if let Some(o) = &src.oci {
        p.set(Key::SourceType, "oci");
        p.set(Key::SourceOciUri, &o.uri);
        if o.insecure == Some(true) {
            p.set(Key::SourceOciEnableTlsVerify, "false");
        }
        if let Some(s) = &o.credentials_secret_ref {
            oci_credentials(p, Side::Source, dir, &s.name);
        }
    } else if let Some(u) = &src.uri {
        p.set(Key::SourceType, "uri");
        match &u.credentials_secret_ref {
            // The Secret's `URI` file is the download URL (it may embed credentials, e.g. a
            // pre-signed URL); a variable would override the file, so none is set.
            Some(s) => {
                p.secret("source-credentials", &s.name, item("URI", "URI"), dir);
                p.set(Key::SourceUriCredentialsPath, dir);
            }
            None => p.set(Key::SourceUri, &u.url),
        }
    } else if let Some(h) = &src.hugging_face {
        // model-sync's hf:// source, configured by the variables huggingface_hub reads; the
        // token as a mounted file (HF_TOKEN_PATH), never as a value in the environment.
        p.set(Key::SourceType, "uri");
        p.set(Key::SourceUri, h.display_uri());
        if let Some(e) = &h.endpoint {
            p.env("HF_ENDPOINT", e);
        }
        if let Some(t) = &h.token_secret_ref {
            p.secret(
                "source-credentials",
                &t.name,
                item(&t.key, HF_TOKEN_FILE),
                dir,
            );
            p.env("HF_TOKEN_PATH", format!("{dir}/{HF_TOKEN_FILE}"));
        }
    } else if let Some(c) = &src.pvc {
        let path = pvc_path("spec.source.pvc", c, SOURCE_PVC_DIR)?;
        p.claim("source-pvc", &c.claim_name, SOURCE_PVC_DIR, true);
        p.set(Key::SourceType, "pvc");
        p.set(Key::SourcePath, path);
    } else {
        return Err(BuildError::new(
            "spec.source",
            "exactly one of s3, oci, uri, huggingFace or pvc must be set",
        ));
    }
    Ok(())
}

fn destination(p: &mut Pod, input: &BuildInput) -> Result<(), BuildError> {
    let dst = &input.mt.spec.destination;
    let dir = DESTINATION_CREDENTIALS_DIR;
    if let Some(o) = &dst.oci {
        p.set(Key::DestinationType, "oci");
        p.set(Key::DestinationOciUri, &o.uri);
        if let Some(b) = &o.base_image {
            p.set(Key::DestinationOciBaseImage, b);
        }
        if o.insecure == Some(true) {
            p.set(Key::DestinationOciEnableTlsVerify, "false");
        }
        if let Some(s) = &o.credentials_secret_ref {
            oci_credentials(p, Side::Destination, dir, &s.name);
        }
    } else if let Some(l) = &dst.s3 {
        s3(p, Side::Destination, dir, l);
    } else if let Some(c) = &dst.pvc {
        let path = pvc_path("spec.destination.pvc", c, DESTINATION_PVC_DIR)?;
        p.claim("destination-pvc", &c.claim_name, DESTINATION_PVC_DIR, false);
        p.set(Key::DestinationType, "pvc");
        p.set(Key::DestinationPath, path);
    } else {
        return Err(BuildError::new(
            "spec.destination",
            "exactly one of oci, s3 or pvc must be set",
        ));
    }
    Ok(())
}

fn registry(p: &mut Pod, input: &BuildInput) {
    let w = &input.registry;
    p.set(Key::RegistryServerAddress, &w.address);
    p.set(Key::RegistryPort, w.port.to_string());
    p.set(Key::RegistryIsSecure, w.secure.to_string());
    let token_file = format!("{REGISTRY_TOKEN_DIR}/token");
    match &w.token {
        TokenSource::None => {}
        TokenSource::Secret(s) => {
            p.secret(
                "registry-token",
                &s.name,
                item(&s.key, "token"),
                REGISTRY_TOKEN_DIR,
            );
        }
        TokenSource::ServiceAccount => {
            let v = token_volume("registry-token", w.audience.clone(), token_lifetime(input));
            p.mount(v, REGISTRY_TOKEN_DIR, true);
        }
    }
    if w.token != TokenSource::None {
        p.env(TOKEN_PATH_ENV, token_file);
        p.set(Key::RegistryUserTokenEnvvar, TOKEN_PATH_ENV);
    }
    if let Some(ca) = &w.ca {
        let v = config_map_volume("registry-ca", &ca.name, item(&ca.key, "ca.crt"));
        p.mount(v, REGISTRY_CA_DIR, true);
        p.set(Key::RegistryCustomCa, format!("{REGISTRY_CA_DIR}/ca.crt"));
    }
}

/// The trusted CA bundle of the whole transfer (`spec.job.caBundleConfigMapRef`).
fn ca_bundle(p: &mut Pod, input: &BuildInput) {
    let Some(ca) = input
        .mt
        .spec
        .job
        .as_ref()
        .and_then(|j| j.ca_bundle_config_map_ref.as_ref())
    else {
        return;
    };
    let v = config_map_volume("ca-bundle", &ca.name, item(&ca.key, CA_BUNDLE_FILE));
    p.mount(v, CA_BUNDLE_DIR, true);
    p.env(SSL_CERT_FILE, format!("{CA_BUNDLE_DIR}/{CA_BUNDLE_FILE}"));
}

fn intent(p: &mut Pod, input: &BuildInput) {
    let spec = &input.mt.spec;
    let model = &spec.model;
    p.set(Key::ModelUploadIntent, spec.intent.as_str());
    let rm_id = model.registered_model.as_ref().and_then(|m| m.id.clone());
    let mv_id = model.model_version.as_ref().and_then(|m| m.id.clone());
    let ma_id = model.model_artifact.as_ref().and_then(|m| m.id.clone());
    match spec.intent {
        TransferIntent::CreateModel => {}
        TransferIntent::CreateVersion => {
            if let Some(id) = rm_id {
                p.set(Key::ModelId, id);
            }
        }
        TransferIntent::UpdateArtifact => {
            if let Some(id) = ma_id {
                p.set(Key::ModelArtifactId, id);
            }
            if let Some(id) = mv_id {
                p.set(Key::ModelVersionId, id);
            }
        }
    }
    let cm = config_map_volume("metadata", &names::metadata_config_map_name(input.mt), None);
    p.mount(cm, METADATA_DIR, true);
    p.set(Key::MetadataConfigmapPath, METADATA_DIR);
}

/// Requests 100m CPU / 256Mi, limits 1 CPU / 1Gi: model-sync streams with bounded buffers; the
/// memory limit leaves room for multipart upload parts in flight.
pub fn default_resources() -> ResourceRequirements {
    let q = |cpu: &str, mem: &str| -> BTreeMap<String, Quantity> {
        [
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(mem.into())),
        ]
        .into()
    };
    ResourceRequirements {
        requests: Some(q("100m", "256Mi")),
        limits: Some(q("1", "1Gi")),
        ..Default::default()
    }
}

/// How a failed run is retried.
///
/// With retries, the container restarts in its pod (`OnFailure`): the scratch volume, and the
/// resume journal on it, outlive the failed run, so the next run continues where the
/// destination stopped. The Job controller fails an `OnFailure` Job once its pods' restarts
/// reach `backoffLimit`, which is one run sooner than a `Never` Job with the same limit (it
/// fails after `backoffLimit + 1` failed pods); the limit is raised by one so that
/// `spec.job.backoffLimit` means the same retries either way. Without retries, the pod is never
/// restarted and is kept as the run left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retries {
    pub restart_policy: &'static str,
    pub backoff_limit: i32,
    /// The run keeps a resume journal at [`RESUME_JOURNAL`].
    pub journal: bool,
}

/// The retry settings for `spec.job.backoffLimit` (`retries`) and the destination.
///
/// Only OCI destinations journal in the Job: resuming costs them nothing (a layer's parts go up
/// in order anyway), while model-sync's journaled S3 uploads send each file's parts one at a
/// time instead of several at once, which would slow every S3 upload for the rare kill.
pub fn retries(input: &BuildInput) -> Retries {
    let retries = input
        .mt
        .spec
        .job
        .as_ref()
        .and_then(|j| j.backoff_limit)
        .unwrap_or(DEFAULT_BACKOFF_LIMIT)
        .max(0);
    if retries == 0 {
        return Retries {
            restart_policy: "Never",
            backoff_limit: 0,
            journal: false,
        };
    }
    Retries {
        restart_policy: "OnFailure",
        backoff_limit: retries.saturating_add(1),
        journal: input.mt.spec.destination.oci.is_some(),
    }
}

/// The Job. `spec_hash` is recorded on it, so a later spec change is detected, not applied.
pub fn job(input: &BuildInput, spec_hash: &str) -> Result<Job, BuildError> {
    let mt = input.mt;
    let job_spec = mt.spec.job.clone().unwrap_or_default();
    let retries = retries(input);
    let mut p = Pod::default();
    source(&mut p, input)?;
    destination(&mut p, input)?;
    registry(&mut p, input);
    ca_bundle(&mut p, input);
    signing::signing(&mut p, input)?;
    intent(&mut p, input);
    let scratch = Volume {
        name: "scratch".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(
                job_spec
                    .scratch_volume_size
                    .clone()
                    .unwrap_or_else(|| Quantity(DEFAULT_SCRATCH_SIZE.into())),
            ),
            medium: None,
        }),
        ..Default::default()
    };
    p.mount(scratch, SCRATCH_DIR, false);
    p.set(Key::StoragePath, STORAGE_PATH);
    if retries.journal {
        p.set(Key::ResumeJournal, RESUME_JOURNAL);
    }
    // Libraries that look for a home directory find a writable one.
    p.env("HOME", SCRATCH_DIR);
    p.env.sort_by(|a, b| a.name.cmp(&b.name));

    let mut security = restricted_security_context();
    security.run_as_user = Some(RUN_AS_USER);
    security.run_as_group = Some(RUN_AS_USER);
    let container = Container {
        name: CONTAINER.into(),
        image: Some(input.settings.images.model_sync.clone()),
        env: Some(p.env),
        resources: Some(job_spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(security),
        volume_mounts: Some(p.mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let mut meta = names::owned_meta(mt, names::job_name(mt));
    meta.annotations = Some(
        [(
            names::SPEC_HASH_ANNOTATION.to_string(),
            spec_hash.to_string(),
        )]
        .into(),
    );
    Ok(Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(retries.backoff_limit),
            active_deadline_seconds: job_spec.active_deadline_seconds,
            ttl_seconds_after_finished: job_spec.ttl_seconds_after_finished,
            completions: Some(1),
            parallelism: Some(1),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names::labels(mt)),
                    annotations: Some(names::parent_annotations(mt)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some(retries.restart_policy.into()),
                    service_account_name: Some(input.service_account.clone()),
                    // Only an explicit projected token volume, and only when the registry needs it.
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        fs_group: Some(RUN_AS_USER),
                        // Large model volumes are not re-chowned on every start.
                        fs_group_change_policy: Some("OnRootMismatch".into()),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(p.volumes),
                    node_selector: job_spec.node_selector.clone(),
                    tolerations: job_spec.tolerations.clone(),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}
