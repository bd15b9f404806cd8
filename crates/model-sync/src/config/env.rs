//! Precedence layers: command line > environment > credential files > defaults.
//!
//! The Python job documents this order but lets credential files overwrite CLI and env values;
//! here the order is structural: [`Layers::get`] consults the layers in order and stops at the
//! first hit, and every value remembers where it came from.
//!
//! The environment is injected through [`LoadContext`] rather than read from the process, so
//! tests can exercise every layer without mutating the (shared, multi-threaded) process env.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::args::Key;

/// Kubernetes mounts the pod's service-account token here.
pub const DEFAULT_SA_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Where the metadata ConfigMap is looked for when no path is given.
pub const DEFAULT_METADATA_DIR: &str = "/etc/model-metadata";
/// Kubernetes reads a container's termination message from here by default.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// The variable naming extra trusted CAs (a PEM bundle), read into the configuration once.
pub use mro_job_contract::settings::SSL_CERT_FILE;

/// Everything outside the command line that configuration reads: the environment and the
/// well-known paths. Tests build one by hand.
#[derive(Clone, Debug)]
pub struct LoadContext {
    env: BTreeMap<String, String>,
    /// Fallback bearer token for the registry.
    pub service_account_token_path: PathBuf,
    /// Metadata directory used when `--metadata-configmap-path` is not set and this exists.
    pub default_metadata_dir: PathBuf,
}

impl LoadContext {
    /// The real process environment and paths. Variables that are not valid UTF-8 are skipped;
    /// none of the variables read here can legitimately hold such bytes.
    pub fn from_process() -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self {
            env,
            service_account_token_path: PathBuf::from(DEFAULT_SA_TOKEN_PATH),
            default_metadata_dir: PathBuf::from(DEFAULT_METADATA_DIR),
        }
    }

    /// A context with the given variables. The well-known paths point at locations that do not
    /// exist, so nothing from the host leaks into a test; tests that want them set the fields.
    pub fn with_env<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            env: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            service_account_token_path: PathBuf::from("/nonexistent/model-sync/sa-token"),
            default_metadata_dir: PathBuf::from("/nonexistent/model-sync/metadata"),
        }
    }

    /// A variable's value, trimmed; empty counts as unset (Kubernetes manifests often carry
    /// `value: ""` for "not configured").
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Cli,
    Env,
    /// A credential file (S3 directory entry, docker config, URI file).
    File(PathBuf),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cli => f.write_str("command line"),
            Self::Env => f.write_str("environment"),
            Self::File(p) => write!(f, "file {}", p.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

/// A resolved value and its origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub origin: Origin,
}

/// The layered settings.
#[derive(Clone, Debug, Default)]
pub struct Layers {
    cli: BTreeMap<Key, String>,
    env: BTreeMap<Key, String>,
    files: BTreeMap<Key, (String, PathBuf)>,
}

impl Layers {
    /// Command-line values plus every `MODEL_SYNC_*` variable of the context.
    pub fn new(cli: BTreeMap<Key, String>, ctx: &LoadContext) -> Self {
        let cli = cli
            .into_iter()
            .map(|(k, v)| (k, v.trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let env = Key::ALL
            .iter()
            .filter_map(|k| Some((*k, ctx.var(k.env())?.to_owned())))
            .collect();
        Self {
            cli,
            env,
            files: BTreeMap::new(),
        }
    }

    /// Records a value read from a credential file. It only wins over the default.
    pub fn set_from_file(&mut self, key: Key, value: String, path: &Path) {
        let value = value.trim().to_owned();
        if !value.is_empty() {
            self.files.insert(key, (value, path.to_owned()));
        }
    }

    /// The effective value: CLI, else env, else credential file, else default.
    pub fn get(&self, key: Key) -> Option<Value> {
        self.explicit(key).or_else(|| {
            key.default_value().map(|d| Value {
                text: d.to_owned(),
                origin: Origin::Default,
            })
        })
    }

    /// Like [`Self::get`] without the default: was the setting given at all?
    pub fn explicit(&self, key: Key) -> Option<Value> {
        if let Some(v) = self.cli.get(&key) {
            return Some(Value {
                text: v.clone(),
                origin: Origin::Cli,
            });
        }
        if let Some(v) = self.env.get(&key) {
            return Some(Value {
                text: v.clone(),
                origin: Origin::Env,
            });
        }
        self.files.get(&key).map(|(v, p)| Value {
            text: v.clone(),
            origin: Origin::File(p.clone()),
        })
    }

    /// The effective text only.
    pub fn text(&self, key: Key) -> Option<String> {
        self.get(key).map(|v| v.text)
    }

    /// Whether the setting was given on the command line or in the environment (credential
    /// files excluded): used to warn about settings that the chosen types ignore.
    pub fn given_by_user(&self, key: Key) -> bool {
        self.cli.contains_key(&key) || self.env.contains_key(&key)
    }
}
