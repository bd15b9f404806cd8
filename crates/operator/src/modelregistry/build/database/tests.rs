//! Database wiring: values in the drivers' grammar, files for TLS, no secret in argv.
use mro_api::model_registry::{MySqlConfig, PostgresConfig};
use serde_json::json;

use super::super::server::Server;
use super::*;

fn pg(extra: serde_json::Value) -> PostgresConfig {
    let mut v = json!({ "host": "db", "username": "u", "database": "d" });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn my(extra: serde_json::Value) -> MySqlConfig {
    let mut v = json!({ "host": "db", "username": "u", "database": "d" });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn server() -> Server {
    Server::resolve("x/model-registry:v0.3.14", "spec.rest.image", None).unwrap()
}

fn env_names(w: &DbWiring) -> Vec<&str> {
    w.env.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn postgres_dsn_is_key_value_with_host_address_as_host_and_quoted_values() {
    let w = postgres_embedded(&pg(json!({ "host": null, "hostAddress": "10.0.0.7",
        "database": "my db", "username": "o'neil$(X)" })))
    .unwrap();
    assert_eq!(
        w.args,
        [
            "--embedmd-database-type=postgres",
            "--embedmd-database-dsn=host=10.0.0.7 port=5432 user='o\\'neil$$(X)' dbname='my db' sslmode=disable"
        ]
    );
    assert!(w.env.is_empty(), "no password Secret, no password variable");
    let w = postgres_embedded(&pg(json!({ "passwordSecret": { "name": "s", "key": "p" },
        "sslKeySecret": { "name": "k", "key": "tls.key" },
        "sslCertificateSecret": { "name": "c", "key": "tls.crt" },
        "sslPasswordSecret": { "name": "kp", "key": "pass" },
        "sslRootCertificateConfigMap": { "name": "ca", "key": "ca.crt" },
        "sslMode": "verify-full" })))
    .unwrap();
    assert_eq!(env_names(&w), [PGPASSWORD_ENV, PGSSLPASSWORD_ENV]);
    assert_eq!(
        w.args[1],
        format!(
            "--embedmd-database-dsn=host=db port=5432 user=u dbname=d sslmode=verify-full \
             sslcert={DB_TLS_DIR}/pg-ssl-cert/tls.crt sslkey={DB_TLS_DIR}/pg-ssl-key/tls.key \
             sslrootcert={DB_TLS_DIR}/pg-ssl-root-cert/ca.crt"
        )
    );
}

#[test]
fn mysql_dsn_lives_in_the_environment_with_the_password_expanded_by_kubernetes() {
    let w = mysql_embedded(
        &my(json!({ "passwordSecret": { "name": "s", "key": "p" } })),
        &server(),
    )
    .unwrap();
    assert_eq!(w.args, ["--embedmd-database-type=mysql"]);
    assert_eq!(env_names(&w), [MYSQL_PASSWORD_ENV, MYSQL_DSN_ENV]);
    assert_eq!(
        w.env[1].value.as_deref(),
        Some("u:$(MYSQL_PASSWORD)@tcp(db:3306)/d?charset=utf8mb4")
    );
    let w = mysql_embedded(&my(json!({ "host": "fd00::1" })), &server()).unwrap();
    assert_eq!(env_names(&w), [MYSQL_DSN_ENV]);
    assert_eq!(
        w.env[0].value.as_deref(),
        Some("u@tcp([fd00::1]:3306)/d?charset=utf8mb4")
    );
}

#[test]
fn mysql_values_the_server_cannot_use_are_refused_naming_the_field() {
    for (extra, field) in [
        (json!({ "username": "a:b" }), "spec.mysql.username"),
        (json!({ "database": "d?tls=true" }), "spec.mysql.database"),
        (
            json!({ "sslCipher": "ECDHE-RSA-AES128-GCM-SHA256" }),
            "spec.mysql.sslCipher",
        ),
        (
            json!({ "sslRootCertificatesConfigMapName": "cas" }),
            "spec.mysql.sslRootCertificatesConfigMapName",
        ),
    ] {
        let e = mysql_embedded(&my(extra.clone()), &server()).unwrap_err();
        assert_eq!(e.field, field, "{extra}");
    }
    let w = mysql_embedded(
        &my(
            json!({ "sslCipher": "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
                    "sslRootCertificateSecret": { "name": "ca", "key": "ca.crt" },
                    "verifyServerCert": true }),
        ),
        &server(),
    )
    .unwrap();
    assert_eq!(
        w.args[1..],
        [
            format!("--embedmd-database-ssl-root-cert={DB_TLS_DIR}/mysql-ssl-root-cert/ca.crt"),
            "--embedmd-database-ssl-cipher=TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
                .to_string(),
            "--embedmd-database-ssl-verify-server-cert=true".to_string(),
        ]
    );
}

#[test]
fn mlmd_flags_name_the_config_type_one_host_and_read_passwords_from_the_environment() {
    let w = postgres_mlmd(&pg(json!({ "hostAddress": "10.0.0.7",
        "passwordSecret": { "name": "s", "key": "p" } })))
    .unwrap();
    assert_eq!(
        w.args,
        [
            "--metadata_source_config_type=postgresql",
            "--postgres_config_host=db",
            "--postgres_config_port=5432",
            "--postgres_config_dbname=d",
            "--postgres_config_user=u",
            "--postgres_config_sslmode=disable",
            "--fromenv=postgres_config_password",
        ]
    );
    assert_eq!(env_names(&w), ["FLAGS_postgres_config_password"]);
    let w = postgres_mlmd(&pg(json!({ "host": null, "hostAddress": "10.0.0.7" }))).unwrap();
    assert_eq!(w.args[1], "--postgres_config_hostaddr=10.0.0.7");
    assert!(!w.args.iter().any(|a| a.starts_with("--fromenv")));
    let e = postgres_mlmd(&pg(json!({ "username": null }))).unwrap_err();
    assert_eq!(e.field, "spec.postgres.username");

    let w = mysql_mlmd(&my(json!({ "passwordSecret": { "name": "s", "key": "p" },
        "sslRootCertificatesSecretName": "cas" })))
    .unwrap();
    assert_eq!(w.args[0], "--metadata_source_config_type=mysql");
    assert!(w.args.contains(&format!(
        "--mysql_config_sslcapath={DB_TLS_DIR}/mysql-ssl-ca"
    )));
    assert_eq!(w.args.last().unwrap(), "--fromenv=mysql_config_password");
    assert_eq!(env_names(&w), ["FLAGS_mysql_config_password"]);
}
