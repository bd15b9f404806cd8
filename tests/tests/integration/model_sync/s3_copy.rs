//! S3 → S3 on one endpoint by server-side copies (`CopyObject`, `UploadPartCopy`) against the
//! real s3s-fs server, through the engine, and the streamed fallback when the server refuses
//! them. That no model byte passed through model-sync is measured, not assumed: the endpoint is
//! a counting TCP proxy in front of the server.
use model_sync::run::engine::{AnyDestination, AnySource, transfer};
use model_sync::s3::{MultipartOptions, S3Destination, S3Source};
use model_sync::transfer::Reason;
use mro_tests::model_sync::{FlakyProxy, Model, pseudo_random};
use mro_tests::s3::S3Server;

use super::s3::location;

const MIB: usize = 1 << 20;

/// Small files, one in a directory, and one of 20 MiB (copied in parts below; over the 16 MiB
/// bound on buffered S3 answers, so the HEAD that checks the copy's size declares more than
/// that bound).
fn model() -> Model {
    let mut m = Model::small(5);
    m.files
        .insert("weights/big.bin".to_owned(), pseudo_random(6, 20 * MIB + 3));
    m
}

/// An S3 server behind a counting proxy; the locations name the proxy.
struct Site {
    s3: S3Server,
    proxy: FlakyProxy,
}

impl Site {
    async fn start(refuse_copies: bool) -> anyhow::Result<Site> {
        let s3 = if refuse_copies {
            S3Server::start_without_copies().await?
        } else {
            S3Server::start().await?
        };
        let addr = s3.endpoint().trim_start_matches("http://").parse()?;
        let proxy = FlakyProxy::start(addr).await?;
        Ok(Site { s3, proxy })
    }

    fn location(&self, bucket: &str, key: &str) -> model_sync::config::S3Location {
        let s3 = &self.s3;
        location(
            &self.proxy.url(),
            s3.access_key(),
            s3.secret_key(),
            bucket,
            key,
        )
    }

    /// Copies `src/m` to `dst/copy` with the engine; returns the bytes that crossed the proxy.
    async fn copy(&self) -> anyhow::Result<u64> {
        let before = self.proxy.forwarded();
        let source = AnySource::S3(S3Source::new(&self.location("src", "m")).await);
        let dest = S3Destination::new(&self.location("dst", "copy"))
            .await
            .with_options(MultipartOptions {
                copy_threshold: 6 * MIB as u64,
                copy_part_size: 5 * MIB as u64,
                ..MultipartOptions::default()
            });
        let published = transfer(&source, &AnyDestination::S3(dest)).await?;
        assert_eq!(published.uri, "s3://dst/copy");
        Ok(self.proxy.forwarded() - before)
    }
}

#[tokio::test]
async fn s3_to_s3_on_one_endpoint_copies_server_side() -> anyhow::Result<()> {
    mro_tests::init();
    let site = Site::start(false).await?;
    let m = model();
    m.put_s3(&site.s3, "src", "m").await?;
    site.s3.create_bucket("dst").await?;
    let moved = site.copy().await?;
    assert_eq!(Model::read_s3(&site.s3, "dst", "copy").await?, m);
    assert!(
        moved < m.total_bytes() / 10,
        "{moved} bytes crossed the endpoint for a {} byte model",
        m.total_bytes()
    );

    // An object that changed since the listing fails the copy: S3 refuses it (the listed ETag
    // is required, `PreconditionFailed`); s3s-fs copies the new version, and the size check
    // after the copy fails it.
    let source = S3Source::new(&site.location("src", "m")).await;
    let files = source.list().await?;
    site.s3
        .put_object("src", "m/config.json", b"{\"changed\": true}".to_vec())
        .await?;
    let dest = S3Destination::new(&site.location("dst", "again")).await;
    let progress = model_sync::transfer::Progress::new(0);
    let err = dest
        .publish_from_s3(&source, &files, &progress)
        .await
        .expect_err("a changed source must not be copied");
    let refused =
        err.reason == Reason::DestinationRejected && err.message.contains("PreconditionFailed");
    let caught = err.reason == Reason::IntegrityError
        && err
            .message
            .contains("the copy has 17 bytes, the source listed 26");
    assert!(refused || caught, "{err}");
    Ok(())
}

#[tokio::test]
async fn s3_copies_refused_by_the_server_are_streamed() -> anyhow::Result<()> {
    mro_tests::init();
    let site = Site::start(true).await?;
    let m = model();
    m.put_s3(&site.s3, "src", "m").await?;
    site.s3.create_bucket("dst").await?;
    let moved = site.copy().await?;
    assert_eq!(Model::read_s3(&site.s3, "dst", "copy").await?, m);
    assert!(
        moved > 2 * m.total_bytes(),
        "streamed: every byte read and written through the endpoint ({moved})"
    );
    Ok(())
}
