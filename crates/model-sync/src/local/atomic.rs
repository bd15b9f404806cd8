//! Atomic, verified file writes: a hidden temporary file next to the target, fsync, checks,
//! rename. A reader never sees a partial file under the target name; a failed write leaves
//! nothing behind (the temporary file is removed, also when the future is dropped).
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::transfer::source::from_io;
use crate::transfer::{ByteStream, Progress, Reason, TransferError};

/// Write buffer (fewer, larger writes to the volume).
const WRITE_BUFFER: usize = 1024 * 1024;

/// What a write is checked against.
#[derive(Clone, Debug, Default)]
pub struct Expected<'a> {
    /// Exact byte count (`None`: whatever the stream yields).
    pub size: Option<u64>,
    /// Lower-case hex sha256 of the content.
    pub sha256: Option<&'a str>,
}

/// A finished write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    /// Lower-case hex sha256 of what was written.
    pub sha256: String,
}

/// Removes the temporary file unless the write completed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Streams `stream` into `target` atomically: parents are created, bytes go to
/// `.<name>.<unique>.partial` in the same directory, which is fsynced, checked (byte count and
/// sha256 against `expected`; with `readback`, the file is re-read and its sha256 compared with the
/// one computed while streaming) and renamed over `target`; then the directory is fsynced.
/// Source stream failures keep their reason (see [`from_io`]); write failures are
/// `DestinationRejected`; mismatches are `IntegrityError`.
pub async fn write_atomically(
    target: &Path,
    mut stream: ByteStream,
    expected: Expected<'_>,
    progress: Option<&Progress>,
    readback: bool,
) -> Result<Written, TransferError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let shown = target.display().to_string();
    let (parent, name) = match (target.parent(), target.file_name().and_then(|n| n.to_str())) {
        (Some(p), Some(n)) => (p, n),
        _ => {
            return Err(TransferError::invalid_input(format!(
                "{shown}: not a file path"
            )));
        }
    };
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| write_error(&parent.display().to_string(), &e))?;
    if tokio::fs::symlink_metadata(target)
        .await
        .is_ok_and(|m| m.is_dir())
    {
        return Err(TransferError::new(
            Reason::DestinationRejected,
            format!("{shown} exists and is a directory"),
        ));
    }
    let temp = parent.join(format!(
        ".{name}.{}-{}.partial",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut guard = TempGuard(Some(temp.clone()));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .await
        .map_err(|e| write_error(&shown, &e))?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| from_io(e, &format!("reading the source for {shown}")))?;
        bytes += chunk.len() as u64;
        if let Some(size) = expected.size
            && bytes > size
        {
            return Err(integrity(format!(
                "{shown}: the source sent more than the expected {size} bytes"
            )));
        }
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| write_error(&shown, &e))?;
        if let Some(p) = progress {
            p.add(chunk.len() as u64);
        }
    }
    if let Some(size) = expected.size
        && bytes != size
    {
        return Err(integrity(format!(
            "{shown}: the source sent {bytes} bytes, expected {size}"
        )));
    }
    let sha256 = hex::encode(hasher.finalize());
    if let Some(want) = expected.sha256
        && !want.eq_ignore_ascii_case(&sha256)
    {
        return Err(integrity(format!(
            "{shown}: sha256 {sha256} does not match the expected {want}"
        )));
    }
    out.flush().await.map_err(|e| write_error(&shown, &e))?;
    let file = out.into_inner();
    file.sync_all().await.map_err(|e| write_error(&shown, &e))?;
    let on_disk = file
        .metadata()
        .await
        .map_err(|e| write_error(&shown, &e))?
        .len();
    drop(file);
    if on_disk != bytes {
        return Err(integrity(format!(
            "{shown}: {on_disk} bytes on disk after writing {bytes}"
        )));
    }
    if readback {
        let reread = hash_file(&temp)
            .await
            .map_err(|e| write_error(&shown, &e))?;
        if reread != sha256 {
            return Err(integrity(format!(
                "{shown}: re-read sha256 {reread} differs from the streamed {sha256}"
            )));
        }
    }
    tokio::fs::rename(&temp, target)
        .await
        .map_err(|e| write_error(&shown, &e))?;
    guard.0 = None;
    sync_dir(parent).await;
    Ok(Written { bytes, sha256 })
}

/// sha256 of a file, read in a blocking task.
pub async fn hash_file(path: &Path) -> std::io::Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(path)?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h)?;
        Ok(hex::encode(h.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Makes a rename durable (best effort: some volume types refuse to fsync a directory).
async fn sync_dir(dir: &Path) {
    let dir = dir.to_path_buf();
    let res =
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
            .await;
    if let Ok(Err(e)) = res {
        tracing::debug!("fsync of the destination directory failed: {e}");
    }
}

fn integrity(message: String) -> TransferError {
    TransferError::new(Reason::IntegrityError, message)
}

/// A write failure: the destination refused (full, read-only, permissions).
pub(crate) fn write_error(what: &str, e: &std::io::Error) -> TransferError {
    let hint = match e.raw_os_error() {
        Some(28) => " (no space left on the volume)",
        Some(30) => " (read-only file system)",
        _ if e.kind() == std::io::ErrorKind::PermissionDenied => " (permission denied)",
        _ => "",
    };
    TransferError::new(
        Reason::DestinationRejected,
        format!("writing {what}: {e}{hint}"),
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn stream(parts: Vec<std::io::Result<Bytes>>) -> ByteStream {
        futures::stream::iter(parts).boxed()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn writes_verifies_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/model.bin");
        let want = hex::encode(Sha256::digest(b"hello world"));
        let p = Progress::new(11);
        let w = write_atomically(
            &target,
            stream(vec![
                Ok(Bytes::from_static(b"hello ")),
                Ok(Bytes::from_static(b"world")),
            ]),
            Expected {
                size: Some(11),
                sha256: Some(&want),
            },
            Some(&p),
            true,
        )
        .await
        .unwrap();
        assert_eq!(
            w,
            Written {
                bytes: 11,
                sha256: want
            }
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");
        assert_eq!(p.done(), 11);
        assert_eq!(leftovers(&dir.path().join("a/b")), ["model.bin"]);
    }

    #[tokio::test]
    async fn failures_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.bin");
        std::fs::write(&target, b"old").unwrap();
        // The source breaks mid-way: the old file stays, no partial file remains.
        let err = write_atomically(
            &target,
            stream(vec![
                Ok(Bytes::from_static(b"new bytes")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset",
                )),
            ]),
            Expected {
                size: Some(20),
                sha256: None,
            },
            None,
            false,
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, Reason::SourceUnavailable);
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(leftovers(dir.path()), ["m.bin"]);

        // Short, long and wrong-digest sources are integrity errors.
        for (data, size, sha) in [
            (&b"abc"[..], 4, None),
            (&b"abcde"[..], 4, None),
            (&b"abcd"[..], 4, Some("00")),
        ] {
            let err = write_atomically(
                &target,
                stream(vec![Ok(Bytes::copy_from_slice(data))]),
                Expected {
                    size: Some(size),
                    sha256: sha,
                },
                None,
                false,
            )
            .await
            .unwrap_err();
            assert_eq!(err.reason, Reason::IntegrityError, "{err}");
        }
        assert_eq!(leftovers(dir.path()), ["m.bin"]);
    }
}
