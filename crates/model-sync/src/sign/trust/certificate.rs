//! Fulcio's certificate against the trusted root: issued (signature and issuer name) by a
//! certificate of a trusted certificate authority valid now, valid now itself, for code signing,
//! and with an embedded SCT (RFC 6962 precertificate flow) that a trusted CT log signed.
//!
//! Only the link from the leaf to the trusted chain is checked: the chain itself comes from the
//! signed trusted root, so it is trusted as a whole (like sigstore clients, which take the
//! root's chain as given and verify the leaf against it).

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{ParsedExtension, SignedCertificateTimestamp};
use x509_parser::oid_registry::OID_CT_LIST_SCT;
use x509_parser::prelude::FromDer as _;
use x509_parser::time::ASN1Time;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{TrustedRoot, valid_at};

/// The leaf's validity (Unix seconds), for the transparency-log check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// Checks the chain Fulcio returned (leaf first) at `now`.
pub fn check(
    root: &TrustedRoot,
    chain: &[Vec<u8>],
    now: DateTime<Utc>,
) -> Result<Validity, String> {
    let leaf_der = chain.first().ok_or("the chain is empty")?;
    let (_, leaf) = X509Certificate::from_der(leaf_der)
        .map_err(|_| "the certificate is not DER X.509".to_owned())?;
    let at = ASN1Time::from_timestamp(now.timestamp()).map_err(|e| e.to_string())?;
    let validity = leaf.validity();
    if !validity.is_valid_at(at) {
        return Err(format!(
            "the certificate is not valid now (valid from {} to {})",
            validity.not_before, validity.not_after
        ));
    }
    match leaf.extended_key_usage() {
        Ok(Some(eku)) if eku.value.code_signing => {}
        _ => return Err("it is not a code-signing certificate (extended key usage)".into()),
    }
    let issuer_spki = issuing_key(root, &leaf, at, now)?;
    check_sct(root, &leaf, &issuer_spki)?;
    Ok(Validity {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// The SubjectPublicKeyInfo of the trusted certificate that issued `leaf`.
fn issuing_key(
    root: &TrustedRoot,
    leaf: &X509Certificate<'_>,
    at: ASN1Time,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, String> {
    let mut seen = Vec::new();
    for ca in &root.certificate_authorities {
        let in_force = valid_at(ca.valid_for.as_ref(), now);
        for raw in &ca.cert_chain.certificates {
            let Ok(der) = STANDARD.decode(&raw.raw_bytes) else {
                continue;
            };
            let Ok((_, cert)) = X509Certificate::from_der(&der) else {
                continue;
            };
            seen.push(cert.subject().to_string());
            if cert.subject().as_raw() != leaf.issuer().as_raw() {
                continue;
            }
            if leaf.verify_signature(Some(cert.public_key())).is_err() {
                return Err(format!(
                    "its signature does not verify with the key of the trusted certificate \
                     authority {:?} ({})",
                    cert.subject().to_string(),
                    ca.uri
                ));
            }
            if !in_force {
                return Err(format!(
                    "it was issued by the certificate authority {:?} ({}), which the trusted \
                     root does not list as valid now",
                    cert.subject().to_string(),
                    ca.uri
                ));
            }
            if !cert.validity().is_valid_at(at) || !cert.is_ca() {
                return Err(format!(
                    "its issuer {:?} is not a certificate authority valid now",
                    cert.subject().to_string()
                ));
            }
            return Ok(cert.public_key().raw.to_vec());
        }
    }
    Err(format!(
        "it was not issued by a certificate authority of the trusted root (issuer {:?}; the \
         trusted root lists {:?})",
        leaf.issuer().to_string(),
        seen
    ))
}

/// At least one embedded SCT must verify with a CT log of the trusted root (when the root lists
/// CT logs; sigstore clients require one as well).
fn check_sct(
    root: &TrustedRoot,
    leaf: &X509Certificate<'_>,
    issuer_spki: &[u8],
) -> Result<(), String> {
    if root.ctlogs.is_empty() {
        tracing::debug!("the trusted root lists no CT log: the certificate's SCT is not checked");
        return Ok(());
    }
    let scts = match leaf.get_extension_unique(&OID_CT_LIST_SCT) {
        Ok(Some(ext)) => match ext.parsed_extension() {
            ParsedExtension::SCT(list) => list.clone(),
            _ => return Err("its SCT list does not parse".into()),
        },
        Ok(None) => {
            return Err(
                "it carries no embedded SCT, and the trusted root lists CT logs (ctlogs)".into(),
            );
        }
        Err(e) => return Err(format!("its extensions do not parse ({e})")),
    };
    let tbs = without_extension(leaf.tbs_certificate.as_ref(), OID_CT_LIST_SCT.as_bytes())
        .ok_or("its TBSCertificate does not parse")?;
    let issuer_key_hash = Sha256::digest(issuer_spki);
    let mut why = Vec::new();
    for sct in &scts {
        match verify_sct(root, sct, &issuer_key_hash, &tbs) {
            Ok(()) => return Ok(()),
            Err(e) => why.push(e),
        }
    }
    Err(format!("no embedded SCT verifies: {}", why.join("; ")))
}

fn verify_sct(
    root: &TrustedRoot,
    sct: &SignedCertificateTimestamp<'_>,
    issuer_key_hash: &[u8],
    precert_tbs: &[u8],
) -> Result<(), String> {
    let id = hex::encode(sct.id.key_id);
    let log = root
        .ctlogs
        .iter()
        .find(|l| l.id().as_deref() == Some(&sct.id.key_id[..]))
        .ok_or_else(|| {
            format!("the SCT names CT log {id}, which the trusted root does not list")
        })?;
    let when = i64::try_from(sct.timestamp)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or("the SCT's timestamp is out of range")?;
    if !valid_at(log.public_key.valid_for.as_ref(), when) {
        return Err(format!("CT log {id}'s key was not valid at the SCT's time"));
    }
    // RFC 6962 §3.2: the digitally-signed struct of a precertificate entry.
    let len = u32::try_from(precert_tbs.len()).map_err(|_| "TBSCertificate too large")?;
    let ext_len = u16::try_from(sct.extensions.0.len()).map_err(|_| "SCT extensions too large")?;
    let mut signed = vec![sct.version.0, 0];
    signed.extend(sct.timestamp.to_be_bytes());
    signed.extend(1u16.to_be_bytes());
    signed.extend(issuer_key_hash);
    signed.extend(&len.to_be_bytes()[1..]);
    signed.extend(precert_tbs);
    signed.extend(ext_len.to_be_bytes());
    signed.extend(sct.extensions.0);
    log.verify(&signed, sct.signature.data)
        .map_err(|e| format!("the SCT of CT log {id}: {e}"))
}

/// One DER element at the start of `data`: (header length, total length).
fn tlv(data: &[u8]) -> Option<(usize, usize)> {
    let first = *data.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    (header + len <= data.len()).then_some((header, header + len))
}

fn children(mut content: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (_, total) = tlv(content)?;
        out.push(&content[..total]);
        content = &content[total..];
    }
    Some(out)
}

fn content(element: &[u8]) -> Option<&[u8]> {
    let (header, total) = tlv(element)?;
    Some(&element[header..total])
}

fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The TBSCertificate without the extension `oid` (OID content bytes): the precertificate's TBS
/// an SCT was signed over.
fn without_extension(tbs: &[u8], oid: &[u8]) -> Option<Vec<u8>> {
    let oid_der = encode(0x06, oid);
    let mut parts: Vec<Vec<u8>> = children(content(tbs)?)?
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let last = parts.last_mut()?;
    if last.first() != Some(&0xa3) {
        return None;
    }
    let kept: Vec<u8> = children(content(content(last)?)?)?
        .into_iter()
        .filter(|ext| {
            content(ext)
                .and_then(children)
                .and_then(|c| c.first().copied())
                != Some(oid_der.as_slice())
        })
        .flatten()
        .copied()
        .collect();
    *last = encode(0xa3, &encode(0x30, &kept));
    Some(encode(0x30, &parts.concat()))
}

#[cfg(test)]
#[path = "tests/certificate.rs"]
mod tests;
