//! A file or directory on a mounted volume as a model source.
//!
//! The volume's content is not trusted: see [`super::beneath`] for how names are opened
//! without following a symlink out of the source root.
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use tokio::io::AsyncSeekExt as _;
use tokio_util::io::ReaderStream;

use super::beneath::{self, Root, kind, read_error};
use crate::transfer::{
    ByteStream, ModelFile, ModelPath, OpenFile, Reason, TransferError, normalize_listing,
};

/// Read buffer per open file.
const CHUNK: usize = 1024 * 1024;

/// A local path: one file (listed by its base name) or a directory (listed recursively, relative
/// paths preserved).
///
/// Nothing is skipped silently: symlinks are followed when they stay inside the root and are
/// errors when they escape it (or dangle, or loop); sockets, FIFOs and devices are errors. The
/// configured path itself must contain no symlink (the root cannot point elsewhere).
/// Fingerprint: `<size>:<mtime in ns>`.
#[derive(Clone, Debug)]
pub struct LocalSource {
    path: PathBuf,
    root: OnceLock<Arc<Root>>,
}

impl LocalSource {
    pub fn new(path: impl Into<PathBuf>) -> LocalSource {
        LocalSource {
            path: path.into(),
            root: OnceLock::new(),
        }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root, opened once and held, so that every later open is relative to the same
    /// directory whatever happens to the path.
    fn root(&self) -> Result<Arc<Root>, TransferError> {
        if let Some(r) = self.root.get() {
            return Ok(r.clone());
        }
        let r = Arc::new(beneath::open_root(&self.path)?);
        Ok(self.root.get_or_init(|| r).clone())
    }

    pub async fn list(&self) -> Result<Vec<ModelFile>, TransferError> {
        let this = self.clone();
        let (files, root) = tokio::task::spawn_blocking(move || {
            let root = this.root()?;
            walk_root(&root).map(|f| (f, root))
        })
        .await
        .map_err(|e| TransferError::new(Reason::Internal, format!("listing task failed: {e}")))??;
        let _ = self.root.set(root);
        normalize_listing(files)
    }

    pub async fn open(&self, file: &ModelFile, offset: u64) -> Result<ByteStream, TransferError> {
        let this = self.clone();
        let rel = file.path.clone();
        let what = match self.root.get().and_then(|r| r.single.clone()) {
            Some(_) => self.path.display().to_string(),
            None => self.path.join(rel.as_str()).display().to_string(),
        };
        let (fd, len) = tokio::task::spawn_blocking(move || {
            let root = this.root()?;
            open_file(&root, &rel)
        })
        .await
        .map_err(|e| TransferError::new(Reason::Internal, format!("open task failed: {e}")))??;
        if offset > len {
            return Err(TransferError::new(
                Reason::SourceUnavailable,
                format!("{what}: offset {offset} is past the end ({len} bytes; the file changed?)"),
            ));
        }
        let mut f = tokio::fs::File::from_std(std::fs::File::from(fd));
        if offset > 0 {
            f.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| read_error(&what, &e))?;
        }
        Ok(ReaderStream::with_capacity(f, CHUNK).boxed())
    }
}

/// A listed file, opened beneath the root: the single file itself, or `<root>/<path>`.
fn open_file(root: &Root, path: &ModelPath) -> Result<(OwnedFd, u64), TransferError> {
    if let Some(name) = &root.single {
        let shown = root.path.display().to_string();
        let fd = rustix::fs::openat(
            &root.dir,
            name.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| read_error(&shown, &std::io::Error::from(e)))?;
        let st =
            rustix::fs::fstat(&fd).map_err(|e| read_error(&shown, &std::io::Error::from(e)))?;
        if kind(&st) != FileType::RegularFile {
            return Err(TransferError::invalid_input(format!(
                "{shown} is not a regular file"
            )));
        }
        return Ok((fd, st.st_size as u64));
    }
    let parts: Vec<String> = path.as_str().split('/').map(str::to_owned).collect();
    let r = beneath::resolve(root, &parts, path.as_str())?;
    if kind(&r.stat) != FileType::RegularFile {
        return Err(TransferError::invalid_input(format!(
            "{path} is not a regular file"
        )));
    }
    Ok((r.fd, r.stat.st_size as u64))
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

fn walk_root(root: &Root) -> Result<Vec<ModelFile>, TransferError> {
    if let Some(name) = &root.single {
        let shown = root.path.display().to_string();
        let st = rustix::fs::statat(&root.dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| read_error(&shown, &std::io::Error::from(e)))?;
        return Ok(vec![model_file(ModelPath::new(name)?, &st)]);
    }
    let st = rustix::fs::fstat(&root.dir)
        .map_err(|e| read_error(&root.path.display().to_string(), &std::io::Error::from(e)))?;
    let mut out = Vec::new();
    let mut ancestors = vec![(st.st_dev, st.st_ino)];
    walk_dir(root, &root.dir, &[], &mut ancestors, &mut out)?;
    Ok(out)
}

/// Lists `dir` (whose root-relative components are `rel`) into `out`. `ancestors` are the
/// (device, inode) pairs of the directories being walked, to catch symlink loops.
fn walk_dir(
    root: &Root,
    dir: &OwnedFd,
    rel: &[String],
    ancestors: &mut Vec<(u64, u64)>,
    out: &mut Vec<ModelFile>,
) -> Result<(), TransferError> {
    let shown = || {
        let mut p = root.path.clone();
        p.extend(rel);
        p.display().to_string()
    };
    let io = |e: rustix::io::Errno| read_error(&shown(), &std::io::Error::from(e));
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let name = std::str::from_utf8(raw).map_err(|_| {
            TransferError::invalid_input(format!(
                "{}: file name {:?} is not UTF-8",
                shown(),
                String::from_utf8_lossy(raw)
            ))
        })?;
        names.push(name.to_owned());
    }
    names.sort();
    for name in names {
        let mut child: Vec<String> = rel.to_vec();
        child.push(name.clone());
        let child_rel = child.join("/");
        let st = rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
        let (st, fd) = match kind(&st) {
            FileType::Symlink => {
                let r = beneath::resolve(root, &child, &child_rel)?;
                (r.stat, Some(r.fd))
            }
            FileType::Directory => {
                let fd = rustix::fs::openat(
                    dir,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                (st, Some(fd))
            }
            _ => (st, None),
        };
        match (kind(&st), fd) {
            (FileType::Directory, Some(fd)) => {
                let key = (st.st_dev, st.st_ino);
                if ancestors.contains(&key) {
                    return Err(TransferError::invalid_input(format!(
                        "symlink loop at {child_rel}"
                    )));
                }
                ancestors.push(key);
                walk_dir(root, &fd, &child, ancestors, out)?;
                ancestors.pop();
            }
            (FileType::RegularFile, _) => out.push(model_file(ModelPath::new(&child_rel)?, &st)),
            _ => {
                return Err(TransferError::invalid_input(format!(
                    "{child_rel} is not a regular file or directory (socket, FIFO or device)"
                )));
            }
        }
    }
    Ok(())
}

fn model_file(path: ModelPath, st: &Stat) -> ModelFile {
    let mtime = (st.st_mtime as i128) * 1_000_000_000 + st.st_mtime_nsec as i128;
    let size = st.st_size as u64;
    ModelFile {
        path,
        size,
        fingerprint: Some(format!("{size}:{}", mtime.max(0))),
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
        assert_eq!(err.reason, Reason::InvalidConfiguration);
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

    /// A source root that is itself a symlink (or has one in its path) would list whatever it
    /// points at, e.g. the pod's own Secrets: refused, whatever the target.
    #[tokio::test]
    async fn a_symlinked_root_or_path_component_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "token", b"the pod's secret");
        let pvc = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), pvc.path().join("models")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("token"), pvc.path().join("one.bin"))
            .unwrap();
        for path in [
            pvc.path().join("models"),
            pvc.path().join("models/token"),
            pvc.path().join("one.bin"),
        ] {
            let err = LocalSource::new(&path).list().await.unwrap_err();
            assert_eq!(err.reason, Reason::InvalidConfiguration, "{path:?}: {err}");
            assert!(err.message.contains("symbolic link"), "{err}");
        }
    }

    /// The root is held: swapping a listed file (or a directory on its path) for a symlink to
    /// somewhere else after listing opens nothing outside.
    #[tokio::test]
    async fn a_file_swapped_for_a_symlink_after_listing_is_not_followed_out() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", b"outside data");
        write(outside.path(), "d/w.bin", b"outside data");
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "w.bin", b"model data");
        write(dir.path(), "d/w.bin", b"model data");
        let src = LocalSource::new(dir.path());
        let files = src.list().await.unwrap();
        std::fs::remove_file(dir.path().join("w.bin")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("w.bin"))
            .unwrap();
        let f = files.iter().find(|f| f.path.as_str() == "w.bin").unwrap();
        let err = src.open(f, 0).await.err().expect("must not open");
        assert!(err.message.contains("outside"), "{err}");
        std::fs::remove_dir_all(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("d"), dir.path().join("d")).unwrap();
        let f = files.iter().find(|f| f.path.as_str() == "d/w.bin").unwrap();
        let err = src.open(f, 0).await.err().expect("must not open");
        assert!(err.message.contains("outside"), "{err}");
        // The root itself replaced by a link: the held descriptor still reads the old tree.
        let moved = dir.path().with_extension("moved");
        std::fs::rename(dir.path(), &moved).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path()).unwrap();
        std::fs::remove_file(moved.join("d")).unwrap();
        write(&moved, "d/w.bin", b"model data");
        let got: Vec<_> = src.open(f, 0).await.unwrap().try_collect().await.unwrap();
        assert_eq!(got.concat(), b"model data");
        std::fs::remove_file(dir.path()).unwrap();
        std::fs::rename(&moved, dir.path()).unwrap();
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
