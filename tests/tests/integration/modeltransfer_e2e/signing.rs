//! `spec.signing` end to end: the operator wires the Job, the kubelet runs it (mounting the key
//! Secret, or projecting a real ServiceAccount token with the requested audience; with
//! `MRO_NODE=0` the node agent does, through the API server's TokenRequest API), model-sync
//! signs, and the `model-signing` Python package verifies.
//!
//! Keyless: the Fulcio stand-in trusts the local API server's ServiceAccount issuer through the
//! keys the API server publishes (`/openid/v1/jwks`), so the certificate is issued for a token
//! that really comes from Kubernetes, and names the Job's ServiceAccount. The trusted root comes
//! from the TUF stand-in, starting from the initial root pinned in a ConfigMap
//! (`tufRootConfigMapRef`).
use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::api::PostParams;
use mro_api::model_transfer::TransferPhase;
use mro_tests::model_sync::Model;
use mro_tests::sigstore::issuers::TrustedIssuer;
use mro_tests::sigstore::{Sigstore, verifiers};
use serde_json::{Value, json};

use super::E2e;
use crate::modeltransfer_controller::condition;

/// model-sync's warning when no initial TUF root is pinned.
const TOFU_WARNING: &str = "trusting the repository's current root.json on first use";

/// A fresh P-256 key pair as (private PKCS#8 PEM, public SPKI PEM).
fn key_pair() -> (String, String) {
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key pair");
    (k.serialize_pem(), k.public_key_pem())
}

/// A copy of `dir` with one byte of `file` flipped.
fn tampered_copy(dir: &Path, to: &Path, file: &str) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    copy(dir, to);
    let path = to.join(file);
    let mut data = std::fs::read(&path).unwrap();
    let i = data.len() / 2;
    data[i] ^= 0x01;
    std::fs::write(&path, data).unwrap();
}

/// PersistentVolumeClaims the transfer refers to (the operator checks they exist), each bound to
/// a host directory ([`super::runner::PodRunner::claim`]); returns the directories.
async fn claims(w: &E2e, names: &[&str]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for name in names {
        dirs.push(w.pods.claim(&w.env, name).await);
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
        }))
        .unwrap();
        w.env
            .api::<PersistentVolumeClaim>()
            .create(&PostParams::default(), &pvc)
            .await
            .expect("create PVC");
    }
    dirs
}

/// The model files as written at the destination, without the signature.
fn published(dir: &Path) -> Model {
    let mut m = Model::read_dir(dir).unwrap();
    m.files.remove("model.sig");
    m
}

fn spec(w: &E2e, source: Value, destination: Value, name: &str, signing: Value) -> Value {
    json!({
        "source": source,
        "destination": destination,
        "registry": w.registry(),
        "intent": "create_model",
        "model": { "registeredModel": { "name": name }, "modelVersion": { "name": "v1" } },
        "job": { "backoffLimit": 0 },
        "signing": signing
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn key_signed_pvc_transfer_waits_for_its_key_and_verifies() {
    let w = E2e::new("e2e-sign-key").await;
    let dirs = claims(&w, &["staging", "serving"]).await;
    let (staging, serving) = (&dirs[0], &dirs[1]);
    let model = Model::small(31);
    model.write_dir(&staging.join("bert")).unwrap();
    w.create(
        "bert",
        spec(
            &w,
            json!({ "pvc": { "claimName": "staging", "path": "bert" } }),
            json!({ "pvc": { "claimName": "serving", "path": "models/bert" } }),
            "signed-bert",
            json!({ "keySecretRef": { "name": "signing-key", "key": "key.pem" } }),
        ),
    )
    .await;

    // No key yet: Failed (InvalidConfiguration) naming the field, and no Job.
    let t = w
        .env
        .wait_status("bert", "the missing key reported", |s| {
            s.phase == Some(TransferPhase::Failed)
                && s.message.as_deref().is_some_and(|m| {
                    m.contains("spec.signing.keySecretRef: Secret \"signing-key\" not found")
                })
        })
        .await;
    assert_eq!(
        condition(&t.status.unwrap(), "Failed"),
        Some(("True".into(), "InvalidConfiguration".into()))
    );
    w.env.assert_no_job("bert-sync").await;

    // The key appears: the transfer proceeds on its own, signs and registers.
    let (private, public) = key_pair();
    w.env
        .secret("signing-key", None, json!({ "key.pem": private }))
        .await;
    w.env
        .wait_status("bert", "a Job once the key exists", |s| {
            s.job_name.is_some() && s.phase != Some(TransferPhase::Failed)
        })
        .await;
    let st = w
        .finish("bert", TransferPhase::Succeeded)
        .await
        .status
        .unwrap();
    assert_eq!(
        condition(&st, "Registered").map(|c| c.0),
        Some("True".into()),
        "{st:#?}"
    );
    // The key reached the pod as a file only.
    let job = w.env.api::<Job>().get("bert-sync").await.unwrap();
    let text = serde_json::to_string(&job).unwrap();
    assert!(!text.contains("PRIVATE KEY") && text.contains("MODEL_SYNC_SIGNING_KEY_PATH"));
    assert!(!w.describe().await.contains("PRIVATE KEY"));

    let out = serving.join("models/bert");
    assert_eq!(published(&out), model);
    let sig = out.join("model.sig");
    assert!(sig.is_file(), "no model.sig\n{}", w.describe().await);
    let keys = tempfile::tempdir().unwrap();
    let public_path = keys.path().join("key.pub");
    std::fs::write(&public_path, public).unwrap();
    verifiers::model_signing_key(&out, &sig, &public_path)
        .await
        .unwrap()
        .assert_ok("key-signed transfer");

    let t = keys.path().join("tampered");
    tampered_copy(&out, &t, "weights/part-0.bin");
    verifiers::model_signing_key(&t, &t.join("model.sig"), &public_path)
        .await
        .unwrap()
        .assert_rejected("one flipped model byte");
    let (_, other_public) = key_pair();
    let other = keys.path().join("other.pub");
    std::fs::write(&other, other_public).unwrap();
    verifiers::model_signing_key(&out, &sig, &other)
        .await
        .unwrap()
        .assert_rejected("another key");
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_signing_uses_the_jobs_service_account_identity() {
    let w = E2e::new("e2e-sign-keyless").await;
    let kubernetes = TrustedIssuer::kubernetes(&w.env.client)
        .await
        .expect("the API server's ServiceAccount issuer");
    let sig = Sigstore::start_trusting(vec![kubernetes.clone()]).unwrap();
    let tuf = sig.tuf().await.expect("TUF repository");
    let serving = claims(&w, &["serving"]).await.remove(0);
    let model = Model::small(32);
    model.put_s3(&w.s3, "models", "gpt/v1").await.unwrap();
    let keyless = |audience: Option<&str>| {
        let mut k = json!({ "keyless": { "fulcioURL": w.for_pods(&sig.fulcio.url()),
                                         "rekorURL": w.for_pods(&sig.rekor.url()),
                                         "expirationSeconds": 900 } });
        if let Some(a) = audience {
            k["keyless"]["audience"] = a.into();
        }
        k
    };
    let source = json!({ "s3": { "bucket": "models", "key": "gpt/v1/",
                                 "credentialsSecretRef": { "name": "s3-creds" } } });
    let mut pinned = keyless(None);
    pinned["keyless"]["tufURL"] = w.for_pods(&tuf.url()).into();
    pinned["keyless"]["tufRootConfigMapRef"] = json!({ "name": "tuf-root", "key": "root.json" });
    w.create(
        "gpt",
        spec(
            &w,
            source.clone(),
            json!({ "pvc": { "claimName": "serving", "path": "gpt" } }),
            "keyless-gpt",
            pinned,
        ),
    )
    .await;

    // No pinned root yet: Failed (InvalidConfiguration) naming the field, and no Job.
    let missing = "spec.signing.keyless.tufRootConfigMapRef: ConfigMap \"tuf-root\" not found";
    w.env
        .wait_status("gpt", "the missing TUF root reported", |s| {
            s.phase == Some(TransferPhase::Failed)
                && s.message.as_deref().is_some_and(|m| m.contains(missing))
        })
        .await;
    w.env.assert_no_job("gpt-sync").await;
    let root = std::fs::read_to_string(tuf.initial_root()).unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "tuf-root" }, "data": { "root.json": root }
    }))
    .unwrap();
    w.env
        .api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");
    w.env
        .wait_status("gpt", "a Job once the TUF root exists", |s| {
            s.job_name.is_some() && s.phase != Some(TransferPhase::Failed)
        })
        .await;
    let st = w
        .finish("gpt", TransferPhase::Succeeded)
        .await
        .status
        .unwrap();
    assert_eq!(
        condition(&st, "Registered").map(|c| c.0),
        Some("True".into()),
        "{st:#?}"
    );
    assert_eq!(sig.fulcio.issued(), 1, "{}", w.describe().await);
    assert_eq!(sig.rekor.size(), 1);
    // The trusted root was fetched through TUF from the pinned root, not trusted on first use.
    let log = w.pods.logs(&w.env).await;
    assert!(
        log.contains("trusted root fetched from SIGSTORE_TUF_URL"),
        "{log}"
    );
    assert!(!log.contains(TOFU_WARNING), "{log}");
    let fetched = tuf.fetched();
    assert!(!fetched.iter().any(|f| f == "/root.json"), "{fetched:?}");
    assert!(
        fetched.iter().any(|f| f.ends_with(".trusted_root.json")),
        "{fetched:?}"
    );

    let out = serving.join("gpt");
    assert_eq!(published(&out), model);
    let model_sig = out.join("model.sig");
    let trust = sig.trust_config_path();
    // The certificate names the Job's own ServiceAccount, for the API server's issuer.
    let identity = format!(
        "https://kubernetes.io/namespaces/{}/serviceaccounts/gpt-sync",
        w.env.ns
    );
    verifiers::model_signing_sigstore(&out, &model_sig, &trust, &identity, &kubernetes.url)
        .await
        .unwrap()
        .assert_ok("keyless transfer signed by the Job's ServiceAccount");
    let stranger = format!(
        "https://kubernetes.io/namespaces/{}/serviceaccounts/default",
        w.env.ns
    );
    verifiers::model_signing_sigstore(&out, &model_sig, &trust, &stranger, &kubernetes.url)
        .await
        .unwrap()
        .assert_rejected("another ServiceAccount's identity");
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tampered");
    tampered_copy(&out, &t, "model.onnx");
    verifiers::model_signing_sigstore(&t, &t.join("model.sig"), &trust, &identity, &kubernetes.url)
        .await
        .unwrap()
        .assert_rejected("one flipped model byte");

    // A token for another audience is refused by Fulcio: the transfer fails before registering.
    w.create(
        "wrong-audience",
        spec(
            &w,
            source,
            json!({ "pvc": { "claimName": "serving", "path": "wrong-audience" } }),
            "keyless-wrong-audience",
            keyless(Some("not-sigstore")),
        ),
    )
    .await;
    let st = w
        .finish("wrong-audience", TransferPhase::Failed)
        .await
        .status
        .unwrap();
    assert_eq!(
        condition(&st, "Failed"),
        Some(("True".into(), "SigningFailed".into())),
        "{st:#?}\n{}",
        w.describe().await
    );
    assert!(
        st.message
            .as_deref()
            .unwrap_or_default()
            .contains("audience"),
        "{st:#?}"
    );
    assert!(
        w.mr.registered_models()
            .iter()
            .all(|m| m["name"] != "keyless-wrong-audience"),
        "nothing is registered for an unsigned transfer"
    );
    assert_eq!(sig.fulcio.issued(), 1);
}

/// Rules only CEL expresses (one mode, URL form, a pinned TUF root only with its URL) are
/// enforced by the controller where the API server does not evaluate CEL (the local one is
/// 1.20): Failed, naming the fields, no Job.
#[tokio::test(flavor = "multi_thread")]
async fn contradictory_signing_fails_before_any_job() {
    let env = crate::modeltransfer_controller::Env::new("e2e-sign-invalid").await;
    env.storage_secrets().await;
    let mut spec = crate::modeltransfer_controller::s3_to_oci("http://registry.example:8080");
    spec["signing"] = json!({
        "keySecretRef": { "name": "signing-key", "key": "key.pem" },
        "keyless": { "fulcioURL": "fulcio.example.com", "rekorURL": "https://rekor.example.com",
                     "tufRootConfigMapRef": { "name": "tuf-root", "key": "root.json" } }
    });
    env.create("both-modes", spec).await;
    let t = env
        .wait_status("both-modes", "InvalidConfiguration", |s| {
            condition(s, "Failed") == Some(("True".into(), "InvalidConfiguration".into()))
        })
        .await;
    let msg = t.status.unwrap().message.unwrap();
    assert!(
        msg.contains("spec.signing: exactly one of keyless or keySecretRef")
            && msg.contains("spec.signing.keyless.fulcioURL: must be an http:// or https:// URL")
            && msg.contains("spec.signing.keyless.tufRootConfigMapRef: requires tufURL"),
        "{msg}"
    );
    env.assert_no_job("both-modes-sync").await;
}
