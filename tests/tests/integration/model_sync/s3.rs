//! model-sync's S3 back-end (library) against the in-process SigV4 S3 server: strict prefixes,
//! single objects, structure, byte-for-byte copies, multipart uploads (and their abort), credential
//! errors without secrets, and reads that survive a server restart.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use hyper_util::rt::TokioIo;
use model_sync::config::{S3Credentials, S3Location, Secret};
use model_sync::local::{LocalDestination, LocalSource};
use model_sync::s3::{S3Destination, S3Source};
use model_sync::transfer::retry::{ResumeOptions, RetryPolicy};
use model_sync::transfer::{ModelFile, Progress, Reason};
use mro_tests::s3::S3Server;
use sha2::{Digest as _, Sha256};

const MIB: usize = 1024 * 1024;

/// Deterministic, non-repeating-looking bytes.
pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed as u64 * 7919) as u8
        })
        .collect()
}

pub(super) fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(super) fn location(
    endpoint: &str,
    access: &str,
    secret: &str,
    bucket: &str,
    key: &str,
) -> S3Location {
    S3Location {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        region: Some(mro_tests::s3::REGION.to_owned()),
        endpoint: Some(url::Url::parse(endpoint).expect("endpoint url")),
        credentials: S3Credentials::Static {
            access_key_id: access.to_owned(),
            secret_access_key: Secret::new(secret.to_owned()),
        },
    }
}

fn server_location(s3: &S3Server, bucket: &str, key: &str) -> S3Location {
    location(
        &s3.endpoint(),
        s3.access_key(),
        s3.secret_key(),
        bucket,
        key,
    )
}

/// Short backoff so failure tests finish quickly.
pub(super) fn quick_resume(attempts: u32) -> ResumeOptions {
    ResumeOptions {
        policy: RetryPolicy {
            attempts,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
        },
        idle_timeout: Duration::from_secs(15),
        max_resumes: 50,
    }
}

fn paths(files: &[ModelFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_prefix_listing_is_strict_and_keeps_structure() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    s3.create_bucket("models").await?;
    for (key, data) in [
        ("m1/config.json", b"{}".to_vec()),
        ("m1/sub/deep/w.bin", pattern(1000, 1)),
        ("m10/other.bin", b"not mine".to_vec()),
        ("m1-old/x.bin", b"not mine".to_vec()),
        ("m1x", b"not mine".to_vec()),
    ] {
        s3.put_object("models", key, data).await?;
    }
    for key in ["m1", "m1/"] {
        let files = S3Source::new(&server_location(&s3, "models", key))
            .await
            .list()
            .await?;
        assert_eq!(
            paths(&files),
            ["config.json", "sub/deep/w.bin"],
            "key {key:?}"
        );
        assert_eq!(files[1].size, 1000);
        assert!(files.iter().all(|f| f.sha256.is_none()));
    }
    // Nothing under `m` (only `m1…` siblings) and no object `m`: a clear error naming both.
    let err = S3Source::new(&server_location(&s3, "models", "m"))
        .await
        .list()
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::SourceUnavailable);
    assert!(err.message.contains("s3://models/m/"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_single_object_key_is_one_file() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    s3.create_bucket("bkt").await?;
    // Over the 16 MiB bound on buffered S3 answers: the HEAD that sizes a single object
    // declares the object's length, which is not a body to bound.
    let data = pattern(20 * MIB + 17, 3);
    s3.put_object("bkt", "models/single.safetensors", data.clone())
        .await?;
    let src = S3Source::new(&server_location(&s3, "bkt", "models/single.safetensors")).await;
    let files = src.list().await?;
    assert_eq!(paths(&files), ["single.safetensors"]);
    assert_eq!(files[0].size, data.len() as u64);
    let dst = tempfile::tempdir()?;
    LocalDestination::new(dst.path())
        .publish(&src, &files, &Progress::new(files[0].size))
        .await?;
    assert_eq!(
        sha(&std::fs::read(dst.path().join("single.safetensors"))?),
        sha(&data)
    );
    // Ranged reads start where asked.
    let tail: Vec<u8> = src
        .open(&files[0], 3 * MIB as u64)
        .await?
        .map(|c| c.unwrap().to_vec())
        .concat()
        .await;
    assert_eq!(tail, data[3 * MIB..]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_to_local_copies_byte_for_byte() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    s3.create_bucket("bkt").await?;
    let model = [
        ("llm/v1/config.json", b"{\"layers\": 2}".to_vec()),
        ("llm/v1/tokenizer/vocab.txt", pattern(70_000, 4)),
        ("llm/v1/weights/part-1.safetensors", pattern(5 * MIB + 3, 5)),
        ("llm/v1/weights/part-2.safetensors", pattern(2 * MIB, 6)),
        ("llm/v1/empty.txt", Vec::new()),
    ];
    for (k, d) in &model {
        s3.put_object("bkt", k, d.clone()).await?;
    }
    let src = S3Source::new(&server_location(&s3, "bkt", "llm/v1")).await;
    let files = src.list().await?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    let dst = tempfile::tempdir()?;
    let progress = Progress::new(total);
    let published = LocalDestination::new(dst.path().join("out"))
        .publish(&src, &files, &progress)
        .await?;
    assert_eq!(published.files, 5);
    assert_eq!(progress.done(), total);
    for (k, d) in &model {
        let rel = k.strip_prefix("llm/v1/").unwrap();
        let got = std::fs::read(dst.path().join("out").join(rel))?;
        assert_eq!(sha(&got), sha(d), "{rel}");
    }
    Ok(())
}

/// Files the s3s-fs server keeps for unfinished multipart uploads.
fn pending_uploads(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".upload"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn local_to_s3_multipart_round_trips() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    s3.create_bucket("out").await?;
    let dir = tempfile::tempdir()?;
    let big = pattern(20 * MIB + 12_345, 7);
    std::fs::create_dir_all(dir.path().join("weights"))?;
    std::fs::write(dir.path().join("weights/model.bin"), &big)?;
    std::fs::write(dir.path().join("config.json"), b"{}")?;
    let src = LocalSource::new(dir.path());
    let files = src.list().await?;
    let dest = S3Destination::new(&server_location(&s3, "out", "models/m1")).await;
    let published = dest
        .publish(&src, &files, &Progress::new(big.len() as u64 + 2))
        .await?;
    assert_eq!(published.uri, "s3://out/models/m1");
    assert_eq!(published.bytes, big.len() as u64 + 2);
    let head = s3
        .client()
        .head_object()
        .bucket("out")
        .key("models/m1/weights/model.bin")
        .send()
        .await?;
    // A multipart ETag is `<hash>-<parts>`: 20 MiB in 8 MiB parts is 3 parts.
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    assert!(
        etag.ends_with("-3"),
        "expected a 3-part upload, ETag {etag}"
    );
    assert_eq!(
        sha(&s3.get_object("out", "models/m1/weights/model.bin").await?),
        sha(&big)
    );
    assert_eq!(
        s3.get_object("out", "models/m1/config.json")
            .await?
            .as_ref(),
        b"{}"
    );
    assert!(pending_uploads(s3.root()).is_empty());

    // A single-file model goes under the key too.
    let one = LocalSource::new(dir.path().join("config.json"));
    let files = one.list().await?;
    S3Destination::new(&server_location(&s3, "out", "single/"))
        .await
        .publish(&one, &files, &Progress::new(2))
        .await?;
    assert_eq!(
        s3.get_object("out", "single/config.json").await?.as_ref(),
        b"{}"
    );
    Ok(())
}

/// Serves `good` bytes of a file, then fails (a source dying mid-upload).
struct DiesAfter {
    data: Vec<u8>,
    good: usize,
}

impl model_sync::transfer::OpenFile for DiesAfter {
    fn open<'a>(
        &'a self,
        _: &'a ModelFile,
        _: u64,
    ) -> futures::future::BoxFuture<
        'a,
        Result<model_sync::transfer::ByteStream, model_sync::transfer::TransferError>,
    > {
        let chunks: Vec<std::io::Result<bytes::Bytes>> = self.data[..self.good]
            .chunks(MIB)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .chain(std::iter::once(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "source died",
            ))))
            .collect();
        Box::pin(async move { Ok(futures::stream::iter(chunks).boxed()) })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_multipart_upload_is_aborted() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    s3.create_bucket("out").await?;
    let src = DiesAfter {
        data: pattern(40 * MIB, 8),
        good: 19 * MIB,
    };
    let file = ModelFile {
        path: model_sync::transfer::ModelPath::new("w.bin")?,
        size: 40 * MIB as u64,
        fingerprint: None,
        sha256: None,
    };
    let dest = S3Destination::new(&server_location(&s3, "out", "m")).await;
    let err = dest
        .publish(&src, &[file], &Progress::new(0))
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::SourceUnavailable, "{err}");
    assert!(
        s3.client()
            .head_object()
            .bucket("out")
            .key("m/w.bin")
            .send()
            .await
            .is_err(),
        "no object may appear"
    );
    assert!(
        pending_uploads(s3.root()).is_empty(),
        "parts left behind: {:?}",
        pending_uploads(s3.root())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_reported_without_secrets() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    s3.create_bucket("bkt").await?;
    s3.put_object("bkt", "m/w.bin", &b"x"[..]).await?;
    let bad_secret = "Wr0ngSecretValue-do-not-print";
    let src = S3Source::new(&location(
        &s3.endpoint(),
        s3.access_key(),
        bad_secret,
        "bkt",
        "m",
    ))
    .await;
    let err = src.list().await.unwrap_err();
    assert_eq!(err.reason, Reason::SourceUnavailable);
    assert!(!err.transient);
    assert!(
        err.message.contains("s3://bkt/m/") && err.message.contains("HTTP 403"),
        "{err}"
    );
    assert!(
        !err.message.contains(bad_secret) && !err.message.contains(s3.secret_key()),
        "{err}"
    );

    let bad_key = "AKIANOTKNOWN";
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("w.bin"), b"x")?;
    let local = LocalSource::new(dir.path());
    let files = local.list().await?;
    let dest = S3Destination::new(&location(
        &s3.endpoint(),
        bad_key,
        s3.secret_key(),
        "bkt",
        "out",
    ))
    .await;
    let err = dest
        .publish(&local, &files, &Progress::new(1))
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::DestinationRejected);
    assert!(err.message.contains("s3://bkt/out/w.bin"), "{err}");
    assert!(!err.message.contains(s3.secret_key()), "{err}");

    // A missing bucket is named as such.
    let err = S3Source::new(&server_location(&s3, "nope", "m"))
        .await
        .list()
        .await
        .unwrap_err();
    assert!(err.message.contains("NoSuchBucket"), "{err}");
    Ok(())
}

/// An s3s-fs server that can be stopped (connections cut) and restarted on the same port and
/// data directory, like a pod restart behind a stable address.
pub(super) struct RestartableS3 {
    addr: SocketAddr,
    access: String,
    secret: String,
    running: Option<Running>,
    root: tempfile::TempDir,
}

struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    accepted: Arc<AtomicUsize>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl RestartableS3 {
    pub fn start() -> anyhow::Result<Self> {
        let root = tempfile::Builder::new().prefix("mro-s3r-").tempdir()?;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let (access, secret) = (
            "MROTESTRESTART".to_owned(),
            "restartable-secret-key".to_owned(),
        );
        let running = Some(Self::run(listener, root.path(), &access, &secret)?);
        Ok(Self {
            addr,
            access,
            secret,
            running,
            root,
        })
    }

    fn run(
        listener: std::net::TcpListener,
        root: &Path,
        access: &str,
        secret: &str,
    ) -> anyhow::Result<Running> {
        listener.set_nonblocking(true)?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            access.to_owned(),
            secret.to_owned(),
        ));
        let service = builder.build();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let serve = async {
                    loop {
                        let Ok((socket, _)) = listener.accept().await else {
                            continue;
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let service = service.clone();
                        tokio::spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(socket), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = rx => {}
                }
            });
            // Dropping the runtime cuts every open connection.
        });
        Ok(Running {
            stop: Some(tx),
            thread: Some(thread),
            accepted,
        })
    }

    /// Stops the server: open connections are cut, new ones refused.
    pub fn stop(&mut self) {
        self.running = None;
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let listener = std::net::TcpListener::bind(self.addr)?;
        self.running = Some(Self::run(
            listener,
            self.root.path(),
            &self.access,
            &self.secret,
        )?);
        Ok(())
    }

    /// Connections accepted since the last (re)start.
    pub fn accepted(&self) -> usize {
        self.running
            .as_ref()
            .map_or(0, |r| r.accepted.load(Ordering::Relaxed))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn access_key(&self) -> &str {
        &self.access
    }

    pub fn secret_key(&self) -> &str {
        &self.secret
    }

    pub fn location(&self, bucket: &str, key: &str) -> S3Location {
        location(&self.endpoint(), &self.access, &self.secret, bucket, key)
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        mro_tests::s3::build_client(&self.endpoint(), &self.access, &self.secret)
    }

    pub fn root(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }
}

/// Puts `data` at `bucket/key` on a fresh restartable server.
pub(super) async fn restartable_with(
    bucket: &str,
    key: &str,
    data: &[u8],
) -> anyhow::Result<RestartableS3> {
    let s3 = RestartableS3::start()?;
    let client = s3.client();
    client.create_bucket().bucket(bucket).send().await?;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(data.to_vec()))
        .send()
        .await?;
    Ok(s3)
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_s3_read_resumes_after_a_server_restart() -> anyhow::Result<()> {
    mro_tests::init();
    let data = pattern(24 * MIB, 9);
    let mut s3 = restartable_with("bkt", "m/w.bin", &data).await?;
    let src = S3Source::new(&s3.location("bkt", "m"))
        .await
        .with_resume(quick_resume(20));
    let files = src.list().await?;
    let mut stream = src.open(&files[0], 0).await?;
    let mut got = Vec::with_capacity(data.len());
    while got.len() < MIB {
        got.extend_from_slice(&stream.next().await.expect("data")?);
    }
    // Kill the server mid-body (far more than socket buffers can hold is still unsent), bring it
    // back on the same port a little later, and keep reading the same stream.
    s3.stop();
    let reader = tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk?);
        }
        Ok::<_, std::io::Error>(got)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    s3.restart()?;
    let got = reader.await??;
    assert_eq!(got.len(), data.len());
    assert_eq!(sha(&got), sha(&data));
    assert!(
        s3.accepted() >= 1,
        "the rest must have come from the restarted server"
    );
    Ok(())
}
