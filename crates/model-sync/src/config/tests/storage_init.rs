//! KServe storage-initializer mode: `model-sync <source-uri> <dest-path>`.

use super::*;
use crate::config::{StorageInitializerConfig, StorageUri, parse_storage_uri};

fn si(args: &[&str], context: &LoadContext) -> Result<StorageInitializerConfig, String> {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    match run(&args, context) {
        Ok(Loaded::Run(Mode::StorageInitializer(c))) => Ok(*c),
        Ok(other) => panic!("expected storage-initializer mode, got {other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

fn mr(host: Option<&str>, port: Option<u16>, model: &str, version: Option<&str>) -> StorageUri {
    StorageUri::ModelRegistry {
        host: host.map(str::to_owned),
        port,
        model: model.to_owned(),
        version: version.map(str::to_owned),
    }
}

#[test]
fn model_registry_uri_forms() {
    let cases = [
        ("model-registry://iris", mr(None, None, "iris", None)),
        (
            "model-registry://iris/v1",
            mr(None, None, "iris", Some("v1")),
        ),
        (
            "model-registry://iris/v1/",
            mr(None, None, "iris", Some("v1")),
        ),
        (
            "model-registry://mr.ns.svc:8080/iris",
            mr(Some("mr.ns.svc"), Some(8080), "iris", None),
        ),
        (
            "model-registry://mr.ns.svc/iris/v1",
            mr(Some("mr.ns.svc"), None, "iris", Some("v1")),
        ),
        (
            "model-registry://mr.ns.svc:8443/iris/1.0.0",
            mr(Some("mr.ns.svc"), Some(8443), "iris", Some("1.0.0")),
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(parse_storage_uri(uri).unwrap(), want, "{uri}");
    }
    for bad in [
        "model-registry://",
        "model-registry://a//b",
        "model-registry://h:99999/m/v",
        "model-registry://a/b/c/d",
    ] {
        let e = parse_storage_uri(bad).unwrap_err().to_string();
        assert!(e.contains("source URI (positional argument 1)"), "{e}");
    }
}

#[test]
fn other_schemes() {
    assert_eq!(
        parse_storage_uri("s3://bucket/path/to/model").unwrap(),
        StorageUri::S3 {
            bucket: "bucket".into(),
            key: "path/to/model".into()
        }
    );
    match parse_storage_uri("oci://quay.io/org/model:1.0").unwrap() {
        StorageUri::Oci(r) => {
            assert_eq!(r.registry(), "quay.io");
            assert_eq!(r.tag(), Some("1.0"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_storage_uri("https://example.com/m.onnx").unwrap(),
        StorageUri::Http(_)
    ));
    assert_eq!(
        parse_storage_uri("hf://org/model").unwrap(),
        StorageUri::HuggingFace {
            repo: "org/model".into(),
            revision: None
        }
    );
    for bad in [
        "gs://b/k",
        "s3:///k",
        "oci://UPPER/x",
        "https://",
        "/abs/path",
    ] {
        let e = parse_storage_uri(bad).unwrap_err().to_string();
        assert!(
            e.contains("source URI (positional argument 1)"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn two_positional_args_select_the_mode() {
    let c = si(
        &["model-registry://iris/v1", "/mnt/models"],
        &ctx(&[("MODEL_REGISTRY_BASE_URL", "mr.kubeflow.svc:8080")]),
    )
    .unwrap();
    assert_eq!(c.dest_path, Path::new("/mnt/models"));
    assert_eq!(
        c.registry_base_url.unwrap().as_str(),
        "http://mr.kubeflow.svc:8080/"
    );
    assert!(c.registry_token.is_none());
}

#[test]
fn registry_url_from_uri_host_and_scheme_variable() {
    let c = si(
        &["model-registry://mr.ns.svc:8443/iris/v1", "/mnt/models"],
        &ctx(&[
            ("MODEL_REGISTRY_SCHEME", "https"),
            ("MODEL_REGISTRY_BASE_URL", "ignored:1"),
        ]),
    )
    .unwrap();
    assert_eq!(
        c.registry_base_url.unwrap().as_str(),
        "https://mr.ns.svc:8443/"
    );
}

#[test]
fn service_account_token_is_picked_up() {
    let d = tmp();
    let token = write(d.path(), "token", "file-SECRET\n");
    let mut context = ctx(&[("MODEL_REGISTRY_BASE_URL", "https://mr:443")]);
    context.service_account_token_path = token;
    let c = si(&["model-registry://iris", "/mnt/models"], &context).unwrap();
    assert_eq!(c.registry_token.as_ref().unwrap().expose(), "file-SECRET");
    assert_no_secret(&format!("{c:?}"));
}

#[test]
fn missing_registry_location_is_an_error() {
    let e = si(&["model-registry://iris/v1", "/mnt/models"], &ctx(&[])).unwrap_err();
    assert!(e.contains("MODEL_REGISTRY_BASE_URL is required"), "{e}");
}

#[test]
fn non_registry_uris_need_no_registry() {
    let c = si(&["s3://b/k", "/mnt/models"], &ctx(&[])).unwrap();
    assert!(c.registry_base_url.is_none());
}

#[test]
fn relative_destination_is_an_error() {
    let e = si(&["s3://b/k", "models"], &ctx(&[])).unwrap_err();
    assert!(
        e.contains("destination path (positional argument 2)"),
        "{e}"
    );
    assert!(e.contains("absolute"), "{e}");
}

#[test]
fn flag_pairs_are_not_positional() {
    // Two words, one a flag: the normal job parser handles it (and fails on missing settings).
    let args = ["--source-type".to_owned(), "s3".to_owned()];
    match run(&args, &ctx(&[])) {
        Err(e) => assert!(e.to_string().contains("--source-aws-bucket"), "{e}"),
        Ok(other) => panic!("{other:?}"),
    }
}
