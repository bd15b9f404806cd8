//! A timestamp authority stand-in (RFC 3161 over HTTP, like sigstore's timestamp-authority at
//! `POST /api/v1/timestamp`): takes a DER `TimeStampReq` (`application/timestamp-query`) and
//! answers a DER `TimeStampResp` (`application/timestamp-reply`) whose token is a CMS SignedData
//! over a TSTInfo, signed by a test TSA certificate issued by a test root.
//!
//! What the verifiers need, and what this gives them (rfc3161-client 1.0, through
//! sigstore-python): status granted; a SignedData whose one SignerInfo names the signing
//! certificate by issuer and serial number, with the content-type and message-digest signed
//! attributes; the signing certificate embedded when `certReq` is set; a leaf with a critical
//! extended key usage of exactly id-kp-timeStamping, chaining to a root that the trusted root
//! lists under `timestampAuthorities` (leaf first, root last); the request's message imprint and
//! nonce echoed in the TSTInfo. The encoding uses RustCrypto's `x509-tsp` and `cms` types.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cmpv2::status::{PkiStatus, PkiStatusInfo};
use cms::cert::x509::Certificate;
use cms::cert::x509::attr::Attribute;
use cms::cert::x509::spki::AlgorithmIdentifierOwned;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{GeneralizedTime, Int, OctetString, SetOfVec};
use der::oid::ObjectIdentifier;
use der::{Any, Decode as _, Encode as _};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DistinguishedName,
    DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest as _, Sha256};
use x509_tsp::{TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use crate::http_files::ServerThread;

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// The stand-in's TSA policy (any OID; verifiers check it only when asked to).
const POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.2");
/// extKeyUsage (2.5.29.37) = SEQUENCE { id-kp-timeStamping }.
const EKU: &[u64] = &[2, 5, 29, 37];
const EKU_TIME_STAMPING: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
];

struct Authority {
    root_der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf: Certificate,
    key: EcdsaKeyPair,
    serial: AtomicU64,
    issued: AtomicU64,
}

/// A running timestamp authority stand-in.
pub struct Tsa {
    state: Arc<Authority>,
    server: ServerThread,
}

impl std::fmt::Debug for Tsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsa").field("url", &self.url()).finish()
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mro-tests");
    dn.push(DnType::CommonName, cn);
    dn
}

impl Tsa {
    pub fn start() -> anyhow::Result<Self> {
        let now = time::OffsetDateTime::now_utc();
        let mut root = CertificateParams::default();
        root.distinguished_name = name("tsa stand-in root");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root.not_before = now - time::Duration::days(1);
        root.not_after = now + time::Duration::days(30);
        let root = CertifiedIssuer::self_signed(
            root,
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        )?;

        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &leaf_key.serialize_der())
                .map_err(|e| anyhow::anyhow!("TSA key: {e}"))?;
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name = name("tsa stand-in");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut eku = CustomExtension::from_oid_content(EKU, EKU_TIME_STAMPING.to_vec());
        eku.set_criticality(true);
        leaf.custom_extensions = vec![eku];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = now - time::Duration::days(1);
        leaf.not_after = now + time::Duration::days(30);
        let leaf_der = leaf.signed_by(&leaf_key, &root)?.der().to_vec();
        let state = Arc::new(Authority {
            root_der: root.der().to_vec(),
            leaf: Certificate::from_der(&leaf_der).context("parse the TSA certificate")?,
            leaf_der,
            key,
            serial: AtomicU64::new(1),
            issued: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/api/v1/timestamp", axum::routing::post(timestamp))
            .with_state(state.clone());
        let server = ServerThread::spawn("tsa", move |listener| async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("tsa stand-in stopped: {e}");
            }
        })
        .context("start the TSA stand-in")?;
        Ok(Self { state, server })
    }

    /// The timestamp endpoint (SIGSTORE_TSA_URL).
    pub fn url(&self) -> String {
        format!("http://{}/api/v1/timestamp", self.server.addr())
    }

    /// The signing certificate then the root (DER), as the trusted root lists them.
    pub fn chain_der(&self) -> [Vec<u8>; 2] {
        [self.state.leaf_der.clone(), self.state.root_der.clone()]
    }

    /// Timestamps answered so far.
    pub fn issued(&self) -> u64 {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// A DER `TimeStampResp` for a request (what the HTTP endpoint answers).
    pub fn respond(&self, request_der: &[u8]) -> anyhow::Result<Vec<u8>> {
        respond(&self.state, request_der)
    }
}

async fn timestamp(State(a): State<Arc<Authority>>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct != "application/timestamp-query" {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {ct:?}: application/timestamp-query expected"),
        )
            .into_response();
    }
    match respond(&a, &body) {
        Ok(der) => {
            a.issued.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/timestamp-reply")],
                der,
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e:#}")).into_response(),
    }
}

fn respond(a: &Authority, request_der: &[u8]) -> anyhow::Result<Vec<u8>> {
    let req = TimeStampReq::from_der(request_der).context("not a DER TimeStampReq")?;
    anyhow::ensure!(
        req.message_imprint.hash_algorithm.oid == SHA256
            && req.message_imprint.hashed_message.as_bytes().len() == 32,
        "only SHA-256 message imprints are supported"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let serial = a.serial.fetch_add(1, Ordering::SeqCst);
    let info = TstInfo {
        version: TspVersion::V1,
        policy: POLICY,
        message_imprint: req.message_imprint.clone(),
        serial_number: Int::new(&minimal(&serial.to_be_bytes()))?,
        gen_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(now))?,
        accuracy: None,
        ordering: false,
        nonce: req.nonce.clone(),
        tsa: None,
        extensions: None,
    };
    let info_der = info.to_der()?;
    let attr = |oid: ObjectIdentifier, value: Any| -> anyhow::Result<Attribute> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value])?,
        })
    };
    let signed_attrs = SetOfVec::try_from(vec![
        attr(CONTENT_TYPE, Any::encode_from(&TST_INFO)?)?,
        attr(
            MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(Sha256::digest(&info_der).to_vec())?)?,
        )?,
    ])?;
    let signature = a
        .key
        .sign(&SystemRandom::new(), &signed_attrs.to_der()?)
        .map_err(|_| anyhow::anyhow!("TSA signature"))?;
    let tbs = &a.leaf.tbs_certificate;
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        },
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_SHA256,
            parameters: None,
        },
        signature: OctetString::new(signature.as_ref().to_vec())?,
        unsigned_attrs: None,
    };
    let certificates = if req.cert_req {
        Some(CertificateSet(SetOfVec::try_from(vec![
            CertificateChoices::Certificate(a.leaf.clone()),
        ])?))
    } else {
        None
    };
    let signed = SignedData {
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        }])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: TST_INFO,
            econtent: Some(Any::encode_from(&OctetString::new(info_der)?)?),
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer])?),
    };
    let resp = TimeStampResp {
        status: PkiStatusInfo {
            status: PkiStatus::Accepted,
            status_string: None,
            fail_info: None,
        },
        time_stamp_token: Some(ContentInfo {
            content_type: SIGNED_DATA,
            content: Any::encode_from(&signed)?,
        }),
    };
    Ok(resp.to_der()?)
}

/// Minimal two's-complement bytes of a non-negative number.
fn minimal(n: &[u8]) -> Vec<u8> {
    let start = n.iter().position(|b| *b != 0).unwrap_or(n.len() - 1);
    let mut out = Vec::with_capacity(n.len() - start + 1);
    if n[start] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&n[start..]);
    out
}
