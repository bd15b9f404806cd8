//! Rekor's answer against the trusted root: the signed entry timestamp (SET, the log's promise to
//! include the entry) verifies with the key of the trusted log whose id the entry names, valid at
//! the integration time, and the entry was integrated while the certificate was valid (what
//! verifiers take as the signing time).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;

use super::TrustedRoot;
use super::certificate::Validity;
use crate::sign::bundle::TlogEntry;

/// Checks `entry` for a signature made with a certificate valid during `cert`.
pub fn check(root: &TrustedRoot, entry: &TlogEntry, cert: Validity) -> Result<(), String> {
    let log_id = STANDARD
        .decode(&entry.log_id.key_id)
        .map_err(|_| "its log id is not base64".to_owned())?;
    let log = root
        .tlogs
        .iter()
        .find(|l| l.id().as_deref() == Some(log_id.as_slice()))
        .ok_or_else(|| {
            format!(
                "the entry names log {}, which is not a transparency log of the trusted root",
                hex::encode(&log_id)
            )
        })?;
    let integrated: i64 = entry.integrated_time.parse().map_err(|_| {
        format!(
            "integrated time {:?} is not a number",
            entry.integrated_time
        )
    })?;
    let when = DateTime::from_timestamp(integrated, 0).ok_or("integrated time out of range")?;
    if !super::valid_at(log.public_key.valid_for.as_ref(), when) {
        return Err(format!(
            "log {}'s key is not valid at the integration time {when}",
            hex::encode(&log_id)
        ));
    }
    let index: i64 = entry
        .log_index
        .parse()
        .map_err(|_| format!("log index {:?} is not a number", entry.log_index))?;
    // RFC 8785 form of the four fields Rekor signs: keys sorted, no whitespace. The body is
    // base64 and the id hex, so no string needs escaping.
    let payload = format!(
        r#"{{"body":"{}","integratedTime":{integrated},"logID":"{}","logIndex":{index}}}"#,
        entry.canonicalized_body,
        hex::encode(&log_id)
    );
    let set = STANDARD
        .decode(&entry.inclusion_promise.signed_entry_timestamp)
        .map_err(|_| "the signed entry timestamp is not base64".to_owned())?;
    log.verify(payload.as_bytes(), &set).map_err(|e| {
        format!(
            "the signed entry timestamp does not verify with the key of log {} ({e})",
            hex::encode(&log_id)
        )
    })?;
    if integrated < cert.not_before || integrated > cert.not_after {
        return Err(format!(
            "the entry was integrated at {when}, outside the certificate's validity"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::bundle::{
        Checkpoint, InclusionPromise, InclusionProof, KindVersion, LogId, TlogEntry,
    };
    use crate::sign::trust::test_support::LogKey;
    use serde_json::json;

    fn entry(key: &LogKey, time: i64) -> TlogEntry {
        let body = STANDARD.encode(br#"{"kind":"dsse"}"#);
        let payload = format!(
            r#"{{"body":"{body}","integratedTime":{time},"logID":"{}","logIndex":7}}"#,
            hex::encode(key.id())
        );
        TlogEntry {
            log_index: "7".into(),
            log_id: LogId {
                key_id: STANDARD.encode(key.id()),
            },
            kind_version: KindVersion {
                kind: "dsse".into(),
                version: "0.0.1".into(),
            },
            integrated_time: time.to_string(),
            inclusion_promise: InclusionPromise {
                signed_entry_timestamp: STANDARD.encode(key.sign(payload.as_bytes())),
            },
            inclusion_proof: InclusionProof {
                log_index: "7".into(),
                root_hash: String::new(),
                tree_size: "8".into(),
                hashes: vec![],
                checkpoint: Checkpoint {
                    envelope: String::new(),
                },
            },
            canonicalized_body: body,
        }
    }

    fn root(logs: &[&LogKey], valid_for: serde_json::Value) -> TrustedRoot {
        serde_json::from_value(json!({
            "tlogs": logs.iter().map(|k| k.json(valid_for.clone())).collect::<Vec<_>>(),
            "certificateAuthorities": [],
            "ctlogs": [],
        }))
        .unwrap()
    }

    const T: i64 = 1_700_000_000;
    const CERT: Validity = Validity {
        not_before: T - 30,
        not_after: T + 600,
    };

    #[test]
    fn a_set_from_a_trusted_log_verifies() {
        let key = LogKey::new();
        let other = LogKey::new();
        let r = root(&[&other, &key], json!({"start": "2020-01-01T00:00:00Z"}));
        check(&r, &entry(&key, T), CERT).unwrap();
    }

    #[test]
    fn forged_or_foreign_entries_are_refused() {
        let key = LogKey::new();
        let r = root(&[&key], json!({"start": "2020-01-01T00:00:00Z"}));

        // Another log's entry: its id is not in the root.
        let stranger = LogKey::new();
        let e = check(&r, &entry(&stranger, T), CERT).unwrap_err();
        assert!(
            e.contains("not a transparency log of the trusted root"),
            "{e}"
        );

        // Another log signed it, but claims the trusted log's id.
        let mut forged = entry(&stranger, T);
        forged.log_id.key_id = STANDARD.encode(key.id());
        let e = check(&r, &forged, CERT).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");

        // The body changed after signing.
        let mut edited = entry(&key, T);
        edited.canonicalized_body = STANDARD.encode(b"{}");
        let e = check(&r, &edited, CERT).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");

        // Integrated after the certificate expired.
        let e = check(&r, &entry(&key, T + 3600), CERT).unwrap_err();
        assert!(e.contains("outside the certificate's validity"), "{e}");

        // The log's key was retired before the entry.
        let old = root(
            &[&key],
            json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}),
        );
        let e = check(&old, &entry(&key, T), CERT).unwrap_err();
        assert!(e.contains("not valid at the integration time"), "{e}");
    }
}
