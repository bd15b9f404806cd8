//! The OCI back-end of model-sync as a library, against the real distribution registry (plain
//! HTTP and htpasswd + TLS): modelcar layout and determinism, reuse on re-push, multi-arch bases,
//! cross-registry bases, auth/TLS failures, interrupted uploads, broken sources, the OCI source
//! reading modelcars back, and S3 → OCI. Images are checked with `oci-client` + the `tar` crate
//! (`pull_image`), independently of the code under test.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt as _, TryStreamExt as _};
use model_sync::config::{OciCredentials, OciDestination, OciLocation, Secret};
use model_sync::oci::{OciSink, OciSource, UploadStats};
use model_sync::transfer::{
    ByteStream, ModelFile, ModelPath, OpenFile, Progress, Published, Reason, TransferError,
};
use mro_tests::model_sync::{FlakyProxy, Model, pseudo_random, pull_image, push_base_image};
use mro_tests::oci_registry::OciRegistry;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

mod copy;
mod many_files;
mod multi_arch;
mod perf;
mod source;

const MIB: usize = 1 << 20;

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// What a source does wrong (for negative tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// Streams stop 1000 bytes short, every time.
    Short,
    /// Streams carry one byte more than listed.
    Long,
}

/// An in-memory source that counts opens.
struct MemSource {
    files: BTreeMap<String, Bytes>,
    opens: AtomicU64,
    fault: Fault,
}

impl MemSource {
    fn new(model: &Model) -> Self {
        let files = model
            .files
            .iter()
            .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
            .collect();
        MemSource {
            files,
            opens: AtomicU64::new(0),
            fault: Fault::None,
        }
    }

    /// The listing, with an ETag-like fingerprint per file.
    fn listing(&self) -> Vec<ModelFile> {
        self.files
            .iter()
            .map(|(p, d)| ModelFile {
                path: ModelPath::new(p).unwrap(),
                size: d.len() as u64,
                fingerprint: Some(format!("mem-{}", &sha256(d)[7..23])),
                sha256: None,
            })
            .collect()
    }
}

impl OpenFile for MemSource {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        let data = self.files[file.path.as_str()].clone();
        let mut end = data.len();
        let mut tail = Bytes::new();
        match self.fault {
            Fault::None => {}
            Fault::Short => end = end.saturating_sub(1000),
            Fault::Long => tail = Bytes::from_static(b"!"),
        }
        let start = (offset as usize).min(end);
        // Zero-copy 1 MiB slices, produced lazily (like a network body).
        let pieces = (start..end)
            .step_by(MIB)
            .map(move |i| Ok(data.slice(i..(i + MIB).min(end))));
        let stream = futures::stream::iter(pieces.chain(std::iter::once(Ok(tail))));
        Box::pin(async move { Ok(stream.boxed()) })
    }
}

fn location(reg: &OciRegistry, reference: &str, password: Option<&str>) -> OciLocation {
    OciLocation {
        reference: reference.parse().unwrap(),
        credentials: reg.username().map(|u| OciCredentials {
            username: u.to_owned(),
            password: Secret::new(password.or(reg.password()).unwrap().to_owned()),
        }),
        tls_verify: reg.is_tls(),
    }
}

fn sink_for(reg: &OciRegistry, reference: &str, base: &str) -> OciSink {
    let dest = OciDestination {
        location: location(reg, reference, None),
        base_image: base.to_owned(),
    };
    with_ca(reg, OciSink::new(dest, 4).unwrap())
}

fn with_ca(reg: &OciRegistry, sink: OciSink) -> OciSink {
    match reg.ca_pem() {
        Some(ca) => sink.with_ca_pem(ca.as_bytes().to_vec()).unwrap(),
        None => sink,
    }
}

fn source_for(reg: &OciRegistry, reference: &str) -> OciSource {
    let s = OciSource::new(location(reg, reference, None)).unwrap();
    match reg.ca_pem() {
        Some(ca) => s.with_ca_pem(ca.as_bytes().to_vec()).unwrap(),
        None => s,
    }
}

/// weights (20 MiB, random), a small json, a file in a subdirectory.
fn test_model(seed: u64) -> Model {
    let mut files = BTreeMap::new();
    files.insert("weights.bin".to_owned(), pseudo_random(seed, 20 * MIB));
    files.insert(
        "config.json".to_owned(),
        format!("{{\"seed\": {seed}}}\n").into_bytes(),
    );
    files.insert(
        "tokenizer/vocab.json".to_owned(),
        format!("{{\"a\": {seed}}}\n").into_bytes(),
    );
    Model { files }
}

async fn publish(sink: &OciSink, src: &MemSource) -> Result<Published, TransferError> {
    let files = src.listing();
    let progress = Progress::new(files.iter().map(|f| f.size).sum());
    let p = sink.publish(src, &files, &progress).await;
    if p.is_ok() {
        assert_eq!(
            progress.done(),
            progress.total(),
            "progress reaches the total"
        );
    }
    p
}

/// `host/repo@digest` from `oci://host/repo@digest`.
fn pinned(p: &Published) -> String {
    p.uri.strip_prefix("oci://").unwrap().to_owned()
}

/// A manifest or index as served, by reference, with the registry's digest header.
async fn raw_manifest(reg: &OciRegistry, repo: &str, reference: &str) -> (Value, String) {
    let url = format!("{}/v2/{repo}/manifests/{reference}", reg.base_url());
    let mut req = reg.http_client().unwrap().get(url).header(
        "Accept",
        "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
    );
    if let (Some(u), Some(p)) = (reg.username(), reg.password()) {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let body = resp.bytes().await.unwrap();
    (serde_json::from_slice(&body).unwrap(), sha256(&body))
}

async fn tag_exists(reg: &OciRegistry, repo: &str, tag: &str) -> bool {
    let url = format!("{}/v2/{repo}/manifests/{tag}", reg.base_url());
    let resp = reg
        .http_client()
        .unwrap()
        .head(url)
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    resp.status().is_success()
}

/// Checks the modelcar layout of one image manifest + config.
fn check_modelcar(manifest: &Value, config: &Value, model: &Model, base_layers: usize) {
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), base_layers + model.files.len());
    let model_layers = &layers[base_layers..];
    let titles: Vec<&str> = model_layers
        .iter()
        .map(|l| {
            l["annotations"]["org.opencontainers.image.title"]
                .as_str()
                .unwrap()
        })
        .collect();
    let expected: Vec<&str> = model.files.keys().map(String::as_str).collect();
    assert_eq!(titles, expected, "one layer per file, ordered by path");
    for l in model_layers {
        assert_eq!(
            l["mediaType"], "application/vnd.oci.image.layer.v1.tar",
            "uncompressed"
        );
        assert!(l["annotations"]["io.opendatahub.model-sync.fingerprint"].is_string());
    }
    // Uncompressed layers: diff ids are the blob digests (base layers here are uncompressed too).
    let diff_ids: Vec<&Value> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let digests: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    assert_eq!(diff_ids[base_layers..], digests[base_layers..]);
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), layers.len(), "a history entry per layer");
    assert_eq!(history.last().unwrap()["created"], "1970-01-01T00:00:00Z");
}

#[tokio::test]
async fn modelcar_is_deterministic_reused_and_readable() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let model = test_model(1);
    let src = MemSource::new(&model);

    let sink = sink_for(&reg, &reg.reference("models/m", "v1"), &base);
    let p1 = publish(&sink, &src).await?;
    let digest = p1.digest.clone().unwrap();
    assert_eq!(p1.uri, format!("oci://{}/models/m@{digest}", reg.host()));
    assert_eq!((p1.files, p1.bytes), (3, model.total_bytes()));
    let s1 = sink.stats();
    assert_eq!(s1.blobs_uploaded, 4, "3 model layers + config: {s1:?}");
    assert_eq!(
        s1.blobs_mounted, 1,
        "base layer mounted from base/busybox: {s1:?}"
    );
    assert_eq!(
        s1.patch_requests, 4,
        "one streamed PATCH per uploaded blob: {s1:?}"
    );

    // The tag resolves to the pinned digest; the image is a proper modelcar.
    let (_, tag_digest) = raw_manifest(&reg, "models/m", "v1").await;
    assert_eq!(tag_digest, digest);
    let pulled = pull_image(&reg, &pinned(&p1)).await?;
    assert_eq!(pulled.models, model, "file bytes survive");
    assert!(
        pulled
            .paths
            .iter()
            .any(|p| p.trim_end_matches('/') == "models/tokenizer"),
        "{:?}",
        pulled.paths
    );
    check_modelcar(&pulled.manifest, &pulled.config, &model, 1);

    // Second run, same tag: nothing uploaded, nothing even read from the source, same digest.
    let opens_before = src.opens.load(Ordering::Relaxed);
    let sink2 = sink_for(&reg, &reg.reference("models/m", "v1"), &base);
    let p2 = publish(&sink2, &src).await?;
    assert_eq!(p2, p1);
    let s2 = sink2.stats();
    assert_eq!((s2.patch_requests, s2.blobs_uploaded), (0, 0), "{s2:?}");
    assert_eq!(
        src.opens.load(Ordering::Relaxed),
        opens_before,
        "unchanged files are not read"
    );

    // A fresh repository: everything uploaded again, byte-identical result.
    let sink3 = sink_for(&reg, &reg.reference("models/other", "v9"), &base);
    let p3 = publish(&sink3, &src).await?;
    assert_eq!(
        p3.digest, p1.digest,
        "same model, same base: same manifest digest"
    );
    assert!(sink3.stats().patch_requests > 0);

    // The OCI source reads the modelcar back: same files, sizes and bytes, also from an offset.
    let oci = source_for(&reg, &pinned(&p1));
    let listed = oci.list().await?;
    let names: Vec<(&str, u64)> = listed.iter().map(|f| (f.path.as_str(), f.size)).collect();
    let expected: Vec<(&str, u64)> = model
        .files
        .iter()
        .map(|(k, v)| (k.as_str(), v.len() as u64))
        .collect();
    assert_eq!(names, expected);
    for f in &listed {
        let got: Vec<Bytes> = oci.open(f, 0).await?.try_collect().await?;
        assert_eq!(got.concat(), model.files[f.path.as_str()], "{}", f.path);
    }
    let w = listed
        .iter()
        .find(|f| f.path.as_str() == "weights.bin")
        .unwrap();
    let got: Vec<Bytes> = oci.open(w, 1_234_567).await?.try_collect().await?;
    assert_eq!(got.concat(), model.files["weights.bin"][1_234_567..]);

    // OCI → OCI: identical layers and config (the manifest differs only in fingerprints).
    let sink4 = sink_for(&reg, &reg.reference("models/copy", "v1"), &base);
    let progress = Progress::new(model.total_bytes());
    let p4 = sink4.publish(&oci, &listed, &progress).await?;
    let copy = pull_image(&reg, &pinned(&p4)).await?;
    assert_eq!(copy.models, model);
    assert_eq!(copy.manifest["config"], pulled.manifest["config"]);
    let digests = |m: &Value| {
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&copy.manifest), digests(&pulled.manifest));
    Ok(())
}

#[tokio::test]
async fn auth_tls_registry_credentials_and_trust() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_auth_tls().await?;
    let base = push_base_image(&reg).await?;
    let model = Model::small(3);
    let src = MemSource::new(&model);
    let reference = reg.reference("secure/m", "v1");

    let p = publish(&sink_for(&reg, &reference, &base), &src).await?;
    assert_eq!(pull_image(&reg, &pinned(&p)).await?.models, model);
    let listed = source_for(&reg, &pinned(&p)).list().await?;
    assert_eq!(listed.len(), model.files.len());

    // A wrong password: refused as DestinationRejected, naming the user, never the passwords.
    let wrong = "not-the-password-4711";
    let dest = OciDestination {
        location: location(&reg, &reference, Some(wrong)),
        base_image: base.clone(),
    };
    let err = publish(&with_ca(&reg, OciSink::new(dest, 2)?), &src)
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::DestinationRejected, "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("mro-tester"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(reg.password().unwrap()),
        "{text}"
    );

    // No credentials at all.
    let mut anon = location(&reg, &reference, None);
    anon.credentials = None;
    let dest = OciDestination {
        location: anon,
        base_image: base.clone(),
    };
    let err = publish(&with_ca(&reg, OciSink::new(dest, 2)?), &src)
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::DestinationRejected, "{err}");

    // The per-run CA is not trusted: a TLS failure, not retried forever, clearly worded.
    let dest = OciDestination {
        location: location(&reg, &reference, None),
        base_image: base,
    };
    let started = Instant::now();
    let err = publish(&OciSink::new(dest, 2)?, &src).await.unwrap_err();
    assert_eq!(err.reason, Reason::DestinationRejected, "{err}");
    assert!(err.message.contains("certificate"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "certificate errors are not retried"
    );
    Ok(())
}

#[tokio::test]
async fn base_image_from_another_registry_is_copied() -> anyhow::Result<()> {
    mro_tests::init();
    let base_reg = OciRegistry::start_plain().await?;
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&base_reg).await?;
    let model = Model::small(11);
    let src = MemSource::new(&model);
    let sink = sink_for(&reg, &reg.reference("models/x", "v1"), &base);
    let p = publish(&sink, &src).await?;
    let s = sink.stats();
    assert_eq!(
        (s.blobs_uploaded, s.blobs_mounted),
        (model.files.len() as u64 + 2, 0),
        "base layer copied: {s:?}"
    );
    let img = pull_image(&reg, &pinned(&p)).await?;
    assert_eq!(img.models, model);
    assert!(
        img.paths.iter().any(|p| p == "bin/true"),
        "base content present: {:?}",
        img.paths
    );
    Ok(())
}

#[tokio::test]
async fn interrupted_uploads_recover_with_identical_digests() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let model = test_model(5);
    let src = MemSource::new(&model);
    let clean = publish(
        &sink_for(&reg, &reg.reference("models/clean", "v1"), &base),
        &src,
    )
    .await?;

    let proxy = FlakyProxy::start(reg.host().parse()?).await?;
    let host = proxy.url().trim_start_matches("http://").to_owned();
    proxy.cut_after(7 * MIB as u64, Duration::from_millis(300));
    let reference = format!("{host}/models/flaky:v1");
    let dest = OciDestination {
        location: location(&reg, &reference, None),
        base_image: base,
    };
    let sink = OciSink::new(dest, 2)?.with_chunk_size(2 * MIB);
    let p = publish(&sink, &src).await?;
    assert!(proxy.cuts() >= 1, "the connection was cut");
    assert_eq!(p.digest, clean.digest, "same bytes after the interruption");
    let img = pull_image(
        &reg,
        &format!("{}/models/flaky@{}", reg.host(), p.digest.unwrap()),
    )
    .await?;
    assert_eq!(img.models, model);
    Ok(())
}

#[tokio::test]
async fn broken_sources_never_publish() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let model = Model::small(9);
    for (i, (fault, reason)) in [
        (Fault::Short, Reason::SourceUnavailable),
        (Fault::Long, Reason::IntegrityError),
    ]
    .into_iter()
    .enumerate()
    {
        let mut src = MemSource::new(&model);
        src.fault = fault;
        let repo = format!("models/broken{i}");
        let err = publish(&sink_for(&reg, &reg.reference(&repo, "v1"), &base), &src)
            .await
            .unwrap_err();
        assert_eq!(err.reason, reason, "{fault:?}: {err}");
        assert!(
            !tag_exists(&reg, &repo, "v1").await,
            "{fault:?}: nothing pushed"
        );
    }
    // A source that announces a content sha256 which does not match.
    let src = MemSource::new(&model);
    let mut files = src.listing();
    files[0].sha256 = Some("0".repeat(64));
    let sink = sink_for(&reg, &reg.reference("models/badsum", "v1"), &base);
    let err = sink
        .publish(&src, &files, &Progress::new(0))
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::IntegrityError, "{err}");
    assert!(!tag_exists(&reg, "models/badsum", "v1").await);
    Ok(())
}

/// Publishes an S3 listing to `models/from-s3:v1` with a fresh sink (as a new process would).
async fn publish_s3(
    reg: &OciRegistry,
    base: &str,
    source: &model_sync::s3::S3Source,
    files: &[ModelFile],
) -> anyhow::Result<(Published, UploadStats)> {
    let sink = sink_for(reg, &reg.reference("models/from-s3", "v1"), base);
    let total = files.iter().map(|f| f.size).sum();
    let p = sink.publish(source, files, &Progress::new(total)).await?;
    Ok((p, sink.stats()))
}

/// S3 → modelcar, then reruns: unchanged objects are recognised by their fingerprint (s3s-fs
/// lists no ETags, so size + last-modified time) and not uploaded again; an object overwritten
/// with different bytes of the same size gets a new fingerprint and is uploaded.
#[tokio::test]
async fn s3_model_to_modelcar_and_rerun() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = mro_tests::s3::S3Server::start().await?;
    s3.create_bucket("models").await?;
    let mut model = Model::small(21);
    model.put_s3(&s3, "models", "team/m1").await?;
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let source = model_sync::s3::S3Source::with_client(s3.new_client(), "models", "team/m1/");
    let files = source.list().await?;
    assert!(
        files.iter().all(|f| f
            .fingerprint
            .as_deref()
            .is_some_and(|p| p.starts_with("s3-mtime:"))),
        "{files:?}"
    );
    let (p1, s1) = publish_s3(&reg, &base, &source, &files).await?;
    assert_eq!(s1.blobs_uploaded as usize, model.files.len() + 1, "{s1:?}");
    assert_eq!(pull_image(&reg, &pinned(&p1)).await?.models, model);

    // A rerun (new source, new listing, as a new process would do) sends no model bytes.
    let source = model_sync::s3::S3Source::with_client(s3.new_client(), "models", "team/m1/");
    let again = source.list().await?;
    assert_eq!(again, files, "fingerprints are stable");
    let (p2, s2) = publish_s3(&reg, &base, &source, &again).await?;
    assert_eq!(p2.digest, p1.digest, "deterministic");
    assert_eq!(
        s2,
        UploadStats {
            blobs_existing: s2.blobs_existing,
            ..UploadStats::default()
        },
        "no re-upload"
    );
    assert!(s2.blobs_existing as usize >= model.files.len(), "{s2:?}");

    // Same size, new bytes: only that file is uploaded again, and the image has the new bytes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let changed = pseudo_random(77, model.files["model.onnx"].len());
    model.files.insert("model.onnx".into(), changed.clone());
    s3.put_object("models", "team/m1/model.onnx", changed)
        .await?;
    let source = model_sync::s3::S3Source::with_client(s3.new_client(), "models", "team/m1/");
    let listed = source.list().await?;
    let (p3, s3_stats) = publish_s3(&reg, &base, &source, &listed).await?;
    assert_eq!(
        s3_stats.blobs_uploaded, 2,
        "the changed layer and the config: {s3_stats:?}"
    );
    assert_ne!(p3.digest, p1.digest);
    assert_eq!(pull_image(&reg, &pinned(&p3)).await?.models, model);
    Ok(())
}
