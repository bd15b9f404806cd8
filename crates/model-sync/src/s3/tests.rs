use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;

use super::error::{Side, sdk_error};
use super::*;
use crate::transfer::{ModelPath, Reason};

const MIB: u64 = 1024 * 1024;

#[test]
fn directory_prefix_is_strict() {
    assert_eq!(directory_prefix("m1"), "m1/");
    assert_eq!(directory_prefix("m1/"), "m1/");
    assert_eq!(directory_prefix("a/b"), "a/b/");
    assert_eq!(directory_prefix(""), "");
    let p = directory_prefix("m1");
    // A sibling with the same leading characters is never part of the model.
    assert!(relative_path(&p, "m10/weights.bin", 5).is_none());
    assert!(relative_path(&p, "m1-old/x", 5).is_none());
    assert!(relative_path(&p, "m1", 5).is_none());
    assert_eq!(
        relative_path(&p, "m1/weights.bin", 5)
            .unwrap()
            .unwrap()
            .as_str(),
        "weights.bin"
    );
    assert_eq!(
        relative_path(&p, "m1/a/b/c.json", 5)
            .unwrap()
            .unwrap()
            .as_str(),
        "a/b/c.json"
    );
}

#[test]
fn markers_are_skipped_and_escapes_rejected() {
    let p = "m/";
    assert!(relative_path(p, "m/", 0).is_none());
    assert!(relative_path(p, "m/sub/", 0).is_none());
    assert!(
        relative_path(p, "m/sub/", 3).unwrap().is_err(),
        "non-empty object with a '/' key"
    );
    for bad in ["m/../../etc/passwd", "m/a/../../x", "m//..", "m/a\\b"] {
        let err = relative_path(p, bad, 1).unwrap().unwrap_err();
        assert_eq!(err.reason, Reason::InvalidConfiguration, "{bad}");
        assert!(err.message.contains("object key"), "{err}");
    }
}

#[test]
fn destination_keys_are_under_the_prefix() {
    let path = ModelPath::new("sub/w.bin").unwrap();
    assert_eq!(object_key("models/m1", &path), "models/m1/sub/w.bin");
    assert_eq!(object_key("models/m1/", &path), "models/m1/sub/w.bin");
    assert_eq!(object_key("", &path), "sub/w.bin");
}

#[test]
fn part_sizes_stay_within_s3_limits() {
    assert_eq!(part_size(17 * MIB, 8 * MIB).unwrap(), 8 * MIB);
    // Below S3's minimum is raised to it.
    assert_eq!(part_size(17 * MIB, MIB).unwrap(), 5 * MIB);
    // 100 GiB: 10.24 MiB needed per part → 11 MiB.
    assert_eq!(part_size(100 * 1024 * MIB, 8 * MIB).unwrap(), 11 * MIB);
    for size in [
        1,
        16 * MIB + 1,
        80 * 1024 * MIB,
        5 * 1024 * 1024 * MIB,
        10_000 * 8 * MIB + 1,
    ] {
        let part = part_size(size, 8 * MIB).unwrap();
        assert!(
            size.div_ceil(part) <= multipart::MAX_PARTS,
            "{size}: {part}"
        );
        assert_eq!(part % MIB, 0);
        assert!(part >= multipart::MIN_PART_SIZE);
    }
    assert!(part_size(60 * 1024 * 1024 * MIB, 8 * MIB).is_err());
}

fn service_error(
    status: u16,
    code: Option<&str>,
    message: &str,
) -> SdkError<GetObjectError, HttpResponse> {
    let mut meta = ErrorMetadata::builder().message(message);
    if let Some(c) = code {
        meta = meta.code(c);
    }
    let err = GetObjectError::generic(meta.build());
    let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
    SdkError::service_error(err, raw)
}

#[test]
fn errors_name_the_object_and_code_and_classify() {
    let e = sdk_error(
        &service_error(404, Some("NoSuchBucket"), "gone"),
        Side::Source,
        "reading s3://b/k",
    );
    assert_eq!(e.reason, Reason::SourceUnavailable);
    assert!(!e.transient);
    assert!(
        e.message
            .starts_with("reading s3://b/k: NoSuchBucket (HTTP 404): gone"),
        "{e}"
    );

    let e = sdk_error(
        &service_error(403, Some("SignatureDoesNotMatch"), "sig"),
        Side::Destination,
        "uploading s3://b/k",
    );
    assert_eq!(e.reason, Reason::DestinationRejected);
    assert!(!e.transient);
    assert!(e.message.contains("secret access key"), "{e}");

    let e = sdk_error(
        &service_error(403, None, ""),
        Side::Source,
        "reading s3://b/k",
    );
    assert!(e.message.contains("Forbidden (HTTP 403)"), "{e}");

    for (status, code) in [
        (503, Some("SlowDown")),
        (500, Some("InternalError")),
        (429, None),
        (400, Some("RequestTimeout")),
    ] {
        let e = sdk_error(&service_error(status, code, "x"), Side::Source, "reading");
        assert!(e.transient, "{status} {code:?}");
    }
}

#[test]
fn fingerprints_prefer_the_etag_else_size_and_modification_time() {
    use aws_smithy_types::DateTime;
    let t1 = DateTime::from_secs_and_nanos(1_700_000_000, 5);
    let t2 = DateTime::from_secs_and_nanos(1_700_000_001, 5);
    // The ETag alone decides when there is one (quotes and weakness markers ignored).
    assert_eq!(
        fingerprint("b", "m/w", 5, Some("\"abc\""), Some(&t1)).as_deref(),
        Some("etag:abc")
    );
    assert_eq!(
        fingerprint("b", "m/w", 5, Some("W/\"abc\""), Some(&t2)),
        fingerprint("b", "m/w", 9, Some("abc"), None)
    );
    // Without one: stable for the same object version, different for any change.
    let f = |bucket, key, size, t: &DateTime| fingerprint(bucket, key, size, Some(""), Some(t));
    let base = f("b", "m/w", 5, &t1).expect("fingerprint");
    assert!(base.starts_with("s3-mtime:"), "{base}");
    assert_eq!(base.len(), "s3-mtime:".len() + 32);
    assert_eq!(f("b", "m/w", 5, &t1).as_deref(), Some(base.as_str()));
    for other in [
        f("b", "m/w", 5, &t2),
        f(
            "b",
            "m/w",
            5,
            &DateTime::from_secs_and_nanos(1_700_000_000, 6),
        ),
        f("b", "m/w", 6, &t1),
        f("b", "m/x", 5, &t1),
        f("c", "m/w", 5, &t1),
    ] {
        assert_ne!(other.as_deref(), Some(base.as_str()));
    }
    // Neither: no fingerprint, the file is always transferred.
    assert_eq!(fingerprint("b", "m/w", 5, None, None), None);
    // The location is not readable from the fingerprint (it ends up in image annotations).
    assert!(!base.contains("m/w"));
}
