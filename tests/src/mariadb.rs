//! A throwaway MariaDB server (Debian's `mariadb-server`) on a loopback port, for the Model
//! Registry stand-in to connect to with the go-sql-driver DSN a rendered Deployment names.
//!
//! Each test starts its own: `mariadb-install-db` makes a data directory in a temporary
//! directory, `mariadbd` serves it on `127.0.0.1:<port>` and a private socket, with no option
//! files read (`--no-defaults`), so nothing of a system installation is used or touched. As
//! root, the files belong to `nobody` and the server runs under `setpriv`, as for PostgreSQL
//! ([`crate::postgres`]). The database user authenticates with a password over TCP
//! (`mysql_native_password`), so a wrong or missing password fails as against a real database.
//! With [`MariaDbOptions::tls`] the server also speaks TLS with a certificate of the test CA
//! (`require_secure_transport` on, so a client without TLS is refused).
//!
//! [`MariaDb::start`] returns only once the database user can log in over TCP; a server that
//! could not bind its port (taken between choosing and binding it) is started again on another.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use mysql_async::prelude::Queryable as _;
use tokio::process::{Child, Command};

use crate::postgres::{as_server_user, is_root};

/// What the server is started with.
#[derive(Debug, Clone, Default)]
pub struct MariaDbOptions {
    /// Serve TLS with these files (CA, server certificate, key), and refuse plain connections.
    pub tls: Option<crate::tls::TlsFiles>,
    /// With `tls`: the database user must present a client certificate (`REQUIRE X509`).
    pub client_cert: bool,
}

/// A running MariaDB with one database and a user owning it.
pub struct MariaDb {
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    socket: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// How long a start may take on a loaded machine (install, start, first login).
const START_DEADLINE: Duration = Duration::from_secs(180);

fn server_bin() -> anyhow::Result<PathBuf> {
    ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context(
            "MariaDB is not installed (make test-deps installs Debian's mariadb-server: \
             tests/tools/install-test-deps.sh)",
        )
}

fn install_bin() -> anyhow::Result<PathBuf> {
    ["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("mariadb-install-db is not installed (Debian's mariadb-server)")
}

/// A string as an SQL literal ('…' with quotes and backslashes escaped).
fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// An identifier in backquotes.
fn sql_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

impl MariaDb {
    /// Starts a server with `user`/`password` owning `database`.
    pub async fn start(user: &str, password: &str, database: &str) -> anyhow::Result<MariaDb> {
        Self::start_with(user, password, database, MariaDbOptions::default()).await
    }

    /// [`MariaDb::start`] with options (TLS).
    pub async fn start_with(
        user: &str,
        password: &str,
        database: &str,
        opts: MariaDbOptions,
    ) -> anyhow::Result<MariaDb> {
        let server = server_bin()?;
        let dir = tempfile::Builder::new().prefix("mro-mariadb-").tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        // A temporary directory of its own: in a shared /tmp, concurrent bootstraps' internal
        // temporary tables collide ("Unknown table 'mysql.tmp_user_sys'").
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        // The server reads its TLS files as its own user: copy them in.
        let tls = match &opts.tls {
            Some(files) => {
                let t = dir.path().join("tls");
                std::fs::create_dir(&t)?;
                for (from, name) in [
                    (&files.ca_cert, "ca.crt"),
                    (&files.cert, "server.crt"),
                    (&files.key, "server.key"),
                ] {
                    std::fs::copy(from, t.join(name))
                        .with_context(|| format!("copy {}", from.display()))?;
                }
                Some(t)
            }
            None => None,
        };
        if is_root() {
            let st = std::process::Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .status()?;
            if !st.success() {
                bail!("chown of the MariaDB directory failed");
            }
        }
        let mut install = as_server_user(install_bin()?);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                // No DNS look-up of this machine's name (the tests' machines may have none).
                "--force",
            ])
            .stdin(Stdio::null());
        let out = tokio::time::timeout(START_DEADLINE, install.output())
            .await
            .context("mariadb-install-db took too long")??;
        if !out.status.success() {
            bail!(
                "mariadb-install-db: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let socket = dir.path().join("mysqld.sock");
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        let mut attempt = 0;
        let (port, child) = loop {
            attempt += 1;
            let port = crate::ports::free_port();
            let mut child =
                spawn_server(&server, dir.path(), &data, &socket, port, tls.as_deref())?;
            match wait_for_socket(&mut child, &socket, deadline).await {
                Ok(()) => break (port, child),
                Err(e) if attempt < 3 && !child_running(&mut child) => {
                    // Most likely the port was taken between choosing and binding it.
                    tracing::warn!("MariaDB did not start on port {port} ({e:#}); again");
                    let _ = std::fs::remove_file(&socket);
                }
                Err(e) => {
                    let _ = child.start_kill();
                    let log =
                        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                    return Err(e.context(format!("MariaDB error log:\n{log}")));
                }
            }
        };
        let db = MariaDb {
            port,
            user: user.into(),
            password: password.into(),
            database: database.into(),
            socket,
            dir,
            child: Some(child),
        };
        db.admin(&[
            format!("CREATE DATABASE {}", sql_ident(database)),
            format!(
                "CREATE USER {}@'%' IDENTIFIED BY {}{}",
                sql_str(user),
                sql_str(password),
                if opts.tls.is_some() && opts.client_cert {
                    " REQUIRE X509"
                } else {
                    ""
                }
            ),
            format!(
                "GRANT ALL ON {}.* TO {}@'%'",
                sql_ident(database),
                sql_str(user)
            ),
        ])
        .await?;
        // The user logs in over TCP, as the stand-in will (with TLS when the server requires
        // it); a user that must present a certificate is checked as root over the socket.
        let probe = if opts.client_cert {
            "SELECT user FROM mysql.user LIMIT 1"
        } else {
            "SELECT 1"
        };
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            let r = if opts.client_cert {
                db.admin(&[probe.to_string()]).await.map(|_| None)
            } else {
                db.query_as_user(probe).await
            };
            match r {
                Ok(_) => return Ok(db),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last
            .unwrap_or_else(|| anyhow::anyhow!("no attempt"))
            .context(format!("MariaDB on 127.0.0.1:{port} refused its user")))
    }

    /// Runs statements as `root` over the server's private socket.
    pub async fn admin(&self, statements: &[String]) -> anyhow::Result<()> {
        let opts = mysql_async::OptsBuilder::default()
            .socket(Some(self.socket.display().to_string()))
            .user(Some("root"));
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .context("connect to MariaDB as root over its socket")?;
        for s in statements {
            conn.query_drop(s)
                .await
                .with_context(|| format!("MariaDB: {s}"))?;
        }
        conn.disconnect().await?;
        Ok(())
    }

    /// Runs `sql` as the database's user over TCP (TLS without verification when the server
    /// requires it); the first column of the first row.
    pub async fn query_as_user(&self, sql: &str) -> anyhow::Result<Option<String>> {
        let mut opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .prefer_socket(false)
            .user(Some(&self.user))
            .pass(Some(&self.password))
            .db_name(Some(&self.database));
        if self.dir.path().join("tls").exists() {
            opts = opts
                .ssl_opts(mysql_async::SslOpts::default().with_danger_accept_invalid_certs(true));
        }
        let mut conn = mysql_async::Conn::new(opts).await?;
        let v: Option<String> = conn.query_first(sql).await?;
        conn.disconnect().await?;
        Ok(v)
    }

    /// Stops the server and removes its files.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM is mariadbd's normal shutdown.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().unwrap_or_default().to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(30), c.wait())
                .await
                .is_err()
            {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }
}

fn spawn_server(
    server: &Path,
    dir: &Path,
    data: &Path,
    socket: &Path,
    port: u16,
    tls: Option<&Path>,
) -> anyhow::Result<Child> {
    let mut c = as_server_user(server.to_path_buf());
    c.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        .arg(format!("--port={port}"))
        .args([
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            "--innodb-flush-log-at-trx-commit=0",
            "--performance-schema=OFF",
            "--max-connections=50",
        ]);
    if let Some(t) = tls {
        c.arg(format!("--ssl-ca={}", t.join("ca.crt").display()))
            .arg(format!("--ssl-cert={}", t.join("server.crt").display()))
            .arg(format!("--ssl-key={}", t.join("server.key").display()))
            .arg("--require-secure-transport=ON");
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting mariadbd")
}

fn child_running(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

/// Waits until root can log in over the socket (the server is up and has bound its port).
async fn wait_for_socket(
    child: &mut Child,
    socket: &Path,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    loop {
        if !child_running(child) {
            bail!("mariadbd exited");
        }
        if socket.exists() {
            let opts = mysql_async::OptsBuilder::default()
                .socket(Some(socket.display().to_string()))
                .user(Some("root"));
            if let Ok(Ok(c)) =
                tokio::time::timeout(Duration::from_secs(10), mysql_async::Conn::new(opts)).await
            {
                let _ = c.disconnect().await;
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "mariadbd did not accept connections on {}",
                socket.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}
