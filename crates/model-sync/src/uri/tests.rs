//! Archive safety and detection.
use std::io::Write as _;
use std::path::Path;

use super::archive::{ArchiveKind, ExtractLimits, detect, extract, resolve_symlink};
use crate::transfer::{ModelPath, Reason};

/// A tar header with `name` written raw (bypassing the builder's own path checks, as an attacker
/// would).
fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let slot = &mut h.as_gnu_mut().unwrap().name;
    slot[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Other(&'a str, tar::EntryType),
}

fn tar_bytes(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(n, d) => b
                .append(&raw_header(n, tar::EntryType::Regular, d.len() as u64), *d)
                .unwrap(),
            E::Dir(n) => b
                .append(&raw_header(n, tar::EntryType::Directory, 0), &[][..])
                .unwrap(),
            E::Symlink(n, t) | E::Hardlink(n, t) => {
                let kind = if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                let mut h = raw_header(n, kind, 0);
                h.set_link_name(t).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Other(n, k) => b.append(&raw_header(n, *k, 0), &[][..]).unwrap(),
        }
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        if name.ends_with('/') {
            w.add_directory(*name, opts).unwrap();
        } else {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

/// Extracts `data` as `kind` into a fresh directory; returns it (kept alive) and the result.
fn unpack(
    kind: ArchiveKind,
    data: &[u8],
) -> (
    tempfile::TempDir,
    Result<super::Extracted, crate::transfer::TransferError>,
) {
    unpack_with(kind, data, ExtractLimits::default())
}

fn unpack_with(
    kind: ArchiveKind,
    data: &[u8],
    limits: ExtractLimits,
) -> (
    tempfile::TempDir,
    Result<super::Extracted, crate::transfer::TransferError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a");
    std::fs::write(&archive, data).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let r = extract(kind, &archive, &out, limits);
    (dir, r)
}

fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v.sort();
    v
}

#[test]
fn tar_gz_and_zip_unpack_with_structure() {
    let t = tar_bytes(&[
        E::Dir("./"),
        E::Dir("./m/"),
        E::File("./m/config.json", b"{}"),
        E::File("m/sub/w.bin", b"weights"),
        E::Symlink("m/alias.bin", "sub/w.bin"),
        E::Hardlink("m/hard.bin", "m/sub/w.bin"),
    ]);
    let (dir, r) = unpack(ArchiveKind::TarGz, &gz(&t));
    let r = r.unwrap();
    let out = dir.path().join("out");
    assert_eq!(
        files_under(&out),
        ["m/alias.bin", "m/config.json", "m/hard.bin", "m/sub/w.bin"]
    );
    assert_eq!(std::fs::read(out.join("m/alias.bin")).unwrap(), b"weights");
    // Links are copies, never links.
    assert!(
        !std::fs::symlink_metadata(out.join("m/alias.bin"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!((r.files, r.bytes), (4, 2 + 7 + 7 + 7));

    let z = zip_bytes(&[("d/", b""), ("d/a.txt", b"alpha"), ("b.bin", b"beta")]);
    let (dir, r) = unpack(ArchiveKind::Zip, &z);
    r.unwrap();
    assert_eq!(files_under(&dir.path().join("out")), ["b.bin", "d/a.txt"]);
}

#[test]
fn path_escapes_are_rejected() {
    for name in ["../evil", "a/../../evil", "/etc/evil", "a\\..\\evil"] {
        let (dir, r) = unpack(ArchiveKind::Tar, &tar_bytes(&[E::File(name, b"x")]));
        let err = r.unwrap_err();
        assert_eq!(err.reason, Reason::InvalidConfiguration, "{name}");
        assert!(err.message.contains("unsafe path"), "{err}");
        assert!(!dir.path().join("evil").exists());
    }
    // Zip slip.
    for name in ["../evil.txt", "/abs.txt", "x/../../evil.txt"] {
        let (dir, r) = unpack(
            ArchiveKind::Zip,
            &zip_bytes(&[("ok.txt", b"ok"), (name, b"x")]),
        );
        let err = r.unwrap_err();
        assert_eq!(err.reason, Reason::InvalidConfiguration, "{name}");
        assert!(err.message.contains("unsafe path"), "{err}");
        assert!(!dir.path().join("evil.txt").exists());
    }
}

#[test]
fn link_escapes_devices_and_duplicates_are_rejected() {
    for (link, target) in [
        ("l", "../../etc/passwd"),
        ("l", "/etc/passwd"),
        ("a/l", "../../x"),
    ] {
        let (_d, r) = unpack(
            ArchiveKind::Tar,
            &tar_bytes(&[E::File("x", b"1"), E::Symlink(link, target)]),
        );
        assert!(
            r.unwrap_err()
                .message
                .contains("points outside the archive"),
            "{link} -> {target}"
        );
    }
    let (_d, r) = unpack(ArchiveKind::Tar, &tar_bytes(&[E::Hardlink("h", "../x")]));
    assert!(r.unwrap_err().message.contains("outside the archive"));
    // A link to a directory or to nothing is not materialised.
    let (_d, r) = unpack(
        ArchiveKind::Tar,
        &tar_bytes(&[E::Dir("d/"), E::Symlink("l", "d")]),
    );
    assert!(r.unwrap_err().message.contains("not a file in the archive"));
    // Devices and FIFOs.
    for kind in [
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
    ] {
        let (_d, r) = unpack(ArchiveKind::Tar, &tar_bytes(&[E::Other("dev", kind)]));
        assert!(
            r.unwrap_err()
                .message
                .contains("only files, directories and links"),
            "{kind:?}"
        );
    }
    // The same path twice (a later entry would silently overwrite an earlier one).
    let (_d, r) = unpack(
        ArchiveKind::Tar,
        &tar_bytes(&[E::File("a", b"1"), E::File("./a", b"2")]),
    );
    assert!(r.unwrap_err().message.contains("appears twice"));
}

#[test]
fn expansion_is_capped() {
    let zeros = vec![0u8; 4 << 20];
    let t = gz(&tar_bytes(&[E::File("big", &zeros)]));
    let limits = ExtractLimits {
        max_total_bytes: 1 << 20,
        ..ExtractLimits::default()
    };
    let (_d, r) = unpack_with(ArchiveKind::TarGz, &t, limits);
    assert!(r.unwrap_err().message.contains("expands to more than"));
    let limits = ExtractLimits {
        max_entries: 2,
        ..ExtractLimits::default()
    };
    let (_d, r) = unpack_with(
        ArchiveKind::Tar,
        &tar_bytes(&[E::File("a", b"1"), E::File("b", b"2"), E::File("c", b"3")]),
        limits,
    );
    assert!(r.unwrap_err().message.contains("more than 2 entries"));
}

#[test]
fn symlink_resolution_is_lexical_and_contained() {
    let l = ModelPath::new("a/b/link").unwrap();
    assert_eq!(resolve_symlink(&l, "../c/f").unwrap().as_str(), "a/c/f");
    assert_eq!(resolve_symlink(&l, "./f").unwrap().as_str(), "a/b/f");
    assert_eq!(resolve_symlink(&l, "../../top").unwrap().as_str(), "top");
    assert!(resolve_symlink(&l, "../../../out").is_err());
    assert!(resolve_symlink(&l, "../..").is_err());
}

#[test]
fn detection_needs_a_name_or_type_and_agreeing_bytes() {
    let zip = zip_bytes(&[("a", b"1")]);
    let tgz = gz(&tar_bytes(&[E::File("a", b"1")]));
    let tar = tar_bytes(&[E::File("a", b"1")]);
    assert_eq!(detect(&zip, "m.zip", None).unwrap(), Some(ArchiveKind::Zip));
    assert_eq!(
        detect(&zip, "download", Some("application/zip")).unwrap(),
        Some(ArchiveKind::Zip)
    );
    assert_eq!(
        detect(&tgz, "m.tar.gz", None).unwrap(),
        Some(ArchiveKind::TarGz)
    );
    assert_eq!(
        detect(&tgz, "M.TGZ", Some("application/octet-stream")).unwrap(),
        Some(ArchiveKind::TarGz)
    );
    assert_eq!(detect(&tar, "m.tar", None).unwrap(), Some(ArchiveKind::Tar));
    // Zip- and tar-based model formats are copied as they are.
    assert_eq!(
        detect(&zip, "model.pt", Some("application/octet-stream")).unwrap(),
        None
    );
    assert_eq!(detect(&tar, "model.nemo", None).unwrap(), None);
    assert_eq!(
        detect(&tgz, "weights.bin.gz", Some("application/gzip")).unwrap(),
        None
    );
    // A name that lies is an error, not a silent copy.
    assert_eq!(
        detect(b"plain text", "m.zip", None).unwrap_err().reason,
        Reason::InvalidConfiguration
    );
    assert_eq!(
        detect(b"", "m.tar.bz2", None).unwrap_err().reason,
        Reason::NotImplemented
    );
}
