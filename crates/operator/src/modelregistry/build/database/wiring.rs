//! What the database wiring of both layouts shares: the `DbWiring` being built, the environment
//! variable names and the `$` escaping. Its own file so `embedded` and `mlmd` need not import
//! their parent.
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, EnvVar, EnvVarSource, KeyToPath,
    ProjectedVolumeSource, SecretKeySelector, SecretProjection, SecretVolumeSource, Volume,
    VolumeMount, VolumeProjection,
};
use mro_api::common::{ConfigMapKeyValue, SecretKeyValue};

/// Where database TLS files are mounted in the containers.
pub const DB_TLS_DIR: &str = "/etc/model-registry/db";
/// pgx reads the password from here when the DSN has none.
pub const PGPASSWORD_ENV: &str = "PGPASSWORD";
/// pgx reads the client key's passphrase from here.
pub const PGSSLPASSWORD_ENV: &str = "PGSSLPASSWORD";
/// The MySQL password, only ever expanded into [`MYSQL_DSN_ENV`].
pub const MYSQL_PASSWORD_ENV: &str = "MYSQL_PASSWORD";
/// The server's `--embedmd-database-dsn` as an environment variable.
pub const MYSQL_DSN_ENV: &str = "MR_EMBEDMD_DATABASE_DSN";

/// Flags, env and mounts for one container's database access.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DbWiring {
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
}

/// Doubles every `$`, so Kubernetes passes the text through its `$(VAR)` expansion unchanged.
pub fn escape_expansion(s: &str) -> String {
    s.replace('$', "$$")
}

impl DbWiring {
    pub(super) fn secret_env(&mut self, name: &str, from: &SecretKeyValue) {
        self.env.push(EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: from.name.clone(),
                    key: from.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    pub(super) fn value_env(&mut self, name: &str, value: String) {
        self.env.push(EnvVar {
            name: name.into(),
            value: Some(value),
            ..Default::default()
        });
    }

    /// Mounts one key of a Secret as `<DB_TLS_DIR>/<volume>/<key>` and returns the file path.
    pub(super) fn secret_file(&mut self, volume: &str, from: &SecretKeyValue) -> String {
        self.volumes.push(Volume {
            name: volume.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(from.name.clone()),
                items: Some(vec![KeyToPath {
                    key: from.key.clone(),
                    path: from.key.clone(),
                    mode: None,
                }]),
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Default::default()
        });
        self.mount(volume, &from.key)
    }

    /// Mounts one key of a ConfigMap as `<DB_TLS_DIR>/<volume>/<key>` and returns the file path.
    pub(super) fn config_map_file(&mut self, volume: &str, from: &ConfigMapKeyValue) -> String {
        self.volumes.push(Volume {
            name: volume.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: from.name.clone(),
                items: Some(vec![KeyToPath {
                    key: from.key.clone(),
                    path: from.key.clone(),
                    mode: None,
                }]),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        });
        self.mount(volume, &from.key)
    }

    /// Mounts every key of a ConfigMap and/or Secret in one directory and returns its path.
    pub(super) fn bundle_dir(
        &mut self,
        volume: &str,
        cm: Option<&String>,
        secret: Option<&String>,
    ) -> String {
        let mut sources = Vec::new();
        if let Some(cm) = cm {
            sources.push(VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: cm.clone(),
                    optional: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if let Some(sec) = secret {
            sources.push(VolumeProjection {
                secret: Some(SecretProjection {
                    name: sec.clone(),
                    optional: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        self.volumes.push(Volume {
            name: volume.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                default_mode: Some(0o444),
            }),
            ..Default::default()
        });
        let dir = format!("{DB_TLS_DIR}/{volume}");
        self.mounts.push(VolumeMount {
            name: volume.into(),
            mount_path: dir.clone(),
            read_only: Some(true),
            ..Default::default()
        });
        dir
    }

    pub(super) fn mount(&mut self, volume: &str, file: &str) -> String {
        let dir = format!("{DB_TLS_DIR}/{volume}");
        self.mounts.push(VolumeMount {
            name: volume.into(),
            mount_path: dir.clone(),
            read_only: Some(true),
            ..Default::default()
        });
        format!("{dir}/{file}")
    }
}
