//! Configuration of `model-sync`: flags, `MODEL_SYNC_*` variables, credential files, the
//! metadata ConfigMap, signing, and storage-initializer mode.
//!
//! Entry point: [`load`]. It never touches the process environment itself; callers pass a
//! [`LoadContext`] (`LoadContext::from_process()` in `main`, hand-built ones in tests).
//!
//! Precedence, per setting: command line > environment > credential files > defaults.

mod args;
mod credentials;
mod env;
mod hf;
mod metadata;
mod registry;
mod secret;
mod signing;
mod storage;
mod types;
mod uri;
mod validate;

#[cfg(test)]
mod tests;

use std::ffi::OsString;

pub use args::{Key, Kind, command, parse_bool};
pub use credentials::{DockerAuth, normalize_registry, read_docker_config};
pub use env::{
    DEFAULT_METADATA_DIR, DEFAULT_SA_TOKEN_PATH, DEFAULT_TERMINATION_MESSAGE_PATH, Layers,
    LoadContext, Origin, SSL_CERT_FILE, Value,
};
pub use hf::{HF_DEFAULT_ENDPOINT, HubSettings};
pub use metadata::{
    ModelArtifactMetadata, ModelMetadata, ModelVersionMetadata, RegisteredModelMetadata,
    parse_custom_properties,
};
pub use registry::KF_PIPELINES_SA_TOKEN_PATH;
pub use secret::Secret;
pub use signing::{
    DisabledBy, EnabledBy, SIGSTORE_FULCIO_URL, SIGSTORE_REKOR_URL, SIGSTORE_TSA_URL,
    SIGSTORE_TUF_URL, Signing, SigningDecision, SigningMode, SigstoreEndpoints, TufRoot, decide,
};
pub use types::{
    Config, CustomCa, DEFAULT_RESUME_PART, Destination, Intent, Loaded, Mode, ModelIds, ModelRef,
    OciCredentials, OciDestination, OciLocation, RegistrySettings, Resume, S3Credentials,
    S3Location, Source, StorageInitializerConfig, StorageUri, TokenSource, UriSource,
};
pub use uri::{MODEL_REGISTRY_BASE_URL, MODEL_REGISTRY_SCHEME, parse_storage_uri};

use crate::error::ConfigErrors;

/// Loads the configuration from argv (including the program name) and a context.
///
/// Exactly two positional arguments select storage-initializer mode; otherwise the arguments
/// are flags. `--help` and `--version` come back as [`Loaded::Info`].
pub fn load<I, T>(argv: I, ctx: &LoadContext) -> Result<Loaded, ConfigErrors>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let rest: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if uri::is_storage_initializer_invocation(&rest) {
        return uri::load_storage_initializer(&rest[0], &rest[1], ctx)
            .map(|c| Loaded::Run(Mode::StorageInitializer(Box::new(c))));
    }
    let flags = match args::parse(argv)? {
        args::Parsed::Info(text) => return Ok(Loaded::Info(text)),
        args::Parsed::Flags(flags) => flags,
    };
    let layers = Layers::new(flags, ctx);
    validate::build(layers, ctx).map(|c| Loaded::Run(Mode::Sync(Box::new(c))))
}
