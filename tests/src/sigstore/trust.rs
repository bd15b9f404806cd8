//! The client trust configuration (`ClientTrustConfig` JSON: trusted root + signing config) for
//! the stand-ins, as `model_signing --trust_config` and `sigstore --trust-config` read it.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::fulcio::Fulcio;
use super::keys::LogKey;
use super::oidc::TestIssuer;
use super::rekor::Rekor;
use super::tsa::Tsa;

const SINCE: &str = "2020-01-01T00:00:00Z";

fn log(url: &str, key: &LogKey) -> Value {
    json!({
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": STANDARD.encode(key.spki()),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": SINCE},
        },
        "logId": {"keyId": STANDARD.encode(key.log_id())},
    })
}

fn service(url: &str) -> Value {
    json!({"url": url, "majorApiVersion": 1, "validFor": {"start": SINCE}, "operator": "mro-tests"})
}

/// The trusted root alone (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`), with
/// the timestamp authority's chain (leaf first, root last) when there is one.
pub fn trusted_root(fulcio: &Fulcio, rekor: &Rekor, tsa: Option<&Tsa>) -> Value {
    let tsas: Vec<Value> = tsa
        .map(|t| {
            json!({
                "subject": {"organization": "mro-tests", "commonName": "tsa stand-in"},
                "uri": t.url(),
                "certChain": {"certificates": t.chain_der().iter()
                    .map(|d| json!({"rawBytes": STANDARD.encode(d)}))
                    .collect::<Vec<_>>()},
                "validFor": {"start": SINCE},
            })
        })
        .into_iter()
        .collect();
    json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [log(&rekor.url(), rekor.key())],
        "certificateAuthorities": [{
            "subject": {"organization": "mro-tests", "commonName": "fulcio stand-in root"},
            "uri": fulcio.url(),
            "certChain": {"certificates": [{"rawBytes": STANDARD.encode(fulcio.root_der())}]},
            "validFor": {"start": SINCE},
        }],
        "ctlogs": [log("http://ct.mro-tests.invalid", fulcio.ct_log())],
        "timestampAuthorities": tsas,
    })
}

/// Trusted root plus the signing config naming the stand-ins' URLs.
pub fn client_trust_config(
    fulcio: &Fulcio,
    rekor: &Rekor,
    issuer: &TestIssuer,
    tsa: Option<&Tsa>,
) -> Value {
    json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": trusted_root(fulcio, rekor, tsa),
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [service(&fulcio.url())],
            "oidcUrls": [service(&issuer.url)],
            "rekorTlogUrls": [service(&rekor.url())],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaUrls": tsa.map(|t| vec![service(&t.url())]).unwrap_or_default(),
            "tsaConfig": {"selector": "ANY"},
        },
    })
}
