//! OCI image destinations: model-sync signs the pushed modelcar's manifest digest and attaches
//! the sigstore bundle as an OCI 1.1 referrer. The test finds it on its own, with a plain HTTP
//! client through the referrers tag schema (distribution 2.8 has no referrers API), and has it
//! verified by `sigstore verify identity` (keyless, the stand-ins' trust config) or by
//! `model_signing`'s key verifier (key-based). Another image's digest, a changed digest and an
//! edited statement must fail.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::model_sync::{Model, SyncJob, pull_image, push_base_image};
use mro_tests::oci_registry::OciRegistry;
use mro_tests::sigstore::{ISSUER_URL, Sigstore, verifiers};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const IMAGE_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SUBJECT: &str = "system:serviceaccount:models:model-sync";
const IDENTITY: &str = "https://kubernetes.io/namespaces/models/serviceaccounts/model-sync";
const REPO: &str = "models/signed";

/// The registry, the stand-in Model Registry and the base image.
pub(super) struct Bed {
    pub(super) oci: OciRegistry,
    pub(super) mr: ModelRegistryStandIn,
    pub(super) base_image: String,
}

impl Bed {
    pub(super) async fn start(auth_tls: bool) -> anyhow::Result<Self> {
        mro_tests::init();
        let oci = if auth_tls {
            OciRegistry::start_auth_tls().await?
        } else {
            OciRegistry::start_plain().await?
        };
        let base_image = push_base_image(&oci).await?;
        let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
        Ok(Self {
            oci,
            mr,
            base_image,
        })
    }

    /// A PVC → OCI job pushing `Model::small(seed)` to `REPO:tag`.
    fn job(&self, seed: u64, tag: &str) -> anyhow::Result<SyncJob> {
        let mut job = SyncJob::new()?;
        let src = job.dir().join("src");
        Model::small(seed).write_dir(&src)?;
        self.wire(&mut job, &src, tag)?;
        Ok(job)
    }

    /// A job pushing the files of an earlier job's source directory (same files, same
    /// modification times: the same image digest).
    fn job_from(&self, earlier: &SyncJob, tag: &str) -> anyhow::Result<SyncJob> {
        let mut job = SyncJob::new()?;
        self.wire(&mut job, &earlier.dir().join("src"), tag)?;
        Ok(job)
    }

    fn wire(&self, job: &mut SyncJob, src: &std::path::Path, tag: &str) -> anyhow::Result<()> {
        job.registry(&self.mr.base_url(), self.mr.token());
        job.pvc_source(src)
            .oci_destination(&self.oci, REPO, tag)?
            .env(
                "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE",
                self.base_image.clone(),
            );
        Ok(())
    }

    pub(super) fn http(&self) -> anyhow::Result<Http> {
        Ok(Http {
            client: self.oci.http_client()?,
            base: self.oci.base_url(),
            auth: self
                .oci
                .username()
                .zip(self.oci.password())
                .map(|(u, p)| (u.to_owned(), p.to_owned())),
        })
    }
}

/// A plain distribution-API client (no model-sync code), with basic auth when needed.
pub(super) struct Http {
    client: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
}

impl Http {
    pub(super) async fn get(&self, path: &str, accept: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut rb = self
            .client
            .get(format!("{}/v2/{path}", self.base))
            .header("Accept", accept);
        if let Some((u, p)) = &self.auth {
            rb = rb.basic_auth(u, Some(p));
        }
        let resp = rb.send().await?;
        Ok((resp.status().as_u16(), resp.bytes().await?.to_vec()))
    }

    /// A manifest by tag or digest, checked against its digest; returns (digest, bytes).
    pub(super) async fn manifest(
        &self,
        reference: &str,
        accept: &str,
    ) -> anyhow::Result<(String, Vec<u8>)> {
        let (status, body) = self
            .get(&format!("{REPO}/manifests/{reference}"), accept)
            .await?;
        anyhow::ensure!(status == 200, "GET manifest {reference}: HTTP {status}");
        let digest = sha256_digest(&body);
        if reference.starts_with("sha256:") {
            anyhow::ensure!(
                digest == reference,
                "manifest {reference} hashes to {digest}"
            );
        }
        Ok((digest, body))
    }

    async fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let (status, body) = self.get(&format!("{REPO}/blobs/{digest}"), "*/*").await?;
        anyhow::ensure!(status == 200, "GET blob {digest}: HTTP {status}");
        anyhow::ensure!(
            sha256_digest(&body) == digest,
            "blob {digest} digest mismatch"
        );
        Ok(body)
    }

    /// Every sigstore bundle attached to `image`, found through the referrers tag schema, with
    /// each referrer manifest checked against the image it claims to sign.
    pub(super) async fn signatures(&self, image: &str) -> anyhow::Result<Vec<Signature>> {
        // distribution 2.8 has no referrers API: the fallback tag is the only index.
        let (status, _) = self
            .get(&format!("{REPO}/referrers/{image}"), INDEX)
            .await?;
        anyhow::ensure!(status == 404, "referrers API answered HTTP {status}");
        let (_, image_manifest) = self
            .manifest(image, &format!("{MANIFEST}, {INDEX}"))
            .await?;
        let tag = image.replacen(':', "-", 1);
        let (_, index) = self.manifest(&tag, INDEX).await?;
        let index: Value = serde_json::from_slice(&index)?;
        anyhow::ensure!(
            index["mediaType"] == INDEX,
            "{tag} is not an index: {index}"
        );
        let mut out = Vec::new();
        for entry in index["manifests"].as_array().into_iter().flatten() {
            if entry["artifactType"] != BUNDLE_TYPE {
                continue;
            }
            let digest = entry["digest"].as_str().unwrap_or_default().to_owned();
            let (_, raw) = self.manifest(&digest, MANIFEST).await?;
            anyhow::ensure!(entry["size"] == raw.len(), "index size of {digest}");
            let m: Value = serde_json::from_slice(&raw)?;
            anyhow::ensure!(m["artifactType"] == BUNDLE_TYPE, "{m}");
            anyhow::ensure!(m["subject"]["digest"] == image, "subject of {digest}: {m}");
            anyhow::ensure!(m["subject"]["size"] == image_manifest.len(), "{m}");
            anyhow::ensure!(m["subject"]["mediaType"] == MANIFEST, "{m}");
            anyhow::ensure!(
                m["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
                    && self
                        .blob(m["config"]["digest"].as_str().unwrap_or(""))
                        .await?
                        == b"{}",
                "config of {digest}: {m}"
            );
            let layer = &m["layers"][0];
            anyhow::ensure!(layer["mediaType"] == BUNDLE_TYPE, "{m}");
            let bundle = self.blob(layer["digest"].as_str().unwrap_or("")).await?;
            out.push(Signature {
                annotations: entry["annotations"].clone(),
                bundle,
            });
        }
        Ok(out)
    }
}

pub(super) struct Signature {
    /// The referrers index entry's annotations.
    annotations: Value,
    pub(super) bundle: Vec<u8>,
}

fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The same digest with its last hex digit changed.
fn changed(digest: &str) -> String {
    let mut s = hex_of(digest).to_owned();
    let last = if s.ends_with('0') { "1" } else { "0" };
    s.pop();
    s.push_str(last);
    s
}

/// A copy of `bundle` whose statement names `digest_hex` instead, signature unchanged.
fn with_statement_digest(bundle: &[u8], digest_hex: &str) -> anyhow::Result<Vec<u8>> {
    let mut b: Value = serde_json::from_slice(bundle)?;
    let payload = b["dsseEnvelope"]["payload"].as_str().unwrap_or_default();
    let mut statement: Value = serde_json::from_slice(&STANDARD.decode(payload)?)?;
    statement["subject"][0]["digest"]["sha256"] = digest_hex.into();
    b["dsseEnvelope"]["payload"] = STANDARD.encode(serde_json::to_vec(&statement)?).into();
    Ok(serde_json::to_vec(&b)?)
}

fn check_annotations(s: &Signature) {
    assert_eq!(
        s.annotations["dev.sigstore.bundle.content"], "dsse-envelope",
        "{}",
        s.annotations
    );
    assert_eq!(
        s.annotations["dev.sigstore.bundle.predicateType"], IMAGE_PREDICATE,
        "{}",
        s.annotations
    );
    assert!(
        s.annotations["org.opencontainers.image.created"].is_string(),
        "{}",
        s.annotations
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_signed_image_verifies_from_its_referrer() -> anyhow::Result<()> {
    // The auth+TLS registry: the referrer push authenticates and trusts the CA like the image.
    let bed = Bed::start(true).await?;
    let sig = Sigstore::start()?;
    // The trusted root from TUF: Fulcio's and Rekor's answers are checked before the push.
    let tuf = sig.tuf().await?;
    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;
    let mut job = bed.job(91, "v1")?;
    let token_path = job.file("sa/token", &token)?;
    job.env("SIGSTORE_TUF_URL", tuf.url())
        .env("SIGSTORE_FULCIO_URL", sig.fulcio.url())
        .env("SIGSTORE_REKOR_URL", sig.rekor.url())
        .env(
            "MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH",
            token_path.display().to_string(),
        );
    job.create_model("signed-image", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    assert!(!out.all_output().contains(&token), "the token leaked");
    // Two signatures: /models/model.sig inside the image, and the image's referrer.
    assert_eq!(sig.fulcio.issued(), 2);
    assert_eq!(sig.rekor.size(), 2);
    let digest = out.json()["digest"].as_str().unwrap_or_default().to_owned();
    assert!(digest.starts_with("sha256:"), "{}", out.all_output());

    let http = bed.http()?;
    let found = http.signatures(&digest).await?;
    assert_eq!(found.len(), 1, "one signature attached");
    check_annotations(&found[0]);
    let bundle: Value = serde_json::from_slice(&found[0].bundle)?;
    assert_eq!(bundle["mediaType"], BUNDLE_TYPE);
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );
    let dir = job.dir().join("verify");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("image.sigstore.json");
    std::fs::write(&path, &found[0].bundle)?;
    let trust = sig.trust_config_path();
    let verify = |artifact: String, bundle: std::path::PathBuf| {
        let trust = trust.clone();
        async move {
            verifiers::sigstore_identity_digest(&artifact, &bundle, &trust, IDENTITY, ISSUER_URL)
                .await
        }
    };

    verify(digest.clone(), path.clone())
        .await?
        .assert_ok("keyless image signature");

    // Another image (the base) and a changed digest are not what was signed.
    let (base_digest, _) = http_base(&bed).await?;
    verify(base_digest.clone(), path.clone())
        .await?
        .assert_rejected("another image");
    verify(format!("sha256:{}", changed(&digest)), path.clone())
        .await?
        .assert_rejected("a changed digest");

    // The statement rewritten to name the base image: the signature no longer covers it.
    let forged = dir.join("forged.sigstore.json");
    std::fs::write(
        &forged,
        with_statement_digest(&found[0].bundle, hex_of(&base_digest))?,
    )?;
    verify(base_digest.clone(), forged)
        .await?
        .assert_rejected("an edited statement");

    // Another trusted root does not know these services.
    let other = Sigstore::start()?;
    verifiers::sigstore_identity_digest(
        &digest,
        &path,
        &other.trust_config_path(),
        IDENTITY,
        ISSUER_URL,
    )
    .await?
    .assert_rejected("another trusted root");

    // The image itself is untouched: the tag still names it and it pulls whole.
    let (tagged, _) = http.manifest("v1", MANIFEST).await?;
    assert_eq!(tagged, digest);
    let mut pulled = pull_image(&bed.oci, &format!("{}/{REPO}@{digest}", bed.oci.host())).await?;
    assert!(
        pulled.models.files.remove("model.sig").is_some(),
        "no /models/model.sig"
    );
    assert_eq!(pulled.models, Model::small(91));
    Ok(())
}

/// The base image's manifest digest (an image that was not signed).
async fn http_base(bed: &Bed) -> anyhow::Result<(String, Vec<u8>)> {
    let http = bed.http()?;
    let (status, body) = http.get("base/busybox/manifests/1", MANIFEST).await?;
    anyhow::ensure!(status == 200, "base image manifest: HTTP {status}");
    Ok((sha256_digest(&body), body))
}

#[tokio::test(flavor = "multi_thread")]
async fn key_signed_image_verifies_and_a_second_signature_is_appended() -> anyhow::Result<()> {
    let bed = Bed::start(false).await?;
    let (private, public) = super::key::key_pair()?;
    let mut job = bed.job(92, "v1")?;
    let private_path = job.file("signing/key.pem", &private)?;
    let public_path = job.file("signing/key.pub", &public)?;
    job.env(
        "MODEL_SYNC_SIGNING_KEY_PATH",
        private_path.display().to_string(),
    );
    job.create_model("key-signed-image", "v1")?;
    let out = job.run().await?;
    out.expect_exit(0);
    assert!(!out.all_output().contains("PRIVATE KEY"));
    let digest = out.json()["digest"].as_str().unwrap_or_default().to_owned();
    assert!(
        out.json()["uri"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&digest),
        "{}",
        out.all_output()
    );

    let http = bed.http()?;
    let found = http.signatures(&digest).await?;
    assert_eq!(found.len(), 1);
    check_annotations(&found[0]);
    let bundle: Value = serde_json::from_slice(&found[0].bundle)?;
    assert!(
        bundle["verificationMaterial"]["publicKey"]["hint"].is_string(),
        "{bundle}"
    );
    let dir = job.dir().join("verify");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("image.sigstore.json");
    std::fs::write(&path, &found[0].bundle)?;

    verifiers::model_signing_key_image(&path, &public_path, hex_of(&digest))
        .await?
        .assert_ok("key-signed image");
    let (base_digest, _) = http_base(&bed).await?;
    verifiers::model_signing_key_image(&path, &public_path, hex_of(&base_digest))
        .await?
        .assert_rejected("another image");
    verifiers::model_signing_key_image(&path, &public_path, &changed(&digest))
        .await?
        .assert_rejected("a changed digest");
    let forged = dir.join("forged.sigstore.json");
    std::fs::write(
        &forged,
        with_statement_digest(&found[0].bundle, hex_of(&base_digest))?,
    )?;
    verifiers::model_signing_key_image(&forged, &public_path, hex_of(&base_digest))
        .await?
        .assert_rejected("an edited statement");
    let (_, other_public) = super::key::key_pair()?;
    let other = job.file("signing/other.pub", other_public)?;
    verifiers::model_signing_key_image(&path, &other, hex_of(&digest))
        .await?
        .assert_rejected("a different public key");

    // The same model again to the same tag: a new image (its /models/model.sig is a new
    // signature), signed by its own referrer.
    let mut again = bed.job_from(&job, "v1")?;
    again.env(
        "MODEL_SYNC_SIGNING_KEY_PATH",
        private_path.display().to_string(),
    );
    again.create_model("key-signed-image-again", "v1")?;
    let out = again.run().await?;
    out.expect_exit(0);
    let second = out.json()["digest"].as_str().unwrap_or_default().to_owned();
    assert_ne!(second, digest, "a new model.sig makes a new image");
    assert_eq!(http.manifest("v1", MANIFEST).await?.0, second);
    assert_eq!(http.signatures(&second).await?.len(), 1);

    // Signing the first image once more appends to its referrers index (the first kept).
    let signer = model_sync::sign::Signer::new(
        &model_sync::config::SigningMode::Key {
            path: private_path.clone(),
        },
        None,
    )?;
    let dest = model_sync::config::OciDestination {
        location: model_sync::config::OciLocation {
            reference: format!("{}/{REPO}:v1", bed.oci.host()).parse()?,
            credentials: None,
            tls_verify: false,
        },
        base_image: bed.base_image.clone(),
    };
    model_sync::sign::oci_image::sign(&signer, &dest, &digest, None).await?;
    let found = http.signatures(&digest).await?;
    assert_eq!(found.len(), 2, "both signatures listed");
    assert_ne!(found[0].bundle, found[1].bundle);
    for (i, s) in found.iter().enumerate() {
        let p = dir.join(format!("again-{i}.sigstore.json"));
        std::fs::write(&p, &s.bundle)?;
        verifiers::model_signing_key_image(&p, &public_path, hex_of(&digest))
            .await?
            .assert_ok("each listed signature");
    }
    Ok(())
}

/// The image is pushed (its `model.sig` inside makes its digest new each run), then someone
/// tags an ordinary image with its referrers tag before the referrer is attached: the Fulcio
/// stand-in holds the second certificate request (the image signature's) while the test does.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_manifest_at_the_referrers_tag_fails_signing() -> anyhow::Result<()> {
    let bed = Bed::start(false).await?;
    let sig = Sigstore::start()?;
    sig.fulcio.hold_from(2);
    let token = sig.issuer.token(SUBJECT, "sigstore", 600)?;
    let mut job = bed.job(93, "v1")?;
    let token_path = job.file("sa/token", &token)?;
    job.env("SIGSTORE_FULCIO_URL", sig.fulcio.url())
        .env("SIGSTORE_REKOR_URL", sig.rekor.url())
        .env("MODEL_SYNC_SIGN", "true")
        .env(
            "MODEL_SYNC_SIGNING_IDENTITY_TOKEN_PATH",
            token_path.display().to_string(),
        );
    job.create_model("signed-image-blocked", "v1")?;
    let http = bed.http()?;
    let meddle = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while sig.fulcio.received() < 2 {
            anyhow::ensure!(std::time::Instant::now() < deadline, "no second signature");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Someone tagged an ordinary image (this one) with the image's referrers tag.
        let (digest, image) = http.manifest("v1", MANIFEST).await?;
        let tag = digest.replacen(':', "-", 1);
        let resp = bed
            .oci
            .http_client()?
            .put(format!("{}/v2/{REPO}/manifests/{tag}", bed.oci.base_url()))
            .header("Content-Type", MANIFEST)
            .body(image)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "PUT {tag}: {}", resp.status());
        sig.fulcio.release();
        Ok(tag)
    };
    let (out, tag) = tokio::join!(job.run(), meddle);
    sig.fulcio.release();
    let (out, tag) = (out?, tag?);
    assert_eq!(out.json()["digest"], Value::Null, "{}", out.all_output());
    out.expect_exit(1);
    assert_eq!(out.reason(), "SigningFailed", "{}", out.all_output());
    assert!(
        out.termination.contains(&tag) && out.termination.contains("referrers index"),
        "{}",
        out.all_output()
    );
    assert!(
        bed.mr
            .registered_models()
            .iter()
            .all(|m| m["name"] != "signed-image-blocked"),
        "a model was registered although signing failed"
    );
    Ok(())
}
