//! Recognising and safely unpacking zip and tar(.gz) archives.
//!
//! Safety rules (an archive is untrusted input): every entry path must be a safe relative
//! [`ModelPath`] (no absolute paths, no `..`, no backslashes); symlinks and hard links are never
//! created — a link whose target stays inside the archive is materialised as a copy of the target
//! file, one that points outside (absolute, or `..` past the root) is an error; device files,
//! FIFOs and sparse entries are errors; duplicate entries are errors (no overwriting); the total
//! extracted size and the number of entries are capped (zip bombs).
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write as _};
use std::path::Path;

use crate::transfer::{ModelPath, Reason, TransferError};

/// Archive formats that are unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    Zip,
    Tar,
    TarGz,
}

/// Decides whether a download is an archive to unpack, from its file name and content type;
/// the leading bytes must then agree (a mismatch is an error, not a silent fallback).
///
/// Magic bytes alone never make a file an archive: several model formats *are* zip or tar files
/// (PyTorch `.pt`/`.pth`, Keras `.keras`, NumPy `.npz`, NeMo `.nemo`) and must be copied as-is.
/// `Err` for archive formats that are recognised but not supported (bzip2, xz, zstd).
pub fn detect(
    head: &[u8],
    name: &str,
    content_type: Option<&str>,
) -> Result<Option<ArchiveKind>, TransferError> {
    let name = name.to_ascii_lowercase();
    let ct = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let kind = if name.ends_with(".zip")
        || matches!(
            ct.as_str(),
            "application/zip" | "application/x-zip-compressed"
        ) {
        ArchiveKind::Zip
    } else if name.ends_with(".tar.gz")
        || name.ends_with(".tgz")
        || matches!(
            ct.as_str(),
            "application/x-gtar" | "application/x-compressed-tar" | "application/x-tgz"
        )
    {
        ArchiveKind::TarGz
    } else if name.ends_with(".tar") || ct == "application/x-tar" {
        ArchiveKind::Tar
    } else if [
        ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst", ".tzst",
    ]
    .iter()
    .any(|s| name.ends_with(s))
    {
        return Err(TransferError::new(
            Reason::NotImplemented,
            format!(
                "{name}: bzip2, xz and zstd archives are not supported; use .zip, .tar or .tar.gz"
            ),
        ));
    } else {
        return Ok(None);
    };
    let magic_ok = match kind {
        ArchiveKind::Zip => head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06"),
        ArchiveKind::TarGz => head.starts_with(&[0x1f, 0x8b]),
        // Old (v7) tar files have no magic; the extractor validates every header anyway.
        ArchiveKind::Tar => {
            head.len() < 262
                || &head[257..262] == b"ustar"
                || head[257..262].iter().all(|b| *b == 0)
        }
    };
    if !magic_ok {
        return Err(TransferError::invalid_input(format!(
            "{name} is named or typed as a {kind:?} archive but its content is not one"
        )));
    }
    Ok(Some(kind))
}

/// Caps on what an archive may expand to.
#[derive(Clone, Copy, Debug)]
pub struct ExtractLimits {
    /// Absolute cap on extracted bytes (default 2 TiB).
    pub max_total_bytes: u64,
    /// Extracted bytes may be at most this many times the archive size, plus 64 MiB (default
    /// 100; model weights barely compress, text rarely beyond 10:1, bombs reach 1000:1).
    pub max_ratio: u64,
    /// Entries (files, directories, links; default 1 000 000).
    pub max_entries: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_total_bytes: 2 << 40,
            max_ratio: 100,
            max_entries: 1_000_000,
        }
    }
}

/// What was unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extracted {
    pub files: u64,
    pub bytes: u64,
}

/// Unpacks `archive` into the (empty) directory `dest`. Blocking: run it on a blocking thread.
pub fn extract(
    kind: ArchiveKind,
    archive: &Path,
    dest: &Path,
    limits: ExtractLimits,
) -> Result<Extracted, TransferError> {
    let file = File::open(archive).map_err(|e| scratch(archive, &e))?;
    let len = file.metadata().map_err(|e| scratch(archive, &e))?.len();
    let cap = limits.max_total_bytes.min(
        len.saturating_mul(limits.max_ratio)
            .saturating_add(64 << 20),
    );
    let mut x = Extractor {
        dest,
        cap,
        max_entries: limits.max_entries,
        entries: 0,
        out: Extracted { files: 0, bytes: 0 },
        links: Vec::new(),
    };
    match kind {
        ArchiveKind::Zip => x.zip(file)?,
        ArchiveKind::Tar => x.tar(BufReader::new(file))?,
        ArchiveKind::TarGz => x.tar(flate2::read::GzDecoder::new(BufReader::new(file)))?,
    }
    x.materialize_links()?;
    Ok(x.out)
}

struct Extractor<'a> {
    dest: &'a Path,
    cap: u64,
    max_entries: u64,
    entries: u64,
    out: Extracted,
    /// Links to materialise once every regular file is out: (link path, archive-relative target).
    links: Vec<(ModelPath, ModelPath)>,
}

fn bad(message: String) -> TransferError {
    TransferError::invalid_input(message)
}

fn scratch(path: &Path, e: &std::io::Error) -> TransferError {
    TransferError::new(
        Reason::Internal,
        format!("scratch space {}: {e}", path.display()),
    )
}

impl Extractor<'_> {
    fn count_entry(&mut self) -> Result<(), TransferError> {
        self.entries += 1;
        if self.entries > self.max_entries {
            return Err(bad(format!(
                "the archive has more than {} entries",
                self.max_entries
            )));
        }
        Ok(())
    }

    fn tar<R: Read>(&mut self, reader: R) -> Result<(), TransferError> {
        let mut archive = tar::Archive::new(reader);
        let corrupt = |e: std::io::Error| bad(format!("not a valid tar archive: {e}"));
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let raw = entry.path().map_err(corrupt)?;
            let name = raw
                .to_str()
                .ok_or_else(|| bad(format!("archive entry {raw:?} is not UTF-8")))?
                .to_owned();
            let kind = entry.header().entry_type();
            use tar::EntryType as T;
            match kind {
                T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
                T::Directory => self.directory(&name)?,
                T::Regular | T::Continuous => {
                    let path = entry_path(&name)?;
                    self.file(&path, &mut entry)?;
                }
                T::Symlink | T::Link => {
                    self.count_entry()?;
                    let path = entry_path(&name)?;
                    let target = entry
                        .link_name()
                        .map_err(corrupt)?
                        .ok_or_else(|| bad(format!("link {name} has no target")))?;
                    let target = target
                        .to_str()
                        .ok_or_else(|| bad(format!("link {name}: target is not UTF-8")))?;
                    let resolved = if kind == T::Symlink {
                        resolve_symlink(&path, target)
                    } else {
                        resolve_hardlink(&path, target)
                    }?;
                    self.links.push((path, resolved));
                }
                other => {
                    return Err(bad(format!(
                        "archive entry {name} is a {other:?} entry; only files, directories and links are allowed"
                    )));
                }
            }
        }
        Ok(())
    }

    fn zip(&mut self, file: File) -> Result<(), TransferError> {
        let mut archive = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| bad(format!("not a valid zip archive: {e}")))?;
        for i in 0..archive.len() {
            let mut entry = archive
                .by_index(i)
                .map_err(|e| bad(format!("zip entry {i}: {e}")))?;
            let name = entry.name().to_owned();
            if entry.is_dir() {
                self.directory(&name)?;
            } else if entry.is_symlink() {
                self.count_entry()?;
                let path = entry_path(&name)?;
                let mut target = String::new();
                entry
                    .by_ref()
                    .take(4096)
                    .read_to_string(&mut target)
                    .map_err(|e| bad(format!("link {name}: {e}")))?;
                let resolved = resolve_symlink(&path, &target)?;
                self.links.push((path, resolved));
            } else {
                let file_type = entry.unix_mode().map_or(0, |m| m & 0o170_000);
                if file_type != 0 && file_type != 0o100_000 {
                    return Err(bad(format!(
                        "archive entry {name} is not a regular file (mode {file_type:o})"
                    )));
                }
                let path = entry_path(&name)?;
                self.file(&path, &mut entry)?;
            }
        }
        Ok(())
    }

    fn directory(&mut self, name: &str) -> Result<(), TransferError> {
        self.count_entry()?;
        let trimmed = name.trim_end_matches('/');
        if trimmed.is_empty() || trimmed == "." {
            return Ok(());
        }
        let path = entry_path(trimmed)?;
        let full = self.dest.join(path.as_str());
        std::fs::create_dir_all(&full).map_err(|e| {
            bad(format!(
                "archive directory {path}: {e} (conflicts with a file?)"
            ))
        })
    }

    /// Writes one regular file (never overwriting), counting against the size cap.
    fn file(&mut self, path: &ModelPath, reader: &mut dyn Read) -> Result<(), TransferError> {
        self.count_entry()?;
        let full = self.dest.join(path.as_str());
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                bad(format!(
                    "archive entry {path}: {e} (conflicts with a file?)"
                ))
            })?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    bad(format!(
                        "archive entry {path} appears twice (or collides with a directory)"
                    ))
                } else {
                    scratch(&full, &e)
                }
            })?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| bad(format!("archive entry {path} is corrupt: {e}")))?;
            if n == 0 {
                break;
            }
            self.out.bytes += n as u64;
            if self.out.bytes > self.cap {
                return Err(bad(format!(
                    "the archive expands to more than {} bytes; refusing to unpack it",
                    self.cap
                )));
            }
            out.write_all(&buf[..n]).map_err(|e| scratch(&full, &e))?;
        }
        self.out.files += 1;
        Ok(())
    }

    /// Copies each link's (final) target file to the link's path.
    fn materialize_links(&mut self) -> Result<(), TransferError> {
        let targets: HashMap<ModelPath, ModelPath> = self.links.iter().cloned().collect();
        for (path, target) in std::mem::take(&mut self.links) {
            let mut t = &target;
            for _ in 0..16 {
                match targets.get(t) {
                    Some(next) => t = next,
                    None => break,
                }
            }
            let src = self.dest.join(t.as_str());
            let is_file = std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_file());
            if targets.contains_key(t) || !is_file {
                return Err(bad(format!(
                    "link {path} -> {target}: the target is not a file in the archive"
                )));
            }
            let mut reader = File::open(&src).map_err(|e| scratch(&src, &e))?;
            self.entries -= 1; // counted when the link was read
            self.file(&path, &mut reader)?;
        }
        Ok(())
    }
}

/// An archive entry name as a safe model path (`./` prefixes allowed).
fn entry_path(name: &str) -> Result<ModelPath, TransferError> {
    ModelPath::new(name).map_err(|_| {
        bad(format!(
            "archive entry {name:?} has an unsafe path (absolute, '..' or '\\')"
        ))
    })
}

/// A symlink's target relative to the archive root; an error if it leaves the archive.
pub(crate) fn resolve_symlink(link: &ModelPath, target: &str) -> Result<ModelPath, TransferError> {
    let escape = || {
        bad(format!(
            "symlink {link} -> {target} points outside the archive"
        ))
    };
    if target.starts_with('/') || target.contains('\\') || target.contains('\0') {
        return Err(escape());
    }
    let mut parts: Vec<&str> = link.as_str().split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(escape)?;
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(escape());
    }
    ModelPath::new(&parts.join("/")).map_err(|_| escape())
}

/// A hard link's target (tar: relative to the archive root).
fn resolve_hardlink(link: &ModelPath, target: &str) -> Result<ModelPath, TransferError> {
    ModelPath::new(target).map_err(|_| {
        bad(format!(
            "hard link {link} -> {target} points outside the archive"
        ))
    })
}
