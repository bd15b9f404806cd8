//! The pod being assembled: the transfer container's variables, volumes and mounts, collected
//! while the Job builder and the signing builder walk the spec. Both write into it; neither
//! knows the other.
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EnvVar, KeyToPath, PersistentVolumeClaimVolumeSource,
    ProjectedVolumeSource, SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
use mro_job_contract::Key;

use super::input::BuildInput;

/// Longest lifetime of a projected ServiceAccount token the Job gets. The kubelet rewrites the
/// token file once the token is older than 80% of it, and model-sync reads the file again for
/// every registry request (and right before signing), so a transfer may outlast its token.
pub const DEFAULT_TOKEN_SECONDS: i64 = 3_600;

/// Secret and ConfigMap files: readable by the pod's group (fsGroup) only.
const FILE_MODE: i32 = 0o440;

/// Volumes, mounts and variables, collected while walking the spec.
#[derive(Default)]
pub(super) struct Pod {
    pub(super) env: Vec<EnvVar>,
    pub(super) volumes: Vec<Volume>,
    pub(super) mounts: Vec<VolumeMount>,
}

impl Pod {
    pub(super) fn env(&mut self, name: &str, value: impl Into<String>) {
        self.env.push(EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        });
    }

    /// Sets one of model-sync's settings through its variable.
    pub(super) fn set(&mut self, key: Key, value: impl Into<String>) {
        self.env(key.env(), value);
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

    pub(super) fn claim(&mut self, volume: &str, claim: &str, dir: &str, read_only: bool) {
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
