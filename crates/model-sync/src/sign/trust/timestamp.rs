//! The timestamp authority's reply against the trusted root's `timestampAuthorities`, so a TSA
//! the verifiers will not trust fails the signature here instead of yielding a bundle whose
//! timestamp sigstore verifiers reject (or silently skip).
//!
//! Checked, as sigstore verifiers do: the token's one signer is, by issuer and serial number,
//! the signing certificate (first of the chain) of a listed authority; an embedded copy of it is
//! the same certificate; its key verifies the CMS signature over the signed attributes; the
//! content-type attribute names a TSTInfo and the message-digest attribute is the digest of the
//! signed TSTInfo; the certificate is for time stamping only (critical extended key usage) and
//! valid at the token's time, when the authority is in force. Like the Fulcio check, the chain
//! from the trusted root is taken as given.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cms::cert::CertificateChoices;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use der::Encode as _;
use der::asn1::{ObjectIdentifier, OctetString};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;
use x509_parser::time::ASN1Time;

use super::{TrustedRoot, valid_at};
use crate::sign::tsa::{self, TST_INFO};

const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// Checks a DER `TimeStampResp` (already checked against the request) against `root`.
pub fn check(root: &TrustedRoot, response_der: &[u8]) -> Result<(), String> {
    if root.timestamp_authorities.is_empty() {
        return Err("the trusted root lists no timestamp authority (timestampAuthorities)".into());
    }
    let token = tsa::parse(response_der)?;
    let time = token.time()?;
    let si = token
        .signed
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or("the token has no signer")?;
    let SignerIdentifier::IssuerAndSerialNumber(id) = &si.sid else {
        return Err("the token names its signer by key identifier, not issuer and serial".into());
    };
    let issuer = id.issuer.to_der().map_err(|e| e.to_string())?;
    let serial = id.serial_number.as_bytes();
    for ca in &root.timestamp_authorities {
        let Some(leaf_der) = ca
            .cert_chain
            .certificates
            .first()
            .and_then(|c| STANDARD.decode(&c.raw_bytes).ok())
        else {
            continue;
        };
        let Ok((_, leaf)) = X509Certificate::from_der(&leaf_der) else {
            continue;
        };
        if leaf.issuer().as_raw() != issuer.as_slice() || leaf.raw_serial() != serial {
            continue;
        }
        embedded_is(&token.signed.certificates, &leaf_der)?;
        signed_attributes(si, &token.info_der)?;
        verify(si, &leaf)?;
        match leaf.extended_key_usage() {
            Ok(Some(eku)) if eku.critical && eku.value.time_stamping => {}
            _ => {
                return Err(
                    "its certificate is not for time stamping (critical extended key usage)".into(),
                );
            }
        }
        let at = ASN1Time::from_timestamp(time.timestamp()).map_err(|e| e.to_string())?;
        if !leaf.validity().is_valid_at(at) || !valid_at(ca.valid_for.as_ref(), time) {
            return Err(format!(
                "its time {time} is outside the validity of the timestamp authority {:?} ({})",
                leaf.subject().to_string(),
                ca.uri
            ));
        }
        return Ok(());
    }
    Err(format!(
        "it was not signed by a timestamp authority of the trusted root (signer issued by {:?})",
        x509_parser::x509::X509Name::from_der(&issuer)
            .map(|(_, n)| n.to_string())
            .unwrap_or_default()
    ))
}

/// An embedded certificate with the signer's issuer and serial must be the trusted one.
fn embedded_is(
    certificates: &Option<cms::signed_data::CertificateSet>,
    trusted: &[u8],
) -> Result<(), String> {
    let Some(set) = certificates else {
        return Ok(());
    };
    let (_, want) = X509Certificate::from_der(trusted).map_err(|e| e.to_string())?;
    for choice in set.0.iter() {
        let CertificateChoices::Certificate(c) = choice else {
            continue;
        };
        let der = c.to_der().map_err(|e| e.to_string())?;
        let Ok((_, cert)) = X509Certificate::from_der(&der) else {
            continue;
        };
        if cert.issuer().as_raw() == want.issuer().as_raw()
            && cert.raw_serial() == want.raw_serial()
            && der != trusted
        {
            return Err("the token embeds a signing certificate other than the trusted one".into());
        }
    }
    Ok(())
}

fn digest_alg(oid: &ObjectIdentifier) -> Result<&'static digest::Algorithm, String> {
    match oid.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" => Ok(&digest::SHA256),
        "2.16.840.1.101.3.4.2.2" => Ok(&digest::SHA384),
        "2.16.840.1.101.3.4.2.3" => Ok(&digest::SHA512),
        other => Err(format!("unsupported digest algorithm {other}")),
    }
}

/// content-type = id-ct-TSTInfo and message-digest = digest of the TSTInfo.
fn signed_attributes(si: &SignerInfo, info_der: &[u8]) -> Result<(), String> {
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or("the token has no signed attributes")?;
    let value = |oid: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.iter().next())
    };
    let content_type: ObjectIdentifier = value(CONTENT_TYPE)
        .ok_or("the token has no content-type attribute")?
        .decode_as()
        .map_err(|e| format!("content-type attribute: {e}"))?;
    if content_type != TST_INFO {
        return Err(format!(
            "the token's content-type attribute is {content_type}"
        ));
    }
    let md: OctetString = value(MESSAGE_DIGEST)
        .ok_or("the token has no message-digest attribute")?
        .decode_as()
        .map_err(|e| format!("message-digest attribute: {e}"))?;
    let want = digest::digest(digest_alg(&si.digest_alg.oid)?, info_der);
    if md.as_bytes() != want.as_ref() {
        return Err("the token's message-digest attribute is not the digest of its TSTInfo".into());
    }
    Ok(())
}

/// The CMS signature over the DER SET of signed attributes, with the certificate's key.
fn verify(si: &SignerInfo, leaf: &X509Certificate<'_>) -> Result<(), String> {
    let message = si
        .signed_attrs
        .as_ref()
        .ok_or("the token has no signed attributes")?
        .to_der()
        .map_err(|e| e.to_string())?;
    let hash = si.digest_alg.oid.to_string();
    let candidates: Vec<&'static dyn VerificationAlgorithm> = match (
        si.signature_algorithm.oid.to_string().as_str(),
        hash.as_str(),
    ) {
        ("1.2.840.10045.4.3.2", _) => vec![
            &signature::ECDSA_P256_SHA256_ASN1,
            &signature::ECDSA_P384_SHA256_ASN1,
        ],
        ("1.2.840.10045.4.3.3", _) => vec![
            &signature::ECDSA_P384_SHA384_ASN1,
            &signature::ECDSA_P256_SHA384_ASN1,
        ],
        ("1.2.840.10045.4.3.4", _) => vec![&signature::ECDSA_P521_SHA512_ASN1],
        ("1.2.840.113549.1.1.11", _) | ("1.2.840.113549.1.1.1", "2.16.840.1.101.3.4.2.1") => {
            vec![&signature::RSA_PKCS1_2048_8192_SHA256]
        }
        ("1.2.840.113549.1.1.12", _) | ("1.2.840.113549.1.1.1", "2.16.840.1.101.3.4.2.2") => {
            vec![&signature::RSA_PKCS1_2048_8192_SHA384]
        }
        (other, _) => return Err(format!("unsupported signature algorithm {other}")),
    };
    let key = &leaf.public_key().subject_public_key.data;
    let sig = si.signature.as_bytes();
    if candidates.into_iter().any(|alg| {
        UnparsedPublicKey::new(alg, key)
            .verify(&message, sig)
            .is_ok()
    }) {
        Ok(())
    } else {
        Err(format!(
            "its signature does not verify with the key of the timestamp authority {:?}",
            leaf.subject().to_string()
        ))
    }
}
