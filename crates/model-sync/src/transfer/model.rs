//! The model vocabulary every source and destination shares (files, paths, byte streams, the
//! publish report), in its own file so the transfer modules import it without going through `mod.rs`.
use std::fmt;

use bytes::Bytes;
use futures::stream::BoxStream;

use super::error::{Reason, TransferError};

/// A stream of a file's bytes.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// A model-relative path: `/`-separated, no empty, `.` or `..` components, not absolute.
/// Constructing one is the single place where path escapes are rejected.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelPath(String);

impl ModelPath {
    pub fn new(path: &str) -> Result<ModelPath, TransferError> {
        let trimmed = path.trim_start_matches("./");
        if trimmed.is_empty()
            || trimmed.starts_with('/')
            || trimmed.contains('\\')
            || trimmed.contains('\0')
        {
            return Err(TransferError::invalid_input(format!(
                "unsafe model file path {path:?}"
            )));
        }
        let parts: Vec<&str> = trimmed
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.is_empty() || parts.contains(&"..") {
            return Err(TransferError::invalid_input(format!(
                "unsafe model file path {path:?}"
            )));
        }
        Ok(ModelPath(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parent directories, outermost first (`a/b/c` → `a`, `a/b`).
    pub fn parents(&self) -> Vec<&str> {
        self.0
            .match_indices('/')
            .map(|(i, _)| &self.0[..i])
            .collect()
    }
}

impl fmt::Debug for ModelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for ModelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFile {
    pub path: ModelPath,
    pub size: u64,
    /// A source-side fingerprint of this version of the file (S3 ETag, OCI layer digest, mtime+size),
    /// used to recognise unchanged files on a retry. Not a content hash.
    pub fingerprint: Option<String>,
    /// sha256 of the content when the source already knows it (e.g. an OCI layer of one file).
    pub sha256: Option<String>,
}

/// What a destination reports after a successful publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The URI to register: `oci://host/repo@sha256:…` (pinned by digest), `s3://bucket/key`, or a path.
    pub uri: String,
    /// Manifest digest for OCI destinations.
    pub digest: Option<String>,
    /// Model bytes moved (file contents, not protocol overhead).
    pub bytes: u64,
    pub files: usize,
}

/// Sorts files by path and rejects duplicates (two source keys mapping to one model path).
pub fn normalize_listing(mut files: Vec<ModelFile>) -> Result<Vec<ModelFile>, TransferError> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for w in files.windows(2) {
        if w[0].path == w[1].path {
            return Err(TransferError::invalid_input(format!(
                "two source files map to {}",
                w[0].path
            )));
        }
    }
    // A file cannot also be a directory of another file.
    let names: std::collections::BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for f in &files {
        if let Some(p) = f.path.parents().into_iter().find(|p| names.contains(p)) {
            return Err(TransferError::invalid_input(format!(
                "{p} is both a file and a directory"
            )));
        }
    }
    if files.is_empty() {
        return Err(TransferError::new(
            Reason::SourceUnavailable,
            "the source holds no model files",
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_reject_escapes() {
        assert_eq!(ModelPath::new("a//b/./c").unwrap().as_str(), "a/b/c");
        assert_eq!(ModelPath::new("./x").unwrap().as_str(), "x");
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a/..", "a\\b", "."] {
            assert!(ModelPath::new(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(ModelPath::new("a/b/c").unwrap().parents(), vec!["a", "a/b"]);
    }

    #[test]
    fn listings_are_sorted_and_unique() {
        let f = |p: &str| ModelFile {
            path: ModelPath::new(p).unwrap(),
            size: 1,
            fingerprint: None,
            sha256: None,
        };
        let l = normalize_listing(vec![f("b"), f("a/x")]).unwrap();
        assert_eq!(l[0].path.as_str(), "a/x");
        assert!(normalize_listing(vec![f("a"), f("a")]).is_err());
        assert!(normalize_listing(vec![f("a"), f("a/b")]).is_err());
        assert!(normalize_listing(vec![]).is_err());
    }
}
