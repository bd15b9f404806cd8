//! The trusted root from SIGSTORE_TUF_URL: model-sync fetches it through TUF from the
//! [`TufRepo`] stand-in (first use or a pinned initial root, root rotation followed, tampered
//! metadata refused) and checks Fulcio's certificate and Rekor's entry against it before
//! anything is published. Successful signatures are still checked by PyPI `model-signing`.
use std::path::Path;

use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::JobOutput;
use mro_tests::sigstore::tuf::TufRepo;
use mro_tests::sigstore::{ISSUER_URL, Sigstore, trust, verifiers};
use serde_json::Value;

use super::keyless::{IDENTITY, SUBJECT, keyless_job};

const TOFU_WARNING: &str = "trusting the repository's current root.json on first use";

async fn verify(dir: &Path, sig: &Sigstore) -> anyhow::Result<()> {
    verifiers::model_signing_sigstore(
        dir,
        &dir.join("model.sig"),
        &sig.trust_config_path(),
        IDENTITY,
        ISSUER_URL,
    )
    .await?
    .assert_ok("keyless model signature with a TUF trusted root");
    Ok(())
}

/// A failed run: SigningFailed naming `needle`, no `model.sig`, nothing registered.
fn assert_refused(
    out: &JobOutput,
    dir: &Path,
    mr: &ModelRegistryStandIn,
    model: &str,
    needle: &str,
) {
    out.expect_exit(1);
    assert_eq!(out.reason(), "SigningFailed", "{}", out.all_output());
    assert!(
        out.termination.contains(needle),
        "{needle:?} in\n{}",
        out.all_output()
    );
    assert!(
        !dir.join("model.sig").exists(),
        "a signature was published although the check failed"
    );
    assert!(
        mr.registered_models().iter().all(|m| m["name"] != model),
        "a model was registered although signing failed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_root_fetched_on_first_use_signs_and_verifies() -> anyhow::Result<()> {
    mro_tests::init();
    let sig = Sigstore::start()?;
    let tuf = sig.tuf().await?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    job.create_model("tuf-tofu", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    let all = out.all_output();
    assert!(all.contains(TOFU_WARNING), "{all}");
    assert!(
        all.contains("trusted root fetched from SIGSTORE_TUF_URL"),
        "{all}"
    );
    assert!(!all.contains("not checked against a trusted root"), "{all}");
    assert!(!all.contains(&token), "the token leaked");
    // The consistent-snapshot paths, root to target.
    let fetched = tuf.fetched();
    let target = tuf.trusted_root_file()?;
    let target = format!(
        "/targets/{}",
        target.file_name().unwrap_or_default().to_string_lossy()
    );
    for p in [
        "/root.json",
        "/2.root.json",
        "/timestamp.json",
        "/1.snapshot.json",
        "/1.targets.json",
        &target,
    ] {
        assert!(
            fetched.iter().any(|f| f == p),
            "{p} not fetched: {fetched:?}"
        );
    }
    verify(&job.dir().join("out/bert"), &sig).await
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_initial_root_follows_a_root_rotation() -> anyhow::Result<()> {
    mro_tests::init();
    let sig = Sigstore::start()?;
    let trusted = trust::trusted_root(&sig.fulcio, &sig.rekor, None);
    let mut tuf = TufRepo::start(&trusted).await?;
    let pinned = std::fs::read(tuf.initial_root())?;
    tuf.rotate_root(&trusted).await?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;

    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    let root = job.file("tuf/root.json", &pinned)?;
    job.env(
        "MODEL_SYNC_SIGNING_TUF_ROOT_PATH",
        root.display().to_string(),
    );
    job.create_model("tuf-rotated", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    assert!(
        !out.all_output().contains(TOFU_WARNING),
        "{}",
        out.all_output()
    );
    let fetched = tuf.fetched();
    assert!(!fetched.iter().any(|f| f == "/root.json"), "{fetched:?}");
    assert!(fetched.iter().any(|f| f == "/2.root.json"), "{fetched:?}");
    assert!(fetched.iter().any(|f| f == "/3.root.json"), "{fetched:?}");
    verify(&job.dir().join("out/bert"), &sig).await?;

    // A root from another repository does not sign this one's metadata.
    let other = TufRepo::start(&trusted).await?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    let root = job.file("tuf/root.json", std::fs::read(other.initial_root())?)?;
    job.env(
        "MODEL_SYNC_SIGNING_TUF_ROOT_PATH",
        root.display().to_string(),
    );
    job.create_model("tuf-foreign-root", "v1")?;
    let out = job.run().await?;
    assert_refused(
        &out,
        &job.dir().join("out/bert"),
        &mr,
        "tuf-foreign-root",
        "the TUF metadata does not verify",
    );
    assert_eq!(
        sig.fulcio.issued(),
        1,
        "Fulcio was asked although TUF failed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_root_for_other_services_fails_and_publishes_nothing() -> anyhow::Result<()> {
    mro_tests::init();
    let sig = Sigstore::start()?;
    let other = Sigstore::start()?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;

    // Another Fulcio CA: refused before anything is logged in Rekor.
    let tuf = TufRepo::start(&trust::trusted_root(&other.fulcio, &sig.rekor, None)).await?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    job.create_model("tuf-other-fulcio", "v1")?;
    let out = job.run().await?;
    assert_refused(
        &out,
        &job.dir().join("out/bert"),
        &mr,
        "tuf-other-fulcio",
        // Both stand-in CAs have the same name: the key is what differs.
        "Fulcio returned a certificate that the trusted root does not vouch for: its signature \
         does not verify with the key of the trusted certificate authority",
    );
    assert_eq!(sig.fulcio.issued(), 1);
    assert_eq!(sig.rekor.size(), 0, "an untrusted certificate was logged");

    // Another Rekor key.
    let tuf = TufRepo::start(&trust::trusted_root(&sig.fulcio, &other.rekor, None)).await?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    job.create_model("tuf-other-rekor", "v1")?;
    let out = job.run().await?;
    assert_refused(
        &out,
        &job.dir().join("out/bert"),
        &mr,
        "tuf-other-rekor",
        "Rekor returned a log entry that the trusted root does not vouch for: the entry names \
         log",
    );

    // The right CA but another CT log: the embedded SCT does not verify.
    let mut root = trust::trusted_root(&sig.fulcio, &sig.rekor, None);
    root["ctlogs"] = trust::trusted_root(&other.fulcio, &other.rekor, None)["ctlogs"].clone();
    let tuf = TufRepo::start(&root).await?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    job.create_model("tuf-other-ct", "v1")?;
    let out = job.run().await?;
    assert_refused(
        &out,
        &job.dir().join("out/bert"),
        &mr,
        "tuf-other-ct",
        "no embedded SCT verifies",
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_tuf_metadata_fails_before_any_byte_moves() -> anyhow::Result<()> {
    mro_tests::init();
    let sig = Sigstore::start()?;
    let other = Sigstore::start()?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;

    // timestamp.json edited after signing: its signature no longer verifies.
    let tuf = sig.tuf().await?;
    let path = tuf.file("timestamp.json");
    let mut ts: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    ts["signed"]["expires"] = "2099-01-01T00:00:00Z".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&ts)?)?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    job.create_model("tuf-bad-signature", "v1")?;
    let out = job.run().await?;
    let dir = job.dir().join("out/bert");
    assert_refused(
        &out,
        &dir,
        &mr,
        "tuf-bad-signature",
        "the TUF metadata does not verify",
    );
    assert!(
        out.termination.contains("timestamp"),
        "{}",
        out.all_output()
    );
    assert!(
        !dir.exists(),
        "the model was transferred before the trust check"
    );

    // trusted_root.json replaced by another instance's: not the signed hash.
    let tuf = sig.tuf().await?;
    let target = tuf.trusted_root_file()?;
    let forged =
        serde_json::to_vec_pretty(&trust::trusted_root(&other.fulcio, &other.rekor, None))?;
    std::fs::write(&target, forged)?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    job.create_model("tuf-bad-hash", "v1")?;
    let out = job.run().await?;
    assert_refused(
        &out,
        &job.dir().join("out/bert"),
        &mr,
        "tuf-bad-hash",
        "trusted_root.json does not match its signed length and hash",
    );
    assert_eq!(sig.fulcio.issued(), 0);
    Ok(())
}

/// The identity token is read again right before Fulcio is called: the signer is built with
/// an expired token for another subject (valid-looking, what a job starts with), the file is
/// then replaced by a fresh token (what the kubelet does with projected tokens), and the
/// certificate names the new token's identity. Driven through model-sync's library so the
/// replacement happens deterministically between the two reads.
#[tokio::test(flavor = "multi_thread")]
async fn the_identity_token_is_read_again_before_fulcio() -> anyhow::Result<()> {
    use model_sync::config::{SigningMode, TufRoot};
    use model_sync::sign::Signer;
    mro_tests::init();
    let sig = Sigstore::start()?;
    let tuf = sig.tuf().await?;
    let dir = tempfile::tempdir()?;
    let token_path = dir.path().join("token");
    let stale = sig
        .issuer
        .token("system:serviceaccount:models:stale", "sigstore", -60)?;
    std::fs::write(&token_path, &stale)?;
    let mode = SigningMode::Keyless {
        fulcio: format!("{}/", sig.fulcio.url()).parse()?,
        rekor: format!("{}/", sig.rekor.url()).parse()?,
        token_path: token_path.clone(),
        tuf: Some(Box::new(TufRoot {
            url: tuf.url().parse()?,
            initial_root: None,
        })),
        tsa: None,
    };
    let signer = Signer::new(&mode, None)?;
    let http = signer.http().cloned().expect("a keyless signer");
    let root = model_sync::sign::trust::tuf::fetch_trusted_root(
        &http,
        &tuf.url().parse()?,
        None,
        dir.path(),
    )
    .await?;
    let signer = signer.with_trust(root);

    std::fs::write(&token_path, sig.issuer.token(SUBJECT, "sigstore", 600)?)?;
    let bundle = signer.sign_statement(br#"{"_type":"test"}"#).await?;
    let cert = bundle
        .verification_material
        .certificate
        .expect("a keyless bundle has a certificate");
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(cert.raw_bytes)?;
    let text = String::from_utf8_lossy(&der);
    assert!(
        text.contains(IDENTITY),
        "the certificate names another identity"
    );
    assert!(!text.contains("serviceaccounts/stale"));
    assert_eq!(sig.fulcio.issued(), 1);
    assert_eq!(sig.rekor.size(), 1);
    Ok(())
}
