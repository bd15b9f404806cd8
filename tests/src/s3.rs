//! An in-process S3 server (`s3s` protocol layer over `s3s-fs` storage) with SigV4 enforced.
//!
//! Why in-process: no binary to install, one server per test costs a thread and a temp dir, and the
//! stored objects are plain files a test can inspect. Why SigV4 enforced: the tool under test must sign
//! requests correctly; an anonymous server would let a credential bug pass. Only path-style addressing
//! is served (no virtual-host buckets), so clients must set `force_path_style`.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use sha2::{Digest as _, Sha256};

use crate::http_files::ServerThread;
use crate::tls::TestCa;

/// The region the server claims; SigV4 scopes signatures to it.
pub const REGION: &str = "us-east-1";

/// A running S3 server backed by a temporary directory (each bucket is a sub-directory).
pub struct S3Server {
    // Field order matters: the server thread stops before the directory is deleted.
    server: ServerThread,
    access_key: String,
    secret_key: String,
    client: aws_sdk_s3::Client,
    service: S3Service,
    root: tempfile::TempDir,
}

/// The same store served over TLS on a port of its own ([`S3Server::serve_tls`]), with a
/// certificate for `127.0.0.1` issued by a fresh test CA.
pub struct S3TlsListener {
    server: ServerThread,
    ca: TestCa,
}

impl S3TlsListener {
    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.server.addr())
    }

    /// The PEM certificate of the CA that issued the server's certificate.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }
}

/// Like [`serve`], with a TLS handshake first on every connection.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    service: S3Service,
    tls: tokio_rustls::TlsAcceptor,
) {
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) => {
                tracing::warn!("s3 tls accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (service, tls) = (service.clone(), tls.clone());
        tokio::spawn(async move {
            let stream = match tls.accept(socket).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("s3 tls handshake failed: {e}");
                    return;
                }
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("s3 tls connection ended: {e}");
            }
        });
    }
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server")
            .field("endpoint", &self.endpoint())
            .field("root", &self.root.path())
            .finish_non_exhaustive()
    }
}

/// Fresh credentials per server, so a test cannot pass by reusing another server's keys.
fn generate_keys() -> (String, String) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
    );
    let digest = hex::encode(Sha256::digest(seed.as_bytes()));
    let access = format!("MROTEST{}", digest[..13].to_ascii_uppercase());
    let secret = digest[20..60].to_owned();
    (access, secret)
}

/// Accepts connections forever, one HTTP/1.1 connection task per socket. The tasks die with the
/// server thread's runtime when the [`S3Server`] is dropped.
async fn serve(listener: tokio::net::TcpListener, service: S3Service) {
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) => {
                tracing::warn!("s3 accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service);
            if let Err(e) = conn.await {
                tracing::debug!("s3 connection ended: {e}");
            }
        });
    }
}

/// Refuses server-side copies (`CopyObject`, `UploadPartCopy`) as a store that does not
/// implement them does (`NotImplemented`); everything else needs a signature, as by default.
struct NoServerSideCopies;

#[async_trait::async_trait]
impl s3s::access::S3Access for NoServerSideCopies {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if matches!(cx.s3_op().name(), "CopyObject" | "UploadPartCopy") {
            return Err(s3s::s3_error!(
                NotImplemented,
                "server-side copies are not supported"
            ));
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3s::s3_error!(AccessDenied, "Signature is required")),
        }
    }
}

impl S3Server {
    /// Starts a server on `127.0.0.1:<free port>` with fresh credentials and an empty root.
    pub async fn start() -> anyhow::Result<Self> {
        let (access_key, secret_key) = generate_keys();
        Self::start_with(&access_key, &secret_key, false).await
    }

    /// Like [`S3Server::start`], accepting only the given key pair (a manifest's own Secret).
    pub async fn start_with_keys(access_key: &str, secret_key: &str) -> anyhow::Result<Self> {
        Self::start_with(access_key, secret_key, false).await
    }

    /// Like [`S3Server::start`], for a server that refuses server-side copies.
    pub async fn start_without_copies() -> anyhow::Result<Self> {
        let (access_key, secret_key) = generate_keys();
        Self::start_with(&access_key, &secret_key, true).await
    }

    async fn start_with(
        access_key: &str,
        secret_key: &str,
        refuse_copies: bool,
    ) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new().prefix("mro-s3-").tempdir()?;
        let fs = s3s_fs::FileSystem::new(root.path())
            .map_err(|e| anyhow::anyhow!("s3s-fs root: {e:?}"))?;
        let (access_key, secret_key) = (access_key.to_owned(), secret_key.to_owned());
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(
            access_key.clone(),
            secret_key.clone(),
        ));
        if refuse_copies {
            builder.set_access(NoServerSideCopies);
        }
        let service = builder.build();
        let served = service.clone();
        let server = ServerThread::spawn("s3", move |listener| serve(listener, served))?;
        let endpoint = format!("http://{}", server.addr());
        let client = build_client(&endpoint, &access_key, &secret_key);
        Ok(Self {
            server,
            access_key,
            secret_key,
            client,
            service,
            root,
        })
    }

    /// Serves the same buckets over TLS too, on a new port, until the returned listener is
    /// dropped (the plain endpoint keeps working, for fixtures and checks).
    pub fn serve_tls(&self) -> anyhow::Result<S3TlsListener> {
        let ca = TestCa::try_new()?;
        let config = ca.try_server_config(&["127.0.0.1"])?;
        let tls = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let service = self.service.clone();
        let server =
            ServerThread::spawn("s3-tls", move |listener| serve_tls(listener, service, tls))?;
        Ok(S3TlsListener { server, ca })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The only access key the server accepts.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret for [`S3Server::access_key`].
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The region clients should sign for.
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// The storage directory: `<root>/<bucket>/<key>` are the objects (plus s3s-fs bookkeeping files).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A client with the right endpoint, credentials and S3-compatible settings, built at start.
    ///
    /// Its connection pool belongs to the runtime that first uses it; a test sharing the server across
    /// runtimes (e.g. through a `static`) should call [`S3Server::new_client`] instead.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// A fresh client with the server's credentials.
    pub fn new_client(&self) -> aws_sdk_s3::Client {
        build_client(&self.endpoint(), &self.access_key, &self.secret_key)
    }

    /// A client for this endpoint signing with arbitrary credentials (for negative tests).
    pub fn client_with_credentials(
        &self,
        access_key: &str,
        secret_key: &str,
    ) -> aws_sdk_s3::Client {
        build_client(&self.endpoint(), access_key, secret_key)
    }

    /// Creates a bucket through the S3 API (so it is exactly what a real client would see).
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        self.new_client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .with_context(|| format!("create bucket {name}"))?;
        Ok(())
    }

    /// Uploads `data` as `bucket/key` through the S3 API (test fixture convenience).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        data: impl Into<bytes::Bytes>,
    ) -> anyhow::Result<()> {
        self.new_client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(data.into()))
            .send()
            .await
            .with_context(|| format!("put s3://{bucket}/{key}"))?;
        Ok(())
    }

    /// Downloads `bucket/key` through the S3 API.
    pub async fn get_object(&self, bucket: &str, key: &str) -> anyhow::Result<bytes::Bytes> {
        let out = self
            .new_client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("get s3://{bucket}/{key}"))?;
        Ok(out
            .body
            .collect()
            .await
            .context("read object body")?
            .into_bytes())
    }
}

/// An SDK client configured the way S3-compatible stores need: path-style addressing, and checksums
/// only when an operation requires them (the SDK's newer CRC defaults are not universally supported).
pub fn build_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "mro-tests",
        ))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
