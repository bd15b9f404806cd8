//! The settings of model-sync: each one's `--flag`, its `MODEL_SYNC_*` environment variable,
//! its default and whether it is a secret or a boolean.
//!
//! model-sync builds its command line, environment layer, messages and `--help` from this
//! table; the operator's Job builder names every variable it sets through [`Key::env`]. A
//! setting therefore has one name on both sides, and a flag cannot drift from its variable.
//! The names are the Python job's, which other tools set too: the command-line tests of
//! model-sync spell them out literally on purpose, so renaming one here fails them.

/// What every variable name starts with.
pub const ENV_PREFIX: &str = "MODEL_SYNC_";

/// The operator's legacy variable naming the model-sync image (the ODH operator's
/// `RELATED_IMAGE_*` variable replaces it).
pub const LEGACY_IMAGE_ENV: &str = "MODEL_SYNC_IMAGE";

/// Extra trusted CAs of the transfer (a PEM bundle), named the way OpenSSL-based tools name
/// it: the operator mounts `spec.job.caBundleConfigMapRef` and points this variable at it.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

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
    DestinationOciPartMib => "destination-oci-part-mib", "MODEL_SYNC_DESTINATION_OCI_PART_MIB", Text, None,
        "When --destination-type is oci: largest PATCH request in MiB, 1 to 4096 (default: a whole layer in one request; 64 with --resume-journal)";
    ResumeJournal => "resume-journal", "MODEL_SYNC_RESUME_JOURNAL", Text, None,
        "When --destination-type is oci or s3: file recording the uploads (OCI layers; S3 parts and finished objects), so that a rerun after a kill resumes each where the server stopped (KiB to a few MiB; keep it where the rerun finds it)";
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

/// The two ends of a transfer, for the settings that exist once per end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    /// `source` or `destination`, as in the flag names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Destination => "destination",
        }
    }

    /// Picks the setting of this end.
    const fn pick(self, source: Key, destination: Key) -> Key {
        match self {
            Self::Source => source,
            Self::Destination => destination,
        }
    }

    pub const fn storage_type(self) -> Key {
        self.pick(Key::SourceType, Key::DestinationType)
    }
    pub const fn aws_bucket(self) -> Key {
        self.pick(Key::SourceAwsBucket, Key::DestinationAwsBucket)
    }
    pub const fn aws_key(self) -> Key {
        self.pick(Key::SourceAwsKey, Key::DestinationAwsKey)
    }
    pub const fn aws_region(self) -> Key {
        self.pick(Key::SourceAwsRegion, Key::DestinationAwsRegion)
    }
    pub const fn aws_endpoint(self) -> Key {
        self.pick(Key::SourceAwsEndpoint, Key::DestinationAwsEndpoint)
    }
    pub const fn s3_credentials_path(self) -> Key {
        self.pick(
            Key::SourceS3CredentialsPath,
            Key::DestinationS3CredentialsPath,
        )
    }
    pub const fn oci_credentials_path(self) -> Key {
        self.pick(
            Key::SourceOciCredentialsPath,
            Key::DestinationOciCredentialsPath,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_key_has_its_own_flag_and_variable() {
        let flags: BTreeSet<_> = Key::ALL.iter().map(|k| k.flag_name()).collect();
        let envs: BTreeSet<_> = Key::ALL.iter().map(|k| k.env()).collect();
        assert_eq!(flags.len(), Key::ALL.len());
        assert_eq!(envs.len(), Key::ALL.len());
        for k in Key::ALL {
            // The variable is the flag, upper-cased with underscores, behind the prefix.
            let derived = format!(
                "{ENV_PREFIX}{}",
                k.flag_name().replace('-', "_").to_uppercase()
            );
            assert_eq!(k.env(), derived, "{k:?}");
            assert!(!k.help().is_empty(), "{k:?}");
            if k.kind() == Kind::Bool
                && let Some(d) = k.default_value()
            {
                assert!(matches!(d, "true" | "false"), "{k:?}");
            }
        }
        assert_eq!(
            Key::SourceType.label(),
            "--source-type (MODEL_SYNC_SOURCE_TYPE)"
        );
        assert!(Key::RegistryUserToken.is_secret());
        for side in [Side::Source, Side::Destination] {
            for k in [
                side.storage_type(),
                side.aws_bucket(),
                side.aws_key(),
                side.aws_region(),
                side.aws_endpoint(),
                side.s3_credentials_path(),
                side.oci_credentials_path(),
            ] {
                assert!(
                    k.flag_name().starts_with(&format!("{}-", side.name())),
                    "{k:?}"
                );
            }
        }
    }
}
