//! OCI → OCI without re-tarring against the real registry: cross-repository mounts on one
//! registry, as-is blob copies across registries (the same manifest digest), a retry that finds
//! every blob present, and an artifact source re-packed as a modelcar as before.
use std::collections::BTreeMap;

use mro_tests::model_sync::{Model, pseudo_random, pull_image, push_base_image};
use mro_tests::oci_registry::OciRegistry;

use super::{MIB, MemSource, pinned, publish, sink_for, source_for};

fn oci_model() -> Model {
    let mut files = BTreeMap::new();
    files.insert("weights.bin".to_owned(), pseudo_random(9, 3 * MIB));
    files.insert("tokenizer/vocab.json".to_owned(), b"{\"a\": 1}\n".to_vec());
    Model { files }
}

#[tokio::test]
async fn oci_to_oci_mounts_on_one_registry_and_copies_as_is_across() -> anyhow::Result<()> {
    mro_tests::init();
    let a = OciRegistry::start_plain().await?;
    let b = OciRegistry::start_plain().await?;
    let base = push_base_image(&a).await?;
    let m = oci_model();
    let published = publish(
        &sink_for(&a, &a.reference("src/m", "v1"), &base),
        &MemSource::new(&m),
    )
    .await?;
    let pulled = pull_image(&a, &pinned(&published)).await?;
    let blobs = 1 + pulled.manifest["layers"].as_array().unwrap().len() as u64;
    let blob_bytes: u64 = pulled.manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(std::iter::once(&pulled.manifest["config"]))
        .map(|l| l["size"].as_u64().unwrap())
        .sum();

    // Same registry: every blob mounted, nothing uploaded, the source's digest.
    let source = source_for(&a, &pinned(&published));
    let files = source.list().await?;
    let sink = sink_for(&a, &a.reference("dst/m", "v2"), "ignored/base:1");
    let progress = model_sync::transfer::Progress::new(files.iter().map(|f| f.size).sum());
    let copied = sink.publish_from_oci(&source, &files, &progress).await?;
    assert_eq!(copied.digest, published.digest, "manifest preserved");
    let s = sink.stats();
    assert_eq!((s.blobs_mounted, s.patch_requests), (blobs, 0), "{s:?}");
    assert_eq!(progress.done(), progress.total());
    assert_eq!(pull_image(&a, &pinned(&copied)).await?.models, m);

    // Again: every blob is found present (a retry resumes blob by blob).
    let again = sink_for(&a, &a.reference("dst/m", "v2"), "ignored/base:1");
    again.publish_from_oci(&source, &files, &progress).await?;
    assert_eq!(again.stats().blobs_existing, blobs, "{:?}", again.stats());

    // Another registry: the blobs as they are (one PATCH each), the same manifest digest.
    let sink = sink_for(&b, &b.reference("mirror/m", "v1"), "ignored/base:1");
    let copied = sink.publish_from_oci(&source, &files, &progress).await?;
    assert_eq!(copied.digest, published.digest);
    let s = sink.stats();
    assert_eq!(
        (s.blobs_uploaded, s.uploaded_bytes),
        (blobs, blob_bytes),
        "{s:?}"
    );
    assert_eq!(s.blobs_mounted, 0);
    let mirrored = pull_image(&b, &pinned(&copied)).await?;
    assert_eq!(mirrored.models, m);
    assert_eq!(mirrored.manifest, pulled.manifest);
    Ok(())
}

#[tokio::test]
async fn an_oci_artifact_source_is_repacked_as_a_modelcar() -> anyhow::Result<()> {
    use oci_client::client::{Config, ImageLayer};
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let titled = |name: &str| {
        Some(BTreeMap::from([(
            "org.opencontainers.image.title".to_owned(),
            name.to_owned(),
        )]))
    };
    let weights = pseudo_random(11, MIB);
    let layers = [ImageLayer::new(
        weights.clone(),
        "application/octet-stream".to_owned(),
        titled("weights.bin"),
    )];
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.empty.v1+json".to_owned(),
        None,
    );
    let artifact = reg.reference("src/artifact", "v1");
    reg.oci_client()
        .push(
            &artifact.parse()?,
            &layers,
            config,
            &reg.registry_auth(),
            None,
        )
        .await?;
    let source = source_for(&reg, &artifact);
    let files = source.list().await?;
    let sink = sink_for(&reg, &reg.reference("dst/from-artifact", "v1"), &base);
    let p = sink
        .publish_from_oci(&source, &files, &model_sync::transfer::Progress::new(0))
        .await?;
    let img = pull_image(&reg, &pinned(&p)).await?;
    assert_eq!(img.models.files["weights.bin"], weights);
    let last = img.manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["annotations"]["org.opencontainers.image.title"], "weights.bin",
        "a modelcar layer, not the artifact's blob"
    );
    Ok(())
}

/// A reverse proxy in front of the registry that drops `mount` and `from` from upload requests,
/// so that the registry itself answers a mount request as it does when it declines one: with an
/// ordinary upload session (202). Everything else passes through unchanged.
async fn no_mount_proxy(upstream: String) -> anyhow::Result<String> {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;
    use futures::TryStreamExt as _;
    async fn forward(
        State((http, upstream)): State<(reqwest::Client, String)>,
        req: Request,
    ) -> Response {
        let (parts, body) = req.into_parts();
        let mut url = url::Url::parse(&format!("{upstream}{}", parts.uri.path())).unwrap();
        let kept: Vec<(String, String)> =
            url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k != "mount" && k != "from")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        let mut out = http.request(parts.method, url);
        for (name, value) in &parts.headers {
            if name != "host" {
                out = out.header(name, value);
            }
        }
        let body = reqwest::Body::wrap_stream(body.into_data_stream());
        let resp = out.body(body).send().await.unwrap();
        let mut builder = Response::builder().status(resp.status());
        for (name, value) in resp.headers() {
            builder = builder.header(name, value);
        }
        let stream = resp.bytes_stream().map_err(std::io::Error::other);
        builder.body(Body::from_stream(stream)).unwrap()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((http, upstream));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_declines_mounts_gets_the_blobs_streamed() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    let base = push_base_image(&reg).await?;
    let m = oci_model();
    let published = publish(
        &sink_for(&reg, &reg.reference("src/m", "v1"), &base),
        &MemSource::new(&m),
    )
    .await?;
    let digest = published.digest.clone().unwrap();
    // Source and destination both through the proxy: one registry, mounts declined.
    let host = no_mount_proxy(reg.base_url()).await?;
    let source = source_for(&reg, &format!("{host}/src/m@{digest}"));
    let files = source.list().await?;
    let sink = sink_for(&reg, &format!("{host}/dst/m:v1"), "ignored/base:1");
    let progress = model_sync::transfer::Progress::new(0);
    let copied = sink.publish_from_oci(&source, &files, &progress).await?;
    assert_eq!(copied.digest, published.digest);
    let s = sink.stats();
    let blobs = 1 + pull_image(&reg, &pinned(&published)).await?.manifest["layers"]
        .as_array()
        .unwrap()
        .len() as u64;
    assert_eq!((s.blobs_mounted, s.blobs_uploaded), (0, blobs), "{s:?}");
    let copy = pull_image(&reg, &format!("{}/dst/m@{digest}", reg.host())).await?;
    assert_eq!(copy.models, m);
    Ok(())
}
