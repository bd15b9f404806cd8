//! A Fulcio stand-in: `POST /api/v2/signingCert` checks the OIDC token (signature by a trusted
//! issuer's key, audience, expiry; [`super::issuers`]) and the proof of possession, then issues a
//! 10-minute
//! code-signing certificate whose SAN is the token's identity, with the OIDC issuer extensions
//! and an SCT from a stand-in CT log embedded (precertificate flow of RFC 6962), as sigstore
//! verifiers require.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::der;
use super::issuers::{TrustedIssuer, verify_token};
use super::keys::{LogKey, pem};
use super::oidc::{TestIssuer, kubernetes_identity};
use crate::http_files::ServerThread;

const OIDC_ISSUER_V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
const OIDC_ISSUER_V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];
const SCT_LIST: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// The certificate authority and CT log behind the stand-in.
struct Authority {
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_key: EcdsaKeyPair,
    ca_spki: Vec<u8>,
    ct: LogKey,
    issuers: Vec<TrustedIssuer>,
    serial: AtomicU64,
    issued: AtomicU64,
    /// Certificate requests received; from the `hold_from`-th on they wait for `release`.
    received: AtomicU64,
    hold_from: AtomicU64,
    release: tokio::sync::watch::Sender<bool>,
}

/// A running Fulcio stand-in.
pub struct Fulcio {
    state: Arc<Authority>,
    server: ServerThread,
}

impl std::fmt::Debug for Fulcio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fulcio").field("url", &self.url()).finish()
    }
}

impl Fulcio {
    /// Starts a Fulcio trusting tokens of `issuer`.
    pub fn start(issuer: &TestIssuer) -> anyhow::Result<Self> {
        Self::start_trusting(vec![TrustedIssuer::test(issuer)])
    }

    /// Starts a Fulcio trusting tokens of each of `issuers`; certificates name the issuer of
    /// the token they were issued for.
    pub fn start_trusting(issuers: Vec<TrustedIssuer>) -> anyhow::Result<Self> {
        anyhow::ensure!(!issuers.is_empty(), "Fulcio needs a trusted issuer");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let ca_key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der())
                .map_err(|e| anyhow::anyhow!("CA key: {e}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mro-tests");
        params
            .distinguished_name
            .push(DnType::CommonName, "fulcio stand-in root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        let ca_spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let ca = CertifiedIssuer::self_signed(params, key)?;
        let state = Arc::new(Authority {
            ca,
            ca_key,
            ca_spki,
            ct: LogKey::generate()?,
            issuers,
            serial: AtomicU64::new(1),
            issued: AtomicU64::new(0),
            received: AtomicU64::new(0),
            hold_from: AtomicU64::new(u64::MAX),
            release: tokio::sync::watch::channel(false).0,
        });
        let app = axum::Router::new()
            .route("/api/v2/signingCert", axum::routing::post(signing_cert))
            .with_state(state.clone());
        let server = ServerThread::spawn("fulcio", move |listener| async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("fulcio stand-in stopped: {e}");
            }
        })
        .context("start the Fulcio stand-in")?;
        Ok(Self { state, server })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The root certificate (DER), for the trusted root.
    pub fn root_der(&self) -> Vec<u8> {
        self.state.ca.der().to_vec()
    }

    /// The CT log's key, for the trusted root.
    pub fn ct_log(&self) -> &LogKey {
        &self.state.ct
    }

    /// Makes the `n`-th certificate request (1-based) and later ones wait for [`Self::release`]
    /// (a test acts between two signatures of one run).
    pub fn hold_from(&self, n: u64) {
        self.state.hold_from.store(n, Ordering::SeqCst);
    }

    /// Lets held requests go on.
    pub fn release(&self) {
        self.state.release.send_replace(true);
    }

    /// Certificate requests received so far (held ones included).
    pub fn received(&self) -> u64 {
        self.state.received.load(Ordering::SeqCst)
    }

    /// Certificates issued so far.
    pub fn issued(&self) -> u64 {
        self.state.issued.load(Ordering::SeqCst)
    }
}

fn reject(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": msg.into()})),
    )
        .into_response()
}

async fn signing_cert(State(a): State<Arc<Authority>>, Json(req): Json<Value>) -> Response {
    let n = a.received.fetch_add(1, Ordering::SeqCst) + 1;
    if n >= a.hold_from.load(Ordering::SeqCst) {
        let mut released = a.release.subscribe();
        let _ = released.wait_for(|r| *r).await;
    }
    let token = req["credentials"]["oidcIdentityToken"]
        .as_str()
        .unwrap_or_default();
    let claims = match verify_token(&a.issuers, token) {
        Ok(c) => c,
        Err(e) => {
            return reject(
                StatusCode::UNAUTHORIZED,
                format!("invalid identity token: {e}"),
            );
        }
    };
    let pk = &req["publicKeyRequest"];
    let spki = match pk["publicKey"]["content"].as_str().map(pem_der) {
        Some(Some(d)) => d,
        _ => {
            return reject(
                StatusCode::BAD_REQUEST,
                "publicKeyRequest.publicKey.content: no PEM public key",
            );
        }
    };
    let (subject, san) = match (claims["email"].as_str(), claims["sub"].as_str()) {
        (Some(e), _) => (
            e.to_owned(),
            SanType::Rfc822Name(
                e.try_into()
                    .unwrap_or_else(|_| "x@invalid".try_into().expect("ia5")),
            ),
        ),
        (None, Some(s)) => match kubernetes_identity(s).and_then(|u| u.try_into().ok()) {
            Some(uri) => (s.to_owned(), SanType::URI(uri)),
            None => {
                return reject(
                    StatusCode::BAD_REQUEST,
                    format!("unsupported subject {s:?}"),
                );
            }
        },
        _ => return reject(StatusCode::BAD_REQUEST, "token without email or sub"),
    };
    let proof = STANDARD
        .decode(pk["proofOfPossession"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let point = spki
        .get(spki.len().saturating_sub(65)..)
        .unwrap_or_default();
    if spki.len() != 91
        || UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(subject.as_bytes(), &proof)
            .is_err()
    {
        return reject(
            StatusCode::BAD_REQUEST,
            "proof of possession does not verify",
        );
    }
    let issuer = claims["iss"].as_str().unwrap_or_default();
    match issue(&a, &spki, san, issuer) {
        Ok(leaf) => {
            a.issued.fetch_add(1, Ordering::SeqCst);
            let chain = [pem("CERTIFICATE", &leaf), pem("CERTIFICATE", a.ca.der())];
            (
                StatusCode::CREATED,
                Json(json!({"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}})),
            )
                .into_response()
        }
        Err(e) => reject(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

fn pem_der(text: &str) -> Option<Vec<u8>> {
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body.trim()).ok()
}

/// Issues the leaf: precertificate TBS → SCT over it → final TBS with the SCT list → CA signature.
fn issue(a: &Authority, spki: &[u8], san: SanType, issuer: &str) -> anyhow::Result<Vec<u8>> {
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![san];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from(
        0x1000_0000 + a.serial.fetch_add(1, Ordering::SeqCst),
    ));
    params.not_before = now - time::Duration::seconds(30);
    params.not_after = now + time::Duration::minutes(10);
    params.custom_extensions = vec![
        CustomExtension::from_oid_content(OIDC_ISSUER_V1, issuer.as_bytes().to_vec()),
        CustomExtension::from_oid_content(OIDC_ISSUER_V2, der::encode(0x0c, issuer.as_bytes())),
    ];
    let leaf_key = SubjectPublicKeyInfo::from_der(spki)?;
    let pre = params.signed_by(&leaf_key, &a.ca)?;
    let tbs = der::tbs(pre.der()).context("precertificate TBS")?.to_vec();

    // RFC 6962 §3.2 digitally-signed struct for a precert entry.
    let timestamp = u64::try_from(chrono::Utc::now().timestamp_millis())?;
    let issuer_key_hash = Sha256::digest(&a.ca_spki);
    let mut signed = vec![0u8, 0u8];
    signed.extend(timestamp.to_be_bytes());
    signed.extend(1u16.to_be_bytes());
    signed.extend(issuer_key_hash);
    signed.extend(&u32::try_from(tbs.len())?.to_be_bytes()[1..]);
    signed.extend(&tbs);
    signed.extend(0u16.to_be_bytes());
    let sig = a.ct.sign(&signed)?;

    let mut sct = vec![0u8];
    sct.extend(a.ct.log_id());
    sct.extend(timestamp.to_be_bytes());
    sct.extend(0u16.to_be_bytes());
    sct.extend([4u8, 3u8]); // sha256, ecdsa
    sct.extend(u16::try_from(sig.len())?.to_be_bytes());
    sct.extend(&sig);
    let mut list = u16::try_from(sct.len() + 2)?.to_be_bytes().to_vec();
    list.extend(u16::try_from(sct.len())?.to_be_bytes());
    list.extend(&sct);

    let final_tbs = der::append_extension(&tbs, &der::oid(SCT_LIST), &der::encode(0x04, &list))
        .context("append the SCT extension")?;
    let ca_sig = a
        .ca_key
        .sign(&SystemRandom::new(), &final_tbs)
        .map_err(|_| anyhow::anyhow!("CA signature"))?;
    Ok(der::certificate(&final_tbs, ca_sig.as_ref()))
}
