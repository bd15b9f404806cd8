//! Invalid inputs. Every case carries planted secrets (registry token, S3 secret key, OCI
//! password) and checks that the message names the setting and leaks none of them.

use super::*;

/// A valid job that also carries every kind of secret.
fn secret_base() -> Vec<String> {
    args_with(&[
        "--registry-user-token",
        "tok-SECRET-registry",
        "--source-aws-access-key-id",
        "AKIAEXAMPLE",
        "--source-aws-secret-access-key",
        "aws-SECRET-src",
        "--destination-oci-username",
        "robot",
        "--destination-oci-password",
        "oci-SECRET-dst",
    ])
}

/// Replaces or appends flags on top of `secret_base`.
fn with(extra: &[&str]) -> Vec<String> {
    let mut a = secret_base();
    let mut i = 0;
    while i < extra.len() {
        let has_value = i + 1 < extra.len() && !extra[i + 1].starts_with("--");
        match (a.iter().position(|x| x == extra[i]), has_value) {
            (Some(p), true) => a[p + 1] = extra[i + 1].to_owned(),
            (None, true) => a.extend([extra[i].to_owned(), extra[i + 1].to_owned()]),
            (_, false) => a.push(extra[i].to_owned()),
        }
        i += if has_value { 2 } else { 1 };
    }
    a
}

fn without(flags: &[&str]) -> Vec<String> {
    let base = secret_base();
    let mut out = Vec::new();
    let mut i = 0;
    while i < base.len() {
        if flags.contains(&base[i].as_str()) {
            i += 2;
        } else {
            out.push(base[i].clone());
            i += 1;
        }
    }
    out
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    expect: Vec<&'static str>,
}

fn case(name: &'static str, args: Vec<String>, expect: &[&'static str]) -> Case {
    Case {
        name,
        args,
        env: Vec::new(),
        expect: expect.to_vec(),
    }
}

fn check(c: Case) {
    let env: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let msg = err(&c.args, &ctx(&env));
    for e in &c.expect {
        assert!(msg.contains(e), "[{}] expected {e:?} in:\n{msg}", c.name);
    }
}

#[test]
fn invalid_inputs_name_the_setting_and_hide_secrets() {
    let meta = tmp();
    write(meta.path(), "ModelVersion.name", "1.0.0");
    let bad_json = tmp();
    write(bad_json.path(), "RegisteredModel.name", "m");
    write(bad_json.path(), "ModelVersion.name", "v");
    write(
        bad_json.path(),
        "ModelVersion.custom_properties",
        "not json",
    );
    let not_pem = tmp();
    let not_pem_file = write(not_pem.path(), "ca.pem", "hello");
    let file = write(not_pem.path(), "plain-file", "x");
    let s3_as_file = s(&file);
    let no_entry = write(not_pem.path(), "config.json", r#"{"auths": {}}"#);

    let cases = vec![
        case(
            "unknown source type",
            with(&["--source-type", "ftp"]),
            &[
                "--source-type (MODEL_SYNC_SOURCE_TYPE)",
                "\"ftp\"",
                "s3, oci, uri, pvc",
            ],
        ),
        case(
            "unknown destination type",
            with(&["--destination-type", "uri"]),
            &[
                "--destination-type (MODEL_SYNC_DESTINATION_TYPE)",
                "oci, s3, pvc",
            ],
        ),
        case(
            "missing bucket",
            without(&["--source-aws-bucket"]),
            &[
                "--source-aws-bucket (MODEL_SYNC_SOURCE_AWS_BUCKET) is required when --source-type is s3",
            ],
        ),
        case(
            "missing key",
            without(&["--source-aws-key"]),
            &["--source-aws-key (MODEL_SYNC_SOURCE_AWS_KEY) is required when --source-type is s3"],
        ),
        case(
            "access key without secret",
            without(&["--source-aws-secret-access-key"]),
            &[
                "--source-aws-secret-access-key (MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY) is required when --source-aws-access-key-id",
            ],
        ),
        case(
            "secret without access key",
            without(&["--source-aws-access-key-id"]),
            &[
                "--source-aws-access-key-id (MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID) is required when --source-aws-secret-access-key",
            ],
        ),
        case(
            "bad endpoint",
            with(&["--source-aws-endpoint", "minio:9000"]),
            &[
                "--source-aws-endpoint (MODEL_SYNC_SOURCE_AWS_ENDPOINT)",
                "http:// or https://",
            ],
        ),
        case(
            "bucket with a path",
            with(&["--source-aws-bucket", "bucket/prefix"]),
            &[
                "--source-aws-bucket (MODEL_SYNC_SOURCE_AWS_BUCKET)",
                "without '/'",
            ],
        ),
        case(
            "missing source oci uri",
            with(&["--source-type", "oci"]),
            &["--source-oci-uri (MODEL_SYNC_SOURCE_OCI_URI) is required when --source-type is oci"],
        ),
        case(
            "malformed oci reference",
            with(&["--destination-oci-uri", "Quay.io/UPPER case:tag"]),
            &[
                "--destination-oci-uri (MODEL_SYNC_DESTINATION_OCI_URI)",
                "image reference",
            ],
        ),
        case(
            "oci user without password",
            without(&["--destination-oci-password"]),
            &[
                "--destination-oci-password (MODEL_SYNC_DESTINATION_OCI_PASSWORD) is required when --destination-oci-username",
            ],
        ),
        case(
            "oci registry mismatch",
            with(&["--destination-oci-registry", "ghcr.io"]),
            &[
                "--destination-oci-registry (MODEL_SYNC_DESTINATION_OCI_REGISTRY)",
                "quay.io",
            ],
        ),
        case(
            "destination pinned by digest",
            with(&[
                "--destination-oci-uri",
                "quay.io/org/m@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ]),
            &[
                "--destination-oci-uri (MODEL_SYNC_DESTINATION_OCI_URI)",
                "no @digest",
            ],
        ),
        case(
            "bad base image",
            with(&["--destination-oci-base-image", "Not An Image"]),
            &["--destination-oci-base-image (MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE)"],
        ),
        case(
            "bad tls verify bool",
            with(&["--destination-oci-enable-tls-verify", "maybe"]),
            &[
                "--destination-oci-enable-tls-verify (MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY)",
                "\"maybe\"",
                "boolean",
            ],
        ),
        case(
            "bad is-secure bool",
            with(&["--registry-is-secure", "perhaps"]),
            &[
                "--registry-is-secure (MODEL_SYNC_REGISTRY_IS_SECURE)",
                "boolean",
            ],
        ),
        case(
            "missing registry address",
            without(&["--registry-server-address"]),
            &["--registry-server-address (MODEL_SYNC_REGISTRY_SERVER_ADDRESS) is required"],
        ),
        case(
            "non-numeric port",
            with(&["--registry-port", "http"]),
            &[
                "--registry-port (MODEL_SYNC_REGISTRY_PORT)",
                "\"http\"",
                "1 and 65535",
            ],
        ),
        case(
            "port out of range",
            with(&["--registry-port", "70000"]),
            &["--registry-port (MODEL_SYNC_REGISTRY_PORT)", "70000"],
        ),
        case(
            "http with a token in strict mode",
            with(&[
                "--registry-is-secure",
                "true",
                "--registry-require-tls",
                "true",
            ]),
            &[
                "--registry-server-address (MODEL_SYNC_REGISTRY_SERVER_ADDRESS) uses http://",
                "--registry-require-tls (MODEL_SYNC_REGISTRY_REQUIRE_TLS) is true",
                "from --registry-user-token",
            ],
        ),
        case(
            "bad require-tls bool",
            with(&["--registry-require-tls", "sometimes"]),
            &[
                "--registry-require-tls (MODEL_SYNC_REGISTRY_REQUIRE_TLS)",
                "\"sometimes\"",
            ],
        ),
        case(
            "address with credentials",
            with(&[
                "--registry-server-address",
                "https://admin:pw-in-url@mr.example",
            ]),
            &[
                "--registry-server-address (MODEL_SYNC_REGISTRY_SERVER_ADDRESS)",
                "credentials",
            ],
        ),
        case(
            "address port conflicts with port setting",
            with(&["--registry-server-address", "http://localhost:9000"]),
            &[
                "--registry-server-address (MODEL_SYNC_REGISTRY_SERVER_ADDRESS) names port 9000",
                "--registry-port (MODEL_SYNC_REGISTRY_PORT) is 8080",
            ],
        ),
        case(
            "secure registry without any token",
            {
                let mut a = without(&["--registry-user-token"]);
                let p = a.iter().position(|x| x == "http://localhost").unwrap();
                a[p] = "https://mr.example".into();
                let p = a.iter().position(|x| x == "--registry-is-secure").unwrap();
                a[p + 1] = "true".into();
                a
            },
            &[
                "--registry-user-token (MODEL_SYNC_REGISTRY_USER_TOKEN) is required when --registry-is-secure is true",
            ],
        ),
        case(
            "token envvar names an unset variable",
            {
                let mut a = without(&["--registry-user-token"]);
                a.extend([
                    "--registry-user-token-envvar".into(),
                    "NOT_SET_ANYWHERE".into(),
                ]);
                a
            },
            &[
                "--registry-user-token-envvar (MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR)",
                "NOT_SET_ANYWHERE is not set",
            ],
        ),
        case(
            "custom CA file missing",
            with(&["--registry-custom-ca", "/nonexistent/ca.pem"]),
            &[
                "--registry-custom-ca (MODEL_SYNC_REGISTRY_CUSTOM_CA)",
                "/nonexistent/ca.pem",
            ],
        ),
        case(
            "custom CA not PEM",
            with(&["--registry-custom-ca", &s(&not_pem_file)]),
            &[
                "--registry-custom-ca (MODEL_SYNC_REGISTRY_CUSTOM_CA)",
                "BEGIN CERTIFICATE",
            ],
        ),
        case(
            "bad log level",
            with(&["--registry-log-level", "loud"]),
            &[
                "--registry-log-level (MODEL_SYNC_REGISTRY_LOG_LEVEL)",
                "\"loud\"",
            ],
        ),
        case(
            "unknown intent",
            with(&["--model-upload-intent", "delete_model"]),
            &[
                "--model-upload-intent (MODEL_SYNC_MODEL_UPLOAD_INTENT)",
                "update_artifact, create_model, create_version",
            ],
        ),
        case(
            "update_artifact without artifact id",
            without(&["--model-artifact-id"]),
            &[
                "--model-artifact-id (MODEL_SYNC_MODEL_ARTIFACT_ID) is required when --model-upload-intent is update_artifact",
            ],
        ),
        case(
            "non-numeric artifact id",
            with(&["--model-artifact-id", "abc"]),
            &[
                "--model-artifact-id (MODEL_SYNC_MODEL_ARTIFACT_ID)",
                "\"abc\"",
                "positive decimal id",
            ],
        ),
        case(
            "create_model without metadata",
            with(&["--model-upload-intent", "create_model"]),
            &[
                "--metadata-configmap-path (MODEL_SYNC_METADATA_CONFIGMAP_PATH) is required when --model-upload-intent is create_model",
            ],
        ),
        case(
            "create_model without model name",
            with(&[
                "--model-upload-intent",
                "create_model",
                "--metadata-configmap-path",
                &s(meta.path()),
            ]),
            &[
                "metadata key RegisteredModel.name",
                "is required when --model-upload-intent is create_model",
            ],
        ),
        case(
            "create_model with a model id",
            with(&[
                "--model-upload-intent",
                "create_model",
                "--metadata-configmap-path",
                &s(meta.path()),
                "--model-id",
                "3",
            ]),
            &["--model-id (MODEL_SYNC_MODEL_ID) is set but --model-upload-intent is create_model"],
        ),
        case(
            "create_version without parent",
            with(&[
                "--model-upload-intent",
                "create_version",
                "--metadata-configmap-path",
                &s(meta.path()),
            ]),
            &[
                "--model-id (MODEL_SYNC_MODEL_ID) is required when --model-upload-intent is create_version",
            ],
        ),
        case(
            "metadata path missing",
            with(&["--metadata-configmap-path", "/nonexistent/md"]),
            &[
                "--metadata-configmap-path (MODEL_SYNC_METADATA_CONFIGMAP_PATH)",
                "/nonexistent/md",
            ],
        ),
        case(
            "metadata bad JSON",
            with(&[
                "--model-upload-intent",
                "create_model",
                "--metadata-configmap-path",
                &s(bad_json.path()),
            ]),
            &[
                "metadata key ModelVersion.custom_properties",
                "not valid JSON",
            ],
        ),
        case(
            "uri source missing",
            with(&["--source-type", "uri"]),
            &["--source-uri (MODEL_SYNC_SOURCE_URI) is required when --source-type is uri"],
        ),
        case(
            "uri source unsupported scheme",
            with(&["--source-type", "uri", "--source-uri", "ftp://x/y"]),
            &[
                "--source-uri (MODEL_SYNC_SOURCE_URI)",
                "\"ftp://x/y\"",
                "http://, https:// or hf://",
            ],
        ),
        case(
            "pvc source path missing",
            with(&["--source-type", "pvc"]),
            &["--source-path (MODEL_SYNC_SOURCE_PATH) is required when --source-type is pvc"],
        ),
        case(
            "pvc source path relative",
            with(&["--source-type", "pvc", "--source-path", "models/m"]),
            &["--source-path (MODEL_SYNC_SOURCE_PATH)", "absolute path"],
        ),
        case(
            "pvc source path absent",
            with(&[
                "--source-type",
                "pvc",
                "--source-path",
                "/nonexistent/model",
            ]),
            &[
                "--source-path (MODEL_SYNC_SOURCE_PATH)",
                "cannot read /nonexistent/model",
            ],
        ),
        case(
            "pvc destination path missing",
            with(&["--destination-type", "pvc"]),
            &[
                "--destination-path (MODEL_SYNC_DESTINATION_PATH) is required when --destination-type is pvc",
            ],
        ),
        case(
            "storage path relative",
            with(&["--storage-path", "scratch"]),
            &["--storage-path (MODEL_SYNC_STORAGE_PATH)", "absolute"],
        ),
        case(
            "same S3 location both sides",
            with(&[
                "--destination-type",
                "s3",
                "--destination-aws-bucket",
                "models",
                "--destination-aws-key",
                "m1/",
            ]),
            &["source and destination are the same location"],
        ),
        case(
            "bad sign value",
            with(&["--sign", "sometimes"]),
            &["--sign (MODEL_SYNC_SIGN)", "\"sometimes\""],
        ),
        case(
            "sign true",
            with(&["--sign", "true"]),
            &["SIGSTORE_FULCIO_URL is required for keyless signing"],
        ),
        case(
            "unknown flag",
            with(&["--source-aws-buckett", "x"]),
            &["--source-aws-buckett"],
        ),
        case(
            "S3 credentials dir missing",
            with(&["--source-s3-credentials-path", "/nonexistent/creds"]),
            &[
                "--source-s3-credentials-path (MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH)",
                "/nonexistent/creds",
            ],
        ),
        case(
            "S3 credentials path is a file",
            with(&["--source-s3-credentials-path", &s3_as_file]),
            &[
                "--source-s3-credentials-path (MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH)",
                "expected a directory",
            ],
        ),
        case(
            "docker config without the registry",
            with(&["--destination-oci-credentials-path", &s(&no_entry)]),
            &[
                "--destination-oci-credentials-path (MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH)",
                "no credentials for registry quay.io",
                "none",
            ],
        ),
    ];
    let mut env_cases = vec![
        Case {
            name: "bad boolean from env",
            args: secret_base(),
            env: vec![
                ("MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY", "nope".into()),
                ("MODEL_SYNC_SOURCE_TYPE", "oci".into()),
                ("MODEL_SYNC_SOURCE_OCI_URI", "quay.io/a/b:1".into()),
            ],
            expect: vec![
                "--source-oci-enable-tls-verify (MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY)",
                "\"nope\"",
            ],
        },
        Case {
            name: "bad type from env",
            args: without(&["--source-aws-bucket"]),
            env: vec![("MODEL_SYNC_SOURCE_TYPE", "gcs".into())],
            expect: vec!["--source-type (MODEL_SYNC_SOURCE_TYPE)", "\"gcs\""],
        },
    ];
    let total = cases.len() + env_cases.len();
    assert!(total >= 25, "only {total} cases");
    for c in cases.into_iter().chain(env_cases.drain(..)) {
        check(c);
    }
}

#[test]
fn secret_values_are_never_echoed_even_when_invalid() {
    // An S3 secret that trips nothing itself, next to an unrelated failure.
    let msg = err(&with(&["--registry-port", "x"]), &ctx(&[]));
    assert!(msg.contains("--registry-port"));
    // A bad OCI password-only config: the message names the missing user, not the password.
    let msg = err(&without(&["--destination-oci-username"]), &ctx(&[]));
    assert!(
        msg.contains(
            "--destination-oci-username (MODEL_SYNC_DESTINATION_OCI_USERNAME) is required"
        ),
        "{msg}"
    );
    // Credentials in the registry URL are not echoed.
    let msg = err(
        &with(&[
            "--registry-server-address",
            "https://admin:pw-in-url@mr.example",
        ]),
        &ctx(&[]),
    );
    assert!(!msg.contains("pw-in-url"), "{msg}");
    // A stray positional word could be a secret typed without its flag: it is not echoed.
    let mut a = secret_base();
    a.push("tok-SECRET-registry".into());
    let msg = err(&a, &ctx(&[]));
    assert!(msg.contains("positional"), "{msg}");
}

#[test]
fn all_problems_are_reported_together() {
    let msg = err(
        &without(&[
            "--source-aws-bucket",
            "--registry-server-address",
            "--model-artifact-id",
        ]),
        &ctx(&[]),
    );
    assert!(msg.contains("3 problems"), "{msg}");
    assert!(msg.contains("--source-aws-bucket"));
    assert!(msg.contains("--registry-server-address"));
    assert!(msg.contains("--model-artifact-id"));
}

#[test]
fn token_file_errors_keep_the_io_cause() {
    let mut a = without(&["--registry-user-token"]);
    a.extend(["--registry-user-token-envvar".into(), "TOKEN_PATH".into()]);
    let msg = err(&a, &ctx(&[("TOKEN_PATH", "/nonexistent/token")]));
    assert!(msg.contains("cannot read /nonexistent/token"), "{msg}");
    assert!(msg.contains("No such file"), "{msg}");
}
