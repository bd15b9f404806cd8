//! In-toto statements: the OpenSSF model-signing v1.0 manifest of a model's files, and the
//! statement signing an OCI image manifest by digest.
//!
//! Model-signing v1.0 (what `model_signing verify` rebuilds and compares): one subject named
//! after the model whose sha256 is computed over the raw file digests in resource order, and a
//! predicate listing every file (`resources`) with the serialization that produced the list
//! (`files`, sha256, no symlinks, and the paths a verifier must skip).

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const MODEL_SIGNING_PREDICATE: &str = "https://model_signing/signature/v1.0";
/// cosign's predicate for "this image is signed" statements (sigstore bundle format).
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// The signature's own name next to the model.
pub const SIGNATURE_FILE: &str = "model.sig";

/// Paths `model_signing` leaves out of a model by default (its signature and git metadata); a
/// signature listing them would not verify, so they are skipped and recorded as ignored.
pub const IGNORED_PATHS: [&str; 5] = [
    SIGNATURE_FILE,
    ".git",
    ".gitattributes",
    ".github",
    ".gitignore",
];

/// Whether a model-relative path (`/`-separated) is one of [`IGNORED_PATHS`] or inside one.
pub fn is_ignored(path: &str) -> bool {
    IGNORED_PATHS
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// One model file and the sha256 of its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub path: String,
    pub sha256: [u8; 32],
}

/// The model-signing v1.0 statement (JSON bytes) for `files`, sorted by path.
pub fn model_statement(model_name: &str, files: &[FileDigest]) -> Vec<u8> {
    let mut files: Vec<&FileDigest> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut root = Sha256::new();
    let resources: Vec<Value> = files
        .iter()
        .map(|f| {
            root.update(f.sha256);
            json!({"name": f.path, "algorithm": "sha256", "digest": hex::encode(f.sha256)})
        })
        .collect();
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": hex::encode(root.finalize())}}],
        "predicateType": MODEL_SIGNING_PREDICATE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": false,
                "ignore_paths": IGNORED_PATHS,
            },
            "resources": resources,
        },
    });
    serde_json::to_vec(&statement).unwrap_or_default()
}

/// The statement signing an image manifest: subject = the repository, by manifest digest.
pub fn image_statement(repository: &str, manifest_sha256_hex: &str) -> Vec<u8> {
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": repository, "digest": {"sha256": manifest_sha256_hex}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    });
    serde_json::to_vec(&statement).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_digest_covers_the_file_digests_in_path_order() {
        let a = FileDigest {
            path: "b/w.bin".into(),
            sha256: [2; 32],
        };
        let b = FileDigest {
            path: "a.json".into(),
            sha256: [1; 32],
        };
        let v: Value = serde_json::from_slice(&model_statement("m", &[a, b])).unwrap();
        let mut h = Sha256::new();
        h.update([1u8; 32]);
        h.update([2u8; 32]);
        assert_eq!(
            v["subject"][0]["digest"]["sha256"],
            hex::encode(h.finalize())
        );
        assert_eq!(v["predicate"]["resources"][0]["name"], "a.json");
        assert_eq!(v["predicateType"], MODEL_SIGNING_PREDICATE);
        assert_eq!(
            v["predicate"]["serialization"]["ignore_paths"][0],
            "model.sig"
        );
    }

    #[test]
    fn ignored_paths_match_whole_components() {
        assert!(is_ignored("model.sig"));
        assert!(is_ignored(".git/config"));
        assert!(is_ignored(".gitattributes"));
        assert!(!is_ignored("sub/model.sig"));
        assert!(!is_ignored(".github-notes"));
        assert!(!is_ignored("weights.bin"));
    }
}
