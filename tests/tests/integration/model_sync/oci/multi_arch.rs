//! Multi-arch bases: one modelcar image per platform, shared model layers, an index on top.
use mro_tests::model_sync::{Model, pull_image};
use mro_tests::oci_registry::OciRegistry;
use serde_json::json;

use super::{MemSource, publish, raw_manifest, sha256, sink_for, source_for};

/// Pushes a two-platform base (one gzip layer each, with history) as an index; returns its reference.
async fn push_multi_arch_base(reg: &OciRegistry) -> anyhow::Result<String> {
    use oci_client::client::{Config, ImageLayer};
    use oci_client::manifest::{IMAGE_LAYER_GZIP_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageIndex};
    let client = reg.oci_client();
    let auth = reg.registry_auth();
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut b = tar::Builder::new(Vec::new());
        let data = format!("busybox for {arch}\n");
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, "bin/busybox", data.as_bytes())?;
        let tar_bytes = b.into_inner()?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar_bytes)?;
        let layer = ImageLayer::new(gz.finish()?, IMAGE_LAYER_GZIP_MEDIA_TYPE.to_owned(), None);
        let config = json!({
            "architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&tar_bytes)]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD busybox"}],
        });
        let config = Config::oci_v1(serde_json::to_vec(&config)?, None);
        let r: oci_client::Reference = reg.reference("base/multi", arch).parse()?;
        client
            .push(&r, std::slice::from_ref(&layer), config, &auth, None)
            .await?;
        let (raw, digest) = client
            .pull_manifest_raw(&r, &auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await?;
        entries.push(json!({
            "mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": digest, "size": raw.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index: OciImageIndex = serde_json::from_value(json!({
        "schemaVersion": 2,
        "mediaType": oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
        "manifests": entries,
    }))?;
    let reference = reg.reference("base/multi", "1");
    client
        .push_manifest_list(&reference.parse()?, &auth, index)
        .await?;
    Ok(reference)
}

#[tokio::test]
async fn multi_arch_base_gives_an_index_with_shared_model_layers() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_multi_arch_base(&reg).await?;
    let model = Model::small(7);
    let src = MemSource::new(&model);
    let sink = sink_for(&reg, &reg.reference("models/multi", "v1"), &base);
    let p = publish(&sink, &src).await?;
    let s = sink.stats();
    assert_eq!(
        s.blobs_uploaded,
        model.files.len() as u64 + 2,
        "model layers once, 2 configs: {s:?}"
    );

    let (index, digest) = raw_manifest(&reg, "models/multi", "v1").await;
    assert_eq!(Some(digest), p.digest);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    let archs: Vec<&str> = entries
        .iter()
        .map(|e| e["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let mut model_layers = Vec::new();
    for e in entries {
        let d = e["digest"].as_str().unwrap();
        let img = pull_image(&reg, &format!("{}/models/multi@{d}", reg.host())).await?;
        assert_eq!(img.models, model);
        assert!(
            img.layer_media_types[0].contains("gzip"),
            "base layer kept as is"
        );
        let layers = img.manifest["layers"].as_array().unwrap();
        model_layers.push(layers[1..].to_vec());
        assert_eq!(
            img.config["history"].as_array().unwrap().len(),
            layers.len()
        );
        assert_eq!(img.config["architecture"], e["platform"]["architecture"]);
    }
    assert_eq!(
        model_layers[0], model_layers[1],
        "the same model layers in every platform"
    );

    // The OCI source picks linux/amd64 from the index.
    let listed = source_for(&reg, &reg.reference("models/multi", "v1"))
        .list()
        .await?;
    assert_eq!(listed.len(), model.files.len());
    // Determinism through an index.
    let p2 = publish(
        &sink_for(&reg, &reg.reference("models/multi2", "v1"), &base),
        &src,
    )
    .await?;
    assert_eq!(p2.digest, p.digest);
    Ok(())
}
