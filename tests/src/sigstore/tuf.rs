//! A TUF repository stand-in serving a sigstore trusted root, like a sigstore instance's
//! `SIGSTORE_TUF_URL`: real TUF metadata (root, targets, snapshot, timestamp) signed with
//! ECDSA P-256 keys by tough's repository editor, consistent snapshots (`N.root.json`,
//! `N.snapshot.json`, `N.targets.json`, `targets/<sha256>.trusted_root.json`), and the latest
//! root also as `root.json` (what clients fetch on first use). Served by [`HttpFileServer`], which
//! records what was fetched.
//!
//! [`TufRepo::rotate_root`] adds `N+1.root.json` with a new key, signed by the old and the new
//! key, and re-signs everything with the new key; [`TufRepo::file`] gives the served files so a
//! test can tamper with them.
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use chrono::{Duration, Utc};
use serde_json::Value;
use tough::editor::RepositoryEditor;
use tough::editor::signed::{PathExists, SignedRole};
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root};
use tough::sign::Sign as _;

use crate::http_files::HttpFileServer;

/// The target name sigstore clients look for.
pub const TRUSTED_ROOT: &str = "trusted_root.json";

/// A served TUF repository.
pub struct TufRepo {
    server: HttpFileServer,
    work: tempfile::TempDir,
    /// The key of every role (one key, threshold 1, like small private deployments).
    key: PathBuf,
    root: Root,
    /// Versions of targets/snapshot/timestamp published so far.
    version: u64,
    keys_made: u32,
}

impl std::fmt::Debug for TufRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TufRepo").field("url", &self.url()).finish()
    }
}

fn nz(n: u64) -> anyhow::Result<NonZeroU64> {
    NonZeroU64::new(n).context("version 0")
}

impl TufRepo {
    /// A repository whose `trusted_root.json` is `trusted_root`, root version 1.
    pub async fn start(trusted_root: &Value) -> anyhow::Result<Self> {
        let server = HttpFileServer::start().await?;
        let work = tempfile::Builder::new().prefix("mro-tuf-").tempdir()?;
        let mut repo = Self {
            server,
            work,
            key: PathBuf::new(),
            root: Root {
                spec_version: "1.0.0".into(),
                consistent_snapshot: true,
                version: nz(1)?,
                expires: Utc::now() + Duration::days(30),
                keys: HashMap::new(),
                roles: HashMap::new(),
                _extra: HashMap::new(),
            },
            version: 0,
            keys_made: 0,
        };
        repo.key = repo.new_key()?;
        repo.root = repo.root_for(&repo.key, 1)?;
        let signed = SignedRole::new(
            repo.root.clone(),
            &KeyHolder::Root(repo.root.clone()),
            &[repo.key_source(&repo.key)],
            &SystemRandom::new(),
        )
        .await?;
        repo.write_root(signed.buffer())?;
        repo.publish(trusted_root).await?;
        Ok(repo)
    }

    /// The repository URL (SIGSTORE_TUF_URL).
    pub fn url(&self) -> String {
        format!("{}/", self.server.base_url())
    }

    /// `1.root.json`, the initial root to pin.
    pub fn initial_root(&self) -> PathBuf {
        self.server.root().join("1.root.json")
    }

    /// A served file, by its path in the repository.
    pub fn file(&self, path: &str) -> PathBuf {
        self.server.root().join(path)
    }

    /// The served path of the current `trusted_root.json` (`targets/<sha256>.trusted_root.json`).
    pub fn trusted_root_file(&self) -> anyhow::Result<PathBuf> {
        let dir = self.server.root().join("targets");
        std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(TRUSTED_ROOT))
            })
            .context("no trusted_root.json target")
    }

    /// Paths fetched from the repository so far.
    pub fn fetched(&self) -> Vec<String> {
        self.server
            .requests()
            .into_iter()
            .map(|r| r.path.clone())
            .collect()
    }

    /// Signs and serves new targets, snapshot and timestamp versions with `trusted_root`.
    pub async fn publish(&mut self, trusted_root: &Value) -> anyhow::Result<()> {
        self.version += 1;
        let input = self.work.path().join(format!("targets-{}", self.version));
        std::fs::create_dir_all(&input)?;
        let target = input.join(TRUSTED_ROOT);
        std::fs::write(&target, serde_json::to_vec_pretty(trusted_root)?)?;
        let root_path = self
            .server
            .root()
            .join(format!("{}.root.json", self.root.version));
        let expires = Utc::now() + Duration::days(7);
        let mut editor = RepositoryEditor::new(&root_path).await?;
        editor
            .targets_version(nz(self.version)?)?
            .targets_expires(expires)?
            .snapshot_version(nz(self.version)?)
            .snapshot_expires(expires)
            .timestamp_version(nz(self.version)?)
            .timestamp_expires(expires);
        editor.add_target_path(&target).await?;
        let signed = editor.sign(&[self.key_source(&self.key)]).await?;
        signed.write(self.server.root()).await?;
        signed
            .copy_targets(
                &input,
                self.server.root().join("targets"),
                PathExists::Replace,
            )
            .await?;
        Ok(())
    }

    /// Root version N+1 with a new key for every role, signed by the old and the new key, then
    /// the other metadata re-signed with the new key only. A client that does not follow the
    /// rotation cannot verify the new timestamp.
    pub async fn rotate_root(&mut self, trusted_root: &Value) -> anyhow::Result<()> {
        let old_key = self.key.clone();
        let old_root = self.root.clone();
        let new_key = self.new_key()?;
        let next = self.root_for(&new_key, old_root.version.get() + 1)?;
        let rng = SystemRandom::new();
        let by_old = SignedRole::new(
            next.clone(),
            &KeyHolder::Root(old_root),
            &[self.key_source(&old_key)],
            &rng,
        )
        .await?;
        let signed = SignedRole::new(
            next.clone(),
            &KeyHolder::Root(next.clone()),
            &[self.key_source(&new_key)],
            &rng,
        )
        .await?
        .add_old_signatures(by_old.signed().signatures.clone())?;
        self.key = new_key;
        self.root = next;
        self.write_root(signed.buffer())?;
        self.publish(trusted_root).await
    }

    fn write_root(&self, buffer: &[u8]) -> anyhow::Result<()> {
        let dir = self.server.root();
        std::fs::write(dir.join(format!("{}.root.json", self.root.version)), buffer)?;
        std::fs::write(dir.join("root.json"), buffer)?;
        Ok(())
    }

    /// A root whose four roles are held by `key`.
    fn root_for(&self, key: &Path, version: u64) -> anyhow::Result<Root> {
        let der = std::fs::read(key)?;
        let tuf_key = tough::sign::parse_keypair(&der)?.tuf_key();
        let id = tuf_key.key_id()?;
        let roles = [
            RoleType::Root,
            RoleType::Targets,
            RoleType::Snapshot,
            RoleType::Timestamp,
        ]
        .into_iter()
        .map(|r| {
            (
                r,
                RoleKeys {
                    keyids: vec![id.clone()],
                    threshold: NonZeroU64::MIN,
                    _extra: HashMap::new(),
                },
            )
        })
        .collect();
        Ok(Root {
            version: nz(version)?,
            keys: HashMap::from([(id, tuf_key)]),
            roles,
            ..self.root.clone()
        })
    }

    /// A new ECDSA P-256 key as a PKCS#8 DER file (what tough's local key source reads).
    fn new_key(&mut self) -> anyhow::Result<PathBuf> {
        self.keys_made += 1;
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| anyhow::anyhow!("generate a TUF key"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| anyhow::anyhow!("encode a TUF key"))?;
        let path = self.work.path().join(format!("key-{}.der", self.keys_made));
        std::fs::write(&path, der.as_ref())?;
        Ok(path)
    }

    fn key_source(&self, path: &Path) -> Box<dyn KeySource> {
        Box::new(LocalKeySource {
            path: path.to_owned(),
        })
    }
}
