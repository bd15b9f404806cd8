//! RFC 3161 timestamps from a timestamp authority (SIGSTORE_TSA_URL).
//!
//! Why: a TSA countersigns the signature with a time of its own, so a verifier can establish
//! when the signature was made without trusting the transparency log's clock (and sigstore
//! verifiers accept it as a verified time source). What is timestamped is what sigstore clients
//! timestamp: the raw signature bytes (for a DSSE bundle, the envelope's signature), hashed with
//! SHA-256 into the request's message imprint. The request asks for the TSA's certificate and
//! carries a random nonce; the DER `TimeStampResp` goes into the bundle unchanged
//! (`verificationMaterial.timestampVerificationData.rfc3161Timestamps[].signedTimestamp`).
//!
//! Checked here before the bundle exists: the status is "granted", the token is a CMS
//! SignedData over a TSTInfo whose message imprint is SHA-256 of our signature and whose nonce
//! is ours. The TSA's own signature is checked by verifiers against the trusted root's
//! `timestampAuthorities` (sigstore-python rejects a bundle with a timestamp when the root
//! lists none).

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use cms::cert::x509::spki::AlgorithmIdentifier;
use cms::signed_data::SignedData;
use der::asn1::{Int, OctetString};
use der::oid::ObjectIdentifier;
use der::{Any, Decode as _, Encode as _};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use url::Url;
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use super::error::{SignError, http_error};

/// id-sha256.
pub(crate) const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// id-signedData.
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-TSTInfo.
pub(crate) const TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// Largest response read (a token with a certificate chain is a few KiB).
const MAX_RESPONSE: usize = 64 * 1024;

/// A DER `TimeStampReq` for `signature` with `nonce` (big-endian, positive).
pub fn request(signature: &[u8], nonce: &[u8; 8]) -> Result<Vec<u8>, SignError> {
    let internal = |e: der::Error| SignError::internal(format!("timestamp request: {e}"));
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: imprint(signature)?,
        req_policy: None,
        nonce: Some(Int::new(&positive(nonce)).map_err(internal)?),
        cert_req: true,
        extensions: None,
    };
    req.to_der().map_err(internal)
}

fn imprint(signature: &[u8]) -> Result<MessageImprint, SignError> {
    Ok(MessageImprint {
        hash_algorithm: AlgorithmIdentifier {
            oid: SHA256,
            parameters: Some(Any::null()),
        },
        hashed_message: OctetString::new(Sha256::digest(signature).to_vec())
            .map_err(|e| SignError::internal(format!("timestamp request: {e}")))?,
    })
}

/// Two's-complement bytes of a non-negative number: a leading zero when the top bit is set.
fn positive(n: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => &[0],
    };
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

/// A granted reply, decoded: the token's SignedData and the TSTInfo it signs.
pub(crate) struct Token {
    pub(crate) signed: SignedData,
    /// The TSTInfo's DER, as signed (the message-digest attribute covers it).
    pub(crate) info_der: Vec<u8>,
    pub(crate) info: TstInfo,
}

impl Token {
    /// The generation time.
    pub(crate) fn time(&self) -> Result<chrono::DateTime<chrono::Utc>, String> {
        let secs = self.info.gen_time.to_unix_duration().as_secs();
        chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
            .ok_or_else(|| "genTime out of range".to_owned())
    }
}

/// Decodes a DER `TimeStampResp`: status granted, a CMS SignedData token over a TSTInfo.
pub(crate) fn parse(der: &[u8]) -> Result<Token, String> {
    let resp = TimeStampResp::from_der(der).map_err(|e| format!("not a TimeStampResp: {e}"))?;
    // PKIStatus granted(0); grantedWithMods(1) is not accepted by sigstore verifiers.
    let status = resp.status.status as u8;
    if status != 0 {
        let text = resp
            .status
            .status_string
            .iter()
            .flat_map(|s| s.iter())
            .map(|s| s.as_str().to_owned())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(format!("status {status} (not granted): {text}"));
    }
    let token = resp
        .time_stamp_token
        .ok_or("status granted but no timeStampToken")?;
    if token.content_type != SIGNED_DATA {
        return Err(format!(
            "the token is {}, not CMS SignedData",
            token.content_type
        ));
    }
    let signed: SignedData = token
        .content
        .decode_as()
        .map_err(|e| format!("the token is not CMS SignedData: {e}"))?;
    let encap = &signed.encap_content_info;
    if encap.econtent_type != TST_INFO {
        return Err(format!(
            "the token signs {}, not a TSTInfo",
            encap.econtent_type
        ));
    }
    let content: OctetString = encap
        .econtent
        .as_ref()
        .ok_or("the token carries no TSTInfo")?
        .decode_as()
        .map_err(|e| format!("TSTInfo content: {e}"))?;
    let info_der = content.as_bytes().to_vec();
    let info = TstInfo::from_der(&info_der).map_err(|e| format!("TSTInfo: {e}"))?;
    if signed.signer_infos.0.len() != 1 {
        return Err(format!(
            "the token has {} signers, one expected",
            signed.signer_infos.0.len()
        ));
    }
    Ok(Token {
        signed,
        info_der,
        info,
    })
}

/// Checks a DER `TimeStampResp` against the request; returns the token's generation time.
pub fn check_response(
    der: &[u8],
    signature: &[u8],
    nonce: &[u8; 8],
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let token = parse(der)?;
    let info = &token.info;
    let want = imprint(signature).map_err(|e| e.to_string())?;
    if info.message_imprint.hash_algorithm.oid != SHA256
        || info.message_imprint.hashed_message != want.hashed_message
    {
        return Err("the token's message imprint is not SHA-256 of the signature".into());
    }
    let ours = positive(nonce);
    if info.nonce.as_ref().map(|n| n.as_bytes()) != Some(ours.as_slice()) {
        return Err("the token's nonce is not the request's".into());
    }
    token.time()
}

/// Asks the TSA at `url` to timestamp `signature`; the checked DER response.
pub async fn timestamp(
    http: &reqwest::Client,
    url: &Url,
    signature: &[u8],
) -> Result<Vec<u8>, SignError> {
    let mut nonce = [0u8; 8];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SignError::internal("no randomness for the timestamp nonce"))?;
    let body = request(signature, &nonce)?;
    let resp = http
        .post(url.clone())
        .header("Content-Type", "application/timestamp-query")
        .header("Accept", "application/timestamp-reply")
        .body(body)
        .send()
        .await
        .map_err(|e| http_error("the timestamp authority", url, &e))?;
    let status = resp.status();
    let mut data = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| http_error("the timestamp authority", url, &e))?;
        if data.len() + chunk.len() > MAX_RESPONSE {
            return Err(SignError::Service(format!(
                "timestamp authority {url}: the response is larger than {MAX_RESPONSE} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&data[..data.len().min(512)]).into_owned();
        return Err(SignError::Service(format!(
            "timestamp authority {url} refused the request: HTTP {status}: {}",
            text.trim()
        )));
    }
    let time = check_response(&data, signature, &nonce)
        .map_err(|why| SignError::Service(format!("timestamp authority {url}: {why}")))?;
    tracing::info!(tsa = %url, time = %time, "signature timestamped");
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_positive_integers() {
        assert_eq!(
            positive(&[0x80, 0, 0, 0, 0, 0, 0, 1]),
            [0, 0x80, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(positive(&[0, 0, 0, 0, 0, 0, 0x7f, 1]), [0x7f, 1]);
        assert_eq!(positive(&[0; 8]), [0]);
    }

    #[test]
    fn the_request_hashes_the_signature() {
        let der = request(b"sig", &[1, 2, 3, 4, 5, 6, 7, 0x88]).unwrap();
        let req = TimeStampReq::from_der(&der).unwrap();
        assert_eq!(req.message_imprint.hash_algorithm.oid, SHA256);
        assert_eq!(
            req.message_imprint.hashed_message.as_bytes(),
            Sha256::digest(b"sig").as_slice()
        );
        assert!(req.cert_req);
        assert_eq!(req.nonce.unwrap().as_bytes(), [1, 2, 3, 4, 5, 6, 7, 0x88]);
    }

    #[test]
    fn garbage_and_refusals_are_errors() {
        let e = check_response(b"\x30\x00", b"sig", &[1; 8]).unwrap_err();
        assert!(e.contains("TimeStampResp"), "{e}");
        // status rejection(2), no token.
        let rejected = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02];
        let e = check_response(&rejected, b"sig", &[1; 8]).unwrap_err();
        assert!(e.contains("status 2"), "{e}");
    }
}
