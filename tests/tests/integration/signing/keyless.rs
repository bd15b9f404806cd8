//! Keyless signing against the Fulcio and Rekor stand-ins: identity token → certificate → Rekor
//! entry, checked by `model_signing verify sigstore` and `sigstore verify identity` with the
//! stand-ins' trust config.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{Model, SyncJob};
use mro_tests::sigstore::{ISSUER_URL, Sigstore, verifiers};
use serde_json::Value;

use super::key::{copy_tree, flip_byte, tamper_statement};

pub(super) const SUBJECT: &str = "system:serviceaccount:models:model-sync";
pub(super) const IDENTITY: &str =
    "https://kubernetes.io/namespaces/models/serviceaccounts/model-sync";

/// A PVC → PVC job with the sigstore variables of `sig` (the trusted root from `tuf`, a
/// [`TufRepo`] URL) and a token for `SUBJECT`.
pub(crate) fn keyless_job(
    mr: &ModelRegistryStandIn,
    sig: &Sigstore,
    tuf: &str,
    token: &str,
) -> anyhow::Result<SyncJob> {
    let mut job = SyncJob::new()?;
    job.registry(&mr.base_url(), mr.token());
    let src = job.dir().join("src");
    Model::small(81).write_dir(&src)?;
    let token_path = job.file("sa/token", token)?;
    let out = job.dir().join("out/bert");
    job.pvc_source(&src)
        .pvc_destination(&out)
        .env("SIGSTORE_TUF_URL", tuf)
        .env("SIGSTORE_FULCIO_URL", sig.fulcio.url())
        .env("SIGSTORE_REKOR_URL", sig.rekor.url())
        .env(
            "MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH",
            token_path.display().to_string(),
        );
    Ok(job)
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_signed_model_verifies_with_the_trusted_root() -> anyhow::Result<()> {
    mro_tests::init();
    let sig = Sigstore::start()?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let tuf = sig.tuf().await?;
    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    job.create_model("keyless-bert", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    assert!(!out.all_output().contains(&token), "the token leaked");
    assert_eq!(sig.fulcio.issued(), 1);
    assert_eq!(sig.rekor.size(), 1);
    let dir = job.dir().join("out/bert");
    let model_sig = dir.join("model.sig");
    let bundle: Value = serde_json::from_slice(&std::fs::read(&model_sig)?)?;
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );
    let trust = sig.trust_config_path();

    verifiers::model_signing_sigstore(&dir, &model_sig, &trust, IDENTITY, ISSUER_URL)
        .await?
        .assert_ok("keyless model signature");

    // sigstore-python on its own: the bundle's statement names the model by its root digest.
    let payload = bundle["dsseEnvelope"]["payload"]
        .as_str()
        .unwrap_or_default();
    let statement: Value = serde_json::from_slice(&STANDARD.decode(payload)?)?;
    let root = statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    verifiers::sigstore_identity_digest(
        &format!("sha256:{root}"),
        &model_sig,
        &trust,
        IDENTITY,
        ISSUER_URL,
    )
    .await?
    .assert_ok("sigstore verify identity");

    // Wrong identity, wrong issuer.
    verifiers::model_signing_sigstore(
        &dir,
        &model_sig,
        &trust,
        "https://kubernetes.io/namespaces/models/serviceaccounts/other",
        ISSUER_URL,
    )
    .await?
    .assert_rejected("another identity");
    verifiers::model_signing_sigstore(&dir, &model_sig, &trust, IDENTITY, "https://other.invalid")
        .await?
        .assert_rejected("another issuer");

    // One flipped model byte.
    let t = job.dir().join("tampered-byte");
    copy_tree(&dir, &t)?;
    flip_byte(&t.join("model.onnx"))?;
    verifiers::model_signing_sigstore(&t, &t.join("model.sig"), &trust, IDENTITY, ISSUER_URL)
        .await?
        .assert_rejected("one flipped model byte");

    // The manifest rewritten for a changed file.
    let t = job.dir().join("tampered-manifest");
    copy_tree(&dir, &t)?;
    std::fs::write(t.join("config.json"), "{}\n")?;
    tamper_statement(&t.join("model.sig"), |s| {
        for r in s["predicate"]["resources"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if r["name"] == "config.json" {
                r["digest"] =
                    "ca3d163bab055381827226140568f3bef7eaac187cebd76878e0b63e9e442356".into();
            }
        }
    })?;
    verifiers::model_signing_sigstore(&t, &t.join("model.sig"), &trust, IDENTITY, ISSUER_URL)
        .await?
        .assert_rejected("an edited manifest");

    // A forged transparency-log promise (signed entry timestamp) or inclusion proof.
    for (what, edit) in [
        ("a forged signed entry timestamp", "set"),
        ("a forged inclusion proof root", "root"),
    ] {
        let t = job.dir().join(format!("tampered-{edit}"));
        copy_tree(&dir, &t)?;
        let path = t.join("model.sig");
        let mut b: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        let entry = &mut b["verificationMaterial"]["tlogEntries"][0];
        let other = STANDARD.encode([7u8; 32]);
        match edit {
            "set" => entry["inclusionPromise"]["signedEntryTimestamp"] = other.into(),
            _ => entry["inclusionProof"]["rootHash"] = other.into(),
        }
        std::fs::write(&path, serde_json::to_vec(&b)?)?;
        verifiers::model_signing_sigstore(&t, &path, &trust, IDENTITY, ISSUER_URL)
            .await?
            .assert_rejected(what);
    }

    // A trust root that does not know these services.
    let other = Sigstore::start()?;
    verifiers::model_signing_sigstore(
        &dir,
        &model_sig,
        &other.trust_config_path(),
        IDENTITY,
        ISSUER_URL,
    )
    .await?
    .assert_rejected("another trusted root");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_identity_token_fails_the_job_with_signing_failed() -> anyhow::Result<()> {
    mro_tests::init();
    let sig = Sigstore::start()?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let expired = sig.issuer.token(SUBJECT, "sigstore", -60)?;
    let tuf = sig.tuf().await?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &expired)?;
    job.create_model("keyless-expired", "v1")?;
    let out = job.run().await?;
    out.expect_exit(1);
    assert_eq!(out.reason(), "SigningFailed", "{}", out.all_output());
    assert!(
        out.termination.contains("token expired"),
        "{}",
        out.all_output()
    );
    assert!(!out.all_output().contains(&expired), "the token leaked");
    assert_eq!(sig.rekor.size(), 0);
    // Nothing was registered.
    assert!(
        mr.registered_models()
            .iter()
            .all(|m| m["name"] != "keyless-expired"),
        "a model was registered although signing failed"
    );
    Ok(())
}
