//! Database wiring of the registry containers: command-line flags, password environment variables
//! (always from Secrets, never inlined) and TLS material mounted from Secrets and ConfigMaps.
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, EnvVar, EnvVarSource, KeyToPath,
    ProjectedVolumeSource, SecretKeySelector, SecretProjection, SecretVolumeSource, Volume,
    VolumeMount, VolumeProjection,
};
use mro_api::common::{ConfigMapKeyValue, SecretKeyValue};
use mro_api::model_registry::{MySqlConfig, PostgresConfig};

use super::BuildError;

/// Where database TLS files are mounted in the containers.
pub const DB_TLS_DIR: &str = "/etc/model-registry/db";
pub const POSTGRES_PASSWORD_ENV: &str = "POSTGRES_PASSWORD";
pub const POSTGRES_SSL_PASSWORD_ENV: &str = "POSTGRES_SSL_PASSWORD";
pub const MYSQL_PASSWORD_ENV: &str = "MYSQL_PASSWORD";

/// Flags, env and mounts for one container's database access.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DbWiring {
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
}

impl DbWiring {
    fn secret_env(&mut self, name: &str, from: &SecretKeyValue) {
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

    /// Mounts one key of a Secret as `<DB_TLS_DIR>/<volume>/<key>` and returns the file path.
    fn secret_file(&mut self, volume: &str, from: &SecretKeyValue) -> String {
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
    fn config_map_file(&mut self, volume: &str, from: &ConfigMapKeyValue) -> String {
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

    fn mount(&mut self, volume: &str, file: &str) -> String {
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

fn password(field: &str, secret: &Option<SecretKeyValue>) -> Result<SecretKeyValue, BuildError> {
    secret.clone().ok_or_else(|| {
        BuildError::new(
            format!("{field}.passwordSecret"),
            "a Secret name and key holding the database password is required",
        )
    })
}

/// PostgreSQL for the registry's embedded database access (current single-container layout).
/// The password reaches the driver through `PGPASSWORD`, so no secret is ever part of the DSN.
pub fn postgres_embedded(pg: &PostgresConfig) -> Result<DbWiring, BuildError> {
    let mut w = DbWiring::default();
    let pass = password("spec.postgres", &pg.password_secret)?;
    w.secret_env(POSTGRES_PASSWORD_ENV, &pass);
    w.secret_env("PGPASSWORD", &pass);
    let mut dsn = Vec::new();
    if let Some(h) = pg.host.as_deref().filter(|h| !h.is_empty()) {
        dsn.push(format!("host={h}"));
    }
    if let Some(a) = pg.host_address.as_deref().filter(|h| !h.is_empty()) {
        dsn.push(format!("hostaddr={a}"));
    }
    dsn.push(format!("port={}", pg.port));
    if let Some(u) = &pg.username {
        dsn.push(format!("user={u}"));
    }
    if let Some(d) = &pg.database {
        dsn.push(format!("dbname={d}"));
    }
    dsn.push(format!("sslmode={}", pg.ssl_mode.as_str()));
    if let Some(s) = &pg.ssl_certificate_secret {
        dsn.push(format!("sslcert={}", w.secret_file("pg-ssl-cert", s)));
    }
    if let Some(s) = &pg.ssl_key_secret {
        dsn.push(format!("sslkey={}", w.secret_file("pg-ssl-key", s)));
    }
    if let Some(s) = &pg.ssl_password_secret {
        w.secret_env(POSTGRES_SSL_PASSWORD_ENV, s);
        dsn.push(format!("sslpassword=$({POSTGRES_SSL_PASSWORD_ENV})"));
    }
    if let Some(s) = &pg.ssl_root_certificate_secret {
        dsn.push(format!(
            "sslrootcert={}",
            w.secret_file("pg-ssl-root-cert", s)
        ));
    } else if let Some(c) = &pg.ssl_root_certificate_config_map {
        dsn.push(format!(
            "sslrootcert={}",
            w.config_map_file("pg-ssl-root-cert", c)
        ));
    }
    w.args.push("--embedmd-database-type=postgres".into());
    w.args
        .push(format!("--embedmd-database-dsn={}", dsn.join(" ")));
    Ok(w)
}

/// MySQL for the registry's embedded database access (current single-container layout).
pub fn mysql_embedded(my: &MySqlConfig) -> Result<DbWiring, BuildError> {
    let mut w = DbWiring::default();
    let pass = password("spec.mysql", &my.password_secret)?;
    w.secret_env(MYSQL_PASSWORD_ENV, &pass);
    // Kubernetes expands $(VAR) in args from the container's env, so the DSN never holds the secret.
    w.args.push("--embedmd-database-type=mysql".into());
    w.args.push(format!(
        "--embedmd-database-dsn={}:$({MYSQL_PASSWORD_ENV})@tcp({}:{})/{}?charset=utf8mb4&parseTime=true",
        my.username, my.host, my.port, my.database
    ));
    mysql_tls(my, &mut w, |kind, path| {
        format!("--embedmd-database-ssl-{kind}={path}")
    });
    if let Some(c) = &my.ssl_cipher {
        w.args.push(format!("--embedmd-database-ssl-cipher={c}"));
    }
    if let Some(v) = my.verify_server_cert {
        w.args
            .push(format!("--embedmd-database-ssl-verify-server-cert={v}"));
    }
    Ok(w)
}

/// MySQL TLS files; `flag(kind, path)` spells the flag for `cert`, `key`, `root-cert` and `ca`.
fn mysql_tls(my: &MySqlConfig, w: &mut DbWiring, flag: impl Fn(&str, &str) -> String) {
    if let Some(s) = &my.ssl_certificate_secret {
        let p = w.secret_file("mysql-ssl-cert", s);
        w.args.push(flag("cert", &p));
    }
    if let Some(s) = &my.ssl_key_secret {
        let p = w.secret_file("mysql-ssl-key", s);
        w.args.push(flag("key", &p));
    }
    if let Some(s) = &my.ssl_root_certificate_secret {
        let p = w.secret_file("mysql-ssl-root-cert", s);
        w.args.push(flag("root-cert", &p));
    } else if let Some(c) = &my.ssl_root_certificate_config_map {
        let p = w.config_map_file("mysql-ssl-root-cert", c);
        w.args.push(flag("root-cert", &p));
    }
    // Whole bundles of CA certificates (a ConfigMap and/or a Secret) become one CA directory.
    let mut sources = Vec::new();
    if let Some(cm) = &my.ssl_root_certificates_config_map_name {
        sources.push(VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: cm.clone(),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if let Some(sec) = &my.ssl_root_certificates_secret_name {
        sources.push(VolumeProjection {
            secret: Some(SecretProjection {
                name: sec.clone(),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if !sources.is_empty() {
        w.volumes.push(Volume {
            name: "mysql-ssl-ca".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                default_mode: Some(0o444),
            }),
            ..Default::default()
        });
        let dir = format!("{DB_TLS_DIR}/mysql-ssl-ca");
        w.mounts.push(VolumeMount {
            name: "mysql-ssl-ca".into(),
            mount_path: dir.clone(),
            read_only: Some(true),
            ..Default::default()
        });
        w.args.push(flag("ca", &dir));
    }
}

/// PostgreSQL flags of the ML Metadata gRPC server (gRPC layout).
pub fn postgres_mlmd(pg: &PostgresConfig) -> Result<DbWiring, BuildError> {
    let mut w = DbWiring::default();
    let pass = password("spec.postgres", &pg.password_secret)?;
    w.secret_env(POSTGRES_PASSWORD_ENV, &pass);
    let a = |k: &str, v: &str| format!("--postgres_config_{k}={v}");
    let mut args = Vec::new();
    if let Some(h) = pg.host.as_deref().filter(|h| !h.is_empty()) {
        args.push(a("host", h));
    }
    if let Some(h) = pg.host_address.as_deref().filter(|h| !h.is_empty()) {
        args.push(a("hostaddr", h));
    }
    args.push(a("port", &pg.port.to_string()));
    if let Some(d) = &pg.database {
        args.push(a("dbname", d));
    }
    if let Some(u) = &pg.username {
        args.push(a("user", u));
    }
    args.push(a("password", &format!("$({POSTGRES_PASSWORD_ENV})")));
    args.push(a("skip_db_creation", &pg.skip_db_creation.to_string()));
    args.push(a("sslmode", pg.ssl_mode.as_str()));
    w.args = args;
    if let Some(s) = &pg.ssl_certificate_secret {
        let p = w.secret_file("pg-ssl-cert", s);
        w.args.push(format!("--postgres_config_sslcert={p}"));
    }
    if let Some(s) = &pg.ssl_key_secret {
        let p = w.secret_file("pg-ssl-key", s);
        w.args.push(format!("--postgres_config_sslkey={p}"));
    }
    if let Some(s) = &pg.ssl_password_secret {
        w.secret_env(POSTGRES_SSL_PASSWORD_ENV, s);
        w.args.push(format!(
            "--postgres_config_sslpassword=$({POSTGRES_SSL_PASSWORD_ENV})"
        ));
    }
    if let Some(s) = &pg.ssl_root_certificate_secret {
        let p = w.secret_file("pg-ssl-root-cert", s);
        w.args.push(format!("--postgres_config_sslrootcert={p}"));
    } else if let Some(c) = &pg.ssl_root_certificate_config_map {
        let p = w.config_map_file("pg-ssl-root-cert", c);
        w.args.push(format!("--postgres_config_sslrootcert={p}"));
    }
    Ok(w)
}

/// MySQL flags of the ML Metadata gRPC server (gRPC layout).
pub fn mysql_mlmd(my: &MySqlConfig) -> Result<DbWiring, BuildError> {
    let mut w = DbWiring::default();
    let pass = password("spec.mysql", &my.password_secret)?;
    w.secret_env(MYSQL_PASSWORD_ENV, &pass);
    w.args = vec![
        format!("--mysql_config_database={}", my.database),
        format!("--mysql_config_host={}", my.host),
        format!("--mysql_config_port={}", my.port),
        format!("--mysql_config_user={}", my.username),
        format!("--mysql_config_password=$({MYSQL_PASSWORD_ENV})"),
        format!("--mysql_config_skip_db_creation={}", my.skip_db_creation),
    ];
    mysql_tls(my, &mut w, |kind, path| {
        let k = match kind {
            "root-cert" => "sslrootcert",
            "ca" => "sslcapath",
            "cert" => "sslcert",
            _ => "sslkey",
        };
        format!("--mysql_config_{k}={path}")
    });
    if let Some(c) = &my.ssl_cipher {
        w.args.push(format!("--mysql_config_sslcipher={c}"));
    }
    if let Some(v) = my.verify_server_cert {
        w.args
            .push(format!("--mysql_config_verify_server_cert={v}"));
    }
    Ok(w)
}
