//! The validated configuration the transfer engine consumes.
//!
//! Everything here has passed validation: required values are present, URIs parse, secrets are
//! wrapped in [`Secret`]. `Debug` output is safe to log; [`Config::summary`] is the tidy
//! version printed at start-up.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

use oci_client::Reference;
use url::Url;

use super::metadata::ModelMetadata;
use super::secret::Secret;
use super::signing::Signing;

/// What the process was asked to do.
#[derive(Debug)]
pub enum Mode {
    /// The normal job: move a model and register it.
    Sync(Box<Config>),
    /// KServe storage-initializer invocation: `model-sync <source-uri> <dest-path>`.
    StorageInitializer(Box<StorageInitializerConfig>),
}

/// Result of loading: something to run, or text to print (`--help`, `--version`).
#[derive(Debug)]
pub enum Loaded {
    Run(Mode),
    Info(String),
}

/// The whole job configuration.
#[derive(Debug)]
pub struct Config {
    pub source: Source,
    pub destination: Destination,
    pub registry: RegistrySettings,
    pub intent: Intent,
    /// The raw ids as given (the intent carries the ones it needs, validated).
    pub ids: ModelIds,
    /// The metadata ConfigMap, when one was found.
    pub metadata: Option<ModelMetadata>,
    pub signing: Signing,
    /// Scratch space for staging.
    pub storage_path: PathBuf,
    /// Files transferred at once (`None`: the destination's default).
    pub concurrency: Option<usize>,
    /// Resuming an OCI push after a kill (`--resume-journal`), and its part size.
    pub resume: Option<Resume>,
    /// `--destination-oci-part-mib` in bytes (`None`: a whole layer per `PATCH`, or
    /// [`DEFAULT_RESUME_PART`] with a journal).
    pub oci_part_bytes: Option<u64>,
    /// `TERMINATION_MESSAGE_PATH` (default `/dev/termination-log`).
    pub termination_message_path: PathBuf,
    /// `LOGLEVEL`, passed through to the log filter.
    pub log_level: Option<String>,
    /// `SSL_CERT_FILE`: a PEM bundle trusted next to the built-in roots (OCI registries,
    /// http(s) downloads, signing services).
    pub extra_ca_file: Option<PathBuf>,
    /// Non-fatal findings (ignored settings, unknown metadata keys, partial sigstore config).
    pub warnings: Vec<String>,
}

/// Part size of a journaled OCI push when `--destination-oci-part-mib` is not set: a rerun after
/// a kill sends at most this much of each layer in flight again.
pub const DEFAULT_RESUME_PART: u64 = 64 << 20;

/// `--resume-journal`: where an OCI push records its layer uploads (see the OCI back-end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub journal: PathBuf,
}

/// `--model-upload-intent` with the ids and names it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Point an existing artifact at the new location and mark it LIVE.
    UpdateArtifact { model_artifact_id: String },
    /// Create a registered model, a version and an artifact.
    CreateModel {
        model_name: String,
        version_name: String,
    },
    /// Create a version and an artifact under an existing registered model.
    CreateVersion {
        model: ModelRef,
        version_name: String,
    },
}

impl Intent {
    /// The wire spelling (`update_artifact`, ...), as used in the termination message.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UpdateArtifact { .. } => "update_artifact",
            Self::CreateModel { .. } => "create_model",
            Self::CreateVersion { .. } => "create_version",
        }
    }
}

/// How `create_version` names its parent model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRef {
    Id(String),
    Name(String),
}

/// `--model-id`, `--model-version-id`, `--model-artifact-id` as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelIds {
    pub model_id: Option<String>,
    pub model_version_id: Option<String>,
    pub model_artifact_id: Option<String>,
}

/// Where the model is read from.
#[derive(Debug)]
pub enum Source {
    S3(S3Location),
    Oci(OciLocation),
    Uri(UriSource),
    /// A mounted volume: a file or a directory.
    Pvc {
        path: PathBuf,
    },
}

/// Where the model is written to.
#[derive(Debug)]
pub enum Destination {
    S3(S3Location),
    Oci(OciDestination),
    /// A mounted volume directory.
    Pvc {
        path: PathBuf,
    },
}

/// An S3 bucket/key plus how to reach and authenticate to it.
#[derive(Clone, Debug, PartialEq)]
pub struct S3Location {
    pub bucket: String,
    /// Object key or prefix, as given (no slash is added or removed).
    pub key: String,
    pub region: Option<String>,
    /// Custom endpoint of an S3-compatible server.
    pub endpoint: Option<Url>,
    pub credentials: S3Credentials,
}

/// S3 authentication.
#[derive(Clone, Debug, PartialEq)]
pub enum S3Credentials {
    Static {
        access_key_id: String,
        secret_access_key: Secret<String>,
    },
    /// Nothing explicit: use the standard AWS chain (env, profile, IRSA, instance metadata).
    DefaultChain,
}

/// An OCI image reference plus credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct OciLocation {
    /// Parsed reference; `oci://` stripped, the tag defaults to `latest` when neither a tag nor
    /// a digest is given.
    pub reference: Reference,
    /// `None` means anonymous access.
    pub credentials: Option<OciCredentials>,
    pub tls_verify: bool,
}

/// Registry user and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciCredentials {
    pub username: String,
    pub password: Secret<String>,
}

/// OCI destination: the image to push and its base.
#[derive(Clone, Debug, PartialEq)]
pub struct OciDestination {
    pub location: OciLocation,
    pub base_image: String,
}

/// A `uri` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriSource {
    /// A single http(s) file; archives are unpacked by the engine.
    Http(Url),
    /// `hf://org/model[:revision]`.
    HuggingFace {
        repo: String,
        revision: Option<String>,
    },
}

/// How to reach the Model Registry.
#[derive(Clone, Debug)]
pub struct RegistrySettings {
    /// `scheme://host:port`.
    pub base_url: Url,
    pub is_secure: bool,
    /// `false` only for `--registry-is-secure false` with an `https://` address.
    pub tls_verify: bool,
    pub author: Option<String>,
    pub token: Option<Secret<String>>,
    pub token_source: TokenSource,
    pub custom_ca: Option<CustomCa>,
    pub log_level: Option<String>,
}

impl TokenSource {
    /// Where the token came from, for messages (never the token itself).
    pub fn describe(&self) -> String {
        match self {
            Self::Setting => "from --registry-user-token".into(),
            Self::FileFromEnvVar { var, path } => format!("from {} via {var}", path.display()),
            Self::ServiceAccount(p) => format!("the service-account token {}", p.display()),
            Self::None => "none".into(),
        }
    }
}

/// Where the bearer token came from (for the summary; never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `--registry-user-token`.
    Setting,
    /// A file whose path is in an environment variable (`--registry-user-token-envvar` or
    /// `KF_PIPELINES_SA_TOKEN_PATH`).
    FileFromEnvVar {
        var: String,
        path: PathBuf,
    },
    /// The pod's service-account token.
    ServiceAccount(PathBuf),
    None,
}

/// A trusted CA bundle for the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomCa {
    /// File path, or `None` for inline PEM.
    pub path: Option<PathBuf>,
    pub pem: Vec<u8>,
}

impl RegistrySettings {
    /// A registry-client configuration for these settings.
    pub fn client_config(&self) -> registry_client::Result<registry_client::ClientConfig> {
        let mut cfg = registry_client::ClientConfig::new(self.base_url.as_str())?;
        if let Some(t) = &self.token {
            let value = t.expose().clone();
            // A token from a file is read again per request (the kubelet rotates projected
            // tokens, so the Job's can be short-lived).
            let token = match &self.token_source {
                TokenSource::FileFromEnvVar { path, .. } | TokenSource::ServiceAccount(path) => {
                    registry_client::BearerToken::from_file(path, value)
                }
                TokenSource::Setting | TokenSource::None => {
                    registry_client::BearerToken::new(value)
                }
            };
            cfg = cfg.with_token(token);
        }
        if !self.tls_verify {
            cfg.insecure_skip_verify = true;
        } else if let Some(ca) = &self.custom_ca {
            cfg = cfg.with_custom_ca_pem(ca.pem.clone());
        }
        Ok(cfg)
    }
}

/// Storage-initializer invocation.
#[derive(Debug)]
pub struct StorageInitializerConfig {
    pub source_uri: StorageUri,
    pub dest_path: PathBuf,
    /// Registry to resolve `model-registry://` URIs against: the Service of `?namespace=`,
    /// else the URI's host, else `MODEL_REGISTRY_BASE_URL` with `MODEL_REGISTRY_SCHEME`. `None`
    /// for other schemes (and for `a/b` without a base URL, see below).
    pub registry_base_url: Option<Url>,
    /// For `model-registry://a/b` (no port, no namespace): `{scheme}://a`. Upstream's storage
    /// initializer asks that host for its registered models first; when it answers, the URI
    /// is host `a` and model `b`, otherwise model `a`, version `b` at the base URL.
    pub registry_host_candidate: Option<Url>,
    /// The service-account token, when mounted (upstream sends none, which fails on secured
    /// registries).
    pub registry_token: Option<Secret<String>>,
    /// KServe's CA bundle for storage initializers (`CA_BUNDLE_CONFIGMAP_NAME` /
    /// `CA_BUNDLE_VOLUME_MOUNT_POINT`), trusted in addition to the system roots for the
    /// registry, OCI registries and http(s) downloads.
    pub ca_bundle_pem: Option<Vec<u8>>,
    pub termination_message_path: PathBuf,
}

/// The first positional argument of storage-initializer mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageUri {
    /// `model-registry://[host[:port]/]<model>[/<version>][?namespace=<ns>]`; no version means
    /// the latest.
    ModelRegistry {
        host: Option<String>,
        port: Option<u16>,
        model: String,
        version: Option<String>,
        /// `?namespace=`: the registry Service in that namespace (the host is then ignored).
        namespace: Option<String>,
    },
    /// `s3://bucket/key`.
    S3 { bucket: String, key: String },
    /// `oci://registry/repository[:tag][@digest]`.
    Oci(Reference),
    /// `http(s)://...`.
    Http(Url),
    /// `hf://org/model[:revision]`.
    HuggingFace {
        repo: String,
        revision: Option<String>,
    },
}

impl Source {
    /// What about this source does not work yet, if anything. Every variant is listed, so a
    /// new one needs a decision here; [`super::validate`] refuses `Some` before the registry is
    /// contacted.
    pub fn not_implemented(&self) -> Option<&'static str> {
        match self {
            Self::S3(_) | Self::Oci(_) | Self::Pvc { .. } => None,
            Self::Uri(UriSource::Http(_) | UriSource::HuggingFace { .. }) => None,
        }
    }
}

impl Destination {
    /// Like [`Source::not_implemented`]; every destination type works today.
    pub fn not_implemented(&self) -> Option<&'static str> {
        match self {
            Self::S3(_) | Self::Oci(_) | Self::Pvc { .. } => None,
        }
    }
}

impl StorageUri {
    /// Like [`Source::not_implemented`], for storage-initializer mode.
    pub fn not_implemented(&self) -> Option<&'static str> {
        match self {
            Self::ModelRegistry { .. }
            | Self::S3 { .. }
            | Self::Oci(_)
            | Self::Http(_)
            | Self::HuggingFace { .. } => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3(s) => write!(f, "s3 {s}"),
            Self::Oci(o) => write!(f, "oci {o}"),
            // Pre-signed URLs carry their signature in the query.
            Self::Uri(UriSource::Http(u)) => write!(f, "uri {}", crate::redact::text(u.as_str())),
            Self::Uri(UriSource::HuggingFace { repo, revision }) => {
                write!(f, "uri hf://{repo}")?;
                revision.iter().try_for_each(|r| write!(f, ":{r}"))
            }
            Self::Pvc { path } => write!(f, "pvc {}", path.display()),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3(s) => write!(f, "s3 {s}"),
            Self::Oci(o) => write!(f, "oci {} (base image {})", o.location, o.base_image),
            Self::Pvc { path } => write!(f, "pvc {}", path.display()),
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)?;
        if let Some(e) = &self.endpoint {
            write!(f, " endpoint={e}")?;
        }
        if let Some(r) = &self.region {
            write!(f, " region={r}")?;
        }
        match &self.credentials {
            S3Credentials::Static { access_key_id, .. } => {
                write!(
                    f,
                    " credentials=static(access key id {access_key_id}, secret ***)"
                )
            }
            S3Credentials::DefaultChain => f.write_str(" credentials=aws-default-chain"),
        }
    }
}

impl fmt::Display for OciLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reference)?;
        match &self.credentials {
            Some(c) => write!(f, " user={} password=***", c.username)?,
            None => f.write_str(" anonymous")?,
        }
        if !self.tls_verify {
            f.write_str(" tls-verify=false")?;
        }
        Ok(())
    }
}

impl Config {
    /// A multi-line, secret-free description for the start-up log.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "intent:       {:?}", self.intent);
        let _ = writeln!(s, "source:       {}", self.source);
        let _ = writeln!(s, "destination:  {}", self.destination);
        let r = &self.registry;
        let _ = writeln!(
            s,
            "registry:     {} secure={}{} token={} custom-ca={}",
            r.base_url,
            r.is_secure,
            if r.tls_verify {
                ""
            } else {
                " tls-verify=false"
            },
            match (&r.token, &r.token_source) {
                (None, _) => "none".to_owned(),
                (Some(_), TokenSource::Setting) => "*** (from --registry-user-token)".to_owned(),
                (Some(_), TokenSource::FileFromEnvVar { var, path }) => {
                    format!("*** (from {} via {var})", path.display())
                }
                (Some(_), TokenSource::ServiceAccount(p)) => format!("*** (from {})", p.display()),
                (Some(_), TokenSource::None) => "***".to_owned(),
            },
            match &r.custom_ca {
                Some(CustomCa { path: Some(p), .. }) => p.display().to_string(),
                Some(CustomCa { path: None, .. }) => "inline".to_owned(),
                None => "none".to_owned(),
            }
        );
        let _ = writeln!(s, "signing:      {:?}", self.signing.decision);
        let _ = writeln!(s, "storage path: {}", self.storage_path.display());
        if let Some(r) = &self.resume {
            let _ = writeln!(s, "resume:       {}", r.journal.display());
        }
        if let Some(n) = self.concurrency {
            let _ = writeln!(s, "concurrency:  {n}");
        }
        if let Some(md) = &self.metadata {
            let _ = writeln!(s, "metadata:     {}", md.dir.display());
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning:      {w}");
        }
        s
    }
}
