//! A file or directory on a mounted volume as a model source.
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use tokio::io::AsyncSeekExt as _;
use tokio_util::io::ReaderStream;

use crate::transfer::{
    ByteStream, ModelFile, ModelPath, OpenFile, Reason, TransferError, normalize_listing,
};

/// Read buffer per open file.
const CHUNK: usize = 1024 * 1024;

/// A local path: one file (listed by its base name) or a directory (listed recursively, relative
/// paths preserved).
///
/// Nothing is skipped silently: symlinks are followed when they stay inside the root and are
/// errors when they escape it (or dangle, or loop); sockets, FIFOs and devices are errors.
/// Fingerprint: `<size>:<mtime in ns>`.
#[derive(Clone, Debug)]
pub struct LocalSource {
    path: PathBuf,
}

impl LocalSource {
    pub fn new(path: impl Into<PathBuf>) -> LocalSource {
        LocalSource { path: path.into() }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn list(&self) -> Result<Vec<ModelFile>, TransferError> {
        let path = self.path.clone();
        let files = tokio::task::spawn_blocking(move || walk_root(&path))
            .await
            .map_err(|e| {
                TransferError::new(Reason::Internal, format!("listing task failed: {e}"))
            })??;
        normalize_listing(files)
    }

    pub async fn open(&self, file: &ModelFile, offset: u64) -> Result<ByteStream, TransferError> {
        let full = self.file_path(&file.path).await?;
        let what = || full.display().to_string();
        let mut f = tokio::fs::File::open(&full)
            .await
            .map_err(|e| read_error(&what(), &e))?;
        let len = f
            .metadata()
            .await
            .map_err(|e| read_error(&what(), &e))?
            .len();
        if offset > len {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                format!(
                    "{}: offset {offset} is past the end ({len} bytes; the file changed?)",
                    what()
                ),
            ));
        }
        if offset > 0 {
            f.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| read_error(&what(), &e))?;
        }
        Ok(ReaderStream::with_capacity(f, CHUNK).boxed())
    }

    /// Where a listed file lives: the single file itself, or `<dir>/<path>`.
    async fn file_path(&self, path: &ModelPath) -> Result<PathBuf, TransferError> {
        let meta = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| read_error(&self.path.display().to_string(), &e))?;
        Ok(if meta.is_dir() {
            self.path.join(path.as_str())
        } else {
            self.path.clone()
        })
    }
}

impl OpenFile for LocalSource {
    fn open<'a>(
        &'a self,
        file: &'a ModelFile,
        offset: u64,
    ) -> BoxFuture<'a, Result<ByteStream, TransferError>> {
        Box::pin(LocalSource::open(self, file, offset))
    }
}

/// An I/O error reading the source, as a transfer error naming the path.
pub(crate) fn read_error(what: &str, e: &std::io::Error) -> TransferError {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "not found",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "",
    };
    let msg = if reason.is_empty() {
        format!("{what}: {e}")
    } else {
        format!("{what}: {reason} ({e})")
    };
    TransferError::new(Reason::SourceUnavailable, msg)
}

fn walk_root(path: &Path) -> Result<Vec<ModelFile>, TransferError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| read_error(&shown, &e))?;
    if meta.is_file() {
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            TransferError::invalid_input(format!("{shown}: the file name is not UTF-8"))
        })?;
        return Ok(vec![model_file(ModelPath::new(name)?, &meta)]);
    }
    if !meta.is_dir() {
        return Err(TransferError::invalid_input(format!(
            "{shown} is neither a file nor a directory"
        )));
    }
    let root = std::fs::canonicalize(path).map_err(|e| read_error(&shown, &e))?;
    let mut out = Vec::new();
    let mut ancestors = vec![root.clone()];
    walk_dir(&root, &root, "", &mut ancestors, &mut out)?;
    Ok(out)
}

/// Lists `dir` (whose model-relative path is `rel`) into `out`. `ancestors` are the canonical
/// directories being walked, to catch symlink loops.
fn walk_dir(
    root: &Path,
    dir: &Path,
    rel: &str,
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<ModelFile>,
) -> Result<(), TransferError> {
    let shown = || dir.display().to_string();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| read_error(&shown(), &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_error(&shown(), &e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            TransferError::invalid_input(format!(
                "{}: file name {:?} is not UTF-8",
                shown(),
                entry.file_name()
            ))
        })?;
        let child_rel = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let full = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| read_error(&full.display().to_string(), &e))?;
        let (target, meta) = if ft.is_symlink() {
            let target = std::fs::canonicalize(&full).map_err(|e| {
                TransferError::invalid_input(format!(
                    "symlink {child_rel} cannot be resolved (dangling?): {e}"
                ))
            })?;
            if !target.starts_with(root) {
                return Err(TransferError::invalid_input(format!(
                    "symlink {child_rel} points outside the source directory (to {})",
                    target.display()
                )));
            }
            let meta = std::fs::metadata(&target)
                .map_err(|e| read_error(&target.display().to_string(), &e))?;
            (target, meta)
        } else {
            let meta = entry
                .metadata()
                .map_err(|e| read_error(&full.display().to_string(), &e))?;
            (full.clone(), meta)
        };
        if meta.is_dir() {
            let canonical = if ft.is_symlink() {
                target
            } else {
                std::fs::canonicalize(&full).unwrap_or(full)
            };
            if ancestors.contains(&canonical) {
                return Err(TransferError::invalid_input(format!(
                    "symlink loop at {child_rel}"
                )));
            }
            ancestors.push(canonical.clone());
            walk_dir(root, &canonical, &child_rel, ancestors, out)?;
            ancestors.pop();
        } else if meta.is_file() {
            out.push(model_file(ModelPath::new(&child_rel)?, &meta));
        } else {
            return Err(TransferError::invalid_input(format!(
                "{child_rel} is not a regular file or directory (socket, FIFO or device)"
            )));
        }
    }
    Ok(())
}

fn model_file(path: ModelPath, meta: &std::fs::Metadata) -> ModelFile {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    ModelFile {
        path,
        size: meta.len(),
        fingerprint: Some(format!("{}:{mtime}", meta.len())),
        sha256: None,
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt as _;

    use super::*;

    fn write(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[tokio::test]
    async fn lists_a_tree_and_reads_at_offsets() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "config.json", b"{}");
        write(dir.path(), "sub/deep/w.bin", b"0123456789");
        write(dir.path(), "..data", b"k8s style");
        std::os::unix::fs::symlink("sub/deep/w.bin", dir.path().join("alias.bin")).unwrap();
        let src = LocalSource::new(dir.path());
        let files = src.list().await.unwrap();
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["..data", "alias.bin", "config.json", "sub/deep/w.bin"]
        );
        assert_eq!(files[3].size, 10);
        assert!(files[3].fingerprint.as_deref().unwrap().starts_with("10:"));
        let got: Vec<_> = src
            .open(&files[3], 4)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), b"456789");
        let got: Vec<_> = src
            .open(&files[1], 0)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), b"0123456789");

        // A single file is listed by its base name.
        let one = LocalSource::new(dir.path().join("sub/deep/w.bin"));
        let files = one.list().await.unwrap();
        assert_eq!(files[0].path.as_str(), "w.bin");
        let got: Vec<_> = one
            .open(&files[0], 0)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), b"0123456789");
    }

    #[tokio::test]
    async fn escaping_dangling_and_looping_symlinks_are_errors() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", b"x");
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.bin", b"a");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).unwrap();
        let err = LocalSource::new(dir.path()).list().await.unwrap_err();
        assert_eq!(err.reason, Reason::InvalidInput);
        assert!(err.message.contains("points outside"), "{err}");

        std::fs::remove_file(dir.path().join("leak")).unwrap();
        std::os::unix::fs::symlink("nope", dir.path().join("dangling")).unwrap();
        let err = LocalSource::new(dir.path()).list().await.unwrap_err();
        assert!(err.message.contains("dangling"), "{err}");

        std::fs::remove_file(dir.path().join("dangling")).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("d/up")).unwrap();
        let err = LocalSource::new(dir.path()).list().await.unwrap_err();
        assert!(err.message.contains("loop"), "{err}");
    }

    #[tokio::test]
    async fn missing_and_empty_sources() {
        let dir = tempfile::tempdir().unwrap();
        let err = LocalSource::new(dir.path().join("nope"))
            .list()
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::SourceUnavailable);
        assert!(err.message.contains("not found"), "{err}");
        let err = LocalSource::new(dir.path()).list().await.unwrap_err();
        assert_eq!(err.reason, Reason::SourceUnavailable);
    }
}
