//! Every row of the signing decision table, and what validation does with it.

use super::*;
use crate::config::{DisabledBy, EnabledBy, SigningDecision, SigstoreEndpoints, decide};

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

#[test]
fn sign_true_fails_validation_as_not_implemented() {
    let e = err(&args_with(&["--sign", "true"]), &ctx(&[]));
    assert!(
        e.contains("signing is not implemented yet (--sign true)"),
        "{e}"
    );
    let e = err(&base_args(), &ctx(&[("MODEL_SYNC_SIGN", "yes")]));
    assert!(
        e.contains("signing is not implemented yet (--sign true)"),
        "{e}"
    );
    let e = err(&args_with(&["--sign"]), &ctx(&[]));
    assert!(
        e.contains("signing is not implemented yet (--sign true)"),
        "{e}"
    );
}

#[test]
fn auto_enabled_signing_also_fails_and_says_how_to_skip() {
    let e = err(&base_args(), &ctx(&ALL));
    assert!(e.contains("signing is not implemented yet"), "{e}");
    assert!(e.contains("--sign false"), "{e}");
    // ... and --sign false is the way out.
    let c = ok(&args_with(&["--sign", "false"]), &ctx(&ALL));
    assert_eq!(
        c.signing.decision,
        SigningDecision::Disabled {
            by: DisabledBy::Flag
        }
    );
    assert_eq!(
        c.signing.endpoints.tuf_url.as_deref(),
        Some("https://tuf.example")
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
