//! The OCI source against real images and artifacts: layer order, whiteouts, gzip and ranged
//! listing, ORAS-style artifacts, and artifact → modelcar with content-hash verification.
use std::collections::BTreeMap;

use bytes::Bytes;
use futures::TryStreamExt as _;
use model_sync::oci::OciSource;
use model_sync::transfer::{ModelFile, Progress};
use mro_tests::model_sync::{pseudo_random, pull_image, push_base_image};
use mro_tests::oci_registry::OciRegistry;
use serde_json::json;

use super::{MIB, pinned, sha256, sink_for, source_for};

/// A tar of `(path, content)` entries (`None` content = directory).
fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_ustar();
        match data {
            Some(d) => {
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, path, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                h.set_cksum();
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

async fn read_all(src: &OciSource, f: &ModelFile, offset: u64) -> Vec<u8> {
    let parts: Vec<Bytes> = src
        .open(f, offset)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    parts.concat()
}

#[tokio::test]
async fn oci_source_applies_layers_whiteouts_and_reads_artifacts() -> anyhow::Result<()> {
    use oci_client::client::{Config, ImageLayer};
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let client = reg.oci_client();
    let auth = reg.registry_auth();

    // An image: a gzip layer, then a large uncompressed one (listed by ranged header hops) with
    // a whiteout, an opaque directory and a replaced file.
    let big = pseudo_random(42, 3 * MIB);
    let l1 = tar_of(&[
        ("models/", None),
        ("models/a.txt", Some(b"old a")),
        ("models/b.txt", Some(b"bee")),
        ("models/d/x.bin", Some(b"hidden by opaque")),
        ("etc/hostname", Some(b"box")),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &l1)?;
    let l2 = tar_of(&[
        ("models/.wh.a.txt", Some(b"")),
        ("models/d/", None),
        ("models/d/.wh..wh..opq", Some(b"")),
        ("models/d/y.bin", Some(b"why")),
        ("models/big.bin", Some(&big)),
        ("models/b.txt", Some(b"new bee")),
    ]);
    let layers = [
        ImageLayer::new(
            gz.finish()?,
            oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE.to_owned(),
            None,
        ),
        ImageLayer::new(
            l2.clone(),
            oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE.to_owned(),
            None,
        ),
    ];
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(&l1), sha256(&l2)]}});
    let config = Config::oci_v1(serde_json::to_vec(&config)?, None);
    let image = reg.reference("src/image", "v1");
    client
        .push(&image.parse()?, &layers, config, &auth, None)
        .await?;
    let src = source_for(&reg, &image);
    let files = src.list().await?;
    let listed: Vec<(&str, u64)> = files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(
        listed,
        [("b.txt", 7), ("big.bin", big.len() as u64), ("d/y.bin", 3)]
    );
    assert_eq!(read_all(&src, &files[0], 0).await, b"new bee");
    assert_eq!(read_all(&src, &files[1], 0).await, big);
    assert_eq!(read_all(&src, &files[1], 1_000_001).await, big[1_000_001..]);
    assert_eq!(read_all(&src, &files[2], 1).await, b"hy");

    // An ORAS-style artifact: titled layers (ORAS's default file media type is the tar one), an
    // empty config; each layer is one file, named by its title.
    let titled = |name: &str| {
        Some(BTreeMap::from([(
            "org.opencontainers.image.title".to_owned(),
            name.to_owned(),
        )]))
    };
    let weights = pseudo_random(43, MIB + 17);
    let layers = [
        ImageLayer::new(
            weights.clone(),
            "application/vnd.oci.image.layer.v1.tar".to_owned(),
            titled("w/weights.bin"),
        ),
        ImageLayer::new(
            b"{\"k\": 1}".to_vec(),
            "application/json".to_owned(),
            titled("config.json"),
        ),
    ];
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.empty.v1+json".to_owned(),
        None,
    );
    let artifact = reg.reference("src/artifact", "v1");
    client
        .push(&artifact.parse()?, &layers, config, &auth, None)
        .await?;
    let src = source_for(&reg, &artifact);
    let files = src.list().await?;
    let listed: Vec<(&str, u64)> = files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(
        listed,
        [("config.json", 8), ("w/weights.bin", weights.len() as u64)]
    );
    assert_eq!(
        files[1].sha256.as_deref(),
        Some(&sha256(&weights)[7..]),
        "the layer digest is the content hash"
    );
    assert_eq!(read_all(&src, &files[1], 0).await, weights);
    assert_eq!(read_all(&src, &files[1], 5).await, weights[5..]);

    // Artifact → modelcar: the announced content sha256 is verified on the way and recorded.
    let base = push_base_image(&reg).await?;
    let sink = sink_for(&reg, &reg.reference("models/from-artifact", "v1"), &base);
    let p = sink.publish(&src, &files, &Progress::new(0)).await?;
    let img = pull_image(&reg, &pinned(&p)).await?;
    assert_eq!(img.models.files["w/weights.bin"], weights);
    let last = img.manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["annotations"]["io.opendatahub.model-sync.content-sha256"],
        sha256(&weights)
    );
    Ok(())
}
