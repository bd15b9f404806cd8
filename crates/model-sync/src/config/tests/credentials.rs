//! Credential layouts: S3 data-connection directory, docker config.json, URI directory.

use base64::Engine as _;

use super::*;
use crate::config::{Destination, OciLocation, S3Credentials, S3Location, Source, UriSource};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn src_s3(c: &Config) -> &S3Location {
    match &c.source {
        Source::S3(s) => s,
        other => panic!("{other:?}"),
    }
}

fn dst_oci(c: &Config) -> &OciLocation {
    match &c.destination {
        Destination::Oci(d) => &d.location,
        other => panic!("{other:?}"),
    }
}

fn s3_job(dir: &std::path::Path) -> Vec<String> {
    let mut args = args_without(&["--source-aws-bucket"]);
    args.extend(["--source-s3-credentials-path".into(), s(dir)]);
    args
}

#[test]
fn s3_directory_full_layout_is_trimmed() {
    let d = tmp();
    write(d.path(), "AWS_ACCESS_KEY_ID", "AKIAFILE\n");
    write(d.path(), "AWS_SECRET_ACCESS_KEY", "file-SECRET\r\n");
    write(d.path(), "AWS_REGION", " us-east-1 \n");
    write(d.path(), "AWS_ENDPOINT_URL", "http://minio.ns.svc:9000\n");
    write(d.path(), "AWS_BUCKET", "bucket-from-file\n");
    let c = ok(&s3_job(d.path()), &ctx(&[]));
    let loc = src_s3(&c);
    assert_eq!(loc.bucket, "bucket-from-file");
    assert_eq!(loc.region.as_deref(), Some("us-east-1"));
    assert_eq!(
        loc.endpoint.as_ref().unwrap().as_str(),
        "http://minio.ns.svc:9000/"
    );
    assert_eq!(
        loc.credentials,
        S3Credentials::Static {
            access_key_id: "AKIAFILE".into(),
            secret_access_key: crate::config::Secret::new("file-SECRET".into()),
        }
    );
}

#[test]
fn s3_directory_alternative_file_names() {
    let d = tmp();
    write(d.path(), "AWS_DEFAULT_REGION", "ap-south-1");
    write(d.path(), "AWS_S3_ENDPOINT", "https://s3.example");
    write(d.path(), "AWS_S3_BUCKET", "alt-bucket");
    let c = ok(&s3_job(d.path()), &ctx(&[]));
    let loc = src_s3(&c);
    assert_eq!(loc.bucket, "alt-bucket");
    assert_eq!(loc.region.as_deref(), Some("ap-south-1"));
    assert_eq!(
        loc.endpoint.as_ref().unwrap().host_str(),
        Some("s3.example")
    );
    // No keys anywhere: the standard AWS chain.
    assert_eq!(loc.credentials, S3Credentials::DefaultChain);
}

#[test]
fn s3_directory_prefers_primary_names() {
    let d = tmp();
    write(d.path(), "AWS_REGION", "primary");
    write(d.path(), "AWS_DEFAULT_REGION", "secondary");
    write(d.path(), "AWS_BUCKET", "b1");
    write(d.path(), "AWS_S3_BUCKET", "b2");
    write(d.path(), "AWS_ENDPOINT_URL", "http://one");
    write(d.path(), "AWS_S3_ENDPOINT", "http://two");
    let c = ok(&s3_job(d.path()), &ctx(&[]));
    let loc = src_s3(&c);
    assert_eq!(loc.region.as_deref(), Some("primary"));
    assert_eq!(loc.bucket, "b1");
    assert_eq!(loc.endpoint.as_ref().unwrap().host_str(), Some("one"));
}

#[test]
fn blank_credential_files_count_as_absent() {
    let d = tmp();
    write(d.path(), "AWS_BUCKET", "b");
    write(d.path(), "AWS_ACCESS_KEY_ID", "\n");
    write(d.path(), "AWS_SECRET_ACCESS_KEY", "  ");
    let c = ok(&s3_job(d.path()), &ctx(&[]));
    assert_eq!(src_s3(&c).credentials, S3Credentials::DefaultChain);
}

#[test]
fn destination_s3_directory() {
    let d = tmp();
    write(d.path(), "AWS_BUCKET", "dst-bucket");
    write(d.path(), "AWS_ACCESS_KEY_ID", "AKIADST");
    write(d.path(), "AWS_SECRET_ACCESS_KEY", "aws-SECRET-dst");
    let args = args_with(&[
        "--destination-type",
        "s3",
        "--destination-s3-credentials-path",
        &s(d.path()),
        "--destination-aws-key",
        "out/",
    ]);
    let c = ok(&args, &ctx(&[]));
    match &c.destination {
        Destination::S3(loc) => {
            assert_eq!(loc.bucket, "dst-bucket");
            assert!(matches!(loc.credentials, S3Credentials::Static { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("--destination-oci-uri"))
    );
}

fn docker_job(config_path: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut a = args_with(&["--destination-oci-credentials-path", &s(config_path)]);
    let mut i = 0;
    while i < extra.len() {
        let pos = a.iter().position(|x| x == extra[i]);
        match pos {
            Some(p) => a[p + 1] = extra[i + 1].to_owned(),
            None => a.extend([extra[i].to_owned(), extra[i + 1].to_owned()]),
        }
        i += 2;
    }
    a
}

#[test]
fn docker_config_matched_by_registry_setting() {
    let d = tmp();
    let cfg = write(
        d.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"quay.io": {{"auth": "{}"}}, "ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("robot:oci-SECRET-dst"),
            b64("other:x")
        ),
    );
    let c = ok(
        &docker_job(&cfg, &["--destination-oci-registry", "quay.io"]),
        &ctx(&[]),
    );
    let creds = dst_oci(&c).credentials.as_ref().unwrap();
    assert_eq!(creds.username, "robot");
    assert_eq!(creds.password.expose(), "oci-SECRET-dst");
}

#[test]
fn docker_config_matched_by_uri_host_and_https_prefixed_key() {
    let d = tmp();
    let cfg = write(
        d.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"https://quay.io/v2/": {{"auth": "{}"}}}}}}"#,
            b64("robot:oci-SECRET-dst")
        ),
    );
    let c = ok(&docker_job(&cfg, &[]), &ctx(&[]));
    assert_eq!(dst_oci(&c).credentials.as_ref().unwrap().username, "robot");
}

#[test]
fn docker_hub_aliases() {
    let d = tmp();
    let cfg = write(
        d.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}}}}}"#,
            b64("hubuser:oci-SECRET-dst")
        ),
    );
    for uri in [
        "docker.io/org/model:1",
        "org/model:1",
        "registry-1.docker.io/org/model:1",
    ] {
        let c = ok(
            &docker_job(&cfg, &["--destination-oci-uri", uri]),
            &ctx(&[]),
        );
        assert_eq!(
            dst_oci(&c).credentials.as_ref().unwrap().username,
            "hubuser",
            "{uri}"
        );
    }
}

#[test]
fn docker_config_username_password_fields_and_secret_directory() {
    let d = tmp();
    write(
        d.path(),
        ".dockerconfigjson",
        r#"{"auths": {"quay.io": {"username": "u1", "password": "oci-SECRET-dst"}}}"#,
    );
    let c = ok(&docker_job(d.path(), &[]), &ctx(&[]));
    let creds = dst_oci(&c).credentials.as_ref().unwrap();
    assert_eq!(creds.username, "u1");
    assert_eq!(creds.password.expose(), "oci-SECRET-dst");
}

#[test]
fn repository_scoped_key_beats_host_key() {
    let d = tmp();
    let cfg = write(
        d.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"quay.io": {{"auth": "{}"}}, "quay.io/org": {{"auth": "{}"}}}}}}"#,
            b64("host-level:x"),
            b64("org-level:oci-SECRET-dst")
        ),
    );
    let c = ok(&docker_job(&cfg, &[]), &ctx(&[]));
    assert_eq!(
        dst_oci(&c).credentials.as_ref().unwrap().username,
        "org-level"
    );
}

#[test]
fn flags_beat_docker_config() {
    let d = tmp();
    let cfg = write(
        d.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"quay.io": {{"auth": "{}"}}}}}}"#,
            b64("fileuser:file-SECRET")
        ),
    );
    let c = ok(
        &docker_job(
            &cfg,
            &[
                "--destination-oci-username",
                "cliuser",
                "--destination-oci-password",
                "oci-SECRET-dst",
            ],
        ),
        &ctx(&[]),
    );
    let creds = dst_oci(&c).credentials.as_ref().unwrap();
    assert_eq!(creds.username, "cliuser");
    assert_eq!(creds.password.expose(), "oci-SECRET-dst");
}

#[test]
fn docker_config_without_matching_entry_lists_entries_only() {
    let d = tmp();
    let cfg = write(
        d.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("u:file-SECRET")
        ),
    );
    let e = err(&docker_job(&cfg, &[]), &ctx(&[]));
    assert!(e.contains("--destination-oci-credentials-path"), "{e}");
    assert!(e.contains("no credentials for registry quay.io"), "{e}");
    assert!(e.contains("ghcr.io"), "{e}");
}

#[test]
fn oci_source_credentials_from_docker_config() {
    let d = tmp();
    let cfg = write(
        d.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"localhost:5000": {{"auth": "{}"}}}}}}"#,
            b64("puller:oci-SECRET-src")
        ),
    );
    let args = args_with(&[
        "--source-type",
        "oci",
        "--source-oci-uri",
        "oci://localhost:5000/models/m:v1",
        "--source-oci-credentials-path",
        &s(&cfg),
    ]);
    let c = ok(&args, &ctx(&[]));
    match &c.source {
        Source::Oci(o) => assert_eq!(o.credentials.as_ref().unwrap().username, "puller"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn uri_credentials_directory() {
    let d = tmp();
    write(d.path(), "URI", "https://models.example/m.zip\n");
    let args = args_with(&[
        "--source-type",
        "uri",
        "--source-uri-credentials-path",
        &s(d.path()),
    ]);
    let c = ok(&args, &ctx(&[]));
    match &c.source {
        Source::Uri(UriSource::Http(u)) => assert_eq!(u.as_str(), "https://models.example/m.zip"),
        other => panic!("{other:?}"),
    }
    // An explicit --source-uri wins over the file.
    let mut args2 = args.clone();
    args2.extend(["--source-uri".into(), "https://other.example/x".into()]);
    let c = ok(&args2, &ctx(&[]));
    assert!(
        matches!(&c.source, Source::Uri(UriSource::Http(u)) if u.host_str() == Some("other.example"))
    );
}

#[test]
fn uri_directory_without_uri_file() {
    let d = tmp();
    let args = args_with(&[
        "--source-type",
        "uri",
        "--source-uri-credentials-path",
        &s(d.path()),
    ]);
    let e = err(&args, &ctx(&[]));
    assert!(
        e.contains("--source-uri-credentials-path (MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH)"),
        "{e}"
    );
    assert!(e.contains("URI"), "{e}");
}

/// The Python job's sample `.dockerconfigjson`: `"auth": ""` plus an e-mail means anonymous.
#[test]
fn empty_auth_in_docker_config_is_anonymous() {
    let d = tmp();
    let cfg = write(
        d.path(),
        ".dockerconfigjson",
        r#"{"auths": {"quay.io": {"auth": "","email": "user@example.com"}}}"#,
    );
    let c = ok(
        &docker_job(&cfg, &["--destination-oci-registry", "quay.io"]),
        &ctx(&[]),
    );
    assert_eq!(dst_oci(&c).credentials, None);
    assert!(
        c.warnings.iter().any(|w| w.contains("anonymously")),
        "{:?}",
        c.warnings
    );
}

/// A plain-text `user:password` in `auth` is what the Python job falls back to when the value
/// is not base64 of `user:password`; accepted, with a warning naming the entry, never the value.
#[test]
fn plain_text_auth_in_docker_config_is_accepted() {
    let d = tmp();
    let cfg = write(
        d.path(),
        "config.json",
        r#"{"auths": {"quay.io": {"auth": "robot:oci-SECRET-dst"}}}"#,
    );
    let c = ok(
        &docker_job(&cfg, &["--destination-oci-registry", "quay.io"]),
        &ctx(&[]),
    );
    let creds = dst_oci(&c).credentials.as_ref().unwrap();
    assert_eq!(creds.username, "robot");
    assert_eq!(creds.password.expose(), "oci-SECRET-dst");
    let w = c.warnings.join("\n");
    assert!(w.contains("plain-text") && w.contains("\"quay.io\""), "{w}");
    assert_no_secret(&w);
    assert_no_secret(&c.summary());
}
