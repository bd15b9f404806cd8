//! What the S3 destination records in the resume journal (`--resume-journal`, the shared file of
//! `transfer/journal.rs`), so that a rerun after a kill continues each multipart upload in
//! flight from its first part not recorded, and skips the objects already written.
//!
//! Why the journal records each part's ETag as the server answered it: a rerun then needs
//! neither `ListMultipartUploads` (to find the upload) nor `ListParts` (to learn the ETags),
//! which not every S3-compatible server implements (s3s-fs 0.14.1, the test server, has no
//! `ListMultipartUploads`, and its `ListParts` answers no ETags).
//!
//! Per object (keyed by bucket, key and size, see [`object_key`]):
//! - `Upload`: the multipart upload id and its part size, recorded as soon as it is created;
//! - `Part` (one per acknowledged `UploadPart`, under [`part_key`]): the part's ETag;
//! - `Done`: the object's ETag and the sha256 of the bytes written.
//!
//! How a rerun uses them (`resume.rs`), trusting none blindly:
//! - `Done`: the object is skipped only when a `HEAD` finds it with that ETag and size and the
//!   source, read again (nothing sent), still has that sha256.
//! - `Upload`: the source is read again from its first byte in parts of the recorded size; a
//!   recorded part is not sent again only when the MD5 of the bytes read now equals its ETag
//!   (the ETag S3 gives a part not encrypted with KMS or a customer key); any other part is
//!   sent, under the same number. `CompleteMultipartUpload` then names every part's ETag (S3
//!   checks them; s3s-fs does not, hence the MD5 check here). When the server no longer knows
//!   the upload (`NoSuchUpload`, HTTP 404; s3s-fs answers `AccessDenied`), the object starts
//!   over with a new upload, with a log line.
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// One object's progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub(crate) enum Entry {
    /// A multipart upload in progress.
    Upload { upload_id: String, part_size: u64 },
    /// A part the server acknowledged in `upload_id`.
    Part { upload_id: String, e_tag: String },
    /// An object written whole.
    Done {
        e_tag: String,
        sha256: String,
        len: u64,
    },
}

pub(crate) type Journal = crate::transfer::journal::Journal<Entry>;

/// The key of an object: its bucket, key and size.
pub(crate) fn object_key(bucket: &str, key: &str, size: u64) -> String {
    hex::encode(Sha256::digest(
        format!("{bucket}\n{key}\n{size}").as_bytes(),
    ))
}

/// The prefix of an object's part keys.
pub(crate) fn parts_prefix(object: &str) -> String {
    format!("{object}.part.")
}

/// The key of part `number` of an object (zero-padded, so keys sort by number).
pub(crate) fn part_key(object: &str, number: i32) -> String {
    format!("{}{number:05}", parts_prefix(object))
}

/// The ETags recorded for the parts of `upload_id`, by part number.
pub(crate) fn recorded_parts(
    journal: &Journal,
    object: &str,
    upload_id: &str,
) -> std::collections::BTreeMap<i32, String> {
    let prefix = parts_prefix(object);
    journal
        .with_prefix(&prefix)
        .into_iter()
        .filter_map(|(k, e)| match e {
            Entry::Part {
                upload_id: id,
                e_tag,
            } if id == upload_id => Some((k[prefix.len()..].parse().ok()?, e_tag)),
            _ => None,
        })
        .collect()
}

/// Whether `e_tag` is the MD5 of `bytes` (S3's ETag of a part not encrypted with KMS or a
/// customer key).
pub(crate) fn md5_matches(e_tag: &str, bytes: &[u8]) -> bool {
    use md5::Digest as _;
    let md5 = hex::encode(md5::Md5::digest(bytes));
    e_tag.trim_matches('"').eq_ignore_ascii_case(&md5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_another_upload_are_not_this_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j"), "s3").unwrap();
        let obj = object_key("b", "m/w.bin", 100);
        let part = |id: &str, tag: &str| Entry::Part {
            upload_id: id.into(),
            e_tag: tag.into(),
        };
        j.set(&part_key(&obj, 1), part("u1", "\"a\""));
        j.set(&part_key(&obj, 2), part("u1", "\"b\""));
        j.set(&part_key(&obj, 3), part("u0", "\"c\""));
        j.set(
            &part_key(&object_key("b", "m/w.bin", 101), 4),
            part("u1", "\"d\""),
        );
        let got = recorded_parts(&j, &obj, "u1");
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![(1, "\"a\"".to_owned()), (2, "\"b\"".to_owned())]
        );
    }

    #[test]
    fn an_md5_etag_matches_its_bytes_only() {
        // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
        assert!(md5_matches("\"900150983cd24fb0d6963f7d28e17f72\"", b"abc"));
        assert!(md5_matches("900150983CD24FB0D6963F7D28E17F72", b"abc"));
        assert!(!md5_matches("\"900150983cd24fb0d6963f7d28e17f72\"", b"abd"));
        // A KMS-encrypted part's ETag is no MD5 of its bytes: the part is sent again.
        assert!(!md5_matches(
            "\"9b2cf535f27731c974343645a3985328-1\"",
            b"abc"
        ));
    }
}
