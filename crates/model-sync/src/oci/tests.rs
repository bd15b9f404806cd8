//! Unit tests: deterministic modelcar layers (checked against the independent `tar` crate),
//! the tar walk (plain and gzip), whiteouts, and the image config builder.
use std::collections::BTreeMap;
use std::io::Read as _;

use bytes::Bytes;
use futures::StreamExt as _;

use super::digest;
use super::image::{self, Descriptor, ModelLayer};
use super::scan::{self, Forward, LayerStream};
use super::source::{Loc, apply_layer};
use super::tar::{self, Kind};
use crate::transfer::{ByteStream, ModelPath};

fn path(p: &str) -> ModelPath {
    ModelPath::new(p).unwrap()
}

/// The complete layer of one file, as the sink streams it.
fn layer(p: &str, content: &[u8]) -> Vec<u8> {
    let mp = path(p);
    let mut out = tar::layer_prefix(&mp, content.len() as u64);
    out.extend_from_slice(content);
    out.extend(tar::layer_suffix(content.len() as u64));
    assert_eq!(out.len() as u64, tar::layer_len(&mp, content.len() as u64));
    out
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// A byte stream serving `data` in pieces of `piece` bytes.
fn stream_of(data: Vec<u8>, piece: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

async fn walk_bytes(data: Vec<u8>, gzip: bool, piece: usize) -> Vec<scan::Entry> {
    let mut fwd = Forward::Sequential {
        stream: Box::new(LayerStream::new(stream_of(data, piece), gzip)),
        buf: Bytes::new(),
        start: 0,
    };
    scan::walk(&mut fwd).await.unwrap()
}

#[test]
fn layers_are_deterministic_standard_tars() {
    let data = content(1000);
    let a = layer("sub/dir/w.bin", &data);
    assert_eq!(a, layer("sub/dir/w.bin", &data), "same input, same bytes");
    assert_ne!(
        digest::sha256(&a),
        digest::sha256(&layer("sub/dir/w2.bin", &data))
    );

    let mut archive = ::tar::Archive::new(&a[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let h = e.header().clone();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username().unwrap(), Some(""));
        assert_eq!(h.groupname().unwrap(), Some(""));
        assert!(h.as_ustar().is_some(), "plain ustar headers");
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if h.entry_type().is_dir() {
            assert_eq!(h.mode().unwrap(), 0o755);
        } else {
            assert_eq!(h.mode().unwrap(), 0o644);
            let mut got = Vec::new();
            e.read_to_end(&mut got).unwrap();
            assert_eq!(got, data);
        }
        seen.push(name);
    }
    assert_eq!(
        seen,
        [
            "models/",
            "models/sub/",
            "models/sub/dir/",
            "models/sub/dir/w.bin"
        ]
    );
}

#[test]
fn layer_digest_is_pinned() {
    // A change here changes every published digest: only on purpose.
    let l = layer("config.json", b"{}\n");
    assert_eq!(l.len(), 2 * 512 + 512 + 1024);
    assert_eq!(
        digest::sha256(&l),
        "sha256:8fa7dc28636fc7dc3bf70362ba7f619eebd650928726a4370c68eb9fd683d091"
    );
}

#[test]
fn long_and_unicode_paths() {
    let long_dir = ["a", "b", "c"].map(|c| c.repeat(40)).join("/");
    let split = format!("{long_dir}/file.bin"); // > 100 bytes, fits ustar prefix + name
    let huge = format!("{}/{}", "e".repeat(200), "f".repeat(120)); // needs PAX
    let unicode = "modèle/poids-é.bin".to_owned(); // needs PAX
    for (p, pax) in [(split, false), (huge, true), (unicode, true)] {
        let l = layer(&p, b"xyz");
        let has_pax = l
            .chunks(512)
            .any(|b| b[156] == b'x' && &b[257..263] == b"ustar\0");
        assert_eq!(has_pax, pax, "{p}");
        let mut archive = ::tar::Archive::new(&l[..]);
        let last = archive.entries().unwrap().last().unwrap().unwrap();
        assert_eq!(
            last.path().unwrap().to_string_lossy(),
            format!("models/{p}")
        );
    }
}

#[tokio::test]
async fn walk_finds_offsets_in_plain_and_gzip_layers() {
    let data = content(70_000);
    let raw = layer("a/b.bin", &data);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let gz = gz.finish().unwrap();
    for (bytes, gzip) in [(raw.clone(), false), (gz, true)] {
        for piece in [1, 511, 4096, 1 << 20] {
            let entries = walk_bytes(bytes.clone(), gzip, piece).await;
            let names: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.kind)).collect();
            assert_eq!(
                names,
                [
                    ("models", Kind::Dir),
                    ("models/a", Kind::Dir),
                    ("models/a/b.bin", Kind::File)
                ]
            );
            let f = &entries[2];
            assert_eq!(f.size, data.len() as u64);
            let off = f.data_offset as usize;
            assert_eq!(&raw[off..off + data.len()], &data[..]);
        }
    }
}

#[tokio::test]
async fn pax_size_for_huge_files() {
    let size = 9 << 30;
    let prefix = tar::layer_prefix(&path("big.bin"), size);
    assert!(String::from_utf8_lossy(&prefix).contains(&format!("size={size}")));
    let entries = walk_bytes(prefix, false, 512).await;
    let f = entries.last().unwrap();
    assert_eq!((f.path.as_str(), f.size), ("models/big.bin", size));
}

#[tokio::test]
async fn layer_stream_detects_corruption() {
    let raw = layer("x", b"hello");
    let good = digest::sha256(&raw);
    let mut s = LayerStream::new(stream_of(raw.clone(), 100), false);
    s.verify(&good, raw.len() as u64).await.unwrap();
    let mut bad = raw.clone();
    bad[1600] ^= 1;
    let mut s = LayerStream::new(stream_of(bad, 100), false);
    let e = s.verify(&good, raw.len() as u64).await.unwrap_err();
    assert_eq!(e.reason, crate::transfer::Reason::IntegrityError);
}

fn entry(p: &str, kind: Kind, off: u64, size: u64, link: &str) -> scan::Entry {
    scan::Entry {
        path: p.to_owned(),
        kind,
        data_offset: off,
        size,
        link: link.to_owned(),
    }
}

fn desc(d: &str) -> Descriptor {
    serde_json::from_value(
        serde_json::json!({"mediaType": image::OCI_LAYER_TAR, "digest": d, "size": 1}),
    )
    .unwrap()
}

#[test]
fn whiteouts_opaque_dirs_and_links() {
    let mut state: BTreeMap<String, (u64, Loc)> = BTreeMap::new();
    let l1 = desc("sha256:1");
    apply_layer(
        &mut state,
        &l1,
        &[
            entry("models/a", Kind::File, 512, 1, ""),
            entry("models/b", Kind::File, 1536, 2, ""),
            entry("models/d/x", Kind::File, 2560, 3, ""),
            entry("models/d/y", Kind::File, 3584, 4, ""),
            entry("models/e", Kind::File, 4608, 5, ""),
            entry("etc/passwd", Kind::File, 5632, 6, ""),
        ],
    );
    let l2 = desc("sha256:2");
    apply_layer(
        &mut state,
        &l2,
        &[
            entry("models/.wh.a", Kind::File, 512, 0, ""),
            entry("models/d/.wh..wh..opq", Kind::File, 1024, 0, ""),
            entry("models/d/z", Kind::File, 1536, 7, ""),
            entry("models/link", Kind::HardLink, 0, 0, "./models/d/z"),
            entry("models/e/inner", Kind::File, 2560, 8, ""),
            entry("models/sym", Kind::Symlink, 0, 0, "/etc/passwd"),
        ],
    );
    let got: Vec<(&str, u64, &str)> = state
        .iter()
        .map(|(k, (s, l))| (k.as_str(), *s, l.layer.digest.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("models/b", 2, "sha256:1"),
            ("models/d/z", 7, "sha256:2"),
            ("models/e/inner", 8, "sha256:2"),
            ("models/link", 7, "sha256:2"),
        ]
    );
    assert_eq!(state["models/link"].1.tar_offset, Some(1536));
}

#[test]
fn config_extends_diff_ids_and_history() {
    let base = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "base"}],
    });
    let base = serde_json::to_vec(&base).unwrap();
    let layers: Vec<ModelLayer> = ["a", "sub/b"]
        .iter()
        .enumerate()
        .map(|(i, p)| ModelLayer {
            history: format!("model-sync: add /models/{p}"),
            contents: vec![((*p).to_owned(), None)],
            descriptor: image::model_layer_descriptor(
                p,
                format!("sha256:l{i}"),
                10,
                Some("fp"),
                None,
            ),
        })
        .collect();
    let cfg = image::build_config(&base, &layers).unwrap();
    assert_eq!(
        cfg,
        image::build_config(&base, &layers).unwrap(),
        "deterministic"
    );
    let v: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    assert_eq!(
        v["rootfs"]["diff_ids"],
        serde_json::json!(["sha256:base", "sha256:l0", "sha256:l1"])
    );
    let h = v["history"].as_array().unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[2]["created"], image::FIXED_CREATED);
    assert_eq!(h[2]["created_by"], "model-sync: add /models/sub/b");
    assert_eq!(v["config"]["Cmd"], serde_json::json!(["sh"]));

    // A base without history: a placeholder per base layer keeps history and layers aligned.
    let bare = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:base"]}}"#;
    let v: serde_json::Value =
        serde_json::from_slice(&image::build_config(bare, &layers).unwrap()).unwrap();
    let h = v["history"].as_array().unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0]["created_by"], "base image layer");
    assert_eq!(h[1]["created_by"], "model-sync: add /models/a");
}

#[test]
fn descriptors_keep_unknown_fields() {
    let d: Descriptor = serde_json::from_str(
        r#"{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"sha256:x","size":3,"urls":["https://x"]}"#,
    )
    .unwrap();
    let out = serde_json::to_value(&d).unwrap();
    assert_eq!(out["urls"], serde_json::json!(["https://x"]));
}

/// Push throughput against an externally started registry (release build, so the numbers mean
/// something without compiling the whole test harness in release):
/// `MRO_OCI_PERF_REGISTRY=127.0.0.1:5000 cargo test --release -p model-sync --lib
/// oci::tests::push_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "performance measurement; needs MRO_OCI_PERF_REGISTRY"]
async fn push_throughput() {
    use std::sync::Arc;

    use futures::future::BoxFuture;

    use super::registry::{Registry, Settings, scope};
    use super::upload::upload_blob;
    use super::{OciSink, OpenWith};
    use crate::config::{OciDestination, OciLocation};
    use crate::transfer::{ModelFile, Progress, Reason, TransferError};

    let Ok(host) = std::env::var("MRO_OCI_PERF_REGISTRY") else {
        eprintln!("MRO_OCI_PERF_REGISTRY not set; skipped");
        return;
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    const MIB: usize = 1 << 20;
    let files_n: usize = std::env::var("MRO_OCI_PERF_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let size_mib: usize = std::env::var("MRO_OCI_PERF_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);

    // A tiny base image, pushed with the crate's own upload path.
    let reg = Registry::new(
        &host,
        Settings {
            insecure: true,
            ..Settings::default()
        },
        Reason::DestinationRejected,
    )
    .unwrap();
    let scopes = [scope("perf/base", "pull,push")];
    let layer = Bytes::from(vec![0u8; 1024]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest::sha256(&layer)]},
    }))
    .unwrap();
    for blob in [layer.clone(), Bytes::from(config.clone())] {
        let len = blob.len() as u64;
        upload_blob(
            &reg,
            "perf/base",
            &scopes,
            u64::MAX,
            None,
            len,
            |mut w| async move {
                w.write(blob).await?;
                Ok(w)
            },
        )
        .await
        .unwrap();
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": image::OCI_MANIFEST,
        "config": {"mediaType": image::OCI_CONFIG, "digest": digest::sha256(&config), "size": config.len()},
        "layers": [{"mediaType": image::OCI_LAYER_TAR, "digest": digest::sha256(&layer), "size": layer.len()}],
    });
    let body = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    reg.put_manifest("perf/base", "1", image::OCI_MANIFEST, body, &scopes)
        .await
        .unwrap();

    // The model: incompressible bytes in memory, served as zero-copy 1 MiB slices.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Arc<Vec<Bytes>> = Arc::new(
        (0..files_n)
            .map(|_| {
                let mut v = Vec::with_capacity(size_mib * MIB);
                while v.len() < size_mib * MIB {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.extend_from_slice(&x.to_le_bytes());
                }
                Bytes::from(v)
            })
            .collect(),
    );
    let files: Vec<ModelFile> = (0..files_n)
        .map(|i| ModelFile {
            path: path(&format!("shard-{i}.bin")),
            size: (size_mib * MIB) as u64,
            fingerprint: None,
            sha256: None,
        })
        .collect();
    let d = data.clone();
    let source = OpenWith(
        move |f: &ModelFile,
              offset: u64|
              -> BoxFuture<'static, Result<ByteStream, TransferError>> {
            let i: usize = f.path.as_str()["shard-".len()..f.path.as_str().len() - 4]
                .parse()
                .unwrap();
            let bytes = d[i].clone();
            let start = offset as usize;
            let pieces = (start..bytes.len())
                .step_by(MIB)
                .map(move |s| Ok(bytes.slice(s..(s + MIB).min(bytes.len()))));
            Box::pin(async move { Ok(futures::stream::iter(pieces).boxed()) })
        },
    );

    let dest = OciDestination {
        location: OciLocation {
            reference: format!("{host}/perf/m:v1").parse().unwrap(),
            credentials: None,
            tls_verify: false,
        },
        base_image: format!("{host}/perf/base:1"),
    };
    // Largest PATCH, MiB (0: whole blobs, the default).
    let chunk = std::env::var("MRO_OCI_PERF_CHUNK_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut sink = OciSink::new(dest, 4).unwrap();
    if chunk > 0 {
        sink = sink.with_chunk_size(chunk * MIB);
    }
    let total = (files_n * size_mib * MIB) as u64;
    let (rss0, cpu0, t0) = (peak_rss_mib(), cpu_seconds(), std::time::Instant::now());
    let p = sink
        .publish(&source, &files, &Progress::new(total))
        .await
        .unwrap();
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let mib = total as f64 / MIB as f64;
    println!(
        "pushed {mib:.0} MiB ({files_n} files, {chunk} MiB chunks) in {secs:.2}s = {:.1} MiB/s; \
         client CPU {cpu:.2}s = {:.2} s/GiB; peak RSS {rss0:.0} MiB (model in memory) -> {:.0} MiB; {:?}; {}",
        mib / secs,
        cpu / (mib / 1024.0),
        peak_rss_mib(),
        sink.stats(),
        p.uri
    );
}

/// User + system CPU seconds of this process, from /proc (100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory (`VmHWM`) of this process, MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
