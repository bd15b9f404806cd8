//! The Hub's JSON answers, and the model files they describe (pure, unit-tested).
//!
//! - `GET /api/models/{repo}/revision/{revision}`: the repository at a revision; `sha` is the
//!   commit the revision names (what `snapshot_download` pins everything else to).
//! - `GET /api/models/{repo}/tree/{commit}?recursive=true&expand=false`: pages of
//!   `{"type": "file" | "directory", "path", "size", "oid", "lfs": {"oid", "size", ...}}`,
//!   the next page named by a `Link: <…>; rel="next"` header. `oid` is the git blob id; for an
//!   LFS (or Xet) file, `lfs.oid` is the sha256 of the content and `lfs.size` its size.
use std::collections::HashMap;

use serde::Deserialize;

use crate::transfer::{ModelFile, ModelPath, TransferError};

/// What the revision endpoint says (only the fields used; the rest is ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct RevisionInfo {
    pub sha: Option<String>,
}

/// One entry of a tree page.
#[derive(Debug, Deserialize)]
pub(crate) struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub oid: Option<String>,
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LfsInfo {
    pub oid: String,
    pub size: u64,
}

/// How to fetch and check one listed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteFile {
    /// The path as the Hub spells it (quoted into the resolve URL).
    pub repo_path: String,
    /// The git blob id of a file kept in git (not LFS): the content is checked against it.
    pub git_oid: Option<String>,
}

/// Whether `s` is a full commit id (40 hex digits).
pub(crate) fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The files of tree entries (directories skipped), with how to fetch each.
pub(crate) fn model_files(
    entries: Vec<TreeEntry>,
    what: &str,
) -> Result<(Vec<ModelFile>, HashMap<ModelPath, RemoteFile>), TransferError> {
    let mut files = Vec::new();
    let mut remote = HashMap::new();
    for e in entries.into_iter().filter(|e| e.kind == "file") {
        let path = ModelPath::new(&e.path).map_err(|err| err.context(what))?;
        let bad = |why: &str| {
            TransferError::new(
                crate::transfer::Reason::SourceUnavailable,
                format!("{what}: tree entry {:?}: {why}", e.path),
            )
        };
        let (size, sha256, git_oid) = match &e.lfs {
            Some(lfs) => {
                if !is_sha256(&lfs.oid) {
                    return Err(bad("the LFS oid is not a sha256"));
                }
                (lfs.size, Some(lfs.oid.to_ascii_lowercase()), None)
            }
            None => {
                let size = e.size.ok_or_else(|| bad("no size"))?;
                let oid = e.oid.clone().filter(|o| is_commit(o));
                (size, None, oid)
            }
        };
        let fingerprint = sha256.clone().or_else(|| e.oid.clone());
        remote.insert(
            path.clone(),
            RemoteFile {
                repo_path: e.path.clone(),
                git_oid,
            },
        );
        files.push(ModelFile {
            path,
            size,
            fingerprint,
            sha256,
        });
    }
    Ok((files, remote))
}

/// The `rel="next"` target of a `Link` header, if any.
pub(crate) fn next_link(value: &str) -> Option<&str> {
    value.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .map(str::trim)
            .any(|p| p == "rel=\"next\"" || p == "rel=next")
            .then_some(target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(json: &str) -> Vec<TreeEntry> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn files_lfs_and_directories() {
        let (files, remote) = model_files(
            entries(
                r#"[
                {"type":"directory","oid":"1111111111111111111111111111111111111111","size":0,"path":"sub"},
                {"type":"file","oid":"2222222222222222222222222222222222222222","size":12,"path":"sub/config.json"},
                {"type":"file","oid":"3333333333333333333333333333333333333333","size":134,"path":"model.safetensors",
                 "lfs":{"oid":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","size":5000000,"pointerSize":134},
                 "xetHash":"abc"}
            ]"#,
            ),
            "hf://o/m",
        )
        .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path.as_str(), "sub/config.json");
        assert_eq!(files[0].size, 12);
        assert_eq!(files[0].sha256, None);
        assert_eq!(
            remote[&files[0].path].git_oid.as_deref(),
            Some("2222222222222222222222222222222222222222")
        );
        assert_eq!(files[1].size, 5_000_000);
        assert_eq!(files[1].sha256.as_deref(), Some(&*"a".repeat(64)));
        assert_eq!(files[1].fingerprint, files[1].sha256);
        assert_eq!(remote[&files[1].path].git_oid, None);
        assert_eq!(remote[&files[1].path].repo_path, "model.safetensors");
    }

    #[test]
    fn unsafe_or_incomplete_entries_are_refused() {
        let e = model_files(
            entries(r#"[{"type":"file","oid":"x","size":1,"path":"../etc/passwd"}]"#),
            "hf://o/m",
        )
        .unwrap_err();
        assert!(
            e.message.contains("unsafe model file path"),
            "{}",
            e.message
        );
        let e = model_files(
            entries(r#"[{"type":"file","oid":"x","path":"a"}]"#),
            "hf://o/m",
        )
        .unwrap_err();
        assert!(e.message.contains("no size"), "{}", e.message);
        let e = model_files(
            entries(r#"[{"type":"file","size":1,"path":"a","lfs":{"oid":"nope","size":1}}]"#),
            "hf://o/m",
        )
        .unwrap_err();
        assert!(e.message.contains("not a sha256"), "{}", e.message);
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"<https://hf.example/api/models/o/m/tree/abc?cursor=xyz>; rel="next""#),
            Some("https://hf.example/api/models/o/m/tree/abc?cursor=xyz")
        );
        assert_eq!(
            next_link(r#"<http://a/1>; rel="prev", <http://a/3>; rel="next""#),
            Some("http://a/3")
        );
        assert_eq!(next_link(r#"<http://a/1>; rel="prev""#), None);
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("main"));
    }
}
