//! The REST server's embedded database access (`--datastore-type=embedmd`, servers ≥ v0.2.21).
use mro_api::model_registry::{MySqlConfig, PostgresConfig};

use super::super::server::Server;
use super::wiring::{
    DbWiring, MYSQL_DSN_ENV, MYSQL_PASSWORD_ENV, PGPASSWORD_ENV, PGSSLPASSWORD_ENV,
    escape_expansion,
};
use crate::kube_ext::build_error::BuildError;

/// Cipher names `--embedmd-database-ssl-cipher` accepts; any other name (OpenSSL spellings
/// included) makes the server exit (internal/tls/config.go@v0.2.22:93-131, same at v0.3.8).
pub const GO_TLS_CIPHERS: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// A libpq/pgx key=value value: bare when it has no space, quote or backslash, else
/// single-quoted with `'` and `\` backslash-escaped (pgconn/config.go@v5.6.0:537-597).
pub fn pg_value(v: &str) -> String {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if plain {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// The host pgx connects to. pgx has no `hostaddr` (it would be sent to the server as a
/// run-time parameter): `host` when set, else `hostAddress` (pgx dials an IP literal as is).
pub fn pg_host(pg: &PostgresConfig) -> Option<&str> {
    fn set(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|h| !h.is_empty())
    }
    set(&pg.host).or(set(&pg.host_address))
}

/// PostgreSQL through pgx. The DSN is key=value without any secret: the password and the key
/// passphrase reach pgx as `PGPASSWORD`/`PGSSLPASSWORD`. TLS goes into the DSN (`sslmode`,
/// `sslcert`, `sslkey`, `sslrootcert`, all pgx keys), not the server's TLS flags: with those
/// the server replaces the spec's `sslmode` by `require` or `verify-full`
/// (embedmd/postgres/connect.go@v0.2.22:117-182).
pub fn postgres_embedded(pg: &PostgresConfig) -> Result<DbWiring, BuildError> {
    let mut w = DbWiring::default();
    if let Some(p) = &pg.password_secret {
        w.secret_env(PGPASSWORD_ENV, p);
    }
    let host = pg_host(pg).ok_or_else(|| {
        BuildError::new(
            "spec.postgres.host",
            "host or hostAddress must be set (or generateDeployment true)",
        )
    })?;
    let mut kv = vec![("host", host.to_string()), ("port", pg.port.to_string())];
    if let Some(u) = pg.username.as_deref().filter(|u| !u.is_empty()) {
        kv.push(("user", u.to_string()));
    }
    if let Some(d) = pg.database.as_deref().filter(|d| !d.is_empty()) {
        if d.contains('?') {
            // Refused by the server from v0.3.8 (embedmd/service.go@v0.3.8:73-93).
            return Err(BuildError::new(
                "spec.postgres.database",
                "a database name must not contain '?'",
            ));
        }
        kv.push(("dbname", d.to_string()));
    }
    kv.push(("sslmode", pg.ssl_mode.as_str().to_string()));
    if let Some(s) = &pg.ssl_certificate_secret {
        kv.push(("sslcert", w.secret_file("pg-ssl-cert", s)));
    }
    if let Some(s) = &pg.ssl_key_secret {
        kv.push(("sslkey", w.secret_file("pg-ssl-key", s)));
    }
    if let Some(s) = &pg.ssl_password_secret {
        w.secret_env(PGSSLPASSWORD_ENV, s);
    }
    if let Some(s) = &pg.ssl_root_certificate_secret {
        kv.push(("sslrootcert", w.secret_file("pg-ssl-root-cert", s)));
    } else if let Some(c) = &pg.ssl_root_certificate_config_map {
        kv.push(("sslrootcert", w.config_map_file("pg-ssl-root-cert", c)));
    }
    let dsn: Vec<String> = kv
        .iter()
        .map(|(k, v)| format!("{k}={}", pg_value(v)))
        .collect();
    w.args.push("--embedmd-database-type=postgres".into());
    w.args.push(format!(
        "--embedmd-database-dsn={}",
        escape_expansion(&dsn.join(" "))
    ));
    Ok(w)
}

/// The go-sql-driver DSN `user[:password]@tcp(host:port)/db?charset=utf8mb4`, with the password
/// as the Kubernetes reference `$(MYSQL_PASSWORD)` (mysql/dsn.go@v1.9.3 `ParseDSN`: the user
/// ends at the first `:`, the database at `?`, the last `/` starts it).
pub fn mysql_dsn_env(my: &MySqlConfig) -> Result<String, BuildError> {
    if my.username.contains(':') {
        return Err(BuildError::new(
            "spec.mysql.username",
            "a MySQL user name must not contain ':' (it ends the user in a DSN)",
        ));
    }
    if my.database.contains(['/', '?']) {
        return Err(BuildError::new(
            "spec.mysql.database",
            "a MySQL database name must not contain '/' or '?'",
        ));
    }
    if my.host.contains(['/', '(', ')', '@']) {
        return Err(BuildError::new(
            "spec.mysql.host",
            "expected a host name or IP address",
        ));
    }
    let host = if my.host.contains(':') && !my.host.starts_with('[') {
        format!("[{}]", my.host)
    } else {
        my.host.clone()
    };
    let user = escape_expansion(&my.username);
    let password = match &my.password_secret {
        Some(_) => format!(":$({MYSQL_PASSWORD_ENV})"),
        None => String::new(),
    };
    Ok(format!(
        "{user}{password}@tcp({}:{})/{}?charset=utf8mb4",
        escape_expansion(&host),
        my.port,
        // The driver path-unescapes the database name.
        escape_expansion(&my.database.replace('%', "%25"))
    ))
}

/// MySQL through go-sql-driver. The DSN holds the password, so it is the environment variable
/// [`MYSQL_DSN_ENV`] (built by Kubernetes from the Secret), never an argument.
pub fn mysql_embedded(my: &MySqlConfig, server: &Server) -> Result<DbWiring, BuildError> {
    let mut w = DbWiring::default();
    let dsn = mysql_dsn_env(my)?;
    if let Some(p) = &my.password_secret {
        w.secret_env(MYSQL_PASSWORD_ENV, p);
    }
    w.value_env(MYSQL_DSN_ENV, dsn);
    w.args.push("--embedmd-database-type=mysql".into());
    let bundle = [
        (
            "spec.mysql.sslRootCertificatesConfigMapName",
            my.ssl_root_certificates_config_map_name.is_some(),
        ),
        (
            "spec.mysql.sslRootCertificatesSecretName",
            my.ssl_root_certificates_secret_name.is_some(),
        ),
    ];
    if let Some((field, _)) = bundle.iter().find(|(_, set)| *set) {
        return Err(BuildError::new(
            *field,
            format!(
                "{} reads its CA certificates from one file (--embedmd-database-ssl-ca, \
                 os.ReadFile), not from a directory of certificates; put the CA bundle under one \
                 key and name it with sslRootCertificateConfigMap or sslRootCertificateSecret",
                server.describe()
            ),
        ));
    }
    if let Some(s) = &my.ssl_certificate_secret {
        let p = w.secret_file("mysql-ssl-cert", s);
        w.args.push(format!("--embedmd-database-ssl-cert={p}"));
    }
    if let Some(s) = &my.ssl_key_secret {
        let p = w.secret_file("mysql-ssl-key", s);
        w.args.push(format!("--embedmd-database-ssl-key={p}"));
    }
    if let Some(s) = &my.ssl_root_certificate_secret {
        let p = w.secret_file("mysql-ssl-root-cert", s);
        w.args.push(format!("--embedmd-database-ssl-root-cert={p}"));
    } else if let Some(c) = &my.ssl_root_certificate_config_map {
        let p = w.config_map_file("mysql-ssl-root-cert", c);
        w.args.push(format!("--embedmd-database-ssl-root-cert={p}"));
    }
    if let Some(c) = my.ssl_cipher.as_deref().filter(|c| !c.trim().is_empty()) {
        let unknown: Vec<&str> = c
            .trim()
            .split(':')
            .map(str::trim)
            .filter(|n| !GO_TLS_CIPHERS.contains(n))
            .collect();
        if !unknown.is_empty() {
            return Err(BuildError::new(
                "spec.mysql.sslCipher",
                format!(
                    "{} accepts only these cipher suite names (colon-separated): {}; not {}",
                    server.describe(),
                    GO_TLS_CIPHERS.join(", "),
                    unknown.join(", ")
                ),
            ));
        }
        w.args.push(format!(
            "--embedmd-database-ssl-cipher={}",
            escape_expansion(c.trim())
        ));
    }
    if let Some(v) = my.verify_server_cert {
        w.args
            .push(format!("--embedmd-database-ssl-verify-server-cert={v}"));
    }
    Ok(w)
}
