//! Flags of the ML Metadata gRPC server (`/bin/metadata_store_server`, opendatahub-io/ml-metadata
//! ml_metadata/metadata_store/metadata_store_server_main.cc@8534b66), the database owner of the
//! layout for servers up to v0.2.20.
//!
//! - `--metadata_source_config_type` selects the flags read; its default `default` falls back to
//!   an in-memory fake database when no MySQL flags are given (:324, :440-463), so it is always
//!   set.
//! - PostgreSQL needs exactly one of `host`/`hostaddr`, a user and a database (:184-201).
//! - Passwords: `--fromenv=<flag>,…` makes gflags read `FLAGS_<flag>` (src/gflags.cc@v2.3.0:120),
//!   so the Secret's value never is an argument.
use mro_api::model_registry::{MySqlConfig, PostgresConfig};

use super::embedded::pg_host;
use super::wiring::{DbWiring, escape_expansion};
use crate::kube_ext::build_error::BuildError;

/// The environment variable gflags reads for `flag` under `--fromenv`.
pub fn gflags_env(flag: &str) -> String {
    format!("FLAGS_{flag}")
}

fn from_env(w: &mut DbWiring, flags: &[&str]) {
    if !flags.is_empty() {
        w.args.push(format!("--fromenv={}", flags.join(",")));
    }
}

/// PostgreSQL flags of the ML Metadata server.
pub fn postgres_mlmd(pg: &PostgresConfig) -> Result<DbWiring, BuildError> {
    let mut w = DbWiring::default();
    let required = |v: &Option<String>, field: &str| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(escape_expansion)
            .ok_or_else(|| {
                BuildError::new(
                    field,
                    "the ML Metadata server (model-registry up to v0.2.20) requires it",
                )
            })
    };
    let a = |k: &str, v: &str| format!("--postgres_config_{k}={v}");
    w.args
        .push("--metadata_source_config_type=postgresql".into());
    // Exactly one of host and hostaddr: the one pgx would use too, for one meaning everywhere.
    let host_is_name = pg.host.as_deref().is_some_and(|h| !h.is_empty());
    let host = pg_host(pg).map(escape_expansion).ok_or_else(|| {
        BuildError::new(
            "spec.postgres.host",
            "host or hostAddress must be set (or generateDeployment true)",
        )
    })?;
    w.args
        .push(a(if host_is_name { "host" } else { "hostaddr" }, &host));
    w.args.push(a("port", &pg.port.to_string()));
    w.args.push(a(
        "dbname",
        &required(&pg.database, "spec.postgres.database")?,
    ));
    w.args.push(a(
        "user",
        &required(&pg.username, "spec.postgres.username")?,
    ));
    if pg.skip_db_creation {
        w.args.push(a("skip_db_creation", "true"));
    }
    w.args.push(a("sslmode", pg.ssl_mode.as_str()));
    if let Some(s) = &pg.ssl_certificate_secret {
        let p = w.secret_file("pg-ssl-cert", s);
        w.args.push(a("sslcert", &p));
    }
    if let Some(s) = &pg.ssl_key_secret {
        let p = w.secret_file("pg-ssl-key", s);
        w.args.push(a("sslkey", &p));
    }
    if let Some(s) = &pg.ssl_root_certificate_secret {
        let p = w.secret_file("pg-ssl-root-cert", s);
        w.args.push(a("sslrootcert", &p));
    } else if let Some(c) = &pg.ssl_root_certificate_config_map {
        let p = w.config_map_file("pg-ssl-root-cert", c);
        w.args.push(a("sslrootcert", &p));
    }
    let mut secret_flags = Vec::new();
    if let Some(p) = &pg.password_secret {
        w.secret_env(&gflags_env("postgres_config_password"), p);
        secret_flags.push("postgres_config_password");
    }
    if let Some(p) = &pg.ssl_password_secret {
        w.secret_env(&gflags_env("postgres_config_sslpassword"), p);
        secret_flags.push("postgres_config_sslpassword");
    }
    from_env(&mut w, &secret_flags);
    Ok(w)
}

/// MySQL flags of the ML Metadata server (the TLS ones exist in the ODH build only).
pub fn mysql_mlmd(my: &MySqlConfig) -> Result<DbWiring, BuildError> {
    let mut w = DbWiring::default();
    let a = |k: &str, v: &str| format!("--mysql_config_{k}={v}");
    w.args.push("--metadata_source_config_type=mysql".into());
    w.args.push(a("host", &escape_expansion(&my.host)));
    w.args.push(a("port", &my.port.to_string()));
    w.args.push(a("database", &escape_expansion(&my.database)));
    w.args.push(a("user", &escape_expansion(&my.username)));
    if my.skip_db_creation {
        w.args.push(a("skip_db_creation", "true"));
    }
    if let Some(s) = &my.ssl_certificate_secret {
        let p = w.secret_file("mysql-ssl-cert", s);
        w.args.push(a("sslcert", &p));
    }
    if let Some(s) = &my.ssl_key_secret {
        let p = w.secret_file("mysql-ssl-key", s);
        w.args.push(a("sslkey", &p));
    }
    if let Some(s) = &my.ssl_root_certificate_secret {
        let p = w.secret_file("mysql-ssl-root-cert", s);
        w.args.push(a("sslrootcert", &p));
    } else if let Some(c) = &my.ssl_root_certificate_config_map {
        let p = w.config_map_file("mysql-ssl-root-cert", c);
        w.args.push(a("sslrootcert", &p));
    }
    // `sslcapath` is a directory of CA certificates (libmysqlclient), unlike the REST server's.
    if my.ssl_root_certificates_config_map_name.is_some()
        || my.ssl_root_certificates_secret_name.is_some()
    {
        let dir = w.bundle_dir(
            "mysql-ssl-ca",
            my.ssl_root_certificates_config_map_name.as_ref(),
            my.ssl_root_certificates_secret_name.as_ref(),
        );
        w.args.push(a("sslcapath", &dir));
    }
    if let Some(c) = my.ssl_cipher.as_deref().filter(|c| !c.trim().is_empty()) {
        w.args.push(a("sslcipher", &escape_expansion(c.trim())));
    }
    if let Some(v) = my.verify_server_cert {
        w.args.push(a("verify_server_cert", &v.to_string()));
    }
    if let Some(p) = &my.password_secret {
        w.secret_env(&gflags_env("mysql_config_password"), p);
        from_env(&mut w, &["mysql_config_password"]);
    }
    Ok(w)
}
