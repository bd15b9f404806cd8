//! Debian's distribution registry (`docker-registry`, distribution 2.8) as a child process.
//!
//! Why the real registry rather than a stand-in: OCI pushes and pulls go through upload sessions,
//! content negotiation, digests and auth challenges whose details only a real implementation gets
//! right. Two modes: plain HTTP without auth (the common in-cluster case), and htpasswd basic auth
//! behind TLS signed by a per-run CA (what the tool must handle for private registries). Each instance
//! has its own temp dir (config, storage, certificates, log) and is killed on drop.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;

use crate::tls::TestCa;

/// Where Debian installs the registry; `MRO_DOCKER_REGISTRY` overrides it.
pub const DEFAULT_REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A response header carrying a per-start random value, so readiness polling can tell our registry
/// from any other process that happens to answer on the same port.
const INSTANCE_HEADER: &str = "X-Mro-Test-Instance";

/// How long to wait for `/v2/` to answer after spawning.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which registry flavour to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryMode {
    /// HTTP, anonymous push and pull.
    Plain,
    /// HTTPS with a per-run CA, htpasswd (bcrypt) basic auth required for everything.
    AuthTls,
}

#[derive(Debug, Clone)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Debug, Clone)]
struct TlsMaterial {
    ca_pem: String,
    ca_path: PathBuf,
}

/// A running registry on `127.0.0.1:<port>`.
#[derive(Debug)]
pub struct OciRegistry {
    child: Child,
    host: String,
    credentials: Option<Credentials>,
    tls: Option<TlsMaterial>,
    /// The per-start value of [`INSTANCE_HEADER`] (kept across [`OciRegistry::restart`]).
    instance: String,
    dir: tempfile::TempDir,
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry_bin() -> PathBuf {
    std::env::var_os("MRO_DOCKER_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_BIN))
}

/// A YAML scalar that is safe for any path or string: YAML accepts JSON double-quoted strings.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// Random-enough hex for secrets and passwords (uniqueness per run is what matters, not strength).
fn random_hex(len: usize) -> String {
    use sha2::{Digest as _, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
    );
    hex::encode(Sha256::digest(seed.as_bytes()))[..len.min(64)].to_owned()
}

/// A bcrypt htpasswd line via `htpasswd -Bbn` (distribution only accepts bcrypt entries).
fn htpasswd_line(user: &str, password: &str) -> anyhow::Result<String> {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .context("run `htpasswd` (apache2-utils; see tests/tools/install-test-deps.sh)")?;
    if !out.status.success() {
        bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8(out.stdout)?.trim().to_owned();
    if !line.starts_with(&format!("{user}:$2")) {
        bail!("htpasswd did not produce a bcrypt entry: {line:?}");
    }
    Ok(line)
}

/// The registry's config.yml. Logging is kept to warnings (the log file is for diagnosing failures),
/// the storage health check is off (it only adds noise), and deletes are on so tests can exercise them.
fn config_yaml(
    addr: &str,
    storage: &Path,
    htpasswd: Option<&Path>,
    tls: Option<(&Path, &Path)>,
    secret: &str,
    instance: &str,
) -> String {
    let mut y = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n  secret: {secret}\n  headers:\n    {INSTANCE_HEADER}: [{instance}]\n",
        storage = yaml_str(&storage.to_string_lossy()),
        addr = yaml_str(addr),
        secret = yaml_str(secret),
        instance = yaml_str(instance),
    );
    if let Some((cert, key)) = tls {
        y.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            yaml_str(&cert.to_string_lossy()),
            yaml_str(&key.to_string_lossy())
        ));
    }
    if let Some(path) = htpasswd {
        y.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: mro-tests\n    path: {}\n",
            yaml_str(&path.to_string_lossy())
        ));
    }
    y
}

impl OciRegistry {
    /// Plain HTTP, no auth.
    pub async fn start_plain() -> anyhow::Result<Self> {
        Self::start(RegistryMode::Plain).await
    }

    /// HTTPS (per-run CA) with htpasswd basic auth.
    pub async fn start_auth_tls() -> anyhow::Result<Self> {
        Self::start(RegistryMode::AuthTls).await
    }

    /// As [`OciRegistry::start_auth_tls`], its certificate also valid for `extra_sans` (e.g. the
    /// address pods on the test node dial for the host's loopback).
    pub async fn start_auth_tls_also_for(extra_sans: &[String]) -> anyhow::Result<Self> {
        Self::start_with_sans(RegistryMode::AuthTls, extra_sans).await
    }

    /// Starts a registry and waits until `/v2/` answers. Retries with a new port if the chosen one was
    /// taken in the meantime (the port is picked before the registry binds it).
    pub async fn start(mode: RegistryMode) -> anyhow::Result<Self> {
        Self::start_with_sans(mode, &[]).await
    }

    async fn start_with_sans(mode: RegistryMode, extra_sans: &[String]) -> anyhow::Result<Self> {
        let bin = registry_bin();
        if !bin.exists() {
            bail!(
                "{} not found: install the docker-registry package (tests/tools/install-test-deps.sh)",
                bin.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("mro-oci-").tempdir()?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;

        let (credentials, htpasswd) = match mode {
            RegistryMode::Plain => (None, None),
            RegistryMode::AuthTls => {
                let creds = Credentials {
                    username: "mro-tester".to_owned(),
                    password: random_hex(24),
                };
                let path = dir.path().join("htpasswd");
                std::fs::write(
                    &path,
                    htpasswd_line(&creds.username, &creds.password)? + "\n",
                )?;
                (Some(creds), Some(path))
            }
        };
        let (tls, server_files) = match mode {
            RegistryMode::Plain => (None, None),
            RegistryMode::AuthTls => {
                let ca = TestCa::try_new()?;
                let mut sans = vec!["127.0.0.1", "localhost"];
                sans.extend(extra_sans.iter().map(String::as_str));
                let files = ca.write_server_files(&dir.path().join("tls"), &sans)?;
                let material = TlsMaterial {
                    ca_pem: ca.cert_pem().to_owned(),
                    ca_path: files.ca_cert.clone(),
                };
                (Some(material), Some(files))
            }
        };

        let mut last_err = None;
        for _attempt in 0..3 {
            let host = format!("127.0.0.1:{}", crate::ports::free_port());
            let instance = random_hex(16);
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                config_yaml(
                    &host,
                    &storage,
                    htpasswd.as_deref(),
                    server_files
                        .as_ref()
                        .map(|f| (f.cert.as_path(), f.key.as_path())),
                    &random_hex(32),
                    &instance,
                ),
            )?;
            let log_path = dir.path().join("registry.log");
            let mut child = spawn(&bin, dir.path(), &log_path, false)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let http = probe_client(tls.as_ref().map(|t| t.ca_pem.as_str()))?;
            match wait_ready(
                &mut child,
                &http,
                &format!("{scheme}://{host}/v2/"),
                &instance,
                &log_path,
            )
            .await
            {
                Ok(()) => {
                    return Ok(OciRegistry {
                        child,
                        host,
                        credentials,
                        tls,
                        instance,
                        dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    /// Kills the registry process (open connections are cut, new ones refused), waits `down_for`,
    /// and starts it again on the same port, configuration and storage, like a restarted pod.
    /// Committed blobs and manifests survive; upload sessions in flight may not.
    pub async fn restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        tokio::time::sleep(down_for).await;
        let log_path = self.dir.path().join("registry.log");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.child = spawn(&registry_bin(), self.dir.path(), &log_path, true)?;
            let http = probe_client(self.ca_pem())?;
            let url = format!("{}/v2/", self.base_url());
            match wait_ready(&mut self.child, &http, &url, &self.instance, &log_path).await {
                Ok(()) => return Ok(()),
                // The old process may still hold the port for a moment.
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("registry restart: {e:#}; retrying");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.context("restart the registry")),
            }
        }
    }

    /// The registry process id (e.g. to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:<port>`: the registry part of image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://host` or `https://host`.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.is_tls() { "https" } else { "http" },
            self.host
        )
    }

    /// Whether the registry serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The required username (auth mode only).
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.username.as_str())
    }

    /// The required password (auth mode only).
    pub fn password(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.password.as_str())
    }

    /// The CA certificate that signed the registry's certificate (TLS mode only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The CA certificate as a file (TLS mode only).
    pub fn ca_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_path.as_path())
    }

    /// The registry's storage root, config and log live under this directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's combined stdout/stderr (warnings and errors only).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A full image reference on this registry, e.g. `127.0.0.1:5000/models/x:v1`.
    pub fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{}:{}", self.host, repository.trim_matches('/'), tag)
    }

    /// A docker `config.json` granting access to this registry: `{"auths":{host:{"auth":b64}}}`.
    /// Without auth the `auths` map is empty (nothing is needed).
    pub fn docker_config_json(&self) -> String {
        let mut auths = serde_json::Map::new();
        if let Some(c) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.username, c.password));
            auths.insert(self.host.clone(), serde_json::json!({ "auth": token }));
        }
        serde_json::json!({ "auths": auths }).to_string()
    }

    /// The credentials as `oci-client` wants them (anonymous without auth).
    pub fn registry_auth(&self) -> oci_client::secrets::RegistryAuth {
        match &self.credentials {
            Some(c) => {
                oci_client::secrets::RegistryAuth::Basic(c.username.clone(), c.password.clone())
            }
            None => oci_client::secrets::RegistryAuth::Anonymous,
        }
    }

    /// An `oci-client` configured for this registry: HTTP for the plain one, HTTPS trusting only the
    /// per-run CA for the TLS one.
    pub fn oci_client(&self) -> oci_client::Client {
        use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
        let config = match &self.tls {
            None => ClientConfig {
                protocol: ClientProtocol::Http,
                ..Default::default()
            },
            Some(t) => ClientConfig {
                protocol: ClientProtocol::Https,
                tls_certs_only: vec![Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: t.ca_pem.as_bytes().to_vec(),
                }],
                ..Default::default()
            },
        };
        oci_client::Client::new(config)
    }

    /// A plain reqwest client that trusts this registry (no credentials attached).
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        probe_client(self.ca_pem())
    }
}

/// Starts `docker-registry serve <dir>/config.yml`, logging to `log_path` (appended to on a
/// restart).
fn spawn(bin: &Path, dir: &Path, log_path: &Path, append: bool) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log_path)?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg(dir.join("config.yml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Keep the developer's environment from reconfiguring the registry behind our back.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(k);
        }
    }
    cmd.spawn()
        .with_context(|| format!("spawn {}", bin.display()))
}

/// A reqwest client trusting only `ca_pem` when given (so a wrong certificate fails loudly).
fn probe_client(ca_pem: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(pem) = ca_pem {
        b = b.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes())?]);
    }
    Ok(b.build()?)
}

/// Polls `url` until our registry answers (200, or 401 from the auth registry, carrying our instance
/// header), failing fast with the registry's log if the process exits (typically: the port was taken
/// after we picked it).
async fn wait_ready(
    child: &mut Child,
    http: &reqwest::Client,
    url: &str,
    instance: &str,
    log_path: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            bail!("docker-registry exited with {status} during start-up:\n{log}");
        }
        if let Ok(resp) = http.get(url).send().await
            && (resp.status().is_success() || resp.status() == reqwest::StatusCode::UNAUTHORIZED)
            && resp
                .headers()
                .get(INSTANCE_HEADER)
                .is_some_and(|v| v == instance)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            bail!("docker-registry did not answer {url} within {READY_TIMEOUT:?}:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
