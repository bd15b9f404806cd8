//! `spec.signing` on the built Job: key file, projected identity token, sigstore variables,
//! pinned TUF root file.
use k8s_openapi::api::core::v1::ServiceAccountTokenProjection;

use super::*;
use crate::modeltransfer::build::signing::{
    SIGNING_KEY_DIR, SIGNING_TOKEN_DIR, TUF_ROOT_DIR, TUF_ROOT_FILE,
};

fn keyless(extra: Value) -> Value {
    let mut k = json!({
        "fulcioURL": "https://fulcio.example.com",
        "rekorURL": "https://rekor.example.com"
    });
    for (key, value) in extra.as_object().unwrap() {
        k[key] = value.clone();
    }
    with(base(), &["signing"], json!({ "keyless": k }))
}

fn token(job: &Job, volume_name: &str) -> ServiceAccountTokenProjection {
    let p = volume(job, volume_name).projected.as_ref().unwrap();
    assert_eq!(p.default_mode, Some(0o440));
    let sources = p.sources.as_ref().unwrap();
    assert_eq!(sources.len(), 1, "only the token is projected");
    sources[0].service_account_token.clone().unwrap()
}

#[test]
fn unsigned_transfers_turn_signing_off_explicitly() {
    let d = build(base());
    let e = env(&d.job);
    // SIGSTORE_* variables injected by other means cannot turn signing on.
    assert_eq!(e["MODEL_SYNC_SIGN"], "false");
    assert!(!e.keys().any(|k| k.starts_with("SIGSTORE_")));
    assert!(!e.contains_key("MODEL_SYNC_SIGNING_KEY_PATH"));
    assert!(!e.contains_key("MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH"));
    let m = mounts(&d.job);
    assert!(!m.contains_key(SIGNING_KEY_DIR) && !m.contains_key(SIGNING_TOKEN_DIR));
    assert!(!m.contains_key(TUF_ROOT_DIR));
}

#[test]
fn key_mode_mounts_the_key_secret_as_a_file() {
    let spec = with(
        base(),
        &["signing"],
        json!({ "keySecretRef": { "name": "signing", "key": "cosign.key" } }),
    );
    let d = build(spec);
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(e["MODEL_SYNC_SIGN"], "true");
    assert_eq!(
        e["MODEL_SYNC_SIGNING_KEY_PATH"],
        "/var/run/secrets/model-sync/signing-key/key.pem"
    );
    assert!(!e.keys().any(|k| k.starts_with("SIGSTORE_")));
    assert!(!e.contains_key("MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH"));
    let s = volume(&d.job, "signing-key").secret.as_ref().unwrap();
    assert_eq!(s.secret_name.as_deref(), Some("signing"));
    let items = s.items.as_ref().unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("cosign.key", "key.pem")
    );
    assert_eq!(s.default_mode, Some(0o440));
    assert_eq!(
        mounts(&d.job)[SIGNING_KEY_DIR],
        ("signing-key".to_string(), true)
    );
    // No identity token: the pod still gets no ServiceAccount token at all.
    assert!(
        pod(&d.job)
            .volumes
            .iter()
            .flatten()
            .all(|v| v.projected.is_none())
    );
    assert_eq!(pod(&d.job).automount_service_account_token, Some(false));
}

#[test]
fn keyless_mode_projects_a_sigstore_token_and_names_the_services() {
    let d = build(keyless(json!({})));
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(e["MODEL_SYNC_SIGN"], "true");
    assert_eq!(e["SIGSTORE_FULCIO_URL"], "https://fulcio.example.com");
    assert_eq!(e["SIGSTORE_REKOR_URL"], "https://rekor.example.com");
    assert!(!e.contains_key("SIGSTORE_TUF_URL") && !e.contains_key("SIGSTORE_TSA_URL"));
    assert!(!e.contains_key("MODEL_SYNC_SIGNING_KEY_PATH"));
    assert!(!e.contains_key("MODEL_SYNC_SIGNING_TUF_ROOT_PATH"));
    assert!(!mounts(&d.job).contains_key(TUF_ROOT_DIR));
    assert!(
        pod(&d.job)
            .volumes
            .iter()
            .flatten()
            .all(|v| v.name != "tuf-root")
    );
    assert_eq!(
        e["MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH"],
        "/var/run/secrets/model-sync/signing-token/token"
    );
    let t = token(&d.job, "signing-token");
    assert_eq!(t.audience.as_deref(), Some("sigstore"));
    assert_eq!(t.path, "token");
    assert_eq!(t.expiration_seconds, Some(job::DEFAULT_TOKEN_SECONDS));
    assert_eq!(
        mounts(&d.job)[SIGNING_TOKEN_DIR],
        ("signing-token".to_string(), true)
    );
    // The token comes from the explicit projection, never from automounting.
    assert_eq!(pod(&d.job).automount_service_account_token, Some(false));
    assert_eq!(
        d.service_account
            .as_ref()
            .unwrap()
            .automount_service_account_token,
        Some(false)
    );
}

#[test]
fn keyless_settings_audience_expiry_and_optional_urls() {
    let d = build(keyless(json!({
        "tufURL": "https://tuf.example.com",
        "tsaURL": "https://tsa.example.com/api/v1/timestamp",
        "audience": "fulcio.internal",
        "expirationSeconds": 1800
    })));
    let e = env(&d.job);
    assert_eq!(e["SIGSTORE_TUF_URL"], "https://tuf.example.com");
    assert_eq!(
        e["SIGSTORE_TSA_URL"],
        "https://tsa.example.com/api/v1/timestamp"
    );
    let t = token(&d.job, "signing-token");
    assert_eq!(t.audience.as_deref(), Some("fulcio.internal"));
    assert_eq!(t.expiration_seconds, Some(1800));

    // Without expirationSeconds: the Job's deadline plus 10 minutes, at most an hour (the
    // kubelet rotates the file, which model-sync reads again before signing).
    for (deadline, seconds) in [(3600, job::DEFAULT_TOKEN_SECONDS), (300, 900), (1, 601)] {
        let spec = with(
            keyless(json!({})),
            &["job"],
            json!({ "activeDeadlineSeconds": deadline }),
        );
        let t = token(&build(spec).job, "signing-token");
        assert_eq!(t.expiration_seconds, Some(seconds), "deadline {deadline}");
    }
}

#[test]
fn pinned_tuf_root_is_mounted_read_only_and_named_for_model_sync() {
    let d = build(keyless(json!({
        "tufURL": "https://tuf.example.com",
        "tufRootConfigMapRef": { "name": "sigstore-root", "key": "1.root.json" }
    })));
    common_checks(&d.job);
    let e = env(&d.job);
    assert_eq!(e["SIGSTORE_TUF_URL"], "https://tuf.example.com");
    assert_eq!(
        e["MODEL_SYNC_SIGNING_TUF_ROOT_PATH"],
        "/etc/model-sync/tuf-root/root.json"
    );
    assert_eq!(
        e["MODEL_SYNC_SIGNING_TUF_ROOT_PATH"],
        format!("{TUF_ROOT_DIR}/{TUF_ROOT_FILE}")
    );
    // Exactly the one key, under a fixed file name, group-readable only.
    let v = volume(&d.job, "tuf-root");
    assert!(v.secret.is_none() && v.projected.is_none());
    let cm = v.config_map.as_ref().unwrap();
    assert_eq!(cm.name, "sigstore-root");
    assert_eq!(cm.default_mode, Some(0o440));
    let items = cm.items.as_ref().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("1.root.json", "root.json")
    );
    let c = container(&d.job);
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "tuf-root")
        .unwrap();
    assert_eq!(mount.mount_path, TUF_ROOT_DIR);
    assert_eq!(mount.read_only, Some(true));
    assert!(
        mount.sub_path.is_none(),
        "a subPath mount would never be updated"
    );
    // The identity token is still projected next to it.
    assert_eq!(mounts(&d.job)[SIGNING_TOKEN_DIR].0, "signing-token");

    // Key mode has no TUF root (no sigstore service is contacted).
    let key = build(with(
        base(),
        &["signing"],
        json!({ "keySecretRef": { "name": "s", "key": "k" } }),
    ));
    assert!(!env(&key.job).contains_key("MODEL_SYNC_SIGNING_TUF_ROOT_PATH"));
    assert!(!mounts(&key.job).contains_key(TUF_ROOT_DIR));
}

#[test]
fn keyless_and_registry_tokens_are_separate_projections() {
    let spec = with(
        keyless(json!({})),
        &["registry"],
        json!({ "url": "https://mr.example.com" }),
    );
    let d = build(spec);
    common_checks(&d.job);
    // The registry's token is for that registry only, Fulcio's for sigstore: a token sent to one
    // service cannot be replayed at the other, nor at the API server.
    assert_eq!(
        token(&d.job, "registry-token").audience.as_deref(),
        Some("https://mr.example.com")
    );
    assert_eq!(
        token(&d.job, "signing-token").audience.as_deref(),
        Some("sigstore")
    );
    let m = mounts(&d.job);
    assert_eq!(m[job::REGISTRY_TOKEN_DIR].0, "registry-token");
    assert_eq!(m[SIGNING_TOKEN_DIR].0, "signing-token");
}

#[test]
fn both_or_no_signing_mode_is_a_build_error() {
    let settings = Settings::for_tests();
    for signing in [
        json!({}),
        json!({ "keySecretRef": { "name": "s", "key": "k" },
                "keyless": { "fulcioURL": "https://f", "rekorURL": "https://r" } }),
    ] {
        let t = mt(with(base(), &["signing"], signing));
        let input = BuildInput {
            mt: &t,
            settings: &settings,
            registry: registry::wiring(&t.spec.registry, None, &Capabilities::vanilla()).unwrap(),
            service_account: service_account_name(&t),
        };
        let err = job::job(&input, HASH).unwrap_err().to_string();
        assert!(
            err.contains("spec.signing") && err.contains("exactly one"),
            "{err}"
        );
    }
}

/// Every signing variable the Job sets is one model-sync reads.
#[test]
fn signing_variables_are_model_sync_settings() {
    const ARGS: &str = include_str!("../../../../../job-contract/src/settings.rs");
    const SIGNING: &str = include_str!("../../../../../model-sync/src/config/signing.rs");
    let specs = [
        keyless(json!({ "tufURL": "https://t", "tsaURL": "https://s",
                        "tufRootConfigMapRef": { "name": "r", "key": "root.json" } })),
        with(
            base(),
            &["signing"],
            json!({ "keySecretRef": { "name": "s", "key": "k" } }),
        ),
    ];
    for spec in specs {
        for name in env(&build(spec).job).keys() {
            if name.starts_with("SIGSTORE_") {
                assert!(
                    SIGNING.contains(&format!("\"{name}\"")),
                    "{name} is not read by model-sync"
                );
            } else if name.contains("SIGN") {
                assert!(
                    ARGS.contains(&format!("\"{name}\"")),
                    "{name} is not a model-sync setting"
                );
            }
        }
    }
}
