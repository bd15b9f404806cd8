//! TLS towards the stores: `insecure` on either OCI side, and the transfer-wide CA bundle
//! (`spec.job.caBundleConfigMapRef`) mounted and named by `SSL_CERT_FILE`.
use serde_json::json;

use super::*;

#[test]
fn insecure_oci_source_and_destination_turn_off_tls_verification() {
    let spec = with(
        with(
            base(),
            &["source"],
            json!({ "oci": { "uri": "registry.local:5000/m/src:1", "insecure": true } }),
        ),
        &["destination"],
        json!({ "oci": { "uri": "registry.local:5000/m/dst:1", "insecure": true } }),
    );
    let d = build(spec);
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(e["MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY"], "false");
    assert_eq!(e["MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY"], "false");

    // Verification stays on (model-sync's default) unless asked.
    for insecure in [json!(false), json!(null)] {
        let spec = with(
            base(),
            &["source"],
            json!({ "oci": { "uri": "quay.io/m/src:1", "insecure": insecure } }),
        );
        let e = env(&build(spec).job);
        assert!(!e.contains_key("MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY"));
        assert!(!e.contains_key("MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY"));
    }
}

#[test]
fn ca_bundle_is_mounted_and_named_by_ssl_cert_file() {
    let spec = with(
        base(),
        &["job"],
        json!({ "caBundleConfigMapRef": { "name": "trusted-ca", "key": "bundle.pem" } }),
    );
    let d = build(spec);
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(
        e["SSL_CERT_FILE"],
        "/etc/model-sync/ca-bundle/ca-bundle.crt"
    );
    let v = volume(&d.job, "ca-bundle").config_map.as_ref().unwrap();
    assert_eq!(v.name, "trusted-ca");
    let item = &v.items.as_ref().unwrap()[0];
    assert_eq!(
        (item.key.as_str(), item.path.as_str()),
        ("bundle.pem", job::CA_BUNDLE_FILE)
    );
    assert_eq!(
        mounts(&d.job)[job::CA_BUNDLE_DIR],
        ("ca-bundle".to_string(), true)
    );
    // Without it, the image's own trust store is used.
    let e = env(&build(base()).job);
    assert!(!e.contains_key("SSL_CERT_FILE"));
}

/// model-sync honours `SSL_CERT_FILE` (the variable the bundle relies on).
#[test]
fn model_sync_reads_ssl_cert_file() {
    // The configuration loads it (once); the operator and model-sync share the name.
    const VALIDATE: &str = include_str!("../../../../../model-sync/src/config/validate.rs");
    assert!(VALIDATE.contains("ctx.var(super::env::SSL_CERT_FILE)"));
    assert_eq!(mro_job_contract::settings::SSL_CERT_FILE, "SSL_CERT_FILE");
}
