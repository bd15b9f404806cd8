//! A directory on a mounted volume as a model destination.
use std::path::{Path, PathBuf};

use futures::{StreamExt as _, TryStreamExt as _};

use super::atomic::{Expected, write_atomically, write_error};
use crate::transfer::{ModelFile, OpenFile, Progress, Published, Reason, TransferError};

/// Writes each model file to `<dir>/<relative path>`, atomically (temporary file in the same
/// directory, fsync, size + sha256 checks, rename), a few files at a time.
///
/// `Published.uri` is the destination path exactly as given (no `pvc://` scheme: the volume is
/// only meaningful to whoever mounts it, and the path is what they mount).
#[derive(Clone, Debug)]
pub struct LocalDestination {
    root: PathBuf,
    concurrency: usize,
    readback: bool,
}

impl LocalDestination {
    pub fn new(path: impl Into<PathBuf>) -> LocalDestination {
        LocalDestination {
            root: path.into(),
            concurrency: 4,
            readback: true,
        }
    }

    /// Files written at once (default 4).
    pub fn with_concurrency(mut self, files: usize) -> Self {
        self.concurrency = files.max(1);
        self
    }

    /// Re-read every written file and compare its sha256 with the one computed while streaming
    /// (default on; costs one extra read of the model).
    pub fn with_readback(mut self, readback: bool) -> Self {
        self.readback = readback;
        self
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub async fn publish<S: OpenFile + ?Sized>(
        &self,
        source: &S,
        files: &[ModelFile],
        progress: &Progress,
    ) -> Result<Published, TransferError> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| write_error(&self.root.display().to_string(), &e))?;
        let root = tokio::fs::canonicalize(&self.root)
            .await
            .map_err(|e| write_error(&self.root.display().to_string(), &e))?;
        futures::stream::iter(files)
            .map(|f| self.write_one(&root, source, f, progress))
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(Published {
            uri: self.root.display().to_string(),
            digest: None,
            bytes: files.iter().map(|f| f.size).sum(),
            files: files.len(),
        })
    }

    async fn write_one<S: OpenFile + ?Sized>(
        &self,
        root: &Path,
        source: &S,
        file: &ModelFile,
        progress: &Progress,
    ) -> Result<(), TransferError> {
        let target = root.join(file.path.as_str());
        refuse_symlinked_parents(root, file.path.parents()).await?;
        let stream = source.open(file, 0).await?;
        let expected = Expected {
            size: Some(file.size),
            sha256: file.sha256.as_deref(),
        };
        let w = write_atomically(&target, stream, expected, Some(progress), self.readback).await?;
        tracing::debug!(path = %file.path, bytes = w.bytes, sha256 = %w.sha256, "wrote {}", target.display());
        Ok(())
    }
}

/// A destination directory that is (or contains) a symlink could redirect writes anywhere on the
/// volume or the node; existing parents must be real directories.
async fn refuse_symlinked_parents(root: &Path, parents: Vec<&str>) -> Result<(), TransferError> {
    for p in parents {
        match tokio::fs::symlink_metadata(root.join(p)).await {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(TransferError::new(
                    Reason::DestinationRejected,
                    format!(
                        "{}: {p} is a symlink; refusing to write through it",
                        root.display()
                    ),
                ));
            }
            Ok(m) if !m.is_dir() => {
                return Err(TransferError::new(
                    Reason::DestinationRejected,
                    format!("{}: {p} exists and is not a directory", root.display()),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::future::BoxFuture;

    use super::*;
    use crate::local::LocalSource;
    use crate::transfer::{ByteStream, ModelPath};

    #[tokio::test]
    async fn copies_a_tree() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("x/y")).unwrap();
        std::fs::write(src.path().join("x/y/w.bin"), vec![7u8; 3_000_000]).unwrap();
        std::fs::write(src.path().join("c.json"), b"{}").unwrap();
        let source = LocalSource::new(src.path());
        let files = source.list().await.unwrap();
        let dst = tempfile::tempdir().unwrap();
        let out = dst.path().join("out");
        let p = Progress::new(3_000_002);
        let published = LocalDestination::new(&out)
            .publish(&source, &files, &p)
            .await
            .unwrap();
        assert_eq!(published.uri, out.display().to_string());
        assert_eq!((published.files, published.bytes), (2, 3_000_002));
        assert_eq!(
            std::fs::read(out.join("x/y/w.bin")).unwrap(),
            vec![7u8; 3_000_000]
        );
        assert_eq!(p.done(), 3_000_002);
    }

    /// Serves a few good bytes, then fails.
    struct Broken;
    impl OpenFile for Broken {
        fn open<'a>(
            &'a self,
            _: &'a ModelFile,
            _: u64,
        ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
            Box::pin(async {
                let items = vec![
                    Ok(Bytes::from_static(b"partial")),
                    Err(crate::transfer::source::to_io(TransferError::new(
                        Reason::SourceUnavailable,
                        "gone",
                    ))),
                ];
                Ok(futures::stream::iter(items).boxed())
            })
        }
    }

    #[tokio::test]
    async fn a_failing_source_leaves_no_file() {
        let dst = tempfile::tempdir().unwrap();
        let f = ModelFile {
            path: ModelPath::new("d/m.bin").unwrap(),
            size: 100,
            fingerprint: None,
            sha256: None,
        };
        let err = LocalDestination::new(dst.path())
            .publish(&Broken, &[f], &Progress::new(100))
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::SourceUnavailable);
        assert_eq!(std::fs::read_dir(dst.path().join("d")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn refuses_symlinked_destination_dirs() {
        let dst = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dst.path().join("d")).unwrap();
        let f = ModelFile {
            path: ModelPath::new("d/m.bin").unwrap(),
            size: 1,
            fingerprint: None,
            sha256: None,
        };
        let err = LocalDestination::new(dst.path())
            .publish(&Broken, &[f], &Progress::new(1))
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::DestinationRejected);
        assert!(err.message.contains("symlink"), "{err}");
    }
}
