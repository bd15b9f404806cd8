//! model-sync's local (PVC) back-end (library): tree copies, atomic writes that leave nothing
//! visible when the source dies, and S3 interplay.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use model_sync::local::{LocalDestination, LocalSource};
use model_sync::s3::S3Source;
use model_sync::transfer::{ByteStream, ModelFile, OpenFile, Progress, Reason, TransferError};
use tokio::sync::Notify;

use super::s3::{pattern, quick_resume, restartable_with, sha};

const MIB: usize = 1024 * 1024;

fn all_entries(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn local_tree_copy_is_verified_and_keeps_structure() -> anyhow::Result<()> {
    mro_tests::init();
    let src_dir = tempfile::tempdir()?;
    let big = pattern(6 * MIB + 5, 21);
    std::fs::create_dir_all(src_dir.path().join("a/b"))?;
    std::fs::write(src_dir.path().join("a/b/w.bin"), &big)?;
    std::fs::write(src_dir.path().join("config.json"), b"{}")?;
    std::os::unix::fs::symlink("a/b/w.bin", src_dir.path().join("latest.bin"))?;
    let src = LocalSource::new(src_dir.path());
    let files = src.list().await?;
    let dst = tempfile::tempdir()?;
    let out = dst.path().join("pvc/model");
    let progress = Progress::new(files.iter().map(|f| f.size).sum());
    let reporter = progress.start_reporter(Duration::from_millis(20));
    let published = LocalDestination::new(&out)
        .publish(&src, &files, &progress)
        .await?;
    reporter.finish().await;
    assert_eq!(published.uri, out.display().to_string());
    assert_eq!(published.files, 3);
    assert_eq!(
        all_entries(&out),
        ["a", "a/b", "a/b/w.bin", "config.json", "latest.bin"]
    );
    assert_eq!(sha(&std::fs::read(out.join("latest.bin"))?), sha(&big));
    assert!(
        !std::fs::symlink_metadata(out.join("latest.bin"))?
            .file_type()
            .is_symlink()
    );
    Ok(())
}

/// Passes a source through, but holds the stream after its first MiB until released (so a test
/// can break the source at a known point).
struct Gated<'a> {
    inner: &'a S3Source,
    reached: Arc<Notify>,
    release: Arc<Notify>,
}

impl OpenFile for Gated<'_> {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        Box::pin(async move {
            let inner = self.inner.open(file, offset).await?;
            let state = (
                inner,
                0usize,
                false,
                self.reached.clone(),
                self.release.clone(),
            );
            let s = futures::stream::unfold(
                state,
                |(mut inner, done, held, reached, release)| async move {
                    let mut held = held;
                    if !held && done >= MIB {
                        reached.notify_one();
                        release.notified().await;
                        held = true;
                    }
                    let item = inner.next().await?;
                    let n = item.as_ref().map_or(0, |b| b.len());
                    Some((item, (inner, done + n, held, reached, release)))
                },
            );
            Ok(s.boxed())
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dying_source_leaves_no_partial_file() -> anyhow::Result<()> {
    mro_tests::init();
    let data = pattern(24 * MIB, 22);
    let mut s3 = restartable_with("bkt", "m/w.bin", &data).await?;
    let src = S3Source::new(&s3.location("bkt", "m"))
        .await
        .with_resume(quick_resume(3));
    let files = src.list().await?;
    let dst = tempfile::tempdir()?;
    std::fs::write(dst.path().join("w.bin"), b"previous version")?;
    let gated = Gated {
        inner: &src,
        reached: Arc::new(Notify::new()),
        release: Arc::new(Notify::new()),
    };
    let dest = LocalDestination::new(dst.path());
    let progress = Progress::new(files[0].size);
    let copy = dest.publish(&gated, &files, &progress);
    tokio::pin!(copy);
    // Once the copy has 1 MiB, kill the server for good, then let the copy continue.
    tokio::select! {
        r = &mut copy => panic!("the copy ended early: {r:?}"),
        () = gated.reached.notified() => {}
    }
    s3.stop();
    gated.release.notify_one();
    let err = copy.await.unwrap_err();
    assert_eq!(err.reason, Reason::SourceUnavailable, "{err}");
    assert!(err.transient, "a dead server is worth a later retry: {err}");
    assert!(err.message.contains("interrupted at byte"), "{err}");
    // The old file is untouched and no temporary file remains.
    assert_eq!(all_entries(dst.path()), ["w.bin"]);
    assert_eq!(
        std::fs::read(dst.path().join("w.bin"))?,
        b"previous version"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_object_read_at_an_offset_through_the_trait() -> anyhow::Result<()> {
    mro_tests::init();
    let data = pattern(2 * MIB, 23);
    let s3 = restartable_with("bkt", "one.bin", &data).await?;
    let src = S3Source::new(&s3.location("bkt", "one.bin")).await;
    let files = src.list().await?;
    let dynsrc: &dyn OpenFile = &src;
    let got: Vec<u8> = dynsrc
        .open(&files[0], 1000)
        .await?
        .map(|c| c.unwrap().to_vec())
        .concat()
        .await;
    assert_eq!(got, data[1000..]);
    let empty: Vec<u8> = dynsrc
        .open(&files[0], data.len() as u64)
        .await?
        .map(|c| c.unwrap().to_vec())
        .concat()
        .await;
    assert!(empty.is_empty());
    assert!(s3.root().join("bkt/one.bin").exists());
    Ok(())
}
