//! A throwaway PostgreSQL server (Debian's `postgresql` package) on a loopback port, for the
//! Model Registry stand-in to connect to with the DSN a rendered Deployment names.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the data directory belongs
//! to `nobody` and the server runs under `setpriv` (which execs, so signals reach PostgreSQL). Password authentication is SCRAM (the
//! default), so a wrong or missing password fails as it would against a real database.
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// A running PostgreSQL with one database and a user owning it.
pub struct Postgres {
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The directory of Debian's PostgreSQL server programs (`/usr/lib/postgresql/<major>/bin`).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (make test-deps installs Debian's postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().context("no /usr/lib/postgresql/*/bin/initdb")
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `program args…`, as `nobody` when we are root.
pub(crate) fn as_server_user(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// What the server is started with.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Serve TLS with these files (CA, server certificate, key) and accept TCP clients only
    /// over TLS (`hostssl` in pg_hba.conf).
    pub tls: Option<crate::tls::TlsFiles>,
    /// With `tls`: clients must also present a certificate of that CA (`clientcert=verify-ca`).
    pub client_cert: bool,
}

impl Postgres {
    /// Starts a server with `user`/`password` owning `database`.
    pub async fn start(user: &str, password: &str, database: &str) -> anyhow::Result<Postgres> {
        Self::start_with(user, password, database, PostgresOptions::default()).await
    }

    /// [`Postgres::start`] with options (TLS).
    pub async fn start_with(
        user: &str,
        password: &str,
        database: &str,
        opts: PostgresOptions,
    ) -> anyhow::Result<Postgres> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("mro-pg-").tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, format!("{password}\n"))?;
        let tls_dir = dir.path().join("tls");
        if let Some(files) = &opts.tls {
            std::fs::create_dir(&tls_dir)?;
            for (from, name) in [
                (&files.ca_cert, "ca.crt"),
                (&files.cert, "server.crt"),
                (&files.key, "server.key"),
            ] {
                std::fs::copy(from, tls_dir.join(name))
                    .with_context(|| format!("copy {}", from.display()))?;
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(
                    tls_dir.join("server.key"),
                    std::fs::Permissions::from_mode(0o600),
                )?;
            }
        }
        if is_root() {
            let st = std::process::Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .status()?;
            if !st.success() {
                bail!("chown of the PostgreSQL directory failed");
            }
        }
        let out = as_server_user(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                user,
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .await?;
        if !out.status.success() {
            bail!("initdb: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut args: Vec<String> = vec![
            "-D".into(),
            data.display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            format!("unix_socket_directories={}", dir.path().display()),
        ];
        if opts.tls.is_some() {
            let hba = format!(
                "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256{}\n",
                if opts.client_cert {
                    " clientcert=verify-ca"
                } else {
                    ""
                }
            );
            std::fs::write(data.join("pg_hba.conf"), hba)?;
            let f = |n: &str| tls_dir.join(n).display().to_string();
            args.extend([
                "-c".to_string(),
                "ssl=on".to_string(),
                "-c".to_string(),
                format!("ssl_cert_file={}", f("server.crt")),
                "-c".to_string(),
                format!("ssl_key_file={}", f("server.key")),
                "-c".to_string(),
                format!("ssl_ca_file={}", f("ca.crt")),
            ]);
        }
        let mut pg = Postgres {
            port: 0,
            user: user.into(),
            password: password.into(),
            database: database.into(),
            dir,
            child: None,
        };
        // Generous on a loaded machine; a server that exits at once most likely lost its port
        // (taken between choosing and binding it) and is started again on another.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut attempt = 0;
        'start: loop {
            attempt += 1;
            pg.port = crate::ports::free_port();
            let mut child = as_server_user(bin.join("postgres"))
                .args(&args)
                .args(["-p", &pg.port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting postgres")?;
            loop {
                if pg.query("postgres", "SELECT 1").await.is_ok() {
                    pg.child = Some(child);
                    break 'start;
                }
                if !matches!(child.try_wait(), Ok(None)) {
                    if attempt < 3 {
                        tracing::warn!("PostgreSQL exited on port {}; again", pg.port);
                        continue 'start;
                    }
                    bail!("PostgreSQL exited (port {})", pg.port);
                }
                if tokio::time::Instant::now() > deadline {
                    let _ = child.start_kill();
                    bail!(
                        "PostgreSQL did not accept connections on 127.0.0.1:{}",
                        pg.port
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        pg.query(
            "postgres",
            &format!("CREATE DATABASE \"{database}\" OWNER \"{user}\""),
        )
        .await?;
        Ok(pg)
    }

    /// Runs `sql` in `db` as the owner, over the server's private socket with the password
    /// (so it works whatever TLS the TCP side requires).
    pub async fn query(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let out = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env_clear()
            .env("PGHOST", self.dir.path())
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password)
            .env("PGDATABASE", db)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .await?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stops the server and removes its files.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Fast shutdown (SIGINT), so no backend outlives the postmaster.
            if let Some(pid) = c.id() {
                let _ = Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status()
                    .await;
            }
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
        let _ = &self.dir;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}
