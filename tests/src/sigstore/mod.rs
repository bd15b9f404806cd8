//! Sigstore test stand-ins and the independent verifiers that check model-sync's signatures.
//!
//! - [`oidc`]: a test OIDC issuer minting ES256 tokens (service-account-like subjects).
//! - [`issuers`]: the issuers Fulcio trusts: the test issuer, and optionally a Kubernetes API
//!   server (its published ServiceAccount token keys), so real projected tokens work.
//! - [`fulcio`]: a CA issuing 10-minute code-signing certificates for those tokens, with an SCT
//!   from a stand-in CT log embedded.
//! - [`rekor`]: an append-only Merkle log returning signed entry timestamps, inclusion proofs and
//!   signed checkpoints.
//! - [`tsa`]: an RFC 3161 timestamp authority (SIGSTORE_TSA_URL) with a test certificate chain.
//! - [`trust`]: the trusted root / client trust config describing them.
//! - [`tuf`]: a TUF repository serving that trusted root (SIGSTORE_TUF_URL), root rotation
//!   included.
//! - [`verifiers`]: PyPI `model-signing` and `sigstore`, in a cached venv.
pub mod der;
pub mod fulcio;
pub mod issuers;
pub mod keys;
pub mod oidc;
pub mod rekor;
pub mod trust;
pub mod tsa;
pub mod tuf;
pub mod verifiers;

use std::path::PathBuf;

/// The OIDC issuer URL the stand-ins use (never contacted: tokens are checked in-process).
pub const ISSUER_URL: &str = "https://oidc.mro-tests.invalid";

/// Fulcio, Rekor, the issuer and the trust config file, started together.
#[derive(Debug)]
pub struct Sigstore {
    pub issuer: oidc::TestIssuer,
    pub fulcio: fulcio::Fulcio,
    pub rekor: rekor::Rekor,
    /// Listed in the trusted root; used only by jobs given SIGSTORE_TSA_URL.
    pub tsa: tsa::Tsa,
    dir: tempfile::TempDir,
}

impl Sigstore {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_trusting(Vec::new())
    }

    /// Like [`start`](Self::start), with Fulcio also trusting the tokens of `more` issuers
    /// (e.g. [`issuers::TrustedIssuer::kubernetes`]).
    pub fn start_trusting(more: Vec<issuers::TrustedIssuer>) -> anyhow::Result<Self> {
        let issuer = oidc::TestIssuer::new(ISSUER_URL)?;
        let mut trusted = vec![issuers::TrustedIssuer::test(&issuer)];
        trusted.extend(more);
        let fulcio = fulcio::Fulcio::start_trusting(trusted)?;
        let rekor = rekor::Rekor::start()?;
        let tsa = tsa::Tsa::start()?;
        let dir = tempfile::Builder::new().prefix("mro-sigstore-").tempdir()?;
        let s = Self {
            issuer,
            fulcio,
            rekor,
            tsa,
            dir,
        };
        for (path, tsa) in [
            (s.trust_config_path(), Some(&s.tsa)),
            (s.trust_config_without_tsa_path(), None),
        ] {
            let config = trust::client_trust_config(&s.fulcio, &s.rekor, &s.issuer, tsa);
            std::fs::write(path, serde_json::to_vec_pretty(&config)?)?;
        }
        Ok(s)
    }

    /// A TUF repository serving these services' trusted root (SIGSTORE_TUF_URL).
    pub async fn tuf(&self) -> anyhow::Result<tuf::TufRepo> {
        tuf::TufRepo::start(&trust::trusted_root(
            &self.fulcio,
            &self.rekor,
            Some(&self.tsa),
        ))
        .await
    }

    /// The `ClientTrustConfig` JSON file for the verifiers (the TSA included).
    pub fn trust_config_path(&self) -> PathBuf {
        self.dir.path().join("trust_config.json")
    }

    /// The same trust config without any timestamp authority.
    pub fn trust_config_without_tsa_path(&self) -> PathBuf {
        self.dir.path().join("trust_config_without_tsa.json")
    }
}
