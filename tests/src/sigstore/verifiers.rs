//! The independent verifiers: PyPI `model-signing` (`model_signing verify ...`) and `sigstore`
//! (`sigstore verify ...`), installed into a cached venv by `tests/tools/install-sigstore-verifiers.sh`.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use anyhow::anyhow;

use crate::tools::repo_root;

/// The venv's `bin` directory (installs on first use; `$MRO_SIGSTORE_VENV_BIN` overrides).
pub async fn venv_bin() -> anyhow::Result<PathBuf> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(p) = std::env::var_os("MRO_SIGSTORE_VENV_BIN") {
        return Ok(PathBuf::from(p));
    }
    let r = tokio::task::spawn_blocking(|| INSTALLED.get_or_init(install).clone()).await?;
    r.map_err(|e| anyhow!(e))
}

fn install() -> Result<PathBuf, String> {
    crate::tools::run_venv_installer("install-sigstore-verifiers.sh")
}

/// What a verifier said.
#[derive(Debug)]
pub struct Verdict {
    pub success: bool,
    pub output: String,
}

impl Verdict {
    /// Exit 0 and the verifier's own success line (`Verification succeeded` from
    /// model_signing, `OK:` from sigstore), so a verifier that silently did nothing cannot pass.
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.success
                && (self.output.contains("Verification succeeded") || self.output.contains("OK: ")),
            "{what}: verification failed:\n{}",
            self.output
        );
    }

    /// A non-zero exit with the verifier's failure message (not a crash or a usage error).
    pub fn assert_rejected(&self, what: &str) {
        assert!(
            !self.success
                && (self.output.contains("Verification failed") || self.output.contains("FAIL")),
            "{what}: expected a verification failure:\n{}",
            self.output
        );
    }
}

async fn run(program: &str, args: &[&str]) -> anyhow::Result<Verdict> {
    let bin = venv_bin().await?.join(program);
    let out = tokio::process::Command::new(&bin)
        .args(args)
        // No network: the trust material is the file passed in, never a public instance.
        .env("NO_PROXY", "*")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| anyhow!("running {}: {e}", bin.display()))?;
    Ok(Verdict {
        success: out.status.success(),
        output: format!(
            "$ {program} {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `model_signing verify key` (key-based bundles).
pub async fn model_signing_key(
    model: &Path,
    signature: &Path,
    public_key: &Path,
) -> anyhow::Result<Verdict> {
    run(
        "model_signing",
        &[
            "verify",
            "key",
            &s(model),
            "--signature",
            &s(signature),
            "--public_key",
            &s(public_key),
        ],
    )
    .await
}

/// `model_signing verify sigstore` against a client trust config (keyless bundles).
pub async fn model_signing_sigstore(
    model: &Path,
    signature: &Path,
    trust_config: &Path,
    identity: &str,
    issuer: &str,
) -> anyhow::Result<Verdict> {
    run(
        "model_signing",
        &[
            "verify",
            "sigstore",
            &s(model),
            "--signature",
            &s(signature),
            "--trust_config",
            &s(trust_config),
            "--identity",
            identity,
            "--identity_provider",
            issuer,
        ],
    )
    .await
}

/// `sigstore verify identity` of `artifact` (a file path, or `sha256:<hex>`) against a bundle.
pub async fn sigstore_identity_digest(
    artifact: &str,
    bundle: &Path,
    trust_config: &Path,
    identity: &str,
    issuer: &str,
) -> anyhow::Result<Verdict> {
    run(
        "sigstore",
        &[
            "--trust-config",
            &s(trust_config),
            "verify",
            "identity",
            "--bundle",
            &s(bundle),
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            issuer,
            "--offline",
            artifact,
        ],
    )
    .await
}

/// Key-based check of an image signature bundle with `model_signing`'s own key verifier (PEM
/// public key, key hint, DSSE signature over the PAE), then the statement: cosign's image
/// signing predicate with a subject of digest `sha256:<digest_hex>` (`verify_image_key.py`).
/// Neither the `sigstore` nor the `model_signing` CLI verifies a key-based bundle over anything
/// but a model directory, so the script calls the library's verifier class.
pub async fn model_signing_key_image(
    bundle: &Path,
    public_key: &Path,
    digest_hex: &str,
) -> anyhow::Result<Verdict> {
    let script = repo_root().join("tests/src/sigstore/verify_image_key.py");
    run(
        "python",
        &[&s(&script), &s(bundle), &s(public_key), digest_hex],
    )
    .await
}
