//! CLI > env > credential files > defaults, per layer; the settings table against the seed;
//! boolean parsing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::config::{Key, Layers, Origin, S3Credentials, Source, parse_bool};

fn s3(c: &Config) -> &crate::config::S3Location {
    match &c.source {
        Source::S3(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn layers_resolve_in_documented_order() {
    let mut cli = BTreeMap::new();
    cli.insert(Key::SourceAwsBucket, "from-cli".to_owned());
    let context = ctx(&[
        ("MODEL_SYNC_SOURCE_AWS_BUCKET", "from-env"),
        ("MODEL_SYNC_SOURCE_AWS_KEY", "key-from-env"),
    ]);
    let mut layers = Layers::new(cli, &context);
    let file = PathBuf::from("/creds/AWS_BUCKET");
    layers.set_from_file(Key::SourceAwsBucket, "from-file".into(), &file);
    layers.set_from_file(Key::SourceAwsKey, "key-from-file".into(), &file);
    layers.set_from_file(Key::SourceAwsRegion, "region-from-file".into(), &file);
    layers.set_from_file(Key::SourceType, "oci".into(), &file);

    let v = layers.get(Key::SourceAwsBucket).unwrap();
    assert_eq!((v.text.as_str(), v.origin), ("from-cli", Origin::Cli));
    let v = layers.get(Key::SourceAwsKey).unwrap();
    assert_eq!((v.text.as_str(), v.origin), ("key-from-env", Origin::Env));
    let v = layers.get(Key::SourceAwsRegion).unwrap();
    assert_eq!(v.origin, Origin::File(file.clone()));
    // A file value beats a default.
    assert_eq!(layers.get(Key::SourceType).unwrap().text, "oci");
    // Default only when nothing else.
    let v = layers.get(Key::DestinationType).unwrap();
    assert_eq!((v.text.as_str(), v.origin), ("oci", Origin::Default));
    assert!(layers.explicit(Key::DestinationType).is_none());
    assert!(layers.get(Key::ModelId).is_none());
}

#[test]
fn cli_beats_env() {
    let c = ok(
        &base_args(),
        &ctx(&[("MODEL_SYNC_SOURCE_AWS_BUCKET", "env-bucket")]),
    );
    assert_eq!(s3(&c).bucket, "models");
}

#[test]
fn env_alone_configures_a_job() {
    let env = [
        ("MODEL_SYNC_SOURCE_AWS_BUCKET", "env-bucket"),
        ("MODEL_SYNC_SOURCE_AWS_KEY", "k"),
        ("MODEL_SYNC_DESTINATION_OCI_URI", "quay.io/org/m:2"),
        ("MODEL_SYNC_REGISTRY_SERVER_ADDRESS", "http://mr"),
        ("MODEL_SYNC_REGISTRY_PORT", "8080"),
        ("MODEL_SYNC_REGISTRY_IS_SECURE", "False"),
        ("MODEL_SYNC_MODEL_ARTIFACT_ID", "3"),
    ];
    let c = ok(&[], &ctx(&env));
    assert_eq!(s3(&c).bucket, "env-bucket");
    assert_eq!(c.registry.base_url.as_str(), "http://mr:8080/");
}

#[test]
fn env_beats_credential_file_and_file_beats_default() {
    let d = tmp();
    write(d.path(), "AWS_BUCKET", "file-bucket\n");
    write(d.path(), "AWS_REGION", "eu-west-1\n");
    write(d.path(), "AWS_ACCESS_KEY_ID", "AKIAFILE\n");
    write(d.path(), "AWS_SECRET_ACCESS_KEY", "file-SECRET\n");
    let args = args_without(&["--source-aws-bucket"]);
    let mut args = args;
    args.extend(["--source-s3-credentials-path".into(), s(d.path())]);
    let c = ok(
        &args,
        &ctx(&[
            ("MODEL_SYNC_SOURCE_AWS_BUCKET", "env-bucket"),
            ("MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID", "AKIAENV"),
        ]),
    );
    let loc = s3(&c);
    assert_eq!(loc.bucket, "env-bucket");
    assert_eq!(loc.region.as_deref(), Some("eu-west-1"));
    match &loc.credentials {
        S3Credentials::Static {
            access_key_id,
            secret_access_key,
        } => {
            assert_eq!(access_key_id, "AKIAENV");
            assert_eq!(secret_access_key.expose(), "file-SECRET");
        }
        other => panic!("{other:?}"),
    }
}

/// The Python job let credential files overwrite CLI values; here the CLI wins.
#[test]
fn credential_file_does_not_override_cli() {
    let d = tmp();
    write(d.path(), "AWS_BUCKET", "file-bucket");
    write(d.path(), "AWS_SECRET_ACCESS_KEY", "file-SECRET");
    write(d.path(), "AWS_ACCESS_KEY_ID", "AKIAFILE");
    let args = args_with(&[
        "--source-s3-credentials-path",
        &s(d.path()),
        "--source-aws-secret-access-key",
        "cli-secret",
    ]);
    let c = ok(&args, &ctx(&[]));
    let loc = s3(&c);
    assert_eq!(loc.bucket, "models");
    match &loc.credentials {
        S3Credentials::Static {
            secret_access_key, ..
        } => assert_eq!(secret_access_key.expose(), "cli-secret"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_env_values_count_as_unset_and_values_are_trimmed() {
    let c = ok(
        &base_args(),
        &ctx(&[
            ("MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE", ""),
            ("MODEL_SYNC_SOURCE_AWS_REGION", "  us-east-2\n"),
        ]),
    );
    match &c.destination {
        crate::config::Destination::Oci(d) => {
            assert_eq!(d.base_image, "public.ecr.aws/docker/library/busybox:latest")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s3(&c).region.as_deref(), Some("us-east-2"));
}

#[test]
fn documented_defaults() {
    let expect = [
        (Key::SourceType, "s3"),
        (Key::DestinationType, "oci"),
        (
            Key::DestinationOciBaseImage,
            "public.ecr.aws/docker/library/busybox:latest",
        ),
        (Key::DestinationOciEnableTlsVerify, "true"),
        (Key::ModelUploadIntent, "update_artifact"),
        (Key::StoragePath, "/tmp/model-sync"),
        (Key::RegistryPort, "443"),
        (Key::RegistryIsSecure, "true"),
        (Key::RegistryRequireTls, "false"),
    ];
    for (k, v) in expect {
        assert_eq!(k.default_value(), Some(v), "{k:?}");
    }
    assert_eq!(Key::Sign.default_value(), None);
}

/// Every variable of the seed's configuration table (plus the additions) exists, with the
/// flag derived from it the way the Python job derives it.
#[test]
fn settings_table_matches_the_seed() {
    let seed = [
        "SOURCE_TYPE",
        "SOURCE_S3_CREDENTIALS_PATH",
        "SOURCE_OCI_CREDENTIALS_PATH",
        "SOURCE_URI_CREDENTIALS_PATH",
        "SOURCE_URI",
        "SOURCE_AWS_BUCKET",
        "SOURCE_AWS_KEY",
        "SOURCE_AWS_REGION",
        "SOURCE_AWS_ACCESS_KEY_ID",
        "SOURCE_AWS_SECRET_ACCESS_KEY",
        "SOURCE_AWS_ENDPOINT",
        "SOURCE_OCI_URI",
        "SOURCE_OCI_REGISTRY",
        "SOURCE_OCI_USERNAME",
        "SOURCE_OCI_PASSWORD",
        "DESTINATION_TYPE",
        "DESTINATION_S3_CREDENTIALS_PATH",
        "DESTINATION_OCI_CREDENTIALS_PATH",
        "DESTINATION_AWS_BUCKET",
        "DESTINATION_AWS_KEY",
        "DESTINATION_AWS_REGION",
        "DESTINATION_AWS_ACCESS_KEY_ID",
        "DESTINATION_AWS_SECRET_ACCESS_KEY",
        "DESTINATION_AWS_ENDPOINT",
        "DESTINATION_OCI_URI",
        "DESTINATION_OCI_REGISTRY",
        "DESTINATION_OCI_USERNAME",
        "DESTINATION_OCI_PASSWORD",
        "DESTINATION_OCI_BASE_IMAGE",
        "DESTINATION_OCI_ENABLE_TLS_VERIFY",
        "MODEL_UPLOAD_INTENT",
        "MODEL_ID",
        "MODEL_VERSION_ID",
        "MODEL_ARTIFACT_ID",
        "STORAGE_PATH",
        "REGISTRY_SERVER_ADDRESS",
        "REGISTRY_PORT",
        "REGISTRY_IS_SECURE",
        "REGISTRY_AUTHOR",
        "REGISTRY_USER_TOKEN",
        "REGISTRY_USER_TOKEN_ENVVAR",
        "REGISTRY_CUSTOM_CA",
        "REGISTRY_CUSTOM_CA_ENVVAR",
        "REGISTRY_LOG_LEVEL",
        "SIGN",
        "SIGNING_IDENTITY_TOKEN_PATH",
        // Additions.
        "METADATA_CONFIGMAP_PATH",
        "SOURCE_PATH",
        "DESTINATION_PATH",
        "SOURCE_OCI_ENABLE_TLS_VERIFY",
        "SIGNING_KEY_PATH",
        "CONCURRENCY",
        "SIGNING_TUF_ROOT_PATH",
        "REGISTRY_REQUIRE_TLS",
        "DESTINATION_OCI_PART_MIB",
        "RESUME_JOURNAL",
    ];
    let envs: Vec<&str> = Key::ALL.iter().map(|k| k.env()).collect();
    for name in seed {
        let env = format!("MODEL_SYNC_{name}");
        assert!(envs.contains(&env.as_str()), "{env} missing");
    }
    assert_eq!(envs.len(), seed.len(), "unexpected extra settings");
    for k in Key::ALL {
        let derived = format!(
            "MODEL_SYNC_{}",
            k.flag_name().to_uppercase().replace('-', "_")
        );
        assert_eq!(k.env(), derived, "{k:?}");
    }
    let secrets: Vec<Key> = Key::ALL.iter().copied().filter(|k| k.is_secret()).collect();
    assert_eq!(
        secrets,
        [
            Key::SourceAwsSecretAccessKey,
            Key::SourceOciPassword,
            Key::DestinationAwsSecretAccessKey,
            Key::DestinationOciPassword,
            Key::RegistryUserToken
        ]
    );
}

#[test]
fn booleans_accept_the_python_set_case_insensitively() {
    for t in ["yes", "Y", "TRUE", "t", "1", "True"] {
        assert!(parse_bool(Key::RegistryIsSecure, t).unwrap(), "{t}");
    }
    for f in ["no", "N", "false", "F", "0", "FALSE"] {
        assert!(!parse_bool(Key::RegistryIsSecure, f).unwrap(), "{f}");
    }
    for bad in ["maybe", "2", "on", "off", "ja"] {
        let e = parse_bool(Key::RegistryIsSecure, bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--registry-is-secure (MODEL_SYNC_REGISTRY_IS_SECURE)"),
            "{e}"
        );
        assert!(e.contains(bad), "{e}");
    }
}

#[test]
fn bare_boolean_flag_means_true() {
    let c = ok(
        &args_with(&["--destination-oci-enable-tls-verify"]),
        &ctx(&[("MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY", "false")]),
    );
    match &c.destination {
        crate::config::Destination::Oci(d) => assert!(d.location.tls_verify),
        other => panic!("{other:?}"),
    }
    let c = ok(
        &base_args(),
        &ctx(&[("MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY", "n")]),
    );
    match &c.destination {
        crate::config::Destination::Oci(d) => assert!(!d.location.tls_verify),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flag_values_may_start_with_a_dash() {
    let c = ok(
        &args_with(&["--registry-user-token", "-tok-SECRET-registry"]),
        &ctx(&[]),
    );
    assert_eq!(c.registry.token.unwrap().expose(), "-tok-SECRET-registry");
}

#[test]
fn equals_syntax_is_accepted() {
    let mut args = args_without(&["--source-aws-bucket"]);
    args.push("--source-aws-bucket=eq-bucket".into());
    assert_eq!(s3(&ok(&args, &ctx(&[]))).bucket, "eq-bucket");
}

#[test]
fn without_aws_region_anywhere_the_location_has_none_and_the_client_uses_the_default() {
    let c = ok(&base_args(), &ctx(&[]));
    assert_eq!(s3(&c).region, None);
    assert_eq!(crate::s3::region(s3(&c)), crate::s3::DEFAULT_REGION);
}

#[test]
fn the_environment_region_is_read_once_by_config_and_a_configured_region_wins() {
    let c = ok(&base_args(), &ctx(&[("AWS_DEFAULT_REGION", "eu-north-1")]));
    assert_eq!(s3(&c).region.as_deref(), Some("eu-north-1"));
    let env = ctx(&[
        ("AWS_REGION", "eu-west-3"),
        ("AWS_DEFAULT_REGION", "eu-north-1"),
    ]);
    let c = ok(&base_args(), &env);
    assert_eq!(s3(&c).region.as_deref(), Some("eu-west-3"));
    assert_eq!(crate::s3::region(s3(&c)), "eu-west-3");
    let mut args = base_args();
    args.extend(["--source-aws-region".to_owned(), "us-west-2".to_owned()]);
    assert_eq!(s3(&ok(&args, &env)).region.as_deref(), Some("us-west-2"));
}
