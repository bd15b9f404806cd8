//! Tar headers: the deterministic writer for modelcar layers and a parser for reading layers.
//!
//! Writer: a modelcar layer for `a/b.bin` is, in this order, directory entries `models/`,
//! `models/a/`, the file entry `models/a/b.bin`, the content, zero padding to 512 bytes and the
//! two zero blocks that end an archive. Every header field is fixed (mtime 0, uid/gid 0, empty
//! uname/gname, mode 0755 for directories and 0644 for files), so the layer bytes are a function
//! of the path and the content only. A layer of several files (`group.rs`) has the same framing:
//! each file's parent directories not yet in the layer before it, one end-of-archive marker.
//! Plain ustar is used; a PAX extended header is added only when ustar cannot express the entry
//! (non-ASCII or over-long path, size of 8 GiB or more).
use crate::transfer::{ModelPath, TransferError};

/// Tar block size.
pub(crate) const BLOCK: u64 = 512;
/// Where model files live inside a modelcar image (KServe mounts `/models`).
pub(crate) const MODELS_DIR: &str = "models";
/// Largest size that fits the 11 octal digits of a ustar size field.
const MAX_USTAR_SIZE: u64 = 0o77_777_777_777;
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
const PAX_NAME: &str = "././@PaxHeader";

/// Padding after `size` content bytes up to the next block boundary.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// Everything in a model file's layer before its content: directory entries and the headers
/// of the file itself (the layer of one file, built whole: for tests).
#[cfg(test)]
pub(crate) fn layer_prefix(path: &ModelPath, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * BLOCK as usize);
    out.extend(dir_entry(""));
    for dir in path.parents() {
        out.extend(dir_entry(dir));
    }
    out.extend(file_entry(path, size));
    out
}

/// The header block(s) of the directory entry `models/<dir>/` (`models/` when `dir` is empty).
pub(crate) fn dir_entry(dir: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK as usize);
    let name = if dir.is_empty() {
        format!("{MODELS_DIR}/")
    } else {
        format!("{MODELS_DIR}/{dir}/")
    };
    write_entry(&mut out, &name, b'5', DIR_MODE, 0);
    out
}

/// The header block(s) of the file entry `models/<path>` (its content follows).
pub(crate) fn file_entry(path: &ModelPath, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK as usize);
    write_entry(
        &mut out,
        &format!("{MODELS_DIR}/{path}"),
        b'0',
        FILE_MODE,
        size,
    );
    out
}

/// The two zero blocks that end an archive.
pub(crate) const END_OF_ARCHIVE: u64 = 2 * BLOCK;

/// Everything after the content: padding and the end-of-archive marker.
#[cfg(test)]
pub(crate) fn layer_suffix(size: u64) -> Vec<u8> {
    vec![0; (padding(size) + 2 * BLOCK) as usize]
}

/// Total layer length for a file of `size` bytes at `path`.
#[cfg(test)]
pub(crate) fn layer_len(path: &ModelPath, size: u64) -> u64 {
    layer_prefix(path, size).len() as u64 + size + padding(size) + 2 * BLOCK
}

/// Appends the header block(s) of one entry: a PAX header when needed, then the ustar header.
fn write_entry(out: &mut Vec<u8>, name: &str, typeflag: u8, mode: u32, size: u64) {
    let split = ustar_split(name);
    let mut pax = Vec::new();
    if split.is_none() {
        pax_record(&mut pax, "path", name);
    }
    if size > MAX_USTAR_SIZE {
        pax_record(&mut pax, "size", &size.to_string());
    }
    if !pax.is_empty() {
        let len = pax.len() as u64;
        out.extend_from_slice(&header_block(("", PAX_NAME), b'x', FILE_MODE, len));
        out.extend_from_slice(&pax);
        out.resize(out.len() + padding(len) as usize, 0);
    }
    let (prefix, short) = split.unwrap_or(("", truncate(name, 100)));
    let size_field = if size > MAX_USTAR_SIZE { 0 } else { size };
    out.extend_from_slice(&header_block((prefix, short), typeflag, mode, size_field));
}

/// Splits an ASCII name into ustar `prefix` (≤155 bytes) and `name` (≤100 bytes) fields.
fn ustar_split(name: &str) -> Option<(&str, &str)> {
    if !name.is_ascii() {
        return None;
    }
    if name.len() <= 100 {
        return Some(("", name));
    }
    name.match_indices('/')
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .find(|(p, n)| p.len() <= 155 && !n.is_empty() && n.len() <= 100)
}

/// The longest prefix of `s` of at most `max` bytes ending on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A PAX record `"<len> key=value\n"`, where `<len>` counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &str) {
    let base = key.len() + value.len() + 3; // space, '=', newline
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

fn header_block((prefix, name): (&str, &str), typeflag: u8, mode: u32, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0); // uid
    octal(&mut h[116..124], 0); // gid
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0); // mtime
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0); // devmajor
    octal(&mut h[337..345], 0); // devminor
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    field[..digits].copy_from_slice(format!("{value:0digits$o}").as_bytes());
    field[digits] = 0;
}

/// What a tar entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    HardLink,
    Symlink,
    /// PAX extended header for the next entry.
    PaxLocal,
    /// PAX global header (ignored).
    PaxGlobal,
    /// GNU long name / long link name for the next entry.
    GnuLongName,
    GnuLongLink,
    /// Devices, FIFOs, sparse files and anything else.
    Other(u8),
}

/// One parsed header block.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) link: String,
    pub(crate) kind: Kind,
    /// Size field (for entries that carry data).
    pub(crate) size: u64,
}

impl Header {
    /// Bytes of data that follow this header in the archive (header-only types carry none,
    /// whatever their size field says, as in Go's reader).
    pub(crate) fn data_len(&self) -> u64 {
        match self.kind {
            Kind::Dir | Kind::HardLink | Kind::Symlink => 0,
            Kind::Other(b'3' | b'4' | b'6') => 0,
            _ => self.size,
        }
    }
}

/// Parses one header block; `None` for an all-zero block (end of archive).
pub(crate) fn parse_header(block: &[u8]) -> Result<Option<Header>, TransferError> {
    let corrupt = |what: &str| TransferError::invalid_input(format!("corrupt tar header: {what}"));
    if block.len() != BLOCK as usize {
        return Err(corrupt("short block"));
    }
    if block.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let stored = parse_number(&block[148..156]).ok_or_else(|| corrupt("checksum field"))?;
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(*b as i8)
            }
        })
        .sum();
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(corrupt("checksum mismatch"));
    }
    let mut name = cstr(&block[..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
    }
    let kind = match block[156] {
        b'0' | 0 | b'7' => Kind::File,
        b'1' => Kind::HardLink,
        b'2' => Kind::Symlink,
        b'5' => Kind::Dir,
        b'x' => Kind::PaxLocal,
        b'g' => Kind::PaxGlobal,
        b'L' => Kind::GnuLongName,
        b'K' => Kind::GnuLongLink,
        other => Kind::Other(other),
    };
    let size = parse_number(&block[124..136]).ok_or_else(|| corrupt("size field"))?;
    Ok(Some(Header {
        name,
        link: cstr(&block[157..257]),
        kind,
        size,
    }))
}

/// A NUL-terminated field as text (lossy: invalid UTF-8 cannot name a model file anyway).
fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Octal (space/NUL padded) or GNU base-256 numeric field.
fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let t = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(t, 8).ok()
}

/// Overrides from PAX extended header records (`path`, `linkpath`, `size`).
#[derive(Debug, Default)]
pub(crate) struct PaxOverrides {
    pub(crate) path: Option<String>,
    pub(crate) link: Option<String>,
    pub(crate) size: Option<u64>,
}

pub(crate) fn parse_pax(data: &[u8]) -> Result<PaxOverrides, TransferError> {
    let bad = || TransferError::invalid_input("corrupt PAX extended header");
    let mut out = PaxOverrides::default();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &rest[space + 1..len - 1];
        let eq = record.iter().position(|b| *b == b'=').ok_or_else(bad)?;
        let value = String::from_utf8_lossy(&record[eq + 1..]).into_owned();
        match &record[..eq] {
            b"path" => out.path = Some(value),
            b"linkpath" => out.link = Some(value),
            b"size" => out.size = Some(value.parse().map_err(|_| bad())?),
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(out)
}

/// Normalises an archive member name to a root-relative path (`./a`, `/a`, `a/` → `a`).
pub(crate) fn normalize_name(name: &str) -> String {
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    parts.join("/")
}
