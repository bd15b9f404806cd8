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
        namespace: None,
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
    let e = si(&["model-registry://iris", "/mnt/models"], &ctx(&[])).unwrap_err();
    assert!(e.contains("MODEL_REGISTRY_BASE_URL is required"), "{e}");
}

/// Upstream (cmd/csi, `NewAPIClient`): the first of two segments is tried as the registry host
/// (`{scheme}://first`), falling back to model/version at the base URL.
#[test]
fn two_segments_without_port_keep_a_host_candidate() {
    let c = si(
        &["model-registry://mr.ns.svc/iris", "/mnt/models"],
        &ctx(&[("MODEL_REGISTRY_BASE_URL", "base:8080")]),
    )
    .unwrap();
    assert_eq!(
        c.registry_host_candidate.unwrap().as_str(),
        "http://mr.ns.svc/"
    );
    assert_eq!(c.registry_base_url.unwrap().as_str(), "http://base:8080/");
    // No base URL: the candidate alone is enough to start (the run fails clearly if it is not a
    // registry).
    let c = si(
        &["model-registry://mr.kubeflow/iris", "/mnt/models"],
        &ctx(&[]),
    )
    .unwrap();
    assert!(c.registry_base_url.is_none());
    assert_eq!(
        c.registry_host_candidate.unwrap().as_str(),
        "http://mr.kubeflow/"
    );
    // A single label is a model name (no DNS query for it).
    let c = si(
        &["model-registry://iris/v1", "/mnt/models"],
        &ctx(&[("MODEL_REGISTRY_BASE_URL", "b:1")]),
    )
    .unwrap();
    assert!(c.registry_host_candidate.is_none());
    let e = si(&["model-registry://iris/v1", "/mnt/models"], &ctx(&[])).unwrap_err();
    assert!(e.contains("MODEL_REGISTRY_BASE_URL is required"), "{e}");
    // One segment, three segments and an explicit port are not ambiguous.
    for uri in [
        "model-registry://iris",
        "model-registry://h/iris/v1",
        "model-registry://h:8080/iris",
    ] {
        let c = si(
            &[uri, "/mnt/models"],
            &ctx(&[("MODEL_REGISTRY_BASE_URL", "b:1")]),
        )
        .unwrap();
        assert!(c.registry_host_candidate.is_none(), "{uri}");
    }
}

/// `?namespace=ns` is stripped from the URI and selects the registry Service in `ns`, built
/// the way upstream builds it: `MODEL_REGISTRY_SERVICE_NAME` (default model-registry-service),
/// `MODEL_REGISTRY_CLUSTER_DOMAIN` (default svc.cluster.local), the base URL's port (8080).
#[test]
fn namespace_query_selects_the_registry_service() {
    let cases = [
        ("model-registry://iris?namespace=team-a", "iris", None),
        (
            "model-registry://iris/v1?namespace=team-a",
            "iris",
            Some("v1"),
        ),
        // Upstream's test case: an embedded host is ignored in favour of the namespace.
        (
            "model-registry://localhost:8080/iris/v1?namespace=team-a",
            "iris",
            Some("v1"),
        ),
    ];
    for (uri, model, version) in cases {
        let c = si(&[uri, "/mnt/models"], &ctx(&[])).unwrap();
        assert_eq!(
            c.registry_base_url.as_ref().unwrap().as_str(),
            "http://model-registry-service.team-a.svc.cluster.local:8080/",
            "{uri}"
        );
        assert!(c.registry_host_candidate.is_none(), "{uri}");
        match c.source_uri {
            StorageUri::ModelRegistry {
                model: m,
                version: v,
                namespace,
                ..
            } => {
                assert_eq!(m, model, "{uri}");
                assert_eq!(v.as_deref(), version, "{uri}");
                assert_eq!(namespace.as_deref(), Some("team-a"));
            }
            other => panic!("{other:?}"),
        }
    }
    let c = si(
        &["model-registry://iris?namespace=ns1", "/mnt/models"],
        &ctx(&[
            ("MODEL_REGISTRY_BASE_URL", "anything:9090"),
            ("MODEL_REGISTRY_SCHEME", "https"),
            ("MODEL_REGISTRY_SERVICE_NAME", "mr"),
            ("MODEL_REGISTRY_CLUSTER_DOMAIN", "cluster.example"),
        ]),
    )
    .unwrap();
    assert_eq!(
        c.registry_base_url.unwrap().as_str(),
        "https://mr.ns1.cluster.example:9090/"
    );
    let e = si(
        &["model-registry://iris?namespace=a.b", "/mnt/models"],
        &ctx(&[]),
    )
    .unwrap_err();
    assert!(e.contains("namespace \"a.b\""), "{e}");
}

/// KServe's CA bundle for storage initializers: `$CA_BUNDLE_VOLUME_MOUNT_POINT/cabundle.crt`
/// when `CA_BUNDLE_CONFIGMAP_NAME` is set (default mount /etc/ssl/custom-certs).
#[test]
fn kserve_ca_bundle_is_read() {
    let d = tmp();
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    write(d.path(), "cabundle.crt", pem);
    let mount = s(d.path());
    let c = si(
        &["s3://b/k", "/mnt/models"],
        &ctx(&[
            ("CA_BUNDLE_CONFIGMAP_NAME", "global-ca-bundle"),
            ("CA_BUNDLE_VOLUME_MOUNT_POINT", &mount),
        ]),
    )
    .unwrap();
    assert_eq!(c.ca_bundle_pem.as_deref(), Some(pem.as_bytes()));
    let c = si(&["s3://b/k", "/mnt/models"], &ctx(&[])).unwrap();
    assert!(c.ca_bundle_pem.is_none());
    // Announced but not mounted: an error naming the file, before anything is downloaded.
    let e = si(
        &["s3://b/k", "/mnt/models"],
        &ctx(&[
            ("CA_BUNDLE_CONFIGMAP_NAME", "global-ca-bundle"),
            ("CA_BUNDLE_VOLUME_MOUNT_POINT", "/nonexistent/certs"),
        ]),
    )
    .unwrap_err();
    assert!(e.contains("/nonexistent/certs/cabundle.crt"), "{e}");
}

#[test]
fn hf_storage_uri_loads_without_a_registry() {
    let c = si(&["hf://org/model:v1", "/mnt/models"], &ctx(&[])).unwrap();
    assert!(c.registry_base_url.is_none());
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
