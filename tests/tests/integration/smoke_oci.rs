//! Smoke tests for the distribution registry harness: push and pull round trips in both modes, and
//! that the auth+TLS registry really refuses wrong, missing and untrusted access.
use base64::Engine as _;
use mro_tests::oci_registry::OciRegistry;
use oci_client::Reference;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest as _, Sha256};

fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A one-layer image: the layer is arbitrary bytes (the registry stores blobs without parsing them),
/// the config references it by digest as a real image config would.
fn small_image(tag_seed: &str) -> (ImageLayer, Config) {
    let layer_data = format!("model weights for {tag_seed}\n")
        .repeat(200)
        .into_bytes();
    let diff_id = sha256_digest(&layer_data);
    let layer = ImageLayer::new(layer_data, IMAGE_LAYER_MEDIA_TYPE.to_owned(), None);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    let config = Config::oci_v1(serde_json::to_vec(&config).expect("json"), None);
    (layer, config)
}

/// Asserts the operation failed because the registry refused the credentials (HTTP 401), not for
/// some unrelated reason that would make the negative test pass vacuously.
fn assert_unauthorized(err: Option<oci_client::errors::OciDistributionError>, what: &str) {
    let err = err.unwrap_or_else(|| panic!("{what} must be refused"));
    let text = format!("{err:?} {err}").to_lowercase();
    assert!(
        text.contains("401") || text.contains("unauthorized"),
        "{what}: unexpected error {text}"
    );
}

/// Pushes an image, pulls it back with the same client and checks every digest end to end.
async fn push_pull_round_trip(reg: &OciRegistry, repo: &str) -> anyhow::Result<()> {
    let client = reg.oci_client();
    let auth = reg.registry_auth();
    let reference: Reference = reg.reference(repo, "v1").parse()?;
    assert_eq!(reference.registry(), reg.host());
    let (layer, config) = small_image(repo);
    let layer_digest = sha256_digest(&layer.data);
    let config_digest = sha256_digest(&config.data);

    let pushed = client
        .push(
            &reference,
            std::slice::from_ref(&layer),
            config.clone(),
            &auth,
            None,
        )
        .await?;
    assert!(
        pushed.manifest_url.contains(reg.host()),
        "{}",
        pushed.manifest_url
    );

    // The manifest as stored: its digest is the sha256 of the exact bytes served.
    let (raw, manifest_digest) = client
        .pull_manifest_raw(&reference, &auth, &[OCI_IMAGE_MEDIA_TYPE])
        .await?;
    assert_eq!(manifest_digest, sha256_digest(&raw));
    assert!(
        pushed.manifest_url.ends_with(&manifest_digest),
        "{} vs {manifest_digest}",
        pushed.manifest_url
    );
    assert_eq!(
        client.fetch_manifest_digest(&reference, &auth).await?,
        manifest_digest
    );

    let image = client
        .pull(&reference, &auth, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await?;
    assert_eq!(image.digest.as_deref(), Some(manifest_digest.as_str()));
    let manifest = image.manifest.expect("pull returns the manifest");
    assert_eq!(manifest.config.digest, config_digest);
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].digest, layer_digest);
    assert_eq!(image.layers.len(), 1);
    assert_eq!(sha256_digest(&image.layers[0].data), layer_digest);
    assert_eq!(image.layers[0].data, layer.data);
    assert_eq!(sha256_digest(&image.config.data), config_digest);

    // Pulling by digest gives the same image.
    let by_digest: Reference = format!("{}/{}@{}", reg.host(), repo, manifest_digest).parse()?;
    let again = client
        .pull(&by_digest, &auth, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await?;
    assert_eq!(sha256_digest(&again.layers[0].data), layer_digest);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_plain_registry_push_pull() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_plain().await?;
    assert!(reg.host().starts_with("127.0.0.1:"));
    assert!(!reg.is_tls() && reg.username().is_none() && reg.ca_pem().is_none());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reg.docker_config_json())?,
        serde_json::json!({"auths": {}})
    );
    push_pull_round_trip(&reg, "models/plain-smoke").await
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_auth_tls_registry_push_pull() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_auth_tls().await?;
    assert!(reg.is_tls());
    assert!(reg.base_url().starts_with("https://127.0.0.1:"));
    let (user, pass) = (
        reg.username().expect("user"),
        reg.password().expect("password"),
    );
    assert_eq!(
        std::fs::read_to_string(reg.ca_path().expect("ca path"))?,
        reg.ca_pem().expect("ca pem")
    );

    // The docker config carries exactly these credentials for exactly this host.
    let cfg: serde_json::Value = serde_json::from_str(&reg.docker_config_json())?;
    let b64 = cfg["auths"][reg.host()]["auth"]
        .as_str()
        .expect("auth entry for the host");
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64)?)?;
    assert_eq!(decoded, format!("{user}:{pass}"));

    // Plain HTTPS with the CA: challenged without credentials, admitted with them.
    let http = reg.http_client()?;
    let url = format!("{}/v2/", reg.base_url());
    assert_eq!(http.get(&url).send().await?.status().as_u16(), 401);
    assert_eq!(
        http.get(&url)
            .basic_auth(user, Some(pass))
            .send()
            .await?
            .status()
            .as_u16(),
        200
    );

    push_pull_round_trip(&reg, "models/secure-smoke").await
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_auth_registry_rejects_bad_access() -> anyhow::Result<()> {
    mro_tests::init();
    let reg = OciRegistry::start_auth_tls().await?;
    let reference: Reference = reg.reference("models/guarded", "v1").parse()?;
    let (layer, config) = small_image("guarded");

    // Wrong password: the push must fail and nothing may be stored.
    let wrong = RegistryAuth::Basic(
        reg.username().expect("user").to_owned(),
        "not-the-password".to_owned(),
    );
    let res = reg
        .oci_client()
        .push(
            &reference,
            std::slice::from_ref(&layer),
            config.clone(),
            &wrong,
            None,
        )
        .await;
    assert_unauthorized(res.err(), "push with a wrong password");
    let repo_dir = reg
        .dir()
        .join("storage/docker/registry/v2/repositories/models/guarded");
    assert!(!repo_dir.exists(), "a rejected push must store nothing");

    // With the right credentials the same push works…
    reg.oci_client()
        .push(
            &reference,
            std::slice::from_ref(&layer),
            config,
            &reg.registry_auth(),
            None,
        )
        .await?;

    // …but an anonymous pull is denied (fresh client: no cached credentials)…
    let anon = reg
        .oci_client()
        .pull(
            &reference,
            &RegistryAuth::Anonymous,
            vec![IMAGE_LAYER_MEDIA_TYPE],
        )
        .await;
    assert_unauthorized(anon.err(), "anonymous pull");

    // …and so is a pull with wrong credentials.
    let bad_pull = reg
        .oci_client()
        .pull(&reference, &wrong, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await;
    assert_unauthorized(bad_pull.err(), "pull with a wrong password");

    // A client that does not trust the per-run CA cannot even connect.
    let untrusted = oci_client::Client::new(oci_client::client::ClientConfig {
        tls_certs_only: vec![oci_client::client::Certificate {
            encoding: oci_client::client::CertificateEncoding::Pem,
            data: mro_tests::tls::TestCa::new().cert_pem().as_bytes().to_vec(),
        }],
        ..Default::default()
    });
    let res = untrusted
        .pull(
            &reference,
            &reg.registry_auth(),
            vec![IMAGE_LAYER_MEDIA_TYPE],
        )
        .await;
    assert!(
        res.is_err(),
        "a client trusting another CA must fail TLS verification"
    );

    // Sanity: the correct client still pulls, so the failures above are about access, not the image.
    let ok = reg
        .oci_client()
        .pull(
            &reference,
            &reg.registry_auth(),
            vec![IMAGE_LAYER_MEDIA_TYPE],
        )
        .await?;
    assert_eq!(ok.layers[0].data, layer.data);
    Ok(())
}
