//! model-sync's URI back-end (library) against the HTTP file server: direct streaming with Range
//! resume through a connection-cutting proxy, zip and tar.gz unpacked with their structure,
//! malicious archives refused, credentials, clear errors.
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use model_sync::config::{Secret, UriSource};
use model_sync::local::LocalDestination;
use model_sync::transfer::{Progress, Reason};
use model_sync::uri::{HttpSource, UriOptions};
use mro_tests::http_files::{HttpAuth, HttpFileServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::s3::{pattern, quick_resume, sha};

const MIB: usize = 1024 * 1024;

fn http(url: &str) -> UriSource {
    UriSource::Http(url::Url::parse(url).expect("url"))
}

/// A TCP proxy that cuts its first connection after `cut_after` response bytes, and records
/// what clients sent.
struct CuttingProxy {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CuttingProxy {
    async fn start(upstream: SocketAddr, cut_after: usize) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, count) = (sent.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::Relaxed);
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let log = log.clone();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(k) = cr.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                        log.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[..k]).into_owned());
                        if sw.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut forwarded = 0;
                    while let Ok(k) = sr.read(&mut buf).await {
                        if k == 0 || cw.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                        forwarded += k;
                        if n == 0 && forwarded >= cut_after {
                            break; // dropping both halves cuts the connection mid-body
                        }
                    }
                    up.abort();
                });
            }
        });
        Ok(Self {
            addr,
            sent,
            connections,
            task,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn single_file_streams_directly_and_resumes_with_range() -> anyhow::Result<()> {
    mro_tests::init();
    let token = "uri-bearer-token-secret";
    let server = HttpFileServer::start_with_auth(HttpAuth::Bearer(token.to_owned())).await?;
    let data = pattern(8 * MIB + 321, 11);
    server.write_file("models/model.safetensors", &data)?;
    let upstream: SocketAddr = server.base_url().trim_start_matches("http://").parse()?;
    let proxy = CuttingProxy::start(upstream, MIB).await?;
    let scratch = tempfile::tempdir()?;
    let options = UriOptions {
        authorization: Some(Secret::new(format!("Bearer {token}"))),
        resume: quick_resume(5),
        ..UriOptions::default()
    };
    let src = HttpSource::prepare(
        &http(&proxy.url("models/model.safetensors")),
        scratch.path(),
        options,
    )
    .await?;
    assert!(
        !src.is_staged(),
        "a plain file of known size is streamed, not staged"
    );
    let files = src.list().await?;
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].path.as_str(), files[0].size),
        ("model.safetensors", data.len() as u64)
    );
    let dst = tempfile::tempdir()?;
    let progress = Progress::new(files[0].size);
    LocalDestination::new(dst.path())
        .publish(&src, &files, &progress)
        .await?;
    assert_eq!(
        sha(&std::fs::read(dst.path().join("model.safetensors"))?),
        sha(&data)
    );
    assert_eq!(progress.done(), data.len() as u64);
    // The first connection was cut; the rest came from a ranged, authenticated re-request.
    assert!(proxy.connections.load(Ordering::Relaxed) >= 2);
    let sent = proxy.sent.lock().unwrap().join("").to_ascii_lowercase();
    assert!(
        sent.contains("range: bytes="),
        "no Range request was sent:\n{sent}"
    );
    let gets: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert!(
        gets.len() >= 2 && gets.iter().all(|r| r.authorized),
        "{gets:?}"
    );
    // Nothing was staged.
    assert_eq!(std::fs::read_dir(scratch.path())?.count(), 0);
    Ok(())
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn archives_are_unpacked_with_their_structure() -> anyhow::Result<()> {
    mro_tests::init();
    let server = HttpFileServer::start().await?;
    let weights = pattern(3 * MIB, 12);
    let entries: [(&str, &[u8]); 3] = [
        ("config.json", b"{\"a\": 1}"),
        ("weights/part-1.bin", &weights),
        ("tokenizer/vocab/v.txt", b"a b c"),
    ];
    server.write_file("m.tar.gz", tar_gz(&entries))?;
    server.write_file("dl/m.zip", zip(&entries))?;
    for path in ["m.tar.gz", "dl/m.zip"] {
        let scratch = tempfile::tempdir()?;
        let src = HttpSource::prepare(
            &http(&server.url_for(path)),
            scratch.path(),
            UriOptions::default(),
        )
        .await?;
        assert!(src.is_staged());
        let files = src.list().await?;
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            ["config.json", "tokenizer/vocab/v.txt", "weights/part-1.bin"],
            "{path}"
        );
        let dst = tempfile::tempdir()?;
        LocalDestination::new(dst.path())
            .publish(&src, &files, &Progress::new(0))
            .await?;
        for (name, data) in entries {
            assert_eq!(
                sha(&std::fs::read(dst.path().join(name))?),
                sha(data),
                "{path}: {name}"
            );
        }
        // Staging is removed with the source.
        drop(src);
        assert_eq!(
            std::fs::read_dir(scratch.path())?.count(),
            0,
            "{path}: scratch left behind"
        );
    }
    Ok(())
}

/// A tar.gz whose only entry is `name`, written raw as an attacker would.
fn evil_tar_gz(name: &str) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    b.append(&h, &b"evil"[..]).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

fn assert_nothing_escaped(scratch: &Path) {
    assert_eq!(
        std::fs::read_dir(scratch).unwrap().count(),
        0,
        "scratch must be cleaned up"
    );
    assert!(!scratch.parent().unwrap().join("escaped.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn malicious_archives_are_refused() -> anyhow::Result<()> {
    mro_tests::init();
    let server = HttpFileServer::start().await?;
    server.write_file("slip.tar.gz", evil_tar_gz("../escaped.txt"))?;
    server.write_file("abs.tar.gz", evil_tar_gz("/tmp/escaped.txt"))?;
    server.write_file(
        "slip.zip",
        zip(&[("ok.txt", b"ok"), ("../escaped.txt", b"evil")]),
    )?;
    server.write_file("liar.zip", b"this is not a zip at all")?;
    for path in ["slip.tar.gz", "abs.tar.gz", "slip.zip", "liar.zip"] {
        let parent = tempfile::tempdir()?;
        let scratch = parent.path().join("scratch");
        let err = HttpSource::prepare(
            &http(&server.url_for(path)),
            &scratch,
            UriOptions::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, Reason::InvalidConfiguration, "{path}: {err}");
        if path != "liar.zip" {
            assert!(err.message.contains("unsafe path"), "{path}: {err}");
        }
        if scratch.exists() {
            assert_nothing_escaped(&scratch);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_clear_and_keep_secrets_out() -> anyhow::Result<()> {
    mro_tests::init();
    let server = HttpFileServer::start_with_auth(HttpAuth::Basic {
        username: "u".into(),
        password: "p4ss-secret".into(),
    })
    .await?;
    server.write_file("m.bin", b"data")?;
    let scratch = tempfile::tempdir()?;

    // Credentials in the URL are used, and never shown.
    let with_creds = server
        .url_for("m.bin")
        .replace("http://", "http://u:p4ss-secret@");
    let src =
        HttpSource::prepare(&http(&with_creds), scratch.path(), UriOptions::default()).await?;
    assert_eq!(src.list().await?[0].size, 4);

    let wrong = server
        .url_for("m.bin?sig=query-secret")
        .replace("http://", "http://u:wrong-secret@");
    let err = HttpSource::prepare(&http(&wrong), scratch.path(), UriOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::SourceUnavailable);
    assert!(err.message.contains("HTTP 401"), "{err}");
    for secret in ["wrong-secret", "query-secret", "p4ss"] {
        assert!(!err.message.contains(secret), "{err}");
    }

    let missing = server
        .url_for("nope.bin")
        .replace("http://", "http://u:p4ss-secret@");
    let err = HttpSource::prepare(&http(&missing), scratch.path(), UriOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.message.contains("HTTP 404 (not found)") && err.message.contains("/nope.bin"),
        "{err}"
    );

    let hf = UriSource::HuggingFace {
        repo: "org/model".into(),
        revision: None,
    };
    let err = HttpSource::prepare(&hf, scratch.path(), UriOptions::default())
        .await
        .unwrap_err();
    // hf:// is the Hub source's (tests in model_sync/hf.rs), never fetched as a URL.
    assert_eq!(err.reason, Reason::Internal);
    assert!(err.message.contains("read by the Hub source"), "{err}");
    Ok(())
}
