//! The transfer Job: one pod running model-sync, configured only through `MODEL_SYNC_*`
//! variables and mounted files.
//!
//! Credentials are mounted from the referenced Secrets as files and model-sync is pointed at the
//! files; no secret value is ever copied into the Job, the env or the ModelTransfer. The pod meets
//! the "restricted" Pod Security Standard and runs as a fixed non-root user (so images without a
//! numeric `USER` work), with a read-only root filesystem and a scratch `emptyDir` at `/tmp`.
//!
//! The pod's termination message is the only contract with model-sync (see
//! [`crate::modeltransfer::termination`]).
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, KeyToPath,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mro_api::model_transfer::{PvcLocation, S3Location, TransferIntent};

use super::registry::TokenSource;
use super::{BuildError, BuildInput};
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
/// Longest lifetime of a projected ServiceAccount token the Job gets. The kubelet rewrites the
/// token file once the token is older than 80% of it, and model-sync reads the file again for
/// every registry request (and right before signing), so a transfer may outlast its token.
pub const DEFAULT_TOKEN_SECONDS: i64 = 3_600;

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
/// Holds the token file's path; model-sync is told its name with
/// `MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR` (the token itself is never in the environment).
pub const TOKEN_PATH_ENV: &str = "MODEL_TRANSFER_REGISTRY_TOKEN_PATH";
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";
/// The Hugging Face token's file in [`SOURCE_CREDENTIALS_DIR`], named by `HF_TOKEN_PATH`.
const HF_TOKEN_FILE: &str = "hf-token";
/// Secret and ConfigMap files: readable by the pod's group (fsGroup) only.
const FILE_MODE: i32 = 0o440;

/// Volumes, mounts and variables, collected while walking the spec.
#[derive(Default)]
pub(super) struct Pod {
    env: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

impl Pod {
    pub(super) fn env(&mut self, name: &str, value: impl Into<String>) {
        self.env.push(EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        });
    }

    pub(super) fn mount(&mut self, volume: Volume, path: &str, read_only: bool) {
        self.mounts.push(VolumeMount {
            name: volume.name.clone(),
            mount_path: path.into(),
            read_only: Some(read_only),
            ..Default::default()
        });
        if !self.volumes.iter().any(|v| v.name == volume.name) {
            self.volumes.push(volume);
        }
    }

    pub(super) fn secret(
        &mut self,
        volume: &str,
        secret: &str,
        items: Option<Vec<KeyToPath>>,
        dir: &str,
    ) {
        let v = Volume {
            name: volume.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                items,
                default_mode: Some(FILE_MODE),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.mount(v, dir, true);
    }

    fn claim(&mut self, volume: &str, claim: &str, dir: &str, read_only: bool) {
        // One volume per claim: a claim used as both source and destination is mounted twice.
        let name = match self.volumes.iter().find(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim)
        }) {
            Some(v) => v.name.clone(),
            None => volume.to_string(),
        };
        let v = Volume {
            name,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.into(),
                read_only: None,
            }),
            ..Default::default()
        };
        self.mount(v, dir, read_only);
    }
}

/// A ConfigMap volume (the whole ConfigMap, or `items`), readable by the pod's group only.
pub(super) fn config_map_volume(
    volume: &str,
    config_map: &str,
    items: Option<Vec<KeyToPath>>,
) -> Volume {
    Volume {
        name: volume.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            items,
            default_mode: Some(FILE_MODE),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn item(key: &str, path: &str) -> Option<Vec<KeyToPath>> {
    Some(vec![KeyToPath {
        key: key.into(),
        path: path.into(),
        mode: None,
    }])
}

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

fn s3(p: &mut Pod, side: &str, dir: &str, s3: &S3Location) {
    let upper = side.to_uppercase();
    p.env(&format!("MODEL_SYNC_{upper}_TYPE"), "s3");
    p.env(&format!("MODEL_SYNC_{upper}_AWS_BUCKET"), &s3.bucket);
    p.env(&format!("MODEL_SYNC_{upper}_AWS_KEY"), &s3.key);
    if let Some(r) = &s3.region {
        p.env(&format!("MODEL_SYNC_{upper}_AWS_REGION"), r);
    }
    if let Some(e) = &s3.endpoint {
        p.env(&format!("MODEL_SYNC_{upper}_AWS_ENDPOINT"), e);
    }
    // The whole data-connection Secret, one file per key; the spec's bucket, region and
    // endpoint (variables) win over the Secret's (files), as model-sync layers them.
    p.secret(
        &format!("{side}-credentials"),
        &s3.credentials_secret_ref.name,
        None,
        dir,
    );
    p.env(&format!("MODEL_SYNC_{upper}_S3_CREDENTIALS_PATH"), dir);
}

fn oci_credentials(p: &mut Pod, side: &str, dir: &str, secret: &str) {
    let upper = side.to_uppercase();
    p.secret(
        &format!("{side}-credentials"),
        secret,
        item(DOCKER_CONFIG_KEY, DOCKER_CONFIG_KEY),
        dir,
    );
    p.env(
        &format!("MODEL_SYNC_{upper}_OCI_CREDENTIALS_PATH"),
        format!("{dir}/{DOCKER_CONFIG_KEY}"),
    );
}

fn source(p: &mut Pod, input: &BuildInput) -> Result<(), BuildError> {
    let src = &input.mt.spec.source;
    let dir = SOURCE_CREDENTIALS_DIR;
    if let Some(l) = &src.s3 {
        s3(p, "source", dir, l);
    } else if let Some(o) = &src.oci {
        p.env("MODEL_SYNC_SOURCE_TYPE", "oci");
        p.env("MODEL_SYNC_SOURCE_OCI_URI", &o.uri);
        if o.insecure == Some(true) {
            p.env("MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY", "false");
        }
        if let Some(s) = &o.credentials_secret_ref {
            oci_credentials(p, "source", dir, &s.name);
        }
    } else if let Some(u) = &src.uri {
        p.env("MODEL_SYNC_SOURCE_TYPE", "uri");
        match &u.credentials_secret_ref {
            // The Secret's `URI` file is the download URL (it may embed credentials, e.g. a
            // pre-signed URL); a variable would override the file, so none is set.
            Some(s) => {
                p.secret("source-credentials", &s.name, item("URI", "URI"), dir);
                p.env("MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH", dir);
            }
            None => p.env("MODEL_SYNC_SOURCE_URI", &u.url),
        }
    } else if let Some(h) = &src.hugging_face {
        // model-sync's hf:// source, configured by the variables huggingface_hub reads; the
        // token as a mounted file (HF_TOKEN_PATH), never as a value in the environment.
        p.env("MODEL_SYNC_SOURCE_TYPE", "uri");
        p.env("MODEL_SYNC_SOURCE_URI", h.display_uri());
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
        p.env("MODEL_SYNC_SOURCE_TYPE", "pvc");
        p.env("MODEL_SYNC_SOURCE_PATH", path);
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
        p.env("MODEL_SYNC_DESTINATION_TYPE", "oci");
        p.env("MODEL_SYNC_DESTINATION_OCI_URI", &o.uri);
        if let Some(b) = &o.base_image {
            p.env("MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE", b);
        }
        if o.insecure == Some(true) {
            p.env("MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY", "false");
        }
        if let Some(s) = &o.credentials_secret_ref {
            oci_credentials(p, "destination", dir, &s.name);
        }
    } else if let Some(l) = &dst.s3 {
        s3(p, "destination", dir, l);
    } else if let Some(c) = &dst.pvc {
        let path = pvc_path("spec.destination.pvc", c, DESTINATION_PVC_DIR)?;
        p.claim("destination-pvc", &c.claim_name, DESTINATION_PVC_DIR, false);
        p.env("MODEL_SYNC_DESTINATION_TYPE", "pvc");
        p.env("MODEL_SYNC_DESTINATION_PATH", path);
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
    p.env("MODEL_SYNC_REGISTRY_SERVER_ADDRESS", &w.address);
    p.env("MODEL_SYNC_REGISTRY_PORT", w.port.to_string());
    p.env("MODEL_SYNC_REGISTRY_IS_SECURE", w.secure.to_string());
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
        p.env("MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR", TOKEN_PATH_ENV);
    }
    if let Some(ca) = &w.ca {
        let v = config_map_volume("registry-ca", &ca.name, item(&ca.key, "ca.crt"));
        p.mount(v, REGISTRY_CA_DIR, true);
        p.env(
            "MODEL_SYNC_REGISTRY_CUSTOM_CA",
            format!("{REGISTRY_CA_DIR}/ca.crt"),
        );
    }
}

/// Lifetime of a projected ServiceAccount token: the Job's deadline plus 10 minutes, at least
/// the API's minimum of 600 s and at most [`DEFAULT_TOKEN_SECONDS`] (the kubelet rotates it).
pub(super) fn token_lifetime(input: &BuildInput) -> i64 {
    input
        .mt
        .spec
        .job
        .as_ref()
        .and_then(|j| j.active_deadline_seconds)
        .map_or(DEFAULT_TOKEN_SECONDS, |d| {
            d.saturating_add(600).clamp(600, DEFAULT_TOKEN_SECONDS)
        })
}

/// A projected volume with one ServiceAccount token of the pod's account at `token`; works
/// with `automountServiceAccountToken: false`.
pub(super) fn token_volume(name: &str, audience: Option<String>, seconds: i64) -> Volume {
    Volume {
        name: name.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(FILE_MODE),
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    path: "token".into(),
                    expiration_seconds: Some(seconds),
                    audience,
                }),
                ..Default::default()
            }]),
        }),
        ..Default::default()
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
    p.env("SSL_CERT_FILE", format!("{CA_BUNDLE_DIR}/{CA_BUNDLE_FILE}"));
}

fn intent(p: &mut Pod, input: &BuildInput) {
    let spec = &input.mt.spec;
    let model = &spec.model;
    p.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", spec.intent.as_str());
    let rm_id = model.registered_model.as_ref().and_then(|m| m.id.clone());
    let mv_id = model.model_version.as_ref().and_then(|m| m.id.clone());
    let ma_id = model.model_artifact.as_ref().and_then(|m| m.id.clone());
    match spec.intent {
        TransferIntent::CreateModel => {}
        TransferIntent::CreateVersion => {
            if let Some(id) = rm_id {
                p.env("MODEL_SYNC_MODEL_ID", id);
            }
        }
        TransferIntent::UpdateArtifact => {
            if let Some(id) = ma_id {
                p.env("MODEL_SYNC_MODEL_ARTIFACT_ID", id);
            }
            if let Some(id) = mv_id {
                p.env("MODEL_SYNC_MODEL_VERSION_ID", id);
            }
        }
    }
    let cm = config_map_volume("metadata", &names::metadata_config_map_name(input.mt), None);
    p.mount(cm, METADATA_DIR, true);
    p.env("MODEL_SYNC_METADATA_CONFIGMAP_PATH", METADATA_DIR);
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

/// The Job. `spec_hash` is recorded on it, so a later spec change is detected, not applied.
pub fn job(input: &BuildInput, spec_hash: &str) -> Result<Job, BuildError> {
    let mt = input.mt;
    let job_spec = mt.spec.job.clone().unwrap_or_default();
    let mut p = Pod::default();
    source(&mut p, input)?;
    destination(&mut p, input)?;
    registry(&mut p, input);
    ca_bundle(&mut p, input);
    super::signing::signing(&mut p, input)?;
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
    p.env("MODEL_SYNC_STORAGE_PATH", STORAGE_PATH);
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
            backoff_limit: Some(job_spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)),
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
                    restart_policy: Some("Never".into()),
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
