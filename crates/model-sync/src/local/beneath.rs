//! Opening files of a volume without leaving it.
//!
//! A PVC is written by whoever can mount it, so any name in it may be a symlink, and may be
//! swapped for one between a check and a use. Paths are therefore never resolved by the
//! kernel in one go: the source root is opened component by component with `O_NOFOLLOW` (no
//! symlink anywhere in the configured path), its directory descriptor is held, and every file
//! below it is reached by `openat(dir, name, O_NOFOLLOW)` one component at a time. Symlinks
//! inside the root are followed by this code (reading the link, resolving `..` against the
//! components walked so far), and a link whose target leaves the root is an error. Nothing is
//! ever opened through a path the kernel resolves, so a swap after the check opens nothing.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use crate::transfer::{Reason, TransferError};

/// Symlinks followed in one resolution before calling it a loop (Linux's own limit).
const MAX_HOPS: usize = 40;

fn flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK
}

fn dir_flags() -> OFlags {
    flags() | OFlags::DIRECTORY
}

/// The held source root.
#[derive(Debug)]
pub(crate) struct Root {
    /// The directory (or, for a single-file source, the file's directory).
    pub(crate) dir: OwnedFd,
    /// The root as an absolute path without symlinks (for absolute links into it).
    pub(crate) path: PathBuf,
    /// A single-file source: the file's name in `dir`.
    pub(crate) single: Option<String>,
}

/// What a name resolved to.
pub(crate) struct Resolved {
    pub(crate) fd: OwnedFd,
    pub(crate) stat: Stat,
}

pub(crate) fn kind(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

fn io_error(what: &str, e: rustix::io::Errno) -> TransferError {
    let e = std::io::Error::from(e);
    read_error(what, &e)
}

/// Opens the configured path: every component with `O_NOFOLLOW`, so a symlink anywhere in it
/// (the root itself included) is refused rather than followed out of the volume.
pub(crate) fn open_root(path: &Path) -> Result<Root, TransferError> {
    let shown = path.display().to_string();
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| read_error(&shown, &e))?
            .join(path)
    };
    let mut names = Vec::new();
    for c in absolute.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => names.push(n.to_owned()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(TransferError::invalid_input(format!(
                    "{shown}: the source path must not contain '..'"
                )));
            }
        }
    }
    let mut dir = rustix::fs::openat(rustix::fs::CWD, "/", dir_flags(), Mode::empty())
        .map_err(|e| io_error("/", e))?;
    let mut walked = PathBuf::from("/");
    let last = names.len().saturating_sub(1);
    for (i, name) in names.iter().enumerate() {
        walked.push(name);
        let st = rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_error(&walked.display().to_string(), e))?;
        match kind(&st) {
            FileType::Symlink => {
                return Err(TransferError::invalid_input(format!(
                    "{shown}: {} is a symbolic link; the source path must name the real \
                     directory or file (links are followed only inside it)",
                    walked.display()
                )));
            }
            FileType::Directory => {
                dir = rustix::fs::openat(&dir, name.as_os_str(), dir_flags(), Mode::empty())
                    .map_err(|e| io_error(&walked.display().to_string(), e))?;
            }
            FileType::RegularFile if i == last => {
                let single = utf8(name, &shown)?;
                return Ok(Root {
                    dir,
                    path: absolute,
                    single: Some(single),
                });
            }
            _ => {
                return Err(TransferError::invalid_input(format!(
                    "{shown} is neither a file nor a directory"
                )));
            }
        }
    }
    Ok(Root {
        dir,
        path: absolute,
        single: None,
    })
}

fn utf8(name: &OsStr, shown: &str) -> Result<String, TransferError> {
    name.to_str().map(str::to_owned).ok_or_else(|| {
        TransferError::invalid_input(format!("{shown}: file name {name:?} is not UTF-8"))
    })
}

/// Resolves root-relative `rel` (a model path, or where a link points) to an open descriptor,
/// following symlinks only while they stay inside the root. `shown` names it in errors.
pub(crate) fn resolve(root: &Root, rel: &[String], shown: &str) -> Result<Resolved, TransferError> {
    let outside = || {
        TransferError::invalid_input(format!(
            "symlink {shown} points outside the source directory"
        ))
    };
    // Directories walked so far: (name, descriptor); the root is below them all.
    let mut stack: Vec<(String, OwnedFd)> = Vec::new();
    let mut queue: VecDeque<String> = rel.iter().cloned().collect();
    let mut hops = 0;
    let dup_root = || {
        rustix::io::fcntl_dupfd_cloexec(&root.dir, 0)
            .map_err(|e| io_error(&root.path.display().to_string(), e))
    };
    while let Some(name) = queue.pop_front() {
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            stack.pop().ok_or_else(outside)?;
            continue;
        }
        let cur = stack.last().map_or(&root.dir, |(_, fd)| fd);
        let st =
            rustix::fs::statat(cur, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
                if e == rustix::io::Errno::NOENT && hops > 0 {
                    TransferError::invalid_input(format!(
                        "symlink {shown} cannot be resolved (dangling?): {}",
                        std::io::Error::from(e)
                    ))
                } else {
                    io_error(shown, e)
                }
            })?;
        match kind(&st) {
            FileType::Symlink => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(TransferError::invalid_input(format!(
                        "symlink loop at {shown}"
                    )));
                }
                let target = rustix::fs::readlinkat(cur, name.as_str(), Vec::new())
                    .map_err(|e| io_error(shown, e))?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                let mut parts: Vec<String> = Vec::new();
                let rest: Vec<&OsStr> = if target.is_absolute() {
                    let inside = target.strip_prefix(&root.path).map_err(|_| outside())?;
                    stack.clear();
                    inside.iter().collect()
                } else {
                    target.iter().collect()
                };
                for p in rest {
                    parts.push(utf8(p, shown)?);
                }
                for p in parts.into_iter().rev() {
                    queue.push_front(p);
                }
            }
            FileType::Directory => {
                let fd = rustix::fs::openat(cur, name.as_str(), dir_flags(), Mode::empty())
                    .map_err(|e| io_error(shown, e))?;
                stack.push((name, fd));
            }
            FileType::RegularFile if queue.is_empty() => {
                let fd = rustix::fs::openat(cur, name.as_str(), flags(), Mode::empty())
                    .map_err(|e| io_error(shown, e))?;
                let stat = rustix::fs::fstat(&fd).map_err(|e| io_error(shown, e))?;
                if kind(&stat) != FileType::RegularFile {
                    return Err(TransferError::new(
                        Reason::SourceUnavailable,
                        format!("{shown} changed while it was opened"),
                    ));
                }
                return Ok(Resolved { fd, stat });
            }
            FileType::RegularFile => {
                return Err(TransferError::invalid_input(format!(
                    "{shown}: a file is used as a directory"
                )));
            }
            _ => {
                return Err(TransferError::invalid_input(format!(
                    "{shown} is not a regular file or directory (socket, FIFO or device)"
                )));
            }
        }
    }
    // The path named a directory (possibly the root itself).
    let fd = match stack.pop() {
        Some((_, fd)) => fd,
        None => dup_root()?,
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io_error(shown, e))?;
    Ok(Resolved { fd, stat })
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
