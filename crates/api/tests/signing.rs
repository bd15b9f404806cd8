//! `spec.signing`: `validate()` mirrors the CEL rules (one mode, URL form) and the schema's
//! bounds, naming each field; the wire names follow Kubernetes' URL spelling.

use mro_api::model_transfer::{KeylessSigning, TransferSigning};
use mro_api::{ConfigMapKeyValue, ModelTransferSpec, SecretKeyValue, ValidationError};

fn fields(result: Result<(), Vec<ValidationError>>) -> Vec<String> {
    result
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

fn messages(result: Result<(), Vec<ValidationError>>) -> String {
    mro_api::validation::join_errors(&result.err().unwrap_or_default())
}

fn secret() -> Option<SecretKeyValue> {
    Some(SecretKeyValue::new("s", "k"))
}

/// A valid unsigned transfer.
fn transfer() -> ModelTransferSpec {
    serde_json::from_value(serde_json::json!({
        "source": { "s3": { "bucket": "b", "key": "k", "credentialsSecretRef": { "name": "aws" } } },
        "destination": { "pvc": { "claimName": "models" } },
        "registry": { "url": "https://registry.example.com" },
        "intent": "create_model",
        "model": { "registeredModel": { "name": "iris" }, "modelVersion": { "name": "v1" } }
    }))
    .unwrap()
}

fn keyless() -> KeylessSigning {
    KeylessSigning {
        fulcio_url: "https://fulcio.example.com".into(),
        rekor_url: "http://rekor.sigstore.svc:3000".into(),
        ..KeylessSigning::default()
    }
}

fn signed(signing: TransferSigning) -> ModelTransferSpec {
    ModelTransferSpec {
        signing: Some(signing),
        ..transfer()
    }
}

#[test]
fn signing_needs_exactly_one_mode() {
    signed(TransferSigning {
        keyless: Some(keyless()),
        key_secret_ref: None,
    })
    .validate()
    .unwrap();
    signed(TransferSigning {
        keyless: None,
        key_secret_ref: secret(),
    })
    .validate()
    .unwrap();

    let result = signed(TransferSigning::default()).validate();
    assert_eq!(fields(result.clone()), ["spec.signing"]);
    assert!(messages(result).contains("keyless or keySecretRef"));
    let result = signed(TransferSigning {
        keyless: Some(keyless()),
        key_secret_ref: secret(),
    })
    .validate();
    assert_eq!(fields(result.clone()), ["spec.signing"]);
    assert!(messages(result).contains("found both"));

    let result = signed(TransferSigning {
        keyless: None,
        key_secret_ref: Some(SecretKeyValue::new("", "k")),
    })
    .validate();
    assert_eq!(fields(result), ["spec.signing.keySecretRef.name"]);
}

#[test]
fn keyless_signing_needs_http_urls_and_a_valid_token() {
    let bad = KeylessSigning {
        fulcio_url: "fulcio.example.com".into(),
        rekor_url: "https:///no-host".into(),
        tuf_url: Some("ftp://tuf".into()),
        tsa_url: Some(String::new()),
        audience: Some(String::new()),
        expiration_seconds: Some(599),
        tuf_root_config_map_ref: None,
    };
    let result = signed(TransferSigning {
        keyless: Some(bad),
        key_secret_ref: None,
    })
    .validate();
    assert_eq!(
        fields(result.clone()),
        [
            "spec.signing.keyless.fulcioURL",
            "spec.signing.keyless.rekorURL",
            "spec.signing.keyless.tufURL",
            "spec.signing.keyless.tsaURL",
            "spec.signing.keyless.audience",
            "spec.signing.keyless.expirationSeconds"
        ]
    );
    let text = messages(result);
    assert!(text.contains("http:// or https:// URL"), "{text}");
    assert!(text.contains("\"fulcio.example.com\""), "{text}");
    assert!(text.contains("between 600 and 4294967296"), "{text}");

    let mut too_long = keyless();
    too_long.expiration_seconds = Some((1 << 32) + 1);
    let result = signed(TransferSigning {
        keyless: Some(too_long),
        key_secret_ref: None,
    })
    .validate();
    assert_eq!(fields(result), ["spec.signing.keyless.expirationSeconds"]);

    let mut full = keyless();
    full.tuf_url = Some("https://tuf.example.com/".into());
    full.tsa_url = Some("https://tsa.example.com/api/v1/timestamp".into());
    full.audience = Some("fulcio".into());
    full.expiration_seconds = Some(600);
    assert_eq!(full.audience(), "fulcio");
    assert_eq!(
        keyless().audience(),
        mro_api::model_transfer::DEFAULT_AUDIENCE
    );
    signed(TransferSigning {
        keyless: Some(full),
        key_secret_ref: None,
    })
    .validate()
    .unwrap();
}

#[test]
fn signing_fields_use_kubernetes_url_spelling() {
    let spec = signed(TransferSigning {
        keyless: Some(KeylessSigning {
            tuf_url: Some("https://t".into()),
            tsa_url: Some("https://s".into()),
            expiration_seconds: Some(900),
            ..keyless()
        }),
        key_secret_ref: None,
    });
    let wire = serde_json::to_value(&spec).unwrap();
    let k = &wire["signing"]["keyless"];
    for field in [
        "fulcioURL",
        "rekorURL",
        "tufURL",
        "tsaURL",
        "expirationSeconds",
    ] {
        assert!(k.get(field).is_some(), "{field} in {k}");
    }
    assert!(k.get("audience").is_none(), "unset fields are omitted: {k}");
    let back: ModelTransferSpec = serde_json::from_value(wire).unwrap();
    assert_eq!(back, spec);
    // An unsigned spec serializes without the field (unchanged spec hashes).
    assert!(
        serde_json::to_value(transfer())
            .unwrap()
            .get("signing")
            .is_none()
    );
}

#[test]
fn pinned_tuf_root_needs_tuf_url_and_a_full_reference() {
    let pinned = |tuf_url: Option<&str>, name: &str, key: &str| {
        signed(TransferSigning {
            keyless: Some(KeylessSigning {
                tuf_url: tuf_url.map(Into::into),
                tuf_root_config_map_ref: Some(ConfigMapKeyValue::new(name, key)),
                ..keyless()
            }),
            key_secret_ref: None,
        })
        .validate()
    };
    pinned(
        Some("https://tuf.example.com"),
        "sigstore-root",
        "root.json",
    )
    .unwrap();

    // Without tufURL there is no repository to pin the root of.
    let result = pinned(None, "sigstore-root", "root.json");
    assert_eq!(
        fields(result.clone()),
        ["spec.signing.keyless.tufRootConfigMapRef"]
    );
    let text = messages(result);
    assert!(text.contains("requires tufURL"), "{text}");

    let result = pinned(Some("https://tuf.example.com"), "", "");
    assert_eq!(
        fields(result),
        [
            "spec.signing.keyless.tufRootConfigMapRef.name",
            "spec.signing.keyless.tufRootConfigMapRef.key"
        ]
    );

    // Wire form: a {name, key} object next to tufURL, omitted when unset.
    let spec = pinned_spec();
    let wire = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        wire["signing"]["keyless"]["tufRootConfigMapRef"],
        serde_json::json!({ "name": "sigstore-root", "key": "root.json" })
    );
    let back: ModelTransferSpec = serde_json::from_value(wire).unwrap();
    assert_eq!(back, spec);
    let plain = serde_json::to_value(signed(TransferSigning {
        keyless: Some(keyless()),
        key_secret_ref: None,
    }))
    .unwrap();
    assert!(
        plain["signing"]["keyless"]
            .get("tufRootConfigMapRef")
            .is_none()
    );
}

fn pinned_spec() -> ModelTransferSpec {
    signed(TransferSigning {
        keyless: Some(KeylessSigning {
            tuf_url: Some("https://tuf.example.com".into()),
            tuf_root_config_map_ref: Some(ConfigMapKeyValue::new("sigstore-root", "root.json")),
            ..keyless()
        }),
        key_secret_ref: None,
    })
}
