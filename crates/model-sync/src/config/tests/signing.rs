//! Every row of the signing decision table, and what validation does with it.

use super::*;
use crate::config::{
    DisabledBy, EnabledBy, SigningDecision, SigningMode, SigstoreEndpoints, TufRoot, decide,
};

const ALL: [(&str, &str); 3] = [
    ("SIGSTORE_TUF_URL", "https://tuf.example"),
    ("SIGSTORE_FULCIO_URL", "https://fulcio.example"),
    ("SIGSTORE_REKOR_URL", "https://rekor.example"),
];

fn endpoints(vars: &[(&str, &str)]) -> SigstoreEndpoints {
    SigstoreEndpoints::from_context(&ctx(vars))
}

#[test]
fn unset_with_all_three_is_enabled() {
    assert_eq!(
        decide(None, &endpoints(&ALL)),
        SigningDecision::Enabled {
            by: EnabledBy::Environment
        }
    );
}

#[test]
fn unset_with_none_is_disabled_silently() {
    let d = decide(None, &endpoints(&[]));
    assert_eq!(
        d,
        SigningDecision::Disabled {
            by: DisabledBy::NoSigstoreConfig
        }
    );
    assert!(d.warning().is_none());
    // The optional TSA alone does not count.
    let d = decide(None, &endpoints(&[("SIGSTORE_TSA_URL", "https://tsa")]));
    assert!(d.warning().is_none());
}

#[test]
fn unset_with_some_is_disabled_with_a_warning_naming_the_missing() {
    let d = decide(None, &endpoints(&ALL[..1]));
    assert_eq!(
        d,
        SigningDecision::Disabled {
            by: DisabledBy::PartialSigstoreConfig {
                missing: vec!["SIGSTORE_FULCIO_URL", "SIGSTORE_REKOR_URL"]
            }
        }
    );
    let w = d.warning().unwrap();
    assert!(w.contains("SIGSTORE_FULCIO_URL, SIGSTORE_REKOR_URL"), "{w}");
    assert!(!w.contains("missing SIGSTORE_TUF_URL"), "{w}");
}

#[test]
fn true_is_enabled_regardless_of_env() {
    for vars in [&[][..], &ALL[..1], &ALL[..]] {
        assert_eq!(
            decide(Some(true), &endpoints(vars)),
            SigningDecision::Enabled {
                by: EnabledBy::Flag
            }
        );
    }
}

#[test]
fn false_is_disabled_regardless_of_env() {
    for vars in [&[][..], &ALL[..2], &ALL[..]] {
        let d = decide(Some(false), &endpoints(vars));
        assert_eq!(
            d,
            SigningDecision::Disabled {
                by: DisabledBy::Flag
            }
        );
        assert!(d.warning().is_none());
    }
}

/// `base_args` with a PVC destination instead of OCI.
fn pvc_args(extra: &[&str]) -> Vec<String> {
    let mut a = super::args_without(&["--destination-oci-uri"]);
    a.extend(
        [
            "--destination-type",
            "pvc",
            "--destination-path",
            "/mnt/out/bert",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string()),
    );
    a
}

#[test]
fn an_oci_destination_can_be_signed_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a.b.c").unwrap();
    let key_s = key.display().to_string();
    let token_s = token.display().to_string();
    // `base_args` pushes to an OCI destination.
    let c = ok(&args_with(&["--signing-key-path", &key_s]), &ctx(&[]));
    assert_eq!(c.signing.mode, Some(SigningMode::Key { path: key }));
    let c = ok(
        &args_with(&["--signing-identity-token-path", &token_s]),
        &ctx(&ALL),
    );
    assert!(matches!(c.signing.mode, Some(SigningMode::Keyless { .. })));
    // Forced without what keyless needs: the missing variables are named, not "not implemented".
    let e = err(&args_with(&["--sign", "true"]), &ctx(&[]));
    assert!(e.contains("SIGSTORE_FULCIO_URL is required"), "{e}");
    assert!(!e.contains("not implemented"), "{e}");
    // ... and --sign false is still the way out.
    let c = ok(&args_with(&["--sign", "false"]), &ctx(&ALL));
    assert_eq!(
        c.signing.decision,
        SigningDecision::Disabled {
            by: DisabledBy::Flag
        }
    );
    assert_eq!(c.signing.mode, None);
    assert_eq!(
        c.signing.endpoints.tuf_url.as_deref(),
        Some("https://tuf.example")
    );
}

#[test]
fn keyless_needs_fulcio_rekor_and_a_token_file() {
    let e = err(&pvc_args(&["--sign", "true"]), &ctx(&[]));
    assert!(
        e.contains("SIGSTORE_FULCIO_URL is required for keyless signing"),
        "{e}"
    );
    assert!(
        e.contains("SIGSTORE_REKOR_URL is required for keyless signing"),
        "{e}"
    );
    assert!(e.contains("--signing-key-path"), "{e}");
    // The default token path (the service-account token) is named when it is missing.
    assert!(e.contains("/nonexistent/model-sync/sa-token"), "{e}");
    let e = err(
        &pvc_args(&["--signing-identity-token-path", "/nonexistent/id-token"]),
        &ctx(&ALL),
    );
    assert!(
        e.contains("--signing-identity-token-path (MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH): cannot read /nonexistent/id-token"),
        "{e}"
    );
    let e = err(
        &pvc_args(&["--sign", "true"]),
        &ctx(&[
            ("SIGSTORE_FULCIO_URL", "fulcio:5555"),
            ("SIGSTORE_REKOR_URL", "ftp://r"),
        ]),
    );
    assert!(
        e.contains(
            "SIGSTORE_FULCIO_URL has an invalid value \"fulcio:5555\": expected an http(s) URL"
        ),
        "{e}"
    );
    assert!(e.contains("SIGSTORE_REKOR_URL has an invalid value"), "{e}");
}

#[test]
fn keyless_mode_carries_the_endpoints_and_token_path() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a.b.c").unwrap();
    let token_s = token.display().to_string();
    // Auto-detected from the variables; the TUF URL names where the trusted root comes from.
    let c = ok(
        &pvc_args(&["--signing-identity-token-path", &token_s]),
        &ctx(&ALL),
    );
    assert_eq!(
        c.signing.decision,
        SigningDecision::Enabled {
            by: EnabledBy::Environment
        }
    );
    assert_eq!(
        c.signing.mode,
        Some(SigningMode::Keyless {
            fulcio: "https://fulcio.example/".parse().unwrap(),
            rekor: "https://rekor.example/".parse().unwrap(),
            token_path: token.clone(),
            tuf: Some(Box::new(TufRoot {
                url: "https://tuf.example/".parse().unwrap(),
                initial_root: None,
            })),
            tsa: None,
        })
    );
    // Forced without a TUF URL: keyless without a trusted root.
    let c = ok(
        &pvc_args(&["--sign", "--signing-identity-token-path", &token_s]),
        &ctx(&ALL[1..]),
    );
    assert!(matches!(
        c.signing.mode,
        Some(SigningMode::Keyless { tuf: None, .. })
    ));
}

#[test]
fn tuf_root_path_pins_the_initial_root() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a.b.c").unwrap();
    let root = dir.path().join("root.json");
    std::fs::write(&root, "{}").unwrap();
    let (token_s, root_s) = (token.display().to_string(), root.display().to_string());
    let c = ok(
        &pvc_args(&[
            "--signing-identity-token-path",
            &token_s,
            "--signing-tuf-root-path",
            &root_s,
        ]),
        &ctx(&ALL),
    );
    assert_eq!(c.signing.tuf_root_path.as_ref(), Some(&root));
    let Some(SigningMode::Keyless { tuf: Some(t), .. }) = &c.signing.mode else {
        panic!("{:?}", c.signing.mode);
    };
    assert_eq!(t.initial_root.as_ref(), Some(&root));

    // A root without the repository it belongs to, a missing root file, a TUF URL that is not
    // http(s): each named.
    let e = err(
        &pvc_args(&[
            "--sign",
            "true",
            "--signing-identity-token-path",
            &token_s,
            "--signing-tuf-root-path",
            &root_s,
        ]),
        &ctx(&ALL[1..]),
    );
    assert!(
        e.contains("SIGSTORE_TUF_URL is required")
            && e.contains("--signing-tuf-root-path (MODEL_SYNC_SIGNING_TUF_ROOT_PATH)"),
        "{e}"
    );
    let e = err(
        &pvc_args(&[
            "--signing-identity-token-path",
            &token_s,
            "--signing-tuf-root-path",
            "/nonexistent/root.json",
        ]),
        &ctx(&ALL),
    );
    assert!(
        e.contains("MODEL_SYNC_SIGNING_TUF_ROOT_PATH): cannot read /nonexistent/root.json"),
        "{e}"
    );
    let mut vars = ALL;
    vars[0] = ("SIGSTORE_TUF_URL", "file:///tuf");
    let e = err(
        &pvc_args(&["--signing-identity-token-path", &token_s]),
        &ctx(&vars),
    );
    assert!(
        e.contains("SIGSTORE_TUF_URL") && e.contains("an http(s) URL"),
        "{e}"
    );
}

#[test]
fn a_signing_key_selects_key_based_mode() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let key_s = key.display().to_string();
    // The key alone enables signing; no sigstore variable is needed.
    let c = ok(&pvc_args(&["--signing-key-path", &key_s]), &ctx(&[]));
    assert_eq!(
        c.signing.decision,
        SigningDecision::Enabled {
            by: EnabledBy::SigningKey
        }
    );
    assert_eq!(c.signing.mode, Some(SigningMode::Key { path: key.clone() }));
    // It wins over the keyless endpoints.
    let c = ok(
        &pvc_args(&["--sign", "true", "--signing-key-path", &key_s]),
        &ctx(&ALL),
    );
    assert_eq!(c.signing.mode, Some(SigningMode::Key { path: key }));
    // --sign false still disables.
    let c = ok(
        &pvc_args(&["--sign", "false", "--signing-key-path", &key_s]),
        &ctx(&[]),
    );
    assert!(!c.signing.decision.is_enabled());
    assert_eq!(c.signing.mode, None);
    let e = err(
        &pvc_args(&["--signing-key-path", "/nonexistent/key.pem"]),
        &ctx(&[]),
    );
    assert!(
        e.contains(
            "--signing-key-path (MODEL_SYNC_SIGNING_KEY_PATH): cannot read /nonexistent/key.pem"
        ),
        "{e}"
    );
}

#[test]
fn partial_config_job_runs_with_a_warning() {
    let c = ok(&base_args(), &ctx(&ALL[1..]));
    assert!(!c.signing.decision.is_enabled());
    assert!(
        c.warnings.iter().any(|w| w.contains("SIGSTORE_TUF_URL")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn identity_token_path_is_carried() {
    let c = ok(
        &args_with(&[
            "--sign",
            "false",
            "--signing-identity-token-path",
            "/var/run/id/token",
        ]),
        &ctx(&[]),
    );
    assert_eq!(
        c.signing.identity_token_path.as_deref(),
        Some(Path::new("/var/run/id/token"))
    );
}

#[test]
fn tsa_url_timestamps_keyless_signatures_and_is_refused_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a.b.c").unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let token_s = token.display().to_string();
    let mut vars = ALL.to_vec();
    vars.push(("SIGSTORE_TSA_URL", "https://tsa.example/api/v1/timestamp"));
    let c = ok(
        &pvc_args(&["--signing-identity-token-path", &token_s]),
        &ctx(&vars),
    );
    let Some(SigningMode::Keyless { tsa: Some(tsa), .. }) = &c.signing.mode else {
        panic!("{:?}", c.signing.mode);
    };
    // Posted to as given: no slash appended to the endpoint.
    assert_eq!(tsa.as_str(), "https://tsa.example/api/v1/timestamp");

    vars[3] = ("SIGSTORE_TSA_URL", "tsa.example");
    let e = err(
        &pvc_args(&["--signing-identity-token-path", &token_s]),
        &ctx(&vars),
    );
    assert!(
        e.contains("SIGSTORE_TSA_URL") && e.contains("an http(s) URL"),
        "{e}"
    );

    vars[3] = ("SIGSTORE_TSA_URL", "https://tsa.example/api/v1/timestamp");
    let e = err(
        &pvc_args(&["--signing-key-path", &key.display().to_string()]),
        &ctx(&vars),
    );
    assert!(
        e.contains("SIGSTORE_TSA_URL is set with --signing-key-path"),
        "{e}"
    );
}
