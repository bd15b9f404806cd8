//! Locations of helper programs and the repository, for the harness.
use std::path::PathBuf;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives in the workspace root")
        .to_path_buf()
}

/// The cache directory shared with the shell scripts (binaries, npm packages).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MRO_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache")
        });
    base.join("model-registry-operator")
}
