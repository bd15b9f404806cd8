//! A certificate authority generated per test run, and server certificates it signs.
//!
//! Tests that exercise TLS (the OCI registry with auth, later the operator's CA bundle handling) need a
//! trust root nobody else has: a fresh CA per run means no test can accidentally pass by trusting the
//! system store, and no private key ever lives in the repository. Keys are ECDSA P-256 made by aws-lc-rs
//! (the project's one crypto provider), which Go (the distribution registry), rustls and OpenSSL accept.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{Datelike as _, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A throw-away certificate authority: one self-signed root that signs leaf certificates for test servers.
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Paths of PEM files written by [`TestCa::write_server_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (the trust root clients need).
    pub ca_cert: PathBuf,
    /// The server's leaf certificate.
    pub cert: PathBuf,
    /// The server's PKCS#8 private key.
    pub key: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// Validity window shared by every certificate: starts yesterday (tolerates small clock skew between
/// the test process and child servers) and ends in a year (long enough for any run, short enough to look
/// like a real certificate to strict verifiers).
fn apply_validity(params: &mut CertificateParams) {
    let from = (Utc::now() - Duration::days(1)).date_naive();
    let until = (Utc::now() + Duration::days(365)).date_naive();
    // Month and day always fit in u8; the conversion cannot fail for a real date.
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(from);
    params.not_after = ymd(until);
}

impl TestCa {
    /// Generates a new root CA. Panics only if key generation fails, which would be a broken build.
    pub fn new() -> Self {
        Self::try_new().expect("generate test CA")
    }

    /// Fallible form of [`TestCa::new`].
    pub fn try_new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "mro-tests root CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "model-registry-operator tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        apply_validity(&mut params);
        let key = KeyPair::generate().context("generate CA key")?;
        let cert = params.self_signed(&key).context("self-sign CA")?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate in PEM form: what a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for the given names; entries that parse as IP addresses become IP SANs,
    /// the rest DNS SANs. Returns `(cert_pem, key_pem)`.
    pub fn issue_server_cert(&self, sans: &[&str]) -> (String, String) {
        self.try_issue_server_cert(sans)
            .expect("issue server certificate")
    }

    /// Fallible form of [`TestCa::issue_server_cert`].
    pub fn try_issue_server_cert(&self, sans: &[&str]) -> anyhow::Result<(String, String)> {
        let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).context("server certificate names")?;
        let cn = sans.first().copied().unwrap_or("mro-tests server");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        apply_validity(&mut params);
        let key = KeyPair::generate().context("generate server key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("sign server certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A rustls server configuration (aws-lc-rs, no client auth) presenting a fresh certificate
    /// of this CA for `sans`: what every TLS test server here serves with.
    pub fn try_server_config(&self, sans: &[&str]) -> anyhow::Result<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (cert_pem, key_pem) = self.try_issue_server_cert(sans)?;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(cert_pem.as_bytes())?],
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?,
            )?)
    }

    /// Issues a client certificate (`clientAuth`) with common name `cn`. Returns
    /// `(cert_pem, key_pem)`.
    pub fn try_issue_client_cert(&self, cn: &str) -> anyhow::Result<(String, String)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        apply_validity(&mut params);
        let key = KeyPair::generate().context("generate client key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("sign client certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes `ca.crt`, `server.crt` (leaf) and `server.key` into `dir` (created if missing), for servers
    /// that take certificate paths (the registry) or for clients that take a CA file.
    pub fn write_server_files(&self, dir: &Path, sans: &[&str]) -> anyhow::Result<TlsFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let (cert_pem, key_pem) = self.try_issue_server_cert(sans)?;
        let files = TlsFiles {
            ca_cert: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        };
        for (path, pem) in [
            (&files.ca_cert, self.cert_pem.as_str()),
            (&files.cert, &cert_pem),
            (&files.key, &key_pem),
        ] {
            std::fs::write(path, pem).with_context(|| format!("write {}", path.display()))?;
        }
        Ok(files)
    }

    /// The CA as a reqwest trust root (use with `ClientBuilder::tls_certs_only`).
    pub fn reqwest_certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.cert_pem.as_bytes())
            .expect("CA PEM made by rcgen parses")
    }

    /// A rustls root store holding only this CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .expect("CA PEM made by rcgen parses");
        let mut store = rustls::RootCertStore::empty();
        store
            .add(der)
            .expect("CA certificate is a valid trust anchor");
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_shareable_and_issues_parsable_pems() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<TestCa>();

        let ca = TestCa::new();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let (cert, key) = ca.issue_server_cert(&["127.0.0.1", "localhost"]);
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(cert, ca.cert_pem());
        assert_eq!(ca.root_store().len(), 1);

        let dir = tempfile::tempdir().expect("tempdir");
        let files = ca
            .write_server_files(dir.path(), &["localhost"])
            .expect("write files");
        assert_eq!(
            std::fs::read_to_string(&files.ca_cert).expect("read ca"),
            ca.cert_pem()
        );
        assert!(files.cert.exists() && files.key.exists());
    }
}
