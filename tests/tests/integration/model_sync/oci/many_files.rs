//! Models of thousands of files: the modelcar stays within the layer budget (small files share
//! layers, big files keep theirs), the same model always gives the same digests, a re-push
//! reuses every layer, and the image pulled by skopeo and unpacked by GNU tar (tools of their
//! own, not our reader) holds the model byte for byte, with the modes and directories that a
//! layer-per-file image had.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use model_sync::oci::{GROUP_THRESHOLD, LAYER_BUDGET};
use mro_tests::model_sync::{Model, pseudo_random, pull_image, push_base_image};
use mro_tests::oci_registry::OciRegistry;
use serde_json::Value;

use super::{MemSource, pinned, publish, raw_manifest, sink_for};

/// 3,000 small files of varied sizes (some empty) in nested directories, and three files above
/// the grouping threshold.
fn many_files_model() -> Model {
    let mut files = BTreeMap::new();
    for i in 0..3000u64 {
        let path = format!("shards/{:02}/{:03}/part-{i:05}.json", i % 7, i % 53);
        let len = (i * 7919 % 3000) as usize;
        files.insert(path, pseudo_random(i + 10, len));
    }
    for i in 0..3u64 {
        let len = GROUP_THRESHOLD as usize + 1000 * i as usize;
        files.insert(format!("model-{i}.safetensors"), pseudo_random(i + 1, len));
    }
    files.insert("config.json".to_owned(), b"{\"layers\": 3000}\n".to_vec());
    Model { files }
}

fn layers(manifest: &Value) -> &Vec<Value> {
    manifest["layers"].as_array().expect("layers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_files_fit_the_layer_budget_deterministically() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let model = many_files_model();
    let src = MemSource::new(&model);

    let sink = sink_for(&reg, &reg.reference("many/m", "v1"), &base);
    let p1 = publish(&sink, &src).await?;
    assert_eq!(p1.files, model.files.len());
    let (manifest, _) = raw_manifest(&reg, "many/m", "v1").await;
    let all = layers(&manifest);
    assert!(
        all.len() <= LAYER_BUDGET,
        "{} layers for {} files",
        all.len(),
        model.files.len()
    );
    // The big files keep a titled layer of their own; everything else is in shared layers.
    let titles: Vec<&str> = all
        .iter()
        .filter_map(|l| l["annotations"]["org.opencontainers.image.title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "model-0.safetensors",
            "model-1.safetensors",
            "model-2.safetensors"
        ]
    );
    let shared: u64 = all
        .iter()
        .filter_map(|l| l["annotations"]["io.opendatahub.model-sync.files"].as_str())
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(shared, 3001, "every small file in exactly one shared layer");

    // Same model, another repository: the same manifest digest (the layers are built alike).
    let sink2 = sink_for(&reg, &reg.reference("many/again", "v1"), &base);
    let p2 = publish(&sink2, &src).await?;
    assert_eq!(p2.digest, p1.digest, "same model, same digests");
    assert!(sink2.stats().blobs_uploaded > 0, "{:?}", sink2.stats());

    // A re-push at the same tag reuses every layer (shared ones by their members' fingerprint).
    let sink3 = sink_for(&reg, &reg.reference("many/m", "v1"), &base);
    let p3 = publish(&sink3, &src).await?;
    assert_eq!(p3.digest, p1.digest);
    let s3 = sink3.stats();
    assert_eq!((s3.patch_requests, s3.blobs_uploaded), (0, 0), "{s3:?}");

    // Our own reader agrees with the tar crate on every byte.
    let pulled = pull_image(&reg, &pinned(&p1)).await?;
    assert_eq!(pulled.models, model);

    // skopeo pulls it; GNU tar unpacks the layers in order, as a runtime's unpacker would.
    let dir = tempfile::tempdir()?;
    let image = dir.path().join("image");
    let root = dir.path().join("root");
    skopeo_copy(&reg, &pinned(&p1), &image).await?;
    unpack(&image, &root).await?;
    let unpacked = Model::read_dir(&root.join("models"))?;
    assert_eq!(unpacked.files.len(), model.files.len());
    assert!(unpacked == model, "skopeo + tar unpack the same bytes");
    check_modes(&root.join("models"))?;
    Ok(())
}

/// `skopeo copy docker://<reference> dir:<out>` (plain HTTP, no signature policy).
async fn skopeo_copy(reg: &OciRegistry, reference: &str, out: &Path) -> anyhow::Result<()> {
    assert!(!reg.is_tls(), "plain registry expected");
    let status = tokio::process::Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", out.display()))
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| anyhow::anyhow!("skopeo (make test-deps installs it): {e}"))?;
    anyhow::ensure!(status.success(), "skopeo copy failed: {status}");
    Ok(())
}

/// Extracts every layer of a skopeo `dir:` image in manifest order with GNU tar.
async fn unpack(image: &Path, root: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(root)?;
    let manifest: Value = serde_json::from_slice(&std::fs::read(image.join("manifest.json"))?)?;
    for l in layers(&manifest) {
        let digest = l["digest"].as_str().unwrap();
        let blob = image.join(digest.trim_start_matches("sha256:"));
        let mut cmd = tokio::process::Command::new("tar");
        cmd.arg("-x").arg("-C").arg(root).arg("-f").arg(&blob);
        if l["mediaType"].as_str().unwrap_or("").contains("gzip") {
            cmd.arg("-z");
        }
        let status = cmd.status().await?;
        anyhow::ensure!(status.success(), "tar -x {digest}: {status}");
    }
    Ok(())
}

/// Directories 0755, files 0644, under `dir` (what a layer per file gave).
fn check_modes(dir: &Path) -> anyhow::Result<()> {
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "{}", dir.display());
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            check_modes(&e.path())?;
        } else {
            let mode = e.metadata()?.permissions().mode() & 0o7777;
            assert_eq!(mode, 0o644, "{}", e.path().display());
        }
    }
    Ok(())
}

/// Records the content digests the sink hands to the files it adds (as the model signature
/// gets them) and adds one small file.
struct RecordDigests(std::sync::Mutex<Vec<(String, [u8; 32])>>);

impl model_sync::oci::ImageFiles for RecordDigests {
    fn replaces(&self) -> &[&str] {
        &["model.sig"]
    }

    fn files<'a>(
        &'a self,
        digests: &'a [(String, [u8; 32])],
    ) -> futures::future::BoxFuture<
        'a,
        Result<
            Vec<(model_sync::transfer::ModelPath, bytes::Bytes)>,
            model_sync::transfer::TransferError,
        >,
    > {
        *self.0.lock().unwrap() = digests.to_vec();
        Box::pin(async move {
            let path = model_sync::transfer::ModelPath::new("model.sig")?;
            Ok(vec![(
                path,
                bytes::Bytes::from_static(b"{\"signed\": true}\n"),
            )])
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_shared_layers_get_their_content_digests_for_the_signature() -> anyhow::Result<()>
{
    use sha2::Digest as _;
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let mut model = Model::default();
    for i in 0..250u64 {
        let len = (i * 131 % 5000) as usize;
        model
            .files
            .insert(format!("d{}/f-{i:03}.bin", i % 5), pseudo_random(i, len));
    }
    let src = MemSource::new(&model);
    let record = std::sync::Arc::new(RecordDigests(Default::default()));
    let mut sink = sink_for(&reg, &reg.reference("signed/many", "v1"), &base);
    sink.set_image_files(record.clone());
    let p = publish(&sink, &src).await?;
    let (manifest, _) = raw_manifest(&reg, "signed/many", "v1").await;
    assert!(
        layers(&manifest).len() <= LAYER_BUDGET,
        "the signature's layer included"
    );
    let digests = record.0.lock().unwrap().clone();
    let expected: Vec<(String, [u8; 32])> = model
        .files
        .iter()
        .map(|(p, d)| (p.clone(), sha2::Sha256::digest(d).into()))
        .collect();
    assert_eq!(digests, expected, "every file's digest, path order");
    let pulled = pull_image(&reg, &pinned(&p)).await?;
    assert_eq!(pulled.models.files.len(), model.files.len() + 1);
    assert_eq!(pulled.models.files["model.sig"], b"{\"signed\": true}\n");
    Ok(())
}
