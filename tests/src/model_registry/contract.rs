//! Checks a rendered registry Deployment against the server's command line for a version
//! ([`super::server_cli`]) and the drivers' DSN grammars ([`super::dsn`]): what would make the
//! real server exit, misread its database, or never turn ready is an error here.
//!
//! The ML Metadata server's flags (gflags; a flag it does not define stops it) are from
//! opendatahub-io/ml-metadata ml_metadata/metadata_store/metadata_store_server_main.cc@8534b66
//! (`DEFINE_*`, :289-429), plus gflags' own `--fromenv` (gflags src/gflags.cc@v2.3.0:120).
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Probe};

use super::dsn;
use super::server_cli::{self, ProxyConfig, Version};

/// Flags of `/bin/metadata_store_server`.
pub const MLMD_FLAGS: &[&str] = &[
    "grpc_port",
    "grpc_channel_arguments",
    "metadata_source_config_type",
    "metadata_store_server_config_file",
    "metadata_store_connection_retries",
    "mysql_config_host",
    "mysql_config_port",
    "mysql_config_database",
    "mysql_config_user",
    "mysql_config_password",
    "mysql_config_skip_db_creation",
    "mysql_config_sslcert",
    "mysql_config_sslkey",
    "mysql_config_sslrootcert",
    "mysql_config_sslcapath",
    "mysql_config_sslcipher",
    "mysql_config_verify_server_cert",
    "postgres_config_host",
    "postgres_config_hostaddr",
    "postgres_config_port",
    "postgres_config_user",
    "postgres_config_password",
    "postgres_config_passfile",
    "postgres_config_dbname",
    "postgres_config_skip_db_creation",
    "postgres_config_sslmode",
    "postgres_config_sslcert",
    "postgres_config_sslkey",
    "postgres_config_sslpassword",
    "postgres_config_sslrootcert",
    "enable_database_upgrade",
    "downgrade_db_schema_version",
    "fromenv",
];

/// The value every Secret key resolves to in these checks: it must never show in an argv.
pub fn secret_value(name: &str, key: &str) -> String {
    format!("s3cr3t:{name}/{key}@x")
}

/// A container's environment as Kubernetes builds it, with Secrets resolved by [`secret_value`].
pub fn resolved_env(env: &[EnvVar]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in env {
        let v = match (
            &e.value,
            e.value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref()),
        ) {
            (Some(v), _) => server_cli::expand(v, &out),
            (None, Some(s)) => secret_value(&s.name, &s.key),
            (None, None) => String::new(),
        };
        out.insert(e.name.clone(), v);
    }
    out
}

/// The container's argv after the binary, as the process gets it.
pub fn resolved_args(c: &Container) -> Vec<String> {
    let env = resolved_env(c.env.as_deref().unwrap_or_default());
    let cmd = c.command.clone().unwrap_or_default();
    cmd.iter()
        .skip(1)
        .chain(c.args.iter().flatten())
        .map(|a| server_cli::expand(a, &env))
        .collect()
}

/// `path` must be a file the pod mounts: `<mountPath>/<key>` of a single-key Secret or
/// ConfigMap volume (the servers read TLS material with `os.ReadFile`).
fn check_file(pod: &PodSpec, c: &Container, what: &str, path: &str) -> Result<(), String> {
    if c.volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path.trim_end_matches('/') == path.trim_end_matches('/'))
    {
        return Err(format!(
            "{what}={path:?} is a directory (a volume mount), not a file"
        ));
    }
    let (dir, file) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{what}={path:?} is not an absolute file path"))?;
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .ok_or_else(|| format!("{what}={path:?}: no volume is mounted at {dir}"))?;
    let vol = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .ok_or_else(|| format!("{what}: volume {} is not defined", mount.name))?;
    let items = vol
        .secret
        .as_ref()
        .and_then(|s| s.items.clone())
        .or_else(|| vol.config_map.as_ref().and_then(|c| c.items.clone()))
        .ok_or_else(|| {
            format!(
                "{what}={path:?} is a directory (volume {}), not a file",
                vol.name
            )
        })?;
    if items.iter().any(|i| i.path == file) {
        Ok(())
    } else {
        Err(format!(
            "{what}={path:?}: volume {} has no item {file}",
            vol.name
        ))
    }
}

fn check_probes(c: &Container, version: Version) -> Result<(), String> {
    let ports: Vec<_> = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    let probes: [(&str, &Option<Probe>); 3] = [
        ("startup", &c.startup_probe),
        ("liveness", &c.liveness_probe),
        ("readiness", &c.readiness_probe),
    ];
    for (kind, p) in probes {
        let Some(p) = p else { continue };
        let port = p
            .http_get
            .as_ref()
            .map(|h| &h.port)
            .or(p.tcp_socket.as_ref().map(|t| &t.port));
        if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n)) = port
            && !ports.contains(n)
        {
            return Err(format!(
                "{} {kind} probe names port {n}, not one of {ports:?}",
                c.name
            ));
        }
        if let Some(h) = &p.http_get {
            let path = h.path.as_deref().unwrap_or("/");
            if !server_cli::probe_paths(version).contains(&path) {
                return Err(format!(
                    "{} {kind} probe GET {path}: model-registry {version} serves only {:?}",
                    c.name,
                    server_cli::probe_paths(version)
                ));
            }
        }
    }
    Ok(())
}

fn no_secret_in(
    args: &[String],
    env: &BTreeMap<String, String>,
    c: &Container,
) -> Result<(), String> {
    for e in c.env.iter().flatten() {
        if let Some(s) = e
            .value_from
            .as_ref()
            .and_then(|f| f.secret_key_ref.as_ref())
        {
            let secret = secret_value(&s.name, &s.key);
            if args.iter().any(|a| a.contains(&secret)) {
                return Err(format!(
                    "{}: the value of Secret {}/{} (env {}) is in the process arguments",
                    c.name, s.name, s.key, e.name
                ));
            }
        }
    }
    let _ = env;
    Ok(())
}

/// What the REST server would do with its configuration at start-up, as far as the DSN goes.
fn check_embedmd(cfg: &ProxyConfig, env: &BTreeMap<String, String>) -> Result<(), String> {
    let dsn = cfg.dsn();
    match cfg.database_type() {
        "mysql" => {
            if cfg.version >= Version::new(0, 3, 8) && dsn.matches('?').count() > 1 {
                return Err(format!(
                    "MySQL DSN with more than one '?' (refused from v0.3.8): {dsn}"
                ));
            }
            let d = dsn::parse_mysql(dsn).map_err(|e| format!("MySQL DSN {dsn:?}: {e}"))?;
            if d.net != "tcp" || d.db.is_empty() || d.user.is_empty() {
                return Err(format!(
                    "MySQL DSN {dsn:?}: expected user@tcp(host:port)/db, got {d:?}"
                ));
            }
        }
        "postgres" => {
            let s = dsn::parse_pg(dsn, env).map_err(|e| format!("PostgreSQL DSN {dsn:?}: {e}"))?;
            let unknown = dsn::pg_unknown_keys(&s, cfg.version >= Version::new(0, 3, 8));
            if !unknown.is_empty() {
                return Err(format!(
                    "PostgreSQL DSN {dsn:?}: pgx does not know {unknown:?} and would send them to \
                     the server as run-time parameters"
                ));
            }
            if s.get("host").is_none_or(|h| h.is_empty()) {
                return Err(format!("PostgreSQL DSN {dsn:?} names no host"));
            }
        }
        other => return Err(format!("database type {other}")),
    }
    Ok(())
}

/// The REST container of `version`: every flag known, values well formed.
pub fn check_rest(pod: &PodSpec, c: &Container, version: Version) -> Result<ProxyConfig, String> {
    if c.command.as_deref() != Some(&["/model-registry".to_string(), "proxy".to_string()][..]) {
        return Err(format!(
            "{}: command {:?}, expected [/model-registry, proxy]",
            c.name, c.command
        ));
    }
    let env = resolved_env(c.env.as_deref().unwrap_or_default());
    let args = resolved_args(c);
    no_secret_in(&args, &env, c)?;
    let cfg = server_cli::parse_proxy(version, &args, &env)
        .map_err(|e| format!("model-registry {version} refuses {args:?}: {e}"))?;
    if cfg.hostname() != "0.0.0.0" {
        return Err(format!("listens on {} only", cfg.hostname()));
    }
    let http = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("http-api"));
    if http.map(|p| p.container_port) != Some(i32::from(cfg.port())) {
        return Err(format!(
            "--port={} is not the http-api container port",
            cfg.port()
        ));
    }
    match cfg.datastore_type() {
        "embedmd" => {
            if !server_cli::embedmd_serves(version) {
                return Err(format!("embedmd serves nothing in {version}"));
            }
            check_embedmd(&cfg, &env)?;
        }
        _ => {
            if cfg.get("mlmd-hostname") != Some("localhost") {
                return Err(
                    "the ML Metadata server runs in the same pod: mlmd-hostname=localhost".into(),
                );
            }
        }
    }
    for (kind, path) in cfg.tls_files() {
        check_file(pod, c, &format!("--embedmd-database-ssl-{kind}"), path)?;
    }
    if cfg.database_type() == "postgres" {
        let s = dsn::parse_pg(cfg.dsn(), &env).unwrap_or_default();
        for key in ["sslcert", "sslkey", "sslrootcert"] {
            if let Some(p) = s.get(key) {
                check_file(pod, c, key, p)?;
            }
        }
    }
    check_probes(c, version)?;
    Ok(cfg)
}

/// The ML Metadata container: known gflags only, a config type, one PostgreSQL host, secrets
/// only through `--fromenv`.
pub fn check_mlmd(pod: &PodSpec, c: &Container) -> Result<u16, String> {
    if c.command.as_deref() != Some(&["/bin/metadata_store_server".to_string()][..]) {
        return Err(format!("{}: command {:?}", c.name, c.command));
    }
    let env = resolved_env(c.env.as_deref().unwrap_or_default());
    let args = resolved_args(c);
    no_secret_in(&args, &env, c)?;
    let mut flags = BTreeMap::new();
    for a in &args {
        let (k, v) = a
            .strip_prefix("--")
            .and_then(|a| a.split_once('='))
            .ok_or_else(|| format!("{}: argument {a:?} is not --flag=value", c.name))?;
        if !MLMD_FLAGS.contains(&k) {
            return Err(format!(
                "ERROR: unknown command line flag '{k}' ({})",
                c.name
            ));
        }
        flags.insert(k.to_string(), v.to_string());
    }
    let kind = flags.get("metadata_source_config_type").map(String::as_str);
    match kind {
        Some("postgresql") => {
            let hosts = ["postgres_config_host", "postgres_config_hostaddr"]
                .iter()
                .filter(|k| flags.get(**k).is_some_and(|v| !v.is_empty()))
                .count();
            if hosts != 1 {
                return Err(
                    "exactly one of postgres_config_host or postgres_config_hostaddr".into(),
                );
            }
            for k in [
                "postgres_config_port",
                "postgres_config_dbname",
                "postgres_config_user",
            ] {
                if flags.get(k).is_none_or(|v| v.is_empty()) {
                    return Err(format!("{k} must not be empty"));
                }
            }
        }
        Some("mysql") => {
            for k in [
                "mysql_config_host",
                "mysql_config_port",
                "mysql_config_database",
            ] {
                if flags.get(k).is_none_or(|v| v.is_empty()) {
                    return Err(format!("{k} is required for the mysql store"));
                }
            }
        }
        other => {
            return Err(format!(
                "--metadata_source_config_type={other:?}: without mysql or postgresql the server \
                 runs on an in-memory fake database"
            ));
        }
    }
    for name in flags.get("fromenv").into_iter().flat_map(|v| v.split(',')) {
        if !MLMD_FLAGS.contains(&name) || !env.contains_key(&format!("FLAGS_{name}")) {
            return Err(format!(
                "--fromenv={name}: no flag or no FLAGS_{name} variable"
            ));
        }
    }
    for (k, p) in &flags {
        if k.ends_with("sslcert") || k.ends_with("sslkey") || k.ends_with("sslrootcert") {
            check_file(pod, c, k, p)?;
        }
    }
    check_probes(c, Version::new(0, 0, 0))?;
    flags
        .get("grpc_port")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| "no --grpc_port".to_string())
}

/// Every registry container of `d` against `version`: the layout, then each container.
pub fn check_deployment(d: &Deployment, version: Version) -> Result<(), String> {
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .ok_or("no pod template")?;
    let find = |n: &str| pod.containers.iter().find(|c| c.name == n);
    let rest = find("rest-container").ok_or("no rest-container")?;
    let cfg = check_rest(pod, rest, version)?;
    match (cfg.datastore_type(), find("grpc-container")) {
        ("mlmd", Some(g)) => {
            let port = check_mlmd(pod, g)?;
            if cfg.get("mlmd-port") != Some(&port.to_string()) {
                return Err(format!(
                    "--mlmd-port={:?}, the gRPC server listens on {port}",
                    cfg.get("mlmd-port")
                ));
            }
        }
        ("mlmd", None) => return Err("datastore mlmd without the ML Metadata container".into()),
        (_, Some(_)) => return Err("a grpc-container next to embedded database access".into()),
        (_, None) => {}
    }
    Ok(())
}
