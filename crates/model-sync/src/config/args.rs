//! The settings table and the command line.
//!
//! Every setting is declared once, in [`settings!`], with its flag, its environment variable,
//! its default and whether it is a secret or a boolean. Clap, the environment layer, error
//! messages and `--help` all read that table, so a flag and its variable cannot drift apart.
//!
//! Clap parses without defaults and without environment lookup: it only reports what was on the
//! command line. Layering (CLI > env > credential files > defaults) happens in `env.rs`, where it
//! can be tested with an injected environment.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

use crate::error::ConfigError;

/// How a setting's value is interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Parsed with [`parse_bool`]; a bare flag means `true`.
    Bool,
    /// Never printed, never echoed in an error message.
    Secret,
}

macro_rules! settings {
    ($( $(#[$doc:meta])* $variant:ident => $flag:literal, $env:literal, $kind:ident, $default:expr, $help:literal; )*) => {
        /// One configuration setting (a `--flag` plus its `MODEL_SYNC_*` variable).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Key { $( $(#[$doc])* $variant, )* }

        impl Key {
            /// Every setting, in `--help` order.
            pub const ALL: &'static [Key] = &[ $( Key::$variant, )* ];

            /// Long flag name without the leading dashes.
            pub fn flag_name(self) -> &'static str { match self { $( Key::$variant => $flag, )* } }

            /// The environment variable.
            pub fn env(self) -> &'static str { match self { $( Key::$variant => $env, )* } }

            pub fn kind(self) -> Kind { match self { $( Key::$variant => Kind::$kind, )* } }

            /// The built-in default, applied after every other layer.
            pub fn default_value(self) -> Option<&'static str> { match self { $( Key::$variant => $default, )* } }

            pub fn help(self) -> &'static str { match self { $( Key::$variant => $help, )* } }
        }
    };
}

settings! {
    SourceType => "source-type", "MODEL_SYNC_SOURCE_TYPE", Text, Some("s3"),
        "Where the model comes from: s3, oci, uri or pvc (alias: local)";
    SourceS3CredentialsPath => "source-s3-credentials-path", "MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH", Text, None,
        "Directory with one file per key (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL / AWS_S3_ENDPOINT, AWS_BUCKET / AWS_S3_BUCKET)";
    SourceOciCredentialsPath => "source-oci-credentials-path", "MODEL_SYNC_SOURCE_OCI_CREDENTIALS_PATH", Text, None,
        "Docker config.json (or a directory holding .dockerconfigjson / config.json)";
    SourceUriCredentialsPath => "source-uri-credentials-path", "MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH", Text, None,
        "Directory holding a file named URI with the source URI";
    SourceUri => "source-uri", "MODEL_SYNC_SOURCE_URI", Text, None,
        "When --source-type is uri: the http(s):// or hf:// URI to download";
    SourceAwsBucket => "source-aws-bucket", "MODEL_SYNC_SOURCE_AWS_BUCKET", Text, None,
        "When --source-type is s3: bucket";
    SourceAwsKey => "source-aws-key", "MODEL_SYNC_SOURCE_AWS_KEY", Text, None,
        "When --source-type is s3: object key or key prefix of the model";
    SourceAwsRegion => "source-aws-region", "MODEL_SYNC_SOURCE_AWS_REGION", Text, None,
        "When --source-type is s3: region";
    SourceAwsAccessKeyId => "source-aws-access-key-id", "MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID", Text, None,
        "When --source-type is s3: access key id (default: the standard AWS credential chain)";
    SourceAwsSecretAccessKey => "source-aws-secret-access-key", "MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY", Secret, None,
        "When --source-type is s3: secret access key";
    SourceAwsEndpoint => "source-aws-endpoint", "MODEL_SYNC_SOURCE_AWS_ENDPOINT", Text, None,
        "When --source-type is s3: endpoint URL of an S3-compatible server";
    SourceOciUri => "source-oci-uri", "MODEL_SYNC_SOURCE_OCI_URI", Text, None,
        "When --source-type is oci: image reference to pull ([oci://]registry/repository[:tag][@digest])";
    SourceOciRegistry => "source-oci-registry", "MODEL_SYNC_SOURCE_OCI_REGISTRY", Text, None,
        "When --source-type is oci: registry the credentials belong to (default: host of --source-oci-uri)";
    SourceOciUsername => "source-oci-username", "MODEL_SYNC_SOURCE_OCI_USERNAME", Text, None,
        "When --source-type is oci: registry user name";
    SourceOciPassword => "source-oci-password", "MODEL_SYNC_SOURCE_OCI_PASSWORD", Secret, None,
        "When --source-type is oci: registry password or token";
    SourceOciEnableTlsVerify => "source-oci-enable-tls-verify", "MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY", Bool, Some("true"),
        "When --source-type is oci: verify the registry's TLS certificate";
    SourcePath => "source-path", "MODEL_SYNC_SOURCE_PATH", Text, None,
        "When --source-type is pvc: absolute path of the model file or directory (a mounted volume)";
    DestinationType => "destination-type", "MODEL_SYNC_DESTINATION_TYPE", Text, Some("oci"),
        "Where the model goes: oci, s3 or pvc (alias: local)";
    DestinationS3CredentialsPath => "destination-s3-credentials-path", "MODEL_SYNC_DESTINATION_S3_CREDENTIALS_PATH", Text, None,
        "Like --source-s3-credentials-path, for the destination";
    DestinationOciCredentialsPath => "destination-oci-credentials-path", "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH", Text, None,
        "Like --source-oci-credentials-path, for the destination";
    DestinationAwsBucket => "destination-aws-bucket", "MODEL_SYNC_DESTINATION_AWS_BUCKET", Text, None,
        "When --destination-type is s3: bucket";
    DestinationAwsKey => "destination-aws-key", "MODEL_SYNC_DESTINATION_AWS_KEY", Text, None,
        "When --destination-type is s3: key prefix to write the model under";
    DestinationAwsRegion => "destination-aws-region", "MODEL_SYNC_DESTINATION_AWS_REGION", Text, None,
        "When --destination-type is s3: region";
    DestinationAwsAccessKeyId => "destination-aws-access-key-id", "MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID", Text, None,
        "When --destination-type is s3: access key id (default: the standard AWS credential chain)";
    DestinationAwsSecretAccessKey => "destination-aws-secret-access-key", "MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY", Secret, None,
        "When --destination-type is s3: secret access key";
    DestinationAwsEndpoint => "destination-aws-endpoint", "MODEL_SYNC_DESTINATION_AWS_ENDPOINT", Text, None,
        "When --destination-type is s3: endpoint URL of an S3-compatible server";
    DestinationOciUri => "destination-oci-uri", "MODEL_SYNC_DESTINATION_OCI_URI", Text, None,
        "When --destination-type is oci: image reference to push ([oci://]registry/repository:tag)";
    DestinationOciRegistry => "destination-oci-registry", "MODEL_SYNC_DESTINATION_OCI_REGISTRY", Text, None,
        "When --destination-type is oci: registry the credentials belong to (default: host of --destination-oci-uri)";
    DestinationOciUsername => "destination-oci-username", "MODEL_SYNC_DESTINATION_OCI_USERNAME", Text, None,
        "When --destination-type is oci: registry user name";
    DestinationOciPassword => "destination-oci-password", "MODEL_SYNC_DESTINATION_OCI_PASSWORD", Secret, None,
        "When --destination-type is oci: registry password or token";
    DestinationOciBaseImage => "destination-oci-base-image", "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE", Text, Some("public.ecr.aws/docker/library/busybox:latest"),
        "When --destination-type is oci: base image the model layers are added to";
    DestinationOciEnableTlsVerify => "destination-oci-enable-tls-verify", "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY", Bool, Some("true"),
        "When --destination-type is oci: verify the registry's TLS certificate";
    DestinationPath => "destination-path", "MODEL_SYNC_DESTINATION_PATH", Text, None,
        "When --destination-type is pvc: absolute directory to write the model into (a mounted volume)";
    ModelUploadIntent => "model-upload-intent", "MODEL_SYNC_MODEL_UPLOAD_INTENT", Text, Some("update_artifact"),
        "update_artifact, create_model or create_version";
    ModelId => "model-id", "MODEL_SYNC_MODEL_ID", Text, None,
        "RegisteredModel id (create_version)";
    ModelVersionId => "model-version-id", "MODEL_SYNC_MODEL_VERSION_ID", Text, None,
        "ModelVersion id";
    ModelArtifactId => "model-artifact-id", "MODEL_SYNC_MODEL_ARTIFACT_ID", Text, None,
        "ModelArtifact id (update_artifact)";
    MetadataConfigmapPath => "metadata-configmap-path", "MODEL_SYNC_METADATA_CONFIGMAP_PATH", Text, None,
        "Directory of a mounted ConfigMap with model metadata (default: /etc/model-metadata when it exists)";
    StoragePath => "storage-path", "MODEL_SYNC_STORAGE_PATH", Text, Some("/tmp/model-sync"),
        "Scratch directory for staging model files";
    Concurrency => "concurrency", "MODEL_SYNC_CONCURRENCY", Text, None,
        "Files transferred at once, 1 to 64 (default: 4 to OCI and PVC, 2 to S3); memory grows with it, not with the model size";
    RegistryServerAddress => "registry-server-address", "MODEL_SYNC_REGISTRY_SERVER_ADDRESS", Text, None,
        "Model Registry address, e.g. https://model-registry.ns.svc (scheme optional)";
    RegistryPort => "registry-port", "MODEL_SYNC_REGISTRY_PORT", Text, Some("443"),
        "Model Registry port";
    RegistryIsSecure => "registry-is-secure", "MODEL_SYNC_REGISTRY_IS_SECURE", Bool, Some("true"),
        "Require a bearer token; false with an https:// address skips TLS certificate verification (as the Python job)";
    RegistryRequireTls => "registry-require-tls", "MODEL_SYNC_REGISTRY_REQUIRE_TLS", Bool, Some("false"),
        "Strict mode: refuse an http:// registry address when a bearer token would be sent over it (default: a warning)";
    RegistryAuthor => "registry-author", "MODEL_SYNC_REGISTRY_AUTHOR", Text, None,
        "Author recorded on created versions";
    RegistryUserToken => "registry-user-token", "MODEL_SYNC_REGISTRY_USER_TOKEN", Secret, None,
        "Bearer token (default: file named by --registry-user-token-envvar, KF_PIPELINES_SA_TOKEN_PATH, or the service-account token)";
    RegistryUserTokenEnvvar => "registry-user-token-envvar", "MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR", Text, None,
        "Name of an environment variable holding the path of a token file";
    RegistryCustomCa => "registry-custom-ca", "MODEL_SYNC_REGISTRY_CUSTOM_CA", Text, None,
        "Path of a PEM CA bundle trusted for the registry (inline PEM is accepted too)";
    RegistryCustomCaEnvvar => "registry-custom-ca-envvar", "MODEL_SYNC_REGISTRY_CUSTOM_CA_ENVVAR", Text, None,
        "Name of an environment variable holding the path of a PEM CA bundle";
    RegistryLogLevel => "registry-log-level", "MODEL_SYNC_REGISTRY_LOG_LEVEL", Text, None,
        "Log level of registry calls: debug, info, warning, error, critical or a number";
    Sign => "sign", "MODEL_SYNC_SIGN", Bool, None,
        "Sigstore signing: true, false, or unset to auto-detect from SIGSTORE_* variables";
    SigningIdentityTokenPath => "signing-identity-token-path", "MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH", Text, None,
        "Identity token for sigstore signing (default: the service-account token)";
    SigningKeyPath => "signing-key-path", "MODEL_SYNC_SIGNING_KEY_PATH", Text, None,
        "PEM ECDSA P-256 private key: key-based signing without Fulcio/Rekor (air-gapped)";
    SigningTufRootPath => "signing-tuf-root-path", "MODEL_SYNC_SIGNING_TUF_ROOT_PATH", Text, None,
        "Initial root.json of the SIGSTORE_TUF_URL repository the trusted root is fetched from (default: the repository's root.json, trusted on first use)";
}

impl Key {
    /// `--flag (ENV_VAR)`, the way every message names a setting.
    pub fn label(self) -> String {
        format!("--{} ({})", self.flag_name(), self.env())
    }

    pub fn is_secret(self) -> bool {
        self.kind() == Kind::Secret
    }
}

/// Builds the clap command from the settings table.
pub fn command() -> Command {
    let mut cmd = Command::new("model-sync")
        .about("Copies an ML model between S3, OCI, URI and PVC storage and registers it in the Model Registry")
        .long_about(
            "Copies an ML model between S3, OCI, URI and PVC storage and registers it in the Model Registry.\n\n\
             Every flag can also be set through its MODEL_SYNC_* environment variable. Precedence: \
             command line > environment > credential files > defaults.\n\n\
             Storage-initializer mode (KServe): model-sync <source-uri> <dest-path>\n\n\
             Exit codes: 0 success, 1 transfer or registry failure, 2 invalid configuration.",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    for key in Key::ALL {
        let mut help = format!("{} [env: {}]", key.help(), key.env());
        if let Some(d) = key.default_value() {
            help.push_str(&format!(" [default: {d}]"));
        }
        let mut arg = Arg::new(key.flag_name())
            .long(key.flag_name())
            .help(help)
            .action(ArgAction::Set);
        arg = match key.kind() {
            // `--sign` alone means `--sign true`.
            Kind::Bool => arg
                .num_args(0..=1)
                .default_missing_value("true")
                .value_name("BOOL"),
            // Values may legitimately start with '-' (passwords, tokens).
            Kind::Text | Kind::Secret => arg.num_args(1).allow_hyphen_values(true),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    /// Flag values given on the command line (empty values dropped).
    Flags(BTreeMap<Key, String>),
    /// `--help` / `--version`: print this and exit 0.
    Info(String),
}

/// Parses the command line (argv including the program name).
pub fn parse<I, T>(argv: I) -> Result<Parsed, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Parsed::Info(e.render().to_string()))
                }
                _ => Err(usage_error(&e)),
            };
        }
    };
    let mut flags = BTreeMap::new();
    for key in Key::ALL {
        if let Some(v) = matches.get_one::<String>(key.flag_name())
            && !v.trim().is_empty()
        {
            flags.insert(*key, v.clone());
        }
    }
    Ok(Parsed::Flags(flags))
}

/// Clap's message, except for stray positional words: those could be a secret typed without
/// its flag, so they are described instead of echoed.
fn usage_error(e: &clap::Error) -> ConfigError {
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && !arg.starts_with('-')
    {
        return ConfigError::Usage(
            "unexpected positional argument (value not shown): model-sync takes --flags, or \
             exactly two positional arguments <source-uri> <dest-path> in storage-initializer mode"
                .into(),
        );
    }
    let text = e.render().to_string();
    ConfigError::Usage(text.trim_start_matches("error: ").trim_end().to_owned())
}

/// Booleans accept yes/y/true/t/1 and no/n/false/f/0, case-insensitively (the Python job's
/// set); anything else is an error naming the setting.
pub fn parse_bool(key: Key, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "1" => Ok(true),
        "no" | "n" | "false" | "f" | "0" => Ok(false),
        _ => Err(ConfigError::invalid(
            key,
            raw,
            "a boolean (yes/y/true/t/1 or no/n/false/f/0)",
        )),
    }
}
