//! Key-based signing (`--signing-key-path`): PVC and S3 destinations, verified with
//! `model_signing verify key`, plus tampering and wrong-key rejections.
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{Model, SyncJob};
use mro_tests::s3::S3Server;
use mro_tests::sigstore::verifiers;
use serde_json::Value;
use sha2::Digest as _;

/// A fresh P-256 key pair as (private PKCS#8 PEM, public SPKI PEM).
pub(super) fn key_pair() -> anyhow::Result<(String, String)> {
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    Ok((k.serialize_pem(), k.public_key_pem()))
}

/// Writes the key pair under the job dir; returns (private, public) paths.
fn key_files(job: &SyncJob) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (private, public) = key_pair()?;
    Ok((
        job.file("signing/key.pem", private)?,
        job.file("signing/key.pub", public)?,
    ))
}

/// Replaces the statement inside `model.sig` by `edit(statement)`, keeping the signature.
pub(super) fn tamper_statement(sig: &Path, edit: impl FnOnce(&mut Value)) -> anyhow::Result<()> {
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(sig)?)?;
    let payload = bundle["dsseEnvelope"]["payload"]
        .as_str()
        .unwrap_or_default();
    let mut statement: Value = serde_json::from_slice(&STANDARD.decode(payload)?)?;
    edit(&mut statement);
    bundle["dsseEnvelope"]["payload"] = STANDARD.encode(serde_json::to_vec(&statement)?).into();
    std::fs::write(sig, serde_json::to_vec(&bundle)?)?;
    Ok(())
}

/// Flips one byte in the middle of a file.
pub(super) fn flip_byte(path: &Path) -> anyhow::Result<()> {
    let mut data = std::fs::read(path)?;
    let i = data.len() / 2;
    data[i] ^= 0x01;
    std::fs::write(path, data)?;
    Ok(())
}

/// Copies a directory tree (a pristine copy to tamper with).
pub(super) fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn key_signed_pvc_model_verifies_and_tampering_is_caught() -> anyhow::Result<()> {
    mro_tests::init();
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let model = Model::small(71);
    let mut job = SyncJob::new()?;
    job.registry(&mr.base_url(), mr.token());
    let src = job.dir().join("src");
    model.write_dir(&src)?;
    // A git attribute file: model-signing skips it by default, so the signature must too.
    std::fs::write(src.join(".gitattributes"), "*.bin filter=lfs\n")?;
    let out_dir = job.dir().join("out/bert");
    let (private, public) = key_files(&job)?;
    job.pvc_source(&src)
        .pvc_destination(&out_dir)
        .env("MODEL_SYNC_SIGNING_KEY_PATH", private.display().to_string());
    job.create_model("signed-bert", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    let sig = out_dir.join("model.sig");
    assert!(sig.is_file(), "no model.sig\n{}", out.all_output());
    assert!(!out.all_output().contains("PRIVATE KEY"));

    verifiers::model_signing_key(&out_dir, &sig, &public)
        .await?
        .assert_ok("signed model");

    // One flipped byte in one file.
    let t = job.dir().join("tampered-byte");
    copy_tree(&out_dir, &t)?;
    flip_byte(&t.join("weights/part-0.bin"))?;
    verifiers::model_signing_key(&t, &t.join("model.sig"), &public)
        .await?
        .assert_rejected("one flipped model byte");

    // An extra file the signature does not list.
    let t = job.dir().join("tampered-extra");
    copy_tree(&out_dir, &t)?;
    std::fs::write(t.join("backdoor.py"), "print('x')\n")?;
    verifiers::model_signing_key(&t, &t.join("model.sig"), &public)
        .await?
        .assert_rejected("an unsigned extra file");

    // The manifest edited to match a changed file: the DSSE signature no longer covers it.
    let t = job.dir().join("tampered-manifest");
    copy_tree(&out_dir, &t)?;
    std::fs::write(t.join("config.json"), "{\"evil\": true}\n")?;
    let evil = hex::encode(sha2::Sha256::digest(b"{\"evil\": true}\n"));
    tamper_statement(&t.join("model.sig"), |s| {
        for r in s["predicate"]["resources"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if r["name"] == "config.json" {
                r["digest"] = evil.clone().into();
            }
        }
    })?;
    verifiers::model_signing_key(&t, &t.join("model.sig"), &public)
        .await?
        .assert_rejected("an edited manifest");

    // Another key does not verify it.
    let (_, other_public) = key_pair()?;
    let other = job.file("signing/other.pub", other_public)?;
    verifiers::model_signing_key(&out_dir, &sig, &other)
        .await?
        .assert_rejected("a different public key");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn key_signed_s3_model_has_model_sig_under_the_prefix() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let model = Model::small(72);
    model.put_s3(&s3, "models", "bert").await?;
    // S3 refuses writes into a missing bucket (s3s-fs's PutObject does not check; its CopyObject,
    // which an S3 → S3 copy on one endpoint uses, does).
    s3.create_bucket("signed").await?;
    let mut job = SyncJob::new()?;
    job.registry(&mr.base_url(), mr.token());
    let (private, public) = key_files(&job)?;
    job.s3_source(&s3, "models", "bert")
        .s3_destination(&s3, "signed", "bert-copy")
        .env("MODEL_SYNC_SIGNING_KEY_PATH", private.display().to_string());
    job.create_model("signed-s3", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);

    // Download the prefix (model files and model.sig) and verify it as a directory.
    let mut with_sig = Model::read_s3(&s3, "signed", "bert-copy").await?;
    let sig = with_sig
        .files
        .remove("model.sig")
        .expect("model.sig under the destination prefix");
    assert_eq!(with_sig, model);
    let dir = job.dir().join("downloaded/bert-copy");
    with_sig.write_dir(&dir)?;
    std::fs::write(dir.join("model.sig"), &sig)?;
    verifiers::model_signing_key(&dir, &dir.join("model.sig"), &public)
        .await?
        .assert_ok("S3 model");
    flip_byte(&dir.join("model.onnx"))?;
    verifiers::model_signing_key(&dir, &dir.join("model.sig"), &public)
        .await?
        .assert_rejected("S3 model with a flipped byte");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_signing_key_fails_before_the_transfer() -> anyhow::Result<()> {
    mro_tests::init();
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let mut job = SyncJob::new()?;
    job.registry(&mr.base_url(), mr.token());
    let src = job.dir().join("src");
    Model::small(73).write_dir(&src)?;
    let out_dir = job.dir().join("out");
    let key = job.file(
        "signing/key.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )?;
    job.pvc_source(&src)
        .pvc_destination(&out_dir)
        .env("MODEL_SYNC_SIGNING_KEY_PATH", key.display().to_string());
    job.create_model("bad-key", "v1")?;
    let out = job.run().await?;
    out.expect_exit(2);
    assert_eq!(out.reason(), "InvalidConfiguration", "{}", out.all_output());
    assert!(out.termination.contains("key.pem"), "{}", out.all_output());
    assert!(!out_dir.exists(), "nothing may be transferred");
    Ok(())
}
