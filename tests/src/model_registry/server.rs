//! The stand-in started the way a pod starts the real server: from a container's argv and
//! environment (`proxy` plus exactly the flags of the claimed version, `MR_*` variables), so a
//! Deployment the operator renders wrongly fails our own tests.
//!
//! What it does as the real server does: refuses the command line the real one refuses
//! ([`server_cli::parse_proxy`]), reads the TLS files the flags name (a directory fails, as
//! `os.ReadFile` does), connects to the database the DSN names with the credentials it carries
//! or the driver's `PG*` variables (PostgreSQL through libpq's `psql`, which checks the password
//! as the server does; MySQL/MariaDB through `mysql_async` with go-sql-driver's settings: its
//! DSN grammar, `tls=` modes or the server's `custom` TLS config from the flags, the session
//! variables it sets), and serves `/readyz/isDirty` and `/readyz/health` where that version
//! does, answering from the database. The one translation: host names in the DSN resolve
//! through `hosts` (tests have no cluster DNS; certificates are still checked against the DSN's
//! name), and it listens on loopback, not `--hostname`.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Container;

use super::server_cli::{self, ProxyConfig, Version};
use super::{ModelRegistryStandIn, ReadyCheck, StandInOptions, dsn};

/// How the database named in the DSN is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub kind: &'static str,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// PostgreSQL: the `sslmode` pgx connects with (after the server's TLS-flag rewrite).
    pub sslmode: Option<String>,
    /// MySQL: how go-sql-driver uses TLS (the DSN's `tls` or the server's `custom` config).
    pub mysql_tls: MysqlTls,
    /// TLS files as the server names them (the container's paths).
    pub tls: TlsPaths,
    /// MySQL: DSN parameters go-sql-driver sends as `SET` statements after connecting (the
    /// ones it does not know, plus `charset` as `SET NAMES`).
    pub session: Vec<(String, String)>,
}

/// TLS files a connection uses (container paths; see [`CommandLineStart::files_root`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPaths {
    pub root_certs: Vec<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// PostgreSQL: the client key's passphrase (`sslpassword`, `PGSSLPASSWORD`).
    pub key_password: Option<String>,
}

/// go-sql-driver's TLS modes (mysql/dsn.go `tls` parameter; `custom` is the config the server
/// registers from its TLS flags, mysql/connect.go@v0.2.22:59-72, internal/tls/config.go).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MysqlTls {
    /// No TLS (`tls=false` or no `tls`).
    #[default]
    Off,
    /// `tls=preferred`: TLS when the server offers it, certificate not checked.
    Preferred,
    /// `tls=skip-verify`, or the server's TLS flags without verify-server-cert: TLS, nothing
    /// of the certificate checked (`InsecureSkipVerify`).
    SkipVerify,
    /// `tls=true`, or the TLS flags with verify-server-cert: chain to the roots (the system's
    /// when no CA file is named) and the DSN's host name.
    Verify,
}

/// The server's TLS flags (`--embedmd-database-ssl-*`), as `internal/tls.TLSConfig`.
fn tls_flags(cfg: &ProxyConfig) -> (TlsPaths, Option<String>, bool) {
    let get = |k: &str| {
        cfg.get(&format!("embedmd-database-ssl-{k}"))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let verify = cfg
        .get("embedmd-database-ssl-verify-server-cert")
        .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"));
    let mut root_certs = Vec::new();
    let (root, ca) = (get("root-cert"), get("ca"));
    root_certs.extend(root.clone());
    if ca.is_some() && ca != root {
        root_certs.extend(ca);
    }
    (
        TlsPaths {
            root_certs,
            cert: get("cert"),
            key: get("key"),
            key_password: None,
        },
        get("cipher"),
        verify,
    )
}

/// go-sql-driver DSN parameters it interprets itself (mysql/dsn.go@v1.9.3 `parseDSNParams`);
/// any other is a system variable it sets after connecting.
const MYSQL_DRIVER_PARAMS: &[&str] = &[
    "allowAllFiles",
    "allowCleartextPasswords",
    "allowFallbackToPlaintext",
    "allowNativePasswords",
    "allowOldPasswords",
    "charset",
    "checkConnLiveness",
    "clientFoundRows",
    "collation",
    "columnsWithAlias",
    "compress",
    "connectionAttributes",
    "interpolateParams",
    "loc",
    "maxAllowedPacket",
    "multiStatements",
    "parseTime",
    "readTimeout",
    "rejectReadOnly",
    "serverPubKey",
    "timeTruncate",
    "timeout",
    "tls",
    "writeTimeout",
];

/// Where the DSN points and with which credentials, from the server's configuration.
pub fn database(cfg: &ProxyConfig, env: &BTreeMap<String, String>) -> anyhow::Result<Database> {
    let dsn = cfg.dsn();
    let (flag_tls, cipher, verify) = tls_flags(cfg);
    match cfg.database_type() {
        "postgres" => {
            let s = dsn::parse_pg(dsn, env).map_err(anyhow::Error::msg)?;
            let unknown = dsn::pg_unknown_keys(&s, cfg.version >= Version::new(0, 3, 8));
            if !unknown.is_empty() {
                bail!("pgx would send {unknown:?} to PostgreSQL as run-time parameters");
            }
            let get = |k: &str| s.get(k).filter(|v| !v.is_empty()).cloned();
            let mut sslmode = get("sslmode");
            let mut tls = TlsPaths {
                root_certs: get("sslrootcert").into_iter().collect(),
                cert: get("sslcert"),
                key: get("sslkey"),
                key_password: get("sslpassword"),
            };
            // The server's rewrite of the DSN when a TLS flag but the cipher is set
            // (embedmd/postgres/connect.go@v0.2.22:97-182, same at v0.3.8).
            let _ = cipher;
            let file_flags = flag_tls.cert.is_some()
                || flag_tls.key.is_some()
                || !flag_tls.root_certs.is_empty();
            if verify {
                sslmode = Some("verify-full".into());
            } else if file_flags {
                sslmode = Some("require".into());
            }
            if flag_tls.cert.is_some() {
                tls.cert = flag_tls.cert.clone();
            }
            if flag_tls.key.is_some() {
                tls.key = flag_tls.key.clone();
            }
            if let Some(r) = flag_tls.root_certs.first() {
                tls.root_certs = vec![r.clone()];
            }
            Ok(Database {
                kind: "postgres",
                host: s.get("host").cloned().unwrap_or_default(),
                port: s
                    .get("port")
                    .map_or(Ok(5432), |p| p.parse())
                    .context("port")?,
                user: s.get("user").cloned().unwrap_or_default(),
                password: s.get("password").cloned(),
                database: s
                    .get("database")
                    .or(s.get("user"))
                    .cloned()
                    .unwrap_or_default(),
                sslmode,
                mysql_tls: MysqlTls::Off,
                tls,
                session: Vec::new(),
            })
        }
        "mysql" => {
            if cfg.version >= Version::new(0, 3, 8) && dsn.matches('?').count() > 1 {
                bail!("invalid MySQL DSN: database name must not contain '?' characters");
            }
            let d = dsn::parse_mysql(dsn).map_err(anyhow::Error::msg)?;
            if d.net != "tcp" {
                bail!(
                    "the stand-in connects over tcp only, not {:?}: not implemented",
                    d.net
                );
            }
            let (host, port) = d.addr.rsplit_once(':').context("MySQL address")?;
            let needs_custom = flag_tls.cert.is_some()
                || flag_tls.key.is_some()
                || !flag_tls.root_certs.is_empty()
                || cipher.is_some()
                || verify;
            let (mysql_tls, tls) = if needs_custom {
                // Registered as "custom" and set as the DSN's tls (mysql/connect.go@v0.2.22:59-72).
                let mode = if verify {
                    MysqlTls::Verify
                } else {
                    MysqlTls::SkipVerify
                };
                let mut t = flag_tls;
                // tls.LoadX509KeyPair only with both.
                if t.cert.is_none() || t.key.is_none() {
                    t.cert = None;
                    t.key = None;
                }
                (mode, t)
            } else {
                let mode = match d.params.get("tls").map(String::as_str) {
                    None => MysqlTls::Off,
                    Some(v) => match v.to_ascii_lowercase().as_str() {
                        "1" | "t" | "true" => MysqlTls::Verify,
                        "0" | "f" | "false" => MysqlTls::Off,
                        "skip-verify" => MysqlTls::SkipVerify,
                        "preferred" => MysqlTls::Preferred,
                        _ => bail!("invalid value / unknown config name: {v}"),
                    },
                };
                (mode, TlsPaths::default())
            };
            let mut session = Vec::new();
            if let Some(c) = d.params.get("charset") {
                // The driver tries each comma-separated charset with SET NAMES.
                let first = c.split(',').next().unwrap_or_default();
                session.push(("NAMES".to_string(), first.to_string()));
            }
            for (k, v) in &d.params {
                if !MYSQL_DRIVER_PARAMS.contains(&k.as_str()) {
                    session.push((k.clone(), v.clone()));
                }
            }
            Ok(Database {
                kind: "mysql",
                host: host.trim_matches(['[', ']']).to_string(),
                port: port.parse()?,
                user: d.user,
                password: d.password,
                database: d.db,
                sslmode: None,
                mysql_tls,
                tls,
                session,
            })
        }
        other => bail!("unsupported database type: {other}"),
    }
}

/// A container path of a TLS file, where the test put it.
fn local_path(files_root: Option<&Path>, path: &str) -> PathBuf {
    match files_root {
        Some(root) => root.join(path.trim_start_matches('/')),
        None => path.into(),
    }
}

/// One connection attempt, as the server's driver would make it.
async fn connect(
    db: &Database,
    hosts: &BTreeMap<String, SocketAddr>,
    files_root: Option<&Path>,
) -> anyhow::Result<()> {
    let target = hosts.get(&db.host).copied().with_context(|| {
        format!(
            "host {:?} does not resolve (no test address for it)",
            db.host
        )
    })?;
    if target.port() == 0 || db.port == 0 {
        bail!("no port");
    }
    match db.kind {
        "postgres" => connect_postgres(db, target, files_root).await,
        "mysql" => connect_mysql(db, target, files_root).await,
        other => bail!("the stand-in cannot connect to {other} databases: not implemented"),
    }
}

/// PostgreSQL through libpq's `psql`: the same keys pgx reads, the DSN's host name checked by
/// verify-full while the test address is dialled (`PGHOSTADDR`).
async fn connect_postgres(
    db: &Database,
    target: SocketAddr,
    files_root: Option<&Path>,
) -> anyhow::Result<()> {
    let mut c = tokio::process::Command::new("psql");
    c.args(["-X", "-q", "-t", "-A", "-c", "SELECT 1"])
        .env_clear()
        .env("PGHOST", &db.host)
        .env("PGHOSTADDR", target.ip().to_string())
        .env("PGPORT", target.port().to_string())
        .env("PGUSER", &db.user)
        .env("PGDATABASE", &db.database)
        .env("PGCONNECT_TIMEOUT", "10")
        // No ~/.postgresql defaults: only what the DSN names.
        .env("HOME", "/nonexistent")
        .env("PGSSLMODE", db.sslmode.as_deref().unwrap_or("prefer"));
    if let Some(p) = &db.password {
        c.env("PGPASSWORD", p);
    }
    let file = |p: &str| local_path(files_root, p);
    if let Some(r) = db.tls.root_certs.first() {
        c.env("PGSSLROOTCERT", file(r));
    }
    if let Some(p) = &db.tls.cert {
        c.env("PGSSLCERT", file(p));
    }
    if let Some(p) = &db.tls.key {
        c.env("PGSSLKEY", file(p));
    }
    let out = c.output().await.context("running psql")?;
    if !out.status.success() {
        bail!(
            "failed to connect to PostgreSQL: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// MySQL/MariaDB through `mysql_async` with go-sql-driver's settings: the DSN's user,
/// password and database, its TLS mode, the session variables it sets after connecting.
async fn connect_mysql(
    db: &Database,
    target: SocketAddr,
    files_root: Option<&Path>,
) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable as _;
    let base = mysql_async::OptsBuilder::default()
        .ip_or_hostname(target.ip().to_string())
        .tcp_port(target.port())
        .prefer_socket(false)
        .user(Some(db.user.clone()))
        .pass(db.password.clone())
        .db_name(Some(db.database.clone()).filter(|d| !d.is_empty()));
    let ssl = || {
        let roots = db
            .tls
            .root_certs
            .iter()
            .map(|p| local_path(files_root, p).into())
            .collect::<Vec<_>>();
        let mut o = mysql_async::SslOpts::default()
            .with_disable_built_in_roots(!roots.is_empty())
            .with_root_certs(roots);
        if let (Some(c), Some(k)) = (&db.tls.cert, &db.tls.key) {
            o = o.with_client_identity(Some(mysql_async::ClientIdentity::new(
                local_path(files_root, c).into(),
                local_path(files_root, k).into(),
            )));
        }
        match db.mysql_tls {
            // go-sql-driver sets ServerName to the DSN's host: checked against the name, while
            // the test address is dialled.
            MysqlTls::Verify => o.with_danger_tls_hostname_override(Some(db.host.clone())),
            _ => o
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        }
    };
    let attempt = |opts: mysql_async::OptsBuilder| async move {
        tokio::time::timeout(Duration::from_secs(10), mysql_async::Conn::new(opts))
            .await
            .context("timed out")?
            .map_err(anyhow::Error::from)
    };
    let conn = match db.mysql_tls {
        MysqlTls::Off => attempt(base).await,
        MysqlTls::Preferred => match attempt(base.clone().ssl_opts(ssl())).await {
            Ok(c) => Ok(c),
            // TLS only when the server offers it.
            Err(_) => attempt(base).await,
        },
        MysqlTls::SkipVerify | MysqlTls::Verify => attempt(base.ssl_opts(ssl())).await,
    };
    let mut conn = conn.map_err(|e| anyhow::anyhow!("failed to connect to MySQL: {e:#}"))?;
    for (k, v) in &db.session {
        let sql = if k == "NAMES" {
            format!("SET NAMES {v}")
        } else {
            format!("SET {k}={v}")
        };
        conn.query_drop(&sql)
            .await
            .map_err(|e| anyhow::anyhow!("MySQL refused {sql:?}: {e}"))?;
    }
    conn.query_drop("SELECT 1").await?;
    let _ = conn.disconnect().await;
    Ok(())
}

/// Whether a connection error may go away by itself (a server still starting, a loaded
/// machine), as opposed to a refusal.
fn is_transient(e: &str) -> bool {
    let e = e.to_ascii_lowercase();
    [
        "connection refused",
        "connection reset",
        "timed out",
        "timeout expired",
        "starting up",
        "shutting down",
        "too many connections",
        "broken pipe",
        "unexpected eof",
    ]
    .iter()
    .any(|t| e.contains(t))
}

/// Options of a command-line start.
#[derive(Debug, Clone, Default)]
pub struct CommandLineStart {
    /// Test addresses of the host names a DSN may name (Service names).
    pub hosts: BTreeMap<String, SocketAddr>,
    /// Bearer token of the proxy in front, if any (see [`StandInOptions::with_token`]).
    pub token: Option<String>,
    /// Prefix for the absolute TLS file paths in the flags (where the test put the "mounts").
    pub files_root: Option<std::path::PathBuf>,
    /// Listen where the flags say (`--hostname`, `--port`), as in a pod, instead of on an
    /// ephemeral loopback port.
    pub listen_as_configured: bool,
}

/// A stand-in started from a command line, with the configuration it read.
pub struct StartedServer {
    pub standin: ModelRegistryStandIn,
    pub config: ProxyConfig,
    pub database: Database,
}

/// Starts the stand-in as model-registry `version` would start with `args` (what follows the
/// binary) and `env`. Errors are what the real server would exit with.
pub async fn start_from_command_line(
    version: Version,
    args: &[String],
    env: &BTreeMap<String, String>,
    opts: CommandLineStart,
) -> anyhow::Result<StartedServer> {
    let config = server_cli::parse_proxy(version, args, env)?;
    if config.datastore_type() != "embedmd" {
        bail!(
            "the stand-in does not run the ML Metadata datastore (--datastore-type=mlmd): not implemented"
        );
    }
    if !server_cli::embedmd_serves(version) {
        bail!("model-registry {version}'s embedmd datastore serves nothing");
    }
    for (kind, path) in config.tls_files() {
        let local = local_path(opts.files_root.as_deref(), path);
        std::fs::read(&local).with_context(|| format!("failed to read SSL {kind} from {path}"))?;
    }
    let database = database(&config, env)?;
    // The server retries with a growing back-off; a test's database is up or about to be.
    // Refusals that no retry changes (credentials, TLS, grants) end it at once, so tests of
    // what must not start answer quickly; the rest is retried up to ~25 s.
    let mut last = None;
    for attempt in 0..12 {
        match connect(&database, &opts.hosts, opts.files_root.as_deref()).await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => {
                let transient = is_transient(&format!("{e:#}"));
                last = Some(e);
                if !transient && attempt >= 1 {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
    }
    if let Some(e) = last {
        return Err(e.context("{{ALERT}} error connecting to datastore"));
    }
    let (db, hosts, root) = (
        database.clone(),
        opts.hosts.clone(),
        opts.files_root.clone(),
    );
    let check = ReadyCheck::new(move || {
        let (db, hosts, root) = (db.clone(), hosts.clone(), root.clone());
        Box::pin(async move {
            connect(&db, &hosts, root.as_deref())
                .await
                .map_err(|e| format!("{e:#}"))
        })
    });
    let listen = if opts.listen_as_configured {
        let ip: std::net::IpAddr = config
            .hostname()
            .parse()
            .with_context(|| format!("--hostname {:?} is not an address", config.hostname()))?;
        Some(SocketAddr::new(ip, config.port()))
    } else {
        None
    };
    let mut options = StandInOptions {
        readyz: Some((server_cli::probe_paths(version).to_vec(), check)),
        listen,
        ..StandInOptions::default()
    };
    if let Some(t) = opts.token {
        options = options.with_token(t);
    }
    let standin = ModelRegistryStandIn::start(options).await?;
    Ok(StartedServer {
        standin,
        config,
        database,
    })
}

/// Argv (after the binary) and environment of `container` as the kubelet would start it:
/// `$(VAR)` expanded, Secret keys looked up in `secrets` (`(name, key)` → value).
pub fn container_command_line(
    container: &Container,
    secrets: &BTreeMap<(String, String), String>,
) -> anyhow::Result<(Vec<String>, BTreeMap<String, String>)> {
    let mut env = BTreeMap::new();
    for e in container.env.iter().flatten() {
        let v = if let Some(v) = &e.value {
            server_cli::expand(v, &env)
        } else if let Some(s) = e
            .value_from
            .as_ref()
            .and_then(|f| f.secret_key_ref.as_ref())
        {
            secrets
                .get(&(s.name.clone(), s.key.clone()))
                .cloned()
                .with_context(|| format!("env {}: Secret {}/{} not found", e.name, s.name, s.key))?
        } else {
            bail!("env {}: only values and Secret keys are supported", e.name);
        };
        env.insert(e.name.clone(), v);
    }
    let args = container
        .command
        .iter()
        .flatten()
        .skip(1)
        .chain(container.args.iter().flatten())
        .map(|a| server_cli::expand(a, &env))
        .collect();
    Ok((args, env))
}
