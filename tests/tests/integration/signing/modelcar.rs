//! Signed modelcars carry the model signature like the Python job's images: `/models/model.sig`,
//! which `model_signing verify` accepts on the pulled image's extracted `/models` (pulled with
//! the test OCI client, not model-sync code). With SIGSTORE_TSA_URL, the keyless bundles carry
//! an RFC 3161 timestamp from the timestamp authority stand-in, which sigstore-python (inside
//! `model_signing`, and `sigstore verify`) checks against the trusted root's
//! `timestampAuthorities`.
//!
//! sigstore-python counts any verified time source, so a bundle whose Rekor entry keeps its
//! signed entry timestamp verifies even with a broken RFC 3161 timestamp. The timestamp checks
//! below therefore use a copy of the bundle without the inclusion promise: then the timestamp
//! is the only source of time, and a tampered one, one of another signature, or a trusted root
//! without the authority must fail.
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{Model, SyncJob, pull_image};
use mro_tests::s3::S3Server;
use mro_tests::sigstore::tsa::Tsa;
use mro_tests::sigstore::tuf::TufRepo;
use mro_tests::sigstore::{ISSUER_URL, Sigstore, trust, verifiers};
use serde_json::Value;

use super::key::{flip_byte, key_pair};
use super::keyless::{IDENTITY, SUBJECT, keyless_job};
use super::oci::Bed;

const REPO: &str = "models/signed";

/// The bundle with its timestamp replaced by `edit(der)`, and without Rekor's inclusion
/// promise (so the timestamp is the only time source).
fn timestamp_only(bundle: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> anyhow::Result<Vec<u8>> {
    let mut b: Value = serde_json::from_slice(bundle)?;
    let material = &mut b["verificationMaterial"];
    let entry = material["tlogEntries"][0]
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("no tlog entry"))?;
    anyhow::ensure!(
        entry.remove("inclusionPromise").is_some(),
        "no inclusion promise"
    );
    let ts = &mut material["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"];
    let mut der = STANDARD.decode(ts.as_str().unwrap_or_default())?;
    edit(&mut der);
    *ts = STANDARD.encode(der).into();
    Ok(serde_json::to_vec(&b)?)
}

fn rfc3161(bundle: &[u8]) -> anyhow::Result<Vec<u8>> {
    let b: Value = serde_json::from_slice(bundle)?;
    let all = b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(all.len() == 1, "expected one RFC 3161 timestamp: {b}");
    Ok(STANDARD.decode(all[0]["signedTimestamp"].as_str().unwrap_or_default())?)
}

fn listed_files(bundle: &[u8]) -> anyhow::Result<Vec<String>> {
    let b: Value = serde_json::from_slice(bundle)?;
    let payload = STANDARD.decode(b["dsseEnvelope"]["payload"].as_str().unwrap_or_default())?;
    let statement: Value = serde_json::from_slice(&payload)?;
    Ok(statement["predicate"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect())
}

/// Writes the pulled image's /models files under `dir`.
fn extract(models: &Model, sig: &[u8], dir: &Path) -> anyhow::Result<()> {
    models.write_dir(dir)?;
    std::fs::write(dir.join("model.sig"), sig)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_s3_to_oci_image_has_a_timestamped_model_sig_in_models() -> anyhow::Result<()> {
    let bed = Bed::start(false).await?;
    let s3 = S3Server::start().await?;
    let sig = Sigstore::start()?;
    let tuf = sig.tuf().await?;
    let mut model = Model::small(96);
    // Pushed but not listed (model-signing ignores it), and a stale signature that is replaced.
    model
        .files
        .insert(".gitattributes".into(), b"*.onnx lfs\n".to_vec());
    let mut source = model.clone();
    source.files.insert("model.sig".into(), b"stale".to_vec());
    source.put_s3(&s3, "models", "bert").await?;

    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;
    let mut job = SyncJob::new()?;
    let token_path = job.file("sa/token", &token)?;
    job.registry(&bed.mr.base_url(), bed.mr.token());
    job.s3_source(&s3, "models", "bert")
        .oci_destination(&bed.oci, REPO, "v1")?
        .env(
            "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
            bed.base_image.clone(),
        )
        .env("SIGSTORE_TUF_URL", tuf.url())
        .env("SIGSTORE_FULCIO_URL", sig.fulcio.url())
        .env("SIGSTORE_REKOR_URL", sig.rekor.url())
        .env("SIGSTORE_TSA_URL", sig.tsa.url())
        .env(
            "MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH",
            token_path.display().to_string(),
        );
    job.create_model("signed-modelcar", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    // model.sig and the image referrer: two certificates, log entries and timestamps.
    assert_eq!(
        (sig.fulcio.issued(), sig.rekor.size(), sig.tsa.issued()),
        (2, 2, 2)
    );
    let digest = out.json()["digest"].as_str().unwrap_or_default().to_owned();

    let mut pulled = pull_image(&bed.oci, &format!("{}/{REPO}@{digest}", bed.oci.host())).await?;
    let model_sig = pulled
        .models
        .files
        .remove("model.sig")
        .expect("/models/model.sig in the image");
    assert_ne!(
        model_sig, b"stale",
        "the source's model.sig was not replaced"
    );
    assert_eq!(pulled.models, model, "the image's /models");
    let mut names: Vec<String> = model
        .files
        .keys()
        .filter(|p| *p != ".gitattributes")
        .cloned()
        .collect();
    names.sort();
    assert_eq!(listed_files(&model_sig)?, names, "the signed file list");

    let dir = job.dir().join("extracted/models");
    extract(&pulled.models, &model_sig, &dir)?;
    let trust = sig.trust_config_path();
    let verify = |dir: std::path::PathBuf,
                  sig_path: std::path::PathBuf,
                  trust: std::path::PathBuf| async move {
        verifiers::model_signing_sigstore(&dir, &sig_path, &trust, IDENTITY, ISSUER_URL).await
    };
    verify(dir.clone(), dir.join("model.sig"), trust.clone())
        .await?
        .assert_ok("the image's /models");

    // The timestamp alone establishes the signing time, and it is checked.
    let variants = job.dir().join("variants");
    std::fs::create_dir_all(&variants)?;
    let write = |name: &str, data: Vec<u8>| -> anyhow::Result<std::path::PathBuf> {
        let p = variants.join(name);
        std::fs::write(&p, data)?;
        Ok(p)
    };
    let only_ts = write("timestamp-only.sig", timestamp_only(&model_sig, |_| {})?)?;
    verify(dir.clone(), only_ts.clone(), trust.clone())
        .await?
        .assert_ok("the RFC 3161 timestamp as the only time source");
    let broken = write(
        "broken-timestamp.sig",
        timestamp_only(&model_sig, |d| {
            let last = d.len() - 1;
            d[last] ^= 0x01;
        })?,
    )?;
    verify(dir.clone(), broken, trust.clone())
        .await?
        .assert_rejected("a timestamp whose signature was altered");

    let image_sigs = bed.http()?.signatures(&digest).await?;
    assert_eq!(image_sigs.len(), 1);
    let image_bundle = &image_sigs[0].bundle;
    let other_ts = rfc3161(image_bundle)?;
    assert_ne!(other_ts, rfc3161(&model_sig)?);
    let swapped = write(
        "other-timestamp.sig",
        timestamp_only(&model_sig, |d| *d = other_ts.clone())?,
    )?;
    verify(dir.clone(), swapped, trust.clone())
        .await?
        .assert_rejected("the timestamp of another signature");
    verify(
        dir.clone(),
        dir.join("model.sig"),
        sig.trust_config_without_tsa_path(),
    )
    .await?
    .assert_rejected("a trusted root without the timestamp authority");

    // The image referrer's bundle is timestamped too: `sigstore verify` with the timestamp as
    // the only time source.
    let image_only_ts = write(
        "image-timestamp-only.json",
        timestamp_only(image_bundle, |_| {})?,
    )?;
    verifiers::sigstore_identity_digest(&digest, &image_only_ts, &trust, IDENTITY, ISSUER_URL)
        .await?
        .assert_ok("the image signature's timestamp");

    // Tampered /models: a changed byte, an extra file, a missing file.
    flip_byte(&dir.join("model.onnx"))?;
    verify(dir.clone(), dir.join("model.sig"), trust.clone())
        .await?
        .assert_rejected("a flipped byte in model.onnx");
    let dir2 = job.dir().join("extracted2/models");
    extract(&pulled.models, &model_sig, &dir2)?;
    std::fs::write(dir2.join("extra.bin"), b"x")?;
    verify(dir2.clone(), dir2.join("model.sig"), trust.clone())
        .await?
        .assert_rejected("an extra file");
    std::fs::remove_file(dir2.join("extra.bin"))?;
    std::fs::remove_file(dir2.join("config.json"))?;
    verify(dir2.clone(), dir2.join("model.sig"), trust.clone())
        .await?
        .assert_rejected("a missing file");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn key_signed_image_has_model_sig_that_model_signing_verifies() -> anyhow::Result<()> {
    let bed = Bed::start(true).await?;
    let (private, public) = key_pair()?;
    let mut job = SyncJob::new()?;
    let src = job.dir().join("src");
    Model::small(97).write_dir(&src)?;
    let private_path = job.file("signing/key.pem", &private)?;
    let public_path = job.file("signing/key.pub", &public)?;
    job.registry(&bed.mr.base_url(), bed.mr.token());
    job.pvc_source(&src)
        .oci_destination(&bed.oci, REPO, "v1")?
        .env(
            "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
            bed.base_image.clone(),
        )
        .env(
            "MODEL_SYNC_SIGNING_KEY_PATH",
            private_path.display().to_string(),
        );
    job.create_model("key-signed-modelcar", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    let digest = out.json()["digest"].as_str().unwrap_or_default().to_owned();
    let mut pulled = pull_image(&bed.oci, &format!("{}/{REPO}@{digest}", bed.oci.host())).await?;
    let model_sig = pulled
        .models
        .files
        .remove("model.sig")
        .expect("/models/model.sig");
    assert_eq!(pulled.models, Model::small(97));
    assert!(
        pulled
            .paths
            .iter()
            .filter(|p| p.as_str() == "models/model.sig")
            .count()
            == 1,
        "{:?}",
        pulled.paths
    );
    let dir = job.dir().join("extracted/models");
    extract(&pulled.models, &model_sig, &dir)?;
    verifiers::model_signing_key(&dir, &dir.join("model.sig"), &public_path)
        .await?
        .assert_ok("the key-signed image's /models");
    flip_byte(&dir.join("weights/part-0.bin"))?;
    verifiers::model_signing_key(&dir, &dir.join("model.sig"), &public_path)
        .await?
        .assert_rejected("a flipped byte");
    Ok(())
}

/// With a trusted root from TUF, the reply of a timestamp authority that the root does not list
/// fails the signature before anything is written or registered (verifiers would reject it, or
/// skip it and fall back to the log's time).
#[tokio::test(flavor = "multi_thread")]
async fn a_timestamp_authority_the_trusted_root_does_not_list_fails_signing() -> anyhow::Result<()>
{
    mro_tests::init();
    let sig = Sigstore::start()?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let other = Tsa::start()?;
    let tuf = TufRepo::start(&trust::trusted_root(&sig.fulcio, &sig.rekor, Some(&other))).await?;
    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;
    let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
    job.env("SIGSTORE_TSA_URL", sig.tsa.url());
    job.create_model("untrusted-tsa", "v1")?;
    let out = job.run().await?;
    out.expect_exit(1);
    assert_eq!(out.reason(), "SigningFailed", "{}", out.all_output());
    assert!(
        out.termination
            .contains("the timestamp authority returned a timestamp")
            && out
                .termination
                .contains("not signed by a timestamp authority of the trusted root"),
        "{}",
        out.all_output()
    );
    assert_eq!(sig.tsa.issued(), 1);
    assert!(!job.dir().join("out/bert/model.sig").exists());
    assert!(
        mr.registered_models()
            .iter()
            .all(|m| m["name"] != "untrusted-tsa"),
        "registered although signing failed"
    );
    Ok(())
}
