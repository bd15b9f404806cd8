//! Keys, URIs, ETags and fingerprints of S3 objects: the small pure helpers both the source and
//! the destination need.
use crate::config::S3Location;
use crate::transfer::{ModelPath, TransferError};

/// What identifies an endpoint for server-side copies: its URL without a trailing slash, empty
/// for the SDK's default (AWS, where copies across regions work too).
pub(crate) fn endpoint_id(location: &S3Location) -> String {
    location
        .endpoint
        .as_ref()
        .map(|e| e.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// `s3://bucket/key`.
pub(crate) fn s3_uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// The "directory" a source key names: the key itself when it ends with `/` (or is empty: the
/// whole bucket), else `key/`. Listing this prefix matches `model/…` but never `model-v2/…`.
pub fn directory_prefix(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        key.to_owned()
    } else {
        format!("{key}/")
    }
}

/// The model path of `object_key` under `prefix` (from [`directory_prefix`]): `None` for keys
/// outside the prefix and for zero-byte directory markers (`…/`), an error for keys that are not
/// safe relative paths (`a/../../etc`) or non-empty objects whose key ends with `/`.
pub fn relative_path(
    prefix: &str,
    object_key: &str,
    size: u64,
) -> Option<Result<ModelPath, TransferError>> {
    let rel = object_key.strip_prefix(prefix)?;
    if rel.is_empty() || rel.ends_with('/') {
        if size == 0 {
            return None;
        }
        return Some(Err(TransferError::invalid_input(format!(
            "object {object_key:?} ({size} bytes) has a directory-like key ending in '/'"
        ))));
    }
    Some(ModelPath::new(rel).map_err(|e| e.context(format!("object key {object_key:?}"))))
}

/// The destination key of a model file: `<key>/<path>` (the configured key is always a prefix,
/// also for single-file models; an empty key means the bucket root).
pub fn object_key(prefix_key: &str, path: &ModelPath) -> String {
    let base = prefix_key.trim_end_matches('/');
    if base.is_empty() {
        path.as_str().to_owned()
    } else {
        format!("{base}/{path}")
    }
}

/// An ETag without quotes or weakness marker, for comparisons.
pub(crate) fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// The fingerprint of one version of an S3 object, used to recognise an unchanged file on a
/// rerun (e.g. a modelcar layer is reused instead of uploaded again):
/// - `etag:<etag>` when the server reports an ETag: it changes whenever the content does;
/// - else `s3-mtime:<32 hex digits>`, a digest of the object's bucket, key, size and
///   last-modified time (some S3-compatible servers list no ETags). Any overwrite sets a new
///   last-modified time, so a changed object gets a new fingerprint; the one blind spot is an
///   overwrite with the same size within the server's timestamp resolution. The location is
///   hashed rather than spelled out because fingerprints end up in image annotations;
/// - `None` when the server reports neither (the file is always transferred).
pub fn fingerprint(
    bucket: &str,
    key: &str,
    size: u64,
    etag: Option<&str>,
    last_modified: Option<&aws_smithy_types::DateTime>,
) -> Option<String> {
    if let Some(tag) = etag.map(bare_etag).filter(|t| !t.is_empty()) {
        return Some(format!("etag:{tag}"));
    }
    let modified = last_modified?;
    let text = format!(
        "bucket={bucket}\nkey={key}\nsize={size}\nmodified={}.{:09}\n",
        modified.secs(),
        modified.subsec_nanos()
    );
    let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
    Some(format!("s3-mtime:{}", &hex::encode(digest)[..32]))
}
