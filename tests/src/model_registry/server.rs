//! The stand-in started the way a pod starts the real server: from a container's argv and
//! environment (`proxy` plus exactly the flags of the claimed version, `MR_*` variables), so a
//! Deployment the operator renders wrongly fails our own tests.
//!
//! What it does as the real server does: refuses the command line the real one refuses
//! ([`server_cli::parse_proxy`]), reads the TLS files the flags name (a directory fails, as
//! `os.ReadFile` does), connects to the database the DSN names with the credentials it carries
//! or the driver's `PG*` variables (PostgreSQL through libpq's `psql`, which checks the password
//! as the server does), and serves `/readyz/isDirty` and `/readyz/health` where that version
//! does, answering from the database. The one translation: host names in the DSN resolve
//! through `hosts` (tests have no cluster DNS), and it listens on loopback, not `--hostname`.
use std::collections::BTreeMap;
use std::net::SocketAddr;
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
    pub sslmode: Option<String>,
}

/// Where the DSN points and with which credentials, from the server's configuration.
pub fn database(cfg: &ProxyConfig, env: &BTreeMap<String, String>) -> anyhow::Result<Database> {
    let dsn = cfg.dsn();
    match cfg.database_type() {
        "postgres" => {
            let s = dsn::parse_pg(dsn, env).map_err(anyhow::Error::msg)?;
            let unknown = dsn::pg_unknown_keys(&s, cfg.version >= Version::new(0, 3, 8));
            if !unknown.is_empty() {
                bail!("pgx would send {unknown:?} to PostgreSQL as run-time parameters");
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
                sslmode: s.get("sslmode").cloned(),
            })
        }
        "mysql" => {
            if cfg.version >= Version::new(0, 3, 8) && dsn.matches('?').count() > 1 {
                bail!("invalid MySQL DSN: database name must not contain '?' characters");
            }
            let d = dsn::parse_mysql(dsn).map_err(anyhow::Error::msg)?;
            let (host, port) = d.addr.rsplit_once(':').context("MySQL address")?;
            Ok(Database {
                kind: "mysql",
                host: host.trim_matches(['[', ']']).to_string(),
                port: port.parse()?,
                user: d.user,
                password: d.password,
                database: d.db,
                sslmode: None,
            })
        }
        other => bail!("unsupported database type: {other}"),
    }
}

/// One connection attempt, as the server's driver would make it.
async fn connect(db: &Database, hosts: &BTreeMap<String, SocketAddr>) -> anyhow::Result<()> {
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
        "postgres" => {
            let mut c = tokio::process::Command::new("psql");
            c.args(["-X", "-q", "-t", "-A", "-c", "SELECT 1"])
                .env_clear()
                .env("PGHOST", target.ip().to_string())
                .env("PGPORT", target.port().to_string())
                .env("PGUSER", &db.user)
                .env("PGDATABASE", &db.database)
                .env("PGCONNECT_TIMEOUT", "5")
                .env("PGSSLMODE", db.sslmode.as_deref().unwrap_or("prefer"));
            if let Some(p) = &db.password {
                c.env("PGPASSWORD", p);
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
        other => bail!(
            "the stand-in cannot connect to {other} databases yet (only PostgreSQL): not \
             implemented"
        ),
    }
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
        let local = match &opts.files_root {
            Some(root) => root.join(path.trim_start_matches('/')),
            None => path.into(),
        };
        std::fs::read(&local).with_context(|| format!("failed to read SSL {kind} from {path}"))?;
    }
    let database = database(&config, env)?;
    // The server retries with a growing back-off; a test's database is up or about to be.
    let mut last = None;
    for attempt in 0..10 {
        match connect(&database, &opts.hosts).await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
    }
    if let Some(e) = last {
        return Err(e.context("{{ALERT}} error connecting to datastore"));
    }
    let (db, hosts) = (database.clone(), opts.hosts.clone());
    let check = ReadyCheck::new(move || {
        let (db, hosts) = (db.clone(), hosts.clone());
        Box::pin(async move { connect(&db, &hosts).await.map_err(|e| format!("{e:#}")) })
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
