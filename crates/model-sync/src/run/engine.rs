//! The transfer step behind a trait (so the orchestration can be exercised with fakes), and its
//! real implementation: the configured source and destination back-ends.
//!
//! Any source feeds any destination: sources implement [`OpenFile`], destinations read through
//! it. The engine lists the source, checks the listing ([`normalize_listing`]: sorted, no
//! duplicates, not empty), then publishes with a [`Progress`] reporter logging every
//! [`PROGRESS_INTERVAL`].
//!
//! Extra trust for TLS registries: `SSL_CERT_FILE`, when set, names a PEM bundle that the OCI
//! back-end trusts in addition to the system roots (the configuration table has no CA setting
//! for OCI registries; this is the variable OpenSSL-based tools such as skopeo honour).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::{
    Config, DEFAULT_RESUME_PART, Destination, HubSettings, LoadContext, OciLocation, Resume,
    S3Credentials, S3Location, SSL_CERT_FILE, Source, StorageUri, UriSource,
};
use crate::hf::{HubOptions, HubSource};
use crate::local::{LocalDestination, LocalSource};
use crate::oci::{OciSink, OciSource};
use crate::s3::{MultipartOptions, S3Destination, S3Source, S3Tls};
use crate::sign::Signer;
use crate::sign::modelcar::ModelSignature;
use crate::transfer::{
    ByteStream, ModelFile, OpenFile, Progress, Published, TransferError, normalize_listing,
};
use crate::trust::extra_ca;
use crate::uri::{HttpSource, UriOptions};

/// How often progress is logged.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// One prepared transfer.
pub trait Engine: Send {
    /// Lists the source and publishes it to the destination.
    ///
    /// The future is not required to be `Send`: it runs on the main task (`block_on`), and some
    /// back-ends' futures trip the compiler's higher-ranked `Send` inference.
    fn run(&mut self) -> impl Future<Output = Result<Published, TransferError>>;

    /// Has the destination sign the model files into what it publishes, where it can (an OCI
    /// image carries `/models/model.sig`; other destinations are signed after the transfer).
    fn sign_model_files(&mut self, _signer: &Arc<Signer>) {}
}

/// Builds the [`Engine`] for a configuration.
pub trait EngineFactory: Sync {
    type Engine: Engine;

    /// Checks the source before the registry is touched (nothing is marked `PENDING` for a
    /// source that cannot work). Default: nothing to check.
    fn preflight(&self, _cfg: &Config) -> impl Future<Output = Result<(), TransferError>> {
        std::future::ready(Ok(()))
    }

    fn build(&self, cfg: &Config) -> impl Future<Output = Result<Self::Engine, TransferError>>;
}

/// The real back-ends. An `hf://` source is prepared (revision resolved, files listed, access
/// probed) in [`EngineFactory::preflight`] and kept for [`EngineFactory::build`].
pub struct Backends {
    /// The environment the configuration was loaded from (Hub settings of `hf://` sources).
    ctx: LoadContext,
    prepared: std::sync::Mutex<Option<AnySource>>,
}

impl Backends {
    pub fn new(ctx: LoadContext) -> Self {
        Self {
            ctx,
            prepared: std::sync::Mutex::default(),
        }
    }
}

/// A configured source.
pub enum AnySource {
    S3(S3Source),
    Local(LocalSource),
    Oci(OciSource),
    Http(HttpSource),
    Hub(HubSource),
}

impl AnySource {
    pub async fn list(&self) -> Result<Vec<ModelFile>, TransferError> {
        match self {
            Self::S3(s) => s.list().await,
            Self::Local(s) => s.list().await,
            Self::Oci(s) => s.list().await,
            Self::Http(s) => s.list().await,
            Self::Hub(s) => s.list().await,
        }
    }
}

impl OpenFile for AnySource {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        match self {
            Self::S3(s) => OpenFile::open(s, file, offset),
            Self::Local(s) => OpenFile::open(s, file, offset),
            Self::Oci(s) => OpenFile::open(s, file, offset),
            Self::Http(s) => OpenFile::open(s, file, offset),
            Self::Hub(s) => OpenFile::open(s, file, offset),
        }
    }
}

/// A configured destination.
pub enum AnyDestination {
    S3(S3Destination),
    Local(LocalDestination),
    Oci(OciSink),
}

impl AnyDestination {
    pub async fn publish(
        &self,
        source: &AnySource,
        files: &[ModelFile],
        progress: &Progress,
    ) -> Result<Published, TransferError> {
        // Same-kind pairs take the zero-copy paths (server-side copies, blob mounts and
        // as-is blob copies), which fall back to streaming themselves.
        match (self, source) {
            (Self::S3(d), AnySource::S3(s)) => d.publish_from_s3(s, files, progress).await,
            (Self::Oci(d), AnySource::Oci(s)) => d.publish_from_oci(s, files, progress).await,
            (Self::S3(d), _) => d.publish(source, files, progress).await,
            (Self::Local(d), _) => d.publish(source, files, progress).await,
            (Self::Oci(d), _) => d.publish(source, files, progress).await,
        }
    }
}

/// The real engine: one source, one destination.
pub struct RealEngine {
    pub source: AnySource,
    pub destination: AnyDestination,
}

impl Engine for RealEngine {
    async fn run(&mut self) -> Result<Published, TransferError> {
        transfer(&self.source, &self.destination).await
    }

    fn sign_model_files(&mut self, signer: &Arc<Signer>) {
        if let AnyDestination::Oci(sink) = &mut self.destination {
            let repository = sink.repository().to_owned();
            sink.set_image_files(Arc::new(ModelSignature::new(signer.clone(), &repository)));
        }
    }
}

/// Lists, checks and publishes, logging progress.
pub async fn transfer(
    source: &AnySource,
    destination: &AnyDestination,
) -> Result<Published, TransferError> {
    let files = normalize_listing(source.list().await?)?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    tracing::info!(files = files.len(), bytes = total, "source listed");
    let progress = Progress::new(total);
    let reporter = progress.start_reporter(PROGRESS_INTERVAL);
    let result = destination.publish(source, &files, &progress).await;
    reporter.finish().await;
    result
}

fn oci_source(location: &OciLocation, ca: Option<&[u8]>) -> Result<OciSource, TransferError> {
    let s = OciSource::new(location.clone())?;
    match ca {
        Some(pem) => s.with_ca_pem(pem.to_vec()),
        None => Ok(s),
    }
}

async fn http_source(uri: &UriSource, scratch: &Path) -> Result<HttpSource, TransferError> {
    http_source_with(uri, scratch, None).await
}

/// An http(s) source trusting `ca` (PEM, possibly several certificates) next to the system
/// roots.
async fn http_source_with(
    uri: &UriSource,
    scratch: &Path,
    ca: Option<&[u8]>,
) -> Result<HttpSource, TransferError> {
    tokio::fs::create_dir_all(scratch).await.map_err(|e| {
        TransferError::invalid_input(format!(
            "cannot create the scratch directory {}: {e}",
            scratch.display()
        ))
    })?;
    let mut options = UriOptions::default();
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            TransferError::invalid_input(format!("the extra CA bundle is not valid PEM: {e}"))
        })?;
        let mut b = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(120));
        for c in certs {
            b = b.add_root_certificate(c);
        }
        options.client = Some(b.build().map_err(|e| {
            TransferError::invalid_input(format!("cannot build the HTTP client: {e}"))
        })?);
    }
    HttpSource::prepare(uri, scratch, options).await
}

/// An `hf://` source with the Hub settings (`HF_ENDPOINT`, `HF_TOKEN`, ...) of `ctx`.
pub async fn hub_source(
    repo: &str,
    revision: Option<&str>,
    ctx: &LoadContext,
    ca: Option<&[u8]>,
) -> Result<HubSource, TransferError> {
    let settings =
        HubSettings::from_context(ctx).map_err(|e| TransferError::invalid_input(e.to_string()))?;
    let options = HubOptions {
        ca_pem: ca.map(<[u8]>::to_vec),
        ..HubOptions::default()
    };
    HubSource::prepare(repo, revision, settings, options).await
}

/// Builds the configured source. `scratch` is `--storage-path` (only archives and downloads of
/// unknown size are staged there); `ctx` holds the Hub settings of `hf://` sources.
pub async fn build_source(
    source: &Source,
    scratch: &Path,
    ca: Option<&[u8]>,
    ctx: &LoadContext,
) -> Result<AnySource, TransferError> {
    Ok(match source {
        Source::S3(l) => AnySource::S3(S3Source::new(l).await),
        Source::Pvc { path } => AnySource::Local(LocalSource::new(path.clone())),
        Source::Oci(l) => AnySource::Oci(oci_source(l, ca)?),
        Source::Uri(UriSource::HuggingFace { repo, revision }) => {
            AnySource::Hub(hub_source(repo, revision.as_deref(), ctx, ca).await?)
        }
        Source::Uri(u) => AnySource::Http(http_source(u, scratch).await?),
    })
}

/// Builds the configured destination; `concurrency` (files at once) overrides its default;
/// `oci` is the resume journal (OCI and S3 destinations) and the part size (OCI).
pub async fn build_destination(
    dest: &Destination,
    concurrency: Option<usize>,
    oci: (Option<&Resume>, Option<u64>),
    ca: Option<&[u8]>,
) -> Result<AnyDestination, TransferError> {
    Ok(match dest {
        Destination::S3(l) => {
            let d = S3Destination::new(l).await;
            let d = match concurrency {
                Some(n) => d.with_options(MultipartOptions {
                    files_in_flight: n,
                    ..MultipartOptions::default()
                }),
                None => d,
            };
            AnyDestination::S3(match oci.0 {
                Some(resume) => d.with_resume_journal(&resume.journal)?,
                None => d,
            })
        }
        Destination::Pvc { path } => {
            let d = LocalDestination::new(path.clone());
            AnyDestination::Local(match concurrency {
                Some(n) => d.with_concurrency(n),
                None => d,
            })
        }
        Destination::Oci(d) => {
            // Memory is a few network buffers per file in flight, not the file size (see
            // `make bench-sync`); 0 is the sink's default.
            let sink = OciSink::new(d.clone(), concurrency.unwrap_or(0))?;
            let sink = match ca {
                Some(pem) => sink.with_ca_pem(pem.to_vec())?,
                None => sink,
            };
            AnyDestination::Oci(match oci {
                (Some(resume), part) => {
                    sink.with_resume_journal(&resume.journal, part.unwrap_or(DEFAULT_RESUME_PART))?
                }
                (None, Some(part)) => sink.with_chunk_size(part as usize),
                (None, None) => sink,
            })
        }
    })
}

/// The real back-ends: extra trust from the configuration's `SSL_CERT_FILE`, Hub settings from
/// the load context.
impl EngineFactory for Backends {
    type Engine = RealEngine;

    async fn preflight(&self, cfg: &Config) -> Result<(), TransferError> {
        if let Source::Uri(UriSource::HuggingFace { .. }) = &cfg.source {
            let ca = extra_ca(cfg.extra_ca_file.as_deref())?;
            let source =
                build_source(&cfg.source, &cfg.storage_path, ca.as_deref(), &self.ctx).await?;
            *self.prepared.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
        }
        Ok(())
    }

    async fn build(&self, cfg: &Config) -> Result<RealEngine, TransferError> {
        let ca = extra_ca(cfg.extra_ca_file.as_deref())?;
        let prepared = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let source = match prepared {
            Some(s) => s,
            None => build_source(&cfg.source, &cfg.storage_path, ca.as_deref(), &self.ctx).await?,
        };
        let destination = build_destination(
            &cfg.destination,
            cfg.concurrency,
            (cfg.resume.as_ref(), cfg.oci_part_bytes),
            ca.as_deref(),
        )
        .await?;
        Ok(RealEngine {
            source,
            destination,
        })
    }
}

/// The S3 location of a storage-initializer `s3://` URI, with what KServe injects for its own
/// storage initializer: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (else the default chain),
/// `AWS_DEFAULT_REGION`/`AWS_REGION`, `AWS_ENDPOINT_URL` or `S3_ENDPOINT` + `S3_USE_HTTPS`.
/// The certificate check is [`storage_init_s3_tls`].
pub fn storage_init_s3(
    bucket: &str,
    key: &str,
    ctx: &LoadContext,
) -> Result<S3Location, TransferError> {
    let endpoint = match (ctx.var("AWS_ENDPOINT_URL"), ctx.var("S3_ENDPOINT")) {
        (Some(u), _) => Some(u.to_owned()),
        (None, Some(e)) if e.contains("://") => Some(e.to_owned()),
        (None, Some(e)) => {
            let https = ctx.var("S3_USE_HTTPS").is_none_or(|v| v != "0");
            Some(format!("{}://{e}", if https { "https" } else { "http" }))
        }
        (None, None) => None,
    };
    let endpoint = endpoint
        .map(|e| {
            url::Url::parse(&e).map_err(|err| {
                TransferError::invalid_input(format!(
                    "AWS_ENDPOINT_URL / S3_ENDPOINT {e:?} is not a URL: {err}"
                ))
            })
        })
        .transpose()?;
    let credentials = match (
        ctx.var("AWS_ACCESS_KEY_ID"),
        ctx.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => S3Credentials::Static {
            access_key_id: id.to_owned(),
            secret_access_key: crate::config::Secret::new(secret.to_owned()),
        },
        _ => S3Credentials::DefaultChain,
    };
    Ok(S3Location {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        region: ctx
            .var("AWS_DEFAULT_REGION")
            .or_else(|| ctx.var("AWS_REGION"))
            .map(str::to_owned),
        endpoint,
        credentials,
    })
}

/// How a storage-initializer `s3://` download checks the S3 server's certificate, decided as
/// KServe's storage initializer decides it: `S3_VERIFY_SSL` `0` or `false` (any case) turns
/// verification off (with a warning); otherwise a non-empty `AWS_CA_BUNDLE` names a PEM file
/// whose certificates are the only ones trusted, else KServe's cluster CA bundle
/// (`kserve_bundle`, from `CA_BUNDLE_CONFIGMAP_NAME`) is, else the system roots are. A bundle
/// that is named but cannot be read fails before any byte moves.
pub fn storage_init_s3_tls(
    ctx: &LoadContext,
    kserve_bundle: Option<&[u8]>,
) -> Result<S3Tls, TransferError> {
    let skip_verify = ctx
        .var("S3_VERIFY_SSL")
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false"));
    if skip_verify {
        tracing::warn!(
            "S3_VERIFY_SSL is off: the S3 server's certificate is not verified (anyone on the \
             network path can read and alter the model)"
        );
        return Ok(S3Tls::NoVerification);
    }
    if let Some(path) = ctx.var("AWS_CA_BUNDLE").filter(|p| !p.trim().is_empty()) {
        let pem = std::fs::read(path).map_err(|e| {
            TransferError::invalid_input(format!("AWS_CA_BUNDLE: cannot read {path}: {e}"))
        })?;
        return Ok(S3Tls::Bundle(pem));
    }
    Ok(match kserve_bundle {
        Some(pem) => S3Tls::Bundle(pem.to_vec()),
        None => S3Tls::SystemRoots,
    })
}

/// Storage-initializer download of a storage URI into a local directory. `ca_bundle` (KServe's
/// CA bundle) is trusted next to `SSL_CERT_FILE` for OCI and http(s); S3 follows KServe's own
/// S3 rules ([`storage_init_s3_tls`]).
pub async fn download(
    uri: &StorageUri,
    dest: &Path,
    ctx: &LoadContext,
    ca_bundle: Option<&[u8]>,
) -> Result<Published, TransferError> {
    let ca = match (
        extra_ca(ctx.var(SSL_CERT_FILE).map(std::path::Path::new))?,
        ca_bundle,
    ) {
        (Some(mut a), Some(b)) => {
            a.push(b'\n');
            a.extend_from_slice(b);
            Some(a)
        }
        (a, b) => a.or_else(|| b.map(<[u8]>::to_vec)),
    };
    // Archives are unpacked next to the destination (same volume, removed afterwards).
    let scratch = dest.join(".model-sync-staging");
    let source = match uri {
        StorageUri::S3 { bucket, key } => {
            let location = storage_init_s3(bucket, key, ctx)?;
            let tls = storage_init_s3_tls(ctx, ca_bundle)?;
            AnySource::S3(S3Source::new_with_tls(&location, &tls).await?)
        }
        StorageUri::Oci(reference) => {
            let location = OciLocation {
                reference: reference.clone(),
                credentials: storage_init_oci_credentials(reference, ctx)?,
                tls_verify: ctx
                    .var(crate::config::Key::SourceOciEnableTlsVerify.env())
                    .is_none_or(|v| {
                        !matches!(
                            v.to_ascii_lowercase().as_str(),
                            "false" | "0" | "no" | "n" | "f"
                        )
                    }),
            };
            AnySource::Oci(oci_source(&location, ca.as_deref())?)
        }
        StorageUri::Http(u) => AnySource::Http(
            http_source_with(&UriSource::Http(u.clone()), &scratch, ca.as_deref()).await?,
        ),
        StorageUri::HuggingFace { repo, revision } => {
            AnySource::Hub(hub_source(repo, revision.as_deref(), ctx, ca.as_deref()).await?)
        }
        StorageUri::ModelRegistry { .. } => {
            return Err(TransferError::invalid_input(
                "a model-registry:// URI must be resolved before downloading",
            ));
        }
    };
    let destination = AnyDestination::Local(LocalDestination::new(dest.to_owned()));
    let result = transfer(&source, &destination).await;
    drop(source);
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    result
}

/// Registry credentials for a storage-initializer `oci://` URI: the docker config named by
/// `MODEL_SYNC_SOURCE_OCI_CREDENTIALS_PATH` (a mounted pull secret), else anonymous.
fn storage_init_oci_credentials(
    reference: &oci_client::Reference,
    ctx: &LoadContext,
) -> Result<Option<crate::config::OciCredentials>, TransferError> {
    let Some(path) = ctx.var(crate::config::Key::SourceOciCredentialsPath.env()) else {
        return Ok(None);
    };
    let auth = crate::config::read_docker_config(
        crate::config::Key::SourceOciCredentialsPath,
        Path::new(path),
        reference.registry(),
        reference.repository(),
    )
    .map_err(|e| TransferError::invalid_input(e.to_string()))?;
    Ok(auth
        .credentials
        .map(|(username, password)| crate::config::OciCredentials { username, password }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::Reason;

    #[test]
    fn kserve_s3_tls_variables_decide_the_certificate_check() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, b"PEM").unwrap();
        let ca = ca.display().to_string();
        let tls = |env: &[(&str, &str)], kserve: Option<&[u8]>| {
            storage_init_s3_tls(&LoadContext::with_env(env.iter().copied()), kserve)
        };
        assert_eq!(tls(&[], None).unwrap(), S3Tls::SystemRoots);
        assert_eq!(
            tls(&[("S3_VERIFY_SSL", "1")], None).unwrap(),
            S3Tls::SystemRoots
        );
        for off in ["0", "false", "False"] {
            let t = tls(&[("S3_VERIFY_SSL", off), ("AWS_CA_BUNDLE", &ca)], None).unwrap();
            assert_eq!(t, S3Tls::NoVerification, "{off}");
        }
        assert_eq!(
            tls(&[("AWS_CA_BUNDLE", &ca)], Some(b"KSERVE")).unwrap(),
            S3Tls::Bundle(b"PEM".to_vec())
        );
        assert_eq!(
            tls(&[("AWS_CA_BUNDLE", "")], Some(b"KSERVE")).unwrap(),
            S3Tls::Bundle(b"KSERVE".to_vec())
        );
        let e = tls(&[("AWS_CA_BUNDLE", "/nonexistent/ca.crt")], None).unwrap_err();
        assert_eq!(e.reason, Reason::InvalidConfiguration, "{e:?}");
        assert!(e.message.contains("AWS_CA_BUNDLE"), "{e:?}");
    }
}
