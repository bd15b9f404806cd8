//! The certificate checks against certificates made here: a CA, leaves with and without an SCT,
//! from trusted and untrusted CAs and CT logs.
use super::*;
use crate::sign::trust::test_support::LogKey;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde_json::json;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn make_ca(name: &str) -> Ca {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2040, 1, 1);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf_params(code_signing: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::Rfc822Name("a@example.com".try_into().unwrap())];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if code_signing {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    }
    p.serial_number = Some(SerialNumber::from(42u64));
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2024, 1, 2);
    p
}

/// A leaf issued by `ca`; with `ct`, the SCT that log signs over the precertificate TBS
/// (`sct_over` replaces that TBS, to forge one) is embedded.
fn leaf(ca: &Ca, ct: Option<&LogKey>, sct_over: Option<&[u8]>, code_signing: bool) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut p = leaf_params(code_signing);
    let Some(ct) = ct else {
        return p.signed_by(&key, ca).unwrap().der().to_vec();
    };
    let pre = p.signed_by(&key, ca).unwrap();
    let (_, parsed) = X509Certificate::from_der(pre.der()).unwrap();
    let tbs = sct_over.unwrap_or(parsed.tbs_certificate.as_ref()).to_vec();
    let ts: u64 = 1_704_067_300_000;
    let mut signed = vec![0u8, 0];
    signed.extend(ts.to_be_bytes());
    signed.extend(1u16.to_be_bytes());
    signed.extend(Sha256::digest(
        rcgen::PublicKeyData::subject_public_key_info(ca.key()),
    ));
    signed.extend(&(tbs.len() as u32).to_be_bytes()[1..]);
    signed.extend(&tbs);
    signed.extend(0u16.to_be_bytes());
    let sig = ct.sign(&signed);
    let mut sct = vec![0u8];
    sct.extend(ct.id());
    sct.extend(ts.to_be_bytes());
    sct.extend(0u16.to_be_bytes());
    sct.extend([4u8, 3u8]);
    sct.extend((sig.len() as u16).to_be_bytes());
    sct.extend(&sig);
    let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
    list.extend((sct.len() as u16).to_be_bytes());
    list.extend(&sct);
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
        encode(0x04, &list),
    )];
    p.signed_by(&key, ca).unwrap().der().to_vec()
}

fn root(cas: &[(&Ca, serde_json::Value)], ctlogs: &[&LogKey]) -> TrustedRoot {
    let since = json!({"start": "2020-01-01T00:00:00Z"});
    serde_json::from_value(json!({
        "tlogs": [],
        "certificateAuthorities": cas.iter().map(|(c, valid)| json!({
            "uri": "https://fulcio.invalid",
            "certChain": {"certificates": [{"rawBytes": STANDARD.encode(c.der())}]},
            "validFor": valid,
        })).collect::<Vec<_>>(),
        "ctlogs": ctlogs.iter().map(|k| k.json(since.clone())).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn now() -> DateTime<Utc> {
    "2024-01-01T12:00:00Z".parse().unwrap()
}

fn since() -> serde_json::Value {
    json!({"start": "2020-01-01T00:00:00Z"})
}

#[test]
fn a_leaf_of_a_trusted_ca_with_a_trusted_sct_verifies() {
    let (ca, ct) = (make_ca("fulcio"), LogKey::new());
    let other = make_ca("other");
    let r = root(&[(&other, since()), (&ca, since())], &[&ct]);
    let v = check(&r, &[leaf(&ca, Some(&ct), None, true)], now()).unwrap();
    assert_eq!(v.not_before, 1_704_067_200);
    assert_eq!(v.not_after, 1_704_067_200 + 86_400);
    // Without CT logs in the root, no SCT is required.
    check(
        &root(&[(&ca, since())], &[]),
        &[leaf(&ca, None, None, true)],
        now(),
    )
    .unwrap();
}

#[test]
fn precertificate_tbs_is_the_tbs_without_the_sct() {
    let (ca, ct) = (make_ca("fulcio"), LogKey::new());
    let der = leaf(&ca, Some(&ct), None, true);
    let (_, c) = X509Certificate::from_der(&der).unwrap();
    let pre = without_extension(c.tbs_certificate.as_ref(), OID_CT_LIST_SCT.as_bytes()).unwrap();
    assert!(pre.len() < c.tbs_certificate.as_ref().len());
    // Removing an absent extension changes nothing.
    assert_eq!(
        without_extension(&pre, OID_CT_LIST_SCT.as_bytes()).unwrap(),
        pre
    );
}

#[test]
fn untrusted_certificates_are_refused_with_the_reason() {
    let (ca, ct) = (make_ca("fulcio"), LogKey::new());
    let r = root(&[(&ca, since())], &[&ct]);

    let stranger = make_ca("another fulcio");
    let e = check(&r, &[leaf(&stranger, Some(&ct), None, true)], now()).unwrap_err();
    assert!(e.contains("not issued by a certificate authority"), "{e}");

    // Same name as the trusted CA, another key.
    let impostor = make_ca("fulcio");
    let e = check(&r, &[leaf(&impostor, Some(&ct), None, true)], now()).unwrap_err();
    assert!(e.contains("signature does not verify"), "{e}");

    let retired = root(
        &[(
            &ca,
            json!({"start": "2020-01-01T00:00:00Z", "end": "2023-01-01T00:00:00Z"}),
        )],
        &[&ct],
    );
    let e = check(&retired, &[leaf(&ca, Some(&ct), None, true)], now()).unwrap_err();
    assert!(e.contains("not list as valid now"), "{e}");

    let later: DateTime<Utc> = "2024-02-01T00:00:00Z".parse().unwrap();
    let e = check(&r, &[leaf(&ca, Some(&ct), None, true)], later).unwrap_err();
    assert!(e.contains("not valid now"), "{e}");

    let e = check(&r, &[leaf(&ca, Some(&ct), None, false)], now()).unwrap_err();
    assert!(e.contains("code-signing"), "{e}");
}

#[test]
fn scts_must_come_from_a_trusted_ct_log_and_verify() {
    let (ca, ct) = (make_ca("fulcio"), LogKey::new());
    let r = root(&[(&ca, since())], &[&ct]);

    let e = check(&r, &[leaf(&ca, None, None, true)], now()).unwrap_err();
    assert!(e.contains("no embedded SCT"), "{e}");

    let other_log = LogKey::new();
    let e = check(&r, &[leaf(&ca, Some(&other_log), None, true)], now()).unwrap_err();
    assert!(e.contains("does not list"), "{e}");

    let e = check(&r, &[leaf(&ca, Some(&ct), Some(b"other tbs"), true)], now()).unwrap_err();
    assert!(e.contains("does not verify"), "{e}");
}
