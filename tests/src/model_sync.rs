//! Running the `model-sync` binary the way a Kubernetes Job runs it, for the integration tests
//! and the `bench-sync` benchmark.
//!
//! Where the binary comes from: `MODEL_SYNC_BIN` when set (CI can build once and point at it);
//! otherwise [`binary`] runs `cargo build -p model-sync --message-format=json` once per process
//! and takes the executable path cargo reports. Asking cargo (instead of guessing
//! `target/debug/model-sync`) keeps this right under `CARGO_TARGET_DIR`, `--target-dir` and
//! profiles, and means a test never runs a stale binary. Cargo releases its build lock before it
//! runs test binaries, so the nested build only waits while another build is running.
//!
//! The child gets a clean environment (`env_clear`, plus `PATH` and `HOME`): only what a Job
//! manifest would set reaches it, so nothing from the developer's shell (AWS_*, docker config)
//! can make a test pass by accident.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::OnceCell;

use crate::oci_registry::OciRegistry;
use crate::s3::S3Server;

/// Build profile of the binary under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// The `model-sync` executable, built on first use (see the module docs).
pub async fn binary(profile: Profile) -> anyhow::Result<PathBuf> {
    static DEBUG: OnceCell<PathBuf> = OnceCell::const_new();
    static RELEASE: OnceCell<PathBuf> = OnceCell::const_new();
    if profile == Profile::Debug
        && let Some(p) = std::env::var_os("MODEL_SYNC_BIN")
    {
        return Ok(PathBuf::from(p));
    }
    let cell = match profile {
        Profile::Debug => &DEBUG,
        Profile::Release => &RELEASE,
    };
    cell.get_or_try_init(|| build(profile)).await.cloned()
}

async fn build(profile: Profile) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = tokio::process::Command::new(cargo);
    cmd.current_dir(crate::tools::repo_root())
        .args([
            "build",
            "-p",
            "model-sync",
            "--bin",
            "model-sync",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .await
        .context("run cargo build -p model-sync")?;
    if !out.status.success() {
        bail!(
            "cargo build -p model-sync failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["target"]["name"] == "model-sync"
            && let Some(exe) = v["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo build did not report the model-sync executable")
}

/// What one run of the binary left behind.
#[derive(Debug, Clone)]
pub struct JobOutput {
    /// `None` when killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The termination message file (empty when not written).
    pub termination: String,
    pub duration: Duration,
}

impl JobOutput {
    /// The termination message as JSON (`Value::Null` when it is not JSON). A failure's JSON
    /// is on the last line, after a human-readable first line.
    pub fn json(&self) -> Value {
        model_sync::run::termination::json_document(&self.termination).unwrap_or(Value::Null)
    }

    /// Everything the job printed or wrote, for secret and field-name checks.
    pub fn all_output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}\n--- termination message\n{}",
            self.stdout, self.stderr, self.termination
        )
    }

    /// Panics with the whole output unless the job exited with `code`.
    pub fn expect_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.exit_code,
            Some(code),
            "unexpected exit code\n{}",
            self.all_output()
        );
        self
    }

    /// The `reason` of a failure document.
    pub fn reason(&self) -> String {
        self.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A Job's worth of configuration: environment, arguments and mounted files, in a temp dir.
#[derive(Debug)]
pub struct SyncJob {
    env: BTreeMap<String, String>,
    args: Vec<String>,
    dir: tempfile::TempDir,
    profile: Profile,
    timeout: Duration,
}

impl SyncJob {
    /// An empty job with its termination message and scratch space in a fresh temp dir.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("mro-sync-job-").tempdir()?;
        let mut env = BTreeMap::new();
        env.insert(
            "TERMINATION_MESSAGE_PATH".to_owned(),
            dir.path().join("termination-log").display().to_string(),
        );
        env.insert(
            "MODEL_SYNC_STORAGE_PATH".to_owned(),
            dir.path().join("scratch").display().to_string(),
        );
        Ok(Self {
            env,
            args: Vec::new(),
            dir,
            profile: Profile::Debug,
            timeout: Duration::from_secs(300),
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn profile(&mut self, p: Profile) -> &mut Self {
        self.profile = p;
        self
    }

    pub fn timeout(&mut self, t: Duration) -> &mut Self {
        self.timeout = t;
        self
    }

    pub fn env(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    pub fn remove_env(&mut self, key: &str) -> &mut Self {
        self.env.remove(key);
        self
    }

    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    pub fn arg(&mut self, a: impl Into<String>) -> &mut Self {
        self.args.push(a.into());
        self
    }

    /// Writes a file under the job directory (a "mounted" Secret or ConfigMap key).
    pub fn file(&self, rel: &str, contents: impl AsRef<[u8]>) -> anyhow::Result<PathBuf> {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, contents)?;
        Ok(p)
    }

    /// The metadata ConfigMap: one file per key, mounted at `<dir>/metadata`.
    pub fn metadata(&mut self, entries: &[(&str, &str)]) -> anyhow::Result<&mut Self> {
        for (k, v) in entries {
            self.file(&format!("metadata/{k}"), v)?;
        }
        let p = self.dir.path().join("metadata").display().to_string();
        Ok(self.env("MODEL_SYNC_METADATA_CONFIGMAP_PATH", p))
    }

    /// create_model with the given names (and a format, like the UI sends).
    pub fn create_model(&mut self, model: &str, version: &str) -> anyhow::Result<&mut Self> {
        self.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "create_model")
            .metadata(&[
                ("RegisteredModel.name", model),
                ("RegisteredModel.description", "made by model-sync tests"),
                ("ModelVersion.name", version),
                ("ModelVersion.author", "tester"),
                ("ModelArtifact.model_format_name", "onnx"),
                ("ModelArtifact.model_format_version", "1"),
                (
                    "ModelArtifact.custom_properties",
                    r#"{"accuracy": 0.9, "size": 3}"#,
                ),
            ])
    }

    /// The registry settings for a stand-in (plain HTTP; its token, when it has one).
    pub fn registry(&mut self, base_url: &str, token: Option<&str>) -> &mut Self {
        let url = url::Url::parse(base_url).expect("registry base url");
        let port = url.port_or_known_default().unwrap_or(80);
        self.env(
            "MODEL_SYNC_REGISTRY_SERVER_ADDRESS",
            format!(
                "{}://{}",
                url.scheme(),
                url.host_str().unwrap_or("127.0.0.1")
            ),
        )
        .env("MODEL_SYNC_REGISTRY_PORT", port.to_string())
        .env("MODEL_SYNC_REGISTRY_IS_SECURE", "false");
        if let Some(t) = token {
            self.env("MODEL_SYNC_REGISTRY_USER_TOKEN", t);
        }
        self
    }

    /// S3 source with explicit keys in the environment.
    pub fn s3_source(&mut self, s3: &S3Server, bucket: &str, key: &str) -> &mut Self {
        self.env("MODEL_SYNC_SOURCE_TYPE", "s3")
            .env("MODEL_SYNC_SOURCE_AWS_BUCKET", bucket)
            .env("MODEL_SYNC_SOURCE_AWS_KEY", key)
            .env("MODEL_SYNC_SOURCE_AWS_REGION", s3.region())
            .env("MODEL_SYNC_SOURCE_AWS_ENDPOINT", s3.endpoint())
            .env("MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID", s3.access_key())
            .env("MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY", s3.secret_key())
    }

    /// S3 source whose credentials come from a data-connection Secret directory (one file per
    /// key, values with trailing newlines as `kubectl create secret --from-file` leaves them).
    pub fn s3_source_from_data_connection(
        &mut self,
        s3: &S3Server,
        bucket: &str,
        key: &str,
    ) -> anyhow::Result<&mut Self> {
        let dir = self.data_connection("source-s3", s3, bucket)?;
        Ok(self
            .env("MODEL_SYNC_SOURCE_TYPE", "s3")
            .env("MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH", dir)
            .env("MODEL_SYNC_SOURCE_AWS_KEY", key))
    }

    /// S3 destination with explicit keys.
    pub fn s3_destination(&mut self, s3: &S3Server, bucket: &str, key: &str) -> &mut Self {
        self.env("MODEL_SYNC_DESTINATION_TYPE", "s3")
            .env("MODEL_SYNC_DESTINATION_AWS_BUCKET", bucket)
            .env("MODEL_SYNC_DESTINATION_AWS_KEY", key)
            .env("MODEL_SYNC_DESTINATION_AWS_REGION", s3.region())
            .env("MODEL_SYNC_DESTINATION_AWS_ENDPOINT", s3.endpoint())
            .env("MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID", s3.access_key())
            .env(
                "MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY",
                s3.secret_key(),
            )
    }

    /// S3 destination through a data-connection directory.
    pub fn s3_destination_from_data_connection(
        &mut self,
        s3: &S3Server,
        bucket: &str,
        key: &str,
    ) -> anyhow::Result<&mut Self> {
        let dir = self.data_connection("destination-s3", s3, bucket)?;
        Ok(self
            .env("MODEL_SYNC_DESTINATION_TYPE", "s3")
            .env("MODEL_SYNC_DESTINATION_S3_CREDENTIALS_PATH", dir)
            .env("MODEL_SYNC_DESTINATION_AWS_KEY", key))
    }

    fn data_connection(&self, name: &str, s3: &S3Server, bucket: &str) -> anyhow::Result<String> {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", s3.access_key().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", s3.secret_key().to_owned()),
            ("AWS_DEFAULT_REGION", s3.region().to_owned()),
            ("AWS_S3_ENDPOINT", s3.endpoint()),
            ("AWS_S3_BUCKET", bucket.to_owned()),
        ] {
            self.file(&format!("{name}/{k}"), format!("{v}\n"))?;
        }
        Ok(self.dir.path().join(name).display().to_string())
    }

    /// OCI destination on a test registry. For the auth+TLS registry the credentials come from
    /// a docker `config.json` and the registry's CA is trusted through `SSL_CERT_FILE`.
    pub fn oci_destination(
        &mut self,
        reg: &OciRegistry,
        repo: &str,
        tag: &str,
    ) -> anyhow::Result<&mut Self> {
        self.env("MODEL_SYNC_DESTINATION_TYPE", "oci").env(
            "MODEL_SYNC_DESTINATION_OCI_URI",
            format!("oci://{}", reg.reference(repo, tag)),
        );
        self.oci_access(reg, "DESTINATION")?;
        Ok(self)
    }

    /// OCI source on a test registry.
    pub fn oci_source(&mut self, reg: &OciRegistry, reference: &str) -> anyhow::Result<&mut Self> {
        self.env("MODEL_SYNC_SOURCE_TYPE", "oci")
            .env("MODEL_SYNC_SOURCE_OCI_URI", format!("oci://{reference}"));
        self.oci_access(reg, "SOURCE")?;
        Ok(self)
    }

    fn oci_access(&mut self, reg: &OciRegistry, side: &str) -> anyhow::Result<()> {
        if reg.username().is_some() {
            let p = self.file(
                &format!("{}-docker/config.json", side.to_ascii_lowercase()),
                reg.docker_config_json(),
            )?;
            self.env(
                &format!("MODEL_SYNC_{side}_OCI_CREDENTIALS_PATH"),
                p.display().to_string(),
            );
        }
        if let Some(ca) = reg.ca_path() {
            self.env("SSL_CERT_FILE", ca.display().to_string());
        }
        if !reg.is_tls() {
            self.env(&format!("MODEL_SYNC_{side}_OCI_ENABLE_TLS_VERIFY"), "false");
        }
        Ok(())
    }

    /// PVC destination directory (created under the job dir when relative).
    pub fn pvc_destination(&mut self, path: &Path) -> &mut Self {
        self.env("MODEL_SYNC_DESTINATION_TYPE", "pvc")
            .env("MODEL_SYNC_DESTINATION_PATH", path.display().to_string())
    }

    /// PVC source (a directory or a file).
    pub fn pvc_source(&mut self, path: &Path) -> &mut Self {
        self.env("MODEL_SYNC_SOURCE_TYPE", "pvc")
            .env("MODEL_SYNC_SOURCE_PATH", path.display().to_string())
    }

    /// http(s) source.
    pub fn uri_source(&mut self, uri: &str) -> &mut Self {
        self.env("MODEL_SYNC_SOURCE_TYPE", "uri")
            .env("MODEL_SYNC_SOURCE_URI", uri)
    }

    /// The path of the termination message file.
    pub fn termination_path(&self) -> PathBuf {
        PathBuf::from(&self.env["TERMINATION_MESSAGE_PATH"])
    }

    /// Runs the binary to completion (or the timeout, which kills it).
    pub async fn run(&self) -> anyhow::Result<JobOutput> {
        self.run_wrapped(&[]).await
    }

    /// Like [`SyncJob::run`], but starts `wrapper… <model-sync> <args>` (a measuring parent,
    /// for the benchmark). The wrapper gets the Job's environment too.
    pub async fn run_wrapped(&self, wrapper: &[String]) -> anyhow::Result<JobOutput> {
        let mut child = self.spawn_wrapped(wrapper).await?;
        let started = std::time::Instant::now();
        // The output is read as it comes, so that a run that hangs still shows what it did.
        let (stdout, out_task) = read_along(child.stdout.take());
        let (stderr, err_task) = read_along(child.stderr.take());
        let text = |b: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&b.lock().expect("output")).into_owned()
        };
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(r) => r.context("wait for model-sync")?,
            Err(_) => {
                let _ = child.kill().await;
                let err = text(&stderr);
                let lines: Vec<&str> = err.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                bail!(
                    "model-sync did not finish within {:?}; the end of its stderr:\n{tail}",
                    self.timeout
                );
            }
        };
        let _ = tokio::join!(out_task, err_task);
        Ok(JobOutput {
            exit_code: status.code(),
            stdout: text(&stdout),
            stderr: text(&stderr),
            termination: std::fs::read_to_string(self.termination_path()).unwrap_or_default(),
            duration: started.elapsed(),
        })
    }

    /// Starts the binary with piped output (for tests that signal it).
    pub async fn spawn(&self) -> anyhow::Result<tokio::process::Child> {
        self.spawn_wrapped(&[]).await
    }

    async fn spawn_wrapped(&self, wrapper: &[String]) -> anyhow::Result<tokio::process::Child> {
        let bin = binary(self.profile).await?;
        let _ = std::fs::remove_file(self.termination_path());
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(rest).arg(&bin);
                c
            }
            None => tokio::process::Command::new(&bin),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .envs(&self.env)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn()
            .with_context(|| format!("spawn {}", bin.display()))
    }
}

/// A synthetic model: relative path → content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Deterministic pseudo-random bytes (xorshift64*), so content is incompressible but
/// reproducible across runs.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

impl Model {
    /// A small model with weights, json files and a subdirectory.
    pub fn small(seed: u64) -> Self {
        let mut files = BTreeMap::new();
        files.insert("model.onnx".to_owned(), pseudo_random(seed, 300_000));
        files.insert(
            "config.json".to_owned(),
            format!("{{\"seed\": {seed}, \"layers\": 12}}\n").into_bytes(),
        );
        files.insert(
            "tokenizer/vocab.json".to_owned(),
            format!("{{\"a\": 1, \"seed\": {seed}}}\n").into_bytes(),
        );
        files.insert(
            "weights/part-0.bin".to_owned(),
            pseudo_random(seed + 1, 70_000),
        );
        Self { files }
    }

    /// One file of `len` bytes.
    pub fn single(name: &str, seed: u64, len: usize) -> Self {
        let mut files = BTreeMap::new();
        files.insert(name.to_owned(), pseudo_random(seed, len));
        Self { files }
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|v| v.len() as u64).sum()
    }

    /// Uploads every file as `bucket/prefix/path` (prefix without trailing slash).
    pub async fn put_s3(&self, s3: &S3Server, bucket: &str, prefix: &str) -> anyhow::Result<()> {
        let client = s3.new_client();
        let _ = client.create_bucket().bucket(bucket).send().await;
        for (p, data) in &self.files {
            let key = if prefix.is_empty() {
                p.clone()
            } else {
                format!("{}/{p}", prefix.trim_end_matches('/'))
            };
            client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(aws_sdk_s3::primitives::ByteStream::from(data.clone()))
                .send()
                .await
                .with_context(|| format!("put s3://{bucket}/{key}"))?;
        }
        Ok(())
    }

    /// Writes the files under `dir`.
    pub fn write_dir(&self, dir: &Path) -> anyhow::Result<()> {
        for (p, data) in &self.files {
            let full = dir.join(p);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&full, data)?;
        }
        Ok(())
    }

    /// Reads every regular file under `dir` (relative paths, `/`-separated).
    pub fn read_dir(dir: &Path) -> anyhow::Result<Self> {
        fn walk(
            base: &Path,
            dir: &Path,
            out: &mut BTreeMap<String, Vec<u8>>,
        ) -> anyhow::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let p = e.path();
                let ft = e.file_type()?;
                if ft.is_dir() {
                    walk(base, &p, out)?;
                } else if ft.is_file() {
                    let rel = p.strip_prefix(base)?.to_string_lossy().replace('\\', "/");
                    out.insert(rel, std::fs::read(&p)?);
                }
            }
            Ok(())
        }
        let mut files = BTreeMap::new();
        walk(dir, dir, &mut files)?;
        Ok(Self { files })
    }

    /// Reads every object under `bucket/prefix/` back (paths relative to the prefix).
    pub async fn read_s3(s3: &S3Server, bucket: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = s3.new_client();
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        let mut files = BTreeMap::new();
        let mut token = None;
        loop {
            let out = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .with_context(|| format!("list s3://{bucket}/{prefix}"))?;
            for o in out.contents() {
                let key = o.key().unwrap_or_default();
                let data = s3.get_object(bucket, key).await?;
                files.insert(key[prefix.len()..].to_owned(), data.to_vec());
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(Self { files })
    }

    /// A tar archive of the model (for `uri` sources).
    pub fn tar(&self) -> anyhow::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in &self.files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, p, data.as_slice())?;
        }
        Ok(b.into_inner()?)
    }
}

/// A pulled image: manifest digest, manifest JSON, config JSON, and the files under `/models`.
#[derive(Debug, Clone)]
pub struct PulledImage {
    pub digest: String,
    pub manifest: Value,
    pub config: Value,
    pub layer_media_types: Vec<String>,
    pub models: Model,
    /// Every path in every layer, in order.
    pub paths: Vec<String>,
}

/// Pulls `reference` (tag or digest) and unpacks its layers in memory, verifying every digest.
pub async fn pull_image(reg: &OciRegistry, reference: &str) -> anyhow::Result<PulledImage> {
    use std::io::Read as _;
    let client = reg.oci_client();
    let auth = reg.registry_auth();
    let r: oci_client::Reference = reference.parse()?;
    let (raw, digest) = client
        .pull_manifest_raw(
            &r,
            &auth,
            &[
                oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
            ],
        )
        .await
        .with_context(|| format!("pull manifest {reference}"))?;
    let manifest: Value = serde_json::from_slice(&raw)?;
    let computed = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
    anyhow::ensure!(computed == digest, "manifest digest {digest} != {computed}");
    let parsed: oci_client::manifest::OciImageManifest = serde_json::from_slice(&raw)?;
    let mut config_bytes = Vec::new();
    client
        .pull_blob(&r, &parsed.config, &mut config_bytes)
        .await
        .context("pull config")?;
    let config: Value = serde_json::from_slice(&config_bytes).unwrap_or(Value::Null);
    let mut models = Model::default();
    let mut paths = Vec::new();
    let mut media = Vec::new();
    for layer in &parsed.layers {
        let mut data = Vec::new();
        client
            .pull_blob(&r, layer, &mut data)
            .await
            .with_context(|| format!("pull layer {}", layer.digest))?;
        let computed = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        anyhow::ensure!(computed == layer.digest, "layer digest mismatch");
        media.push(layer.media_type.clone());
        let reader: Box<dyn std::io::Read> = if layer.media_type.contains("gzip") {
            Box::new(flate2::read::GzDecoder::new(std::io::Cursor::new(data)))
        } else {
            Box::new(std::io::Cursor::new(data))
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.to_string_lossy().into_owned();
            let norm = path
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned();
            paths.push(norm.clone());
            if entry.header().entry_type().is_file()
                && let Some(rel) = norm.strip_prefix("models/")
            {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf)?;
                models.files.insert(rel.to_owned(), buf);
            }
        }
    }
    Ok(PulledImage {
        digest,
        manifest,
        config,
        layer_media_types: media,
        models,
        paths,
    })
}

/// A TCP proxy in front of a server that can cut every connection and refuse new ones for a
/// while, like a server restart. Used for "S3 restarted mid-transfer".
/// Reads a child's pipe to its end in the background, into the returned buffer.
fn read_along<R>(pipe: Option<R>) -> (Arc<Mutex<Vec<u8>>>, tokio::task::JoinHandle<()>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use tokio::io::AsyncReadExt as _;
    let buf = Arc::new(Mutex::new(Vec::new()));
    let into = buf.clone();
    let task = tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk).await
            && n > 0
        {
            into.lock().expect("output").extend_from_slice(&chunk[..n]);
        }
    });
    (buf, task)
}

pub struct FlakyProxy {
    addr: std::net::SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    upstream: std::net::SocketAddr,
    forwarded: AtomicU64,
    /// Cut when `forwarded` passes this (0 = never).
    cut_at: AtomicU64,
    down_for: Mutex<Duration>,
    cuts: AtomicU64,
    /// While set, new connections are closed at once.
    down: AtomicBool,
    generation: AtomicU64,
    conns: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
    next: AtomicU64,
}

impl FlakyProxy {
    /// Listens on a loopback port and forwards to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState {
            upstream,
            forwarded: AtomicU64::new(0),
            cut_at: AtomicU64::new(0),
            down_for: Mutex::new(Duration::ZERO),
            cuts: AtomicU64::new(0),
            down: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                if st.down.load(Ordering::SeqCst) {
                    drop(sock);
                    continue;
                }
                let id = st.next.fetch_add(1, Ordering::SeqCst);
                let st2 = st.clone();
                let h = tokio::spawn(async move {
                    let _ = proxy_conn(sock, st2.clone()).await;
                    st2.conns.lock().expect("conns").remove(&id);
                });
                st.conns.lock().expect("conns").insert(id, h.abort_handle());
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// After `bytes` more bytes have gone through (either way), cut all connections and refuse
    /// new ones for `down_for`.
    pub fn cut_after(&self, bytes: u64, down_for: Duration) {
        *self.state.down_for.lock().expect("down_for") = down_for;
        let now = self.state.forwarded.load(Ordering::SeqCst);
        self.state
            .cut_at
            .store(now + bytes.max(1), Ordering::SeqCst);
    }

    /// How many cuts happened.
    pub fn cuts(&self) -> u64 {
        self.state.cuts.load(Ordering::SeqCst)
    }

    pub fn forwarded(&self) -> u64 {
        self.state.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.task.abort();
        for (_, h) in self.state.conns.lock().expect("conns").drain() {
            h.abort();
        }
    }
}

fn cut(state: &Arc<ProxyState>) {
    state.cut_at.store(0, Ordering::SeqCst);
    state.cuts.fetch_add(1, Ordering::SeqCst);
    state.down.store(true, Ordering::SeqCst);
    let generation = state.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let handles: Vec<_> = state
        .conns
        .lock()
        .expect("conns")
        .drain()
        .map(|(_, h)| h)
        .collect();
    for h in handles {
        h.abort();
    }
    let down_for = *state.down_for.lock().expect("down_for");
    let st = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(down_for).await;
        if st.generation.load(Ordering::SeqCst) == generation {
            st.down.store(false, Ordering::SeqCst);
        }
    });
}

async fn proxy_conn(client: tokio::net::TcpStream, st: Arc<ProxyState>) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt as _;
    let upstream = tokio::net::TcpStream::connect(st.upstream).await?;
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let pump = |mut r: tokio::net::tcp::OwnedReadHalf,
                mut w: tokio::net::tcp::OwnedWriteHalf,
                st: Arc<ProxyState>| async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                let _ = w.shutdown().await;
                return Ok::<(), std::io::Error>(());
            }
            w.write_all(&buf[..n]).await?;
            let total = st.forwarded.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            let at = st.cut_at.load(Ordering::SeqCst);
            if at != 0 && total >= at {
                cut(&st);
            }
        }
    };
    let a = pump(ur, cw, st.clone());
    let b = pump(cr, uw, st.clone());
    let _ = tokio::try_join!(a, b);
    Ok(())
}

/// Pushes a tiny single-layer image to stand in for `busybox` (the tests run offline), and
/// returns its reference (`host/base/busybox:1`).
pub async fn push_base_image(reg: &OciRegistry) -> anyhow::Result<String> {
    push_base_image_as(reg, "base/busybox", "1").await
}

/// [`push_base_image`] under a chosen repository and tag.
pub async fn push_base_image_as(
    reg: &OciRegistry,
    repository: &str,
    tag: &str,
) -> anyhow::Result<String> {
    use oci_client::client::{Config, ImageLayer};
    use oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE;
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("bin/true", &b"#!/bin/sh\nexit 0\n"[..]),
        ("etc/os-release", b"ID=mro-test\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, data)?;
    }
    let layer_data = b.into_inner()?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&layer_data)));
    let layer = ImageLayer::new(layer_data, IMAGE_LAYER_MEDIA_TYPE.to_owned(), None);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    let config = Config::oci_v1(serde_json::to_vec(&config)?, None);
    let reference = reg.reference(repository, tag);
    let r: oci_client::Reference = reference.parse()?;
    reg.oci_client()
        .push(
            &r,
            std::slice::from_ref(&layer),
            config,
            &reg.registry_auth(),
            None,
        )
        .await
        .context("push the base image")?;
    Ok(reference)
}
